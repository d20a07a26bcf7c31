/*
 * The client's counters, listed once. X(field, group, key): the field of
 * pl_counters and of the public parley_stats_t (include/parley.h, in the
 * same order: client.c checks it at compile time, a test pins the public
 * layout), and where the statistics document shows it, as
 * "<group>": {"<key>": n}. A new counter goes at the end of both lists.
 */
#ifndef PL_COUNTERS_H
#define PL_COUNTERS_H

#include <stdatomic.h>
#include <stdint.h>

#define PL_COUNTERS(X)                                             \
    X(requests_sent, "requests", "sent")                           \
    X(requests_done, "requests", "done")                           \
    X(requests_failed, "requests", "failed")                       \
    X(frames_sent, "traffic", "frames_sent")                       \
    X(frames_received, "traffic", "frames_received")               \
    X(bytes_sent, "traffic", "bytes_sent")                         \
    X(bytes_received, "traffic", "bytes_received")                 \
    X(connections_opened, "traffic", "connections_opened")         \
    X(errors, "reliability", "errors")                             \
    X(unknown_messages, "reliability", "unknown_messages")         \
    X(retries, "reliability", "retries")                           \
    X(resumes, "reliability", "resumes")                           \
    X(stalls, "reliability", "stalls")                             \
    X(reconnects, "reliability", "reconnects")                     \
    X(queue_full, "requests", "queue_full")                        \
    X(insecure_connections, "traffic", "insecure_connections")     \
    X(bytes_compression_saved, "compression", "bytes_saved")       \
    X(bytes_decompressed, "compression", "bytes_decompressed")

/* Each is updated with relaxed atomics (PL_COUNTER_ADD below). */
typedef struct pl_counters {
#define PL_COUNTER_FIELD(field, group, key) _Atomic uint64_t field;
    PL_COUNTERS(PL_COUNTER_FIELD)
#undef PL_COUNTER_FIELD
} pl_counters;

/* Add n to one counter (relaxed: they are read only as statistics). */
#define PL_COUNTER_ADD(counters, field, n) \
    atomic_fetch_add_explicit(&(counters)->field, (n), memory_order_relaxed)

#endif
