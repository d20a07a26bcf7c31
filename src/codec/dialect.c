/* The parts of the HTTP dialects they share: dispatch, errors, statuses. */
#include "dialect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

#include "json_raw.h"
#include "utf8.h"

int pl_dialect_encode(pl_buf *out, pl_dialect d, const pl_message_req *req)
{
    return d == PL_DIALECT_ANTHROPIC ? pl_anthropic_encode(out, req) : pl_openai_encode(out, req);
}

#define DEFAULT_MAX_TOOL_INPUT (1024u * 1024u)

void pl_stream_state_init(pl_stream_state *st, pl_dialect d, size_t max_tool_input)
{
    memset(st, 0, sizeof(*st));
    st->dialect = d;
    st->max_tool_input = max_tool_input ? max_tool_input : DEFAULT_MAX_TOOL_INPUT;
    st->stop_reason = "end_turn";
    st->block_kind = -1;
}

static void free_calls(pl_stream_state *st)
{
    for (size_t i = 0; i < st->ncalls; i++) {
        pl_buf_free(&st->calls[i].id);
        pl_buf_free(&st->calls[i].name);
        pl_buf_free(&st->calls[i].arguments);
    }
    free(st->calls);
    st->calls = NULL;
    st->ncalls = 0;
}

void pl_stream_state_reset(pl_stream_state *st)
{
    if (st->last)
        json_object_put(st->last);
    st->last = NULL;
    st->input_tokens = st->output_tokens = 0;
    st->cache_creation_tokens = st->cache_read_tokens = 0;
    st->stop_reason = "end_turn";
    st->has_stop_sequence = false;
    pl_buf_reset(&st->stop_sequence);
    pl_buf_reset(&st->message_id);
    st->in_block = false;
    st->block = 0;
    st->block_kind = -1;
    pl_buf_reset(&st->tool_input);
    st->has_text = st->refusal = st->finished = false;
    free_calls(st);
    st->call_bytes = 0;
}

void pl_stream_state_free(pl_stream_state *st)
{
    pl_stream_state_reset(st);
    if (st->tok)
        json_tokener_free(st->tok);
    st->tok = NULL;
    pl_buf_free(&st->strings);
    free(st->pieces);
    st->pieces = NULL;
    st->pieces_cap = 0;
    pl_buf_free(&st->stop_reason_buf);
    pl_buf_free(&st->stop_sequence);
    pl_buf_free(&st->message_id);
    pl_buf_free(&st->tool_id);
    pl_buf_free(&st->tool_name);
    pl_buf_free(&st->tool_input);
}

pl_piece *pl_stream_add_piece(pl_stream_state *st, pl_stream_result *res, pl_piece_kind kind)
{
    if (res->npieces == st->pieces_cap) {
        size_t cap = st->pieces_cap ? st->pieces_cap * 2 : 4;
        pl_piece *p = realloc(st->pieces, cap * sizeof(*p));
        if (!p)
            return NULL;
        st->pieces = p;
        st->pieces_cap = cap;
    }
    pl_piece *piece = &st->pieces[res->npieces++];
    memset(piece, 0, sizeof(*piece));
    piece->kind = kind;
    res->kind = PL_STREAM_PIECE;
    res->pieces = st->pieces;
    return piece;
}

int pl_stream_keep(pl_buf *b, const char *s, size_t len)
{
    pl_buf_reset(b);
    /* Appending "" still allocates, so that the string is never NULL. */
    return pl_buf_append(b, s ? s : "", s ? len : 0) != 0 || pl_buf_reserve(b, 1) != 0 ? -1 : 0;
}

int pl_stream_add_input(pl_stream_state *st, pl_buf *input, const char *s, size_t len,
                        char *err, size_t err_size)
{
    if (len > st->max_tool_input || st->call_bytes > st->max_tool_input - len) {
        snprintf(err, err_size, "a tool call's input over %zu bytes", st->max_tool_input);
        return -1;
    }
    if (pl_buf_append(input, s, len) != 0) {
        snprintf(err, err_size, "out of memory assembling a tool call's input");
        return -1;
    }
    st->call_bytes += len;
    return 0;
}

