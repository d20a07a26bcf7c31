/*
 * The route table's decisions (engine/route_policy.c) without curl: a fake
 * transport records the operations the router asks of it and fires the
 * events a real one would; a fake clock moves only when a test moves it.
 * Retry budget, backoff, retry_after, deadlines, stalls and their trials,
 * resume over HTTP, gaps, the reply bound, session mismatch, cancels, every
 * kind of failure, and no timer left behind.
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

#include "route_policy.h"

/* ---- the fake clock ------------------------------------------------------ */

static int64_t fake_now;

static int64_t fake_clock(void)
{
    return fake_now;
}

/* ---- the fake transport -------------------------------------------------- */

typedef struct fake_transport {
    pl_transport base;
    char conn_a, conn_b;       /* two connections, by address */
    /* What the router asked. */
    unsigned starts, resends, cancels, caller_cancels, detaches, trials;
    const void *last_avoid;
    /* How it answers. */
    pl_tx_start start_answer;
    int64_t start_wait_ms;
    bool cancel_reaches_server;
    bool on_wire;              /* a placed request is sent at once */
} fake_transport;

static fake_transport *fake_of(pl_transport *t)
{
    return (fake_transport *)t;
}

static pl_tx_start fake_start(pl_transport *t, pl_tx_req *q, const void *avoid, int64_t now,
                              int64_t *wait_ms, pl_failure *f, char *msg, size_t msg_size)
{
    (void)now;
    fake_transport *x = fake_of(t);
    x->starts++;
    x->last_avoid = avoid;
    if (x->start_answer == PL_TX_WAIT) {
        *wait_ms = x->start_wait_ms;
        return PL_TX_WAIT;
    }
    if (x->start_answer == PL_TX_FAILED) {
        *f = (pl_failure){.kind = PL_FAIL_START, .err = PARLEY_ERR_CONNECT};
        snprintf(msg, msg_size, "could not start");
        return PL_TX_FAILED;
    }
    q->on = avoid == &x->conn_a ? &x->conn_b : &x->conn_a;
    return PL_TX_PLACED;
}

static void fake_resend(pl_transport *t, pl_tx_req *q)
{
    (void)q;
    fake_of(t)->resends++;
}

static bool fake_cancel(pl_transport *t, pl_tx_req *q, bool by_caller)
{
    fake_transport *x = fake_of(t);
    x->cancels++;
    x->caller_cancels += by_caller;
    return q->on && x->cancel_reaches_server;
}

static void fake_detach(pl_transport *t, pl_tx_req *q)
{
    if (q->on)
        fake_of(t)->detaches++;
    q->on = NULL;
}

static bool fake_sent(const pl_transport *t, const pl_tx_req *q)
{
    return q->on && ((const fake_transport *)t)->on_wire;
}

static bool fake_trial(pl_transport *t, pl_tx_req *q, int64_t now, const char *msg)
{
    (void)q, (void)now, (void)msg;
    fake_of(t)->trials++;
    return true; /* the verdict comes later: the test fires it */
}

static const pl_transport_ops native_ops = {
    .can_resume = true, .logs_connections = true,
    .start = fake_start, .resend = fake_resend, .cancel = fake_cancel,
    .detach = fake_detach, .sent = fake_sent, .trial = fake_trial,
};

static const pl_transport_ops http_ops = {
    .can_resume = false, .logs_connections = false,
    .start = fake_start, .resend = fake_resend, .cancel = fake_cancel,
    .detach = fake_detach, .sent = fake_sent, .trial = fake_trial,
};

/* ---- the fake sink --------------------------------------------------------- */

typedef struct outcome {
    unsigned pieces, dones, errors, releases;
    char stop_reason[32];
    uint64_t output_tokens;
    parley_err_t err;
    char message[900];
} outcome;

static outcome out;

static void sink_piece(void *owner, uint64_t id, uint32_t seq, const pl_piece *piece)
{
    (void)owner, (void)id, (void)seq, (void)piece;
    out.pieces++;
}

static void sink_done(void *owner, uint64_t id, const pl_reply_end *end)
{
    (void)owner, (void)id;
    out.dones++;
    snprintf(out.stop_reason, sizeof(out.stop_reason), "%s", end->stop_reason);
    out.output_tokens = end->output_tokens;
}

