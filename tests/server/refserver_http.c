/*
 * The vendor HTTP dialects of the reference server (refserver_http.h):
 * Anthropic Messages and OpenAI Chat Completions over lws 4.1, answered by
 * parley-echo-1. This file serves the requests: lws wiring, validation,
 * errors, faults, pacing and output. The bytes of each vendor's replies are
 * refserver_http_anthropic.c's and refserver_http_openai.c's, reached
 * through a table (refserver_http_private.h).
 *
 * One request is one lws "stream": an HTTP/1.1 transaction or an HTTP/2
 * stream, with its state in the per-session data that lws allocates when the
 * mount binds the request to this protocol and frees when it unbinds it
 * (end of an HTTP/1.1 transaction, close of an HTTP/2 stream or of the
 * connection). Everything is cleaned up in that unbind callback.
 *
 * Output discipline, as in refserver.c: producers (the body-complete
 * callback, the pacing timers) only append bytes to the stream's buffer and
 * ask for a writeable callback; lws_write happens only in
 * LWS_CALLBACK_HTTP_WRITEABLE, once per callback (lws's rule for HTTP/2),
 * and the headers go in a callback of their own.
 *
 * Framing: lws 4.1 frames nothing itself. An answer of known size gets
 * content-length. An HTTP/1.1 event stream gets "transfer-encoding:
 * chunked" and this file writes the chunk framing, ending with the zero
 * chunk, so that the connection stays reusable: lws chunks only its own
 * compressed output, and its lws_add_http_common_headers() answers an
 * unknown length with "connection: close". On HTTP/2 the data goes raw and
 * LWS_WRITE_HTTP_FINAL sets END_STREAM.
 *
 * lws 4.1.6 needs two workarounds on HTTP/2, explained where they are: the
 * request body's end (on_body, and the end of this file) and stream
 * timeouts (become_immortal).
 */
#include "refserver_http_private.h"
#include "echo_model.h"
#include "echo_conversation.h"
#include "refserver_common.h"
#include "timer_queue.h"

#include <json-c/json.h>

#include <dlfcn.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define PATH_MESSAGES "/v1/messages"
#define PATH_CHAT "/v1/chat/completions"
#define DEFAULT_MAX_BODY (1024 * 1024)
#define WRITE_MAX 8192        /* body bytes per write: < h2's 16 KiB frame */
#define HEADER_VALUE_MAX 4096 /* longer credentials are simply wrong */
#define RECEIVED_MAX 10000
#define KEEPALIVE_S 60
#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

#define container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* ---- data -------------------------------------------------------------- */

/* The server's and each request's state: refserver_http_private.h. */

#define COUNT(h, field) \
    atomic_fetch_add_explicit(&(h)->stats.field, 1, memory_order_relaxed)

/* One address whose only use is to mark connections already counted. */
static char seen_marker;

/* ---- small helpers ----------------------------------------------------- */

void pl_rs_http_buf_append(struct buf *b, const char *data, size_t len)
{
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + len)
            cap *= 2;
        b->data = pl_xrealloc(b->data, cap);
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

static void buf_free(struct buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

__attribute__((format(printf, 2, 3)))
static void http_log(const pl_refserver_http *h, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    if (h->opts.quiet)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "parley-refserver: http: %s\n", line);
}

static void raise_max(_Atomic uint64_t *max, uint64_t v)
{
    uint64_t cur = atomic_load_explicit(max, memory_order_relaxed);

    while (cur < v && !atomic_compare_exchange_weak_explicit(
                          max, &cur, v, memory_order_relaxed,
                          memory_order_relaxed))
        ;
}

/* ---- output ------------------------------------------------------------ */

/* Queue body bytes and ask for the writeable callback that sends them. */
void pl_rs_http_emit(struct stream *s, const char *data, size_t len)
{
    pl_rs_http_buf_append(&s->out, data, len);
    lws_callback_on_writable(s->wsi);
}

/* One server-sent event, "event: NAME\ndata: JSON\n\n" (Anthropic) or
 * without the event line (NULL name: OpenAI). Consumes data. */
void pl_rs_http_emit_event(struct stream *s, const char *name,
                           struct json_object *data)
{
    size_t len;
    const char *json = json_object_to_json_string_length(data, JSON_FLAGS,
                                                         &len);

    if (name) {
        pl_rs_http_buf_append(&s->out, "event: ", 7);
        pl_rs_http_buf_append(&s->out, name, strlen(name));
        pl_rs_http_buf_append(&s->out, "\n", 1);
    }
    pl_rs_http_buf_append(&s->out, "data: ", 6);
    pl_rs_http_buf_append(&s->out, json, len);
    pl_rs_http_emit(s, "\n\n", 2);
    json_object_put(data);
}

/* The whole body of a JSON answer. Consumes body. */
static void emit_json(struct stream *s, struct json_object *body)
{
    size_t len;
    const char *json = json_object_to_json_string_length(body, JSON_FLAGS,
                                                         &len);

    pl_rs_http_emit(s, json, len);
    json_object_put(body);
}

/* Everything queued from now on is the last of the answer. */
static void emit_end(struct stream *s)
{
    s->out_complete = 1;
    lws_callback_on_writable(s->wsi);
}

/* ---- JSON builders ----------------------------------------------------- */

void pl_rs_http_put_strn(struct json_object *o, const char *k, const char *v,
                         size_t len)
{
    json_object_object_add(o, k, json_object_new_string_len(v, (int)len));
}

void pl_rs_http_put_id(struct json_object *o, const char *k,
                       const char *prefix, uint64_t n)
{
    char id[48];

    snprintf(id, sizeof id, "%s%" PRIu64, prefix, n);
    pl_rs_put_str(o, k, id);
}

/* ---- errors ------------------------------------------------------------ */