int pl_stream_check_input(pl_stream_state *st, pl_buf *input, char *err, size_t err_size)
{
    /* A call of a tool without parameters may stream no input at all. */
    if (input->len == 0 && pl_buf_append(input, "{}", 2) != 0) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    char why[96];
    if (pl_json_check_object(&st->tok, input->data, input->len, why, sizeof(why)) != 0) {
        snprintf(err, err_size, "a tool call's input is not a JSON object (%s)", why);
        return -1;
    }
    return 0;
}

/* The stop reasons of both vendors that parley names (reply.h), kept as
 * static strings; another one is copied as it came. */
static const char *const known_stop_reasons[] = {
    "end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal", "pause_turn",
    "content_filter", "cancelled",
};

int pl_stream_set_stop_reason(pl_stream_state *st, const char *reason, size_t len)
{
    for (size_t i = 0; i < sizeof(known_stop_reasons) / sizeof(known_stop_reasons[0]); i++) {
        if (strlen(known_stop_reasons[i]) == len && !memcmp(reason, known_stop_reasons[i], len)) {
            st->stop_reason = known_stop_reasons[i];
            return 0;
        }
    }
    if (pl_stream_keep(&st->stop_reason_buf, reason, len) != 0)
        return -1;
    st->stop_reason = st->stop_reason_buf.data;
    return 0;
}

void pl_stream_done(pl_stream_state *st, pl_stream_result *res)
{
    res->kind = PL_STREAM_DONE;
    res->end = (pl_reply_end){
        .stop_reason = st->stop_reason,
        .stop_sequence = st->has_stop_sequence ? st->stop_sequence.data : NULL,
        .input_tokens = st->input_tokens,
        .output_tokens = st->output_tokens,
        .cache_creation_tokens = st->cache_creation_tokens,
        .cache_read_tokens = st->cache_read_tokens,
        .message_id = st->message_id.len ? st->message_id.data : NULL,
    };
}

/* Parse exactly one JSON object, or NULL with a sentence in err. */
static struct json_object *parse_object(struct json_tokener **tok, const char *text,
                                        size_t len, char *err, size_t err_size)
{
    if (!*tok && !(*tok = json_tokener_new())) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    json_tokener_reset(*tok);
    json_tokener_set_flags(*tok, JSON_TOKENER_STRICT);
    struct json_object *obj = json_tokener_parse_ex(*tok, text, (int)len);
    if (!obj || json_tokener_get_parse_end(*tok) != len ||
        !json_object_is_type(obj, json_type_object)) {
        snprintf(err, err_size, "the event's data is not one JSON object");
        if (obj)
            json_object_put(obj);
        return NULL;
    }
    return obj;
}

static int decode_event(pl_stream_state *st, const pl_sse_event *ev,
                        pl_stream_result *res, char *err, size_t err_size)
{
    memset(res, 0, sizeof(*res));
    if (st->last) {
        json_object_put(st->last);
        st->last = NULL;
    }
    if (st->dialect == PL_DIALECT_OPENAI && ev->data_len == 6 &&
        memcmp(ev->data, "[DONE]", 6) == 0) {
        pl_stream_done(st, res);
        return 0;
    }
    if (ev->data_len > (size_t)INT32_MAX) {
        snprintf(err, err_size, "an event of %zu bytes", ev->data_len);
        return -1;
    }
    if (st->dialect == PL_DIALECT_ANTHROPIC) {
        int rc = pl_anthropic_fast_event(st, ev, res, err, err_size);
        if (rc != 0)
            return rc > 0 ? 0 : -1;
    }
    st->last = parse_object(&st->tok, ev->data, ev->data_len, err, err_size);
    if (!st->last)
        return -1;
    return st->dialect == PL_DIALECT_ANTHROPIC
               ? pl_anthropic_event(st, st->last, ev, res, err, err_size)
               : pl_openai_event(st, st->last, res, err, err_size);
}

static bool utf8_or_null(const char *s)
{
    return !s || pl_utf8_valid(s, strlen(s));
}

/* json-c and the fast path pass raw bytes of a JSON string through
 * unchecked; what reaches the user must be UTF-8 (parley.h), as the native
 * path requires of its frames. (Tool inputs were checked whole.) */
