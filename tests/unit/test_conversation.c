/*
 * The parts of a rich conversation that need no server: turns built from
 * blocks, the request options' parser, a reply assembled from its pieces,
 * and the history's export, import and trim.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base64.h"
#include "blocks.h"
#include "history.h"
#include "reply_assembly.h"
#include "request_options.h"
#include "turn.h"

/* ---- turns ---- */

static char *content_of(parley_turn_t *t, bool *blocks)
{
    char *content;
    size_t len;
    assert_int_equal(pl_turn_content(t, &content, &len, blocks), 0);
    assert_int_equal(strlen(content), len);
    return content;
}

static void test_turn_of_one_text_is_a_string(void **state)
{
    (void)state;
    parley_turn_t *t = parley_turn_new();
    assert_int_equal(parley_turn_add_text(t, "hello \"you\""), PARLEY_OK);
    bool blocks;
    char *c = content_of(t, &blocks);
    assert_false(blocks);
    assert_string_equal(c, "hello \"you\"");
    free(c);
    parley_turn_destroy(t);
}

static void test_turn_of_blocks(void **state)
{
    (void)state;
    parley_turn_t *t = parley_turn_new();
    assert_int_equal(parley_turn_add_tool_result(t, "toolu_1", "18 C", 0), PARLEY_OK);
    assert_int_equal(parley_turn_add_tool_result(t, "toolu_2", "no such city", 1), PARLEY_OK);
    assert_int_equal(parley_turn_add_text(t, "and?"), PARLEY_OK);
    assert_int_equal(parley_turn_add_image(t, "image/png", "abcd", 4), PARLEY_OK);
    assert_int_equal(parley_turn_add_image_url(t, "https://example.com/a.png"), PARLEY_OK);
    bool blocks;
    char *c = content_of(t, &blocks);
    assert_true(blocks);
    assert_string_equal(
        c, "[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\",\"content\":\"18 C\"},"
           "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_2\",\"content\":\"no such city\","
           "\"is_error\":true},"
           "{\"type\":\"text\",\"text\":\"and?\"},"
           "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\","
           "\"data\":\"YWJjZA==\"}},"
           "{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":\"https://example.com/a.png\"}}]");
    free(c);
    parley_turn_destroy(t);
}

static void test_turn_refuses_bad_blocks(void **state)
{
    (void)state;
    parley_turn_t *t = parley_turn_new();
    char err[256];
    assert_int_equal(parley_turn_add_text(t, ""), PARLEY_ERR_INVALID_ARG);
    assert_int_equal(parley_turn_add_text(t, "\xff"), PARLEY_ERR_INVALID_ARG);
    assert_int_equal(parley_turn_add_image(t, "image/bmp", "x", 1), PARLEY_ERR_INVALID_ARG);
    assert_int_equal(parley_turn_add_image(t, "image/png", "x", 0), PARLEY_ERR_INVALID_ARG);
    assert_int_equal(parley_turn_add_image_url(t, "ftp://x"), PARLEY_ERR_INVALID_ARG);
    assert_int_equal(parley_turn_add_tool_result(t, "", "x", 0), PARLEY_ERR_INVALID_ARG);
    assert_int_equal(parley_turn_add_json(t, "{\"type\":\"text\",\"text\":\"\"}", err, sizeof(err)),
                     PARLEY_ERR_INVALID_ARG);
    assert_non_null(strstr(err, "non-empty"));
    assert_int_equal(parley_turn_add_json(t,
                                          "{\"type\":\"tool_use\",\"id\":\"a\",\"name\":\"b\","
                                          "\"input\":{}}",
                                          err, sizeof(err)),
                     PARLEY_ERR_INVALID_ARG);
    assert_non_null(strstr(err, "user message cannot hold"));
    assert_int_equal(parley_turn_add_json(t,
                                          "[{\"type\":\"text\",\"text\":\"ok\"},{\"type\":\"image\","
                                          "\"source\":{\"type\":\"base64\",\"media_type\":"
                                          "\"image/png\",\"data\":\"not base64!\"}}]",
                                          err, sizeof(err)),
                     PARLEY_ERR_INVALID_ARG);
    assert_non_null(strstr(err, "block 1"));
    assert_int_equal(parley_turn_add_json(t, "[1,", err, sizeof(err)), PARLEY_ERR_INVALID_ARG);
    /* Nothing of the refused calls was added. */
    assert_int_equal(t->nblocks, 0);
    assert_int_equal(parley_turn_add_json(t,
                                          "[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\","
                                          "\"content\":[{\"type\":\"text\",\"text\":\"r\"}]}]",
                                          err, sizeof(err)),
                     PARLEY_OK);
    assert_int_equal(t->nblocks, 1);
    parley_turn_destroy(t);
}

