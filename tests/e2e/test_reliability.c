/*
 * Reliability against the in-process reference server: retries and their
 * backoff, bounded queues, cancel, request deadlines, and shutdown with many
 * requests in flight. Each request must end with exactly one terminal event.
 */
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
#include "recorder.h"
#include "refserver.h"

#define TEST_KEY "reliability-key"

static int setup(void **state)
{
    (void)state;
    recorder_reset();
    setenv("PARLEY_API_KEY", TEST_KEY, 1);
    return 0;
}

/* No server: the request is tried retry.max.attempts times with growing
 * delays, then ends with a clear error that says so. */
static void test_no_server_retries_then_fails(void **state)
{
    (void)state;
    parley_client_t *c = fixture_client(fixture_closed_port(), "retry.backoff.ms", "100",
                                     "reconnect.backoff.ms", "100", NULL);
    parley_session_t *s = parley_session_open(c, "nobody", NULL, 0);
    uint64_t id;
    int64_t start = fixture_now_ms();
    assert_int_equal(parley_send(s, "anyone?", &id), PARLEY_OK);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    int64_t elapsed = fixture_now_ms() - start;
    recorder_entry r = recorder_get(id);
    assert_int_equal(r.terminals, 1);
    assert_int_equal(r.err, PARLEY_ERR_CONNECT);
    assert_non_null(strstr(r.err_msg, "could not connect"));
    assert_non_null(strstr(r.err_msg, "(after 3 attempts)"));
    /* Two waits: at least 75 % of 100 ms, then of 200 ms (jitter <= 25 %). */
    assert_true(elapsed >= 75 + 150);
    parley_stats_t st;
    parley_stats_get(c, &st);
    assert_int_equal(st.retries, 2);
    parley_client_destroy(c);
}

/* session.queue.max bounds one session; send_wait waits for room. */
static void test_session_queue_is_bounded(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 100, 4); /* slow: 100 ms a piece */
    parley_client_t *c = fixture_client(pl_refserver_port(srv), "session.queue.max", "2", NULL);
    parley_session_t *s = parley_session_open(c, "bounded", NULL, 0);
    uint64_t a, b, d;
    assert_int_equal(parley_send(s, "one", &a), PARLEY_OK);
    assert_int_equal(parley_send(s, "two", &b), PARLEY_OK);
    assert_int_equal(parley_send(s, "three", NULL), PARLEY_ERR_QUEUE_FULL);
    assert_int_equal(parley_send_wait(s, "three", NULL, 0), PARLEY_ERR_QUEUE_FULL);
    assert_int_equal(parley_send_wait(s, "three", NULL, 50), PARLEY_ERR_TIMED_OUT);
    /* Room comes when "one" ends; the wait then succeeds. */
    assert_int_equal(parley_send_wait(s, "three", &d, 30000), PARLEY_OK);
    assert_int_equal(recorder_get(a).terminals, 1);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    assert_string_equal(recorder_get(d).done, "[turn 3] three");
    parley_stats_t st;
    parley_stats_get(c, &st);
    assert_int_equal(st.queue_full, 3);
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

/* max.inflight.requests bounds the whole client. */
static void test_client_inflight_is_bounded(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 300, 0, 16);
    parley_client_t *c = fixture_client(pl_refserver_port(srv), "max.inflight.requests", "3", NULL);
    int accepted = 0, refused = 0;
    for (int i = 0; i < 5; i++) {
        parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
        parley_err_t err = parley_send(s, "x", NULL);
        accepted += err == PARLEY_OK;
        refused += err == PARLEY_ERR_QUEUE_FULL;
    }
    assert_int_equal(accepted, 3);
    assert_int_equal(refused, 2);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    assert_int_equal(recorder_terminals(), 3);
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

/* parley_send_wait() for room under the client's limit, from two threads:
 * a re-check that overshoots gives its reservation back while holding the
 * waiters' mutex. Before, it took that mutex again to wake the others and
 * every waiter deadlocked; now each wait ends with its turn accepted. */
typedef struct space_waiter {
    parley_client_t *client;
    parley_err_t err;
    uint64_t id;
} space_waiter;

static void *send_waiting(void *arg)
{
    space_waiter *w = arg;
    parley_session_t *s = parley_session_open(w->client, NULL, NULL, 0);
    w->err = s ? parley_send_wait(s, "wait", &w->id, 30000) : PARLEY_ERR_INVALID_ARG;
    return NULL;
}

static void test_send_wait_for_the_client_limit(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 300, 0, 4);
    parley_client_t *c = fixture_client(pl_refserver_port(srv), "max.inflight.requests", "1",
                                        NULL);
    parley_session_t *first = parley_session_open(c, NULL, NULL, 0);
    assert_int_equal(parley_send(first, "first", NULL), PARLEY_OK);
    space_waiter w[2] = {{.client = c}, {.client = c}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, send_waiting, &w[i]), 0);
    /* A deadlock fails the join; the stuck threads end with the process. */
    struct timespec give_up;
    clock_gettime(CLOCK_REALTIME, &give_up);
    give_up.tv_sec += 40;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_timedjoin_np(t[i], NULL, &give_up), 0);
        assert_int_equal(w[i].err, PARLEY_OK);
    }
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    assert_int_equal(recorder_terminals(), 3);
    assert_int_equal(recorder_get(w[0].id).terminals, 1);
    assert_int_equal(recorder_get(w[1].id).terminals, 1);
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

