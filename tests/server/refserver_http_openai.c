/*
 * What the reference server sends for OpenAI's Chat Completions API
 * (POST /v1/chat/completions): the chat.completion.chunk events of a
 * streamed reply (with the usage chunk when include_usage asks for it, and
 * "data: [DONE]" last) and the chat.completion of a reply that is not
 * streamed. refserver_http.c paces the reply and calls these through
 * pl_rs_http_openai (refserver_http_private.h); OpenAI's error bodies
 * stay there, with the other errors.
 */
#include "refserver_http_private.h"

#include <json-c/json.h>

#include <string.h>

static struct json_object *openai_usage(const struct stream *s)
{
    struct json_object *u = json_object_new_object();

    pl_rs_put_u64(u, "prompt_tokens", s->reply.input_tokens);
    pl_rs_put_u64(u, "completion_tokens", s->generated);
    pl_rs_put_u64(u, "total_tokens", s->reply.input_tokens + s->generated);
    return u;
}

/* The skeleton of a chat.completion(.chunk) object. */
static struct json_object *openai_object(const struct stream *s,
                                         const char *object)
{
    struct json_object *o = json_object_new_object();

    pl_rs_http_put_id(o, "id", "chatcmpl-", s->n);
    pl_rs_put_str(o, "object", object);
    json_object_object_add(o, "created", json_object_new_int64(s->created));
    pl_rs_put_str(o, "model", s->srv->opts.model);
    return o;
}

/* An OpenAI chunk with one choice; finish NULL: still going. */
static struct json_object *openai_chunk(const struct stream *s,
                                        struct json_object *delta,
                                        const char *finish)
{
    struct json_object *o = openai_object(s, "chat.completion.chunk");
    struct json_object *choices = json_object_new_array();
    struct json_object *c = json_object_new_object();

    json_object_object_add(c, "index", json_object_new_int(0));
    json_object_object_add(c, "delta", delta);
    pl_rs_put_str(c, "finish_reason", finish);
    json_object_array_add(choices, c);
    json_object_object_add(o, "choices", choices);
    /* With include_usage every chunk but the last carries "usage": null. */
    if (s->include_usage)
        json_object_object_add(o, "usage", NULL);
    return o;
}

/* unknown_every: an OpenAI stream may carry SSE comments, and a chunk with
 * no choices (as its usage chunk has) and a member this client has never
 * heard of. */
static void openai_unknown(struct stream *s)
{
    struct json_object *ev;

    pl_rs_http_buf_append(&s->out, ": a comment, to be ignored\n\n", 28);
    ev = openai_object(s, "chat.completion.chunk");
    json_object_object_add(ev, "choices", json_object_new_array());
    pl_rs_put_str(ev, "bogus_future_member", "x");
    pl_rs_http_emit_event(s, NULL, ev);
}

/* {"index":0,"id","type":"function","function":{"name","arguments"}}, the
 * first delta of an OpenAI tool call (id NULL: a later one). */
static struct json_object *openai_tool_call(const char *id, const char *name,
                                            const char *args, size_t len)
{
    struct json_object *call = json_object_new_object();
    struct json_object *fn = json_object_new_object();

    json_object_object_add(call, "index", json_object_new_int(0));
    if (id) {
        pl_rs_put_str(call, "id", id);
        pl_rs_put_str(call, "type", "function");
        pl_rs_put_str(fn, "name", name);
    }
    pl_rs_http_put_strn(fn, "arguments", args, len);
    json_object_object_add(call, "function", fn);
    return call;
}

static struct json_object *one_item(struct json_object *item)
{
    struct json_object *a = json_object_new_array();

    json_object_array_add(a, item);
    return a;
}

/* OpenAI: a unit is a content delta, or a tool call: its id and name, then
 * its arguments in pieces. The first chunk also says the role. */
