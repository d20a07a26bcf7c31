/*
 * examples/gateway end to end: the program runs as a child process against
 * the in-process reference server (whose echo model makes every reply
 * exact), and HTTP clients on several threads hold conversations through
 * it. Each test stops the gateway with SIGTERM and requires exit status 0,
 * so in the sanitized builds a leak, a race or a use after free in the
 * gateway fails the test too.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "fixtures.h"
#include "gateway_harness.h"
#include "refserver.h"

#define TEST_KEY "gateway-test-key"

/* ---- helpers ---------------------------------------------------------------- */

static void native_endpoint(char *out, size_t size, pl_refserver *srv)
{
    snprintf(out, size, "ws://127.0.0.1:%d/v1/stream", pl_refserver_port(srv));
}

/* POST body to path and record the outcome. */
static void post(int port, const char *path, const char *body, http_result *res)
{
    http_call call = {.port = port, .path = path, .body = body, .body_len = strlen(body)};
    http_do(&call, res);
}

static void assert_reply(const http_result *res, const char *expected)
{
    if (res->code != CURLE_OK || res->status != 200 || strcmp(res->body, expected))
        fail_msg("expected 200 '%s', got curl %d, status %ld, body '%s'", expected,
                 (int)res->code, res->status, res->body);
    assert_true(res->chunked);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* ---- many conversations at once ------------------------------------------- */

#define CONVERSATIONS 8
#define TURNS 4

typedef struct conversation_run {
    int port;
    const char *name_prefix;
    int index;
    char failure[600]; /* empty when every turn got its exact reply */
} conversation_run;

/* One client thread: TURNS turns of its own conversation, one after the
 * other, each reply numbered by the history the gateway kept. */
static void *run_conversation(void *arg)
{
    conversation_run *r = arg;
    char path[64];
    snprintf(path, sizeof(path), "/chat/%s-%d", r->name_prefix, r->index);
    for (int t = 1; t <= TURNS; t++) {
        char message[96], expected[128];
        snprintf(message, sizeof(message), "message %d of conversation %d", t, r->index);
        snprintf(expected, sizeof(expected), "[turn %d] %s", t, message);
        http_result res;
        post(r->port, path, message, &res);
        if (res.code != CURLE_OK || res.status != 200 || !res.chunked ||
            strcmp(res.body, expected)) {
            snprintf(r->failure, sizeof(r->failure),
                     "%s turn %d: curl %d, status %ld, chunked %d, body '%.200s', expected '%s'",
                     path, t, (int)res.code, res.status, res.chunked, res.body, expected);
            break;
        }
    }
    return NULL;
}

static void conversations_in_parallel(const char *endpoint, const char *name_prefix)
{
    gateway_proc g;
    gateway_start(&g, endpoint, NULL);
    conversation_run runs[CONVERSATIONS];
    pthread_t threads[CONVERSATIONS];
    for (int i = 0; i < CONVERSATIONS; i++) {
        runs[i] = (conversation_run){.port = g.port, .name_prefix = name_prefix, .index = i};
        assert_int_equal(pthread_create(&threads[i], NULL, run_conversation, &runs[i]), 0);
    }
    for (int i = 0; i < CONVERSATIONS; i++)
        pthread_join(threads[i], NULL);
    assert_int_equal(gateway_stop(&g), 0);
    for (int i = 0; i < CONVERSATIONS; i++)
        if (runs[i].failure[0])
            fail_msg("%s", runs[i].failure);
}

static void test_native_conversations_in_parallel(void **state)
{
    (void)state;
    /* Small pieces: every reply streams in several. */
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 4);
    char endpoint[128];
    native_endpoint(endpoint, sizeof(endpoint), srv);
    conversations_in_parallel(endpoint, "native");
    pl_refserver_stop(srv);
}

static void test_http_dialect_conversations_in_parallel(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 4);
    char endpoint[128];
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", pl_refserver_port(srv));
    conversations_in_parallel(endpoint, "openai");
    pl_refserver_stop(srv);
}

/* ---- overlapping turns of one conversation ----------------------------------- */

#define SHARERS 6
#define SHARED_TURNS 3

typedef struct sharer_run {
    int port;
    int index;
    int turn_numbers[SHARED_TURNS]; /* the [turn N] of each reply */
    char failure[600];
} sharer_run;

/* Several clients send to one conversation at once: parley queues its
 * turns, each reply must still be the answer to its own message. */
