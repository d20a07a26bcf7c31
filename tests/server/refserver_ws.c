/*
 * The reference server's parley.v1 WebSocket front end (protocol.md
 * sections 1-10): per connection a queue of outgoing messages, the requests
 * with their pacing, replays and injected faults, validation of client
 * messages, compression, and the lws callback. Replies come from the
 * parley-echo-1 model (echo_blocks.h); the server's core is refserver.c.
 * Everything here runs on the server's lws service thread.
 */
#include "refserver_internal.h"

/* ---- outgoing queue -------------------------------------------------- */

/* A message of len bytes for the caller to fill at m->buf + LWS_PRE. */
static struct outmsg *outmsg_new(uint64_t req_id, int is_text, size_t len)
{
    struct outmsg *m = pl_xmalloc(sizeof *m + LWS_PRE + len);

    m->next = NULL;
    m->req_id = req_id;
    m->is_text = is_text;
    m->binary = 0;
    m->drop_here = 0;
    m->len = len;
    return m;
}

static int compress_into(struct conn *c, const char *text, size_t len,
                         pl_buf *z);

/*
 * Queue the message text[0, len) on c and ask for a writeable callback; a
 * dropped c discards it. On a compressing connection it leaves compressed
 * when that pays (compress_into), except with keep_text.
 */
static void conn_queue(struct conn *c, uint64_t req_id, int is_text,
                       int keep_text, const char *text, size_t len)
{
    pl_buf *z = &c->srv->zbuf;
    struct outmsg *m;

    if (c->dropped)
        return;
    if (!keep_text && compress_into(c, text, len, z)) {
        m = outmsg_new(req_id, is_text, z->len);
        m->binary = 1;
        memcpy(m->buf + LWS_PRE, z->data, z->len);
    } else {
        m = outmsg_new(req_id, is_text, len);
        memcpy(m->buf + LWS_PRE, text, len);
    }
    *c->out_tail = m;
    c->out_tail = &m->next;
    lws_callback_on_writable(c->wsi);
}

/* Serialize msg (consumed) onto c's queue: the messages that are rare
 * enough to build as json-c objects (hello, errors). */
static void conn_send_json(struct conn *c, int keep_text,
                           struct json_object *msg)
{
    size_t len;
    const char *text = json_object_to_json_string_length(msg, PL_JSON_FLAGS,
                                                         &len);

    conn_queue(c, 0, 0, keep_text, text, len);
    json_object_put(msg);
}

static void conn_send(struct conn *c, struct json_object *msg)
{
    conn_send_json(c, 0, msg);
}

/* Drop the queued stream messages of one request (a newer repeat took over). */
static void conn_purge(struct conn *c, uint64_t req_id)
{
    struct outmsg **pp = &c->out_head;

    while (*pp) {
        struct outmsg *m = *pp;
        if (m->req_id == req_id) {
            *pp = m->next;
            free(m);
        } else {
            pp = &m->next;
        }
    }
    c->out_tail = pp;
}

static void conn_free_queue(struct conn *c)
{
    while (c->out_head) {
        struct outmsg *m = c->out_head;
        c->out_head = m->next;
        free(m);
    }
    c->out_tail = &c->out_head;
}

/* drop_after_texts: a text went out on c; is it the one to drop after? */
static void count_text_written(struct conn *c)
{
    struct fault_state *fs = pl_rs_faults(c->srv);
    unsigned k = fs->k.f.drop_after_texts;

    if (c->faults_gen != fs->gen) {
        c->faults_gen = fs->gen;
        c->texts_written = 0;
    }
    if (++c->texts_written >= k && k)
        c->drop_pending = 1;
}

static int conn_drop(struct conn *c);

/* Bytes of a WebSocket frame of len payload bytes: a server's header
 * (RFC 6455 5.2, no mask) takes 2, 4 or 10 bytes by the payload's length. */
static size_t frame_bytes(size_t len)
{
    return len + (len < 126 ? 2 : len < 65536 ? 4 : 10);
}

/* The fragment size the fragment_bytes knob asks for; 0: whole frames. */
static size_t fragment_size(struct conn *c)
{
    return pl_rs_faults(c->srv)->k.f.fragment_bytes;
}

/* Bytes of m on the wire: one frame, or fragments of at most frag bytes. */
static size_t wire_len(const struct outmsg *m, size_t frag)
{
    size_t whole, last;

    if (!frag || m->len <= frag)
        return frame_bytes(m->len);
    whole = m->len / frag;
    last = m->len % frag;
    return whole * frame_bytes(frag) + (last ? frame_bytes(last) : 0);
}

/* The header of an unmasked frame of len (< 65536) bytes at p: opcode 0
 * continues a fragmented message, fin ends it. Returns where the payload
 * goes. */
static unsigned char *put_frame_header(unsigned char *p, int opcode, int fin,
                                       size_t len)
{
    *p++ = (unsigned char)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        *p++ = (unsigned char)len;
    } else {
        *p++ = 126;
        *p++ = (unsigned char)(len >> 8);
        *p++ = (unsigned char)len;
    }
    return p;
}

static struct outmsg *queue_pop(struct conn *c)
{
    struct outmsg *m = c->out_head;

    c->out_head = m->next;
    if (!c->out_head)
        c->out_tail = &c->out_head;
    return m;
}

/* m framed at p, as one frame or as fragments of at most frag bytes (the
 * first with m's opcode, the others continuations, the last with FIN).
 * Returns the end. */
static unsigned char *put_message(unsigned char *p, const struct outmsg *m,
                                  size_t frag)
{
    size_t off = 0;

    do {
        size_t n = m->len - off;
        if (frag && n > frag)
            n = frag;
        p = put_frame_header(p, off ? 0x0 : m->binary ? 0x2 : 0x1,
                             off + n == m->len, n);
        memcpy(p, m->buf + LWS_PRE + off, n);
        p += n;
        off += n;
    } while (off < m->len);
    return p;
}

/*
 * Frame queued messages back to back in srv->tx and hand them to lws as
 * one write of raw bytes (LWS_WRITE_HTTP: lws adds no framing of its own):
 * one send(2) for up to PL_TX_BATCH bytes. One send per message had been a
 * quarter of the server's CPU under load. The batch ends after the text
 * that drop_after_texts waits for. Returns lws_write's result.
 */
static int write_batch(struct conn *c)
{
    unsigned char *start = c->srv->tx + LWS_PRE, *p = start;
    size_t frag = fragment_size(c);

    while (c->out_head && !c->drop_pending && !c->out_head->drop_here &&
           wire_len(c->out_head, frag) <= (size_t)(start + PL_TX_BATCH - p)) {
        struct outmsg *m = queue_pop(c);
        p = put_message(p, m, frag);
        if (m->is_text)
            count_text_written(c); /* a failed write closes c anyway */
        free(m);
    }
    return lws_write(c->wsi, start, (size_t)(p - start), LWS_WRITE_HTTP);
}

