/*
 * The I/O thread: one curl multi handle, the connections, the routing table.
 * Everything here runs on that thread except pl_io_submit() and the start and
 * stop calls.
 */
#include "io.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "client.h"
#include "protocol.h"
#include "route.h"
#include "session.h"
#include "utf8.h"
#include "ws_conn.h"

#define IO_POLL_MAX_MS 1000

struct pl_io {
    parley_client_t *client;
    CURLM *multi;
    pthread_t thread;
    bool thread_started;
    _Atomic bool stopping;
    ck_stack_t submissions; /* pl_io_request, newest first */

    pl_ws_conn *conns;
    unsigned nconns;
    pl_route_table routes;
    pl_decoder *decoder;
    int64_t heartbeat_ms;
};

CURLM *pl_io_multi(pl_io *io)
{
    return io->multi;
}

pl_io *pl_io_new(parley_client_t *client, char *errstr, size_t errstr_size)
{
    pl_io *io = pl_xcalloc(1, sizeof(*io));
    io->client = client;
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
    ck_stack_init(&io->submissions);
    io->nconns = pl_conf_connections(client->conf);
    io->conns = pl_xcalloc(io->nconns, sizeof(*io->conns));
    for (unsigned i = 0; i < io->nconns; i++) {
        io->conns[i].io = io;
        io->conns[i].index = i;
        io->conns[i].sock = CURL_SOCKET_BAD;
    }
    pl_route_table_init(&io->routes);
    io->heartbeat_ms = (int64_t)client->conf->heartbeat_interval_s * 1000;
    return io;
}

/* ---- routes ------------------------------------------------------------- */

static void route_free(pl_route *r)
{
    pl_session_unref(r->session);
    free(r->frame);
    free(r);
}

/* End a request with an error event and forget it. */
static void route_fail(pl_io *io, pl_route *r, parley_err_t err, const char *msg)
{
    pl_route_remove(&io->routes, r->id);
    if (r->conn && r->conn->inflight)
        r->conn->inflight--;
    pl_session_post_error(r->session, r->id, err, msg);
    route_free(r);
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
    if (pl_proto_add_resume_from(&b, r->frame, r->frame_len, r->next_seq) != 0) {
        fprintf(stderr, "parley: out of memory repeating a request\n");
        abort();
    }
    pl_ws_conn_queue_data(r->conn, b.data, b.len);
    pl_buf_free(&b);
}

/* ---- connections -------------------------------------------------------- */

static pl_ws_conn *least_loaded(pl_io *io)
{
    pl_ws_conn *best = &io->conns[0];
    for (unsigned i = 1; i < io->nconns; i++)
        if (io->conns[i].inflight < best->inflight)
            best = &io->conns[i];
    return best;
}

typedef struct conn_failure {
    pl_io *io;
    pl_ws_conn *conn;
    parley_err_t err;
    const char *msg;
} conn_failure;

static void fail_if_on_conn(pl_route *r, void *arg)
{
    conn_failure *f = arg;
    if (r->conn == f->conn)
        route_fail(f->io, r, f->err, f->msg);
}

/* The connection ended: every request on it fails with err, and the
 * connection is free to reconnect when the next request comes. */
static void conn_fail(pl_io *io, pl_ws_conn *conn, parley_err_t err,
                      const char *msg)
{
    conn_failure f = {io, conn, err, msg};
    pl_route_foreach(&io->routes, fail_if_on_conn, &f);
    pl_ws_conn_reset(conn);
    PL_COUNT(io->client, errors, 1);
}

/* Called inside curl callbacks: the failure is carried out by the loop. */
static void conn_doom(pl_ws_conn *conn, parley_err_t err, const char *msg,
                      unsigned close_code)
{
    if (conn->doomed)
        return;
    conn->doomed = true;
    conn->doom_err = err;
    conn->doom_close_code = close_code;
    snprintf(conn->doom_msg, sizeof(conn->doom_msg), "%s", msg);
}

static void carry_out_doom(pl_io *io, pl_ws_conn *conn)
{
    if (conn->doom_close_code)
        pl_ws_conn_close_now(conn, conn->doom_close_code);
    conn_fail(io, conn, (parley_err_t)conn->doom_err, conn->doom_msg);
}

