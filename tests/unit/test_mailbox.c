/* The actor mailbox: many producers, nothing lost, FIFO per producer. */
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

#define PRODUCERS 8
#define PER_PRODUCER 50000

typedef struct seq_msg {
    pl_actor_msg base;
    int producer;
    int seq;
} seq_msg;

typedef struct counting_actor {
    pl_actor actor;
    int next_seq[PRODUCERS]; /* actor state: no lock needed */
    long handled;
    long order_violations;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long done; /* handled, published under mu for the waiting test */
} counting_actor;

static void handle(pl_actor *a, pl_actor_msg *m)
{
    counting_actor *ca = (counting_actor *)a;
    seq_msg *sm = (seq_msg *)m;
    if (sm->seq != ca->next_seq[sm->producer])
        ca->order_violations++;
    ca->next_seq[sm->producer] = sm->seq + 1;
    ca->handled++;
    pthread_mutex_lock(&ca->mu);
    ca->done = ca->handled;
    pthread_cond_signal(&ca->cv);
    pthread_mutex_unlock(&ca->mu);
    free(m);
}

static void finalize(pl_actor *a)
{
    (void)a; /* the actor lives on the test's stack */
}

typedef struct producer_arg {
    counting_actor *target;
    int producer;
} producer_arg;

static void *produce(void *arg)
{
    producer_arg *p = arg;
    for (int i = 0; i < PER_PRODUCER; i++) {
        seq_msg *m = malloc(sizeof(*m));
        m->producer = p->producer;
        m->seq = i;
        pl_actor_post(&p->target->actor, &m->base);
    }
    return NULL;
}

/* Wait for `want` handled messages; a generous bound keeps a bug from
 * hanging the suite. */
static long wait_handled(counting_actor *ca, long want, int seconds)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += seconds;
    pthread_mutex_lock(&ca->mu);
    while (ca->done < want)
        if (pthread_cond_timedwait(&ca->cv, &ca->mu, &deadline) != 0)
            break;
    long got = ca->done;
    pthread_mutex_unlock(&ca->mu);
    return got;
}

static void run_producers(unsigned workers)
{
    pl_pool *pool = pl_pool_new(workers);
    assert_non_null(pool);
    assert_int_equal(pl_pool_start(pool), 0);
    counting_actor ca = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    pl_actor_init(&ca.actor, pool, handle, finalize);

    pthread_t t[PRODUCERS];
    producer_arg args[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        args[i] = (producer_arg){&ca, i};
        assert_int_equal(pthread_create(&t[i], NULL, produce, &args[i]), 0);
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(t[i], NULL);

    long want = (long)PRODUCERS * PER_PRODUCER;
    assert_int_equal(wait_handled(&ca, want, 120), want);
    pl_pool_stop(pool);
    assert_int_equal(ca.handled, want);
    assert_int_equal(ca.order_violations, 0);
    for (int i = 0; i < PRODUCERS; i++)
        assert_int_equal(ca.next_seq[i], PER_PRODUCER);
    /* Only the creator's reference is left once the mailbox is empty. */
    assert_int_equal(atomic_load(&ca.actor.refs), 1);
    pl_pool_free(pool);
}

static void test_fifo_one_worker(void **state)
{
    (void)state;
    run_producers(1);
}

static void test_fifo_many_workers(void **state)
{
    (void)state;
    run_producers(4);
}

/* Messages posted before the pool starts wait, then all arrive in order. */
static void test_posted_before_start(void **state)
{
    (void)state;
    pl_pool *pool = pl_pool_new(2);
    counting_actor ca = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    pl_actor_init(&ca.actor, pool, handle, finalize);
    for (int i = 0; i < 1000; i++) {
        seq_msg *m = malloc(sizeof(*m));
        m->producer = 0;
        m->seq = i;
        pl_actor_post(&ca.actor, &m->base);
    }
    assert_int_equal(ca.handled, 0);
    assert_int_equal(pl_pool_start(pool), 0);
    assert_int_equal(wait_handled(&ca, 1000, 60), 1000);
    pl_pool_stop(pool);
    assert_int_equal(ca.order_violations, 0);
    pl_pool_free(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_one_worker),
        cmocka_unit_test(test_fifo_many_workers),
        cmocka_unit_test(test_posted_before_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