/* One message as lws frames it: one too big for a batch, or any on an
 * HTTP/2 stream (WebSocket over h2), whose framing is lws's business. */
static int write_alone(struct conn *c)
{
    struct outmsg *m = queue_pop(c);
    int n = lws_write(c->wsi, m->buf + LWS_PRE, m->len,
                      m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);

    if (n >= 0 && m->is_text)
        count_text_written(c);
    free(m);
    return n;
}

/* LWS_CALLBACK_SERVER_WRITEABLE: send as much as the socket takes now. */
static int conn_drain(struct conn *c)
{
    int budget = PL_WRITES_PER_CALLBACK;

    if (c->dropped)
        return -1; /* restart: have lws close it */
    if (c->silent)
        return 0; /* its messages wait for ever (a repeat purges them) */
    while (c->out_head && !c->drop_pending && budget--) {
        if (c->out_head->drop_here) {
            free(queue_pop(c));
            c->drop_pending = 1;
            break;
        }
        /* A message too big for a batch goes alone, unfragmented. */
        int n = c->batch_frames &&
                        wire_len(c->out_head, fragment_size(c)) <= PL_TX_BATCH
                    ? write_batch(c) : write_alone(c);
        if (n < 0)
            return -1;
        /* lws keeps what the kernel refused; wait until that is flushed. */
        if (lws_send_pipe_choked(c->wsi))
            break;
    }
    /* The drop waits until the last text has left lws for the kernel. */
    if (c->drop_pending && !lws_send_pipe_choked(c->wsi))
        return conn_drop(c);
    if (c->out_head || c->drop_pending)
        lws_callback_on_writable(c->wsi);
    return 0;
}

/* ---- message builders -------------------------------------------------- */

static struct json_object *msg_new(const char *type)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string(type));
    return o;
}

static void send_hello(struct conn *c)
{
    const pl_refserver_opts *o = &c->srv->opts;
    struct json_object *m = msg_new("hello");
    struct json_object *features;

    pl_rs_put_str(m, "protocol", c->zstd ? PL_PROTOCOL_ZSTD : c->gzip ? PL_PROTOCOL_GZIP : PL_PROTOCOL);
    if (c->zstd_dict)
        pl_rs_put_u64(m, "zstd_dict", c->zstd_dict);
    pl_rs_put_u64(m, "max_message_bytes", o->max_message_bytes);
    pl_rs_put_u64(m, "heartbeat_s", o->heartbeat_s);
    pl_rs_put_u64(m, "idempotency_window_s", o->idempotency_window_s);
    pl_rs_put_str(m, "server", PL_SERVER_NAME);
    features = json_object_new_array();
    json_object_array_add(features, json_object_new_string("blocks"));
    json_object_object_add(m, "features", features);
    /* Text even on parley.v1.zstd: the client reads from it, uncompressed,
     * whether a dictionary was agreed before meeting any frame that uses
     * one. */
    conn_send_json(c, 1, m);
}

/* id: the client's "id" string to echo, or NULL. */
static struct json_object *error_new(pl_refserver *srv, struct json_object *id,
                                     const char *code, const char *content)
{
    struct json_object *m = msg_new("error");

    if (id)
        json_object_object_add(m, "id", json_object_get(id));
    pl_rs_put_str(m, "code", code);
    pl_rs_put_str(m, "content", content);
    COUNT(srv, errors_sent);
    pl_rs_log(srv, "error %s: %s", code, content);
    return m;
}

static void send_error(struct conn *c, struct json_object *id,
                       const char *code, const char *content)
{
    conn_send(c, error_new(c->srv, id, code, content));
}

/* reject_every / reject_fraction: an error instead of the ack. */
static void send_rejection(struct conn *c, struct json_object *id)
{
    const pl_refserver_faults *f = &pl_rs_faults(c->srv)->k.f;
    struct json_object *m = error_new(c->srv, id, f->reject_code,
                                      "request rejected (injected fault)");

    if (f->retry_after_ms >= 0)
        pl_rs_put_u64(m, "retry_after_ms", (uint64_t)f->retry_after_ms);
    COUNT(c->srv, rejected);
    conn_send(c, m);
}

/*
 * The messages of every request (ack, text, done) are written as JSON text
 * directly: building, printing and freeing a json-c object for each was
 * about a fifth of the server's CPU under load. The id is digits and the
 * session [A-Za-z0-9._:-] (both validated), so only a text's content needs
 * escaping. The fields keep the order json-c wrote them in, which the zstd
 * dictionary was trained on.
 */

/* The stream messages of a request go to its attached connection only. */
static void emit_ack(struct request *r)
{
    char text[64];
    int n;

    if (!r->conn)
        return;
    n = snprintf(text, sizeof text, "{\"type\":\"ack\",\"id\":\"%s\"}",
                 r->id_str);
    conn_queue(r->conn, r->id, 0, 0, text, (size_t)n);
}

/* pl_buf reports running out of memory; this server aborts then. */
static void buf_ok(int rc)
{
    if (rc)
        pl_rs_check_alloc(NULL);
}

/*
 * Stream unit k of the reply (protocol.md 9.3): a `text` or `thinking`
 * piece, the thinking block's last piece with its signature, or a whole
 * `tool_use`; each names its block.
 */
static void send_piece(struct request *r, size_t k)
{
    pl_buf *b = &r->srv->json;
    size_t p;
    const pl_echo_block *blk = pl_echo_turn_unit(&r->reply, k, &p);
    char head[256];
    int n = snprintf(head, sizeof head,
                     "{\"type\":\"%s\",\"id\":\"%s\",\"session\":\"%s\","
                     "\"seq\":%zu,\"block\":%zu,",
                     blk->type == PL_ECHO_BLOCK_TEXT ? "text"
                     : blk->type == PL_ECHO_BLOCK_THINKING ? "thinking"
                     : "tool_use", r->id_str, r->session, k,
                     pl_echo_block_index(&r->reply, blk));

    pl_buf_reset(b);
    buf_ok(pl_buf_append(b, head, (size_t)n));
    if (blk->type == PL_ECHO_BLOCK_TOOL_USE) {
        buf_ok(pl_buf_append_str(b, "\"tool_id\":"));
        buf_ok(pl_buf_append_json_str(b, blk->tool_id, strlen(blk->tool_id)));
        buf_ok(pl_buf_append_str(b, ",\"name\":"));
        buf_ok(pl_buf_append_json_str(b, blk->name, strlen(blk->name)));
        /* The input as the client wrote it, compacted: raw JSON. */
        buf_ok(pl_buf_append_str(b, ",\"input\":"));
        buf_ok(pl_buf_append(b, blk->text, blk->len));
    } else {
        buf_ok(pl_buf_append_str(b, "\"content\":"));
        buf_ok(pl_buf_append_json_str(b,
                                      blk->text + pl_echo_block_piece_start(blk, p),
                                      pl_echo_block_piece_len(blk, p)));
        if (blk->signature && p + 1 == blk->npieces) {
            buf_ok(pl_buf_append_str(b, ",\"signature\":"));
            buf_ok(pl_buf_append_json_str(b, blk->signature,
                                          strlen(blk->signature)));
        }
    }
    buf_ok(pl_buf_append(b, "}", 1));
    conn_queue(r->conn, r->id, 1, 0, b->data, b->len);
}

