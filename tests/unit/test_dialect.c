/* The HTTP dialects: request bodies, recorded streams and error bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <json.h>

#include "dialect.h"

/* Everything a stream produced, rendered for comparison. */
typedef struct outcome {
    char text[1024];
    int pieces;
    int done;
    char stop_reason[16];
    unsigned long long in, out;
    char error[256];
    int malformed;
} outcome;

typedef struct feed_ctx {
    pl_stream_state st;
    outcome *o;
} feed_ctx;

static int on_event(void *userdata, const pl_sse_event *ev)
{
    feed_ctx *ctx = userdata;
    pl_stream_result res;
    char err[128];
    if (pl_dialect_event(&ctx->st, ev, &res, err, sizeof(err)) != 0) {
        ctx->o->malformed++;
        return 0;
    }
    outcome *o = ctx->o;
    if (res.kind == PL_STREAM_TEXT) {
        strncat(o->text, res.text, res.text_len);
        o->pieces++;
    } else if (res.kind == PL_STREAM_DONE) {
        o->done++;
        snprintf(o->stop_reason, sizeof(o->stop_reason), "%s", res.stop_reason);
        o->in = res.input_tokens;
        o->out = res.output_tokens;
    } else if (res.kind == PL_STREAM_ERROR) {
        snprintf(o->error, sizeof(o->error), "%s|%s", res.error_type ? res.error_type : "",
                 res.error_message ? res.error_message : "");
    }
    return 0;
}

/* Feed a recorded stream in chunks of `chunk` bytes. */
static void run_stream(pl_dialect d, const char *stream, size_t chunk, outcome *o)
{
    memset(o, 0, sizeof(*o));
    feed_ctx ctx = {.o = o};
    pl_stream_state_init(&ctx.st, d);
    pl_sse_parser p;
    pl_sse_init(&p, 0);
    size_t len = strlen(stream);
    for (size_t i = 0; i < len; i += chunk)
        assert_int_equal(pl_sse_feed(&p, stream + i, len - i < chunk ? len - i : chunk,
                                     on_event, &ctx), 0);
    pl_sse_free(&p);
    pl_stream_state_free(&ctx.st);
}

static const char anthropic_stream[] =
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\","
    "\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\n\n"
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
    "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
    "event: ping\ndata: {\"type\":\"ping\"}\n\n"
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
    "\"delta\":{\"type\":\"text_delta\",\"text\":\"[turn 2] \"}}\n\n"
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
    "\"delta\":{\"type\":\"text_delta\",\"text\":\"ça va\"}}\n\n"
    "event: future_event\ndata: {\"type\":\"future_event\",\"x\":1}\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
    "\"max_tokens\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":2}}\n\n"
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

static const char openai_stream[] =
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"[turn 1] \"},"
    "\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},"
    "\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
    "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,"
    "\"total_tokens\":5}}\n\n"
    "data: [DONE]\n\n";

static void test_anthropic_stream(void **state)
{
    (void)state;
    for (size_t chunk = 1; chunk <= 64; chunk = chunk * 2 + 1) {
        outcome o;
        run_stream(PL_DIALECT_ANTHROPIC, anthropic_stream, chunk, &o);
        assert_string_equal(o.text, "[turn 2] ça va");
        assert_int_equal(o.pieces, 2);
        assert_int_equal(o.done, 1);
        assert_string_equal(o.stop_reason, "max_tokens");
        assert_int_equal(o.in, 7);
        assert_int_equal(o.out, 2);
        assert_int_equal(o.malformed, 0);
    }
}

static void test_openai_stream(void **state)
{
    (void)state;
    for (size_t chunk = 1; chunk <= 64; chunk = chunk * 2 + 1) {
        outcome o;
        run_stream(PL_DIALECT_OPENAI, openai_stream, chunk, &o);
        assert_string_equal(o.text, "[turn 1] hi");
        assert_int_equal(o.pieces, 2); /* the empty first delta is no piece */
        assert_int_equal(o.done, 1);
        assert_string_equal(o.stop_reason, "end_turn");
        assert_int_equal(o.in, 3);
        assert_int_equal(o.out, 2);
    }
}

