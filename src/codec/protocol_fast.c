/*
 * The fast path of the server message decoder (protocol_fast.h).
 *
 * Every streamed piece is a `text` message, so decoding runs several times
 * per request. Through json-c it built a tree of objects with a hash table,
 * switched the thread's locale twice (json-c does so on every parse) and
 * freed it all again: about a quarter of the client's CPU per request on the
 * native protocol. Here the message is scanned once (json_scan.h) and its
 * strings are decoded into one reused buffer.
 *
 * Declined, for the full decoder to handle: what json_scan.h declines, a
 * member we read given twice (json-c keeps the last one; declining is
 * simpler than agreeing), a message type other than text, thinking, ack and
 * done (tool_use keeps its input as written: the full decoder's work), and
 * a missing, ill-typed or out-of-range field. The checks made on what is
 * accepted are those of protocol.c's readers.
 */
#include "protocol_fast.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "json_scan.h"
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
    F_USAGE,
    F_INPUT_TOKENS,
    F_OUTPUT_TOKENS,
    F_BLOCK,
    F_SIGNATURE,
    F_STOP_SEQUENCE,
    F_COUNT,
    F_UNKNOWN = F_COUNT
};

typedef struct value {
    bool present;
    pl_json_value v;
} value;

typedef struct scanner {
    value fields[F_COUNT];
} scanner;

static const struct {
    const char *name;
    enum field field;
} top_names[] = {
    {"type", F_TYPE},       {"id", F_ID},
    {"session", F_SESSION}, {"seq", F_SEQ},
    {"content", F_CONTENT}, {"stop_reason", F_STOP_REASON},
    {"seq_end", F_SEQ_END}, {"usage", F_USAGE},
    {"block", F_BLOCK},     {"signature", F_SIGNATURE},
    {"stop_sequence", F_STOP_SEQUENCE},
}, usage_names[] = {
    {"input_tokens", F_INPUT_TOKENS},
    {"output_tokens", F_OUTPUT_TOKENS},
};

/* Which field a member is: a top-level one, or one of "usage"'s. */
static enum field field_of(const char *const *keys, const size_t *key_lens, size_t depth)
{
    if (depth == 1) {
        for (size_t i = 0; i < sizeof(top_names) / sizeof(top_names[0]); i++)
            if (pl_json_key_is(keys, key_lens, 0, top_names[i].name))
                return top_names[i].field;
    } else if (depth == 2 && pl_json_key_is(keys, key_lens, 0, "usage")) {
        for (size_t i = 0; i < sizeof(usage_names) / sizeof(usage_names[0]); i++)
            if (pl_json_key_is(keys, key_lens, 1, usage_names[i].name))
                return usage_names[i].field;
    }
    return F_UNKNOWN;
}

static bool on_member(void *ctx, const char *const *keys, const size_t *key_lens,
                      size_t depth, const pl_json_value *v)
{
    scanner *sc = ctx;
    enum field f = field_of(keys, key_lens, depth);
    if (f == F_UNKNOWN)
        return true;
    if (sc->fields[f].present)
        return false; /* given twice: json-c keeps the last, we decline */
    sc->fields[f] = (value){true, *v};
    return true;
}

/* ---- the fields, checked as protocol.c's readers check them ---- */

/* Absent and null are the same on the wire. */
static bool absent(const value *v)
{
    return !v->present || v->v.kind == PL_JSON_NULL;
}

static bool required_id(const scanner *sc, pl_server_msg *m)
{
    const value *v = &sc->fields[F_ID];
    if (absent(v) || v->v.kind != PL_JSON_STRING ||
        pl_proto_parse_id(v->v.s, v->v.len, &m->id) != 0)
        return false;
    m->has_id = true;
    return true;
}

/* A string member; absent or null is fine unless required. */
static bool string_field(const scanner *sc, enum field f, bool required,
                         const char **s, size_t *len)
{
    const value *v = &sc->fields[f];
    if (absent(v))
        return !required;
    if (v->v.kind != PL_JSON_STRING || !pl_utf8_valid(v->v.s, v->v.len))
        return false;
    *s = v->v.s;
    if (len)
        *len = v->v.len;
    return true;
}

static bool number_field(const scanner *sc, enum field f, bool required,
                         uint64_t max, uint64_t *n, bool *present)
{
    const value *v = &sc->fields[f];
    if (absent(v))
        return !required;
    if (v->v.kind != PL_JSON_NUMBER || v->v.n > max)
        return false;
    *n = v->v.n;
    if (present)
        *present = true;
    return true;
}

static bool u32_field(const scanner *sc, enum field f, bool required, uint32_t *out,
                      bool *present)
{
    uint64_t n = *out;
    if (!number_field(sc, f, required, UINT32_MAX, &n, present))
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

/* text and thinking pieces (tool_use is the full decoder's: its input is
 * kept as written). */
static bool decode_piece(const scanner *sc, pl_server_msg *m, pl_piece_kind kind)
{
    m->piece.kind = kind;
    if (!(required_id(sc, m) && session_field(sc, m) &&
          u32_field(sc, F_SEQ, true, &m->seq, NULL) &&
          u32_field(sc, F_BLOCK, kind != PL_PIECE_TEXT, &m->piece.block, NULL) &&
          string_field(sc, F_CONTENT, true, &m->content, &m->content_len) &&
          (kind == PL_PIECE_TEXT ||
           string_field(sc, F_SIGNATURE, false, &m->piece.signature, NULL))))
        return false;
    m->piece.text = m->content;
    m->piece.len = m->content_len;
    return true;
}

static bool decode_done(const scanner *sc, pl_server_msg *m)
{
    return required_id(sc, m) && session_field(sc, m) &&
           string_field(sc, F_STOP_REASON, true, &m->stop_reason, NULL) &&
           string_field(sc, F_STOP_SEQUENCE, false, &m->stop_sequence, NULL) &&
           u32_field(sc, F_SEQ_END, true, &m->seq_end, &m->has_seq_end) &&
           number_field(sc, F_INPUT_TOKENS, false, INT64_MAX, &m->input_tokens, NULL) &&
           number_field(sc, F_OUTPUT_TOKENS, false, INT64_MAX, &m->output_tokens, NULL);
}

static bool type_is(const value *v, const char *name)
{
    return v->present && v->v.kind == PL_JSON_STRING && v->v.len == strlen(name) &&
           memcmp(v->v.s, name, v->v.len) == 0;
}

int pl_proto_fast_decode(pl_buf *strings, const char *buf, size_t len,
                         pl_server_msg *msg)
{
    scanner sc = {0};
    if (!pl_json_scan(strings, buf, len, on_member, &sc))
        return -1;
    /* A "usage" that is neither an object nor null is the full decoder's
     * to judge (an error for done). */
    const value *usage = &sc.fields[F_USAGE];
    if (!absent(usage) && usage->v.kind != PL_JSON_OBJECT)
        return -1;

    pl_server_msg m = *msg;
    const value *type = &sc.fields[F_TYPE];
    bool ok;
    if (type_is(type, "text")) {
        m.type = PL_SMSG_TEXT;
        ok = decode_piece(&sc, &m, PL_PIECE_TEXT);
    } else if (type_is(type, "thinking")) {
        m.type = PL_SMSG_TEXT;
        ok = decode_piece(&sc, &m, PL_PIECE_THINKING);
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
