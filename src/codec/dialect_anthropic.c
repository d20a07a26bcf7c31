/* Anthropic Messages: POST /v1/messages, streamed as named SSE events. */
#include <stddef.h>
#include <stdint.h>
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
static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int append_cached_last(pl_buf *out, const char *arr, size_t len)
{
    size_t close = len;
    while (close > 0 && arr[close - 1] != ']')
        close--;
    size_t brace = close > 0 ? close - 1 : 0;
    while (brace > 0 && arr[brace - 1] != '}' && is_blank(arr[brace - 1]))
        brace--;
    if (brace == 0 || arr[brace - 1] != '}')
        return pl_buf_append(out, arr, len);
    brace--; /* the last element's closing brace */
    size_t before = brace;
    while (before > 0 && is_blank(arr[before - 1]))
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
    return pl_body_write_http(out, req->params, append_body, req);
}

/* ---- the stream ----------------------------------------------------------- */

/*
 * Each event is read into an anth_event by one of two readers, json-c's
 * (pl_anthropic_event) or the fast path's (pl_anthropic_fast_event), and
 * then means the same to apply_event(): both readers must only agree on
 * what they read, which is checked in tests/unit/test_dialect.c.
 */

/* A string member; s is NULL when absent or not a string. */
typedef struct str {
    const char *s;
    size_t len;
} str;

/* Token counts of a usage object; has[] says which were given. */
enum usage_field { U_INPUT, U_OUTPUT, U_CACHE_CREATION, U_CACHE_READ, U_COUNT };
static const char *const usage_names[U_COUNT] = {
    "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
};

typedef struct usage {
    bool has[U_COUNT];
    uint64_t n[U_COUNT];
} usage;

typedef struct anth_event {
    str type;
    bool has_index;
    uint64_t index;
    str delta_type, text, thinking, signature, partial_json, stop_reason, stop_sequence;
    str block_type, block_id, block_name;
    str message_id;
    usage usage;         /* message_delta's "usage" */
    usage message_usage; /* message_start's "message"."usage" */
} anth_event;

static bool is(const str *v, const char *lit)
{
    return v->s && v->len == strlen(lit) && !memcmp(v->s, lit, v->len);
}

static void add_tokens(const usage *u, pl_stream_state *st)
{
    uint64_t *to[U_COUNT] = {&st->input_tokens, &st->output_tokens, &st->cache_creation_tokens,
                             &st->cache_read_tokens};
    for (int i = 0; i < U_COUNT; i++)
        if (u->has[i])
            *to[i] = u->n[i];
}

static int oom(char *err, size_t err_size)
{
    snprintf(err, err_size, "out of memory");
    return -1;
}

/* The block a delta belongs to: its index, else the open block's. */
static uint32_t delta_block(const pl_stream_state *st, const anth_event *e)
{
    return e->has_index ? (uint32_t)e->index : st->in_block ? st->block : 0;
}

static int block_start(pl_stream_state *st, const anth_event *e, char *err, size_t err_size)
{
    /* Closed until the block checks out: no later delta may count on it. */
    st->in_block = false;
    if (!e->block_type.s) {
        snprintf(err, err_size, "a content_block_start without a block type");
        return -1;
    }
    int kind = is(&e->block_type, "text")       ? PL_PIECE_TEXT
               : is(&e->block_type, "thinking") ? PL_PIECE_THINKING
               : is(&e->block_type, "tool_use") ? PL_PIECE_TOOL_USE
                                                : -1; /* redacted_thinking, ... */
    if (kind == PL_PIECE_TOOL_USE) {
        if (!e->block_id.s || !e->block_name.s) {
            snprintf(err, err_size, "a tool_use block without its id and name");
            return -1;
        }
        pl_buf_reset(&st->tool_input);
        if (pl_stream_keep(&st->tool_id, e->block_id.s, e->block_id.len) != 0 ||
            pl_stream_keep(&st->tool_name, e->block_name.s, e->block_name.len) != 0)
            return oom(err, err_size);
    }
    st->block = delta_block(st, e);
    st->block_kind = kind;
    st->in_block = true;
    return 0;
}

