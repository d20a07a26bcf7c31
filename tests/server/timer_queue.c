/*
 * A binary min-heap of timers behind one lws sul (timer_queue.h). Each
 * timer knows its heap slot, so cancelling one is a sift from that slot
 * rather than a search.
 */
#include "timer_queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* The server is a test fixture: out of memory aborts (as in refserver.c). */
static void *check_alloc(void *p)
{
    if (!p) {
        fputs("parley-refserver: out of memory\n", stderr);
        abort();
    }
    return p;
}

/* Due first: earlier time, or the same time and set earlier. */
static int before(const pl_rs_timer *a, const pl_rs_timer *b)
{
    return a->due < b->due || (a->due == b->due && a->order < b->order);
}

static void place(pl_rs_timer_queue *q, size_t i, pl_rs_timer *t)
{
    q->heap[i] = t;
    t->slot = i + 1;
}

/* Move the timer at i towards the root while it is due before its parent. */
static void sift_up(pl_rs_timer_queue *q, size_t i)
{
    pl_rs_timer *t = q->heap[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(t, q->heap[parent]))
            break;
        place(q, i, q->heap[parent]);
        i = parent;
    }
    place(q, i, t);
}

/* Move the timer at i towards the leaves while a child is due before it. */
static void sift_down(pl_rs_timer_queue *q, size_t i)
{
    pl_rs_timer *t = q->heap[i];

    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= q->len)
            break;
        if (child + 1 < q->len && before(q->heap[child + 1], q->heap[child]))
            child++;
        if (!before(q->heap[child], t))
            break;
        place(q, i, q->heap[child]);
        i = child;
    }
    place(q, i, t);
}

/* Remove the timer at slot i, keeping the heap ordered. */
static void remove_at(pl_rs_timer_queue *q, size_t i)
{
    pl_rs_timer *gone = q->heap[i];
    pl_rs_timer *last = q->heap[--q->len];

    gone->slot = 0;
    if (i == q->len)
        return; /* it was the last one */
    place(q, i, last);
    /* The last leaf may belong above or below the slot it fills. */
    if (i > 0 && before(last, q->heap[(i - 1) / 2]))
        sift_up(q, i);
    else
        sift_down(q, i);
}

static void on_sul(lws_sorted_usec_list_t *sul);

/* Have lws's timer fire when the earliest timer is due, unless it already
 * fires by then (an earlier wake-up that finds nothing due re-arms). */
static void arm(pl_rs_timer_queue *q)
{
    lws_usec_t due, now;

    if (!q->len)
        return;
    due = q->heap[0]->due;
    if (q->sul_due && q->sul_due <= due)
        return;
    now = lws_now_usecs();
    q->sul_due = due;
    /* lws takes a delay; never the -1 that means "cancel". */
    lws_sul_schedule(q->ctx, 0, &q->sul, on_sul, due > now ? due - now : 0);
}

/*
 * lws's timer: fire every timer due by now. A callback may set or cancel
 * timers, itself included; one that it sets for now or later fires in a
 * later round, so this ends.
 */
static void on_sul(lws_sorted_usec_list_t *sul)
{
    pl_rs_timer_queue *q = container_of(sul, pl_rs_timer_queue, sul);
    lws_usec_t now = lws_now_usecs();

    q->sul_due = 0;
    while (q->len && q->heap[0]->due <= now) {
        pl_rs_timer *t = q->heap[0];
        remove_at(q, 0);
        t->fire(t);
    }
    arm(q);
}

void pl_rs_timer_queue_init(pl_rs_timer_queue *q, struct lws_context *ctx)
{
    memset(q, 0, sizeof *q);
    q->ctx = ctx;
}

void pl_rs_timer_set(pl_rs_timer_queue *q, pl_rs_timer *timer,
                     pl_rs_timer_fn *fire, unsigned ms)
{
    pl_rs_timer_cancel(q, timer);
    if (q->len == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 1024;
        q->heap = check_alloc(realloc(q->heap, q->cap * sizeof *q->heap));
    }
    timer->due = lws_now_usecs() + (lws_usec_t)ms * LWS_US_PER_MS;
    timer->order = q->next_order++;
    timer->fire = fire;
    place(q, q->len++, timer);
    sift_up(q, q->len - 1);
    if (q->heap[0] == timer)
        arm(q);
}

void pl_rs_timer_cancel(pl_rs_timer_queue *q, pl_rs_timer *timer)
{
    if (timer->slot)
        remove_at(q, timer->slot - 1);
}

size_t pl_rs_timer_queue_len(const pl_rs_timer_queue *q)
{
    return q->len;
}

void pl_rs_timer_queue_clear(pl_rs_timer_queue *q)
{
    size_t i;

    for (i = 0; i < q->len; i++)
        q->heap[i]->slot = 0;
    q->len = 0;
    lws_sul_cancel(&q->sul);
    q->sul_due = 0;
}

void pl_rs_timer_queue_free(pl_rs_timer_queue *q)
{
    free(q->heap);
    q->heap = NULL;
    q->cap = 0;
}