static void *run_sharer(void *arg)
{
    sharer_run *r = arg;
    for (int t = 0; t < SHARED_TURNS; t++) {
        char message[64];
        snprintf(message, sizeof(message), "sharer %d says %d", r->index, t);
        http_result res;
        post(r->port, "/chat/shared", message, &res);
        int n = 0, consumed = 0;
        if (res.code != CURLE_OK || res.status != 200 ||
            sscanf(res.body, "[turn %d] %n", &n, &consumed) != 1 || !consumed ||
            strcmp(res.body + consumed, message)) {
            snprintf(r->failure, sizeof(r->failure),
                     "sharer %d turn %d: curl %d, status %ld, body '%.200s'", r->index, t,
                     (int)res.code, res.status, res.body);
            return NULL;
        }
        r->turn_numbers[t] = n;
    }
    return NULL;
}

static void test_overlapping_turns_of_one_conversation(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 4);
    char endpoint[128];
    native_endpoint(endpoint, sizeof(endpoint), srv);
    gateway_proc g;
    gateway_start(&g, endpoint, NULL);
    sharer_run runs[SHARERS];
    pthread_t threads[SHARERS];
    for (int i = 0; i < SHARERS; i++) {
        runs[i] = (sharer_run){.port = g.port, .index = i};
        assert_int_equal(pthread_create(&threads[i], NULL, run_sharer, &runs[i]), 0);
    }
    for (int i = 0; i < SHARERS; i++)
        pthread_join(threads[i], NULL);
    assert_int_equal(gateway_stop(&g), 0);
    pl_refserver_stop(srv);

    /* One history: the turns are numbered 1..18, each number once, and one
     * client's turns in the order it sent them. */
    bool seen[SHARERS * SHARED_TURNS + 1] = {false};
    for (int i = 0; i < SHARERS; i++) {
        if (runs[i].failure[0])
            fail_msg("%s", runs[i].failure);
        for (int t = 0; t < SHARED_TURNS; t++) {
            int n = runs[i].turn_numbers[t];
            assert_in_range(n, 1, SHARERS * SHARED_TURNS);
            assert_false(seen[n]);
            seen[n] = true;
            if (t > 0)
                assert_true(n > runs[i].turn_numbers[t - 1]);
        }
    }
}

/* ---- bad requests ------------------------------------------------------------ */

typedef struct bad_request {
    const char *what;
    http_call call;
    long status;
    const char *says;
} bad_request;

static void test_bad_requests(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 0);
    char endpoint[128];
    native_endpoint(endpoint, sizeof(endpoint), srv);
    gateway_proc g;
    gateway_start(&g, endpoint, NULL);

    static char too_large[64 * 1024 + 2];
    memset(too_large, 'a', sizeof(too_large) - 1);
    char long_name[6 + 129 + 1] = "/chat/";
    memset(long_name + 6, 'n', 129);
    const bad_request cases[] = {
        {"GET", {.method = "GET", .path = "/chat/ok"}, 405, "only POST"},
        {"DELETE", {.method = "DELETE", .path = "/chat/ok"}, 405, "only POST"},
        {"another path", {.path = "/talk/ok", .body = "hi", .body_len = 2}, 404, "no such path"},
        {"no session name", {.path = "/chat/", .body = "hi", .body_len = 2}, 400,
         "bad session name"},
        {"a slash in the name", {.path = "/chat/a/b", .body = "hi", .body_len = 2}, 400,
         "bad session name"},
        {"a space in the name", {.path = "/chat/a%20b", .body = "hi", .body_len = 2}, 400,
         "bad session name"},
        {"a name of 129 bytes", {.path = long_name, .body = "hi", .body_len = 2}, 400,
         "bad session name"},
        {"an empty body", {.path = "/chat/ok", .body = "", .body_len = 0}, 400,
         "the message is empty"},
        {"a body over 64 KiB", {.path = "/chat/ok", .body = too_large,
                                .body_len = sizeof(too_large) - 1}, 413, "too large"},
        {"a chunked body over 64 KiB", {.path = "/chat/ok", .body = too_large,
                                        .body_len = sizeof(too_large) - 1,
                                        .chunked_upload = true}, 413, "too large"},
        {"invalid UTF-8", {.path = "/chat/ok", .body = "caf\xe9", .body_len = 4}, 400,
         "not valid UTF-8"},
        {"a NUL byte", {.path = "/chat/ok", .body = "a\0b", .body_len = 3}, 400, "NUL byte"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        http_call call = cases[i].call;
        call.port = g.port;
        http_result res;
        http_do(&call, &res);
        if (res.code != CURLE_OK || res.status != cases[i].status ||
            !strstr(res.body, cases[i].says))
            fail_msg("%s: expected %ld '...%s...', got curl %d, status %ld, body '%s'",
                     cases[i].what, cases[i].status, cases[i].says, (int)res.code,
                     res.status, res.body);
    }
    /* None of them reached the conversation: this is its first turn. */
    http_result res;
    post(g.port, "/chat/ok", "fine", &res);
    assert_reply(&res, "[turn 1] fine");
    assert_int_equal(gateway_stop(&g), 0);
    pl_refserver_stop(srv);
}

