/*
 * The request bodies of issue 14 on the three paths (native, Anthropic,
 * OpenAI), as exact JSON text: content blocks, history of blocks, every
 * request parameter, prompt caching, extra_body; and the plain-text bodies,
 * which must stay what they were.
 */
#include <locale.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "dialect.h"
#include "protocol.h"
#include "request_body.h"

static const char IMG[] =
    "[{\"type\":\"text\",\"text\":\"look\"},{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_"
    "type\":\"image/png\",\"data\":\"iVBO\"}},{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":\""
    "https://x/y.png\"}}]";
static const char H0[] =
    "call get_weather {\"city\":\"Paris\"}";
static const char H1[] =
    "[{\"type\":\"thinking\",\"thinking\":\"hmm\",\"signature\":\"sig\"},{\"type\":\"text\",\"text\":\"["
    "turn 1] calling get_weather\"},{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weat"
    "her\",\"input\":{\"city\":\"Paris\"}}]";
static const char H2[] =
    "[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\",\"content\":\"sunny\"},{\"type\":\"tool_"
    "result\",\"tool_use_id\":\"toolu_2\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"t"
    "ext\",\"text\":\"b\"}],\"is_error\":true},{\"type\":\"text\",\"text\":\"thanks\"}]";
static const char TOOLS[] =
    "[{\"name\":\"get_weather\",\"description\":\"Weather\",\"input_schema\":{\"type\":\"object\",\""
    "properties\":{\"city\":{\"type\":\"string\"}}}}]";
static const char NATIVE_ALL[] =
    "{\"type\":\"message\",\"id\":\"42\",\"session\":\"s\",\"timestamp\":1000,\"content\":[{\"type\":\"t"
    "ext\",\"text\":\"look\"},{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"imag"
    "e/png\",\"data\":\"iVBO\"}},{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":\"https://x/y"
    ".png\"}}],\"history\":[{\"role\":\"user\",\"content\":\"call get_weather {\\\"city\\\":\\\"Paris"
    "\\\"}\"},{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"hmm\",\"signat"
    "ure\":\"sig\"},{\"type\":\"text\",\"text\":\"[turn 1] calling get_weather\"},{\"type\":\"tool_"
    "use\",\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":{\"city\":\"Paris\"}}]},{\"role\":\"us"
    "er\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\",\"content\":\"sunny\"},"
    "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_2\",\"content\":[{\"type\":\"text\",\"text\":\""
    "a\"},{\"type\":\"text\",\"text\":\"b\"}],\"is_error\":true},{\"type\":\"text\",\"text\":\"thanks\"}"
    "]},{\"role\":\"assistant\",\"content\":\"ok\"}],\"max_tokens\":10,\"system\":\"be brief\",\"too"
    "ls\":[{\"name\":\"get_weather\",\"description\":\"Weather\",\"input_schema\":{\"type\":\"objec"
    "t\",\"properties\":{\"city\":{\"type\":\"string\"}}}}],\"tool_choice\":{\"type\":\"tool\",\"name"
    "\":\"get_weather\"},\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":2048},\"stop_sequen"
    "ces\":[\"END\"],\"temperature\":0.7,\"top_p\":0.9,\"top_k\":40,\"metadata\":{\"user_id\":\"u1\""
    "},\"model\":\"m2\",\"x_flag\":true,\"stream\":false}";
