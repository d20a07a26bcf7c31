/*
 * Unit tests of the parley.v1 wire codec (src/codec/protocol.c).
 *
 * Encoded messages are parsed back with json-c and checked field by field,
 * so the tests do not depend on key order or spacing except where the exact
 * bytes are the point. Decoder inputs are copied to heap buffers of exactly
 * their length, so AddressSanitizer catches any read past the end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

#include "protocol.h"
#include "protocol_fast.h"
#include "utf8.h"

/* ======================================================================== */
/* Helpers                                                                   */
/* ======================================================================== */

/* Parse text that must be exactly one strict JSON object. */
static json_object *parse_back(const char *s, size_t len)
{
    json_tokener *tok = json_tokener_new();
    assert_non_null(tok);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *o = json_tokener_parse_ex(tok, s, (int)len);
    if (!o || json_tokener_get_parse_end(tok) != len)
        fail_msg("not one JSON object: %.*s", (int)len, s);
    json_tokener_free(tok);
    assert_true(json_object_is_type(o, json_type_object));
    return o;
}

static json_object *get(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v))
        fail_msg("key \"%s\" missing", key);
    return v;
}

static bool has(json_object *o, const char *key)
{
    return json_object_object_get_ex(o, key, NULL);
}

static void assert_json_str(json_object *o, const char *key, const char *want,
                            size_t want_len)
{
    json_object *v = get(o, key);
    assert_true(json_object_is_type(v, json_type_string));
    assert_int_equal(json_object_get_string_len(v), want_len);
    assert_memory_equal(json_object_get_string(v), want, want_len);
}

static void assert_json_int(json_object *o, const char *key, int64_t want)
{
    json_object *v = get(o, key);
    assert_true(json_object_is_type(v, json_type_int));
    assert_true(json_object_get_int64(v) == want);
}

static size_t count_keys(json_object *o)
{
    return (size_t)json_object_object_length(o);
}

/* Decode from a heap copy of exactly len bytes (ASan sees over-reads). */
static int decode_exact(pl_decoder *dec, const char *s, size_t len,
                        pl_server_msg *msg, char *err, size_t err_size)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, s, len);
    int rc = pl_proto_decode(dec, copy, len, msg, err, err_size);
    /* Decoded strings live in the decoder, not in the input: free it now so
     * a test that reads them afterwards would trip ASan if they did not. */
    free(copy);
    return rc;
}

#define DECODE(dec, lit, msg, err) \
    decode_exact((dec), (lit), sizeof(lit) - 1, (msg), (err), sizeof(err))

static int setup_decoder(void **state)
{
    *state = pl_decoder_new();
    return *state ? 0 : -1;
}

static int teardown_decoder(void **state)
{
    pl_decoder_free(*state);
    return 0;
}

static const pl_message_req base_req = {
    .id = UINT64_C(7231898455818240001),
    .session = "support-42",
    .timestamp_ms = INT64_C(1764124800123),
    .content = "hi",
    .content_len = 2,
};

/* ======================================================================== */
/* Encoding                                                                  */
/* ======================================================================== */

static void test_encode_message_minimal_exact(void **state)
{
    (void)state;
    pl_buf b = PL_BUF_INIT;
    assert_int_equal(pl_proto_encode_message(&b, &base_req), 0);
    /* Compact, optional fields absent, id as a decimal string. */
    assert_string_equal(b.data,
        "{\"type\":\"message\",\"id\":\"7231898455818240001\","
        "\"session\":\"support-42\",\"timestamp\":1764124800123,"
        "\"content\":\"hi\"}");
    assert_int_equal(b.len, strlen(b.data));
    pl_buf_free(&b);
}

static void test_encode_message_all_fields(void **state)
{
    (void)state;
    const pl_history_turn hist[] = {
        {.content = "hello", .content_len = 5},
        {.assistant = true, .content = "[turn 1] hello", .content_len = 14},
        {.content = "again", .content_len = 5},
    };
    pl_message_req req = base_req;
    req.history = hist;
    req.nhistory = 3;
    req.model = "parley-echo-1";
    req.max_tokens = 1024;
    pl_buf b = PL_BUF_INIT;
    assert_int_equal(pl_proto_encode_message(&b, &req), 0);

    json_object *o = parse_back(b.data, b.len);
    assert_int_equal(count_keys(o), 8);
    assert_json_str(o, "type", "message", 7);
    assert_json_str(o, "id", "7231898455818240001", 19);
    assert_json_str(o, "session", "support-42", 10);
    assert_json_int(o, "timestamp", INT64_C(1764124800123));
    assert_json_str(o, "content", "hi", 2);
    assert_json_str(o, "model", "parley-echo-1", 13);
    assert_json_int(o, "max_tokens", 1024);
    json_object *h = get(o, "history");
    assert_true(json_object_is_type(h, json_type_array));
    assert_int_equal(json_object_array_length(h), 3);
    for (size_t i = 0; i < 3; i++) {
        json_object *t = json_object_array_get_idx(h, i);
        assert_int_equal(count_keys(t), 2);
        const char *role = hist[i].assistant ? "assistant" : "user";
        assert_json_str(t, "role", role, strlen(role));
        assert_json_str(t, "content", hist[i].content, hist[i].content_len);
    }
    json_object_put(o);
    pl_buf_free(&b);
}

/* Every byte class that needs care: quotes, backslashes, each control
 * character, DEL, NUL inside the content, and multi-byte UTF-8. */
static const char tricky[] =
    "q\"uo\"te \\back\\slash / \b\f\n\r\t \x01\x02\x1e\x1f \x7f "
    "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 nul:\0:end \\u0041 </script>";

static void assert_no_raw_control_bytes(const pl_buf *b)
{
    for (size_t i = 0; i < b->len; i++)
        if ((unsigned char)b->data[i] < 0x20)
            fail_msg("raw control byte 0x%02x at %zu", b->data[i], i);
}

static void test_encode_escaping(void **state)
{
    (void)state;
    const size_t n = sizeof(tricky) - 1;
    const pl_history_turn hist[] = {{.content = tricky, .content_len = n},
                                     {.assistant = true, .content = tricky, .content_len = n}};
    pl_message_req req = base_req;
    req.content = tricky;
    req.content_len = n;
    req.history = hist;
    req.nhistory = 2;
    req.model = "m\"o\\del\n";
    req.session = "a.b_c:d-E9";
    pl_buf b = PL_BUF_INIT;
    assert_int_equal(pl_proto_encode_message(&b, &req), 0);
    assert_no_raw_control_bytes(&b);
    assert_true(pl_utf8_valid(b.data, b.len));
    assert_non_null(strstr(b.data, "\\u0001"));  /* control chars as \u00XX */
    assert_non_null(strstr(b.data, "\\u0000"));  /* NUL survives */
    assert_non_null(strstr(b.data, "caf\xC3\xA9")); /* UTF-8 kept as is */

    json_object *o = parse_back(b.data, b.len);
    assert_json_str(o, "content", tricky, n);
    assert_json_str(o, "model", "m\"o\\del\n", 8);
    assert_json_str(o, "session", "a.b_c:d-E9", 10);
    json_object *h = get(o, "history");
    for (size_t i = 0; i < 2; i++)
        assert_json_str(json_object_array_get_idx(h, i), "content", tricky, n);
    json_object_put(o);
    pl_buf_free(&b);
}

static void test_encode_optional_fields_omitted(void **state)
{
    (void)state;
    const pl_history_turn hist[] = {{.content = "x", .content_len = 1}};
    pl_message_req req = base_req;
    req.history = hist; /* a pointer with nhistory 0: still omitted */
    req.nhistory = 0;
    req.model = NULL;
    req.max_tokens = 0;
    req.content = "";
    req.content_len = 0;
    pl_buf b = PL_BUF_INIT;
    assert_int_equal(pl_proto_encode_message(&b, &req), 0);
    json_object *o = parse_back(b.data, b.len);
    assert_int_equal(count_keys(o), 5);
    assert_false(has(o, "history"));
    assert_false(has(o, "model"));
    assert_false(has(o, "max_tokens"));
    assert_false(has(o, "resume_from"));
    assert_json_str(o, "content", "", 0);
    json_object_put(o);
    pl_buf_free(&b);
}

static void test_encode_extreme_numbers(void **state)
{
    (void)state;
    pl_message_req req = base_req;
    req.id = (uint64_t)INT64_MAX;
    req.timestamp_ms = -1; /* encoded as given; not the codec's to judge */
    req.max_tokens = UINT32_MAX;
    pl_buf b = PL_BUF_INIT;
    assert_int_equal(pl_proto_encode_message(&b, &req), 0);
    json_object *o = parse_back(b.data, b.len);
    assert_json_str(o, "id", "9223372036854775807", 19);
    assert_json_int(o, "timestamp", -1);
    assert_json_int(o, "max_tokens", UINT32_MAX);
    json_object_put(o);
    pl_buf_free(&b);

    req.id = 1;
    assert_int_equal(pl_proto_encode_message(&b, &req), 0);
    o = parse_back(b.data, b.len);
    assert_json_str(o, "id", "1", 1);
    json_object_put(o);
    pl_buf_free(&b);
}

static void test_encode_appends(void **state)
{
    (void)state;
    pl_buf b = PL_BUF_INIT;
    assert_int_equal(pl_buf_append_str(&b, "PREFIX"), 0);
    assert_int_equal(pl_proto_encode_cancel(&b, 42), 0);
    assert_string_equal(b.data, "PREFIX{\"type\":\"cancel\",\"id\":\"42\"}");
    pl_buf_free(&b);
}

static void test_encode_cancel(void **state)
{
    (void)state;
    pl_buf b = PL_BUF_INIT;
    assert_int_equal(pl_proto_encode_cancel(&b, UINT64_C(7231898455818240001)), 0);
    assert_string_equal(b.data,
        "{\"type\":\"cancel\",\"id\":\"7231898455818240001\"}");
    json_object *o = parse_back(b.data, b.len);
    assert_int_equal(count_keys(o), 2);
    assert_json_str(o, "type", "cancel", 6);
    assert_json_str(o, "id", "7231898455818240001", 19);
    json_object_put(o);
    pl_buf_free(&b);
}