static void sink_error(void *owner, uint64_t id, parley_err_t err, const char *message)
{
    (void)owner, (void)id;
    out.errors++;
    out.err = err;
    snprintf(out.message, sizeof(out.message), "%s", message);
}

static void sink_release(void *owner)
{
    (void)owner;
    out.releases++;
}

static const pl_io_sink sink = {.piece = sink_piece, .done = sink_done, .error = sink_error,
                                .release = sink_release};

/* ---- the fixture ------------------------------------------------------------ */

typedef struct fixture {
    pl_router rt;
    fake_transport tx;
    pl_counters counters;
    pl_logger log;
    uint64_t rng;
    const pl_tx_events *ev;
} fixture;

static fixture fx;

static pl_policy_conf default_conf(void)
{
    return (pl_policy_conf){.retry_max_attempts = 3,
                            .retry_backoff_ms = 100,
                            .retry_backoff_max_ms = 1000,
                            .request_timeout_ms = 0,
                            .stall_timeout_ms = 0,
                            .reply_max_bytes = 1 << 20,
                            .endpoint_shown = "fake://server"};
}

static void setup_with(const pl_policy_conf *conf, const pl_transport_ops *ops)
{
    memset(&fx, 0, sizeof(fx));
    memset(&out, 0, sizeof(out));
    fake_now = 1000000;
    fx.log.level = 0; /* nothing logged */
    fx.rng = 0x9E3779B97F4A7C15ull;
    fx.tx.base.ops = ops;
    fx.tx.on_wire = true;
    fx.tx.cancel_reaches_server = true;
    pl_router_init(&fx.rt, conf, &sink, &fx.counters, &fx.log, &fx.rng, fake_clock);
    pl_router_set_transport(&fx.rt, &fx.tx.base);
    fx.ev = pl_router_events(&fx.rt);
}

static void teardown_router(void)
{
    pl_router_fail_all(&fx.rt, PARLEY_ERR_SHUTDOWN, "test over");
    pl_router_free(&fx.rt);
}

static void send_request(uint64_t id)
{
    char *frame = strdup("{\"type\":\"message\"}");
    pl_router_send(&fx.rt, id, NULL, "s1", frame, strlen(frame), NULL, false, fake_now);
}

static pl_tx_req *request(uint64_t id)
{
    return fx.ev->lookup(fx.ev->ctx, id);
}

static void advance(int64_t ms)
{
    fake_now += ms;
    pl_router_run_timers(&fx.rt, fake_now);
}

static void fail_with(uint64_t id, pl_fail_kind kind, parley_err_t err, int64_t retry_after)
{
    pl_failure f = {.kind = kind, .err = err};
    fx.ev->failed(fx.ev->ctx, request(id), &f, "it failed", retry_after);
}

static void piece(uint64_t id, uint32_t seq, const char *session, const char *text)
{
    pl_piece p = {.kind = PL_PIECE_TEXT, .text = text, .len = strlen(text)};
    fx.ev->piece(fx.ev->ctx, request(id), seq, session, &p);
}

static void done(uint64_t id, uint32_t seq_end, const char *session, const char *reason)
{
    pl_tx_done d = {.seq_end = seq_end, .session = session,
                    .end = {.stop_reason = reason, .output_tokens = 7}};
    fx.ev->done(fx.ev->ctx, request(id), &d);
}

/* ---- retries --------------------------------------------------------------- */

/* retry.max.attempts sends in a row fail, then the request ends with the
 * last failure, saying how many sends were made. */
static void test_retry_budget(void **state)
{
    (void)state;
    pl_policy_conf conf = default_conf();
    setup_with(&conf, &native_ops);
    send_request(1);
    assert_int_equal(fx.tx.starts, 1);
    for (int i = 1; i < 3; i++) {
        fail_with(1, PL_FAIL_NETWORK, PARLEY_ERR_CONNECT, -1);
        assert_int_equal(out.errors, 0);
        advance(1000); /* past any backoff */
        assert_int_equal(fx.tx.starts, (unsigned)i + 1);
    }
    fail_with(1, PL_FAIL_NETWORK, PARLEY_ERR_CONNECT, -1);
    assert_int_equal(out.errors, 1);
    assert_int_equal(out.err, PARLEY_ERR_CONNECT);
    assert_non_null(strstr(out.message, "(after 3 attempts)"));
    assert_int_equal(out.releases, 1);
    assert_int_equal(pl_router_count(&fx.rt), 0);
    assert_int_equal(fx.counters.retries, 2);
    teardown_router();
}