/* Explain why a transfer ended, from the HTTP answer and curl's result. */
static parley_err_t explain_end(pl_io *io, pl_ws_conn *conn, CURLcode rc,
                                char *msg, size_t size)
{
    const char *url = io->client->conf->endpoint;
    long status = 0;
    curl_easy_getinfo(conn->easy, CURLINFO_RESPONSE_CODE, &status);
    const char *detail = conn->errbuf[0] ? conn->errbuf : curl_easy_strerror(rc);
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
        return PARLEY_ERR_UNAUTHORIZED;
    }
    if (status != 0 && status != 101) {
        snprintf(msg, size, "the server answered HTTP %ld to the WebSocket upgrade of %s",
                 status, url);
        return PARLEY_ERR_CONNECT;
    }
    if (!conn->upgraded) {
        snprintf(msg, size, "could not connect to %s: %s", url, detail);
        return PARLEY_ERR_CONNECT;
    }
    if (conn->failed || rc != CURLE_OK)
        snprintf(msg, size, "connection to %s lost: %s", url, detail);
    else
        snprintf(msg, size, "connection to %s closed by the server", url);
    return PARLEY_ERR_CONNECTION_LOST;
}

static void conn_ended(pl_io *io, pl_ws_conn *conn, CURLcode rc)
{
    if (conn->doomed) {
        carry_out_doom(io, conn);
        return;
    }
    char msg[CURL_ERROR_SIZE + 256];
    parley_err_t err = explain_end(io, conn, rc, msg, sizeof(msg));
    conn_fail(io, conn, err, msg);
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
static pl_route *route_for(pl_io *io, pl_ws_conn *conn, const pl_server_msg *m)
{
    pl_route *r = m->has_id ? pl_route_find(&io->routes, m->id) : NULL;
    return r && r->conn == conn ? r : NULL;
}

static void on_hello(pl_io *io, pl_ws_conn *conn, const pl_server_msg *m)
{
    if (conn->state == PL_WS_OPEN)
        return;
    /* No Sec-WebSocket-Protocol in the 101 answer means parley.v1 too. */
    if (conn->subprotocol[0] && strcmp(conn->subprotocol, PL_PROTO_SUBPROTOCOL) != 0) {
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "the server selected subprotocol \"%.64s\", which this client did not offer",
                 conn->subprotocol);
        conn_doom(conn, PARLEY_ERR_PROTOCOL, msg, 1002);
        return;
    }
    conn->state = PL_WS_OPEN;
    conn->heartbeat_s = m->heartbeat_s;
    if (m->max_message_bytes && m->max_message_bytes < conn->max_message_bytes)
        conn->max_message_bytes = m->max_message_bytes;
    PL_COUNT(io->client, connections_opened, 1);
}

static void on_text(pl_io *io, pl_ws_conn *conn, const pl_server_msg *m)
{
    pl_route *r = route_for(io, conn, m);
    if (!r || m->seq < r->next_seq)
        return; /* stale, or a piece already delivered */
    if (m->seq > r->next_seq) {
        /* A gap: ask again from the first missing piece (protocol 6). */
        route_send(r);
        return;
    }
    pl_session_post_text(r->session, r->id, m->seq, m->content, m->content_len);
    r->next_seq++;
}

static bool stop_reason_valid(const char *reason)
{
    return reason && (!strcmp(reason, "end_turn") || !strcmp(reason, "max_tokens") ||
                      !strcmp(reason, "cancelled"));
}

static void on_done(pl_io *io, pl_ws_conn *conn, const pl_server_msg *m)
{
    pl_route *r = route_for(io, conn, m);
    if (!r)
        return;
    if (!stop_reason_valid(m->stop_reason)) {
        char msg[160];
        snprintf(msg, sizeof(msg), "invalid message from the server: unknown stop_reason \"%.40s\"",
                 m->stop_reason ? m->stop_reason : "");
        PL_COUNT(io->client, errors, 1);
        route_fail(io, r, PARLEY_ERR_PROTOCOL, msg);
        return;
    }
    if (m->has_seq_end && m->seq_end > r->next_seq) {
        route_send(r); /* pieces are missing: have them sent again */
        return;
    }
    pl_route_remove(&io->routes, r->id);
    if (conn->inflight)
        conn->inflight--;
    pl_session_post_done(r->session, r->id, m->stop_reason, m->input_tokens,
                         m->output_tokens);
    route_free(r);
}