static void check_resume_from(uint32_t resume_from)
{
    const pl_history_turn hist[] = {{.content = "a}", .content_len = 2}};
    pl_message_req req = base_req;
    req.history = hist;
    req.nhistory = 1;
    req.model = "parley-echo-1";
    pl_buf msg = PL_BUF_INIT, out = PL_BUF_INIT;
    assert_int_equal(pl_proto_encode_message(&msg, &req), 0);
    assert_int_equal(pl_proto_add_resume_from(&out, msg.data, msg.len,
                                              resume_from), 0);
    /* Exactly the original with the field spliced before the last brace. */
    assert_int_equal(out.len, msg.len + strlen(",\"resume_from\":") +
                     (size_t)snprintf(NULL, 0, "%u", resume_from));
    assert_memory_equal(out.data, msg.data, msg.len - 1);

    json_object *o = parse_back(out.data, out.len);
    assert_int_equal(count_keys(o), 8);
    assert_json_int(o, "resume_from", resume_from);
    assert_json_str(o, "id", "7231898455818240001", 19);
    assert_json_str(o, "model", "parley-echo-1", 13);
    assert_json_str(json_object_array_get_idx(get(o, "history"), 0),
                    "content", "a}", 2);
    json_object_put(o);
    pl_buf_free(&msg);
    pl_buf_free(&out);
}

static void test_add_resume_from(void **state)
{
    (void)state;
    check_resume_from(0);
    check_resume_from(7);
    check_resume_from(UINT32_MAX);
}

static void test_add_resume_from_rejects_non_object(void **state)
{
    (void)state;
    pl_buf out = PL_BUF_INIT;
    assert_int_equal(pl_buf_append_str(&out, "keep"), 0);
    assert_int_equal(pl_proto_add_resume_from(&out, "", 0, 1), -1);
    assert_int_equal(pl_proto_add_resume_from(&out, "{}", 2, 1), -1);
    assert_int_equal(pl_proto_add_resume_from(&out, "abc", 3, 1), -1);
    assert_int_equal(pl_proto_add_resume_from(&out, "{\"a\":1", 6, 1), -1);
    assert_int_equal(pl_proto_add_resume_from(&out, "[1,2]", 5, 1), -1);
    /* Failure leaves out untouched. */
    assert_string_equal(out.data, "keep");
    assert_int_equal(out.len, 4);
    pl_buf_free(&out);
}

/* pl_buf_reserve must refuse a size whose total wraps around SIZE_MAX
 * instead of reporting success for a buffer far too small. */
static void test_buf_reserve_overflow(void **state)
{
    (void)state;
    pl_buf b = PL_BUF_INIT;
    assert_int_equal(pl_buf_append_str(&b, "0123456789"), 0);
    size_t cap = b.cap;
    assert_int_equal(pl_buf_reserve(&b, SIZE_MAX - 5), -1);
    assert_int_equal(pl_buf_reserve(&b, SIZE_MAX - b.len), -1);
    assert_int_equal(pl_buf_reserve(&b, SIZE_MAX), -1);
    assert_int_equal(b.len, 10);
    assert_int_equal(b.cap, cap);
    assert_string_equal(b.data, "0123456789");
    pl_buf_free(&b);
}

/* ======================================================================== */
/* Shared helpers                                                            */
/* ======================================================================== */

static void test_parse_id(void **state)
{
    (void)state;
    uint64_t id = 0;
    assert_int_equal(pl_proto_parse_id("1", 1, &id), 0);
    assert_true(id == 1);
    assert_int_equal(pl_proto_parse_id("7231898455818240001", 19, &id), 0);
    assert_true(id == UINT64_C(7231898455818240001));
    assert_int_equal(pl_proto_parse_id("9223372036854775807", 19, &id), 0);
    assert_true(id == (uint64_t)INT64_MAX);

    static const char *const bad[] = {
        "", "0", "01", "00", "-1", "+1", " 1", "1 ", "1.0", "1e3", "abc",
        "12a", "0x10", "9223372036854775808", "9999999999999999999",
        "18446744073709551616", "12345678901234567890",
        "100000000000000000000000000000",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        id = 99;
        if (pl_proto_parse_id(bad[i], strlen(bad[i]), &id) != -1)
            fail_msg("id \"%s\" accepted", bad[i]);
        assert_true(id == 99); /* untouched on failure */
    }
    /* The length bounds the id, not a NUL: "12" read as one byte is 1. */
    assert_int_equal(pl_proto_parse_id("12", 1, &id), 0);
    assert_true(id == 1);
    assert_int_equal(pl_proto_parse_id("1\0002", 3, &id), -1);
    assert_int_equal(pl_proto_parse_id(NULL, 0, &id), -1);
}

