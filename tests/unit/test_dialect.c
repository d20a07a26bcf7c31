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
    char text[1024];      /* the text pieces joined */
    int pieces;           /* text pieces */
    int done;
    char stop_reason[16];
    unsigned long long in, out;
    char error[256];
    int malformed;
    char last_err[160];   /* the sentence of the last malformed event */
    pl_buf log;           /* every result, one line each (render()) */
} outcome;

typedef struct feed_ctx {
    pl_stream_state st;
    outcome *o;
} feed_ctx;

static void put(pl_buf *b, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    assert_int_equal(pl_buf_append_str(b, line), 0);
}

/* One line per result: what a piece, a DONE or an ERROR says, all of it. */
static void render(pl_buf *b, int rc, const pl_stream_result *res, const char *err)
{
    if (rc != 0) {
        put(b, "bad: %s\n", err);
        return;
    }
    assert_true(res->arrived);
    for (size_t i = 0; res->kind == PL_STREAM_PIECE && i < res->npieces; i++) {
        const pl_piece *p = &res->pieces[i];
        static const char *const kinds[] = {"text", "thinking", "tool_use"};
        put(b, "%s %u [%.*s]", kinds[p->kind], p->block, (int)p->len, p->text);
        if (p->signature)
            put(b, " sig=%s", p->signature);
        if (p->tool_id)
            put(b, " id=%s name=%s", p->tool_id, p->tool_name);
        put(b, "\n");
    }
    if (res->kind == PL_STREAM_DONE) {
        const pl_reply_end *e = &res->end;
        put(b, "done %s seq=%s in=%llu out=%llu cc=%llu cr=%llu msg=%s\n", e->stop_reason,
            e->stop_sequence ? e->stop_sequence : "-", (unsigned long long)e->input_tokens,
            (unsigned long long)e->output_tokens, (unsigned long long)e->cache_creation_tokens,
            (unsigned long long)e->cache_read_tokens, e->message_id ? e->message_id : "-");
    } else if (res->kind == PL_STREAM_ERROR) {
        put(b, "error %s|%s\n", res->error_type ? res->error_type : "",
            res->error_message ? res->error_message : "");
    }
}

static int on_event(void *userdata, const pl_sse_event *ev)
{
    feed_ctx *ctx = userdata;
    pl_stream_result res;
    char err[128];
    outcome *o = ctx->o;
    int rc = pl_dialect_event(&ctx->st, ev, &res, err, sizeof(err));
    render(&o->log, rc, &res, err);
    if (rc != 0) {
        o->malformed++;
        snprintf(o->last_err, sizeof(o->last_err), "%s", err);
        return 0;
    }
    if (res.kind == PL_STREAM_PIECE) {
        for (size_t i = 0; i < res.npieces; i++) {
            if (res.pieces[i].kind != PL_PIECE_TEXT)
                continue;
            strncat(o->text, res.pieces[i].text, res.pieces[i].len);
            o->pieces++;
        }
    } else if (res.kind == PL_STREAM_DONE) {
        o->done++;
        snprintf(o->stop_reason, sizeof(o->stop_reason), "%s", res.end.stop_reason);
        o->in = res.end.input_tokens;
        o->out = res.end.output_tokens;
    } else if (res.kind == PL_STREAM_ERROR) {
        snprintf(o->error, sizeof(o->error), "%s|%s", res.error_type ? res.error_type : "",
                 res.error_message ? res.error_message : "");
    }
    return 0;
}

/* Feed a recorded stream cut at the offsets in cuts (ascending, then 0),
 * or in chunks of `chunk` bytes when cuts is NULL. */
static void run_stream_cut(pl_dialect d, const char *stream, size_t chunk, const size_t *cuts,
                           size_t max_tool_input, outcome *o)
{
    pl_buf log = o->log; /* o was initialised: its log is kept, emptied */
    pl_buf_reset(&log);
    memset(o, 0, sizeof(*o));
    o->log = log;
    feed_ctx ctx = {.o = o};
    pl_stream_state_init(&ctx.st, d, max_tool_input);
    pl_sse_parser p;
    pl_sse_init(&p, 0);
    size_t len = strlen(stream);
    for (size_t i = 0, k = 0; i < len;) {
        size_t end = cuts ? (cuts[k] && cuts[k] < len ? cuts[k++] : len)
                          : (len - i < chunk ? len : i + chunk);
        assert_int_equal(pl_sse_feed(&p, stream + i, end - i, on_event, &ctx), 0);
        i = end;
    }
    pl_sse_free(&p);
    pl_stream_state_free(&ctx.st);
}

