#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "safe_text.h"

#define LOG_LINE_MAX 1024

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

/* Every line leaves through here: the key is never logged on purpose, and
 * this takes out what a server or libcurl might echo back, and escapes the
 * control characters a server could forge lines or drive a terminal with. */
static void emit(const pl_logger *log, int level, const char *facility,
                 const char *text, size_t len)
{
    char line[LOG_LINE_MAX];
    pl_safe_text(line, sizeof(line), text, len, log->api_key);
    if (log->cb)
        log->cb(log->client, level, facility, line, log->opaque);
    else
        fprintf(stderr, "parley %s %s: %s\n", level_name(level), facility, line);
}

void pl_log(const pl_logger *log, int level, const char *facility, const char *fmt, ...)
{
    if (!PL_LOG_ON(log, level))
        return;
    /* The whole text is redacted before it is cut to a line, so that a cut
     * never leaves part of the key behind. */
    char line[LOG_LINE_MAX];
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    char *whole = n >= (int)sizeof(line) ? malloc((size_t)n + 1) : NULL;
    if (whole)
        vsnprintf(whole, (size_t)n + 1, fmt, again);
    va_end(again);
    if (n < 0)
        return;
    if (whole)
        emit(log, level, facility, whole, (size_t)n);
    else /* short, or out of memory: then the key's start is still caught */
        emit(log, level, facility, line, strlen(line));
    free(whole);
}

/* The headers that carry credentials; their values are never logged. */
static const char *const credential_headers[] = {"authorization:", "proxy-authorization:",
                                                 "cookie:", "x-api-key:"};

/* The length of the credential header name (with its colon) at s, or 0. */
static size_t credential_name(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof(credential_headers) / sizeof(credential_headers[0]); i++) {
        size_t n = strlen(credential_headers[i]);
        if (len >= n && strncasecmp(s, credential_headers[i], n) == 0)
            return n;
    }
    return 0;
}

/*
 * Where the value of a credential header starts and ends in a trace line:
 * an HTTP/1 header line ("Authorization: Bearer k"), or libcurl's HTTP/2 and
 * HTTP/3 trace of a request header ("[HTTP/2] [1] [authorization: Bearer k]",
 * the value up to the line's last ']'). The whole value goes, whatever the
 * key's length: a short key cannot be found in free text (safe_text.h).
 * Returns false when the line names no credential.
 */
static bool credential_value(const char *line, size_t len, size_t *from, size_t *to)
{
    size_t n = credential_name(line, len);
    if (n) {
        *from = n;
        *to = len;
        return true;
    }
    for (size_t i = 0; i < len; i++) {
        if (line[i] != '[' || !(n = credential_name(line + i + 1, len - i - 1)))
            continue;
        *from = i + 1 + n;
        *to = len;
        while (*to > *from && line[*to - 1] != ']')
            (*to)--;
        if (*to > *from)
            (*to)--; /* keep the ']' */
        else
            *to = len; /* no ']': the rest of the line */
        return true;
    }
    return false;
}

/* One trace line, with a credential header's value replaced. */
static void trace_line(const pl_logger *log, const char *data, size_t len)
{
    size_t from, to;
    if (!credential_value(data, len, &from, &to)) {
        emit(log, PARLEY_LOG_DEBUG, "curl", data, len);
        return;
    }
    char line[LOG_LINE_MAX];
    int n = snprintf(line, sizeof(line), "%.*s " PL_REDACTED "%.*s", (int)from, data,
                     (int)(len - to), data + to);
    if (n > 0)
        emit(log, PARLEY_LOG_DEBUG, "curl", line, strlen(line));
}

void pl_log_curl_trace(const pl_logger *log, const char *data, size_t len)
{
    if (!PL_LOG_ON(log, PARLEY_LOG_DEBUG))
        return;
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl ? (size_t)(nl - data) : len;
        size_t shown = n;
        while (shown > 0 && data[shown - 1] == '\r')
            shown--;
        if (shown > 0)
            trace_line(log, data, shown);
        data += nl ? n + 1 : n;
        len -= nl ? n + 1 : n;
    }
}
