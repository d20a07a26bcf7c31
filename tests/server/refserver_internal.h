/*
 * The reference server's insides, shared by its core (refserver.c: the
 * service thread, the vhost, fault knobs, arrival times, the public API)
 * and its parley.v1 WebSocket front end (refserver_ws.c). The vendor HTTP
 * front ends (refserver_http.c) need none of it. Which thread may touch
 * what is said at the top of refserver.c.
 */
#ifndef PL_REFSERVER_INTERNAL_H
#define PL_REFSERVER_INTERNAL_H

#include "refserver.h"
#include "refserver_http.h"
#include "echo_model.h"
#include "echo_conversation.h"
#include "refserver_common.h"
#include "timer_queue.h"

#include <libwebsockets.h>
#include <json-c/json.h>
#include <zstd.h>

#include "compress.h"
#include "utf8.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#define PL_SERVER_NAME "parley-refserver/0.1.0"
#define PL_PROTOCOL "parley.v1"
#define PL_PROTOCOL_ZSTD "parley.v1.zstd"
/* Extension (docs/protocol.md): binary frames hold one gzip member. */
#define PL_PROTOCOL_GZIP "parley.v1.gzip"
#define PL_DICT_HEADER "x-parley-zstd-dict:" /* lws stores names lowercased */
#define PL_DICT_HEADER_MAX 256
/* zstd levels for what the server sends: with the dictionary level 3 is as
 * fast as 1 and a little smaller; without it level 1 is 20 % faster than 3
 * at the same size (docs/benchmarks.md). */
#define PL_ZSTD_LEVEL 1
#define PL_ZSTD_LEVEL_DICT 3
#define PL_GZIP_LEVEL 6
#define PL_TLS_ALPN "h2,http/1.1"
#define PL_PATH "/v1/stream"
/* GET: the last request received, for tests out of process. */
#define PL_LAST_REQUEST_PATH "/v1/refserver/last-request"
#define PL_RECEIVED_MAX 100000
#define PL_RX_BUFFER 65536        /* lws hands us frames in pieces this big */
#define PL_WRITES_PER_CALLBACK 64 /* let other connections get a turn */
/* Bytes of frames handed to lws in one write: lws_issue_raw sends at most
 * the protocol's rx_buffer_size (and a little) per call and copies the rest
 * aside, so one write of more would cost a copy. */
#define PL_TX_BATCH PL_RX_BUFFER
#define PL_MAX_AUTH_HEADER 4096
#define PL_ARRIVALS_MAX 1000000   /* arrival times kept, over all ids */
#define PL_OVERSIZED_DEFAULT (2u << 20)
#define PL_REJECT_CODE_MAX 32
#define PL_FAULT_SEED 0x5DEECE66Dull /* reject_fraction is deterministic */
#define PL_JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)


/* ---- data ------------------------------------------------------------ */

/* One serialized message waiting for the socket. */
struct outmsg {
    struct outmsg *next;
    uint64_t req_id;      /* request whose stream it belongs to; 0: none */
    int is_text;          /* a `text` piece (or its faulty stand-in) */
    int binary;           /* a compressed message, sent as a binary frame */
    int drop_here;        /* no message: drop_every's mark, the connection
                             drops once what precedes it is written */
    size_t len;
    unsigned char buf[];  /* LWS_PRE bytes of headroom, then the JSON */
};

/* Per-WebSocket state, allocated and zeroed by lws (per_session_data). */
struct conn {
    struct lws *wsi;               /* NULL until established */
    pl_refserver *srv;
    struct outmsg *out_head, **out_tail;
    struct request *attached;      /* requests whose messages go here */
    /* The message being reassembled from frames. */
    char *rx;
    size_t rx_len, rx_cap;
    int rx_too_large;
    struct conn *prev_open, *next_open; /* on srv->open_conns */
    /* drop_after_texts: texts written since the knobs of faults_gen. */
    uint64_t texts_written;
    unsigned faults_gen;
    int drop_pending;  /* drop once the socket has taken the last text */
    int dropped;       /* hard-dropped: no more input or output, closing */
    int silent;        /* stall_connection_every: reads and writes nothing */
    int batch_frames;  /* frames may go out several per write (not h2) */
    int zstd;          /* parley.v1.zstd was selected */
    int gzip;          /* parley.v1.gzip was selected (extension) */
    uint32_t zstd_dict; /* the dictionary agreed on (its id), 0: none */
};

/*
 * One acked request, kept while it generates and for idempotency_window_s
 * after its terminal message, so that a repeat can replay it.
 */
struct request {
    struct request *hash_next;
    struct request *expiry_next;           /* finished ones, oldest first */
    struct request *conn_prev, *conn_next; /* on conn->attached */
    struct conn *conn;       /* where its messages go; NULL: nowhere */
    uint64_t resume_from;    /* the attached requester has seq < this */
    pl_refserver *srv;
    pl_rs_timer step;        /* the next piece is due (srv->steps) */
    uint64_t id;
    char id_str[24];
    char *session;
    pl_echo_turn reply;      /* its blocks, their pieces and its usage */
    size_t generated;        /* pieces (stream units) produced so far */
    const char *stop_reason; /* NULL while generating */
    int64_t expires_ms;
    int stalled;             /* stall_every: acked, generation waits for a repeat */
    int error_pending;       /* error_every: fails once error_at pieces exist */
    size_t error_at;
    int drop_pending;        /* drop_every: drops its connection once... */
    size_t drop_at;          /* ...this many pieces exist */
};