/* A waiting turn is cancelled at once; the turn in flight at the server. */
static void test_cancel(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 100, 1); /* one byte every 100 ms */
    parley_client_t *c = fixture_client(pl_refserver_port(srv), NULL);
    parley_session_t *s = parley_session_open(c, "cancel", NULL, 0);
    uint64_t inflight, waiting, after;
    assert_int_equal(parley_send(s, "a rather long message to stream", &inflight), PARLEY_OK);
    assert_int_equal(parley_send(s, "never sent", &waiting), PARLEY_OK);
    assert_int_equal(parley_send(s, "after", &after), PARLEY_OK);
    assert_int_equal(parley_cancel(s, waiting), PARLEY_OK);
    assert_true(recorder_wait_pieces(inflight, 2, 30));
    assert_int_equal(parley_cancel(s, inflight), PARLEY_OK);
    assert_int_equal(parley_cancel(s, 12345), PARLEY_OK); /* unknown: ignored */
    assert_int_equal(parley_flush(c, 60000), PARLEY_OK);

    recorder_entry w = recorder_get(waiting);
    assert_int_equal(w.terminals, 1);
    assert_int_equal(w.terminal, PARLEY_EVENT_DONE);
    assert_string_equal(w.stop_reason, "cancelled");
    assert_int_equal(w.pieces, 0);
    recorder_entry i = recorder_get(inflight);
    assert_int_equal(i.terminals, 1);
    assert_string_equal(i.stop_reason, "cancelled");
    assert_true(i.pieces >= 2 && i.pieces < (int)strlen("[turn 1] a rather long message to stream"));
    /* Neither cancelled turn is in the history: it keeps completed turns
     * only, so no later request carries a half reply. */
    assert_string_equal(recorder_get(after).done, "[turn 1] after");
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

/* request.timeout.ms ends a request that takes too long. */
static void test_request_timeout(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 5000, 0, 16);
    parley_client_t *c = fixture_client(pl_refserver_port(srv), "request.timeout.ms", "200",
                                     "stall.timeout.ms", "0", NULL);
    parley_session_t *s = parley_session_open(c, "slow", NULL, 0);
    uint64_t id;
    assert_int_equal(parley_send(s, "hurry", &id), PARLEY_OK);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    recorder_entry r = recorder_get(id);
    assert_int_equal(r.terminals, 1);
    assert_int_equal(r.err, PARLEY_ERR_TIMED_OUT);
    assert_non_null(strstr(r.err_msg, "request.timeout.ms (200 ms)"));
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

/* A stall is detected: with the server silent for longer than every attempt,
 * the request ends with a timeout that names the stall. */
static void test_stall_detected(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 20000, 0, 16);
    parley_client_t *c = fixture_client(pl_refserver_port(srv), "stall.timeout.ms", "150",
                                     "connections", "2", NULL);
    parley_session_t *s = parley_session_open(c, "stalled", NULL, 0);
    uint64_t id;
    assert_int_equal(parley_send(s, "hello?", &id), PARLEY_OK);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    recorder_entry r = recorder_get(id);
    assert_int_equal(r.terminals, 1);
    assert_int_equal(r.err, PARLEY_ERR_TIMED_OUT);
    assert_non_null(strstr(r.err_msg, "stalled"));
    parley_stats_t st;
    parley_stats_get(c, &st);
    assert_int_equal(st.stalls, 3);
    assert_int_equal(st.retries, 2);
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

#define DESTROY_SESSIONS 500

/* Destroy with a thousand requests unfinished (500 in flight, 500 waiting):
 * each ends exactly once, before destroy returns. */
static void test_destroy_with_thousand_in_flight(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 200, 1);
    parley_client_t *c = fixture_client(pl_refserver_port(srv), "connections", "2", NULL);
    static uint64_t ids[DESTROY_SESSIONS][2];
    for (int i = 0; i < DESTROY_SESSIONS; i++) {
        parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
        assert_int_equal(parley_send(s, "streaming slowly", &ids[i][0]), PARLEY_OK);
        assert_int_equal(parley_send(s, "waiting", &ids[i][1]), PARLEY_OK);
    }
    int64_t start = fixture_now_ms();
    parley_client_destroy(c);
    int64_t took = fixture_now_ms() - start;
    size_t ended = recorder_terminals();
    assert_int_equal(ended, 2 * DESTROY_SESSIONS);
    for (int i = 0; i < DESTROY_SESSIONS; i++)
        for (int t = 0; t < 2; t++) {
            recorder_entry r = recorder_get(ids[i][t]);
            assert_int_equal(r.terminals, 1);
        }
    assert_true(took < 20000); /* a generous bound: nothing waits on the network */
    pl_refserver_stop(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_no_server_retries_then_fails, setup),
        cmocka_unit_test_setup(test_session_queue_is_bounded, setup),
        cmocka_unit_test_setup(test_client_inflight_is_bounded, setup),
        cmocka_unit_test_setup(test_send_wait_for_the_client_limit, setup),
        cmocka_unit_test_setup(test_cancel, setup),
        cmocka_unit_test_setup(test_request_timeout, setup),
        cmocka_unit_test_setup(test_stall_detected, setup),
        cmocka_unit_test_setup(test_destroy_with_thousand_in_flight, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
