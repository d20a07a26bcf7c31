/*
 * Blocks, tools and thinking end to end, on the three paths, against the
 * reference server's echo model (docs/protocol.md section 10): exact texts,
 * tool calls as one event each, thinking with its signature, stop
 * sequences, and a history that carries all of it to the next turn.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixtures.h"
#include "parley.h"
#include "recorder.h"
#include "refserver.h"
#include "refserver_http.h"

#define TEST_KEY "blocks-key"

static const char *const paths[] = {"native", "anthropic", "openai"};
#define NPATHS (sizeof(paths) / sizeof(paths[0]))

#define WEATHER_TOOLS                                                                     \
    "[{\"name\":\"get_weather\",\"description\":\"The weather in a city\","             \
    "\"input_schema\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}]"

static int setup(void **state)
{
    (void)state;
    recorder_reset();
    setenv("PARLEY_API_KEY", TEST_KEY, 1);
    setenv("PARLEY_LOG", "error", 0);
    return 0;
}

static uint64_t send_turn(parley_client_t *c, parley_session_t *s, parley_turn_t *t)
{
    uint64_t id;
    assert_int_equal(parley_send_turn(s, t, NULL, &id, -1), PARLEY_OK);
    parley_turn_destroy(t);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    assert_int_equal(recorder_get(id).terminals, 1);
    return id;
}

static const char *call_id(const char *path, int n)
{
    static char id[32];
    snprintf(id, sizeof(id), strcmp(path, "openai") ? "toolu_echo_%d" : "call_echo_%d", n);
    return id;
}

/* Call, result, answer: the acceptance conversation, on every path. */
static void test_tool_conversation(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 5); /* input cut in pieces */
    for (size_t p = 0; p < NPATHS; p++) {
        parley_client_t *c = fixture_client_dialect(srv, paths[p], "tools", WEATHER_TOOLS, NULL);
        parley_session_t *s = parley_session_open(c, "weather", NULL, 0);
        uint64_t call = fixture_turn(c, s, "call get_weather {\"city\": \"Paris\"}", NULL);
        recorder_entry r = recorder_get(call);
        assert_int_equal(r.terminal, PARLEY_EVENT_DONE);
        assert_string_equal(r.stop_reason, "tool_use");
        assert_string_equal(r.done, "[turn 1] calling get_weather");
        assert_int_equal(r.tool_calls, 1);
        char want[160];
        snprintf(want, sizeof(want), "%s get_weather {\"city\":\"Paris\"}\n", call_id(paths[p], 1));
        assert_string_equal(r.tools, want);
        assert_int_equal(r.seq_errors, 0);

        /* Anything but the answer is refused before it leaves. */
        uint64_t wrong;
        assert_int_equal(parley_send(s, "what now?", &wrong), PARLEY_OK);
        assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
        assert_int_equal(recorder_get(wrong).err, PARLEY_ERR_INVALID_ARG);
        assert_non_null(strstr(recorder_get(wrong).err_msg, "get_weather"));

        parley_turn_t *t = parley_turn_new();
        assert_int_equal(parley_turn_add_tool_result(t, call_id(paths[p], 1), "18 C", 0),
                         PARLEY_OK);
        uint64_t answer = send_turn(c, s, t);
        r = recorder_get(answer);
        assert_int_equal(r.terminal, PARLEY_EVENT_DONE);
        assert_string_equal(r.done, "[turn 2] get_weather returned: 18 C");
        assert_string_equal(r.stop_reason, "end_turn");

        /* The history carries the call and its result: export, import, go on. */
        char *json, err[300];
        size_t len;
        assert_int_equal(parley_session_export(s, &json, &len, 10000), PARLEY_OK);
        uint64_t unbroken = fixture_turn(c, s, "thanks", NULL);
        parley_session_t *moved =
            parley_session_open_with_history(c, "weather-moved", json, len, err, sizeof(err));
        assert_non_null(moved);
        uint64_t after = fixture_turn(c, moved, "thanks", NULL);
        assert_string_equal(recorder_get(after).done, "[turn 3] thanks");
        assert_string_equal(recorder_get(unbroken).done, "[turn 3] thanks");
        parley_free(json);
        parley_client_destroy(c);
    }
    pl_refserver_stop(srv);
}

/* A failed tool and two results in one turn. */
static void test_tool_results_joined(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 0);
    for (size_t p = 0; p < NPATHS; p++) {
        parley_client_t *c = fixture_client_dialect(srv, paths[p], "tools", WEATHER_TOOLS, NULL);
        parley_session_t *s = parley_session_open(c, "failing", NULL, 0);
        fixture_turn(c, s, "call get_weather {\"city\":\"Atlantis\"}", NULL);
        parley_turn_t *t = parley_turn_new();
        assert_int_equal(parley_turn_add_tool_result(t, call_id(paths[p], 1), "no such city", 1),
                         PARLEY_OK);
        uint64_t id = send_turn(c, s, t);
        /* OpenAI's tool messages have no error flag: the text says it
         * (docs/dialects.md), and the echo model reads it as a result. */
        assert_string_equal(recorder_get(id).done,
                            strcmp(paths[p], "openai")
                                ? "[turn 2] get_weather failed: no such city"
                                : "[turn 2] get_weather returned: error: no such city");
        parley_client_destroy(c);
    }
    pl_refserver_stop(srv);
}

