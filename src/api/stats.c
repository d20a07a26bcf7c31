/* The statistics document and its delivery; see stats.h and
 * docs/statistics.md, which describes every field written here. */
#include "stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "actor.h"
#include "alloc.h"
#include "client.h"
#include "clock.h"
#include "histogram.h"
#include "json_writer.h"
#include "pool.h"
#include "store.h"
#include "transport.h"

struct pl_stats_sink {
    pl_actor actor;
    parley_client_t *client;
};

typedef struct stats_msg {
    pl_actor_msg base;
    size_t len;
    char json[];
} stats_msg;

/* Runs on a worker: at most one document at a time, in order. */
static void deliver(pl_actor *actor, pl_actor_msg *msg)
{
    pl_stats_sink *sink = (pl_stats_sink *)actor;
    stats_msg *m = (stats_msg *)msg;
    const parley_conf_t *conf = sink->client->conf;
    conf->stats_cb(sink->client, m->json, m->len, conf->stats_opaque);
    free(m);
}

static void finalize(pl_actor *actor)
{
    (void)actor; /* the sink is freed by pl_stats_sink_free() */
}

pl_stats_sink *pl_stats_sink_new(parley_client_t *client)
{
    const parley_conf_t *conf = client->conf;
    if (!conf->stats_cb || conf->stats_interval_ms <= 0)
        return NULL;
    pl_stats_sink *sink = pl_xcalloc(1, sizeof(*sink));
    sink->client = client;
    pl_actor_init(&sink->actor, client->pool, deliver, finalize);
    return sink;
}

void pl_stats_sink_free(pl_stats_sink *sink)
{
    if (!sink)
        return;
    pl_actor_unref(&sink->actor);
    free(sink);
}

static uint64_t load(_Atomic uint64_t *counter)
{
    return atomic_load_explicit(counter, memory_order_relaxed);
}

/* A histogram in milliseconds with microsecond precision; the buckets as
 * [upper bound in ms, count] pairs, empty ones left out. */
static void write_histogram(pl_json_writer *w, const char *key, pl_histogram *h)
{
    pl_histogram_snapshot s;
    pl_histogram_snapshot_take(h, &s);
    pl_jw_object(w, key);
    pl_jw_u64(w, "count", s.count);
    pl_jw_fixed(w, "mean", s.count ? s.sum_us / s.count : 0, 3);
    pl_jw_fixed(w, "p50", pl_histogram_percentile(&s, 0.50), 3);
    pl_jw_fixed(w, "p90", pl_histogram_percentile(&s, 0.90), 3);
    pl_jw_fixed(w, "p99", pl_histogram_percentile(&s, 0.99), 3);
    pl_jw_fixed(w, "p999", pl_histogram_percentile(&s, 0.999), 3);
    pl_jw_fixed(w, "max", s.max_us, 3);
    pl_jw_array(w, "buckets");
    for (unsigned i = 0; i < PL_HIST_BUCKETS; i++) {
        if (!s.buckets[i])
            continue;
        pl_jw_array(w, NULL);
        pl_jw_fixed(w, NULL, pl_histogram_bucket_max(i), 3);
        pl_jw_u64(w, NULL, s.buckets[i]);
        pl_jw_end_array(w);
    }
    pl_jw_end_array(w);
    pl_jw_end_object(w);
}

static void write_dialect(pl_json_writer *w, const parley_client_t *c,
                          const pl_io_stats_view *v)
{
    static const char *const names[] = {"native", "anthropic", "openai"};
    pl_jw_object(w, "dialects");
    pl_jw_object(w, names[c->conf->dialect]);
    v->transport->ops->write_dialect(v->transport, w);
    pl_jw_end_object(w);
    pl_jw_end_object(w);
}

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The counters that the document shows in `group`, in PL_COUNTERS' order. */
static void write_counters(pl_json_writer *w, pl_counters *k, const char *group)
{
#define X(field, in_group, key)         \
    if (!strcmp(in_group, group))       \
        pl_jw_u64(w, key, load(&k->field));
    PL_COUNTERS(X)
#undef X
}

static void write_document(pl_json_writer *w, parley_client_t *c, const pl_io_stats_view *v)
{
    pl_counters *k = &c->counters;
    int64_t now = pl_monotonic_ms();

    pl_jw_object(w, NULL);
    pl_jw_str(w, "version", PARLEY_VERSION_STR);
    pl_jw_i64(w, "time_ms", unix_ms());
    pl_jw_i64(w, "age_ms", now - c->created_ms);
    pl_jw_str(w, "endpoint", c->endpoint_shown);
    pl_jw_u64(w, "worker_id", c->worker_id);
    pl_jw_u64(w, "workers", pl_pool_size(c->pool));

    pl_jw_object(w, "requests");
    write_counters(w, k, "requests");
    pl_jw_i64(w, "outstanding", atomic_load(&c->outstanding));
    pl_jw_i64(w, "queued_bytes", atomic_load(&c->queued_bytes));
    pl_jw_u64(w, "at_io_thread", v->routes);
    pl_jw_u64(w, "waiting_retry", v->routes_waiting);
    pl_jw_u64(w, "timers", v->timers);
    pl_jw_end_object(w);

    pl_jw_object(w, "sessions");
    pl_jw_i64(w, "open", atomic_load(&c->sessions_open));
    pl_jw_end_object(w);

    pl_jw_object(w, "reliability");
    write_counters(w, k, "reliability");
    pl_jw_end_object(w);

    pl_jw_object(w, "traffic");
    write_counters(w, k, "traffic");
    pl_jw_end_object(w);

    pl_jw_object(w, "compression");
    write_counters(w, k, "compression");
    pl_jw_ratio(w, "ratio_sent", load(&k->bytes_sent), load(&k->bytes_compression_saved));
    pl_jw_end_object(w);

    write_histogram(w, "latency_ms", &c->latency);
    write_histogram(w, "ttft_ms", &c->ttft);

    pl_jw_array(w, "connections");
    v->transport->ops->write_connections(v->transport, w, now);
    pl_jw_end_array(w);

    write_dialect(w, c, v);
    if (v->store) {
        pl_jw_object(w, "store");
        pl_store_write_stats(v->store, w);
        write_histogram(w, "latency_ms", pl_store_latency(v->store));
        pl_jw_end_object(w);
    }
    pl_jw_end_object(w);
}

void pl_stats_publish(parley_client_t *c, const pl_io_stats_view *v)
{
    if (!c->stats)
        return;
    pl_json_writer w;
    pl_jw_init(&w);
    write_document(&w, c, v);
    stats_msg *m = w.failed ? NULL : malloc(sizeof(*m) + w.out.len + 1);
    if (m) {
        m->len = w.out.len;
        memcpy(m->json, w.out.data, w.out.len + 1);
        pl_actor_post(&c->stats->actor, &m->base);
    }
    /* Out of memory: this document is skipped; the next one has it all. */
    pl_buf_free(&w.out);
}