/* The backoff doubles per attempt, minus up to 25 % jitter, up to its cap:
 * nothing is sent before it, something right after. */
static void test_backoff(void **state)
{
    (void)state;
    pl_policy_conf conf = default_conf();
    conf.retry_max_attempts = 10;
    setup_with(&conf, &native_ops);
    send_request(1);
    int64_t full = 100;
    for (unsigned i = 1; i <= 5; i++) {
        fail_with(1, PL_FAIL_NETWORK, PARLEY_ERR_CONNECT, -1);
        advance(full * 3 / 4 - 1); /* the least the jitter allows, less 1 */
        assert_int_equal(fx.tx.starts, i);
        advance(full - full * 3 / 4 + 1);
        assert_int_equal(fx.tx.starts, i + 1);
        full = full * 2 < 1000 ? full * 2 : 1000;
    }
    teardown_router();
}

/* A transport that asks to wait (every connection on trial) costs no
 * attempt, and the router asks again when told. */
static void test_wait_is_not_an_attempt(void **state)
{
    (void)state;
    pl_policy_conf conf = default_conf();
    conf.retry_max_attempts = 1;
    setup_with(&conf, &native_ops);
    fx.tx.start_answer = PL_TX_WAIT;
    fx.tx.start_wait_ms = 500;
    send_request(1);
    for (int i = 0; i < 5; i++)
        advance(500);
    assert_int_equal(fx.tx.starts, 6);
    fx.tx.start_answer = PL_TX_PLACED;
    advance(500);
    assert_int_equal(fx.tx.starts, 7);
    piece(1, 0, NULL, "hi");
    done(1, 1, NULL, "end_turn");
    assert_int_equal(out.dones, 1);
    assert_int_equal(out.errors, 0);
    teardown_router();
}

/* The server's retry_after_ms is obeyed exactly, up to 60 s: 2^63-1 waits
 * 60 s, not forever. */
static void test_retry_after_clamp(void **state)
{
    (void)state;
    pl_policy_conf conf = default_conf();
    setup_with(&conf, &native_ops);
    send_request(1);
    fail_with(1, PL_FAIL_SERVER, PARLEY_ERR_RATE_LIMITED, 500);
    advance(499);
    assert_int_equal(fx.tx.starts, 1);
    advance(1);
    assert_int_equal(fx.tx.starts, 2);
    fail_with(1, PL_FAIL_SERVER, PARLEY_ERR_OVERLOADED, INT64_MAX);
    advance(59999);
    assert_int_equal(fx.tx.starts, 2);
    advance(1);
    assert_int_equal(fx.tx.starts, 3);
    assert_int_equal(out.errors, 0);
    teardown_router();
}

/* A retry_after past request.timeout.ms ends the request now, with the
 * server's error rather than a time-out later. */
static void test_retry_after_past_deadline(void **state)
{
    (void)state;
    pl_policy_conf conf = default_conf();
    conf.request_timeout_ms = 10000;
    setup_with(&conf, &native_ops);
    send_request(1);
    fail_with(1, PL_FAIL_SERVER, PARLEY_ERR_RATE_LIMITED, 20000);
    assert_int_equal(out.errors, 1);
    assert_int_equal(out.err, PARLEY_ERR_RATE_LIMITED);
    assert_non_null(strstr(out.message, "past request.timeout.ms"));
    assert_int_equal(fx.tx.starts, 1);
    teardown_router();
}

/* ---- deadlines and stalls -------------------------------------------------- */

