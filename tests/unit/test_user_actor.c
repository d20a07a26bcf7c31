/* User actors (parley.h "User actors"): sending, stopping, references,
 * destroy; the race demo's fixes; and a stress test of the guarantees. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <cmocka.h>

#include "parley.h"
#include "race_demo.h"

/* Sanitized builds run 5-20 times slower: the stress test scales down. */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

#define WAIT_S 60 /* every wait is bounded: a bug fails, it does not hang */

/* ---- helpers ---------------------------------------------------------------- */

/* A counter other threads can wait on. */
typedef struct waitable {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long value;
} waitable;

#define WAITABLE_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0}

static void waitable_add(waitable *w, long n)
{
    pthread_mutex_lock(&w->mu);
    w->value += n;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static long waitable_get(waitable *w)
{
    pthread_mutex_lock(&w->mu);
    long v = w->value;
    pthread_mutex_unlock(&w->mu);
    return v;
}

/* Wait until the value reaches target or WAIT_S pass; true when reached. */
static bool waitable_wait(waitable *w, long target)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += WAIT_S;
    pthread_mutex_lock(&w->mu);
    while (w->value < target)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &deadline) != 0)
            break;
    bool reached = w->value >= target;
    pthread_mutex_unlock(&w->mu);
    return reached;
}

static parley_actor_system_t *new_system(unsigned workers)
{
    char err[128];
    parley_actor_system_t *sys = parley_actor_system_new(workers, err, sizeof(err));
    assert_non_null(sys);
    return sys;
}

#define AS_MSG(n) ((void *)(uintptr_t)(n))
#define MSG_NUM(m) ((long)(uintptr_t)(m))

/* ---- a recording actor -------------------------------------------------- */

/* Records what it handled; its state_free is counted and checks it came
 * after every message. */
typedef struct recorder {
    long handled;      /* actor state */
    long disorder;     /* messages not numbered 0, 1, 2, ... */
    long after_free;   /* messages handled after state_free: must stay 0 */
    bool freed;
    waitable progress; /* handled, for the test thread */
    waitable frees;    /* state_free calls */
} recorder;

#define RECORDER_INIT {.progress = WAITABLE_INIT, .frees = WAITABLE_INIT}

static void record(parley_actor_t *actor, void *state, void *msg)
{
    (void)actor;
    recorder *r = state;
    if (r->freed)
        r->after_free++;
    if (MSG_NUM(msg) != r->handled)
        r->disorder++;
    r->handled++;
    waitable_add(&r->progress, 1);
}

static void recorder_free(void *state)
{
    recorder *r = state;
    r->freed = true;
    waitable_add(&r->frees, 1);
}

/* ---- the API's behaviour ---------------------------------------------------- */

static void test_null_arguments(void **state)
{
    (void)state;
    parley_actor_system_t *sys = new_system(1);
    assert_null(parley_actor_spawn(NULL, record, NULL, NULL));
    assert_null(parley_actor_spawn(sys, NULL, NULL, NULL));
    assert_int_equal(parley_actor_send(NULL, NULL), PARLEY_ERR_INVALID_ARG);
    assert_int_equal(parley_actor_stop(NULL), PARLEY_ERR_INVALID_ARG);
    assert_null(parley_actor_ref(NULL));
    parley_actor_unref(NULL);
    parley_actor_system_destroy(NULL);
    parley_actor_system_destroy(sys);
}

/* Messages are handled in order; stop lets them finish, then state_free
 * runs once; later sends and stops are refused. */
static void test_send_then_stop(void **state)
{
    (void)state;
    enum { N = 5000 };
    recorder r = RECORDER_INIT;
    parley_actor_system_t *sys = new_system(2);
    parley_actor_t *a = parley_actor_spawn(sys, record, &r, recorder_free);
    assert_non_null(a);
    for (long i = 0; i < N; i++)
        assert_int_equal(parley_actor_send(a, AS_MSG(i)), PARLEY_OK);
    assert_int_equal(parley_actor_stop(a), PARLEY_OK);
    assert_int_equal(parley_actor_send(a, AS_MSG(N)), PARLEY_ERR_STATE);
    assert_int_equal(parley_actor_stop(a), PARLEY_ERR_STATE);

    assert_true(waitable_wait(&r.frees, 1));
    assert_int_equal(waitable_get(&r.progress), N); /* published before */
    assert_int_equal(r.handled, N);
    assert_int_equal(r.disorder, 0);
    assert_int_equal(r.after_free, 0);
    /* The handle outlives the stop while referenced. */
    assert_int_equal(parley_actor_send(a, AS_MSG(0)), PARLEY_ERR_STATE);
    parley_actor_unref(a);
    parley_actor_system_destroy(sys);
    assert_int_equal(waitable_get(&r.frees), 1);
}

