/*
 * parley-refserver as a library: a libwebsockets server of the parley.v1
 * protocol (docs/protocol.md) running on its own thread, so tests can
 * start it in-process, inspect what it received and stop it. The
 * parley-refserver program is a thin main over this API.
 */
#ifndef PL_REFSERVER_H
#define PL_REFSERVER_H

#include <stddef.h>
#include <stdint.h>

typedef struct pl_refserver pl_refserver;

typedef struct pl_refserver_opts {
    const char *bind_addr;   /* default "127.0.0.1" */
    int port;                /* 0 picks a free port */
    const char *api_key;     /* NULL: no key required */
    unsigned latency_ms;     /* delay before the first piece (default 0) */
    unsigned token_ms;       /* delay between pieces (default 0) */
    unsigned chunk_bytes;    /* bytes per piece (0 means the default 16) */
    unsigned heartbeat_s;    /* announced in hello (0 means 30) */
    uint64_t max_message_bytes; /* announced and enforced (0 means 1 MiB) */
    unsigned idempotency_window_s; /* announced and kept (0 means 600) */
    int quiet;               /* no log lines on stderr */
    /* Compression (docs/protocol.md). Zeroed opts have both off;
     * pl_refserver_opts_init turns both on. */
    int zstd;                /* select parley.v1.zstd when the client offers it */
    int gzip;                /* select parley.v1.gzip (extension) when offered */
    int zstd_dict;           /* agree on the parley-v1 dictionary when the
                                client's X-Parley-Zstd-Dict names its id */
    /* TLS: with a certificate the server speaks wss:// (ALPN h2, http/1.1)
     * instead of ws://. PEM files; a NULL key means the certificate file
     * holds the key too. */
    const char *tls_cert_file;
    const char *tls_key_file;
    /* The model the HTTP endpoints serve (the echo model under that name,
     * to stand in for a vendor); NULL: parley-echo-1. Copied at start. */
    const char *http_model;
    /* Also serve the HTTP endpoints as HTTP/2 over cleartext with prior
     * knowledge (h2c), on a free port of its own (pl_refserver_h2c_port):
     * lws 4.1 makes every cleartext connection of such a port speak
     * HTTP/2, so WebSocket and HTTP/1.1 stay on the main port. */
    int h2c;
} pl_refserver_opts;

/* Fills opts with the defaults above. */
void pl_refserver_opts_init(pl_refserver_opts *opts);

/*
 * Start serving on a background thread. Returns NULL (and writes a reason
 * into err) when the port cannot be bound.
 */
pl_refserver *pl_refserver_start(const pl_refserver_opts *opts, char *err,
                                 size_t err_size);

/* The port actually bound. */
int pl_refserver_port(const pl_refserver *srv);

/* The h2c port (opts.h2c), or 0 without one. */
int pl_refserver_h2c_port(const pl_refserver *srv);

/* The vendors' HTTP endpoints (POST /v1/messages, /v1/chat/completions)
 * served on the same port, for their fault knobs and counters
 * (refserver_http.h). Valid while the server runs. */
struct pl_refserver_http *pl_refserver_http_of(pl_refserver *srv);

/* Stop the thread, close every connection and free everything. */
void pl_refserver_stop(pl_refserver *srv);

/* Counters, safe to read from any thread while the server runs. */
typedef struct pl_refserver_stats {
    uint64_t connections_accepted; /* WebSocket upgrades completed */
    uint64_t connections_open;     /* currently open */
    uint64_t upgrades_refused;     /* 401 (bad key) and 404 answers */
    uint64_t messages_received;    /* client messages (any type) */
    uint64_t requests_started;     /* message requests that began a generation */
    uint64_t requests_replayed;    /* repeats served from idempotency state */
    uint64_t cancels_received;
    uint64_t errors_sent;
    uint64_t pings_received;
    uint64_t rejected;             /* rejections by the fault knobs */
    uint64_t dropped;              /* connections dropped by the fault knobs */
    uint64_t restarts;             /* pl_refserver_restart() calls */
    uint64_t compressed_received;  /* binary (zstd) messages received */
    uint64_t compressed_sent;      /* messages sent as binary zstd frames */
    uint64_t dict_agreed;          /* connections that agreed on the dictionary */
    uint64_t stream_errors;        /* requests ended by error_every */
    uint64_t silenced;             /* connections silenced by
                                      stall_connection_every */
} pl_refserver_stats;

