/* The SSE parser: every way of splitting a stream gives the same events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sse.h"

/* Events rendered as "type|id|data\n" lines, for comparison. */
typedef struct transcript {
    char text[8192];
    size_t len;
    int events;
    int stop_after; /* 0: never stop */
} transcript;

static int record(void *userdata, const pl_sse_event *ev)
{
    transcript *t = userdata;
    assert_int_equal(strlen(ev->data), ev->data_len); /* NUL-terminated */
    int n = snprintf(t->text + t->len, sizeof(t->text) - t->len, "%.*s|%.*s|%.*s\n",
                     (int)ev->type_len, ev->type, (int)ev->id_len, ev->id,
                     (int)ev->data_len, ev->data);
    t->len += (size_t)n;
    t->events++;
    return t->stop_after && t->events == t->stop_after ? 7 : 0;
}

static void parse_whole(const char *stream, size_t len, transcript *t)
{
    pl_sse_parser p;
    pl_sse_init(&p, 0);
    memset(t, 0, sizeof(*t));
    assert_int_equal(pl_sse_feed(&p, stream, len, record, t), 0);
    pl_sse_free(&p);
}

/* Feeding the stream in pieces cut at every offset (and byte by byte)
 * must give exactly the whole-stream transcript. */
static void assert_split_invariant(const char *stream)
{
    size_t len = strlen(stream);
    transcript whole, split;
    parse_whole(stream, len, &whole);
    for (size_t cut = 0; cut <= len; cut++) {
        pl_sse_parser p;
        pl_sse_init(&p, 0);
        memset(&split, 0, sizeof(split));
        assert_int_equal(pl_sse_feed(&p, stream, cut, record, &split), 0);
        assert_int_equal(pl_sse_feed(&p, stream + cut, len - cut, record, &split), 0);
        pl_sse_free(&p);
        assert_string_equal(split.text, whole.text);
    }
    pl_sse_parser p;
    pl_sse_init(&p, 0);
    memset(&split, 0, sizeof(split));
    for (size_t i = 0; i < len; i++)
        assert_int_equal(pl_sse_feed(&p, stream + i, 1, record, &split), 0);
    pl_sse_free(&p);
    assert_string_equal(split.text, whole.text);
}

/* A recorded Anthropic Messages stream (shape of the vendor's documentation). */
static const char anthropic_stream[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":3}}}\n"
    "\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n"
    "\n"
    "event: ping\n"
    "data: {\"type\": \"ping\"}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"[turn 1] \"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"héllo\"}}\n"
    "\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n"
    "\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n"
    "\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n"
    "\n";

/* A recorded OpenAI Chat Completions stream, with CRLF line ends. */
static const char openai_stream[] =
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\r\n"
    "\r\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"[turn 1] \"},\"finish_reason\":null}]}\r\n"
    "\r\n"
    ": keep-alive comment\r\n"
    "\r\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\r\n"
    "\r\n"
    "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":2}}\r\n"
    "\r\n"
    "data: [DONE]\r\n"
    "\r\n";

static void test_anthropic_stream(void **state)
{
    (void)state;
    transcript t;
    parse_whole(anthropic_stream, strlen(anthropic_stream), &t);
    assert_int_equal(t.events, 8);
    assert_non_null(strstr(t.text, "content_block_delta||{\"type\":\"content_block_delta\""));
    assert_non_null(strstr(t.text, "message_stop||{\"type\":\"message_stop\"}\n"));
    assert_split_invariant(anthropic_stream);
}

static void test_openai_stream_crlf(void **state)
{
    (void)state;
    transcript t;
    parse_whole(openai_stream, strlen(openai_stream), &t);
    assert_int_equal(t.events, 5); /* the comment is no event */
    assert_non_null(strstr(t.text, "message||[DONE]\n"));
    assert_null(strstr(t.text, "\r"));
    assert_split_invariant(openai_stream);
}

static void test_multiline_data_ids_and_cr(void **state)
{
    (void)state;
    const char *stream = "\xEF\xBB\xBF" /* a byte order mark */
                         "id: 7\r"
                         "data: one\r"
                         "data:two\r"
                         "data\r"
                         "\r"
                         "event: custom\n"
                         "unknownfield: x\n"
                         "retry: 5\n"
                         "data:  spaced\n"
                         "\n"
                         "data: no blank line at the end is no event";
    transcript t;
    parse_whole(stream, strlen(stream), &t);
    /* "data" with no colon adds an empty line; only one leading space goes. */
    assert_string_equal(t.text, "message|7|one\ntwo\n\n"
                                "custom|7| spaced\n");
    assert_split_invariant(stream);
}

static void test_events_without_data_are_dropped(void **state)
{
    (void)state;
    transcript t;
    const char *stream = "event: lonely\n\n: comment\n\n\n\nevent: x\ndata:\n\n";
    parse_whole(stream, strlen(stream), &t);
    assert_string_equal(t.text, "x||\n"); /* an empty data line still counts */
    assert_split_invariant(stream);
}

static void test_limits_and_stop(void **state)
{
    (void)state;
    pl_sse_parser p;
    transcript t = {0};
    pl_sse_init(&p, 32);
    /* A line longer than the limit, with no line end yet. */
    char big[100];
    memset(big, 'a', sizeof(big));
    assert_int_equal(pl_sse_feed(&p, "data: ", 6, record, &t), 0);
    assert_int_equal(pl_sse_feed(&p, big, sizeof(big), record, &t), -1);
    pl_sse_free(&p);

    /* Data lines adding up past the limit. */
    pl_sse_init(&p, 32);
    const char *many = "data: 0123456789\ndata: 0123456789\ndata: 0123456789\n\n";
    assert_int_equal(pl_sse_feed(&p, many, strlen(many), record, &t), -1);
    assert_int_equal(t.events, 0);
    pl_sse_free(&p);

    /* The callback can stop the feed; its value comes back. */
    pl_sse_init(&p, 0);
    memset(&t, 0, sizeof(t));
    t.stop_after = 1;
    const char *two = "data: a\n\ndata: b\n\n";
    assert_int_equal(pl_sse_feed(&p, two, strlen(two), record, &t), 7);
    assert_int_equal(t.events, 1);
    pl_sse_free(&p);
}

/* Garbage never crashes and never reads past what it was given. */
static void test_garbage(void **state)
{
    (void)state;
    unsigned seed = 12345;
    for (int round = 0; round < 2000; round++) {
        char buf[64];
        size_t len = (size_t)(seed % sizeof(buf));
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            static const char alphabet[] = "data:event id\r\n :\xEF\xBB\xBF\x00x";
            buf[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
        }
        char *exact = malloc(len ? len : 1);
        memcpy(exact, buf, len);
        pl_sse_parser p;
        transcript t = {0};
        pl_sse_init(&p, 48);
        int rc = pl_sse_feed(&p, exact, len, record, &t);
        assert_true(rc == 0 || rc == -1);
        pl_sse_free(&p);
        free(exact);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_anthropic_stream),
        cmocka_unit_test(test_openai_stream_crlf),
        cmocka_unit_test(test_multiline_data_ids_and_cr),
        cmocka_unit_test(test_events_without_data_are_dropped),
        cmocka_unit_test(test_limits_and_stop),
        cmocka_unit_test(test_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