/* request.timeout.ms ends the request and tells the server to stop. */
static void test_deadline_cancels_at_server(void **state)
{
    (void)state;
    pl_policy_conf conf = default_conf();
    conf.request_timeout_ms = 5000;
    setup_with(&conf, &native_ops);
    send_request(1);
    advance(4999);
    assert_int_equal(out.errors, 0);
    advance(1);
    assert_int_equal(out.errors, 1);
    assert_int_equal(out.err, PARLEY_ERR_TIMED_OUT);
    assert_int_equal(fx.tx.cancels, 1);
    assert_int_equal(fx.tx.caller_cancels, 0);
    teardown_router();
}

/* A stall puts the connection on trial; acquitted, the request was slow on
 * its own: it is sent again elsewhere (avoiding that connection) and pays
 * an attempt, so with one attempt it fails. */
static void test_stall_acquitted(void **state)
{
    (void)state;
    pl_policy_conf conf = default_conf();
    conf.stall_timeout_ms = 1000;
    conf.retry_max_attempts = 2;
    setup_with(&conf, &native_ops);
    send_request(1);
    fx.ev->acked(fx.ev->ctx, request(1));
    const void *first = request(1)->on;
    advance(999);
    assert_int_equal(fx.tx.trials, 0);
    advance(1);
    assert_int_equal(fx.tx.trials, 1);
    assert_int_equal(fx.counters.stalls, 1);
    advance(5000); /* on trial: no second trial while the verdict is out */
    assert_int_equal(fx.tx.trials, 1);
    fx.ev->acquitted(fx.ev->ctx, request(1), first, fake_now);
    assert_int_equal(fx.tx.starts, 2);
    assert_ptr_equal(fx.tx.last_avoid, first);
    assert_ptr_not_equal(request(1)->on, first);
    /* The second send is acked and stalls too: acquitted again, the budget
     * is spent (an ack of a repeat gives no attempt back). */
    fx.ev->acked(fx.ev->ctx, request(1));
    advance(1000);
    assert_int_equal(fx.tx.trials, 2);
    fx.ev->acquitted(fx.ev->ctx, request(1), request(1)->on, fake_now);
    assert_int_equal(out.errors, 1);
    assert_int_equal(out.err, PARLEY_ERR_TIMED_OUT);
    assert_non_null(strstr(out.message, "stalled"));
    teardown_router();
}

/* Found dead, the connection pays: its requests resume at once, free of
 * charge, however often it happens. */
static void test_stall_dead_is_free(void **state)
{
    (void)state;
    pl_policy_conf conf = default_conf();
    conf.stall_timeout_ms = 1000;
    conf.retry_max_attempts = 2;
    setup_with(&conf, &native_ops);
    send_request(1);
    pl_failure dead = {.kind = PL_FAIL_LOST, .err = PARLEY_ERR_CONNECTION_LOST,
                       .resumable = true};
    for (unsigned i = 1; i <= 5; i++) {
        advance(1000);
        assert_int_equal(fx.tx.trials, i);
        fx.ev->lost(fx.ev->ctx, request(1), &dead, "dead", PL_BLAME_CONN);
        advance(1); /* at once, not after a backoff */
        assert_int_equal(fx.tx.starts, i + 1);
    }
    assert_int_equal(out.errors, 0);
    /* A connection that never worked: the request pays and backs off, the
     * five free losses before counting for nothing. */
    fx.ev->lost(fx.ev->ctx, request(1), &dead, "never worked", PL_BLAME_REQ);
    advance(74);
    assert_int_equal(fx.tx.starts, 6);
    advance(26);
    assert_int_equal(fx.tx.starts, 7);
    assert_int_equal(out.errors, 0);
    fx.ev->lost(fx.ev->ctx, request(1), &dead, "never worked", PL_BLAME_REQ);
    assert_int_equal(out.errors, 1);
    assert_int_equal(out.err, PARLEY_ERR_CONNECTION_LOST);
    teardown_router();
}

/* Anything well-formed the server says about a request restarts its stall
 * clock: an ack, a piece, any other message (a long thinking phase, SSE
 * pings), a piece repeated or out of order. */
