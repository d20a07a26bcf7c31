/*
 * A hostile server against the WebSocket frame layer (src/transport/ws_conn.c):
 * empty Pings, a ping flood while the server reads nothing, and messages
 * that never end (a frame declaring 2^40 bytes, endless continuation
 * frames). Each attack is bounded in time; each test failed before its fix.
 */
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
#include "hostile_server.h"
#include "memwatch.h"
#include "recorder.h"

#define TEST_KEY "hostile-key"
#define MiB (1024u * 1024u)

static int setup(void **state)
{
    (void)state;
    recorder_reset();
    setenv("PARLEY_API_KEY", TEST_KEY, 1);
    setenv("PARLEY_LOG", "error", 0); /* the attacks make warnings by design */
    return 0;
}

/* Read until a Pong arrives: whether its payload is exactly `want`. */
static bool pong_is(hs_conn *c, const char *want, size_t len, int timeout_ms)
{
    int64_t deadline = fixture_now_ms() + timeout_ms;
    hs_frame f;
    while (fixture_now_ms() < deadline) {
        int rc = hs_read_frame(c, (int)(deadline - fixture_now_ms()), &f);
        if (rc < 0)
            return false;
        if (rc == 1 && f.opcode == HS_OP_PONG)
            return f.len == len && memcmp(f.payload, want, len) == 0;
    }
    return false;
}

/* Answer a request read earlier with one piece "p0" and done. */
static void answer(hs_conn *c, const char *id, const char *session)
{
    hs_send_textf(c, "{\"type\":\"ack\",\"id\":\"%s\"}", id);
    hs_send_textf(c, "{\"type\":\"text\",\"id\":\"%s\",\"session\":\"%s\",\"seq\":0,"
                  "\"content\":\"p0\"}", id, session);
    hs_send_textf(c, "{\"type\":\"done\",\"id\":\"%s\",\"session\":\"%s\",\"stop_reason\":"
                  "\"end_turn\",\"seq_end\":1,\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}",
                  id, session);
}

/* ---- empty Pings ----------------------------------------------------------- */

typedef struct ping_result {
    atomic_bool empty_answered, payload_answered;
} ping_result;

static void ping_script(hs_conn *c, unsigned index, void *arg)
{
    (void)index;
    ping_result *res = arg;
    hs_send_hello(c, MiB);
    const char *m = hs_read_message(c, 5000);
    if (!m)
        return;
    char id[32], session[160];
    hs_json_str(m, "id", id, sizeof(id));
    hs_json_str(m, "session", session, sizeof(session));
    hs_send_frame(c, true, HS_OP_PING, "", 0);
    atomic_store(&res->empty_answered, pong_is(c, "", 0, 3000));
    hs_send_frame(c, true, HS_OP_PING, "abc", 3);
    atomic_store(&res->payload_answered, pong_is(c, "abc", 3, 3000));
    answer(c, id, session);
    hs_wait_closed(c, 20000);
}

/* RFC 6455 5.5.2: a Ping gets a Pong with the same payload, an empty one
 * included (libcurl 8.14 never shows an empty frame to the write callback). */
static void test_empty_ping_answered(void **state)
{
    (void)state;
    ping_result res = {0};
    hs_server *srv = hs_start("parley.v1", ping_script, &res);
    parley_client_t *c = fixture_client(hs_port(srv), "connections", "1", NULL);
    parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
    uint64_t id;
    assert_int_equal(parley_send(s, "ping me", &id), PARLEY_OK);
    assert_int_equal(recorder_wait_terminals(1, 15), 1);
    recorder_entry r = recorder_get(id);
    parley_client_destroy(c);
    hs_stop(srv);
    assert_int_equal(r.terminal, PARLEY_EVENT_DONE);
    assert_string_equal(r.text, "p0");
    assert_true(atomic_load(&res.empty_answered));
    assert_true(atomic_load(&res.payload_answered));
}

/* ---- a ping flood while the server reads nothing -------------------------- */

#define FLOOD_MS 2000
#define FLOOD_BATCH 256 /* Pings per write */
#define FLOOD_LIMIT (64 * MiB * MEMWATCH_SLACK)

typedef struct flood_state {
    atomic_bool flooded;     /* the flood is over */
    atomic_bool last_answered; /* the Ping after it got its own Pong */
    atomic_ullong pings;
} flood_state;

