/*
 * The fast path of the server message decoder (protocol_fast.h).
 *
 * Every streamed piece is a `text` message, so decoding runs several times
 * per request. Through json-c it built a tree of objects with a hash table,
 * switched the thread's locale twice (json-c does so on every parse) and
 * freed it all again: about a quarter of the client's CPU per request on the
 * native protocol. Here the message is scanned once and its strings are
 * decoded into one reused buffer.
 *
 * What is accepted: one JSON object whose members are strings, integers in
 * [0, 10^19), null, and (for "usage") an object of such members. Declined,
 * for the full decoder to handle: any other value (negative or fractional
 * numbers, booleans, arrays, other objects), a known member given twice
 * (json-c keeps the last one; declining is simpler than agreeing), an
 * unpaired UTF-16 surrogate escape, malformed JSON, a message type other
 * than text, ack and done, and a missing, ill-typed or out-of-range field.
 * The checks made on what is accepted are those of protocol.c's readers.
 */
#include "protocol_fast.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "utf8.h"

/* The members the three message types read; others are skipped. */
enum field {
    F_TYPE,
    F_ID,
    F_SESSION,
    F_SEQ,
    F_CONTENT,
    F_STOP_REASON,
    F_SEQ_END,
    F_USAGE, /* the object itself: present or null */
    F_INPUT_TOKENS,
    F_OUTPUT_TOKENS,
    F_COUNT,
    F_UNKNOWN = F_COUNT
};

typedef struct value {
    enum { V_ABSENT = 0, V_NULL, V_STRING, V_NUMBER, V_OBJECT } kind;
    const char *s; /* V_STRING: NUL-terminated, in the strings buffer */
    size_t len;
    uint64_t n;    /* V_NUMBER */
} value;

typedef struct scanner {
    const char *p, *end;
    char *out; /* where the next decoded string goes */
    value fields[F_COUNT];
} scanner;

static const struct {
    const char *name;
    size_t len;
    enum field field;
} top_names[] = {
    {"type", 4, F_TYPE},       {"id", 2, F_ID},
    {"session", 7, F_SESSION}, {"seq", 3, F_SEQ},
    {"content", 7, F_CONTENT}, {"stop_reason", 11, F_STOP_REASON},
    {"seq_end", 7, F_SEQ_END}, {"usage", 5, F_USAGE},
}, usage_names[] = {
    {"input_tokens", 12, F_INPUT_TOKENS},
    {"output_tokens", 13, F_OUTPUT_TOKENS},
};

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

/* "\uXXXX" at p: the code unit. */
static bool u_escape(const scanner *sc, const char *p, unsigned *cu)
{
    return sc->end - p >= 6 && p[0] == '\\' && p[1] == 'u' && hex4(p + 2, cu);
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
    if (!u_escape(sc, sc->p, &cu) || (cu >= 0xDC00 && cu <= 0xDFFF))
        return false; /* malformed, or a low half alone */
    sc->p += 6;
    if (cu >= 0xD800 && cu <= 0xDBFF) {
        if (!u_escape(sc, sc->p, &lo) || lo < 0xDC00 || lo > 0xDFFF)
            return false; /* a high half alone */
        sc->p += 6;
        cu = 0x10000 + ((cu - 0xD800) << 10) + (lo - 0xDC00);
    }
    sc->out = put_utf8(sc->out, cu);
    return true;
}

/* A string at sc->p (after blanks), decoded into the strings buffer. A
 * decoded string never outgrows its quoted form, which is what makes the
 * buffer's size (the message's length plus one) enough. */
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

/* A scalar value: string, number or null. */
static bool read_scalar(scanner *sc, value *v)
{
    skip_ws(sc);
    if (sc->p >= sc->end)
        return false;
    char c = *sc->p;
    if (c == '"') {
        v->kind = V_STRING;
        return read_string(sc, &v->s, &v->len);
    }
    if (c >= '0' && c <= '9') {
        v->kind = V_NUMBER;
        return read_number(sc, &v->n);
    }
    if (sc->end - sc->p >= 4 && memcmp(sc->p, "null", 4) == 0) {
        sc->p += 4;
        v->kind = V_NULL;
        return true;
    }
    return false;
}

static enum field lookup(const char *key, size_t len, bool in_usage)
{
    size_t n = in_usage ? sizeof(usage_names) / sizeof(usage_names[0])
                        : sizeof(top_names) / sizeof(top_names[0]);
    for (size_t i = 0; i < n; i++) {
        const char *name = in_usage ? usage_names[i].name : top_names[i].name;
        size_t name_len = in_usage ? usage_names[i].len : top_names[i].len;
        if (name_len == len && memcmp(name, key, len) == 0)
            return in_usage ? usage_names[i].field : top_names[i].field;
    }
    return F_UNKNOWN;
}

