/*
 * A min-heap of (due time, request id, generation) for the I/O thread's
 * per-request timers. Entries are never removed early: a request re-armed
 * bumps its generation, and a popped entry whose generation no longer
 * matches is ignored.
 */
#ifndef PL_TIMER_HEAP_H
#define PL_TIMER_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pl_timer {
    int64_t due_ms;
    uint64_t id;
    uint64_t gen;
} pl_timer;

typedef struct pl_timer_heap {
    pl_timer *items;
    size_t len, cap;
} pl_timer_heap;

void pl_timer_push(pl_timer_heap *h, pl_timer t);
/* The earliest entry, or NULL when empty. */
const pl_timer *pl_timer_peek(const pl_timer_heap *h);
/* Remove the earliest entry into *out; false when empty. */
bool pl_timer_pop(pl_timer_heap *h, pl_timer *out);
void pl_timer_heap_free(pl_timer_heap *h);

#endif