static void test_session_valid(void **state)
{
    (void)state;
    char s[PL_PROTO_SESSION_MAX + 1];
    memset(s, 'a', sizeof(s));
    assert_true(pl_proto_session_valid("support-42", 10));
    assert_true(pl_proto_session_valid("A.z_0:9-", 8));
    assert_true(pl_proto_session_valid("x", 1));
    assert_true(pl_proto_session_valid(s, PL_PROTO_SESSION_MAX));
    assert_false(pl_proto_session_valid(s, PL_PROTO_SESSION_MAX + 1));
    assert_false(pl_proto_session_valid("", 0));
    assert_false(pl_proto_session_valid(NULL, 0));
    static const char *const bad[] = {
        "a b", "a/b", "a\"b", "caf\xC3\xA9", "a\nb", "a@b", "a+b", "a,b",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (pl_proto_session_valid(bad[i], strlen(bad[i])))
            fail_msg("session \"%s\" accepted", bad[i]);
    assert_false(pl_proto_session_valid("ab\0cd", 5)); /* NUL inside */
}

/* ======================================================================== */
/* Decoding valid messages                                                   */
/* ======================================================================== */

static void test_decode_hello_full(void **state)
{
    pl_server_msg m;
    char err[256];
    assert_int_equal(DECODE(*state,
        "{\"type\":\"hello\",\"protocol\":\"parley.v1.zstd\","
        "\"max_message_bytes\":2097152,\"heartbeat_s\":15,"
        "\"idempotency_window_s\":600,\"server\":\"refserver/0.1.0\"}",
        &m, err), 0);
    assert_int_equal(m.type, PL_SMSG_HELLO);
    assert_string_equal(m.protocol, "parley.v1.zstd");
    assert_true(m.max_message_bytes == 2097152);
    assert_int_equal(m.heartbeat_s, 15);
    assert_int_equal(m.idempotency_window_s, 600);
    assert_string_equal(m.server, "refserver/0.1.0");
    assert_false(m.has_id);
    assert_string_equal(err, "");
}

/* ---- Section 9: blocks, thinking, tool calls ---- */

static void test_decode_hello_features(void **state)
{
    pl_server_msg m;
    char err[256];
    assert_int_equal(DECODE(*state, "{\"type\":\"hello\",\"protocol\":\"parley.v1\","
                            "\"features\":[\"later\",\"blocks\"]}", &m, err), 0);
    assert_true(m.feature_blocks);
    assert_int_equal(DECODE(*state, "{\"type\":\"hello\",\"protocol\":\"parley.v1\","
                            "\"features\":[\"blocksx\"]}", &m, err), 0);
    assert_false(m.feature_blocks);
    assert_int_equal(DECODE(*state, "{\"type\":\"hello\",\"protocol\":\"parley.v1\","
                            "\"features\":null}", &m, err), 0);
    assert_false(m.feature_blocks);
    assert_int_equal(DECODE(*state, "{\"type\":\"hello\",\"protocol\":\"parley.v1\","
                            "\"features\":\"blocks\"}", &m, err), -1);
    assert_string_equal(err, "hello message: field \"features\" must be an array of strings");
    assert_int_equal(DECODE(*state, "{\"type\":\"hello\",\"protocol\":\"parley.v1\","
                            "\"features\":[\"blocks\",1]}", &m, err), -1);
    assert_string_equal(err, "hello message: field \"features\" must be an array of strings");
}

static void test_decode_text_block(void **state)
{
    pl_server_msg m;
    char err[256];
    assert_int_equal(DECODE(*state, "{\"type\":\"text\",\"id\":\"7\",\"seq\":4,\"block\":1,"
                            "\"content\":\"x\"}", &m, err), 0);
    assert_int_equal(m.type, PL_SMSG_TEXT);
    assert_int_equal(m.piece.kind, PL_PIECE_TEXT);
    assert_int_equal(m.piece.block, 1);
    assert_int_equal(m.seq, 4);
    assert_string_equal(m.piece.text, "x");
    assert_int_equal(m.piece.len, 1);
    assert_null(m.piece.signature);
    assert_null(m.piece.tool_id);
    /* Servers of section 4 alone send no block: 0. */
    assert_int_equal(DECODE(*state, "{\"type\":\"text\",\"id\":\"7\",\"seq\":4,"
                            "\"content\":\"x\"}", &m, err), 0);
    assert_int_equal(m.piece.block, 0);
    assert_int_equal(DECODE(*state, "{\"type\":\"text\",\"id\":\"7\",\"seq\":4,\"block\":-1,"
                            "\"content\":\"x\"}", &m, err), -1);
    assert_string_equal(err, "text message: field \"block\" must be a non-negative integer");
    assert_true(m.has_id && m.id == 7);
}

static void test_decode_thinking(void **state)
{
    pl_server_msg m;
    char err[256];
    assert_int_equal(DECODE(*state, "{\"type\":\"thinking\",\"id\":\"7\",\"session\":\"s\","
                            "\"seq\":0,\"block\":0,\"content\":\"thinking about: hi\"}", &m, err), 0);
    assert_int_equal(m.type, PL_SMSG_TEXT);
    assert_int_equal(m.piece.kind, PL_PIECE_THINKING);
    assert_string_equal(m.piece.text, "thinking about: hi");
    assert_null(m.piece.signature);
    assert_string_equal(m.session, "s");
    assert_int_equal(DECODE(*state, "{\"type\":\"thinking\",\"id\":\"7\",\"seq\":1,\"block\":0,"
                            "\"content\":\"\",\"signature\":\"echo-sig-1\"}", &m, err), 0);
    assert_int_equal(m.piece.len, 0);
    assert_string_equal(m.piece.signature, "echo-sig-1");
    assert_int_equal(m.seq, 1);
    assert_int_equal(DECODE(*state, "{\"type\":\"thinking\",\"id\":\"7\",\"seq\":1,"
                            "\"content\":\"x\"}", &m, err), -1);
    assert_string_equal(err, "thinking message: field \"block\" is missing");
    assert_int_equal(DECODE(*state, "{\"type\":\"thinking\",\"id\":\"7\",\"seq\":1,\"block\":0,"
                            "\"content\":\"x\",\"signature\":5}", &m, err), -1);
    assert_string_equal(err, "thinking message: field \"signature\" must be a string");
}

/* The input is handed out as the compact text the server wrote: key order,
 * escapes and number spellings kept (json-c would clamp the big integer
 * and re-spell 1.50e+3), blanks outside strings removed. */
static void test_decode_tool_use(void **state)
{
    pl_server_msg m;
    char err[256];
    assert_int_equal(DECODE(*state, "{\"type\":\"tool_use\",\"id\":\"7\",\"session\":\"s\","
                            "\"seq\":2,\"block\":1,\"tool_id\":\"toolu_echo_1\",\"name\":"
                            "\"get_weather\",\"input\": { \"z\" : \"Par is\\u00e9\", \"a\":"
                            "[1, 1.50e+3, 123456789012345678901234], \"n\":{} } }", &m, err), 0);
    assert_int_equal(m.type, PL_SMSG_TEXT);
    assert_int_equal(m.piece.kind, PL_PIECE_TOOL_USE);
    assert_int_equal(m.piece.block, 1);
    assert_int_equal(m.seq, 2);
    assert_string_equal(m.piece.tool_id, "toolu_echo_1");
    assert_string_equal(m.piece.tool_name, "get_weather");
    static const char want[] =
        "{\"z\":\"Par is\\u00e9\",\"a\":[1,1.50e+3,123456789012345678901234],\"n\":{}}";
    assert_int_equal(m.piece.len, sizeof(want) - 1);
    assert_string_equal(m.piece.text, want);
    assert_true(m.content == m.piece.text);
    /* The last of two inputs, as json-c keeps. */
    assert_int_equal(DECODE(*state, "{\"type\":\"tool_use\",\"id\":\"7\",\"seq\":2,\"block\":1,"
                            "\"tool_id\":\"t\",\"name\":\"n\",\"input\":{\"a\":1},"
                            "\"input\":{\"b\":2}}", &m, err), 0);
    assert_string_equal(m.piece.text, "{\"b\":2}");
}

static void test_decode_tool_use_malformed(void **state)
{
    static const struct {
        const char *msg, *err;
    } cases[] = {
        {"{\"type\":\"tool_use\",\"id\":\"7\",\"seq\":2,\"block\":1,\"tool_id\":\"t\",\"name\":\"n\","
         "\"input\":[1]}", "tool_use message: field \"input\" must be an object"},
        {"{\"type\":\"tool_use\",\"id\":\"7\",\"seq\":2,\"block\":1,\"tool_id\":\"t\",\"name\":\"n\","
         "\"input\":\"{}\"}", "tool_use message: field \"input\" must be an object"},
        {"{\"type\":\"tool_use\",\"id\":\"7\",\"seq\":2,\"block\":1,\"tool_id\":\"t\",\"name\":\"n\"}",
         "tool_use message: field \"input\" is missing"},
        {"{\"type\":\"tool_use\",\"id\":\"7\",\"seq\":2,\"block\":1,\"name\":\"n\",\"input\":{}}",
         "tool_use message: field \"tool_id\" is missing"},
        {"{\"type\":\"tool_use\",\"id\":\"7\",\"seq\":2,\"block\":1,\"tool_id\":\"t\",\"input\":{}}",
         "tool_use message: field \"name\" is missing"},
        {"{\"type\":\"tool_use\",\"id\":\"7\",\"seq\":2,\"tool_id\":\"t\",\"name\":\"n\",\"input\":{}}",
         "tool_use message: field \"block\" is missing"},
        {"{\"type\":\"tool_use\",\"id\":\"7\",\"seq\":2,\"block\":1,\"tool_id\":\"t\",\"name\":\"n\","
         "\"input\":{\"a\":\"\\ud800\"}}",
         "tool_use message: a string holds an unpaired UTF-16 surrogate escape"},
        {"{\"type\":\"tool_use\",\"id\":\"7\",\"seq\":2,\"block\":1,\"tool_id\":\"t\",\"name\":\"n\","
         "\"input\":{\"a\":\"\xC3\"}}", "tool_use message: field \"input\" is not valid UTF-8"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pl_server_msg m;
        char err[256];
        assert_int_equal(decode_exact(*state, cases[i].msg, strlen(cases[i].msg), &m, err,
                                      sizeof(err)), -1);
        assert_string_equal(err, cases[i].err);
        assert_true(m.has_id && m.id == 7); /* the request can be failed */
        assert_null(m.piece.text);
    }
}

static void test_decode_done_stop_sequence(void **state)
{
    pl_server_msg m;
    char err[256];
    assert_int_equal(DECODE(*state, "{\"type\":\"done\",\"id\":\"7\",\"stop_reason\":"
                            "\"stop_sequence\",\"stop_sequence\":\"END\",\"seq_end\":3}", &m, err), 0);
    assert_string_equal(m.stop_reason, "stop_sequence");
    assert_string_equal(m.stop_sequence, "END");
    assert_int_equal(DECODE(*state, "{\"type\":\"done\",\"id\":\"7\",\"stop_reason\":"
                            "\"tool_use\",\"seq_end\":3,\"stop_sequence\":null}", &m, err), 0);
    assert_string_equal(m.stop_reason, "tool_use");
    assert_null(m.stop_sequence);
    assert_int_equal(DECODE(*state, "{\"type\":\"done\",\"id\":\"7\",\"stop_reason\":"
                            "\"stop_sequence\",\"stop_sequence\":1,\"seq_end\":3}", &m, err), -1);
    assert_string_equal(err, "done message: field \"stop_sequence\" must be a string");
}

static void check_hello_defaults(const pl_server_msg *m)
{
    assert_int_equal(m->type, PL_SMSG_HELLO);
    assert_string_equal(m->protocol, "parley.v1");
    assert_true(m->max_message_bytes == PL_PROTO_DEFAULT_MAX_MESSAGE_BYTES);
    assert_int_equal(m->heartbeat_s, 0);
    assert_int_equal(m->idempotency_window_s, 0);
    assert_null(m->server);
    assert_int_equal(m->retry_after_ms, -1);
}

static void test_decode_hello_minimal_and_null(void **state)
{
    pl_server_msg m;
    char err[256];
    assert_int_equal(DECODE(*state,
        "{\"type\":\"hello\",\"protocol\":\"parley.v1\"}", &m, err), 0);
    check_hello_defaults(&m);
    assert_int_equal(DECODE(*state,
        "{\"type\":\"hello\",\"protocol\":\"parley.v1\",\"max_message_bytes\":null,"
        "\"heartbeat_s\":null,\"idempotency_window_s\":null,\"server\":null}",
        &m, err), 0);
    check_hello_defaults(&m);
}

static void test_decode_hello_limits(void **state)
{
    pl_server_msg m;
    char err[256];
    assert_int_equal(DECODE(*state,
        "{\"type\":\"hello\",\"protocol\":\"parley.v1\","
        "\"max_message_bytes\":9223372036854775807,\"heartbeat_s\":4294967295,"
        "\"idempotency_window_s\":0}", &m, err), 0);
    assert_true(m.max_message_bytes == (uint64_t)INT64_MAX);
    assert_true(m.heartbeat_s == UINT32_MAX);
    assert_int_equal(m.idempotency_window_s, 0);
}

static void test_decode_ack(void **state)
{
    pl_server_msg m;
    char err[256];
    assert_int_equal(DECODE(*state,
        "{\"type\":\"ack\",\"id\":\"7231898455818240001\"}", &m, err), 0);
    assert_int_equal(m.type, PL_SMSG_ACK);
    assert_true(m.has_id);
    assert_true(m.id == UINT64_C(7231898455818240001));
    assert_null(m.session);
    assert_null(m.content);
}

static void test_decode_text_full(void **state)
{
    pl_server_msg m;
    char err[256];
    assert_int_equal(DECODE(*state,
        "{\"type\":\"text\",\"id\":\"12\",\"session\":\"support-42\",\"seq\":3,"
        "\"content\":\"Hel\\\"lo\\n caf\\u00e9 \\ud83d\\ude00 \xE2\x82\xAC\"}",
        &m, err), 0);
    assert_int_equal(m.type, PL_SMSG_TEXT);
    assert_true(m.has_id);
    assert_true(m.id == 12);
    assert_string_equal(m.session, "support-42");
    assert_int_equal(m.seq, 3);
    static const char want[] =
        "Hel\"lo\n caf\xC3\xA9 \xF0\x9F\x98\x80 \xE2\x82\xAC";
    assert_int_equal(m.content_len, sizeof(want) - 1);
    assert_memory_equal(m.content, want, sizeof(want) - 1);
    assert_int_equal(m.content[m.content_len], '\0'); /* NUL-terminated */
}

static void test_decode_text_optional_absent_and_null(void **state)
{
    pl_server_msg m;
    char err[256];
    assert_int_equal(DECODE(*state,
        "{\"type\":\"text\",\"id\":\"1\",\"seq\":0,\"content\":\"\"}", &m, err), 0);
    assert_null(m.session);
    assert_int_equal(m.seq, 0);
    assert_non_null(m.content);
    assert_int_equal(m.content_len, 0);
    assert_int_equal(DECODE(*state,
        "{\"type\":\"text\",\"id\":\"1\",\"session\":null,\"seq\":4294967295,"
        "\"content\":\"x\"}", &m, err), 0);
    assert_null(m.session);
    assert_true(m.seq == UINT32_MAX);
}

static void test_decode_text_embedded_nul(void **state)
{
    pl_server_msg m;
    char err[256];
    assert_int_equal(DECODE(*state,
        "{\"type\":\"text\",\"id\":\"1\",\"seq\":0,\"content\":\"a\\u0000b\"}",
        &m, err), 0);
    /* The length, not strlen, tells where the piece ends. */
    assert_int_equal(m.content_len, 3);
    assert_memory_equal(m.content, "a\0b", 3);
}

static void test_decode_done_full(void **state)
{
    pl_server_msg m;
    char err[256];
    assert_int_equal(DECODE(*state,
        "{\"type\":\"done\",\"id\":\"99\",\"session\":\"s1\",\"stop_reason\":"
        "\"end_turn\",\"seq_end\":12,\"usage\":{\"input_tokens\":40,"
        "\"output_tokens\":12}}", &m, err), 0);
    assert_int_equal(m.type, PL_SMSG_DONE);
    assert_true(m.has_id);
    assert_true(m.id == 99);
    assert_string_equal(m.session, "s1");
    assert_string_equal(m.stop_reason, "end_turn");
    assert_true(m.has_seq_end);
    assert_int_equal(m.seq_end, 12);
    assert_true(m.input_tokens == 40);
    assert_true(m.output_tokens == 12);
}

static void test_decode_done_optional_absent_and_null(void **state)
{
    pl_server_msg m;
    char err[256];
    static const char *const inputs[] = {
        "{\"type\":\"done\",\"id\":\"5\",\"stop_reason\":\"cancelled\",\"seq_end\":0}",
        "{\"type\":\"done\",\"id\":\"5\",\"stop_reason\":\"cancelled\",\"seq_end\":0,"
        "\"usage\":null,\"session\":null}",
        "{\"type\":\"done\",\"id\":\"5\",\"stop_reason\":\"cancelled\",\"seq_end\":0,"
        "\"usage\":{}}",
        "{\"type\":\"done\",\"id\":\"5\",\"stop_reason\":\"cancelled\",\"seq_end\":0,"
        "\"usage\":{\"input_tokens\":null,\"output_tokens\":null}}",
    };
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        assert_int_equal(decode_exact(*state, inputs[i], strlen(inputs[i]),
                                      &m, err, sizeof(err)), 0);
        assert_int_equal(m.type, PL_SMSG_DONE);
        assert_true(m.id == 5);
        assert_string_equal(m.stop_reason, "cancelled");
        assert_true(m.has_seq_end);
        assert_int_equal(m.seq_end, 0);
        assert_null(m.session);
        assert_true(m.input_tokens == 0 && m.output_tokens == 0);
    }
}

static void test_decode_done_big_usage(void **state)
{
    pl_server_msg m;
    char err[256];
    assert_int_equal(DECODE(*state,
        "{\"type\":\"done\",\"id\":\"5\",\"stop_reason\":\"max_tokens\",\"seq_end\":"
        "4294967295,\"usage\":{\"input_tokens\":9223372036854775807,"
        "\"output_tokens\":0}}", &m, err), 0);
    assert_true(m.seq_end == UINT32_MAX);
    assert_true(m.input_tokens == (uint64_t)INT64_MAX);
    assert_true(m.output_tokens == 0);
}

static void test_decode_error_full(void **state)
{
    pl_server_msg m;
    char err[256];
    assert_int_equal(DECODE(*state,
        "{\"type\":\"error\",\"id\":\"77\",\"code\":\"rate_limited\","
        "\"content\":\"slow down \xC3\xA9\",\"retry_after_ms\":1200,\"seq_end\":3}",
        &m, err), 0);
    assert_int_equal(m.type, PL_SMSG_ERROR);
    assert_true(m.has_id);
    assert_true(m.id == 77);
    assert_int_equal(m.code, PL_SERR_RATE_LIMITED);
    assert_string_equal(m.code_str, "rate_limited");
    assert_string_equal(m.content, "slow down \xC3\xA9");
    assert_int_equal(m.content_len, strlen("slow down \xC3\xA9"));
    assert_int_equal(m.retry_after_ms, 1200);
    assert_true(m.has_seq_end);
    assert_int_equal(m.seq_end, 3);
}

static void check_error_minimal(const pl_server_msg *m)
{
    assert_int_equal(m->type, PL_SMSG_ERROR);
    assert_false(m->has_id);
    assert_int_equal(m->code, PL_SERR_TOO_LARGE);
    assert_null(m->content);
    assert_int_equal(m->content_len, 0);
    assert_int_equal(m->retry_after_ms, -1);
    assert_false(m->has_seq_end);
}

static void test_decode_error_optional_absent_and_null(void **state)
{
    pl_server_msg m;
    char err[256];
    assert_int_equal(DECODE(*state,
        "{\"type\":\"error\",\"code\":\"too_large\"}", &m, err), 0);
    check_error_minimal(&m);
    assert_int_equal(DECODE(*state,
        "{\"type\":\"error\",\"code\":\"too_large\",\"id\":null,\"content\":null,"
        "\"retry_after_ms\":null,\"seq_end\":null}", &m, err), 0);
    check_error_minimal(&m);
}

static void test_decode_error_codes(void **state)
{
    static const struct {
        const char *json;
        pl_server_err code;
    } cases[] = {
        {"{\"type\":\"error\",\"code\":\"invalid_request\"}", PL_SERR_INVALID_REQUEST},
        {"{\"type\":\"error\",\"code\":\"unauthorized\"}", PL_SERR_UNAUTHORIZED},
        {"{\"type\":\"error\",\"code\":\"too_large\"}", PL_SERR_TOO_LARGE},
        {"{\"type\":\"error\",\"code\":\"rate_limited\"}", PL_SERR_RATE_LIMITED},
        {"{\"type\":\"error\",\"code\":\"overloaded\"}", PL_SERR_OVERLOADED},
        {"{\"type\":\"error\",\"code\":\"internal\"}", PL_SERR_INTERNAL},
        {"{\"type\":\"error\",\"code\":\"resume_failed\"}", PL_SERR_RESUME_FAILED},
        {"{\"type\":\"error\",\"code\":\"teapot\"}", PL_SERR_OTHER},
        {"{\"type\":\"error\",\"code\":\"\"}", PL_SERR_OTHER},
        {"{\"type\":\"error\",\"code\":\"Internal\"}", PL_SERR_OTHER},
        /* A NUL inside must not make a prefix match. */
        {"{\"type\":\"error\",\"code\":\"internal\\u0000x\"}", PL_SERR_OTHER},
    };
    pl_server_msg m;
    char err[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(decode_exact(*state, cases[i].json, strlen(cases[i].json),
                                      &m, err, sizeof(err)), 0);
        assert_int_equal(m.type, PL_SMSG_ERROR);
        if (m.code != cases[i].code)
            fail_msg("%s: code %d, expected %d", cases[i].json, m.code,
                     cases[i].code);
    }
    assert_int_equal(DECODE(*state,
        "{\"type\":\"error\",\"code\":\"teapot\"}", &m, err), 0);
    assert_string_equal(m.code_str, "teapot"); /* kept for logging */
}

static void test_decode_unknown_type(void **state)
{
    pl_server_msg m;
    char err[256];
    assert_int_equal(DECODE(*state,
        "{\"type\":\"progress\",\"id\":\"not an id\",\"percent\":50}", &m, err), 0);
    assert_int_equal(m.type, PL_SMSG_UNKNOWN);
    assert_int_equal(DECODE(*state, "{\"type\":\"\"}", &m, err), 0);
    assert_int_equal(m.type, PL_SMSG_UNKNOWN);
    assert_int_equal(DECODE(*state, "{\"type\":\"ACK\",\"id\":\"1\"}", &m, err), 0);
    assert_int_equal(m.type, PL_SMSG_UNKNOWN);
    assert_int_equal(DECODE(*state, "{\"type\":\"ack\\u0000x\",\"id\":\"1\"}",
                            &m, err), 0);
    assert_int_equal(m.type, PL_SMSG_UNKNOWN);
}

static void test_decode_ignores_unknown_fields(void **state)
{
    pl_server_msg m;
    char err[256];
    assert_int_equal(DECODE(*state,
        " \r\n\t{\"extra\":{\"a\":[1,2,{\"b\":null}],\"c\":1.5e3},\"type\":\"ack\","
        "\"flag\":true,\"id\":\"3\",\"n\":-7} \n", &m, err), 0);
    assert_int_equal(m.type, PL_SMSG_ACK);
    assert_true(m.id == 3);
}

static void test_decode_resets_previous_message(void **state)
{
    pl_server_msg m;
    char err[256];
    assert_int_equal(DECODE(*state,
        "{\"type\":\"error\",\"id\":\"8\",\"code\":\"overloaded\","
        "\"retry_after_ms\":5,\"content\":\"x\"}", &m, err), 0);
    /* Same struct, new message: nothing of the old one may leak through. */
    assert_int_equal(DECODE(*state, "{\"type\":\"ack\",\"id\":\"9\"}", &m, err), 0);
    assert_int_equal(m.type, PL_SMSG_ACK);
    assert_true(m.id == 9);
    assert_null(m.content);
    assert_null(m.code_str);
    assert_int_equal(m.retry_after_ms, -1);
    assert_true(m.max_message_bytes == PL_PROTO_DEFAULT_MAX_MESSAGE_BYTES);
}

static void test_decoders_are_independent(void **state)
{
    (void)state;
    pl_decoder *a = pl_decoder_new(), *b = pl_decoder_new();
    assert_non_null(a);
    assert_non_null(b);
    pl_server_msg ma, mb;
    char err[256];
    assert_int_equal(DECODE(a,
        "{\"type\":\"text\",\"id\":\"1\",\"seq\":0,\"content\":\"from a\"}",
        &ma, err), 0);
    assert_int_equal(DECODE(b,
        "{\"type\":\"text\",\"id\":\"2\",\"seq\":0,\"content\":\"from b\"}",
        &mb, err), 0);
    /* a's strings outlive b's decode (and the freed input buffers). */
    assert_string_equal(ma.content, "from a");
    assert_string_equal(mb.content, "from b");
    pl_decoder_free(a);
    pl_decoder_free(b);
    pl_decoder_free(NULL);
}

/* Found by tests/fuzz/fuzz_protocol: a message cut inside a surrogate pair
 * escape left json-c's tokener holding the high half, and the next message's
 * first \u escape came out with a U+FFFD in front (so a key "id\u0000" no
 * longer matched "id", and content gained a character the server never
 * sent). */
static void test_decode_after_cut_surrogate_pair(void **state)
{
    static const char *const cuts[] = {
        "{\"type\":\"ack\",\"id\":\"\\ud83d",
        "{\"type\":\"ack\",\"id\":\"\\ud83d\\ude",
        "{\"type\":\"ack\",\"id\":\"\\ud83d\\ude\xb9" "080001\"}", /* the fuzzer's */
    };
    pl_server_msg m;
    char err[256];
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        assert_int_equal(decode_exact(*state, cuts[i], strlen(cuts[i]), &m, err,
                                      sizeof(err)), -1);
        assert_int_equal(DECODE(*state,
            "{\"type\":\"text\",\"id\":\"1\",\"seq\":0,\"content\":\"\\u00e9\"}",
            &m, err), 0);
        assert_int_equal(m.content_len, 2);
        assert_memory_equal(m.content, "\xc3\xa9", 2);
    }
    assert_int_equal(decode_exact(*state, cuts[2], strlen(cuts[2]), &m, err,
                                  sizeof(err)), -1);
    assert_int_equal(DECODE(*state,
        "{\"type\":\"text\",\"id\\u0000\":\"12\",\"seq\":3,\"content\":\"x\"}",
        &m, err), 0);
    assert_true(m.id == 12);
}

