#include "snowflake.h"

#include <stdatomic.h>
#include <time.h>

/*
 * The process-wide state is one 64-bit word: (milliseconds << SEQ_BITS) |
 * sequence. The next state is max(state + 1, now << SEQ_BITS), taken with
 * one compare-and-swap, so ids are unique and increasing across threads even
 * when two clients of the process share a worker id, and a clock stepping
 * back only slows the timestamp down.
 */
static _Atomic uint64_t snowflake_state;

uint64_t pl_snowflake_next_at(unsigned worker_id, int64_t now_ms)
{
    int64_t since_epoch = now_ms - PL_SNOWFLAKE_EPOCH_MS;
    /* A clock before the epoch counts from timestamp 1, so no id is 0. */
    uint64_t ts = since_epoch > 0 ? (uint64_t)since_epoch : 1;
    uint64_t floor_state = ts << PL_SNOWFLAKE_SEQ_BITS;
    uint64_t old = atomic_load_explicit(&snowflake_state, memory_order_relaxed);
    uint64_t next;
    do {
        next = old + 1 > floor_state ? old + 1 : floor_state;
    } while (!atomic_compare_exchange_weak_explicit(
        &snowflake_state, &old, next, memory_order_relaxed,
        memory_order_relaxed));

    uint64_t seq = next & ((1u << PL_SNOWFLAKE_SEQ_BITS) - 1);
    uint64_t ms = next >> PL_SNOWFLAKE_SEQ_BITS;
    uint64_t worker = worker_id & ((1u << PL_SNOWFLAKE_WORKER_BITS) - 1);
    return ((ms << (PL_SNOWFLAKE_WORKER_BITS + PL_SNOWFLAKE_SEQ_BITS)) |
            (worker << PL_SNOWFLAKE_SEQ_BITS) | seq) &
           INT64_MAX;
}

uint64_t pl_snowflake_next(unsigned worker_id)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return pl_snowflake_next_at(worker_id,
                                (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}
