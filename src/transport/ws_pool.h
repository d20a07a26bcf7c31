/*
 * The native transport's state, shared by its two halves: ws_transport.c
 * (the connection pool: placing, backoff, heartbeat, trials, the ops table)
 * and ws_native.c (what parley.v1 messages mean for the requests).
 */
#ifndef PL_WS_POOL_H
#define PL_WS_POOL_H

#include <stdint.h>

#include "protocol.h"
#include "transport.h"
#include "ws_conn.h"

typedef struct pl_ws_pool {
    pl_transport base;
    pl_tx_conf conf;
    const pl_tx_events *ev;
    pl_ws_conn *conns;
    unsigned nconns;
    pl_tx_list *on_conn;        /* the requests on each connection, by index */
    pl_decoder *decoder;
    int64_t heartbeat_ms;
    bool tending;               /* in the tick's pass over the connections */
    bool placed_while_tending;  /* a request was queued during it */
    uint64_t server_errors[PL_SERR_OTHER + 1]; /* error messages by code */
} pl_ws_pool;

static inline pl_tx_list *pl_ws_pool_requests(pl_ws_pool *p, const pl_ws_conn *conn)
{
    return &p->on_conn[conn->index];
}

#endif
