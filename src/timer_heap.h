/*
 * An intrusive binary min-heap of timers: the I/O thread's per-request
 * timers (deadline, retry, stall) and the reference server's pacing
 * (tests/server/timer_queue.h).
 *
 * A timer is embedded in its owner's struct (pl_container_of finds the
 * owner again), so setting one allocates nothing but the heap's array, and
 * it knows its own heap slot: cancelling or moving it is a sift from that
 * slot, O(log n), not a search. An owner that goes away cancels its timer,
 * so the heap holds exactly the pending timers, never stale entries.
 *
 * Timers fire in due order; those due at the same time fire in the order
 * they were set. Due times are in whatever unit the caller uses (ms, us),
 * the same for every timer of a heap. A heap and its timers belong to one
 * thread: nothing here locks.
 */
#ifndef PL_TIMER_HEAP_H
#define PL_TIMER_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define pl_container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* Zeroed memory is a timer that is not pending. */
typedef struct pl_timer {
    int64_t due;    /* when it falls due, in the heap's unit */
    uint64_t order; /* when it was set, to break ties */
    size_t slot;    /* its heap index + 1; 0: not pending */
} pl_timer;

/* Zeroed memory is an empty heap. */
typedef struct pl_timer_heap {
    pl_timer **items; /* items[0] is due first */
    size_t len, cap;
    uint64_t next_order;
} pl_timer_heap;

/* (Re)arm t to fall due at `due`: moved if it was pending. */
void pl_timer_set(pl_timer_heap *h, pl_timer *t, int64_t due);

/* Take t off the heap; nothing happens when it is not pending. */
void pl_timer_cancel(pl_timer_heap *h, pl_timer *t);

static inline bool pl_timer_pending(const pl_timer *t)
{
    return t->slot != 0;
}

/* The timer due first, still pending, or NULL when the heap is empty. */
pl_timer *pl_timer_first(const pl_timer_heap *h);

/* Take off and return the timer due first if it is due by `now`; NULL
 * when none is. Call it until NULL to fire every timer due. */
pl_timer *pl_timer_pop_due(pl_timer_heap *h, int64_t now);

/* Pending timers. */
size_t pl_timer_heap_len(const pl_timer_heap *h);

/* Take every timer off the heap (each is left not pending); the heap stays
 * usable. */
void pl_timer_heap_clear(pl_timer_heap *h);

/* Release the heap's memory; its timers are forgotten, not touched. */
void pl_timer_heap_free(pl_timer_heap *h);

#endif
