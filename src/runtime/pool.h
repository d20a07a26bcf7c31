/*
 * The worker pool: threads that run scheduled jobs. Each worker has a
 * lock-free queue of ready jobs and a semaphore to sleep on; scheduling
 * spreads jobs over the workers round-robin. The pool knows nothing of what
 * a job is: actors (actor.h) embed one and schedule themselves.
 */
#ifndef PL_POOL_H
#define PL_POOL_H

#include <stdbool.h>

#include "mpsc.h"

typedef struct pl_pool pl_pool;
typedef struct pl_pool_job pl_pool_job;

/* Work for a worker; embed it in whatever runs. */
struct pl_pool_job {
    pl_mpsc_node link;             /* in a worker's ready queue */
    void (*run)(pl_pool_job *job); /* on a worker; may schedule the job again */
};

pl_pool *pl_pool_new(unsigned nworkers);
/* Start the threads. Returns 0, or -1 when a thread could not be created. */
int pl_pool_start(pl_pool *pool);
/*
 * Stop the threads once their ready queues are empty and join them, then run
 * whatever jobs are still scheduled on the calling thread until none is.
 */
void pl_pool_stop(pl_pool *pool);
void pl_pool_free(pl_pool *pool);

/* Queue a job on a worker (any thread); wakes the worker when it sleeps,
 * unless the calling thread holds the pool's wake-ups. A job is queued once
 * at a time: schedule it again only from its run or after it ran. */
void pl_pool_schedule(pl_pool *pool, pl_pool_job *job);

/*
 * A thread that posts many messages in a burst (the I/O thread, for what one
 * read brought) holds the wake-ups back, then wakes each sleeping worker
 * that was given jobs once, instead of once per message. Between the two
 * calls, jobs scheduled from this thread wait: release before blocking.
 */
void pl_pool_hold_wakes(const pl_pool *pool);
void pl_pool_release_wakes(pl_pool *pool);

/* True on a thread of any pool: callbacks run there. */
bool pl_pool_in_worker(void);

unsigned pl_pool_size(const pl_pool *pool);

#endif
