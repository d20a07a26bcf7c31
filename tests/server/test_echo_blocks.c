/*
 * The echo model with blocks, tools and thinking (echo_blocks.h), reached
 * through the conversation readers (echo_conversation.h) as the front ends
 * reach it: a request's JSON in, the reply's blocks out, exact texts
 * (protocol.md sections 9 and 10). Each reply is written as one line:
 *
 *   T(thinking text|signature) X(text) U(id name input) :stop_reason
 *
 * with "/" between pieces, "-" for a signature cut off, "=SEQ" after a
 * stop_sequence stop, and the number of stream units.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "buf.h"
#include "echo_conversation.h"

enum shape { NATIVE, ANTHROPIC, OPENAI };

static void put(pl_buf *b, const char *s, size_t len)
{
    assert_int_equal(pl_buf_append(b, s, len), 0);
}

static void put_pieces(pl_buf *b, const pl_echo_block *blk)
{
    size_t k;

    for (k = 0; k < blk->npieces; k++) {
        if (k)
            put(b, "/", 1);
        put(b, blk->text + pl_echo_block_piece_start(blk, k),
            pl_echo_block_piece_len(blk, k));
    }
}

/* The reply as one line (see the top of this file). */
static char *describe(const pl_echo_turn *t)
{
    pl_buf b = PL_BUF_INIT;
    char tail[64];
    size_t i;

    for (i = 0; i < t->nblocks; i++) {
        const pl_echo_block *blk = &t->blocks[i];
        if (i)
            put(&b, " ", 1);
        switch (blk->type) {
        case PL_ECHO_BLOCK_THINKING:
            put(&b, "T(", 2);
            put_pieces(&b, blk);
            put(&b, "|", 1);
            put(&b, blk->signature ? blk->signature : "-",
                strlen(blk->signature ? blk->signature : "-"));
            break;
        case PL_ECHO_BLOCK_TEXT:
            put(&b, "X(", 2);
            put_pieces(&b, blk);
            break;
        default:
            put(&b, "U(", 2);
            put(&b, blk->tool_id, strlen(blk->tool_id));
            put(&b, " ", 1);
            put(&b, blk->name, strlen(blk->name));
            put(&b, " ", 1);
            put_pieces(&b, blk);
        }
        put(&b, ")", 1);
    }
    snprintf(tail, sizeof tail, " :%s", t->stop_reason);
    put(&b, tail, strlen(tail));
    if (t->stop_sequence) {
        put(&b, "=", 1);
        put(&b, t->stop_sequence, t->stop_sequence_len);
    }
    snprintf(tail, sizeof tail, " #%zu", t->nunits);
    put(&b, tail, strlen(tail));
    return pl_buf_steal(&b, NULL);
}

static const char *read_shape(enum shape s, pl_echo_conversation *cv,
                              struct json_object *root)
{
    return s == NATIVE ? pl_echo_read_native(cv, root)
         : s == ANTHROPIC ? pl_echo_read_anthropic(cv, root)
         : pl_echo_read_openai(cv, root);
}

/* The reply to a request, described; chunk 0: 16 bytes. */
static char *reply(enum shape s, const char *json, size_t chunk,
                   uint64_t max_tokens)
{
    struct json_object *root = json_tokener_parse(json);
    pl_echo_conversation cv;
    pl_echo_turn t;
    const char *err;
    char *line;

    if (!root)
        fail_msg("test JSON does not parse: %s", json);
    err = read_shape(s, &cv, root);
    if (err)
        fail_msg("refused: %s", err);
    cv.req.chunk_bytes = chunk;
    cv.req.max_tokens = max_tokens;
    assert_int_equal(pl_echo_turn_build(&t, &cv.req), 0);
    line = describe(&t);
    pl_echo_turn_free(&t);
    pl_echo_conversation_free(&cv);
    json_object_put(root);
    return line;
}

static void expect(enum shape s, const char *json, size_t chunk,
                   uint64_t max_tokens, const char *want)
{
    char *got = reply(s, json, chunk, max_tokens);

    assert_string_equal(got, want);
    free(got);
}

