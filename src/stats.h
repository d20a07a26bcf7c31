/*
 * The statistics document (docs/statistics.md): built on the I/O thread every
 * statistics.interval.ms, which owns the connections it describes, and handed
 * to the user's stats callback on a worker thread through a small actor, so
 * the callback never runs on the I/O thread nor under a lock, and documents
 * arrive one at a time, in order.
 */
#ifndef PL_STATS_H
#define PL_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "parley.h"
#include "protocol.h"

struct pl_ws_conn;
typedef struct pl_stats_sink pl_stats_sink;

/* What the I/O thread contributes: its connections, requests and the
 * dialect's answers by kind. Valid only during pl_stats_publish(). */
typedef struct pl_stats_io_view {
    const struct pl_ws_conn *conns; /* native dialect; NULL for HTTP */
    unsigned nconns;
    size_t routes;           /* requests the I/O thread holds */
    size_t routes_waiting;   /* of which waiting to be sent again */
    size_t timers;           /* pending timers: at most one per route */
    const uint64_t *server_errors; /* native: error messages by pl_server_err */
    const uint64_t *http_status;   /* HTTP: answers by status / 100; [0]: none */
    uint64_t http2_answers;
} pl_stats_io_view;

/* The sink for the client's stats callback; NULL when statistics are off
 * (no callback or no interval). Needs the client's worker pool. */
pl_stats_sink *pl_stats_sink_new(parley_client_t *client);
/* After the worker pool stopped: every document posted was delivered. */
void pl_stats_sink_free(pl_stats_sink *sink);

/* Build the document and post it to the sink (I/O thread). */
void pl_stats_publish(parley_client_t *client, const pl_stats_io_view *view);

#endif
