/*
 * Actors: state plus a lock-free mailbox, run by the worker pool (pool.h).
 * At most one worker runs a given actor at a time, so an actor's state needs
 * no lock, and messages from one producer are handled in the order sent.
 *
 * Lifetime: an actor is reference-counted. Its creator holds one reference;
 * every message in its mailbox and every scheduled run hold one more, so an
 * actor is finalized only after its last message was handled and no worker
 * touches it any more.
 */
#ifndef PL_ACTOR_H
#define PL_ACTOR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "mpsc.h"
#include "pool.h"

typedef struct pl_actor pl_actor;

/* A message; embed it as the first member of your own message struct. */
typedef struct pl_actor_msg {
    pl_mpsc_node entry;
    int kind;
} pl_actor_msg;

/* Handles one message and frees it. Runs on a worker thread. */
typedef void pl_actor_handler(pl_actor *actor, pl_actor_msg *msg);
/* Frees the actor's state when its last reference is gone. */
typedef void pl_actor_finalizer(pl_actor *actor);

struct pl_actor {
    pl_mpsc mailbox;                /* many producers, one consumer */
    pl_pool_job job;                /* what the pool runs: a turn of the actor */
    pl_actor_msg *backlog;          /* consumer-private FIFO, oldest first */
    _Atomic int scheduled;          /* 1 while queued on or run by a worker */
    _Atomic uint32_t refs;
    pl_pool *pool;
    pl_actor_handler *handle;
    pl_actor_finalizer *finalize;
};

/* Initialise an embedded actor with one reference (the caller's). */
void pl_actor_init(pl_actor *actor, pl_pool *pool, pl_actor_handler *handle,
                   pl_actor_finalizer *finalize);

void pl_actor_ref(pl_actor *actor);
/* Take a reference unless the last one is already gone (the actor is being
 * finalized): for finding actors through a registry. */
bool pl_actor_try_ref(pl_actor *actor);
/* Drop a reference; the last one calls the finalizer. */
void pl_actor_unref(pl_actor *actor);

/*
 * Post msg to the actor's mailbox (any thread, lock-free). The message holds
 * a reference on the actor until it has been handled.
 */
void pl_actor_post(pl_actor *actor, pl_actor_msg *msg);

#endif
