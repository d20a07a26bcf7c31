/*
 * libFuzzer target: the SSE parser (src/codec/sse.c) and the HTTP dialects'
 * event decoding (src/dialect*.c), which read whatever an HTTP server
 * streams. The first byte picks the dialect and a chunk size; the rest is
 * fed whole to one parser and in chunks to another, and both must give the
 * same events: a chunk boundary may never change what a stream means.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

#include "dialect.h"
#include "sse.h"
#include "utf8.h"

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "fuzz_sse: check failed: %s\n", #cond);          \
            abort();                                                         \
        }                                                                    \
    } while (0)

typedef struct transcript {
    pl_buf text;          /* every event rendered, then every result */
    pl_stream_state st;
} transcript;

static void put_cstr(pl_buf *b, const char *s)
{
    CHECK(pl_buf_append(b, "|", 1) == 0);
    if (s) {
        CHECK(pl_utf8_valid(s, strlen(s)));
        CHECK(pl_buf_append_str(b, s) == 0);
    }
}

/* A result, all of it, after the checks of what dialect.h and reply.h
 * promise: pieces of valid UTF-8, a tool call's input one JSON object. */
static void render(pl_buf *b, const pl_stream_result *res)
{
    CHECK(res->kind >= PL_STREAM_NONE && res->kind <= PL_STREAM_ERROR);
    CHECK((res->kind == PL_STREAM_PIECE) == (res->npieces > 0));
    for (size_t i = 0; i < res->npieces; i++) {
        const pl_piece *p = &res->pieces[i];
        char head[32];
        snprintf(head, sizeof(head), "|%d:%u:", (int)p->kind, p->block);
        CHECK(pl_buf_append_str(b, head) == 0);
        CHECK(p->text != NULL && pl_utf8_valid(p->text, p->len));
        CHECK(pl_buf_append(b, p->text, p->len) == 0);
        put_cstr(b, p->signature);
        put_cstr(b, p->tool_id);
        put_cstr(b, p->tool_name);
        CHECK((p->kind == PL_PIECE_TOOL_USE) == (p->tool_id != NULL && p->tool_name != NULL));
        if (p->kind == PL_PIECE_TOOL_USE) {
            json_object *input = json_tokener_parse(p->text);
            CHECK(input && json_object_is_type(input, json_type_object));
            json_object_put(input);
        }
    }
    if (res->kind == PL_STREAM_DONE) {
        char tokens[128];
        CHECK(res->end.stop_reason != NULL);
        put_cstr(b, res->end.stop_reason);
        put_cstr(b, res->end.stop_sequence);
        put_cstr(b, res->end.message_id);
        snprintf(tokens, sizeof(tokens), "|%llu|%llu|%llu|%llu",
                 (unsigned long long)res->end.input_tokens,
                 (unsigned long long)res->end.output_tokens,
                 (unsigned long long)res->end.cache_creation_tokens,
                 (unsigned long long)res->end.cache_read_tokens);
        CHECK(pl_buf_append_str(b, tokens) == 0);
    }
}

static int on_event(void *userdata, const pl_sse_event *ev)
{
    transcript *t = userdata;
    CHECK(ev->data[ev->data_len] == '\0');
    CHECK(pl_buf_append(&t->text, ev->type, ev->type_len) == 0);
    CHECK(pl_buf_append(&t->text, "|", 1) == 0);
    CHECK(pl_buf_append(&t->text, ev->data, ev->data_len) == 0);
    pl_stream_result res;
    char err[128];
    int rc = pl_dialect_event(&t->st, ev, &res, err, sizeof(err));
    CHECK(pl_buf_append(&t->text, rc == 0 ? "|ok" : "|bad", rc == 0 ? 3 : 4) == 0);
    if (rc == 0) {
        CHECK(res.arrived);
        render(&t->text, &res);
    }
    CHECK(pl_buf_append(&t->text, "\n", 1) == 0);
    return 0;
}

static int run(const uint8_t *data, size_t len, pl_dialect d, size_t chunk, pl_buf *out)
{
    transcript t = {.text = PL_BUF_INIT};
    /* A small bound on tool inputs, for the fuzzer to cross it. */
    pl_stream_state_init(&t.st, d, 256);
    pl_sse_parser p;
    pl_sse_init(&p, 4096);
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0; i += chunk)
        rc = pl_sse_feed(&p, (const char *)data + i, len - i < chunk ? len - i : chunk,
                         on_event, &t);
    pl_sse_free(&p);
    pl_stream_state_free(&t.st);
    *out = t.text;
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    pl_dialect d = data[0] & 1 ? PL_DIALECT_ANTHROPIC : PL_DIALECT_OPENAI;
    size_t chunk = 1 + (data[0] >> 1);
    pl_buf whole, pieces;
    int rc_whole = run(data + 1, size - 1, d, size, &whole);
    int rc_pieces = run(data + 1, size - 1, d, chunk, &pieces);
    /* An over-limit line may be found at a different event, so compare only
     * streams both parsed to the end. */
    if (rc_whole == 0 && rc_pieces == 0)
        CHECK(whole.len == pieces.len &&
              (whole.len == 0 || memcmp(whole.data, pieces.data, whole.len) == 0));
    pl_buf_free(&whole);
    pl_buf_free(&pieces);
    return 0;
}