/* unknown_every: a message type from the future, which clients ignore. */
static void send_unknown(struct request *r)
{
    char text[64];
    int n = snprintf(text, sizeof text,
                     "{\"type\":\"bogus_future_type\",\"id\":\"%s\",\"x\":1}",
                     r->id_str);

    conn_queue(r->conn, r->id, 0, 0, text, (size_t)n);
}

/* malformed_every: cut-off JSON that still names the request early. The
 * id is digits only, so it needs no escaping. */
static void send_malformed(struct request *r)
{
    char text[64];
    int n = snprintf(text, sizeof text,
                     "{\"type\":\"text\",\"id\":\"%s\",\"seq\":", r->id_str);

    conn_queue(r->conn, r->id, 1, 0, text, (size_t)n);
}

/* oversized_every: a valid text message padded with 'x' in its content to
 * oversized_bytes (at least its own envelope). */
static void send_oversized(struct request *r, size_t k)
{
    uint64_t want = pl_rs_faults(r->srv)->k.f.oversized_bytes;
    char head[256];
    int hlen = snprintf(head, sizeof head,
                        "{\"type\":\"text\",\"id\":\"%s\",\"session\":\"%s\","
                        "\"seq\":%zu,\"content\":\"", r->id_str, r->session, k);
    size_t len = (size_t)(want ? want : PL_OVERSIZED_DEFAULT);
    char *p;

    if (len < (size_t)hlen + 2)
        len = (size_t)hlen + 2;
    p = pl_xmalloc(len);
    memcpy(p, head, (size_t)hlen);
    memset(p + hlen, 'x', len - (size_t)hlen - 2);
    memcpy(p + len - 2, "\"}", 2);
    conn_queue(r->conn, r->id, 1, 0, p, len);
    free(p);
}

static void req_unlink(struct request *r);

/*
 * The stream messages of a request go to its attached connection only;
 * pieces before the requester's resume_from are not sent. A malformed or
 * oversized piece ends the request on this connection: the client fails
 * it, so nothing more is sent there (the generation goes on, detached, and
 * a repeat could still resume it).
 */
static void emit_piece(struct request *r, size_t k)
{
    enum text_fault fault;
    int unknown_first;

    if (!r->conn || k < r->resume_from)
        return;
    fault = pl_rs_next_text_fault(r->srv, &unknown_first);
    if (unknown_first)
        send_unknown(r);
    if (fault == TEXT_PLAIN) {
        send_piece(r, k);
        return;
    }
    if (fault == TEXT_MALFORMED)
        send_malformed(r);
    else
        send_oversized(r, k);
    pl_rs_log(r->srv, "request %s: sent a %s piece, no more on this connection",
            r->id_str, fault == TEXT_MALFORMED ? "malformed" : "oversized");
    req_unlink(r);
}

static void emit_done(struct request *r)
{
    pl_buf *b = &r->srv->json;
    const char *seq = r->reply.stop_sequence;
    char head[256], tail[256];
    int n;

    if (!r->conn)
        return;
    n = snprintf(head, sizeof head,
                 "{\"type\":\"done\",\"id\":\"%s\",\"session\":\"%s\","
                 "\"stop_reason\":\"%s\"", r->id_str, r->session,
                 r->stop_reason);
    pl_buf_reset(b);
    buf_ok(pl_buf_append(b, head, (size_t)n));
    /* Only with that stop reason (protocol.md 10.1): not when cancelled. */
    if (seq && !strcmp(r->stop_reason, "stop_sequence")) {
        buf_ok(pl_buf_append_str(b, ",\"stop_sequence\":"));
        buf_ok(pl_buf_append_json_str(b, seq, r->reply.stop_sequence_len));
    }
    n = snprintf(tail, sizeof tail,
                 ",\"seq_end\":%zu,\"usage\":"
                 "{\"input_tokens\":%" PRIu64 ",\"output_tokens\":%zu}}",
                 r->generated, r->reply.input_tokens, r->generated);
    buf_ok(pl_buf_append(b, tail, (size_t)n));
    conn_queue(r->conn, r->id, 0, 0, b->data, b->len);
}

/* ---- request table and expiry ------------------------------------------ */

static size_t bucket_of(const struct req_table *t, uint64_t id)
{
    return pl_rs_hash_id(id, t->bits);
}

void pl_rs_ws_table_init(struct req_table *t)
{
    t->bits = 10;
    t->count = 0;
    t->buckets = pl_xcalloc((size_t)1 << t->bits, sizeof *t->buckets);
}

static void table_grow(struct req_table *t)
{
    struct req_table bigger = { NULL, t->bits + 1, t->count };
    size_t i, n = (size_t)1 << t->bits;

    bigger.buckets = calloc((size_t)1 << bigger.bits, sizeof *bigger.buckets);
    if (!bigger.buckets)
        return; /* stay at the current size: slower, still correct */
    for (i = 0; i < n; i++) {
        while (t->buckets[i]) {
            struct request *r = t->buckets[i];
            size_t b = bucket_of(&bigger, r->id);
            t->buckets[i] = r->hash_next;
            r->hash_next = bigger.buckets[b];
            bigger.buckets[b] = r;
        }
    }
    free(t->buckets);
    *t = bigger;
}

static struct request *table_find(const struct req_table *t, uint64_t id)
{
    struct request *r = t->buckets[bucket_of(t, id)];

    while (r && r->id != id)
        r = r->hash_next;
    return r;
}

static void table_insert(struct req_table *t, struct request *r)
{
    size_t b;

    if (t->count >= ((size_t)1 << t->bits))
        table_grow(t);
    b = bucket_of(t, r->id);
    r->hash_next = t->buckets[b];
    t->buckets[b] = r;
    t->count++;
}

static void table_remove(struct req_table *t, struct request *r)
{
    struct request **pp = &t->buckets[bucket_of(t, r->id)];

    while (*pp != r)
        pp = &(*pp)->hash_next;
    *pp = r->hash_next;
    t->count--;
}

