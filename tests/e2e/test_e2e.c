/*
 * End to end against the reference server running in-process: exact reply
 * texts over many concurrent sessions and turns, connection sharing, clear
 * errors for a wrong key and for no server, and exactly one terminal event per
 * accepted request, also at destroy.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "parley.h"
#include "fixtures.h"
#include "recorder.h"
#include "refserver.h"

#define TEST_KEY "test-key-0123456789"

static int setup(void **state)
{
    (void)state;
    recorder_reset();
    setenv("PARLEY_API_KEY", TEST_KEY, 1);
    return 0;
}

static void expected_reply(char *out, size_t size, int turn, const char *content)
{
    snprintf(out, size, "[turn %d] %s", turn, content);
}

/* ---- tests -------------------------------------------------------------- */

#define CONC_SESSIONS 40
#define CONC_TURNS 4

/* Many sessions, several turns each, all at once: every reply is exact and its
 * turn number proves the history travelled with it. */
static void test_concurrent_sessions_exact_replies(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 5);
    parley_client_t *c = fixture_client(pl_refserver_port(srv), "connections", "3", NULL);
    parley_session_t *s[CONC_SESSIONS];
    uint64_t ids[CONC_SESSIONS][CONC_TURNS];
    char text[CONC_SESSIONS][CONC_TURNS][48];
    for (int i = 0; i < CONC_SESSIONS; i++) {
        char sid[32];
        snprintf(sid, sizeof(sid), "conc-%d", i);
        s[i] = parley_session_open(c, sid, NULL, 0);
        assert_non_null(s[i]);
    }
    /* Every turn is sent at once: the session queues them in order. */
    for (int t = 0; t < CONC_TURNS; t++)
        for (int i = 0; i < CONC_SESSIONS; i++) {
            snprintf(text[i][t], sizeof(text[i][t]), "msg %d of session \"%d\" é", t, i);
            assert_int_equal(parley_send(s[i], text[i][t], &ids[i][t]), PARLEY_OK);
        }
    assert_int_equal(parley_flush(c, 60000), PARLEY_OK);
    assert_int_equal(recorder_terminals(), CONC_SESSIONS * CONC_TURNS);
    for (int i = 0; i < CONC_SESSIONS; i++)
        for (int t = 0; t < CONC_TURNS; t++) {
            recorder_entry r = recorder_get(ids[i][t]);
            char want[96];
            expected_reply(want, sizeof(want), t + 1, text[i][t]);
            assert_int_equal(r.terminals, 1);
            assert_int_equal(r.terminal, PARLEY_EVENT_DONE);
            assert_int_equal(r.seq_errors, 0);
            assert_string_equal(r.text, want);
            assert_string_equal(r.done, want);
        }
    parley_stats_t st;
    parley_stats_get(c, &st);
    assert_int_equal(st.requests_done, CONC_SESSIONS * CONC_TURNS);
    assert_int_equal(st.requests_failed, 0);
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

/* The server sees the history the client owns: turn 2 carries turn 1. */
static void test_history_on_the_wire(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 16);
    parley_client_t *c = fixture_client(pl_refserver_port(srv), "connections", "1", NULL);
    parley_session_t *s = parley_session_open(c, "wire-1", NULL, 0);
    assert_int_equal(parley_send(s, "first", NULL), PARLEY_OK);
    assert_int_equal(parley_send(s, "second", NULL), PARLEY_OK);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    char *m0 = pl_refserver_received(srv, 0);
    char *m1 = pl_refserver_received(srv, 1);
    assert_non_null(m0);
    assert_non_null(m1);
    assert_non_null(strstr(m0, "\"content\":\"first\""));
    assert_null(strstr(m0, "\"history\""));
    assert_non_null(strstr(m1, "\"session\":\"wire-1\""));
    assert_non_null(strstr(m1, "\"history\":[{\"role\":\"user\",\"content\":\"first\"},"
                               "{\"role\":\"assistant\",\"content\":\"[turn 1] first\"}]"));
    free(m0);
    free(m1);
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

/* Sessions are allocated to the size of their id: the shortest and the
 * longest ids the protocol allows are kept whole, and one byte more is
 * refused. */
