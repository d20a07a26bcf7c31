/*
 * The I/O thread: one curl multi handle, the connections, the routing table
 * and the per-request timers. Everything here runs on that thread except
 * pl_io_submit() and the start and stop calls.
 *
 * Reliability lives here (docs/reliability.md): a request whose connection
 * fails, or that the server turns away with a retryable error, or that makes
 * no progress for stall.timeout.ms, is sent again with the same id and
 * resume_from = pieces delivered, after a backoff, until retry.max.attempts
 * sends in a row failed for a reason of its own or request.timeout.ms
 * passed. A stall first puts its connection on trial (a Ping): a dead
 * connection is replaced and its requests resume free of charge; a live one
 * means the request alone was slow.
 */
#include "io.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "backoff.h"
#include "classify.h"
#include "compress.h"
#include "http_stream.h"
#include "log.h"
#include "mpsc.h"
#include "owner.h"
#include "pool.h"
#include "protocol.h"
#include "route.h"
#include "timer_heap.h"
#include "utf8.h"
#include "ws_conn.h"

#define IO_POLL_MAX_MS 1000
/* After a send fails, what the peer sent before it went away is still read
 * for this long, so that no delivered piece is thrown away with the socket. */
#define SEND_FAILURE_GRACE_MS 250
/* Penalties that steer new requests away from a connection (pick_conn). */
#define AVOID_PENALTY (1u << 20)
#define SUSPECT_PENALTY (1u << 22)
#define BACKOFF_PENALTY (1u << 24)
/* A server's retry_after_ms is obeyed up to this (the vendors' SDKs cap
 * retry-after at 60 s too); larger values, 2^63-1 included, are clamped. */
#define RETRY_AFTER_MAX_MS 60000
/* A server that skips pieces gets this many repeats per request; past them
 * the request fails rather than the repeats filling the send queue. */
#define GAP_REPEATS_MAX 16
/* Waits the user should hear of (stalls, retries) are logged at WARNING at
 * most once per this many ms; the rest at NOTICE. */
#define WAIT_WARNING_EVERY_MS 10000

struct pl_io {
    pl_io_sink sink; /* the sessions and the statistics */
    pl_io_settings set;
    CURLM *multi;
    pthread_t thread;
    bool thread_started;
    /* Everything below but the submissions' producer side: the I/O thread
     * while it runs, then the thread that stopped it (PL_ASSERT_OWNER). */
    pl_owner owner;
    _Atomic bool stopping;
    pl_mpsc submissions; /* pl_io_request */
    /* Set while the thread is in (or about to enter) curl_multi_poll(): only
     * then does a submission need curl_multi_wakeup(), a system call. */
    _Atomic bool polling;

    pl_ws_conn *conns;
    unsigned nconns;
    pl_route_table routes;
    pl_timer_heap timers;
    pl_decoder *decoder;
    int64_t heartbeat_ms;
    uint64_t rng;
    pl_easy_opts easy;       /* shared by every easy handle */
    pl_http_config http;     /* the HTTP dialects' requests */

    /* The dialect's answers by kind, for the statistics. */
    uint64_t server_errors[PL_SERR_OTHER + 1]; /* native: by error code */
    uint64_t http_status[6];                   /* HTTP: by status / 100 */
    uint64_t http2_answers;
    int64_t next_stats_ms;                     /* 0: statistics are off */
    int64_t wakes_held_ms;  /* since when curl_multi_perform holds wake-ups */
    int64_t last_wait_warning_ms; /* wait_log_level(); 0: none yet */
};

/* WARNING for the first wait in WAIT_WARNING_EVERY_MS, so that the default
 * log level shows that something is being waited for, without a flood;
 * NOTICE for the others. */
static int wait_log_level(pl_io *io, int64_t now)
{
    if (io->last_wait_warning_ms && now - io->last_wait_warning_ms < WAIT_WARNING_EVERY_MS)
        return PARLEY_LOG_NOTICE;
    io->last_wait_warning_ms = now;
    return PARLEY_LOG_WARNING;
}

/* Wake-ups are held while curl_multi_perform reads (run_once), but a read
 * that goes on (a flood of messages, each inflated) must not keep the
 * workers waiting for its end. */
#define WAKES_HELD_MAX_MS 2

static void pass_on_held_wakes(pl_io *io)
{
    int64_t now = pl_monotonic_ms();
    if (now - io->wakes_held_ms < WAKES_HELD_MAX_MS)
        return;
    pl_pool_release_wakes(io->set.pool);
    pl_pool_hold_wakes(io->set.pool);
    io->wakes_held_ms = now;
}

/* libcurl's trace, at debug level: text and headers only, never payloads. */
static int trace_cb(CURL *easy, curl_infotype type, char *data, size_t size, void *userdata)
{
    (void)easy;
    pl_io *io = userdata;
    if (type == CURLINFO_TEXT || type == CURLINFO_HEADER_IN || type == CURLINFO_HEADER_OUT)
        pl_log_curl_trace(io->set.log, data, size);
    return 0;
}

static void on_message(void *owner, pl_ws_conn *conn, const char *data, size_t len,
                       bool binary);
static void on_oversized(void *owner, pl_ws_conn *conn, const char *start, size_t len);
static const pl_ws_conn_events ws_conn_events = {.message = on_message,
                                                 .oversized = on_oversized};
static void http_text(void *owner, void *req, const char *text, size_t len);
static void http_done(void *owner, void *req, const pl_stream_result *res);
static void http_failed(void *owner, void *req, const pl_failure *f, const char *msg,
                        int64_t retry_after_ms);
static const pl_http_events http_events = {.text = http_text,
                                           .done = http_done,
                                           .failed = http_failed};

pl_io *pl_io_new(const pl_io_settings *settings, const pl_io_sink *sink, char *errstr,
                 size_t errstr_size)
{
    pl_io *io = pl_xcalloc(1, sizeof(*io));
    io->set = *settings;
    io->sink = *sink;
    /* libcurl's trace, at debug level only. */
    io->set.easy.trace = PL_LOG_ON(io->set.log, PARLEY_LOG_DEBUG) ? trace_cb : NULL;
    io->set.easy.trace_data = io;
    io->set.easy.connect_to = pl_easy_connect_to(settings->connect_to);
    io->multi = curl_multi_init();
    io->decoder = pl_decoder_new();
    if (!io->multi || !io->decoder) {
        if (errstr && errstr_size)
            snprintf(errstr, errstr_size, "could not create the curl multi handle");
        if (io->multi)
            curl_multi_cleanup(io->multi);
        pl_decoder_free(io->decoder);
        free(io);
        return NULL;
    }
    pl_mpsc_init(&io->submissions);
    io->nconns = settings->connections;
    io->conns = pl_xcalloc(io->nconns, sizeof(*io->conns));
    for (unsigned i = 0; i < io->nconns; i++) {
        io->conns[i].multi = io->multi;
        io->conns[i].events = &ws_conn_events;
        io->conns[i].owner = io;
        io->conns[i].index = i;
        io->conns[i].sock = CURL_SOCKET_BAD;
        io->conns[i].stats.rtt_ms = -1;
    }
    pl_route_table_init(&io->routes);
    io->heartbeat_ms = (int64_t)settings->heartbeat_interval_s * 1000;
    if (settings->dialect != PL_DIALECT_NATIVE) {
        if (pl_http_config_init(&io->http, settings->endpoint, settings->dialect) != 0)
            pl_oom("configuring the HTTP dialect");
        io->http.dialect_shown = settings->dialect_shown;
        io->http.api_key = settings->api_key;
        io->http.anthropic_version = settings->anthropic_version;
        io->http.max_event_bytes = (size_t)settings->max_message_bytes;
        io->http.easy = io->set.easy;
        io->http.max_idle = (size_t)settings->http_idle_connections;
        io->http.events = &http_events;
        io->http.owner = io;
        /* libcurl's own cache limit follows the handles added at the moment
         * and closed connections that the next turns then opened again:
         * more connections than conversations (docs/dialects.md). */
        curl_multi_setopt(io->multi, CURLMOPT_MAXCONNECTS,
                          (long)settings->http_idle_connections);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    io->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)getpid() ^
              (uint64_t)(uintptr_t)io;
    if (!io->rng)
        io->rng = 0x9E3779B97F4A7C15ull;
    return io;
}

