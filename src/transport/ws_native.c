/* parley.v1 messages, as events for the requests (ws_native.h). */
#include "ws_native.h"

#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "alloc.h"
#include "compress.h"
#include "protocol.h"
#include "ws_pool.h"
#include "utf8.h"

/* The connection must go; its requests resume on another. */
static const pl_failure conn_broken = {.kind = PL_FAIL_LOST, .err = PARLEY_ERR_PROTOCOL,
                                       .resumable = true};
static const pl_failure conn_oversized = {.kind = PL_FAIL_LOST,
                                          .err = PARLEY_ERR_CONNECTION_LOST,
                                          .resumable = true};
/* The server speaks what this client cannot: no connection will do better. */
static const pl_failure bad_subprotocol = {.kind = PL_FAIL_INVALID,
                                           .err = PARLEY_ERR_PROTOCOL};
/* A message about one request that breaks the protocol: that request fails. */
static const pl_failure invalid_message = {.kind = PL_FAIL_INVALID,
                                           .err = PARLEY_ERR_PROTOCOL};
/* A turn of the extension `blocks` for a server without it: no server of
 * this endpoint will take it. */
static const pl_failure no_blocks = {.kind = PL_FAIL_INVALID, .err = PARLEY_ERR_INVALID_ARG};

bool pl_ws_native_queue(pl_ws_conn *conn, const pl_tx_req *q, pl_failure *f, char *msg,
                        size_t msg_size)
{
    if (q->needs_blocks && conn->state != PL_WS_OPEN)
        return true; /* on_hello queues it, or fails it */
    if (q->needs_blocks && !conn->feature_blocks) {
        *f = no_blocks;
        snprintf(msg, msg_size,
                 "the server does not support the extension \"blocks\" (protocol.md section 9), "
                 "which this turn needs: blocks, tools, thinking, a system prompt, stop "
                 "sequences or sampling parameters");
        return false;
    }
    if (q->next_seq == 0) {
        pl_ws_conn_queue_data(conn, q->frame, q->frame_len);
        return true;
    }
    pl_buf b = PL_BUF_INIT;
    if (pl_proto_add_resume_from(&b, q->frame, q->frame_len, q->next_seq) != 0)
        pl_oom("repeating a request");
    pl_ws_conn_queue_data(conn, b.data, b.len);
    pl_buf_free(&b);
    return true;
}

/* Called inside curl callbacks: the failure is carried out by the pool
 * after curl_multi_perform (ws_transport.c). */
static void conn_doom(pl_ws_conn *conn, const pl_failure *f, const char *msg,
                      unsigned close_code)
{
    if (conn->doomed)
        return;
    conn->doomed = true;
    conn->doom = *f;
    conn->doom_close_code = close_code;
    snprintf(conn->doom_msg, sizeof(conn->doom_msg), "%s", msg);
}

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

/* A request the message may speak for: known, and last sent on this
 * connection (an earlier connection's late messages are stale). */
static pl_tx_req *request_for(pl_ws_pool *p, pl_ws_conn *conn, bool has_id, uint64_t id)
{
    pl_tx_req *q = has_id ? p->ev->lookup(p->ev->ctx, id) : NULL;
    return q && q->on == conn ? q : NULL;
}

static void on_hello(pl_ws_pool *p, pl_ws_conn *conn, const pl_server_msg *m)
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
    conn->feature_blocks = m->feature_blocks;
    conn->compression = zstd ? PL_COMPRESS_ZSTD : gzip ? PL_COMPRESS_GZIP : 0;
    conn->dict_agreed = zstd && conn->offered_dict && m->zstd_dict == pl_compress_dict_id();
    pl_log(p->conf.log, PARLEY_LOG_INFO, "conn", "connection %u open: %s, %s%s, heartbeat %u s",
           conn->index, m->server ? m->server : "server", m->protocol,
           conn->dict_agreed ? " with the dictionary" : "", m->heartbeat_s);
    conn->heartbeat_s = m->heartbeat_s;
    conn->stats.opens++;
    int64_t now = pl_monotonic_ms();
    conn->stats.open_since_ms = now;
    if (m->max_message_bytes && m->max_message_bytes < conn->max_message_bytes)
        conn->max_message_bytes = m->max_message_bytes;
    PL_COUNTER_ADD(p->conf.counters, connections_opened, 1);
    /* The requests queued on it go out now; those of the extension `blocks`
     * were held for this hello. */
    pl_tx_req *next;
    for (pl_tx_req *q = pl_ws_pool_requests(p, conn)->head; q; q = next) {
        next = q->next; /* a failed request leaves the list */
        pl_failure f;
        char msg[256];
        if (q->needs_blocks && !pl_ws_native_queue(conn, q, &f, msg, sizeof(msg)))
            p->ev->failed(p->ev->ctx, q, &f, msg, -1);
        else
            p->ev->on_wire(p->ev->ctx, q, now);
    }
}

