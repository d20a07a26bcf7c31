/*
 * The reference server's own timers: the pacing of replies (latency_ms
 * before the first piece, token_ms between pieces), for refserver.c and
 * refserver_http.c.
 *
 * Why not one lws timer (lws_sul) per reply: lws 4.1 keeps every scheduled
 * sul of a service thread in one sorted linked list and inserts by walking
 * it from the head. Replies that wait the same delay are always inserted
 * behind all the others, so each insert walked every pending timer: with
 * thousands of replies in flight that walk was a quarter of the server's
 * CPU (23 % measured with 10,000 requests in flight) and capped it below
 * the benchmarks' load (docs/benchmarks.md).
 *
 * Here the timers of one queue live in parley's timer heap
 * (src/timer_heap.h: O(log n) to set, cancel or fire; ties in the order
 * set), and lws holds one sul for the whole queue, armed for the earliest
 * due time. When it fires, every timer due by then fires, in due order,
 * and the sul is armed again. This file is only that adapter: lws's clock
 * (microseconds) and its sul.
 *
 * Like lws_sul, a timer is embedded in its owner's struct (container_of
 * finds the owner in the callback) and needs no allocation of its own. A
 * queue and its timers belong to the lws service thread that serves them.
 */
#ifndef PL_REFSERVER_TIMER_QUEUE_H
#define PL_REFSERVER_TIMER_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "timer_heap.h"

typedef struct pl_rs_timer pl_rs_timer;
typedef void pl_rs_timer_fn(pl_rs_timer *timer);

/* Zeroed memory is a timer that is not pending. */
struct pl_rs_timer {
    pl_timer entry;          /* due: the lws_now_usecs() time to fire at */
    pl_rs_timer_fn *fire;
};

typedef struct pl_rs_timer_queue {
    struct lws_context *ctx;
    lws_sorted_usec_list_t sul;  /* lws's one timer for the queue */
    lws_usec_t sul_due;          /* when sul fires; 0: not armed */
    pl_timer_heap heap;
} pl_rs_timer_queue;

/* An empty queue scheduling on ctx's first service thread. */
void pl_rs_timer_queue_init(pl_rs_timer_queue *q, struct lws_context *ctx);

/* (Re)arm timer to call fire(timer) in ms milliseconds from now. */
void pl_rs_timer_set(pl_rs_timer_queue *q, pl_rs_timer *timer,
                     pl_rs_timer_fn *fire, unsigned ms);

/* Take timer off the queue; nothing happens when it is not pending. */
void pl_rs_timer_cancel(pl_rs_timer_queue *q, pl_rs_timer *timer);

/* Pending timers. */
size_t pl_rs_timer_queue_len(const pl_rs_timer_queue *q);

/*
 * Take every pending timer off the queue and disarm lws's timer: for a
 * restart that frees all the owners, and before lws_context_destroy, since
 * the sul must be off lws's list by then. The queue stays usable.
 */
void pl_rs_timer_queue_clear(pl_rs_timer_queue *q);

/* Release the queue's memory. Call it cleared, or once the lws context is
 * gone: it does not touch lws. */
void pl_rs_timer_queue_free(pl_rs_timer_queue *q);

#endif
