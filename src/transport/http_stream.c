#include "http_stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "clock.h"
#include "safe_text.h"

#define ERROR_BODY_MAX 16384

static void stream_destroy(pl_http_stream *s);

int pl_http_config_init(pl_http_config *cfg, const char *endpoint, pl_dialect d)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->dialect = d;
    /* The endpoint is whole: pl_conf_finalize() filled in the dialect's path
     * (dialect_endpoint.h). */
    size_t len = strlen(endpoint);
    if (!(cfg->url = strdup(endpoint)))
        return -1;
    cfg->url_shown = pl_xmalloc(len * 6 + 1); /* room for every escape */
    pl_safe_url(cfg->url, cfg->url_shown, len * 6 + 1);
    cfg->tls = strncasecmp(endpoint, "https://", 8) == 0;
    return 0;
}

void pl_http_config_free(pl_http_config *cfg)
{
    while (cfg->idle) {
        pl_http_stream *s = cfg->idle;
        cfg->idle = s->next_idle;
        stream_destroy(s);
    }
    cfg->nidle = 0;
    free(cfg->url);
    cfg->url = NULL;
    free(cfg->url_shown);
    cfg->url_shown = NULL;
}

/* ---- answer headers ------------------------------------------------------ */

/* The value of header `name` in line, trimmed, or NULL. */
static const char *header_value(const char *line, size_t len, const char *name,
                                size_t *value_len)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return NULL;
    const char *v = line + n + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    *value_len = (size_t)(end - v);
    return v;
}

static int64_t parse_ms(const char *v, size_t len, int64_t scale)
{
    char tmp[32];
    if (len == 0 || len >= sizeof(tmp))
        return -1;
    memcpy(tmp, v, len);
    tmp[len] = '\0';
    char *end;
    double x = strtod(tmp, &end);
    if (*end || !(x >= 0))
        return -1; /* an HTTP date is possible in retry-after: not honoured */
    /* The I/O thread caps what it obeys (route_policy.c, route_retry_later); here
     * only the conversion is kept in range. */
    double ms = x * (double)scale;
    return ms >= (double)INT64_MAX ? INT64_MAX : (int64_t)ms;
}

static void on_header_line(pl_http_stream *s, const char *line, size_t len)
{
    size_t vlen;
    const char *v;
    if (len > 5 && !strncmp(line, "HTTP/", 5)) {
        /* A new answer (after 100 Continue, say): forget the last one's. */
        const char *sp = memchr(line, ' ', len);
        s->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        s->event_stream = false;
        s->retry_after_ms = -1;
        s->should_retry = PL_ADVICE_NONE;
        s->request_id[0] = '\0';
    } else if ((v = header_value(line, len, "content-type", &vlen))) {
        s->event_stream = vlen >= 17 && !strncasecmp(v, "text/event-stream", 17);
    } else if ((v = header_value(line, len, "retry-after-ms", &vlen))) {
        s->retry_after_ms = parse_ms(v, vlen, 1);
    } else if ((v = header_value(line, len, "retry-after", &vlen))) {
        if (s->retry_after_ms < 0) /* retry-after-ms wins */
            s->retry_after_ms = parse_ms(v, vlen, 1000);
    } else if ((v = header_value(line, len, "x-should-retry", &vlen))) {
        s->should_retry =
            vlen == 4 && !strncasecmp(v, "true", 4) ? PL_ADVICE_YES : PL_ADVICE_NO;
    } else if ((v = header_value(line, len, "request-id", &vlen)) ||
               (v = header_value(line, len, "x-request-id", &vlen))) {
        snprintf(s->request_id, sizeof(s->request_id), "%.*s", (int)vlen, v);
    }
}

static size_t header_cb(char *line, size_t size, size_t n, void *userdata)
{
    ((pl_http_stream *)userdata)->last_rx_ms = pl_monotonic_ms();
    on_header_line(userdata, line, size * n);
    return size * n;
}