#define ALL PL_ECHO_NO_LIMIT
#define NATIVE_MSG(rest) "{\"type\":\"message\"," rest "}"

/* The error of a refused request, which must contain want. */
static void expect_refused(enum shape s, const char *json, const char *want)
{
    struct json_object *root = json_tokener_parse(json);
    pl_echo_conversation cv;
    const char *err;

    if (!root)
        fail_msg("test JSON does not parse: %s", json);
    err = read_shape(s, &cv, root);
    if (!err)
        fail_msg("accepted: %s", json);
    if (!strstr(err, want))
        fail_msg("error \"%s\" does not say \"%s\"", err, want);
    pl_echo_conversation_free(&cv);
    json_object_put(root);
}

/* ---- the turn's text and number ----------------------------------------------- */

static void test_plain_text_as_section_8(void **state)
{
    (void)state;
    expect(NATIVE, NATIVE_MSG("\"content\":\"hello\""), 0, ALL,
           "X([turn 1] hello) :end_turn #1");
    /* Cut greedily into 16-byte pieces; max_tokens caps them. */
    expect(NATIVE, NATIVE_MSG("\"content\":\"a somewhat longer turn\""), 0,
           ALL, "X([turn 1] a somew/hat longer turn) :end_turn #2");
    expect(NATIVE, NATIVE_MSG("\"content\":\"a somewhat longer turn\""), 0,
           1, "X([turn 1] a somew) :max_tokens #1");
    expect(NATIVE, NATIVE_MSG("\"content\":\"\""), 0, ALL,
           "X([turn 1] ) :end_turn #1");
}

static void test_turn_counts_user_turns(void **state)
{
    (void)state;
    expect(NATIVE, NATIVE_MSG("\"content\":\"c\",\"history\":["
                              "{\"role\":\"user\",\"content\":\"a\"},"
                              "{\"role\":\"assistant\",\"content\":[{\"type\":"
                              "\"text\",\"text\":\"[turn 1] a\"}]},"
                              "{\"role\":\"user\",\"content\":\"b\"},"
                              "{\"role\":\"assistant\",\"content\":\"x\"}]"),
           0, ALL, "X([turn 3] c) :end_turn #1");
    expect(ANTHROPIC, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
                      "{\"role\":\"assistant\",\"content\":\"x\"},"
                      "{\"role\":\"user\",\"content\":\"b\"}]}",
           0, ALL, "X([turn 2] b) :end_turn #1");
    /* System messages are not user turns. */
    expect(OPENAI, "{\"messages\":[{\"role\":\"system\",\"content\":\"s\"},"
                   "{\"role\":\"user\",\"content\":\"b\"}]}",
           0, ALL, "X([turn 1] b) :end_turn #1");
}

static void test_text_of_blocks_and_images(void **state)
{
    (void)state;
    /* "aGVsbG8=" is 5 bytes, "AAAA" 3; text and images joined by spaces. */
    expect(NATIVE, NATIVE_MSG(
               "\"content\":[{\"type\":\"text\",\"text\":\"look\"},"
               "{\"type\":\"image\",\"source\":{\"type\":\"base64\","
               "\"media_type\":\"image/png\",\"data\":\"aGVsbG8=\"}},"
               "{\"type\":\"image\",\"source\":{\"type\":\"url\","
               "\"url\":\"https://example.com/a.png\"}},"
               "{\"type\":\"text\",\"text\":\"and\"}]"),
           64, ALL,
           "X([turn 1] look <image image/png 5 bytes> <image url> and) "
           ":end_turn #1");
    expect(OPENAI, "{\"messages\":[{\"role\":\"user\",\"content\":["
                   "{\"type\":\"text\",\"text\":\"see\"},"
                   "{\"type\":\"image_url\",\"image_url\":{\"url\":"
                   "\"data:image/jpeg;base64,AAAA\"}},"
                   "{\"type\":\"image_url\",\"image_url\":{\"url\":"
                   "\"https://example.com/b.jpg\"}}]}]}",
           64, ALL,
           "X([turn 1] see <image image/jpeg 3 bytes> <image url>) "
           ":end_turn #1");
}

