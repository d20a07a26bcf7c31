/*
 * The vendor HTTP dialects of the reference server: an lws protocol that
 * serves, beside the parley.v1 WebSocket protocol, on the same port,
 *
 *   POST /v1/messages          Anthropic Messages (JSON or server-sent events)
 *   POST /v1/chat/completions  OpenAI Chat Completions (JSON or SSE)
 *
 * both answered by the parley-echo-1 model (echo_model.h), paced like the
 * WebSocket server (latency_ms, token_ms, chunk_bytes), over HTTP/1.1
 * (keep-alive, chunked event streams) and HTTP/2 (over TLS, by ALPN), with
 * fault knobs and counters for tests.
 *
 * ---- Wiring it into refserver.c -----------------------------------------
 *
 * 1. Create the module before the vhost, with the server's settings:
 *
 *        pl_refserver_http_opts ho;
 *        pl_refserver_http_opts_init(&ho);
 *        ho.api_key = srv->api_key;            (NULL: no key checked)
 *        ho.latency_ms = o->latency_ms;  ho.token_ms = o->token_ms;
 *        ho.chunk_bytes = o->chunk_bytes;  ho.max_body_bytes = o->max_message_bytes;
 *        ho.quiet = o->quiet;
 *        srv->http = pl_refserver_http_new(&ho);     (copies the strings)
 *
 * 2. Protocols: the WebSocket protocol stays protocols[0] (lws gives
 *    protocols[0] every connection that no mount claims, and WebSocket
 *    clients that select no subprotocol). A struct cannot be copied in a
 *    static initializer, so the array becomes run-time data that lives as
 *    long as the vhost (lws keeps the pointer), e.g. in struct pl_refserver:
 *
 *        srv->protocols[0] = <the parley.v1 entry, as today>;
 *        srv->protocols[1] = pl_refserver_http_protocol;
 *        srv->protocols[2] = (struct lws_protocols){ .name = NULL };
 *        info.protocols = srv->protocols;
 *
 * 3. Vhost fields, all set by one call after the others are filled in and
 *    before lws_create_vhost():
 *
 *        pl_refserver_http_vhost_info(srv->http, &info);
 *
 *    It sets info.mounts (the two paths above, bound to this protocol),
 *    chains its per-vhost option onto info.pvo (how the callback finds
 *    srv->http), raises the HTTP/2 concurrent stream limit (lws 4.1's
 *    default is 24) through info.http2_settings, and sets
 *    info.keepalive_timeout to 60 s when it is 0 (lws's default, 5 s, is how
 *    long an idle HTTP/1.1 keep-alive connection or an idle HTTP/2
 *    connection stays open). It does not touch retry_and_idle_policy.
 *
 * 4. TLS (optional; HTTP/2 is only offered over TLS): add
 *    LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT to the *context* options, and set
 *    info.ssl_cert_filepath / info.ssl_private_key_filepath on the vhost.
 *    lws 4.1 built with LWS_WITH_HTTP2 then offers ALPN "h2,http/1.1" by
 *    itself; nothing else is needed. WebSocket clients ask for http/1.1 by
 *    ALPN and keep working on the same port.
 *
 * 5. refserver.c's own callback keeps answering what no mount claims (404
 *    and 426 today) and the upgrade requests. One consequence: curl's
 *    "Upgrade: h2c" on plain http:// goes to its HTTP_CONFIRM_UPGRADE, which
 *    answers 404 because the path is not /v1/stream. Clients should not try
 *    h2c (libcurl's default CURL_HTTP_VERSION_2TLS does not); to tolerate it
 *    anyway, have confirm_upgrade() return
 *    pl_refserver_http_confirm_upgrade(wsi, in) first when that is >= 0
 *    (see that function).
 *
 * 6. Stop: after lws_context_destroy() (which ends every stream, cancelling
 *    their timers), call pl_refserver_http_free(srv->http).
 *
 * 7. Expose the knobs and counters through refserver.h as wanted:
 *    pl_refserver_http_set_faults() and pl_refserver_http_get_stats() are
 *    safe from any thread while the server runs.
 *
 * ---- Known limit of lws 4.1.6 over HTTP/2 ---------------------------------
 *
 * lws 4.1's HPACK decoder drops every header it has no token for, and
 * lws_hdr_custom_length() refuses HTTP/2 streams, so on HTTP/2 the server
 * cannot see `x-api-key` or `anthropic-version`. On HTTP/2 those two checks
 * are therefore skipped (and counted in h2_unverified); `Authorization`
 * (OpenAI) is a known token and is checked on both versions. Tests of the
 * Anthropic key and version checks must use HTTP/1.1 (http://, or https://
 * with CURL_HTTP_VERSION_1_1).
 *
 * Threading: every callback runs on the lws service thread. Only
 * set_faults, get_stats and received may be called from other threads.
 */
