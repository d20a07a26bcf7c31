/*
 * The I/O thread: owns the curl multi handle and every connection. Session
 * actors hand it requests through a lock-free queue (mpsc.h) and wake it with
 * curl_multi_wakeup(); it routes what the server sends back to the sessions
 * by request id.
 */
#ifndef PL_IO_H
#define PL_IO_H

#include <stddef.h>
#include <stdint.h>

#include "mpsc.h"
#include "parley.h"

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
} pl_io_request;

struct pl_ws_conn;

/* What the I/O thread contributes to the statistics: its connections,
 * requests and the dialect's answers by kind. Valid only during the sink's
 * stats call. */
typedef struct pl_io_stats_view {
    const struct pl_ws_conn *conns; /* native dialect; NULL for HTTP */
    unsigned nconns;
    size_t routes;           /* requests the I/O thread holds */
    size_t routes_waiting;   /* of which waiting to be sent again */
    size_t timers;           /* pending timers: at most one per route */
    const uint64_t *server_errors; /* native: error messages by pl_server_err */
    const uint64_t *http_status;   /* HTTP: answers by status / 100; [0]: none */
    uint64_t http2_answers;
} pl_io_stats_view;

/* Where results go, upward: the I/O thread knows a request's owner (its
 * session) only as a pointer. Every call is made on the I/O thread; each
 * SEND ends with exactly one of error or done, then one release. */
typedef struct pl_io_sink {
    void (*text)(void *owner, uint64_t id, uint32_t seq, const char *text, size_t len);
    void (*done)(void *owner, uint64_t id, const char *stop_reason, uint64_t input_tokens,
                 uint64_t output_tokens);
    void (*error)(void *owner, uint64_t id, parley_err_t err, const char *message);
    void (*release)(void *owner); /* the SEND's reference on its owner */
    /* A statistics document is due (statistics.interval.ms). */
    void (*stats)(void *stats_ctx, const pl_io_stats_view *view);
    void *stats_ctx;
} pl_io_sink;

pl_io *pl_io_new(parley_client_t *client, const pl_io_sink *sink, char *errstr,
                 size_t errstr_size);
/* Start the thread. Returns 0 or -1. */
int pl_io_start(pl_io *io);
/* Hand over a request (any thread, lock-free). */
void pl_io_submit(pl_io *io, pl_io_request *req);
/*
 * Stop the thread: every request it holds or that was submitted ends with a
 * PARLEY_ERR_SHUTDOWN error posted to its session. Works when never started.
 */
void pl_io_stop(pl_io *io);
void pl_io_free(pl_io *io);

#endif
