#include "ws_conn.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "alloc.h"
#include "compress.h"
#include "parley.h"
#include "protocol.h"

#define REFUSAL_BODY_MAX 4096

/* ---- frame queues ------------------------------------------------------- */

static void queue_push(pl_frame_queue *q, unsigned flags, const char *data,
                       size_t len)
{
    pl_out_frame *f = pl_xmalloc(sizeof(*f) + len);
    f->next = NULL;
    f->flags = flags;
    f->len = len;
    f->off = 0;
    memcpy(f->data, data, len);
    if (q->tail)
        q->tail->next = f;
    else
        q->head = f;
    q->tail = f;
}

static pl_out_frame *queue_pop(pl_frame_queue *q)
{
    pl_out_frame *f = q->head;
    if (f) {
        q->head = f->next;
        if (!q->head)
            q->tail = NULL;
        f->next = NULL;
    }
    return f;
}

static void queue_clear(pl_frame_queue *q)
{
    pl_out_frame *f;
    while ((f = queue_pop(q)))
        free(f);
}

void pl_ws_conn_queue_data(pl_ws_conn *conn, const char *data, size_t len)
{
    queue_push(&conn->data, CURLWS_TEXT, data, len);
}

/* RFC 6455 5.5.3: a Pong answers only the latest Ping, so a waiting Pong is
 * replaced rather than joined; likewise a second Ping or Close of ours would
 * say nothing new. The queue thus holds at most one frame of each kind. */
void pl_ws_conn_queue_control(pl_ws_conn *conn, unsigned flags,
                              const char *data, size_t len)
{
    pl_frame_queue *q = &conn->control;
    pl_out_frame *prev = NULL;
    for (pl_out_frame *f = q->head; f; prev = f, f = f->next) {
        if (f->flags != flags)
            continue;
        pl_out_frame *g = pl_xmalloc(sizeof(*g) + len);
        *g = (pl_out_frame){.next = f->next, .flags = flags, .len = len};
        memcpy(g->data, data, len);
        if (prev)
            prev->next = g;
        else
            q->head = g;
        if (q->tail == f)
            q->tail = g;
        free(f);
        return;
    }
    queue_push(q, flags, data, len);
}

/* ---- curl callbacks ----------------------------------------------------- */

static int sockopt_cb(void *userdata, curl_socket_t fd, curlsocktype purpose)
{
    pl_ws_conn *conn = userdata;
    if (purpose == CURLSOCKTYPE_IPCXN)
        conn->sock = fd;
    return CURL_SOCKOPT_OK;
}

static size_t header_cb(char *line, size_t size, size_t n, void *userdata)
{
    pl_ws_conn *conn = userdata;
    size_t len = size * n;
    static const char name[] = "sec-websocket-protocol:";
    if (len > sizeof(name) - 1 && strncasecmp(line, name, sizeof(name) - 1) == 0) {
        const char *v = line + sizeof(name) - 1;
        const char *end = line + len;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
            end--;
        snprintf(conn->subprotocol, sizeof(conn->subprotocol), "%.*s",
                 (int)(end - v), v);
    }
    return len;
}

/* Bytes of an oversized message kept to find out whose it was. */
#define OVERSIZED_KEEP 256

/* One piece of a data frame: reassemble into rx and hand over each complete
 * message. A message over the limit is not held: only its first bytes are
 * kept, to tell the request it belonged to, and the connection is given up
 * (events->oversized) as soon as they are in. */