/* ======================================================================== */
/* Decoding malformed messages                                               */
/* ======================================================================== */

typedef struct bad_case {
    const char *json;
    size_t len;        /* 0: strlen(json) */
    const char *err;   /* a substring the error sentence must contain */
} bad_case;

static void check_bad(pl_decoder *dec, const bad_case *c)
{
    pl_server_msg m;
    char err[256] = "untouched";
    size_t len = c->len ? c->len : strlen(c->json);
    if (decode_exact(dec, c->json, len, &m, err, sizeof(err)) != -1)
        fail_msg("accepted: %.*s", (int)len, c->json);
    if (!strstr(err, c->err))
        fail_msg("for %.*s\n  error \"%s\"\n  lacks \"%s\"", (int)len, c->json,
                 err, c->err);
    /* Only type, has_id and id survive a failure. */
    assert_null(m.content);
    assert_null(m.session);
    assert_int_equal(m.retry_after_ms, -1);
}

#define BAD(lit, e) {(lit), sizeof(lit) - 1, (e)}

static void test_decode_malformed_json(void **state)
{
    static const bad_case cases[] = {
        BAD("", "empty"),
        BAD("   ", "not a JSON object"),
        BAD("{\"type\":\"ack\",\"id\":\"1\"", "truncated"),
        BAD("{\"type\":\"ack\",\"id\":\"1", "truncated"),
        BAD("{", "truncated"),
        BAD("{\"type\":\"ack\",\"id\":\"1\"}x", "data after the JSON object at byte 23"),
        BAD("{\"type\":\"ack\",\"id\":\"1\"} \n{}", "data after the JSON object at byte 25"),
        BAD("{\"type\":\"ack\",\"id\":\"1\"}\0", "after the JSON object"),
        BAD("{\"type\":\"ack\",\"id\":\"1\"}\0garbage", "after the JSON object"),
        BAD("[{\"type\":\"ack\",\"id\":\"1\"}]", "not a JSON object"),
        BAD("\"ack\"", "not a JSON object"),
        BAD("123", "not a JSON object"),
        BAD("null", "not a JSON object"),
        BAD("true", "not a JSON object"),
        BAD("\xEF\xBB\xBF{\"type\":\"ack\",\"id\":\"1\"}", "not a JSON object"),
        /* Not RFC 8259 JSON, though lenient json-c would take it. */
        BAD("{\"type\":\"ack\",\"id\":\"1\",}", "malformed JSON"),
        BAD("{'type':'ack','id':'1'}", "malformed JSON"),
        BAD("{/*c*/\"type\":\"ack\",\"id\":\"1\"}", "malformed JSON"),
        BAD("{\"type\":\"ack\",\"id\":\"1\",\"x\":01}", "malformed JSON"),
        BAD("{\"type\":\"ack\",\"id\":\"1\",\"x\":True}", "malformed JSON"),
        BAD("{\"type\":\"ack\" \"id\":\"1\"}", "malformed JSON"),
        BAD("{\"type\":\"ack\",\"id\":\"1\\q\"}", "malformed JSON"),
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_bad(*state, &cases[i]);
}

static void test_decode_missing_or_bad_type(void **state)
{
    static const bad_case cases[] = {
        BAD("{}", "no \"type\""),
        BAD("{\"id\":\"1\"}", "no \"type\""),
        BAD("{\"type\":null,\"id\":\"1\"}", "no \"type\""),
        BAD("{\"type\":5,\"id\":\"1\"}", "\"type\" must be a string"),
        BAD("{\"type\":[\"ack\"],\"id\":\"1\"}", "\"type\" must be a string"),
        BAD("{\"type\":{},\"id\":\"1\"}", "\"type\" must be a string"),
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_bad(*state, &cases[i]);
}

static void test_decode_bad_ids(void **state)
{
    static const bad_case cases[] = {
        BAD("{\"type\":\"ack\"}", "ack message: field \"id\" is missing"),
        BAD("{\"type\":\"ack\",\"id\":null}", "field \"id\" is missing"),
        BAD("{\"type\":\"ack\",\"id\":\"0\"}", "field \"id\" must be a decimal"),
        BAD("{\"type\":\"ack\",\"id\":\"01\"}", "field \"id\" must be a decimal"),
        BAD("{\"type\":\"ack\",\"id\":\"-1\"}", "field \"id\" must be a decimal"),
        BAD("{\"type\":\"ack\",\"id\":\"+1\"}", "field \"id\" must be a decimal"),
        BAD("{\"type\":\"ack\",\"id\":\"\"}", "field \"id\" must be a decimal"),
        BAD("{\"type\":\"ack\",\"id\":\" 1\"}", "field \"id\" must be a decimal"),
        BAD("{\"type\":\"ack\",\"id\":\"1.0\"}", "field \"id\" must be a decimal"),
        BAD("{\"type\":\"ack\",\"id\":\"9223372036854775808\"}",
            "field \"id\" must be a decimal"),
        BAD("{\"type\":\"ack\",\"id\":\"99999999999999999999999\"}",
            "field \"id\" must be a decimal"),
        BAD("{\"type\":\"ack\",\"id\":\"abc\"}", "field \"id\" must be a decimal"),
        BAD("{\"type\":\"ack\",\"id\":\"1\\u00002\"}", "field \"id\" must be a decimal"),
        BAD("{\"type\":\"ack\",\"id\":1}", "field \"id\" must be a string"),
        BAD("{\"type\":\"ack\",\"id\":7231898455818240001}",
            "field \"id\" must be a string"),
        BAD("{\"type\":\"ack\",\"id\":true}", "field \"id\" must be a string"),
        BAD("{\"type\":\"text\",\"id\":\"0\",\"seq\":0,\"content\":\"x\"}",
            "text message: field \"id\""),
        BAD("{\"type\":\"done\",\"id\":\"x\",\"stop_reason\":\"end_turn\",\"seq_end\":0}",
            "done message: field \"id\""),
        BAD("{\"type\":\"error\",\"id\":\"0\",\"code\":\"internal\"}",
            "error message: field \"id\""),
        BAD("{\"type\":\"error\",\"id\":5,\"code\":\"internal\"}",
            "error message: field \"id\" must be a string"),
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_bad(*state, &cases[i]);
}

#define TEXT_WITH(fields) "{\"type\":\"text\",\"id\":\"1\"," fields "}"

static void test_decode_bad_text(void **state)
{
    static const bad_case cases[] = {
        BAD(TEXT_WITH("\"content\":\"x\""),
            "text message: field \"seq\" is missing"),
        BAD(TEXT_WITH("\"seq\":null,\"content\":\"x\""), "\"seq\" is missing"),
        BAD(TEXT_WITH("\"seq\":\"1\",\"content\":\"x\""),
            "text message: field \"seq\" must be a non-negative integer"),
        BAD(TEXT_WITH("\"seq\":-1,\"content\":\"x\""),
            "\"seq\" must be a non-negative integer"),
        BAD(TEXT_WITH("\"seq\":1.5,\"content\":\"x\""),
            "\"seq\" must be a non-negative integer"),
        BAD(TEXT_WITH("\"seq\":1.0,\"content\":\"x\""),
            "\"seq\" must be a non-negative integer"),
        BAD(TEXT_WITH("\"seq\":1e2,\"content\":\"x\""),
            "\"seq\" must be a non-negative integer"),
        BAD(TEXT_WITH("\"seq\":true,\"content\":\"x\""),
            "\"seq\" must be a non-negative integer"),
        BAD(TEXT_WITH("\"seq\":4294967296,\"content\":\"x\""),
            "\"seq\" is out of range"),
        BAD(TEXT_WITH("\"seq\":9223372036854775808,\"content\":\"x\""),
            "\"seq\" is out of range"),
        /* Beyond 64 bits json-c clamps silently: must still be refused. */
        BAD(TEXT_WITH("\"seq\":99999999999999999999999,\"content\":\"x\""),
            "\"seq\" is out of range"),
        BAD(TEXT_WITH("\"seq\":-99999999999999999999999,\"content\":\"x\""),
            "\"seq\" must be a non-negative integer"),
        BAD(TEXT_WITH("\"seq\":0"), "text message: field \"content\" is missing"),
        BAD(TEXT_WITH("\"seq\":0,\"content\":null"), "\"content\" is missing"),
        BAD(TEXT_WITH("\"seq\":0,\"content\":5"), "\"content\" must be a string"),
        BAD(TEXT_WITH("\"seq\":0,\"content\":[\"x\"]"),
            "\"content\" must be a string"),
        BAD(TEXT_WITH("\"seq\":0,\"content\":\"a\xFF\""),
            "\"content\" is not valid UTF-8"),
        BAD(TEXT_WITH("\"seq\":0,\"content\":\"\xC0\x80\""),
            "\"content\" is not valid UTF-8"),
        BAD(TEXT_WITH("\"seq\":0,\"content\":\"\xED\xA0\x80\""),
            "\"content\" is not valid UTF-8"),
        BAD(TEXT_WITH("\"seq\":0,\"content\":\"\xF4\x90\x80\x80\""),
            "\"content\" is not valid UTF-8"),
        BAD(TEXT_WITH("\"seq\":0,\"content\":\"\xE2\x82\""),
            "\"content\" is not valid UTF-8"),
        /* Unpaired surrogate escapes, which json-c turns into U+FFFD. */
        BAD(TEXT_WITH("\"seq\":0,\"content\":\"\\ud800\""), "unpaired"),
        BAD(TEXT_WITH("\"seq\":0,\"content\":\"a\\uDBFFb\""), "unpaired"),
        BAD(TEXT_WITH("\"seq\":0,\"content\":\"\\udc00\""), "unpaired"),
        BAD(TEXT_WITH("\"seq\":0,\"content\":\"\\ud800\\u0041\""), "unpaired"),
        BAD(TEXT_WITH("\"seq\":0,\"content\":\"\\ude00\\ud83d\""), "unpaired"),
        BAD(TEXT_WITH("\"seq\":0,\"content\":\"\\ud83d\\ud83d\""), "unpaired"),
        BAD(TEXT_WITH("\"seq\":0,\"content\":\"\\\\\\ud800\""), "unpaired"),
        BAD(TEXT_WITH("\"seq\":0,\"content\":\"x\",\"session\":\"a b\""),
            "\"session\" must be 1-128 bytes"),
        BAD(TEXT_WITH("\"seq\":0,\"content\":\"x\",\"session\":\"\""),
            "\"session\" must be 1-128 bytes"),
        BAD(TEXT_WITH("\"seq\":0,\"content\":\"x\",\"session\":\"caf\xC3\xA9\""),
            "\"session\" must be 1-128 bytes"),
        BAD(TEXT_WITH("\"seq\":0,\"content\":\"x\",\"session\":7"),
            "\"session\" must be a string"),
        BAD(TEXT_WITH("\"seq\":0,\"content\":\"x\",\"session\":\""
                      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""),
            "\"session\" must be 1-128 bytes"),
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_bad(*state, &cases[i]);
}

/* Escapes that look like surrogates but are not must still pass. */
static void test_decode_escapes_that_are_fine(void **state)
{
    pl_server_msg m;
    char err[256];
    /* "\\ud800" is a backslash followed by the text "ud800". */
    assert_int_equal(DECODE(*state, TEXT_WITH(
        "\"seq\":0,\"content\":\"\\\\ud800 \\uD83D\\uDE00 \\uffff \\ud7ff\""),
        &m, err), 0);
    static const char want[] =
        "\\ud800 \xF0\x9F\x98\x80 \xEF\xBF\xBF \xED\x9F\xBF";
    assert_int_equal(m.content_len, sizeof(want) - 1);
    assert_memory_equal(m.content, want, sizeof(want) - 1);
}

#define DONE_WITH(fields) "{\"type\":\"done\",\"id\":\"4\"," fields "}"

static void test_decode_bad_done(void **state)
{
    static const bad_case cases[] = {
        BAD(DONE_WITH("\"seq_end\":1"),
            "done message: field \"stop_reason\" is missing"),
        BAD(DONE_WITH("\"stop_reason\":null,\"seq_end\":1"),
            "\"stop_reason\" is missing"),
        BAD(DONE_WITH("\"stop_reason\":1,\"seq_end\":1"),
            "\"stop_reason\" must be a string"),
        BAD(DONE_WITH("\"stop_reason\":\"end_turn\""),
            "done message: field \"seq_end\" is missing"),
        BAD(DONE_WITH("\"stop_reason\":\"end_turn\",\"seq_end\":-1"),
            "\"seq_end\" must be a non-negative integer"),
        BAD(DONE_WITH("\"stop_reason\":\"end_turn\",\"seq_end\":\"3\""),
            "\"seq_end\" must be a non-negative integer"),
        BAD(DONE_WITH("\"stop_reason\":\"end_turn\",\"seq_end\":4294967296"),
            "\"seq_end\" is out of range"),
        BAD(DONE_WITH("\"stop_reason\":\"end_turn\",\"seq_end\":1,\"usage\":[]"),
            "\"usage\" must be an object"),
        BAD(DONE_WITH("\"stop_reason\":\"end_turn\",\"seq_end\":1,\"usage\":3"),
            "\"usage\" must be an object"),
        BAD(DONE_WITH("\"stop_reason\":\"end_turn\",\"seq_end\":1,"
                      "\"usage\":{\"input_tokens\":-1}"),
            "done message: field \"usage.input_tokens\" must be a non-negative"),
        BAD(DONE_WITH("\"stop_reason\":\"end_turn\",\"seq_end\":1,"
                      "\"usage\":{\"output_tokens\":\"12\"}"),
            "field \"usage.output_tokens\" must be a non-negative"),
        BAD(DONE_WITH("\"stop_reason\":\"end_turn\",\"seq_end\":1,"
                      "\"usage\":{\"output_tokens\":9223372036854775808}"),
            "field \"usage.output_tokens\" is out of range"),
        BAD(DONE_WITH("\"stop_reason\":\"end_turn\",\"seq_end\":1,"
                      "\"usage\":{\"input_tokens\":18446744073709551616}"),
            "field \"usage.input_tokens\" is out of range"),
        BAD(DONE_WITH("\"stop_reason\":\"end\xFF\",\"seq_end\":1"),
            "\"stop_reason\" is not valid UTF-8"),
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_bad(*state, &cases[i]);
}

#define HELLO_WITH(fields) "{\"type\":\"hello\"," fields "}"

static void test_decode_bad_hello(void **state)
{
    static const bad_case cases[] = {
        BAD("{\"type\":\"hello\"}", "hello message: field \"protocol\" is missing"),
        BAD(HELLO_WITH("\"protocol\":null"), "\"protocol\" is missing"),
        BAD(HELLO_WITH("\"protocol\":1"), "\"protocol\" must be a string"),
        BAD(HELLO_WITH("\"protocol\":\"parley.v1\",\"max_message_bytes\":-1"),
            "\"max_message_bytes\" must be a non-negative integer"),
        BAD(HELLO_WITH("\"protocol\":\"parley.v1\",\"max_message_bytes\":1e6"),
            "\"max_message_bytes\" must be a non-negative integer"),
        BAD(HELLO_WITH("\"protocol\":\"parley.v1\","
                       "\"max_message_bytes\":18446744073709551615"),
            "\"max_message_bytes\" is out of range"),
        BAD(HELLO_WITH("\"protocol\":\"parley.v1\",\"heartbeat_s\":\"30\""),
            "\"heartbeat_s\" must be a non-negative integer"),
        BAD(HELLO_WITH("\"protocol\":\"parley.v1\",\"heartbeat_s\":4294967296"),
            "\"heartbeat_s\" is out of range"),
        BAD(HELLO_WITH("\"protocol\":\"parley.v1\",\"idempotency_window_s\":-600"),
            "\"idempotency_window_s\" must be a non-negative integer"),
        BAD(HELLO_WITH("\"protocol\":\"parley.v1\",\"server\":5"),
            "\"server\" must be a string"),
        BAD(HELLO_WITH("\"protocol\":\"parley.v1\",\"server\":\"\xC1\xBF\""),
            "\"server\" is not valid UTF-8"),
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_bad(*state, &cases[i]);
}

#define ERROR_WITH(fields) "{\"type\":\"error\"," fields "}"

static void test_decode_bad_error(void **state)
{
    static const bad_case cases[] = {
        BAD("{\"type\":\"error\"}", "error message: field \"code\" is missing"),
        BAD(ERROR_WITH("\"code\":null"), "\"code\" is missing"),
        BAD(ERROR_WITH("\"code\":429"), "\"code\" must be a string"),
        BAD(ERROR_WITH("\"code\":\"internal\",\"content\":5"),
            "\"content\" must be a string"),
        BAD(ERROR_WITH("\"code\":\"internal\",\"content\":\"\xFF\""),
            "\"content\" is not valid UTF-8"),
        BAD(ERROR_WITH("\"code\":\"rate_limited\",\"retry_after_ms\":-5"),
            "\"retry_after_ms\" must be a non-negative integer"),
        BAD(ERROR_WITH("\"code\":\"rate_limited\",\"retry_after_ms\":1.5"),
            "\"retry_after_ms\" must be a non-negative integer"),
        BAD(ERROR_WITH("\"code\":\"rate_limited\",\"retry_after_ms\":\"100\""),
            "\"retry_after_ms\" must be a non-negative integer"),
        BAD(ERROR_WITH("\"code\":\"rate_limited\","
                       "\"retry_after_ms\":99999999999999999999"),
            "\"retry_after_ms\" is out of range"),
        BAD(ERROR_WITH("\"code\":\"internal\",\"seq_end\":\"2\""),
            "\"seq_end\" must be a non-negative integer"),
        BAD(ERROR_WITH("\"code\":\"internal\",\"seq_end\":4294967296"),
            "\"seq_end\" is out of range"),
        BAD(ERROR_WITH("\"code\":\"internal\",\"content\":\"\\udfff\""), "unpaired"),
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_bad(*state, &cases[i]);
}

static void test_decode_error_retry_limit(void **state)
{
    pl_server_msg m;
    char err[256];
    assert_int_equal(DECODE(*state, ERROR_WITH(
        "\"code\":\"overloaded\",\"retry_after_ms\":9223372036854775807"),
        &m, err), 0);
    assert_true(m.retry_after_ms == INT64_MAX);
    assert_int_equal(DECODE(*state, ERROR_WITH(
        "\"code\":\"overloaded\",\"retry_after_ms\":0"), &m, err), 0);
    assert_int_equal(m.retry_after_ms, 0);
}

/* The brief's sentence, word for word, so error texts stay readable. */
static void test_decode_error_sentence(void **state)
{
    pl_server_msg m;
    char err[256];
    assert_int_equal(DECODE(*state, TEXT_WITH("\"seq\":-3,\"content\":\"x\""),
                            &m, err), -1);
    assert_string_equal(err,
        "text message: field \"seq\" must be a non-negative integer");
}

static void test_decode_failure_keeps_id(void **state)
{
    pl_server_msg m;
    char err[256];
    /* A text with a valid id but a bad seq: the caller can fail request 42. */
    assert_int_equal(DECODE(*state, "{\"type\":\"text\",\"id\":\"42\",\"seq\":-1,"
                            "\"content\":\"x\"}", &m, err), -1);
    assert_int_equal(m.type, PL_SMSG_TEXT);
    assert_true(m.has_id);
    assert_true(m.id == 42);
    assert_int_equal(m.seq, 0); /* half-read fields are cleared */

    assert_int_equal(DECODE(*state, "{\"type\":\"done\",\"id\":\"43\","
                            "\"stop_reason\":\"end_turn\"}", &m, err), -1);
    assert_true(m.has_id);
    assert_true(m.id == 43);
    assert_null(m.stop_reason);

    assert_int_equal(DECODE(*state, "{\"type\":\"error\",\"id\":\"44\"}", &m, err),
                     -1);
    assert_true(m.has_id);
    assert_true(m.id == 44);

    assert_int_equal(DECODE(*state, "{\"type\":\"text\",\"id\":\"45\",\"seq\":0,"
                            "\"content\":\"\\ud800\"}", &m, err), -1);
    assert_true(m.has_id);
    assert_true(m.id == 45);
    assert_null(m.content);

    /* No valid id, or no parse at all: no id to report. */
    assert_int_equal(DECODE(*state, "{\"type\":\"text\",\"id\":\"0\",\"seq\":0,"
                            "\"content\":\"x\"}", &m, err), -1);
    assert_false(m.has_id);
    assert_int_equal(DECODE(*state, "{\"type\":\"text\",\"id\":\"46\",\"seq\":0,",
                            &m, err), -1);
    assert_false(m.has_id);
    assert_int_equal(DECODE(*state, "{\"type\":\"ack\",\"id\":\"47\"}x", &m, err), -1);
    assert_false(m.has_id);
}

static void test_decode_err_buffer_sizes(void **state)
{
    pl_server_msg m;
    char small[8];
    memset(small, 'Z', sizeof(small));
    assert_int_equal(pl_proto_decode(*state, "[]", 2, &m, small, sizeof(small)), -1);
    assert_int_equal(strlen(small), sizeof(small) - 1); /* cut, terminated */
    assert_int_equal(pl_proto_decode(*state, "[]", 2, &m, NULL, 0), -1);
    assert_int_equal(pl_proto_decode(*state, "{\"type\":\"ack\",\"id\":\"1\"}", 23,
                                     &m, NULL, 0), 0);
    assert_int_equal(m.type, PL_SMSG_ACK);
    char one[1] = {'Z'};
    assert_int_equal(pl_proto_decode(*state, "{", 1, &m, one, 0), -1);
    assert_int_equal(one[0], 'Z'); /* size 0: not written */
}

/* Nesting beyond json-c's depth limit (32) is refused, without recursion
 * problems, even in a field the client would ignore. */
static char *nested(size_t depth, const char *head)
{
    size_t hl = strlen(head), len = hl + 2 * depth + 1;
    char *s = malloc(len + 1);
    assert_non_null(s);
    memcpy(s, head, hl);
    memset(s + hl, '[', depth);
    memset(s + hl + depth, ']', depth);
    s[len - 1] = '}';
    s[len] = '\0';
    return s;
}

static void test_decode_deep_nesting(void **state)
{
    pl_server_msg m;
    char err[256];
    char *ok = nested(20, "{\"type\":\"ack\",\"id\":\"1\",\"x\":");
    assert_int_equal(decode_exact(*state, ok, strlen(ok), &m, err, sizeof(err)), 0);
    assert_int_equal(m.type, PL_SMSG_ACK);
    free(ok);

    char *deep = nested(100000, "{\"type\":\"ack\",\"id\":\"1\",\"x\":");
    assert_int_equal(decode_exact(*state, deep, strlen(deep), &m, err,
                                  sizeof(err)), -1);
    assert_non_null(strstr(err, "malformed JSON"));
    free(deep);

    char *objs = malloc(200001);
    assert_non_null(objs);
    for (size_t i = 0; i < 100000; i++)
        memcpy(objs + 2 * i, "{\"", 2);
    assert_int_equal(decode_exact(*state, objs, 200000, &m, err, sizeof(err)), -1);
    free(objs);
}

/* ======================================================================== */
/* Robustness loops                                                          */
/* ======================================================================== */

static const char *const valid_samples[] = {
    "{\"type\":\"done\",\"id\":\"7231898455818240001\",\"session\":\"support-42\","
    "\"stop_reason\":\"end_turn\",\"seq_end\":12,\"usage\":{\"input_tokens\":40,"
    "\"output_tokens\":12}}",
    "{\"type\":\"text\",\"id\":\"12\",\"session\":\"s\",\"seq\":3,"
    "\"content\":\"a\\\"b\\\\c\\u00e9\\ud83d\\ude00 \xE2\x82\xAC\"}",
    "{\"type\":\"hello\",\"protocol\":\"parley.v1.zstd\",\"max_message_bytes\":1048576,"
    "\"heartbeat_s\":30,\"idempotency_window_s\":600,\"server\":\"ref/0.1\"}",
    "{\"type\":\"error\",\"id\":\"9\",\"code\":\"rate_limited\",\"content\":\"x\","
    "\"retry_after_ms\":1200,\"seq_end\":2}",
};

/* Every proper prefix of a valid message is rejected, the whole accepted. */
static void test_decode_every_prefix(void **state)
{
    pl_server_msg m;
    char err[256];
    for (size_t s = 0; s < sizeof(valid_samples) / sizeof(valid_samples[0]); s++) {
        const char *full = valid_samples[s];
        size_t len = strlen(full);
        for (size_t n = 0; n < len; n++)
            if (decode_exact(*state, full, n, &m, err, sizeof(err)) != -1)
                fail_msg("prefix of %zu bytes accepted: %.*s", n, (int)n, full);
        assert_int_equal(decode_exact(*state, full, len, &m, err, sizeof(err)), 0);
    }
}

/* Whatever one byte becomes, decoding neither crashes nor hands out a
 * string that is not UTF-8. */
static void check_decoded_strings(const pl_server_msg *m)
{
    const char *strs[] = {m->session, m->protocol, m->server, m->stop_reason,
                          m->code_str};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        if (strs[i])
            assert_true(pl_utf8_valid(strs[i], strlen(strs[i])));
    if (m->content)
        assert_true(pl_utf8_valid(m->content, m->content_len));
}

static void test_decode_byte_mutations(void **state)
{
    static const unsigned char subst[] = {
        0x00, '"', '\\', '{', '}', '[', ']', ':', ',', '-', '0', '9', 'u',
        'n', ' ', 0x7f, 0x80, 0xC0, 0xED, 0xF4, 0xFF,
    };
    pl_server_msg m;
    char err[256];
    int accepted = 0, rejected = 0;
    for (size_t s = 0; s < sizeof(valid_samples) / sizeof(valid_samples[0]); s++) {
        size_t len = strlen(valid_samples[s]);
        char *buf = malloc(len);
        assert_non_null(buf);
        for (size_t pos = 0; pos < len; pos++) {
            for (size_t k = 0; k < sizeof(subst); k++) {
                memcpy(buf, valid_samples[s], len);
                buf[pos] = (char)subst[k];
                int rc = decode_exact(*state, buf, len, &m, err, sizeof(err));
                assert_true(rc == 0 || rc == -1);
                if (rc == 0) {
                    accepted++;
                    check_decoded_strings(&m);
                } else {
                    rejected++;
                    assert_true(err[0] != '\0'); /* always says why */
                }
            }
        }
        free(buf);
    }
    /* Both outcomes happen, so the loop really exercised the decoder. */
    assert_true(accepted > 0);
    assert_true(rejected > 0);
}

/* ---- The fast path (protocol_fast.c) ------------------------------------ */

static const char *const fast_path_messages[] = {
    "{\"type\":\"text\",\"id\":\"12\",\"session\":\"support-42\",\"seq\":3,"
    "\"content\":\"Hel\\\"lo\\n caf\\u00e9 \\ud83d\\ude00 \xE2\x82\xAC \\/\\\\\\b\\f\\r\\t\"}",
    " { \"seq\" : 0 , \"content\" : \"\" , \"id\" : \"9223372036854775807\" ,"
    " \"type\" : \"text\" , \"session\" : null , \"extra\" : 9999999999999999999 } \n",
    "{\"type\":\"ack\",\"id\":\"1\",\"note\":\"x\",\"n\":null}",
    "{\"type\":\"done\",\"id\":\"77\",\"session\":\"s\",\"stop_reason\":\"end_turn\","
    "\"seq_end\":4,\"usage\":{\"input_tokens\":10,\"output_tokens\":9223372036854775807,"
    "\"other\":\"y\"}}",
    "{\"type\":\"done\",\"id\":\"77\",\"stop_reason\":\"max_tokens\",\"seq_end\":0,"
    "\"usage\":null}",
    "{\"type\":\"done\",\"id\":\"77\",\"stop_reason\":\"cancelled\",\"seq_end\":1,\"usage\":{}}",
    "{\"type\":\"text\",\"id\":\"5\",\"seq\":1,\"content\":\"a\\u0000b\"}",
    "{\"meta\":{\"seq\":7,\"inner\":{\"usage\":null}},\"type\":\"text\",\"id\":\"5\","
    "\"seq\":2,\"content\":\"y\",\"usage\":{\"extra\":{\"input_tokens\":3}}}",
    "{\"type\":\"ack\",\"id\":\"8\",\"list\":[1,\"x\",null,{\"id\":\"9\",\"l\":[]},[]],"
    "\"o\":{\"p\":{\"q\":{\"r\":{}}}}}",
    "{\"type\":\"text\",\"id\":\"5\",\"session\":\"s\",\"seq\":3,\"block\":2,\"content\":\"ab\"}",
    "{\"type\":\"thinking\",\"id\":\"5\",\"seq\":0,\"block\":0,\"content\":\"hm\"}",
    "{\"type\":\"thinking\",\"id\":\"5\",\"seq\":1,\"block\":0,\"content\":\"\","
    "\"signature\":\"echo-sig-1\"}",
    "{\"type\":\"done\",\"id\":\"5\",\"stop_reason\":\"stop_sequence\",\"stop_sequence\":\"END\","
    "\"seq_end\":2}",
};

static int fast(pl_buf *strings, const char *s, pl_server_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->retry_after_ms = -1; /* as pl_proto_decode() starts it */
    m->max_message_bytes = PL_PROTO_DEFAULT_MAX_MESSAGE_BYTES;
    return pl_proto_fast_decode(strings, s, strlen(s), m);
}

static void test_fast_path_takes_common_messages(void **state)
{
    (void)state;
    pl_buf strings = PL_BUF_INIT;
    pl_server_msg m;
    for (size_t i = 0; i < sizeof(fast_path_messages) / sizeof(fast_path_messages[0]); i++)
        assert_int_equal(fast(&strings, fast_path_messages[i], &m), 0);
    assert_int_equal(fast(&strings, fast_path_messages[3], &m), 0);
    assert_int_equal(m.type, PL_SMSG_DONE);
    assert_true(m.id == 77 && m.has_id && m.has_seq_end && m.seq_end == 4);
    assert_string_equal(m.session, "s");
    assert_string_equal(m.stop_reason, "end_turn");
    assert_true(m.input_tokens == 10 && m.output_tokens == INT64_MAX);
    pl_buf_free(&strings);
}

/* Whatever the full decoder must judge (or that is rare) is left to it. */
static void test_fast_path_declines(void **state)
{
    (void)state;
    static const char *const declined[] = {
        "",
        "[]",
        "{\"type\":\"hello\",\"protocol\":\"parley.v1\"}",
        "{\"type\":\"error\",\"code\":\"internal\"}",
        "{\"type\":\"tool_use\",\"id\":\"1\",\"seq\":0,\"block\":0,\"tool_id\":\"t\","
        "\"name\":\"n\",\"input\":{}}",
        "{\"type\":\"thinking\",\"id\":\"1\",\"seq\":0,\"content\":\"x\"}",
        "{\"type\":\"mystery\",\"id\":\"1\"}",
        "{\"id\":\"1\",\"seq\":0,\"content\":\"x\"}",
        "{\"type\":\"text\",\"id\":\"1\",\"seq\":0,\"content\":\"x\",\"flag\":true}",
        "{\"type\":\"text\",\"id\":\"1\",\"seq\":1.0,\"content\":\"x\"}",
        "{\"type\":\"text\",\"id\":\"1\",\"seq\":1e0,\"content\":\"x\"}",
        "{\"type\":\"text\",\"id\":\"1\",\"seq\":-0,\"content\":\"x\"}",
        "{\"type\":\"text\",\"id\":\"1\",\"seq\":01,\"content\":\"x\"}",
        "{\"type\":\"text\",\"id\":\"1\",\"seq\":4294967296,\"content\":\"x\"}",
        "{\"type\":\"text\",\"id\":\"1\",\"seq\":0,\"content\":\"x\",\"n\":12345678901234567890}",
        "{\"type\":\"text\",\"id\":\"1\",\"seq\":0,\"seq\":1,\"content\":\"x\"}",
        "{\"type\":\"text\",\"id\":\"1\",\"seq\":0,\"content\":\"\\ud800\"}",
        "{\"type\":\"text\",\"id\":\"1\",\"seq\":0,\"content\":\"\\udc00\\ud800\"}",
        "{\"type\":\"text\",\"id\":\"1\",\"seq\":0,\"content\":\"\\ud836\\ude00\"}",
        "{\"type\":\"text\",\"id\":\"1\",\"seq\":0,\"content\":\"x\",\"k\\ud800\":1}",
        "{\"type\":\"text\",\"id\":\"1\",\"seq\":0,\"content\":\"\\x\"}",
        "{\"type\":\"text\",\"id\":\"1\",\"seq\":0,\"content\":\"a\tb\"}",
        "{\"type\":\"text\",\"id\":\"1\",\"seq\":0,\"content\":\"\xC3\"}",
        "{\"type\":\"text\",\"id\":\"01\",\"seq\":0,\"content\":\"x\"}",
        "{\"type\":\"text\",\"id\":1,\"seq\":0,\"content\":\"x\"}",
        "{\"type\":\"text\",\"id\":\"1\",\"session\":\"a b\",\"seq\":0,\"content\":\"x\"}",
        "{\"type\":\"text\",\"id\":\"1\",\"seq\":0}",
        "{\"type\":\"text\",\"id\":\"1\",\"seq\":0,\"content\":null}",
        "{\"type\":\"text\",\"id\":\"1\",\"seq\":0,\"content\":\"x\",}",
        "{\"type\":\"text\",\"id\":\"1\",\"seq\":0,\"content\":\"x\"} x",
        "{\"type\":\"text\",\"id\":\"1\",\"seq\":0,\"content\":\"x\"",
        "{\"type\":\"done\",\"id\":\"1\",\"stop_reason\":\"end_turn\"}",
        "{\"type\":\"done\",\"id\":\"1\",\"stop_reason\":\"end_turn\",\"seq_end\":0,\"usage\":5}",
        "{\"type\":\"done\",\"id\":\"1\",\"stop_reason\":\"end_turn\",\"seq_end\":0,"
        "\"usage\":{\"input_tokens\":9223372036854775808}}",
        "{\"type\":\"text\",\"id\":\"1\",\"seq\":0,\"content\":\"x\",\"deep\":"
        "[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}",
    };
    pl_buf strings = PL_BUF_INIT;
    pl_server_msg m;
    for (size_t i = 0; i < sizeof(declined) / sizeof(declined[0]); i++) {
        m.type = 0;
        if (fast(&strings, declined[i], &m) != -1 || m.type != 0)
            fail_msg("the fast path took: %s", declined[i]);
    }
    pl_buf_free(&strings);
}

static void assert_same_msg(const pl_server_msg *a, const pl_server_msg *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->has_id, b->has_id);
    assert_true(a->id == b->id);
    assert_int_equal(a->session == NULL, b->session == NULL);
    if (a->session)
        assert_string_equal(a->session, b->session);
    assert_int_equal(a->seq, b->seq);
    assert_int_equal(a->content == NULL, b->content == NULL);
    assert_int_equal(a->content_len, b->content_len);
    if (a->content)
        assert_memory_equal(a->content, b->content, a->content_len);
    assert_int_equal(a->stop_reason == NULL, b->stop_reason == NULL);
    if (a->stop_reason)
        assert_string_equal(a->stop_reason, b->stop_reason);
    assert_int_equal(a->has_seq_end, b->has_seq_end);
    assert_int_equal(a->seq_end, b->seq_end);
    assert_true(a->input_tokens == b->input_tokens);
    assert_true(a->output_tokens == b->output_tokens);
    assert_true(a->retry_after_ms == b->retry_after_ms);
    assert_true(a->max_message_bytes == b->max_message_bytes);
    assert_int_equal(a->piece.kind, b->piece.kind);
    assert_int_equal(a->piece.block, b->piece.block);
    assert_true(a->piece.text == a->content && b->piece.text == b->content);
    assert_int_equal(a->piece.len, b->piece.len);
    assert_int_equal(a->piece.signature == NULL, b->piece.signature == NULL);
    if (a->piece.signature)
        assert_string_equal(a->piece.signature, b->piece.signature);
    assert_int_equal(a->stop_sequence == NULL, b->stop_sequence == NULL);
    if (a->stop_sequence)
        assert_string_equal(a->stop_sequence, b->stop_sequence);
}

/*
 * Every one-byte mutation of the common messages that the fast path takes
 * must decode the same through json-c. A leading unknown member whose value
 * is true makes the fast path decline, so pl_proto_decode() then shows the
 * full decoder's result for the same message.
 */
static void test_fast_path_agrees_with_full_decoder(void **state)
{
    static const char subst[] = "\"\\01236789 u}],-.enx:{\x01\xC3";
    pl_buf strings = PL_BUF_INIT;
    size_t taken = 0;
    for (size_t i = 0; i < sizeof(fast_path_messages) / sizeof(fast_path_messages[0]); i++) {
        const char *base = fast_path_messages[i];
        size_t len = strlen(base);
        for (size_t at = 0; at < len; at++) {
            for (size_t k = 0; k < sizeof(subst) - 1; k++) {
                char msg[512], forced[600];
                memcpy(msg, base, len + 1);
                msg[at] = subst[k];
                pl_server_msg quick, full;
                if (fast(&strings, msg, &quick) != 0)
                    continue;
                taken++;
                const char *brace = strchr(msg, '{');
                assert_non_null(brace);
                snprintf(forced, sizeof(forced), "%.*s{\"zz\":true,%s",
                         (int)(brace - msg), msg, brace + 1);
                char err[256];
                if (decode_exact(*state, forced, strlen(forced), &full, err, sizeof(err)) != 0)
                    fail_msg("the fast path took what json-c refuses (%s): %s", err, msg);
                /* Keep the fast path's strings: decode again into them. */
                assert_int_equal(fast(&strings, msg, &quick), 0);
                assert_same_msg(&quick, &full);
            }
        }
    }
    assert_true(taken > 100); /* the mutations did reach the fast path */
    pl_buf_free(&strings);
}

int main(void)
{
#define DEC_TEST(f) cmocka_unit_test_setup_teardown(f, setup_decoder, teardown_decoder)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_message_minimal_exact),
        cmocka_unit_test(test_encode_message_all_fields),
        cmocka_unit_test(test_encode_escaping),
        cmocka_unit_test(test_encode_optional_fields_omitted),
        cmocka_unit_test(test_encode_extreme_numbers),
        cmocka_unit_test(test_encode_appends),
        cmocka_unit_test(test_encode_cancel),
        cmocka_unit_test(test_add_resume_from),
        cmocka_unit_test(test_add_resume_from_rejects_non_object),
        cmocka_unit_test(test_buf_reserve_overflow),
        cmocka_unit_test(test_parse_id),
        cmocka_unit_test(test_session_valid),
        DEC_TEST(test_decode_hello_full),
        DEC_TEST(test_decode_hello_minimal_and_null),
        DEC_TEST(test_decode_hello_limits),
        DEC_TEST(test_decode_ack),
        DEC_TEST(test_decode_text_full),
        DEC_TEST(test_decode_hello_features),
        DEC_TEST(test_decode_text_block),
        DEC_TEST(test_decode_thinking),
        DEC_TEST(test_decode_tool_use),
        DEC_TEST(test_decode_tool_use_malformed),
        DEC_TEST(test_decode_done_stop_sequence),
        DEC_TEST(test_decode_text_optional_absent_and_null),
        DEC_TEST(test_decode_text_embedded_nul),
        DEC_TEST(test_decode_done_full),
        DEC_TEST(test_decode_done_optional_absent_and_null),
        DEC_TEST(test_decode_done_big_usage),
        DEC_TEST(test_decode_error_full),
        DEC_TEST(test_decode_error_optional_absent_and_null),
        DEC_TEST(test_decode_error_codes),
        DEC_TEST(test_decode_unknown_type),
        DEC_TEST(test_decode_ignores_unknown_fields),
        DEC_TEST(test_decode_resets_previous_message),
        cmocka_unit_test(test_decoders_are_independent),
        DEC_TEST(test_decode_after_cut_surrogate_pair),
        DEC_TEST(test_decode_malformed_json),
        DEC_TEST(test_decode_missing_or_bad_type),
        DEC_TEST(test_decode_bad_ids),
        DEC_TEST(test_decode_bad_text),
        DEC_TEST(test_decode_escapes_that_are_fine),
        DEC_TEST(test_decode_bad_done),
        DEC_TEST(test_decode_bad_hello),
        DEC_TEST(test_decode_bad_error),
        DEC_TEST(test_decode_error_retry_limit),
        DEC_TEST(test_decode_error_sentence),
        DEC_TEST(test_decode_failure_keeps_id),
        DEC_TEST(test_decode_err_buffer_sizes),
        DEC_TEST(test_decode_deep_nesting),
        DEC_TEST(test_decode_every_prefix),
        DEC_TEST(test_decode_byte_mutations),
        DEC_TEST(test_fast_path_takes_common_messages),
        DEC_TEST(test_fast_path_declines),
        DEC_TEST(test_fast_path_agrees_with_full_decoder),
    };
#undef DEC_TEST
    return cmocka_run_group_tests(tests, NULL, NULL);
}
