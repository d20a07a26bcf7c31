/*
 * Logging: formats a line, redacts the API key from it, escapes its control
 * characters (safe_text.h), and hands it to the user's log callback or
 * stderr. Callable from any thread.
 */
#ifndef PL_LOG_H
#define PL_LOG_H

#include <stddef.h>

#include "parley.h"

/* Where a client's lines go: the level, the user's callback (NULL: stderr)
 * and the key to take out of every line. Filled once when the client is
 * made, read-only after; a logger does not know the client it serves. */
typedef struct pl_logger {
    int level;                     /* lines above it are dropped */
    parley_log_cb *cb;
    void *opaque;
    const parley_client_t *client; /* handed to cb */
    const char *api_key;           /* NULL: none to take out */
} pl_logger;

/* Whether a line at `level` would be logged. */
#define PL_LOG_ON(logger, at) ((at) <= (logger)->level)

void pl_log(const pl_logger *log, int level, const char *facility, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Log libcurl's trace (one or more lines) at debug level. Header lines
 * naming credentials (Authorization, Proxy-Authorization, Cookie,
 * x-api-key), and libcurl's HTTP/2 trace of such headers, lose their value.
 */
void pl_log_curl_trace(const pl_logger *log, const char *line, size_t len);

#endif
