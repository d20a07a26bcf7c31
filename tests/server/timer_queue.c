/*
 * The reference server's timer queue (timer_queue.h): parley's timer heap
 * on lws's clock, behind one lws sul.
 */
#include "timer_queue.h"

#include <string.h>

static void on_sul(lws_sorted_usec_list_t *sul);

/* Have lws's timer fire when the earliest timer is due, unless it already
 * fires by then (an earlier wake-up that finds nothing due re-arms). */
static void arm(pl_rs_timer_queue *q)
{
    const pl_timer *first = pl_timer_first(&q->heap);
    lws_usec_t now;

    if (!first)
        return;
    if (q->sul_due && q->sul_due <= first->due)
        return;
    now = lws_now_usecs();
    q->sul_due = first->due;
    /* lws takes a delay; never the -1 that means "cancel". */
    lws_sul_schedule(q->ctx, 0, &q->sul, on_sul,
                     first->due > now ? first->due - now : 0);
}

/*
 * lws's timer: fire every timer due by now. A callback may set or cancel
 * timers, itself included; one that it sets for now or later fires in a
 * later round, so this ends.
 */
static void on_sul(lws_sorted_usec_list_t *sul)
{
    pl_rs_timer_queue *q = pl_container_of(sul, pl_rs_timer_queue, sul);
    lws_usec_t now = lws_now_usecs();
    pl_timer *due;

    q->sul_due = 0;
    while ((due = pl_timer_pop_due(&q->heap, now))) {
        pl_rs_timer *t = pl_container_of(due, pl_rs_timer, entry);
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
    timer->fire = fire;
    pl_timer_set(&q->heap, &timer->entry,
                 lws_now_usecs() + (lws_usec_t)ms * LWS_US_PER_MS);
    if (pl_timer_first(&q->heap) == &timer->entry)
        arm(q);
}

void pl_rs_timer_cancel(pl_rs_timer_queue *q, pl_rs_timer *timer)
{
    pl_timer_cancel(&q->heap, &timer->entry);
}

size_t pl_rs_timer_queue_len(const pl_rs_timer_queue *q)
{
    return pl_timer_heap_len(&q->heap);
}

void pl_rs_timer_queue_clear(pl_rs_timer_queue *q)
{
    pl_timer_heap_clear(&q->heap);
    lws_sul_cancel(&q->sul);
    q->sul_due = 0;
}

void pl_rs_timer_queue_free(pl_rs_timer_queue *q)
{
    pl_timer_heap_free(&q->heap);
}
