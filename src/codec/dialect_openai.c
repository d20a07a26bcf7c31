/* OpenAI Chat Completions: POST /v1/chat/completions, streamed as data-only
 * SSE events ending with "data: [DONE]". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

#include "dialect.h"
#include "request_body.h"


/* Messages are written one after the other; the first has no comma. */
typedef struct writer {
    pl_buf *out;
    bool first;
} writer;

static int next_message(writer *w)
{
    if (w->first) {
        w->first = false;
        return 0;
    }
    return pl_buf_append(w->out, ",", 1);
}

static int append_message(writer *w, const char *role, const char *content, size_t len)
{
    pl_buf *out = w->out;
    if (next_message(w) != 0 || pl_buf_append_str(out, "{\"role\":\"") != 0 ||
        pl_buf_append_str(out, role) != 0 || pl_buf_append_str(out, "\",\"content\":") != 0 ||
        pl_buf_append_json_str(out, content, len) != 0)
        return -1;
    return pl_buf_append(out, "}", 1);
}

static struct json_object *member(struct json_object *obj, const char *key)
{
    struct json_object *v = NULL;
    return obj && json_object_object_get_ex(obj, key, &v) ? v : NULL;
}

/* A string member, "" when absent or not a string (the caller checked the
 * blocks when they were made). */
static const char *str_of(struct json_object *obj, const char *key, size_t *len)
{
    struct json_object *v = member(obj, key);
    if (!v || !json_object_is_type(v, json_type_string)) {
        *len = 0;
        return "";
    }
    *len = (size_t)json_object_get_string_len(v);
    return json_object_get_string(v);
}

static bool type_is(struct json_object *block, const char *type)
{
    size_t len;
    const char *t = str_of(block, "type", &len);
    return !strcmp(t, type);
}

static int append_str_member(pl_buf *out, const char *key, struct json_object *obj,
                             const char *from)
{
    size_t len;
    const char *s = str_of(obj, from, &len);
    return pl_body_key(out, key) != 0 ? -1 : pl_buf_append_json_str(out, s, len);
}

/* A value as compact JSON text. */
static int append_json(pl_buf *out, struct json_object *v)
{
    const char *text =
        json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    return text ? pl_buf_append_str(out, text) : -1;
}

/* A content given as blocks, parsed (one tree, freed by the caller). */
static struct json_object *parse_blocks(const char *json, size_t len)
{
    struct json_tokener *tok = json_tokener_new();
    if (!tok)
        return NULL;
    struct json_object *arr = len <= INT32_MAX ? json_tokener_parse_ex(tok, json, (int)len) : NULL;
    json_tokener_free(tok);
    if (arr && !json_object_is_type(arr, json_type_array)) {
        json_object_put(arr);
        return NULL;
    }
    return arr;
}

/*
 * A tool result's content as the text of a `tool` message: a string as it
 * is, text blocks joined by one space (as protocol.md 10 reads them). OpenAI
 * has no is_error: a failed call's text starts with "error: ", so that the
 * model still learns it failed.
 */
static int append_tool_result_text(pl_buf *out, struct json_object *block)
{
    pl_buf text = PL_BUF_INIT;
    struct json_object *is_error = member(block, "is_error");
    struct json_object *content = member(block, "content");
    int rc = 0;
    if (is_error && json_object_is_type(is_error, json_type_boolean) &&
        json_object_get_boolean(is_error))
        rc = pl_buf_append_str(&text, "error: ");
    if (content && json_object_is_type(content, json_type_string)) {
        rc = rc ? rc : pl_buf_append(&text, json_object_get_string(content),
                                     (size_t)json_object_get_string_len(content));
    } else if (content && json_object_is_type(content, json_type_array)) {
        bool first = true;
        for (size_t i = 0; rc == 0 && i < json_object_array_length(content); i++) {
            struct json_object *part = json_object_array_get_idx(content, i);
            if (!type_is(part, "text"))
                continue;
            size_t len;
            const char *s = str_of(part, "text", &len);
            rc = (!first && pl_buf_append(&text, " ", 1) != 0) || pl_buf_append(&text, s, len) != 0
                     ? -1 : 0;
            first = false;
        }
    }
    if (rc == 0)
        rc = pl_buf_append_json_str(out, text.data ? text.data : "", text.len);
    pl_buf_free(&text);
    return rc;
}

