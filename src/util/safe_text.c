#include "safe_text.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "utf8.h"

/* Output that keeps counting past a full buffer, and writes only whole
 * units, so what fits never ends in half an escape. */
typedef struct text_out {
    char *buf;
    size_t size;
    size_t written; /* bytes in buf, below size */
    size_t len;     /* what the whole text needs */
    bool full;      /* a unit did not fit: nothing more is written */
} text_out;

static void put(text_out *o, const char *unit, size_t n)
{
    if (!o->full && o->written + n < o->size) {
        memcpy(o->buf + o->written, unit, n);
        o->written += n;
    } else {
        o->full = true;
    }
    o->len += n;
}

/* How many bytes of key start at s (at most len). */
static size_t key_run(const char *s, size_t len, const char *key, size_t klen)
{
    size_t n = 0, max = len < klen ? len : klen;
    while (n < max && s[n] == key[n])
        n++;
    return n;
}

/* How many bytes of the key to redact at s: the whole key, or a run of its
 * start long enough to tell; 0 when neither starts there. */
static size_t key_at(const char *s, size_t len, const char *key, size_t klen)
{
    if (klen < PL_KEY_MATCH_MIN || *s != key[0])
        return 0;
    size_t run = key_run(s, len, key, klen);
    return run == klen || run >= PL_KEY_PART_MIN ? run : 0;
}

static void escape_into(text_out *o, const char *in, size_t len, const char *key)
{
    size_t klen = key ? strlen(key) : 0;
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)in[i];
        size_t run = key_at(in + i, len - i, key, klen);
        if (run) {
            put(o, PL_REDACTED, sizeof(PL_REDACTED) - 1);
            i += run;
            continue;
        }
        char esc[8];
        size_t n = c < 0x80 ? 1 : pl_utf8_char_len(in + i, len - i);
        /* A key need not be UTF-8: one that starts inside this character
         * must not be passed over with it; the bytes before it go escaped. */
        for (size_t j = 1; j < n; j++)
            if (key_at(in + i + j, len - i - j, key, klen))
                n = 0;
        if (c == '\n' || c == '\r' || c == '\t') {
            put(o, c == '\n' ? "\\n" : c == '\r' ? "\\r" : "\\t", 2);
        } else if (c < 0x20 || c == 0x7f || n == 0) {
            snprintf(esc, sizeof(esc), "\\x%02x", c);
            put(o, esc, 4);
            n = 1;
        } else if (n == 2 && c == 0xc2 && (unsigned char)in[i + 1] < 0xa0) {
            snprintf(esc, sizeof(esc), "\\u00%02x", (unsigned char)in[i + 1]);
            put(o, esc, 6);
        } else {
            put(o, in + i, n);
        }
        i += n;
    }
}

static text_out text_out_init(char *buf, size_t size)
{
    return (text_out){.buf = buf, .size = buf ? size : 0, .full = !buf || !size};
}

static void terminate(text_out *o)
{
    if (o->size > 0)
        o->buf[o->written] = '\0';
}

size_t pl_safe_text(char *out, size_t size, const char *in, size_t len,
                    const char *key)
{
    text_out o = text_out_init(out, size);
    escape_into(&o, in, len, key);
    terminate(&o);
    return o.len;
}

void pl_safe_url(const char *url, char *out, size_t size)
{
    const char *scheme_end = strstr(url, "://");
    const char *host = scheme_end ? scheme_end + 3 : url;
    size_t authority = strcspn(host, "/?#");
    /* The user information ends at the last '@': a password may hold one. */
    const char *host_start = host;
    for (size_t i = authority; i > 0; i--)
        if (host[i - 1] == '@') {
            host_start = host + i;
            break;
        }
    size_t path = strcspn(host + authority, "?#");
    text_out o = text_out_init(out, size);
    escape_into(&o, url, (size_t)(host - url), NULL);
    escape_into(&o, host_start, (size_t)(host + authority - host_start), NULL);
    escape_into(&o, host + authority, path, NULL);
    terminate(&o);
}