/* ---- routes ------------------------------------------------------------- */

static void route_free(pl_io *io, pl_route *r)
{
    pl_timer_cancel(&io->timers, &r->timer);
    io->sink.release(r->owner);
    free(r->frame);
    free(r);
}

static void route_detach(pl_route *r)
{
    if (r->conn && r->conn->inflight)
        r->conn->inflight--;
    r->conn = NULL;
    if (r->http)
        pl_http_release(r->http);
    r->http = NULL;
}

/* Whether the route's request is out on the wire now. */
static bool route_sent(const pl_route *r)
{
    return r->http || (r->conn && r->conn->state == PL_WS_OPEN);
}

/* End a request with an error event and forget it. */
static void route_fail(pl_io *io, pl_route *r, parley_err_t err, const char *msg)
{
    pl_log(io->set.log, PARLEY_LOG_DEBUG, "request", "%llu failed: %s (%s)",
           (unsigned long long)r->id, msg, parley_err2name(err));
    pl_route_remove(&io->routes, r->id);
    route_detach(r);
    io->sink.error(r->owner, r->id, err, msg);
    route_free(io, r);
}

/* End a request as cancelled without the server (it holds it no more). */
static void route_end_cancelled(pl_io *io, pl_route *r)
{
    pl_route_remove(&io->routes, r->id);
    route_detach(r);
    pl_reply_end end = {.stop_reason = "cancelled", .output_tokens = r->next_seq};
    io->sink.done(r->owner, r->id, &end);
    route_free(io, r);
}

/* Queue the route's message on its connection, asking the server to resume
 * after the pieces already delivered. */
static void route_send(pl_route *r)
{
    if (r->next_seq == 0) {
        pl_ws_conn_queue_data(r->conn, r->frame, r->frame_len);
        return;
    }
    pl_buf b = PL_BUF_INIT;
    if (pl_proto_add_resume_from(&b, r->frame, r->frame_len, r->next_seq) != 0)
        pl_oom("repeating a request");
    pl_ws_conn_queue_data(r->conn, b.data, b.len);
    pl_buf_free(&b);
}

static void send_cancel(pl_ws_conn *conn, uint64_t id)
{
    pl_buf b = PL_BUF_INIT;
    if (pl_proto_encode_cancel(&b, id) != 0)
        pl_oom("encoding a cancel");
    pl_ws_conn_queue_data(conn, b.data, b.len);
    pl_buf_free(&b);
}

/* The earliest moment something must be checked for this route. */
static int64_t route_due(const pl_io *io, const pl_route *r)
{
    int64_t due = INT64_MAX;
    if (r->waiting)
        due = r->retry_at_ms;
    else if (io->set.stall_timeout_ms > 0 && route_sent(r) && !r->stalled)
        due = r->progress_ms + io->set.stall_timeout_ms;
    /* Otherwise the connection's handshake or trial has its own clock
     * (tend_conn), and the deadline bounds the wait. */
    if (r->deadline_ms && r->deadline_ms < due)
        due = r->deadline_ms;
    return due;
}

/* Make sure the route's timer fires no later than its due time. A timer due
 * earlier is left to fire and re-arm: progress only moves stall times later,
 * and a piece then costs no sift of the heap. */
static void route_arm(pl_io *io, pl_route *r)
{
    int64_t due = route_due(io, r);
    if (due == INT64_MAX || (pl_timer_pending(&r->timer) && r->timer.due <= due))
        return;
    /* Never in the past: a timer already due would be popped again by the
     * same run_timers pass, forever. */
    int64_t now = pl_monotonic_ms();
    if (due <= now)
        due = now + 1;
    pl_timer_set(&io->timers, &r->timer, due);
}

/* Wait before sending the route again: retry_after_ms when the server gave
 * one, else the backoff for its attempts so far. */
static void route_wait(pl_io *io, pl_route *r, int64_t now, int64_t delay_ms)
{
    route_detach(r);
    r->waiting = true;
    r->acked = false;
    r->retry_at_ms = now + delay_ms;
    route_arm(io, r);
}

static int64_t retry_delay(pl_io *io, const pl_route *r)
{
    return pl_backoff_ms(r->attempts, io->set.retry_backoff_ms,
                         io->set.retry_backoff_max_ms, &io->rng);
}

/* Whether the route may be sent again; when not, it is failed with the
 * reason, which says how many sends were made. */
static bool route_may_retry(pl_io *io, pl_route *r, parley_err_t err, const char *msg)
{
    if (r->attempts < io->set.retry_max_attempts)
        return true;
    char full[800];
    /* Pieces arrived, so the connection was lost mid-reply; that the
     * attempts to resume could not connect is the lesser part of it. */
    if (r->next_seq > 0 && err == PARLEY_ERR_CONNECT) {
        snprintf(full, sizeof(full), "connection lost mid-reply after %u piece%s, and "
                 "resuming failed: %s (after %d attempt%s)", r->next_seq,
                 r->next_seq == 1 ? "" : "s", msg, r->attempts, r->attempts == 1 ? "" : "s");
        err = PARLEY_ERR_CONNECTION_LOST;
    } else
        snprintf(full, sizeof(full), "%s (after %d attempt%s)", msg, r->attempts,
                 r->attempts == 1 ? "" : "s");
    route_fail(io, r, err, full);
    return false;
}

/* The server turned the request away (err, msg): send it again after the
 * server's retry_after_ms (-1: none, then the backoff), at most 60 s. A wait
 * that would pass the request's deadline ends it now with the server's
 * error: waiting would only end it with a time-out that says less. */
static void route_retry_later(pl_io *io, pl_route *r, parley_err_t err, const char *msg,
                              int64_t retry_after_ms)
{
    if (!route_may_retry(io, r, err, msg))
        return;
    int64_t now = pl_monotonic_ms();
    int64_t delay = retry_after_ms < 0                   ? retry_delay(io, r)
                    : retry_after_ms < RETRY_AFTER_MAX_MS ? retry_after_ms
                                                          : RETRY_AFTER_MAX_MS;
    if (retry_after_ms >= 0 && r->deadline_ms && now + delay > r->deadline_ms) {
        char full[700];
        snprintf(full, sizeof(full), "%s (the server asked to retry after %lld ms, past "
                 "request.timeout.ms)", msg, (long long)retry_after_ms);
        route_fail(io, r, err, full);
        return;
    }
    route_wait(io, r, now, delay);
}

/* ---- connections -------------------------------------------------------- */

static bool conn_in_backoff(const pl_ws_conn *conn, int64_t now)
{
    return conn->state == PL_WS_IDLE && conn->reconnect_at_ms > now;
}

/* The connection with the fewest requests, steering away from `avoid` and
 * from connections waiting to reconnect. */
static pl_ws_conn *pick_conn(pl_io *io, const pl_ws_conn *avoid, int64_t now)
{
    pl_ws_conn *best = NULL;
    uint64_t best_load = UINT64_MAX;
    for (unsigned i = 0; i < io->nconns; i++) {
        pl_ws_conn *c = &io->conns[i];
        uint64_t load = c->inflight;
        if (c == avoid)
            load += AVOID_PENALTY;
        if (c->suspect_since_ms)
            load += SUSPECT_PENALTY;
        if (conn_in_backoff(c, now))
            load += BACKOFF_PENALTY;
        if (load < best_load) {
            best = c;
            best_load = load;
        }
    }
    return best;
}

static void conn_lost(pl_io *io, pl_ws_conn *conn, const pl_failure *f, const char *msg);

/* The failures the I/O thread itself finds (classify.h decides on each). */
static const pl_failure start_failure = {.kind = PL_FAIL_START, .err = PARLEY_ERR_CONNECT};
static const pl_failure no_handshake = {.kind = PL_FAIL_NETWORK,
                                        .err = PARLEY_ERR_CONNECT};
/* The connection must go; its requests resume on another (native). */
static const pl_failure conn_broken = {.kind = PL_FAIL_LOST, .err = PARLEY_ERR_PROTOCOL,
                                       .resumable = true};
static const pl_failure conn_oversized = {.kind = PL_FAIL_LOST,
                                          .err = PARLEY_ERR_CONNECTION_LOST,
                                          .resumable = true};