/* An image block as an image_url part: a data URL for base64 bytes. */
static int append_image_part(pl_buf *out, struct json_object *block)
{
    struct json_object *source = member(block, "source");
    size_t len;
    if (pl_buf_append_str(out, "{\"type\":\"image_url\",\"image_url\":{\"url\":") != 0)
        return -1;
    if (type_is(source, "url")) {
        const char *url = str_of(source, "url", &len);
        if (pl_buf_append_json_str(out, url, len) != 0)
            return -1;
    } else {
        pl_buf url = PL_BUF_INIT;
        size_t type_len, data_len;
        const char *type = str_of(source, "media_type", &type_len);
        const char *data = str_of(source, "data", &data_len);
        int rc = pl_buf_append_str(&url, "data:") != 0 || pl_buf_append(&url, type, type_len) != 0 ||
                         pl_buf_append_str(&url, ";base64,") != 0 ||
                         pl_buf_append(&url, data, data_len) != 0 ||
                         pl_buf_append_json_str(out, url.data, url.len) != 0
                     ? -1 : 0;
        pl_buf_free(&url);
        if (rc != 0)
            return -1;
    }
    return pl_buf_append_str(out, "}}");
}

/*
 * A user turn of blocks: its tool results first, as `tool` messages (OpenAI
 * wants them right after the assistant message that called the tools, and
 * Anthropic puts them first in the turn), then its text and images as one
 * user message of content parts, when it has any.
 */
static int append_user_blocks(writer *w, struct json_object *blocks)
{
    pl_buf *out = w->out;
    size_t n = json_object_array_length(blocks), parts = 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *b = json_object_array_get_idx(blocks, i);
        if (!type_is(b, "tool_result")) {
            parts++;
            continue;
        }
        if (next_message(w) != 0 || pl_buf_append_str(out, "{\"role\":\"tool\"") != 0 ||
            append_str_member(out, "tool_call_id", b, "tool_use_id") != 0 ||
            pl_buf_append_str(out, ",\"content\":") != 0 || append_tool_result_text(out, b) != 0 ||
            pl_buf_append(out, "}", 1) != 0)
            return -1;
    }
    if (parts == 0)
        return 0;
    if (next_message(w) != 0 || pl_buf_append_str(out, "{\"role\":\"user\",\"content\":[") != 0)
        return -1;
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        struct json_object *b = json_object_array_get_idx(blocks, i);
        bool text = type_is(b, "text"), image = type_is(b, "image");
        if (!text && !image)
            continue;
        if (!first && pl_buf_append(out, ",", 1) != 0)
            return -1;
        first = false;
        size_t len;
        const char *s = str_of(b, "text", &len);
        if (text ? pl_buf_append_str(out, "{\"type\":\"text\",\"text\":") != 0 ||
                       pl_buf_append_json_str(out, s, len) != 0 || pl_buf_append(out, "}", 1) != 0
                 : append_image_part(out, b) != 0)
            return -1;
    }
    return pl_buf_append_str(out, "]}");
}