/* Text and images in one turn become the echo's C. */
static void test_image_blocks(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 0);
    for (size_t p = 0; p < NPATHS; p++) {
        parley_client_t *c = fixture_client_dialect(srv, paths[p], NULL);
        parley_session_t *s = parley_session_open(c, "pictures", NULL, 0);
        parley_turn_t *t = parley_turn_new();
        assert_int_equal(parley_turn_add_text(t, "look"), PARLEY_OK);
        assert_int_equal(parley_turn_add_image(t, "image/png", "\x89PNG\r\n", 6), PARLEY_OK);
        assert_int_equal(parley_turn_add_image_url(t, "https://example.com/cat.jpg"), PARLEY_OK);
        uint64_t id = send_turn(c, s, t);
        assert_string_equal(recorder_get(id).done,
                            "[turn 1] look <image image/png 6 bytes> <image url>");
        /* The next turn carries the blocks in its history. */
        uint64_t next = fixture_turn(c, s, "and?", NULL);
        assert_string_equal(recorder_get(next).done, "[turn 2] and?");
        parley_client_destroy(c);
    }
    pl_refserver_stop(srv);
}

/* Thinking, a tool call and a stop sequence in one request: the stop cuts
 * the text and the call; the thinking block stays whole and signed. */
static void test_thinking_tool_and_stop(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 8);
    const char *paths_with_thinking[] = {"native", "anthropic"};
    for (size_t p = 0; p < 2; p++) {
        const char *path = paths_with_thinking[p];
        parley_client_t *c = fixture_client_dialect(srv, path, "tools", WEATHER_TOOLS,
                                                    "thinking.budget", "1024", NULL);
        parley_session_t *s = parley_session_open(c, "thinker", NULL, 0);
        const char *ask = "call get_weather {\"city\":\"Oslo\"}";
        uint64_t id = fixture_turn(c, s, ask, NULL);
        recorder_entry r = recorder_get(id);
        char want[128];
        snprintf(want, sizeof(want), "thinking about: %s", ask);
        assert_string_equal(r.thinking, want);
        assert_string_equal(r.signature, "echo-sig-1");
        assert_true(r.thinking_pieces > 1);
        assert_string_equal(r.stop_reason, "tool_use");
        assert_int_equal(r.tool_calls, 1);
        assert_int_equal(r.seq_errors, 0);

        char err[256];
        assert_int_equal(parley_session_set(s, "stop.sequences", "[\"calling\"]", err,
                                            sizeof(err)),
                         PARLEY_OK);
        /* Answer the call first: the conversation must stay valid. */
        parley_turn_t *t = parley_turn_new();
        assert_int_equal(parley_turn_add_tool_result(t, "toolu_echo_1", "-3 C", 0), PARLEY_OK);
        send_turn(c, s, t);
        id = fixture_turn(c, s, ask, NULL);
        r = recorder_get(id);
        assert_string_equal(r.stop_reason, "stop_sequence");
        assert_string_equal(r.stop_sequence, "calling");
        assert_string_equal(r.done, "[turn 3] ");
        assert_int_equal(r.tool_calls, 0);
        snprintf(want, sizeof(want), "thinking about: %s", ask);
        assert_string_equal(r.thinking, want);
        assert_string_equal(r.signature, "echo-sig-3");
        /* That reply (signed thinking, text) is a valid history entry. */
        uint64_t next = fixture_turn(c, s, "ok", NULL);
        assert_int_equal(recorder_get(next).terminal, PARLEY_EVENT_DONE);
        parley_client_destroy(c);
    }
    pl_refserver_stop(srv);
}

/* Text pieces say which block they belong to: after a thinking block, 1. */
static void test_text_block_index(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 4);
    parley_client_t *c = fixture_client_dialect(srv, "anthropic", "thinking.budget", "1024", NULL);
    parley_session_t *s = parley_session_open(c, "indexed", NULL, 0);
    uint64_t id = fixture_turn(c, s, "hi", NULL);
    recorder_entry r = recorder_get(id);
    assert_string_equal(r.done, "[turn 1] hi");
    assert_string_equal(r.text_blocks, "111"); /* "[turn 1] hi" in 3 pieces, block 1 */
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

/* A 3 s thinking phase under a 1 s stall timeout: thinking pieces keep
 * coming, so the watchdog never fires and the request is never sent twice
 * (a second generation costs the user money). */