/* The server speaks what this client cannot: no connection will do better. */
static const pl_failure bad_subprotocol = {.kind = PL_FAIL_INVALID,
                                           .err = PARLEY_ERR_PROTOCOL};

static void open_conn(pl_io *io, pl_ws_conn *conn)
{
    pl_log(io->set.log, PARLEY_LOG_INFO, "conn", "connection %u: connecting to %s%s",
           conn->index, io->set.endpoint_shown, conn->failures ? " again" : "");
    if (io->set.easy.insecure) {
        PL_COUNTER_ADD(io->set.counters, insecure_connections, 1);
        pl_log(io->set.log, PARLEY_LOG_WARNING, "tls",
               "connection %u: certificate verification is off (tls.insecure)", conn->index);
    }
    const char *want = io->set.compression ? io->set.compression : "none";
    bool zstd = !strcmp(want, "zstd"), gzip = zstd || !strcmp(want, "gzip");
    if (pl_ws_conn_open(conn, io->set.endpoint, io->set.api_key, &io->set.easy,
                        (uint64_t)io->set.max_message_bytes, zstd, gzip,
                        io->set.compression_dict != 0) != 0) {
        char msg[CURL_ERROR_SIZE + 64];
        snprintf(msg, sizeof(msg), "could not start a connection: %s", conn->errbuf);
        conn_lost(io, conn, &start_failure, msg);
        return;
    }
    if (conn->failures > 0)
        PL_COUNTER_ADD(io->set.counters, reconnects, 1);
}

/* Start the route's HTTP request; libcurl picks or shares the connection. */
static void http_place(pl_io *io, pl_route *r)
{
    char err[128];
    r->http = pl_http_start(io->multi, &io->http, r, r->id, r->frame, r->frame_len, err,
                            sizeof(err));
    if (!r->http) {
        http_failed(io, r, &start_failure, err, -1);
        return;
    }
    route_arm(io, r);
}

/* Send (or send again) a route on the best connection. */
static void route_place(pl_io *io, pl_route *r, const pl_ws_conn *avoid, int64_t now)
{
    PL_ASSERT_OWNER(&io->owner);
    pl_ws_conn *conn = NULL;
    if (io->set.dialect == PL_DIALECT_NATIVE) {
        conn = pick_conn(io, avoid, now);
        if (conn->suspect_since_ms) {
            /* Every connection is on trial: wait for a verdict rather than
             * send on one that may be dead. Not an attempt. */
            route_wait(io, r, now, conn->suspect_since_ms +
                                   io->set.stall_ping_timeout_ms - now + 1);
            return;
        }
    }
    r->waiting = false;
    r->stalled = false;
    r->acked = false;
    r->attempts++;
    if (r->sends++ > 0) {
        pl_log(io->set.log, PARLEY_LOG_DEBUG, "request", "%llu: attempt %d, resuming from piece %u",
               (unsigned long long)r->id, r->attempts, r->next_seq);
        PL_COUNTER_ADD(io->set.counters, retries, 1);
        if (r->next_seq > 0)
            PL_COUNTER_ADD(io->set.counters, resumes, 1);
    }
    r->progress_ms = now;
    if (io->set.dialect != PL_DIALECT_NATIVE) {
        http_place(io, r);
        return;
    }
    r->conn = conn;
    conn->inflight++;
    route_send(r);
    route_arm(io, r);
    if (conn->state == PL_WS_IDLE && !conn_in_backoff(conn, now))
        open_conn(io, conn); /* on failure the route waits or has failed */
}

/* For a pass over the routes of one connection. */
typedef struct conn_routes {
    pl_io *io;
    pl_ws_conn *conn;
    int64_t now;
} conn_routes;

typedef struct conn_loss {
    pl_io *io;
    pl_ws_conn *conn;
    parley_err_t err;
    const char *msg;
    bool retryable;
    /* The connection delivered pieces before it broke, or was found dead
     * (silent, or no Pong after a stall): the network's failure. */
    bool not_their_fault;
    int64_t now;
} conn_loss;

static void requeue_if_on_conn(pl_route *r, void *arg)
{
    conn_loss *l = arg;
    if (r->conn != l->conn)
        return;
    if (r->cancelling) {
        route_end_cancelled(l->io, r);
        return;
    }
    if (!l->retryable) {
        route_fail(l->io, r, l->err, l->msg);
        return;
    }
    /* A connection that worked and broke, or went silent, is the network's
     * failure, not the request's: the send is not held against it
     * (request.timeout.ms still bounds it). Otherwise the request may have
     * been what broke it (an ack alone proves nothing: a server may ack and
     * drop every time). */
    if (l->not_their_fault) {
        if (r->attempts > 0)
            r->attempts--;
    } else if (!route_may_retry(l->io, r, l->err, l->msg)) {
        return;
    }
    /* Resume at once elsewhere or on the replacement, which backs off by
     * itself when it keeps failing; a connection that never worked: the
     * request backs off too. */
    route_wait(l->io, r, l->now, l->not_their_fault ? 0 : retry_delay(l->io, r));
}

/* The connection ended: its requests are sent again (or fail when they may
 * not be), and it reconnects after a backoff when requests need it. */
static void conn_end(pl_io *io, pl_ws_conn *conn, parley_err_t err, const char *msg,
                     bool retryable, bool found_dead)
{
    PL_ASSERT_OWNER(&io->owner);
    int64_t now = pl_monotonic_ms();
    bool delivered = conn->state == PL_WS_OPEN && conn->delivered > 0;
    conn_loss l = {io, conn, err, msg, retryable, found_dead || delivered, now};
    /* A failure that ends the requests reaches the user as their error
     * events; one they are retried after is worth a warning, once while
     * the connection keeps failing. */
    pl_log(io->set.log, retryable && conn->failures == 0 ? PARLEY_LOG_WARNING : PARLEY_LOG_NOTICE,
           "conn", "connection %u: %s (%u request%s on it%s)", conn->index, msg, conn->inflight,
           conn->inflight == 1 ? "" : "s",
           retryable && conn->inflight ? ", sent again while attempts remain" : "");
    pl_ws_conn_reset(conn);
    conn->suspect_since_ms = 0;
    /* Every reconnect waits, whatever broke the connection: at least about
     * reconnect.backoff.ms, doubling while connections deliver no piece.
     * No reconnect storm: a server that acks and drops gets ever fewer
     * connections, one that drops after each piece at most one per delay. */
    conn->failures++;
    conn->reconnect_at_ms = now + pl_backoff_ms(conn->failures, io->set.reconnect_backoff_ms,
                                                io->set.reconnect_backoff_max_ms, &io->rng);
    PL_COUNTER_ADD(io->set.counters, errors, 1);
    pl_route_foreach(&io->routes, requeue_if_on_conn, &l);
}

static void conn_lost(pl_io *io, pl_ws_conn *conn, const pl_failure *f, const char *msg)
{
    conn_end(io, conn, f->err, msg, pl_failure_retryable(f), false);
}

/* The connection went silent: it is replaced, and its requests resume
 * without losing an attempt. */
static void conn_found_dead(pl_io *io, pl_ws_conn *conn, const char *msg)
{
    conn_end(io, conn, PARLEY_ERR_CONNECTION_LOST, msg, true, true);
}

/* Called inside curl callbacks: the failure is carried out by the loop. */
static void conn_doom(pl_ws_conn *conn, const pl_failure *f, const char *msg,
                      unsigned close_code)
{
    if (conn->doomed)
        return;
    conn->doomed = true;
    conn->doom_err = f->err;
    conn->doom_retryable = pl_failure_retryable(f);
    conn->doom_close_code = close_code;
    snprintf(conn->doom_msg, sizeof(conn->doom_msg), "%s", msg);
}

static void carry_out_doom(pl_io *io, pl_ws_conn *conn)
{
    if (conn->doom_close_code)
        pl_ws_conn_close_now(conn, conn->doom_close_code);
    char msg[sizeof(conn->doom_msg)];
    memcpy(msg, conn->doom_msg, sizeof(msg)); /* the reset clears the connection */
    conn_end(io, conn, (parley_err_t)conn->doom_err, msg, conn->doom_retryable, false);
}

/* Explain why a transfer ended, from the HTTP answer and curl's result:
 * the sentence, and the failure it was. */
