/*
 * What programs built against include/parley.h depend on: the numbers of the
 * error codes, the layout of parley_stats_t, and parley_stats_read() filling
 * exactly the size it is given, so a program and a library built against
 * different versions of the header still agree.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "client.h"
#include "parley.h"

/* The released numbers: a change here breaks every compiled program. */
static void error_codes_keep_their_numbers(void **state)
{
    (void)state;
    static const struct {
        parley_err_t code;
        int number;
        const char *name;
    } released[] = {
        {PARLEY_OK, 0, "OK"},
        {PARLEY_ERR_INVALID_ARG, 1, "INVALID_ARG"},
        {PARLEY_ERR_UNKNOWN_OPTION, 2, "UNKNOWN_OPTION"},
        {PARLEY_ERR_INVALID_VALUE, 3, "INVALID_VALUE"},
        {PARLEY_ERR_NO_MEMORY, 4, "NO_MEMORY"},
        {PARLEY_ERR_STATE, 5, "STATE"},
        {PARLEY_ERR_NO_KEY, 6, "NO_KEY"},
        {PARLEY_ERR_TIMED_OUT, 7, "TIMED_OUT"},
        {PARLEY_ERR_TOO_LARGE, 8, "TOO_LARGE"},
        {PARLEY_ERR_SHUTDOWN, 9, "SHUTDOWN"},
        {PARLEY_ERR_QUEUE_FULL, 10, "QUEUE_FULL"},
        {PARLEY_ERR_CONNECT, 11, "CONNECT"},
        {PARLEY_ERR_UNAUTHORIZED, 12, "UNAUTHORIZED"},
        {PARLEY_ERR_CONNECTION_LOST, 13, "CONNECTION_LOST"},
        {PARLEY_ERR_PROTOCOL, 14, "PROTOCOL"},
        {PARLEY_ERR_INVALID_REQUEST, 15, "INVALID_REQUEST"},
        {PARLEY_ERR_RATE_LIMITED, 16, "RATE_LIMITED"},
        {PARLEY_ERR_OVERLOADED, 17, "OVERLOADED"},
        {PARLEY_ERR_SERVER_INTERNAL, 18, "SERVER_INTERNAL"},
        {PARLEY_ERR_RESUME_FAILED, 19, "RESUME_FAILED"},
        {PARLEY_ERR_SERVER_TOO_LARGE, 20, "SERVER_TOO_LARGE"},
        {PARLEY_ERR_FORBIDDEN, 21, "FORBIDDEN"},
        {PARLEY_ERR_NOT_FOUND, 22, "NOT_FOUND"},
        {PARLEY_ERR_TLS, 23, "TLS"},
        {PARLEY_ERR_REPLY_TOO_LARGE, 24, "REPLY_TOO_LARGE"},
    };
    size_t n = sizeof(released) / sizeof(released[0]);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(released[i].code, released[i].number);
        assert_string_equal(parley_err2name(released[i].code), released[i].name);
    }
    /* New codes only come after the released ones, and every code has a
     * name and a sentence. */
    assert_true(PARLEY_ERR__COUNT >= n);
    for (int e = 0; e < PARLEY_ERR__COUNT; e++) {
        assert_string_not_equal(parley_err2name((parley_err_t)e), "UNKNOWN");
        assert_string_not_equal(parley_err2str((parley_err_t)e), "unknown error code");
    }
    assert_string_equal(parley_err2name(PARLEY_ERR__COUNT), "UNKNOWN");
}

/* The released fields, in order: new counters go after them. */
#define RELEASED_COUNTERS(X)                                                 \
    X(requests_sent) X(requests_done) X(requests_failed) X(frames_sent)      \
    X(frames_received) X(bytes_sent) X(bytes_received) X(connections_opened) \
    X(errors) X(unknown_messages) X(retries) X(resumes) X(stalls)            \
    X(reconnects) X(queue_full) X(insecure_connections)                      \
    X(bytes_compression_saved) X(bytes_decompressed)

