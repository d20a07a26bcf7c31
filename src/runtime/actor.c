#include "actor.h"

#include <stddef.h>

#define ACTOR_MSG(e) pl_mpsc_entry(e, pl_actor_msg, entry)

/* Messages an actor handles per run before others get a turn. */
#define RUN_BUDGET 64

static void run_actor(pl_pool_job *job);

void pl_actor_init(pl_actor *actor, pl_pool *pool, pl_actor_handler *handle,
                   pl_actor_finalizer *finalize)
{
    pl_mpsc_init(&actor->mailbox);
    actor->backlog = NULL;
    atomic_init(&actor->scheduled, 0);
    atomic_init(&actor->refs, 1);
    actor->job.run = run_actor;
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
        pl_pool_schedule(actor->pool, &actor->job);
    }
}

void pl_actor_post(pl_actor *actor, pl_actor_msg *msg)
{
    pl_actor_ref(actor);
    pl_mpsc_push(&actor->mailbox, &msg->entry);
    schedule_if_idle(actor);
}

/* Refill the empty backlog with the mailbox's contents, oldest first. */
static void take_mailbox(pl_actor *actor)
{
    pl_mpsc_node *e = pl_mpsc_take_all(&actor->mailbox);
    actor->backlog = e ? ACTOR_MSG(e) : NULL;
}

/* Run on a worker: handle at most RUN_BUDGET messages, then release the run
 * or reschedule the actor when more are waiting. */
static void run_actor(pl_pool_job *job)
{
    pl_actor *actor = pl_mpsc_entry(job, pl_actor, job);
    for (unsigned handled = 0; handled < RUN_BUDGET; handled++) {
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
        pl_pool_schedule(actor->pool, &actor->job);
        return;
    }
    atomic_store(&actor->scheduled, 0);
    /* A producer that pushed before seeing the flag clear did not schedule;
     * the full fence orders our store before re-reading the mailbox. */
    atomic_thread_fence(memory_order_seq_cst);
    if (pl_mpsc_nonempty(&actor->mailbox) &&
        atomic_exchange(&actor->scheduled, 1) == 0) {
        pl_pool_schedule(actor->pool, &actor->job); /* keeps the run's reference */
        return;
    }
    pl_actor_unref(actor); /* the run's reference */
}