static void test_errors_inside_streams(void **state)
{
    (void)state;
    outcome o;
    run_stream(PL_DIALECT_ANTHROPIC,
               "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
               "\"message\":\"Overloaded\"}}\n\n",
               5, &o);
    assert_string_equal(o.error, "overloaded_error|Overloaded");
    run_stream(PL_DIALECT_OPENAI,
               "data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\",\"param\":null,"
               "\"code\":null}}\n\n",
               7, &o);
    assert_string_equal(o.error, "server_error|boom");
    assert_int_equal(pl_dialect_map_error_type("overloaded_error"), PARLEY_ERR_OVERLOADED);
    assert_int_equal(pl_dialect_map_error_type("rate_limit_error"), PARLEY_ERR_RATE_LIMITED);
    assert_int_equal(pl_dialect_map_error_type("who_knows"), PARLEY_ERR_SERVER_INTERNAL);
}

static void test_malformed_events(void **state)
{
    (void)state;
    outcome o;
    run_stream(PL_DIALECT_ANTHROPIC,
               "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
               "\"delta\":{\"type\":\"text_delta\",\"text\":5}}\n\n"
               "data: not json\n\n"
               "data: {\"no\":\"type\"}\n\n"
               "data: [1,2]\n\n",
               3, &o);
    assert_int_equal(o.malformed, 4);
    assert_int_equal(o.pieces, 0);
    run_stream(PL_DIALECT_OPENAI, "data: {\"choices\":7}\n\ndata: {}\n\ndata: {\"choices\":[1]}\n\n",
               4, &o);
    assert_int_equal(o.malformed, 2);
    assert_int_equal(o.pieces, 0);
}

/* json-c passes raw bytes of a string through: a piece that is not UTF-8 is
 * a malformed event on both dialects, never a TEXT event (found by
 * fuzz_http). */
static void test_text_must_be_utf8(void **state)
{
    (void)state;
    outcome o;
    run_stream(PL_DIALECT_ANTHROPIC,
               "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
               "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"ok \x91\xe1\"}}\n\n",
               5, &o);
    assert_int_equal(o.malformed, 1);
    assert_int_equal(o.pieces, 0);
    run_stream(PL_DIALECT_OPENAI,
               "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok \xc3\x28\"},"
               "\"finish_reason\":null}]}\n\n",
               5, &o);
    assert_int_equal(o.malformed, 1);
    assert_int_equal(o.pieces, 0);
}

static void test_error_bodies_and_statuses(void **state)
{
    (void)state;
    char type[64], msg[128];
    const char *anth = "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\","
                       "\"message\":\"slow down\"},\"request_id\":\"req_1\"}";
    assert_int_equal(pl_dialect_error_body(anth, strlen(anth), type, sizeof(type), msg,
                                           sizeof(msg)), 0);
    assert_string_equal(type, "rate_limit_error");
    assert_string_equal(msg, "slow down");
    const char *oai = "{\"error\":{\"message\":\"bad key\",\"type\":null,\"param\":null,"
                      "\"code\":\"invalid_api_key\"}}";
    assert_int_equal(pl_dialect_error_body(oai, strlen(oai), type, sizeof(type), msg,
                                           sizeof(msg)), 0);
    assert_string_equal(type, "invalid_api_key");
    assert_string_equal(msg, "bad key");
    assert_int_equal(pl_dialect_error_body("<html>", 6, type, sizeof(type), msg, sizeof(msg)), -1);

    assert_int_equal(pl_dialect_map_status(400), PARLEY_ERR_INVALID_REQUEST);
    assert_int_equal(pl_dialect_map_status(401), PARLEY_ERR_UNAUTHORIZED);
    assert_int_equal(pl_dialect_map_status(403), PARLEY_ERR_FORBIDDEN);
    assert_int_equal(pl_dialect_map_status(404), PARLEY_ERR_NOT_FOUND);
    assert_int_equal(pl_dialect_map_status(413), PARLEY_ERR_SERVER_TOO_LARGE);
    assert_int_equal(pl_dialect_map_status(429), PARLEY_ERR_RATE_LIMITED);
    assert_int_equal(pl_dialect_map_status(500), PARLEY_ERR_SERVER_INTERNAL);
    assert_int_equal(pl_dialect_map_status(529), PARLEY_ERR_OVERLOADED);
}

