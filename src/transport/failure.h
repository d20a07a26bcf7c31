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

/* The vendor's x-should-retry header. Absent is zero, so that every
 * failure that is not a refusal leaves it out. */
typedef enum pl_retry_advice {
    PL_ADVICE_NONE = 0,
    PL_ADVICE_NO,
    PL_ADVICE_YES
} pl_retry_advice;

typedef struct pl_failure {
    pl_fail_kind kind;
    parley_err_t err;  /* the request ends with this when not tried again */
    long status;       /* REFUSED: the HTTP status */
    bool upgrade;      /* REFUSED: the answer to a WebSocket upgrade */
    pl_retry_advice should_retry; /* REFUSED: the x-should-retry header */
    bool started;      /* the reply started: acked (native) or a piece came (HTTP) */
    bool resumable;    /* LOST: the transport resumes a started reply (native) */
} pl_failure;

#endif