/* Feed a recorded stream in chunks of `chunk` bytes. */
static void run_stream(pl_dialect d, const char *stream, size_t chunk, outcome *o)
{
    run_stream_cut(d, stream, chunk, NULL, 0, o);
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
        outcome o = {0};
        run_stream(PL_DIALECT_ANTHROPIC, anthropic_stream, chunk, &o);
        assert_string_equal(o.text, "[turn 2] ça va");
        assert_int_equal(o.pieces, 2);
        assert_int_equal(o.done, 1);
        assert_string_equal(o.stop_reason, "max_tokens");
        assert_int_equal(o.in, 7);
        assert_int_equal(o.out, 2);
        assert_int_equal(o.malformed, 0);
        pl_buf_free(&o.log);
    }
}

static void test_openai_stream(void **state)
{
    (void)state;
    for (size_t chunk = 1; chunk <= 64; chunk = chunk * 2 + 1) {
        outcome o = {0};
        run_stream(PL_DIALECT_OPENAI, openai_stream, chunk, &o);
        assert_string_equal(o.text, "[turn 1] hi");
        assert_int_equal(o.pieces, 2); /* the empty first delta is no piece */
        assert_int_equal(o.done, 1);
        assert_string_equal(o.stop_reason, "end_turn");
        assert_int_equal(o.in, 3);
        assert_int_equal(o.out, 2);
        pl_buf_free(&o.log);
    }
}

static void test_errors_inside_streams(void **state)
{
    (void)state;
    outcome o = {0};
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
    pl_buf_free(&o.log);
}

static void test_malformed_events(void **state)
{
    (void)state;
    outcome o = {0};
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
    pl_buf_free(&o.log);
}

/* json-c passes raw bytes of a string through: a piece that is not UTF-8 is
 * a malformed event on both dialects, never a TEXT event (found by
 * fuzz_http). */
static void test_text_must_be_utf8(void **state)
{
    (void)state;
    outcome o = {0};
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
    pl_buf_free(&o.log);
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
    "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_2\",\"usage\":{\"input_tokens\":5,"
    "\"cache_creation_input_tokens\":6,\"cache_read_input_tokens\":7}}}",
    "{\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\","
    "\"id\":\"toolu_9\",\"name\":\"get\",\"input\":{}}}",
    "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\","
    "\"thinking\":\"\"}}",
    "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\","
    "\"thinking\":\"hmm \\u00e9\"}}",
    "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\","
    "\"signature\":\"sig==\"}}",
    "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
    "\"partial_json\":\"1}\"}}",
    "{\"type\":\"content_block_stop\",\"index\":1}",
    "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"stop_sequence\","
    "\"stop_sequence\":\"END\"},\"usage\":{\"output_tokens\":9,\"input_tokens\":4}}",
    "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"model_context_window_exceeded\"}}",
};

/* A state as in the middle of a reply, with a tool_use block open at
 * index 1, so that every event of anthropic_events means something. */
static void fresh_state(pl_stream_state *st)
{
    pl_stream_state_init(st, PL_DIALECT_ANTHROPIC, 64);
    st->input_tokens = 3; /* as after a message_start */
    st->in_block = true;
    st->block = 1;
    st->block_kind = PL_PIECE_TOOL_USE;
    assert_int_equal(pl_stream_keep(&st->tool_id, "toolu_1", 7), 0);
    assert_int_equal(pl_stream_keep(&st->tool_name, "f", 1), 0);
    assert_int_equal(pl_stream_keep(&st->tool_input, "{\"a\":", 5), 0);
}

/* What a state holds after an event, rendered. */
static void render_state(pl_buf *b, const pl_stream_state *st)
{
    put(b, "state in=%llu out=%llu cc=%llu cr=%llu stop=%s seq=%s msg=%s block=%d/%u/%d "
        "tool=%s/%s/%s\n",
        (unsigned long long)st->input_tokens, (unsigned long long)st->output_tokens,
        (unsigned long long)st->cache_creation_tokens, (unsigned long long)st->cache_read_tokens,
        st->stop_reason, st->has_stop_sequence ? st->stop_sequence.data : "-",
        st->message_id.data ? st->message_id.data : "-", st->in_block, st->block,
        st->block_kind, st->tool_id.data ? st->tool_id.data : "",
        st->tool_name.data ? st->tool_name.data : "",
        st->tool_input.data ? st->tool_input.data : "");
}

