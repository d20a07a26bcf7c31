/*
 * The reference server's three front ends with content blocks, tools and
 * thinking (protocol.md sections 9 and 10), seen from clients driven by
 * hand: a raw WebSocket client (libcurl CONNECT_ONLY) for the native
 * protocol, plain HTTP POSTs (libcurl) for the Anthropic and OpenAI
 * dialects. Each test compares the exact bytes of what the server sent:
 * every native message, every server-sent event. The library's client is
 * not involved. The server runs in-process with chunk_bytes 16, a fresh
 * one per test, so its numbering (msg_1, chatcmpl-1, req_1) is known.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <poll.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "buf.h"
#include "refserver.h"

#define WAIT_MS 10000
#define ID "7231898455818240001"
#define SESSION "blocks-test"

static pl_refserver *start(void)
{
    pl_refserver_opts o;
    char err[256];
    pl_refserver *srv;

    pl_refserver_opts_init(&o);
    o.quiet = 1;
    o.chunk_bytes = 16;
    srv = pl_refserver_start(&o, err, sizeof err);
    if (!srv)
        fail_msg("server did not start: %s", err);
    return srv;
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- a raw WebSocket client --------------------------------------------------- */

static CURL *ws_open(pl_refserver *srv)
{
    char url[128];
    CURL *h = curl_easy_init();
    long code = 0;

    assert_non_null(h);
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/v1/stream",
             pl_refserver_port(srv));
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 2L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (curl_easy_perform(h) != CURLE_OK)
        fail_msg("upgrade failed");
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    assert_int_equal(code, 101);
    return h;
}

static void ws_wait(CURL *h, short events)
{
    curl_socket_t fd;
    struct pollfd p;

    curl_easy_getinfo(h, CURLINFO_ACTIVESOCKET, &fd);
    p.fd = fd;
    p.events = events;
    poll(&p, 1, 50);
}

static void ws_send(CURL *h, const char *text)
{
    size_t done = 0, len = strlen(text), sent;
    int64_t deadline = mono_ms() + WAIT_MS;

    while (done < len && mono_ms() < deadline) {
        CURLcode rc = curl_ws_send(h, text + done, len - done, &sent, 0,
                                   CURLWS_TEXT);
        if (rc == CURLE_AGAIN) {
            ws_wait(h, POLLOUT);
            continue;
        }
        if (rc != CURLE_OK)
            fail_msg("send failed: %s", curl_easy_strerror(rc));
        done += sent;
    }
    assert_int_equal(done, len);
}

/* The next data message, whole; the caller frees it. */
static char *ws_recv(CURL *h)
{
    pl_buf msg = PL_BUF_INIT;
    char chunk[16384];
    int64_t deadline = mono_ms() + WAIT_MS;

    while (mono_ms() < deadline) {
        const struct curl_ws_frame *meta;
        size_t n;
        CURLcode rc = curl_ws_recv(h, chunk, sizeof chunk, &n, &meta);
        if (rc == CURLE_AGAIN) {
            ws_wait(h, POLLIN);
            continue;
        }
        if (rc != CURLE_OK)
            fail_msg("receive failed: %s", curl_easy_strerror(rc));
        if (meta->flags & (CURLWS_PING | CURLWS_PONG | CURLWS_CLOSE))
            continue;
        assert_int_equal(pl_buf_append(&msg, chunk, n), 0);
        if (!meta->bytesleft && !(meta->flags & CURLWS_CONT))
            return pl_buf_steal(&msg, NULL);
    }
    fail_msg("no message within %d ms", WAIT_MS);
    return NULL;
}

static void ws_close(CURL *h)
{
    size_t sent;

    curl_ws_send(h, "", 0, &sent, 0, CURLWS_CLOSE);
    curl_easy_cleanup(h);
}

/* Connect, check hello's features, send one `message` made of `fields`
 * (after type, id, session and timestamp), then expect exactly the
 * messages in want (NULL-terminated), in order. */
static void native_exchange(const char *fields, const char *const *want)
{
    pl_refserver *srv = start();
    CURL *h = ws_open(srv);
    char *hello = ws_recv(h), msg[8192];
    size_t i;

    assert_non_null(strstr(hello, ",\"features\":[\"blocks\"]"));
    free(hello);
    snprintf(msg, sizeof msg,
             "{\"type\":\"message\",\"id\":\"" ID "\",\"session\":\"" SESSION
             "\",\"timestamp\":1767225600000,%s}", fields);
    ws_send(h, msg);
    for (i = 0; want[i]; i++) {
        char *got = ws_recv(h);
        assert_string_equal(got, want[i]);
        free(got);
    }
    /* What arrived is what the test reads back. */
    char body[8192];
    assert_int_equal(pl_refserver_last_body(srv, body, sizeof body),
                     strlen(msg));
    assert_string_equal(body, msg);
    ws_close(h);
    pl_refserver_stop(srv);
}

