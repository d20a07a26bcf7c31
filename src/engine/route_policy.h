/*
 * The requests in flight and what happens to them (docs/reliability.md): a
 * request whose connection fails, or that the server turns away with a
 * retryable error, or that makes no progress for stall.timeout.ms, is sent
 * again with the same id and resume_from = pieces delivered, after a
 * backoff, until retry.max.attempts sends in a row failed for a reason of
 * its own or request.timeout.ms passed. A stall first puts its connection
 * on trial: a dead connection is replaced and its requests resume free of
 * charge; a live one means the request alone was slow.
 *
 * The router decides; a transport (transport.h) carries. The clock and the
 * random numbers are given to it, so that tests/unit/test_route.c drives it
 * with a fake transport and a fake clock. Everything runs on the I/O thread.
 */
#ifndef PL_ROUTE_POLICY_H
#define PL_ROUTE_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "counters.h"
#include "log.h"
#include "parley.h"
#include "route.h"
#include "sink.h"
#include "timer_heap.h"
#include "transport.h"

/* The properties of the same names (docs/configuration.md). */
typedef struct pl_policy_conf {
    int retry_max_attempts;
    int retry_backoff_ms, retry_backoff_max_ms;
    int request_timeout_ms;        /* 0: none */
    int stall_timeout_ms;          /* 0: none */
    int64_t reply_max_bytes;
    const char *endpoint_shown;    /* for messages */
} pl_policy_conf;

typedef struct pl_router {
    pl_policy_conf conf;
    pl_io_sink sink;
    pl_transport *transport;
    pl_tx_events events;           /* what the transport calls */
    pl_route_table routes;
    pl_timer_heap timers;
    pl_counters *counters;
    const pl_logger *log;
    uint64_t *rng;                 /* backoff jitter (non-zero xorshift state) */
    int64_t (*clock)(void);        /* monotonic milliseconds */
    /* A long read goes on (pl_tx_events.long_read), or NULL. */
    void (*long_read)(void *ctx);
    void *long_read_ctx;
    int64_t last_wait_warning_ms;  /* wait_level(); 0: none yet */
} pl_router;

void pl_router_init(pl_router *rt, const pl_policy_conf *conf, const pl_io_sink *sink,
                    pl_counters *counters, const pl_logger *log, uint64_t *rng,
                    int64_t (*clock)(void));
/* The transport, made with pl_router_events(rt); before the first send. */
void pl_router_set_transport(pl_router *rt, pl_transport *t);
const pl_tx_events *pl_router_events(const pl_router *rt);

/* A new request (its owner's reference, the frame and the headers move to
 * the router). */
void pl_router_send(pl_router *rt, uint64_t id, void *owner, const char *owner_id,
                    char *frame, size_t frame_len, char *headers, bool needs_blocks,
                    int64_t now);
/* The caller cancelled request id (nothing when it finished already). */
void pl_router_cancel(pl_router *rt, uint64_t id);
/* Run the due timers; returns ms until the next one, INT64_MAX for none. */
int64_t pl_router_run_timers(pl_router *rt, int64_t now);
/* End every request with err (shutdown). */
void pl_router_fail_all(pl_router *rt, parley_err_t err, const char *msg);
void pl_router_free(pl_router *rt);

size_t pl_router_count(const pl_router *rt);
size_t pl_router_waiting(pl_router *rt);
size_t pl_router_timers(const pl_router *rt);

#endif