static void explain_end(pl_io *io, pl_ws_conn *conn, CURLcode rc, char *msg, size_t size,
                        pl_failure *f)
{
    const char *url = io->set.endpoint_shown;
    long status = 0;
    curl_easy_getinfo(conn->easy, CURLINFO_RESPONSE_CODE, &status);
    const char *detail = conn->errbuf[0] ? conn->errbuf : curl_easy_strerror(rc);
    *f = (pl_failure){.kind = PL_FAIL_REFUSED, .status = status, .upgrade = true};
    if (status == 401) {
        pl_server_msg m;
        char err[64];
        const char *why = "the API key was refused";
        if (conn->refusal_body.len &&
            pl_proto_decode(io->decoder, conn->refusal_body.data,
                            conn->refusal_body.len, &m, err, sizeof(err)) == 0 &&
            m.type == PL_SMSG_ERROR && m.content)
            why = m.content;
        snprintf(msg, size, "unauthorized: %s (HTTP 401 from %s)", why, url);
        f->err = PARLEY_ERR_UNAUTHORIZED;
        return;
    }
    if (status != 0 && status != 101) {
        snprintf(msg, size, "the server answered HTTP %ld to the WebSocket upgrade of %s "
                 "(%s)%s", status, url, io->set.dialect_shown,
                 status == 404 ? "; the native protocol's path is /v1/stream, and the "
                                 "vendors' APIs take an http(s):// endpoint" : "");
        f->err = PARLEY_ERR_CONNECT;
        return;
    }
    if (!conn->upgraded) {
        pl_easy_explain(rc, conn->errbuf, url, msg, size, f);
        return;
    }
    if (conn->failed || rc != CURLE_OK)
        snprintf(msg, size, "connection to %s lost: %s", url, detail);
    else
        snprintf(msg, size, "connection to %s closed by the server", url);
    *f = (pl_failure){.kind = PL_FAIL_LOST, .err = PARLEY_ERR_CONNECTION_LOST,
                      .resumable = true};
}

static void conn_ended(pl_io *io, pl_ws_conn *conn, CURLcode rc)
{
    if (conn->doomed) {
        carry_out_doom(io, conn);
        return;
    }
    char msg[CURL_ERROR_SIZE + 256];
    pl_failure f;
    explain_end(io, conn, rc, msg, sizeof(msg), &f);
    conn_lost(io, conn, &f, msg);
}

/* ---- messages from the server ------------------------------------------ */

static parley_err_t map_server_error(pl_server_err code)
{
    switch (code) {
    case PL_SERR_INVALID_REQUEST: return PARLEY_ERR_INVALID_REQUEST;
    case PL_SERR_UNAUTHORIZED: return PARLEY_ERR_UNAUTHORIZED;
    case PL_SERR_TOO_LARGE: return PARLEY_ERR_SERVER_TOO_LARGE;
    case PL_SERR_RATE_LIMITED: return PARLEY_ERR_RATE_LIMITED;
    case PL_SERR_OVERLOADED: return PARLEY_ERR_OVERLOADED;
    case PL_SERR_INTERNAL: return PARLEY_ERR_SERVER_INTERNAL;
    case PL_SERR_RESUME_FAILED: return PARLEY_ERR_RESUME_FAILED;
    case PL_SERR_OTHER: break;
    }
    return PARLEY_ERR_PROTOCOL;
}

/* A route the message may speak for: known, and last sent on this
 * connection (an earlier connection's late messages are stale). */
static pl_route *route_for(pl_io *io, pl_ws_conn *conn, bool has_id, uint64_t id)
{
    pl_route *r = has_id ? pl_route_find(&io->routes, id) : NULL;
    return r && r->conn == conn ? r : NULL;
}

static void progress(pl_route *r)
{
    r->stalled = false;
    r->progress_ms = pl_monotonic_ms();
    r->attempts = 1; /* this send is working: retries count afresh */
}

/* The requests queued on a connection go out now that it is open: their
 * stall time counts from here, not from the handshake. */
static void start_stall_clock(pl_route *r, void *arg)
{
    conn_routes *cr = arg;
    if (r->conn != cr->conn || r->waiting)
        return;
    r->progress_ms = cr->now;
    route_arm(cr->io, r);
}

static void on_hello(pl_io *io, pl_ws_conn *conn, const pl_server_msg *m)
{
    if (conn->state == PL_WS_OPEN)
        return;
    /* No Sec-WebSocket-Protocol in the 101 answer means parley.v1 too. */
    bool zstd = conn->offered_zstd && !strcmp(conn->subprotocol, PL_PROTO_SUBPROTOCOL_ZSTD);
    bool gzip = conn->offered_gzip && !strcmp(conn->subprotocol, PL_PROTO_SUBPROTOCOL_GZIP);
    if (conn->subprotocol[0] && !zstd && !gzip &&
        strcmp(conn->subprotocol, PL_PROTO_SUBPROTOCOL) != 0) {
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "the server selected subprotocol \"%.64s\", which this client did not offer",
                 conn->subprotocol);
        conn_doom(conn, &bad_subprotocol, msg, 1002);
        return;
    }
    conn->state = PL_WS_OPEN;
    conn->compression = zstd ? PL_COMPRESS_ZSTD : gzip ? PL_COMPRESS_GZIP : 0;
    conn->dict_agreed = zstd && conn->offered_dict && m->zstd_dict == pl_compress_dict_id();
    pl_log(io->set.log, PARLEY_LOG_INFO, "conn", "connection %u open: %s, %s%s, heartbeat %u s",
           conn->index, m->server ? m->server : "server", m->protocol,
           conn->dict_agreed ? " with the dictionary" : "", m->heartbeat_s);
    conn->heartbeat_s = m->heartbeat_s;
    conn->stats.opens++;
    conn->stats.open_since_ms = pl_monotonic_ms();
    if (m->max_message_bytes && m->max_message_bytes < conn->max_message_bytes)
        conn->max_message_bytes = m->max_message_bytes;
    PL_COUNTER_ADD(io->set.counters, connections_opened, 1);
    conn_routes cr = {io, conn, pl_monotonic_ms()};
    pl_route_foreach(&io->routes, start_stall_clock, &cr);
}

static void on_ack(pl_io *io, pl_ws_conn *conn, const pl_server_msg *m)
{
    pl_route *r = route_for(io, conn, m->has_id, m->id);
    if (!r)
        return;
    r->acked = true;
    /* Only the first ack is progress: a server that acks every repeat but
     * never streams must still run out of attempts. */
    if (!r->ever_acked) {
        r->ever_acked = true;
        progress(r);
    }
}

/* Pieces are missing (a seq gap, or done's seq_end beyond what arrived): ask
 * again from the first missing one (protocol 6), once per position: the
 * repeat's own stream answers every later gap message of the old one. */
static void repeat_for_gap(pl_io *io, pl_route *r)
{
    if (r->repeat_from == r->next_seq)
        return;
    if (++r->gap_repeats > GAP_REPEATS_MAX) {
        char msg[160];
        snprintf(msg, sizeof(msg), "the server skipped pieces of the reply %u times; the "
                 "request gave up", GAP_REPEATS_MAX);
        PL_COUNTER_ADD(io->set.counters, errors, 1);
        if (r->conn && r->conn->state == PL_WS_OPEN)
            send_cancel(r->conn, r->id);
        route_fail(io, r, PARLEY_ERR_PROTOCOL, msg);
        return;
    }
    r->repeat_from = r->next_seq;
    route_send(r);
}

/* Whether a message about r may be believed: one that names another session
 * than the request's is the server's mistake, and fails the request. */
static bool session_matches(pl_io *io, pl_route *r, const pl_server_msg *m)
{
    if (!m->session || !strcmp(m->session, r->owner_id))
        return true;
    char msg[400];
    snprintf(msg, sizeof(msg), "invalid message from the server: request %llu belongs to "
             "session \"%s\", not \"%.128s\"", (unsigned long long)r->id, r->owner_id,
             m->session);
    PL_COUNTER_ADD(io->set.counters, errors, 1);
    if (r->conn && r->conn->state == PL_WS_OPEN)
        send_cancel(r->conn, r->id);
    route_fail(io, r, PARLEY_ERR_PROTOCOL, msg);
    return false;
}

