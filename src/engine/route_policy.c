/* The requests in flight: retries, backoff, deadlines, stalls, resumes
 * (route_policy.h). */
#include "route_policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "backoff.h"
#include "classify.h"

/* A server's retry_after_ms is obeyed up to this (the vendors' SDKs cap
 * retry-after at 60 s too); larger values, 2^63-1 included, are clamped. */
#define RETRY_AFTER_MAX_MS 60000
/* A server that skips pieces gets this many repeats per request; past them
 * the request fails rather than the repeats filling the send queue. */
#define GAP_REPEATS_MAX 16
/* Waits the user should hear of (stalls, retries) are logged at WARNING at
 * most once per this many ms; the rest at NOTICE. */
#define WAIT_WARNING_EVERY_MS 10000

#define ROUTE_OF(q) pl_container_of(q, pl_route, tx)

/* WARNING for the first wait in WAIT_WARNING_EVERY_MS, so that the default
 * log level shows that something is being waited for, without a flood;
 * NOTICE for the others. */
static int wait_log_level(pl_router *rt, int64_t now)
{
    if (rt->last_wait_warning_ms && now - rt->last_wait_warning_ms < WAIT_WARNING_EVERY_MS)
        return PARLEY_LOG_NOTICE;
    rt->last_wait_warning_ms = now;
    return PARLEY_LOG_WARNING;
}

static const pl_transport_ops *ops(const pl_router *rt)
{
    return rt->transport->ops;
}

/* ---- routes ------------------------------------------------------------- */

static void route_free(pl_router *rt, pl_route *r)
{
    pl_timer_cancel(&rt->timers, &r->timer);
    rt->sink.release(r->owner);
    free((char *)r->tx.frame);
    free((char *)r->tx.headers);
    free(r);
}

static void route_detach(pl_router *rt, pl_route *r)
{
    ops(rt)->detach(rt->transport, &r->tx);
}

/* End a request with an error event and forget it. */
static void route_fail(pl_router *rt, pl_route *r, parley_err_t err, const char *msg)
{
    pl_log(rt->log, PARLEY_LOG_DEBUG, "request", "%llu failed: %s (%s)",
           (unsigned long long)r->tx.id, msg, parley_err2name(err));
    pl_route_remove(&rt->routes, r->tx.id);
    route_detach(rt, r);
    rt->sink.error(r->owner, r->tx.id, err, msg);
    route_free(rt, r);
}

/* End a request as cancelled without the server (it holds it no more). */
static void route_end_cancelled(pl_router *rt, pl_route *r)
{
    pl_route_remove(&rt->routes, r->tx.id);
    route_detach(rt, r);
    pl_reply_end end = {.stop_reason = "cancelled", .output_tokens = r->tx.next_seq};
    rt->sink.done(r->owner, r->tx.id, &end);
    route_free(rt, r);
}

/* The earliest moment something must be checked for this route. */
static int64_t route_due(const pl_router *rt, const pl_route *r)
{
    int64_t due = INT64_MAX;
    if (r->waiting)
        due = r->retry_at_ms;
    else if (rt->conf.stall_timeout_ms > 0 && !r->stalled &&
             ops(rt)->sent(rt->transport, &r->tx))
        due = r->progress_ms + rt->conf.stall_timeout_ms;
    /* Otherwise the connection's handshake or trial has its own clock (the
     * transport's tick), and the deadline bounds the wait. */
    if (r->deadline_ms && r->deadline_ms < due)
        due = r->deadline_ms;
    return due;
}

/* Make sure the route's timer fires no later than its due time. A timer due
 * earlier is left to fire and re-arm: progress only moves stall times later,
 * and a piece then costs no sift of the heap. */
static void route_arm(pl_router *rt, pl_route *r)
{
    int64_t due = route_due(rt, r);
    if (due == INT64_MAX || (pl_timer_pending(&r->timer) && r->timer.due <= due))
        return;
    /* Never in the past: a timer already due would be popped again by the
     * same run_timers pass, forever. */
    int64_t now = rt->clock();
    if (due <= now)
        due = now + 1;
    pl_timer_set(&rt->timers, &r->timer, due);
}

/* Wait before sending the route again. */
static void route_wait(pl_router *rt, pl_route *r, int64_t now, int64_t delay_ms)
{
    route_detach(rt, r);
    r->waiting = true;
    r->tx.acked = false;
    r->retry_at_ms = now + delay_ms;
    route_arm(rt, r);
}

static int64_t retry_delay(pl_router *rt, const pl_route *r)
{
    return pl_backoff_ms(r->attempts, rt->conf.retry_backoff_ms,
                         rt->conf.retry_backoff_max_ms, rt->rng);
}