static void test_session_id_lengths(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 16);
    parley_client_t *c = fixture_client(pl_refserver_port(srv), "connections", "1", NULL);
    char longest[130];
    memset(longest, 'L', 129);
    longest[129] = '\0';
    assert_null(parley_session_open(c, longest, NULL, 0)); /* 129 bytes */
    longest[128] = '\0';
    parley_session_t *s[2] = {parley_session_open(c, "x", NULL, 0),
                              parley_session_open(c, longest, NULL, 0)};
    assert_non_null(s[0]);
    assert_non_null(s[1]);
    assert_string_equal(parley_session_id(s[0]), "x");
    assert_string_equal(parley_session_id(s[1]), longest);
    uint64_t ids[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(parley_send(s[i], "hi", &ids[i]), PARLEY_OK);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    for (int i = 0; i < 2; i++)
        assert_string_equal(recorder_get(ids[i]).done, "[turn 1] hi");
    char want[160];
    snprintf(want, sizeof(want), "\"session\":\"%s\"", longest);
    bool seen[2] = {false, false};
    for (size_t n = 0; n < 2; n++) {
        char *m = pl_refserver_received(srv, n);
        assert_non_null(m);
        seen[0] |= strstr(m, "\"session\":\"x\"") != NULL;
        seen[1] |= strstr(m, want) != NULL;
        free(m);
    }
    assert_true(seen[0] && seen[1]);
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

#define MANY_SESSIONS 1000

/* A thousand sessions share two connections. */
static void test_thousand_sessions_two_connections(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 16);
    parley_client_t *c = fixture_client(pl_refserver_port(srv), "connections", "2", NULL);
    static parley_session_t *s[MANY_SESSIONS];
    static uint64_t ids[MANY_SESSIONS][2];
    for (int i = 0; i < MANY_SESSIONS; i++) {
        s[i] = parley_session_open(c, NULL, NULL, 0);
        assert_non_null(s[i]);
        assert_int_equal(parley_send(s[i], "ping", &ids[i][0]), PARLEY_OK);
        assert_int_equal(parley_send(s[i], "pong", &ids[i][1]), PARLEY_OK);
    }
    assert_int_equal(parley_flush(c, 120000), PARLEY_OK);
    for (int i = 0; i < MANY_SESSIONS; i++) {
        recorder_entry r0 = recorder_get(ids[i][0]), r1 = recorder_get(ids[i][1]);
        assert_string_equal(r0.done, "[turn 1] ping");
        assert_string_equal(r1.done, "[turn 2] pong");
        assert_int_equal(r0.terminals + r1.terminals, 2);
    }
    pl_refserver_stats ss;
    pl_refserver_get_stats(srv, &ss);
    assert_int_equal(ss.connections_accepted, 2);
    assert_int_equal(ss.requests_started, 2 * MANY_SESSIONS);
    parley_stats_t st;
    parley_stats_get(c, &st);
    assert_int_equal(st.connections_opened, 2);
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

static void test_wrong_key_is_unauthorized(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server("the-right-key", 0, 0, 16);
    parley_client_t *c = fixture_client(pl_refserver_port(srv), "connections", "1", NULL);
    parley_session_t *s = parley_session_open(c, "auth", NULL, 0);
    uint64_t id;
    assert_int_equal(parley_send(s, "hello", &id), PARLEY_OK);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    recorder_entry r = recorder_get(id);
    assert_int_equal(r.terminals, 1);
    assert_int_equal(r.terminal, PARLEY_EVENT_ERROR);
    assert_int_equal(r.err, PARLEY_ERR_UNAUTHORIZED);
    assert_non_null(strstr(r.err_msg, "unauthorized"));
    assert_null(strstr(r.err_msg, TEST_KEY));      /* never the key */
    assert_null(strstr(r.err_msg, "the-right-key"));
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

static void test_no_server_is_a_clear_error(void **state)
{
    (void)state;
    parley_client_t *c = fixture_client(fixture_closed_port(), "connections", "1", NULL);
    parley_session_t *s = parley_session_open(c, "nobody", NULL, 0);
    uint64_t id1, id2;
    assert_int_equal(parley_send(s, "anyone?", &id1), PARLEY_OK);
    assert_int_equal(parley_send(s, "still?", &id2), PARLEY_OK);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    for (int k = 0; k < 2; k++) {
        recorder_entry r = recorder_get(k ? id2 : id1);
        assert_int_equal(r.terminals, 1);
        assert_int_equal(r.err, PARLEY_ERR_CONNECT);
        assert_non_null(strstr(r.err_msg, "could not connect to ws://127.0.0.1:"));
    }
    parley_client_destroy(c);
}

/* Destroy with requests in flight and waiting: each gets exactly one terminal
 * event before destroy returns, and nothing arrives after. */
static void test_destroy_ends_every_request(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 200, 1); /* slow replies */
    parley_client_t *c = fixture_client(pl_refserver_port(srv), "connections", "2", NULL);
    enum { N = 50 };
    uint64_t ids[N][2];
    for (int i = 0; i < N; i++) {
        parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
        assert_int_equal(parley_send(s, "a long enough message", &ids[i][0]), PARLEY_OK);
        assert_int_equal(parley_send(s, "and a waiting one", &ids[i][1]), PARLEY_OK);
    }
    assert_int_equal(parley_flush(c, 100), PARLEY_ERR_TIMED_OUT);
    parley_client_destroy(c);
    assert_int_equal(recorder_terminals(), 2 * N);
    for (int i = 0; i < N; i++)
        for (int t = 0; t < 2; t++) {
            recorder_entry r = recorder_get(ids[i][t]);
            assert_int_equal(r.terminals, 1);
            assert_int_equal(r.err, PARLEY_ERR_SHUTDOWN);
        }
    pl_refserver_stop(srv);
}

/* ---- a callback that sends the next turn and closes the session ---------- */

static parley_session_t *chained;
static int chained_turns;
static uint64_t last_chained;

static void on_event_chain(parley_client_t *client, const parley_event_t *ev, void *opaque)
{
    recorder_on_event(client, ev, opaque);
    if (parley_event_type(ev) != PARLEY_EVENT_DONE)
        return;
    if (++chained_turns < 5)
        assert_int_equal(parley_send(chained, "again", &last_chained), PARLEY_OK);
    else
        parley_session_close(chained);
    /* flush from a callback would wait for itself: refused. */
    assert_int_equal(parley_flush(client, 0), PARLEY_ERR_STATE);
}

static void test_callback_sends_and_closes(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 16);
    parley_conf_t *conf = parley_conf_new();
    char url[128];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/v1/stream", pl_refserver_port(srv));
    assert_int_equal(parley_conf_set(conf, "endpoint", url, NULL, 0), PARLEY_OK);
    parley_conf_set_event_cb(conf, on_event_chain, NULL);
    parley_client_t *c = parley_client_new(conf, NULL, 0);
    assert_non_null(c);
    assert_int_equal(parley_start(c), PARLEY_OK);
    chained_turns = 0;
    chained = parley_session_open(c, "chain", NULL, 0);
    assert_int_equal(parley_send(chained, "again", NULL), PARLEY_OK);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    assert_int_equal(chained_turns, 5);
    assert_int_equal(recorder_terminals(), 5);
    assert_string_equal(recorder_get(last_chained).done, "[turn 5] again");
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

static void test_send_rejects_bad_input(void **state)
{
    (void)state;
    parley_client_t *c = fixture_client(fixture_closed_port(), "connections", "1", NULL);
    char err[256];
    assert_null(parley_session_open(c, "bad id!", err, sizeof(err)));
    assert_non_null(strstr(err, "session id"));
    parley_session_t *s = parley_session_open(c, "ok", NULL, 0);
    assert_int_equal(parley_send(s, NULL, NULL), PARLEY_ERR_INVALID_ARG);
    assert_int_equal(parley_send(s, "\xff\xfe", NULL), PARLEY_ERR_INVALID_ARG);
    char *big = malloc(2 * 1024 * 1024);
    memset(big, 'a', 2 * 1024 * 1024 - 1);
    big[2 * 1024 * 1024 - 1] = '\0';
    assert_int_equal(parley_send(s, big, NULL), PARLEY_ERR_TOO_LARGE);
    free(big);
    parley_session_close(s);
    parley_client_destroy(c);
    assert_int_equal(recorder_terminals(), 0); /* nothing accepted, nothing delivered */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_concurrent_sessions_exact_replies, setup),
        cmocka_unit_test_setup(test_history_on_the_wire, setup),
        cmocka_unit_test_setup(test_session_id_lengths, setup),
        cmocka_unit_test_setup(test_thousand_sessions_two_connections, setup),
        cmocka_unit_test_setup(test_wrong_key_is_unauthorized, setup),
        cmocka_unit_test_setup(test_no_server_is_a_clear_error, setup),
        cmocka_unit_test_setup(test_destroy_ends_every_request, setup),
        cmocka_unit_test_setup(test_callback_sends_and_closes, setup),
        cmocka_unit_test_setup(test_send_rejects_bad_input, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