/* Count a piece against reply.max.bytes; false when the request failed. */
static bool reply_within_bound(pl_io *io, pl_route *r, size_t len)
{
    r->reply_bytes += len;
    if (r->reply_bytes <= (uint64_t)io->set.reply_max_bytes)
        return true;
    char msg[200];
    snprintf(msg, sizeof(msg), "the reply grew past reply.max.bytes (%lld bytes) and was "
             "abandoned", (long long)io->set.reply_max_bytes);
    PL_COUNTER_ADD(io->set.counters, errors, 1);
    if (r->conn && r->conn->state == PL_WS_OPEN)
        send_cancel(r->conn, r->id); /* stop the server's work too */
    route_fail(io, r, PARLEY_ERR_REPLY_TOO_LARGE, msg);
    return false;
}

static void on_text(pl_io *io, pl_ws_conn *conn, const pl_server_msg *m)
{
    pl_route *r = route_for(io, conn, m->has_id, m->id);
    if (!r || m->seq < r->next_seq)
        return; /* stale, or a piece already delivered */
    if (!session_matches(io, r, m))
        return;
    if (m->seq > r->next_seq) {
        repeat_for_gap(io, r);
        return;
    }
    if (!reply_within_bound(io, r, m->content_len))
        return;
    pl_piece piece = {.kind = PL_PIECE_TEXT, .text = m->content, .len = m->content_len};
    io->sink.piece(r->owner, r->id, m->seq, &piece);
    r->next_seq++;
    progress(r);
}

static bool stop_reason_valid(const char *reason)
{
    return reason && (!strcmp(reason, "end_turn") || !strcmp(reason, "max_tokens") ||
                      !strcmp(reason, "cancelled"));
}

static void on_done(pl_io *io, pl_ws_conn *conn, const pl_server_msg *m)
{
    pl_route *r = route_for(io, conn, m->has_id, m->id);
    if (!r)
        return;
    if (!stop_reason_valid(m->stop_reason)) {
        char msg[160];
        snprintf(msg, sizeof(msg), "invalid message from the server: unknown stop_reason \"%.40s\"",
                 m->stop_reason ? m->stop_reason : "");
        PL_COUNTER_ADD(io->set.counters, errors, 1);
        route_fail(io, r, PARLEY_ERR_PROTOCOL, msg);
        return;
    }
    if (!session_matches(io, r, m))
        return;
    if (m->has_seq_end && m->seq_end > r->next_seq) {
        repeat_for_gap(io, r);
        return;
    }
    pl_route_remove(&io->routes, r->id);
    route_detach(r);
    pl_reply_end end = {.stop_reason = m->stop_reason,
                        .input_tokens = m->input_tokens,
                        .output_tokens = m->output_tokens};
    io->sink.done(r->owner, r->id, &end);
    route_free(io, r);
}

static void on_error(pl_io *io, pl_ws_conn *conn, const pl_server_msg *m)
{
    char msg[640];
    snprintf(msg, sizeof(msg), "server error %s: %.*s%s", m->code_str ? m->code_str : "?",
             (int)(m->content ? m->content_len : 0), m->content ? m->content : "",
             m->code == PL_SERR_RESUME_FAILED
                 ? " (the server no longer holds the reply, e.g. after a restart: the "
                   "session is unchanged and the turn can be sent again)"
                 : "");
    if (m->code >= PL_SERR_INVALID_REQUEST && m->code <= PL_SERR_OTHER)
        io->server_errors[m->code]++;
    pl_route *r = route_for(io, conn, m->has_id, m->id);
    if (!r) {
        PL_COUNTER_ADD(io->set.counters, errors, 1); /* about the connection, or stale */
        pl_log(io->set.log, PARLEY_LOG_WARNING, "proto", "connection %u: %s", conn->index, msg);
        return;
    }
    pl_failure f = {.kind = PL_FAIL_SERVER, .err = map_server_error(m->code),
                    .started = r->acked};
    if (r->cancelling || !pl_failure_retryable(&f)) {
        route_fail(io, r, f.err, msg);
        return;
    }
    route_retry_later(io, r, f.err, msg, m->retry_after_ms);
}

/* A message over the limit: its request fails (a repeat would be sent the
 * same message again), and the connection is closed with 1009 at once rather
 * than read to the message's end, which the server may never reach; the
 * other requests on it resume on the next connection. */
static void on_oversized(void *owner, pl_ws_conn *conn, const char *start, size_t len)
{
    pl_io *io = owner;
    PL_COUNTER_ADD(io->set.counters, errors, 1);
    char msg[160];
    snprintf(msg, sizeof(msg),
             "the server sent a message over max.message.bytes (%llu); it was discarded",
             (unsigned long long)conn->max_message_bytes);
    uint64_t id;
    pl_route *r = pl_proto_peek_id(start, len, &id) == 0 ? route_for(io, conn, true, id) : NULL;
    if (r)
        route_fail(io, r, PARLEY_ERR_PROTOCOL, msg);
    conn_doom(conn, &conn_oversized,
              "the server sent a message over max.message.bytes; connection closed (1009)",
              1009);
}

static void on_text_message(pl_io *io, pl_ws_conn *conn, const char *data, size_t len);

/* A binary frame: one zstd frame on parley.v1.zstd, one gzip member on
 * parley.v1.gzip, inflated within the size limit before anything is
 * allocated; nothing on parley.v1. */
static void on_binary(pl_io *io, pl_ws_conn *conn, const char *data, size_t len)
{
    if (!conn->compression) {
        PL_COUNTER_ADD(io->set.counters, errors, 1);
        pl_log(io->set.log, PARLEY_LOG_WARNING, "proto",
               "connection %u: a binary frame on parley.v1, ignored", conn->index);
        return;
    }
    pl_buf plain = PL_BUF_INIT;
    char err[160];
    int rc = pl_decompress((pl_compress_alg)conn->compression,
                           conn->dict_agreed ? pl_compress_dict_builtin() : NULL,
                           data, len, (size_t)conn->max_message_bytes, &plain, err, sizeof(err));
    if (rc != PL_COMPRESS_OK) {
        PL_COUNTER_ADD(io->set.counters, errors, 1);
        pl_log(io->set.log, PARLEY_LOG_WARNING, "proto", "connection %u: %s", conn->index, err);
        pl_buf_free(&plain);
        return; /* whose it was is unknown: its request is caught as stalled */
    }
    PL_COUNTER_ADD(io->set.counters, bytes_decompressed, plain.len);
    on_text_message(io, conn, plain.data ? plain.data : "", plain.len);
    pl_buf_free(&plain);
}

static void on_message(void *owner, pl_ws_conn *conn, const char *data, size_t len,
                       bool binary)
{
    pl_io *io = owner;
    pass_on_held_wakes(io);
    PL_COUNTER_ADD(io->set.counters, frames_received, 1);
    PL_COUNTER_ADD(io->set.counters, bytes_received, len);
    conn->stats.frames_received++;
    conn->stats.bytes_received += len;
    if (binary)
        on_binary(io, conn, data, len);
    else
        on_text_message(io, conn, data, len);
}

/* A parley.v1 JSON message, as received or once inflated. */
static void on_text_message(pl_io *io, pl_ws_conn *conn, const char *data, size_t len)
{
    if (!pl_utf8_valid(data, len)) {
        /* RFC 6455 and the protocol: invalid UTF-8 in a text frame ends the
         * connection with 1007. */
        conn_doom(conn, &conn_broken,
                  "the server sent invalid UTF-8 in a text frame; connection closed (1007)",
                  1007);
        return;
    }
    pl_server_msg m;
    char err[256];
    if (pl_proto_decode(io->decoder, data, len, &m, err, sizeof(err)) != 0) {
        PL_COUNTER_ADD(io->set.counters, errors, 1);
        pl_log(io->set.log, PARLEY_LOG_WARNING, "proto",
               "connection %u: invalid message from the server: %s", conn->index, err);
        /* A message too broken to parse may still name its request early on. */
        uint64_t id = m.id;
        bool has_id = m.has_id || pl_proto_peek_id(data, len < 256 ? len : 256, &id) == 0;
        pl_route *r = route_for(io, conn, has_id, id);
        if (r) {
            char msg[300];
            snprintf(msg, sizeof(msg), "invalid message from the server: %s", err);
            route_fail(io, r, PARLEY_ERR_PROTOCOL, msg);
        }
        return;
    }
    /* Pieces show the connection works: its loss then costs its requests
     * no attempt, and its replacement only the first reconnect delay. An
     * ack alone proves nothing. */
    if (m.type == PL_SMSG_TEXT || m.type == PL_SMSG_DONE) {
        conn->delivered++;
        conn->failures = 0;
    }
    switch (m.type) {
    case PL_SMSG_HELLO: on_hello(io, conn, &m); break;
    case PL_SMSG_ACK: on_ack(io, conn, &m); break;
    case PL_SMSG_TEXT: on_text(io, conn, &m); break;
    case PL_SMSG_DONE: on_done(io, conn, &m); break;
    case PL_SMSG_ERROR: on_error(io, conn, &m); break;
    case PL_SMSG_UNKNOWN:
        PL_COUNTER_ADD(io->set.counters, unknown_messages, 1);
        pl_log(io->set.log, PARLEY_LOG_DEBUG, "proto", "connection %u: ignored a message of unknown type",
               conn->index);
        break;
    }
}

