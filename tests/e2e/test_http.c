/*
 * The Anthropic and OpenAI dialects end to end, against the reference
 * server's HTTP endpoints: exact texts for concurrent sessions, connection
 * reuse (HTTP/1.1) and multiplexing (HTTP/2 over TLS), error statuses and
 * their retries, retry-after, and what a broken or stalled stream does.
 */
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

#include "fixtures.h"
#include "loopback_http.h"
#include "parley.h"
#include "recorder.h"
#include "refserver.h"
#include "refserver_http.h"
#include "tls_files.h"

#define TEST_KEY "http-key"

static const char *const dialects[] = {"anthropic", "openai"};

static int setup(void **state)
{
    (void)state;
    recorder_reset();
    setenv("PARLEY_API_KEY", TEST_KEY, 1);
    unsetenv("ANTHROPIC_API_KEY");
    unsetenv("OPENAI_API_KEY");
    setenv("PARLEY_LOG", "error", 0);
    return 0;
}

/* The server's HTTP endpoint (the dialect adds the path). */
static const char *http_url(pl_refserver *srv)
{
    static char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", pl_refserver_port(srv));
    return url;
}

/* A client of `dialect` with quick retries; more properties, then NULL. */
#define http_client(srv, dialect, ...)                                                   \
    fixture_client_url(http_url(srv), "dialect", dialect, "retry.backoff.ms", "20",     \
                       __VA_ARGS__)

static void set_http_faults(pl_refserver *srv, pl_refserver_http_faults f)
{
    pl_refserver_http_set_faults(pl_refserver_http_of(srv), &f);
}

static pl_refserver_http_faults no_faults(void)
{
    pl_refserver_http_faults f;
    pl_refserver_http_faults_init(&f);
    return f;
}

#define SESSIONS 12
#define TURNS 3

/* Concurrent sessions over several turns: exact texts, history carried. */
static void test_exact_texts_both_dialects(void **state)
{
    (void)state;
    for (int d = 0; d < 2; d++) {
        recorder_reset();
        pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 5);
        parley_client_t *c = http_client(srv, dialects[d], NULL);
        uint64_t ids[SESSIONS][TURNS];
        for (int i = 0; i < SESSIONS; i++) {
            parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
            for (int t = 0; t < TURNS; t++) {
                char text[64];
                snprintf(text, sizeof(text), "%s %d/%d \"quoted\" ünï", dialects[d], i, t);
                assert_int_equal(parley_send(s, text, &ids[i][t]), PARLEY_OK);
            }
        }
        assert_int_equal(parley_flush(c, 60000), PARLEY_OK);
        for (int i = 0; i < SESSIONS; i++)
            for (int t = 0; t < TURNS; t++) {
                char text[64], want[96];
                snprintf(text, sizeof(text), "%s %d/%d \"quoted\" ünï", dialects[d], i, t);
                snprintf(want, sizeof(want), "[turn %d] %s", t + 1, text);
                recorder_entry r = recorder_get(ids[i][t]);
                if (r.terminal != PARLEY_EVENT_DONE)
                    fail_msg("%s: %s", dialects[d], r.err_msg);
                assert_string_equal(r.done, want);
                assert_string_equal(r.text, want);
                assert_int_equal(r.seq_errors, 0);
                assert_string_equal(r.stop_reason, "end_turn");
            }
        parley_client_destroy(c);
        pl_refserver_stop(srv);
    }
}

/* Over cleartext HTTP/1.1, connections are reused, not opened per request. */
static void test_http1_connections_reused(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 16);
    parley_client_t *c = http_client(srv, "openai", NULL);
    parley_session_t *s = parley_session_open(c, "reuse", NULL, 0);
    enum { N = 30 };
    for (int i = 0; i < N; i++)
        assert_int_equal(parley_send(s, "again", NULL), PARLEY_OK);
    assert_int_equal(parley_flush(c, 60000), PARLEY_OK);
    assert_int_equal(recorder_terminals(), N);
    parley_stats_t st;
    parley_stats_get(c, &st);
    assert_int_equal(st.requests_done, N);
    assert_true(st.connections_opened <= 2);
    pl_refserver_http_stats hs;
    pl_refserver_http_get_stats(pl_refserver_http_of(srv), &hs);
    assert_int_equal(hs.requests_chat, N);
    assert_true(hs.connections <= 2);
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

/*
 * http.max.connections bounds the HTTP/1.1 connections: 12 turns at once
 * over 2 connections, the other turns waiting in the client in order. A
 * wait longer than stall.timeout.ms is no stall (nothing is on the wire),
 * so none is caught, retried or failed.
 */