/* ---- plain HTTP -------------------------------------------------------------------- */

struct answer {
    long status;
    pl_buf body;
    char request_id[64]; /* request-id or x-request-id */
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct answer *a = arg;

    assert_int_equal(pl_buf_append(&a->body, p, size * n), 0);
    return size * n;
}

static size_t on_header(char *line, size_t size, size_t n, void *arg)
{
    struct answer *a = arg;
    size_t len = size * n;
    const char *v = NULL;

    if (len > 11 && !strncasecmp(line, "request-id:", 11))
        v = line + 11;
    else if (len > 13 && !strncasecmp(line, "x-request-id:", 13))
        v = line + 13;
    if (v) {
        while (*v == ' ')
            v++;
        snprintf(a->request_id, sizeof a->request_id, "%.*s",
                 (int)strcspn(v, "\r\n"), v);
    }
    return len;
}

/* OpenAI's "created" is the time: made 0 for comparing. */
static void zero_created(pl_buf *b)
{
    regex_t re;
    regmatch_t m;
    pl_buf out = PL_BUF_INIT;
    const char *p;

    if (!b->data)
        return;
    assert_int_equal(regcomp(&re, "\"created\":[0-9]+", REG_EXTENDED), 0);
    p = b->data;
    while (!regexec(&re, p, 1, &m, 0)) {
        assert_int_equal(pl_buf_append(&out, p, (size_t)m.rm_so), 0);
        assert_int_equal(pl_buf_append_str(&out, "\"created\":0"), 0);
        p += m.rm_eo;
    }
    assert_int_equal(pl_buf_append_str(&out, p), 0);
    regfree(&re);
    pl_buf_free(b);
    *b = out;
}

static struct answer post(pl_refserver *srv, const char *path,
                          const char *body)
{
    struct answer a = { 0, PL_BUF_INIT, "" };
    struct curl_slist *hs = NULL;
    char url[128];
    CURL *h = curl_easy_init();

    assert_non_null(h);
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", pl_refserver_port(srv),
             path);
    hs = curl_slist_append(hs, "content-type: application/json");
    hs = curl_slist_append(hs, "anthropic-version: 2023-06-01");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)WAIT_MS);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &a);
    if (curl_easy_perform(h) != CURLE_OK)
        fail_msg("POST %s failed", path);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a.status);
    curl_slist_free_all(hs);
    curl_easy_cleanup(h);
    if (!a.body.data)
        assert_int_equal(pl_buf_append(&a.body, "", 0), 0);
    zero_created(&a.body);
    return a;
}

/* POST body to a fresh server: the answer must be 200 with exactly want,
 * with the request id header, and the server must have recorded body. */
static void http_exchange(const char *path, const char *body,
                          const char *want)
{
    pl_refserver *srv = start();
    struct answer a = post(srv, path, body);
    char last[8192];

    assert_int_equal(a.status, 200);
    assert_string_equal(a.body.data, want);
    assert_string_equal(a.request_id, "req_1");
    assert_int_equal(pl_refserver_last_body(srv, last, sizeof last),
                     strlen(body));
    assert_string_equal(last, body);
    pl_buf_free(&a.body);
    pl_refserver_stop(srv);
}

/* ---- shared request parts ---------------------------------------------------------- */

#define CALL_TEXT "call get_weather {\\\"city\\\": \\\"Paris\\\", \\\"unit\\\": \\\"C\\\"}"
#define TOOLS "\"tools\":[{\"name\":\"get_weather\",\"description\":\"Weather\"," \
              "\"input_schema\":{\"type\":\"object\"}}]"
#define THINK(n) "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":" #n "}"
#define STOPS(s) "\"stop_sequences\":[" s "]"
/* "[turn 1] calling get_weather" after "call get_weather {...}" */
#define CALL_HISTORY(use) \
    "[{\"role\":\"user\",\"content\":\"" CALL_TEXT "\"}," \
    "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":" \
    "\"[turn 1] calling get_weather\"}," use "]}"
#define USE "{\"type\":\"tool_use\",\"id\":\"toolu_echo_1\",\"name\":" \
            "\"get_weather\",\"input\":{\"city\":\"Paris\",\"unit\":\"C\"}}"
#define RESULT "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_echo_1\"," \
               "\"content\":\"18 C\"}"

/* ---- native ------------------------------------------------------------------------ */

#define N_HEAD(type, seq, block) \
    "{\"type\":\"" type "\",\"id\":\"" ID "\",\"session\":\"" SESSION "\"," \
    "\"seq\":" #seq ",\"block\":" #block ","
#define N_ACK "{\"type\":\"ack\",\"id\":\"" ID "\"}"
#define N_DONE(reason, extra, seq_end, in) \
    "{\"type\":\"done\",\"id\":\"" ID "\",\"session\":\"" SESSION "\"," \
    "\"stop_reason\":\"" reason "\"" extra ",\"seq_end\":" #seq_end "," \
    "\"usage\":{\"input_tokens\":" #in ",\"output_tokens\":" #seq_end "}}"