/* ---- the HTTP dialects' streams ---------------------------------------- */

static void http_text(void *owner, void *req, const char *text, size_t len)
{
    pl_io *io = owner;
    pl_route *r = req;
    pass_on_held_wakes(io);
    if (!reply_within_bound(io, r, len))
        return;
    pl_piece piece = {.kind = PL_PIECE_TEXT, .text = text, .len = len};
    io->sink.piece(r->owner, r->id, r->next_seq, &piece);
    r->next_seq++;
    progress(r);
}

static void http_done(void *owner, void *req, const pl_stream_result *res)
{
    pl_io *io = owner;
    pl_route *r = req;
    r->http = NULL; /* the stream finishes on its own */
    pl_route_remove(&io->routes, r->id);
    io->sink.done(r->owner, r->id, &res->end);
    route_free(io, r);
}

static void http_failed(void *owner, void *req, const pl_failure *f, const char *msg,
                        int64_t retry_after_ms)
{
    pl_io *io = owner;
    pl_route *r = req;
    r->http = NULL; /* the stream finishes on its own */
    if (r->cancelling) {
        route_end_cancelled(io, r);
        return;
    }
    if (!pl_failure_retryable(f)) {
        route_fail(io, r, f->err, msg);
        return;
    }
    /* Over HTTP no connection logs its failures: say here that the request
     * waits (a connect that hangs would be silent for every attempt). */
    if (r->attempts < io->set.retry_max_attempts)
        pl_log(io->set.log, wait_log_level(io, pl_monotonic_ms()), "request",
               "%llu: %s; sending it again (attempt %d of %d done)", (unsigned long long)r->id,
               msg, r->attempts, io->set.retry_max_attempts);
    route_retry_later(io, r, f->err, msg, retry_after_ms);
}

/* ---- orders from the sessions ------------------------------------------- */

static void accept_send(pl_io *io, pl_io_request *req, int64_t now)
{
    pl_route *r = pl_xcalloc(1, sizeof(*r));
    r->id = req->id;
    r->repeat_from = UINT32_MAX;
    r->owner = req->owner; /* the request's reference moves to the route */
    r->owner_id = req->owner_id;
    r->frame = req->frame;
    r->frame_len = req->frame_len;
    if (io->set.request_timeout_ms > 0)
        r->deadline_ms = now + io->set.request_timeout_ms;
    pl_route_insert(&io->routes, r);
    route_place(io, r, NULL, now);
}

static void accept_cancel(pl_io *io, uint64_t id)
{
    pl_route *r = pl_route_find(&io->routes, id);
    if (!r || r->cancelling)
        return; /* finished already, or asked twice */
    r->cancelling = true;
    if (r->waiting || r->http || !r->conn || r->conn->state == PL_WS_IDLE) {
        /* An HTTP stream cannot be told to stop: leaving it is the cancel. */
        route_end_cancelled(io, r);
        return;
    }
    /* The server answers with done, stop_reason cancelled. */
    send_cancel(r->conn, r->id);
}

static void drain_submissions(pl_io *io)
{
    PL_ASSERT_OWNER(&io->owner); /* the queue's one consumer */
    pl_mpsc_node *e = pl_mpsc_take_all(&io->submissions);
    int64_t now = pl_monotonic_ms();
    while (e) {
        pl_mpsc_node *next = e->next;
        pl_io_request *req = pl_mpsc_entry(e, pl_io_request, entry);
        if (req->op == PL_IO_SEND) {
            accept_send(io, req, now);
        } else {
            accept_cancel(io, req->id);
        }
        free(req->headers);
        free(req);
        e = next;
    }
}

/* ---- stalls: a connection on trial ----------------------------------------- */

/* A request on the connection stalled: a Ping tells whether the connection
 * still carries anything (tend_conn reads the verdict). */
static void put_on_trial(pl_io *io, pl_ws_conn *conn, int64_t now)
{
    if (conn->suspect_since_ms)
        return; /* one trial at a time: its Ping answers for every request */
    conn->suspect_since_ms = now;
    pl_ws_conn_queue_control(conn, CURLWS_PING, "stall", 5);
    pl_log(io->set.log, wait_log_level(io, now), "conn",
           "connection %u: a request stalled; a Ping tells whether the connection is dead "
           "(stall.ping.timeout.ms %d)", conn->index, io->set.stall_ping_timeout_ms);
}

/* The connection answered: its stalled requests were slow on their own and
 * are sent again elsewhere, at the cost of an attempt each. */
static void resume_stalled_elsewhere(pl_route *r, void *arg)
{
    conn_routes *cr = arg;
    if (r->conn != cr->conn || !r->stalled)
        return;
    r->stalled = false;
    char msg[160];
    snprintf(msg, sizeof(msg), "the reply stalled: nothing for %lld ms",
             (long long)(cr->now - r->progress_ms));
    if (!route_may_retry(cr->io, r, PARLEY_ERR_TIMED_OUT, msg))
        return;
    route_detach(r);
    route_place(cr->io, r, cr->conn, cr->now); /* a repeat: the newest wins */
}

static void conn_acquitted(pl_io *io, pl_ws_conn *conn, int64_t now)
{
    conn->suspect_since_ms = 0;
    pl_log(io->set.log, PARLEY_LOG_INFO, "conn",
           "connection %u answered the Ping: the stalled requests move elsewhere",
           conn->index);
    conn_routes cr = {io, conn, now};
    pl_route_foreach(&io->routes, resume_stalled_elsewhere, &cr);
}

/* The trial's verdict, when there is one. Returns ms until it is due. */
static int64_t judge_conn(pl_io *io, pl_ws_conn *conn, int64_t now)
{
    if (conn->last_pong_ms >= conn->suspect_since_ms) {
        conn_acquitted(io, conn, now);
        return IO_POLL_MAX_MS;
    }
    int64_t left = conn->suspect_since_ms + io->set.stall_ping_timeout_ms - now;
    if (left > 0)
        return left;
    char msg[200];
    snprintf(msg, sizeof(msg),
             "connection to %s is dead: a request stalled and a Ping got no Pong within "
             "%d ms (stall.ping.timeout.ms)", io->set.endpoint_shown,
             io->set.stall_ping_timeout_ms);
    conn_found_dead(io, conn, msg);
    return 0;
}

/* ---- stalls over HTTP ---------------------------------------------------- */

/*
 * libcurl offers no Ping of a given HTTP/2 connection; the stalled stream
 * and its neighbours are the witnesses instead. A stream that heard nothing
 * at all, not even the answer's headers, was never taken up: the silence is
 * the connection's (or a frozen server's), not the request's. Streams that
 * share the connection and heard nothing within the stall timeout either
 * mean the connection is dead; one that heard anything (an SSE ping
 * included) means it lives and the request alone was slow.
 */
typedef struct http_trial {
    pl_io *io;
    pl_route *stalled;
    curl_off_t conn_id;
    int64_t now;
    unsigned silent_witnesses;
    bool alive;
    bool stalled_pays;  /* the stalled request loses an attempt */
} http_trial;