/* ---- the body ------------------------------------------------------------ */

static void fail_in_stream(pl_http_stream *s, const pl_failure *f, const char *msg)
{
    void *req = s->req;
    s->req = NULL;
    s->state = PL_HTTP_ABANDONED;
    s->cfg->events->failed(s->cfg->owner, req, f, msg, -1);
}

/* The server broke the event stream: its request fails for good. */
static const pl_failure invalid_stream = {.kind = PL_FAIL_INVALID,
                                          .err = PARLEY_ERR_PROTOCOL};

static int on_event(void *userdata, const pl_sse_event *ev)
{
    pl_http_stream *s = userdata;
    if (!s->req)
        return 0; /* finished: the rest is read and dropped */
    pl_stream_result res;
    char err[160];
    if (pl_dialect_event(&s->decoder, ev, &res, err, sizeof(err)) != 0) {
        char msg[256];
        snprintf(msg, sizeof(msg), "invalid event from the server: %s", err);
        fail_in_stream(s, &invalid_stream, msg);
        return 1;
    }
    switch (res.kind) {
    case PL_STREAM_NONE:
        s->cfg->events->alive(s->cfg->owner, s->req);
        break;
    case PL_STREAM_PIECE:
        /* An OpenAI chunk may end text and several tool calls at once; a
         * piece's handler may end the request (the reply bound). */
        for (size_t i = 0; i < res.npieces && s->req; i++) {
            s->pieces++;
            s->cfg->events->piece(s->cfg->owner, s->req, &res.pieces[i]);
        }
        break;
    case PL_STREAM_DONE: {
        void *req = s->req;
        s->req = NULL;
        s->state = PL_HTTP_FINISHED;
        res.end.vendor_request_id = s->request_id[0] ? s->request_id : NULL;
        s->cfg->events->done(s->cfg->owner, req, &res);
        break;
    }
    case PL_STREAM_ERROR: {
        char msg[512];
        snprintf(msg, sizeof(msg), "server error %s: %s%s%s%s",
                 res.error_type ? res.error_type : "?",
                 res.error_message ? res.error_message : "",
                 s->request_id[0] ? " (request-id " : "", s->request_id,
                 s->request_id[0] ? ")" : "");
        pl_failure f = {.kind = PL_FAIL_SERVER,
                         .err = pl_dialect_map_error_type(res.error_type),
                         .started = s->pieces > 0};
        fail_in_stream(s, &f, msg);
        return 1;
    }
    }
    return 0;
}

static size_t write_cb(char *data, size_t size, size_t n, void *userdata)
{
    pl_http_stream *s = userdata;
    size_t len = size * n;
    if (s->state == PL_HTTP_ABANDONED)
        return 0; /* ends the transfer */
    s->last_rx_ms = pl_monotonic_ms();
    if (s->status != 200 || !s->event_stream) {
        /* An error answer (or not a stream): keep its body to explain it. */
        size_t room = ERROR_BODY_MAX - s->error_body.len;
        if (s->error_body.len < ERROR_BODY_MAX &&
            pl_buf_append(&s->error_body, data, len < room ? len : room) != 0)
            return 0;
        return len;
    }
    s->in_callback = true;
    int rc = pl_sse_feed(&s->sse, data, len, on_event, s);
    s->in_callback = false;
    if (rc == -1 && s->req)
        fail_in_stream(s, &invalid_stream,
                       "invalid event stream from the server: an event over the size limit");
    return s->state == PL_HTTP_ABANDONED ? 0 : len;
}

/* The connection is there and the request about to go out on it: which
 * one it is tells the owner which streams share it (its stall witnesses). */