static void test_base64(void **state)
{
    (void)state;
    pl_buf b = PL_BUF_INIT;
    assert_int_equal(pl_base64_encode(&b, "", 0), 0);
    assert_int_equal(pl_base64_encode(&b, "f", 1), 0);
    assert_int_equal(pl_base64_encode(&b, "fo", 2), 0);
    assert_int_equal(pl_base64_encode(&b, "foo", 3), 0);
    assert_string_equal(b.data, "Zg==Zm8=Zm9v");
    size_t n;
    assert_true(pl_base64_valid("Zm8=", 4, &n));
    assert_int_equal(n, 2);
    assert_false(pl_base64_valid("Zm8", 3, NULL));
    assert_false(pl_base64_valid("Z=8=", 4, NULL));
    assert_false(pl_base64_valid("Zm!v", 4, NULL));
    pl_buf_free(&b);
}

/* ---- request options ---- */

static parley_err_t parse(pl_request_option opt, const char *value, const pl_dialect *d,
                          pl_option_value *v, char *err)
{
    return pl_request_option_parse(opt, value, d, v, err, 256);
}

static void test_options_parse_and_refuse(void **state)
{
    (void)state;
    pl_option_value v;
    char err[256];
    pl_dialect anthropic = PL_DIALECT_ANTHROPIC, openai = PL_DIALECT_OPENAI,
               native = PL_DIALECT_NATIVE;
    assert_int_equal(pl_request_option_find("top_p"), PL_RO_TOP_P);
    assert_int_equal(pl_request_option_find("thinking-budget"), PL_RO_THINKING_BUDGET);
    assert_int_equal(pl_request_option_find("topp"), -1);

    assert_int_equal(parse(PL_RO_TEMPERATURE, "0.5", &anthropic, &v, err), PARLEY_OK);
    assert_true(v.number == 0.5);
    assert_int_equal(parse(PL_RO_TEMPERATURE, "1.5", &anthropic, &v, err), PARLEY_ERR_INVALID_VALUE);
    assert_non_null(strstr(err, "temperature: expected a number from 0 to 1"));
    assert_int_equal(parse(PL_RO_TEMPERATURE, "1.5", &openai, &v, err), PARLEY_OK);
    assert_int_equal(parse(PL_RO_TEMPERATURE, "warm", NULL, &v, err), PARLEY_ERR_INVALID_VALUE);
    assert_int_equal(parse(PL_RO_TOP_K, "40", &openai, &v, err), PARLEY_ERR_INVALID_VALUE);
    assert_int_equal(parse(PL_RO_THINKING_BUDGET, "100", &anthropic, &v, err),
                     PARLEY_ERR_INVALID_VALUE);
    assert_non_null(strstr(err, "1024"));
    assert_int_equal(parse(PL_RO_THINKING_BUDGET, "100", &native, &v, err), PARLEY_OK);
    assert_int_equal(v.count, 100);
    assert_int_equal(parse(PL_RO_THINKING_BUDGET, "2000", &openai, &v, err),
                     PARLEY_ERR_INVALID_VALUE);

    assert_int_equal(parse(PL_RO_STOP_SEQUENCES, "[\"a\",\"b\",\"c\",\"d\",\"e\"]", &openai, &v,
                           err),
                     PARLEY_ERR_INVALID_VALUE);
    assert_int_equal(parse(PL_RO_STOP_SEQUENCES, "[\" \"]", NULL, &v, err),
                     PARLEY_ERR_INVALID_VALUE);
    assert_int_equal(parse(PL_RO_STOP_SEQUENCES, "[ \"END\" , \"STOP\" ]", NULL, &v, err),
                     PARLEY_OK);
    assert_string_equal(v.text, "[\"END\",\"STOP\"]");
    free(v.text);

    const char *tools = "[{\"name\":\"get_weather\",\"description\":\"d\",\"input_schema\":"
                        "{\"type\":\"object\"}}]";
    assert_int_equal(parse(PL_RO_TOOLS, tools, NULL, &v, err), PARLEY_OK);
    assert_string_equal(v.text, tools);
    free(v.text);
    assert_int_equal(parse(PL_RO_TOOLS, "[{\"name\":\"get weather\",\"input_schema\":{}}]", NULL,
                           &v, err),
                     PARLEY_ERR_INVALID_VALUE);
    assert_int_equal(parse(PL_RO_TOOLS, "[{\"name\":\"x\"}]", NULL, &v, err),
                     PARLEY_ERR_INVALID_VALUE);
    assert_non_null(strstr(err, "input_schema"));
    assert_int_equal(parse(PL_RO_TOOLS, "[{\"name\":\"x\",\"input_schema\":{}},"
                                        "{\"name\":\"x\",\"input_schema\":{}}]",
                           NULL, &v, err),
                     PARLEY_ERR_INVALID_VALUE);
    assert_int_equal(parse(PL_RO_TOOLS, "{\"name\":\"x\"", NULL, &v, err),
                     PARLEY_ERR_INVALID_VALUE);
    assert_non_null(strstr(err, "not valid JSON"));

    assert_int_equal(parse(PL_RO_TOOL_CHOICE, "any", NULL, &v, err), PARLEY_OK);
    assert_string_equal(v.text, "{\"type\":\"any\"}");
    free(v.text);
    assert_int_equal(parse(PL_RO_TOOL_CHOICE, "{\"type\":\"tool\"}", NULL, &v, err),
                     PARLEY_ERR_INVALID_VALUE);

    assert_int_equal(parse(PL_RO_EXTRA_HEADERS, "{\"anthropic-beta\":\"x\"}", &native, &v, err),
                     PARLEY_ERR_INVALID_VALUE);
    assert_int_equal(parse(PL_RO_EXTRA_HEADERS, "{\"x-api-key\":\"k\"}", &anthropic, &v, err),
                     PARLEY_ERR_INVALID_VALUE);
    assert_int_equal(parse(PL_RO_EXTRA_HEADERS, "{\"a\":\"b\\nc\"}", &anthropic, &v, err),
                     PARLEY_ERR_INVALID_VALUE);
    assert_int_equal(parse(PL_RO_EXTRA_HEADERS, "{\"anthropic-beta\":\"x\",\"api-key\":\"y\"}",
                           &anthropic, &v, err),
                     PARLEY_OK);
    assert_string_equal(v.text, "anthropic-beta: x\napi-key: y");
    free(v.text);

    assert_int_equal(parse(PL_RO_METADATA, "[]", NULL, &v, err), PARLEY_ERR_INVALID_VALUE);
    assert_int_equal(parse(PL_RO_PROMPT_CACHING, "maybe", NULL, &v, err),
                     PARLEY_ERR_INVALID_VALUE);
    assert_int_equal(parse(PL_RO_METADATA, "", NULL, &v, err), PARLEY_OK);
    assert_true(v.unset);
}

