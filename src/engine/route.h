/*
 * The I/O thread's table of requests in flight, keyed by request id. Owned by
 * the I/O thread alone, so it needs no lock.
 */
#ifndef PL_ROUTE_H
#define PL_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "parley.h"
#include "timer_heap.h"
#include "transport.h"

typedef struct pl_route {
    /* Its id, its encoded message (the route's, freed with it), the pieces
     * delivered so far and where the transport carries it. */
    pl_tx_req tx;
    void *owner;               /* its session, holding a reference (pl_io_sink) */
    const char *owner_id;      /* the session's id, as long as owner */
    uint32_t repeat_from;      /* a gap repeat asked from here; UINT32_MAX: none */
    unsigned gap_repeats;      /* repeats asked because of gaps, in all */
    uint64_t reply_bytes;      /* text delivered, against reply.max.bytes */
    bool ever_acked;           /* on any send */
    bool waiting;              /* on no connection until retry_at_ms */
    bool cancelling;           /* the caller cancelled it */
    bool stalled;              /* stalled: its connection's Ping decides */
    int attempts;              /* sends since the last progress, this one included,
                                  less those lost through no fault of its own */
    unsigned sends;            /* every send, for the retry statistics */
    int64_t retry_at_ms;
    int64_t deadline_ms;       /* 0: none */
    int64_t progress_ms;       /* the last ack or piece, or the last send */
    pl_timer timer;            /* its deadline, retry or stall check (route_policy.c) */
    struct pl_route *next;     /* hash chain */
} pl_route;

typedef struct pl_route_table {
    pl_route **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
} pl_route_table;

void pl_route_table_init(pl_route_table *t);
void pl_route_table_free(pl_route_table *t); /* frees the buckets only */
/* Insert r (its id must not be present). */
void pl_route_insert(pl_route_table *t, pl_route *r);
pl_route *pl_route_find(const pl_route_table *t, uint64_t id);
/* Unlink and return the route for id, or NULL. */
pl_route *pl_route_remove(pl_route_table *t, uint64_t id);

/* Calls fn on every route; fn may remove the route it is given. */
void pl_route_foreach(pl_route_table *t, void (*fn)(pl_route *r, void *arg),
                      void *arg);

#endif