static int prereq_cb(void *userdata, char *conn_primary_ip, char *conn_local_ip,
                     int conn_primary_port, int conn_local_port)
{
    (void)conn_primary_ip, (void)conn_local_ip, (void)conn_primary_port, (void)conn_local_port;
    pl_http_stream *s = userdata;
    curl_off_t id = -1;
    if (curl_easy_getinfo(s->easy, CURLINFO_CONN_ID, &id) != CURLE_OK || id == s->conn_id)
        return CURL_PREREQFUNC_OK;
    curl_off_t before = s->conn_id;
    s->conn_id = id;
    if (s->req)
        s->cfg->events->connected(s->cfg->owner, s->req, before);
    return CURL_PREREQFUNC_OK;
}

/* ---- start, finish, release --------------------------------------------- */

/*
 * A stream outlives its request: its easy handle, with every option that
 * does not change between requests, and its headers are kept on the
 * configuration's idle list for the next request. Making a handle and
 * setting it up cost more than a whole request on a fast server, and the
 * connection cache is the multi handle's, so nothing is lost by it.
 */

/* The headers every request of cfg sends; the idempotency key is added per
 * request (stream_begin). */
static struct curl_slist *fixed_headers(const pl_http_config *cfg)
{
    char line[256];
    struct curl_slist *h = NULL;
    pl_buf auth = PL_BUF_INIT;
    if (cfg->dialect == PL_DIALECT_ANTHROPIC) {
        if (pl_buf_append_str(&auth, "x-api-key: ") != 0 ||
            pl_buf_append_str(&auth, cfg->api_key) != 0)
            pl_oom("building the x-api-key header");
        snprintf(line, sizeof(line), "anthropic-version: %s", cfg->anthropic_version);
        h = pl_easy_header(h, line);
    } else {
        if (pl_buf_append_str(&auth, "Authorization: Bearer ") != 0 ||
            pl_buf_append_str(&auth, cfg->api_key) != 0)
            pl_oom("building the Authorization header");
    }
    h = pl_easy_header(h, auth.data);
    memset(auth.data, 0, auth.len); /* the key in as few places as possible */
    pl_buf_free(&auth);
    h = pl_easy_header(h, "Content-Type: application/json");
    return pl_easy_header(h, "Accept: text/event-stream");
}

static void stream_destroy(pl_http_stream *s)
{
    if (s->easy)
        curl_easy_cleanup(s->easy);
    curl_slist_free_all(s->headers); /* holds the key: wiped by free only */
    pl_sse_free(&s->sse);
    pl_stream_state_free(&s->decoder);
    pl_buf_free(&s->error_body);
    free(s);
}

/* A new stream with the options that every request of cfg shares. */
static pl_http_stream *stream_new(CURLM *multi, pl_http_config *cfg)
{
    pl_http_stream *s = pl_xcalloc(1, sizeof(*s));
    s->multi = multi;
    s->cfg = cfg;
    pl_sse_init(&s->sse, cfg->max_event_bytes);
    pl_stream_state_init(&s->decoder, cfg->dialect, cfg->max_event_bytes);
    s->easy = curl_easy_init();
    s->headers = s->easy ? fixed_headers(cfg) : NULL;
    if (!s->easy || !s->headers) {
        stream_destroy(s);
        return NULL;
    }
    CURL *e = s->easy;
    pl_easy_setup(e, &cfg->easy, s->errbuf);
    curl_easy_setopt(e, CURLOPT_URL, cfg->url);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    /* Waiting for a connection being set up pays only where it can be
     * shared (HTTP/2 over TLS); over http:// it only delays the request. */
    if (cfg->tls)
        curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* whatever libcurl decodes */
    /* libcurl gives each handle a send buffer of this size for the request
     * (headers and body; a larger body goes through it in parts) and keeps
     * it with the handle: its default of 64 KiB was most of a request's
     * memory in flight. 16 KiB is its least. */
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, prereq_cb);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, s);
    curl_easy_setopt(e, CURLOPT_PRIVATE, s);
    return s;
}

/* Fresh per-request state, this request's headers and body, and the
 * transfer added to the multi handle. Returns 0 or -1. */
