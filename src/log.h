/*
 * Logging: formats a line, redacts the API key from it, escapes its control
 * characters (safe_text.h), and hands it to the user's log callback or
 * stderr. Callable from any thread.
 */
#ifndef PL_LOG_H
#define PL_LOG_H

#include <stddef.h>

#include "parley.h"

/* Whether a line at `level` would be logged. */
#define PL_LOG_ON(client, level) ((level) <= (client)->conf->log_level)

void pl_log(const parley_client_t *client, int level, const char *facility,
            const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Log libcurl's trace (one or more lines) at debug level. Header lines
 * naming credentials (Authorization, Proxy-Authorization, Cookie,
 * x-api-key), and libcurl's HTTP/2 trace of such headers, lose their value.
 */
void pl_log_curl_trace(const parley_client_t *client, const char *line,
                       size_t len);

#endif
