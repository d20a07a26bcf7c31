/* Anthropic Messages: POST /v1/messages, streamed as named SSE events. */
#include <stdio.h>
#include <string.h>

#include <json.h>

#include "dialect.h"
#include "json_scan.h"
#include "request_body.h"

/* The API requires max_tokens; this is what a turn asks for by default. */
#define ANTHROPIC_DEFAULT_MAX_TOKENS 1024

#define CACHE_CONTROL "\"cache_control\":{\"type\":\"ephemeral\"}"

/*
 * Append arr, a JSON array whose last element is an object, with
 * cache_control added to that object; an array of anything else is
 * appended as it is. Textual, not through json-c: the caller's JSON stays
 * as written.
 */
static int append_cached_last(pl_buf *out, const char *arr, size_t len)
{
    size_t close = len;
    while (close > 0 && arr[close - 1] != ']')
        close--;
    size_t brace = close > 0 ? close - 1 : 0;
    while (brace > 0 && arr[brace - 1] != '}' && strchr(" \t\r\n", arr[brace - 1]))
        brace--;
    if (brace == 0 || arr[brace - 1] != '}')
        return pl_buf_append(out, arr, len);
    brace--; /* the last element's closing brace */
    size_t before = brace;
    while (before > 0 && strchr(" \t\r\n", arr[before - 1]))
        before--;
    bool empty = before > 0 && arr[before - 1] == '{';
    if (pl_buf_append(out, arr, brace) != 0 || (!empty && pl_buf_append(out, ",", 1) != 0) ||
        pl_buf_append_str(out, CACHE_CONTROL) != 0)
        return -1;
    return pl_buf_append(out, arr + brace, len - brace);
}

/* A string content as an array of one text block, for its cache_control. */
static int append_cached_text(pl_buf *out, const char *text, size_t len)
{
    if (pl_buf_append_str(out, "[{\"type\":\"text\",\"text\":") != 0 ||
        pl_buf_append_json_str(out, text, len) != 0 ||
        pl_buf_append_str(out, "," CACHE_CONTROL "}]") != 0)
        return -1;
    return 0;
}

/* A message; `cached`: the conversation's last, marked for prompt caching. */
static int append_message(pl_buf *out, bool assistant, const char *content, size_t len,
                          bool blocks, bool first, bool cached)
{
    if ((!first && pl_buf_append(out, ",", 1) != 0) ||
        pl_buf_append_str(out, assistant ? "{\"role\":\"assistant\",\"content\":"
                                         : "{\"role\":\"user\",\"content\":") != 0)
        return -1;
    int rc = cached ? (blocks ? append_cached_last(out, content, len)
                              : append_cached_text(out, content, len))
                    : (blocks ? pl_buf_append(out, content, len)
                              : pl_buf_append_json_str(out, content, len));
    if (rc != 0)
        return -1;
    return pl_buf_append(out, "}", 1);
}

static int append_system(pl_buf *out, const char *system, bool cached)
{
    if (pl_buf_append_str(out, ",\"system\":") != 0)
        return -1;
    return cached ? append_cached_text(out, system, strlen(system))
                  : pl_buf_append_json_str(out, system, strlen(system));
}

/* The members that carry the conversation and the stream (request_body.h). */
static const char *const kept_members[] = {"messages", "stream", NULL};

static int append_body(pl_body *body, const pl_message_req *req)
{
    pl_buf *out = body->out;
    const pl_request_params *p = req->params;
    bool caching = p && p->prompt_caching;
    const char *model = req->model ? req->model : "parley-echo-1";
    uint32_t max_tokens = req->max_tokens ? req->max_tokens : ANTHROPIC_DEFAULT_MAX_TOKENS;
    /* Model and max_tokens may be replaced by extra_body: the comma before
     * "stream" depends on them. */
    bool first = true;
    if (pl_buf_append(out, "{", 1) != 0)
        return -1;
    if (pl_body_ours(body, "model")) {
        if (pl_buf_append_str(out, "\"model\":") != 0 ||
            pl_buf_append_json_str(out, model, strlen(model)) != 0)
            return -1;
        first = false;
    }
    if (pl_body_ours(body, "max_tokens")) {
        if (pl_buf_append_str(out, first ? "\"max_tokens\":" : ",\"max_tokens\":") != 0 ||
            pl_buf_append_u64(out, max_tokens) != 0)
            return -1;
        first = false;
    }
    if (pl_buf_append_str(out, first ? "\"stream\":true" : ",\"stream\":true") != 0)
        return -1;
    if (p && p->system && pl_body_ours(body, "system") && append_system(out, p->system, caching) != 0)
        return -1;
    if (pl_buf_append_str(out, ",\"messages\":[") != 0)
        return -1;
    for (size_t i = 0; i < req->nhistory; i++) {
        const pl_history_turn *h = &req->history[i];
        if (append_message(out, h->assistant, h->content, h->content_len, h->blocks, i == 0,
                           false) != 0)
            return -1;
    }
    if (append_message(out, false, req->content, req->content_len, req->content_blocks,
                       req->nhistory == 0, caching) != 0 ||
        pl_buf_append(out, "]", 1) != 0)
        return -1;
    if (!p)
        return 0;
    if (!caching || !p->tools)
        return pl_body_common_params(body, p, NULL);
    pl_buf tools = PL_BUF_INIT;
    int rc = append_cached_last(&tools, p->tools, strlen(p->tools)) != 0 ? -1
             : pl_body_common_params(body, p, tools.data);
    pl_buf_free(&tools);
    return rc;
}