/* The full decoder's view of data: json-c, as pl_dialect_event() parses. */
static int full_decode(pl_stream_state *st, const pl_sse_event *ev, pl_stream_result *res,
                       char *err, size_t err_size)
{
    json_tokener *tok = json_tokener_new();
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *obj = json_tokener_parse_ex(tok, ev->data, (int)ev->data_len);
    int rc = -2;
    memset(res, 0, sizeof(*res));
    if (obj && json_tokener_get_parse_end(tok) == ev->data_len &&
        json_object_is_type(obj, json_type_object))
        rc = pl_anthropic_event(st, obj, ev, res, err, err_size);
    res->arrived = true;
    /* The strings live in obj: render them before it goes. */
    json_object_put(st->last);
    st->last = obj;
    json_tokener_free(tok);
    return rc;
}

/* Every one-byte mutation of the common events that the fast path takes
 * decodes the same through json-c, pieces, end and state included; the
 * common events themselves all take it. */
static void test_anthropic_fast_path(void **state)
{
    (void)state;
    static const char subst[] = "\"\\01236789 u}],-.enx:{\x01";
    size_t taken = 0;
    pl_buf quick_log = PL_BUF_INIT, full_log = PL_BUF_INIT;
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
                char quick_err[128] = "", full_err[128] = "";
                fresh_state(&quick_st);
                fresh_state(&full_st);
                int took = pl_anthropic_fast_event(&quick_st, &ev, &quick, quick_err,
                                                   sizeof(quick_err));
                quick.arrived = true;
                if (at == len && took == 0)
                    fail_msg("the fast path declined: %s", base);
                if (took != 0) {
                    taken++;
                    int rc = full_decode(&full_st, &ev, &full, full_err, sizeof(full_err));
                    if (rc == -2)
                        fail_msg("the fast path took what json-c refuses: %s", data);
                    pl_buf_reset(&quick_log);
                    pl_buf_reset(&full_log);
                    render(&quick_log, took > 0 ? 0 : -1, &quick, quick_err);
                    render(&full_log, rc, &full, full_err);
                    render_state(&quick_log, &quick_st);
                    render_state(&full_log, &full_st);
                    assert_string_equal(quick_log.data, full_log.data);
                }
                pl_stream_state_free(&quick_st);
                pl_stream_state_free(&full_st);
            }
        }
    }
    assert_true(taken > 100);
    pl_buf_free(&quick_log);
    pl_buf_free(&full_log);
}

/* ---- issue 14: thinking, tool calls, the vendors' whole end ------------------ */

/* The echo model's Anthropic stream for `call get_weather {...}` with
 * thinking on (protocol.md 10), as the real API shapes it. */
static const char anthropic_rich_stream[] =
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_echo_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"parley-echo-1\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":3,\"cache_read_input_tokens\":4,\"output_tokens\":1}}}\n\n"
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n"
    "event: ping\ndata: {\"type\": \"ping\"}\n\n"
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"thinking about: \"}}\n\n"
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"call get_weather\"}}\n\n"
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"echo-sig-1\"}}\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"[turn 1] calling\"}}\n\n"
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\" get_weather\"}}\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_echo_1\",\"name\":\"get_weather\",\"input\":{}}}\n\n"
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n"
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\":\"}}\n\n"
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Paris\\\"}\"}}\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}\n\n"
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":6}}\n\n"
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

/* The same on OpenAI, a second call (without arguments) interleaved. */
static const char openai_rich_stream[] =
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"[turn 1] calling\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" get_weather\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_echo_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_2\",\"type\":\"function\",\"function\":{\"name\":\"clock\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":7,\"total_tokens\":27,\"prompt_tokens_details\":{\"cached_tokens\":16}}}\n\n"
    "data: [DONE]\n\n";

static const char openai_refusal_stream[] =
    "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"refusal\":\"\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"I can't help\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\" with that.\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
    "data: [DONE]\n\n";

