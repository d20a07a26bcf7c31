/* The one-pass JSON scanner of the fast paths (json_scan.h). */
#include "json_scan.h"

#include <string.h>

typedef struct scanner {
    const char *p, *end;
    char *out; /* where the next decoded string goes */
    pl_json_member_cb *cb;
    void *ctx;
    const char *keys[PL_JSON_SCAN_DEPTH + 1]; /* the last: deeper keys */
    size_t key_lens[PL_JSON_SCAN_DEPTH + 1];
    unsigned nesting;  /* objects and arrays open */
    unsigned arrays;   /* of them arrays: nothing inside is reported */
} scanner;

static void skip_ws(scanner *sc)
{
    while (sc->p < sc->end &&
           (*sc->p == ' ' || *sc->p == '\t' || *sc->p == '\n' || *sc->p == '\r'))
        sc->p++;
}

/* Consume c after optional blanks. */
static bool eat(scanner *sc, char c)
{
    skip_ws(sc);
    if (sc->p < sc->end && *sc->p == c) {
        sc->p++;
        return true;
    }
    return false;
}

static bool hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        unsigned d;
        if (c >= '0' && c <= '9') d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') d = (unsigned)(c - 'A' + 10);
        else return false;
        v = v << 4 | d;
    }
    *out = v;
    return true;
}

bool pl_json_u_escape(const char *p, const char *end, unsigned *cu)
{
    return end - p >= 6 && p[0] == '\\' && p[1] == 'u' && hex4(p + 2, cu);
}

static char *put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | cp >> 6);
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | cp >> 12);
        *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | cp >> 18);
        *o++ = (char)(0x80 | (cp >> 12 & 0x3F));
        *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* One escape after the backslash at sc->p; appends its bytes. */
static bool unescape(scanner *sc)
{
    if (sc->end - sc->p < 2)
        return false;
    char c = sc->p[1];
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *hit = c ? strchr(from, c) : NULL;
    if (hit) {
        *sc->out++ = to[hit - from];
        sc->p += 2;
        return true;
    }
    unsigned cu, lo;
    if (!pl_json_u_escape(sc->p, sc->end, &cu) || (cu >= 0xDC00 && cu <= 0xDFFF))
        return false; /* malformed, or a low half alone */
    sc->p += 6;
    if (cu >= 0xD800 && cu <= 0xDBFF) {
        if (!pl_json_u_escape(sc->p, sc->end, &lo) || lo < 0xDC00 || lo > 0xDFFF)
            return false; /* a high half alone */
        sc->p += 6;
        cu = 0x10000 + ((cu - 0xD800) << 10) + (lo - 0xDC00);
        /* json-c 0.16 mistakes a pair that decodes to U+xD800..U+xDFFF
         * (planes 1 to 16) for a surrogate again and puts U+FFFD in its
         * place: leave those to json-c, so that a text decodes the same
         * whichever path it takes. */
        if ((cu & 0xF800) == 0xD800)
            return false;
    }
    sc->out = put_utf8(sc->out, cu);
    return true;
}

/* A string at sc->p (after blanks), decoded into the strings buffer. A
 * decoded string and its NUL never outgrow its quoted form, so a buffer of
 * the text's length plus one holds every string of it. */
static bool read_string(scanner *sc, const char **s, size_t *len)
{
    if (!eat(sc, '"'))
        return false;
    char *start = sc->out;
    for (;;) {
        if (sc->p >= sc->end)
            return false;
        unsigned char c = (unsigned char)*sc->p;
        if (c == '"') {
            sc->p++;
            break;
        }
        if (c < 0x20)
            return false; /* a raw control character: not JSON */
        if (c == '\\') {
            if (!unescape(sc))
                return false;
            continue;
        }
        *sc->out++ = (char)c;
        sc->p++;
    }
    *len = (size_t)(sc->out - start);
    *sc->out++ = '\0';
    *s = start;
    return true;
}

