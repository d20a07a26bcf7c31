/*
 * The race-condition demo (docs/race-condition.md). N threads each add 1 to
 * a shared counter, with some work (a sleep) between reading the counter
 * and writing it back:
 *   unsafe  read, sleep, write: threads overwrite each other's updates
 *   atomic  sleep, then one indivisible fetch-and-add
 *   mutex   read, sleep, write with a lock held throughout
 *   actor   sleep, then send "add one" to an actor that owns the counter
 * and prints one line per variant: `NAME: COUNT/TOTAL in MS ms`.
 *
 * Built alone it is examples/race_demo; with RACE_DEMO_EMBEDDED defined it
 * has no main() and `parley race-demo` calls race_demo_main().
 */
#include "race_demo.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <parley.h>

/* How long the actor may take to apply the increments already sent. */
#define ACTOR_DRAIN_TIMEOUT_S 60

/* The counter actor's state: only its handler touches `count`; reaching
 * the target is published under mu to the thread waiting for it. */
typedef struct counter_state {
    long count;
    long target;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool reached;
} counter_state;

/* What the threads of one run share. */
typedef struct race_ctx {
    race_params p;
    pthread_mutex_t start_mu; /* the threads start together: widest overlap */
    pthread_cond_t start_cv;
    bool go;
    volatile int unsafe_count; /* read and written with no synchronisation */
    atomic_long atomic_count;
    pthread_mutex_t count_mu;
    long mutex_count; /* guarded by count_mu */
    parley_actor_t *actor;
    atomic_long send_failures;
} race_ctx;

static const char *const variant_names[RACE__COUNT] = {
    [RACE_UNSAFE] = "unsafe",
    [RACE_ATOMIC] = "atomic",
    [RACE_MUTEX] = "mutex",
    [RACE_ACTOR] = "actor",
};

const char *race_variant_name(race_variant v)
{
    return (unsigned)v < RACE__COUNT ? variant_names[v] : "?";
}

static void set_err(char *err, size_t size, const char *msg)
{
    if (err && size)
        snprintf(err, size, "%s", msg);
}

static void work(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (ms && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void wait_for_start(race_ctx *c)
{
    pthread_mutex_lock(&c->start_mu);
    while (!c->go)
        pthread_cond_wait(&c->start_cv, &c->start_mu);
    pthread_mutex_unlock(&c->start_mu);
}

/* ---- the four thread bodies ----------------------------------------------- */

static void *unsafe_thread(void *arg)
{
    race_ctx *c = arg;
    wait_for_start(c);
    for (unsigned i = 0; i < c->p.increments; i++) {
        int seen = c->unsafe_count;    /* read */
        work(c->p.sleep_ms);           /* others write meanwhile... */
        c->unsafe_count = seen + 1;    /* ...and this write erases theirs */
    }
    return NULL;
}

static void *atomic_thread(void *arg)
{
    race_ctx *c = arg;
    wait_for_start(c);
    for (unsigned i = 0; i < c->p.increments; i++) {
        work(c->p.sleep_ms); /* an atomic add cannot span the work */
        atomic_fetch_add(&c->atomic_count, 1);
    }
    return NULL;
}

static void *mutex_thread(void *arg)
{
    race_ctx *c = arg;
    wait_for_start(c);
    for (unsigned i = 0; i < c->p.increments; i++) {
        pthread_mutex_lock(&c->count_mu);
        long seen = c->mutex_count;
        work(c->p.sleep_ms); /* the lock covers the window: nobody writes */
        c->mutex_count = seen + 1;
        pthread_mutex_unlock(&c->count_mu);
    }
    return NULL;
}

static void *actor_thread(void *arg)
{
    race_ctx *c = arg;
    wait_for_start(c);
    for (unsigned i = 0; i < c->p.increments; i++) {
        work(c->p.sleep_ms);
        /* The message needs no content: each one means "add one". */
        if (parley_actor_send(c->actor, NULL) != PARLEY_OK)
            atomic_fetch_add(&c->send_failures, 1);
    }
    return NULL;
}

/* The actor variant needs its actor around the threads: see run_actor(). */
static void *(*const thread_body[RACE__COUNT])(void *) = {
    [RACE_UNSAFE] = unsafe_thread,
    [RACE_ATOMIC] = atomic_thread,
    [RACE_MUTEX] = mutex_thread,
};

/* ---- the counter actor ---------------------------------------------------- */

static void counter_handle(parley_actor_t *actor, void *state, void *msg)
{
    (void)actor;
    (void)msg;
    counter_state *s = state;
    if (++s->count != s->target)
        return;
    pthread_mutex_lock(&s->mu);
    s->reached = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Wait until the actor has applied every increment; false on time-out. */
static bool wait_for_actor(counter_state *s)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += ACTOR_DRAIN_TIMEOUT_S;
    pthread_mutex_lock(&s->mu);
    while (!s->reached)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &deadline) != 0)
            break;
    bool reached = s->reached;
    pthread_mutex_unlock(&s->mu);
    return reached;
}

/* ---- running a variant ---------------------------------------------------- */

/* Start the threads, release them together, join them. *released_at is
 * when they were released: thread creation is not part of the figures.
 * False when a thread could not be created (those that were are joined). */