static void assert_log(pl_dialect d, const char *stream, const char *want)
{
    outcome o = {0};
    run_stream(d, stream, 1u << 20, &o);
    assert_string_equal(o.log.data ? o.log.data : "", want);
    pl_buf_free(&o.log);
}

/* Thinking pieces and the signature (an empty piece), text pieces with
 * their block, the tool call assembled from input_json_delta and delivered
 * at content_block_stop, usage with the cache counts, the message id; ping
 * and the starts are no result. */
static void test_anthropic_rich_stream(void **state)
{
    (void)state;
    assert_log(PL_DIALECT_ANTHROPIC, anthropic_rich_stream, "thinking 0 [thinking about: ]\nthinking 0 [call get_weather]\nthinking 0 [] sig=echo-sig-1\ntext 1 [[turn 1] calling]\ntext 1 [ get_weather]\ntool_use 2 [{\"city\":\"Paris\"}] id=toolu_echo_1 name=get_weather\ndone tool_use seq=- in=12 out=6 cc=3 cr=4 msg=msg_echo_1\n");
    assert_log(PL_DIALECT_ANTHROPIC,
               "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"stop_sequence\","
               "\"stop_sequence\":\"END\"},\"usage\":{\"output_tokens\":2}}\n\n"
               "data: {\"type\":\"message_stop\"}\n\n",
               "done stop_sequence seq=END in=0 out=2 cc=0 cr=0 msg=-\n");
    static const char *const reasons[] = {"end_turn", "max_tokens", "stop_sequence", "tool_use",
                                          "refusal", "pause_turn", "model_context_window_exceeded"};
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        char stream[256], want[128];
        snprintf(stream, sizeof(stream),
                 "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"%s\"}}\n\n"
                 "data: {\"type\":\"message_stop\"}\n\n", reasons[i]);
        snprintf(want, sizeof(want), "done %s seq=- in=0 out=0 cc=0 cr=0 msg=-\n", reasons[i]);
        assert_log(PL_DIALECT_ANTHROPIC, stream, want);
    }
}

/* Text as block 0, the tool calls by index after it, each assembled from
 * its argument pieces and delivered with finish_reason; cached tokens as
 * cache reads; the chunk id as the message id. */
static void test_openai_rich_stream(void **state)
{
    (void)state;
    assert_log(PL_DIALECT_OPENAI, openai_rich_stream, "text 0 [[turn 1] calling]\ntext 0 [ get_weather]\ntool_use 1 [{\"city\":\"Paris\"}] id=call_echo_1 name=get_weather\ntool_use 2 [{}] id=call_2 name=clock\ndone tool_use seq=- in=20 out=7 cc=0 cr=16 msg=chatcmpl-1\n");
    /* Without text the first call is block 0. */
    assert_log(PL_DIALECT_OPENAI,
               "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
               "\"id\":\"c\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
               "\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n",
               "tool_use 0 [{}] id=c name=f\ndone tool_use seq=- in=0 out=0 cc=0 cr=0 msg=x\n");
    static const char *const finish[][2] = {{"stop", "end_turn"}, {"length", "max_tokens"},
                                            {"tool_calls", "tool_use"},
                                            {"content_filter", "content_filter"}};
    for (size_t i = 0; i < sizeof(finish) / sizeof(finish[0]); i++) {
        char stream[256], want[128];
        snprintf(stream, sizeof(stream),
                 "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"%s\"}]}\n\n"
                 "data: [DONE]\n\n", finish[i][0]);
        snprintf(want, sizeof(want), "done %s seq=- in=0 out=0 cc=0 cr=0 msg=-\n", finish[i][1]);
        assert_log(PL_DIALECT_OPENAI, stream, want);
    }
}

/* A refusal is the reply's text, and its stop reason: never an empty reply
 * that ended normally. */
static void test_openai_refusal(void **state)
{
    (void)state;
    assert_log(PL_DIALECT_OPENAI, openai_refusal_stream, "text 0 [I can't help]\ntext 0 [ with that.]\ndone refusal seq=- in=0 out=0 cc=0 cr=0 msg=c2\n");
}