/* A tool_use block as a tool call: the input JSON becomes a string. */
static int append_tool_call(pl_buf *out, struct json_object *b)
{
    struct json_object *input = member(b, "input");
    const char *args = input ? json_object_to_json_string_ext(
                                   input, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
                             : "{}";
    if (!args || pl_buf_append_str(out, "{\"id\":") != 0)
        return -1;
    size_t len;
    const char *id = str_of(b, "id", &len);
    if (pl_buf_append_json_str(out, id, len) != 0 ||
        pl_buf_append_str(out, ",\"type\":\"function\",\"function\":{\"name\":") != 0)
        return -1;
    const char *name = str_of(b, "name", &len);
    if (pl_buf_append_json_str(out, name, len) != 0 ||
        pl_buf_append_str(out, ",\"arguments\":") != 0 ||
        pl_buf_append_json_str(out, args, strlen(args)) != 0)
        return -1;
    return pl_buf_append_str(out, "}}");
}

/* An assistant turn of blocks: its text blocks as the content (null when
 * there is none but tool calls), its tool_use blocks as tool_calls; its
 * thinking blocks are Anthropic's only and are dropped. */
static int append_assistant_blocks(writer *w, struct json_object *blocks)
{
    pl_buf *out = w->out;
    pl_buf text = PL_BUF_INIT;
    size_t n = json_object_array_length(blocks), calls = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct json_object *b = json_object_array_get_idx(blocks, i);
        size_t len;
        const char *s = str_of(b, "text", &len);
        if (type_is(b, "text"))
            rc = pl_buf_append(&text, s, len);
        else if (type_is(b, "tool_use"))
            calls++;
    }
    if (rc == 0 && (next_message(w) != 0 ||
                    pl_buf_append_str(out, "{\"role\":\"assistant\",\"content\":") != 0))
        rc = -1;
    if (rc == 0)
        rc = text.len == 0 && calls > 0 ? pl_buf_append_str(out, "null")
                                        : pl_buf_append_json_str(out, text.data ? text.data : "",
                                                                 text.len);
    pl_buf_free(&text);
    if (rc != 0)
        return -1;
    if (calls > 0) {
        if (pl_buf_append_str(out, ",\"tool_calls\":[") != 0)
            return -1;
        bool first = true;
        for (size_t i = 0; i < n; i++) {
            struct json_object *b = json_object_array_get_idx(blocks, i);
            if (!type_is(b, "tool_use"))
                continue;
            if ((!first && pl_buf_append(out, ",", 1) != 0) || append_tool_call(out, b) != 0)
                return -1;
            first = false;
        }
        if (pl_buf_append(out, "]", 1) != 0)
            return -1;
    }
    return pl_buf_append(out, "}", 1);
}

static int append_turn(writer *w, bool assistant, const char *content, size_t len, bool blocks)
{
    if (!blocks)
        return append_message(w, assistant ? "assistant" : "user", content, len);
    struct json_object *arr = parse_blocks(content, len);
    if (!arr)
        return -1;
    int rc = assistant ? append_assistant_blocks(w, arr) : append_user_blocks(w, arr);
    json_object_put(arr);
    return rc;
}

/* Anthropic's tools ({"name","description","input_schema"}) as functions. */
static int append_tools(pl_buf *out, const char *tools)
{
    struct json_object *arr = parse_blocks(tools, strlen(tools));
    if (!arr)
        return -1;
    int rc = pl_body_key(out, "tools") != 0 || pl_buf_append(out, "[", 1) != 0 ? -1 : 0;
    for (size_t i = 0; rc == 0 && i < json_object_array_length(arr); i++) {
        struct json_object *t = json_object_array_get_idx(arr, i);
        struct json_object *schema = member(t, "input_schema");
        size_t len;
        const char *name = str_of(t, "name", &len);
        if ((i > 0 && pl_buf_append(out, ",", 1) != 0) ||
            pl_buf_append_str(out, "{\"type\":\"function\",\"function\":{\"name\":") != 0 ||
            pl_buf_append_json_str(out, name, len) != 0 ||
            (member(t, "description") && append_str_member(out, "description", t, "description") != 0) ||
            (schema && (pl_body_key(out, "parameters") != 0 || append_json(out, schema) != 0)) ||
            pl_buf_append_str(out, "}}") != 0)
            rc = -1;
    }
    if (rc == 0)
        rc = pl_buf_append(out, "]", 1);
    json_object_put(arr);
    return rc;
}

