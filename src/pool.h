/*
 * The worker pool: threads that run scheduled actors. Each worker has a
 * lock-free stack of ready actors and a semaphore to sleep on; scheduling
 * spreads actors over the workers round-robin.
 */
#ifndef PL_POOL_H
#define PL_POOL_H

#include <stdbool.h>

#include "actor.h"

/* Messages an actor handles per run before others get a turn. */
#define PL_POOL_RUN_BUDGET 64

pl_pool *pl_pool_new(unsigned nworkers);
/* Start the threads. Returns 0, or -1 when a thread could not be created. */
int pl_pool_start(pl_pool *pool);
/*
 * Stop the threads once their ready stacks are empty and join them, then run
 * whatever actors are still scheduled on the calling thread until none is.
 */
void pl_pool_stop(pl_pool *pool);
void pl_pool_free(pl_pool *pool);

/* Queue a scheduled actor on a worker (any thread); wakes the worker when
 * it sleeps, unless the calling thread holds the pool's wake-ups. */
void pl_pool_schedule(pl_pool *pool, pl_actor *actor);

/*
 * A thread that posts many messages in a burst (the I/O thread, for what one
 * read brought) holds the wake-ups back, then wakes each sleeping worker
 * that was given actors once, instead of once per message. Between the two
 * calls, actors scheduled from this thread wait: release before blocking.
 */
void pl_pool_hold_wakes(const pl_pool *pool);
void pl_pool_release_wakes(pl_pool *pool);

/* True on a thread of any pool: callbacks run there. */
bool pl_pool_in_worker(void);

unsigned pl_pool_size(const pl_pool *pool);

#endif
