/*
 * The parley.v1 wire codec (docs/protocol.md).
 *
 * Encoding is done by hand into a pl_buf: it runs for every request and a
 * json-c tree would cost an allocation per field. Decoding uses json-c, since
 * what the server sends must be parsed in full generality (escapes, unknown
 * fields, any key order), then checked field by field against section 4;
 * the common messages take a fast path first (protocol_fast.h), which
 * declines whatever it does not decode exactly as this would.
 *
 * Decoding treats its input as hostile: every field is type- and
 * range-checked, strings handed out are valid UTF-8, and nothing json-c
 * silently alters (out-of-range integers, unpaired surrogate escapes) is
 * accepted as if it were what the server sent.
 */
#include "protocol.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

#include "json_raw.h"
#include "json_scan.h"
#include "protocol_fast.h"
#include "request_body.h"
#include "utf8.h"

/* Our messages nest 2 levels; 32 (json-c's default) leaves room for unknown
 * extension fields while bounding the tokener's stack. */
#define PL_DECODER_MAX_DEPTH 32

/* Append a string literal (its length is known at compile time). */
#define PUT_LIT(b, lit) pl_buf_append((b), (lit), sizeof(lit) - 1)

/* ======================================================================== */
/* Encoding                                                                  */
/* ======================================================================== */

/* Undo a partial append so that a failed encode leaves `out` as it was. */
static void buf_truncate(pl_buf *b, size_t len)
{
    b->len = len;
    if (b->data)
        b->data[len] = '\0';
}

static int put_json_cstr(pl_buf *b, const char *s)
{
    return pl_buf_append_json_str(b, s, strlen(s));
}

/* A content: a JSON array of blocks is copied as it is (the caller keeps it
 * compact and valid), a plain string is escaped. */
static int put_content(pl_buf *b, const char *content, size_t len, bool blocks)
{
    return blocks ? pl_buf_append(b, content, len) : pl_buf_append_json_str(b, content, len);
}

/* ,"history":[{"role":"user","content":"..."},...] */
static int encode_history(pl_buf *b, const pl_history_turn *h, size_t n)
{
    if (PUT_LIT(b, ",\"history\":["))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if ((i > 0 && PUT_LIT(b, ","))
            || (h[i].assistant ? PUT_LIT(b, "{\"role\":\"assistant\",\"content\":")
                               : PUT_LIT(b, "{\"role\":\"user\",\"content\":"))
            || put_content(b, h[i].content, h[i].content_len, h[i].blocks)
            || PUT_LIT(b, "}"))
            return -1;
    }
    return PUT_LIT(b, "]");
}

/* The members that make the message a message of this protocol: an
 * extra_body cannot replace them. */
static const char *const protocol_members[] = {
    "type", "id", "session", "timestamp", "content", "history", "resume_from", NULL,
};

/* Section 9.2's fields and the extra_body, after the fields of section 5.1. */
static int encode_params(pl_body *body, const pl_request_params *p)
{
    pl_buf *b = body->out;
    if (p->system && pl_body_ours(body, "system")
        && (PUT_LIT(b, ",\"system\":") || put_json_cstr(b, p->system)))
        return -1;
    return pl_body_common_params(body, p, NULL);
}

static int encode_message_fields(pl_buf *b, const pl_message_req *r)
{
    pl_body body;
    if (pl_body_open(&body, b, r->params))
        return -1;
    /* Ids travel as decimal strings: JSON numbers above 2^53 lose precision
     * in common parsers (protocol section 3). */
    if (PUT_LIT(b, "{\"type\":\"message\",\"id\":\"")
        || pl_buf_append_u64(b, r->id)
        || PUT_LIT(b, "\",\"session\":") || put_json_cstr(b, r->session)
        || PUT_LIT(b, ",\"timestamp\":") || pl_buf_append_i64(b, r->timestamp_ms)
        || PUT_LIT(b, ",\"content\":")
        || put_content(b, r->content, r->content_len, r->content_blocks)
        || (r->nhistory > 0 && encode_history(b, r->history, r->nhistory))
        || (r->model && pl_body_ours(&body, "model")
            && (PUT_LIT(b, ",\"model\":") || put_json_cstr(b, r->model)))
        || (r->max_tokens > 0 && pl_body_ours(&body, "max_tokens")
            && (PUT_LIT(b, ",\"max_tokens\":") || pl_buf_append_u64(b, r->max_tokens)))
        || (r->params && encode_params(&body, r->params))) {
        pl_body_abandon(&body);
        return -1;
    }
    if (pl_body_close(&body, protocol_members))
        return -1;
    return PUT_LIT(b, "}");
}

