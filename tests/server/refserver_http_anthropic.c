/*
 * What the reference server sends for Anthropic's Messages API
 * (POST /v1/messages): the server-sent events of a streamed reply
 * (message_start, content_block_start/delta/stop, message_delta,
 * message_stop, and a ping after the first block starts) and the message
 * of a reply that is not streamed. refserver_http.c paces the reply and
 * calls these through pl_rs_http_anthropic (refserver_http_private.h);
 * Anthropic's error bodies stay there, with the other errors.
 */
#include "refserver_http_private.h"

#include <json-c/json.h>

#include <string.h>

static struct json_object *anthropic_usage(const struct stream *s)
{
    struct json_object *u = json_object_new_object();

    pl_rs_put_u64(u, "input_tokens", s->reply.input_tokens);
    pl_rs_put_u64(u, "output_tokens", s->generated);
    return u;
}

/* An Anthropic event {"type":type,"index":index}, for the caller to fill. */
static struct json_object *anthropic_block_event(const char *type, long index)
{
    struct json_object *ev = json_object_new_object();

    pl_rs_put_str(ev, "type", type);
    json_object_object_add(ev, "index", json_object_new_int((int)index));
    return ev;
}

/* content_block_start: an empty block of b's type (a tool_use with its
 * id, its name and an empty input, which input_json_delta fills). */
static void anthropic_block_start(struct stream *s, const pl_echo_block *b)
{
    long index = (long)pl_echo_block_index(&s->reply, b);
    struct json_object *ev = anthropic_block_event("content_block_start",
                                                   index);
    struct json_object *block = json_object_new_object();

    if (b->type == PL_ECHO_BLOCK_TOOL_USE) {
        pl_rs_put_str(block, "type", "tool_use");
        pl_rs_put_str(block, "id", b->tool_id);
        pl_rs_put_str(block, "name", b->name);
        json_object_object_add(block, "input", json_object_new_object());
    } else if (b->type == PL_ECHO_BLOCK_THINKING) {
        pl_rs_put_str(block, "type", "thinking");
        pl_rs_put_str(block, "thinking", "");
    } else {
        pl_rs_put_str(block, "type", "text");
        pl_rs_put_str(block, "text", "");
    }
    json_object_object_add(ev, "content_block", block);
    pl_rs_http_emit_event(s, "content_block_start", ev);
    s->open_block = index;
}

/* content_block_delta of one kind: {"type":kind, field:text[0, len)}. */
static void anthropic_delta(struct stream *s, long index, const char *kind,
                            const char *field, const char *text, size_t len)
{
    struct json_object *ev = anthropic_block_event("content_block_delta",
                                                   index);
    struct json_object *delta = json_object_new_object();

    pl_rs_put_str(delta, "type", kind);
    pl_rs_http_put_strn(delta, field, text, len);
    json_object_object_add(ev, "delta", delta);
    pl_rs_http_emit_event(s, "content_block_delta", ev);
}

/* The block started last is complete: a thinking block's signature_delta,
 * then content_block_stop. A block closes when the next one starts or the
 * message ends, which keeps a text-only stream's events where they were. */
static void anthropic_block_close(struct stream *s)
{
    const pl_echo_block *b;

    if (s->open_block < 0)
        return;
    b = &s->reply.blocks[s->open_block];
    if (b->signature)
        anthropic_delta(s, s->open_block, "signature_delta", "signature",
                        b->signature, strlen(b->signature));
    pl_rs_http_emit_event(s, "content_block_stop",
               anthropic_block_event("content_block_stop", s->open_block));
    s->open_block = -1;
}

/* Anthropic's opening events: the message, its first block, a ping (the
 * real API pings after the first content_block_start; a reply without any
 * block pings after message_start). */
static void anthropic_stream_start(struct stream *s)
{
    struct json_object *ev = json_object_new_object();
    struct json_object *msg = json_object_new_object();
    struct json_object *usage = json_object_new_object();

    pl_rs_put_str(ev, "type", "message_start");
    pl_rs_http_put_id(msg, "id", "msg_", s->n);
    pl_rs_put_str(msg, "type", "message");
    pl_rs_put_str(msg, "role", "assistant");
    pl_rs_put_str(msg, "model", s->srv->opts.model);
    json_object_object_add(msg, "content", json_object_new_array());
    json_object_object_add(msg, "stop_reason", NULL);
    json_object_object_add(msg, "stop_sequence", NULL);
    pl_rs_put_u64(usage, "input_tokens", s->reply.input_tokens);
    pl_rs_put_u64(usage, "output_tokens", 0);
    json_object_object_add(msg, "usage", usage);
    json_object_object_add(ev, "message", msg);
    pl_rs_http_emit_event(s, "message_start", ev);

    s->open_block = -1;
    if (s->reply.nblocks)
        anthropic_block_start(s, &s->reply.blocks[0]);

    ev = json_object_new_object();
    pl_rs_put_str(ev, "type", "ping");
    pl_rs_http_emit_event(s, "ping", ev);
}