/* Cut anywhere, a stream means the same. */
static void test_rich_streams_split_everywhere(void **state)
{
    (void)state;
    static const struct {
        pl_dialect d;
        const char *stream, *log;
    } cases[] = {
        {PL_DIALECT_ANTHROPIC, anthropic_rich_stream, "thinking 0 [thinking about: ]\nthinking 0 [call get_weather]\nthinking 0 [] sig=echo-sig-1\ntext 1 [[turn 1] calling]\ntext 1 [ get_weather]\ntool_use 2 [{\"city\":\"Paris\"}] id=toolu_echo_1 name=get_weather\ndone tool_use seq=- in=12 out=6 cc=3 cr=4 msg=msg_echo_1\n"},
        {PL_DIALECT_OPENAI, openai_rich_stream, "text 0 [[turn 1] calling]\ntext 0 [ get_weather]\ntool_use 1 [{\"city\":\"Paris\"}] id=call_echo_1 name=get_weather\ntool_use 2 [{}] id=call_2 name=clock\ndone tool_use seq=- in=20 out=7 cc=0 cr=16 msg=chatcmpl-1\n"},
        {PL_DIALECT_OPENAI, openai_refusal_stream, "text 0 [I can't help]\ntext 0 [ with that.]\ndone refusal seq=- in=0 out=0 cc=0 cr=0 msg=c2\n"},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        size_t len = strlen(cases[c].stream);
        for (size_t at = 1; at < len; at++) {
            outcome o = {0};
            size_t cuts[] = {at, 0};
            run_stream_cut(cases[c].d, cases[c].stream, 0, cuts, 0, &o);
            if (strcmp(o.log.data, cases[c].log) != 0)
                fail_msg("cut at %zu of stream %zu:\n%s", at, c, o.log.data);
            pl_buf_free(&o.log);
        }
        for (size_t chunk = 1; chunk < 40; chunk++) {
            outcome o = {0};
            run_stream(cases[c].d, cases[c].stream, chunk, &o);
            assert_string_equal(o.log.data, cases[c].log);
            pl_buf_free(&o.log);
        }
    }
}

#define START_TOOL "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":" \
                   "{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{}}}\n\n"
#define INPUT(json) "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":" \
                    "{\"type\":\"input_json_delta\",\"partial_json\":\"" json "\"}}\n\n"
#define STOP_BLOCK "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
#define OAI_ARGS(json) "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0," \
                       "\"id\":\"c\",\"function\":{\"name\":\"f\",\"arguments\":\"" json "\"}}]}," \
                       "\"finish_reason\":\"tool_calls\"}]}\n\n"

/* A tool call whose input is not one JSON object, or that comes outside a
 * tool_use block or without its id: a malformed stream, said clearly. */
