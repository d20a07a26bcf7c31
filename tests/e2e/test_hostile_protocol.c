/*
 * A hostile server against the retry logic (src/engine/route_policy.c): one that acks and
 * drops the connection every time, or acks and sends invalid UTF-8 (close
 * 1007), must not cause a reconnect storm and must exhaust the request's
 * attempts; a retry_after_ms of 2^63-1 must neither overflow nor keep the
 * request past its deadline; a piece naming another session fails its
 * request; a server that thinks aloud for longer than the stall timeout is
 * not stalled. Each test failed before its fix.
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

#include "parley.h"
#include "fixtures.h"
#include "hostile_server.h"
#include "recorder.h"

#define TEST_KEY "hostile-protocol-key"
#define MiB (1024u * 1024u)

static int setup(void **state)
{
    (void)state;
    recorder_reset();
    setenv("PARLEY_API_KEY", TEST_KEY, 1);
    setenv("PARLEY_LOG", "error", 0); /* the attacks make warnings by design */
    return 0;
}

/* Read one request; its id and session into the buffers. */
static bool read_request(hs_conn *c, char id[32], char session[160])
{
    const char *m = hs_read_message(c, 5000);
    if (!m)
        return false;
    hs_json_str(m, "id", id, 32);
    hs_json_str(m, "session", session, 160);
    return true;
}

/* Ack every request, then end the connection (returning closes it). */
static void ack_then_drop(hs_conn *c, unsigned index, void *arg)
{
    (void)index, (void)arg;
    char id[32], session[160];
    hs_send_hello(c, MiB);
    if (read_request(c, id, session))
        hs_send_textf(c, "{\"type\":\"ack\",\"id\":\"%s\"}", id);
}

/* Ack, then a text frame that is not UTF-8: the client closes with 1007. */
static void ack_then_bad_utf8(hs_conn *c, unsigned index, void *arg)
{
    (void)index, (void)arg;
    char id[32], session[160];
    hs_send_hello(c, MiB);
    if (!read_request(c, id, session))
        return;
    hs_send_textf(c, "{\"type\":\"ack\",\"id\":\"%s\"}", id);
    hs_send_frame(c, true, HS_OP_TEXT, "{\"type\":\"\xc3\x28\"}", 13);
    hs_wait_closed(c, 5000);
}

/*
 * The request runs out of attempts (an ack proves nothing), and the server
 * sees about one connection per attempt, not a storm: before the fix every
 * ack refunded the attempt and reconnects were immediate, about 1,300 a
 * second until the deadline.
 */
static void expect_no_storm(hs_script *script, parley_err_t want)
{
    hs_server *srv = hs_start("parley.v1", script, NULL);
    parley_client_t *c = fixture_client(hs_port(srv), "connections", "1",
                                        "retry.max.attempts", "3", "retry.backoff.ms", "10",
                                        "reconnect.backoff.ms", "10",
                                        "reconnect.backoff.max.ms", "1000",
                                        "request.timeout.ms", "8000", NULL);
    parley_session_t *s = parley_session_open(c, "victim", NULL, 0);
    uint64_t id;
    assert_int_equal(parley_send(s, "hello?", &id), PARLEY_OK);
    assert_int_equal(recorder_wait_terminals(1, 20), 1);
    recorder_entry r = recorder_get(id);
    hs_counts before = hs_get_counts(srv);
    parley_client_destroy(c);
    hs_stop(srv);
    print_message("%s: %s; %llu connections\n", parley_err2name(r.err), r.err_msg,
                  (unsigned long long)before.connections);
    assert_int_equal(r.terminal, PARLEY_EVENT_ERROR);
    assert_int_equal(r.err, want);
    assert_non_null(strstr(r.err_msg, "(after 3 attempts)"));
    assert_true(before.connections >= 3 && before.connections <= 4);
}

static void test_ack_then_drop_is_no_storm(void **state)
{
    (void)state;
    expect_no_storm(ack_then_drop, PARLEY_ERR_CONNECTION_LOST);
}

static void test_invalid_utf8_after_ack_is_no_storm(void **state)
{
    (void)state;
    expect_no_storm(ack_then_bad_utf8, PARLEY_ERR_PROTOCOL);
}