static void openai_unit(struct stream *s, size_t k, const pl_echo_block *b,
                        size_t piece)
{
    struct json_object *delta = json_object_new_object();
    size_t i;

    if (k == 0)
        pl_rs_put_str(delta, "role", "assistant");
    if (b->type != PL_ECHO_BLOCK_TOOL_USE) {
        pl_rs_http_put_strn(delta, "content",
                            b->text + pl_echo_block_piece_start(b, piece),
                            pl_echo_block_piece_len(b, piece));
        pl_rs_http_emit_event(s, NULL, openai_chunk(s, delta, NULL));
        return;
    }
    json_object_object_add(delta, "tool_calls",
                           one_item(openai_tool_call(b->tool_id, b->name,
                                                     "", 0)));
    pl_rs_http_emit_event(s, NULL, openai_chunk(s, delta, NULL));
    for (i = 0; i < b->npieces; i++) {
        delta = json_object_new_object();
        json_object_object_add(
            delta, "tool_calls",
            one_item(openai_tool_call(NULL, NULL,
                                      b->text + pl_echo_block_piece_start(b, i),
                                      pl_echo_block_piece_len(b, i))));
        pl_rs_http_emit_event(s, NULL, openai_chunk(s, delta, NULL));
    }
}

/* OpenAI's finish_reason for the echo model's stop reason. */
static const char *openai_finish(const struct stream *s)
{
    const char *r = s->reply.stop_reason;

    return !strcmp(r, "max_tokens") ? "length"
         : !strcmp(r, "tool_use") ? "tool_calls" : "stop";
}

static void openai_stream_end(struct stream *s)
{
    struct json_object *delta = json_object_new_object();

    /* A reply cut at 0 by a stop sequence has had no chunk yet. */
    if (!s->generated) {
        pl_rs_put_str(delta, "role", "assistant");
        pl_rs_put_str(delta, "content", "");
        pl_rs_http_emit_event(s, NULL, openai_chunk(s, delta, NULL));
        delta = json_object_new_object();
    }
    pl_rs_http_emit_event(s, NULL, openai_chunk(s, delta, openai_finish(s)));
    if (s->include_usage) {
        struct json_object *o = openai_object(s, "chat.completion.chunk");
        json_object_object_add(o, "choices", json_object_new_array());
        json_object_object_add(o, "usage", openai_usage(s));
        pl_rs_http_emit_event(s, NULL, o);
    }
    pl_rs_http_emit(s, "data: [DONE]\n\n", 14);
}

static struct json_object *openai_completion(const struct stream *s)
{
    struct json_object *o = openai_object(s, "chat.completion");
    struct json_object *choices = json_object_new_array();
    struct json_object *c = json_object_new_object();
    struct json_object *m = json_object_new_object();
    const pl_echo_block *text = pl_echo_turn_text(&s->reply);
    size_t i;

    json_object_object_add(c, "index", json_object_new_int(0));
    pl_rs_put_str(m, "role", "assistant");
    pl_rs_http_put_strn(m, "content", text ? text->text : "",
                        text ? text->len : 0);
    for (i = 0; i < s->reply.nblocks; i++) {
        const pl_echo_block *b = &s->reply.blocks[i];
        struct json_object *call;
        if (b->type != PL_ECHO_BLOCK_TOOL_USE)
            continue;
        call = openai_tool_call(b->tool_id, b->name, b->text, b->len);
        json_object_object_del(call, "index"); /* streaming only */
        json_object_object_add(m, "tool_calls", one_item(call));
    }
    json_object_object_add(c, "message", m);
    pl_rs_put_str(c, "finish_reason", openai_finish(s));
    json_object_array_add(choices, c);
    json_object_object_add(o, "choices", choices);
    json_object_object_add(o, "usage", openai_usage(s));
    return o;
}

const struct pl_rs_http_vendor pl_rs_http_openai = {
    .stream_start = NULL, /* the first chunk opens the stream */
    .unit = openai_unit,
    .unknown = openai_unknown,
    .stream_end = openai_stream_end,
    .message = openai_completion,
};
