/*
 * Memory stays bounded against a hostile server (issue 12): the resident
 * memory of the whole process (client and the in-process server) is sampled
 * while a server attacks for a few seconds, and must not grow past a limit
 * of tens of MiB (the attacks would take GBs without their bounds):
 *  - seq gaps and a too-high seq_end, each of which asks for the request
 *    again: the repeats must be coalesced, not queued one copy each;
 *  - an endless valid reply of text pieces;
 *  - valid 1 MiB pieces, each sent as a ~130-byte zstd frame.
 * The last two must end their request with an error naming reply.max.bytes.
 */
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
#include "buf.h"
#include "compress.h"
#include "fixtures.h"
#include "hostile_server.h"
#include "memwatch.h"
#include "recorder.h"

#define TEST_KEY "memory-key"
#define MiB (1024u * 1024u)
#define ATTACK_MS 3000
#define GROWTH_LIMIT (64 * MiB * MEMWATCH_SLACK)
/* The reply bound the tests set (the default is 64 MiB). */
#define REPLY_MAX "4194304"

static int setup(void **state)
{
    (void)state;
    recorder_reset();
    setenv("PARLEY_API_KEY", TEST_KEY, 1);
    setenv("PARLEY_LOG", "error", 0); /* the attacks make warnings by design */
    return 0;
}

/* What a script shares with its test. */
typedef struct attack {
    atomic_bool over;         /* the attack ended */
    atomic_ullong frames;     /* frames it sent */
    atomic_ullong wire_bytes; /* their bytes on the wire (text attacks) */
    atomic_ullong frame_bytes; /* the size of one zstd frame's payload */
} attack;

/* Read the request, ack it; fills id and session. Returns false when the
 * client went away. */
static bool take_request(hs_conn *c, char id[32], char session[160])
{
    hs_send_hello(c, MiB);
    const char *m = hs_read_message(c, 5000);
    if (!m)
        return false;
    hs_json_str(m, "id", id, 32);
    hs_json_str(m, "session", session, 160);
    hs_send_textf(c, "{\"type\":\"ack\",\"id\":\"%s\"}", id);
    return true;
}

/*
 * Run the attack's request: sample resident memory until the attack is over
 * (or passes the limit: the server is then stopped, to spare the machine),
 * then wait for the request's terminal event. Returns the peak growth.
 */
static size_t watch(hs_server *srv, attack *a, const char *what, recorder_entry *out,
                    uint64_t id)
{
    memwatch w;
    memwatch_start(&w);
    size_t growth = 0;
    int64_t end = fixture_now_ms() + ATTACK_MS + 5000;
    while (!atomic_load(&a->over) && fixture_now_ms() < end && growth <= GROWTH_LIMIT) {
        growth = memwatch_sample(&w);
        fixture_pause_ms(10);
    }
    if (growth > GROWTH_LIMIT)
        hs_request_stop(srv); /* and no waiting: the backlog would inflate */
    else
        recorder_wait_terminals(1, 5);
    growth = memwatch_sample(&w);
    *out = recorder_get(id);
    print_message("%s: %llu frames (%llu bytes on the wire%s), resident memory grew %zu KiB "
                  "(limit %u KiB)\n", what, (unsigned long long)atomic_load(&a->frames),
                  (unsigned long long)(atomic_load(&a->wire_bytes)
                                           ? atomic_load(&a->wire_bytes)
                                           : atomic_load(&a->frame_bytes)),
                  atomic_load(&a->wire_bytes) ? "" : " each", growth / 1024,
                  (unsigned)(GROWTH_LIMIT / 1024));
    return growth;
}

/* ---- (a) repeats asked for by seq gaps and a too-high seq_end ------------ */

static void gaps_script(hs_conn *c, unsigned index, void *arg)
{
    attack *a = arg;
    if (index > 0) {
        hs_send_hello(c, MiB);
        hs_serve_echo(c, 3); /* after the attack, a sane server */
        return;
    }
    char id[32], session[160];
    if (!take_request(c, id, session))
        return;
    /* Tiny frames, each asking for the whole request again, and nothing
     * read: every copy would wait in the client's send queue. */
    pl_buf batch = PL_BUF_INIT;
    for (int i = 0; i < 64; i++) {
        char msg[300];
        int n = i % 2
                    ? snprintf(msg, sizeof(msg), "{\"type\":\"text\",\"id\":\"%s\",\"session\":"
                               "\"%s\",\"seq\":1,\"content\":\"x\"}", id, session)
                    : snprintf(msg, sizeof(msg), "{\"type\":\"done\",\"id\":\"%s\",\"session\":"
                               "\"%s\",\"stop_reason\":\"end_turn\",\"seq_end\":5}", id, session);
        unsigned char head[14];
        if (pl_buf_append(&batch, head, hs_frame_header(head, true, HS_OP_TEXT, (uint64_t)n)) ||
            pl_buf_append(&batch, msg, (size_t)n))
            abort(); /* the test's own memory */
    }
    int64_t end = fixture_now_ms() + ATTACK_MS;
    while (fixture_now_ms() < end && hs_send_raw(c, batch.data, batch.len) == 0) {
        atomic_fetch_add(&a->frames, 64);
        atomic_fetch_add(&a->wire_bytes, batch.len);
    }
    pl_buf_free(&batch);
    atomic_store(&a->over, true);
}

/* Each gap or too-high seq_end asks for the request again: the repeats of a
 * request are coalesced (one waits at a time), so a 256 KiB request
 * repeated for every 100-byte frame does not fill memory. */