static void test_options_session_over_client(void **state)
{
    (void)state;
    pl_request_options client = {0}, session = {0};
    pl_option_value v;
    char err[256];
    assert_int_equal(parse(PL_RO_TEMPERATURE, "0.2", NULL, &v, err), PARLEY_OK);
    pl_request_options_apply(&client, PL_RO_TEMPERATURE, &v);
    assert_int_equal(parse(PL_RO_METADATA, "{\"user_id\":\"u1\"}", NULL, &v, err), PARLEY_OK);
    pl_request_options_apply(&client, PL_RO_METADATA, &v);
    assert_int_equal(parse(PL_RO_TEMPERATURE, "0.7", NULL, &v, err), PARLEY_OK);
    pl_request_options_apply(&session, PL_RO_TEMPERATURE, &v);

    pl_request_params p = {.system = "sys"};
    pl_request_params_fill(&p, &session, &client);
    assert_string_equal(p.system, "sys");
    assert_true(p.has_temperature && p.temperature == 0.7);
    assert_string_equal(p.metadata, "{\"user_id\":\"u1\"}");
    assert_false(p.has_top_p);
    assert_null(p.tools);

    /* An empty value returns to the client's. */
    assert_int_equal(parse(PL_RO_TEMPERATURE, "", NULL, &v, err), PARLEY_OK);
    pl_request_options_apply(&session, PL_RO_TEMPERATURE, &v);
    pl_request_params_fill(&p, &session, &client);
    assert_true(p.has_temperature && p.temperature == 0.2);
    pl_request_options_free(&session);
    pl_request_options_free(&client);
}

/* ---- a reply from its pieces ---- */