static void on_data_piece(pl_ws_conn *conn, const struct curl_ws_frame *meta,
                          const char *ptr, size_t len)
{
    if (conn->rx.len == 0 && !conn->rx_discard)
        conn->rx_binary = (meta->flags & CURLWS_BINARY) != 0;
    if (!conn->rx_discard &&
        (uint64_t)conn->rx.len + len + (uint64_t)meta->bytesleft >
            conn->max_message_bytes) {
        conn->rx_discard = true;
        if (conn->rx.len > OVERSIZED_KEEP)
            conn->rx.len = OVERSIZED_KEEP;
    }
    size_t room = conn->rx_discard
                      ? (conn->rx.len < OVERSIZED_KEEP ? OVERSIZED_KEEP - conn->rx.len : 0)
                      : len;
    if (room && pl_buf_append(&conn->rx, ptr, len < room ? len : room) != 0)
        pl_oom("receiving a message");
    bool complete = meta->bytesleft == 0 && !(meta->flags & CURLWS_CONT);
    if (conn->rx_discard) {
        if (complete || conn->rx.len >= OVERSIZED_KEEP) {
            conn->events->oversized(conn->owner, conn, conn->rx.data, conn->rx.len);
            pl_buf_reset(&conn->rx);
            conn->rx_discard = false;
        }
        return;
    }
    if (!complete)
        return;
    if (conn->rx.len > 0)
        conn->events->message(conn->owner, conn, conn->rx.data, conn->rx.len,
                         conn->rx_binary);
    pl_buf_reset(&conn->rx);
}

/* ---- the raw tap: Pings (see pl_ws_tap) ---------------------------------- */

static void tap_frame_end(pl_ws_conn *conn)
{
    pl_ws_tap *t = &conn->tap;
    if (t->ping && !conn->doomed)
        pl_ws_conn_queue_control(conn, CURLWS_PONG, (const char *)t->ping_data, t->ping_len);
    t->ping = false;
    t->ping_len = 0;
}

/* Follow frame headers and payload lengths over raw bytes; keep only Ping
 * payloads (at most 125 bytes: libcurl fails the transfer on a longer Ping,
 * which is therefore not answered). */
static void tap_feed(pl_ws_conn *conn, const unsigned char *p, size_t n)
{
    pl_ws_tap *t = &conn->tap;
    conn->last_rx_ms = pl_monotonic_ms(); /* any byte shows the peer alive */
    while (n > 0) {
        if (!t->in_payload) {
            t->head[t->head_len++] = *p++;
            n--;
            if (t->head_len == 2) {
                unsigned len7 = t->head[1] & 0x7F;
                t->head_need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) +
                               (t->head[1] & 0x80 ? 4 : 0);
            }
            if (t->head_len < 2 || t->head_len < t->head_need)
                continue;
            uint64_t len = t->head[1] & 0x7F;
            if (len == 126)
                len = (uint64_t)t->head[2] << 8 | t->head[3];
            else if (len == 127)
                for (int i = 2; i < 10; i++)
                    len = (i == 2 ? 0 : len << 8) | t->head[i];
            t->ping = (t->head[0] & 0x0F) == 0x9 && len <= sizeof(t->ping_data);
            t->ping_len = 0;
            t->head_len = 0;
            t->left = len;
            t->in_payload = len > 0;
            if (len == 0)
                tap_frame_end(conn);
            continue;
        }
        size_t take = (uint64_t)n < t->left ? n : (size_t)t->left;
        if (t->ping) {
            memcpy(t->ping_data + t->ping_len, p, take);
            t->ping_len += take;
        }
        p += take;
        n -= take;
        t->left -= take;
        if (t->left == 0) {
            t->in_payload = false;
            tap_frame_end(conn);
        }
    }
}

/* libcurl's trace: raw bytes received feed the tap once the 101 arrived;
 * the rest goes to the I/O thread's trace when it has one. */
static int debug_cb(CURL *easy, curl_infotype type, char *data, size_t size, void *userdata)
{
    pl_ws_conn *conn = userdata;
    if (type == CURLINFO_DATA_IN) {
        if (!conn->tap.active) {
            long status = 0;
            curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
            conn->tap.active = status == 101;
        }
        if (conn->tap.active)
            tap_feed(conn, (const unsigned char *)data, size);
        return 0;
    }
    return conn->trace ? conn->trace(easy, type, data, size, conn->trace_data) : 0;
}

