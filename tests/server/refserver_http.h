/*
 * The vendor HTTP dialects of the reference server: an lws protocol that
 * serves, beside the parley.v1 WebSocket protocol and on the same port,
 *
 *   POST /v1/messages          Anthropic Messages (JSON or server-sent events)
 *   POST /v1/chat/completions  OpenAI Chat Completions (JSON or SSE)
 *
 * both answered by the parley-echo-1 model (echo_blocks.h), paced like the
 * WebSocket server (latency_ms, token_ms, chunk_bytes), over HTTP/1.1
 * (keep-alive; event streams chunked, so a connection is reused for the
 * next request) and HTTP/2 (over TLS, by ALPN; many streams on one
 * connection), with fault knobs and counters for tests.
 *
 * ---- Wiring it into refserver.c ------------------------------------------
 *
 * 0. Build: add tests/server/echo_model.c echo_model.h refserver_http.c
 *    refserver_http.h refserver_http_anthropic.c refserver_http_openai.c
 *    refserver_http_private.h to libparley_refserver_la_SOURCES in
 *    Makefile.am (its CFLAGS/LIBADD already carry lws and json-c; dlsym is
 *    in glibc's libc).
 *
 * 1. Create the module before the vhost, with the server's settings:
 *
 *        pl_refserver_http_opts ho;
 *        pl_refserver_http_opts_init(&ho);
 *        ho.api_key = srv->api_key;         (NULL: no key checked)
 *        ho.latency_ms = o->latency_ms;
 *        ho.token_ms = o->token_ms;
 *        ho.chunk_bytes = o->chunk_bytes;
 *        ho.max_body_bytes = o->max_message_bytes;   (413 above it)
 *        ho.quiet = o->quiet;
 *        srv->http = pl_refserver_http_new(&ho);  (copies the key)
 *
 * 2. Protocols: the WebSocket protocol stays protocols[0] (lws gives
 *    protocols[0] every request that no mount claims, and the WebSocket
 *    clients that select no subprotocol). A struct cannot be copied in a
 *    static initializer, so the array becomes run-time data that lives as
 *    long as the vhost (lws keeps the pointer), e.g. in struct pl_refserver:
 *
 *        struct lws_protocols protocols[3];
 *        ...
 *        srv->protocols[0] = (struct lws_protocols){ <today's entry> };
 *        srv->protocols[1] = pl_refserver_http_protocol;
 *        srv->protocols[2] = (struct lws_protocols){ .name = NULL };
 *        info.protocols = srv->protocols;
 *
 * 3. Vhost fields, with one call after the others are set and before
 *    lws_create_vhost():
 *
 *        pl_refserver_http_vhost_info(srv->http, &info);
 *
 *    It sets info.mounts (the two paths, bound to this protocol; they are
 *    a static list, so mounts of refserver's own would chain in front),
 *    chains its per-vhost option in front of info.pvo (how the protocol
 *    finds srv->http), raises the HTTP/2 streams per connection from lws
 *    4.1's 24 to PL_REFSERVER_HTTP_MAX_H2_STREAMS through
 *    info.http2_settings (when [0] is 0), and sets info.keepalive_timeout
 *    to 60 s when it is 0 (lws's 5 s is how long an idle HTTP/1.1
 *    keep-alive or HTTP/2 connection stays open: clients would find it
 *    closed between turns). retry_and_idle_policy and options are left as
 *    they are.
 *
 * 4. TLS (optional; HTTP/2 is offered over TLS only): add
 *    LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT to the *context* options and set
 *    info.ssl_cert_filepath and info.ssl_private_key_filepath on the
 *    vhost. lws 4.1 built with LWS_WITH_HTTP2 (Debian's is) then offers
 *    ALPN "h2,http/1.1" by itself. WebSocket clients ask for http/1.1 and
 *    keep working on the same port. info.alpn = "http/1.1" would turn
 *    HTTP/2 off (see the limits below for why a test may want that).
 *
 * 5. In refserver.c's LWS_CALLBACK_HTTP_CONFIRM_UPGRADE handler, first:
 *
 *        int n = pl_refserver_http_confirm_upgrade(wsi, in);
 *        if (n >= 0)
 *            return n;
 *
 *    curl's "Upgrade: h2c" on plain http:// (curl --http2, or libcurl with
 *    CURL_HTTP_VERSION_2_0) reaches protocols[0]'s upgrade hook, which
 *    today answers 404 for these paths; this answers a 400 in the
 *    dialect's error shape that says what to use instead.
 *
 * 6. Stop: after lws_context_destroy() (which ends every stream and
 *    cancels their timers), pl_refserver_http_free(srv->http).
 *
 * 7. Expose the knobs and counters through refserver.h as wanted:
 *    pl_refserver_http_set_faults(), pl_refserver_http_get_stats() and
 *    pl_refserver_http_received() are safe from any thread.
 *
 * Everything else runs on the lws service thread. The module marks each
 * connection that carries one of its requests with
 * lws_set_opaque_user_data() on the network wsi (to count connections):
 * refserver.c must not use that pointer on HTTP connections.
 *
 * ---- lws 4.1.6 limits, and workarounds ----------------------------------
 *
 * - Unknown headers are dropped by lws 4.1's HPACK decoder, and
 *   lws_hdr_custom_length() refuses HTTP/2 streams: over HTTP/2 the server
 *   cannot see `x-api-key` or `anthropic-version`, so those two checks are
 *   skipped there (counted in h2_unverified). `Authorization` is a known
 *   header, checked on both versions: OpenAI's key, and an Anthropic key
 *   sent as a bearer token (as the official SDKs send it; x-api-key wins
 *   when both come). Test the Anthropic x-api-key and version checks over
 *   HTTP/1.1 (http://, or CURL_HTTP_VERSION_1_1).
 * - lws 4.1 answers GOAWAY to a request body whose last DATA frame shares a
 *   read with any later frame: what every client multiplexing POSTs sends.
 *   refserver_http.c interposes lws_hdr_total_length() (for the
 *   content-length of HTTP/2 streams only) to get past that check, and
 *   ends HTTP/2 bodies by their length itself; see the end of that file.
 *   The interposition covers every lws server in the program.
 * - lws 4.1 opens a stream's receive window by 256 KiB once, and a body
 *   sent at once never gets it refilled: the protocol refills it itself
 *   (lws_h2_update_peer_txcredit), so bodies up to max_body_bytes work.
 * - lws 4.1 also adds those 256 KiB to the *connection's* window for every
 *   new stream, so after about 8190 streams on one connection the window
 *   passes 2^31-1 and the client (nghttp2) drops the connection with a
 *   flow-control error (curl: "Error in the HTTP2 framing layer"). Tests
 *   that send more requests than that on one connection must expect it.
 * - A stream that its user closes gets no RST_STREAM from lws 4.1, so a
 *   reset of one stream cannot be injected: the drop fault closes the
 *   connection, or (drop_by_ending) ends the answer early and cleanly.
 * - lws 4.1 cannot serve an h2c upgrade (see step 5). It serves h2c with
 *   prior knowledge, but for a whole vhost: refserver.c's opts.h2c adds one
 *   on a port of its own.
 * - HTTP/1.1: lws 4.1 never answers "Expect: 100-continue", which curl
 *   sends for bodies over 1 MiB; curl then waits 1 s before sending it.
 */