static void flood_script(hs_conn *c, unsigned index, void *arg)
{
    (void)index;
    flood_state *st = arg;
    hs_send_hello(c, MiB);
    const char *m = hs_read_message(c, 5000);
    if (!m)
        return;
    char id[32], session[160];
    hs_json_str(m, "id", id, sizeof(id));
    hs_json_str(m, "session", session, sizeof(session));
    /* Pings of the largest size (125 bytes), as fast as the client reads
     * them; their Pongs pile up on the client, as nothing is read here. */
    static unsigned char batch[FLOOD_BATCH * 127];
    int64_t end = fixture_now_ms() + FLOOD_MS;
    unsigned long long n = 0;
    while (fixture_now_ms() < end && !hs_stopping(c)) {
        for (unsigned i = 0; i < FLOOD_BATCH; i++, n++) {
            unsigned char *f = batch + i * 127;
            hs_frame_header(f, true, HS_OP_PING, 125);
            memset(f + 2, 'x', 125);
            snprintf((char *)f + 2, 21, "%020llu", n);
            f[22] = 'x';
        }
        if (hs_send_raw(c, batch, sizeof(batch)) != 0)
            break;
        atomic_store(&st->pings, n);
    }
    atomic_store(&st->flooded, true);
    /* Only the latest Ping must be answered (RFC 6455 5.5.3). */
    hs_send_frame(c, true, HS_OP_PING, "last", 4);
    bool last = false;
    int64_t drain_end = fixture_now_ms() + 10000;
    while (!last && fixture_now_ms() < drain_end && !hs_stopping(c))
        last = pong_is(c, "last", 4, (int)(drain_end - fixture_now_ms()));
    atomic_store(&st->last_answered, last);
    answer(c, id, session);
    hs_wait_closed(c, 20000);
}

/* The Pongs waiting to be sent stay bounded: at most one is queued. */
static void test_ping_flood_bounded(void **state)
{
    (void)state;
    flood_state st = {0};
    hs_server *srv = hs_start("parley.v1", flood_script, &st);
    parley_client_t *c = fixture_client(hs_port(srv), "connections", "1", NULL);
    parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
    uint64_t id;
    memwatch w;
    memwatch_start(&w);
    assert_int_equal(parley_send(s, "flood me", &id), PARLEY_OK);
    size_t growth = 0;
    int64_t end = fixture_now_ms() + FLOOD_MS + 10000;
    while (!atomic_load(&st.flooded) && fixture_now_ms() < end) {
        growth = memwatch_sample(&w);
        if (growth > FLOOD_LIMIT)
            break; /* unbounded: stop before it hurts the machine */
        fixture_pause_ms(10);
    }
    growth = memwatch_sample(&w);
    print_message("ping flood: %llu pings in %d ms, resident memory grew %zu KiB "
                  "(limit %u KiB)\n", (unsigned long long)atomic_load(&st.pings), FLOOD_MS,
                  growth / 1024, (unsigned)(FLOOD_LIMIT / 1024));
    if (growth > FLOOD_LIMIT)
        hs_request_stop(srv);
    else
        recorder_wait_terminals(1, 15); /* the server answers after the drain */
    recorder_entry r = recorder_get(id);
    parley_client_destroy(c);
    hs_stop(srv);
    assert_true(growth <= FLOOD_LIMIT);
    assert_true(atomic_load(&st.last_answered));
    assert_int_equal(r.terminal, PARLEY_EVENT_DONE);
}

/* ---- messages that never end --------------------------------------------- */

#define ATTACK_MS 8000

typedef struct endless_case {
    bool fragments; /* endless continuation frames, else one 2^40-byte frame */
    char attacked[32]; /* the id whose message never ends */
} endless_case;

