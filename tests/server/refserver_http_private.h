/*
 * The insides of the reference server's HTTP side, shared by its files and
 * by nothing else:
 *
 *   refserver_http.c            the lws protocol: wiring, request
 *                               validation, faults, pacing, output, and the
 *                               choice of a vendor for each request
 *   refserver_http_anthropic.c  what Anthropic's Messages API sends
 *   refserver_http_openai.c     what OpenAI's Chat Completions API sends
 *
 * This header holds the server's and each request's state (the vendor files
 * read the model's reply and the server's model name from them), the output
 * helpers that the vendor files write with, and the table through which
 * refserver_http.c asks a vendor for its bytes. The lws service thread is
 * the only one that touches a stream.
 */
#ifndef PL_REFSERVER_HTTP_PRIVATE_H
#define PL_REFSERVER_HTTP_PRIVATE_H

#include "refserver_http.h"
#include "echo_blocks.h"
#include "refserver_common.h"
#include "timer_queue.h"

#include <json-c/json.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* ---- data -------------------------------------------------------------- */

/* The counters behind pl_refserver_http_get_stats, any thread. */
struct stats_atomic {
    _Atomic uint64_t requests_messages, requests_chat, answered_ok,
        streams_started, streams_completed, errors_sent, rejected, dropped,
        stalled, stream_errors, unknown_sent, connections, connections_h2,
        h2_unverified,
        in_flight, max_in_flight;
};

/* One HTTP side (refserver_http.h): its settings, faults, counters and
 * streams. */
struct pl_refserver_http {
    pl_refserver_http_opts opts; /* api_key and model point at the copies below */
    char *api_key;
    char model[128];
    char unknown_model_msg[200]; /* the service thread's, for check_body */
    /* The per-vhost option naming this object: "parley-http" { server }. */
    struct lws_protocol_vhost_options pvo, pvo_server;
    /* Fault knobs and their "every Nth" counters, any thread. */
    pthread_mutex_t lock;
    pl_refserver_http_faults faults;
    uint64_t valid_seen, served_seen;
    struct stats_atomic stats;
    /* Streams waiting for their next piece, and every bound stream (for
     * restarts); the lws service thread's. */
    pl_rs_timer_queue steps;
    struct stream *streams;
    _Atomic uint64_t next_request; /* numbers msg_<n>, req_<n>, chatcmpl-<n> */
    pl_rs_received_log received;
    /* The anthropic-beta header of the last Anthropic request over
     * HTTP/1.1 (under lock), for tests of extra headers. */
    char last_beta[256];
};

/* Which vendor a request is for (by its path), and which fault it gets. */
enum dialect { ANTHROPIC, OPENAI };
enum fault { FAULT_NONE, FAULT_DROP, FAULT_STALL, FAULT_ERROR };

/* A growing byte buffer: a request's body, an answer's queued bytes. */
struct buf {
    char *data;
    size_t len, cap;
};

/* Per request; zeroed by lws when the request binds to this protocol. */
struct stream {
    struct lws *wsi;
    pl_refserver_http *srv;
    struct stream *prev, *next; /* on srv->streams while active */
    int active;            /* bound: owns memory */
    int in_flight;         /* counted in stats.in_flight */
    int h2;                /* an HTTP/2 stream: no chunk framing */
    int immortal;          /* h2: exempt from lws's timeouts */
    enum dialect dialect;
    uint64_t n;            /* request number */
    int64_t created;       /* Unix seconds, for OpenAI's "created" */
    /* The request. Headers are copied at LWS_CALLBACK_HTTP: lws drops them
     * after a keep-alive transaction and when a stream is marked SSE. */
    char *key;             /* x-api-key / bearer token; NULL: absent */
    int headers_unreadable;/* Anthropic over h2 (see refserver_http.h) */
    int has_version;       /* anthropic-version present */
    unsigned early_status; /* an answer decided before the body, or 0 */
    const char *early_message;
    char early_buf[160];   /* room for an early_message with the path */
    struct buf body;
    uint64_t content_length; /* from the request's header */
    uint64_t body_seen;    /* body bytes received (kept or not) */
    int body_too_large, body_done;
    /* Generation. */
    pl_echo_turn reply;
    long open_block;       /* Anthropic stream: the block started last, or -1 */
    int streaming, include_usage;
    size_t generated;      /* pieces produced */
    enum fault fault;
    size_t fault_at;       /* pieces before the fault acts */
    unsigned unknown_every;/* the knobs that shape every reply */
    unsigned write_bytes;
    pl_rs_timer step;      /* the next piece is due (srv->steps) */
    /* The answer. */
    unsigned status;
    const char *content_type;
    int chunked;           /* HTTP/1.1 event stream */
    int answer_ready, headers_sent;
    int retry_after_s, retry_after_ms, should_retry; /* -1: no header */
    int close_after;       /* HTTP/1.1: close instead of keep-alive */
    int drop_by_ending;    /* drop fault: end the answer cleanly instead */
    struct buf out;        /* body bytes not yet written */
    size_t out_off;
    int out_complete;      /* nothing more will be appended */
    int kill;              /* drop fault: cut off once out is flushed */
    int killed;            /* h2: the connection's end is under way */
};

/* ---- output: queueing the answer's body -------------------------------- */

/* Append data[0, len) to b, growing it as needed. */
void pl_rs_http_buf_append(struct buf *b, const char *data, size_t len);

/* Queue body bytes and ask for the writeable callback that sends them. */
void pl_rs_http_emit(struct stream *s, const char *data, size_t len);

/* One server-sent event, "event: NAME\ndata: JSON\n\n" (Anthropic) or
 * without the event line (NULL name: OpenAI). Consumes data. */
void pl_rs_http_emit_event(struct stream *s, const char *name,
                           struct json_object *data);

/* ---- JSON builders ----------------------------------------------------- */

/* o[k] = the string v[0, len). */
void pl_rs_http_put_strn(struct json_object *o, const char *k, const char *v,
                         size_t len);

/* o[k] = prefix followed by n in decimal ("msg_12", "chatcmpl-12"). */
void pl_rs_http_put_id(struct json_object *o, const char *k,
                       const char *prefix, uint64_t n);

/* ---- the vendors ------------------------------------------------------- */

/*
 * What a vendor's API sends for a served request, as the model's reply
 * (s->reply) is produced: refserver_http.c paces the units and decides when
 * the reply starts, ends or fails; the vendor only says in which bytes.
 * Each function appends to s->out through the output helpers above.
 */
struct pl_rs_http_vendor {
    /* The events that open a stream, before its first unit (NULL: none). */
    void (*stream_start)(struct stream *s);
    /* Stream unit k of the reply: block b's piece (pl_echo_turn_unit). */
    void (*unit)(struct stream *s, size_t k, const pl_echo_block *b,
                 size_t piece);
    /* The faults' unknown_every: something a newer server might send that
     * a client must pass over. */
    void (*unknown)(struct stream *s);
    /* The events that close a complete stream. */
    void (*stream_end)(struct stream *s);
    /* The JSON body of a complete reply that is not streamed. */
    struct json_object *(*message)(const struct stream *s);
};

/* POST /v1/messages, refserver_http_anthropic.c */
extern const struct pl_rs_http_vendor pl_rs_http_anthropic;
/* POST /v1/chat/completions, refserver_http_openai.c */
extern const struct pl_rs_http_vendor pl_rs_http_openai;

#endif
