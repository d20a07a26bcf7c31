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

#include "io.h"
#include "parley.h"
#include "protocol.h"
typedef struct pl_stats_sink pl_stats_sink;

/* The sink for the client's stats callback; NULL when statistics are off
 * (no callback or no interval). Needs the client's worker pool. */
pl_stats_sink *pl_stats_sink_new(parley_client_t *client);
/* After the worker pool stopped: every document posted was delivered. */
void pl_stats_sink_free(pl_stats_sink *sink);

/* Build the document and post it to the sink (I/O thread). */
void pl_stats_publish(parley_client_t *client, const pl_io_stats_view *view);

#endif