#ifndef PL_REFSERVER_HTTP_H
#define PL_REFSERVER_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#define PL_REFSERVER_HTTP_PROTOCOL_NAME "parley-http"
/* Streams per HTTP/2 connection. Each of ours is "immortal" (exempt from
 * lws's timeouts), and lws 4.1 counts those per connection in a byte,
 * asserting fewer than 255. libcurl uses at most 100 by default
 * (CURLMOPT_MAX_CONCURRENT_STREAMS). */
#define PL_REFSERVER_HTTP_MAX_H2_STREAMS 250

typedef struct pl_refserver_http pl_refserver_http;

typedef struct pl_refserver_http_opts {
    const char *api_key;     /* NULL: no key required */
    unsigned latency_ms;     /* delay before the first piece (default 0) */
    unsigned token_ms;       /* delay between pieces (default 0) */
    unsigned chunk_bytes;    /* bytes per piece (0 means 16) */
    uint64_t max_body_bytes; /* larger request bodies get 413 (0 means 1 MiB) */
    int quiet;               /* no log lines on stderr */
    const char *model;       /* the one model served (the echo model under
                                another name, e.g. a vendor's); NULL:
                                parley-echo-1 */
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
 * usual); otherwise it has answered 400 in the dialect's error shape (use
 * HTTP/1.1, or HTTP/2 over TLS; the connection then closes) and returns 1,
 * for the callback to return to lws. lws 4.1 cannot decline an h2c
 * upgrade and serve HTTP/1.1 instead, and accepting it loses the request
 * (101, then curl: "Error in the HTTP2 framing layer").
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
 * not count for drop, stall and error; when several of those hit the same
 * request, drop wins over stall and stall over error. "After K pieces"
 * acts between piece K and K+1 (K = the reply's piece count: after the last
 * piece, before the closing events); a reply with fewer pieces is not hit.
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
                                   that precede the first piece), by closing
                                   the TCP connection (on HTTP/2: with every
                                   stream on it) */
    int drop_by_ending;       /* instead, end the answer cleanly there (the
                                 last chunk / END_STREAM): an event stream
                                 without its closing events, a JSON answer
                                 as an empty 200; the connection stays. (lws
                                 4.1 cannot reset one HTTP/2 stream.) */
    unsigned stall_every;     /* every Nth served request stops... */
    unsigned stall_after_pieces; /* ...after this many pieces: nothing more
                                    is sent and the connection stays open */
    unsigned error_every;     /* every Nth served request ends with an
                                 in-stream error event (overloaded)... */
    unsigned error_after_pieces; /* ...after this many pieces */
    unsigned unknown_every;   /* an event stream carries an event of an
                                 unknown kind before every Nth piece of each
                                 reply (Anthropic: an event type from the
                                 future; OpenAI: an SSE comment and a chunk
                                 with no choices and an unknown member) */
    unsigned write_bytes;     /* tiny writes: the body goes out this many
                                 bytes per write (each its own chunk on
                                 HTTP/1.1), cutting events anywhere */
} pl_refserver_http_faults;

