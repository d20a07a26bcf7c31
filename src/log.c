#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "client.h"

#define LOG_LINE_MAX 1024
#define REDACTED "[redacted]"

static const char *level_name(int level)
{
    switch (level) {
    case PARLEY_LOG_ERROR: return "ERROR";
    case PARLEY_LOG_WARNING: return "WARNING";
    case PARLEY_LOG_NOTICE: return "NOTICE";
    case PARLEY_LOG_INFO: return "INFO";
    case PARLEY_LOG_DEBUG: return "DEBUG";
    }
    return level < PARLEY_LOG_ERROR ? "CRITICAL" : "DEBUG";
}

/* Replace every occurrence of the key in line (size bytes of room). The
 * key is never logged on purpose; this catches what a server or libcurl
 * might echo back. */
static void redact_key(char *line, size_t size, const char *key)
{
    size_t klen = key ? strlen(key) : 0;
    if (klen < 4)
        return; /* too short to tell from ordinary text */
    char *hit;
    while ((hit = strstr(line, key))) {
        size_t tail = strlen(hit + klen);
        size_t rlen = sizeof(REDACTED) - 1;
        if ((size_t)(hit - line) + rlen + tail + 1 > size)
            tail = size - (size_t)(hit - line) - rlen - 1;
        memmove(hit + rlen, hit + klen, tail);
        memcpy(hit, REDACTED, rlen);
        hit[rlen + tail] = '\0';
    }
}

static void emit(const parley_client_t *c, int level, const char *facility,
                 char *line)
{
    redact_key(line, LOG_LINE_MAX, c->api_key);
    if (c->conf->log_cb)
        c->conf->log_cb(c, level, facility, line, c->conf->log_opaque);
    else
        fprintf(stderr, "parley %s %s: %s\n", level_name(level), facility, line);
}

void pl_log(const parley_client_t *c, int level, const char *facility,
            const char *fmt, ...)
{
    if (!PL_LOG_ON(c, level))
        return;
    char line[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    emit(c, level, facility, line);
}

static bool names_credentials(const char *line, size_t len)
{
    static const char *const headers[] = {"authorization:", "proxy-authorization:",
                                          "cookie:", "x-api-key:"};
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        size_t n = strlen(headers[i]);
        if (len >= n && strncasecmp(line, headers[i], n) == 0)
            return true;
    }
    return false;
}

void pl_log_curl_trace(const parley_client_t *c, const char *data, size_t len)
{
    if (!PL_LOG_ON(c, PARLEY_LOG_DEBUG))
        return;
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl ? (size_t)(nl - data) : len;
        size_t shown = n;
        while (shown > 0 && data[shown - 1] == '\r')
            shown--;
        if (shown > 0) {
            char line[LOG_LINE_MAX];
            if (names_credentials(data, shown)) {
                const char *colon = memchr(data, ':', shown);
                snprintf(line, sizeof(line), "%.*s " REDACTED,
                         (int)(colon - data + 1), data);
            } else {
                snprintf(line, sizeof(line), "%.*s", (int)shown, data);
            }
            emit(c, PARLEY_LOG_DEBUG, "curl", line);
        }
        data += nl ? n + 1 : n;
        len -= nl ? n + 1 : n;
    }
}