int pl_proto_encode_message(pl_buf *out, const pl_message_req *req)
{
    size_t mark = out->len;
    if (encode_message_fields(out, req) == 0)
        return 0;
    buf_truncate(out, mark);
    return -1;
}

int pl_proto_add_resume_from(pl_buf *out, const char *msg, size_t len,
                             uint32_t resume_from)
{
    /* Splice before the final '}' of a non-empty object; anything else was
     * not produced by pl_proto_encode_message. */
    if (len < 3 || msg[0] != '{' || msg[len - 1] != '}')
        return -1;
    size_t mark = out->len;
    if (pl_buf_append(out, msg, len - 1)
        || PUT_LIT(out, ",\"resume_from\":")
        || pl_buf_append_u64(out, resume_from)
        || PUT_LIT(out, "}")) {
        buf_truncate(out, mark);
        return -1;
    }
    return 0;
}

int pl_proto_encode_cancel(pl_buf *out, uint64_t id)
{
    size_t mark = out->len;
    if (PUT_LIT(out, "{\"type\":\"cancel\",\"id\":\"")
        || pl_buf_append_u64(out, id)
        || PUT_LIT(out, "\"}")) {
        buf_truncate(out, mark);
        return -1;
    }
    return 0;
}

/* ======================================================================== */
/* Decoding                                                                  */
/* ======================================================================== */

struct pl_decoder {
    json_tokener *tok;
    /* The last message parsed. Every string of the last pl_server_msg points
     * into it, or into `strings` when the fast path decoded it, so both live
     * until the next decode or pl_decoder_free(). */
    json_object *root;
    pl_buf strings;
};

static json_tokener *new_tokener(void)
{
    json_tokener *tok = json_tokener_new_ex(PL_DECODER_MAX_DEPTH);
    /* Strict: RFC 8259 JSON only (no comments, single quotes, trailing
     * commas, leading zeros, capitalised literals). Trailing data is let
     * through here only so that parse_object() can name it precisely: it
     * compares where the parse ended with the length. */
    if (tok)
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT
                                    | JSON_TOKENER_ALLOW_TRAILING_CHARS);
    return tok;
}

pl_decoder *pl_decoder_new(void)
{
    pl_decoder *dec = calloc(1, sizeof(*dec));
    if (!dec)
        return NULL;
    dec->tok = new_tokener();
    if (!dec->tok) {
        free(dec);
        return NULL;
    }
    return dec;
}

void pl_decoder_free(pl_decoder *dec)
{
    if (!dec)
        return;
    json_object_put(dec->root);
    pl_buf_free(&dec->strings);
    if (dec->tok) /* json-c 0.16's json_tokener_free(NULL) crashes */
        json_tokener_free(dec->tok);
    free(dec);
}

__attribute__((format(printf, 3, 4)))
static void set_err(char *err, size_t size, const char *fmt, ...)
{
    if (!err || size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
}

/* ---- Parsing the text into one object ---- */

static bool is_json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool starts_with_object(const char *buf, size_t len)
{
    size_t i = 0;
    while (i < len && is_json_ws(buf[i]))
        i++;
    return i < len && buf[i] == '{';
}

/* Say why json-c did not give exactly one object spanning the whole input. */
static void describe_parse_failure(json_tokener *tok, const json_object *root,
                                   const char *buf, size_t len,
                                   char *err, size_t err_size)
{
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);

    /* A strict parse yields an object exactly when the text starts with '{'
     * (after blanks), so this also covers arrays, strings and numbers. */
    if (!starts_with_object(buf, len))
        set_err(err, err_size, "message is not a JSON object");
    else if (root)
        set_err(err, err_size, "unexpected data after the JSON object at byte %zu", end);
    else if (jerr == json_tokener_continue)
        set_err(err, err_size, "message is truncated: the JSON object is incomplete");
    else
        set_err(err, err_size, "malformed JSON at byte %zu: %s", end,
                json_tokener_error_desc(jerr));
}