static void on_ack(pl_ws_pool *p, pl_ws_conn *conn, const pl_server_msg *m)
{
    pl_tx_req *q = request_for(p, conn, m->has_id, m->id);
    if (q)
        p->ev->acked(p->ev->ctx, q);
}

static void on_text(pl_ws_pool *p, pl_ws_conn *conn, const pl_server_msg *m)
{
    pl_tx_req *q = request_for(p, conn, m->has_id, m->id);
    if (!q)
        return;
    /* Text, thinking and tool calls alike: the decoder said which. */
    p->ev->piece(p->ev->ctx, q, m->seq, m->session, &m->piece);
}

static bool stop_reason_valid(const char *reason)
{
    return reason && (!strcmp(reason, "end_turn") || !strcmp(reason, "max_tokens") ||
                      !strcmp(reason, "cancelled") || !strcmp(reason, "tool_use") ||
                      !strcmp(reason, "stop_sequence"));
}

static void on_done(pl_ws_pool *p, pl_ws_conn *conn, const pl_server_msg *m)
{
    pl_tx_req *q = request_for(p, conn, m->has_id, m->id);
    if (!q)
        return;
    if (!stop_reason_valid(m->stop_reason)) {
        char msg[160];
        snprintf(msg, sizeof(msg), "invalid message from the server: unknown stop_reason \"%.40s\"",
                 m->stop_reason ? m->stop_reason : "");
        PL_COUNTER_ADD(p->conf.counters, errors, 1);
        p->ev->failed(p->ev->ctx, q, &invalid_message, msg, -1);
        return;
    }
    pl_tx_done d = {.seq_end = m->has_seq_end ? m->seq_end : PL_TX_SEQ_NONE,
                    .session = m->session,
                    .end = {.stop_reason = m->stop_reason,
                            .stop_sequence = m->stop_sequence,
                            .input_tokens = m->input_tokens,
                            .output_tokens = m->output_tokens}};
    p->ev->done(p->ev->ctx, q, &d);
}

static void on_error(pl_ws_pool *p, pl_ws_conn *conn, const pl_server_msg *m)
{
    char msg[640];
    snprintf(msg, sizeof(msg), "server error %s: %.*s%s", m->code_str ? m->code_str : "?",
             (int)(m->content ? m->content_len : 0), m->content ? m->content : "",
             m->code == PL_SERR_RESUME_FAILED
                 ? " (the server no longer holds the reply, e.g. after a restart: the "
                   "session is unchanged and the turn can be sent again)"
                 : "");
    if (m->code >= PL_SERR_INVALID_REQUEST && m->code <= PL_SERR_OTHER)
        p->server_errors[m->code]++;
    pl_tx_req *q = request_for(p, conn, m->has_id, m->id);
    if (!q) {
        PL_COUNTER_ADD(p->conf.counters, errors, 1); /* about the connection, or stale */
        pl_log(p->conf.log, PARLEY_LOG_WARNING, "proto", "connection %u: %s", conn->index, msg);
        return;
    }
    pl_failure f = {.kind = PL_FAIL_SERVER, .err = map_server_error(m->code),
                    .started = q->acked};
    p->ev->failed(p->ev->ctx, q, &f, msg, m->retry_after_ms);
}

/* A message over the limit: its request fails (a repeat would be sent the
 * same message again), and the connection is closed with 1009 at once rather
 * than read to the message's end, which the server may never reach; the
 * other requests on it resume on the next connection. */
static void on_oversized(void *owner, pl_ws_conn *conn, const char *start, size_t len)
{
    pl_ws_pool *p = owner;
    PL_COUNTER_ADD(p->conf.counters, errors, 1);
    char msg[160];
    snprintf(msg, sizeof(msg),
             "the server sent a message over max.message.bytes (%llu); it was discarded",
             (unsigned long long)conn->max_message_bytes);
    uint64_t id;
    pl_tx_req *q = pl_proto_peek_id(start, len, &id) == 0 ? request_for(p, conn, true, id) : NULL;
    if (q)
        p->ev->failed(p->ev->ctx, q, &invalid_message, msg, -1);
    conn_doom(conn, &conn_oversized,
              "the server sent a message over max.message.bytes; connection closed (1009)",
              1009);
}

