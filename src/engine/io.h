/*
 * The I/O thread: owns the curl multi handle, the transport (transport.h)
 * and the requests in flight (route_policy.h). Session actors hand it
 * requests through a lock-free queue (mpsc.h) and wake it with
 * pl_io_events_wake() (io_events.h); what the server sends back goes to the sessions
 * through the sink (sink.h).
 */
#ifndef PL_IO_H
#define PL_IO_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "counters.h"
#include "dialect.h"
#include "reply.h"
#include "easy.h"
#include "log.h"
#include "mpsc.h"
#include "parley.h"
#include "pool.h"
#include "sink.h"

typedef struct pl_io pl_io;

typedef enum pl_io_op {
    PL_IO_SEND = 1, /* a new turn */
    PL_IO_CANCEL    /* cancel request `id` */
} pl_io_op;

/* An order for the I/O thread; it takes ownership. */
typedef struct pl_io_request {
    pl_mpsc_node entry;
    pl_io_op op;
    uint64_t id;
    void *owner;                /* SEND: its session, holding a reference */
    const char *owner_id;       /* SEND: the session's id, as long as owner */
    char *frame;               /* SEND: the encoded message, without resume_from */
    size_t frame_len;
    char *headers;             /* SEND: extra HTTP header lines ('\n'-joined); NULL: none */
    bool needs_blocks;         /* SEND: native: only for a server with `blocks` */
} pl_io_request;

/* What the I/O thread reads of the client: the settings (each one is the
 * property of the same name, docs/configuration.md), taken once when the
 * client is made, and the shared pieces it uses. Strings and pointers are
 * the client's and outlive the I/O thread. */
typedef struct pl_io_settings {
    const char *endpoint;          /* as configured, with the dialect's path */
    const char *endpoint_shown;    /* as messages show it (pl_safe_url) */
    const char *dialect_shown;     /* the dialect and why, for messages */
    pl_dialect dialect;
    const char *api_key;
    const char *anthropic_version;
    const char *compression;       /* "zstd", "gzip" or "none"; NULL: none */
    bool compression_dict;
    unsigned connections;          /* native WebSocket connections */
    int heartbeat_interval_s;
    int connect_timeout_ms;
    int64_t max_message_bytes;
    int64_t reply_max_bytes;
    int retry_max_attempts;
    int retry_backoff_ms, retry_backoff_max_ms;
    int reconnect_backoff_ms, reconnect_backoff_max_ms;
    int request_timeout_ms;        /* 0: none */
    int stall_timeout_ms;          /* 0: none */
    int stall_ping_timeout_ms;
    int http_idle_connections;
    int http_max_connections;      /* 0: no bound */
    int stats_interval_ms;         /* 0: no statistics */
    pl_easy_opts easy;             /* TLS and connect timeout; the rest set here */
    const char *connect_to;        /* curl's CONNECT_TO entries, comma-separated */
    pl_pool *pool;                 /* the workers the sink's posts wake */
    pl_counters *counters;
    const pl_logger *log;
    /* The session store (docs/cluster.md); store_url NULL: memory, none. */
    const char *store_url;         /* redis://[user@]host:port[/db] */
    const char *store_password;    /* NULL: no AUTH; never logged */
    const char *store_key_prefix;
    const char *store_owner;       /* this client's name in leases */
    int store_lease_ms;
    int store_ttl_s;               /* idle conversations' keys; 0: kept */
    int store_timeout_ms;          /* one round trip before it counts as lost */
} pl_io_settings;

pl_io *pl_io_new(const pl_io_settings *settings, const pl_io_sink *sink, char *errstr,
                 size_t errstr_size);
/* Start the thread. Returns 0 or -1. */
int pl_io_start(pl_io *io);
/* Hand over a request (any thread, lock-free). */
void pl_io_submit(pl_io *io, pl_io_request *req);
/* Hand over a store order (any thread, lock-free); its end is the sink's
 * store_done, also when there is no store or the thread stops. */
void pl_io_store(pl_io *io, pl_store_order *order);
/*
 * Stop the thread: every request it holds or that was submitted ends with a
 * PARLEY_ERR_SHUTDOWN error posted to its session. Works when never started.
 */
void pl_io_stop(pl_io *io);
void pl_io_free(pl_io *io);

#endif