/* Anthropic's error type for a status (its documented list). */
static const char *anthropic_error_type(unsigned status)
{
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503: /* not in Anthropic's list; its overload status is 529 */
    case 529: return "overloaded_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

/* OpenAI's error type for a status: its 429s say which limit ("requests"),
 * its 5xx are server_error, everything else invalid_request_error. */
static const char *openai_error_type(unsigned status)
{
    if (status == 429)
        return "requests";
    return status >= 500 ? "server_error" : "invalid_request_error";
}

static struct json_object *error_body(const struct stream *s, unsigned status,
                                      const char *message, const char *code)
{
    struct json_object *root = json_object_new_object();
    struct json_object *e = json_object_new_object();

    if (s->dialect == ANTHROPIC) {
        pl_rs_put_str(root, "type", "error");
        pl_rs_put_str(e, "type", anthropic_error_type(status));
        pl_rs_put_str(e, "message", message);
        json_object_object_add(root, "error", e);
        pl_rs_http_put_id(root, "request_id", "req_", s->n);
    } else {
        pl_rs_put_str(e, "message", message);
        pl_rs_put_str(e, "type", openai_error_type(status));
        json_object_object_add(e, "param", NULL);
        pl_rs_put_str(e, "code", code);
        json_object_object_add(root, "error", e);
    }
    return root;
}

/* Answer with an error status and the dialect's error body. code is
 * OpenAI's "code" (NULL: null); Anthropic has none. */
static void answer_error(struct stream *s, unsigned status,
                         const char *message, const char *code)
{
    COUNT(s->srv, errors_sent);
    http_log(s->srv, "request %" PRIu64 ": %u %s", s->n, status, message);
    s->status = status;
    s->content_type = "application/json";
    s->answer_ready = 1;
    emit_json(s, error_body(s, status, message, code));
    emit_end(s);
}

/* ---- request validation ------------------------------------------------ */

/* What a valid request asks for. */
struct turn {
    pl_echo_conversation cv; /* the conversation and the model's fields */
    uint64_t max_tokens;
    int stream, include_usage;
};

/* A member, JSON null counting as absent. */
static struct json_object *member(struct json_object *o, const char *k)
{
    struct json_object *v = NULL;

    json_object_object_get_ex(o, k, &v);
    return v;
}

static int is_type(struct json_object *o, json_type t)
{
    return o && json_object_is_type(o, t);
}

/* Optional integer >= 1 into *out. */
static const char *count_member(struct json_object *root, const char *k,
                                uint64_t *out, const char *err)
{
    struct json_object *v = member(root, k);

    if (!v)
        return NULL;
    if (!is_type(v, json_type_int) || json_object_get_int64(v) < 1)
        return err;
    *out = json_object_get_uint64(v);
    return NULL;
}

static const char *bool_member(struct json_object *root, const char *k,
                               int *out, const char *err)
{
    struct json_object *v = member(root, k);

    if (!v)
        return NULL;
    if (!is_type(v, json_type_boolean))
        return err;
    *out = json_object_get_boolean(v);
    return NULL;
}

static const char *check_anthropic(struct json_object *root, struct turn *t)
{
    const char *err;

    if (!member(root, "max_tokens"))
        return "max_tokens: Field required";
    if ((err = count_member(root, "max_tokens", &t->max_tokens,
                            "max_tokens: must be an integer >= 1")) ||
        (err = bool_member(root, "stream", &t->stream,
                           "stream: must be a boolean")))
        return err;
    return pl_echo_read_anthropic(&t->cv, root);
}

static const char *check_openai(struct json_object *root, struct turn *t)
{
    struct json_object *opts = member(root, "stream_options");
    const char *err;

    /* The newer name wins when both are given. */
    if ((err = count_member(root, "max_tokens", &t->max_tokens,
                            "max_tokens must be an integer >= 1")) ||
        (err = count_member(root, "max_completion_tokens", &t->max_tokens,
                            "max_completion_tokens must be an integer >= 1")) ||
        (err = bool_member(root, "stream", &t->stream,
                           "stream must be a boolean")))
        return err;
    if (opts && !t->stream)
        return "The 'stream_options' parameter is only allowed when 'stream' "
               "is enabled.";
    if (opts && (!is_type(opts, json_type_object) ||
                 bool_member(opts, "include_usage", &t->include_usage, "x")))
        return "stream_options must be {\"include_usage\": boolean}";
    return pl_echo_read_openai(&t->cv, root);
}

/* Strict JSON, valid UTF-8, one object and nothing but space after it. */
static struct json_object *parse_body(const char *text, size_t len)
{
    struct json_tokener *tok = json_tokener_new();
    struct json_object *o;
    size_t end;

    if (!tok || len > INT_MAX) {
        json_tokener_free(tok);
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
                                JSON_TOKENER_VALIDATE_UTF8);
    o = json_tokener_parse_ex(tok, text, (int)len);
    end = json_tokener_get_parse_end(tok);
    while (o && end < len && memchr(" \t\r\n", text[end], 4))
        end++;
    if (o && (end != len || !json_object_is_type(o, json_type_object))) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

/* ---- faults ------------------------------------------------------------ */

/* The status a rejection sends in this dialect. */
static unsigned reject_status(enum dialect d, const pl_refserver_http_faults *f)
{
    if (f->reject_status)
        return f->reject_status;
    switch (f->reject_kind) {
    case PL_RSHTTP_REJECT_OVERLOADED: return d == ANTHROPIC ? 529 : 503;
    case PL_RSHTTP_REJECT_INTERNAL: return 500;
    default: return 429;
    }
}

static const char *reject_message(unsigned status)
{
    switch (status) {
    case 429: return "Rate limit reached (parley-refserver fault injection)";
    case 503:
    case 529: return "Overloaded (parley-refserver fault injection)";
    default: return "Internal server error (parley-refserver fault injection)";
    }
}

/*
 * Decide, under the lock, what the knobs do to this valid request: returns
 * 1 when it is to be rejected (retry headers copied into s); otherwise sets
 * s->fault for a served one.
 */
static int apply_faults(struct stream *s, unsigned *status)
{
    pl_refserver_http *h = s->srv;
    const pl_refserver_http_faults *f = &h->faults;
    uint64_t k;
    int rejected = 0;

    pthread_mutex_lock(&h->lock);
    s->unknown_every = f->unknown_every;
    s->write_bytes = f->write_bytes;
    if (f->reject_every && ++h->valid_seen % f->reject_every == 0) {
        rejected = 1;
        *status = reject_status(s->dialect, f);
        s->retry_after_s = f->retry_after_s;
        s->retry_after_ms = f->retry_after_ms;
        s->should_retry = f->should_retry;
    } else {
        k = ++h->served_seen;
        /* Drop wins over stall, stall over error, when several hit. */
        if (f->drop_every && k % f->drop_every == 0) {
            s->fault = FAULT_DROP;
            s->fault_at = f->drop_after_pieces;
            s->drop_by_ending = f->drop_by_ending;
        } else if (f->stall_every && k % f->stall_every == 0) {
            s->fault = FAULT_STALL;
            s->fault_at = f->stall_after_pieces;
        } else if (f->error_every && k % f->error_every == 0) {
            s->fault = FAULT_ERROR;
            s->fault_at = f->error_after_pieces;
        }
    }
    pthread_mutex_unlock(&h->lock);
    return rejected;
}

/* ---- generation -------------------------------------------------------- */

/* The vendor that answers s: its bytes are refserver_http_anthropic.c's or
 * refserver_http_openai.c's. */
static const struct pl_rs_http_vendor *vendor_of(const struct stream *s)
{
    return s->dialect == ANTHROPIC ? &pl_rs_http_anthropic : &pl_rs_http_openai;
}

/* unknown_every: what a newer server might send that a client must pass
 * over, in the vendor's way. */
static void emit_unknown(struct stream *s)
{
    COUNT(s->srv, unknown_sent);
    vendor_of(s)->unknown(s);
}

/* Stream unit k, as the dialect streams it. */
static void emit_piece(struct stream *s, size_t k)
{
    size_t piece;
    const pl_echo_block *b = pl_echo_turn_unit(&s->reply, k, &piece);

    if (s->unknown_every && (k + 1) % s->unknown_every == 0)
        emit_unknown(s);
    vendor_of(s)->unit(s, k, b, piece);
}

/* The reply is complete: close the event stream, or send the JSON. */
static void finish_reply(struct stream *s)
{
    if (s->streaming) {
        vendor_of(s)->stream_end(s);
        COUNT(s->srv, streams_completed);
    } else {
        COUNT(s->srv, answered_ok);
        s->status = 200;
        s->content_type = "application/json";
        s->answer_ready = 1;
        emit_json(s, vendor_of(s)->message(s));
    }
    emit_end(s);
}

/* The vendors' overload error, in the stream or instead of the JSON. */
static void fail_reply(struct stream *s)
{
    COUNT(s->srv, stream_errors);
    if (!s->streaming) {
        answer_error(s, s->dialect == ANTHROPIC ? 529 : 503,
                     reject_message(529), NULL);
        return;
    }
    /* Anthropic names the event "error"; OpenAI sends a bare data line. */
    pl_rs_http_emit_event(s, s->dialect == ANTHROPIC ? "error" : NULL,
               error_body(s, 529, "Overloaded", NULL));
    emit_end(s);
}

/* The drop_by_ending fault: the answer ends cleanly here, an event stream
 * without its closing events, a JSON answer as a 200 with an empty body. */
static void end_early(struct stream *s)
{
    if (!s->streaming) {
        s->status = 200;
        s->content_type = "application/json";
        s->answer_ready = 1;
    }
    emit_end(s);
}

/* The fault due before piece s->generated, if any. Returns 1 when the
 * generation must stop here. */
static int fault_due(struct stream *s)
{
    if (s->fault == FAULT_NONE || s->generated != s->fault_at)
        return 0;
    switch (s->fault) {
    case FAULT_DROP:
        COUNT(s->srv, dropped);
        if (s->drop_by_ending)
            end_early(s);
        else
            s->kill = 1;
        lws_callback_on_writable(s->wsi);
        break;
    case FAULT_STALL:
        COUNT(s->srv, stalled); /* nothing more, ever */
        break;
    default:
        fail_reply(s);
        break;
    }
    return 1;
}

static void gen_step(struct stream *s);

static void gen_timer(pl_rs_timer *t)
{
    gen_step(container_of(t, struct stream, step));
}

static void gen_schedule(struct stream *s, unsigned ms)
{
    pl_rs_timer_set(&s->srv->steps, &s->step, gen_timer, ms);
}

/* Produce the next piece (every remaining one when token_ms is 0), as
 * refserver.c paces its WebSocket replies. */
static void gen_step(struct stream *s)
{
    unsigned token_ms = s->srv->opts.token_ms;

    /* A reply cut at 0 by a stop sequence has no unit at all. */
    while (s->generated < s->reply.nunits) {
        if (fault_due(s))
            return;
        if (s->streaming)
            emit_piece(s, s->generated);
        s->generated++;
        if (token_ms)
            break;
    }

    if (s->generated < s->reply.nunits)
        gen_schedule(s, token_ms);
    else if (!fault_due(s)) /* a fault after the last piece still acts */
        finish_reply(s);
}

/* ---- serving a request ------------------------------------------------- */

/* 200 and the opening events of a stream; then the pieces, paced. */
static void start_reply(struct stream *s, struct turn *t)
{
    t->cv.req.max_tokens = t->max_tokens;
    t->cv.req.chunk_bytes = s->srv->opts.chunk_bytes;
    if (pl_echo_turn_build(&s->reply, &t->cv.req))
        pl_rs_check_alloc(NULL); /* out of memory: abort, as everywhere here */
    s->streaming = t->stream;
    s->include_usage = t->include_usage;
    if (s->streaming) {
        COUNT(s->srv, answered_ok);
        COUNT(s->srv, streams_started);
        s->status = 200;
        s->content_type = "text/event-stream; charset=utf-8";
        s->chunked = !s->h2;
        s->answer_ready = 1;
        if (vendor_of(s)->stream_start)
            vendor_of(s)->stream_start(s);
        lws_callback_on_writable(s->wsi); /* the headers go out now */
    }
    if (s->srv->opts.latency_ms)
        gen_schedule(s, s->srv->opts.latency_ms);
    else
        gen_step(s);
}

/* Authentication, in the dialect's own way. Returns 0 when it passed. */
static int check_auth(struct stream *s)
{
    const char *key = s->srv->api_key;

    if (s->dialect == ANTHROPIC && s->headers_unreadable && !s->key) {
        COUNT(s->srv, h2_unverified);
        return 0;
    }
    if (key && !pl_rs_key_matches(s->key, key)) {
        if (s->dialect == ANTHROPIC)
            answer_error(s, 401, s->key ? "invalid x-api-key"
                                        : "x-api-key header is required",
                         NULL);
        else
            answer_error(s, 401, s->key ? "Incorrect API key provided."
                                        : "You didn't provide an API key.",
                         s->key ? "invalid_api_key" : NULL);
        return -1;
    }
    if (s->dialect == ANTHROPIC && !s->has_version && !s->headers_unreadable) {
        answer_error(s, 400, "anthropic-version: header is required", NULL);
        return -1;
    }
    return 0;
}

/* NULL with t filled, or why the body is invalid (with the status and the
 * OpenAI code to answer). */
static const char *check_body(struct stream *s, struct json_object *root,
                              struct turn *t, unsigned *status,
                              const char **code)
{
    struct json_object *model = member(root, "model");

    *status = 400;
    *code = NULL;
    if (!is_type(model, json_type_string))
        return s->dialect == ANTHROPIC ? "model: Field required"
                                       : "you must provide a model parameter";
    if (strcmp(json_object_get_string(model), s->srv->opts.model)) {
        *status = 404;
        *code = "model_not_found";
        if (s->dialect != ANTHROPIC)
            return "The model does not exist or you do not have access to it.";
        snprintf(s->srv->unknown_model_msg, sizeof(s->srv->unknown_model_msg),
                 "model: unknown model (this server serves %s)", s->srv->opts.model);
        return s->srv->unknown_model_msg;
    }
    return s->dialect == ANTHROPIC ? check_anthropic(root, t)
                                   : check_openai(root, t);
}

static void serve(struct stream *s)
{
    struct json_object *root;
    struct turn t = { .max_tokens = PL_ECHO_NO_LIMIT }; /* t.cv zeroed */
    const char *err, *code;
    unsigned status;

    if (check_auth(s))
        return;
    root = parse_body(s->body.data ? s->body.data : "", s->body.len);
    if (!root) {
        answer_error(s, 400, "the body must be one JSON object (strict JSON, "
                             "UTF-8)", NULL);
        return;
    }
    err = check_body(s, root, &t, &status, &code);
    if (err)
        answer_error(s, status, err, code);
    else if (apply_faults(s, &status)) {
        COUNT(s->srv, rejected);
        answer_error(s, status, reject_message(status),
                     status == 429 ? "rate_limit_exceeded" : NULL);
    } else
        start_reply(s, &t);
    /* The conversation points into root until the reply is built. */
    pl_echo_conversation_free(&t.cv);
    json_object_put(root);
}

/* ---- lws callbacks ----------------------------------------------------- */

/* A copy of header `name` (custom when token < 0), or NULL when absent. */
static char *copy_header(struct lws *wsi, int token, const char *name)
{
    int n = token >= 0 ? lws_hdr_total_length(wsi, token)
                       : lws_hdr_custom_length(wsi, name, (int)strlen(name));
    char *v;

    if (n < 0 || (n == 0 && token >= 0))
        return NULL;
    if (n > HEADER_VALUE_MAX)
        return pl_rs_strndup("", 0); /* present, and certainly wrong */
    v = pl_xmalloc((size_t)n + 1);
    if ((token >= 0 ? lws_hdr_copy(wsi, v, n + 1, token)
                    : lws_hdr_custom_copy(wsi, v, n + 1, name,
                                          (int)strlen(name))) != n) {
        free(v);
        return pl_rs_strndup("", 0);
    }
    return v;
}

/* The credentials, copied while lws still holds the headers. */
static void copy_credentials(struct stream *s)
{
    char *auth, *version;

    if (s->dialect == OPENAI) {
        auth = copy_header(s->wsi, WSI_TOKEN_HTTP_AUTHORIZATION, NULL);
        if (auth && !strncasecmp(auth, "Bearer ", 7))
            s->key = pl_rs_strndup(auth + 7, strlen(auth + 7));
        else if (auth)
            s->key = pl_rs_strndup("", 0); /* another scheme: a wrong key */
        free(auth);
        return;
    }
    s->key = copy_header(s->wsi, -1, "x-api-key:");
    /* The official SDKs send the API key as a bearer token. */
    if (!s->key) {
        auth = copy_header(s->wsi, WSI_TOKEN_HTTP_AUTHORIZATION, NULL);
        if (auth && !strncasecmp(auth, "Bearer ", 7))
            s->key = pl_rs_strndup(auth + 7, strlen(auth + 7));
        free(auth);
    }
    /* lws 4.1 keeps no unknown header of an HTTP/2 request: neither
     * x-api-key nor anthropic-version (Authorization is a known one). */
    s->headers_unreadable = s->h2;
    version = copy_header(s->wsi, -1, "anthropic-version:");
    s->has_version = version && version[0];
    free(version);
    char *beta = copy_header(s->wsi, -1, "anthropic-beta:");
    pthread_mutex_lock(&s->srv->lock);
    snprintf(s->srv->last_beta, sizeof s->srv->last_beta, "%s", beta ? beta : "");
    pthread_mutex_unlock(&s->srv->lock);
    free(beta);
}

static pl_refserver_http *server_of(struct lws *wsi)
{
    void **priv = lws_protocol_vh_priv_get(lws_get_vhost(wsi),
                                           lws_get_protocol(wsi));
    return priv ? *priv : NULL;
}

static void on_body_complete(struct stream *s);

/* Count each TCP connection once, by marking its network wsi. */
static void note_connection(struct stream *s)
{
    struct lws *nwsi = lws_get_network_wsi(s->wsi);

    if (lws_get_opaque_user_data(nwsi) == &seen_marker)
        return;
    lws_set_opaque_user_data(nwsi, &seen_marker);
    COUNT(s->srv, connections);
    if (s->h2)
        COUNT(s->srv, connections_h2);
}

/*
 * LWS_CALLBACK_HTTP_BIND_PROTOCOL. On HTTP/2 lws 4.1 binds a stream twice
 * (at its HEADERS frame, then again in lws_http_action, unbinding in
 * between), so per-request work waits for LWS_CALLBACK_HTTP.
 */
static int stream_bind(struct stream *s, struct lws *wsi)
{
    s->wsi = wsi;
    s->srv = server_of(wsi);
    if (!s->srv)
        return -1; /* no pvo: refuse rather than crash (see the header) */
    s->active = 1;
    s->next = s->srv->streams;
    s->prev = NULL;
    if (s->next)
        s->next->prev = s;
    s->srv->streams = s;
    s->h2 = lws_get_network_wsi(wsi) != wsi;
    s->retry_after_s = s->retry_after_ms = s->should_retry = -1;
    return 0;
}

/* A request begins: number it, count it in flight and its connection. */
static void stream_begin(struct stream *s)
{
    uint64_t now = atomic_fetch_add(&s->srv->stats.in_flight, 1) + 1;

    raise_max(&s->srv->stats.max_in_flight, now);
    s->in_flight = 1;
    s->n = atomic_fetch_add(&s->srv->next_request, 1) + 1;
    s->created = (int64_t)time(NULL);
    note_connection(s);
}

/* Unbind or close: everything the stream owns goes; idempotent. */
static void stream_end(struct stream *s)
{
    if (!s || !s->active)
        return;
    s->active = 0;
    if (s->prev)
        s->prev->next = s->next;
    else
        s->srv->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    pl_rs_timer_cancel(&s->srv->steps, &s->step);
    free(s->key);
    buf_free(&s->body);
    buf_free(&s->out);
    pl_echo_turn_free(&s->reply);
    if (s->in_flight)
        atomic_fetch_sub(&s->srv->stats.in_flight, 1);
}

/* The request's content-length into *out; 0 when it has none (or one
 * that is not a number). Read with lws_hdr_copy_fragment: on HTTP/2,
 * lws_hdr_total_length answers 0 for it (see the workaround at the end of
 * this file). */
static int content_length(struct lws *wsi, uint64_t *out)
{
    char v[32], *end;

    if (lws_hdr_copy_fragment(wsi, v, sizeof v, WSI_TOKEN_HTTP_CONTENT_LENGTH,
                              0) <= 0 || v[0] < '0' || v[0] > '9')
        return 0;
    *out = strtoull(v, &end, 10);
    return !*end;
}

/* A path that the mounts hand us but no endpoint serves (a sub-path). */
static void path_not_found(struct stream *s, const char *uri, int len)
{
    snprintf(s->early_buf, sizeof s->early_buf, "Invalid URL (POST %.*s)",
             len > 100 ? 100 : len, uri);
    s->early_status = 404;
    s->early_message = s->dialect == ANTHROPIC ? "Not Found" : s->early_buf;
}

/* LWS_CALLBACK_HTTP: the headers are in; the body, if any, comes next. */
static int on_request(struct stream *s)
{
    char *uri = NULL;
    int len = 0, method = lws_http_get_uri_and_method(s->wsi, &uri, &len);
    const char *path;

    stream_begin(s);
    s->dialect = uri && !strncmp(uri, PATH_CHAT, strlen(PATH_CHAT)) ? OPENAI
                                                                    : ANTHROPIC;
    path = s->dialect == OPENAI ? PATH_CHAT : PATH_MESSAGES;
    if (s->dialect == OPENAI)
        COUNT(s->srv, requests_chat);
    else
        COUNT(s->srv, requests_messages);
    copy_credentials(s);
    if (!uri || len != (int)strlen(path) || strncmp(uri, path, (size_t)len))
        path_not_found(s, uri ? uri : "", uri ? len : 0);
    if (method != LWSHUMETH_POST) {
        s->early_status = 405;
        s->early_message = "Method Not Allowed: use POST";
    } else if (!content_length(s->wsi, &s->content_length)) {
        /* lws 4.1 reads a request body only by its content-length. */
        s->early_status = 411;
        s->early_message = "Length Required: send content-length";
        s->close_after = 1; /* whatever body follows is not ours to parse */
    } else {
        /* lws sees no body length on HTTP/2 (the workaround): an empty
         * body gets no callback at all, so it is complete now. */
        if (s->h2 && !s->content_length)
            on_body_complete(s);
        return 0; /* wait for the body */
    }
    answer_error(s, s->early_status, s->early_message, NULL);
    return 0;
}

static void on_body(struct stream *s, const char *in, size_t len)
{
    if (s->body_done)
        return; /* more than content-length on HTTP/2: not ours to read */
    s->body_seen += len;
    if (!s->body_too_large &&
        s->body.len + len > s->srv->opts.max_body_bytes) {
        s->body_too_large = 1; /* keep reading, holding nothing */
        buf_free(&s->body);
    }
    if (!s->body_too_large)
        pl_rs_http_buf_append(&s->body, in, len);
    if (!s->h2)
        return;
    /* lws 4.1 opens an HTTP/2 stream's receive window by 256 KiB once and
     * refills it only for data that arrives after lws_http_action: a body
     * sent at once (as clients do) stalls at 256 KiB. Give back what was
     * read, as long as more is due. */
    if (s->body_seen < s->content_length)
        lws_h2_update_peer_txcredit(s->wsi, LWS_H2_STREAM_SID, (int)len);
    /* lws no longer knows the length (the workaround at the end of this
     * file) and never completes the body: we do, by the header. */
    else
        on_body_complete(s);
}

/* The body is complete (LWS_CALLBACK_HTTP_BODY_COMPLETION on HTTP/1.1, our
 * own count on HTTP/2): answer the request. */
static void on_body_complete(struct stream *s)
{
    if (s->body_done)
        return;
    s->body_done = 1;
    if (s->h2)
        lws_callback_on_writable(s->wsi); /* to become immortal there */
    pl_rs_received_add(&s->srv->received, s->body.data ? s->body.data : "", s->body.len);
    if (s->early_status)
        answer_error(s, s->early_status, s->early_message, NULL);
    else if (s->body_too_large)
        answer_error(s, 413, "Request exceeds the maximum allowed size",
                     "request_too_large");
    else
        serve(s);
}

/* The status line and headers, alone in one writeable callback. */
static int write_headers(struct stream *s)
{
    unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start;
    unsigned char *end = buf + sizeof buf - 1;
    char v[48];
    struct lws *wsi = s->wsi;
    int bad = 0;

#define ADD(name, value) \
    (bad |= lws_add_http_header_by_name(wsi, (const unsigned char *)(name), \
                                        (const unsigned char *)(value), \
                                        (int)strlen(value), &p, end))

    bad |= lws_add_http_header_status(wsi, s->status, &p, end);
    ADD("content-type:", s->content_type);
    if (s->streaming && s->status == 200) {
        ADD("cache-control:", "no-cache");
        if (s->chunked)
            ADD("transfer-encoding:", "chunked");
    } else {
        /* Everything is queued already: its length is known. */
        bad |= lws_add_http_header_content_length(wsi, s->out.len, &p, end);
    }
    snprintf(v, sizeof v, "req_%" PRIu64, s->n);
    ADD(s->dialect == ANTHROPIC ? "request-id:" : "x-request-id:", v);
    if (s->retry_after_s >= 0) {
        snprintf(v, sizeof v, "%d", s->retry_after_s);
        ADD("retry-after:", v);
    }
    if (s->retry_after_ms >= 0) {
        snprintf(v, sizeof v, "%d", s->retry_after_ms);
        ADD("retry-after-ms:", v);
    }
    if (s->should_retry >= 0)
        ADD("x-should-retry:", s->should_retry ? "true" : "false");
    if (s->close_after && !s->h2)
        ADD("connection:", "close");
#undef ADD
    if (bad || lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    s->headers_sent = 1;
    lws_callback_on_writable(wsi);
    return 0;
}

/*
 * The answer is sent: end the transaction. HTTP/1.1 keeps the connection
 * for the next request unless close_after. On HTTP/2 the stream ends,
 * which is all lws_http_transaction_completed() would decide there, except
 * that after the body workaround (end of this file) it takes the body as
 * unfinished, parks the stream in LRS_DISCARD_BODY and returns 0: the
 * stream would linger and count against the connection's stream limit.
 */
static int finish_transaction(struct stream *s)
{
    if (s->h2 || s->close_after)
        return -1;
    /* This rebinds the connection to protocols[0], which unbinds (and
     * frees) s: nothing may touch s after it. */
    return lws_http_transaction_completed(s->wsi) ? -1 : 0;
}

/*
 * Cut a dropped request off by closing its TCP connection. On HTTP/2 that
 * is the only visible way: lws 4.1 sends no RST_STREAM for a stream that
 * its user closes (the stream would just go silent). The close is
 * asynchronous, as lws is iterating the connection's streams, and this
 * stream stays open until it happens: closing it now would let lws re-arm
 * the connection's idle timeout over the kill (lws_http_close_immortal).
 */
static int kill_now(struct stream *s)
{
    if (!s->h2)
        return -1; /* closes the HTTP/1.1 connection */
    if (!s->killed) {
        s->killed = 1;
        lws_set_timeout(lws_get_network_wsi(s->wsi), PENDING_TIMEOUT_USER_OK,
                        LWS_TO_KILL_ASYNC);
    }
    return 0;
}

/* Up to WRITE_MAX body bytes, chunk-framed on an HTTP/1.1 stream. */
static int write_body(struct stream *s)
{
    unsigned char buf[LWS_PRE + 16 + WRITE_MAX + 8], *p = buf + LWS_PRE;
    size_t pending = s->out.len - s->out_off, n = pending;
    lws_fileofs_t credit = lws_get_peer_write_allowance(s->wsi);
    int last;

    if (n > WRITE_MAX)
        n = WRITE_MAX;
    if (s->write_bytes && n > s->write_bytes)
        n = s->write_bytes;
    if (credit >= 0 && (lws_fileofs_t)n > credit)
        n = (size_t)credit; /* HTTP/2 flow control; lws calls back later */
    last = s->out_complete && n == pending && !s->kill;
    if (!n && !last)
        return 0; /* nothing queued yet, or no HTTP/2 credit */
    if (n && s->chunked)
        p += sprintf((char *)p, "%zx\r\n", n);
    if (n)
        memcpy(p, s->out.data + s->out_off, n);
    p += n;
    if (n && s->chunked)
        p += sprintf((char *)p, "\r\n");
    if (s->chunked && last)
        p += sprintf((char *)p, "0\r\n\r\n");
    /* HTTP/2 may need an empty DATA frame to carry END_STREAM. */
    if ((p > buf + LWS_PRE || (last && s->h2)) &&
        lws_write(s->wsi, buf + LWS_PRE, (size_t)(p - buf - LWS_PRE),
                  last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < 0)
        return -1;
    s->out_off += n;
    if (last)
        return finish_transaction(s);
    if (s->out_off < s->out.len || s->kill)
        lws_callback_on_writable(s->wsi);
    return 0;
}

/*
 * HTTP/2: no lws timeout may end a slow or stalled reply, nor close the
 * connection under it. lws_http_mark_sse does that (and drops the request
 * headers, copied already). Not from the body callback: lws re-arms its
 * body timeout right after it, and logs an error for an immortal stream.
 */
static void become_immortal(struct stream *s)
{
    if (!s->h2 || s->immortal || !s->body_done)
        return;
    s->immortal = 1;
    lws_http_mark_sse(s->wsi);
}

/* LWS_CALLBACK_HTTP_WRITEABLE: one write per callback. */
static int on_writeable(struct stream *s)
{
    if (s->killed)
        return 0; /* the connection is closing */
    become_immortal(s);
    if (!s->answer_ready) {
        if (s->kill) /* a non-streaming reply dropped before its answer */
            return kill_now(s);
        return 0;
    }
    if (!s->headers_sent)
        return write_headers(s);
    if (s->kill && s->out_off == s->out.len)
        return kill_now(s); /* the pieces before the drop went out */
    return write_body(s);
}

/* LWS_CALLBACK_PROTOCOL_INIT: find our object in the vhost's options, and
 * tie its timers to the vhost's context. */
static int protocol_init(struct lws *wsi,
                         const struct lws_protocol_vhost_options *pvo)
{
    const struct lws_protocol_vhost_options *o = lws_pvo_search(pvo, "server");
    pl_refserver_http *h;
    void **priv;

    if (!o || !o->value) {
        lwsl_err("%s: no \"server\" option: use pl_refserver_http_vhost_info\n",
                 PL_REFSERVER_HTTP_PROTOCOL_NAME);
        return 1;
    }
    priv = lws_protocol_vh_priv_zalloc(lws_get_vhost(wsi),
                                       lws_get_protocol(wsi), sizeof *priv);
    if (!priv)
        return 1;
    h = (pl_refserver_http *)(uintptr_t)o->value;
    *priv = h;
    pl_rs_timer_queue_init(&h->steps, lws_get_context(wsi));
    return 0;
}

/* LWS_CALLBACK_PROTOCOL_DESTROY, as the context goes: its scheduler must
 * not keep our timer. The streams still open end without their timers. */
static void protocol_destroy(struct lws *wsi)
{
    pl_refserver_http *h = server_of(wsi);

    if (h)
        pl_rs_timer_queue_clear(&h->steps);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len)
{
    struct stream *s = user;

    if (reason == LWS_CALLBACK_PROTOCOL_INIT)
        return protocol_init(wsi, in);
    if (reason == LWS_CALLBACK_PROTOCOL_DESTROY) {
        protocol_destroy(wsi);
        return 0;
    }
    if (reason == LWS_CALLBACK_HTTP_BIND_PROTOCOL)
        return s ? stream_bind(s, wsi) : -1;
    if (reason == LWS_CALLBACK_HTTP_DROP_PROTOCOL ||
        reason == LWS_CALLBACK_CLOSED_HTTP) {
        stream_end(s);
        return 0;
    }
    if (!s || !s->active)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return on_request(s);
    case LWS_CALLBACK_HTTP_BODY:
        on_body(s, in, len);
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        on_body_complete(s);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return on_writeable(s);
    default:
        return 0;
    }
}

const struct lws_protocols pl_refserver_http_protocol = {
    .name = PL_REFSERVER_HTTP_PROTOCOL_NAME,
    .callback = callback,
    .per_session_data_size = sizeof(struct stream),
    .rx_buffer_size = 0,
};

/* ---- wiring ------------------------------------------------------------ */

static const struct lws_http_mount mount_chat = {
    .mountpoint = PATH_CHAT,
    .mountpoint_len = sizeof PATH_CHAT - 1,
    .origin = PL_REFSERVER_HTTP_PROTOCOL_NAME,
    .origin_protocol = LWSMPRO_CALLBACK,
};

static const struct lws_http_mount mount_messages = {
    .mount_next = &mount_chat,
    .mountpoint = PATH_MESSAGES,
    .mountpoint_len = sizeof PATH_MESSAGES - 1,
    .origin = PL_REFSERVER_HTTP_PROTOCOL_NAME,
    .origin_protocol = LWSMPRO_CALLBACK,
};

const struct lws_http_mount *pl_refserver_http_mounts(void)
{
    return &mount_messages;
}

const struct lws_protocol_vhost_options *
pl_refserver_http_pvo(pl_refserver_http *h,
                      const struct lws_protocol_vhost_options *next)
{
    h->pvo.next = next;
    return &h->pvo;
}

void pl_refserver_http_vhost_info(pl_refserver_http *h,
                                  struct lws_context_creation_info *info)
{
    info->mounts = pl_refserver_http_mounts();
    info->pvo = pl_refserver_http_pvo(h, info->pvo);
    if (!info->http2_settings[0]) {
        /* lws's stock values, but for the stream limit. It stays under 255
         * because each of our streams is "immortal" (lws_http_mark_sse) and
         * lws counts those per connection in a byte, asserting < 255. */
        info->http2_settings[0] = 1;
        info->http2_settings[H2SET_HEADER_TABLE_SIZE] = 65536;
        info->http2_settings[H2SET_ENABLE_PUSH] = 0;
        info->http2_settings[H2SET_MAX_CONCURRENT_STREAMS] =
            PL_REFSERVER_HTTP_MAX_H2_STREAMS;
        info->http2_settings[H2SET_INITIAL_WINDOW_SIZE] = 0;
        info->http2_settings[H2SET_MAX_FRAME_SIZE] = 16384;
        info->http2_settings[H2SET_MAX_HEADER_LIST_SIZE] = 4096;
    }
    if (!info->keepalive_timeout)
        info->keepalive_timeout = KEEPALIVE_S;
}

/*
 * An "Upgrade: h2c" request on our paths: lws 4.1 would answer 101 and then
 * lose the request (curl reports "Error in the HTTP2 framing layer"), and
 * it cannot decline the upgrade and serve HTTP/1.1 instead. So it is
 * answered here, before lws reads the body: 400 (a client error, so that
 * clients do not retry it), then close, since the unread body follows.
 * Written raw, as refserver.c does: for a request that is still an upgrade
 * candidate lws's header helpers write "HTTP/1.0".
 */
int pl_refserver_http_confirm_upgrade(struct lws *wsi, const char *upgrade)
{
    static const char msg[] = "h2c (the HTTP/2 upgrade of plain HTTP) is not "
                              "supported: use HTTP/1.1, or HTTP/2 over TLS";
    void **priv = lws_protocol_vh_priv_get(lws_get_vhost(wsi),
                                           &pl_refserver_http_protocol);
    struct stream s = { .srv = priv ? *priv : NULL };
    unsigned char buf[LWS_PRE + 1024];
    struct json_object *body;
    char *uri;
    int len, n;

    if (!s.srv || !upgrade || strcasecmp(upgrade, "h2c") ||
        lws_http_get_uri_and_method(wsi, &uri, &len) < 0)
        return -1;
    if (!strncmp(uri, PATH_CHAT, strlen(PATH_CHAT)))
        s.dialect = OPENAI;
    else if (strncmp(uri, PATH_MESSAGES, strlen(PATH_MESSAGES)))
        return -1;
    COUNT(s.srv, errors_sent);
    if (s.dialect == OPENAI)
        COUNT(s.srv, requests_chat);
    else
        COUNT(s.srv, requests_messages);
    s.n = atomic_fetch_add(&s.srv->next_request, 1) + 1;
    body = error_body(&s, 400, msg, NULL);
    n = snprintf((char *)buf + LWS_PRE, sizeof buf - LWS_PRE,
                 "HTTP/1.1 400 Bad Request\r\n"
                 "content-type: application/json\r\n"
                 "%s: req_%" PRIu64 "\r\n"
                 "content-length: %zu\r\n"
                 "connection: close\r\n\r\n%s",
                 s.dialect == ANTHROPIC ? "request-id" : "x-request-id", s.n,
                 strlen(json_object_to_json_string_ext(body, JSON_FLAGS)),
                 json_object_to_json_string_ext(body, JSON_FLAGS));
    json_object_put(body);
    if (n < 0 || (size_t)n >= sizeof buf - LWS_PRE)
        return -1;
    lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_HEADERS);
    return 1;
}

/* ---- public API -------------------------------------------------------- */

void pl_refserver_http_opts_init(pl_refserver_http_opts *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->chunk_bytes = PL_ECHO_DEFAULT_CHUNK_BYTES;
    opts->max_body_bytes = DEFAULT_MAX_BODY;
}

void pl_refserver_http_faults_init(pl_refserver_http_faults *f)
{
    memset(f, 0, sizeof *f);
    f->retry_after_s = -1;
    f->retry_after_ms = -1;
    f->should_retry = -1;
}

pl_refserver_http *pl_refserver_http_new(const pl_refserver_http_opts *opts)
{
    pl_refserver_http *h = calloc(1, sizeof *h);

    if (!h)
        return NULL;
    h->opts = *opts;
    if (opts->api_key) {
        h->api_key = strdup(opts->api_key);
        if (!h->api_key) {
            free(h);
            return NULL;
        }
    }
    h->opts.api_key = h->api_key;
    snprintf(h->model, sizeof(h->model), "%s", opts->model ? opts->model : PL_ECHO_MODEL);
    h->opts.model = h->model;
    if (!h->opts.chunk_bytes)
        h->opts.chunk_bytes = PL_ECHO_DEFAULT_CHUNK_BYTES;
    if (!h->opts.max_body_bytes || h->opts.max_body_bytes > INT_MAX)
        h->opts.max_body_bytes = h->opts.max_body_bytes ? INT_MAX
                                                        : DEFAULT_MAX_BODY;
    h->pvo_server.name = "server";
    /* lws passes option values as strings; ours is the object itself, as
     * lws's own examples pass pointers. */
    h->pvo_server.value = (const char *)(void *)h;
    h->pvo.name = PL_REFSERVER_HTTP_PROTOCOL_NAME;
    h->pvo.options = &h->pvo_server;
    h->pvo.value = "";
    pl_refserver_http_faults_init(&h->faults);
    pthread_mutex_init(&h->lock, NULL);
    pl_rs_received_init(&h->received, RECEIVED_MAX);
    return h;
}

void pl_refserver_http_free(pl_refserver_http *h)
{
    if (!h)
        return;
    pl_rs_received_free(&h->received);
    pl_rs_timer_queue_free(&h->steps);
    pthread_mutex_destroy(&h->lock);
    free(h->api_key);
    free(h);
}

void pl_refserver_http_set_faults(pl_refserver_http *h,
                                  const pl_refserver_http_faults *f)
{
    pthread_mutex_lock(&h->lock);
    h->faults = *f;
    h->valid_seen = 0;
    h->served_seen = 0;
    pthread_mutex_unlock(&h->lock);
}

void pl_refserver_http_restart(pl_refserver_http *h)
{
    struct stream *s;

    for (s = h->streams; s; s = s->next) {
        pl_rs_timer_cancel(&h->steps, &s->step);
        s->kill = 1;
        lws_callback_on_writable(s->wsi);
    }
}

void pl_refserver_http_get_stats(pl_refserver_http *h,
                                 pl_refserver_http_stats *st)
{
    struct stats_atomic *a = &h->stats;

    st->requests_messages = atomic_load(&a->requests_messages);
    st->requests_chat = atomic_load(&a->requests_chat);
    st->answered_ok = atomic_load(&a->answered_ok);
    st->streams_started = atomic_load(&a->streams_started);
    st->streams_completed = atomic_load(&a->streams_completed);
    st->errors_sent = atomic_load(&a->errors_sent);
    st->rejected = atomic_load(&a->rejected);
    st->dropped = atomic_load(&a->dropped);
    st->stalled = atomic_load(&a->stalled);
    st->stream_errors = atomic_load(&a->stream_errors);
    st->unknown_sent = atomic_load(&a->unknown_sent);
    st->connections = atomic_load(&a->connections);
    st->connections_h2 = atomic_load(&a->connections_h2);
    st->h2_unverified = atomic_load(&a->h2_unverified);
    st->in_flight = atomic_load(&a->in_flight);
    st->max_in_flight = atomic_load(&a->max_in_flight);
}

char *pl_refserver_http_received(pl_refserver_http *h, size_t n)
{
    return pl_rs_received_copy(&h->received, n);
}

char *pl_refserver_http_last_body(pl_refserver_http *h, size_t *len,
                                  uint64_t *order)
{
    return pl_rs_received_last(&h->received, len, order);
}

void pl_refserver_http_last_beta(pl_refserver_http *h, char *buf, size_t size)
{
    pthread_mutex_lock(&h->lock);
    snprintf(buf, size, "%s", h->last_beta);
    pthread_mutex_unlock(&h->lock);
}

/* ---- lws 4.1 HTTP/2 request bodies: a workaround ----------------------- */

#if LWS_LIBRARY_VERSION_MAJOR == 4 && LWS_LIBRARY_VERSION_MINOR == 1
/*
 * lws 4.1's HTTP/2 parser (lib/roles/h2/http2.c, DATA frames) checks a
 * stream's remaining content-length against the bytes left in the whole
 * read buffer instead of in the frame. When one read holds a request's last
 * DATA frame and anything after it (the next stream's HEADERS, which is what
 * a client multiplexing POSTs sends), it answers GOAWAY "More rx than
 * content_length told" and every stream of the connection dies (upstream:
 * reworked after 4.1: compare warmcat/libwebsockets#2885). Both of its
 * content-length checks start with
 * lws_hdr_total_length(stream, WSI_TOKEN_HTTP_CONTENT_LENGTH),
 * an exported function that lws calls through the PLT, so a definition in
 * the program interposes it: for HTTP/2 streams it answers 0 for that one
 * header, which skips the two checks. The price: lws_http_action, the
 * other caller, then takes the body as unbounded (it assumes 100 MiB for
 * a POST without the header) and never reports its completion, so this
 * protocol ends an HTTP/2 body itself once content-length bytes arrived
 * (on_body). Other headers, other protocols' use of other headers, and
 * HTTP/1.1 are untouched. It applies to every lws server in the
 * process: the test programs that link this file.
 */
typedef int hdr_total_length_fn(struct lws *wsi, enum lws_token_indexes h);

static hdr_total_length_fn *real_hdr_total_length;
static pthread_once_t real_hdr_once = PTHREAD_ONCE_INIT;

static void find_real_hdr_total_length(void)
{
    real_hdr_total_length =
        (hdr_total_length_fn *)dlsym(RTLD_NEXT, "lws_hdr_total_length");
    if (!real_hdr_total_length)
        pl_rs_check_alloc(NULL); /* cannot happen while lws is linked */
}

/* Default visibility (as lws declares it): the project builds with
 * -fvisibility=hidden, and a hidden definition would interpose nothing. */
__attribute__((visibility("default")))
int lws_hdr_total_length(struct lws *wsi, enum lws_token_indexes h)
{
    pthread_once(&real_hdr_once, find_real_hdr_total_length);
    if (h == WSI_TOKEN_HTTP_CONTENT_LENGTH && wsi &&
        lws_get_network_wsi(wsi) != wsi)
        return 0;
    return real_hdr_total_length(wsi, h);
}
#endif