/* Whether the route may be sent again; when not, it is failed with the
 * reason, which says how many sends were made. */
static bool route_may_retry(pl_router *rt, pl_route *r, parley_err_t err, const char *msg)
{
    if (r->attempts < rt->conf.retry_max_attempts)
        return true;
    char full[800];
    uint32_t pieces = r->tx.next_seq;
    /* Pieces arrived, so the connection was lost mid-reply; that the
     * attempts to resume could not connect is the lesser part of it. */
    if (pieces > 0 && err == PARLEY_ERR_CONNECT) {
        snprintf(full, sizeof(full), "connection lost mid-reply after %u piece%s, and "
                 "resuming failed: %s (after %d attempt%s)", pieces,
                 pieces == 1 ? "" : "s", msg, r->attempts, r->attempts == 1 ? "" : "s");
        err = PARLEY_ERR_CONNECTION_LOST;
    } else
        snprintf(full, sizeof(full), "%s (after %d attempt%s)", msg, r->attempts,
                 r->attempts == 1 ? "" : "s");
    route_fail(rt, r, err, full);
    return false;
}

/* The server turned the request away (err, msg): send it again after the
 * server's retry_after_ms (-1: none, then the backoff), at most 60 s. A wait
 * that would pass the request's deadline ends it now with the server's
 * error: waiting would only end it with a time-out that says less. */
static void route_retry_later(pl_router *rt, pl_route *r, parley_err_t err, const char *msg,
                              int64_t retry_after_ms)
{
    if (!route_may_retry(rt, r, err, msg))
        return;
    int64_t now = rt->clock();
    int64_t delay = retry_after_ms < 0                   ? retry_delay(rt, r)
                    : retry_after_ms < RETRY_AFTER_MAX_MS ? retry_after_ms
                                                          : RETRY_AFTER_MAX_MS;
    if (retry_after_ms >= 0 && r->deadline_ms && now + delay > r->deadline_ms) {
        char full[700];
        snprintf(full, sizeof(full), "%s (the server asked to retry after %lld ms, past "
                 "request.timeout.ms)", msg, (long long)retry_after_ms);
        route_fail(rt, r, err, full);
        return;
    }
    route_wait(rt, r, now, delay);
}

/* Send (or send again) a route, steering away from `avoid`. */
static void route_place(pl_router *rt, pl_route *r, const void *avoid, int64_t now)
{
    int64_t wait_ms = 0;
    pl_failure f;
    char msg[256];
    pl_tx_start started = ops(rt)->start(rt->transport, &r->tx, avoid, now, &wait_ms, &f,
                                         msg, sizeof(msg));
    if (started == PL_TX_WAIT) {
        /* Every connection is on trial, say: wait for a verdict rather than
         * send on one that may be dead. Not an attempt. */
        route_wait(rt, r, now, wait_ms);
        return;
    }
    r->waiting = false;
    r->stalled = false;
    r->tx.acked = false;
    r->attempts++;
    if (r->sends++ > 0) {
        pl_log(rt->log, PARLEY_LOG_DEBUG, "request", "%llu: attempt %d, resuming from piece %u",
               (unsigned long long)r->tx.id, r->attempts, r->tx.next_seq);
        PL_COUNTER_ADD(rt->counters, retries, 1);
        if (r->tx.next_seq > 0)
            PL_COUNTER_ADD(rt->counters, resumes, 1);
    }
    r->progress_ms = now;
    if (started == PL_TX_FAILED) {
        rt->events.failed(rt, &r->tx, &f, msg, -1);
        return;
    }
    route_arm(rt, r);
}

/* Stop the server's work on r where it is on the wire, then fail r. */
static void route_abandon(pl_router *rt, pl_route *r, parley_err_t err, const char *msg)
{
    PL_COUNTER_ADD(rt->counters, errors, 1);
    ops(rt)->cancel(rt->transport, &r->tx, false);
    route_fail(rt, r, err, msg);
}

/* The server said something about r: it is at work on it, and the stall
 * clock restarts. No attempt is given back: a server that acks every
 * repeat but never streams must still run out of them. */
static void heard_from(pl_router *rt, pl_route *r)
{
    r->progress_ms = rt->clock();
    if (r->stalled) {
        r->stalled = false;
        route_arm(rt, r); /* its stall timer, which the trial had left unset */
    }
}

/* The reply moves on (a piece, the first ack). */
static void progress(pl_router *rt, pl_route *r)
{
    heard_from(rt, r);
    r->attempts = 1; /* this send is working: retries count afresh */
}