static void test_tool_input_malformed(void **state)
{
    (void)state;
    static const struct {
        pl_dialect d;
        const char *stream, *log;
    } cases[] = {
        {PL_DIALECT_ANTHROPIC, START_TOOL INPUT("{\\\"a\\\":") STOP_BLOCK,
         "bad: a tool call's input is not a JSON object (not one JSON object)\n"},
        {PL_DIALECT_ANTHROPIC, START_TOOL INPUT("[1]") STOP_BLOCK,
         "bad: a tool call's input is not a JSON object (not one JSON object)\n"},
        {PL_DIALECT_ANTHROPIC, START_TOOL INPUT("{} {}") STOP_BLOCK,
         "bad: a tool call's input is not a JSON object (not one JSON object)\n"},
        {PL_DIALECT_ANTHROPIC, START_TOOL INPUT("{\\\"a\\\":\\\"\\\\ud800\\\"}") STOP_BLOCK,
         "bad: a tool call's input is not a JSON object (a string holds an unpaired UTF-16 "
         "surrogate escape)\n"},
        {PL_DIALECT_ANTHROPIC, INPUT("{}"), "bad: an input_json_delta outside a tool_use block\n"},
        {PL_DIALECT_ANTHROPIC,
         "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
         "\"tool_use\",\"name\":\"f\"}}\n\n",
         "bad: a tool_use block without its id and name\n"},
        /* Found by fuzz_sse: a refused block must stay closed, or the
         * deltas after it made a tool call without a name. */
        {PL_DIALECT_ANTHROPIC,
         "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
         "\"tool_use\",\"id\":\"t\"}}\n\n" INPUT("{}") STOP_BLOCK,
         "bad: a tool_use block without its id and name\n"
         "bad: an input_json_delta outside a tool_use block\n"},
        {PL_DIALECT_ANTHROPIC,
         "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
         "\"thinking_delta\"}}\n\n",
         "bad: a thinking_delta without thinking\n"},
        {PL_DIALECT_ANTHROPIC,
         "data: {\"type\":\"content_block_delta\",\"index\":-1,\"delta\":{\"type\":"
         "\"text_delta\",\"text\":\"x\"}}\n\n",
         "bad: a block index that is not a non-negative integer\n"},
        {PL_DIALECT_OPENAI, OAI_ARGS("nope"),
         "bad: a tool call's input is not a JSON object (not one JSON object)\n"},
        {PL_DIALECT_OPENAI,
         "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
         "\"function\":{\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n",
         "bad: a tool call without its id and name\n"},
        {PL_DIALECT_OPENAI,
         "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"c\"}]}}]}\n\n",
         "bad: a tool call delta without a valid index\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        outcome o = {0};
        run_stream(cases[i].d, cases[i].stream, 3, &o);
        if (strcmp(o.log.data, cases[i].log) != 0)
            fail_msg("case %zu: %s", i, o.log.data);
        pl_buf_free(&o.log);
    }
}

/* The assembled inputs are bounded by what the caller gives: past it, a
 * clear error, before the memory is spent. */
static void test_tool_input_bounded(void **state)
{
    (void)state;
    outcome o = {0};
    const char *anth = START_TOOL INPUT("{\\\"a\\\":") INPUT("123456}") STOP_BLOCK;
    run_stream_cut(PL_DIALECT_ANTHROPIC, anth, 7, NULL, 12, &o);
    assert_string_equal(o.log.data, "tool_use 0 [{\"a\":123456}] id=t name=f\n");
    run_stream_cut(PL_DIALECT_ANTHROPIC, anth, 7, NULL, 11, &o);
    assert_string_equal(o.log.data, "bad: a tool call's input over 11 bytes\nbad: a tool call's "
                                    "input is not a JSON object (not one JSON object)\n");
    /* OpenAI: all the calls of a reply together. */
    const char *oai = "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
                      "\"id\":\"c\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}},"
                      "{\"index\":1,\"id\":\"d\",\"function\":{\"name\":\"g\",\"arguments\":"
                      "\"{\\\"b\\\":1}\"}}]},\"finish_reason\":null}]}\n\n";
    run_stream_cut(PL_DIALECT_OPENAI, oai, 7, NULL, 9, &o);
    assert_string_equal(o.log.data, "");
    run_stream_cut(PL_DIALECT_OPENAI, oai, 7, NULL, 8, &o);
    assert_string_equal(o.log.data, "bad: a tool call's input over 8 bytes\n");
    pl_buf_free(&o.log);
}

/* Event types, delta types and block kinds yet to come are no result, and
 * no error; every event still counts as arrived (render() checks it). */
static void test_unknown_events_ignored(void **state)
{
    (void)state;
    assert_log(PL_DIALECT_ANTHROPIC,
               "event: future_event\ndata: {\"type\":\"future_event\",\"x\":[true]}\n\n"
               "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
               "\"redacted_thinking\",\"data\":\"zz\"}}\n\n"
               "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
               "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":"
               "\"text\",\"text\":\"\"}}\n\n"
               "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
               "\"citations_delta\",\"citation\":{}}}\n\n"
               "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
               "\"text_delta\",\"text\":\"ok\"}}\n\n"
               "data: {\"type\":\"message_stop\"}\n\n",
               "text 1 [ok]\ndone end_turn seq=- in=0 out=0 cc=0 cr=0 msg=-\n");
    assert_log(PL_DIALECT_OPENAI,
               "data: {\"id\":\"q\",\"choices\":[{\"index\":0,\"delta\":{\"audio\":{}},"
               "\"logprobs\":null,\"finish_reason\":null}],\"system_fingerprint\":\"fp\"}\n\n"
               "data: [DONE]\n\n",
               "done end_turn seq=- in=0 out=0 cc=0 cr=0 msg=q\n");
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
        cmocka_unit_test(test_anthropic_rich_stream),
        cmocka_unit_test(test_openai_rich_stream),
        cmocka_unit_test(test_openai_refusal),
        cmocka_unit_test(test_rich_streams_split_everywhere),
        cmocka_unit_test(test_tool_input_malformed),
        cmocka_unit_test(test_tool_input_bounded),
        cmocka_unit_test(test_unknown_events_ignored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