static json_object *parse_object(pl_decoder *dec, const char *buf, size_t len,
                                 char *err, size_t err_size)
{
    if (len == 0) {
        set_err(err, err_size, "message is empty");
        return NULL;
    }
    if (len > INT_MAX) { /* json-c takes an int length */
        set_err(err, err_size, "message is too large to parse (%zu bytes)", len);
        return NULL;
    }
    if (!dec->tok && !(dec->tok = new_tokener())) {
        set_err(err, err_size, "out of memory parsing a message");
        return NULL;
    }
    json_tokener_reset(dec->tok);
    json_object *root = json_tokener_parse_ex(dec->tok, buf, (int)len);
    /* json-c consumes whitespace after the object and stops before anything
     * else (including a NUL byte): the object must span the whole input. */
    if (root && json_tokener_get_error(dec->tok) == json_tokener_success
        && json_tokener_get_parse_end(dec->tok) == len
        && json_object_is_type(root, json_type_object))
        return root;
    describe_parse_failure(dec->tok, root, buf, len, err, err_size);
    json_object_put(root);
    /* json_tokener_reset() does not clear everything a failed parse leaves:
     * after input that ended inside a surrogate pair ("\ud83d\ude"), json-c
     * 0.16 keeps the high half pending, and the next message's first \u
     * escape gains a U+FFFD that no check could tell from the server's own
     * text. So a tokener that failed is replaced, not reused (a NULL one is
     * made again by the next decode). */
    json_tokener_free(dec->tok);
    dec->tok = new_tokener();
    return NULL;
}

/*
 * json-c replaces an unpaired UTF-16 surrogate escape ("\ud800") with U+FFFD
 * without reporting it, so the decoded string cannot tell. Look for them in
 * the raw text instead. The text already parsed as strict JSON, so every
 * backslash is inside a string and starts a complete escape.
 */
static bool has_unpaired_surrogate(const char *buf, size_t len)
{
    const char *p = buf, *end = buf + len;
    while (end - p >= 2 && (p = memchr(p, '\\', (size_t)(end - p))) != NULL) {
        unsigned cu, lo;
        if (!pl_json_u_escape(p, end, &cu)) {
            if (end - p < 2)
                break; /* cannot happen after a successful parse */
            p += 2; /* a two-character escape such as \\ or \" */
            continue;
        }
        p += 6;
        if (cu >= 0xDC00 && cu <= 0xDFFF)
            return true; /* low half with no high half before it */
        if (cu >= 0xD800 && cu <= 0xDBFF) {
            if (!pl_json_u_escape(p, end, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                return true;
            p += 6;
        }
    }
    return false;
}

/* ---- Reading fields ---- */

/* Where fields are read from, and how to name them in error sentences. */
typedef struct reader {
    json_object *obj;
    const char *what;   /* "text message" */
    const char *prefix; /* "" or "usage." for nested fields */
    char *err;
    size_t err_size;
    const char *raw;    /* the message's text, for values kept as written */
    size_t raw_len;
    pl_buf *strings;    /* where such values go (the decoder's) */
} reader;

static int field_error(const reader *r, const char *name, const char *problem)
{
    set_err(r->err, r->err_size, "%s: field \"%s%s\" %s", r->what, r->prefix,
            name, problem);
    return -1;
}

/* The field's value; NULL when absent or null (the same on the wire). */
static json_object *field(const reader *r, const char *name)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(r->obj, name, &v))
        return NULL;
    return v;
}

/* A string field; *s stays NULL when an optional one is absent. */
static int read_str(const reader *r, const char *name, bool required,
                    const char **s, size_t *len)
{
    json_object *v = field(r, name);
    if (!v)
        return required ? field_error(r, name, "is missing") : 0;
    if (!json_object_is_type(v, json_type_string))
        return field_error(r, name, "must be a string");
    const char *p = json_object_get_string(v);
    size_t n = (size_t)json_object_get_string_len(v);
    if (!pl_utf8_valid(p, n))
        return field_error(r, name, "is not valid UTF-8");
    *s = p;
    if (len)
        *len = n;
    return 0;
}

