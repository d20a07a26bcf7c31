/*
 * curl_floor: what libcurl alone costs per streamed request (issue 16).
 *
 *   curl_floor --endpoint URL --requests R [--concurrency N] [--duration S]
 *              [--cacert FILE] [--wait perform|events]
 *
 * The least a client built on libcurl can spend on the vendors' HTTP path:
 * N transfers at once on one multi handle, each an Anthropic Messages
 * request with "stream": true; when one ends, its easy handle (options,
 * headers and body set once) is added again at once, until R have ended
 * (or no new one starts after S seconds). Nothing is decoded: a reply
 * counts as good when its status is 200 and its body holds the event that
 * ends it. No sessions, no history, no events for a caller: parley's own cost is
 * what `parley bench` spends on the same load beyond this.
 *
 * The multi handle is driven by parley's own I/O loop (src/engine/io_events.c),
 * either way it can: curl_multi_poll and curl_multi_perform (`perform`,
 * which runs every transfer on each wake-up), or libcurl's event interface
 * over epoll (`events`, which runs the transfers of the ready sockets).
 *
 * The last line of stdout is one JSON object, with the fields of `parley
 * bench`'s that apply (mismatches and retries are 0: a reply is not
 * compared, a failure not retried; latency is from adding the transfer to
 * its end) and two more: rss_bytes_per_transfer (the peak RSS less the RSS
 * before the first transfer, over --concurrency) and us_per_request.
 * The API key is $PARLEY_API_KEY, or "bench" when unset.
 */
#include <curl/curl.h>

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>

#include "io_events.h"

#define PROG "curl_floor"
#define BODY                                                                            \
    "{\"model\":\"parley-echo-1\",\"max_tokens\":1024,\"stream\":true,"                 \
    "\"messages\":[{\"role\":\"user\",\"content\":\"what does a request cost\"}]}"
/* The event that ends an Anthropic stream. */
#define LAST_EVENT "message_stop"

typedef struct transfer {
    CURL *easy;
    long sent_ms;
    bool ended; /* LAST_EVENT was seen */
    char tail[sizeof(LAST_EVENT)]; /* the last bytes, for a split event */
} transfer;

typedef struct run {
    CURLM *multi;
    long started, ended, errors, connections, limit;
    long stop_starting_ms; /* no transfer starts after it */
    long *latency_ms; /* of every ended request, in the order they ended */
} run;

