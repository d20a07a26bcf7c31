/*
 * A transport carries requests to the server and brings back what it says:
 * the native WebSocket protocol (ws_transport.c) and the vendors' HTTP
 * streaming APIs (http_transport.c) each implement this table. The engine
 * (engine/route_policy.c) decides everything else: when to send again,
 * where, and when to give up. A third transport is a new file that fills
 * in pl_transport_ops, not a new branch in the engine.
 *
 * Everything here runs on the I/O thread. A transport reports through
 * pl_tx_events, keyed by the engine's record of the request (pl_tx_req); it
 * detaches a request from its side before it fires done, failed or lost for
 * it, so that the engine may always call detach again.
 */
#ifndef PL_TRANSPORT_H
#define PL_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "counters.h"
#include "easy.h"
#include "failure.h"
#include "json_writer.h"
#include "log.h"
#include "reply.h"

/* The part of the engine's record of a request that a transport reads and
 * writes. The engine embeds it in its route. */
typedef struct pl_tx_req {
    uint64_t id;
    const char *frame;         /* the encoded request, without resume_from (the engine's) */
    size_t frame_len;
    uint32_t next_seq;         /* pieces delivered so far: a resume starts here */
    bool acked;                /* the server acked the current send (the engine sets it) */
    const char *headers;       /* HTTP: extra header lines, '\n'-joined (the engine's);
                                  NULL: none */
    bool needs_blocks;         /* native: for a server announcing `blocks` only */
    /* The transport's: the connection (native) or stream (HTTP) carrying the
     * request now, NULL for none, and its place in the transport's list of
     * the requests on that connection. */
    void *on;
    struct pl_tx_req *prev, *next;
} pl_tx_req;

/* A list of requests, as the transports keep them per connection. */
typedef struct pl_tx_list {
    pl_tx_req *head, *tail;
} pl_tx_list;

static inline void pl_tx_list_add(pl_tx_list *l, pl_tx_req *q)
{
    q->prev = l->tail;
    q->next = NULL;
    if (l->tail)
        l->tail->next = q;
    else
        l->head = q;
    l->tail = q;
}

static inline void pl_tx_list_remove(pl_tx_list *l, pl_tx_req *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        l->head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        l->tail = q->prev;
    q->prev = q->next = NULL;
}

/* Who pays for a lost connection's requests (docs/reliability.md). */
typedef enum pl_blame {
    PL_BLAME_CONN = 1, /* the connection worked and broke, or went silent: free, at once */
    PL_BLAME_REQ,      /* it never worked: the request may be what broke it, and backs off */
    PL_BLAME_REQ_NOW   /* the request alone went silent on it: an attempt, at once */
} pl_blame;

/* What a request's reply ended with (done). */
typedef struct pl_tx_done {
    uint32_t seq_end;          /* pieces the server sent; PL_TX_SEQ_NONE: not said */
    const char *session;       /* the session the server names; NULL: none */
    pl_reply_end end;
} pl_tx_done;

#define PL_TX_SEQ_NONE UINT32_MAX

/* What a transport tells the engine (every call on the I/O thread). */
typedef struct pl_tx_events {
    void *ctx;
    /* The request with this id, or NULL when finished (or unknown). */
    pl_tx_req *(*lookup)(void *ctx, uint64_t id);
    /* The connection carrying q opened: q is on the wire from now. */
    void (*on_wire)(void *ctx, pl_tx_req *q, int64_t now);
    /* The server took the request (native ack). */
    void (*acked)(void *ctx, pl_tx_req *q);
    /* Piece `seq` of the reply; session: the one the server names, or NULL. */
    void (*piece)(void *ctx, pl_tx_req *q, uint32_t seq, const char *session,
                  const pl_piece *piece);
    /* Any other well-formed message about q (an SSE ping, an event or a
     * message type that carries nothing for the caller yet): the server is
     * at work on it, so it is not stalled. */
    void (*alive)(void *ctx, pl_tx_req *q);
    void (*done)(void *ctx, pl_tx_req *q, const pl_tx_done *d);
    /* The request failed (the engine decides about another try, after
     * retry_after_ms when >= 0); msg says why. */
    void (*failed)(void *ctx, pl_tx_req *q, const pl_failure *f, const char *msg,
                   int64_t retry_after_ms);
    /* The connection carrying q was lost (f, msg), and who pays for it. */
    void (*lost)(void *ctx, pl_tx_req *q, const pl_failure *f, const char *msg, pl_blame b);
    /* A trial (pl_transport_ops.trial) found q's connection alive: q was
     * slow on its own. */
    void (*acquitted)(void *ctx, pl_tx_req *q, const void *conn, int64_t now);
    /* A long read goes on: pass on what the sessions were posted. */
    void (*long_read)(void *ctx);
    /* The log level for a wait the user should hear of (rate-limited). */
    int (*wait_level)(void *ctx, int64_t now);
    /* Whether a failure is worth another try (engine/classify.h: the one
     * place that decides; here for the transports' own log lines). */
    bool (*retryable)(const pl_failure *f);
} pl_tx_events;