/* A message about a request that moves nothing on: it shows the server at
 * work on the request all the same. */
static void heard_about(pl_ws_pool *p, pl_ws_conn *conn, const pl_server_msg *m)
{
    pl_tx_req *q = request_for(p, conn, m->has_id, m->id);
    if (q)
        p->ev->alive(p->ev->ctx, q);
}

/* A parley.v1 JSON message, as received or once inflated. */
static void on_text_message(pl_ws_pool *p, pl_ws_conn *conn, const char *data, size_t len)
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
    if (pl_proto_decode(p->decoder, data, len, &m, err, sizeof(err)) != 0) {
        PL_COUNTER_ADD(p->conf.counters, errors, 1);
        pl_log(p->conf.log, PARLEY_LOG_WARNING, "proto",
               "connection %u: invalid message from the server: %s", conn->index, err);
        /* A message too broken to parse may still name its request early on. */
        uint64_t id = m.id;
        bool has_id = m.has_id || pl_proto_peek_id(data, len < 256 ? len : 256, &id) == 0;
        pl_tx_req *q = request_for(p, conn, has_id, id);
        if (q) {
            char msg[300];
            snprintf(msg, sizeof(msg), "invalid message from the server: %s", err);
            p->ev->failed(p->ev->ctx, q, &invalid_message, msg, -1);
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
    case PL_SMSG_HELLO: on_hello(p, conn, &m); break;
    case PL_SMSG_ACK: on_ack(p, conn, &m); break;
    case PL_SMSG_TEXT: on_text(p, conn, &m); break;
    case PL_SMSG_DONE: on_done(p, conn, &m); break;
    case PL_SMSG_ERROR: on_error(p, conn, &m); break;
    case PL_SMSG_UNKNOWN:
        PL_COUNTER_ADD(p->conf.counters, unknown_messages, 1);
        pl_log(p->conf.log, PARLEY_LOG_DEBUG, "proto",
               "connection %u: ignored a message of unknown type", conn->index);
        /* Its request, named near the start, is not stalled ("thinking"
         * for minutes, say): the decoder does not read its fields. */
        m.has_id = pl_proto_peek_id(data, len < 256 ? len : 256, &m.id) == 0;
        heard_about(p, conn, &m);
        break;
    default: /* a type the requests need nothing from yet */
        heard_about(p, conn, &m);
        break;
    }
}

/* A binary frame: one zstd frame on parley.v1.zstd, one gzip member on
 * parley.v1.gzip, inflated within the size limit before anything is
 * allocated; nothing on parley.v1. */
static void on_binary(pl_ws_pool *p, pl_ws_conn *conn, const char *data, size_t len)
{
    if (!conn->compression) {
        PL_COUNTER_ADD(p->conf.counters, errors, 1);
        pl_log(p->conf.log, PARLEY_LOG_WARNING, "proto",
               "connection %u: a binary frame on parley.v1, ignored", conn->index);
        return;
    }
    pl_buf plain = PL_BUF_INIT;
    char err[160];
    int rc = pl_decompress((pl_compress_alg)conn->compression,
                           conn->dict_agreed ? pl_compress_dict_builtin() : NULL,
                           data, len, (size_t)conn->max_message_bytes, &plain, err, sizeof(err));
    if (rc != PL_COMPRESS_OK) {
        PL_COUNTER_ADD(p->conf.counters, errors, 1);
        pl_log(p->conf.log, PARLEY_LOG_WARNING, "proto", "connection %u: %s", conn->index, err);
        pl_buf_free(&plain);
        return; /* whose it was is unknown: its request is caught as stalled */
    }
    PL_COUNTER_ADD(p->conf.counters, bytes_decompressed, plain.len);
    on_text_message(p, conn, plain.data ? plain.data : "", plain.len);
    pl_buf_free(&plain);
}

static void on_message(void *owner, pl_ws_conn *conn, const char *data, size_t len,
                       bool binary)
{
    pl_ws_pool *p = owner;
    p->ev->long_read(p->ev->ctx);
    PL_COUNTER_ADD(p->conf.counters, frames_received, 1);
    PL_COUNTER_ADD(p->conf.counters, bytes_received, len);
    conn->stats.frames_received++;
    conn->stats.bytes_received += len;
    if (binary)
        on_binary(p, conn, data, len);
    else
        on_text_message(p, conn, data, len);
}

const pl_ws_conn_events pl_ws_native_events = {.message = on_message,
                                               .oversized = on_oversized};