/* Pieces are missing (a seq gap, or done's seq_end beyond what arrived): ask
 * again from the first missing one (protocol 6), once per position: the
 * repeat's own stream answers every later gap message of the old one. */
static void repeat_for_gap(pl_router *rt, pl_route *r)
{
    if (r->repeat_from == r->tx.next_seq)
        return;
    if (++r->gap_repeats > GAP_REPEATS_MAX) {
        char msg[160];
        snprintf(msg, sizeof(msg), "the server skipped pieces of the reply %u times; the "
                 "request gave up", GAP_REPEATS_MAX);
        route_abandon(rt, r, PARLEY_ERR_PROTOCOL, msg);
        return;
    }
    r->repeat_from = r->tx.next_seq;
    ops(rt)->resend(rt->transport, &r->tx);
}

/* Whether a message about r may be believed: one that names another session
 * than the request's is the server's mistake, and fails the request. */
static bool session_matches(pl_router *rt, pl_route *r, const char *session)
{
    if (!session || !strcmp(session, r->owner_id))
        return true;
    char msg[400];
    snprintf(msg, sizeof(msg), "invalid message from the server: request %llu belongs to "
             "session \"%s\", not \"%.128s\"", (unsigned long long)r->tx.id, r->owner_id,
             session);
    route_abandon(rt, r, PARLEY_ERR_PROTOCOL, msg);
    return false;
}

/* Count a piece against reply.max.bytes; false when the request failed. */
static bool reply_within_bound(pl_router *rt, pl_route *r, size_t len)
{
    r->reply_bytes += len;
    if (r->reply_bytes <= (uint64_t)rt->conf.reply_max_bytes)
        return true;
    char msg[200];
    snprintf(msg, sizeof(msg), "the reply grew past reply.max.bytes (%lld bytes) and was "
             "abandoned", (long long)rt->conf.reply_max_bytes);
    route_abandon(rt, r, PARLEY_ERR_REPLY_TOO_LARGE, msg); /* stop the server's work too */
    return false;
}

/* ---- what the transport reports ---------------------------------------- */

static pl_tx_req *ev_lookup(void *ctx, uint64_t id)
{
    pl_route *r = pl_route_find(&((pl_router *)ctx)->routes, id);
    return r ? &r->tx : NULL;
}

/* The connection opened: the request's stall time counts from here, not
 * from the handshake. */
static void ev_on_wire(void *ctx, pl_tx_req *q, int64_t now)
{
    pl_route *r = ROUTE_OF(q);
    if (r->waiting)
        return;
    r->progress_ms = now;
    route_arm(ctx, r);
}

static void ev_acked(void *ctx, pl_tx_req *q)
{
    pl_route *r = ROUTE_OF(q);
    q->acked = true;
    /* Only the first ack is progress: a server that acks every repeat but
     * never streams must still run out of attempts. */
    if (!r->ever_acked) {
        r->ever_acked = true;
        progress(ctx, r);
    } else {
        heard_from(ctx, r);
    }
}

static void ev_alive(void *ctx, pl_tx_req *q)
{
    heard_from(ctx, ROUTE_OF(q));
}

static void ev_piece(void *ctx, pl_tx_req *q, uint32_t seq, const char *session,
                     const pl_piece *piece)
{
    pl_router *rt = ctx;
    pl_route *r = ROUTE_OF(q);
    if (seq < q->next_seq) {
        heard_from(rt, r); /* a piece already delivered: a repeat catching up */
        return;
    }
    if (!session_matches(rt, r, session))
        return;
    if (seq > q->next_seq) {
        heard_from(rt, r);
        repeat_for_gap(rt, r);
        return;
    }
    if (!reply_within_bound(rt, r, piece->len))
        return;
    rt->sink.piece(r->owner, q->id, seq, piece);
    q->next_seq++;
    progress(rt, r);
}

static void ev_done(void *ctx, pl_tx_req *q, const pl_tx_done *d)
{
    pl_router *rt = ctx;
    pl_route *r = ROUTE_OF(q);
    if (!session_matches(rt, r, d->session))
        return;
    if (d->seq_end != PL_TX_SEQ_NONE && d->seq_end > q->next_seq) {
        heard_from(rt, r);
        repeat_for_gap(rt, r);
        return;
    }
    pl_route_remove(&rt->routes, q->id);
    route_detach(rt, r);
    rt->sink.done(r->owner, q->id, &d->end);
    route_free(rt, r);
}

