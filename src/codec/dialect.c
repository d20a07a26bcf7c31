/* The parts of the HTTP dialects they share: dispatch, errors, statuses. */
#include "dialect.h"

#include <stdio.h>
#include <string.h>

#include <json.h>

#include "utf8.h"

int pl_dialect_encode(pl_buf *out, pl_dialect d, const pl_message_req *req)
{
    return d == PL_DIALECT_ANTHROPIC ? pl_anthropic_encode(out, req) : pl_openai_encode(out, req);
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
