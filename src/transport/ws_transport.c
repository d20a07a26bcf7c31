/*
 * The native transport: a pool of WebSocket connections (ws_conn.h) that
 * carry parley.v1 (ws_native.c reads what arrives). Requests go to the
 * connection with the fewest; a connection that fails reconnects after a
 * backoff and its requests are handed back to the engine (lost); a Ping
 * every heartbeat finds a silent one, and a stalled request puts its
 * connection on trial: a Ping whose Pong acquits it, or condemns it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "backoff.h"
#include "buf.h"
#include "compress.h"
#include "ws_native.h"
#include "ws_pool.h"

#define POLL_MAX_MS 1000
/* After a send fails, what the peer sent before it went away is still read
 * for this long, so that no delivered piece is thrown away with the socket. */
#define SEND_FAILURE_GRACE_MS 250
/* Penalties that steer new requests away from a connection (pick_conn). */
#define AVOID_PENALTY (1u << 20)
#define SUSPECT_PENALTY (1u << 22)
#define BACKOFF_PENALTY (1u << 24)

/* The failures the pool itself finds (the engine decides on each). */
static const pl_failure start_failure = {.kind = PL_FAIL_START, .err = PARLEY_ERR_CONNECT};
static const pl_failure no_handshake = {.kind = PL_FAIL_NETWORK,
                                        .err = PARLEY_ERR_CONNECT};
/* Silent, or no Pong after a stall: replaced, its requests resume free. */
static const pl_failure found_dead = {.kind = PL_FAIL_LOST,
                                      .err = PARLEY_ERR_CONNECTION_LOST,
                                      .resumable = true};

static pl_ws_pool *pool_of(pl_transport *t)
{
    return (pl_ws_pool *)t;
}

/* ---- connections -------------------------------------------------------- */

static bool conn_in_backoff(const pl_ws_conn *conn, int64_t now)
{
    return conn->state == PL_WS_IDLE && conn->reconnect_at_ms > now;
}

/* The connection with the fewest requests, steering away from `avoid` and
 * from connections waiting to reconnect. */