void pl_refserver_get_stats(pl_refserver *srv, pl_refserver_stats *stats);

/*
 * Copy of the raw JSON text of the n-th client message received (0-based,
 * in arrival order over all connections), or NULL when fewer arrived. The
 * caller frees it. The server keeps at most the first 100000 messages.
 */
char *pl_refserver_received(pl_refserver *srv, size_t n);

/*
 * The last request the server received on any front end: the body of the
 * last POST to /v1/messages or /v1/chat/completions, or the last WebSocket
 * client message, whichever came later (the received logs' limits do not
 * apply), so that a test can check which parameters passed through. Like
 * snprintf: copies at most size - 1 bytes and a terminator into buf (when
 * size > 0) and returns the body's whole length; 0 when none came. Out of
 * process: GET /v1/refserver/last-request (HTTP/1.1) answers the same.
 */
size_t pl_refserver_last_body(pl_refserver *srv, char *buf, size_t size);

/* ---- Faults, for reliability tests ------------------------------------- */

/*
 * Fault knobs. "New request" counts distinct ids (a repeat is not new), in
 * arrival order over all connections, from 1. Every knob is off at 0.
 */
typedef struct pl_refserver_faults {
    unsigned reject_every;       /* reject every Nth new request instead of ack */
    double reject_fraction;      /* or each new request with this probability */
    const char *reject_code;     /* "rate_limited" (default), "overloaded", "internal" */
    int retry_after_ms;          /* sent with rejections; -1 omits the field */
    unsigned drop_after_texts;   /* drop a connection (TCP, no Close) after
                                    every K text messages sent on it */
    unsigned stall_every;        /* every Nth new request gets its ack, then
                                    nothing until it is repeated */
    unsigned malformed_every;    /* every Nth text message goes out as invalid
                                    JSON that still names the request id */
    unsigned unknown_every;      /* an unknown-type message before every Nth text */
    unsigned oversized_every;    /* every Nth text is padded beyond
                                    oversized_bytes (and names its id first) */
    uint64_t oversized_bytes;    /* size of those messages (0: 2 MiB) */
    unsigned mute_connections;   /* the next N connections send hello, then
                                    read and write nothing: they look dead */
    unsigned error_every;        /* every Nth new request ends with an
                                    `internal` error after... */
    unsigned error_after_pieces; /* ...this many of its pieces (a shorter
                                    reply is not hit); it is then forgotten */
    unsigned stall_connection_every; /* every Nth new request silences its
                                    connection: from then on it sends nothing
                                    and reads nothing (Pings go unanswered),
                                    while the TCP connection stays open */
    unsigned drop_every;         /* every Nth new request drops its
                                    connection (TCP, no Close) once... */
    unsigned drop_after_pieces;  /* ...this many of its pieces were written
                                    (0: right after its ack), with whatever
                                    was queued before them */
    unsigned fragment_bytes;     /* tiny frames: every message goes out as
                                    fragments (continuation frames) of at most
                                    this many bytes */
} pl_refserver_faults;

/* Replace the fault knobs (any thread; applies to what happens next). The
 * strings are copied. */
void pl_refserver_set_faults(pl_refserver *srv, const pl_refserver_faults *f);

/*
 * Behave as a restarted server: close every connection abruptly and forget
 * every request (idempotency state), but keep listening on the same port.
 * The HTTP endpoints' replies under way are cut off too (their connections
 * closed).
 */
void pl_refserver_restart(pl_refserver *srv);

/* Answer upgrade requests with HTTP 503 for the next `ms` milliseconds. */
void pl_refserver_refuse_for(pl_refserver *srv, unsigned ms);

/*
 * The CLOCK_MONOTONIC times (ms) at which `message` messages carrying `id`
 * arrived (the first send and each repeat), oldest first. Returns how many
 * there were; at most `max` are copied into times_ms.
 */
size_t pl_refserver_arrivals(pl_refserver *srv, uint64_t id, int64_t *times_ms,
                             size_t max);

#endif
