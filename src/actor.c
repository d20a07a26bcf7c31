#include "actor.h"

#include <stddef.h>

#include "pool.h"

#define ACTOR_MSG(e) ((pl_actor_msg *)((char *)(e) - offsetof(pl_actor_msg, entry)))

void pl_actor_init(pl_actor *actor, pl_pool *pool, pl_actor_handler *handle,
                   pl_actor_finalizer *finalize)
{
    ck_stack_init(&actor->mailbox);
    actor->backlog = NULL;
    atomic_init(&actor->scheduled, 0);
    atomic_init(&actor->refs, 1);
    actor->pool = pool;
    actor->handle = handle;
    actor->finalize = finalize;
}

void pl_actor_ref(pl_actor *actor)
{
    atomic_fetch_add_explicit(&actor->refs, 1, memory_order_relaxed);
}

bool pl_actor_try_ref(pl_actor *actor)
{
    uint32_t refs = atomic_load_explicit(&actor->refs, memory_order_relaxed);
    while (refs > 0)
        if (atomic_compare_exchange_weak_explicit(&actor->refs, &refs, refs + 1,
                                                  memory_order_acquire, memory_order_relaxed))
            return true;
    return false;
}

void pl_actor_unref(pl_actor *actor)
{
    if (atomic_fetch_sub_explicit(&actor->refs, 1, memory_order_acq_rel) == 1)
        actor->finalize(actor);
}

/* Exactly one caller that finds the flag clear schedules the actor, and that
 * scheduled run holds its own reference. */
static void schedule_if_idle(pl_actor *actor)
{
    if (atomic_exchange(&actor->scheduled, 1) == 0) {
        pl_actor_ref(actor);
        pl_pool_schedule(actor->pool, actor);
    }
}

void pl_actor_post(pl_actor *actor, pl_actor_msg *msg)
{
    pl_actor_ref(actor);
    ck_stack_push_upmc(&actor->mailbox, &msg->entry);
    schedule_if_idle(actor);
}

/* Refill the empty backlog with the mailbox's contents in FIFO order. The
 * one-swap batch pop takes the whole stack (newest first), so it cannot
 * suffer ABA; reversing it restores the order of sending. */
static void take_mailbox(pl_actor *actor)
{
    ck_stack_entry_t *e = ck_stack_batch_pop_upmc(&actor->mailbox);
    pl_actor_msg *fifo = NULL;
    while (e) {
        ck_stack_entry_t *next = e->next;
        pl_actor_msg *m = ACTOR_MSG(e);
        m->entry.next = fifo ? &fifo->entry : NULL;
        fifo = m;
        e = next;
    }
    actor->backlog = fifo;
}

void pl_actor_run(pl_actor *actor, unsigned budget)
{
    for (unsigned handled = 0; handled < budget; handled++) {
        if (!actor->backlog)
            take_mailbox(actor);
        pl_actor_msg *m = actor->backlog;
        if (!m)
            break;
        actor->backlog = m->entry.next ? ACTOR_MSG(m->entry.next) : NULL;
        actor->handle(actor, m);
        pl_actor_unref(actor); /* the message's reference; the run holds one */
    }

    if (actor->backlog) { /* budget spent: give other actors a turn */
        pl_pool_schedule(actor->pool, actor);
        return;
    }
    atomic_store(&actor->scheduled, 0);
    /* A producer that pushed before seeing the flag clear did not schedule;
     * the full fence orders our store before re-reading the mailbox. The
     * read is the same instruction as ck_pr_load_ptr(), but ThreadSanitizer
     * sees it as atomic: a suppression of ck's plain load fails whenever TSan
     * has lost this read's stack by the time a producer's push races it. */
    atomic_thread_fence(memory_order_seq_cst);
    if (__atomic_load_n(&actor->mailbox.head, __ATOMIC_RELAXED) != NULL &&
        atomic_exchange(&actor->scheduled, 1) == 0) {
        pl_pool_schedule(actor->pool, actor); /* keeps the run's reference */
        return;
    }
    pl_actor_unref(actor); /* the run's reference */
}