/*
 * Non-streaming requests hit by drop or stall get no answer at all (drop
 * closes the connection when the reply would have had after_pieces pieces;
 * stall never answers); hit by error they get the overloaded answer
 * (Anthropic 529, OpenAI 503) instead of the reply.
 */

/* Fills f with every knob off (and the -1 "no header" values). */
void pl_refserver_http_faults_init(pl_refserver_http_faults *f);

/* Replace the knobs; any thread; applies to requests validated from now. */
void pl_refserver_http_set_faults(pl_refserver_http *h,
                                  const pl_refserver_http_faults *f);

/*
 * For pl_refserver_restart, on the lws service thread: cut off every reply
 * under way by closing its connection, as a crashed server would.
 */
void pl_refserver_http_restart(pl_refserver_http *h);

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
    uint64_t unknown_sent;       /* events by unknown_every */
    uint64_t connections;        /* distinct TCP connections that carried at
                                    least one request to these paths */
    uint64_t connections_h2;     /* ... of which HTTP/2 */
    uint64_t h2_unverified;      /* Anthropic requests over HTTP/2 whose key
                                    could not be checked (no bearer token) */
    uint64_t in_flight;          /* requests begun and not yet ended */
    uint64_t max_in_flight;      /* the most in flight at once */
} pl_refserver_http_stats;

/* Any thread. */
void pl_refserver_http_get_stats(pl_refserver_http *h,
                                 pl_refserver_http_stats *stats);

/*
 * Copy of the body of the n-th POST received on either path (0-based, in
 * the order their bodies completed; "" for a body over max_body_bytes), or
 * NULL when fewer arrived. The caller frees it. The first 10000 are kept.
 */
char *pl_refserver_http_received(pl_refserver_http *h, size_t n);

/*
 * A copy of the last POST body received (whatever the count), its length
 * in *len and in *order its place among every message the reference
 * server's front ends received (later is larger); NULL when none came.
 */
char *pl_refserver_http_last_body(pl_refserver_http *h, size_t *len,
                                  uint64_t *order);

/* The anthropic-beta header of the last Anthropic request over HTTP/1.1
 * ("" when it had none), into buf: tests of extra headers. */
void pl_refserver_http_last_beta(pl_refserver_http *h, char *buf, size_t size);

#endif
