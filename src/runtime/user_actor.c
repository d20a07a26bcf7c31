/*
 * User actors (parley.h, "User actors"): the actor runtime of actor.h and
 * pool.h, opened to the application's own state.
 *
 * Stopping. A send checks that the actor is running, then posts; a stop
 * between the two must not let the message land after state_free. So each
 * actor has a gate (gate.h): one word holding a "closed" bit and the number
 * of sends between their check and their post. A send enters only while the
 * gate is open. The stop message is posted by whoever leaves the gate closed
 * and empty (parley_actor_stop() itself, or the last send still inside), so
 * every accepted message is in the mailbox before it and is handled first.
 *
 * Lifetime. The pl_actor reference count (actor.h) counts queued messages
 * and scheduled runs, plus one for all user handles together, held while
 * `handles` is above zero. Every post below is made by a thread holding one
 * of those: a handle, or the run of the handler it is in. The handle is
 * freed by the finalizer, which therefore runs only after the stop message
 * (a message, holding a reference) was handled.
 *
 * Destroy. The system refuses sends, lets the pool drain every mailbox (a
 * handler may still send before it sees the refusal; the pool runs what
 * that schedules too), then frees what is left with no other thread running.
 */
#include "parley.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "actor.h"
#include "gate.h"
#include "pool.h"

enum user_msg_kind {
    MSG_USER = 1,
    MSG_STOP
};

/* The envelope of one parley_actor_send() message. */
typedef struct user_msg {
    pl_actor_msg base;
    void *payload;
} user_msg;

struct parley_actor {
    pl_actor actor; /* first: the runtime hands the handler a pl_actor */
    parley_actor_system_t *sys;
    parley_actor_handler *handler;
    void *state;
    void (*state_free)(void *state);
    pl_actor_msg stop_msg; /* allocated with the actor: stopping cannot fail */
    bool state_freed;      /* actor state, written by the stop message */
    _Atomic uint32_t gate;
    _Atomic uint32_t handles;       /* user references */
    parley_actor_t *prev, *next;    /* the system's registry, under sys->mu */
};

struct parley_actor_system {
    pl_pool *pool;
    _Atomic bool closing; /* set once by destroy: sends and spawns refused */
    pthread_mutex_t mu;   /* guards the registry only; never held in a handler */
    parley_actor_t *actors;
};

/* True while this thread runs a handler or state_free: destroy refuses. */
static _Thread_local bool in_handler;

static void set_err(char *errstr, size_t size, const char *msg)
{
    if (errstr && size)
        snprintf(errstr, size, "%s", msg);
}

/* ---- the registry --------------------------------------------------------- */

/* Adds a to the registry unless the system is being destroyed. */
static bool registry_add(parley_actor_system_t *sys, parley_actor_t *a)
{
    pthread_mutex_lock(&sys->mu);
    bool open = !atomic_load(&sys->closing);
    if (open) {
        a->prev = NULL;
        a->next = sys->actors;
        if (sys->actors)
            sys->actors->prev = a;
        sys->actors = a;
    }
    pthread_mutex_unlock(&sys->mu);
    return open;
}

static void registry_remove(parley_actor_system_t *sys, parley_actor_t *a)
{
    pthread_mutex_lock(&sys->mu);
    if (a->prev)
        a->prev->next = a->next;
    else
        sys->actors = a->next;
    if (a->next)
        a->next->prev = a->prev;
    pthread_mutex_unlock(&sys->mu);
}

/* ---- running an actor ----------------------------------------------------- */

static void release_state(parley_actor_t *a)
{
    a->state_freed = true;
    if (a->state_free) {
        in_handler = true;
        a->state_free(a->state);
        in_handler = false;
    }
}

static void dispatch(pl_actor *actor, pl_actor_msg *msg)
{
    parley_actor_t *a = (parley_actor_t *)actor;
    if (msg->kind == MSG_STOP) { /* the last message: stop_msg is not freed */
        release_state(a);
        return;
    }
    user_msg *m = (user_msg *)msg;
    in_handler = true;
    a->handler(a, a->state, m->payload);
    in_handler = false;
    free(m);
}

/* The last reference is gone: the stop message was handled, no handle is
 * left and no worker touches the actor any more. */
static void finalize(pl_actor *actor)
{
    parley_actor_t *a = (parley_actor_t *)actor;
    registry_remove(a->sys, a);
    free(a);
}

/* ---- the gate ------------------------------------------------------------- */