static void test_http1_connections_bounded(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 100, 0, 16);
    parley_client_t *c = http_client(srv, "anthropic", "http.max.connections", "2",
                                     "stall.timeout.ms", "250", NULL);
    enum { N = 12 };
    uint64_t ids[N];
    for (int i = 0; i < N; i++) {
        parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
        char text[32];
        snprintf(text, sizeof(text), "queued %d", i);
        assert_int_equal(parley_send(s, text, &ids[i]), PARLEY_OK);
    }
    assert_int_equal(parley_flush(c, 60000), PARLEY_OK);
    for (int i = 0; i < N; i++) {
        char want[48];
        snprintf(want, sizeof(want), "[turn 1] queued %d", i);
        assert_string_equal(recorder_get(ids[i]).done, want);
    }
    parley_stats_t st;
    parley_stats_get(c, &st);
    pl_refserver_http_stats hs;
    pl_refserver_http_get_stats(pl_refserver_http_of(srv), &hs);
    print_message("bounded: %d requests over %llu connections (server: %llu, at most %llu in "
                  "flight), %llu stalls\n", N, (unsigned long long)st.connections_opened,
                  (unsigned long long)hs.connections, (unsigned long long)hs.max_in_flight,
                  (unsigned long long)st.stalls);
    assert_int_equal(st.requests_done, N);
    assert_true(st.connections_opened <= 2);
    assert_true(hs.connections <= 2);
    assert_true(hs.max_in_flight <= 2);
    assert_int_equal(st.stalls, 0);
    assert_int_equal(st.retries, 0);
    assert_int_equal(hs.requests_messages, N);
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

#define H2_STREAMS 200

/* Over TLS, 200 concurrent streams share a few HTTP/2 connections. */
static void test_h2_multiplexes_over_tls(void **state)
{
    (void)state;
    tls_files tls;
    tls_files_make(&tls);
    pl_refserver_opts o;
    pl_refserver_opts_init(&o);
    o.api_key = TEST_KEY;
    o.latency_ms = 300; /* long enough for all streams to overlap */
    o.quiet = 1;
    o.tls_cert_file = tls.server_cert;
    o.tls_key_file = tls.server_key;
    pl_refserver *srv = pl_refserver_start(&o, NULL, 0);
    assert_non_null(srv);
    char url[96];
    snprintf(url, sizeof(url), "https://127.0.0.1:%d", pl_refserver_port(srv));
    parley_client_t *c = fixture_client_url(url, "dialect", "openai", "tls.ca.file", tls.ca,
                                            NULL);
    static uint64_t ids[H2_STREAMS];
    for (int i = 0; i < H2_STREAMS; i++) {
        parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
        assert_int_equal(parley_send(s, "multiplexed", &ids[i]), PARLEY_OK);
    }
    assert_int_equal(parley_flush(c, 60000), PARLEY_OK);
    for (int i = 0; i < H2_STREAMS; i++)
        assert_string_equal(recorder_get(ids[i]).done, "[turn 1] multiplexed");
    parley_stats_t st;
    parley_stats_get(c, &st);
    pl_refserver_http_stats hs;
    pl_refserver_http_get_stats(pl_refserver_http_of(srv), &hs);
    print_message("h2: %d streams over %llu connections (server: %llu, %llu h2, "
                  "at most %llu in flight)\n", H2_STREAMS,
                  (unsigned long long)st.connections_opened, (unsigned long long)hs.connections,
                  (unsigned long long)hs.connections_h2, (unsigned long long)hs.max_in_flight);
    assert_true(st.connections_opened >= 1 && st.connections_opened <= 4);
    assert_int_equal(hs.connections_h2, hs.connections);
    assert_true(hs.max_in_flight > 50); /* they really ran at once */
    parley_client_destroy(c);
    pl_refserver_stop(srv);
    tls_files_remove(&tls);
}