static void ev_failed(void *ctx, pl_tx_req *q, const pl_failure *f, const char *msg,
                      int64_t retry_after_ms)
{
    pl_router *rt = ctx;
    pl_route *r = ROUTE_OF(q);
    if (r->cancelling || !pl_failure_retryable(f)) {
        route_fail(rt, r, f->err, msg);
        return;
    }
    /* Where no connection logs its failures (HTTP), say here that the
     * request waits (a connect that hangs would be silent for every attempt). */
    if (!ops(rt)->logs_connections && r->attempts < rt->conf.retry_max_attempts)
        pl_log(rt->log, wait_log_level(rt, rt->clock()), "request",
               "%llu: %s; sending it again (attempt %d of %d done)", (unsigned long long)q->id,
               msg, r->attempts, rt->conf.retry_max_attempts);
    route_retry_later(rt, r, f->err, msg, retry_after_ms);
}

/* The request's connection was lost. One that worked and broke, or went
 * silent, is the network's failure, not the request's: the send is not held
 * against it (request.timeout.ms still bounds it), and it resumes at once
 * elsewhere or on the replacement, which backs off by itself when it keeps
 * failing. Otherwise the request may have been what broke it (an ack alone
 * proves nothing: a server may ack and drop every time). */
static void ev_lost(void *ctx, pl_tx_req *q, const pl_failure *f, const char *msg, pl_blame b)
{
    pl_router *rt = ctx;
    pl_route *r = ROUTE_OF(q);
    if (r->cancelling) {
        route_end_cancelled(rt, r);
        return;
    }
    if (!pl_failure_retryable(f)) {
        route_fail(rt, r, f->err, msg);
        return;
    }
    int64_t now = rt->clock();
    switch (b) {
    case PL_BLAME_CONN:
        if (r->attempts > 0)
            r->attempts--;
        route_wait(rt, r, now, 0);
        break;
    case PL_BLAME_REQ_NOW:
        if (route_may_retry(rt, r, f->err, msg))
            route_wait(rt, r, now, 0);
        break;
    case PL_BLAME_REQ:
        if (route_may_retry(rt, r, f->err, msg))
            route_wait(rt, r, now, retry_delay(rt, r));
        break;
    }
}

/* Its connection lives: the stalled request was slow on its own and is sent
 * again elsewhere, at the cost of an attempt. */
static void ev_acquitted(void *ctx, pl_tx_req *q, const void *conn, int64_t now)
{
    pl_router *rt = ctx;
    pl_route *r = ROUTE_OF(q);
    if (!r->stalled)
        return;
    r->stalled = false;
    char msg[160];
    snprintf(msg, sizeof(msg), "the reply stalled: nothing for %lld ms",
             (long long)(now - r->progress_ms));
    if (!route_may_retry(rt, r, PARLEY_ERR_TIMED_OUT, msg))
        return;
    route_detach(rt, r);
    route_place(rt, r, conn, now); /* a repeat: the newest wins */
}

static void ev_long_read(void *ctx)
{
    pl_router *rt = ctx;
    if (rt->long_read)
        rt->long_read(rt->long_read_ctx);
}

static int ev_wait_level(void *ctx, int64_t now)
{
    return wait_log_level(ctx, now);
}

/* ---- timers ------------------------------------------------------------- */

/* A route's timer fired: deadline, retry or stall, whichever is due. */
static void route_check(pl_router *rt, pl_route *r, int64_t now)
{
    if (r->deadline_ms && now >= r->deadline_ms) {
        if (!r->cancelling)
            ops(rt)->cancel(rt->transport, &r->tx, false); /* stop the server's work too */
        char msg[128];
        snprintf(msg, sizeof(msg), "no reply within request.timeout.ms (%d ms)",
                 rt->conf.request_timeout_ms);
        route_fail(rt, r, PARLEY_ERR_TIMED_OUT, msg);
        return;
    }
    if (r->waiting && now >= r->retry_at_ms) {
        route_place(rt, r, NULL, now);
        return;
    }
    int64_t stall = rt->conf.stall_timeout_ms;
    if (!r->waiting && !r->stalled && stall > 0 && now - r->progress_ms >= stall &&
        ops(rt)->sent(rt->transport, &r->tx)) {
        PL_COUNTER_ADD(rt->counters, stalls, 1);
        char msg[160];
        snprintf(msg, sizeof(msg), "the reply stalled: nothing for %lld ms",
                 (long long)(now - r->progress_ms));
        pl_log(rt->log, wait_log_level(rt, now), "request", "%llu: %s; waiting on %s",
               (unsigned long long)r->tx.id, msg, rt->conf.endpoint_shown);
        if (r->cancelling) {
            route_end_cancelled(rt, r);
            return;
        }
        if (!ops(rt)->can_resume && r->tx.next_seq > 0) {
            char full[256];
            snprintf(full, sizeof(full), "%s after %u pieces; HTTP streaming APIs cannot "
                     "resume a reply", msg, r->tx.next_seq);
            route_fail(rt, r, PARLEY_ERR_TIMED_OUT, full);
            return;
        }
        /* The verdict moves it (acquitted, or lost with its connection). */
        r->stalled = true;
        if (ops(rt)->trial(rt->transport, &r->tx, now, msg))
            route_arm(rt, r);
        return;
    }
    route_arm(rt, r);
}