static int stream_begin(pl_http_stream *s, void *req, uint64_t id, const char *body,
                        size_t body_len, const char *extra_headers)
{
    s->req = req;
    s->pieces = 0;
    s->state = PL_HTTP_ATTACHED;
    s->in_callback = false;
    s->errbuf[0] = '\0';
    s->status = 0;
    s->event_stream = false;
    s->retry_after_ms = -1;
    s->should_retry = PL_ADVICE_NONE;
    s->request_id[0] = '\0';
    s->last_rx_ms = 0;
    s->conn_id = -1;
    curl_easy_setopt(s->easy, CURLOPT_FORBID_REUSE, 0L);
    pl_sse_reset(&s->sse);
    pl_stream_state_reset(&s->decoder);
    pl_buf_reset(&s->error_body);
    /* The same key on every retry lets the server drop a duplicate. */
    char line[64];
    snprintf(line, sizeof(line), "Idempotency-Key: %llu", (unsigned long long)id);
    s->idempotency = curl_slist_append(NULL, line);
    if (!s->idempotency)
        return -1;
    /* The caller's extra headers (extra.headers), one per line, checked
     * when they were set. */
    for (const char *p = extra_headers; p && *p;) {
        size_t n = strcspn(p, "\n");
        char *header = strndup(p, n);
        struct curl_slist *more = header ? curl_slist_append(s->idempotency, header) : NULL;
        free(header);
        if (!more)
            return -1;
        s->idempotency = more;
        p += n + (p[n] == '\n');
    }
    struct curl_slist *last = s->headers;
    while (last->next)
        last = last->next;
    last->next = s->idempotency;
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    return curl_multi_add_handle(s->multi, s->easy) == CURLM_OK ? 0 : -1;
}

/* Take this request's header off the list. */
static void drop_idempotency(pl_http_stream *s)
{
    if (!s->idempotency)
        return;
    struct curl_slist *h = s->headers;
    while (h->next != s->idempotency)
        h = h->next;
    h->next = NULL;
    curl_slist_free_all(s->idempotency);
    s->idempotency = NULL;
}

/* The request is over: keep the stream for the next one, or free it when
 * enough are kept. */
static void stream_done(pl_http_stream *s)
{
    curl_multi_remove_handle(s->multi, s->easy);
    s->cfg->active--;
    drop_idempotency(s);
    s->req = NULL;
    pl_http_config *cfg = s->cfg;
    if (cfg->nidle >= cfg->max_idle) {
        stream_destroy(s);
        return;
    }
    pl_stream_state_reset(&s->decoder); /* the last event's JSON, now */
    s->next_idle = cfg->idle;
    cfg->idle = s;
    cfg->nidle++;
}

pl_http_stream *pl_http_start(CURLM *multi, pl_http_config *cfg, void *req, uint64_t id,
                              const char *body, size_t body_len, const char *extra_headers,
                              char *err, size_t err_size)
{
    pl_http_stream *s = cfg->idle;
    if (s) {
        cfg->idle = s->next_idle;
        cfg->nidle--;
    } else if (!(s = stream_new(multi, cfg))) {
        snprintf(err, err_size, "could not create an HTTP request");
        return NULL;
    }
    if (stream_begin(s, req, id, body, body_len, extra_headers) != 0) {
        snprintf(err, err_size, "could not start an HTTP request");
        curl_multi_remove_handle(multi, s->easy); /* harmless when not added */
        drop_idempotency(s);
        stream_destroy(s);
        return NULL;
    }
    cfg->active++;
    return s;
}

curl_off_t pl_http_conn_id(const pl_http_stream *s)
{
    return s->conn_id;
}

void pl_http_condemn_conn(pl_http_stream *s)
{
    curl_easy_setopt(s->easy, CURLOPT_FORBID_REUSE, 1L);
}

void pl_http_release(pl_http_stream *s)
{
    s->req = NULL;
    if (s->in_callback) {
        s->state = PL_HTTP_ABANDONED;
        return;
    }
    stream_done(s);
}