/* tool_choice: auto, any (OpenAI "required"), none, or one named tool. */
static int append_tool_choice(pl_buf *out, const char *choice)
{
    struct json_object *obj = json_tokener_parse(choice);
    int rc = -1;
    if (obj && json_object_is_type(obj, json_type_object)) {
        const char *mapped = type_is(obj, "auto") ? "\"auto\""
                           : type_is(obj, "any")  ? "\"required\""
                           : type_is(obj, "none") ? "\"none\""
                                                  : NULL;
        if (pl_body_key(out, "tool_choice") == 0) {
            if (mapped)
                rc = pl_buf_append_str(out, mapped);
            else if (pl_buf_append_str(out, "{\"type\":\"function\",\"function\":{\"name\":") == 0) {
                size_t len;
                const char *name = str_of(obj, "name", &len);
                rc = pl_buf_append_json_str(out, name, len) != 0 ? -1 : pl_buf_append_str(out, "}}");
            }
        }
    }
    json_object_put(obj);
    return rc;
}

/* The request fields after the messages; top_k and thinking have no
 * equivalent in Chat Completions and are not sent. */
static int append_params(pl_body *body, const pl_request_params *p)
{
    pl_buf *out = body->out;
    if ((p->tools && pl_body_ours(body, "tools") && append_tools(out, p->tools) != 0) ||
        (p->tool_choice && pl_body_ours(body, "tool_choice") &&
         append_tool_choice(out, p->tool_choice) != 0) ||
        (p->stop_sequences && pl_body_ours(body, "stop") &&
         (pl_body_key(out, "stop") != 0 || pl_buf_append_str(out, p->stop_sequences) != 0)) ||
        (p->has_temperature && pl_body_ours(body, "temperature") &&
         (pl_body_key(out, "temperature") != 0 || pl_body_append_double(out, p->temperature) != 0)) ||
        (p->has_top_p && pl_body_ours(body, "top_p") &&
         (pl_body_key(out, "top_p") != 0 || pl_body_append_double(out, p->top_p) != 0)) ||
        (p->metadata && pl_body_ours(body, "metadata") &&
         (pl_body_key(out, "metadata") != 0 || pl_buf_append_str(out, p->metadata) != 0)))
        return -1;
    return 0;
}

static int append_body(pl_body *body, const pl_message_req *req)
{
    pl_buf *out = body->out;
    const pl_request_params *p = req->params;
    const char *model = req->model ? req->model : "parley-echo-1";
    bool has_model = pl_body_ours(body, "model");
    if (pl_buf_append(out, "{", 1) != 0 ||
        (has_model && (pl_buf_append_str(out, "\"model\":") != 0 ||
                       pl_buf_append_json_str(out, model, strlen(model)) != 0 ||
                       pl_buf_append(out, ",", 1) != 0)) ||
        pl_buf_append_str(out, "\"stream\":true") != 0)
        return -1;
    if (pl_body_ours(body, "stream_options") &&
        pl_buf_append_str(out, ",\"stream_options\":{\"include_usage\":true}") != 0)
        return -1;
    if (req->max_tokens && pl_body_ours(body, "max_completion_tokens") &&
        (pl_buf_append_str(out, ",\"max_completion_tokens\":") != 0 ||
         pl_buf_append_u64(out, req->max_tokens) != 0))
        return -1;
    if (pl_buf_append_str(out, ",\"messages\":[") != 0)
        return -1;
    writer w = {out, true};
    if (p && p->system && append_message(&w, "system", p->system, strlen(p->system)) != 0)
        return -1;
    for (size_t i = 0; i < req->nhistory; i++) {
        const pl_history_turn *h = &req->history[i];
        if (append_turn(&w, h->assistant, h->content, h->content_len, h->blocks) != 0)
            return -1;
    }
    if (append_turn(&w, false, req->content, req->content_len, req->content_blocks) != 0 ||
        pl_buf_append(out, "]", 1) != 0)
        return -1;
    return p ? append_params(body, p) : 0;
}

int pl_openai_encode(pl_buf *out, const pl_message_req *req)
{
    return pl_body_write_http(out, req->params, append_body, req);
}

/* ---- the stream ----------------------------------------------------------- */

