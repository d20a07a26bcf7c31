/*
 * End to end against the reference server running in-process: exact reply
 * texts over many concurrent sessions and turns, connection sharing, clear
 * errors for a wrong key and for no server, and exactly one terminal event per
 * accepted request, also at destroy.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "parley.h"
#include "refserver.h"

#define TEST_KEY "test-key-0123456789"

/* ---- a recording callback ---------------------------------------------- */

typedef struct record {
    uint64_t id;
    char text[512];        /* pieces in arrival order */
    size_t text_len;
    char done_content[512];
    uint32_t next_seq;
    int seq_errors;
    int terminals;
    parley_event_type_t terminal;
    parley_err_t err;
    char err_msg[512];
} record;

typedef struct recorder {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    record *recs;
    size_t nrecs, cap;
    size_t terminals;
    /* Optional: chain turns from the callback. */
    const char *const *chain;
    int chain_len;
} recorder;

static recorder rec;

static void recorder_reset(void)
{
    free(rec.recs);
    memset(&rec, 0, sizeof(rec));
    pthread_mutex_init(&rec.mu, NULL);
    pthread_cond_init(&rec.cv, NULL);
}

static record *find_locked(uint64_t id)
{
    for (size_t i = 0; i < rec.nrecs; i++)
        if (rec.recs[i].id == id)
            return &rec.recs[i];
    if (rec.nrecs == rec.cap) {
        rec.cap = rec.cap ? rec.cap * 2 : 256;
        rec.recs = realloc(rec.recs, rec.cap * sizeof(*rec.recs));
    }
    record *r = &rec.recs[rec.nrecs++];
    memset(r, 0, sizeof(*r));
    r->id = id;
    return r;
}

static void on_event(parley_client_t *client, const parley_event_t *ev, void *opaque)
{
    (void)client;
    (void)opaque;
    size_t len;
    const char *content = parley_event_content(ev, &len);
    parley_event_type_t type = parley_event_type(ev);
    pthread_mutex_lock(&rec.mu);
    record *r = find_locked(parley_event_request_id(ev));
    if (type == PARLEY_EVENT_TEXT) {
        if (parley_event_seq(ev) != r->next_seq)
            r->seq_errors++;
        r->next_seq++;
        if (r->text_len + len < sizeof(r->text)) {
            memcpy(r->text + r->text_len, content, len);
            r->text_len += len;
        }
    } else {
        r->terminals++;
        r->terminal = type;
        r->err = parley_event_error(ev);
        snprintf(type == PARLEY_EVENT_DONE ? r->done_content : r->err_msg,
                 sizeof(r->err_msg), "%.*s", (int)len, content);
        rec.terminals++;
        pthread_cond_broadcast(&rec.cv);
    }
    pthread_mutex_unlock(&rec.mu);
}

/* Wait until n terminal events arrived, at most `seconds`. */
static size_t wait_terminals(size_t n, int seconds)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += seconds;
    pthread_mutex_lock(&rec.mu);
    while (rec.terminals < n)
        if (pthread_cond_timedwait(&rec.cv, &rec.mu, &deadline) != 0)
            break;
    size_t got = rec.terminals;
    pthread_mutex_unlock(&rec.mu);
    return got;
}

static record *lookup(uint64_t id)
{
    for (size_t i = 0; i < rec.nrecs; i++)
        if (rec.recs[i].id == id)
            return &rec.recs[i];
    return NULL;
}

/* ---- fixtures ----------------------------------------------------------- */

static pl_refserver *start_server(const char *key, unsigned token_ms, unsigned chunk)
{
    pl_refserver_opts o;
    pl_refserver_opts_init(&o);
    o.api_key = key;
    o.token_ms = token_ms;
    o.chunk_bytes = chunk;
    o.quiet = 1;
    char err[256];
    pl_refserver *srv = pl_refserver_start(&o, err, sizeof(err));
    if (!srv)
        fail_msg("refserver: %s", err);
    return srv;
}