static void gate_leave(parley_actor_t *a)
{
    if (pl_gate_leave(&a->gate))
        pl_actor_post(&a->actor, &a->stop_msg);
}

/* Close the gate; false when it already was. */
static bool gate_close(parley_actor_t *a)
{
    bool empty;
    if (!pl_gate_close(&a->gate, &empty))
        return false;
    if (empty) /* no send inside: none will post the stop message */
        pl_actor_post(&a->actor, &a->stop_msg);
    return true;
}

/* ---- public API ----------------------------------------------------------- */

static unsigned cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 2;
}

parley_actor_system_t *parley_actor_system_new(unsigned workers, char *errstr,
                                               size_t errstr_size)
{
    parley_actor_system_t *sys = calloc(1, sizeof(*sys));
    if (!sys || !(sys->pool = pl_pool_new(workers ? workers : cpu_count()))) {
        free(sys);
        set_err(errstr, errstr_size, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&sys->mu, NULL);
    if (pl_pool_start(sys->pool) != 0) {
        pl_pool_stop(sys->pool); /* joins the threads that did start */
        pl_pool_free(sys->pool);
        pthread_mutex_destroy(&sys->mu);
        free(sys);
        set_err(errstr, errstr_size, "cannot create the worker threads");
        return NULL;
    }
    return sys;
}

/* Only the destroying thread runs now: no lock, no reference to respect. */
static void free_remaining(parley_actor_system_t *sys)
{
    parley_actor_t *a = sys->actors;
    while (a) {
        parley_actor_t *next = a->next;
        if (!a->state_freed)
            release_state(a);
        free(a);
        a = next;
    }
    sys->actors = NULL;
}

void parley_actor_system_destroy(parley_actor_system_t *sys)
{
    if (!sys)
        return;
    if (in_handler) { /* it would wait for the handler it is called from */
        fprintf(stderr, "parley: parley_actor_system_destroy() called from a "
                        "handler; ignored\n");
        return;
    }
    atomic_store(&sys->closing, true);
    pl_pool_stop(sys->pool); /* every message already sent is handled */
    free_remaining(sys);
    pl_pool_free(sys->pool);
    pthread_mutex_destroy(&sys->mu);
    free(sys);
}

parley_actor_t *parley_actor_spawn(parley_actor_system_t *sys,
                                   parley_actor_handler *handler, void *state,
                                   void (*state_free)(void *state))
{
    if (!sys || !handler)
        return NULL;
    parley_actor_t *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    pl_actor_init(&a->actor, sys->pool, dispatch, finalize);
    a->sys = sys;
    a->handler = handler;
    a->state = state;
    a->state_free = state_free;
    a->stop_msg.kind = MSG_STOP;
    atomic_init(&a->gate, 0);
    atomic_init(&a->handles, 1); /* the pl_actor's first reference is theirs */
    if (!registry_add(sys, a)) {
        free(a);
        return NULL;
    }
    return a;
}

parley_err_t parley_actor_send(parley_actor_t *a, void *msg)
{
    if (!a)
        return PARLEY_ERR_INVALID_ARG;
    if (atomic_load(&a->sys->closing))
        return PARLEY_ERR_SHUTDOWN;
    /* Allocated before entering the gate, to keep the gate's window short. */
    user_msg *m = malloc(sizeof(*m));
    if (!m)
        return PARLEY_ERR_NO_MEMORY;
    m->base.kind = MSG_USER;
    m->payload = msg;
    if (!pl_gate_enter(&a->gate)) {
        free(m);
        return PARLEY_ERR_STATE;
    }
    pl_actor_post(&a->actor, &m->base);
    gate_leave(a);
    return PARLEY_OK;
}

parley_err_t parley_actor_stop(parley_actor_t *a)
{
    if (!a)
        return PARLEY_ERR_INVALID_ARG;
    return gate_close(a) ? PARLEY_OK : PARLEY_ERR_STATE;
}

parley_actor_t *parley_actor_ref(parley_actor_t *a)
{
    /* From zero, only the actor's own handler can hold `a`: it takes the
     * handles' reference anew. */
    if (a && atomic_fetch_add(&a->handles, 1) == 0)
        pl_actor_ref(&a->actor);
    return a;
}

void parley_actor_unref(parley_actor_t *a)
{
    if (!a || atomic_fetch_sub(&a->handles, 1) != 1)
        return;
    gate_close(a); /* nobody can send any more: stop, if not done yet */
    pl_actor_unref(&a->actor);
}