/* Stop sending a request's messages anywhere; queued ones still go out. */
static void req_unlink(struct request *r)
{
    if (!r->conn)
        return;
    if (r->conn_prev)
        r->conn_prev->conn_next = r->conn_next;
    else
        r->conn->attached = r->conn_next;
    if (r->conn_next)
        r->conn_next->conn_prev = r->conn_prev;
    r->conn = NULL;
    r->conn_prev = NULL;
    r->conn_next = NULL;
}

/* Route a request's messages to c, from seq resume_from on. */
static void req_attach(struct request *r, struct conn *c, uint64_t resume_from)
{
    if (r->conn) {
        /* The latest requester wins: the earlier one gets nothing more. */
        conn_purge(r->conn, r->id);
        req_unlink(r);
    }
    r->conn = c;
    r->resume_from = resume_from;
    r->conn_next = c->attached;
    if (c->attached)
        c->attached->conn_prev = r;
    c->attached = r;
}

void pl_rs_ws_req_free(struct request *r)
{
    req_unlink(r);
    free(r->session);
    pl_echo_turn_free(&r->reply);
    free(r);
}

/*
 * Finished requests enter the expiry queue in terminal order; the window is
 * the same for all, so the queue is sorted by expiry and popping its head
 * forgets them lazily, in O(1) per request.
 */
static void expire_requests(pl_refserver *srv)
{
    int64_t now = pl_rs_now_ms();

    while (srv->expiry_head && srv->expiry_head->expires_ms <= now) {
        struct request *r = srv->expiry_head;
        srv->expiry_head = r->expiry_next;
        if (!srv->expiry_head)
            srv->expiry_tail = NULL;
        table_remove(&srv->reqs, r);
        pl_rs_ws_req_free(r);
    }
}

/* ---- generation (the reply: echo_blocks.h) ------------------------------ */

static void req_finish(struct request *r, const char *stop_reason)
{
    pl_refserver *srv = r->srv;

    r->stop_reason = stop_reason;
    r->stalled = 0; /* a cancelled stall must not start generating later */
    r->expires_ms = pl_rs_now_ms() + (int64_t)srv->opts.idempotency_window_s * 1000;
    r->expiry_next = NULL;
    if (srv->expiry_tail)
        srv->expiry_tail->expiry_next = r;
    else
        srv->expiry_head = r;
    srv->expiry_tail = r;
    emit_done(r);
}

static void gen_step(struct request *r);

static void gen_timer(pl_rs_timer *t)
{
    gen_step(pl_container_of(t, struct request, step));
}

static void gen_schedule(struct request *r, unsigned ms)
{
    pl_rs_timer_set(&r->srv->steps, &r->step, gen_timer, ms);
}

/*
 * error_every: once error_at pieces exist, the request ends with an
 * `internal` error (after ack the client may not retry it) and is
 * forgotten, as a server whose generation crashed would. Returns 1 when it
 * did so: r is freed.
 */
static int error_due(struct request *r)
{
    pl_refserver *srv = r->srv;

    if (!r->error_pending || r->generated != r->error_at)
        return 0;
    if (r->conn) {
        struct json_object *id = json_object_new_string(r->id_str);
        send_error(r->conn, id, "internal",
                   "generation failed (injected fault)");
        json_object_put(id);
    }
    COUNT(srv, stream_errors);
    pl_rs_timer_cancel(&srv->steps, &r->step);
    table_remove(&srv->reqs, r);
    pl_rs_ws_req_free(r);
    return 1;
}

/*
 * drop_every: once drop_at pieces exist, r's connection drops (TCP, no
 * Close) as soon as what is queued on it so far is written. The generation
 * goes on, for a repeat to resume.
 */
static void drop_due(struct request *r)
{
    struct outmsg *m;

    if (!r->drop_pending || r->generated != r->drop_at)
        return;
    r->drop_pending = 0;
    if (!r->conn || r->conn->dropped)
        return;
    m = outmsg_new(0, 0, 0);
    m->drop_here = 1;
    *r->conn->out_tail = m;
    r->conn->out_tail = &m->next;
    lws_callback_on_writable(r->conn->wsi);
}

/* Produce the next piece (all remaining ones when token_ms is 0). */
static void gen_step(struct request *r)
{
    unsigned token_ms = r->srv->opts.token_ms;

    /* A reply cut at 0 by a stop sequence has no unit at all. */
    while (r->generated < r->reply.nunits) {
        drop_due(r);
        if (error_due(r))
            return;
        emit_piece(r, r->generated++);
        if (token_ms)
            break;
    }

    if (r->generated < r->reply.nunits) {
        gen_schedule(r, token_ms);
        return;
    }
    drop_due(r); /* a fault after the last piece still acts */
    if (!error_due(r))
        req_finish(r, r->reply.stop_reason);
}

static void gen_start(struct request *r)
{
    if (r->srv->opts.latency_ms)
        gen_schedule(r, r->srv->opts.latency_ms);
    else
        gen_step(r);
}

/* ---- client message validation ----------------------------------------- */

/* A validated `message`. Strings point into the parsed JSON. */
struct turn {
    uint64_t id;
    const char *id_str;
    const char *session;
    pl_echo_conversation *cv; /* content, history and the fields of 9.2 */
    uint64_t max_tokens;     /* UINT64_MAX when absent */
    uint64_t resume_from;
};

/* A field, treating JSON null as absent (protocol section 3). */
static struct json_object *field(struct json_object *o, const char *key)
{
    return json_object_object_get(o, key);
}

static const char *string_field(struct json_object *o, const char *key,
                                size_t *len)
{
    struct json_object *v = field(o, key);

    if (!json_object_is_type(v, json_type_string))
        return NULL;
    if (len)
        *len = (size_t)json_object_get_string_len(v);
    return json_object_get_string(v);
}

/* Canonical decimal in [1, 2^63-1]: no sign, no leading zero. */
static int parse_id(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (len == 0 || len > 19 || s[0] == '0')
        return -1;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0'); /* 19 digits fit in uint64 */
    }
    if (v > INT64_MAX)
        return -1;
    *out = v;
    return 0;
}

static int valid_session(const char *s, size_t len)
{
    size_t i;

    if (len < 1 || len > 128)
        return 0;
    for (i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || strchr("._:-", ch)))
            return 0;
    }
    return 1;
}

/* Optional integer field >= min; absent leaves *out untouched. */
static int count_field(struct json_object *o, const char *key, int64_t min,
                       uint64_t *out)
{
    struct json_object *v = field(o, key);

    if (!v)
        return 0;
    if (!json_object_is_type(v, json_type_int) ||
        json_object_get_int64(v) < min)
        return -1;
    *out = json_object_get_uint64(v); /* above INT64_MAX json-c keeps uint64 */
    return 0;
}