/* Chained hash table id -> request, 2^bits buckets. */
struct req_table {
    struct request **buckets;
    unsigned bits;
    size_t count;
};

struct pl_stats_atomic {
    _Atomic uint64_t connections_accepted, connections_open,
        upgrades_refused, messages_received, requests_started,
        requests_replayed, cancels_received, errors_sent, pings_received,
        rejected, dropped, restarts, compressed_received, compressed_sent,
        dict_agreed, stream_errors, silenced;
};

/* Fault knobs with their own copy of the reject code. */
struct fault_knobs {
    pl_refserver_faults f;    /* f.reject_code points at code */
    char code[PL_REJECT_CODE_MAX];
};

/* The server thread's view of the knobs and its "every Nth" counters. */
struct fault_state {
    struct fault_knobs k;
    unsigned gen;             /* faults_gen this copy was taken at */
    uint64_t new_requests;    /* new requests since the knobs were set */
    uint64_t texts;           /* text messages emitted since then */
    uint64_t muted;           /* connections muted since then */
    uint64_t rng;             /* xorshift64* state for reject_fraction */
};

/* Arrival times of `message`s, per id (pl_refserver_arrivals). */
struct arrival {
    struct arrival *next;
    uint64_t id;
    size_t n, cap;
    int64_t *times_ms;
};

struct arrival_log {
    struct arrival **buckets;
    unsigned bits;
    size_t ids, total;
};

struct pl_refserver {
    pl_refserver_opts opts;   /* strings point at the copies below */
    char *bind_addr, *api_key, *tls_cert, *tls_key;
    pl_refserver_http *http;  /* the vendors' HTTP endpoints, same port */
    pthread_t thread;
    /* Start handshake, and the stop/destroy ordering (see service_main). */
    pthread_mutex_t lock;
    pthread_cond_t started_cond;
    int start_state;          /* 0 starting, 1 listening, -1 failed */
    char start_err[256];
    atomic_int stopping;
    struct lws_context *ctx;
    int port;
    int h2c_port;             /* 0: no h2c vhost (opts.h2c) */
    /* Restart handshake: asked by any thread, done (under lock) by the
     * server thread, which broadcasts restart_cond. */
    _Atomic uint64_t restarts_asked;
    uint64_t restarts_done;
    pthread_cond_t restart_cond;
    /* Server thread only. */
    pl_rs_timer_queue steps;  /* requests waiting for their next piece */
    pl_buf json;              /* the message being written */
    unsigned char *tx;        /* LWS_PRE + PL_TX_BATCH: frames to write */
    pl_buf zbuf;              /* the message being compressed */
    struct req_table reqs;
    struct request *expiry_head, *expiry_tail;
    struct conn *open_conns;
    struct fault_state faults;
    /* Any thread. */
    struct pl_stats_atomic stats;
    pl_rs_received_log received;
    pthread_mutex_t faults_lock;
    struct fault_knobs faults_set; /* under faults_lock */
    atomic_uint faults_gen;        /* bumped under faults_lock */
    _Atomic int64_t refuse_until_ms; /* upgrades get 503 before this */
    pthread_mutex_t arr_lock;
    struct arrival_log arrivals;   /* under arr_lock */
};

#define COUNT(srv, field) \
    atomic_fetch_add_explicit(&(srv)->stats.field, 1, memory_order_relaxed)

enum request_fault {
    REQUEST_SERVE, REQUEST_REJECT, REQUEST_STALL, REQUEST_SILENCE,
    REQUEST_ERROR, REQUEST_DROP
};

enum text_fault { TEXT_PLAIN, TEXT_MALFORMED, TEXT_OVERSIZED };

/* ---- the core, for the front end (refserver.c) ---------------------------- */

__attribute__((format(printf, 2, 3)))
void pl_rs_log(const pl_refserver *srv, const char *fmt, ...);
int64_t pl_rs_now_ms(void);
/* Fibonacci hashing of an id into 2^bits buckets. */
size_t pl_rs_hash_id(uint64_t id, unsigned bits);
/* A `message` with this valid id arrived now (pl_refserver_arrivals). */
void pl_rs_record_arrival(pl_refserver *srv, uint64_t id);
/* A malloc'd copy of the last request received on any front end
 * (pl_refserver_last_body), *len its bytes; NULL when none came. */
char *pl_rs_last_body(pl_refserver *srv, size_t *len);
/* The fault knobs as the server thread applies them. */
struct fault_state *pl_rs_faults(pl_refserver *srv);
/* Count one new request, or one text going out, and say what the knobs
 * make of it. */
enum request_fault pl_rs_next_request_fault(pl_refserver *srv);
enum text_fault pl_rs_next_text_fault(pl_refserver *srv, int *unknown_first);

/* ---- the WebSocket front end, for the core (refserver_ws.c) --------------- */

/* The callback of the parley.v1 protocols (and of plain HTTP requests that
 * no mount claims: upgrade checks, refusals). */
int pl_rs_ws_callback(struct lws *wsi, enum lws_callback_reasons reason,
                      void *user, void *in, size_t len);
void pl_rs_ws_table_init(struct req_table *t);
void pl_rs_ws_req_free(struct request *r);
/* Drop c at once, as a restart does (the next writeable callback closes). */
void pl_rs_ws_conn_hard_drop(struct conn *c);

#endif