/* ---- thinking ------------------------------------------------------------------- */

#define THINK "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":2048}"

static void test_thinking_block_first(void **state)
{
    (void)state;
    expect(NATIVE, NATIVE_MSG("\"content\":\"hi\"," THINK), 0, ALL,
           "T(thinking about: /hi|echo-sig-1) X([turn 1] hi) :end_turn #3");
    expect(ANTHROPIC, "{" THINK ",\"messages\":[{\"role\":\"user\","
                      "\"content\":\"hi\"}]}", 0, ALL,
           "T(thinking about: /hi|echo-sig-1) X([turn 1] hi) :end_turn #3");
    /* Disabled thinking, and OpenAI, have none. */
    expect(ANTHROPIC, "{\"thinking\":{\"type\":\"disabled\"},\"messages\":"
                      "[{\"role\":\"user\",\"content\":\"hi\"}]}", 0, ALL,
           "X([turn 1] hi) :end_turn #1");
}

static void test_max_tokens_cuts_thinking_without_signature(void **state)
{
    (void)state;
    /* Thinking is 2 pieces: one unit leaves it cut, unsigned, and alone. */
    expect(NATIVE, NATIVE_MSG("\"content\":\"hi\"," THINK), 0, 1,
           "T(thinking about: |-) :max_tokens #1");
    /* Two units: signed thinking, no text left. */
    expect(NATIVE, NATIVE_MSG("\"content\":\"hi\"," THINK), 0, 2,
           "T(thinking about: /hi|echo-sig-1) :max_tokens #2");
    expect(NATIVE, NATIVE_MSG("\"content\":\"hi\"," THINK), 0, 3,
           "T(thinking about: /hi|echo-sig-1) X([turn 1] hi) :end_turn #3");
}

/* ---- tool calls ------------------------------------------------------------------ */

#define TOOLS "\"tools\":[{\"name\":\"get_weather\",\"description\":\"d\"," \
              "\"input_schema\":{\"type\":\"object\"}},{\"name\":\"clock\"," \
              "\"input_schema\":{\"type\":\"object\"}}]"

static void test_tool_call_with_compact_input(void **state)
{
    (void)state;
    expect(NATIVE, NATIVE_MSG("\"content\":\"call get_weather {\\\"city\\\":"
                              "\\\"Paris\\\"}\"," TOOLS),
           0, ALL,
           "X([turn 1] calling/ get_weather) "
           "U(toolu_echo_1 get_weather {\"city\":\"Paris\"}) :tool_use #3");
    /* Whitespace outside strings goes; keys, escapes, numbers stay. */
    expect(ANTHROPIC, "{" TOOLS ",\"messages\":[{\"role\":\"user\",\"content\":"
                      "\"call clock { \\\"z\\\" : 1.50 ,\\n \\\"a\\\": "
                      "\\\"x y\\\\\\\" \\\\u00e9\\\", \\\"n\\\":[1, 2e3] } \"}]}",
           64, ALL,
           "X([turn 1] calling clock) "
           "U(toolu_echo_1 clock {\"z\":1.50,\"a\":\"x y\\\" \\u00e9\","
           "\"n\":[1,2e3]}) :tool_use #2");
    /* The OpenAI id. */
    expect(OPENAI, "{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":"
                   "\"clock\",\"parameters\":{}}}],\"messages\":[{\"role\":"
                   "\"user\",\"content\":\"call clock {}\"}]}", 64, ALL,
           "X([turn 1] calling clock) U(call_echo_1 clock {}) :tool_use #2");
}

static void test_not_a_tool_call(void **state)
{
    (void)state;
    /* No tools in the request. */
    expect(NATIVE, NATIVE_MSG("\"content\":\"call clock {}\""), 64, ALL,
           "X([turn 1] call clock {}) :end_turn #1");
    /* A tool the request does not have. */
    expect(NATIVE, NATIVE_MSG("\"content\":\"call alarm {}\"," TOOLS), 64, ALL,
           "X([turn 1] call alarm {}) :end_turn #1");
    /* ARGS not a JSON object. */
    expect(NATIVE, NATIVE_MSG("\"content\":\"call clock [1]\"," TOOLS), 64,
           ALL, "X([turn 1] call clock [1]) :end_turn #1");
    expect(NATIVE, NATIVE_MSG("\"content\":\"call clock {\\\"a\\\":}\","
                              TOOLS), 64, ALL,
           "X([turn 1] call clock {\"a\":}) :end_turn #1");
}