/* ---- failures of the AI service ------------------------------------------- */

static void test_rate_limited_before_any_text_is_429(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 0);
    pl_refserver_faults f = {.reject_every = 1, .reject_code = "rate_limited",
                             .retry_after_ms = -1};
    pl_refserver_set_faults(srv, &f);
    char endpoint[128];
    native_endpoint(endpoint, sizeof(endpoint), srv);
    gateway_proc g;
    gateway_start(&g, endpoint, NULL);
    http_result res;
    post(g.port, "/chat/limited", "hello", &res);
    assert_int_equal(res.code, CURLE_OK);
    assert_int_equal(res.status, 429);
    assert_true(strstr(res.body, "error: ") == res.body);
    assert_true(ends_with(res.body, "(RATE_LIMITED)\n"));
    assert_int_equal(gateway_stop(&g), 0);
    pl_refserver_stop(srv);
}

static void test_unreachable_service_is_502(void **state)
{
    (void)state;
    char endpoint[128];
    snprintf(endpoint, sizeof(endpoint), "ws://127.0.0.1:%d/v1/stream", fixture_closed_port());
    gateway_proc g;
    gateway_start(&g, endpoint, NULL);
    http_result res;
    post(g.port, "/chat/nobody", "hello?", &res);
    assert_int_equal(res.code, CURLE_OK);
    assert_int_equal(res.status, 502);
    assert_true(ends_with(res.body, "(CONNECT)\n"));
    assert_int_equal(gateway_stop(&g), 0);
}

/* An error after text was sent: the body ends with a line saying what went
 * wrong, and without the final chunk, so HTTP clients see it incomplete. */
static void test_error_mid_reply_cuts_the_body(void **state)
{
    (void)state;
    /* Pieces of 4 bytes; the server's second text message is malformed,
     * which ends the request there (not retried). */
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 4);
    pl_refserver_faults f = {.malformed_every = 2, .retry_after_ms = -1};
    pl_refserver_set_faults(srv, &f);
    char endpoint[128];
    native_endpoint(endpoint, sizeof(endpoint), srv);
    gateway_proc g;
    gateway_start(&g, endpoint, NULL);
    http_result res;
    post(g.port, "/chat/cut", "abcdefghijkl", &res);
    assert_int_equal(res.status, 200);
    assert_int_equal(res.code, CURLE_PARTIAL_FILE);
    if (strncmp(res.body, "[tur\nerror: ", 12) || !ends_with(res.body, "(PROTOCOL)\n"))
        fail_msg("body: '%s'", res.body);
    assert_int_equal(gateway_stop(&g), 0);
    pl_refserver_stop(srv);
}

/* ---- lifetimes ------------------------------------------------------------------ */

/* A raw client that sends a turn, reads the headers and a first piece of the
 * body, and hangs up. Returns false if that did not come in time. */
static bool post_and_leave(int port, const char *path, const char *body)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    char request[1024];
    int n = snprintf(request, sizeof(request),
                     "POST %s HTTP/1.1\r\nHost: test\r\nContent-Length: %zu\r\n\r\n%s", path,
                     strlen(body), body);
    assert_int_equal(write(fd, request, (size_t)n), n);
    char answer[4096];
    size_t got = 0;
    bool first_piece = false;
    while (!first_piece && got < sizeof(answer) - 1) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, HARNESS_WAIT_MS) <= 0)
            break;
        ssize_t r = read(fd, answer + got, sizeof(answer) - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        answer[got] = '\0';
        /* The headers, then a chunk-size line and at least one byte. */
        const char *end = strstr(answer, "\r\n\r\n");
        const char *chunk = end ? strstr(end + 4, "\r\n") : NULL;
        first_piece = chunk && chunk[2] != '\0';
    }
    close(fd);
    return first_piece;
}