/* What to check after an answer that says the request cannot work. */
static const char *status_advice(long status)
{
    switch (status) {
    case 401: return "; check the API key";
    case 403: return "; the key may not use this model or endpoint";
    case 404: return "; check the endpoint's path, the dialect and the \"model\" property";
    }
    return "";
}

/* Why an answer with an error status failed, in the vendor's words, with
 * the URL and the dialect (which decided the path and the body). */
static void report_error_status(pl_http_stream *s, void *req)
{
    char type[64] = "", vendor_msg[300] = "", msg[900];
    if (pl_dialect_error_body(s->error_body.data ? s->error_body.data : "",
                              s->error_body.len, type, sizeof(type), vendor_msg,
                              sizeof(vendor_msg)) != 0)
        snprintf(vendor_msg, sizeof(vendor_msg), "%s",
                 s->status == 200 ? "the answer is not an event stream" : "no error body");
    snprintf(msg, sizeof(msg), "HTTP %ld from %s (%s): %s%s%s%s%s%s", s->status,
             s->cfg->url_shown, s->cfg->dialect_shown ? s->cfg->dialect_shown : "",
             type, type[0] ? ": " : "", vendor_msg, s->request_id[0] ? " (request-id " : "",
             s->request_id, s->request_id[0] ? ")" : "");
    size_t used = strlen(msg);
    snprintf(msg + used, sizeof(msg) - used, "%s", status_advice(s->status));
    pl_failure f = {.kind = PL_FAIL_REFUSED,
                     .status = s->status,
                     .should_retry = s->should_retry,
                     .err = type[0] && pl_dialect_map_status(s->status) == PARLEY_ERR_PROTOCOL
                                ? pl_dialect_map_error_type(type)
                                : pl_dialect_map_status(s->status)};
    if (s->status == 200) /* 200, but not an event stream */
        f = invalid_stream;
    s->cfg->events->failed(s->cfg->owner, req, &f, msg, s->retry_after_ms);
}

pl_http_outcome pl_http_finish(pl_http_stream *s, CURLcode rc)
{
    pl_http_outcome out = {.status = s->status};
    if (s->easy) {
        long version = 0;
        curl_easy_getinfo(s->easy, CURLINFO_NUM_CONNECTS, &out.connects);
        curl_easy_getinfo(s->easy, CURLINFO_HTTP_VERSION, &version);
        out.http2 = version == CURL_HTTP_VERSION_2_0;
    }
    void *req = s->req;
    s->req = NULL;
    const pl_http_events *ev = s->cfg->events;
    if (req) {
        if (s->status != 0 && (s->status != 200 || !s->event_stream)) {
            report_error_status(s, req);
        } else if (rc != CURLE_OK && s->status == 0) {
            char msg[CURL_ERROR_SIZE + 200];
            pl_failure f;
            pl_easy_explain(rc, s->errbuf, s->cfg->url_shown, msg, sizeof(msg), &f);
            ev->failed(s->cfg->owner, req, &f, msg, -1);
        } else {
            /* The stream ended, or broke, before the reply did. */
            char msg[CURL_ERROR_SIZE + 400];
            const char *detail = s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc);
            if (s->pieces)
                snprintf(msg, sizeof(msg), "connection lost mid-reply: the stream from %s "
                         "ended after %u piece%s, before the reply completed (%s); HTTP "
                         "streaming APIs cannot resume a reply: send the turn again",
                         s->cfg->url_shown, s->pieces, s->pieces == 1 ? "" : "s", detail);
            else
                snprintf(msg, sizeof(msg), "the stream from %s ended before the reply's "
                         "first piece (%s)", s->cfg->url_shown, detail);
            pl_failure f = {.kind = PL_FAIL_LOST,
                            .err = PARLEY_ERR_CONNECTION_LOST,
                            .started = s->pieces > 0}; /* HTTP cannot resume */
            ev->failed(s->cfg->owner, req, &f, msg, -1);
        }
    }
    stream_done(s);
    return out;
}
