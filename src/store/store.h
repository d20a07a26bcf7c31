/*
 * The session store on Redis/Valkey: one asynchronous hiredis connection
 * that the I/O thread drives (engine/io.c) and nothing else touches. It
 * carries out the sessions' orders (store_order.h) as Lua scripts
 * (store_scripts.h), pipelined, each sent again after a lost connection
 * until its deadline; it keeps the leases it acquired alive, renewing each
 * every lease_ms / 3, and reports what ends through the events below, which
 * are the sink's (engine/sink.h).
 *
 * It never blocks: the caller's loop polls the one descriptor that
 * pl_store_tick() names, hands what poll saw to pl_store_io(), and calls
 * pl_store_tick() again no later than it asked. A host name is resolved
 * on a short-lived thread of its own (store_connect.h): hiredis 0.14.1
 * resolves with a blocking getaddrinfo() when it connects.
 */
#ifndef PL_STORE_H
#define PL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "histogram.h"
#include "json_writer.h"
#include "log.h"
#include "store_order.h"

typedef struct pl_store pl_store;

/* Each order ends with exactly one store_done; then release(owner), but for
 * an ACQUIRE that ended OK, whose reference the lease keeps until a RELEASE
 * of it ended or lease_lost was called (then release). The store frees the
 * order after store_done. */
typedef struct pl_store_events {
    void (*store_done)(void *owner, const pl_store_order *order, const pl_store_result *r);
    void (*lease_lost)(void *owner, const char *message);
    void (*release)(void *owner);
} pl_store_events;

typedef struct pl_store_conf {
    const char *url;         /* redis://[user@]host[:port][/db] (store_url.h) */
    const char *password;    /* NULL: no AUTH; never logged nor shown */
    const char *key_prefix;  /* NULL: none; must not hold '{' or '}' */
    const char *owner_name;  /* this client's name in leases; no space */
    int lease_ms;            /* > 0 */
    int ttl_s;               /* idle keys expire after it; 0: kept */
    int timeout_ms;          /* > 0: a reply later than this loses the connection */
    int backoff_ms, backoff_max_ms; /* reconnects (util/backoff.h) */
    const pl_logger *log;
    uint64_t *rng;           /* the caller's xorshift state, for the backoff's jitter */
    pl_store_events ev;
    /* A test seam: what starts a connection (NULL: redisAsyncConnect). For
     * a host name it runs on the resolving thread. */
    struct redisAsyncContext *(*connect)(const char *host, int port);
} pl_store_conf;

/* What the statistics show (docs/statistics.md, "store"). */
typedef struct pl_store_stats {
    bool connected;            /* ready: logged in, scripts loaded */
    uint64_t round_trips;      /* replies to orders and renewals */
    uint64_t errors;           /* connections lost or refused, error replies */
    uint64_t reconnects;       /* connections made after the first */
    uint64_t leases_lost;
    size_t leases_held;
    size_t orders;             /* held: waiting, or sent and not answered */
} pl_store_stats;

/* Checks the configuration and starts connecting; NULL with a sentence in
 * err when the configuration is wrong. */
pl_store *pl_store_new(const pl_store_conf *conf, char *err, size_t err_size);

/* Take an order (its deadline_ms: monotonic ms; 0: now + timeout_ms). */
void pl_store_submit(pl_store *s, pl_store_order *order, int64_t now);

/* Run what is due (deadlines, renewals, reconnects, the reply timeout) and
 * send what is buffered. *fd gets the descriptor to poll (-1: none) and
 * *events its poll(2) events. Returns ms until it is due next. */
int64_t pl_store_tick(pl_store *s, int64_t now, int *fd, short *events);

/* What poll(2) saw on that descriptor (POLLIN, POLLOUT, ...). */
void pl_store_io(pl_store *s, short revents, int64_t now);

/* End every held order with UNAVAILABLE ("the client is shutting down"),
 * give every lease up in the store, waiting up to bound_ms for that, and
 * release every lease's owner. Blocks the caller (the thread stopping the
 * I/O thread) for at most bound_ms. */
void pl_store_shutdown(pl_store *s, int bound_ms);

/* Shuts down (bound 0) what is still held, then frees. */
void pl_store_free(pl_store *s);

void pl_store_stats_get(const pl_store *s, pl_store_stats *out);
/* Round-trip latency of orders and renewals, in microseconds. */
pl_histogram *pl_store_latency(pl_store *s);
/* The members of the statistics' "store" object but latency_ms. */
void pl_store_write_stats(const pl_store *s, pl_json_writer *w);

#endif