static void test_native_text_only(void **state)
{
    (void)state;
    const char *want[] = {
        N_ACK,
        N_HEAD("text", 0, 0) "\"content\":\"[turn 1] hello\"}",
        N_DONE("end_turn", "", 1, 2),
        NULL,
    };
    native_exchange("\"content\":\"hello\"", want);
}

static void test_native_thinking_and_tool_call(void **state)
{
    (void)state;
    const char *want[] = {
        N_ACK,
        N_HEAD("thinking", 0, 0) "\"content\":\"thinking about: \"}",
        N_HEAD("thinking", 1, 0) "\"content\":\"call get_weather\"}",
        N_HEAD("thinking", 2, 0) "\"content\":\" {\\\"city\\\": \\\"Paris\"}",
        N_HEAD("thinking", 3, 0) "\"content\":\"\\\", \\\"unit\\\": \\\"C\\\"}\","
                                 "\"signature\":\"echo-sig-1\"}",
        N_HEAD("text", 4, 1) "\"content\":\"[turn 1] calling\"}",
        N_HEAD("text", 5, 1) "\"content\":\" get_weather\"}",
        N_HEAD("tool_use", 6, 2) "\"tool_id\":\"toolu_echo_1\",\"name\":"
                                 "\"get_weather\",\"input\":{\"city\":"
                                 "\"Paris\",\"unit\":\"C\"}}",
        N_DONE("tool_use", "", 7, 12),
        NULL,
    };
    native_exchange("\"content\":\"" CALL_TEXT "\"," THINK(1) "," TOOLS ","
                    STOPS("\"zzz\""), want);
}

static void test_native_thinking_tool_and_stop(void **state)
{
    (void)state;
    /* The stop sequence cuts the text before the tool's name: no call. */
    const char *want[] = {
        N_ACK,
        N_HEAD("thinking", 0, 0) "\"content\":\"thinking about: \"}",
        N_HEAD("thinking", 1, 0) "\"content\":\"call get_weather\"}",
        N_HEAD("thinking", 2, 0) "\"content\":\" {\\\"city\\\": \\\"Paris\"}",
        N_HEAD("thinking", 3, 0) "\"content\":\"\\\", \\\"unit\\\": \\\"C\\\"}\","
                                 "\"signature\":\"echo-sig-1\"}",
        N_HEAD("text", 4, 1) "\"content\":\"[turn 1] calling\"}",
        N_HEAD("text", 5, 1) "\"content\":\" \"}",
        N_DONE("stop_sequence", ",\"stop_sequence\":\"get_\"", 6, 12),
        NULL,
    };
    native_exchange("\"content\":\"" CALL_TEXT "\"," THINK(1) "," TOOLS ","
                    STOPS("\"zzz\",\"get_\""), want);
}

static void test_native_tool_result_turn(void **state)
{
    (void)state;
    const char *want[] = {
        N_ACK,
        N_HEAD("text", 0, 0) "\"content\":\"[turn 2] get_wea\"}",
        N_HEAD("text", 1, 0) "\"content\":\"ther returned: 1\"}",
        N_HEAD("text", 2, 0) "\"content\":\"8 C\"}",
        N_DONE("end_turn", "", 3, 27),
        NULL,
    };
    native_exchange(TOOLS ",\"history\":" CALL_HISTORY(USE) "],\"content\":["
                    RESULT "]", want);
}

/* A repeat with resume_from replays from that seq, whatever the pieces'
 * types: one counter for all of them. */
static void test_native_resume_across_piece_types(void **state)
{
    static const char msg[] =
        "{\"type\":\"message\",\"id\":\"" ID "\",\"session\":\"" SESSION
        "\",\"timestamp\":1767225600000,\"content\":\"" CALL_TEXT "\","
        THINK(1) "," TOOLS "%s}";
    static const char *const want[] = {
        N_ACK,
        N_HEAD("text", 5, 1) "\"content\":\" get_weather\"}",
        N_HEAD("tool_use", 6, 2) "\"tool_id\":\"toolu_echo_1\",\"name\":"
                                 "\"get_weather\",\"input\":{\"city\":"
                                 "\"Paris\",\"unit\":\"C\"}}",
        N_DONE("tool_use", "", 7, 12),
        NULL,
    };
    pl_refserver *srv = start();
    CURL *h = ws_open(srv);
    char text[4096];
    size_t i;

    (void)state;
    free(ws_recv(h)); /* hello */
    snprintf(text, sizeof text, msg, "");
    ws_send(h, text);
    for (i = 0; i < 9; i++) /* ack, 7 pieces, done */
        free(ws_recv(h));
    snprintf(text, sizeof text, msg, ",\"resume_from\":5");
    ws_send(h, text);
    for (i = 0; want[i]; i++) {
        char *got = ws_recv(h);
        assert_string_equal(got, want[i]);
        free(got);
    }
    ws_close(h);
    pl_refserver_stop(srv);
}