static void add(pl_reply *r, pl_piece_kind kind, uint32_t block, const char *text,
                const char *signature)
{
    pl_piece p = {.kind = kind, .block = block, .text = text, .len = strlen(text),
                  .signature = signature};
    if (kind == PL_PIECE_TOOL_USE) {
        p.tool_id = "toolu_echo_1";
        p.tool_name = "get_weather";
    }
    pl_reply_add(r, &p);
}

static void test_reply_text_only_is_a_string(void **state)
{
    (void)state;
    pl_reply r = {0};
    add(&r, PL_PIECE_TEXT, 0, "[turn 1] ", NULL);
    add(&r, PL_PIECE_TEXT, 0, "hello", NULL);
    size_t len;
    assert_string_equal(pl_reply_text(&r, &len), "[turn 1] hello");
    bool blocks;
    char *h = pl_reply_take_history(&r, &blocks, &len);
    assert_false(blocks);
    assert_string_equal(h, "[turn 1] hello");
    free(h);
    pl_reply_free(&r);
}

static void test_reply_blocks_kept_whole(void **state)
{
    (void)state;
    pl_reply r = {0};
    add(&r, PL_PIECE_THINKING, 0, "thinking about: ", NULL);
    add(&r, PL_PIECE_THINKING, 0, "x", "echo-sig-1");
    add(&r, PL_PIECE_TEXT, 1, "[turn 1] calling ", NULL);
    add(&r, PL_PIECE_TEXT, 1, "get_weather", NULL);
    add(&r, PL_PIECE_TOOL_USE, 2, "{\"city\":\"Paris\"}", NULL);
    size_t len;
    assert_string_equal(pl_reply_text(&r, &len), "[turn 1] calling get_weather");
    bool blocks;
    char *h = pl_reply_take_history(&r, &blocks, &len);
    assert_true(blocks);
    assert_string_equal(h, "[{\"type\":\"thinking\",\"thinking\":\"thinking about: x\","
                           "\"signature\":\"echo-sig-1\"},"
                           "{\"type\":\"text\",\"text\":\"[turn 1] calling get_weather\"},"
                           "{\"type\":\"tool_use\",\"id\":\"toolu_echo_1\",\"name\":"
                           "\"get_weather\",\"input\":{\"city\":\"Paris\"}}]");
    free(h);
    pl_reply_free(&r);
}

static void test_reply_drops_what_vendors_refuse(void **state)
{
    (void)state;
    pl_reply r = {0};
    bool blocks;
    size_t len;
    assert_null(pl_reply_take_history(&r, &blocks, &len)); /* nothing at all */
    add(&r, PL_PIECE_THINKING, 0, "cut short", NULL);       /* no signature */
    assert_null(pl_reply_take_history(&r, &blocks, &len));
    add(&r, PL_PIECE_TEXT, 1, "two", NULL);
    add(&r, PL_PIECE_TEXT, 3, "texts", NULL);
    assert_string_equal(pl_reply_text(&r, &len), "twotexts");
    char *h = pl_reply_take_history(&r, &blocks, &len);
    assert_true(blocks);
    assert_string_equal(h, "[{\"type\":\"text\",\"text\":\"two\"},{\"type\":\"text\",\"text\":"
                           "\"texts\"}]");
    free(h);
    pl_reply_free(&r);
}

/* ---- history ---- */

static void append(pl_history *h, bool assistant, bool blocks, const char *content)
{
    pl_history_append(h, assistant, blocks, strdup(content), strlen(content));
}

#define CALL "[{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"f\",\"input\":{}}]"
#define RESULT "[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\",\"content\":\"r\"}]"

static void test_history_export_import(void **state)
{
    (void)state;
    pl_history h = {0};
    append(&h, false, false, "call f {}");
    append(&h, true, true, CALL);
    append(&h, false, true, RESULT);
    append(&h, true, false, "[turn 2] f returned: r");
    pl_buf out = PL_BUF_INIT;
    assert_int_equal(pl_history_export(&h, &out), 0);
    const char *want = "[{\"role\":\"user\",\"content\":\"call f {}\"},"
                       "{\"role\":\"assistant\",\"content\":" CALL "},"
                       "{\"role\":\"user\",\"content\":" RESULT "},"
                       "{\"role\":\"assistant\",\"content\":\"[turn 2] f returned: r\"}]";
    assert_string_equal(out.data, want);

    pl_history back = {0};
    char err[300];
    assert_int_equal(pl_history_import(&back, out.data, out.len, err, sizeof(err)), 0);
    assert_int_equal(back.n, 4);
    pl_buf again = PL_BUF_INIT;
    assert_int_equal(pl_history_export(&back, &again), 0);
    assert_string_equal(again.data, want);
    assert_true(back.turns[1].blocks && !back.turns[3].blocks);
    pl_buf_free(&again);
    pl_buf_free(&out);
    pl_history_free(&back);
    pl_history_free(&h);
}