/* unknown_every: Anthropic documents that new event types may appear. */
static void anthropic_unknown(struct stream *s)
{
    struct json_object *ev;

    ev = json_object_new_object();
    pl_rs_put_str(ev, "type", "bogus_future_event");
    pl_rs_put_u64(ev, "x", 1);
    pl_rs_http_emit_event(s, "bogus_future_event", ev);
}

/* Anthropic: a unit is a text or thinking delta, or a whole tool_use block
 * (its input in input_json_delta pieces). */
static void anthropic_unit(struct stream *s, const pl_echo_block *b,
                           size_t piece)
{
    long index = (long)pl_echo_block_index(&s->reply, b);
    size_t k;

    if (index != s->open_block) {
        anthropic_block_close(s);
        anthropic_block_start(s, b);
    }
    if (b->type == PL_ECHO_BLOCK_TOOL_USE) {
        for (k = 0; k < b->npieces; k++)
            anthropic_delta(s, index, "input_json_delta", "partial_json",
                            b->text + pl_echo_block_piece_start(b, k),
                            pl_echo_block_piece_len(b, k));
        return;
    }
    anthropic_delta(s, index,
                    b->type == PL_ECHO_BLOCK_TEXT ? "text_delta"
                                                  : "thinking_delta",
                    b->type == PL_ECHO_BLOCK_TEXT ? "text" : "thinking",
                    b->text + pl_echo_block_piece_start(b, piece),
                    pl_echo_block_piece_len(b, piece));
}

/* The table's shape: Anthropic's events number blocks, not units. */
static void anthropic_stream_unit(struct stream *s, size_t k,
                                  const pl_echo_block *b, size_t piece)
{
    (void)k;
    anthropic_unit(s, b, piece);
}

/* The stop sequence that ended the reply, or JSON null. */
static struct json_object *stop_sequence(const struct stream *s)
{
    const pl_echo_turn *t = &s->reply;

    return t->stop_sequence
               ? json_object_new_string_len(t->stop_sequence,
                                            (int)t->stop_sequence_len)
               : NULL;
}

static void anthropic_stream_end(struct stream *s)
{
    struct json_object *ev = json_object_new_object();
    struct json_object *delta = json_object_new_object();
    struct json_object *usage = json_object_new_object();

    anthropic_block_close(s);
    pl_rs_put_str(ev, "type", "message_delta");
    pl_rs_put_str(delta, "stop_reason", s->reply.stop_reason);
    json_object_object_add(delta, "stop_sequence", stop_sequence(s));
    json_object_object_add(ev, "delta", delta);
    pl_rs_put_u64(usage, "output_tokens", s->generated);
    json_object_object_add(ev, "usage", usage);
    pl_rs_http_emit_event(s, "message_delta", ev);

    ev = json_object_new_object();
    pl_rs_put_str(ev, "type", "message_stop");
    pl_rs_http_emit_event(s, "message_stop", ev);
}

/* One block of a non-streamed Anthropic message. */
static struct json_object *anthropic_block(const pl_echo_block *b)
{
    struct json_object *block = json_object_new_object();

    if (b->type == PL_ECHO_BLOCK_TOOL_USE) {
        pl_rs_put_str(block, "type", "tool_use");
        pl_rs_put_str(block, "id", b->tool_id);
        pl_rs_put_str(block, "name", b->name);
        json_object_object_add(block, "input", pl_rs_raw_json(b->text));
    } else if (b->type == PL_ECHO_BLOCK_THINKING) {
        pl_rs_put_str(block, "type", "thinking");
        pl_rs_http_put_strn(block, "thinking", b->text, b->len);
        if (b->signature)
            pl_rs_put_str(block, "signature", b->signature);
    } else {
        pl_rs_put_str(block, "type", "text");
        pl_rs_http_put_strn(block, "text", b->text, b->len);
    }
    return block;
}

static struct json_object *anthropic_message(const struct stream *s)
{
    struct json_object *msg = json_object_new_object();
    struct json_object *content = json_object_new_array();
    size_t i;

    pl_rs_http_put_id(msg, "id", "msg_", s->n);
    pl_rs_put_str(msg, "type", "message");
    pl_rs_put_str(msg, "role", "assistant");
    pl_rs_put_str(msg, "model", s->srv->opts.model);
    for (i = 0; i < s->reply.nblocks; i++)
        json_object_array_add(content, anthropic_block(&s->reply.blocks[i]));
    json_object_object_add(msg, "content", content);
    pl_rs_put_str(msg, "stop_reason", s->reply.stop_reason);
    json_object_object_add(msg, "stop_sequence", stop_sequence(s));
    json_object_object_add(msg, "usage", anthropic_usage(s));
    return msg;
}

const struct pl_rs_http_vendor pl_rs_http_anthropic = {
    .stream_start = anthropic_stream_start,
    .unit = anthropic_stream_unit,
    .unknown = anthropic_unknown,
    .stream_end = anthropic_stream_end,
    .message = anthropic_message,
};