/* Each of these gets `error` invalid_request, echoing the id. */
static void test_native_refusals(void **state)
{
    static const struct { const char *fields, *says; } bad[] = {
        /* a tool_use not answered at the start of the next user turn */
        { TOOLS ",\"history\":" CALL_HISTORY(USE) "],\"content\":\"hi\"",
          "tool_use ids were found without tool_result blocks" },
        /* a tool_result without its call */
        { "\"content\":[" RESULT "]", "unexpected tool_use_id" },
        /* an empty text block */
        { "\"content\":[{\"type\":\"text\",\"text\":\"\"}]",
          "text content blocks must be non-empty" },
        /* empty history contents */
        { "\"content\":\"x\",\"history\":[{\"role\":\"user\","
          "\"content\":\"\"}]", "must have non-empty content" },
        { "\"content\":\"x\",\"history\":[{\"role\":\"user\","
          "\"content\":[]}]", "must have non-empty content" },
        /* bad images */
        { "\"content\":[{\"type\":\"image\",\"source\":{\"type\":"
          "\"base64\",\"media_type\":\"image/tiff\",\"data\":\"AAAA\"}}]",
          "media_type must be one of" },
        { "\"content\":[{\"type\":\"image\",\"source\":{\"type\":"
          "\"base64\",\"media_type\":\"image/png\",\"data\":\"A\"}}]",
          "not valid base64" },
        /* a thinking block without signature */
        { "\"content\":\"x\",\"history\":[{\"role\":\"user\","
          "\"content\":\"a\"},{\"role\":\"assistant\",\"content\":"
          "[{\"type\":\"thinking\",\"thinking\":\"t\",\"signature\":"
          "\"\"}]}]", "non-empty signature" },
        /* a thinking budget below 1 */
        { "\"content\":\"x\"," THINK(0), "budget_tokens: must be an "
          "integer >= 1" },
    };
    pl_refserver *srv = start();
    CURL *h = ws_open(srv);
    size_t i;

    (void)state;
    free(ws_recv(h)); /* hello */
    for (i = 0; i < sizeof bad / sizeof *bad; i++) {
        char msg[4096], *got;
        snprintf(msg, sizeof msg,
                 "{\"type\":\"message\",\"id\":\"%zu\",\"session\":\"" SESSION
                 "\",\"timestamp\":1767225600000,%s}", i + 1, bad[i].fields);
        ws_send(h, msg);
        got = ws_recv(h);
        char head[128];
        snprintf(head, sizeof head,
                 "{\"type\":\"error\",\"id\":\"%zu\",\"code\":"
                 "\"invalid_request\",\"content\":\"", i + 1);
        if (strncmp(got, head, strlen(head)) || !strstr(got, bad[i].says))
            fail_msg("case %zu: %s", i, got);
        free(got);
    }
    ws_close(h);
    pl_refserver_stop(srv);
}

/* ---- Anthropic ---------------------------------------------------------------------- */

#define A_EV(name, json) "event: " name "\ndata: " json "\n\n"
#define A_START(in) \
    A_EV("message_start", "{\"type\":\"message_start\",\"message\":{\"id\":" \
         "\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":" \
         "\"parley-echo-1\",\"content\":[],\"stop_reason\":null," \
         "\"stop_sequence\":null,\"usage\":{\"input_tokens\":" #in "," \
         "\"output_tokens\":0}}}")
#define A_BLOCK(i, block) \
    A_EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":" \
         #i ",\"content_block\":" block "}")
#define A_PING A_EV("ping", "{\"type\":\"ping\"}")
#define A_DELTA(i, delta) \
    A_EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":" \
         #i ",\"delta\":" delta "}")
#define A_TEXT(i, t) A_DELTA(i, "{\"type\":\"text_delta\",\"text\":\"" t "\"}")
#define A_THINK(i, t) \
    A_DELTA(i, "{\"type\":\"thinking_delta\",\"thinking\":\"" t "\"}")
#define A_STOP(i) \
    A_EV("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":" \
         #i "}")