/* The bodies are JSON with the vendors' fields, history in order. */
static void test_encoders(void **state)
{
    (void)state;
    pl_history_turn h[2] = {{.content = "first \"q\"", .content_len = 9},
                            {.assistant = true, .content = "[turn 1] first", .content_len = 14}};
    pl_request_params params = {.system = "be brief"};
    pl_message_req req = {.id = 42, .session = "s", .content = "second", .content_len = 6,
                          .history = h, .nhistory = 2, .params = &params};
    pl_buf b = PL_BUF_INIT;
    assert_int_equal(pl_dialect_encode(&b, PL_DIALECT_ANTHROPIC, &req), 0);
    json_object *o = json_tokener_parse(b.data);
    assert_non_null(o);
    json_object *v;
    assert_true(json_object_object_get_ex(o, "max_tokens", &v));
    assert_int_equal(json_object_get_int(v), 1024);
    assert_true(json_object_object_get_ex(o, "system", &v));
    assert_string_equal(json_object_get_string(v), "be brief");
    assert_true(json_object_object_get_ex(o, "stream", &v) && json_object_get_boolean(v));
    assert_true(json_object_object_get_ex(o, "messages", &v));
    assert_int_equal(json_object_array_length(v), 3);
    json_object *last = json_object_array_get_idx(v, 2), *c;
    assert_true(json_object_object_get_ex(last, "content", &c));
    assert_string_equal(json_object_get_string(c), "second");
    json_object_put(o);
    pl_buf_free(&b);

    req.max_tokens = 5;
    assert_int_equal(pl_dialect_encode(&b, PL_DIALECT_OPENAI, &req), 0);
    o = json_tokener_parse(b.data);
    assert_non_null(o);
    assert_true(json_object_object_get_ex(o, "messages", &v));
    assert_int_equal(json_object_array_length(v), 4); /* system first */
    json_object *first = json_object_array_get_idx(v, 0), *role;
    assert_true(json_object_object_get_ex(first, "role", &role));
    assert_string_equal(json_object_get_string(role), "system");
    assert_true(json_object_object_get_ex(o, "stream_options", &v));
    assert_true(json_object_object_get_ex(o, "max_completion_tokens", &v));
    assert_int_equal(json_object_get_int(v), 5);
    json_object_put(o);
    pl_buf_free(&b);
}

/* ---- the anthropic fast path -------------------------------------------- */

static const char *const anthropic_events[] = {
    "{\"type\":\"content_block_delta\",\"index\":0,"
    "\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi \\\"you\\\" \\u00e9\\ud83d\\ude00\\n\"}}",
    "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}",
    "{\"type\":\"content_block_stop\",\"index\":0}",
    "{\"type\": \"ping\"}",
    "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\",\"stop_sequence\":null},"
    "\"usage\":{\"output_tokens\":15}}",
    "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{}}",
    "{\"type\":\"message_stop\"}",
    "{\"type\":\"future_event\",\"x\":{\"y\":1}}",
    "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\","
    "\"role\":\"assistant\",\"content\":[],\"model\":\"m\",\"stop_reason\":null,"
    "\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}",
    "{\"type\":\"message_start\",\"message\":{\"content\":[{\"a\":[1,\"x\",{}]},[]]}}",
};