static void test_max_tokens_keeps_a_tool_call_whole(void **state)
{
    (void)state;
    /* Text is 2 units, the call 1: with 2 the call is absent. */
    expect(NATIVE, NATIVE_MSG("\"content\":\"call clock {}\"," TOOLS), 0, 2,
           "X([turn 1] calling/ clock) :max_tokens #2");
    expect(NATIVE, NATIVE_MSG("\"content\":\"call clock {}\"," TOOLS), 0, 3,
           "X([turn 1] calling/ clock) U(toolu_echo_1 clock {}) "
           ":tool_use #3");
}

/* ---- tool results ---------------------------------------------------------------- */

#define CALLED(calls) \
    "\"history\":[{\"role\":\"user\",\"content\":\"call get_weather {}\"}," \
    "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":" \
    "\"[turn 1] calling get_weather\"}," calls "]}]"
#define USE(id, name) \
    "{\"type\":\"tool_use\",\"id\":\"" id "\",\"name\":\"" name "\"," \
    "\"input\":{}}"
#define RESULT(id, content) \
    "{\"type\":\"tool_result\",\"tool_use_id\":\"" id "\",\"content\":" \
    content "}"

static void test_tool_result_reply(void **state)
{
    (void)state;
    expect(NATIVE, NATIVE_MSG(TOOLS "," CALLED(USE("t1", "get_weather"))
                              ",\"content\":[" RESULT("t1", "\"18 C\"") "]"),
           64, ALL, "X([turn 2] get_weather returned: 18 C) :end_turn #1");
    /* Text blocks of a result joined by one space; is_error: failed. */
    expect(NATIVE, NATIVE_MSG(TOOLS "," CALLED(USE("t1", "get_weather"))
                              ",\"content\":[{\"type\":\"tool_result\","
                              "\"tool_use_id\":\"t1\",\"is_error\":true,"
                              "\"content\":[{\"type\":\"text\",\"text\":\"no\"},"
                              "{\"type\":\"text\",\"text\":\"city\"}]}]"),
           64, ALL, "X([turn 2] get_weather failed: no city) :end_turn #1");
}

static void test_several_tool_results(void **state)
{
    (void)state;
    expect(NATIVE, NATIVE_MSG(TOOLS "," CALLED(USE("t1", "get_weather") ","
                                               USE("t2", "clock"))
                              ",\"content\":[" RESULT("t1", "\"18 C\"") ","
                              "{\"type\":\"tool_result\",\"tool_use_id\":"
                              "\"t2\",\"content\":\"stopped\",\"is_error\":"
                              "true}]"),
           128, ALL,
           "X([turn 2] get_weather returned: 18 C; clock failed: stopped) "
           ":end_turn #1");
}

static void test_tool_result_turn_thinks_about_nothing(void **state)
{
    (void)state;
    expect(NATIVE, NATIVE_MSG(THINK "," TOOLS "," CALLED(USE("t1", "clock"))
                              ",\"content\":[" RESULT("t1", "\"9:00\"") "]"),
           64, ALL,
           "T(thinking about: |echo-sig-2) "
           "X([turn 2] clock returned: 9:00) :end_turn #2");
}

static void test_text_beside_results_is_the_turn(void **state)
{
    (void)state;
    expect(NATIVE, NATIVE_MSG(TOOLS "," CALLED(USE("t1", "clock"))
                              ",\"content\":[" RESULT("t1", "\"9:00\"") ","
                              "{\"type\":\"text\",\"text\":\"thanks\"}]"),
           64, ALL, "X([turn 2] thanks) :end_turn #1");
}