int64_t pl_router_run_timers(pl_router *rt, int64_t now)
{
    pl_timer *t;
    while ((t = pl_timer_pop_due(&rt->timers, now)))
        route_check(rt, pl_container_of(t, pl_route, timer), now);
    t = pl_timer_first(&rt->timers);
    return t ? t->due - now : INT64_MAX;
}

/* ---- orders from the sessions ------------------------------------------- */

void pl_router_send(pl_router *rt, uint64_t id, void *owner, const char *owner_id,
                    char *frame, size_t frame_len, char *headers, bool needs_blocks,
                    int64_t now)
{
    pl_route *r = pl_xcalloc(1, sizeof(*r));
    r->tx.id = id;
    r->tx.frame = frame;
    r->tx.frame_len = frame_len;
    r->tx.headers = headers;
    r->tx.needs_blocks = needs_blocks;
    r->repeat_from = UINT32_MAX;
    r->owner = owner; /* the request's reference moves to the route */
    r->owner_id = owner_id;
    if (rt->conf.request_timeout_ms > 0)
        r->deadline_ms = now + rt->conf.request_timeout_ms;
    pl_route_insert(&rt->routes, r);
    route_place(rt, r, NULL, now);
}

void pl_router_cancel(pl_router *rt, uint64_t id)
{
    pl_route *r = pl_route_find(&rt->routes, id);
    if (!r || r->cancelling)
        return; /* finished already, or asked twice */
    r->cancelling = true;
    /* Where the server will not answer (an HTTP stream cannot be told to
     * stop, a request not sent yet), leaving it is the cancel; otherwise the
     * server answers with done, stop_reason cancelled. */
    if (r->waiting || !ops(rt)->cancel(rt->transport, &r->tx, true))
        route_end_cancelled(rt, r);
}

/* ---- the table ---------------------------------------------------------- */

void pl_router_init(pl_router *rt, const pl_policy_conf *conf, const pl_io_sink *sink,
                    pl_counters *counters, const pl_logger *log, uint64_t *rng,
                    int64_t (*clock)(void))
{
    memset(rt, 0, sizeof(*rt));
    rt->conf = *conf;
    rt->sink = *sink;
    rt->counters = counters;
    rt->log = log;
    rt->rng = rng;
    rt->clock = clock;
    rt->events = (pl_tx_events){
        .ctx = rt,
        .lookup = ev_lookup,
        .on_wire = ev_on_wire,
        .acked = ev_acked,
        .piece = ev_piece,
        .alive = ev_alive,
        .done = ev_done,
        .failed = ev_failed,
        .lost = ev_lost,
        .acquitted = ev_acquitted,
        .long_read = ev_long_read,
        .wait_level = ev_wait_level,
        .retryable = pl_failure_retryable,
    };
    pl_route_table_init(&rt->routes);
}

void pl_router_set_transport(pl_router *rt, pl_transport *t)
{
    rt->transport = t;
}

const pl_tx_events *pl_router_events(const pl_router *rt)
{
    return &rt->events;
}

typedef struct fail_all_args {
    pl_router *rt;
    parley_err_t err;
    const char *msg;
} fail_all_args;

static void fail_one(pl_route *r, void *arg)
{
    fail_all_args *a = arg;
    route_fail(a->rt, r, a->err, a->msg);
}

void pl_router_fail_all(pl_router *rt, parley_err_t err, const char *msg)
{
    fail_all_args a = {rt, err, msg};
    pl_route_foreach(&rt->routes, fail_one, &a);
}

void pl_router_free(pl_router *rt)
{
    pl_route_table_free(&rt->routes);
    pl_timer_heap_free(&rt->timers);
}

size_t pl_router_count(const pl_router *rt)
{
    return rt->routes.count;
}

static void count_waiting(pl_route *r, void *arg)
{
    *(size_t *)arg += r->waiting;
}

size_t pl_router_waiting(pl_router *rt)
{
    size_t n = 0;
    pl_route_foreach(&rt->routes, count_waiting, &n);
    return n;
}

size_t pl_router_timers(const pl_router *rt)
{
    return pl_timer_heap_len(&rt->timers);
}