/* An input_json_delta: one more piece of the open tool_use block's input. */
static int add_input(pl_stream_state *st, const anth_event *e, char *err, size_t err_size)
{
    if (!e->partial_json.s) {
        snprintf(err, err_size, "an input_json_delta without partial_json");
        return -1;
    }
    if (!st->in_block || st->block_kind != PL_PIECE_TOOL_USE || delta_block(st, e) != st->block) {
        snprintf(err, err_size, "an input_json_delta outside a tool_use block");
        return -1;
    }
    return pl_stream_add_input(st, &st->tool_input, e->partial_json.s, e->partial_json.len, err,
                               err_size);
}

/* The deltas that are pieces, and the member each one carries. */
static const struct {
    const char *type, *member;
    size_t offset;
    pl_piece_kind kind;
} piece_deltas[] = {
    {"text_delta", "text", offsetof(anth_event, text), PL_PIECE_TEXT},
    {"thinking_delta", "thinking", offsetof(anth_event, thinking), PL_PIECE_THINKING},
    /* the block's signature: an empty thinking piece that carries it */
    {"signature_delta", "signature", offsetof(anth_event, signature), PL_PIECE_THINKING},
};

static int delta(pl_stream_state *st, const anth_event *e, pl_stream_result *res, char *err,
                 size_t err_size)
{
    if (is(&e->delta_type, "input_json_delta"))
        return add_input(st, e, err, err_size);
    for (size_t i = 0; i < sizeof(piece_deltas) / sizeof(piece_deltas[0]); i++) {
        if (!is(&e->delta_type, piece_deltas[i].type))
            continue;
        const str *v = (const str *)((const char *)e + piece_deltas[i].offset);
        if (!v->s) {
            snprintf(err, err_size, "a %s without %s", piece_deltas[i].type,
                     piece_deltas[i].member);
            return -1;
        }
        pl_piece *p = pl_stream_add_piece(st, res, piece_deltas[i].kind);
        if (!p)
            return oom(err, err_size);
        p->block = delta_block(st, e);
        if (v == &e->signature) {
            p->text = "";
            p->signature = v->s;
        } else {
            p->text = v->s;
            p->len = v->len;
        }
        return 0;
    }
    return 0; /* a delta type yet to come (citations_delta, ...) */
}

/* The end of a block: a tool call is complete, and delivered whole. */
static int block_stop(pl_stream_state *st, const anth_event *e, pl_stream_result *res,
                      char *err, size_t err_size)
{
    if (!st->in_block || (e->has_index && e->index != st->block))
        return 0;
    st->in_block = false;
    if (st->block_kind != PL_PIECE_TOOL_USE)
        return 0;
    if (pl_stream_check_input(st, &st->tool_input, err, err_size) != 0)
        return -1;
    pl_piece *p = pl_stream_add_piece(st, res, PL_PIECE_TOOL_USE);
    if (!p)
        return oom(err, err_size);
    p->block = st->block;
    p->text = st->tool_input.data;
    p->len = st->tool_input.len;
    p->tool_id = st->tool_id.data;
    p->tool_name = st->tool_name.data;
    return 0;
}

static int apply_event(pl_stream_state *st, const anth_event *e, pl_stream_result *res,
                       char *err, size_t err_size)
{
    if (e->has_index && e->index > UINT32_MAX) {
        snprintf(err, err_size, "a block index out of range");
        return -1;
    }
    if (is(&e->type, "message_start")) {
        add_tokens(&e->message_usage, st);
        if (e->message_id.s &&
            pl_stream_keep(&st->message_id, e->message_id.s, e->message_id.len) != 0)
            return oom(err, err_size);
    } else if (is(&e->type, "content_block_start")) {
        return block_start(st, e, err, err_size);
    } else if (is(&e->type, "content_block_delta")) {
        return delta(st, e, res, err, err_size);
    } else if (is(&e->type, "content_block_stop")) {
        return block_stop(st, e, res, err, err_size);
    } else if (is(&e->type, "message_delta")) {
        add_tokens(&e->usage, st);
        if (e->stop_reason.s &&
            pl_stream_set_stop_reason(st, e->stop_reason.s, e->stop_reason.len) != 0)
            return oom(err, err_size);
        st->has_stop_sequence = e->stop_sequence.s != NULL;
        if (e->stop_sequence.s &&
            pl_stream_keep(&st->stop_sequence, e->stop_sequence.s, e->stop_sequence.len) != 0)
            return oom(err, err_size);
    } else if (is(&e->type, "message_stop")) {
        pl_stream_done(st, res);
    }
    /* ping and event types yet to come: nothing. */
    return 0;
}