#define A_END(reason, seq, out) \
    A_EV("message_delta", "{\"type\":\"message_delta\",\"delta\":" \
         "{\"stop_reason\":\"" reason "\",\"stop_sequence\":" seq "}," \
         "\"usage\":{\"output_tokens\":" #out "}}") \
    A_EV("message_stop", "{\"type\":\"message_stop\"}")
#define A_THINKING_OF_CALL \
    A_BLOCK(0, "{\"type\":\"thinking\",\"thinking\":\"\"}") A_PING \
    A_THINK(0, "thinking about: ") A_THINK(0, "call get_weather") \
    A_THINK(0, " {\\\"city\\\": \\\"Paris") \
    A_THINK(0, "\\\", \\\"unit\\\": \\\"C\\\"}") \
    A_DELTA(0, "{\"type\":\"signature_delta\",\"signature\":\"echo-sig-1\"}") \
    A_STOP(0)
#define A_REQ(fields, messages) \
    "{\"model\":\"parley-echo-1\",\"max_tokens\":1024,\"stream\":true," \
    fields "\"messages\":" messages "}"
#define A_CALL_TURN "[{\"role\":\"user\",\"content\":\"" CALL_TEXT "\"}]"

static void test_anthropic_text_only(void **state)
{
    (void)state;
    http_exchange("/v1/messages",
                  A_REQ("", "[{\"role\":\"user\",\"content\":\"hello\"}]"),
                  A_START(2)
                  A_BLOCK(0, "{\"type\":\"text\",\"text\":\"\"}") A_PING
                  A_TEXT(0, "[turn 1] hello") A_STOP(0)
                  A_END("end_turn", "null", 1));
}

static void test_anthropic_thinking_and_tool_call(void **state)
{
    (void)state;
    /* Sampling fields and the system prompt are accepted, without effect
     * on the reply (the system prompt counts in input_tokens). */
    http_exchange("/v1/messages",
                  A_REQ("\"system\":[{\"type\":\"text\",\"text\":\"be brief\"}],"
                        "\"temperature\":0.5,\"top_p\":0.9,\"top_k\":5,"
                        "\"metadata\":{\"user_id\":\"u1\"},"
                        "\"tool_choice\":{\"type\":\"auto\"},"
                        THINK(1024) "," TOOLS "," STOPS("\"zzz\"") ",",
                        A_CALL_TURN),
                  A_START(14) A_THINKING_OF_CALL
                  A_BLOCK(1, "{\"type\":\"text\",\"text\":\"\"}")
                  A_TEXT(1, "[turn 1] calling") A_TEXT(1, " get_weather")
                  A_STOP(1)
                  A_BLOCK(2, "{\"type\":\"tool_use\",\"id\":\"toolu_echo_1\","
                             "\"name\":\"get_weather\",\"input\":{}}")
                  A_DELTA(2, "{\"type\":\"input_json_delta\",\"partial_json\":"
                             "\"{\\\"city\\\":\\\"Paris\\\",\"}")
                  A_DELTA(2, "{\"type\":\"input_json_delta\",\"partial_json\":"
                             "\"\\\"unit\\\":\\\"C\\\"}\"}")
                  A_STOP(2)
                  A_END("tool_use", "null", 7));
}

static void test_anthropic_thinking_tool_and_stop(void **state)
{
    (void)state;
    http_exchange("/v1/messages",
                  A_REQ(THINK(1024) "," TOOLS "," STOPS("\"get_\"") ",",
                        A_CALL_TURN),
                  A_START(12) A_THINKING_OF_CALL
                  A_BLOCK(1, "{\"type\":\"text\",\"text\":\"\"}")
                  A_TEXT(1, "[turn 1] calling") A_TEXT(1, " ") A_STOP(1)
                  A_END("stop_sequence", "\"get_\"", 6));
}

static void test_anthropic_stop_at_zero(void **state)
{
    (void)state;
    /* No block at all: the ping follows message_start. */
    http_exchange("/v1/messages",
                  A_REQ(STOPS("\"[turn\"") ",",
                        "[{\"role\":\"user\",\"content\":\"hello\"}]"),
                  A_START(2) A_PING A_END("stop_sequence", "\"[turn\"", 0));
}

static void test_anthropic_tool_result_turn(void **state)
{
    (void)state;
    http_exchange("/v1/messages",
                  A_REQ(TOOLS ",", CALL_HISTORY(USE) ",{\"role\":\"user\","
                        "\"content\":[" RESULT "]}]"),
                  A_START(27)
                  A_BLOCK(0, "{\"type\":\"text\",\"text\":\"\"}") A_PING
                  A_TEXT(0, "[turn 2] get_wea") A_TEXT(0, "ther returned: 1")
                  A_TEXT(0, "8 C") A_STOP(0) A_END("end_turn", "null", 3));
}

static void test_anthropic_non_streaming_blocks(void **state)
{
    (void)state;
    http_exchange("/v1/messages",
                  "{\"model\":\"parley-echo-1\",\"max_tokens\":1024,"
                  THINK(1024) "," TOOLS ",\"messages\":" A_CALL_TURN "}",
                  "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":"
                  "\"assistant\",\"model\":\"parley-echo-1\",\"content\":["
                  "{\"type\":\"thinking\",\"thinking\":\"thinking about: "
                  "call get_weather {\\\"city\\\": \\\"Paris\\\", \\\"unit\\\": "
                  "\\\"C\\\"}\",\"signature\":\"echo-sig-1\"},"
                  "{\"type\":\"text\",\"text\":\"[turn 1] calling "
                  "get_weather\"},{\"type\":\"tool_use\",\"id\":"
                  "\"toolu_echo_1\",\"name\":\"get_weather\",\"input\":"
                  "{\"city\":\"Paris\",\"unit\":\"C\"}}],\"stop_reason\":"
                  "\"tool_use\",\"stop_sequence\":null,\"usage\":"
                  "{\"input_tokens\":12,\"output_tokens\":7}}");
}

/* A 400 invalid_request_error in each dialect's shape. */
static void expect_400(pl_refserver *srv, const char *path, const char *body,
                       const char *says, size_t i)
{
    struct answer a = post(srv, path, body);
    const char *want = strstr(path, "chat")
                           ? "\"type\":\"invalid_request_error\",\"param\":null"
                           : "{\"type\":\"error\",\"error\":{\"type\":"
                             "\"invalid_request_error\",\"message\":";

    if (a.status != 400 || !strstr(a.body.data, want) ||
        !strstr(a.body.data, says))
        fail_msg("case %zu: %ld %s", i, a.status, a.body.data);
    pl_buf_free(&a.body);
}

static void test_anthropic_refusals(void **state)
{
    static const struct { const char *body, *says; } bad[] = {
        { A_REQ(TOOLS ",", CALL_HISTORY(USE) ",{\"role\":\"user\","
                "\"content\":\"hi\"}]"),
          "messages.2: tool_use ids were found without tool_result blocks "
          "immediately after: toolu_echo_1" },
        { A_REQ("", "[{\"role\":\"user\",\"content\":[" RESULT "]}]"),
          "unexpected tool_use_id found in tool_result blocks: toolu_echo_1" },
        { A_REQ("", "[{\"role\":\"user\",\"content\":[{\"type\":"
                    "\"text\",\"text\":\"\"}]}]"),
          "text content blocks must be non-empty" },
        { A_REQ("", "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":"
                    "\"assistant\",\"content\":\"\"},{\"role\":\"user\","
                    "\"content\":\"b\"}]"),
          "messages.1: all messages must have non-empty content" },
        { A_REQ("", "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":"
                    "\"assistant\",\"content\":[]},{\"role\":\"user\","
                    "\"content\":\"b\"}]"),
          "messages.1: all messages must have non-empty content" },
        { A_REQ("", "[{\"role\":\"user\",\"content\":[{\"type\":"
                    "\"image\",\"source\":{\"type\":\"base64\","
                    "\"media_type\":\"image/svg+xml\",\"data\":\"AAAA\"}}]}]"),
          "media_type must be one of" },
        { A_REQ("", "[{\"role\":\"user\",\"content\":[{\"type\":"
                    "\"image\",\"source\":{\"type\":\"base64\","
                    "\"media_type\":\"image/png\",\"data\":\"AA!A\"}}]}]"),
          "not valid base64" },
        { A_REQ("", "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":"
                    "\"assistant\",\"content\":[{\"type\":\"thinking\","
                    "\"thinking\":\"t\"}]},{\"role\":\"user\","
                    "\"content\":\"b\"}]"),
          "non-empty signature" },
        { A_REQ(THINK(1023) ",", "[{\"role\":\"user\",\"content\":\"a\"}]"),
          "budget_tokens: must be an integer >= 1024" },
    };
    pl_refserver *srv = start();
    size_t i;

    (void)state;
    for (i = 0; i < sizeof bad / sizeof *bad; i++)
        expect_400(srv, "/v1/messages", bad[i].body, bad[i].says, i);
    pl_refserver_stop(srv);
}

/* ---- OpenAI ----------------------------------------------------------------------------- */

#define O_CHUNK(delta, finish) \
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\"," \
    "\"created\":0,\"model\":\"parley-echo-1\",\"choices\":[{\"index\":0," \
    "\"delta\":" delta ",\"finish_reason\":" finish "}],\"usage\":null}\n\n"
#define O_USAGE(in, out, total) \
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\"," \
    "\"created\":0,\"model\":\"parley-echo-1\",\"choices\":[],\"usage\":" \
    "{\"prompt_tokens\":" #in ",\"completion_tokens\":" #out "," \
    "\"total_tokens\":" #total "}}\n\n" "data: [DONE]\n\n"
#define O_REQ(fields, messages) \
    "{\"model\":\"parley-echo-1\",\"stream\":true,\"stream_options\":" \
    "{\"include_usage\":true}," fields "\"messages\":" messages "}"
#define O_TOOLS "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":" \
                "\"get_weather\",\"parameters\":{\"type\":\"object\"}}}]"
#define O_CALLS "\"tool_calls\":[{\"id\":\"call_echo_1\",\"type\":" \
                "\"function\",\"function\":{\"name\":\"get_weather\"," \
                "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]"

static void test_openai_text_only(void **state)
{
    (void)state;
    http_exchange("/v1/chat/completions",
                  O_REQ("", "[{\"role\":\"user\",\"content\":\"hello\"}]"),
                  O_CHUNK("{\"role\":\"assistant\",\"content\":"
                          "\"[turn 1] hello\"}", "null")
                  O_CHUNK("{}", "\"stop\"") O_USAGE(2, 1, 3));
}

static void test_openai_tool_call(void **state)
{
    (void)state;
    http_exchange("/v1/chat/completions",
                  O_REQ(O_TOOLS ",\"tool_choice\":\"auto\",\"stop\":\"zzz\","
                        "\"max_completion_tokens\":100,\"temperature\":0,",
                        A_CALL_TURN),
                  O_CHUNK("{\"role\":\"assistant\",\"content\":"
                          "\"[turn 1] calling\"}", "null")
                  O_CHUNK("{\"content\":\" get_weather\"}", "null")
                  O_CHUNK("{\"tool_calls\":[{\"index\":0,\"id\":"
                          "\"call_echo_1\",\"type\":\"function\",\"function\":"
                          "{\"name\":\"get_weather\",\"arguments\":\"\"}}]}",
                          "null")
                  O_CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":"
                          "{\"arguments\":\"{\\\"city\\\":\\\"Paris\\\",\"}}]}",
                          "null")
                  O_CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":"
                          "{\"arguments\":\"\\\"unit\\\":\\\"C\\\"}\"}}]}",
                          "null")
                  O_CHUNK("{}", "\"tool_calls\"") O_USAGE(12, 3, 15));
}