static void stats_layout_only_grows_at_the_end(void **state)
{
    (void)state;
    size_t index = 0;
#define X(field)                                                           \
    assert_int_equal(offsetof(parley_stats_t, field), index * sizeof(uint64_t)); \
    index++;
    RELEASED_COUNTERS(X)
#undef X
    assert_true(sizeof(parley_stats_t) >= index * sizeof(uint64_t));
    assert_int_equal(sizeof(parley_stats_t) % sizeof(uint64_t), 0);
}

static void ignore_event(parley_client_t *client, const parley_event_t *ev, void *opaque)
{
    (void)client;
    (void)ev;
    (void)opaque;
}

/* A client that is never started: its counters are set by hand. */
static parley_client_t *new_client(void)
{
    setenv("PARLEY_TEST_ABI_KEY", "sk-test-abi", 1);
    parley_conf_t *conf = parley_conf_new();
    char err[256];
    assert_int_equal(parley_conf_set(conf, "endpoint", "ws://127.0.0.1:9/v1/stream", err,
                                     sizeof(err)), PARLEY_OK);
    assert_int_equal(parley_conf_set(conf, "api_key.env", "PARLEY_TEST_ABI_KEY", err,
                                     sizeof(err)), PARLEY_OK);
    assert_int_equal(parley_conf_set(conf, "workers", "1", err, sizeof(err)), PARLEY_OK);
    parley_conf_set_event_cb(conf, ignore_event, NULL);
    parley_client_t *c = parley_client_new(conf, err, sizeof(err));
    if (!c)
        fail_msg("parley_client_new: %s", err);
    /* Counter i holds i + 1, so each one read shows where it came from. */
    uint64_t v = 1;
#define X(field, group, key) atomic_store(&c->counters.field, v++);
    PL_COUNTERS(X)
#undef X
    return c;
}

static void stats_read_fills_exactly_the_size_given(void **state)
{
    (void)state;
    parley_client_t *c = new_client();

    /* The whole struct, through the header's wrapper. */
    parley_stats_t st;
    memset(&st, 0xAA, sizeof(st));
    parley_stats_get(c, &st);
    assert_int_equal(st.requests_sent, 1);
    assert_int_equal(st.queue_full, 15);
    assert_int_equal(st.bytes_decompressed, 18);

    /* A program built when the struct ended after requests_failed: the
     * bytes after it are the program's, and stay untouched. */
    unsigned char older[sizeof(parley_stats_t) + 8];
    memset(older, 0xAA, sizeof(older));
    size_t old_size = offsetof(parley_stats_t, frames_sent);
    assert_int_equal(parley_stats_read(c, (parley_stats_t *)(void *)older, old_size), old_size);
    uint64_t first[3];
    memcpy(first, older, sizeof(first));
    assert_int_equal(first[0], 1);
    assert_int_equal(first[2], 3);
    for (size_t i = old_size; i < sizeof(older); i++)
        assert_int_equal(older[i], 0xAA);

    /* A program built against a newer, longer struct: the counters this
     * library lacks read 0. */
    unsigned char newer[sizeof(parley_stats_t) + 16];
    memset(newer, 0xAA, sizeof(newer));
    assert_int_equal(parley_stats_read(c, (parley_stats_t *)(void *)newer, sizeof(newer)),
                     sizeof(parley_stats_t));
    parley_stats_t known;
    memcpy(&known, newer, sizeof(known));
    assert_int_equal(known.bytes_decompressed, 18);
    for (size_t i = sizeof(parley_stats_t); i < sizeof(newer); i++)
        assert_int_equal(newer[i], 0);

    assert_int_equal(parley_stats_read(NULL, &st, sizeof(st)), 0);
    assert_int_equal(parley_stats_read(c, NULL, sizeof(st)), 0);
    parley_client_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(error_codes_keep_their_numbers),
        cmocka_unit_test(stats_layout_only_grows_at_the_end),
        cmocka_unit_test(stats_read_fills_exactly_the_size_given),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
