/*
 * libFuzzer target: the log lines (src/log.c), formatted and redacted, and
 * libcurl's trace lines, split, stripped of credentials and redacted, with
 * an API key of any length. What a server sends reaches both (error texts,
 * echoed headers), so neither may crash, hang or let the key through.
 *
 * Input: byte 0 sets the case, the next bytes are the key, the rest is the
 * text (a format argument for pl_log, libcurl's trace data for
 * pl_log_curl_trace).
 *   bits 0-5: the key's length, 0-63 (0: no key)
 *   bit 6:    the text goes through pl_log_curl_trace (1) or pl_log (0)
 *   bit 7:    the client logs at debug level (1) or warning (0)
 *
 * Checks: every line handed to the log callback is NUL-terminated and holds
 * no key of 4 bytes or more; a first trace line naming credentials keeps
 * none of its value after the name. With FUZZ_LOG_STRICT=1 in the environment also: no line holds
 * a control character (a server's text must not forge lines or reach a
 * terminal raw).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "fuzz_log: check failed: %s\n", #cond);          \
            abort();                                                         \
        }                                                                    \
    } while (0)

static bool strict;
static const char *key;      /* the current case's key */
static const char *secret;   /* a credential header's value in the trace */
static size_t lines;

/* The length of the escape (\n, \r, \t, \xHH, \u00HH) or "[redacted]" that
 * starts at p, or 0. */
static size_t unit_at(const char *p, const char *end)
{
    static const char marker[] = "[redacted]";
    size_t left = (size_t)(end - p);
    if (left >= sizeof(marker) - 1 && !memcmp(p, marker, sizeof(marker) - 1))
        return sizeof(marker) - 1;
    if (*p != '\\' || left < 2)
        return 0;
    if (p[1] == 'n' || p[1] == 'r' || p[1] == 't')
        return 2;
    if (p[1] == 'x' && left >= 4)
        return 4;
    if (p[1] == 'u' && left >= 6)
        return 6;
    return 0;
}

/*
 * Whether the key shows in a line, other than where the library's own
 * units (a "[redacted]" marker, an escape) make part of it: a key such as
 * "ted]" is in every marker, and "\x19" + "999" reads "9999". What the
 * library promises is that the key's own bytes never go through whole.
 */
static bool shows_key(const char *message, size_t len, const char *key)
{
    const char *end = message + len;
    size_t klen = strlen(key);
    for (const char *hit = message; (hit = memmem(hit, (size_t)(end - hit), key, klen)); hit++) {
        bool formed = false;
        for (const char *p = message; !formed && p < hit + klen;) {
            size_t n = unit_at(p, end);
            formed = n && p + n > hit;
            p += n ? n : 1;
        }
        if (!formed)
            return true;
    }
    return false;
}

static void on_log(const parley_client_t *client, int level, const char *facility,
                   const char *message, void *opaque)
{
    (void)client;
    (void)opaque;
    lines++;
    CHECK(level >= PARLEY_LOG_ERROR && level <= PARLEY_LOG_DEBUG);
    CHECK(facility && message);
    size_t len = strlen(message);
    if (key && strlen(key) >= 4)
        CHECK(!shows_key(message, len, key));
    if (secret && lines == 1 && !strstr(" [redacted]", secret)) {
        /* The first line is the credential's: after its name, no value. */
        const char *colon = strchr(message, ':');
        const char *rest = colon ? colon + 1 : message;
        CHECK(!strstr(rest, secret));
    }
    if (strict)
        for (size_t i = 0; i < len; i++)
            CHECK((unsigned char)message[i] >= 0x20 && message[i] != 0x7f);
}

/* A trace line naming credentials whose value (4 bytes or more, the
 * whitespace after the colon skipped) must not be shown; NULL if none. */
static char *credential_value(const char *text, size_t len)
{
    static const char *const names[] = {"authorization:", "proxy-authorization:", "cookie:",
                                        "x-api-key:"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        size_t n = strlen(names[i]);
        if (len < n || strncasecmp(text, names[i], n) != 0)
            continue;
        const char *v = text + n;
        const char *end = memchr(text, '\n', len);
        end = end ? end : text + len;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v && (end[-1] == '\r' || end[-1] == ' '))
            end--;
        const char *nul = memchr(v, '\0', (size_t)(end - v));
        if (nul)
            end = nul;
        if (end - v < 4)
            return NULL;
        return strndup(v, (size_t)(end - v));
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool started;
    if (!started) {
        started = true;
        strict = getenv("FUZZ_LOG_STRICT") && !strcmp(getenv("FUZZ_LOG_STRICT"), "1");
    }
    if (size < 1)
        return 0;
    size_t klen = data[0] & 63;
    if (size < 1 + klen)
        return 0;
    char *k = NULL;
    if (klen) {
        k = malloc(klen + 1);
        CHECK(k);
        for (size_t i = 0; i < klen; i++)
            k[i] = data[1 + i] ? (char)data[1 + i] : '?'; /* a key holds no NUL */
        k[klen] = '\0';
    }
    const char *text = (const char *)data + 1 + klen;
    size_t len = size - 1 - klen;

    pl_logger client = {.level = data[0] & 128 ? PARLEY_LOG_DEBUG : PARLEY_LOG_WARNING,
                        .cb = on_log,
                        .api_key = k};
    key = k;
    lines = 0;
    if (data[0] & 64) {
        /* Only the first line of the trace is checked for its credential. */
        char *value = credential_value(text, len);
        secret = value;
        pl_log_curl_trace(&client, text, len);
        secret = NULL;
        free(value);
    } else {
        pl_log(&client, PARLEY_LOG_WARNING, "fuzz", "server error: %.*s", (int)len, text);
        CHECK(lines == 1);
    }
    key = NULL;
    free(k);
    return 0;
}