static int hex4(const char *s, size_t avail)
{
    int v = 0;
    size_t i;

    if (avail < 4)
        return -1;
    for (i = 0; i < 4; i++) {
        char ch = s[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0'
              : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
              : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/*
 * json-c 0.16 silently turns a \uD800-\uDFFF escape that is not part of a
 * proper high+low pair into U+FFFD, so the raw text is checked instead.
 * Outside strings valid JSON has no backslash, so no string tracking is
 * needed; skipping the escaped character handles "\\u...".
 */
static int has_lone_surrogate(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i + 1 < len; i++) {
        int u, lo;

        if (s[i] != '\\')
            continue;
        if (s[i + 1] != 'u') {
            i++;
            continue;
        }
        u = hex4(s + i + 2, len - i - 2);
        if (u >= 0xDC00 && u <= 0xDFFF)
            return 1;
        if (u >= 0xD800 && u <= 0xDBFF) {
            lo = i + 7 < len && s[i + 6] == '\\' && s[i + 7] == 'u'
                     ? hex4(s + i + 8, len - i - 8) : -1;
            if (lo < 0xDC00 || lo > 0xDFFF)
                return 1;
            i += 6;
        }
        i += 5;
    }
    return 0;
}

/* Fills t from a `message`; returns NULL or why it is invalid. */
static const char *check_turn(struct json_object *root, const char *raw,
                              size_t raw_len, struct turn *t,
                              pl_echo_conversation *cv)
{
    const char *model, *err;
    size_t len;
    struct json_object *ts = field(root, "timestamp");
    struct json_object *content = field(root, "content");

    memset(t, 0, sizeof *t);
    memset(cv, 0, sizeof *cv);
    t->cv = cv;
    t->max_tokens = UINT64_MAX;
    t->id_str = string_field(root, "id", &len);
    if (!t->id_str || parse_id(t->id_str, len, &t->id))
        return "field \"id\" must be a decimal string in [1, 2^63-1]";
    t->session = string_field(root, "session", &len);
    if (!t->session || !valid_session(t->session, len))
        return "field \"session\" must be 1-128 bytes of [A-Za-z0-9._:-]";
    if (!json_object_is_type(content, json_type_string) &&
        !json_object_is_type(content, json_type_array))
        return "missing or ill-typed field \"content\"";
    if (!json_object_is_type(ts, json_type_int))
        return "missing or ill-typed field \"timestamp\"";
    model = string_field(root, "model", NULL);
    if (field(root, "model") && (!model || strcmp(model, PL_ECHO_MODEL)))
        return "unknown model";
    if (count_field(root, "max_tokens", 1, &t->max_tokens))
        return "field \"max_tokens\" must be an integer >= 1";
    if (count_field(root, "resume_from", 0, &t->resume_from))
        return "field \"resume_from\" must be an integer >= 0";
    if ((err = pl_echo_read_native(cv, root)))
        return err;
    if (has_lone_surrogate(raw, raw_len))
        return "string with an unpaired UTF-16 surrogate escape";
    return NULL;
}

/* ---- requests ------------------------------------------------------------ */

static struct request *req_new(pl_refserver *srv, const struct turn *t)
{
    struct request *r = pl_xcalloc(1, sizeof *r);

    r->srv = srv;
    r->id = t->id;
    snprintf(r->id_str, sizeof r->id_str, "%s", t->id_str);
    r->session = pl_rs_strndup(t->session, strlen(t->session));
    /* input_tokens counts the content and every history content (the
     * reader's context_bytes). */
    t->cv->req.max_tokens = t->max_tokens;
    t->cv->req.chunk_bytes = srv->opts.chunk_bytes;
    if (pl_echo_turn_build(&r->reply, &t->cv->req))
        pl_rs_check_alloc(NULL);
    return r;
}

/*
 * A repeat of a known id: replay what exists, then follow it live. A
 * stalled request starts generating now, as if it had just arrived.
 */
static void req_replay(struct request *r, struct conn *c, uint64_t resume_from)
{
    size_t k;

    COUNT(c->srv, requests_replayed);
    req_attach(r, c, resume_from);
    emit_ack(r);
    if (r->stalled) {
        r->stalled = 0;
        gen_start(r);
        return;
    }
    for (k = resume_from; k < r->generated; k++)
        emit_piece(r, k);
    if (r->stop_reason)
        emit_done(r);
}

/*
 * stall_connection_every: c goes silent, as behind a dead NAT or load
 * balancer: nothing more is written (its queue only grows until repeats
 * elsewhere purge it) and nothing is read, so lws answers no Ping. The TCP
 * connection stays open until the client closes it or the server stops.
 */
static void conn_silence(struct conn *c)
{
    c->silent = 1;
    lws_rx_flow_control(c->wsi, 0);
    COUNT(c->srv, silenced);
    pl_rs_log(c->srv, "connection silenced (injected fault)");
}

/* A new id with resume_from 0: rejected (recording nothing), or acked and
 * generated, or acked and stalled, as the fault knobs say. */
static void req_begin(struct conn *c, struct json_object *id,
                      const struct turn *t)
{
    enum request_fault fault = pl_rs_next_request_fault(c->srv);
    struct request *r;

    if (fault == REQUEST_REJECT) {
        send_rejection(c, id);
        return;
    }
    if (fault == REQUEST_SILENCE)
        conn_silence(c); /* the request is served, to nobody */
    r = req_new(c->srv, t);
    table_insert(&c->srv->reqs, r);
    req_attach(r, c, 0);
    COUNT(c->srv, requests_started);
    emit_ack(r);
    if (fault == REQUEST_ERROR) {
        r->error_pending = 1;
        r->error_at = pl_rs_faults(c->srv)->k.f.error_after_pieces;
    }
    if (fault == REQUEST_DROP) {
        r->drop_pending = 1;
        r->drop_at = pl_rs_faults(c->srv)->k.f.drop_after_pieces;
    }
    if (fault == REQUEST_STALL) {
        r->stalled = 1;
        pl_rs_log(c->srv, "request %s: stalled until repeated", r->id_str);
    } else {
        gen_start(r);
    }
}

/* pl_refserver_arrivals: every `message` whose id is valid counts, whatever
 * else is wrong with it. */
static void note_arrival(pl_refserver *srv, struct json_object *id)
{
    uint64_t v;

    if (json_object_is_type(id, json_type_string) &&
        !parse_id(json_object_get_string(id),
                  (size_t)json_object_get_string_len(id), &v))
        pl_rs_record_arrival(srv, v);
}

static void handle_message(struct conn *c, struct json_object *root,
                           const char *raw, size_t raw_len)
{
    pl_refserver *srv = c->srv;
    struct json_object *id = field(root, "id");
    struct request *r;
    struct turn t;
    pl_echo_conversation cv;
    const char *err;

    note_arrival(srv, id);
    err = check_turn(root, raw, raw_len, &t, &cv);
    if (err)
        send_error(c, json_object_is_type(id, json_type_string) ? id : NULL,
                   "invalid_request", err);
    else if ((r = table_find(&srv->reqs, t.id)))
        req_replay(r, c, t.resume_from);
    else if (t.resume_from > 0)
        send_error(c, id, "resume_failed", "unknown or expired request id");
    else
        req_begin(c, id, &t);
    pl_echo_conversation_free(&cv);
}

static void handle_cancel(struct conn *c, struct json_object *root)
{
    struct json_object *id = field(root, "id");
    uint64_t v;
    struct request *r;

    COUNT(c->srv, cancels_received);
    if (!json_object_is_type(id, json_type_string) ||
        parse_id(json_object_get_string(id),
                 (size_t)json_object_get_string_len(id), &v)) {
        send_error(c, json_object_is_type(id, json_type_string) ? id : NULL,
                   "invalid_request",
                   "field \"id\" must be a decimal string in [1, 2^63-1]");
        return;
    }
    r = table_find(&c->srv->reqs, v);
    if (!r || r->stop_reason)
        return; /* unknown or finished: ignored by contract */
    pl_rs_timer_cancel(&c->srv->steps, &r->step);
    req_finish(r, "cancelled");
}

static struct json_object *parse_object(const char *text, size_t len)
{
    struct json_tokener *tok = json_tokener_new();
    struct json_object *o;

    if (!tok)
        return NULL;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    o = json_tokener_parse_ex(tok, text, (int)len);
    /* Strict mode rejects trailing data; an incomplete text yields NULL. */
    if (o && (json_tokener_get_error(tok) != json_tokener_success ||
              !json_object_is_type(o, json_type_object))) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

/* One complete text message from the client. */
static void handle_text(struct conn *c, const char *text, size_t len)
{
    struct json_object *root = parse_object(text, len);
    struct json_object *id;
    const char *type;

    pl_rs_received_add(&c->srv->received, text, len);
    expire_requests(c->srv);
    if (!root) {
        send_error(c, NULL, "invalid_request",
                   "malformed JSON, or not a JSON object");
        return;
    }
    id = field(root, "id");
    if (!json_object_is_type(id, json_type_string))
        id = NULL;
    type = string_field(root, "type", NULL);
    if (!type)
        send_error(c, id, "invalid_request", "missing or ill-typed field \"type\"");
    else if (!strcmp(type, "message"))
        handle_message(c, root, text, len);
    else if (!strcmp(type, "cancel"))
        handle_cancel(c, root);
    else
        send_error(c, id, "invalid_request", "unknown message type");
    json_object_put(root);
}

/* ---- compression (parley.v1.zstd, docs/protocol.md) ----------------------- */

/* Binary frames on c carry compressed messages (zstd or gzip). */
static int compressed(const struct conn *c)
{
    return c->zstd || c->gzip;
}

/* The dictionary frames on c may use: the built-in one once agreed. */
static const pl_compress_dict *conn_dict(const struct conn *c)
{
    return c->zstd_dict ? pl_compress_dict_builtin() : NULL;
}

/*
 * On a parley.v1.zstd connection a message worth compressing leaves as one
 * zstd frame in a binary frame, with the dictionary when one was agreed.
 * One that compression would not shrink (or that failed) stays text: the
 * sender chooses per message and receivers take both. Returns 1 with the
 * frame in z (emptied first), 0 to send the message as text.
 */
static int compress_into(struct conn *c, const char *text, size_t len,
                         pl_buf *z)
{
    const pl_compress_dict *dict = conn_dict(c);

    if (!compressed(c) ||
        !(dict ? pl_compress_worth_it_dict(len) : pl_compress_worth_it(len)))
        return 0;
    pl_buf_reset(z);
    if ((c->gzip ? pl_compress(PL_COMPRESS_GZIP, PL_GZIP_LEVEL, NULL, text,
                               len, z)
                 : pl_compress(PL_COMPRESS_ZSTD, dict ? PL_ZSTD_LEVEL_DICT : PL_ZSTD_LEVEL,
                               dict, text, len, z)) != PL_COMPRESS_OK ||
        z->len >= len)
        return 0;
    COUNT(c->srv, compressed_sent);
    return 1;
}

/*
 * One binary message on parley.v1.zstd: one zstd frame holding one JSON
 * object. pl_decompress refuses, before allocating, a frame whose declared
 * size is over max_message_bytes (too_large, connection kept), and one that
 * is broken or needs a dictionary this connection did not agree on.
 */
static void handle_compressed(struct conn *c, const char *frame, size_t len)
{
    pl_buf json = PL_BUF_INIT;
    char err[256];
    int rc = pl_decompress(c->gzip ? PL_COMPRESS_GZIP : PL_COMPRESS_ZSTD,
                           c->gzip ? NULL : conn_dict(c), frame, len,
                           c->srv->opts.max_message_bytes, &json, err,
                           sizeof err);

    COUNT(c->srv, compressed_received);
    if (rc == PL_COMPRESS_ETOOBIG)
        send_error(c, NULL, "too_large", err);
    else if (rc == PL_COMPRESS_ENOMEM)
        send_error(c, NULL, "internal", err);
    else if (rc != PL_COMPRESS_OK)
        send_error(c, NULL, "invalid_request", err);
    else if (!pl_utf8_valid(json.data, json.len))
        /* A text frame's UTF-8 is checked by lws; this one's is ours. */
        send_error(c, NULL, "invalid_request",
                   "the compressed message is not valid UTF-8");
    else
        handle_text(c, json.data ? json.data : "", json.len);
    pl_buf_free(&json);
}

/* Bytes of a message c may hold: max_message_bytes of JSON, or on
 * parley.v1.zstd the most a zstd frame of that much JSON can take. */
static size_t rx_limit(const struct conn *c, int binary)
{
    size_t max = (size_t)c->srv->opts.max_message_bytes;

    if (binary && c->gzip)
        return max + max / 8 + 1024; /* deflate's worst case is far below */
    return binary && c->zstd ? ZSTD_COMPRESSBOUND(max) : max;
}

/* Does the comma-separated list of decimal ids in `list` hold `id`? */
static int list_has_id(const char *list, uint32_t id)
{
    const char *p = list;

    while (*p) {
        char *end;
        unsigned long v;

        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p < '0' || *p > '9')
            return 0; /* not a list of ids: agree on nothing */
        errno = 0;
        v = strtoul(p, &end, 10);
        if (!errno && v == id)
            return 1;
        p = end;
        if (*p && *p != ',' && *p != ' ' && *p != '\t')
            return 0;
    }
    return 0;
}

/*
 * The dictionary extension: the upgrade request's X-Parley-Zstd-Dict names
 * the dictionary (or dictionaries) the client has; when ours is among them
 * (and opts.zstd_dict allows it) hello announces its id and both sides may
 * compress with it. Returns that id, or 0.
 */
static uint32_t dict_agreed(pl_refserver *srv, struct lws *wsi)
{
    char value[PL_DICT_HEADER_MAX];
    int n = lws_hdr_custom_length(wsi, PL_DICT_HEADER,
                                  (int)strlen(PL_DICT_HEADER));
    uint32_t ours = pl_compress_dict_id();

    if (!srv->opts.zstd_dict || n <= 0 || n >= (int)sizeof value)
        return 0;
    if (lws_hdr_custom_copy(wsi, value, (int)sizeof value, PL_DICT_HEADER,
                            (int)strlen(PL_DICT_HEADER)) != n)
        return 0;
    return list_has_id(value, ours) && pl_compress_dict_builtin() ? ours : 0;
}

/* At ESTABLISHED, while the upgrade's headers are still there: which
 * subprotocol lws selected, and whether a dictionary was agreed. */
static void conn_choose_compression(struct conn *c, struct lws *wsi)
{
    const struct lws_protocols *p = lws_get_protocol(wsi);

    c->zstd = p && p->name && !strcmp(p->name, PL_PROTOCOL_ZSTD);
    c->gzip = p && p->name && !strcmp(p->name, PL_PROTOCOL_GZIP);
    c->zstd_dict = c->zstd ? dict_agreed(c->srv, wsi) : 0;
    if (c->zstd_dict)
        COUNT(c->srv, dict_agreed);
}

/* ---- receiving frames ------------------------------------------------------ */

static void rx_append(struct conn *c, const char *in, size_t len)
{
    if (c->rx_len + len + 1 > c->rx_cap) {
        size_t cap = c->rx_cap ? c->rx_cap : 1024;
        while (cap < c->rx_len + len + 1)
            cap *= 2;
        c->rx = pl_xrealloc(c->rx, cap);
        c->rx_cap = cap;
    }
    memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
}

/*
 * LWS_CALLBACK_RECEIVE: collect a message's pieces, act on the last one.
 * lws delivers a frame in pieces of at most PL_RX_BUFFER bytes, and a
 * fragmented message frame by frame; lws_is_final_fragment marks the end.
 */
static void conn_receive(struct conn *c, const char *in, size_t len)
{
    int binary = lws_frame_is_binary(c->wsi);

    if (c->dropped || c->silent)
        return; /* as if the bytes had never arrived */
    if (!c->rx_too_large && c->rx_len + len > rx_limit(c, binary)) {
        /* Over the limit: stop holding it, discard the rest as it comes. */
        c->rx_too_large = 1;
        free(c->rx);
        c->rx = NULL;
        c->rx_len = c->rx_cap = 0;
    }
    /* On parley.v1 a binary one is refused unread. */
    if (!c->rx_too_large && (!binary || compressed(c)))
        rx_append(c, in, len);
    if (!lws_is_final_fragment(c->wsi))
        return;

    COUNT(c->srv, messages_received);
    if (binary && !compressed(c))
        send_error(c, NULL, "invalid_request",
                   "binary frames are not accepted on parley.v1");
    else if (c->rx_too_large)
        send_error(c, NULL, "too_large", "message over max_message_bytes");
    else if (binary)
        handle_compressed(c, c->rx ? c->rx : "", c->rx_len);
    else
        handle_text(c, c->rx ? c->rx : "", c->rx_len);
    c->rx_len = 0;
    c->rx_too_large = 0;
}

/* ---- connections -------------------------------------------------------- */

static void conn_open(struct conn *c, struct lws *wsi, pl_refserver *srv)
{
    c->wsi = wsi;
    c->srv = srv;
    c->out_tail = &c->out_head;
    c->batch_frames = lws_get_network_wsi(wsi) == wsi;
    c->faults_gen = pl_rs_faults(srv)->gen;
    c->next_open = srv->open_conns;
    if (srv->open_conns)
        srv->open_conns->prev_open = c;
    srv->open_conns = c;
    COUNT(srv, connections_accepted);
    COUNT(srv, connections_open);
    conn_choose_compression(c, wsi);
    pl_rs_log(srv, "connection opened (%s%s)",
            c->zstd ? PL_PROTOCOL_ZSTD : c->gzip ? PL_PROTOCOL_GZIP : PL_PROTOCOL,
            c->zstd_dict ? ", dictionary" : "");
    send_hello(c);
    struct fault_state *fs = pl_rs_faults(srv);
    if (fs->muted < fs->k.f.mute_connections) {
        /* Reading nothing, lws answers no Ping either: the client must
         * find the connection dead by its own heartbeat. */
        fs->muted++;
        lws_rx_flow_control(wsi, 0);
    }
}

/* Nothing more goes out on c. Its generations go on, sent nowhere until a
 * repeat attaches them. */
static void conn_forget(struct conn *c)
{
    conn_free_queue(c);
    while (c->attached)
        req_unlink(c->attached);
}

static void conn_close(struct conn *c)
{
    pl_refserver *srv = c->srv;

    if (!c->wsi)
        return; /* never established */
    conn_forget(c);
    if (c->prev_open)
        c->prev_open->next_open = c->next_open;
    else
        srv->open_conns = c->next_open;
    if (c->next_open)
        c->next_open->prev_open = c->prev_open;
    free(c->rx);
    c->rx = NULL;
    c->wsi = NULL;
    atomic_fetch_sub_explicit(&srv->stats.connections_open, 1,
                              memory_order_relaxed);
    pl_rs_log(srv, "connection closed");
}

/*
 * End c the way a crashed server does: what was written still arrives,
 * then the TCP connection ends (FIN) with no WebSocket Close frame, so the
 * peer sees a broken connection. The unread input is discarded first, since
 * closing a socket with unread input sends a TCP reset, which would also
 * discard written data not yet transmitted. lws closes the wsi when the
 * writeable callback returns -1 (it sends no Close frame for that); until
 * then c takes no input and sends nothing.
 */
void pl_rs_ws_conn_hard_drop(struct conn *c)
{
    int fd = lws_get_socket_fd(c->wsi);
    char sink[4096];
    int rounds = 256; /* bounded: a peer may keep sending */

    if (fd >= 0) {
        shutdown(fd, SHUT_WR);
        while (rounds-- && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0)
            ;
    }
    conn_forget(c);
    c->dropped = 1;
}

/* drop_after_texts or drop_every, from the writeable callback: -1 has lws
 * close it. */
static int conn_drop(struct conn *c)
{
    pl_rs_ws_conn_hard_drop(c);
    COUNT(c->srv, dropped);
    pl_rs_log(c->srv, "connection dropped (injected fault)");
    return -1;
}

/* lws fills ":path" for HTTP/2 requests only (ALPN h2 on wss://). */
static int is_h2(struct lws *wsi)
{
    return lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COLON_PATH) > 0;
}

/* The same answer over HTTP/2, where headers travel in a HEADERS frame
 * that only lws's helpers can make. */
static void http_refuse_h2(struct lws *wsi, unsigned status, const char *body,
                           int blen)
{
    unsigned char head[LWS_PRE + 256], *start = head + LWS_PRE, *p = start;
    unsigned char out[LWS_PRE + 256];

    if (lws_add_http_common_headers(wsi, status, "application/json",
                                    (lws_filepos_t)blen, &p, head + sizeof head) ||
        lws_finalize_write_http_header(wsi, start, &p, head + sizeof head))
        return;
    memcpy(out + LWS_PRE, body, (size_t)blen);
    lws_write(wsi, out + LWS_PRE, (size_t)blen, LWS_WRITE_HTTP_FINAL);
}

/*
 * Answer an HTTP request with a status and a JSON body. Formatted here
 * rather than with lws's header helpers, which write "HTTP/1.0" for a
 * request that is still an upgrade candidate (HTTP/1.1; HTTP/2 requests
 * get the helpers' answer).
 */
static void http_refuse(pl_refserver *srv, struct lws *wsi, unsigned status,
                        const char *code, const char *content)
{
    unsigned char buf[LWS_PRE + 512];
    char body[256];
    const char *reason = status == 401 ? "Unauthorized\r\n"
                       : status == 404 ? "Not Found\r\n"
                       : status == 503 ? "Service Unavailable\r\n"
                       : "Upgrade Required\r\nUpgrade: websocket\r\n";
    int blen = snprintf(body, sizeof body,
                        "{\"type\":\"error\",\"code\":\"%s\",\"content\":\"%s\"}",
                        code, content);
    int n = snprintf((char *)buf + LWS_PRE, sizeof buf - LWS_PRE,
                     "HTTP/1.1 %u %s"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %d\r\n"
                     "Connection: close\r\n\r\n%s",
                     status, reason, blen, body);

    COUNT(srv, upgrades_refused);
    pl_rs_log(srv, "refused with HTTP %u: %s", status, content);
    if (is_h2(wsi))
        http_refuse_h2(wsi, status, body, blen);
    else
        lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_HEADERS);
}