/* Dropping the last reference stops the actor after its messages. */
static void test_last_unref_stops(void **state)
{
    (void)state;
    recorder r = RECORDER_INIT;
    parley_actor_system_t *sys = new_system(2);
    parley_actor_t *a = parley_actor_spawn(sys, record, &r, recorder_free);
    parley_actor_t *b = parley_actor_ref(a);
    assert_ptr_equal(a, b);
    for (long i = 0; i < 100; i++)
        assert_int_equal(parley_actor_send(a, AS_MSG(i)), PARLEY_OK);
    parley_actor_unref(a);
    assert_int_equal(parley_actor_send(b, AS_MSG(100)), PARLEY_OK); /* b holds one */
    parley_actor_unref(b);
    assert_true(waitable_wait(&r.frees, 1));
    assert_int_equal(r.handled, 101);
    assert_int_equal(r.disorder, 0);
    assert_int_equal(r.after_free, 0);
    parley_actor_system_destroy(sys);
    assert_int_equal(waitable_get(&r.frees), 1);
}

/* A handler sends to itself (a countdown) and to another actor. */
typedef struct relay {
    parley_actor_t *next; /* a reference of its own, dropped in state_free */
    long forwarded;
    long send_failures;   /* checked by the test thread: cmocka's asserts
                             belong to it, not to workers */
    waitable done;
} relay;

static void relay_handle(parley_actor_t *self, void *state, void *msg)
{
    relay *r = state;
    long left = MSG_NUM(msg);
    if (parley_actor_send(r->next, AS_MSG(r->forwarded++)) != PARLEY_OK)
        r->send_failures++;
    if (left == 0 || parley_actor_send(self, AS_MSG(left - 1)) != PARLEY_OK)
        waitable_add(&r->done, 1);
}

static void relay_free(void *state)
{
    parley_actor_unref(((relay *)state)->next);
}

static void test_send_from_handler(void **state)
{
    (void)state;
    enum { N = 20000 };
    recorder sink = RECORDER_INIT;
    parley_actor_system_t *sys = new_system(2);
    parley_actor_t *sink_actor = parley_actor_spawn(sys, record, &sink, recorder_free);
    relay r = {.next = parley_actor_ref(sink_actor), .done = WAITABLE_INIT};
    parley_actor_t *relay_actor = parley_actor_spawn(sys, relay_handle, &r, relay_free);
    parley_actor_unref(sink_actor); /* now only the relay holds the sink */

    assert_int_equal(parley_actor_send(relay_actor, AS_MSG(N - 1)), PARLEY_OK);
    assert_true(waitable_wait(&r.done, 1));
    parley_actor_unref(relay_actor); /* stops it; its state_free lets go of the sink */
    assert_true(waitable_wait(&sink.frees, 1));
    assert_int_equal(r.send_failures, 0);
    assert_int_equal(r.forwarded, N);
    assert_int_equal(sink.handled, N);
    assert_int_equal(sink.disorder, 0);
    parley_actor_system_destroy(sys);
}

/* Destroy handles every message already sent, runs state_free for actors
 * still running, and frees handles whatever their references. */
static void test_destroy_handles_everything(void **state)
{
    (void)state;
    enum { ACTORS = 16, N = 5000 };
    recorder r[ACTORS];
    parley_actor_system_t *sys = new_system(2);
    for (int i = 0; i < ACTORS; i++) {
        r[i] = (recorder)RECORDER_INIT;
        parley_actor_t *a = parley_actor_spawn(sys, record, &r[i], recorder_free);
        for (long n = 0; n < N; n++)
            assert_int_equal(parley_actor_send(a, AS_MSG(n)), PARLEY_OK);
        if (i % 2)
            parley_actor_ref(a); /* a leaked reference: destroy frees it */
    }
    parley_actor_system_destroy(sys);
    for (int i = 0; i < ACTORS; i++) {
        assert_int_equal(r[i].handled, N);
        assert_int_equal(r[i].disorder, 0);
        assert_int_equal(r[i].after_free, 0);
        assert_int_equal(waitable_get(&r[i].frees), 1);
    }
}

/* An actor that sends itself a message on every message never goes idle;
 * destroy still ends, because it refuses sends. */
typedef struct ticker {
    long ticks;
    parley_err_t last_err;
    waitable started;
} ticker;

static void tick(parley_actor_t *self, void *state, void *msg)
{
    (void)msg;
    ticker *t = state;
    if (t->ticks++ == 1000)
        waitable_add(&t->started, 1);
    t->last_err = parley_actor_send(self, NULL);
}