static void test_long_thinking_is_no_stall(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 100, 1); /* a byte every 100 ms */
    const char *paths_with_thinking[] = {"native", "anthropic"};
    for (size_t p = 0; p < 2; p++) {
        parley_client_t *c = fixture_client_dialect(srv, paths_with_thinking[p], "thinking.budget",
                                                    "1024", "stall.timeout.ms", "1000", NULL);
        parley_session_t *s = parley_session_open(c, "slow-thinker", NULL, 0);
        int64_t start = fixture_now_ms();
        uint64_t id = fixture_turn(c, s, "ponder this", NULL);
        recorder_entry r = recorder_get(id);
        assert_int_equal(r.terminal, PARLEY_EVENT_DONE);
        assert_string_equal(r.thinking, "thinking about: ponder this");
        assert_string_equal(r.done, "[turn 1] ponder this");
        assert_true(fixture_now_ms() - start >= 2700); /* the thinking took its time */
        parley_stats_t st;
        parley_stats_get(c, &st);
        assert_int_equal(st.stalls, 0);
        assert_int_equal(st.retries, 0);
        parley_client_destroy(c);
    }
    pl_refserver_stop(srv);
}

/* extra.headers go with every request (here anthropic-beta, which the
 * reference server records), session over client. */
static void test_extra_headers_sent(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 0);
    parley_client_t *c = fixture_client_dialect(srv, "anthropic", "extra.headers",
                                                "{\"anthropic-beta\":\"client-wide\"}", NULL);
    parley_session_t *s = parley_session_open(c, "headers", NULL, 0);
    char beta[64];
    fixture_turn(c, s, "one", NULL);
    pl_refserver_http_last_beta(pl_refserver_http_of(srv), beta, sizeof(beta));
    assert_string_equal(beta, "client-wide");
    char err[256];
    assert_int_equal(parley_session_set(s, "extra.headers",
                                        "{\"anthropic-beta\":\"tools-2024-05-16\"}", err,
                                        sizeof(err)),
                     PARLEY_OK);
    uint64_t id = fixture_turn(c, s, "two", NULL);
    assert_string_equal(recorder_get(id).done, "[turn 2] two");
    pl_refserver_http_last_beta(pl_refserver_http_of(srv), beta, sizeof(beta));
    assert_string_equal(beta, "tools-2024-05-16");
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

/* The request options reach the server as each API spells them. */
static void test_parameters_pass_through(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 0);
    static const struct {
        const char *path, *expect[6];
    } cases[] = {
        {"native",
         {"\"temperature\":0.25", "\"top_p\":0.5", "\"top_k\":7", "\"stop_sequences\":[\"ZZ\"]",
          "\"metadata\":{\"user_id\":\"u-1\"}", "\"x_extra\":1"}},
        {"anthropic",
         {"\"temperature\":0.25", "\"top_p\":0.5", "\"top_k\":7", "\"stop_sequences\":[\"ZZ\"]",
          "\"metadata\":{\"user_id\":\"u-1\"}", "\"x_extra\":1"}},
        {"openai",
         {"\"temperature\":0.25", "\"top_p\":0.5", "\"stop\":[\"ZZ\"]",
          "\"metadata\":{\"user_id\":\"u-1\"}", "\"x_extra\":1", "\"max_completion_tokens\":9"}},
    };
    for (size_t p = 0; p < sizeof(cases) / sizeof(cases[0]); p++) {
        parley_client_t *c = fixture_client_dialect(srv, cases[p].path, "temperature", "0.25",
                                                    "top.p", "0.5", NULL);
        parley_session_t *s = parley_session_open(c, "params", NULL, 0);
        char err[256];
        if (strcmp(cases[p].path, "openai"))
            assert_int_equal(parley_session_set(s, "top.k", "7", err, sizeof(err)), PARLEY_OK);
        assert_int_equal(parley_session_set(s, "stop.sequences", "[\"ZZ\"]", err, sizeof(err)),
                         PARLEY_OK);
        assert_int_equal(parley_session_set(s, "metadata", "{\"user_id\":\"u-1\"}", err,
                                            sizeof(err)),
                         PARLEY_OK);
        assert_int_equal(parley_session_set(s, "extra.body", "{\"x_extra\":1}", err, sizeof(err)),
                         PARLEY_OK);
        assert_int_equal(parley_session_set(s, "max.tokens", "9", err, sizeof(err)), PARLEY_OK);
        uint64_t id = fixture_turn(c, s, "hi", NULL);
        assert_int_equal(recorder_get(id).terminal, PARLEY_EVENT_DONE);
        char body[4096];
        assert_true(pl_refserver_last_body(srv, body, sizeof(body)) > 0);
        for (size_t i = 0; i < 6 && cases[p].expect[i]; i++)
            if (!strstr(body, cases[p].expect[i]))
                fail_msg("%s: no %s in %s", cases[p].path, cases[p].expect[i], body);
        parley_client_destroy(c);
    }
    pl_refserver_stop(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_tool_conversation, setup),
        cmocka_unit_test_setup(test_tool_results_joined, setup),
        cmocka_unit_test_setup(test_image_blocks, setup),
        cmocka_unit_test_setup(test_thinking_tool_and_stop, setup),
        cmocka_unit_test_setup(test_text_block_index, setup),
        cmocka_unit_test_setup(test_long_thinking_is_no_stall, setup),
        cmocka_unit_test_setup(test_parameters_pass_through, setup),
        cmocka_unit_test_setup(test_extra_headers_sent, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