/* Each error status maps as documented, retried or not. */
static void test_error_statuses(void **state)
{
    (void)state;
    static const struct {
        unsigned status;
        parley_err_t err;
        bool retried;
    } cases[] = {
        {400, PARLEY_ERR_INVALID_REQUEST, false}, {403, PARLEY_ERR_FORBIDDEN, false},
        {413, PARLEY_ERR_SERVER_TOO_LARGE, false}, {429, PARLEY_ERR_RATE_LIMITED, true},
        {500, PARLEY_ERR_SERVER_INTERNAL, true},  {529, PARLEY_ERR_OVERLOADED, true},
        {503, PARLEY_ERR_OVERLOADED, true},
    };
    for (int d = 0; d < 2; d++)
        for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
            recorder_reset();
            pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 16);
            pl_refserver_http_faults f = no_faults();
            f.reject_every = 1;
            f.reject_status = cases[k].status;
            set_http_faults(srv, f);
            parley_client_t *c = http_client(srv, dialects[d], "retry.max.attempts", "2", NULL);
            parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
            uint64_t id;
            assert_int_equal(parley_send(s, "x", &id), PARLEY_OK);
            assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
            recorder_entry r = recorder_get(id);
            if (r.err != cases[k].err)
                fail_msg("%s HTTP %u: got %s (%s)", dialects[d], cases[k].status,
                         parley_err2name(r.err), r.err_msg);
            char status[16];
            snprintf(status, sizeof(status), "HTTP %u", cases[k].status);
            assert_non_null(strstr(r.err_msg, status));
            assert_non_null(strstr(r.err_msg, "request-id")); /* the vendor's id is kept */
            pl_refserver_http_stats hs;
            pl_refserver_http_get_stats(pl_refserver_http_of(srv), &hs);
            assert_int_equal(hs.requests_messages + hs.requests_chat, cases[k].retried ? 2 : 1);
            parley_client_destroy(c);
            pl_refserver_stop(srv);
        }
}

/* A wrong key and an unknown model: the vendors' 401 and 404. */
static void test_key_and_model_errors(void **state)
{
    (void)state;
    for (int d = 0; d < 2; d++) {
        recorder_reset();
        pl_refserver *srv = fixture_server("the-right-key", 0, 0, 16);
        parley_client_t *c = http_client(srv, dialects[d], NULL);
        parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
        uint64_t id;
        assert_int_equal(parley_send(s, "x", &id), PARLEY_OK);
        assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
        assert_int_equal(recorder_get(id).err, PARLEY_ERR_UNAUTHORIZED);
        assert_null(strstr(recorder_get(id).err_msg, TEST_KEY));
        parley_client_destroy(c);
        pl_refserver_stop(srv);

        srv = fixture_server(TEST_KEY, 0, 0, 16);
        c = http_client(srv, dialects[d], "model", "no-such-model", NULL);
        s = parley_session_open(c, NULL, NULL, 0);
        assert_int_equal(parley_send(s, "x", &id), PARLEY_OK);
        assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
        assert_int_equal(recorder_get(id).err, PARLEY_ERR_NOT_FOUND);
        parley_client_destroy(c);
        pl_refserver_stop(srv);
    }
}

/* retry-after-ms, then retry-after, is honoured; x-should-retry overrides. */
static void test_retry_after_and_should_retry(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 16);
    pl_refserver_http_faults f = no_faults();
    f.reject_every = 2; /* the first request passes, its retry is the third */
    f.retry_after_ms = 400;
    set_http_faults(srv, f);
    parley_client_t *c = http_client(srv, "anthropic", NULL);
    parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
    uint64_t first, second;
    assert_int_equal(parley_send(s, "one", &first), PARLEY_OK);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    int64_t t0 = fixture_now_ms();
    assert_int_equal(parley_send(s, "two", &second), PARLEY_OK);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    assert_true(fixture_now_ms() - t0 >= 400 - 5);
    assert_string_equal(recorder_get(second).done, "[turn 2] two");

    /* retry-after in seconds, when no retry-after-ms. */
    f.retry_after_ms = -1;
    f.retry_after_s = 1;
    set_http_faults(srv, f);
    assert_int_equal(parley_send(s, "three", NULL), PARLEY_OK);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    t0 = fixture_now_ms();
    uint64_t fourth;
    assert_int_equal(parley_send(s, "four", &fourth), PARLEY_OK);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    assert_true(fixture_now_ms() - t0 >= 1000 - 5);
    assert_string_equal(recorder_get(fourth).done, "[turn 4] four");

    /* x-should-retry: false wins over a retryable 429. */
    f = no_faults();
    f.reject_every = 1;
    f.should_retry = 0;
    set_http_faults(srv, f);
    uint64_t fifth;
    assert_int_equal(parley_send(s, "five", &fifth), PARLEY_OK);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    assert_int_equal(recorder_get(fifth).err, PARLEY_ERR_RATE_LIMITED);
    assert_null(strstr(recorder_get(fifth).err_msg, "attempts"));
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

/* A stream cut before its first piece is retried; after it, it ends with an
 * error that says these APIs cannot resume. Same for a stall. */