static int path_is_stream(struct lws *wsi)
{
    char uri[64];

    return lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) > 0 &&
           !strcmp(uri, PL_PATH);
}

static int authorized(pl_refserver *srv, struct lws *wsi)
{
    char *hdr;
    int n, ok;

    if (!srv->api_key)
        return 1;
    n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n <= 0 || n > PL_MAX_AUTH_HEADER)
        return 0;
    hdr = pl_xmalloc((size_t)n + 1);
    ok = lws_hdr_copy(wsi, hdr, n + 1, WSI_TOKEN_HTTP_AUTHORIZATION) == n &&
         !strncasecmp(hdr, "Bearer ", 7) && pl_rs_key_matches(hdr + 7, srv->api_key);
    free(hdr);
    return ok;
}

/*
 * LWS_CALLBACK_HTTP_CONFIRM_UPGRADE, lws's hook for refusing an upgrade with
 * a response of our own (we return 1: "answered"). It runs before lws
 * matches Sec-WebSocket-Protocol, so a wrong key gets its 401 whatever the
 * client offers.
 */
static int confirm_upgrade(pl_refserver *srv, struct lws *wsi)
{
    if (!path_is_stream(wsi)) {
        http_refuse(srv, wsi, 404, "invalid_request",
                    "no WebSocket service at this path");
        return 1;
    }
    /* pl_refserver_refuse_for: refused before the key is even looked at,
     * as an overloaded front end would. */
    if (pl_rs_now_ms() < atomic_load(&srv->refuse_until_ms)) {
        http_refuse(srv, wsi, 503, "overloaded",
                    "not accepting connections now (injected fault)");
        return 1;
    }
    if (!authorized(srv, wsi)) {
        http_refuse(srv, wsi, 401, "unauthorized", "missing or wrong API key");
        return 1;
    }
    return 0;
}