static void test_openai_tool_run_is_one_turn(void **state)
{
    (void)state;
    static const char conv[] =
        "{\"role\":\"user\",\"content\":\"call a {}\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
        "{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"a\","
        "\"arguments\":\"{}\"}},"
        "{\"id\":\"c2\",\"type\":\"function\",\"function\":{\"name\":\"b\","
        "\"arguments\":\"{}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"x\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c2\",\"content\":[{\"type\":"
        "\"text\",\"text\":\"y\"},{\"type\":\"text\",\"text\":\"z\"}]}";
    char json[2048];

    snprintf(json, sizeof json, "{\"messages\":[%s]}", conv);
    expect(OPENAI, json, 64, ALL,
           "X([turn 2] a returned: x; b returned: y z) :end_turn #1");
    /* An assistant's refusal part is history like any other. */
    snprintf(json, sizeof json, "{\"messages\":[%s,{\"role\":\"assistant\","
             "\"content\":[{\"type\":\"refusal\",\"refusal\":\"no\"}]},"
             "{\"role\":\"user\",\"content\":\"next\"}]}", conv);
    expect(OPENAI, json, 64, ALL, "X([turn 3] next) :end_turn #1");
}

/* ---- stop sequences ---------------------------------------------------------------- */

#define STOPS(list) "\"stop_sequences\":[" list "]"

static void test_stop_at_earliest_match(void **state)
{
    (void)state;
    expect(NATIVE, NATIVE_MSG("\"content\":\"one two three\","
                              STOPS("\"three\",\"two\"")),
           64, ALL, "X([turn 1] one ) :stop_sequence=two #1");
    /* A tie at one position: the shorter one is reported. */
    expect(NATIVE, NATIVE_MSG("\"content\":\"one two three\","
                              STOPS("\"two t\",\"two\",\"tw\"")),
           64, ALL, "X([turn 1] one ) :stop_sequence=tw #1");
    /* No match: an ordinary end. */
    expect(NATIVE, NATIVE_MSG("\"content\":\"one\"," STOPS("\"four\"")),
           64, ALL, "X([turn 1] one) :end_turn #1");
    /* OpenAI's stop may be one string. */
    expect(OPENAI, "{\"stop\":\"two\",\"messages\":[{\"role\":\"user\","
                   "\"content\":\"one two\"}]}",
           64, ALL, "X([turn 1] one ) :stop_sequence=two #1");
}

static void test_stop_at_zero_leaves_no_text(void **state)
{
    (void)state;
    expect(NATIVE, NATIVE_MSG("\"content\":\"x\"," STOPS("\"[turn\"")), 64,
           ALL, " :stop_sequence=[turn #0");
    /* Thinking is not searched, and stays. */
    expect(NATIVE, NATIVE_MSG("\"content\":\"x\"," THINK ","
                              STOPS("\"[turn\",\"about\"")),
           64, ALL,
           "T(thinking about: x|echo-sig-1) :stop_sequence=[turn #1");
}

static void test_stop_removes_the_tool_call(void **state)
{
    (void)state;
    expect(NATIVE, NATIVE_MSG("\"content\":\"call clock {}\"," TOOLS ","
                              STOPS("\"clock\"")),
           64, ALL, "X([turn 1] calling ) :stop_sequence=clock #1");
    /* The input is not searched: the call stays. */
    expect(NATIVE, NATIVE_MSG("\"content\":\"call clock {\\\"q\\\":1}\","
                              TOOLS "," STOPS("\"q\"")),
           64, ALL, "X([turn 1] calling clock) U(toolu_echo_1 clock "
                    "{\"q\":1}) :tool_use #2");
}

static void test_thinking_tool_call_and_stop_in_one_request(void **state)
{
    (void)state;
    /* The stop sequence does not occur in "[turn 1] calling clock". */
    expect(ANTHROPIC, "{" THINK "," TOOLS "," STOPS("\"zzz\"") ","
                      "\"messages\":[{\"role\":\"user\",\"content\":"
                      "\"call clock {\\\"tz\\\": \\\"UTC\\\"}\"}]}",
           16, ALL,
           "T(thinking about: /call clock {\"tz\"/: \"UTC\"}|echo-sig-1) "
           "X([turn 1] calling/ clock) "
           "U(toolu_echo_1 clock {\"tz\":\"UTC\"}) :tool_use #6");
}