static size_t write_cb(char *ptr, size_t size, size_t n, void *userdata)
{
    pl_ws_conn *conn = userdata;
    size_t len = size * n;
    const struct curl_ws_frame *meta = curl_ws_meta(conn->easy);
    if (!meta) {
        /* The body of an answer that refused the upgrade (401, 404...). */
        size_t room = REFUSAL_BODY_MAX - conn->refusal_body.len;
        if (conn->refusal_body.len < REFUSAL_BODY_MAX &&
            pl_buf_append(&conn->refusal_body, ptr, len < room ? len : room) != 0)
            pl_oom("keeping a refused upgrade's answer");
        return len;
    }
    conn->upgraded = true;
    conn->last_rx_ms = pl_monotonic_ms();
    if (conn->doomed)
        return len; /* nothing more is read from a connection being dropped */
    if (meta->flags & CURLWS_PING) {
        /* The tap answers Pings; without it (a libcurl built without its
         * trace) only those with a payload, which arrive whole, can be. */
        if (!conn->tap.active && meta->offset == 0 && len > 0)
            pl_ws_conn_queue_control(conn, CURLWS_PONG, ptr, len);
    } else if (meta->flags & CURLWS_PONG) {
        conn->stats.rtt_ms = conn->last_rx_ms - conn->last_ping_ms;
        conn->last_pong_ms = conn->last_rx_ms;
    } else if (meta->flags & CURLWS_CLOSE) {
        conn->peer_closed = true;
    } else if (meta->flags & (CURLWS_TEXT | CURLWS_BINARY | CURLWS_CONT)) {
        on_data_piece(conn, meta, ptr, len);
    }
    return len;
}

/* ---- open, send, reset -------------------------------------------------- */

int pl_ws_conn_open(pl_ws_conn *conn, const char *url, const char *api_key,
                    const pl_easy_opts *opts, uint64_t max_message_bytes,
                    bool offer_zstd, bool offer_gzip, bool offer_dict)
{
    conn->errbuf[0] = '\0';
    conn->easy = curl_easy_init();
    if (!conn->easy) {
        snprintf(conn->errbuf, sizeof(conn->errbuf), "curl_easy_init failed");
        return -1;
    }
    pl_buf auth = PL_BUF_INIT;
    if (pl_buf_append_str(&auth, "Authorization: Bearer ") != 0 ||
        pl_buf_append_str(&auth, api_key) != 0)
        pl_oom("building the Authorization header");
    conn->headers = pl_easy_header(NULL, auth.data);
    memset(auth.data, 0, auth.len); /* keep the key in as few places as possible */
    pl_buf_free(&auth);
    conn->offered_zstd = offer_zstd;
    conn->offered_gzip = offer_gzip;
    conn->offered_dict = offer_zstd && offer_dict;
    conn->compression = 0;
    conn->dict_agreed = false;
    char offer[128] = "Sec-WebSocket-Protocol: ";
    if (offer_zstd)
        strcat(offer, PL_PROTO_SUBPROTOCOL_ZSTD ", ");
    if (offer_gzip)
        strcat(offer, PL_PROTO_SUBPROTOCOL_GZIP ", ");
    strcat(offer, PL_PROTO_SUBPROTOCOL); /* preferred first, plain last */
    conn->headers = pl_easy_header(conn->headers, offer);
    if (conn->offered_dict) {
        char dict[64];
        snprintf(dict, sizeof(dict), "X-Parley-Zstd-Dict: %u", (unsigned)pl_compress_dict_id());
        conn->headers = pl_easy_header(conn->headers, dict);
    }

    CURL *e = conn->easy;
    pl_easy_setup(e, opts, conn->errbuf);
    conn->trace = opts->trace;
    conn->trace_data = opts->trace_data;
    conn->tap = (pl_ws_tap){0};
    curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, debug_cb);
    curl_easy_setopt(e, CURLOPT_DEBUGDATA, conn);
    curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, conn->headers);
    curl_easy_setopt(e, CURLOPT_WS_OPTIONS, (long)CURLWS_NOAUTOPONG);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, conn);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, conn);
    curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, sockopt_cb);
    curl_easy_setopt(e, CURLOPT_SOCKOPTDATA, conn);
    curl_easy_setopt(e, CURLOPT_PRIVATE, conn);

    conn->sock = CURL_SOCKET_BAD;
    conn->subprotocol[0] = '\0';
    conn->upgraded = conn->peer_closed = conn->failed = conn->doomed = false;
    conn->want_write = false;
    conn->max_message_bytes = max_message_bytes;
    conn->heartbeat_s = 0;
    conn->delivered = 0;
    conn->last_rx_ms = conn->last_ping_ms = conn->opened_at_ms = pl_monotonic_ms();
    conn->last_pong_ms = 0;
    conn->suspect_since_ms = 0;
    if (curl_multi_add_handle(conn->multi, e) != CURLM_OK) {
        snprintf(conn->errbuf, sizeof(conn->errbuf), "curl_multi_add_handle failed");
        pl_ws_conn_reset(conn);
        return -1;
    }
    conn->state = PL_WS_CONNECTING;
    return 0;
}

