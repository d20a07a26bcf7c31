/*
 * A many-producer, one-consumer queue of intrusive nodes (ck_stack
 * underneath): producers push lock-free from any thread; the one consumer
 * takes everything pushed so far in one atomic swap, which cannot suffer
 * ABA, and gets it back oldest first. Actor mailboxes, the pool's ready
 * queues and the I/O thread's submissions are all this queue; this header is
 * the only code that looks inside ck_stack.
 */
#ifndef PL_MPSC_H
#define PL_MPSC_H

#include <ck_stack.h>
#include <stdbool.h>
#include <stddef.h>

/* Embed one in whatever is queued; after pl_mpsc_take_all, `next` links the
 * batch taken, oldest first. */
typedef ck_stack_entry_t pl_mpsc_node;

typedef struct pl_mpsc {
    ck_stack_t stack; /* newest first */
} pl_mpsc;

/* The struct of type `type` whose member `member` is the node n. */
#define pl_mpsc_entry(n, type, member) ((type *)((char *)(n) - offsetof(type, member)))

static inline void pl_mpsc_init(pl_mpsc *q)
{
    ck_stack_init(&q->stack);
}

/* Any thread. */
static inline void pl_mpsc_push(pl_mpsc *q, pl_mpsc_node *n)
{
    ck_stack_push_upmc(&q->stack, n);
}

/* The consumer only: everything pushed so far, oldest first (NULL when
 * empty). The stack gives newest first; reversing restores the order of
 * pushing, so messages from one producer stay in the order sent. */
static inline pl_mpsc_node *pl_mpsc_take_all(pl_mpsc *q)
{
    pl_mpsc_node *e = ck_stack_batch_pop_upmc(&q->stack);
    pl_mpsc_node *fifo = NULL;
    while (e) {
        pl_mpsc_node *next = e->next;
        e->next = fifo;
        fifo = e;
        e = next;
    }
    return fifo;
}

/*
 * Any thread: whether the queue held something at the moment of reading.
 * Callers use it to close lost-wakeup races (store a flag, then look), so the
 * load is sequentially consistent: free on x86, and ordered after the
 * caller's store elsewhere. It is the load ck_pr_load_ptr() does, written so
 * that ThreadSanitizer sees it as atomic: a suppression of ck's plain load
 * fails whenever TSan has lost this read's stack by the time a push races it.
 */
static inline bool pl_mpsc_nonempty(const pl_mpsc *q)
{
    return __atomic_load_n(&q->stack.head, __ATOMIC_SEQ_CST) != NULL;
}

#endif