/* Rate-limit every request with the largest retry_after_ms there is. */
static void huge_retry_after(hs_conn *c, unsigned index, void *arg)
{
    (void)index, (void)arg;
    char id[32], session[160];
    hs_send_hello(c, MiB);
    while (read_request(c, id, session))
        hs_send_textf(c, "{\"type\":\"error\",\"id\":\"%s\",\"code\":\"rate_limited\","
                      "\"content\":\"slow down\",\"retry_after_ms\":9223372036854775807}", id);
}

/* No overflow (UBSan), no wait past the deadline: the request ends at once
 * with the server's own error, which says why it was not retried. */
static void test_huge_retry_after_ends_the_request_at_once(void **state)
{
    (void)state;
    hs_server *srv = hs_start("parley.v1", huge_retry_after, NULL);
    parley_client_t *c = fixture_client(hs_port(srv), "connections", "1",
                                        "request.timeout.ms", "20000", NULL);
    parley_session_t *s = parley_session_open(c, "patient", NULL, 0);
    uint64_t id;
    int64_t t0 = fixture_now_ms();
    assert_int_equal(parley_send(s, "may I?", &id), PARLEY_OK);
    assert_int_equal(recorder_wait_terminals(1, 30), 1);
    int64_t took = fixture_now_ms() - t0;
    recorder_entry r = recorder_get(id);
    parley_client_destroy(c);
    hs_stop(srv);
    assert_int_equal(r.terminal, PARLEY_EVENT_ERROR);
    assert_int_equal(r.err, PARLEY_ERR_RATE_LIMITED);
    assert_non_null(strstr(r.err_msg, "slow down"));
    assert_non_null(strstr(r.err_msg, "past request.timeout.ms"));
    assert_true(took < 10000);
}

/* The piece and done of a request name a session that is not the request's. */
static void wrong_session(hs_conn *c, unsigned index, void *arg)
{
    (void)index, (void)arg;
    char id[32], session[160];
    hs_send_hello(c, MiB);
    if (!read_request(c, id, session))
        return;
    hs_send_textf(c, "{\"type\":\"ack\",\"id\":\"%s\"}", id);
    hs_send_textf(c, "{\"type\":\"text\",\"id\":\"%s\",\"session\":\"someone-else\",\"seq\":0,"
                  "\"content\":\"not yours\"}", id);
    hs_send_textf(c, "{\"type\":\"done\",\"id\":\"%s\",\"session\":\"someone-else\","
                  "\"stop_reason\":\"end_turn\",\"seq_end\":1}", id);
    hs_wait_closed(c, 5000);
}

static void test_piece_of_another_session_fails_the_request(void **state)
{
    (void)state;
    hs_server *srv = hs_start("parley.v1", wrong_session, NULL);
    parley_client_t *c = fixture_client(hs_port(srv), "connections", "1", NULL);
    parley_session_t *s = parley_session_open(c, "mine", NULL, 0);
    uint64_t id;
    assert_int_equal(parley_send(s, "whose?", &id), PARLEY_OK);
    assert_int_equal(recorder_wait_terminals(1, 15), 1);
    recorder_entry r = recorder_get(id);
    parley_client_destroy(c);
    hs_stop(srv);
    assert_int_equal(r.terminal, PARLEY_EVENT_ERROR);
    assert_int_equal(r.err, PARLEY_ERR_PROTOCOL);
    assert_int_equal(r.pieces, 0);
    assert_non_null(strstr(r.err_msg, "belongs to session \"mine\""));
}

/* Think aloud for 1.5 s before the answer: every 100 ms a thinking piece
 * (protocol.md 9.3), then the text in the next block. */
static void long_thinking(hs_conn *c, unsigned index, void *arg)
{
    (void)index, (void)arg;
    char id[32], session[160];
    hs_send_hello(c, MiB);
    if (!read_request(c, id, session))
        return;
    hs_send_textf(c, "{\"type\":\"ack\",\"id\":\"%s\"}", id);
    for (int i = 0; i < 15 && !hs_stopping(c); i++) {
        hs_frame f;
        if (hs_read_frame(c, 100, &f) < 0) /* the pace, and what the client sends */
            return;
        hs_send_textf(c, "{\"type\":\"thinking\",\"id\":\"%s\",\"seq\":%d,\"block\":0,"
                      "\"content\":\"%d\"%s}", id, i, i % 10,
                      i == 14 ? ",\"signature\":\"sig\"" : "");
    }
    hs_send_textf(c, "{\"type\":\"text\",\"id\":\"%s\",\"seq\":15,\"block\":1,"
                  "\"content\":\"p0\"}", id);
    hs_send_textf(c, "{\"type\":\"done\",\"id\":\"%s\",\"stop_reason\":\"end_turn\","
                  "\"seq_end\":16}", id);
    hs_wait_closed(c, 5000);
}