#ifndef PL_REFSERVER_HTTP_H
#define PL_REFSERVER_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#define PL_REFSERVER_HTTP_PROTOCOL_NAME "parley-http"
/* Streams per HTTP/2 connection: lws 4.1 counts our (immortal) streams per
 * connection in a byte and asserts fewer than 255. */
#define PL_REFSERVER_HTTP_MAX_H2_STREAMS 250

typedef struct pl_refserver_http pl_refserver_http;

typedef struct pl_refserver_http_opts {
    const char *api_key;     /* NULL: no key required */
    unsigned latency_ms;     /* delay before the first piece (default 0) */
    unsigned token_ms;       /* delay between pieces (default 0) */
    unsigned chunk_bytes;    /* bytes per piece (0 means 16) */
    uint64_t max_body_bytes; /* larger request bodies get 413 (0 means 1 MiB) */
    int quiet;               /* no log lines on stderr */
} pl_refserver_http_opts;

/* Fills opts with the defaults above. */
void pl_refserver_http_opts_init(pl_refserver_http_opts *opts);

/* NULL when out of memory. The strings in opts are copied. */
pl_refserver_http *pl_refserver_http_new(const pl_refserver_http_opts *opts);

/* Call after the lws context that used it is destroyed. */
void pl_refserver_http_free(pl_refserver_http *h);

/* The protocol entry to copy into the vhost's protocols array. */
extern const struct lws_protocols pl_refserver_http_protocol;

/* The two mounts (a static list: chain mounts of your own in front of it). */
const struct lws_http_mount *pl_refserver_http_mounts(void);

/*
 * The per-vhost option that tells the protocol which pl_refserver_http it
 * serves, with `next` chained behind it. It lives inside h.
 */
const struct lws_protocol_vhost_options *
pl_refserver_http_pvo(pl_refserver_http *h,
                      const struct lws_protocol_vhost_options *next);

/* Sets mounts, pvo, http2_settings and keepalive_timeout (see step 3). */
void pl_refserver_http_vhost_info(pl_refserver_http *h,
                                  struct lws_context_creation_info *info);

/*
 * For refserver.c's LWS_CALLBACK_HTTP_CONFIRM_UPGRADE (step 5): -1 when the
 * request is not an h2c upgrade on one of this module's paths (decide as
 * usual); otherwise it has answered 505 with a JSON error telling the
 * client to use HTTP/1.1 or h2 over TLS, and returns 1, which the callback
 * returns to lws. lws 4.1 cannot decline an h2c upgrade and serve the
 * request as HTTP/1.1, and its h2c path loses a POST body.
 */
int pl_refserver_http_confirm_upgrade(struct lws *wsi, const char *upgrade);

/* ---- faults ------------------------------------------------------------- */

enum pl_refserver_http_reject {
    PL_RSHTTP_REJECT_RATE_LIMITED = 0, /* 429 in both dialects */
    PL_RSHTTP_REJECT_OVERLOADED,       /* Anthropic 529, OpenAI 503 */
    PL_RSHTTP_REJECT_INTERNAL,         /* 500 in both dialects */
};