/* OpenAI streams this many tool calls of one reply at most. */
#define MAX_CALLS 128

static int oom(char *err, size_t err_size)
{
    snprintf(err, err_size, "out of memory");
    return -1;
}

static void read_tokens(struct json_object *usage, const char *key, uint64_t *out)
{
    struct json_object *v = member(usage, key);
    if (v && json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0)
        *out = (uint64_t)json_object_get_int64(v);
}

/* finish_reason in parley's words (reply.h). "stop" is also what a stop
 * sequence gives: which one matched is not in the stream, so it stays
 * end_turn. A refusal seen in the deltas is the reply's stop reason. */
static int set_finish_reason(pl_stream_state *st, const char *reason, size_t len)
{
    static const struct {
        const char *openai, *parley;
    } map[] = {
        {"stop", "end_turn"},           {"length", "max_tokens"},
        {"tool_calls", "tool_use"},     {"function_call", "tool_use"},
        {"content_filter", "content_filter"},
    };
    if (st->refusal)
        return pl_stream_set_stop_reason(st, "refusal", 7);
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strlen(map[i].openai) == len && !memcmp(reason, map[i].openai, len))
            return pl_stream_set_stop_reason(st, map[i].parley, strlen(map[i].parley));
    return pl_stream_set_stop_reason(st, reason, len);
}

static pl_stream_call *call_at(pl_stream_state *st, uint32_t index, char *err, size_t err_size)
{
    for (size_t i = 0; i < st->ncalls; i++)
        if (st->calls[i].index == index)
            return &st->calls[i];
    if (st->ncalls == MAX_CALLS) {
        snprintf(err, err_size, "more than %d tool calls in one reply", MAX_CALLS);
        return NULL;
    }
    pl_stream_call *calls = realloc(st->calls, (st->ncalls + 1) * sizeof(*calls));
    if (!calls) {
        oom(err, err_size);
        return NULL;
    }
    st->calls = calls;
    pl_stream_call *c = &calls[st->ncalls++];
    memset(c, 0, sizeof(*c));
    c->index = index;
    return c;
}

static bool is_string(struct json_object *v)
{
    return v && json_object_is_type(v, json_type_string);
}

/* One delta of delta.tool_calls: the id and name come in the first delta
 * of an index, the arguments in pieces after. */
static int add_tool_call_delta(pl_stream_state *st, struct json_object *d, char *err,
                               size_t err_size)
{
    struct json_object *index = member(d, "index");
    if (!index || !json_object_is_type(index, json_type_int) ||
        json_object_get_int64(index) < 0 || json_object_get_int64(index) > UINT32_MAX) {
        snprintf(err, err_size, "a tool call delta without a valid index");
        return -1;
    }
    pl_stream_call *c = call_at(st, (uint32_t)json_object_get_int64(index), err, err_size);
    if (!c)
        return -1;
    struct json_object *id = member(d, "id"), *fn = member(d, "function");
    struct json_object *name = member(fn, "name"), *args = member(fn, "arguments");
    if ((is_string(id) && pl_stream_keep(&c->id, json_object_get_string(id),
                                         (size_t)json_object_get_string_len(id)) != 0) ||
        (is_string(name) && pl_stream_keep(&c->name, json_object_get_string(name),
                                           (size_t)json_object_get_string_len(name)) != 0))
        return oom(err, err_size);
    if (is_string(args))
        return pl_stream_add_input(st, &c->arguments, json_object_get_string(args),
                                   (size_t)json_object_get_string_len(args), err, err_size);
    return 0;
}

static int by_index(const void *a, const void *b)
{
    uint32_t x = ((const pl_stream_call *)a)->index, y = ((const pl_stream_call *)b)->index;
    return x < y ? -1 : x > y;
}

/* With finish_reason every call is complete: one TOOL_USE piece each, in
 * index order, as the blocks after the text block. */
