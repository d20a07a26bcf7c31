/*
 * The statistics callback end to end: documents arrive every interval on a
 * worker thread, one at a time, as valid JSON whose figures agree with what
 * the test did (requests, latency histograms, connections, the dialect's
 * answers), never carrying the API key; none arrive after destroy returns.
 */
#include <json-c/json.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
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

#define TEST_KEY "stats-secret-key-0123456789"
#define WAIT_SECONDS 30

/* What the stats callback saw. */
typedef struct collector {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *last;              /* the latest document */
    int documents;
    int invalid_json;        /* documents json-c could not parse */
    int leaked_key;          /* documents holding the API key */
    int not_on_worker;       /* calls where parley_flush() did not refuse */
    _Atomic int running;     /* callbacks running now */
    int overlaps;            /* calls that started while another ran */
} collector;

static collector col;

static void collector_reset(void)
{
    pthread_mutex_lock(&col.mu);
    free(col.last);
    col.last = NULL;
    col.documents = col.invalid_json = col.leaked_key = col.not_on_worker = col.overlaps = 0;
    pthread_mutex_unlock(&col.mu);
}

static void on_stats(parley_client_t *client, const char *json, size_t len, void *opaque)
{
    assert_ptr_equal(opaque, &col);
    if (atomic_fetch_add(&col.running, 1) != 0)
        col.overlaps++;
    /* parley_flush() refuses on a worker thread (it would wait for itself):
     * the callback must run on one, never on the I/O thread. */
    bool on_worker = parley_flush(client, 0) == PARLEY_ERR_STATE;
    json_object *doc = json_tokener_parse(json);
    pthread_mutex_lock(&col.mu);
    col.documents++;
    col.invalid_json += !doc || strlen(json) != len;
    col.leaked_key += strstr(json, TEST_KEY) != NULL;
    col.not_on_worker += !on_worker;
    free(col.last);
    col.last = strdup(json);
    pthread_cond_broadcast(&col.cv);
    pthread_mutex_unlock(&col.mu);
    json_object_put(doc);
    atomic_fetch_sub(&col.running, 1);
}

/* The number at a dotted path ("requests.done"); fails the test if absent. */
static json_object *at(json_object *doc, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    json_object *o = doc;
    for (char *save, *part = strtok_r(buf, ".", &save); part; part = strtok_r(NULL, ".", &save))
        if (!json_object_object_get_ex(o, part, &o))
            fail_msg("the statistics have no \"%s\" (at \"%s\")", path, part);
    return o;
}

static int64_t num(json_object *doc, const char *path)
{
    return json_object_get_int64(at(doc, path));
}

static double real(json_object *doc, const char *path)
{
    return json_object_get_double(at(doc, path));
}

/* Wait (bounded) for a document in which `path` equals `want`; returns it
 * parsed (caller puts it). */
static json_object *wait_document(const char *path, int64_t want)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += WAIT_SECONDS;
    pthread_mutex_lock(&col.mu);
    for (;;) {
        json_object *doc = col.last ? json_tokener_parse(col.last) : NULL;
        if (doc && num(doc, path) == want) {
            pthread_mutex_unlock(&col.mu);
            return doc;
        }
        json_object_put(doc);
        if (pthread_cond_timedwait(&col.cv, &col.mu, &deadline) != 0)
            break;
    }
    pthread_mutex_unlock(&col.mu);
    fail_msg("no statistics document with %s == %lld within %d s", path, (long long)want,
             WAIT_SECONDS);
    return NULL;
}

static int setup(void **state)
{
    (void)state;
    recorder_reset();
    collector_reset();
    setenv("PARLEY_API_KEY", TEST_KEY, 1);
    return 0;
}

static void send_turns(parley_client_t *c, int sessions, int turns)
{
    for (int s = 0; s < sessions; s++) {
        char name[32];
        snprintf(name, sizeof(name), "stats-%d", s);
        parley_session_t *session = parley_session_open(c, name, NULL, 0);
        assert_non_null(session);
        for (int t = 0; t < turns; t++)
            assert_int_equal(parley_send(session, "how are the statistics today", NULL),
                             PARLEY_OK);
    }
    assert_int_equal(recorder_wait_terminals((size_t)(sessions * turns), WAIT_SECONDS),
                     (size_t)(sessions * turns));
}

/* A histogram's internal agreement: ordered percentiles, buckets adding up. */
static void check_histogram(json_object *doc, const char *name, int64_t count)
{
    json_object *h = at(doc, name);
    assert_int_equal(num(h, "count"), count);
    double p50 = real(h, "p50"), p90 = real(h, "p90"), p99 = real(h, "p99"),
           p999 = real(h, "p999"), max = real(h, "max");
    assert_true(0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max);
    assert_true(real(h, "mean") <= max);
    json_object *buckets = at(h, "buckets");
    int64_t sum = 0;
    double previous = -1;
    for (size_t i = 0; i < json_object_array_length(buckets); i++) {
        json_object *b = json_object_array_get_idx(buckets, i);
        double le = json_object_get_double(json_object_array_get_idx(b, 0));
        assert_true(le > previous); /* ascending, each once */
        previous = le;
        sum += json_object_get_int64(json_object_array_get_idx(b, 1));
    }
    assert_int_equal(sum, count);
}

