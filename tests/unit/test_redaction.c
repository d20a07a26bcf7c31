/*
 * What leaves parley as text to show (log lines, libcurl's trace, error
 * events) holds no API key and no control character: pl_safe_text() on its
 * own, then through the log at its limits, for every key length from 1 to
 * past the longest a line holds, with the key at the start, the end, and
 * cut by the line's limit.
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

#include "log.h"
#include "safe_text.h"
#include "utf8.h"

/* The limit of a log line, NUL included (log.c). */
#define LINE_MAX_BYTES 1024
/* Key characters appear nowhere else in the lines below, so "no '#' and no
 * digit in the output" means "no byte of the key". */
#define KEY_CHARS "#0123456789#0123456789#0123456789"
#define FILLER '.'

/* ---- pl_safe_text ---------------------------------------------------------- */

static void expect_safe(const char *in, const char *key, const char *want)
{
    char out[256];
    size_t need = pl_safe_text(out, sizeof(out), in, strlen(in), key);
    assert_string_equal(out, want);
    assert_int_equal(need, strlen(want));
    assert_int_equal(pl_safe_text(NULL, 0, in, strlen(in), key), strlen(want));
}

static void test_key_redacted_anywhere(void **state)
{
    (void)state;
    expect_safe("sk-1234", "sk-1234", "[redacted]");
    expect_safe("key sk-1234 echoed", "sk-1234", "key [redacted] echoed");
    expect_safe("sk-1234sk-1234", "sk-1234", "[redacted][redacted]");
    expect_safe("sk-123", "sk-1234", "sk-123"); /* not the key, too short a part */
    expect_safe("no key", NULL, "no key");
    expect_safe("abc abc", "abc", "abc abc"); /* too short to find in text */
    /* A key found inside the replacement does not loop forever. */
    expect_safe("redacted", "redacted", "[redacted]");
    expect_safe("x dacted y", "dacted", "x [redacted] y");
    /* The start of a long key, as left by a cut upstream, goes too. */
    expect_safe("echo: sk-ant-api03-AAAA", "sk-ant-api03-AAAABBBBCCCC", "echo: [redacted]");
    expect_safe("echo: sk-ant-a (cut)", "sk-ant-api03-AAAABBBBCCCC", "echo: [redacted] (cut)");
    expect_safe("echo: sk-ant-", "sk-ant-api03-AAAABBBBCCCC", "echo: sk-ant-"); /* 7 < 8 */
    /* A key need not be UTF-8: one that starts inside a character is found
     * (found by fuzz_log: the character's first bytes go escaped). */
    expect_safe("\xf4\x85\x85\x85\xf4\x85\x85\x85", "\x85\x85\xf4\x85\x85",
                "\\xf4\\x85[redacted]\\x85");
}

static void test_control_characters_escaped(void **state)
{
    (void)state;
    expect_safe("a\r\nparley ERROR forged", NULL, "a\\r\\nparley ERROR forged");
    expect_safe("\x1b[2J\x1b]0;title\x07", NULL, "\\x1b[2J\\x1b]0;title\\x07");
    expect_safe("tab\there\x7f", NULL, "tab\\there\\x7f");
    expect_safe("c1 \xc2\x9b" "31m", NULL, "c1 \\u009b31m");       /* CSI as UTF-8 */
    expect_safe("raw \x9b" "31m", NULL, "raw \\x9b31m");             /* not UTF-8 */
    expect_safe("bad \xe2\x82", NULL, "bad \\xe2\\x82");             /* cut character */
    expect_safe("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", NULL,
                "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");         /* kept */
    expect_safe("back\\slash", NULL, "back\\slash");
    char nul_in[] = {'a', 0, 'b'};
    char out[32];
    assert_int_equal(pl_safe_text(out, sizeof(out), nul_in, 3, NULL), 6);
    assert_string_equal(out, "a\\x00b");
}

/* A full buffer ends after the last whole unit; the result needs more. */
static void test_output_cut_at_whole_units(void **state)
{
    (void)state;
    char out[8];
    assert_int_equal(pl_safe_text(out, sizeof(out), "abcd\x1b" "ef", 7, NULL), 10);
    assert_string_equal(out, "abcd"); /* "\x1b" would not fit whole */
    assert_int_equal(pl_safe_text(out, sizeof(out), "ab sk-1234", 10, "sk-1234"), 13);
    assert_string_equal(out, "ab ");
    assert_int_equal(pl_safe_text(out, sizeof(out), "abcdef\xc3\xa9", 8, NULL), 8);
    assert_string_equal(out, "abcdef"); /* not half of the e-acute */
    assert_int_equal(pl_safe_text(out, 1, "abc", 3, NULL), 3);
    assert_string_equal(out, "");
}

/* Whatever the input, the output is UTF-8 without a control character. */
static void test_every_byte_comes_out_printable(void **state)
{
    (void)state;
    char in[256], out[2048];
    for (int i = 0; i < 256; i++)
        in[i] = (char)i;
    size_t n = pl_safe_text(out, sizeof(out), in, sizeof(in), NULL);
    assert_int_equal(n, strlen(out));
    assert_true(pl_utf8_valid(out, n));
    for (size_t i = 0; i < n; i++)
        assert_true((unsigned char)out[i] >= 0x20 && out[i] != 0x7f);
}