static void test_seq_gaps_bounded(void **state)
{
    (void)state;
    attack a = {0};
    hs_server *srv = hs_start("parley.v1", gaps_script, &a);
    parley_client_t *c = fixture_client(hs_port(srv), "connections", "1", NULL);
    parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
    char *content = malloc(256 * 1024 + 1);
    memset(content, 'q', 256 * 1024);
    content[256 * 1024] = '\0';
    uint64_t id;
    assert_int_equal(parley_send(s, content, &id), PARLEY_OK);
    free(content);
    recorder_entry r;
    size_t growth = watch(srv, &a, "seq gaps", &r, id);
    parley_client_destroy(c);
    hs_stop(srv);
    assert_true(growth <= GROWTH_LIMIT);
    /* One terminal event: the complete reply from the sane server that took
     * over, or an error if the repeats are held against the request. */
    assert_int_equal(r.terminals, 1);
    if (r.terminal == PARLEY_EVENT_DONE)
        assert_string_equal(r.text, "p0p1p2");
}

/* ---- (b) an endless valid reply ------------------------------------------ */

static void endless_reply_script(hs_conn *c, unsigned index, void *arg)
{
    (void)index;
    attack *a = arg;
    char id[32], session[160];
    if (!take_request(c, id, session))
        return;
    static char piece[256 * 1024 + 1];
    memset(piece, 'a', sizeof(piece) - 1);
    int64_t end = fixture_now_ms() + ATTACK_MS;
    for (unsigned seq = 0; fixture_now_ms() < end; seq++) {
        if (hs_send_textf(c, "{\"type\":\"text\",\"id\":\"%s\",\"session\":\"%s\",\"seq\":%u,"
                          "\"content\":\"%s\"}", id, session, seq, piece) != 0)
            break;
        atomic_fetch_add(&a->frames, 1);
        atomic_fetch_add(&a->wire_bytes, sizeof(piece) + 100);
    }
    atomic_store(&a->over, true);
    hs_wait_closed(c, 20000);
}

static void assert_reply_bound_error(const recorder_entry *r)
{
    assert_int_equal(r->terminals, 1);
    assert_int_equal(r->terminal, PARLEY_EVENT_ERROR);
    print_message("error %s: %s\n", parley_err2name(r->err), r->err_msg);
    assert_non_null(strstr(r->err_msg, "reply.max.bytes"));
}

/* 256 KiB pieces for ever: the request fails once its reply passes
 * reply.max.bytes, and the memory it held is bounded by that. */
static void test_endless_reply_bounded(void **state)
{
    (void)state;
    attack a = {0};
    hs_server *srv = hs_start("parley.v1", endless_reply_script, &a);
    parley_client_t *c = fixture_client(hs_port(srv), "connections", "1",
                                        "reply.max.bytes", REPLY_MAX, NULL);
    parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
    uint64_t id;
    assert_int_equal(parley_send(s, "talk for ever", &id), PARLEY_OK);
    recorder_entry r;
    size_t growth = watch(srv, &a, "endless reply", &r, id);
    parley_client_destroy(c);
    hs_stop(srv);
    assert_true(growth <= GROWTH_LIMIT);
    assert_reply_bound_error(&r);
}

/* ---- (c) 1 MiB pieces in ~130-byte zstd frames ----------------------------- */

static void zstd_script(hs_conn *c, unsigned index, void *arg)
{
    (void)index;
    attack *a = arg;
    char id[32], session[160];
    if (!take_request(c, id, session))
        return;
    /* Each piece a valid message just under max_message_bytes once inflated. */
    size_t fill = MiB - 400;
    char *content = malloc(fill);
    memset(content, 'a', fill);
    int64_t end = fixture_now_ms() + ATTACK_MS;
    for (unsigned seq = 0; fixture_now_ms() < end && !hs_stopping(c); seq++) {
        pl_buf msg = PL_BUF_INIT;
        char head[300];
        int n = snprintf(head, sizeof(head), "{\"type\":\"text\",\"id\":\"%s\",\"session\":\"%s\","
                         "\"seq\":%u,\"content\":\"", id, session, seq);
        if (pl_buf_append(&msg, head, (size_t)n) || pl_buf_append(&msg, content, fill) ||
            pl_buf_append(&msg, "\"}", 2))
            abort(); /* the test's own memory */
        if (seq == 0) {
            pl_buf z = PL_BUF_INIT;
            pl_compress(PL_COMPRESS_ZSTD, 1, NULL, msg.data, msg.len, &z);
            atomic_store(&a->frame_bytes, z.len);
            pl_buf_free(&z);
        }
        int rc = hs_send_zstd(c, msg.data, msg.len);
        atomic_fetch_add(&a->frames, 1);
        pl_buf_free(&msg);
        if (rc != 0)
            break;
    }
    free(content);
    atomic_store(&a->over, true);
    hs_wait_closed(c, 20000);
}

/* A few bytes on the wire, 1 MiB each once inflated: the reply bound is on
 * what is delivered, not on what was received. */
static void test_zstd_pieces_bounded(void **state)
{
    (void)state;
    attack a = {0};
    hs_server *srv = hs_start("parley.v1.zstd", zstd_script, &a);
    parley_client_t *c = fixture_client(hs_port(srv), "connections", "1",
                                        "reply.max.bytes", REPLY_MAX, NULL);
    parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
    uint64_t id;
    assert_int_equal(parley_send(s, "inflate me", &id), PARLEY_OK);
    recorder_entry r;
    size_t growth = watch(srv, &a, "1 MiB zstd pieces", &r, id);
    parley_client_destroy(c);
    hs_stop(srv);
    assert_true(growth <= GROWTH_LIMIT);
    assert_reply_bound_error(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_seq_gaps_bounded, setup),
        cmocka_unit_test_setup(test_endless_reply_bounded, setup),
        cmocka_unit_test_setup(test_zstd_pieces_bounded, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
