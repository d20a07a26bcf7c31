/*
 * Issue 13's acceptance: after 100,000 requests the I/O thread's timer heap
 * holds no more entries than there are requests in flight. A finished
 * request takes its timer with it (route_free cancels), so in every
 * statistics document `requests.timers` <= `requests.at_io_thread`, and
 * once all are done the heap is empty. Before, each finished request left
 * an entry until its stall time (30 s), so the heap held every request of
 * the last 30 s.
 *
 * The fastest path: the native protocol against the in-process reference
 * server, no latency, a thousand turns at once over short sessions (their
 * history stays small). The test keeps the thousand itself, so that the
 * count in flight is its own. PARLEY_TIMERS_TEST_REQUESTS changes the count;
 * sanitized builds default to fewer (they run 5-20 times slower).
 */
#include <json-c/json.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "parley.h"
#include "fixtures.h"
#include "refserver.h"

#define TEST_KEY "timers-secret-key-0123456789"
#define TURNS_PER_SESSION 10
#define IN_FLIGHT 1000        /* requests sent and not yet ended, at most */
#define WAIT_SECONDS 240      /* for every wait; a hang fails, it does not block */

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define DEFAULT_REQUESTS 20000
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define DEFAULT_REQUESTS 20000
#endif
#endif
#ifndef DEFAULT_REQUESTS
#define DEFAULT_REQUESTS 100000
#endif

/* What the callbacks saw; guarded by mu. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long terminals, errors;
    long documents;
    long over_in_flight;     /* documents with timers > at_io_thread */
    int64_t max_timers;
    int64_t done, timers, at_io_thread; /* of the latest document */
} seen = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0, 0, 0, 0};

static void on_event(parley_client_t *client, const parley_event_t *ev, void *opaque)
{
    (void)client;
    (void)opaque;
    parley_event_type_t type = parley_event_type(ev);
    if (type != PARLEY_EVENT_DONE && type != PARLEY_EVENT_ERROR)
        return;
    pthread_mutex_lock(&seen.mu);
    seen.terminals++;
    seen.errors += type == PARLEY_EVENT_ERROR;
    pthread_cond_broadcast(&seen.cv);
    pthread_mutex_unlock(&seen.mu);
}

static int64_t field(json_object *doc, const char *group, const char *name)
{
    json_object *g, *v;
    if (!json_object_object_get_ex(doc, group, &g) || !json_object_object_get_ex(g, name, &v))
        return -1;
    return json_object_get_int64(v);
}

static void on_stats(parley_client_t *client, const char *json, size_t len, void *opaque)
{
    (void)client;
    (void)len;
    (void)opaque;
    json_object *doc = json_tokener_parse(json);
    if (!doc)
        return; /* counted as no document: the final wait then fails */
    int64_t timers = field(doc, "requests", "timers");
    int64_t in_flight = field(doc, "requests", "at_io_thread");
    int64_t done = field(doc, "requests", "done");
    json_object_put(doc);
    pthread_mutex_lock(&seen.mu);
    seen.documents++;
    seen.over_in_flight += timers < 0 || in_flight < 0 || timers > in_flight;
    if (timers > seen.max_timers)
        seen.max_timers = timers;
    seen.done = done;
    seen.timers = timers;
    seen.at_io_thread = in_flight;
    pthread_cond_broadcast(&seen.cv);
    pthread_mutex_unlock(&seen.mu);
}

static long requests_to_send(void)
{
    const char *env = getenv("PARLEY_TIMERS_TEST_REQUESTS");
    long n = env ? strtol(env, NULL, 10) : DEFAULT_REQUESTS;
    if (n < TURNS_PER_SESSION)
        fail_msg("PARLEY_TIMERS_TEST_REQUESTS must be at least %d", TURNS_PER_SESSION);
    return n - n % TURNS_PER_SESSION;
}

/* Wait (bounded) until cond holds under seen.mu. */
#define WAIT_UNTIL(cond, what)                                                      \
    do {                                                                            \
        struct timespec deadline_;                                                  \
        clock_gettime(CLOCK_REALTIME, &deadline_);                                  \
        deadline_.tv_sec += WAIT_SECONDS;                                           \
        pthread_mutex_lock(&seen.mu);                                               \
        while (!(cond))                                                             \
            if (pthread_cond_timedwait(&seen.cv, &seen.mu, &deadline_) != 0)        \
                break;                                                              \
        bool ok_ = (cond);                                                          \
        pthread_mutex_unlock(&seen.mu);                                             \
        if (!ok_)                                                                   \
            fail_msg("not within %d s: %s", WAIT_SECONDS, what);                   \
    } while (0)

static parley_client_t *client_for(int port)
{
    char url[128], err[512];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/v1/stream", port);
    parley_conf_t *conf = parley_conf_new();
    const char *props[][2] = {
        {"endpoint", url},
        {"workers", "2"},
        {"connections", "2"},
        {"statistics.interval.ms", "50"},
    };
    for (size_t i = 0; i < sizeof(props) / sizeof(props[0]); i++)
        if (parley_conf_set(conf, props[i][0], props[i][1], err, sizeof(err)) != PARLEY_OK)
            fail_msg("%s", err);
    parley_conf_set_event_cb(conf, on_event, NULL);
    parley_conf_set_stats_cb(conf, on_stats, NULL);
    parley_client_t *c = parley_client_new(conf, err, sizeof(err));
    if (!c)
        fail_msg("parley_client_new: %s", err);
    assert_int_equal(parley_start(c), PARLEY_OK);
    return c;
}

static void test_heap_bounded_by_requests_in_flight(void **state)
{
    (void)state;
    setenv("PARLEY_API_KEY", TEST_KEY, 1);
    long n = requests_to_send();
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 256);
    parley_client_t *c = client_for(pl_refserver_port(srv));
    int64_t started = fixture_now_ms();

    for (long sent = 0; sent < n; sent += TURNS_PER_SESSION) {
        WAIT_UNTIL(sent - seen.terminals <= IN_FLIGHT - TURNS_PER_SESSION,
                   "room for the next session's turns");
        parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
        assert_non_null(s);
        for (int t = 0; t < TURNS_PER_SESSION; t++)
            assert_int_equal(parley_send(s, "tick", NULL), PARLEY_OK);
        parley_session_close(s); /* its turns still complete; then its history goes */
    }
    WAIT_UNTIL(seen.terminals == n, "a terminal event for every request");
    /* A document taken after the last request ended. */
    WAIT_UNTIL(seen.done == n, "a statistics document counting every request done");

    pthread_mutex_lock(&seen.mu);
    print_message("%ld requests in %lld ms; %ld documents, at most %lld timers, last %lld "
                  "timers for %lld in flight\n", n, (long long)(fixture_now_ms() - started),
                  seen.documents, (long long)seen.max_timers, (long long)seen.timers,
                  (long long)seen.at_io_thread);
    assert_int_equal(seen.errors, 0);
    assert_int_equal(seen.at_io_thread, 0);
    assert_int_equal(seen.timers, 0);
    assert_int_equal(seen.over_in_flight, 0);
    assert_true(seen.max_timers <= IN_FLIGHT);
    assert_true(seen.documents > 1);
    pthread_mutex_unlock(&seen.mu);

    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heap_bounded_by_requests_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