/* ---- through the log --------------------------------------------------------- */

static char logged[4096];
static int nlogged;

static void capture(const parley_client_t *client, int level, const char *facility,
                    const char *message, void *opaque)
{
    (void)client;
    (void)level;
    (void)facility;
    (void)opaque;
    snprintf(logged, sizeof(logged), "%s", message);
    nlogged++;
}

/* A logger as a client makes it, with a key of key_len bytes. */
typedef struct fake_client {
    pl_logger client;
    char key[64];
} fake_client;

static void fake_init(fake_client *f, size_t key_len)
{
    memset(f, 0, sizeof(*f));
    f->client.level = PARLEY_LOG_DEBUG;
    f->client.cb = capture;
    memcpy(f->key, KEY_CHARS, key_len);
    f->key[key_len] = '\0';
    f->client.api_key = f->key;
    nlogged = 0;
}


/* Not a byte of the key in what was logged, and the line within its limit. */
static void assert_logged_clean(size_t key_len)
{
    assert_int_equal(nlogged, 1);
    assert_true(strlen(logged) < LINE_MAX_BYTES);
    assert_true(pl_utf8_valid(logged, strlen(logged)));
    if (key_len >= PL_KEY_MATCH_MIN)
        assert_null(strpbrk(logged, KEY_CHARS));
}

/* A line of `len` bytes: "X-Echo: " and filler, the key at `at`. */
static void make_line(char *line, size_t len, size_t at, const char *key)
{
    memset(line, FILLER, len);
    memcpy(line, "X-Echo: ", 8);
    memcpy(line + at, key, strlen(key));
    line[len] = '\0';
}

/*
 * The review's crash: a 1,023-byte header line ending in a 4-9 byte key made
 * redact_key's tail length wrap around (ASan: negative-size memmove). Every
 * key length, lines around the limit, the key at the start (after the
 * header name), at the end, and across the limit.
 */
static void test_trace_lines_at_the_limit(void **state)
{
    (void)state;
    static const size_t lens[] = {1000, 1013, 1020, 1022, 1023, 1024, 1025, 1040, 2000};
    char line[2100];
    for (size_t klen = 1; klen <= 30; klen++) {
        fake_client f;
        fake_init(&f, klen);
        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
            size_t len = lens[i];
            size_t places[] = {8, len - klen, 1023 - klen / 2, 1020};
            for (size_t p = 0; p < sizeof(places) / sizeof(places[0]); p++) {
                if (places[p] < 8 || places[p] + klen > len)
                    continue;
                make_line(line, len, places[p], f.key);
                nlogged = 0;
                pl_log_curl_trace(&f.client, line, len);
                assert_logged_clean(klen);
                nlogged = 0;
                pl_log(&f.client, PARLEY_LOG_DEBUG, "test", "%s", line);
                assert_logged_clean(klen);
            }
        }
    }
}

/* Header values that carry credentials go whole, whatever the key's length:
 * HTTP/1 header lines, and libcurl's HTTP/2 trace of request headers. */
static void test_credential_headers_in_the_trace(void **state)
{
    (void)state;
    static const char *const lines[][2] = {
        {"Authorization: Bearer #0", "Authorization: [redacted]"},
        {"x-api-key: #0", "x-api-key: [redacted]"},
        {"[HTTP/2] [1] [authorization: Bearer #0]", "[HTTP/2] [1] [authorization: [redacted]]"},
        {"[HTTP/2] [3] [x-api-key: #0]", "[HTTP/2] [3] [x-api-key: [redacted]]"},
        {"[HTTP/2] [3] [x-api-key: #0]x]", "[HTTP/2] [3] [x-api-key: [redacted]]"},
        {"[HTTP/3] [0] [cookie: a=#0", "[HTTP/3] [0] [cookie: [redacted]"},
        {"[HTTP/2] [1] [accept: */*]", "[HTTP/2] [1] [accept: */*]"},
    };
    for (size_t klen = 1; klen <= 2; klen++) {
        fake_client f;
        fake_init(&f, klen);
        for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
            nlogged = 0;
            pl_log_curl_trace(&f.client, lines[i][0], strlen(lines[i][0]));
            assert_int_equal(nlogged, 1);
            assert_string_equal(logged, lines[i][1]);
        }
    }
}

/* A server's CR LF cannot start a log line of its own. */
static void test_log_lines_cannot_be_forged(void **state)
{
    (void)state;
    fake_client f;
    fake_init(&f, 12);
    pl_log(&f.client, PARLEY_LOG_WARNING, "proto", "server error: %s",
           "oops\r\nparley ERROR client: forged\x1b[31m");
    assert_string_equal(logged, "server error: oops\\r\\nparley ERROR client: forged\\x1b[31m");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_redacted_anywhere),
        cmocka_unit_test(test_control_characters_escaped),
        cmocka_unit_test(test_output_cut_at_whole_units),
        cmocka_unit_test(test_every_byte_comes_out_printable),
        cmocka_unit_test(test_trace_lines_at_the_limit),
        cmocka_unit_test(test_credential_headers_in_the_trace),
        cmocka_unit_test(test_log_lines_cannot_be_forged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