/* On parley.v1.zstd (or .gzip), the frame compressed when that is smaller.
 * Done when the frame is about to go: only hello tells whether zstd and the
 * dictionary were agreed. */
static pl_out_frame *maybe_compress(pl_ws_conn *conn, pl_out_frame *f, uint64_t *saved)
{
    const pl_compress_dict *dict = conn->dict_agreed ? pl_compress_dict_builtin() : NULL;
    if (!conn->compression ||
        !(dict ? pl_compress_worth_it_dict(f->len) : pl_compress_worth_it(f->len)))
        return f;
    pl_buf z = PL_BUF_INIT;
    int level = conn->compression == PL_COMPRESS_GZIP ? 6 : dict ? 3 : 1;
    if (pl_compress((pl_compress_alg)conn->compression, level, dict, f->data, f->len, &z) != 0 ||
        z.len >= f->len) {
        pl_buf_free(&z);
        return f;
    }
    pl_out_frame *c = pl_xmalloc(sizeof(*c) + z.len);
    c->next = NULL;
    c->flags = CURLWS_BINARY;
    c->len = z.len;
    c->off = 0;
    memcpy(c->data, z.data, z.len);
    *saved += f->len - z.len;
    pl_buf_free(&z);
    free(f);
    return c;
}

/* The next frame to send: the one partly sent, else control frames (once
 * upgraded), else data frames (once hello arrived). */
static pl_out_frame *next_frame(pl_ws_conn *conn, uint64_t *saved)
{
    if (conn->sending)
        return conn->sending;
    if (conn->upgraded && conn->control.head)
        conn->sending = queue_pop(&conn->control);
    else if (conn->state == PL_WS_OPEN && conn->data.head)
        conn->sending = maybe_compress(conn, queue_pop(&conn->data), saved);
    return conn->sending;
}

/* Whether more than one frame would leave now (see next_frame). */
static bool several_frames_ready(const pl_ws_conn *conn)
{
    unsigned n = conn->sending != NULL;
    if (conn->upgraded)
        for (const pl_out_frame *f = conn->control.head; f && n < 2; f = f->next)
            n++;
    if (conn->state == PL_WS_OPEN)
        for (const pl_out_frame *f = conn->data.head; f && n < 2; f = f->next)
            n++;
    return n > 1;
}

/* libcurl sends each frame with its own send(), and on TCP each becomes a
 * segment of its own, with the whole transmit path (and on loopback the
 * peer's receive path) run for it. Corking the socket for a flush of
 * several frames makes them leave together when it is uncorked. */
static void set_cork(const pl_ws_conn *conn, int on)
{
    /* Failure (not a TCP socket) only means no batching. */
    (void)setsockopt(conn->sock, IPPROTO_TCP, TCP_CORK, &on, sizeof(on));
}

