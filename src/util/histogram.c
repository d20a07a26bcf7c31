/* Log-linear latency histogram; see histogram.h. */
#include "histogram.h"

unsigned pl_histogram_bucket_of(uint64_t us)
{
    if (us < PL_HIST_SUB)
        return (unsigned)us;
    unsigned top = 63u - (unsigned)__builtin_clzll(us); /* >= PL_HIST_SUB_BITS */
    unsigned sub = (unsigned)(us >> (top - PL_HIST_SUB_BITS)) & (PL_HIST_SUB - 1);
    unsigned b = PL_HIST_SUB + (top - PL_HIST_SUB_BITS) * PL_HIST_SUB + sub;
    return b < PL_HIST_BUCKETS ? b : PL_HIST_BUCKETS - 1;
}

uint64_t pl_histogram_bucket_max(unsigned bucket)
{
    if (bucket < PL_HIST_SUB)
        return bucket;
    unsigned top = (bucket - PL_HIST_SUB) / PL_HIST_SUB + PL_HIST_SUB_BITS;
    uint64_t sub = (bucket - PL_HIST_SUB) % PL_HIST_SUB;
    uint64_t width = 1ull << (top - PL_HIST_SUB_BITS);
    return (1ull << top) + (sub + 1) * width - 1;
}

void pl_histogram_record(pl_histogram *h, uint64_t us)
{
    atomic_fetch_add_explicit(&h->buckets[pl_histogram_bucket_of(us)], 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
    uint64_t max = atomic_load_explicit(&h->max_us, memory_order_relaxed);
    while (us > max && !atomic_compare_exchange_weak_explicit(
                           &h->max_us, &max, us, memory_order_relaxed,
                           memory_order_relaxed))
        ;
}

void pl_histogram_snapshot_take(pl_histogram *h, pl_histogram_snapshot *out)
{
    out->count = 0;
    for (unsigned i = 0; i < PL_HIST_BUCKETS; i++) {
        out->buckets[i] = atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        out->count += out->buckets[i];
    }
    /* count is the buckets' own sum, so percentiles never run off the end. */
    out->sum_us = atomic_load_explicit(&h->sum_us, memory_order_relaxed);
    out->max_us = atomic_load_explicit(&h->max_us, memory_order_relaxed);
}

uint64_t pl_histogram_percentile(const pl_histogram_snapshot *s, double q)
{
    if (!s->count)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)s->count + 0.5);
    if (rank < 1)
        rank = 1;
    if (rank > s->count)
        rank = s->count;
    uint64_t seen = 0;
    for (unsigned i = 0; i < PL_HIST_BUCKETS; i++) {
        seen += s->buckets[i];
        if (seen >= rank) {
            uint64_t v = pl_histogram_bucket_max(i);
            return v < s->max_us ? v : s->max_us;
        }
    }
    return s->max_us;
}