static void on_error(pl_io *io, pl_ws_conn *conn, const pl_server_msg *m)
{
    char msg[512];
    snprintf(msg, sizeof(msg), "server error %s: %.*s", m->code_str ? m->code_str : "?",
             (int)(m->content ? m->content_len : 0), m->content ? m->content : "");
    pl_route *r = route_for(io, conn, m);
    if (!r) {
        PL_COUNT(io->client, errors, 1); /* about the connection, or stale */
        return;
    }
    route_fail(io, r, map_server_error(m->code), msg);
}

void pl_io_on_message(pl_io *io, pl_ws_conn *conn, const char *data, size_t len,
                      bool binary)
{
    PL_COUNT(io->client, frames_received, 1);
    PL_COUNT(io->client, bytes_received, len);
    if (!data || binary) {
        /* Over the size limit, or binary on parley.v1: not for us. */
        PL_COUNT(io->client, errors, 1);
        return;
    }
    if (!pl_utf8_valid(data, len)) {
        /* RFC 6455 and the protocol: invalid UTF-8 in a text frame ends the
         * connection with 1007. */
        conn_doom(conn, PARLEY_ERR_PROTOCOL,
                  "the server sent invalid UTF-8 in a text frame; connection closed (1007)",
                  1007);
        return;
    }
    pl_server_msg m;
    char err[256];
    if (pl_proto_decode(io->decoder, data, len, &m, err, sizeof(err)) != 0) {
        PL_COUNT(io->client, errors, 1);
        pl_route *r = route_for(io, conn, &m);
        if (r) {
            char msg[300];
            snprintf(msg, sizeof(msg), "invalid message from the server: %s", err);
            route_fail(io, r, PARLEY_ERR_PROTOCOL, msg);
        }
        return;
    }
    switch (m.type) {
    case PL_SMSG_HELLO: on_hello(io, conn, &m); break;
    case PL_SMSG_ACK: {
        pl_route *r = route_for(io, conn, &m);
        if (r)
            r->acked = true;
        break;
    }
    case PL_SMSG_TEXT: on_text(io, conn, &m); break;
    case PL_SMSG_DONE: on_done(io, conn, &m); break;
    case PL_SMSG_ERROR: on_error(io, conn, &m); break;
    case PL_SMSG_UNKNOWN: PL_COUNT(io->client, unknown_messages, 1); break;
    }
}

/* ---- the loop ----------------------------------------------------------- */

static void open_conn(pl_io *io, pl_ws_conn *conn)
{
    parley_conf_t *conf = io->client->conf;
    if (pl_ws_conn_open(conn, conf->endpoint, io->client->api_key,
                        conf->connect_timeout_ms,
                        (uint64_t)conf->max_message_bytes) != 0) {
        char msg[CURL_ERROR_SIZE + 64];
        snprintf(msg, sizeof(msg), "could not start a connection: %s", conn->errbuf);
        conn_fail(io, conn, PARLEY_ERR_CONNECT, msg);
    }
}

static void accept_request(pl_io *io, pl_io_request *req)
{
    pl_route *r = pl_xcalloc(1, sizeof(*r));
    r->id = req->id;
    r->session = req->session; /* the request's reference moves to the route */
    r->frame = req->frame;
    r->frame_len = req->frame_len;
    free(req);
    r->conn = least_loaded(io);
    r->conn->inflight++;
    pl_route_insert(&io->routes, r);
    pl_ws_conn *conn = r->conn;
    if (conn->state == PL_WS_IDLE)
        open_conn(io, conn); /* on failure the route has been failed and freed */
    if (conn->state != PL_WS_IDLE)
        route_send(r);
}

/* Oldest first: the stack gives newest first. */
static pl_io_request *take_submissions(pl_io *io)
{
    ck_stack_entry_t *e = ck_stack_batch_pop_upmc(&io->submissions);
    pl_io_request *fifo = NULL;
    while (e) {
        ck_stack_entry_t *next = e->next;
        pl_io_request *req = (pl_io_request *)e;
        req->entry.next = fifo ? &fifo->entry : NULL;
        fifo = req;
        e = next;
    }
    return fifo;
}