static void test_openai_stop_and_length(void **state)
{
    (void)state;
    /* A stop string ends with finish_reason "stop". */
    http_exchange("/v1/chat/completions",
                  O_REQ(O_TOOLS ",\"stop\":[\"get_\"],", A_CALL_TURN),
                  O_CHUNK("{\"role\":\"assistant\",\"content\":"
                          "\"[turn 1] calling\"}", "null")
                  O_CHUNK("{\"content\":\" \"}", "null")
                  O_CHUNK("{}", "\"stop\"") O_USAGE(12, 2, 14));
    /* max_tokens 2: the text, not the call: "length". */
    http_exchange("/v1/chat/completions",
                  O_REQ(O_TOOLS ",\"max_tokens\":2,", A_CALL_TURN),
                  O_CHUNK("{\"role\":\"assistant\",\"content\":"
                          "\"[turn 1] calling\"}", "null")
                  O_CHUNK("{\"content\":\" get_weather\"}", "null")
                  O_CHUNK("{}", "\"length\"") O_USAGE(12, 2, 14));
}

static void test_openai_tool_result_turn(void **state)
{
    (void)state;
    http_exchange("/v1/chat/completions",
                  O_REQ(O_TOOLS ",",
                        "[{\"role\":\"user\",\"content\":\"" CALL_TEXT "\"},"
                        "{\"role\":\"assistant\",\"content\":null," O_CALLS "},"
                        "{\"role\":\"tool\",\"tool_call_id\":\"call_echo_1\","
                        "\"content\":\"18 C\"}]"),
                  O_CHUNK("{\"role\":\"assistant\",\"content\":"
                          "\"[turn 2] get_wea\"}", "null")
                  O_CHUNK("{\"content\":\"ther returned: 1\"}", "null")
                  O_CHUNK("{\"content\":\"8 C\"}", "null")
                  O_CHUNK("{}", "\"stop\"") O_USAGE(17, 3, 20));
}