/* ---- json-c's reader -------------------------------------------------------- */

static struct json_object *member(struct json_object *obj, const char *key)
{
    struct json_object *v = NULL;
    return obj && json_object_object_get_ex(obj, key, &v) ? v : NULL;
}

static str string_member(struct json_object *obj, const char *key)
{
    struct json_object *v = member(obj, key);
    if (!v || !json_object_is_type(v, json_type_string))
        return (str){NULL, 0};
    return (str){json_object_get_string(v), (size_t)json_object_get_string_len(v)};
}

static void read_usage(struct json_object *obj, usage *u)
{
    for (int i = 0; i < U_COUNT; i++) {
        struct json_object *v = member(obj, usage_names[i]);
        if (v && json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0) {
            u->has[i] = true;
            u->n[i] = (uint64_t)json_object_get_int64(v);
        }
    }
}

int pl_anthropic_event(pl_stream_state *st, struct json_object *obj,
                       const pl_sse_event *ev, pl_stream_result *res, char *err,
                       size_t err_size)
{
    anth_event e = {.type = string_member(obj, "type")};
    /* The data's "type" names the event as well as the event line does. */
    if (!e.type.s) {
        snprintf(err, err_size, "event \"%.*s\" has no \"type\"", (int)ev->type_len,
                 ev->type);
        return -1;
    }
    if (is(&e.type, "error")) {
        struct json_object *error = member(obj, "error");
        res->kind = PL_STREAM_ERROR;
        res->error_type = string_member(error, "type").s;
        res->error_message = string_member(error, "message").s;
        return 0;
    }
    struct json_object *index = member(obj, "index");
    if (index) {
        if (!json_object_is_type(index, json_type_int) || json_object_get_int64(index) < 0) {
            snprintf(err, err_size, "a block index that is not a non-negative integer");
            return -1;
        }
        e.has_index = true;
        e.index = json_object_get_uint64(index);
    }
    struct json_object *delta = member(obj, "delta"), *block = member(obj, "content_block");
    struct json_object *message = member(obj, "message");
    e.delta_type = string_member(delta, "type");
    e.text = string_member(delta, "text");
    e.thinking = string_member(delta, "thinking");
    e.signature = string_member(delta, "signature");
    e.partial_json = string_member(delta, "partial_json");
    e.stop_reason = string_member(delta, "stop_reason");
    e.stop_sequence = string_member(delta, "stop_sequence");
    e.block_type = string_member(block, "type");
    e.block_id = string_member(block, "id");
    e.block_name = string_member(block, "name");
    e.message_id = string_member(message, "id");
    read_usage(member(obj, "usage"), &e.usage);
    read_usage(member(message, "usage"), &e.message_usage);
    return apply_event(st, &e, res, err, err_size);
}

/* ---- the fast path ---------------------------------------------------------- */

/*
 * Every piece of a reply is a content_block_delta event, and each reply has
 * a few more (content_block_start/stop, message_delta, message_stop, ping):
 * parsing each into a json-c tree was a fifth of the client's CPU per
 * request. These are scanned once instead (json_scan.h), and so is
 * message_start; error events, and whatever the scanner or the checks
 * below decline, go to pl_anthropic_event(), which reads the same members
 * the same way.
 */