static pl_ws_conn *pick_conn(pl_ws_pool *p, const void *avoid, int64_t now)
{
    pl_ws_conn *best = NULL;
    uint64_t best_load = UINT64_MAX;
    for (unsigned i = 0; i < p->nconns; i++) {
        pl_ws_conn *c = &p->conns[i];
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

/* The connection ended: its requests go back to the engine, which sends
 * them again (or fails them), and it reconnects after a backoff when
 * requests need it. */
static void conn_end(pl_ws_pool *p, pl_ws_conn *conn, const pl_failure *f, const char *msg,
                     bool dead)
{
    int64_t now = pl_monotonic_ms();
    bool retryable = p->ev->retryable(f);
    bool delivered = conn->state == PL_WS_OPEN && conn->delivered > 0;
    /* A failure that ends the requests reaches the user as their error
     * events; one they are retried after is worth a warning, once while
     * the connection keeps failing. */
    pl_log(p->conf.log, retryable && conn->failures == 0 ? PARLEY_LOG_WARNING : PARLEY_LOG_NOTICE,
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
    conn->reconnect_at_ms = now + pl_backoff_ms(conn->failures, p->conf.reconnect_backoff_ms,
                                                p->conf.reconnect_backoff_max_ms, p->conf.rng);
    PL_COUNTER_ADD(p->conf.counters, errors, 1);
    /* A connection that delivered pieces before it broke, or was found dead
     * (silent, or no Pong after a stall), failed through the network. */
    pl_blame blame = dead || delivered ? PL_BLAME_CONN : PL_BLAME_REQ;
    pl_tx_list *l = pl_ws_pool_requests(p, conn);
    pl_tx_req *q;
    while ((q = l->head)) {
        p->ev->lost(p->ev->ctx, q, f, msg, blame);
        if (l->head == q) { /* the engine always detaches; never loop on it */
            pl_tx_list_remove(l, q);
            q->on = NULL;
        }
    }
}

static void open_conn(pl_ws_pool *p, pl_ws_conn *conn)
{
    pl_log(p->conf.log, PARLEY_LOG_INFO, "conn", "connection %u: connecting to %s%s",
           conn->index, p->conf.endpoint_shown, conn->failures ? " again" : "");
    if (p->conf.easy->insecure) {
        PL_COUNTER_ADD(p->conf.counters, insecure_connections, 1);
        pl_log(p->conf.log, PARLEY_LOG_WARNING, "tls",
               "connection %u: certificate verification is off (tls.insecure)", conn->index);
    }
    const char *want = p->conf.compression ? p->conf.compression : "none";
    bool zstd = !strcmp(want, "zstd"), gzip = zstd || !strcmp(want, "gzip");
    if (pl_ws_conn_open(conn, p->conf.endpoint, p->conf.api_key, p->conf.easy,
                        (uint64_t)p->conf.max_message_bytes, zstd, gzip,
                        p->conf.compression_dict) != 0) {
        char msg[CURL_ERROR_SIZE + 64];
        snprintf(msg, sizeof(msg), "could not start a connection: %s", conn->errbuf);
        conn_end(p, conn, &start_failure, msg, false);
        return;
    }
    if (conn->failures > 0)
        PL_COUNTER_ADD(p->conf.counters, reconnects, 1);
}

static void carry_out_doom(pl_ws_pool *p, pl_ws_conn *conn)
{
    if (conn->doom_close_code)
        pl_ws_conn_close_now(conn, conn->doom_close_code);
    char msg[sizeof(conn->doom_msg)];
    memcpy(msg, conn->doom_msg, sizeof(msg)); /* the reset clears the connection */
    pl_failure f = conn->doom;
    conn_end(p, conn, &f, msg, false);
}

/* Explain why a transfer ended, from the HTTP answer and curl's result:
 * the sentence, and the failure it was. */
static void explain_end(pl_ws_pool *p, pl_ws_conn *conn, CURLcode rc, char *msg, size_t size,
                        pl_failure *f)
{
    const char *url = p->conf.endpoint_shown;
    long status = 0;
    curl_easy_getinfo(conn->easy, CURLINFO_RESPONSE_CODE, &status);
    const char *detail = conn->errbuf[0] ? conn->errbuf : curl_easy_strerror(rc);
    *f = (pl_failure){.kind = PL_FAIL_REFUSED, .status = status, .upgrade = true};
    if (status == 401) {
        pl_server_msg m;
        char err[64];
        const char *why = "the API key was refused";
        if (conn->refusal_body.len &&
            pl_proto_decode(p->decoder, conn->refusal_body.data,
                            conn->refusal_body.len, &m, err, sizeof(err)) == 0 &&
            m.type == PL_SMSG_ERROR && m.content)
            why = m.content;
        snprintf(msg, size, "unauthorized: %s (HTTP 401 from %s)", why, url);
        f->err = PARLEY_ERR_UNAUTHORIZED;
        return;
    }
    if (status != 0 && status != 101) {
        snprintf(msg, size, "the server answered HTTP %ld to the WebSocket upgrade of %s "
                 "(%s)%s", status, url, p->conf.dialect_shown,
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

static void conn_ended(pl_ws_pool *p, pl_ws_conn *conn, CURLcode rc)
{
    if (conn->doomed) {
        carry_out_doom(p, conn);
        return;
    }
    char msg[CURL_ERROR_SIZE + 256];
    pl_failure f;
    explain_end(p, conn, rc, msg, sizeof(msg), &f);
    conn_end(p, conn, &f, msg, false);
}

/* ---- requests ------------------------------------------------------------ */

static void send_cancel(pl_ws_conn *conn, uint64_t id)
{
    pl_buf b = PL_BUF_INIT;
    if (pl_proto_encode_cancel(&b, id) != 0)
        pl_oom("encoding a cancel");
    pl_ws_conn_queue_data(conn, b.data, b.len);
    pl_buf_free(&b);
}

/* The request goes on the best connection; one that is idle is opened by
 * the next tick, in the same pass of the loop. */
static pl_tx_start ws_start(pl_transport *t, pl_tx_req *q, const void *avoid, int64_t now,
                            int64_t *wait_ms, pl_failure *f, char *msg, size_t msg_size)
{
    pl_ws_pool *p = pool_of(t);
    pl_ws_conn *conn = pick_conn(p, avoid, now);
    if (conn->suspect_since_ms) {
        *wait_ms = conn->suspect_since_ms + p->conf.stall_ping_timeout_ms - now + 1;
        return PL_TX_WAIT;
    }
    if (!pl_ws_native_queue(conn, q, f, msg, msg_size))
        return PL_TX_FAILED;
    q->on = conn;
    pl_tx_list_add(pl_ws_pool_requests(p, conn), q);
    conn->inflight++;
    p->placed_while_tending |= p->tending;
    return PL_TX_PLACED;
}

static void ws_resend(pl_transport *t, pl_tx_req *q)
{
    (void)t;
    pl_failure f;
    char msg[256];
    /* Repeated on the connection that took it once: it has what it needs. */
    if (q->on)
        pl_ws_native_queue(q->on, q, &f, msg, sizeof(msg));
}

static bool ws_cancel(pl_transport *t, pl_tx_req *q, bool by_caller)
{
    (void)t;
    pl_ws_conn *conn = q->on;
    /* Queued on a connection being opened, the cancel follows the request
     * out; otherwise only an open connection carries it. */
    if (!conn || (by_caller ? conn->state == PL_WS_IDLE : conn->state != PL_WS_OPEN))
        return false;
    send_cancel(conn, q->id);
    return true;
}

static void ws_detach(pl_transport *t, pl_tx_req *q)
{
    pl_ws_conn *conn = q->on;
    if (!conn)
        return;
    if (conn->inflight)
        conn->inflight--;
    pl_tx_list_remove(pl_ws_pool_requests(pool_of(t), conn), q);
    q->on = NULL;
}

static bool ws_sent(const pl_transport *t, const pl_tx_req *q)
{
    (void)t;
    const pl_ws_conn *conn = q->on;
    return conn && conn->state == PL_WS_OPEN;
}

/* ---- stalls: a connection on trial --------------------------------------- */

/* A request on the connection stalled: a Ping tells whether the connection
 * still carries anything (tend_conn reads the verdict). */
static bool ws_trial(pl_transport *t, pl_tx_req *q, int64_t now, const char *msg)
{
    (void)msg;
    pl_ws_pool *p = pool_of(t);
    pl_ws_conn *conn = q->on;
    if (conn->suspect_since_ms)
        return true; /* one trial at a time: its Ping answers for every request */
    conn->suspect_since_ms = now;
    pl_ws_conn_queue_control(conn, CURLWS_PING, "stall", 5);
    pl_log(p->conf.log, p->ev->wait_level(p->ev->ctx, now), "conn",
           "connection %u: a request stalled; a Ping tells whether the connection is dead "
           "(stall.ping.timeout.ms %d)", conn->index, p->conf.stall_ping_timeout_ms);
    return true;
}

/* The connection answered: its stalled requests were slow on their own. */
static void conn_acquitted(pl_ws_pool *p, pl_ws_conn *conn, int64_t now)
{
    conn->suspect_since_ms = 0;
    pl_log(p->conf.log, PARLEY_LOG_INFO, "conn",
           "connection %u answered the Ping: the stalled requests move elsewhere",
           conn->index);
    pl_tx_req *next;
    for (pl_tx_req *q = pl_ws_pool_requests(p, conn)->head; q; q = next) {
        next = q->next;
        p->ev->acquitted(p->ev->ctx, q, conn, now);
    }
}

/* The trial's verdict, when there is one. Returns ms until it is due. */
static int64_t judge_conn(pl_ws_pool *p, pl_ws_conn *conn, int64_t now)
{
    if (conn->last_pong_ms >= conn->suspect_since_ms) {
        conn_acquitted(p, conn, now);
        return POLL_MAX_MS;
    }
    int64_t left = conn->suspect_since_ms + p->conf.stall_ping_timeout_ms - now;
    if (left > 0)
        return left;
    char msg[200];
    snprintf(msg, sizeof(msg),
             "connection to %s is dead: a request stalled and a Ping got no Pong within "
             "%d ms (stall.ping.timeout.ms)", p->conf.endpoint_shown,
             p->conf.stall_ping_timeout_ms);
    conn_end(p, conn, &found_dead, msg, true);
    return 0;
}

/* ---- housekeeping ---------------------------------------------------------- */

static void flush_conn(pl_ws_pool *p, pl_ws_conn *conn)
{
    uint64_t bytes = 0, saved = 0;
    int frames = pl_ws_conn_flush(conn, &bytes, &saved);
    if (frames > 0) {
        conn->stats.frames_sent += (uint64_t)frames;
        conn->stats.bytes_sent += bytes;
        conn->stats.bytes_saved += saved;
        PL_COUNTER_ADD(p->conf.counters, frames_sent, (uint64_t)frames);
        PL_COUNTER_ADD(p->conf.counters, bytes_sent, bytes);
        PL_COUNTER_ADD(p->conf.counters, bytes_compression_saved, saved);
    }
}

static int64_t conn_heartbeat_ms(const pl_ws_pool *p, const pl_ws_conn *conn)
{
    int64_t ms = p->heartbeat_ms;
    if (conn->heartbeat_s && (int64_t)conn->heartbeat_s * 1000 < ms)
        ms = (int64_t)conn->heartbeat_s * 1000;
    return ms;
}

/* Ping every interval; a connection silent for two intervals is dead.
 * Returns the milliseconds until the next heartbeat duty. */
static int64_t heartbeat(pl_ws_pool *p, pl_ws_conn *conn, int64_t now)
{
    if (!conn->upgraded)
        return POLL_MAX_MS;
    int64_t interval = conn_heartbeat_ms(p, conn);
    if (now - conn->last_rx_ms >= 2 * interval) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "connection to %s lost: nothing received for %lld ms",
                 p->conf.endpoint_shown, (long long)(now - conn->last_rx_ms));
        conn_end(p, conn, &found_dead, msg, true);
        return POLL_MAX_MS;
    }
    if (now - conn->last_ping_ms >= interval) {
        pl_ws_conn_queue_control(conn, CURLWS_PING, "hb", 2);
        conn->last_ping_ms = now;
    }
    return conn->last_ping_ms + interval - now;
}

/* Housekeeping of one connection; returns ms until it next needs a look. */
static int64_t tend_conn(pl_ws_pool *p, pl_ws_conn *conn, int64_t now,
                         struct curl_waitfd *extra, unsigned *nextra)
{
    if (conn->state == PL_WS_IDLE) {
        if (!conn->inflight)
            return POLL_MAX_MS;
        if (conn->reconnect_at_ms > now)
            return conn->reconnect_at_ms - now;
        open_conn(p, conn); /* requests wait on it for its return */
        return 0;
    }
    if (conn->peer_closed) {
        conn_ended(p, conn, CURLE_OK);
        return 0;
    }
    if (conn->state == PL_WS_CONNECTING &&
        now - conn->opened_at_ms >= p->conf.connect_timeout_ms) {
        char msg[200];
        snprintf(msg, sizeof(msg), "no %s from %s within connect.timeout.ms (%d ms)",
                 conn->upgraded ? "hello" : "answer to the WebSocket upgrade",
                 p->conf.endpoint_shown, p->conf.connect_timeout_ms);
        conn_end(p, conn, &no_handshake, msg, false);
        return 0;
    }
    int64_t due = heartbeat(p, conn, now);
    if (conn->state == PL_WS_IDLE)
        return 0;
    if (conn->state == PL_WS_CONNECTING) {
        int64_t left = conn->opened_at_ms + p->conf.connect_timeout_ms - now;
        if (left < due)
            due = left;
    }
    if (conn->suspect_since_ms) {
        int64_t left = judge_conn(p, conn, now);
        if (conn->state == PL_WS_IDLE)
            return 0;
        if (left < due)
            due = left;
    }
    flush_conn(p, conn);
    if (conn->failed) {
        int64_t left = conn->failed_at_ms + SEND_FAILURE_GRACE_MS - now;
        if (left > 0)
            return left; /* libcurl ends the transfer when it reads the end */
        conn_ended(p, conn, CURLE_SEND_ERROR);
        return 0;
    }
    if (pl_ws_conn_wants_write(conn))
        extra[(*nextra)++] = (struct curl_waitfd){conn->sock, CURL_WAIT_POLLOUT, 0};
    return due;
}

static int64_t ws_tick(pl_transport *t, int64_t now, struct curl_waitfd *fds, unsigned *nfds)
{
    pl_ws_pool *p = pool_of(t);
    int64_t due = POLL_MAX_MS;
    p->tending = true;
    p->placed_while_tending = false;
    for (unsigned i = 0; i < p->nconns; i++) {
        int64_t left = tend_conn(p, &p->conns[i], now, fds, nfds);
        if (left < due)
            due = left;
    }
    p->tending = false;
    /* A request placed while tending (a stalled one moved elsewhere) may
     * wait on a connection tended before, to be opened or flushed, and has
     * a stall timer the loop did not know of: the loop comes back at once
     * rather than after its longest sleep. */
    return p->placed_while_tending ? 0 : due;
}

static unsigned ws_max_waitfds(const pl_transport *t)
{
    return ((const pl_ws_pool *)t)->nconns;
}

static void ws_transfer_done(pl_transport *t, CURL *easy, CURLcode rc)
{
    pl_ws_conn *conn = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&conn);
    if (conn)
        conn_ended(pool_of(t), conn, rc);
}

static void ws_after_perform(pl_transport *t)
{
    pl_ws_pool *p = pool_of(t);
    for (unsigned i = 0; i < p->nconns; i++)
        if (p->conns[i].state != PL_WS_IDLE && p->conns[i].doomed)
            carry_out_doom(p, &p->conns[i]);
}

/* ---- statistics ------------------------------------------------------------ */

static const char *compression_name(int alg)
{
    return alg == PL_COMPRESS_ZSTD ? "zstd" : alg == PL_COMPRESS_GZIP ? "gzip" : "none";
}

static void write_connection(pl_json_writer *w, const pl_ws_conn *c, int64_t now)
{
    static const char *const states[] = {"idle", "connecting", "open"};
    uint64_t queued_frames, queued_bytes;
    pl_ws_conn_queued(c, &queued_frames, &queued_bytes);
    pl_jw_object(w, NULL);
    pl_jw_u64(w, "index", c->index);
    pl_jw_str(w, "state", states[c->state]);
    pl_jw_i64(w, "open_ms", c->stats.open_since_ms ? now - c->stats.open_since_ms : 0);
    pl_jw_str(w, "compression", c->state == PL_WS_OPEN ? compression_name(c->compression) : "none");
    pl_jw_bool(w, "dictionary", c->state == PL_WS_OPEN && c->dict_agreed);
    pl_jw_u64(w, "inflight", c->inflight);
    pl_jw_u64(w, "send_queue_frames", queued_frames);
    pl_jw_u64(w, "send_queue_bytes", queued_bytes);
    pl_jw_u64(w, "frames_sent", c->stats.frames_sent);
    pl_jw_u64(w, "frames_received", c->stats.frames_received);
    pl_jw_u64(w, "bytes_sent", c->stats.bytes_sent);
    pl_jw_u64(w, "bytes_received", c->stats.bytes_received);
    pl_jw_ratio(w, "compression_ratio", c->stats.bytes_sent, c->stats.bytes_saved);
    pl_jw_u64(w, "opens", c->stats.opens);
    pl_jw_u64(w, "failures", c->failures > 0 ? (uint64_t)c->failures : 0);
    pl_jw_i64(w, "rtt_ms", c->stats.rtt_ms);
    pl_jw_end_object(w);
}

static void ws_write_connections(const pl_transport *t, pl_json_writer *w, int64_t now)
{
    const pl_ws_pool *p = (const pl_ws_pool *)t;
    for (unsigned i = 0; i < p->nconns; i++)
        write_connection(w, &p->conns[i], now);
}

static void ws_write_dialect(const pl_transport *t, pl_json_writer *w)
{
    const pl_ws_pool *p = (const pl_ws_pool *)t;
    pl_jw_object(w, "server_errors");
    for (int code = PL_SERR_INVALID_REQUEST; code <= PL_SERR_OTHER; code++)
        pl_jw_u64(w, pl_proto_server_err_name((pl_server_err)code), p->server_errors[code]);
    pl_jw_end_object(w);
}

/* ---- life ------------------------------------------------------------------ */

static void ws_shutdown(pl_transport *t)
{
    pl_ws_pool *p = pool_of(t);
    for (unsigned i = 0; i < p->nconns; i++) {
        pl_ws_conn_close_now(&p->conns[i], 1000); /* a normal closure */
        pl_ws_conn_reset(&p->conns[i]);
    }
}

static void ws_destroy(pl_transport *t)
{
    pl_ws_pool *p = pool_of(t);
    for (unsigned i = 0; i < p->nconns; i++)
        pl_ws_conn_reset(&p->conns[i]);
    free(p->conns);
    free(p->on_conn);
    pl_decoder_free(p->decoder);
    free(p);
}

static const pl_transport_ops ws_ops = {
    .can_resume = true,
    .logs_connections = true,
    .start = ws_start,
    .resend = ws_resend,
    .cancel = ws_cancel,
    .detach = ws_detach,
    .sent = ws_sent,
    .trial = ws_trial,
    .tick = ws_tick,
    .max_waitfds = ws_max_waitfds,
    .transfer_done = ws_transfer_done,
    .after_perform = ws_after_perform,
    .write_connections = ws_write_connections,
    .write_dialect = ws_write_dialect,
    .shutdown = ws_shutdown,
    .destroy = ws_destroy,
};

pl_transport *pl_ws_transport_new(const pl_tx_conf *conf, char *err, size_t err_size)
{
    pl_decoder *decoder = pl_decoder_new();
    if (!decoder) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    pl_ws_pool *p = pl_xcalloc(1, sizeof(*p));
    p->base.ops = &ws_ops;
    p->conf = *conf;
    p->ev = conf->ev;
    p->decoder = decoder;
    p->heartbeat_ms = (int64_t)conf->heartbeat_interval_s * 1000;
    p->nconns = conf->connections;
    p->conns = pl_xcalloc(p->nconns, sizeof(*p->conns));
    p->on_conn = pl_xcalloc(p->nconns, sizeof(*p->on_conn));
    for (unsigned i = 0; i < p->nconns; i++) {
        p->conns[i].multi = conf->multi;
        p->conns[i].events = &pl_ws_native_events;
        p->conns[i].owner = p;
        p->conns[i].index = i;
        p->conns[i].sock = CURL_SOCKET_BAD;
        p->conns[i].stats.rtt_ms = -1;
    }
    return &p->base;
}
