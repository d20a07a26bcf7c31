/* Samples and counters of a load run, and their summary (bench_record.h). */
#include "bench_record.h"

#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool bench_record_init(bench_record *r, size_t capacity)
{
    *r = (bench_record){.capacity = capacity};
    /* calloc: pages of a budget the run never reaches are never touched. */
    r->latency_us = calloc(capacity, sizeof(*r->latency_us));
    r->ttft_us = calloc(capacity, sizeof(*r->ttft_us));
    if (!r->latency_us || !r->ttft_us) {
        bench_record_free(r);
        return false;
    }
    return true;
}

void bench_record_free(bench_record *r)
{
    free(r->latency_us);
    free(r->ttft_us);
    r->latency_us = r->ttft_us = NULL;
}

/* Microseconds, saturated: 4,294 s is longer than any request timeout. */
static uint32_t span_us(uint64_t from_ns, uint64_t to_ns)
{
    uint64_t us = to_ns > from_ns ? (to_ns - from_ns) / 1000 : 0;
    return us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

void bench_record_reply(bench_record *r, uint64_t sent_ns, uint64_t first_piece_ns,
                        uint64_t end_ns, bool matches)
{
    size_t i = atomic_fetch_add_explicit(&r->nlatency, 1, memory_order_relaxed);
    if (i < r->capacity)
        r->latency_us[i] = span_us(sent_ns, end_ns);
    if (first_piece_ns) {
        size_t j = atomic_fetch_add_explicit(&r->nttft, 1, memory_order_relaxed);
        if (j < r->capacity)
            r->ttft_us[j] = span_us(sent_ns, first_piece_ns);
    }
    if (!matches)
        atomic_fetch_add_explicit(&r->mismatches, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->finished, 1, memory_order_relaxed);
}

void bench_record_error(bench_record *r)
{
    atomic_fetch_add_explicit(&r->errors, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->finished, 1, memory_order_relaxed);
}

static int compare_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* ,"key":value in milliseconds: the nearest-rank percentile (1 <= p <= 100;
 * 100 is the maximum) of the n sorted samples, or null when there is none. */
static void print_percentile(FILE *out, const char *key, const uint32_t *sorted, size_t n,
                             unsigned p)
{
    if (n == 0) {
        fprintf(out, ",\"%s\":null", key);
        return;
    }
    size_t rank = (n * p + 99) / 100; /* ceil(n * p / 100), at least 1 */
    fprintf(out, ",\"%s\":%.3f", key, sorted[rank - 1] / 1000.0);
}

/* ,"key":value: the mean of the n samples in milliseconds, or null. */
static void print_mean(FILE *out, const char *key, const uint32_t *samples, size_t n)
{
    if (n == 0) {
        fprintf(out, ",\"%s\":null", key);
        return;
    }
    /* At most 10^8 samples (the request budget's limit) of < 2^32 us each:
     * the sum stays far below 2^64. */
    uint64_t sum_us = 0;
    for (size_t i = 0; i < n; i++)
        sum_us += samples[i];
    fprintf(out, ",\"%s\":%.3f", key, (double)sum_us / (double)n / 1000.0);
}

static size_t samples(atomic_size_t *count, size_t capacity)
{
    size_t n = atomic_load(count);
    return n < capacity ? n : capacity;
}

void bench_record_print_json(bench_record *r, const bench_totals *t, FILE *out)
{
    uint64_t finished = atomic_load(&r->finished);
    size_t nlat = samples(&r->nlatency, r->capacity);
    size_t nttft = samples(&r->nttft, r->capacity);
    qsort(r->latency_us, nlat, sizeof(*r->latency_us), compare_u32);
    qsort(r->ttft_us, nttft, sizeof(*r->ttft_us), compare_u32);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                   (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;

    fprintf(out, "{\"requests\":%llu,\"errors\":%llu,\"mismatches\":%llu,"
                 "\"retries\":%llu,\"connections\":%llu,\"rps\":%.1f",
            (unsigned long long)finished, (unsigned long long)atomic_load(&r->errors),
            (unsigned long long)atomic_load(&r->mismatches), (unsigned long long)t->retries,
            (unsigned long long)t->connections,
            t->elapsed_s > 0 ? (double)finished / t->elapsed_s : 0.0);
    print_mean(out, "lat_ms_mean", r->latency_us, nlat);
    print_percentile(out, "lat_ms_p50", r->latency_us, nlat, 50);
    print_percentile(out, "lat_ms_p90", r->latency_us, nlat, 90);
    print_percentile(out, "lat_ms_p99", r->latency_us, nlat, 99);
    print_percentile(out, "lat_ms_max", r->latency_us, nlat, 100);
    print_percentile(out, "ttft_ms_p50", r->ttft_us, nttft, 50);
    print_percentile(out, "ttft_ms_p99", r->ttft_us, nttft, 99);
    /* ru_maxrss is in KiB on Linux. */
    fprintf(out, ",\"cpu_s\":%.3f,\"max_rss_mb\":%.1f}\n", cpu_s, ru.ru_maxrss / 1024.0);
    fflush(out);
}
