#include "pool.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>

typedef struct pl_worker {
    pl_mpsc ready; /* scheduled jobs */
    sem_t wake;       /* posted to end a sleep, and at stop */
    /* Set by the worker before it sleeps; whoever clears it posts `wake`.
     * A worker that is awake finds new jobs on its own, so a schedule
     * costs a system call only when the worker really sleeps. */
    _Atomic bool sleeping;
    pthread_t thread;
    bool started;
    pl_pool *pool;
} pl_worker;

struct pl_pool {
    unsigned nworkers;
    _Atomic unsigned next_worker;
    _Atomic bool stopping;
    pl_worker *workers;
};

static _Thread_local bool in_worker;
/* The pool whose wake-ups the calling thread holds back (pl_pool_hold_wakes). */
static _Thread_local const pl_pool *holding_wakes;

bool pl_pool_in_worker(void)
{
    return in_worker;
}

pl_pool *pl_pool_new(unsigned nworkers)
{
    if (nworkers == 0)
        nworkers = 1;
    pl_pool *pool = calloc(1, sizeof(*pool));
    if (!pool)
        return NULL;
    pool->workers = calloc(nworkers, sizeof(*pool->workers));
    if (!pool->workers) {
        free(pool);
        return NULL;
    }
    pool->nworkers = nworkers;
    for (unsigned i = 0; i < nworkers; i++) {
        pl_mpsc_init(&pool->workers[i].ready);
        sem_init(&pool->workers[i].wake, 0, 0);
        pool->workers[i].pool = pool;
    }
    return pool;
}

unsigned pl_pool_size(const pl_pool *pool)
{
    return pool->nworkers;
}

/* Wake the worker if it sleeps. Called after a push to its ready queue: the
 * fence orders the push before reading the flag, as the worker orders
 * setting the flag before its last look at the queue (worker_main), so
 * either the worker sees the job or we see it sleeping. */
static void wake_if_sleeping(pl_worker *w)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&w->sleeping, memory_order_relaxed) &&
        atomic_exchange(&w->sleeping, false))
        sem_post(&w->wake);
}

void pl_pool_schedule(pl_pool *pool, pl_pool_job *job)
{
    unsigned i = atomic_fetch_add_explicit(&pool->next_worker, 1,
                                           memory_order_relaxed) % pool->nworkers;
    pl_worker *w = &pool->workers[i];
    pl_mpsc_push(&w->ready, &job->link);
    if (holding_wakes != pool)
        wake_if_sleeping(w);
}

void pl_pool_hold_wakes(const pl_pool *pool)
{
    holding_wakes = pool;
}

void pl_pool_release_wakes(pl_pool *pool)
{
    holding_wakes = NULL;
    for (unsigned i = 0; i < pool->nworkers; i++) {
        pl_worker *w = &pool->workers[i];
        if (pl_mpsc_nonempty(&w->ready))
            wake_if_sleeping(w);
    }
}

/* Run every job on the worker's ready queue, oldest first. Returns false
 * when the queue was empty. */
static bool run_ready(pl_worker *w)
{
    pl_mpsc_node *fifo = pl_mpsc_take_all(&w->ready);
    if (!fifo)
        return false;
    while (fifo) {
        /* Read the link first: once run, the job may be rescheduled and
         * its link reused by another worker. */
        pl_mpsc_node *next = fifo->next;
        pl_pool_job *job = pl_mpsc_entry(fifo, pl_pool_job, link);
        job->run(job);
        fifo = next;
    }
    return true;
}

static void *worker_main(void *arg)
{
    pl_worker *w = arg;
    in_worker = true;
    for (;;) {
        if (run_ready(w))
            continue;
        if (atomic_load(&w->pool->stopping))
            break;
        /* Announce the sleep, then look once more (see wake_if_sleeping). */
        atomic_store(&w->sleeping, true);
        if (pl_mpsc_nonempty(&w->ready) ||
            atomic_load(&w->pool->stopping)) {
            atomic_store(&w->sleeping, false); /* a post crossing this is harmless */
            continue;
        }
        sem_wait(&w->wake);
    }
    in_worker = false;
    return NULL;
}

int pl_pool_start(pl_pool *pool)
{
    for (unsigned i = 0; i < pool->nworkers; i++) {
        if (pthread_create(&pool->workers[i].thread, NULL, worker_main,
                           &pool->workers[i]) != 0)
            return -1;
        pool->workers[i].started = true;
    }
    return 0;
}

void pl_pool_stop(pl_pool *pool)
{
    atomic_store(&pool->stopping, true);
    for (unsigned i = 0; i < pool->nworkers; i++)
        sem_post(&pool->workers[i].wake);
    for (unsigned i = 0; i < pool->nworkers; i++) {
        if (pool->workers[i].started)
            pthread_join(pool->workers[i].thread, NULL);
        pool->workers[i].started = false;
    }
    /* A job rescheduled onto a worker that had already left is run here,
     * so that no message is left behind. */
    bool again = true;
    while (again) {
        again = false;
        for (unsigned i = 0; i < pool->nworkers; i++)
            again |= run_ready(&pool->workers[i]);
    }
}

void pl_pool_free(pl_pool *pool)
{
    if (!pool)
        return;
    for (unsigned i = 0; i < pool->nworkers; i++)
        sem_destroy(&pool->workers[i].wake);
    free(pool->workers);
    free(pool);
}