/* What a transport is made from: settings (each the property of the same
 * name, docs/configuration.md) and the shared pieces it uses. Strings and
 * pointers outlive the transport. */
typedef struct pl_tx_conf {
    CURLM *multi;
    const pl_easy_opts *easy;
    const char *endpoint;          /* as configured, with the dialect's path */
    const char *endpoint_shown;    /* as messages show it */
    const char *dialect_shown;
    int dialect;                   /* pl_dialect */
    const char *api_key;
    const char *anthropic_version;
    const char *compression;       /* "zstd", "gzip" or "none"; NULL: none */
    bool compression_dict;
    unsigned connections;
    int heartbeat_interval_s;
    int connect_timeout_ms;
    int64_t max_message_bytes;
    int reconnect_backoff_ms, reconnect_backoff_max_ms;
    int stall_timeout_ms;
    int stall_ping_timeout_ms;
    int http_idle_connections;
    int http_max_connections;      /* 0: no bound */
    pl_counters *counters;
    const pl_logger *log;
    uint64_t *rng;                 /* the I/O thread's, for backoff jitter */
    const pl_tx_events *ev;
} pl_tx_conf;

typedef enum pl_tx_start {
    PL_TX_PLACED = 0, /* on its way (or queued on a connection being opened) */
    PL_TX_WAIT,       /* not now, and not an attempt: ask again after *wait_ms */
    PL_TX_FAILED      /* could not start: *f and msg say why */
} pl_tx_start;

typedef struct pl_transport pl_transport;

typedef struct pl_transport_ops {
    /* A reply cut short resumes from the pieces delivered (native); HTTP
     * streaming APIs cannot resume, so a started reply is not repeated. */
    bool can_resume;
    /* The transport logs its connections' failures itself, so the engine
     * need not log each request that waits because of one. */
    bool logs_connections;
    /* Send q (again; resume from q->next_seq), steering away from `avoid`
     * (a connection it was slow on) where there is a choice. */
    pl_tx_start (*start)(pl_transport *t, pl_tx_req *q, const void *avoid, int64_t now,
                         int64_t *wait_ms, pl_failure *f, char *msg, size_t msg_size);
    /* Send q again on its connection from q->next_seq (pieces are missing). */
    void (*resend)(pl_transport *t, pl_tx_req *q);
    /* Tell the server to stop q's work. by_caller: the caller cancelled, and
     * a request queued on a connection being opened is cancelled there too;
     * otherwise only where it is on the wire. Returns whether the server
     * will answer (native: done, stop_reason cancelled). */
    bool (*cancel)(pl_transport *t, pl_tx_req *q, bool by_caller);
    /* q leaves its connection or stream. Idempotent. */
    void (*detach)(pl_transport *t, pl_tx_req *q);
    /* Whether q is out on the wire (its stall clock runs). */
    bool (*sent)(const pl_transport *t, const pl_tx_req *q);
    /* q stalled: find out whether its connection lives. Returns true when
     * the verdict comes later (acquitted, or lost); false when it was given
     * already. */
    bool (*trial)(pl_transport *t, pl_tx_req *q, int64_t now, const char *msg);
    /* Housekeeping; returns ms until the next duty. May add sockets to wait
     * for (at most max_waitfds). */
    int64_t (*tick)(pl_transport *t, int64_t now, struct curl_waitfd *fds, unsigned *nfds);
    unsigned (*max_waitfds)(const pl_transport *t);
    /* libcurl finished a transfer of this transport. */
    void (*transfer_done)(pl_transport *t, CURL *easy, CURLcode rc);
    /* After curl_multi_perform: act on what callbacks found. */
    void (*after_perform)(pl_transport *t);
    /* The statistics' parts (docs/statistics.md): the connections array's
     * elements, and the inside of this dialect's object. */
    void (*write_connections)(const pl_transport *t, pl_json_writer *w, int64_t now);
    void (*write_dialect)(const pl_transport *t, pl_json_writer *w);
    /* Close everything (no request is left); then destroy frees. */
    void (*shutdown)(pl_transport *t);
    void (*destroy)(pl_transport *t);
} pl_transport_ops;

/* Every transport's state starts with this. */
struct pl_transport {
    const pl_transport_ops *ops;
};

/* The transports there are; NULL with a sentence in err on failure. */
pl_transport *pl_ws_transport_new(const pl_tx_conf *conf, char *err, size_t err_size);
pl_transport *pl_http_transport_new(const pl_tx_conf *conf, char *err, size_t err_size);

#endif