static void test_heard_from_moves_stall(void **state)
{
    (void)state;
    pl_policy_conf conf = default_conf();
    conf.stall_timeout_ms = 1000;
    setup_with(&conf, &native_ops);
    send_request(1);
    advance(900);
    fx.ev->acked(fx.ev->ctx, request(1));
    advance(900);
    piece(1, 0, NULL, "a");
    for (int i = 0; i < 100; i++) { /* thinking for 90 s */
        advance(900);
        fx.ev->alive(fx.ev->ctx, request(1));
    }
    advance(900);
    fx.ev->acked(fx.ev->ctx, request(1)); /* an ack of a repeat */
    advance(900);
    piece(1, 0, NULL, "a"); /* a repeat catching up */
    advance(999);
    assert_int_equal(fx.tx.trials, 0);
    advance(1);
    assert_int_equal(fx.tx.trials, 1);
    /* Heard from while on trial: not stalled, and watched again. */
    fx.ev->alive(fx.ev->ctx, request(1));
    advance(999);
    assert_int_equal(fx.tx.trials, 1);
    advance(1);
    assert_int_equal(fx.tx.trials, 2);
    assert_int_equal(out.errors, 0);
    teardown_router();
}

/* Over HTTP a reply that started cannot resume: a stall after a piece ends
 * the request without a trial, and so does a lost stream. */
static void test_http_no_resume_after_pieces(void **state)
{
    (void)state;
    pl_policy_conf conf = default_conf();
    conf.stall_timeout_ms = 1000;
    setup_with(&conf, &http_ops);
    send_request(1);
    piece(1, 0, NULL, "a");
    advance(1000);
    assert_int_equal(fx.tx.trials, 0);
    assert_int_equal(out.errors, 1);
    assert_int_equal(out.err, PARLEY_ERR_TIMED_OUT);
    assert_non_null(strstr(out.message, "cannot resume"));

    send_request(2);
    piece(2, 0, NULL, "a");
    pl_failure lost = {.kind = PL_FAIL_LOST, .err = PARLEY_ERR_CONNECTION_LOST,
                       .started = true};
    fx.ev->failed(fx.ev->ctx, request(2), &lost, "stream ended", -1);
    assert_int_equal(out.errors, 2);
    assert_int_equal(out.err, PARLEY_ERR_CONNECTION_LOST);
    assert_int_equal(fx.tx.starts, 2);

    /* Before any piece, a stall goes to trial as on the native path. */
    send_request(3);
    advance(1000);
    assert_int_equal(fx.tx.trials, 1);
    teardown_router();
}

/* ---- what the server sends -------------------------------------------------- */

/* A gap asks for a repeat from the first missing piece, once per position;
 * past 16 repeats the request gives up and the server is told to stop. */
static void test_gap_repeats(void **state)
{
    (void)state;
    pl_policy_conf conf = default_conf();
    setup_with(&conf, &native_ops);
    send_request(1);
    piece(1, 2, NULL, "c");
    assert_int_equal(fx.tx.resends, 1);
    piece(1, 3, NULL, "d"); /* the old stream goes on: the repeat answers it */
    done(1, 4, NULL, "end_turn");
    assert_int_equal(fx.tx.resends, 1);
    assert_int_equal(out.pieces, 0);
    for (uint32_t seq = 0; seq < 15; seq++) {
        piece(1, seq, NULL, "x");
        piece(1, seq + 2, NULL, "z");
    }
    assert_int_equal(fx.tx.resends, 16);
    assert_int_equal(out.errors, 0);
    piece(1, 15, NULL, "x");
    piece(1, 17, NULL, "z");
    assert_int_equal(fx.tx.resends, 16);
    assert_int_equal(out.errors, 1);
    assert_int_equal(out.err, PARLEY_ERR_PROTOCOL);
    assert_int_equal(fx.tx.cancels, 1);
    teardown_router();
}

/* reply.max.bytes bounds the text: the piece that passes it fails the
 * request, which the server is told to stop. */
static void test_reply_bound(void **state)
{
    (void)state;
    pl_policy_conf conf = default_conf();
    conf.reply_max_bytes = 10;
    setup_with(&conf, &native_ops);
    send_request(1);
    piece(1, 0, NULL, "123456");
    piece(1, 1, NULL, "7890");
    assert_int_equal(out.pieces, 2);
    piece(1, 2, NULL, "!");
    assert_int_equal(out.pieces, 2);
    assert_int_equal(out.errors, 1);
    assert_int_equal(out.err, PARLEY_ERR_REPLY_TOO_LARGE);
    assert_int_equal(fx.tx.cancels, 1);
    teardown_router();
}

