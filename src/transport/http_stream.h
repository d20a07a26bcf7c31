/*
 * One request to a vendor's HTTP streaming API, as one easy handle on the I/O
 * thread's multi handle: HTTP/2 multiplexed over TLS where the server offers
 * it (CURLOPT_PIPEWAIT lets streams share a connection), HTTP/1.1 keep-alive
 * otherwise. The response is read as server-sent events and mapped by the
 * dialect to pieces, done and errors, which go to the stream's owner (the
 * HTTP transport, http_transport.c) through pl_http_events.
 */
#ifndef PL_HTTP_STREAM_H
#define PL_HTTP_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>

#include "buf.h"
#include "dialect.h"
#include "easy.h"
#include "failure.h"
#include "sse.h"

/* What a request's stream reports to the stream's owner (the transport),
 * which http_stream does not know: `req` is the owner's record, given to
 * pl_http_start(). done and failed detach the stream from it. They run
 * inside curl callbacks or pl_http_finish(). */
typedef struct pl_http_events {
    /* A piece of the reply: text, thinking or a whole tool call. */
    void (*piece)(void *owner, void *req, const pl_piece *piece);
    /* Any other event the dialect accepted (a ping, a block's start): the
     * server is at work on the request. */
    void (*alive)(void *owner, void *req);
    void (*done)(void *owner, void *req, const pl_stream_result *res);
    /* What failed (the engine decides about a retry, after retry_after_ms
     * when >= 0); msg already names the HTTP status and the vendor's request
     * id. */
    void (*failed)(void *owner, void *req, const pl_failure *f, const char *msg,
                   int64_t retry_after_ms);
    /* The request goes out on the connection pl_http_conn_id() names now
     * (first, or again on another); it went out on `before` (-1: none). */
    void (*connected)(void *owner, void *req, curl_off_t before);
} pl_http_events;

typedef struct pl_http_config {
    char *url;                  /* the endpoint (with the dialect's path) */
    char *url_shown;            /* url as messages show it (pl_safe_url) */
    pl_dialect dialect;
    const char *dialect_shown;  /* the dialect and why, for messages (conf.h) */
    const char *api_key;
    const char *anthropic_version;
    size_t max_event_bytes;
    bool tls;                   /* https://: HTTP/2 may multiplex requests */
    pl_easy_opts easy;
    const pl_http_events *events;
    void *owner;                /* passed to events */
    /* Streams of finished requests, kept with their easy handles for the
     * next requests (at most max_idle). */
    struct pl_http_stream *idle;
    size_t nidle, max_idle;
    /* Transfers on the multi handle: started and not yet finished or
     * released (a finished reply's transfer counts until libcurl ends it,
     * as its connection is busy until then). */
    size_t active;
} pl_http_config;

typedef enum pl_http_state {
    PL_HTTP_ATTACHED = 0, /* reports to its request */
    PL_HTTP_FINISHED,     /* the reply ended: read the rest, keep the connection */
    PL_HTTP_ABANDONED     /* the request left it: stop at the next callback */
} pl_http_state;

typedef struct pl_http_stream {
    CURLM *multi;
    pl_http_config *cfg;        /* takes the stream back when it is done */
    struct pl_http_stream *next_idle;
    void *req;                  /* the owner's record; NULL once detached */
    uint32_t pieces;            /* text pieces this request received */
    pl_http_state state;
    bool in_callback;
    CURL *easy;
    struct curl_slist *headers;     /* the same for every request */
    struct curl_slist *idempotency; /* this request's, the last of headers */
    char errbuf[CURL_ERROR_SIZE];
    long status;                /* of the last status line */
    bool event_stream;          /* the answer is text/event-stream */
    int64_t retry_after_ms;     /* retry-after-ms, else retry-after; -1 */
    pl_retry_advice should_retry; /* x-should-retry */
    char request_id[96];        /* request-id or x-request-id */
    pl_sse_parser sse;
    pl_stream_state decoder;
    pl_buf error_body;          /* a non-200 answer's body, bounded */
    int64_t last_rx_ms;         /* the last header or body bytes; 0: none yet */
    curl_off_t conn_id;         /* libcurl's CURLINFO_CONN_ID when sent; -1: not yet */
} pl_http_stream;

/* Build the configuration for the endpoint as pl_conf_finalize() completed
 * it (with the dialect's path). Returns 0 or -1. */
int pl_http_config_init(pl_http_config *cfg, const char *endpoint, pl_dialect d);
/* Frees the idle streams too: call it after the last stream was released. */
void pl_http_config_free(pl_http_config *cfg);

/*
 * Start request `id` (body: its JSON, kept by the caller until the stream
 * is released or reports done or failed) for the owner's record req, on an
 * idle stream of cfg when there is one. Returns the stream, or NULL with a
 * sentence in err when the handle could not be made.
 */
pl_http_stream *pl_http_start(CURLM *multi, pl_http_config *cfg, void *req, uint64_t id,
                              const char *body, size_t body_len, const char *extra_headers,
                              char *err, size_t err_size);

/* What a finished transfer tells the statistics. */
typedef struct pl_http_outcome {
    long connects; /* connections this transfer opened */
    long status;   /* HTTP status of the answer; 0: none came */
    bool http2;    /* the answer came over HTTP/2 */
} pl_http_outcome;

/* The transfer ended (CURLMSG_DONE): report to the request if still attached,
 * then keep the stream for another request or free it. */
pl_http_outcome pl_http_finish(pl_http_stream *s, CURLcode rc);

/* The request leaves the stream (stall, deadline, cancel, shutdown, a retry
 * decided inside a callback). Outside callbacks the transfer is removed at
 * once (the stream kept or freed); inside, it stops at the next callback. */
void pl_http_release(pl_http_stream *s);

/* The id of the connection the transfer went out on (libcurl's
 * CURLINFO_CONN_ID, taken when the request is sent), or -1 before: streams
 * that share an HTTP/2 connection share it. */
curl_off_t pl_http_conn_id(const pl_http_stream *s);

/* The stream's connection is dead: once its last transfer is released it is
 * closed, not kept for reuse, so that no retry is handed it back. */
void pl_http_condemn_conn(pl_http_stream *s);

#endif