int pl_anthropic_encode(pl_buf *out, const pl_message_req *req)
{
    size_t mark = out->len;
    pl_body body;
    if (pl_body_open(&body, out, req->params) != 0)
        return -1;
    if (append_body(&body, req) != 0) {
        pl_body_abandon(&body);
    } else if (pl_body_close(&body, kept_members) == 0 && pl_buf_append(out, "}", 1) == 0) {
        return 0;
    }
    out->len = mark;
    if (out->data)
        out->data[mark] = '\0';
    return -1;
}

static struct json_object *member(struct json_object *obj, const char *key)
{
    struct json_object *v = NULL;
    return json_object_object_get_ex(obj, key, &v) ? v : NULL;
}

static const char *string_member(struct json_object *obj, const char *key)
{
    struct json_object *v = obj ? member(obj, key) : NULL;
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static void read_tokens(struct json_object *usage, const char *key, uint64_t *out)
{
    struct json_object *v = usage ? member(usage, key) : NULL;
    if (v && json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0)
        *out = (uint64_t)json_object_get_int64(v);
}

/* The stop reasons parley promises: a reply cut by the token limit, or not. */
static const char *map_stop_reason(const char *reason)
{
    return reason && !strcmp(reason, "max_tokens") ? "max_tokens" : "end_turn";
}

int pl_anthropic_event(pl_stream_state *st, struct json_object *obj,
                       const pl_sse_event *ev, pl_stream_result *res, char *err,
                       size_t err_size)
{
    /* The data's "type" names the event as well as the event line does. */
    const char *type = string_member(obj, "type");
    if (!type) {
        snprintf(err, err_size, "event \"%.*s\" has no \"type\"", (int)ev->type_len,
                 ev->type);
        return -1;
    }
    if (!strcmp(type, "message_start")) {
        struct json_object *msg = member(obj, "message");
        read_tokens(msg ? member(msg, "usage") : NULL, "input_tokens", &st->input_tokens);
    } else if (!strcmp(type, "content_block_delta")) {
        struct json_object *delta = member(obj, "delta");
        const char *dtype = string_member(delta, "type");
        if (dtype && !strcmp(dtype, "text_delta")) {
            struct json_object *text = member(delta, "text");
            if (!text || !json_object_is_type(text, json_type_string)) {
                snprintf(err, err_size, "a text_delta without text");
                return -1;
            }
            res->kind = PL_STREAM_TEXT;
            res->text = json_object_get_string(text);
            res->text_len = (size_t)json_object_get_string_len(text);
        }
    } else if (!strcmp(type, "message_delta")) {
        st->stop_reason = map_stop_reason(string_member(member(obj, "delta"), "stop_reason"));
        read_tokens(member(obj, "usage"), "output_tokens", &st->output_tokens);
    } else if (!strcmp(type, "message_stop")) {
        res->kind = PL_STREAM_DONE;
        res->stop_reason = st->stop_reason;
        res->input_tokens = st->input_tokens;
        res->output_tokens = st->output_tokens;
    } else if (!strcmp(type, "error")) {
        struct json_object *e = member(obj, "error");
        res->kind = PL_STREAM_ERROR;
        res->error_type = string_member(e, "type");
        res->error_message = string_member(e, "message");
    }
    /* ping, content_block_start/stop and event types yet to come: nothing. */
    return 0;
}

/* ---- the fast path -------------------------------------------------------- */

/*
 * Every piece of a reply is a content_block_delta event, and each reply has
 * a few more (content_block_start/stop, message_delta, message_stop, ping):
 * parsing each into a json-c tree was a fifth of the client's CPU per
 * request. These are scanned once instead (json_scan.h), and so is
 * message_start; error events, and whatever the scanner or the checks
 * below decline, go to pl_anthropic_event(), which decodes the same events
 * to the same results.
 */

/* The members the fast path reads. */
enum fast_member { M_TYPE, M_DELTA_TYPE, M_DELTA_TEXT, M_STOP_REASON, M_OUTPUT_TOKENS,
                   M_INPUT_TOKENS, M_COUNT, M_OTHER = M_COUNT };

typedef struct fast_event {
    bool present[M_COUNT];
    pl_json_value v[M_COUNT];
} fast_event;

static enum fast_member fast_member_of(const char *const *keys, const size_t *lens,
                                       size_t depth)
{
    if (depth == 1)
        return pl_json_key_is(keys, lens, 0, "type") ? M_TYPE : M_OTHER;
    if (depth == 3)
        return pl_json_key_is(keys, lens, 0, "message") &&
                       pl_json_key_is(keys, lens, 1, "usage") &&
                       pl_json_key_is(keys, lens, 2, "input_tokens")
                   ? M_INPUT_TOKENS
                   : M_OTHER;
    if (depth != 2)
        return M_OTHER;
    if (pl_json_key_is(keys, lens, 0, "delta")) {
        if (pl_json_key_is(keys, lens, 1, "type"))
            return M_DELTA_TYPE;
        if (pl_json_key_is(keys, lens, 1, "text"))
            return M_DELTA_TEXT;
        if (pl_json_key_is(keys, lens, 1, "stop_reason"))
            return M_STOP_REASON;
    } else if (pl_json_key_is(keys, lens, 0, "usage") &&
               pl_json_key_is(keys, lens, 1, "output_tokens")) {
        return M_OUTPUT_TOKENS;
    }
    return M_OTHER;
}

static bool on_fast_member(void *ctx, const char *const *keys, const size_t *lens,
                           size_t depth, const pl_json_value *v)
{
    fast_event *fe = ctx;
    enum fast_member m = fast_member_of(keys, lens, depth);
    if (m == M_OTHER)
        return true;
    if (fe->present[m])
        return false; /* given twice: json-c keeps the last, we decline */
    fe->present[m] = true;
    fe->v[m] = *v;
    return true;
}

/* A string member, as string_member() gives it: NULL unless a string.
 * Compared with strcmp() below, as pl_anthropic_event() does. */
static const char *fast_string(const fast_event *fe, enum fast_member m)
{
    return fe->present[m] && fe->v[m].kind == PL_JSON_STRING ? fe->v[m].s : NULL;
}

/* A token count as read_tokens() takes it, into *out; false when json-c
 * would have clamped it, which is json-c's to do. */
static bool fast_tokens(const fast_event *fe, enum fast_member m, uint64_t *out)
{
    if (!fe->present[m] || fe->v[m].kind != PL_JSON_NUMBER)
        return true;
    if (fe->v[m].n > INT64_MAX)
        return false;
    *out = fe->v[m].n;
    return true;
}

bool pl_anthropic_fast_event(pl_stream_state *st, const pl_sse_event *ev,
                             pl_stream_result *res)
{
    fast_event fe = {0};
    if (!pl_json_scan(&st->strings, ev->data, ev->data_len, on_fast_member, &fe))
        return false;
    const char *type = fast_string(&fe, M_TYPE);
    if (!type || !strcmp(type, "error"))
        return false;
    if (!strcmp(type, "message_start")) {
        uint64_t tokens = st->input_tokens;
        if (!fast_tokens(&fe, M_INPUT_TOKENS, &tokens))
            return false;
        st->input_tokens = tokens;
    } else if (!strcmp(type, "content_block_delta")) {
        const char *dtype = fast_string(&fe, M_DELTA_TYPE);
        if (dtype && !strcmp(dtype, "text_delta")) {
            if (!fast_string(&fe, M_DELTA_TEXT))
                return false; /* an error, to be worded by the full decoder */
            res->kind = PL_STREAM_TEXT;
            res->text = fe.v[M_DELTA_TEXT].s;
            res->text_len = fe.v[M_DELTA_TEXT].len;
        }
    } else if (!strcmp(type, "message_delta")) {
        uint64_t tokens = st->output_tokens;
        if (!fast_tokens(&fe, M_OUTPUT_TOKENS, &tokens))
            return false;
        st->output_tokens = tokens;
        st->stop_reason = map_stop_reason(fast_string(&fe, M_STOP_REASON));
    } else if (!strcmp(type, "message_stop")) {
        res->kind = PL_STREAM_DONE;
        res->stop_reason = st->stop_reason;
        res->input_tokens = st->input_tokens;
        res->output_tokens = st->output_tokens;
    }
    /* ping, content_block_start/stop and event types yet to come: nothing. */
    return true;
}