static void test_destroy_ends_a_self_sending_actor(void **state)
{
    (void)state;
    ticker t = {.started = WAITABLE_INIT};
    parley_actor_system_t *sys = new_system(2);
    parley_actor_t *a = parley_actor_spawn(sys, tick, &t, NULL);
    assert_int_equal(parley_actor_send(a, NULL), PARLEY_OK);
    assert_true(waitable_wait(&t.started, 1));
    parley_actor_system_destroy(sys);
    assert_int_equal(t.last_err, PARLEY_ERR_SHUTDOWN);
}

/* A handler cannot destroy its own system: it would wait for itself. */
typedef struct destroyer {
    parley_actor_system_t *sys;
    waitable done;
} destroyer;

static void destroy_from_handler(parley_actor_t *self, void *state, void *msg)
{
    (void)self;
    (void)msg;
    destroyer *d = state;
    parley_actor_system_destroy(d->sys); /* ignored, with a line on stderr */
    waitable_add(&d->done, 1);
}

static void test_destroy_from_handler_is_ignored(void **state)
{
    (void)state;
    destroyer d = {.sys = new_system(1), .done = WAITABLE_INIT};
    parley_actor_t *a = parley_actor_spawn(d.sys, destroy_from_handler, &d, NULL);
    assert_int_equal(parley_actor_send(a, NULL), PARLEY_OK);
    assert_true(waitable_wait(&d.done, 1));
    assert_int_equal(parley_actor_send(a, NULL), PARLEY_OK); /* still running */
    parley_actor_system_destroy(d.sys);
    assert_int_equal(waitable_get(&d.done), 2);
}

/* Sends racing a stop: each is either accepted and handled before
 * state_free, or refused; nothing is lost and nothing comes after. */
typedef struct race_sender {
    parley_actor_t *actor; /* this thread's own reference */
    long accepted;
} race_sender;

static void *send_until_refused(void *arg)
{
    race_sender *s = arg;
    while (parley_actor_send(s->actor, NULL) == PARLEY_OK)
        s->accepted++;
    parley_actor_unref(s->actor);
    return NULL;
}

typedef struct tally {
    long handled;
    long after_free;
    bool freed;
    waitable frees;
} tally;

static void count_msg(parley_actor_t *actor, void *state, void *msg)
{
    (void)actor;
    (void)msg;
    tally *t = state;
    t->handled++;
    if (t->freed)
        t->after_free++;
}

static void tally_free(void *state)
{
    tally *t = state;
    t->freed = true;
    waitable_add(&t->frees, 1);
}

static void test_send_racing_stop(void **state)
{
    (void)state;
    enum { SENDERS = 4, ROUNDS = 100 };
    parley_actor_system_t *sys = new_system(2);
    for (int round = 0; round < ROUNDS; round++) {
        tally t = {.frees = WAITABLE_INIT};
        parley_actor_t *a = parley_actor_spawn(sys, count_msg, &t, tally_free);
        race_sender s[SENDERS];
        pthread_t th[SENDERS];
        for (int i = 0; i < SENDERS; i++) {
            s[i] = (race_sender){.actor = parley_actor_ref(a)};
            assert_int_equal(pthread_create(&th[i], NULL, send_until_refused, &s[i]), 0);
        }
        if (round % 2)
            sched_yield(); /* let the senders get going, every other round */
        assert_int_equal(parley_actor_stop(a), PARLEY_OK);
        parley_actor_unref(a);
        long accepted = 0;
        for (int i = 0; i < SENDERS; i++) {
            pthread_join(th[i], NULL);
            accepted += s[i].accepted;
        }
        assert_true(waitable_wait(&t.frees, 1));
        assert_int_equal(t.handled, accepted);
        assert_int_equal(t.after_free, 0);
    }
    parley_actor_system_destroy(sys);
}

/* ---- the race demo's fixes ---------------------------------------------- */

static void expect_exact(race_variant v, const race_params *p, int repetitions)
{
    long want = (long)p->threads * p->increments;
    for (int i = 0; i < repetitions; i++) {
        char err[256] = "";
        long got = race_run(v, p, NULL, err, sizeof(err));
        if (got != want)
            fail_msg("%s: %ld/%ld (%s), repetition %d", race_variant_name(v), got,
                     want, err, i);
    }
}

static void test_fixes_count_exactly(void **state)
{
    (void)state;
    const race_params fast = {.threads = 16, .increments = 2000, .sleep_ms = 0};
    const race_params slow = {.threads = 20, .increments = 1, .sleep_ms = 2};
    for (race_variant v = RACE_ATOMIC; v <= RACE_ACTOR; v++) {
        expect_exact(v, &fast, 50);
        expect_exact(v, &slow, 3);
    }
}

/* ---- stress: 64 producers, 1,000 actors ------------------------------------ */