static bool run_threads(race_ctx *c, void *(*body)(void *), double *released_at)
{
    pthread_t *t = calloc(c->p.threads, sizeof(*t));
    unsigned started = 0;
    while (t && started < c->p.threads &&
           pthread_create(&t[started], NULL, body, c) == 0)
        started++;
    pthread_mutex_lock(&c->start_mu);
    c->go = true;
    pthread_cond_broadcast(&c->start_cv);
    pthread_mutex_unlock(&c->start_mu);
    *released_at = now_ms();
    for (unsigned i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    free(t);
    return started == c->p.threads;
}

/* The actor variant: the counter lives in an actor of its own system, which
 * is set up and torn down outside the timed part. */
static long run_actor(race_ctx *c, double *ms, char *err, size_t err_size)
{
    counter_state s = {.target = (long)c->p.threads * c->p.increments,
                       .mu = PTHREAD_MUTEX_INITIALIZER,
                       .cv = PTHREAD_COND_INITIALIZER};
    parley_actor_system_t *sys = parley_actor_system_new(0, err, err_size);
    if (!sys)
        return -1;
    c->actor = parley_actor_spawn(sys, counter_handle, &s, NULL);
    bool ok = false;
    double t0;
    if (!c->actor)
        set_err(err, err_size, "cannot spawn the counter actor");
    else if (!run_threads(c, actor_thread, &t0))
        set_err(err, err_size, "cannot create the threads");
    else if (atomic_load(&c->send_failures) > 0)
        set_err(err, err_size, "a send to the counter actor failed");
    else if (!wait_for_actor(&s))
        set_err(err, err_size, "the counter actor did not finish in time");
    else
        ok = true;
    if (ok)
        *ms = now_ms() - t0;
    parley_actor_unref(c->actor);
    parley_actor_system_destroy(sys); /* from here s is this thread's alone */
    return ok ? s.count : -1;
}

static long final_count(const race_ctx *c, race_variant v)
{
    switch (v) {
    case RACE_UNSAFE: return c->unsafe_count;
    case RACE_ATOMIC: return atomic_load(&c->atomic_count);
    case RACE_MUTEX: return c->mutex_count; /* the joins ordered every write */
    default: return -1;
    }
}

long race_run(race_variant v, const race_params *p, double *ms, char *err,
              size_t err_size)
{
    if ((unsigned)v >= RACE__COUNT || !p || p->threads == 0 || p->increments == 0 ||
        (long long)p->threads * p->increments > INT_MAX) {
        set_err(err, err_size, "threads x increments must be in 1..INT_MAX");
        return -1;
    }
    race_ctx c = {.p = *p,
                  .start_mu = PTHREAD_MUTEX_INITIALIZER,
                  .start_cv = PTHREAD_COND_INITIALIZER,
                  .count_mu = PTHREAD_MUTEX_INITIALIZER};
    double unused, t0;
    if (!ms)
        ms = &unused;
    if (v == RACE_ACTOR)
        return run_actor(&c, ms, err, err_size);
    if (!run_threads(&c, thread_body[v], &t0)) {
        set_err(err, err_size, "cannot create the threads");
        return -1;
    }
    *ms = now_ms() - t0;
    return final_count(&c, v);
}

/* ---- the command ---------------------------------------------------------- */

static int usage(FILE *out, int status)
{
    fprintf(out,
            "usage: race-demo [--threads N] [--increments K] [--sleep-ms M]\n"
            "\n"
            "N threads (default 100) each add 1 to a shared counter K times\n"
            "(default 1), with M ms of work between reading the counter and\n"
            "writing it (default 10): unsafely, then with an atomic, a mutex\n"
            "and an actor. Prints `NAME: COUNT/TOTAL in MS ms` per variant;\n"
            "exits with 0 when every fix counted exactly TOTAL.\n");
    return status;
}

/* Parse all of text as an integer in [min, max]. */
static bool parse_uint(const char *text, unsigned min, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno == ERANGE ||
        v < min || v > max)
        return false;
    *out = (unsigned)v;
    return true;
}

/* Fill p from the options. Returns -1 to run the demo, or the exit status
 * when there is nothing to run (--help, a usage error). */
static int parse_args(int argc, char **argv, race_params *p)
{
    static const struct option opts[] = {{"threads", required_argument, NULL, 't'},
                                         {"increments", required_argument, NULL, 'k'},
                                         {"sleep-ms", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "t:k:s:h", opts, NULL)) != -1) {
        bool ok = true;
        switch (opt) {
        case 't': ok = parse_uint(optarg, 1, 10000, &p->threads); break;
        case 'k': ok = parse_uint(optarg, 1, 100000000, &p->increments); break;
        case 's': ok = parse_uint(optarg, 0, 10000, &p->sleep_ms); break;
        case 'h': return usage(stdout, 0);
        default: return usage(stderr, 2);
        }
        if (!ok) {
            fprintf(stderr, "race-demo: invalid value \"%s\"\n", optarg);
            return usage(stderr, 2);
        }
    }
    if (optind < argc)
        return usage(stderr, 2);
    return -1;
}

int race_demo_main(int argc, char **argv)
{
    race_params p = {.threads = 100, .increments = 1, .sleep_ms = 10};
    int status = parse_args(argc, argv, &p);
    if (status >= 0)
        return status;
    long total = (long)p.threads * p.increments;
    bool fixes_ok = true;
    for (race_variant v = 0; v < RACE__COUNT; v++) {
        char err[256];
        double ms = 0;
        long count = race_run(v, &p, &ms, err, sizeof(err));
        if (count < 0) {
            fprintf(stderr, "race-demo: %s: %s\n", race_variant_name(v), err);
            return 1;
        }
        printf("%s: %ld/%ld in %.0f ms\n", race_variant_name(v), count, total, ms);
        fflush(stdout);
        if (v != RACE_UNSAFE && count != total)
            fixes_ok = false;
    }
    return fixes_ok ? 0 : 1;
}

#ifndef RACE_DEMO_EMBEDDED
int main(int argc, char **argv)
{
    return race_demo_main(argc, argv);
}
#endif