static const char *invalid_utf8(const pl_stream_result *res)
{
    for (size_t i = 0; i < res->npieces; i++) {
        const pl_piece *p = &res->pieces[i];
        if (p->kind != PL_PIECE_TOOL_USE && !pl_utf8_valid(p->text, p->len))
            return p->kind == PL_PIECE_TEXT ? "a text piece" : "a thinking piece";
        if (!utf8_or_null(p->signature) || !utf8_or_null(p->tool_id) ||
            !utf8_or_null(p->tool_name))
            return "a block's signature, id or name";
    }
    if (res->kind == PL_STREAM_DONE &&
        (!utf8_or_null(res->end.stop_reason) || !utf8_or_null(res->end.stop_sequence) ||
         !utf8_or_null(res->end.message_id)))
        return "the stop reason, stop sequence or message id";
    return NULL;
}

int pl_dialect_event(pl_stream_state *st, const pl_sse_event *ev,
                     pl_stream_result *res, char *err, size_t err_size)
{
    if (decode_event(st, ev, res, err, err_size) != 0)
        return -1;
    const char *what = invalid_utf8(res);
    if (what) {
        snprintf(err, err_size, "%s that is not valid UTF-8", what);
        return -1;
    }
    res->arrived = true;
    return 0;
}

static void copy_string(struct json_object *obj, const char *key, char *out, size_t size)
{
    struct json_object *v;
    if (size == 0)
        return;
    out[0] = '\0';
    if (json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_string))
        snprintf(out, size, "%s", json_object_get_string(v));
}

int pl_dialect_error_body(const char *body, size_t len, char *type, size_t type_size,
                          char *message, size_t message_size)
{
    struct json_tokener *tok = NULL;
    char err[64];
    struct json_object *root = len < (size_t)INT32_MAX
                                   ? parse_object(&tok, body, len, err, sizeof(err))
                                   : NULL;
    if (tok)
        json_tokener_free(tok);
    struct json_object *e;
    if (!root || !json_object_object_get_ex(root, "error", &e) ||
        !json_object_is_type(e, json_type_object)) {
        if (root)
            json_object_put(root);
        return -1;
    }
    /* Both vendors name it "type" inside "error"; OpenAI adds "code". */
    copy_string(e, "type", type, type_size);
    if (type_size && !type[0])
        copy_string(e, "code", type, type_size);
    copy_string(e, "message", message, message_size);
    json_object_put(root);
    return 0;
}

parley_err_t pl_dialect_map_status(long status)
{
    switch (status) {
    case 400: return PARLEY_ERR_INVALID_REQUEST;
    case 401: return PARLEY_ERR_UNAUTHORIZED;
    case 403: return PARLEY_ERR_FORBIDDEN;
    case 404: return PARLEY_ERR_NOT_FOUND;
    case 408: return PARLEY_ERR_TIMED_OUT;
    case 413: return PARLEY_ERR_SERVER_TOO_LARGE;
    case 429: return PARLEY_ERR_RATE_LIMITED;
    case 503:
    case 529: return PARLEY_ERR_OVERLOADED;
    }
    return status >= 500 ? PARLEY_ERR_SERVER_INTERNAL : PARLEY_ERR_PROTOCOL;
}

parley_err_t pl_dialect_map_error_type(const char *type)
{
    static const struct {
        const char *type;
        parley_err_t err;
    } map[] = {
        {"invalid_request_error", PARLEY_ERR_INVALID_REQUEST},
        {"authentication_error", PARLEY_ERR_UNAUTHORIZED},
        {"invalid_api_key", PARLEY_ERR_UNAUTHORIZED},
        {"permission_error", PARLEY_ERR_FORBIDDEN},
        {"not_found_error", PARLEY_ERR_NOT_FOUND},
        {"model_not_found", PARLEY_ERR_NOT_FOUND},
        {"request_too_large", PARLEY_ERR_SERVER_TOO_LARGE},
        {"rate_limit_error", PARLEY_ERR_RATE_LIMITED},
        {"rate_limit_exceeded", PARLEY_ERR_RATE_LIMITED},
        {"overloaded_error", PARLEY_ERR_OVERLOADED},
        {"api_error", PARLEY_ERR_SERVER_INTERNAL},
        {"server_error", PARLEY_ERR_SERVER_INTERNAL},
    };
    for (size_t i = 0; type && i < sizeof(map) / sizeof(map[0]); i++)
        if (!strcmp(type, map[i].type))
            return map[i].err;
    return PARLEY_ERR_SERVER_INTERNAL;
}