#define STRESS_PRODUCERS 64
#define STRESS_ACTORS 1000
#if defined(UNDER_TSAN)
#define STRESS_PER_PRODUCER 20000
#elif defined(UNDER_ASAN)
#define STRESS_PER_PRODUCER 50000
#else
#define STRESS_PER_PRODUCER 100000
#endif
#define STRESS_TOTAL ((long)STRESS_PRODUCERS * STRESS_PER_PRODUCER)

typedef struct stress_actor {
    _Atomic int inside;                    /* handlers running it right now */
    long handled;                          /* plain: TSan sees any overlap */
    int32_t last_seq[STRESS_PRODUCERS];    /* per producer, -1 before any */
} stress_actor;

static stress_actor stress[STRESS_ACTORS];
static parley_actor_t *stress_handles[STRESS_ACTORS];
static _Atomic long stress_overlaps, stress_disorder, stress_handled, stress_frees;
static waitable stress_done = WAITABLE_INIT;

/* A message is its producer and sequence number, packed into the pointer. */
#define STRESS_MSG(p, seq) AS_MSG(((uintptr_t)(p) << 32) | (uint32_t)(seq))

static void stress_handle(parley_actor_t *actor, void *state, void *msg)
{
    (void)actor;
    stress_actor *s = state;
    if (atomic_fetch_add(&s->inside, 1) != 0)
        atomic_fetch_add(&stress_overlaps, 1);
    int producer = (int)((uintptr_t)msg >> 32);
    int32_t seq = (int32_t)(uint32_t)(uintptr_t)msg;
    if (seq <= s->last_seq[producer])
        atomic_fetch_add(&stress_disorder, 1);
    s->last_seq[producer] = seq;
    s->handled++;
    atomic_fetch_sub(&s->inside, 1);
    if (atomic_fetch_add(&stress_handled, 1) + 1 == STRESS_TOTAL)
        waitable_add(&stress_done, 1);
}

static void stress_free(void *state)
{
    (void)state;
    atomic_fetch_add(&stress_frees, 1);
}

static void *stress_produce(void *arg)
{
    int producer = (int)(intptr_t)arg;
    uint32_t seed = (uint32_t)producer * 2654435761u + 1;
    for (int32_t seq = 0; seq < STRESS_PER_PRODUCER; seq++) {
        seed = seed * 1103515245u + 12345u;
        parley_actor_t *target = stress_handles[(seed >> 8) % STRESS_ACTORS];
        if (parley_actor_send(target, STRESS_MSG(producer, seq)) != PARLEY_OK)
            return (void *)1;
    }
    return NULL;
}

static void test_stress_many_producers_many_actors(void **state)
{
    (void)state;
    parley_actor_system_t *sys = new_system(0);
    for (int i = 0; i < STRESS_ACTORS; i++) {
        for (int p = 0; p < STRESS_PRODUCERS; p++)
            stress[i].last_seq[p] = -1;
        stress_handles[i] = parley_actor_spawn(sys, stress_handle, &stress[i], stress_free);
        assert_non_null(stress_handles[i]);
    }
    pthread_t th[STRESS_PRODUCERS];
    for (int p = 0; p < STRESS_PRODUCERS; p++)
        assert_int_equal(pthread_create(&th[p], NULL, stress_produce, (void *)(intptr_t)p), 0);
    int send_failures = 0;
    for (int p = 0; p < STRESS_PRODUCERS; p++) {
        void *failed;
        pthread_join(th[p], &failed);
        send_failures += failed != NULL;
    }
    assert_int_equal(send_failures, 0);
    assert_true(waitable_wait(&stress_done, 1));

    for (int i = 0; i < STRESS_ACTORS; i++)
        parley_actor_unref(stress_handles[i]);
    parley_actor_system_destroy(sys);
    assert_int_equal(atomic_load(&stress_handled), STRESS_TOTAL);
    assert_int_equal(atomic_load(&stress_overlaps), 0);
    assert_int_equal(atomic_load(&stress_disorder), 0);
    assert_int_equal(atomic_load(&stress_frees), STRESS_ACTORS);
    long sum = 0;
    for (int i = 0; i < STRESS_ACTORS; i++)
        sum += stress[i].handled;
    assert_int_equal(sum, STRESS_TOTAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_send_then_stop),
        cmocka_unit_test(test_last_unref_stops),
        cmocka_unit_test(test_send_from_handler),
        cmocka_unit_test(test_destroy_handles_everything),
        cmocka_unit_test(test_destroy_ends_a_self_sending_actor),
        cmocka_unit_test(test_destroy_from_handler_is_ignored),
        cmocka_unit_test(test_send_racing_stop),
        cmocka_unit_test(test_fixes_count_exactly),
        cmocka_unit_test(test_stress_many_producers_many_actors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