static void endless_script(hs_conn *c, unsigned index, void *arg)
{
    endless_case *ec = arg;
    hs_send_hello(c, MiB);
    if (index > 0) {
        hs_serve_echo(c, 3); /* the connection that replaces it is sane */
        return;
    }
    char id[2][32], session[2][160];
    for (int i = 0; i < 2; i++) {
        const char *m = hs_read_message(c, 5000);
        if (!m)
            return;
        hs_json_str(m, "id", id[i], sizeof(id[i]));
        hs_json_str(m, "session", session[i], sizeof(session[i]));
    }
    for (int i = 0; i < 2; i++) {
        hs_send_textf(c, "{\"type\":\"ack\",\"id\":\"%s\"}", id[i]);
        hs_send_textf(c, "{\"type\":\"text\",\"id\":\"%s\",\"session\":\"%s\",\"seq\":0,"
                      "\"content\":\"p0\"}", id[i], session[i]);
    }
    snprintf(ec->attacked, sizeof(ec->attacked), "%s", id[0]);
    char start[300];
    int n = snprintf(start, sizeof(start), "{\"type\":\"text\",\"id\":\"%s\",\"session\":\"%s\","
                     "\"seq\":1,\"content\":\"", id[0], session[0]);
    if (ec->fragments) {
        hs_send_frame(c, false, HS_OP_TEXT, start, (size_t)n);
    } else {
        unsigned char head[14];
        size_t hl = hs_frame_header(head, true, HS_OP_TEXT, (uint64_t)1 << 40);
        hs_send_raw(c, head, hl);
        hs_send_raw(c, start, (size_t)n);
    }
    static char filler[65536];
    memset(filler, 'x', sizeof(filler));
    int64_t end = fixture_now_ms() + ATTACK_MS;
    while (fixture_now_ms() < end) {
        int rc = ec->fragments ? hs_send_frame(c, false, HS_OP_CONT, filler, 4096)
                               : hs_send_raw(c, filler, sizeof(filler));
        if (rc != 0)
            break; /* the client closed the connection */
    }
    hs_wait_closed(c, 2000); /* read its Close frame */
}

/* Two sessions share the only connection; the server starts a message for
 * one that never ends. The connection is closed with 1009 as soon as the
 * message passes max.message.bytes; that request fails (a repeat would get
 * the same message), the other completes on the next connection. */
static void run_endless(bool fragments)
{
    endless_case ec = {.fragments = fragments};
    hs_server *srv = hs_start("parley.v1", endless_script, &ec);
    parley_client_t *c = fixture_client(hs_port(srv), "connections", "1",
                                        "max.message.bytes", "65536", NULL);
    uint64_t ids[2];
    for (int i = 0; i < 2; i++) {
        parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
        assert_int_equal(parley_send(s, "hold me hostage", &ids[i]), PARLEY_OK);
    }
    int64_t t0 = fixture_now_ms();
    size_t ended = recorder_wait_terminals(2, 6);
    int64_t took = fixture_now_ms() - t0;
    recorder_entry r[2] = {recorder_get(ids[0]), recorder_get(ids[1])};
    parley_client_destroy(c);
    hs_counts counts = hs_get_counts(srv);
    hs_stop(srv); /* the script is over: ec is ours again */
    print_message("%s: both requests ended in %lld ms, %llu connections, close code %u\n",
                  fragments ? "endless fragments" : "2^40-byte frame", (long long)took,
                  (unsigned long long)counts.connections, counts.close_code[0]);
    assert_int_equal(ended, 2);
    int attacked = strtoull(ec.attacked, NULL, 10) == ids[0] ? 0 : 1;
    assert_true(strtoull(ec.attacked, NULL, 10) == ids[attacked]);
    assert_int_equal(r[attacked].terminals, 1);
    assert_int_equal(r[attacked].terminal, PARLEY_EVENT_ERROR);
    assert_int_equal(r[attacked].err, PARLEY_ERR_PROTOCOL);
    assert_non_null(strstr(r[attacked].err_msg, "max.message.bytes"));
    assert_int_equal(r[!attacked].terminals, 1);
    assert_int_equal(r[!attacked].terminal, PARLEY_EVENT_DONE);
    assert_string_equal(r[!attacked].text, "p0p1p2");
    assert_int_equal(r[!attacked].seq_errors, 0);
    assert_int_equal(counts.connections, 2);
    assert_int_equal(counts.close_code[0], 1009);
}

static void test_endless_frame(void **state)
{
    (void)state;
    run_endless(false);
}

static void test_endless_fragments(void **state)
{
    (void)state;
    run_endless(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_empty_ping_answered, setup),
        cmocka_unit_test_setup(test_ping_flood_bounded, setup),
        cmocka_unit_test_setup(test_endless_frame, setup),
        cmocka_unit_test_setup(test_endless_fragments, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