static void native_counters_and_connections(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 4);
    char url[128];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/v1/stream", pl_refserver_port(srv));
    parley_client_t *c = fixture_client_stats(url, on_stats, &col, "statistics.interval.ms", "20",
                                              "connections", "2", NULL);
    send_turns(c, 4, 5);
    json_object *doc = wait_document("requests.done", 20);

    assert_string_equal(json_object_get_string(at(doc, "version")), PARLEY_VERSION_STR);
    assert_string_equal(json_object_get_string(at(doc, "endpoint")), url);
    assert_int_equal(num(doc, "requests.sent"), 20);
    assert_int_equal(num(doc, "requests.failed"), 0);
    assert_int_equal(num(doc, "requests.outstanding"), 0);
    assert_int_equal(num(doc, "requests.at_io_thread"), 0);
    /* A finished request takes its timer with it. */
    assert_int_equal(num(doc, "requests.timers"), 0);
    assert_int_equal(num(doc, "sessions.open"), 4);
    check_histogram(doc, "latency_ms", 20);
    check_histogram(doc, "ttft_ms", 20);
    /* Each reply's first piece comes no later than its end. */
    assert_true(real(doc, "ttft_ms.max") <= real(doc, "latency_ms.max"));
    assert_int_equal(num(doc, "dialects.native.server_errors.rate_limited"), 0);

    json_object *conns = at(doc, "connections");
    assert_int_equal(json_object_array_length(conns), 2);
    int64_t frames_sent = 0, frames_received = 0, opens = 0;
    for (size_t i = 0; i < 2; i++) {
        json_object *conn = json_object_array_get_idx(conns, i);
        assert_int_equal(num(conn, "index"), (int64_t)i);
        assert_int_equal(num(conn, "inflight"), 0);
        assert_int_equal(num(conn, "send_queue_frames"), 0);
        frames_sent += num(conn, "frames_sent");
        frames_received += num(conn, "frames_received");
        opens += num(conn, "opens");
        double ratio = real(conn, "compression_ratio");
        assert_true(ratio > 0 && ratio <= 1);
    }
    /* The connections' own counters add up to the client's. */
    assert_int_equal(frames_sent, num(doc, "traffic.frames_sent"));
    assert_int_equal(frames_received, num(doc, "traffic.frames_received"));
    assert_int_equal(opens, num(doc, "traffic.connections_opened"));
    assert_true(frames_sent >= 20);
    json_object_put(doc);

    parley_client_destroy(c);
    pthread_mutex_lock(&col.mu);
    int after_destroy = col.documents;
    assert_int_equal(col.invalid_json, 0);
    assert_int_equal(col.leaked_key, 0);
    assert_int_equal(col.not_on_worker, 0);
    assert_int_equal(col.overlaps, 0);
    pthread_mutex_unlock(&col.mu);
    pl_refserver_stop(srv);
    /* Nothing is delivered once destroy has returned. */
    assert_int_equal(col.documents, after_destroy);
}

static void native_server_errors_and_retries(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 16);
    pl_refserver_faults f = {.reject_every = 2, .reject_code = "overloaded",
                             .retry_after_ms = 1};
    pl_refserver_set_faults(srv, &f);
    char url[128];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/v1/stream", pl_refserver_port(srv));
    parley_client_t *c = fixture_client_stats(url, on_stats, &col, "statistics.interval.ms", "20",
                                              "connections", "1", NULL);
    /* One session: its turns go one after another, so every second new
     * request is a first send (rejected) and the next its retry (accepted). */
    send_turns(c, 1, 10);
    json_object *doc = wait_document("requests.done", 10);
    int64_t overloaded = num(doc, "dialects.native.server_errors.overloaded");
    assert_int_equal(overloaded, 9);
    /* Every rejection before ack was retried. */
    assert_int_equal(num(doc, "reliability.retries"), overloaded);
    assert_int_equal(num(doc, "dialects.native.server_errors.internal"), 0);
    json_object_put(doc);
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

static void http_dialect_answers(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(NULL, 0, 0, 8);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", pl_refserver_port(srv));
    parley_client_t *c = fixture_client_stats(url, on_stats, &col, "dialect", "anthropic",
                                              "statistics.interval.ms", "20", NULL);
    send_turns(c, 3, 2);
    /* A reply is counted done when its session takes the DONE, and 2xx when
     * libcurl ends the transfer: either may be counted first. */
    json_object_put(wait_document("dialects.anthropic.responses.2xx", 6));
    json_object *doc = wait_document("requests.done", 6);
    assert_int_equal(num(doc, "dialects.anthropic.responses.2xx"), 6);
    assert_int_equal(num(doc, "dialects.anthropic.responses.4xx"), 0);
    assert_int_equal(num(doc, "dialects.anthropic.responses.5xx"), 0);
    assert_int_equal(json_object_array_length(at(doc, "connections")), 0);
    check_histogram(doc, "latency_ms", 6);
    json_object_put(doc);
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

/* A callback without an interval, or an interval without a callback: off. */
static void off_unless_both_are_set(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 16);
    char url[128];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/v1/stream", pl_refserver_port(srv));
    parley_client_t *c = fixture_client_stats(url, on_stats, &col, NULL);
    send_turns(c, 1, 3);
    parley_client_destroy(c);
    recorder_reset();
    c = fixture_client_stats(url, NULL, NULL, "statistics.interval.ms", "1", NULL);
    send_turns(c, 1, 3);
    parley_client_destroy(c);
    assert_int_equal(col.documents, 0);
    pl_refserver_stop(srv);
}

int main(void)
{
    pthread_mutex_init(&col.mu, NULL);
    pthread_cond_init(&col.cv, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(native_counters_and_connections, setup),
        cmocka_unit_test_setup(native_server_errors_and_retries, setup),
        cmocka_unit_test_setup(http_dialect_answers, setup),
        cmocka_unit_test_setup(off_unless_both_are_set, setup),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    collector_reset();
    return failed;
}