/* Send frames until none is left or the socket is full; see
 * pl_ws_conn_flush for what is returned. */
static int send_frames(pl_ws_conn *conn, uint64_t *bytes_sent, uint64_t *bytes_saved)
{
    int completed = 0;
    conn->want_write = false;
    pl_out_frame *f;
    while (conn->easy && (f = next_frame(conn, bytes_saved))) {
        size_t sent = 0;
        CURLcode rc = curl_ws_send(conn->easy, f->data + f->off, f->len - f->off,
                                   &sent, 0, f->flags);
        /* An empty frame (a Pong to an empty Ping) is done once curl took
         * it: sent is then 0 with CURLE_OK. */
        if (rc == CURLE_AGAIN || (rc == CURLE_OK && sent == 0 && f->len > 0)) {
            conn->want_write = true;
            break;
        }
        if (rc != CURLE_OK) {
            snprintf(conn->errbuf, sizeof(conn->errbuf), "sending failed: %s",
                     curl_easy_strerror(rc));
            conn->failed = true;
            conn->failed_at_ms = pl_monotonic_ms();
            return -1;
        }
        f->off += sent;
        if (f->off < f->len)
            continue; /* curl took part of it: offer exactly the rest */
        if (f->flags & (CURLWS_TEXT | CURLWS_BINARY)) {
            completed++;
            *bytes_sent += f->len;
        }
        free(f);
        conn->sending = NULL;
    }
    return completed;
}

int pl_ws_conn_flush(pl_ws_conn *conn, uint64_t *bytes_sent, uint64_t *bytes_saved)
{
    if (conn->failed)
        return -1;
    bool corked = conn->easy && conn->sock != CURL_SOCKET_BAD && several_frames_ready(conn);
    if (corked)
        set_cork(conn, 1);
    int completed = send_frames(conn, bytes_sent, bytes_saved);
    if (corked)
        set_cork(conn, 0);
    return completed;
}

void pl_ws_conn_queued(const pl_ws_conn *conn, uint64_t *frames, uint64_t *bytes)
{
    *frames = *bytes = 0;
    if (conn->sending && !(conn->sending->flags & (CURLWS_PING | CURLWS_PONG | CURLWS_CLOSE))) {
        (*frames)++;
        *bytes += conn->sending->len - conn->sending->off;
    }
    for (const pl_out_frame *f = conn->data.head; f; f = f->next) {
        (*frames)++;
        *bytes += f->len;
    }
}

bool pl_ws_conn_wants_write(const pl_ws_conn *conn)
{
    return conn->want_write && conn->sock != CURL_SOCKET_BAD;
}

void pl_ws_conn_close_now(pl_ws_conn *conn, unsigned code)
{
    if (!conn->easy || !conn->upgraded || conn->sending)
        return;
    unsigned char payload[2] = {(unsigned char)(code >> 8), (unsigned char)code};
    size_t sent;
    curl_ws_send(conn->easy, payload, sizeof(payload), &sent, 0, CURLWS_CLOSE);
}

void pl_ws_conn_reset(pl_ws_conn *conn)
{
    if (conn->easy) {
        curl_multi_remove_handle(conn->multi, conn->easy);
        curl_easy_cleanup(conn->easy);
        conn->easy = NULL;
    }
    curl_slist_free_all(conn->headers); /* holds the key: wiped by free only */
    conn->headers = NULL;
    free(conn->sending);
    conn->sending = NULL;
    queue_clear(&conn->control);
    queue_clear(&conn->data);
    pl_buf_free(&conn->rx);
    pl_buf_free(&conn->refusal_body);
    conn->rx_discard = false;
    conn->tap = (pl_ws_tap){0};
    conn->state = PL_WS_IDLE;
    conn->sock = CURL_SOCKET_BAD;
    conn->want_write = false;
    conn->inflight = 0;
    conn->stats.open_since_ms = 0;
}
