/*
 * The reply a vendor's stream is making, as the two dialects decode it
 * (dialect.h): the per-request state, the pieces of a result, tool inputs
 * assembled within their bound, how the reply ends. Apart from dialect.c,
 * which dispatches to the dialects, so that they and it do not need each
 * other.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

#include "dialect.h"
#include "json_raw.h"

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