static void test_client_leaving_mid_reply_cancels_the_turn(void **state)
{
    (void)state;
    /* One byte every 50 ms: the reply would take over ten seconds. */
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 50, 1);
    char endpoint[128];
    native_endpoint(endpoint, sizeof(endpoint), srv);
    gateway_proc g;
    gateway_start(&g, endpoint, NULL);
    char body[201];
    memset(body, 'z', 200);
    body[200] = '\0';
    assert_true(post_and_leave(g.port, "/chat/leaver", body));

    /* The gateway finds the client gone at its next writes and cancels the
     * turn at the server; awaited by polling the server's counter. */
    pl_refserver_stats st = {0};
    struct timespec pause = {.tv_nsec = 10 * 1000000};
    for (int waited = 0; waited < HARNESS_WAIT_MS && !st.cancels_received; waited += 10) {
        pl_refserver_get_stats(srv, &st);
        if (!st.cancels_received)
            nanosleep(&pause, NULL);
    }
    assert_int_equal(st.cancels_received, 1);

    /* Nothing else was disturbed, the same conversation included: its turn
     * ended as cancelled and left nothing in the history
     * (docs/reliability.md). */
    http_result res;
    post(g.port, "/chat/stayer", "still here", &res);
    assert_reply(&res, "[turn 1] still here");
    post(g.port, "/chat/leaver", "back", &res);
    assert_reply(&res, "[turn 1] back");
    assert_int_equal(gateway_stop(&g), 0);
    pl_refserver_stop(srv);
}

typedef struct reply_run {
    http_call call;
    http_result result;
} reply_run;

static void *run_reply(void *arg)
{
    reply_run *r = arg;
    http_do(&r->call, &r->result);
    return NULL;
}

/* SIGTERM while a reply streams, with `drain_ms` for it to finish; returns
 * what the client got. */
static void stop_during_reply(unsigned token_ms, const char *drain_ms, const char *message,
                              http_result *out)
{
    pl_refserver *srv = fixture_server(TEST_KEY, 0, token_ms, 1);
    char endpoint[128];
    native_endpoint(endpoint, sizeof(endpoint), srv);
    gateway_proc g;
    gateway_start(&g, endpoint, "--drain-ms", drain_ms, NULL);
    first_bytes started;
    first_bytes_init(&started);
    reply_run run = {.call = {.port = g.port, .path = "/chat/interrupted", .body = message,
                              .body_len = strlen(message), .started = &started}};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, run_reply, &run), 0);
    bool streaming = first_bytes_wait(&started);
    int status = gateway_stop(&g);
    pthread_join(thread, NULL);
    first_bytes_destroy(&started);
    pl_refserver_stop(srv);
    assert_true(streaming);
    assert_int_equal(status, 0);
    *out = run.result;
}

static void test_shutdown_cuts_a_reply_after_the_drain(void **state)
{
    (void)state;
    char message[201];
    memset(message, 'w', 200);
    message[200] = '\0';
    http_result res;
    /* No drain, and a reply that would take 20 s. */
    stop_during_reply(100, "0", message, &res);
    assert_int_equal(res.status, 200);
    assert_int_equal(res.code, CURLE_PARTIAL_FILE);
    if (strncmp(res.body, "[", 1) ||
        !ends_with(res.body, "\nerror: the gateway is shutting down (SHUTDOWN)\n"))
        fail_msg("body: '%s'", res.body);
}

static void test_shutdown_lets_a_reply_finish_within_the_drain(void **state)
{
    (void)state;
    http_result res;
    /* A reply of about a second, and a drain far longer. */
    stop_during_reply(20, "60000", "a reply that finishes during the drain", &res);
    assert_reply(&res, "[turn 1] a reply that finishes during the drain");
}

/* ---- setup -------------------------------------------------------------------- */

static int setup_group(void **state)
{
    (void)state;
    /* The gateway inherits the key; the vendors' own variables would win
     * over it with the HTTP dialects. */
    setenv("PARLEY_API_KEY", TEST_KEY, 1);
    unsetenv("OPENAI_API_KEY");
    unsetenv("ANTHROPIC_API_KEY");
    setenv("PARLEY_LOG", "error", 0); /* the fault tests cause warnings by design */
    return curl_global_init(CURL_GLOBAL_ALL) == CURLE_OK ? 0 : -1;
}

static int teardown_group(void **state)
{
    (void)state;
    curl_global_cleanup();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    gateway_kill_leftover();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_native_conversations_in_parallel, teardown),
        cmocka_unit_test_teardown(test_http_dialect_conversations_in_parallel, teardown),
        cmocka_unit_test_teardown(test_overlapping_turns_of_one_conversation, teardown),
        cmocka_unit_test_teardown(test_bad_requests, teardown),
        cmocka_unit_test_teardown(test_rate_limited_before_any_text_is_429, teardown),
        cmocka_unit_test_teardown(test_unreachable_service_is_502, teardown),
        cmocka_unit_test_teardown(test_error_mid_reply_cuts_the_body, teardown),
        cmocka_unit_test_teardown(test_client_leaving_mid_reply_cancels_the_turn, teardown),
        cmocka_unit_test_teardown(test_shutdown_cuts_a_reply_after_the_drain, teardown),
        cmocka_unit_test_teardown(test_shutdown_lets_a_reply_finish_within_the_drain,
                                  teardown),
    };
    return cmocka_run_group_tests(tests, setup_group, teardown_group);
}