static void expect_refused(const char *json, const char *why)
{
    pl_history h = {0};
    char err[300] = "";
    assert_int_equal(pl_history_import(&h, json, strlen(json), err, sizeof(err)), -1);
    if (!strstr(err, why))
        fail_msg("\"%s\" does not say \"%s\"", err, why);
    assert_int_equal(h.n, 0);
}

static void test_history_import_refuses(void **state)
{
    (void)state;
    expect_refused("{}", "JSON array");
    expect_refused("[{\"role\":\"user\",\"content\":\"a\"}]", "end with an assistant");
    expect_refused("[{\"role\":\"assistant\",\"content\":\"a\"},{\"role\":\"user\",\"content\":"
                   "\"b\"}]",
                   "message 0: the role must be \"user\"");
    expect_refused("[{\"role\":\"user\",\"content\":\"\"},{\"role\":\"assistant\",\"content\":"
                   "\"b\"}]",
                   "message 0: its content is empty");
    expect_refused("[{\"role\":\"user\",\"content\":[]},{\"role\":\"assistant\",\"content\":"
                   "\"b\"}]",
                   "its content is empty");
    expect_refused("[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":"
                   "[{\"type\":\"thinking\",\"thinking\":\"t\"}]}]",
                   "signature");
    expect_refused("[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":" CALL
                   "},{\"role\":\"user\",\"content\":\"b\"},{\"role\":\"assistant\","
                   "\"content\":\"c\"}]",
                   "message 2: the reply before it called f (t1)");
    expect_refused("[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":"
                   "\"b\"}] x",
                   "more text after it");
}

static void test_history_trim(void **state)
{
    (void)state;
    pl_history h = {0};
    append(&h, false, false, "one");
    append(&h, true, false, "r1");
    append(&h, false, false, "call f {}");
    append(&h, true, true, CALL);
    append(&h, false, true, RESULT);
    append(&h, true, false, "done");
    append(&h, false, false, "four");
    append(&h, true, false, "r4");
    /* Three turns asked: dropping the oldest is enough. */
    assert_int_equal(pl_history_trim(&h, 3, 0), 1);
    assert_int_equal(h.n, 6);
    assert_string_equal(h.turns[0].content, "call f {}");
    /* Two asked: the call's turn goes, and the turn answering it may not
     * lead the history, so it goes too. */
    assert_int_equal(pl_history_trim(&h, 2, 0), 2);
    assert_int_equal(h.n, 2);
    assert_string_equal(h.turns[0].content, "four");
    size_t bytes = 0;
    for (size_t i = 0; i < h.n; i++)
        bytes += h.turns[i].content_len;
    assert_int_equal(h.bytes, bytes);
    assert_int_equal(h.with_blocks, 0); /* the call and its result went */
    /* By bytes: a limit below the last turn still keeps nothing broken. */
    assert_int_equal(pl_history_trim(&h, 0, 3), 1);
    assert_int_equal(h.n, 0);
    assert_int_equal(h.bytes, 0);
    pl_history_free(&h);
}

static void test_answer_check(void **state)
{
    (void)state;
    char err[240];
    const char *call = CALL;
    assert_true(pl_blocks_answer_calls("text", 4, false, "x", 1, false, err, sizeof(err)));
    assert_false(pl_blocks_answer_calls(call, strlen(call), true, "x", 1, false, err,
                                        sizeof(err)));
    assert_non_null(strstr(err, "must start with its tool_result"));
    assert_true(pl_blocks_answer_calls(call, strlen(call), true, RESULT, strlen(RESULT), true, err,
                                       sizeof(err)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_turn_of_one_text_is_a_string),
        cmocka_unit_test(test_turn_of_blocks),
        cmocka_unit_test(test_turn_refuses_bad_blocks),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_options_parse_and_refuse),
        cmocka_unit_test(test_options_session_over_client),
        cmocka_unit_test(test_reply_text_only_is_a_string),
        cmocka_unit_test(test_reply_blocks_kept_whole),
        cmocka_unit_test(test_reply_drops_what_vendors_refuse),
        cmocka_unit_test(test_history_export_import),
        cmocka_unit_test(test_history_import_refuses),
        cmocka_unit_test(test_history_trim),
        cmocka_unit_test(test_answer_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