/*
 * An integer field in [0, max], max <= INT64_MAX. json-c never fails on a
 * too large integer: it clamps what does not fit in 64 bits to INT64_MIN or
 * UINT64_MAX, and stores [2^63, 2^64-1] as a uint64. Every field of ours fits
 * in [0, INT64_MAX], so rejecting negative values (by the int64 view) and
 * values above max (by the uint64 view, exact for every non-negative value)
 * rejects every clamped value too: nothing out of range gets through.
 * Doubles (5.0, 1e3, NaN) are not integers and are rejected.
 */
static int read_uint(const reader *r, const char *name, bool required,
                     uint64_t max, uint64_t *out, bool *present)
{
    json_object *v = field(r, name);
    if (!v)
        return required ? field_error(r, name, "is missing") : 0;
    if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
        return field_error(r, name, "must be a non-negative integer");
    uint64_t u = json_object_get_uint64(v);
    if (u > max) {
        char problem[64];
        snprintf(problem, sizeof(problem), "is out of range (at most %llu)",
                 (unsigned long long)max);
        return field_error(r, name, problem);
    }
    *out = u;
    if (present)
        *present = true;
    return 0;
}

static int read_u32(const reader *r, const char *name, bool required,
                    uint32_t *out, bool *present)
{
    uint64_t v = *out;
    if (read_uint(r, name, required, UINT32_MAX, &v, present))
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* "id": sets has_id/id as soon as it is valid, so that a later failure
 * still names the request (see pl_proto_decode in protocol.h). */
static int read_id(const reader *r, bool required, pl_server_msg *m)
{
    const char *s = NULL;
    size_t len = 0;
    if (read_str(r, "id", required, &s, &len))
        return -1;
    if (!s)
        return 0;
    if (pl_proto_parse_id(s, len, &m->id))
        return field_error(r, "id", "must be a decimal string (no sign, no "
                           "leading zero) in [1, 9223372036854775807]");
    m->has_id = true;
    return 0;
}

static int read_session(const reader *r, pl_server_msg *m)
{
    size_t len = 0;
    if (read_str(r, "session", false, &m->session, &len))
        return -1;
    if (m->session && !pl_proto_session_valid(m->session, len))
        return field_error(r, "session", "must be 1-128 bytes of [A-Za-z0-9._:-]");
    return 0;
}

/* ---- One decoder per message type (protocol sections 4 and 9.3) ---- */

/* Compare by length too: a JSON string may hold NUL bytes ("ack\u0000x"). */
static bool str_is(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(s, lit, len) == 0;
}


/* "features": an array of names; this client knows "blocks". */
static int read_features(const reader *r, pl_server_msg *m)
{
    json_object *v = field(r, "features");
    if (!v)
        return 0;
    if (!json_object_is_type(v, json_type_array))
        return field_error(r, "features", "must be an array of strings");
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        json_object *name = json_object_array_get_idx(v, i);
        if (!name || !json_object_is_type(name, json_type_string))
            return field_error(r, "features", "must be an array of strings");
        if (str_is(json_object_get_string(name), (size_t)json_object_get_string_len(name),
                   "blocks"))
            m->feature_blocks = true;
    }
    return 0;
}

static int decode_hello(const reader *r, pl_server_msg *m)
{
    if (read_features(r, m)
        || read_str(r, "protocol", true, &m->protocol, NULL)
        || read_uint(r, "max_message_bytes", false, INT64_MAX,
                     &m->max_message_bytes, NULL)
        || read_u32(r, "heartbeat_s", false, &m->heartbeat_s, NULL)
        || read_u32(r, "idempotency_window_s", false,
                    &m->idempotency_window_s, NULL)
        || read_str(r, "server", false, &m->server, NULL)
        || read_u32(r, "zstd_dict", false, &m->zstd_dict, NULL))
        return -1;
    return 0;
}

static int decode_ack(const reader *r, pl_server_msg *m)
{
    return read_id(r, true, m);
}

/* What every piece has: id, session, seq and its block (required but in
 * `text`, whose servers may predate section 9). */
static int read_piece(const reader *r, pl_server_msg *m, pl_piece_kind kind,
                      bool block_required)
{
    m->piece.kind = kind;
    return read_id(r, true, m) || read_session(r, m)
           || read_u32(r, "seq", true, &m->seq, NULL)
           || read_u32(r, "block", block_required, &m->piece.block, NULL) ? -1 : 0;
}