static int path_is_last_request(struct lws *wsi)
{
    char uri[64];

    return lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) > 0 &&
           !strcmp(uri, PL_LAST_REQUEST_PATH);
}

/*
 * GET PL_LAST_REQUEST_PATH: 200 and the last request received (an empty
 * body when none came), over HTTP/1.1, written raw as http_refuse does;
 * lws flushes what the socket did not take before it closes.
 */
static void answer_last_request(pl_refserver *srv, struct lws *wsi)
{
    size_t len, n;
    char *last = pl_rs_last_body(srv, &len);
    unsigned char *buf = pl_xmalloc(LWS_PRE + 256 + len);

    n = (size_t)snprintf((char *)buf + LWS_PRE, 256,
                         "HTTP/1.1 200 OK\r\n"
                         "Content-Type: application/json\r\n"
                         "Content-Length: %zu\r\n"
                         "Connection: close\r\n\r\n", len);
    if (len)
        memcpy(buf + LWS_PRE + n, last, len);
    lws_write(wsi, buf + LWS_PRE, n + len, LWS_WRITE_HTTP_HEADERS);
    free(buf);
    free(last);
}

/* LWS_CALLBACK_HTTP: only WebSocket is served (and the last request, for
 * tests); answer, then close. */
static int answer_http(pl_refserver *srv, struct lws *wsi)
{
    if (path_is_last_request(wsi) && !is_h2(wsi))
        answer_last_request(srv, wsi);
    else if (path_is_stream(wsi))
        http_refuse(srv, wsi, 426, "invalid_request",
                    "this path serves WebSocket only");
    else
        http_refuse(srv, wsi, 404, "invalid_request", "no such path");
    return -1;
}

static pl_refserver *srv_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

int pl_rs_ws_callback(struct lws *wsi, enum lws_callback_reasons reason,
                      void *user, void *in, size_t len)
{
    struct conn *c = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
    {
        /* curl's "Upgrade: h2c" on an HTTP endpoint is the HTTP module's. */
        int n = pl_refserver_http_confirm_upgrade(wsi, (const char *)in);
        if (n >= 0)
            return n;
        return confirm_upgrade(srv_of(wsi), wsi);
    }
    case LWS_CALLBACK_HTTP:
        return answer_http(srv_of(wsi), wsi);
    case LWS_CALLBACK_ESTABLISHED:
        conn_open(c, wsi, srv_of(wsi));
        return 0;
    case LWS_CALLBACK_RECEIVE:
        conn_receive(c, in, len);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return conn_drain(c);
    case LWS_CALLBACK_CLOSED:
        conn_close(c);
        return 0;
    default:
        return 0;
    }
}