/* The members of an object whose '{' was read; `usage` for the nested one. */
static bool read_members(scanner *sc, bool in_usage)
{
    if (eat(sc, '}'))
        return true;
    do {
        char *key_start = sc->out;
        const char *key;
        size_t key_len;
        if (!read_string(sc, &key, &key_len) || !eat(sc, ':'))
            return false;
        enum field f = lookup(key, key_len, in_usage);
        sc->out = key_start; /* the key is not kept */
        if (f != F_UNKNOWN && sc->fields[f].kind != V_ABSENT)
            return false; /* given twice */
        if (f == F_USAGE && eat(sc, '{')) {
            sc->fields[F_USAGE].kind = V_OBJECT;
            if (!read_members(sc, true))
                return false;
            continue;
        }
        value v = {0};
        if (!read_scalar(sc, &v))
            return false;
        if (f != F_UNKNOWN)
            sc->fields[f] = v;
    } while (eat(sc, ','));
    return eat(sc, '}');
}

/* ---- the fields, checked as protocol.c's readers check them ---- */

static bool required_id(const scanner *sc, pl_server_msg *m)
{
    const value *v = &sc->fields[F_ID];
    if (v->kind != V_STRING || pl_proto_parse_id(v->s, v->len, &m->id) != 0)
        return false;
    m->has_id = true;
    return true;
}

/* A string member; absent or null is fine unless required. */
static bool string_field(const scanner *sc, enum field f, bool required,
                         const char **s, size_t *len)
{
    const value *v = &sc->fields[f];
    if (v->kind == V_ABSENT || v->kind == V_NULL)
        return !required;
    if (v->kind != V_STRING || !pl_utf8_valid(v->s, v->len))
        return false;
    *s = v->s;
    if (len)
        *len = v->len;
    return true;
}

static bool number_field(const scanner *sc, enum field f, bool required,
                         uint64_t max, uint64_t *n, bool *present)
{
    const value *v = &sc->fields[f];
    if (v->kind == V_ABSENT || v->kind == V_NULL)
        return !required;
    if (v->kind != V_NUMBER || v->n > max)
        return false;
    *n = v->n;
    if (present)
        *present = true;
    return true;
}

static bool u32_field(const scanner *sc, enum field f, uint32_t *out, bool *present)
{
    uint64_t n = 0;
    if (!number_field(sc, f, true, UINT32_MAX, &n, present))
        return false;
    *out = (uint32_t)n;
    return true;
}

static bool session_field(const scanner *sc, pl_server_msg *m)
{
    size_t len = 0;
    return string_field(sc, F_SESSION, false, &m->session, &len) &&
           (!m->session || pl_proto_session_valid(m->session, len));
}

static bool decode_text(const scanner *sc, pl_server_msg *m)
{
    return required_id(sc, m) && session_field(sc, m) &&
           u32_field(sc, F_SEQ, &m->seq, NULL) &&
           string_field(sc, F_CONTENT, true, &m->content, &m->content_len);
}

static bool decode_done(const scanner *sc, pl_server_msg *m)
{
    return required_id(sc, m) && session_field(sc, m) &&
           string_field(sc, F_STOP_REASON, true, &m->stop_reason, NULL) &&
           u32_field(sc, F_SEQ_END, &m->seq_end, &m->has_seq_end) &&
           number_field(sc, F_INPUT_TOKENS, false, INT64_MAX, &m->input_tokens, NULL) &&
           number_field(sc, F_OUTPUT_TOKENS, false, INT64_MAX, &m->output_tokens, NULL);
}

static bool type_is(const value *v, const char *name)
{
    return v->kind == V_STRING && v->len == strlen(name) && memcmp(v->s, name, v->len) == 0;
}

int pl_proto_fast_decode(pl_buf *strings, const char *buf, size_t len,
                         pl_server_msg *msg)
{
    pl_buf_reset(strings);
    if (len == 0 || pl_buf_reserve(strings, len) != 0)
        return -1;
    scanner sc = {.p = buf, .end = buf + len, .out = strings->data};
    if (!eat(&sc, '{') || !read_members(&sc, false))
        return -1;
    skip_ws(&sc);
    if (sc.p != sc.end)
        return -1; /* something after the object */
    /* A "usage" that is neither an object nor null is the full decoder's
     * to judge (an error for done). */
    const value *usage = &sc.fields[F_USAGE];
    if (usage->kind != V_ABSENT && usage->kind != V_NULL && usage->kind != V_OBJECT)
        return -1;

    pl_server_msg m = *msg;
    const value *type = &sc.fields[F_TYPE];
    bool ok;
    if (type_is(type, "text")) {
        m.type = PL_SMSG_TEXT;
        ok = decode_text(&sc, &m);
    } else if (type_is(type, "ack")) {
        m.type = PL_SMSG_ACK;
        ok = required_id(&sc, &m);
    } else if (type_is(type, "done")) {
        m.type = PL_SMSG_DONE;
        ok = decode_done(&sc, &m);
    } else {
        ok = false;
    }
    if (!ok)
        return -1;
    *msg = m;
    return 0;
}
