/*
 * What went wrong with a request or its connection, as facts: the transports
 * (and the I/O thread for the native protocol) describe a failure, the
 * engine alone decides whether to try again (engine/classify.h).
 */
#ifndef PL_FAILURE_H
#define PL_FAILURE_H

#include <stdbool.h>

#include "parley.h"

typedef enum pl_fail_kind {
    PL_FAIL_START = 1, /* the transfer could not be started (libcurl handle) */
    PL_FAIL_NETWORK,   /* no usable answer: DNS, connect, reset, timeout */
    PL_FAIL_TLS,       /* TLS verification or setup: the same again next time */
    PL_FAIL_REFUSED,   /* the server answered with an error status */
    PL_FAIL_SERVER,    /* the server's own error message about this request */
    PL_FAIL_LOST,      /* the connection or stream ended before the reply */
    PL_FAIL_INVALID    /* the server broke the protocol or a bound */
} pl_fail_kind;

typedef struct pl_failure {
    pl_fail_kind kind;
    parley_err_t err;  /* the request ends with this when not tried again */
    long status;       /* REFUSED: the HTTP status */
    bool upgrade;      /* REFUSED: the answer to a WebSocket upgrade */
    int should_retry;  /* REFUSED: the x-should-retry header: -1 absent, 0, 1 */
    bool started;      /* the reply started: acked (native) or a piece came (HTTP) */
    bool resumable;    /* LOST: the transport resumes a started reply (native) */
} pl_failure;

#endif
