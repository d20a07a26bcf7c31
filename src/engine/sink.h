/*
 * Where the engine's results go, upward: the sessions (api/session.c) and
 * the statistics (api/stats.c). The engine knows a request's owner (its
 * session) only as a pointer.
 */
#ifndef PL_SINK_H
#define PL_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "parley.h"
#include "reply.h"
#include "store.h"
#include "store_order.h"
#include "transport.h"

/* What the I/O thread contributes to the statistics: its requests and the
 * transport, which writes its connections and its dialect's answers. Valid
 * only during the sink's stats call. */
typedef struct pl_io_stats_view {
    const pl_transport *transport;
    size_t routes;           /* requests the I/O thread holds */
    size_t routes_waiting;   /* of which waiting to be sent again */
    size_t timers;           /* pending timers: at most one per route */
    pl_store *store;         /* the session store, which writes its part; NULL: none */
} pl_io_stats_view;

/* Every call is made on the I/O thread; each request ends with exactly one
 * of error or done, then one release. */
typedef struct pl_io_sink {
    /* Piece `seq` of request id's reply, and how the reply ended: the
     * shapes of reply.h, carried unchanged from the decoders. */
    void (*piece)(void *owner, uint64_t id, uint32_t seq, const pl_piece *piece);
    void (*done)(void *owner, uint64_t id, const pl_reply_end *end);
    void (*error)(void *owner, uint64_t id, parley_err_t err, const char *message);
    void (*release)(void *owner); /* the request's reference on its owner */
    /* A store order ended (exactly once per order, then the order is
     * freed). An ACQUIRE that ended OK keeps the order's reference on its
     * owner for the lease, which the I/O thread renews, until a RELEASE of
     * it ended or lease_lost was called; then release(owner). Every other
     * order's reference is released after store_done. */
    void (*store_done)(void *owner, const pl_store_order *order, const pl_store_result *r);
    /* The lease of owner's session was lost: a renewal found a newer
     * owner, or could not reach the store before the lease ran out. */
    void (*lease_lost)(void *owner, const char *message);
    /* A statistics document is due (statistics.interval.ms). */
    void (*stats)(void *stats_ctx, const pl_io_stats_view *view);
    void *stats_ctx;
} pl_io_sink;

#endif