static const char ANTHROPIC_ALL[] =
    "{\"max_tokens\":10,\"stream\":true,\"system\":[{\"type\":\"text\",\"text\":\"be brief\",\"cache"
    "_control\":{\"type\":\"ephemeral\"}}],\"messages\":[{\"role\":\"user\",\"content\":\"call get_"
    "weather {\\\"city\\\":\\\"Paris\\\"}\"},{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\""
    ",\"thinking\":\"hmm\",\"signature\":\"sig\"},{\"type\":\"text\",\"text\":\"[turn 1] calling get"
    "_weather\"},{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":{\"city"
    "\":\"Paris\"}}]},{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"too"
    "lu_1\",\"content\":\"sunny\"},{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_2\",\"content\""
    ":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}],\"is_error\":true},{\"type"
    "\":\"text\",\"text\":\"thanks\"}]},{\"role\":\"assistant\",\"content\":\"ok\"},{\"role\":\"user\",\""
    "content\":[{\"type\":\"text\",\"text\":\"look\"},{\"type\":\"image\",\"source\":{\"type\":\"base64"
    "\",\"media_type\":\"image/png\",\"data\":\"iVBO\"}},{\"type\":\"image\",\"source\":{\"type\":\"url"
    "\",\"url\":\"https://x/y.png\"},\"cache_control\":{\"type\":\"ephemeral\"}}]}],\"tools\":[{\"n"
    "ame\":\"get_weather\",\"description\":\"Weather\",\"input_schema\":{\"type\":\"object\",\"prop"
    "erties\":{\"city\":{\"type\":\"string\"}}},\"cache_control\":{\"type\":\"ephemeral\"}}],\"tool"
    "_choice\":{\"type\":\"tool\",\"name\":\"get_weather\"},\"thinking\":{\"type\":\"enabled\",\"budg"
    "et_tokens\":2048},\"stop_sequences\":[\"END\"],\"temperature\":0.7,\"top_p\":0.9,\"top_k\":"
    "40,\"metadata\":{\"user_id\":\"u1\"},\"model\":\"m2\",\"x_flag\":true}";
static const char ANTHROPIC_NO_CACHE[] =
    "{\"max_tokens\":10,\"stream\":true,\"system\":\"be brief\",\"messages\":[{\"role\":\"user\",\"c"
    "ontent\":\"call get_weather {\\\"city\\\":\\\"Paris\\\"}\"},{\"role\":\"assistant\",\"content\":["
    "{\"type\":\"thinking\",\"thinking\":\"hmm\",\"signature\":\"sig\"},{\"type\":\"text\",\"text\":\"[t"
    "urn 1] calling get_weather\"},{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weath"
    "er\",\"input\":{\"city\":\"Paris\"}}]},{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
    "\"tool_use_id\":\"toolu_1\",\"content\":\"sunny\"},{\"type\":\"tool_result\",\"tool_use_id\":\""
    "toolu_2\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}],\"is_e"
    "rror\":true},{\"type\":\"text\",\"text\":\"thanks\"}]},{\"role\":\"assistant\",\"content\":\"ok\""
    "},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"look\"},{\"type\":\"image\",\"sourc"
    "e\":{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":\"iVBO\"}},{\"type\":\"image\",\"so"
    "urce\":{\"type\":\"url\",\"url\":\"https://x/y.png\"}}]}],\"tools\":[{\"name\":\"get_weather\","
    "\"description\":\"Weather\",\"input_schema\":{\"type\":\"object\",\"properties\":{\"city\":{\"t"
    "ype\":\"string\"}}}}],\"tool_choice\":{\"type\":\"tool\",\"name\":\"get_weather\"},\"thinking\""
    ":{\"type\":\"enabled\",\"budget_tokens\":2048},\"stop_sequences\":[\"END\"],\"temperature\":"
    "0.7,\"top_p\":0.9,\"top_k\":40,\"metadata\":{\"user_id\":\"u1\"},\"model\":\"m2\",\"x_flag\":tru"
    "e}";
static const char OPENAI_ALL[] =
    "{\"stream\":true,\"stream_options\":{\"include_usage\":true},\"max_completion_tokens\":1"
    "0,\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":\"c"
    "all get_weather {\\\"city\\\":\\\"Paris\\\"}\"},{\"role\":\"assistant\",\"content\":\"[turn 1] c"
    "alling get_weather\",\"tool_calls\":[{\"id\":\"toolu_1\",\"type\":\"function\",\"function\":{"
    "\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},{\"role\":\"tool\",\"tool"
    "_call_id\":\"toolu_1\",\"content\":\"sunny\"},{\"role\":\"tool\",\"tool_call_id\":\"toolu_2\",\""
    "content\":\"error: a b\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"thanks\"}"
    "]},{\"role\":\"assistant\",\"content\":\"ok\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\","
    "\"text\":\"look\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,iVB"
    "O\"}},{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x/y.png\"}}]}],\"tools\":[{\"ty"
    "pe\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Weather\",\"paramet"
    "ers\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}],\"tool_choice\":"
    "{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}},\"stop\":[\"END\"],\"temperatur"
    "e\":0.7,\"top_p\":0.9,\"metadata\":{\"user_id\":\"u1\"},\"model\":\"m2\",\"x_flag\":true}";

static const pl_history_turn history[] = {
    {false, H0, sizeof(H0) - 1, false},
    {true, H1, sizeof(H1) - 1, true},
    {false, H2, sizeof(H2) - 1, true},
    {true, "ok", 2, false},
};

static const pl_request_params all_params = {
    .system = "be brief",
    .tools = TOOLS,
    .tool_choice = "{\"type\":\"tool\",\"name\":\"get_weather\"}",
    .stop_sequences = "[\"END\"]",
    .metadata = "{\"user_id\":\"u1\"}",
    .extra_body = "{\"model\":\"m2\",\"x_flag\":true,\"stream\":false}",
    .thinking_budget = 2048,
    .has_temperature = true,
    .temperature = 0.7,
    .has_top_p = true,
    .top_p = 0.9,
    .top_k = 40,
    .prompt_caching = true,
};

static pl_message_req blocks_req(const pl_request_params *params)
{
    return (pl_message_req){.id = 42, .session = "s", .timestamp_ms = 1000,
                            .content = IMG, .content_len = sizeof(IMG) - 1,
                            .content_blocks = true, .history = history, .nhistory = 4,
                            .model = "m", .max_tokens = 10, .params = params};
}

typedef int encoder(pl_buf *out, const pl_message_req *req);

static int encode_native(pl_buf *out, const pl_message_req *req)
{
    return pl_proto_encode_message(out, req);
}

static void assert_encodes(encoder *enc, const pl_message_req *req, const char *expected)
{
    pl_buf b = PL_BUF_INIT;
    assert_int_equal(enc(&b, req), 0);
    assert_string_equal(b.data, expected);
    pl_buf_free(&b);
}

/* Native: blocks and history copied as they are, every 9.2 field, the
 * extra_body's members last and replacing ours ("model"). */
static void test_native_blocks_and_params(void **state)
{
    (void)state;
    pl_message_req req = blocks_req(&all_params);
    assert_encodes(encode_native, &req, NATIVE_ALL);
}

/* Anthropic: the same fields in the Messages shape; prompt caching marks
 * the system prompt (then an array of one text block), the last tool and
 * the last block of the last message; "stream" is not replaceable. */
static void test_anthropic_blocks_params_caching(void **state)
{
    (void)state;
    pl_message_req req = blocks_req(&all_params);
    assert_encodes(pl_anthropic_encode, &req, ANTHROPIC_ALL);
    pl_request_params no_cache = all_params;
    no_cache.prompt_caching = false;
    req.params = &no_cache;
    assert_encodes(pl_anthropic_encode, &req, ANTHROPIC_NO_CACHE);
}

/* A string content becomes one text block to carry the cache_control. */
static void test_anthropic_caching_string_content(void **state)
{
    (void)state;
    pl_request_params p = {.prompt_caching = true, .tools = "[{\"name\":\"a\"},{}]"};
    pl_message_req req = {.content = "hi \"x\"", .content_len = 6, .model = "m", .params = &p};
    assert_encodes(pl_anthropic_encode, &req,
                   "{\"model\":\"m\",\"max_tokens\":1024,\"stream\":true,\"messages\":[{\"role\":"
                   "\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi \\\"x\\\"\",\"cache_control\":"
                   "{\"type\":\"ephemeral\"}}]}],\"tools\":[{\"name\":\"a\"},{\"cache_control\":"
                   "{\"type\":\"ephemeral\"}}]}");
}

/* OpenAI: system message; tool results as role "tool" messages before the
 * turn's other parts (is_error as an "error: " prefix); assistant tool_use
 * as tool_calls with the input as a string; thinking dropped; images as
 * image_url (data: URL for base64); tools as functions; tool_choice
 * mapped; stop; max_completion_tokens; top_k and thinking left out. */
static void test_openai_blocks_and_params(void **state)
{
    (void)state;
    pl_message_req req = blocks_req(&all_params);
    assert_encodes(pl_openai_encode, &req, OPENAI_ALL);
}

static void assert_openai_choice(const char *choice, const char *expected)
{
    pl_request_params p = {.tool_choice = choice};
    pl_message_req req = {.content = "x", .content_len = 1, .model = "m", .params = &p};
    char body[256];
    snprintf(body, sizeof(body),
             "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
             "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":%s}", expected);
    assert_encodes(pl_openai_encode, &req, body);
}

static void test_openai_tool_choice(void **state)
{
    (void)state;
    assert_openai_choice("{\"type\":\"auto\"}", "\"auto\"");
    assert_openai_choice("{\"type\":\"any\"}", "\"required\"");
    assert_openai_choice("{\"type\":\"none\"}", "\"none\"");
    assert_openai_choice("{\"type\":\"tool\",\"name\":\"f\"}",
                         "{\"type\":\"function\",\"function\":{\"name\":\"f\"}}");
}

/* An assistant turn of a tool call only has content null; one of thinking
 * only, an empty content. */
static void test_openai_assistant_without_text(void **state)
{
    (void)state;
    static const char call[] = "[{\"type\":\"tool_use\",\"id\":\"c1\",\"name\":\"f\",\"input\":{}}]";
    static const char thinking[] = "[{\"type\":\"thinking\",\"thinking\":\"t\",\"signature\":\"s\"}]";
    static const char results[] = "[{\"type\":\"tool_result\",\"tool_use_id\":\"c1\",\"content\":\"r\"}]";
    pl_history_turn h[] = {{false, "q", 1, false}, {true, call, sizeof(call) - 1, true},
                           {false, results, sizeof(results) - 1, true},
                           {true, thinking, sizeof(thinking) - 1, true}};
    pl_message_req req = {.content = "x", .content_len = 1, .model = "m", .history = h,
                          .nhistory = 4};
    assert_encodes(pl_openai_encode, &req,
                   "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                   "\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\","
                   "\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":"
                   "{\"name\":\"f\",\"arguments\":\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"c1\","
                   "\"content\":\"r\"},{\"role\":\"assistant\",\"content\":\"\"},{\"role\":\"user\","
                   "\"content\":\"x\"}]}");
}

/* Plain text, with or without the system prompt: the bodies of before
 * issue 14, byte for byte (OpenAI's max_tokens is now
 * max_completion_tokens, the only change). No json-c on this path. */
static void test_plain_text_unchanged(void **state)
{
    (void)state;
    pl_history_turn h[] = {{false, "q \"1\"", 5, false}, {true, "a", 1, false}};
    pl_request_params p = {.system = "be brief"};
    pl_message_req req = {.id = 42, .session = "s", .timestamp_ms = 1000, .content = "hi",
                          .content_len = 2, .history = h, .nhistory = 2, .model = "m",
                          .max_tokens = 10};
    assert_encodes(encode_native, &req,
                   "{\"type\":\"message\",\"id\":\"42\",\"session\":\"s\",\"timestamp\":1000,"
                   "\"content\":\"hi\",\"history\":[{\"role\":\"user\",\"content\":\"q \\\"1\\\"\"},"
                   "{\"role\":\"assistant\",\"content\":\"a\"}],\"model\":\"m\",\"max_tokens\":10}");
    assert_encodes(pl_anthropic_encode, &req,
                   "{\"model\":\"m\",\"max_tokens\":10,\"stream\":true,\"messages\":[{\"role\":"
                   "\"user\",\"content\":\"q \\\"1\\\"\"},{\"role\":\"assistant\",\"content\":\"a\"},"
                   "{\"role\":\"user\",\"content\":\"hi\"}]}");
    req.params = &p;
    assert_encodes(pl_anthropic_encode, &req,
                   "{\"model\":\"m\",\"max_tokens\":10,\"stream\":true,\"system\":\"be brief\","
                   "\"messages\":[{\"role\":\"user\",\"content\":\"q \\\"1\\\"\"},{\"role\":"
                   "\"assistant\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"hi\"}]}");
    assert_encodes(pl_openai_encode, &req,
                   "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                   "\"max_completion_tokens\":10,\"messages\":[{\"role\":\"system\",\"content\":"
                   "\"be brief\"},{\"role\":\"user\",\"content\":\"q \\\"1\\\"\"},{\"role\":"
                   "\"assistant\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"hi\"}]}");
}

/* Numbers: the shortest text that reads back, '.' in any locale. */
static void test_doubles(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *text;
    } cases[] = {{0.7, "0.7"}, {1.0, "1"}, {0.25, "0.25"}, {1e-05, "1e-05"}, {0, "0"},
                 {0.1 + 0.2, "0.30000000000000004"}};
    const char *locales[] = {"C", "de_DE.UTF-8", "fr_FR.UTF-8"};
    for (size_t l = 0; l < sizeof(locales) / sizeof(locales[0]); l++) {
        if (!setlocale(LC_NUMERIC, locales[l]))
            continue; /* not installed here */
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            pl_buf b = PL_BUF_INIT;
            assert_int_equal(pl_body_append_double(&b, cases[i].v), 0);
            assert_string_equal(b.data, cases[i].text);
            pl_buf_free(&b);
        }
    }
    setlocale(LC_NUMERIC, "C");
}

/* A failed encode leaves the buffer as it was (an extra_body that is not
 * an object cannot be merged). */
static void test_failure_leaves_buffer(void **state)
{
    (void)state;
    pl_request_params p = {.extra_body = "[1]"};
    pl_message_req req = {.content = "x", .content_len = 1, .params = &p, .session = "s"};
    encoder *encs[] = {encode_native, pl_anthropic_encode, pl_openai_encode};
    for (size_t i = 0; i < 3; i++) {
        pl_buf b = PL_BUF_INIT;
        assert_int_equal(pl_buf_append_str(&b, "kept"), 0);
        assert_int_equal(encs[i](&b, &req), -1);
        assert_string_equal(b.data, "kept");
        pl_buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_native_blocks_and_params),
        cmocka_unit_test(test_anthropic_blocks_params_caching),
        cmocka_unit_test(test_anthropic_caching_string_content),
        cmocka_unit_test(test_openai_blocks_and_params),
        cmocka_unit_test(test_openai_tool_choice),
        cmocka_unit_test(test_openai_assistant_without_text),
        cmocka_unit_test(test_plain_text_unchanged),
        cmocka_unit_test(test_doubles),
        cmocka_unit_test(test_failure_leaves_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