static void question_witness(pl_route *r, void *arg)
{
    http_trial *t = arg;
    if (r == t->stalled || !r->http || pl_http_conn_id(r->http) != t->conn_id)
        return;
    if (r->http->last_rx_ms > t->now - t->io->set.stall_timeout_ms)
        t->alive = true;
    else
        t->silent_witnesses++;
}

/* Every request on the dead connection leaves it, the connection is closed
 * behind the last one, and those that had received no piece start again
 * (the others cannot resume over HTTP). */
static void leave_dead_http_conn(pl_route *r, void *arg)
{
    http_trial *t = arg;
    if (!r->http || pl_http_conn_id(r->http) != t->conn_id)
        return;
    pl_http_condemn_conn(r->http);
    if (r->next_seq > 0) {
        char msg[200];
        snprintf(msg, sizeof(msg), "the connection went silent after %u piece%s; HTTP "
                 "streaming APIs cannot resume a reply", r->next_seq,
                 r->next_seq == 1 ? "" : "s");
        route_fail(t->io, r, PARLEY_ERR_CONNECTION_LOST, msg);
        return;
    }
    if ((r != t->stalled || !t->stalled_pays) && r->attempts > 0)
        r->attempts--; /* the connection's fault: the send is not counted */
    route_wait(t->io, r, t->now, 0);
}

static void http_stalled(pl_io *io, pl_route *r, int64_t now, const char *msg)
{
    http_trial t = {io, r, pl_http_conn_id(r->http), now, 0, false, false};
    if (t.conn_id >= 0)
        pl_route_foreach(&io->routes, question_witness, &t);
    if (t.alive) {
        /* The connection lives: the request alone was slow. */
        if (!route_may_retry(io, r, PARLEY_ERR_TIMED_OUT, msg))
            return;
        route_detach(r);
        route_place(io, r, NULL, now);
        return;
    }
    /* Answered and then alone in its silence, the request may be what the
     * server chokes on: it pays. The connection goes either way. */
    pl_http_condemn_conn(r->http);
    t.stalled_pays = r->http->last_rx_ms > 0 && t.silent_witnesses == 0;
    if (t.stalled_pays && !route_may_retry(io, r, PARLEY_ERR_TIMED_OUT, msg))
        return;
    if (t.conn_id < 0) {
        route_wait(io, r, now, 0); /* no connection to take the others off */
        if (!t.stalled_pays && r->attempts > 0)
            r->attempts--;
        return;
    }
    pl_log(io->set.log, PARLEY_LOG_WARNING, "conn",
           "an HTTP connection to %s went silent (%u stream%s on it heard nothing for %d ms): "
           "it is closed and its requests start again", io->set.endpoint_shown,
           t.silent_witnesses + 1, t.silent_witnesses ? "s" : "",
           io->set.stall_timeout_ms);
    pl_route_foreach(&io->routes, leave_dead_http_conn, &t);
}

/* ---- timers ------------------------------------------------------------- */

/* A route's timer fired: deadline, retry or stall, whichever is due. */
static void route_check(pl_io *io, pl_route *r, int64_t now)
{
    if (r->deadline_ms && now >= r->deadline_ms) {
        if (r->conn && r->conn->state == PL_WS_OPEN && !r->cancelling)
            send_cancel(r->conn, r->id); /* stop the server's work too */
        char msg[128];
        snprintf(msg, sizeof(msg), "no reply within request.timeout.ms (%d ms)",
                 io->set.request_timeout_ms);
        route_fail(io, r, PARLEY_ERR_TIMED_OUT, msg);
        return;
    }
    if (r->waiting && now >= r->retry_at_ms) {
        route_place(io, r, NULL, now);
        return;
    }
    int64_t stall = io->set.stall_timeout_ms;
    if (!r->waiting && !r->stalled && stall > 0 && now - r->progress_ms >= stall &&
        route_sent(r)) {
        PL_COUNTER_ADD(io->set.counters, stalls, 1);
        char msg[160];
        snprintf(msg, sizeof(msg), "the reply stalled: nothing for %lld ms",
                 (long long)(now - r->progress_ms));
        pl_log(io->set.log, wait_log_level(io, now), "request", "%llu: %s; waiting on %s",
               (unsigned long long)r->id, msg, io->set.endpoint_shown);
        if (r->cancelling) {
            route_end_cancelled(io, r);
            return;
        }
        if (r->http && r->next_seq > 0) {
            /* The vendors' APIs cannot resume a reply part-way. */
            char full[256];
            snprintf(full, sizeof(full), "%s after %u pieces; HTTP streaming APIs cannot "
                     "resume a reply", msg, r->next_seq);
            route_fail(io, r, PARLEY_ERR_TIMED_OUT, full);
            return;
        }
        if (r->http) {
            http_stalled(io, r, now, msg);
            return;
        }
        put_on_trial(io, r->conn, now);
        r->stalled = true; /* the verdict moves it (conn_acquitted, conn_end) */
        route_arm(io, r);
        return;
    }
    route_arm(io, r);
}

/* Run due timers; returns the milliseconds until the next one. */
static int64_t run_timers(pl_io *io, int64_t now)
{
    pl_timer *t;
    while ((t = pl_timer_pop_due(&io->timers, now)))
        route_check(io, pl_container_of(t, pl_route, timer), now);
    t = pl_timer_first(&io->timers);
    return t ? t->due - now : IO_POLL_MAX_MS;
}

/* ---- the loop ----------------------------------------------------------- */

static void flush_conn(pl_io *io, pl_ws_conn *conn)
{
    uint64_t bytes = 0, saved = 0;
    int frames = pl_ws_conn_flush(conn, &bytes, &saved);
    if (frames > 0) {
        conn->stats.frames_sent += (uint64_t)frames;
        conn->stats.bytes_sent += bytes;
        conn->stats.bytes_saved += saved;
        PL_COUNTER_ADD(io->set.counters, frames_sent, (uint64_t)frames);
        PL_COUNTER_ADD(io->set.counters, bytes_sent, bytes);
        PL_COUNTER_ADD(io->set.counters, bytes_compression_saved, saved);
    }
}

static int64_t conn_heartbeat_ms(pl_io *io, const pl_ws_conn *conn)
{
    int64_t ms = io->heartbeat_ms;
    if (conn->heartbeat_s && (int64_t)conn->heartbeat_s * 1000 < ms)
        ms = (int64_t)conn->heartbeat_s * 1000;
    return ms;
}

/* Ping every interval; a connection silent for two intervals is dead.
 * Returns the milliseconds until the next heartbeat duty. */
static int64_t heartbeat(pl_io *io, pl_ws_conn *conn, int64_t now)
{
    if (!conn->upgraded)
        return IO_POLL_MAX_MS;
    int64_t interval = conn_heartbeat_ms(io, conn);
    if (now - conn->last_rx_ms >= 2 * interval) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "connection to %s lost: nothing received for %lld ms",
                 io->set.endpoint_shown, (long long)(now - conn->last_rx_ms));
        conn_found_dead(io, conn, msg);
        return IO_POLL_MAX_MS;
    }
    if (now - conn->last_ping_ms >= interval) {
        pl_ws_conn_queue_control(conn, CURLWS_PING, "hb", 2);
        conn->last_ping_ms = now;
    }
    return conn->last_ping_ms + interval - now;
}

/* Housekeeping of one connection; returns ms until it next needs a look. */
static int64_t tend_conn(pl_io *io, pl_ws_conn *conn, int64_t now,
                         struct curl_waitfd *extra, unsigned *nextra)
{
    if (conn->state == PL_WS_IDLE) {
        if (!conn->inflight)
            return IO_POLL_MAX_MS;
        if (conn->reconnect_at_ms > now)
            return conn->reconnect_at_ms - now;
        open_conn(io, conn); /* requests wait on it for its return */
        return 0;
    }
    if (conn->peer_closed) {
        conn_ended(io, conn, CURLE_OK);
        return 0;
    }
    if (conn->state == PL_WS_CONNECTING &&
        now - conn->opened_at_ms >= io->set.connect_timeout_ms) {
        char msg[200];
        snprintf(msg, sizeof(msg), "no %s from %s within connect.timeout.ms (%d ms)",
                 conn->upgraded ? "hello" : "answer to the WebSocket upgrade",
                 io->set.endpoint_shown, io->set.connect_timeout_ms);
        conn_lost(io, conn, &no_handshake, msg);
        return 0;
    }
    int64_t due = heartbeat(io, conn, now);
    if (conn->state == PL_WS_IDLE)
        return 0;
    if (conn->state == PL_WS_CONNECTING) {
        int64_t left = conn->opened_at_ms + io->set.connect_timeout_ms - now;
        if (left < due)
            due = left;
    }
    if (conn->suspect_since_ms) {
        int64_t left = judge_conn(io, conn, now);
        if (conn->state == PL_WS_IDLE)
            return 0;
        if (left < due)
            due = left;
    }
    flush_conn(io, conn);
    if (conn->failed) {
        int64_t left = conn->failed_at_ms + SEND_FAILURE_GRACE_MS - now;
        if (left > 0)
            return left; /* libcurl ends the transfer when it reads the end */
        conn_ended(io, conn, CURLE_SEND_ERROR);
        return 0;
    }
    if (pl_ws_conn_wants_write(conn))
        extra[(*nextra)++] = (struct curl_waitfd){conn->sock, CURL_WAIT_POLLOUT, 0};
    return due;
}

