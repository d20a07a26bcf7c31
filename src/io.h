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
    parley_session_t *session; /* SEND: holds a session reference */
    char *frame;               /* SEND: the encoded message, without resume_from */
    size_t frame_len;
} pl_io_request;

pl_io *pl_io_new(parley_client_t *client, char *errstr, size_t errstr_size);
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