/* ---- refusals (protocol.md 10.1) --------------------------------------------------- */

static void test_unanswered_tool_use_refused(void **state)
{
    (void)state;
    expect_refused(NATIVE, NATIVE_MSG(TOOLS "," CALLED(USE("t1", "clock"))
                                      ",\"content\":\"hi\""),
                   "tool_use ids were found without tool_result blocks");
    /* Results must come first in the turn. */
    expect_refused(NATIVE, NATIVE_MSG(TOOLS "," CALLED(USE("t1", "clock"))
                                      ",\"content\":[{\"type\":\"text\","
                                      "\"text\":\"a\"}," RESULT("t1", "\"r\"")
                                      "]"),
                   "tool_result blocks must come first");
    /* One of two calls answered. */
    expect_refused(NATIVE, NATIVE_MSG(TOOLS "," CALLED(USE("t1", "clock") ","
                                                       USE("t2", "clock"))
                                      ",\"content\":[" RESULT("t1", "\"r\"")
                                      "]"),
                   "without tool_result blocks immediately after: t2");
}

static void test_result_without_call_refused(void **state)
{
    (void)state;
    expect_refused(ANTHROPIC, "{\"messages\":[{\"role\":\"user\",\"content\":"
                              "[" RESULT("t9", "\"r\"") "]}]}",
                   "unexpected tool_use_id found in tool_result blocks: t9");
}

static void test_empty_content_refused(void **state)
{
    (void)state;
    expect_refused(NATIVE, NATIVE_MSG("\"content\":\"x\",\"history\":["
                                      "{\"role\":\"user\",\"content\":\"a\"},"
                                      "{\"role\":\"assistant\","
                                      "\"content\":\"\"}]"),
                   "history.1: all messages must have non-empty content");
    expect_refused(ANTHROPIC, "{\"messages\":[{\"role\":\"user\","
                              "\"content\":[]},{\"role\":\"user\","
                              "\"content\":\"x\"}]}",
                   "messages.0: all messages must have non-empty content");
    expect_refused(NATIVE, NATIVE_MSG("\"content\":[{\"type\":\"text\","
                                      "\"text\":\"\"}]"),
                   "text content blocks must be non-empty");
    expect_refused(OPENAI, "{\"messages\":[{\"role\":\"assistant\","
                           "\"content\":\"\"},{\"role\":\"user\","
                           "\"content\":\"x\"}]}",
                   "messages.0: content must be non-empty");
}

static void test_bad_images_refused(void **state)
{
    (void)state;
    expect_refused(NATIVE, NATIVE_MSG(
                       "\"content\":[{\"type\":\"image\",\"source\":{"
                       "\"type\":\"base64\",\"media_type\":\"image/bmp\","
                       "\"data\":\"AAAA\"}}]"),
                   "media_type must be one of");
    expect_refused(NATIVE, NATIVE_MSG(
                       "\"content\":[{\"type\":\"image\",\"source\":{"
                       "\"type\":\"base64\",\"media_type\":\"image/png\","
                       "\"data\":\"AA*A\"}}]"),
                   "not valid base64");
    expect_refused(OPENAI, "{\"messages\":[{\"role\":\"user\",\"content\":["
                           "{\"type\":\"image_url\",\"image_url\":{\"url\":"
                           "\"data:image/png;base64,A\"}}]}]}",
                   "not valid base64");
}

static void test_unsigned_thinking_refused(void **state)
{
    (void)state;
    expect_refused(NATIVE, NATIVE_MSG(
                       "\"content\":\"x\",\"history\":[{\"role\":\"user\","
                       "\"content\":\"a\"},{\"role\":\"assistant\",\"content\":"
                       "[{\"type\":\"thinking\",\"thinking\":\"t\"},{\"type\":"
                       "\"text\",\"text\":\"b\"}]}]"),
                   "thinking blocks need a non-empty signature");
}