/* Whether keys[i] is the literal lit: lengths first, and a memcmp of a
 * constant size, which the compiler inlines (this runs for every member of
 * every event). */
#define KEY_IS(i, lit) (lens[i] == sizeof(lit) - 1 && memcmp(keys[i], lit, sizeof(lit) - 1) == 0)

/* Where a string member goes, by its path; NULL for other members. */
static str *string_slot(anth_event *e, const char *const *keys, const size_t *lens, size_t depth)
{
    if (depth == 1)
        return KEY_IS(0, "type") ? &e->type : NULL;
    if (depth != 2)
        return NULL;
    if (KEY_IS(0, "delta")) {
        /* the members of every text delta first */
        return KEY_IS(1, "type")            ? &e->delta_type
               : KEY_IS(1, "text")          ? &e->text
               : KEY_IS(1, "thinking")      ? &e->thinking
               : KEY_IS(1, "signature")     ? &e->signature
               : KEY_IS(1, "partial_json")  ? &e->partial_json
               : KEY_IS(1, "stop_reason")   ? &e->stop_reason
               : KEY_IS(1, "stop_sequence") ? &e->stop_sequence
                                            : NULL;
    }
    if (KEY_IS(0, "content_block"))
        return KEY_IS(1, "type")   ? &e->block_type
               : KEY_IS(1, "id")   ? &e->block_id
               : KEY_IS(1, "name") ? &e->block_name
                                   : NULL;
    if (KEY_IS(0, "message"))
        return KEY_IS(1, "id") ? &e->message_id : NULL;
    return NULL;
}

/* Where a token count goes: "usage".X or "message"."usage".X. */
static bool usage_slot(anth_event *e, const char *const *keys, const size_t *lens, size_t depth,
                       usage **u, int *field)
{
    if (depth == 2 && KEY_IS(0, "usage"))
        *u = &e->usage;
    else if (depth == 3 && KEY_IS(0, "message") && KEY_IS(1, "usage"))
        *u = &e->message_usage;
    else
        return false;
    for (int i = 0; i < U_COUNT; i++) {
        if (pl_json_key_is(keys, lens, depth - 1, usage_names[i])) {
            *field = i;
            return true;
        }
    }
    return false;
}

static bool on_fast_member(void *ctx, const char *const *keys, const size_t *lens,
                           size_t depth, const pl_json_value *v)
{
    anth_event *e = ctx;
    /* Whatever we read given twice: json-c keeps the last, we decline. */
    str *slot = string_slot(e, keys, lens, depth);
    if (slot) {
        if (slot->s)
            return false;
        if (v->kind == PL_JSON_STRING) /* not a string: both readers ignore it */
            *slot = (str){v->s, v->len};
        return true;
    }
    usage *u;
    int field;
    if (usage_slot(e, keys, lens, depth, &u, &field)) {
        if (u->has[field] || v->kind != PL_JSON_NUMBER)
            return !u->has[field]; /* other kinds are ignored by both readers */
        if (v->n > INT64_MAX)
            return false; /* json-c's clamping is json-c's to do */
        u->has[field] = true;
        u->n[field] = v->n;
        return true;
    }
    if (depth == 1 && KEY_IS(0, "index")) {
        if (e->has_index || v->kind == PL_JSON_STRING || v->kind == PL_JSON_OBJECT ||
            v->kind == PL_JSON_ARRAY)
            return false; /* an error, worded by the full reader */
        if (v->kind == PL_JSON_NUMBER) {
            e->has_index = true;
            e->index = v->n;
        }
    }
    return true;
}

int pl_anthropic_fast_event(pl_stream_state *st, const pl_sse_event *ev,
                            pl_stream_result *res, char *err, size_t err_size)
{
    anth_event e = {0};
    if (!pl_json_scan(&st->strings, ev->data, ev->data_len, on_fast_member, &e))
        return 0;
    if (!e.type.s || is(&e.type, "error"))
        return 0;
    return apply_event(st, &e, res, err, err_size) == 0 ? 1 : -1;
}