/* A message naming another session fails the request (piece or done). */
static void test_session_mismatch(void **state)
{
    (void)state;
    pl_policy_conf conf = default_conf();
    setup_with(&conf, &native_ops);
    send_request(1);
    piece(1, 0, "s1", "ok");
    piece(1, 1, "s2", "not ours");
    assert_int_equal(out.pieces, 1);
    assert_int_equal(out.errors, 1);
    assert_int_equal(out.err, PARLEY_ERR_PROTOCOL);
    assert_non_null(strstr(out.message, "belongs to session \"s1\", not \"s2\""));
    send_request(2);
    done(2, PL_TX_SEQ_NONE, "s3", "end_turn");
    assert_int_equal(out.dones, 0);
    assert_int_equal(out.errors, 2);
    assert_int_equal(fx.tx.cancels, 2);
    teardown_router();
}

/* ---- cancels ----------------------------------------------------------------- */

/* Waiting for a retry, a cancel ends the request at once; in flight, the
 * server is told and answers with done; where it cannot be told (HTTP), the
 * request ends at once. */
static void test_cancel(void **state)
{
    (void)state;
    pl_policy_conf conf = default_conf();
    setup_with(&conf, &native_ops);
    send_request(1);
    fail_with(1, PL_FAIL_NETWORK, PARLEY_ERR_CONNECT, -1);
    pl_router_cancel(&fx.rt, 1);
    assert_int_equal(out.dones, 1);
    assert_string_equal(out.stop_reason, "cancelled");
    assert_int_equal(fx.tx.cancels, 0);
    assert_null(request(1));

    send_request(2);
    piece(2, 0, NULL, "a");
    pl_router_cancel(&fx.rt, 2);
    pl_router_cancel(&fx.rt, 2); /* twice: one cancel */
    assert_int_equal(fx.tx.caller_cancels, 1);
    assert_int_equal(out.dones, 1);
    done(2, 1, NULL, "cancelled");
    assert_int_equal(out.dones, 2);
    assert_int_equal(out.output_tokens, 7);

    /* A server error after the cancel ends it: no retry of a cancelled turn. */
    send_request(3);
    pl_router_cancel(&fx.rt, 3);
    fail_with(3, PL_FAIL_SERVER, PARLEY_ERR_OVERLOADED, -1);
    assert_int_equal(out.errors, 1);
    assert_int_equal(fx.tx.starts, 3);

    /* Its connection lost, a cancelled request ends as cancelled. */
    send_request(4);
    pl_router_cancel(&fx.rt, 4);
    pl_failure lost = {.kind = PL_FAIL_LOST, .err = PARLEY_ERR_CONNECTION_LOST,
                       .resumable = true};
    fx.ev->lost(fx.ev->ctx, request(4), &lost, "lost", PL_BLAME_CONN);
    assert_int_equal(out.dones, 3);

    fx.tx.cancel_reaches_server = false;
    send_request(5);
    pl_router_cancel(&fx.rt, 5);
    assert_int_equal(out.dones, 4);
    assert_null(request(5));
    assert_int_equal(out.releases, 5);
    teardown_router();
}

/* ---- every kind of failure ------------------------------------------------------ */

typedef struct kind_case {
    pl_failure f;
    bool retried;
} kind_case;