static void fresh_state(pl_stream_state *st)
{
    pl_stream_state_init(st, PL_DIALECT_ANTHROPIC);
    st->input_tokens = 3; /* as after a message_start */
}

/* The full decoder's view of data: json-c, as pl_dialect_event() parses. */
static int full_decode(pl_stream_state *st, const pl_sse_event *ev, pl_stream_result *res)
{
    json_tokener *tok = json_tokener_new();
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *obj = json_tokener_parse_ex(tok, ev->data, (int)ev->data_len);
    int rc = -1;
    char err[128];
    memset(res, 0, sizeof(*res));
    if (obj && json_tokener_get_parse_end(tok) == ev->data_len &&
        json_object_is_type(obj, json_type_object))
        rc = pl_anthropic_event(st, obj, ev, res, err, sizeof(err));
    if (rc == 0 && res->kind == PL_STREAM_TEXT) {
        /* The text lives in obj: keep a copy for the comparison. */
        static char copy[512];
        memcpy(copy, res->text, res->text_len);
        res->text = copy;
    }
    json_object_put(obj);
    json_tokener_free(tok);
    return rc;
}

/* Every one-byte mutation of the common events that the fast path takes
 * decodes the same through json-c, state included; the common events
 * themselves all take it. */
static void test_anthropic_fast_path(void **state)
{
    (void)state;
    static const char subst[] = "\"\\01236789 u}],-.enx:{\x01";
    size_t taken = 0;
    for (size_t i = 0; i < sizeof(anthropic_events) / sizeof(anthropic_events[0]); i++) {
        const char *base = anthropic_events[i];
        size_t len = strlen(base);
        for (size_t at = 0; at <= len; at++) {
            for (size_t k = 0; k < (at == len ? 1 : sizeof(subst) - 1); k++) {
                char data[512];
                memcpy(data, base, len + 1);
                if (at < len)
                    data[at] = subst[k];
                pl_sse_event ev = {.type = "message", .type_len = 7, .data = data,
                                   .data_len = len, .id = "", .id_len = 0};
                pl_stream_state quick_st, full_st;
                pl_stream_result quick = {0}, full;
                fresh_state(&quick_st);
                fresh_state(&full_st);
                bool took = pl_anthropic_fast_event(&quick_st, &ev, &quick);
                if (at == len && !took)
                    fail_msg("the fast path declined: %s", base);
                if (took) {
                    taken++;
                    if (full_decode(&full_st, &ev, &full) != 0)
                        fail_msg("the fast path took what json-c refuses: %s", data);
                    assert_int_equal(quick.kind, full.kind);
                    assert_int_equal(quick.text_len, full.text_len);
                    if (quick.text_len)
                        assert_memory_equal(quick.text, full.text, quick.text_len);
                    assert_true((quick.stop_reason == NULL) == (full.stop_reason == NULL));
                    if (quick.stop_reason)
                        assert_string_equal(quick.stop_reason, full.stop_reason);
                    assert_true(quick.input_tokens == full.input_tokens);
                    assert_true(quick.output_tokens == full.output_tokens);
                    assert_string_equal(quick_st.stop_reason, full_st.stop_reason);
                    assert_true(quick_st.output_tokens == full_st.output_tokens);
                }
                pl_stream_state_free(&quick_st);
                pl_stream_state_free(&full_st);
            }
        }
    }
    assert_true(taken > 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_anthropic_stream),
        cmocka_unit_test(test_openai_stream),
        cmocka_unit_test(test_errors_inside_streams),
        cmocka_unit_test(test_malformed_events),
        cmocka_unit_test(test_text_must_be_utf8),
        cmocka_unit_test(test_error_bodies_and_statuses),
        cmocka_unit_test(test_encoders),
        cmocka_unit_test(test_anthropic_fast_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