/* A number: digits only, no leading zero, at most 19 of them. */
static bool read_number(scanner *sc, uint64_t *n)
{
    const char *start = sc->p;
    uint64_t v = 0;
    while (sc->p < sc->end && *sc->p >= '0' && *sc->p <= '9') {
        if (sc->p - start == 19)
            return false;
        v = v * 10 + (uint64_t)(*sc->p++ - '0');
    }
    size_t digits = (size_t)(sc->p - start);
    if (digits == 0 || (digits > 1 && *start == '0'))
        return false;
    if (sc->p < sc->end && (*sc->p == '.' || *sc->p == 'e' || *sc->p == 'E'))
        return false;
    *n = v;
    return true;
}

static bool read_members(scanner *sc, size_t depth);
static bool read_elements(scanner *sc, size_t depth);

/* Whether a member at this depth is reported to the callback. */
static bool reported(const scanner *sc, size_t depth)
{
    return sc->arrays == 0 && depth <= PL_JSON_SCAN_DEPTH;
}

/* An object or array whose opening bracket was read, nested one deeper. */
static bool read_nested(scanner *sc, size_t depth, bool array)
{
    if (++sc->nesting > PL_JSON_SCAN_NESTING)
        return false;
    sc->arrays += array;
    bool ok = array ? read_elements(sc, depth) : read_members(sc, depth);
    sc->arrays -= array;
    sc->nesting--;
    return ok;
}

/* The value of the member whose path is keys[0..depth-1] (or of an array
 * element). */
static bool read_value(scanner *sc, size_t depth)
{
    pl_json_value v = {0};
    skip_ws(sc);
    if (sc->p >= sc->end)
        return false;
    char c = *sc->p;
    if (c == '{' || c == '[') {
        sc->p++;
        v.kind = c == '{' ? PL_JSON_OBJECT : PL_JSON_ARRAY;
        return (!reported(sc, depth) || sc->cb(sc->ctx, sc->keys, sc->key_lens, depth, &v)) &&
               read_nested(sc, depth, c == '[');
    }
    if (c == '"') {
        v.kind = PL_JSON_STRING;
        if (!read_string(sc, &v.s, &v.len))
            return false;
    } else if (c >= '0' && c <= '9') {
        v.kind = PL_JSON_NUMBER;
        if (!read_number(sc, &v.n))
            return false;
    } else if (sc->end - sc->p >= 4 && memcmp(sc->p, "null", 4) == 0) {
        sc->p += 4;
        v.kind = PL_JSON_NULL;
    } else {
        return false;
    }
    return !reported(sc, depth) || sc->cb(sc->ctx, sc->keys, sc->key_lens, depth, &v);
}

/* The members of an object whose '{' was read, at `depth` keys deep. */
static bool read_members(scanner *sc, size_t depth)
{
    if (eat(sc, '}'))
        return true;
    size_t slot = depth < PL_JSON_SCAN_DEPTH ? depth : PL_JSON_SCAN_DEPTH;
    do {
        if (!read_string(sc, &sc->keys[slot], &sc->key_lens[slot]) || !eat(sc, ':') ||
            !read_value(sc, depth + 1))
            return false;
    } while (eat(sc, ','));
    return eat(sc, '}');
}

/* The elements of an array whose '[' was read; they keep its depth. */
static bool read_elements(scanner *sc, size_t depth)
{
    if (eat(sc, ']'))
        return true;
    do {
        if (!read_value(sc, depth))
            return false;
    } while (eat(sc, ','));
    return eat(sc, ']');
}

bool pl_json_scan(pl_buf *strings, const char *buf, size_t len,
                  pl_json_member_cb *cb, void *ctx)
{
    pl_buf_reset(strings);
    if (len == 0 || pl_buf_reserve(strings, len) != 0)
        return false;
    scanner sc = {.p = buf, .end = buf + len, .out = strings->data, .cb = cb, .ctx = ctx};
    if (!eat(&sc, '{') || !read_nested(&sc, 0, false))
        return false;
    skip_ws(&sc);
    return sc.p == sc.end;
}

bool pl_json_key_is(const char *const *keys, const size_t *key_lens, size_t i,
                    const char *name)
{
    size_t n = strlen(name);
    return key_lens[i] == n && memcmp(keys[i], name, n) == 0;
}