static void test_every_failure_kind(void **state)
{
    (void)state;
    static const kind_case cases[] = {
        {{.kind = PL_FAIL_START, .err = PARLEY_ERR_CONNECT}, true},
        {{.kind = PL_FAIL_NETWORK, .err = PARLEY_ERR_CONNECT}, true},
        {{.kind = PL_FAIL_TLS, .err = PARLEY_ERR_TLS}, false},
        {{.kind = PL_FAIL_REFUSED, .err = PARLEY_ERR_OVERLOADED, .status = 503}, true},
        {{.kind = PL_FAIL_REFUSED, .err = PARLEY_ERR_UNAUTHORIZED, .status = 401}, false},
        {{.kind = PL_FAIL_REFUSED, .err = PARLEY_ERR_CONNECT, .status = 409, .upgrade = true},
         false},
        {{.kind = PL_FAIL_REFUSED, .err = PARLEY_ERR_OVERLOADED, .status = 503,
          .should_retry = PL_ADVICE_NO}, false},
        {{.kind = PL_FAIL_SERVER, .err = PARLEY_ERR_RATE_LIMITED}, true},
        {{.kind = PL_FAIL_SERVER, .err = PARLEY_ERR_RATE_LIMITED, .started = true}, false},
        {{.kind = PL_FAIL_SERVER, .err = PARLEY_ERR_INVALID_REQUEST}, false},
        {{.kind = PL_FAIL_LOST, .err = PARLEY_ERR_CONNECTION_LOST, .resumable = true,
          .started = true}, true},
        {{.kind = PL_FAIL_LOST, .err = PARLEY_ERR_CONNECTION_LOST, .started = true}, false},
        {{.kind = PL_FAIL_INVALID, .err = PARLEY_ERR_PROTOCOL}, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pl_policy_conf conf = default_conf();
        setup_with(&conf, &native_ops);
        send_request(1);
        fx.ev->failed(fx.ev->ctx, request(1), &cases[i].f, "why", -1);
        advance(1000);
        if (cases[i].retried) {
            assert_int_equal(out.errors, 0);
            assert_int_equal(fx.tx.starts, 2);
        } else {
            assert_int_equal(out.errors, 1);
            assert_int_equal(out.err, cases[i].f.err);
            assert_int_equal(fx.tx.starts, 1);
        }
        teardown_router();
    }
}

/* A transport that cannot start the request: a retryable failure, bounded
 * by the attempts. */
static void test_start_failure(void **state)
{
    (void)state;
    pl_policy_conf conf = default_conf();
    setup_with(&conf, &http_ops);
    fx.tx.start_answer = PL_TX_FAILED;
    send_request(1);
    advance(1000);
    advance(1000);
    assert_int_equal(fx.tx.starts, 3);
    assert_int_equal(out.errors, 1);
    assert_int_equal(out.err, PARLEY_ERR_CONNECT);
    teardown_router();
}

/* ---- no timer left behind --------------------------------------------------------- */

/* 100,000 requests, each with a deadline and a stall timer armed, ended
 * every way there is: no timer and no route outlives its request. */
static void test_timers_bounded(void **state)
{
    (void)state;
    pl_policy_conf conf = default_conf();
    conf.request_timeout_ms = 60000;
    conf.stall_timeout_ms = 30000;
    setup_with(&conf, &native_ops);
    for (uint64_t id = 1; id <= 100000; id++) {
        send_request(id);
        assert_int_equal(pl_router_timers(&fx.rt), 1);
        switch (id % 4) {
        case 0:
            piece(id, 0, NULL, "a");
            done(id, 1, NULL, "end_turn");
            break;
        case 1:
            fail_with(id, PL_FAIL_INVALID, PARLEY_ERR_PROTOCOL, -1);
            break;
        case 2:
            fail_with(id, PL_FAIL_NETWORK, PARLEY_ERR_CONNECT, -1);
            pl_router_cancel(&fx.rt, id);
            break;
        case 3:
            pl_router_cancel(&fx.rt, id);
            done(id, PL_TX_SEQ_NONE, NULL, "cancelled");
            break;
        }
        fake_now++;
    }
    assert_int_equal(pl_router_count(&fx.rt), 0);
    assert_int_equal(pl_router_timers(&fx.rt), 0);
    assert_int_equal(out.releases, 100000);
    teardown_router();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_budget),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_wait_is_not_an_attempt),
        cmocka_unit_test(test_retry_after_clamp),
        cmocka_unit_test(test_retry_after_past_deadline),
        cmocka_unit_test(test_deadline_cancels_at_server),
        cmocka_unit_test(test_stall_acquitted),
        cmocka_unit_test(test_stall_dead_is_free),
        cmocka_unit_test(test_heard_from_moves_stall),
        cmocka_unit_test(test_http_no_resume_after_pieces),
        cmocka_unit_test(test_gap_repeats),
        cmocka_unit_test(test_reply_bound),
        cmocka_unit_test(test_session_mismatch),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_every_failure_kind),
        cmocka_unit_test(test_start_failure),
        cmocka_unit_test(test_timers_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