static void test_thinking_budget_refused(void **state)
{
    (void)state;
    expect_refused(ANTHROPIC, "{\"thinking\":{\"type\":\"enabled\","
                              "\"budget_tokens\":1023},\"messages\":[{\"role\":"
                              "\"user\",\"content\":\"x\"}]}",
                   "budget_tokens: must be an integer >= 1024");
    expect_refused(NATIVE, NATIVE_MSG("\"content\":\"x\",\"thinking\":"
                                      "{\"type\":\"enabled\","
                                      "\"budget_tokens\":0}"),
                   "budget_tokens: must be an integer >= 1");
    expect(NATIVE, NATIVE_MSG("\"content\":\"x\",\"thinking\":{\"type\":"
                              "\"enabled\",\"budget_tokens\":1}"), 64, ALL,
           "T(thinking about: x|echo-sig-1) X([turn 1] x) :end_turn #2");
}

static void test_openai_tool_order_refused(void **state)
{
    (void)state;
    /* A tool message after a user message, not after its call. */
    expect_refused(OPENAI, "{\"messages\":[{\"role\":\"assistant\","
                           "\"content\":null,\"tool_calls\":[{\"id\":\"c1\","
                           "\"type\":\"function\",\"function\":{\"name\":\"a\","
                           "\"arguments\":\"{}\"}}]},{\"role\":\"user\","
                           "\"content\":\"x\"},{\"role\":\"tool\","
                           "\"tool_call_id\":\"c1\",\"content\":\"r\"}]}",
                   "did not have response messages: c1");
    expect_refused(OPENAI, "{\"messages\":[{\"role\":\"user\",\"content\":"
                           "\"x\"},{\"role\":\"tool\",\"tool_call_id\":\"c1\","
                           "\"content\":\"r\"}]}",
                   "must be a response to a preceding message with "
                   "'tool_calls'");
}

static void test_openai_five_stops_refused(void **state)
{
    (void)state;
    expect_refused(OPENAI, "{\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"],"
                           "\"messages\":[{\"role\":\"user\","
                           "\"content\":\"x\"}]}",
                   "stop: at most 4 stop sequences");
}

static void test_block_roles_refused(void **state)
{
    (void)state;
    expect_refused(NATIVE, NATIVE_MSG("\"content\":[" USE("t1", "clock") "]"),
                   "tool_use blocks are allowed in assistant turns only");
    expect_refused(NATIVE, NATIVE_MSG("\"content\":[{\"type\":\"sound\"}]"),
                   "unknown content block type");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_text_as_section_8),
        cmocka_unit_test(test_turn_counts_user_turns),
        cmocka_unit_test(test_text_of_blocks_and_images),
        cmocka_unit_test(test_thinking_block_first),
        cmocka_unit_test(test_max_tokens_cuts_thinking_without_signature),
        cmocka_unit_test(test_tool_call_with_compact_input),
        cmocka_unit_test(test_not_a_tool_call),
        cmocka_unit_test(test_max_tokens_keeps_a_tool_call_whole),
        cmocka_unit_test(test_tool_result_reply),
        cmocka_unit_test(test_several_tool_results),
        cmocka_unit_test(test_tool_result_turn_thinks_about_nothing),
        cmocka_unit_test(test_text_beside_results_is_the_turn),
        cmocka_unit_test(test_openai_tool_run_is_one_turn),
        cmocka_unit_test(test_stop_at_earliest_match),
        cmocka_unit_test(test_stop_at_zero_leaves_no_text),
        cmocka_unit_test(test_stop_removes_the_tool_call),
        cmocka_unit_test(test_thinking_tool_call_and_stop_in_one_request),
        cmocka_unit_test(test_unanswered_tool_use_refused),
        cmocka_unit_test(test_result_without_call_refused),
        cmocka_unit_test(test_empty_content_refused),
        cmocka_unit_test(test_bad_images_refused),
        cmocka_unit_test(test_unsigned_thinking_refused),
        cmocka_unit_test(test_thinking_budget_refused),
        cmocka_unit_test(test_openai_tool_order_refused),
        cmocka_unit_test(test_openai_five_stops_refused),
        cmocka_unit_test(test_block_roles_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