/*
 * Every knob is off at 0. "Every Nth" counts the valid requests (those that
 * passed authentication and validation) of both endpoints together, from 1,
 * restarting at each pl_refserver_http_set_faults(). A rejected request does
 * not count for drop, stall and error.
 */
typedef struct pl_refserver_http_faults {
    unsigned reject_every;    /* answer every Nth valid request with an error */
    int reject_kind;          /* enum pl_refserver_http_reject */
    unsigned reject_status;   /* non-zero: send this status instead (the
                                 error type follows the status) */
    int retry_after_s;        /* >= 0: "retry-after: S" on rejections */
    int retry_after_ms;       /* >= 0: "retry-after-ms: MS" on rejections */
    int should_retry;         /* 0: "x-should-retry: false", 1: "true" on
                                 rejections; -1: no header */
    unsigned drop_every;      /* cut every Nth served request off... */
    unsigned drop_after_pieces; /* ...once this many pieces were sent (0:
                                   right after the headers and any events
                                   that precede the first piece) */
    int drop_stream_only;     /* HTTP/2: reset only that stream (RST_STREAM)
                                 instead of closing the TCP connection */
    unsigned stall_every;     /* every Nth served request stops... */
    unsigned stall_after_pieces; /* ...after this many pieces: nothing more
                                    is sent and the connection stays open */
    unsigned error_every;     /* every Nth served request ends with an
                                 in-stream error event (overloaded)... */
    unsigned error_after_pieces; /* ...after this many pieces */
} pl_refserver_http_faults;

/*
 * Non-streaming requests hit by drop or stall get no answer at all (drop
 * closes the connection when the reply would have been complete up to
 * after_pieces; stall never answers); hit by error they get the overloaded
 * answer (Anthropic 529, OpenAI 503) instead of the reply.
 */

/* Fills f with every knob off (and the -1 "no header" values). */
void pl_refserver_http_faults_init(pl_refserver_http_faults *f);

/* Replace the knobs; any thread; applies to requests validated from now. */
void pl_refserver_http_set_faults(pl_refserver_http *h,
                                  const pl_refserver_http_faults *f);

/* ---- counters ----------------------------------------------------------- */

typedef struct pl_refserver_http_stats {
    uint64_t requests_messages;  /* requests to /v1/messages, any outcome */
    uint64_t requests_chat;      /* requests to /v1/chat/completions */
    uint64_t answered_ok;        /* 200 answers begun (JSON or stream) */
    uint64_t streams_started;    /* 200 event streams begun */
    uint64_t streams_completed;  /* event streams that sent their last event */
    uint64_t errors_sent;        /* 4xx/5xx answers, rejections included */
    uint64_t rejected;           /* by reject_every */
    uint64_t dropped;            /* by drop_every */
    uint64_t stalled;            /* by stall_every */
    uint64_t stream_errors;      /* by error_every */
    uint64_t connections;        /* distinct TCP connections that carried at
                                    least one request to these paths */
    uint64_t connections_h2;     /* ... of which HTTP/2 */
    uint64_t h2_unverified;      /* Anthropic requests over HTTP/2 whose key
                                    and version could not be checked */
    uint64_t in_flight;          /* requests begun and not yet ended */
    uint64_t max_in_flight;      /* the most in flight at once */
} pl_refserver_http_stats;

/* Any thread. */
void pl_refserver_http_get_stats(pl_refserver_http *h,
                                 pl_refserver_http_stats *stats);

/*
 * Copy of the body of the n-th request received on either path (0-based,
 * arrival order; bodies over max_body_bytes are not kept), or NULL when
 * fewer arrived. The caller frees it. At most the first 10000 are kept.
 */
char *pl_refserver_http_received(pl_refserver_http *h, size_t n);

#endif