static void die(const char *what)
{
    fprintf(stderr, PROG ": %s\n", what);
    exit(1);
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* This process's resident memory now, in KiB (VmRSS), or -1. */
static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static int by_value(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* Whether LAST_EVENT appears, also split across two calls: the last
 * bytes of each call are kept to be read with the next call's first. */
static size_t write_cb(char *data, size_t size, size_t n, void *userdata)
{
    transfer *t = userdata;
    size_t len = size * n, keep = sizeof(t->tail) - 1, old = strlen(t->tail);
    char joined[2 * sizeof(t->tail)];
    size_t head = len < keep ? len : keep;
    memcpy(joined, t->tail, old);
    memcpy(joined + old, data, head);
    if (memmem(joined, old + head, LAST_EVENT, keep) || memmem(data, len, LAST_EVENT, keep))
        t->ended = true;
    /* The new tail: the last `keep` bytes of the old tail and the data. */
    size_t total = old + len, from = total > keep ? total - keep : 0, w = 0;
    for (size_t i = from; i < total; i++)
        joined[w++] = i < old ? t->tail[i] : data[i - old];
    memcpy(t->tail, joined, w);
    t->tail[w] = '\0';
    return len;
}

static void start(run *r, transfer *t)
{
    t->ended = false;
    t->tail[0] = '\0';
    t->sent_ms = now_ms();
    r->started++;
    if (curl_multi_add_handle(r->multi, t->easy) != CURLM_OK)
        die("curl_multi_add_handle failed");
}

/* Take the ended transfers, count them, and start the next ones. */
static void reap(run *r)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(r->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        transfer *t;
        long status = 0, connects = 0;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(m->easy_handle, CURLINFO_NUM_CONNECTS, &connects);
        CURLcode rc = m->data.result;
        r->latency_ms[r->ended++] = now_ms() - t->sent_ms;
        r->connections += connects;
        if (rc != CURLE_OK || status != 200 || !t->ended) {
            r->errors++;
            if (r->errors <= 5)
                fprintf(stderr, PROG ": a request failed: %s, status %ld\n",
                        curl_easy_strerror(rc), status);
        }
        curl_multi_remove_handle(r->multi, t->easy);
        if (r->started < r->limit && now_ms() >= r->stop_starting_ms)
            r->limit = r->started; /* the ones under way still end */
        if (r->started < r->limit)
            start(r, t);
    }
}

/* parley's own loop (io_events.h): sleep, let libcurl act, take the
 * ended transfers. */
static void drive(run *r, pl_io_events *ev)
{
    while (r->ended < r->limit) {
        pl_io_events_wait(ev, NULL, 0, 1000);
        pl_io_events_run(ev);
        reap(r);
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: " PROG " --endpoint URL --requests R [--concurrency N] "
                    "[--duration S] [--cacert FILE] [--wait perform|events]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *endpoint = NULL, *cacert = NULL, *wait = "perform";
    long concurrency = 1, requests = 0;
    double duration_s = 1e6;
    static const struct option opts[] = {
        {"endpoint", required_argument, NULL, 'e'}, {"requests", required_argument, NULL, 'r'},
        {"concurrency", required_argument, NULL, 'c'}, {"cacert", required_argument, NULL, 'a'},
        {"wait", required_argument, NULL, 'w'}, {"duration", required_argument, NULL, 'd'},
        {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'e': endpoint = optarg; break;
        case 'r': requests = strtol(optarg, NULL, 10); break;
        case 'c': concurrency = strtol(optarg, NULL, 10); break;
        case 'a': cacert = optarg; break;
        case 'w': wait = optarg; break;
        case 'd': duration_s = strtod(optarg, NULL); break;
        default: usage();
        }
    }
    bool events = strcmp(wait, "events") == 0;
    if (!endpoint || requests <= 0 || concurrency <= 0 || !(duration_s > 0) ||
        (!events && strcmp(wait, "perform")))
        usage();
    if (concurrency > requests)
        concurrency = requests;
    const char *key = getenv("PARLEY_API_KEY");
    char url[1024], auth[512];
    snprintf(url, sizeof(url), "%s/v1/messages", endpoint);
    snprintf(auth, sizeof(auth), "x-api-key: %s", key ? key : "bench");

    curl_global_init(CURL_GLOBAL_DEFAULT);
    double cpu0 = cpu_seconds();
    long t0 = now_ms();
    run r = {.multi = curl_multi_init(), .limit = requests,
             .stop_starting_ms = t0 + (long)(duration_s * 1000.0),
             .latency_ms = calloc((size_t)requests, sizeof(long))};
    if (!r.multi || !r.latency_ms)
        die("curl_multi_init failed");
    long rss_before = rss_kib();
    /* parley's settings for the same path (src/transport/http_transport.c). */
    curl_multi_setopt(r.multi, CURLMOPT_MAX_CONCURRENT_STREAMS, 100L);
    curl_multi_setopt(r.multi, CURLMOPT_MAXCONNECTS, concurrency);
    pl_io_events ev;
    if (pl_io_events_init(&ev, r.multi, events) != 0)
        die("could not make the epoll set");
    struct curl_slist *headers = NULL;
    headers = curl_slist_append(headers, auth);
    headers = curl_slist_append(headers, "anthropic-version: 2023-06-01");
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Accept: text/event-stream");
    transfer *ts = calloc((size_t)concurrency, sizeof(*ts));
    if (!headers || !ts)
        die("out of memory");
    for (long i = 0; i < concurrency; i++) {
        CURL *e = ts[i].easy = curl_easy_init();
        if (!e)
            die("curl_easy_init failed");
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
        if (!strncasecmp(endpoint, "https://", 8))
            curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
        if (cacert)
            curl_easy_setopt(e, CURLOPT_CAINFO, cacert);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, BODY);
        curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &ts[i]);
        curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)&ts[i]);
        start(&r, &ts[i]);
    }
    drive(&r, &ev);
    double cpu = cpu_seconds() - cpu0, wall = (double)(now_ms() - t0) / 1000.0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    qsort(r.latency_ms, (size_t)r.ended, sizeof(long), by_value);
    double mean = 0;
    for (long i = 0; i < r.ended; i++)
        mean += (double)r.latency_ms[i] / (double)r.ended;

    for (long i = 0; i < concurrency; i++)
        curl_easy_cleanup(ts[i].easy);
    free(ts);
    curl_slist_free_all(headers);
    curl_multi_cleanup(r.multi);
    pl_io_events_free(&ev);
    curl_global_cleanup();
    /* The peak, less what the process held before the first transfer,
     * over the transfers at once: what a transfer in flight costs, its
     * share of the connections included. */
    double rss_per_transfer = rss_before < 0 ? -1 :
        (double)(ru.ru_maxrss - rss_before) * 1024.0 / (double)concurrency;
    printf("{\"requests\":%ld,\"errors\":%ld,\"mismatches\":0,\"retries\":0,"
           "\"connections\":%ld,\"rps\":%.1f,\"lat_ms_mean\":%.3f,\"lat_ms_p50\":%ld,"
           "\"lat_ms_p99\":%ld,\"lat_ms_max\":%ld,\"cpu_s\":%.3f,\"max_rss_mb\":%.1f,"
           "\"rss_bytes_per_transfer\":%.0f,\"us_per_request\":%.1f}\n",
           r.ended, r.errors, r.connections, wall > 0 ? (double)r.ended / wall : 0.0, mean,
           r.latency_ms[r.ended / 2], r.latency_ms[r.ended * 99 / 100],
           r.latency_ms[r.ended - 1], cpu, (double)ru.ru_maxrss / 1024.0, rss_per_transfer,
           cpu * 1e6 / (double)r.ended);
    free(r.latency_ms);
    return r.errors ? 1 : 0;
}