static int deliver_calls(pl_stream_state *st, pl_stream_result *res, char *err, size_t err_size)
{
    if (st->ncalls == 0)
        return 0; /* (and qsort must not see the NULL array) */
    qsort(st->calls, st->ncalls, sizeof(*st->calls), by_index);
    for (size_t i = 0; i < st->ncalls; i++) {
        pl_stream_call *c = &st->calls[i];
        if (!c->id.data || !c->name.data) {
            snprintf(err, err_size, "a tool call without its id and name");
            return -1;
        }
        if (pl_stream_check_input(st, &c->arguments, err, err_size) != 0)
            return -1;
        pl_piece *p = pl_stream_add_piece(st, res, PL_PIECE_TOOL_USE);
        if (!p)
            return oom(err, err_size);
        p->block = (uint32_t)i + (st->has_text ? 1 : 0);
        p->text = c->arguments.data;
        p->len = c->arguments.len;
        p->tool_id = c->id.data;
        p->tool_name = c->name.data;
    }
    return 0;
}

/* delta.content or delta.refusal: a piece of the text block. */
static int text_piece(pl_stream_state *st, struct json_object *v, pl_stream_result *res,
                      char *err, size_t err_size)
{
    if (!is_string(v) || json_object_get_string_len(v) == 0)
        return 0;
    pl_piece *p = pl_stream_add_piece(st, res, PL_PIECE_TEXT);
    if (!p)
        return oom(err, err_size);
    p->text = json_object_get_string(v);
    p->len = (size_t)json_object_get_string_len(v);
    st->has_text = true;
    return 0;
}

int pl_openai_event(pl_stream_state *st, struct json_object *obj,
                    pl_stream_result *res, char *err, size_t err_size)
{
    struct json_object *e = member(obj, "error");
    if (e) {
        struct json_object *type = member(e, "type"), *msg = member(e, "message");
        res->kind = PL_STREAM_ERROR;
        res->error_type = is_string(type) ? json_object_get_string(type) : NULL;
        res->error_message = is_string(msg) ? json_object_get_string(msg) : NULL;
        return 0;
    }
    struct json_object *id = member(obj, "id");
    if (st->message_id.len == 0 && is_string(id) && json_object_get_string_len(id) > 0 &&
        pl_stream_keep(&st->message_id, json_object_get_string(id),
                       (size_t)json_object_get_string_len(id)) != 0)
        return oom(err, err_size);
    struct json_object *usage = member(obj, "usage");
    if (usage && json_object_is_type(usage, json_type_object)) {
        read_tokens(usage, "prompt_tokens", &st->input_tokens);
        read_tokens(usage, "completion_tokens", &st->output_tokens);
        read_tokens(member(usage, "prompt_tokens_details"), "cached_tokens",
                    &st->cache_read_tokens);
    }
    struct json_object *choices = member(obj, "choices");
    if (!choices || !json_object_is_type(choices, json_type_array)) {
        snprintf(err, err_size, "a chunk without a \"choices\" array");
        return -1;
    }
    if (json_object_array_length(choices) == 0)
        return 0; /* the usage chunk */
    struct json_object *choice = json_object_array_get_idx(choices, 0);
    struct json_object *delta = member(choice, "delta");
    if (text_piece(st, member(delta, "content"), res, err, err_size) != 0)
        return -1;
    struct json_object *refusal = member(delta, "refusal");
    if (is_string(refusal) && json_object_get_string_len(refusal) > 0) {
        st->refusal = true;
        if (text_piece(st, refusal, res, err, err_size) != 0)
            return -1;
    }
    struct json_object *calls = member(delta, "tool_calls");
    if (calls && json_object_is_type(calls, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(calls); i++)
            if (add_tool_call_delta(st, json_object_array_get_idx(calls, i), err, err_size) != 0)
                return -1;
    }
    struct json_object *finish = member(choice, "finish_reason");
    if (is_string(finish) && !st->finished) {
        st->finished = true;
        if (set_finish_reason(st, json_object_get_string(finish),
                              (size_t)json_object_get_string_len(finish)) != 0)
            return oom(err, err_size);
        return deliver_calls(st, res, err, err_size);
    }
    return 0;
}