static int decode_text(const reader *r, pl_server_msg *m)
{
    if (read_piece(r, m, PL_PIECE_TEXT, false)
        || read_str(r, "content", true, &m->content, &m->content_len))
        return -1;
    m->piece.text = m->content;
    m->piece.len = m->content_len;
    return 0;
}

static int decode_thinking(const reader *r, pl_server_msg *m)
{
    if (read_piece(r, m, PL_PIECE_THINKING, true)
        || read_str(r, "content", true, &m->content, &m->content_len)
        || read_str(r, "signature", false, &m->piece.signature, NULL))
        return -1;
    m->piece.text = m->content;
    m->piece.len = m->content_len;
    return 0;
}

/*
 * The call's input, an object, as the compact text of what the server wrote
 * (protocol.md 10.1: key order, escapes and numbers kept), which json-c's
 * serialisation would not keep. A key written with escapes is not found in
 * the text: json-c's serialisation then stands in.
 */
static int read_tool_input(const reader *r, pl_server_msg *m)
{
    json_object *v = field(r, "input");
    if (!v)
        return field_error(r, "input", "is missing");
    if (!json_object_is_type(v, json_type_object))
        return field_error(r, "input", "must be an object");
    const char *raw;
    size_t raw_len;
    pl_buf_reset(r->strings);
    if (pl_json_raw_member(r->raw, r->raw_len, "input", &raw, &raw_len)) {
        if (pl_json_append_compact(r->strings, raw, raw_len)) {
            set_err(r->err, r->err_size, "%s: out of memory", r->what);
            return -1;
        }
        m->content = r->strings->data;
        m->content_len = r->strings->len;
    } else {
        m->content = json_object_to_json_string_ext(
            v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        m->content_len = m->content ? strlen(m->content) : 0;
    }
    if (!m->content || !pl_utf8_valid(m->content, m->content_len))
        return field_error(r, "input", "is not valid UTF-8");
    return 0;
}

static int decode_tool_use(const reader *r, pl_server_msg *m)
{
    if (read_piece(r, m, PL_PIECE_TOOL_USE, true)
        || read_str(r, "tool_id", true, &m->piece.tool_id, NULL)
        || read_str(r, "name", true, &m->piece.tool_name, NULL)
        || read_tool_input(r, m))
        return -1;
    m->piece.text = m->content;
    m->piece.len = m->content_len;
    return 0;
}

static int decode_usage(const reader *r, pl_server_msg *m)
{
    json_object *usage = field(r, "usage");
    if (!usage)
        return 0;
    if (!json_object_is_type(usage, json_type_object))
        return field_error(r, "usage", "must be an object");
    reader sub = *r;
    sub.obj = usage;
    sub.prefix = "usage.";
    if (read_uint(&sub, "input_tokens", false, INT64_MAX, &m->input_tokens, NULL)
        || read_uint(&sub, "output_tokens", false, INT64_MAX, &m->output_tokens,
                     NULL))
        return -1;
    return 0;
}

static int decode_done(const reader *r, pl_server_msg *m)
{
    if (read_id(r, true, m)
        || read_session(r, m)
        || read_str(r, "stop_reason", true, &m->stop_reason, NULL)
        || read_str(r, "stop_sequence", false, &m->stop_sequence, NULL)
        || read_u32(r, "seq_end", true, &m->seq_end, &m->has_seq_end)
        || decode_usage(r, m))
        return -1;
    return 0;
}

static int decode_error(const reader *r, pl_server_msg *m)
{
    size_t code_len = 0;
    uint64_t retry = 0;
    bool has_retry = false;
    if (read_id(r, false, m)
        || read_str(r, "code", true, &m->code_str, &code_len)
        || read_str(r, "content", false, &m->content, &m->content_len)
        || read_uint(r, "retry_after_ms", false, INT64_MAX, &retry, &has_retry)
        || read_u32(r, "seq_end", false, &m->seq_end, &m->has_seq_end))
        return -1;
    m->code = pl_proto_server_err_of(m->code_str, code_len);
    if (has_retry)
        m->retry_after_ms = (int64_t)retry;
    return 0;
}

static const struct {
    const char *name;
    const char *what;
    pl_server_msg_type type;
    int (*decode)(const reader *r, pl_server_msg *m);
} msg_types[] = {
    {"hello", "hello message", PL_SMSG_HELLO, decode_hello},
    {"ack", "ack message", PL_SMSG_ACK, decode_ack},
    {"text", "text message", PL_SMSG_TEXT, decode_text},
    {"thinking", "thinking message", PL_SMSG_TEXT, decode_thinking},
    {"tool_use", "tool_use message", PL_SMSG_TEXT, decode_tool_use},
    {"done", "done message", PL_SMSG_DONE, decode_done},
    {"error", "error message", PL_SMSG_ERROR, decode_error},
};

/* ---- The entry point ---- */

static void msg_init(pl_server_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->retry_after_ms = -1;
    m->max_message_bytes = PL_PROTO_DEFAULT_MAX_MESSAGE_BYTES;
}

/* After a failure keep only what protocol.h promises (type, has_id, id), so
 * that no half-checked field can be used by mistake. */
static void msg_keep_id_only(pl_server_msg *m)
{
    pl_server_msg_type type = m->type;
    bool has_id = m->has_id;
    uint64_t id = m->id;
    msg_init(m);
    m->type = type;
    m->has_id = has_id;
    m->id = id;
}

/* Find "type" and the decoder for it; -1 when missing or not a string. */
static int lookup_type(json_object *root, size_t *index, char *err, size_t err_size)
{
    json_object *t = NULL;
    if (!json_object_object_get_ex(root, "type", &t) || !t) {
        set_err(err, err_size, "message has no \"type\" field");
        return -1;
    }
    if (!json_object_is_type(t, json_type_string)) {
        set_err(err, err_size, "message: field \"type\" must be a string");
        return -1;
    }
    const char *s = json_object_get_string(t);
    size_t len = (size_t)json_object_get_string_len(t);
    *index = SIZE_MAX; /* unknown */
    for (size_t i = 0; i < sizeof(msg_types) / sizeof(msg_types[0]); i++) {
        if (str_is(s, len, msg_types[i].name)) {
            *index = i;
            break;
        }
    }
    return 0;
}

static int decode_fields(pl_decoder *dec, const char *buf, size_t len,
                         pl_server_msg *msg, char *err, size_t err_size)
{
    json_object *root = dec->root;
    size_t i;
    if (lookup_type(root, &i, err, err_size))
        return -1;
    if (i == SIZE_MAX) { /* ignored by the client, counted by the caller */
        msg->type = PL_SMSG_UNKNOWN;
        return 0;
    }
    msg->type = msg_types[i].type;
    reader r = {root, msg_types[i].what, "", err, err_size, buf, len, &dec->strings};
    if (msg_types[i].decode(&r, msg))
        return -1;
    if (has_unpaired_surrogate(buf, len)) {
        set_err(err, err_size, "%s: a string holds an unpaired UTF-16 "
                "surrogate escape", msg_types[i].what);
        return -1;
    }
    return 0;
}

int pl_proto_decode(pl_decoder *dec, const char *buf, size_t len,
                    pl_server_msg *msg, char *err, size_t err_size)
{
    msg_init(msg);
    /* The previous message's strings die here, as protocol.h documents. */
    json_object_put(dec->root);
    dec->root = NULL;
    if (pl_proto_fast_decode(&dec->strings, buf, len, msg) == 0) {
        if (err && err_size)
            err[0] = '\0';
        return 0;
    }
    set_err(err, err_size, "%s", "");
    dec->root = parse_object(dec, buf, len, err, err_size);
    if (!dec->root)
        return -1;
    if (decode_fields(dec, buf, len, msg, err, err_size) == 0)
        return 0;
    msg_keep_id_only(msg);
    return -1;
}

int pl_proto_peek_id(const char *start, size_t len, uint64_t *id)
{
    static const char key[] = "\"id\"";
    const char *end = start + len;
    for (const char *p = start; p && p + sizeof(key) - 1 < end;
         p = memchr(p + 1, '"', (size_t)(end - p - 1))) {
        if (memcmp(p, key, sizeof(key) - 1) != 0)
            continue;
        const char *v = p + sizeof(key) - 1;
        while (v < end && (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r'))
            v++;
        if (v >= end || *v++ != ':')
            continue;
        while (v < end && (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r'))
            v++;
        if (v >= end || *v++ != '"')
            continue;
        const char *q = memchr(v, '"', (size_t)(end - v));
        if (q && pl_proto_parse_id(v, (size_t)(q - v), id) == 0)
            return 0;
    }
    return -1;
}