static void handle_finished_transfers(pl_io *io)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(io->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        pl_easy_kind *kind = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&kind);
        if (!kind)
            continue;
        if (*kind == PL_EASY_WS) {
            conn_ended(io, (pl_ws_conn *)kind, msg->data.result);
            continue;
        }
        pl_http_outcome out = pl_http_finish((pl_http_stream *)kind, msg->data.result);
        long connects = out.connects;
        io->http_status[out.status >= 100 && out.status < 600 ? out.status / 100 : 0]++;
        io->http2_answers += out.http2;
        if (connects > 0) {
            PL_COUNTER_ADD(io->set.counters, connections_opened, (uint64_t)connects);
            if (io->set.easy.insecure) {
                PL_COUNTER_ADD(io->set.counters, insecure_connections, (uint64_t)connects);
                pl_log(io->set.log, PARLEY_LOG_WARNING, "tls",
                       "an HTTP connection was made without certificate verification "
                       "(tls.insecure)");
            }
        }
    }
}

static void count_waiting(pl_route *r, void *arg)
{
    *(size_t *)arg += r->waiting;
}

/* Publish the statistics when due; returns ms until they are due next. */
static int64_t publish_stats(pl_io *io, int64_t now)
{
    if (!io->next_stats_ms)
        return IO_POLL_MAX_MS;
    if (now >= io->next_stats_ms) {
        pl_io_stats_view v = {
            .conns = io->set.dialect == PL_DIALECT_NATIVE ? io->conns : NULL,
            .nconns = io->set.dialect == PL_DIALECT_NATIVE ? io->nconns : 0,
            .routes = io->routes.count,
            .timers = pl_timer_heap_len(&io->timers),
            .server_errors = io->server_errors,
            .http_status = io->http_status,
            .http2_answers = io->http2_answers,
        };
        pl_route_foreach(&io->routes, count_waiting, &v.routes_waiting);
        io->sink.stats(io->sink.stats_ctx, &v);
        /* Fixed steps from the start, but never a burst after a long pause. */
        io->next_stats_ms += io->set.stats_interval_ms;
        if (io->next_stats_ms <= now)
            io->next_stats_ms = now + io->set.stats_interval_ms;
    }
    return io->next_stats_ms - now;
}

/* Messages posted to sessions during one pass wake each worker once, at the
 * latest before the thread blocks in curl_multi_poll(). */
static void run_once(pl_io *io)
{
    PL_ASSERT_OWNER(&io->owner);
    pl_pool_hold_wakes(io->set.pool);
    drain_submissions(io);
    int64_t now = pl_monotonic_ms();
    int64_t timeout = run_timers(io, now);
    int64_t stats_due = publish_stats(io, now);
    if (stats_due < timeout)
        timeout = stats_due;
    struct curl_waitfd extra[io->nconns];
    unsigned nextra = 0;
    for (unsigned i = 0; i < io->nconns; i++) {
        int64_t due = tend_conn(io, &io->conns[i], now, extra, &nextra);
        if (due < timeout)
            timeout = due;
    }
    if (timeout > IO_POLL_MAX_MS)
        timeout = IO_POLL_MAX_MS;
    if (timeout < 0)
        timeout = 0;
    /* Announce the sleep, then look at the stack once more: a submitter
     * either pushed before the look (we do not sleep) or sees the flag after
     * its push (it wakes us). The seq_cst store and load keep that order. */
    atomic_store(&io->polling, true);
    if (pl_mpsc_nonempty(&io->submissions))
        timeout = 0;
    pl_pool_release_wakes(io->set.pool);
    curl_multi_poll(io->multi, extra, nextra, (int)timeout, NULL);
    atomic_store_explicit(&io->polling, false, memory_order_relaxed);
    pl_pool_hold_wakes(io->set.pool);
    io->wakes_held_ms = pl_monotonic_ms();
    int running;
    curl_multi_perform(io->multi, &running);
    handle_finished_transfers(io);
    for (unsigned i = 0; i < io->nconns; i++)
        if (io->conns[i].state != PL_WS_IDLE && io->conns[i].doomed)
            carry_out_doom(io, &io->conns[i]);
    pl_pool_release_wakes(io->set.pool);
}

static void fail_route_shutdown(pl_route *r, void *arg)
{
    route_fail(arg, r, PARLEY_ERR_SHUTDOWN,
               "the client was destroyed before the reply completed");
}

/* HTTP streams whose reply was complete (DONE delivered) but whose transfer
 * libcurl had not reported finished yet belong to no route any more: they
 * are freed here, or they would outlive the client. */
static void free_detached_streams(pl_io *io)
{
    CURL **easies = curl_multi_get_handles(io->multi);
    for (size_t i = 0; easies && easies[i]; i++) {
        pl_easy_kind *kind = NULL;
        curl_easy_getinfo(easies[i], CURLINFO_PRIVATE, (char **)&kind);
        if (kind && *kind != PL_EASY_WS)
            pl_http_release((pl_http_stream *)kind);
    }
    curl_free(easies);
}

/* Everything still held ends with a shutdown error. */
static void shut_down(pl_io *io)
{
    drain_submissions(io);
    pl_route_foreach(&io->routes, fail_route_shutdown, io);
    free_detached_streams(io);
    for (unsigned i = 0; i < io->nconns; i++) {
        pl_ws_conn_close_now(&io->conns[i], 1000); /* a normal closure */
        pl_ws_conn_reset(&io->conns[i]);
    }
}

static void *io_main(void *arg)
{
    pl_io *io = arg;
    pl_owner_take(&io->owner);
    while (!atomic_load(&io->stopping))
        run_once(io);
    return NULL;
}

int pl_io_start(pl_io *io)
{
    if (io->set.stats_interval_ms > 0)
        io->next_stats_ms = pl_monotonic_ms() + io->set.stats_interval_ms;
    if (pthread_create(&io->thread, NULL, io_main, io) != 0)
        return -1;
    io->thread_started = true;
    return 0;
}

/* One wake-up per sleep rather than per request: a thread that is awake
 * takes the submission before it next sleeps (see run_once). */
void pl_io_submit(pl_io *io, pl_io_request *req)
{
    pl_mpsc_push(&io->submissions, &req->entry);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&io->polling, memory_order_relaxed) &&
        atomic_exchange(&io->polling, false))
        curl_multi_wakeup(io->multi);
}

void pl_io_stop(pl_io *io)
{
    atomic_store(&io->stopping, true);
    if (io->thread_started) {
        curl_multi_wakeup(io->multi);
        pthread_join(io->thread, NULL);
        io->thread_started = false;
    }
    /* The thread is gone: this thread now owns the multi handle. */
    pl_owner_take(&io->owner);
    shut_down(io);
}

void pl_io_free(pl_io *io)
{
    if (!io)
        return;
    for (unsigned i = 0; i < io->nconns; i++)
        pl_ws_conn_reset(&io->conns[i]);
    pl_route_table_free(&io->routes);
    pl_timer_heap_free(&io->timers);
    pl_http_config_free(&io->http);
    curl_slist_free_all(io->set.easy.connect_to);
    free(io->conns);
    pl_decoder_free(io->decoder);
    curl_multi_cleanup(io->multi);
    free(io);
}