static void test_openai_refusals(void **state)
{
    static const struct { const char *body, *says; } bad[] = {
        /* a tool message that does not follow its call */
        { O_REQ("", "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":"
                    "\"tool\",\"tool_call_id\":\"call_echo_1\","
                    "\"content\":\"r\"}]"),
          "messages with role 'tool' must be a response to a preceding "
          "message with 'tool_calls'" },
        /* a call not answered */
        { O_REQ("", "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":"
                    "\"assistant\",\"content\":null," O_CALLS "},"
                    "{\"role\":\"user\",\"content\":\"b\"}]"),
          "did not have response messages: call_echo_1" },
        /* five stop strings */
        { O_REQ("\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"],",
                "[{\"role\":\"user\",\"content\":\"a\"}]"),
          "stop: at most 4 stop sequences" },
        /* empty contents in the history */
        { O_REQ("", "[{\"role\":\"user\",\"content\":\"\"},{\"role\":"
                    "\"user\",\"content\":\"b\"}]"),
          "messages.0: content must be non-empty" },
        { O_REQ("", "[{\"role\":\"user\",\"content\":[]},{\"role\":"
                    "\"user\",\"content\":\"b\"}]"),
          "messages.0: content must be non-empty" },
        /* an empty text part; a bad data URL */
        { O_REQ("", "[{\"role\":\"user\",\"content\":[{\"type\":"
                    "\"text\",\"text\":\"\"}]}]"),
          "text content blocks must be non-empty" },
        { O_REQ("", "[{\"role\":\"user\",\"content\":[{\"type\":"
                    "\"image_url\",\"image_url\":{\"url\":"
                    "\"data:image/png;base64,@@@@\"}}]}]"),
          "not valid base64" },
    };
    pl_refserver *srv = start();
    size_t i;

    (void)state;
    for (i = 0; i < sizeof bad / sizeof *bad; i++)
        expect_400(srv, "/v1/chat/completions", bad[i].body, bad[i].says, i);
    pl_refserver_stop(srv);
}

