/* Actors under stress: never two workers inside one actor, nothing lost,
 * each actor finalized exactly once after its last message. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <cmocka.h>

#include "actor.h"
#include "pool.h"

#define ACTORS 64
#define PRODUCERS 6
#define PER_PRODUCER 60000
#define WORKERS 4

typedef struct probe_actor {
    pl_actor actor;
    _Atomic int inside;       /* workers inside the handler right now */
    long handled;             /* actor state */
} probe_actor;

static probe_actor actors[ACTORS];
static _Atomic long overlaps;
static _Atomic long total_handled;
static _Atomic int finalized[ACTORS];
static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;

static void handle(pl_actor *a, pl_actor_msg *m)
{
    probe_actor *pa = (probe_actor *)a;
    if (atomic_fetch_add(&pa->inside, 1) != 0)
        atomic_fetch_add(&overlaps, 1);
    pa->handled++; /* a plain increment: TSan flags it if two workers race */
    atomic_fetch_sub(&pa->inside, 1);
    free(m);
    if (atomic_fetch_add(&total_handled, 1) + 1 == (long)PRODUCERS * PER_PRODUCER) {
        pthread_mutex_lock(&done_mu);
        pthread_cond_broadcast(&done_cv);
        pthread_mutex_unlock(&done_mu);
    }
}

static void finalize(pl_actor *a)
{
    atomic_fetch_add(&finalized[(probe_actor *)a - actors], 1);
}

static void *produce(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    for (int i = 0; i < PER_PRODUCER; i++) {
        seed = seed * 1103515245u + 12345u;
        pl_actor_msg *m = malloc(sizeof(*m));
        m->kind = 1;
        pl_actor_post(&actors[(seed >> 8) % ACTORS].actor, m);
    }
    return NULL;
}

static void test_never_two_workers_in_one_actor(void **state)
{
    (void)state;
    pl_pool *pool = pl_pool_new(WORKERS);
    assert_int_equal(pl_pool_start(pool), 0);
    for (int i = 0; i < ACTORS; i++)
        pl_actor_init(&actors[i].actor, pool, handle, finalize);

    pthread_t t[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, produce, (void *)(uintptr_t)(i + 1)), 0);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(t[i], NULL);

    long want = (long)PRODUCERS * PER_PRODUCER;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 120;
    pthread_mutex_lock(&done_mu);
    while (atomic_load(&total_handled) < want)
        if (pthread_cond_timedwait(&done_cv, &done_mu, &deadline) != 0)
            break;
    pthread_mutex_unlock(&done_mu);

    assert_int_equal(atomic_load(&total_handled), want);
    assert_int_equal(atomic_load(&overlaps), 0);
    long sum = 0;
    for (int i = 0; i < ACTORS; i++)
        sum += actors[i].handled;
    assert_int_equal(sum, want);

    /* No finalization while the creator's reference stands... */
    for (int i = 0; i < ACTORS; i++)
        assert_int_equal(atomic_load(&finalized[i]), 0);
    pl_pool_stop(pool);
    /* ...and exactly one when it is dropped. */
    for (int i = 0; i < ACTORS; i++) {
        pl_actor_unref(&actors[i].actor);
        assert_int_equal(atomic_load(&finalized[i]), 1);
    }
    pl_pool_free(pool);
}

/* A handler that posts to its own actor does not deadlock or reorder. */
typedef struct self_actor {
    pl_actor actor;
    int remaining;
    int last_kind;
    int disorder;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int finished;
} self_actor;

static void self_handle(pl_actor *a, pl_actor_msg *m)
{
    self_actor *sa = (self_actor *)a;
    if (m->kind != sa->last_kind + 1)
        sa->disorder++;
    sa->last_kind = m->kind;
    free(m);
    if (--sa->remaining > 0) {
        pl_actor_msg *next = malloc(sizeof(*next));
        next->kind = sa->last_kind + 1;
        pl_actor_post(a, next);
        return;
    }
    pthread_mutex_lock(&sa->mu);
    sa->finished = 1;
    pthread_cond_signal(&sa->cv);
    pthread_mutex_unlock(&sa->mu);
}

static void self_finalize(pl_actor *a)
{
    (void)a;
}

static void test_post_to_self_from_handler(void **state)
{
    (void)state;
    pl_pool *pool = pl_pool_new(2);
    assert_int_equal(pl_pool_start(pool), 0);
    self_actor sa = {.remaining = 10000, .mu = PTHREAD_MUTEX_INITIALIZER,
                     .cv = PTHREAD_COND_INITIALIZER};
    pl_actor_init(&sa.actor, pool, self_handle, self_finalize);
    pl_actor_msg *first = malloc(sizeof(*first));
    first->kind = 1;
    pl_actor_post(&sa.actor, first);

    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 60;
    pthread_mutex_lock(&sa.mu);
    while (!sa.finished)
        if (pthread_cond_timedwait(&sa.cv, &sa.mu, &deadline) != 0)
            break;
    int finished = sa.finished;
    pthread_mutex_unlock(&sa.mu);
    pl_pool_stop(pool);
    assert_true(finished);
    assert_int_equal(sa.disorder, 0);
    assert_int_equal(sa.last_kind, 10000);
    pl_pool_free(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_never_two_workers_in_one_actor),
        cmocka_unit_test(test_post_to_self_from_handler),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