static void test_broken_and_stalled_streams(void **state)
{
    (void)state;
    for (int d = 0; d < 2; d++) {
        recorder_reset();
        pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 4);
        parley_client_t *c = http_client(srv, dialects[d], "stall.timeout.ms", "300", NULL);
        parley_session_t *s = parley_session_open(c, NULL, NULL, 0);

        pl_refserver_http_faults f = no_faults();
        f.drop_every = 2;
        f.drop_after_pieces = 0;
        set_http_faults(srv, f);
        uint64_t warm, retried;
        assert_int_equal(parley_send(s, "warm up", &warm), PARLEY_OK);
        assert_int_equal(parley_send(s, "cut early", &retried), PARLEY_OK);
        assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
        assert_string_equal(recorder_get(retried).done, "[turn 2] cut early");

        f.drop_every = 1;
        f.drop_after_pieces = 2;
        set_http_faults(srv, f);
        uint64_t broken;
        assert_int_equal(parley_send(s, "cut after two pieces", &broken), PARLEY_OK);
        assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
        recorder_entry r = recorder_get(broken);
        assert_int_equal(r.terminals, 1);
        assert_int_equal(r.err, PARLEY_ERR_CONNECTION_LOST);
        assert_int_equal(r.pieces, 2);
        assert_non_null(strstr(r.err_msg, "cannot resume"));

        f = no_faults();
        f.stall_every = 1;
        f.stall_after_pieces = 1;
        set_http_faults(srv, f);
        uint64_t stalled;
        assert_int_equal(parley_send(s, "stall after one", &stalled), PARLEY_OK);
        assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
        r = recorder_get(stalled);
        assert_int_equal(r.err, PARLEY_ERR_TIMED_OUT);
        assert_int_equal(r.pieces, 1);
        assert_non_null(strstr(r.err_msg, "cannot resume"));
        parley_client_destroy(c);
        pl_refserver_stop(srv);
    }
}

/* Think for 1.5 s before the answer, an SSE ping every 100 ms (parts
 * separated by '\f': loopback_http_start_paced). */
static void answer_after_pings(const char *request, char *answer, size_t size, void *opaque)
{
    (void)request, (void)opaque;
    size_t used = (size_t)snprintf(answer, size,
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":"
        "\"msg_1\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n");
    for (int i = 0; i < 15; i++)
        used += (size_t)snprintf(answer + used, size - used,
                                 "\fevent: ping\ndata: {\"type\":\"ping\"}\n\n");
    snprintf(answer + used, size - used, "\f"
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
        "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
        "\"delta\":{\"type\":\"text_delta\",\"text\":\"thought it through\"}}\n\n"
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
        "\"end_turn\"},\"usage\":{\"output_tokens\":3}}\n\n"
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
}

/* Every event of the stream shows the server at work: pings for five stall
 * timeouts before the first piece are no stall (before, the stream was
 * judged stalled after 300 ms, its connection condemned and the request
 * sent again). */
static void test_pings_are_not_a_stall(void **state)
{
    (void)state;
    loopback_http *srv = loopback_http_start_paced(answer_after_pings, NULL, 100);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", loopback_http_port(srv));
    parley_client_t *c = fixture_client_url(url, "dialect", "anthropic",
                                            "stall.timeout.ms", "300", NULL);
    parley_session_t *s = parley_session_open(c, "thinker", NULL, 0);
    uint64_t id;
    assert_int_equal(parley_send(s, "think first", &id), PARLEY_OK);
    assert_int_equal(recorder_wait_terminals(1, 15), 1);
    recorder_entry r = recorder_get(id);
    parley_client_destroy(c);
    unsigned requests = loopback_http_requests(srv);
    loopback_http_stop(srv);
    assert_int_equal(r.terminal, PARLEY_EVENT_DONE);
    assert_string_equal(r.text, "thought it through");
    assert_int_equal(requests, 1); /* never sent again */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_exact_texts_both_dialects, setup),
        cmocka_unit_test_setup(test_http1_connections_reused, setup),
        cmocka_unit_test_setup(test_http1_connections_bounded, setup),
        cmocka_unit_test_setup(test_h2_multiplexes_over_tls, setup),
        cmocka_unit_test_setup(test_error_statuses, setup),
        cmocka_unit_test_setup(test_key_and_model_errors, setup),
        cmocka_unit_test_setup(test_retry_after_and_should_retry, setup),
        cmocka_unit_test_setup(test_broken_and_stalled_streams, setup),
        cmocka_unit_test_setup(test_pings_are_not_a_stall, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