/* Any message naming the request shows the server at work on it: five
 * stall timeouts of thinking are no stall (the request is neither put on
 * trial nor sent again), and every piece is delivered once, in order. */
static void test_long_thinking_is_not_a_stall(void **state)
{
    (void)state;
    hs_server *srv = hs_start("parley.v1", long_thinking, NULL);
    parley_client_t *c = fixture_client(hs_port(srv), "connections", "1",
                                        "stall.timeout.ms", "300",
                                        "stall.ping.timeout.ms", "200", NULL);
    parley_session_t *s = parley_session_open(c, "thinker", NULL, 0);
    uint64_t id;
    assert_int_equal(parley_send(s, "think first", &id), PARLEY_OK);
    assert_int_equal(recorder_wait_terminals(1, 15), 1);
    recorder_entry r = recorder_get(id);
    parley_client_destroy(c);
    hs_counts seen = hs_get_counts(srv);
    hs_stop(srv);
    assert_int_equal(r.terminal, PARLEY_EVENT_DONE);
    assert_string_equal(r.text, "p0");
    assert_string_equal(r.thinking, "012345678901234");
    assert_string_equal(r.signature, "sig");
    assert_int_equal(r.seq_errors, 0);
    assert_int_equal(seen.connections, 1);
    assert_int_equal(seen.messages, 1); /* the request, never sent again */
}

/* A server of sections 1-8 (no "features" in its hello): answers plain
 * turns, and must never see a turn of the extension. */
static void plain_server(hs_conn *c, unsigned index, void *arg)
{
    (void)index, (void)arg;
    char id[32], session[160];
    hs_send_hello(c, MiB);
    while (read_request(c, id, session)) {
        hs_send_textf(c, "{\"type\":\"ack\",\"id\":\"%s\"}", id);
        hs_send_textf(c, "{\"type\":\"text\",\"id\":\"%s\",\"seq\":0,\"content\":\"ok\"}",
                      id);
        hs_send_textf(c, "{\"type\":\"done\",\"id\":\"%s\",\"stop_reason\":\"end_turn\","
                      "\"seq_end\":1}", id);
    }
}

/* Tools for a server without the extension `blocks`: the turn fails here,
 * saying why, and the server never sees it; plain turns still go. */
static void test_blocks_need_the_extension(void **state)
{
    (void)state;
    hs_server *srv = hs_start("parley.v1", plain_server, NULL);
    parley_client_t *c = fixture_client(hs_port(srv), "connections", "1", NULL);
    parley_session_t *s = parley_session_open(c, "old-server", NULL, 0);
    char err[256];
    assert_int_equal(parley_session_set(s, "tools",
                                        "[{\"name\":\"f\",\"input_schema\":{}}]", err,
                                        sizeof(err)),
                     PARLEY_OK);
    uint64_t with_tools, plain;
    assert_int_equal(parley_send(s, "call f {}", &with_tools), PARLEY_OK);
    assert_int_equal(recorder_wait_terminals(1, 15), 1);
    assert_int_equal(parley_session_set(s, "tools", "", err, sizeof(err)), PARLEY_OK);
    assert_int_equal(parley_send(s, "plain", &plain), PARLEY_OK);
    assert_int_equal(recorder_wait_terminals(2, 15), 2);
    recorder_entry r = recorder_get(with_tools);
    parley_client_destroy(c);
    hs_counts seen = hs_get_counts(srv);
    hs_stop(srv);
    assert_int_equal(r.terminal, PARLEY_EVENT_ERROR);
    assert_int_equal(r.err, PARLEY_ERR_INVALID_ARG);
    assert_non_null(strstr(r.err_msg, "does not support the extension \"blocks\""));
    assert_string_equal(recorder_get(plain).done, "ok");
    assert_int_equal(seen.messages, 1); /* the plain turn only */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_ack_then_drop_is_no_storm, setup),
        cmocka_unit_test_setup(test_blocks_need_the_extension, setup),
        cmocka_unit_test_setup(test_invalid_utf8_after_ack_is_no_storm, setup),
        cmocka_unit_test_setup(test_huge_retry_after_ends_the_request_at_once, setup),
        cmocka_unit_test_setup(test_piece_of_another_session_fails_the_request, setup),
        cmocka_unit_test_setup(test_long_thinking_is_not_a_stall, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