static parley_client_t *make_client(int port, const char *connections)
{
    parley_conf_t *conf = parley_conf_new();
    char url[128], err[512];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/v1/stream", port);
    assert_int_equal(parley_conf_set(conf, "endpoint", url, err, sizeof(err)), PARLEY_OK);
    assert_int_equal(parley_conf_set(conf, "workers", "2", err, sizeof(err)), PARLEY_OK);
    assert_int_equal(parley_conf_set(conf, "connections", connections, err, sizeof(err)),
                     PARLEY_OK);
    parley_conf_set_event_cb(conf, on_event, NULL);
    parley_client_t *c = parley_client_new(conf, err, sizeof(err));
    if (!c)
        fail_msg("parley_client_new: %s", err);
    assert_int_equal(parley_start(c), PARLEY_OK);
    return c;
}

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
    pl_refserver *srv = start_server(TEST_KEY, 0, 5);
    parley_client_t *c = make_client(pl_refserver_port(srv), "3");
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
    assert_int_equal(wait_terminals(CONC_SESSIONS * CONC_TURNS, 1), CONC_SESSIONS * CONC_TURNS);
    for (int i = 0; i < CONC_SESSIONS; i++)
        for (int t = 0; t < CONC_TURNS; t++) {
            record *r = lookup(ids[i][t]);
            assert_non_null(r);
            char want[96];
            expected_reply(want, sizeof(want), t + 1, text[i][t]);
            assert_int_equal(r->terminals, 1);
            assert_int_equal(r->terminal, PARLEY_EVENT_DONE);
            assert_int_equal(r->seq_errors, 0);
            assert_string_equal(r->text, want);
            assert_string_equal(r->done_content, want);
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
    pl_refserver *srv = start_server(TEST_KEY, 0, 16);
    parley_client_t *c = make_client(pl_refserver_port(srv), "1");
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

#define MANY_SESSIONS 1000

/* A thousand sessions share two connections. */
static void test_thousand_sessions_two_connections(void **state)
{
    (void)state;
    pl_refserver *srv = start_server(TEST_KEY, 0, 16);
    parley_client_t *c = make_client(pl_refserver_port(srv), "2");
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
        record *r0 = lookup(ids[i][0]), *r1 = lookup(ids[i][1]);
        assert_non_null(r0);
        assert_non_null(r1);
        assert_string_equal(r0->done_content, "[turn 1] ping");
        assert_string_equal(r1->done_content, "[turn 2] pong");
        assert_int_equal(r0->terminals + r1->terminals, 2);
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
    pl_refserver *srv = start_server("the-right-key", 0, 16);
    parley_client_t *c = make_client(pl_refserver_port(srv), "1");
    parley_session_t *s = parley_session_open(c, "auth", NULL, 0);
    uint64_t id;
    assert_int_equal(parley_send(s, "hello", &id), PARLEY_OK);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    record *r = lookup(id);
    assert_non_null(r);
    assert_int_equal(r->terminals, 1);
    assert_int_equal(r->terminal, PARLEY_EVENT_ERROR);
    assert_int_equal(r->err, PARLEY_ERR_UNAUTHORIZED);
    assert_non_null(strstr(r->err_msg, "unauthorized"));
    assert_null(strstr(r->err_msg, TEST_KEY));      /* never the key */
    assert_null(strstr(r->err_msg, "the-right-key"));
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

/* A port nobody listens on: bind one, then close it. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_no_server_is_a_clear_error(void **state)
{
    (void)state;
    parley_client_t *c = make_client(closed_port(), "1");
    parley_session_t *s = parley_session_open(c, "nobody", NULL, 0);
    uint64_t id1, id2;
    assert_int_equal(parley_send(s, "anyone?", &id1), PARLEY_OK);
    assert_int_equal(parley_send(s, "still?", &id2), PARLEY_OK);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    for (int k = 0; k < 2; k++) {
        record *r = lookup(k ? id2 : id1);
        assert_non_null(r);
        assert_int_equal(r->terminals, 1);
        assert_int_equal(r->err, PARLEY_ERR_CONNECT);
        assert_non_null(strstr(r->err_msg, "could not connect to ws://127.0.0.1:"));
    }
    parley_client_destroy(c);
}

/* Destroy with requests in flight and waiting: each gets exactly one terminal
 * event before destroy returns, and nothing arrives after. */
static void test_destroy_ends_every_request(void **state)
{
    (void)state;
    pl_refserver *srv = start_server(TEST_KEY, 200, 1); /* slow replies */
    parley_client_t *c = make_client(pl_refserver_port(srv), "2");
    enum { N = 50 };
    uint64_t ids[N][2];
    for (int i = 0; i < N; i++) {
        parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
        assert_int_equal(parley_send(s, "a long enough message", &ids[i][0]), PARLEY_OK);
        assert_int_equal(parley_send(s, "and a waiting one", &ids[i][1]), PARLEY_OK);
    }
    assert_int_equal(parley_flush(c, 100), PARLEY_ERR_TIMED_OUT);
    parley_client_destroy(c);
    pthread_mutex_lock(&rec.mu);
    size_t after_destroy = rec.terminals;
    pthread_mutex_unlock(&rec.mu);
    assert_int_equal(after_destroy, 2 * N);
    for (int i = 0; i < N; i++)
        for (int t = 0; t < 2; t++) {
            record *r = lookup(ids[i][t]);
            assert_non_null(r);
            assert_int_equal(r->terminals, 1);
            assert_int_equal(r->err, PARLEY_ERR_SHUTDOWN);
        }
    pl_refserver_stop(srv);
}

/* ---- a callback that sends the next turn and closes the session ---------- */

static parley_session_t *chained;
static int chained_turns;

static void on_event_chain(parley_client_t *client, const parley_event_t *ev, void *opaque)
{
    on_event(client, ev, opaque);
    if (parley_event_type(ev) != PARLEY_EVENT_DONE)
        return;
    if (++chained_turns < 5)
        assert_int_equal(parley_send(chained, "again", NULL), PARLEY_OK);
    else
        parley_session_close(chained);
    /* flush from a callback would wait for itself: refused. */
    assert_int_equal(parley_flush(client, 0), PARLEY_ERR_STATE);
}

static void test_callback_sends_and_closes(void **state)
{
    (void)state;
    pl_refserver *srv = start_server(TEST_KEY, 0, 16);
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
    pthread_mutex_lock(&rec.mu);
    int fifth = 0;
    for (size_t i = 0; i < rec.nrecs; i++)
        fifth += strcmp(rec.recs[i].done_content, "[turn 5] again") == 0;
    pthread_mutex_unlock(&rec.mu);
    assert_int_equal(fifth, 1);
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

static void test_send_rejects_bad_input(void **state)
{
    (void)state;
    parley_client_t *c = make_client(closed_port(), "1");
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
    assert_int_equal(rec.terminals, 0); /* nothing accepted, nothing delivered */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_concurrent_sessions_exact_replies, setup),
        cmocka_unit_test_setup(test_history_on_the_wire, setup),
        cmocka_unit_test_setup(test_thousand_sessions_two_connections, setup),
        cmocka_unit_test_setup(test_wrong_key_is_unauthorized, setup),
        cmocka_unit_test_setup(test_no_server_is_a_clear_error, setup),
        cmocka_unit_test_setup(test_destroy_ends_every_request, setup),
        cmocka_unit_test_setup(test_callback_sends_and_closes, setup),
        cmocka_unit_test_setup(test_send_rejects_bad_input, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