/* GET /v1/refserver/last-request: what a test out of process reads. */
static char *get_last_request(pl_refserver *srv)
{
    struct answer a = { 0, PL_BUF_INIT, "" };
    char url[128];
    CURL *h = curl_easy_init();

    assert_non_null(h);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/refserver/last-request",
             pl_refserver_port(srv));
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)WAIT_MS);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &a);
    if (curl_easy_perform(h) != CURLE_OK)
        fail_msg("GET last-request failed");
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a.status);
    curl_easy_cleanup(h);
    assert_int_equal(a.status, 200);
    assert_int_equal(pl_buf_append(&a.body, "", 0), 0);
    return pl_buf_steal(&a.body, NULL);
}

static void test_last_body_follows_arrivals(void **state)
{
    pl_refserver *srv = start();
    static const char chat[] = "{\"model\":\"parley-echo-1\",\"messages\":"
                               "[{\"role\":\"user\",\"content\":\"hi\"}]}";
    struct answer a;
    CURL *h;
    char small[8], *msg;

    (void)state;
    assert_int_equal(pl_refserver_last_body(srv, small, sizeof small), 0);
    assert_string_equal(small, "");
    msg = get_last_request(srv);
    assert_string_equal(msg, "");
    free(msg);
    a = post(srv, "/v1/chat/completions", chat);
    assert_int_equal(a.status, 200);
    pl_buf_free(&a.body);
    /* Truncated like snprintf, with the whole length returned. */
    assert_int_equal(pl_refserver_last_body(srv, small, sizeof small),
                     strlen(chat));
    assert_string_equal(small, "{\"model");
    msg = get_last_request(srv);
    assert_string_equal(msg, chat);
    free(msg);
    /* A later WebSocket message is the last one now. */
    h = ws_open(srv);
    free(ws_recv(h));
    ws_send(h, "{\"type\":\"cancel\",\"id\":\"5\"}");
    ws_send(h, "{\"type\":\"nonsense\"}");
    msg = ws_recv(h); /* the error answering it: both have arrived */
    free(msg);
    char body[64];
    assert_int_equal(pl_refserver_last_body(srv, body, sizeof body), 19);
    assert_string_equal(body, "{\"type\":\"nonsense\"}");
    msg = get_last_request(srv);
    assert_string_equal(msg, body);
    free(msg);
    ws_close(h);
    /* A body larger than a socket takes at once arrives whole. */
    pl_buf big = PL_BUF_INIT;
    assert_int_equal(pl_buf_append_str(&big, "{\"model\":\"parley-echo-1\","
                                       "\"messages\":[{\"role\":\"user\","
                                       "\"content\":\""), 0);
    for (int i = 0; i < 20000; i++)
        assert_int_equal(pl_buf_append_str(&big, "0123456789abcdef"), 0);
    assert_int_equal(pl_buf_append_str(&big, "\"}]}"), 0);
    a = post(srv, "/v1/chat/completions", big.data);
    assert_int_equal(a.status, 200);
    pl_buf_free(&a.body);
    msg = get_last_request(srv);
    assert_string_equal(msg, big.data);
    free(msg);
    pl_buf_free(&big);
    pl_refserver_stop(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_native_text_only),
        cmocka_unit_test(test_native_thinking_and_tool_call),
        cmocka_unit_test(test_native_thinking_tool_and_stop),
        cmocka_unit_test(test_native_tool_result_turn),
        cmocka_unit_test(test_native_resume_across_piece_types),
        cmocka_unit_test(test_native_refusals),
        cmocka_unit_test(test_anthropic_text_only),
        cmocka_unit_test(test_anthropic_thinking_and_tool_call),
        cmocka_unit_test(test_anthropic_thinking_tool_and_stop),
        cmocka_unit_test(test_anthropic_stop_at_zero),
        cmocka_unit_test(test_anthropic_tool_result_turn),
        cmocka_unit_test(test_anthropic_non_streaming_blocks),
        cmocka_unit_test(test_anthropic_refusals),
        cmocka_unit_test(test_openai_text_only),
        cmocka_unit_test(test_openai_tool_call),
        cmocka_unit_test(test_openai_stop_and_length),
        cmocka_unit_test(test_openai_tool_result_turn),
        cmocka_unit_test(test_openai_refusals),
        cmocka_unit_test(test_last_body_follows_arrivals),
    };
    int rc;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