static void drain_submissions(pl_io *io)
{
    pl_io_request *req = take_submissions(io);
    while (req) {
        pl_io_request *next = (pl_io_request *)req->entry.next;
        accept_request(io, req);
        req = next;
    }
}

static void flush_conn(pl_io *io, pl_ws_conn *conn)
{
    uint64_t bytes = 0;
    int frames = pl_ws_conn_flush(conn, &bytes);
    if (frames > 0) {
        PL_COUNT(io->client, frames_sent, (uint64_t)frames);
        PL_COUNT(io->client, bytes_sent, bytes);
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
                 io->client->conf->endpoint, (long long)(now - conn->last_rx_ms));
        conn_fail(io, conn, PARLEY_ERR_CONNECTION_LOST, msg);
        return IO_POLL_MAX_MS;
    }
    if (now - conn->last_ping_ms >= interval) {
        pl_ws_conn_queue_control(conn, CURLWS_PING, "hb", 2);
        conn->last_ping_ms = now;
    }
    return conn->last_ping_ms + interval - now;
}

static void handle_finished_transfers(pl_io *io)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(io->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        pl_ws_conn *conn = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&conn);
        if (conn)
            conn_ended(io, conn, msg->data.result);
    }
}

static void run_once(pl_io *io)
{
    drain_submissions(io);
    int64_t now = pl_monotonic_ms();
    int64_t timeout = IO_POLL_MAX_MS;
    struct curl_waitfd extra[io->nconns];
    unsigned nextra = 0;
    for (unsigned i = 0; i < io->nconns; i++) {
        pl_ws_conn *conn = &io->conns[i];
        if (conn->state == PL_WS_IDLE)
            continue;
        if (conn->peer_closed) {
            conn_ended(io, conn, CURLE_OK);
            continue;
        }
        int64_t due = heartbeat(io, conn, now);
        if (due < timeout)
            timeout = due;
        if (conn->state == PL_WS_IDLE)
            continue;
        flush_conn(io, conn);
        if (conn->failed) {
            conn_ended(io, conn, CURLE_SEND_ERROR);
            continue;
        }
        if (pl_ws_conn_wants_write(conn))
            extra[nextra++] = (struct curl_waitfd){conn->sock, CURL_WAIT_POLLOUT, 0};
    }
    if (timeout < 0)
        timeout = 0;
    curl_multi_poll(io->multi, extra, nextra, (int)timeout, NULL);
    int running;
    curl_multi_perform(io->multi, &running);
    handle_finished_transfers(io);
    for (unsigned i = 0; i < io->nconns; i++)
        if (io->conns[i].state != PL_WS_IDLE && io->conns[i].doomed)
            carry_out_doom(io, &io->conns[i]);
}

static void fail_route_shutdown(pl_route *r, void *arg)
{
    route_fail(arg, r, PARLEY_ERR_SHUTDOWN,
               "the client was destroyed before the reply completed");
}

/* Everything still held ends with a shutdown error. */
static void shut_down(pl_io *io)
{
    drain_submissions(io);
    pl_route_foreach(&io->routes, fail_route_shutdown, io);
    for (unsigned i = 0; i < io->nconns; i++)
        pl_ws_conn_reset(&io->conns[i]);
}

static void *io_main(void *arg)
{
    pl_io *io = arg;
    while (!atomic_load(&io->stopping))
        run_once(io);
    return NULL;
}

int pl_io_start(pl_io *io)
{
    if (pthread_create(&io->thread, NULL, io_main, io) != 0)
        return -1;
    io->thread_started = true;
    return 0;
}

void pl_io_submit(pl_io *io, pl_io_request *req)
{
    ck_stack_push_upmc(&io->submissions, &req->entry);
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
    shut_down(io);
}

void pl_io_free(pl_io *io)
{
    if (!io)
        return;
    for (unsigned i = 0; i < io->nconns; i++)
        pl_ws_conn_reset(&io->conns[i]);
    pl_route_table_free(&io->routes);
    free(io->conns);
    pl_decoder_free(io->decoder);
    curl_multi_cleanup(io->multi);
    free(io);
}
