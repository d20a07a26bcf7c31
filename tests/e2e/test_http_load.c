/*
 * The load check of the vendors' path (issue 16): 1,000 conversations at
 * once over HTTP/2 with TLS, against the in-process reference server's
 * Anthropic front end. Every reply must be exact (the echo model's, with the
 * history carried to the second turn), none may fail, and the streams must
 * share a handful of HTTP/2 connections. No time is asserted: speed is for
 * the benchmarks (docs/benchmarks.md).
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
#include "tls_files.h"

#define TEST_KEY "load-key"
#define CONVERSATIONS 1000
#define TURNS 2

static int setup(void **state)
{
    (void)state;
    recorder_reset();
    setenv("PARLEY_API_KEY", TEST_KEY, 1);
    unsetenv("ANTHROPIC_API_KEY");
    unsetenv("OPENAI_API_KEY");
    setenv("PARLEY_LOG", "error", 0);
    return 0;
}

static void test_h2_thousand_conversations(void **state)
{
    (void)state;
    tls_files tls;
    tls_files_make(&tls);
    pl_refserver_opts o;
    pl_refserver_opts_init(&o);
    o.api_key = TEST_KEY;
    o.latency_ms = 300; /* every conversation's turn is in flight at once */
    o.quiet = 1;
    o.tls_cert_file = tls.server_cert;
    o.tls_key_file = tls.server_key;
    pl_refserver *srv = pl_refserver_start(&o, NULL, 0);
    assert_non_null(srv);
    char url[96];
    snprintf(url, sizeof(url), "https://127.0.0.1:%d", pl_refserver_port(srv));
    parley_client_t *c = fixture_client_url(url, "dialect", "anthropic", "tls.ca.file",
                                            tls.ca, NULL);
    static uint64_t ids[CONVERSATIONS][TURNS];
    /* Both turns at once: a session sends the second when the first is done,
     * with the first and its reply as history. */
    for (int i = 0; i < CONVERSATIONS; i++) {
        parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
        assert_non_null(s);
        for (int t = 0; t < TURNS; t++) {
            char text[48];
            snprintf(text, sizeof(text), "conversation %d turn %d", i, t);
            assert_int_equal(parley_send(s, text, &ids[i][t]), PARLEY_OK);
        }
    }
    assert_int_equal(parley_flush(c, 240000), PARLEY_OK);
    for (int i = 0; i < CONVERSATIONS; i++)
        for (int t = 0; t < TURNS; t++) {
            char want[80];
            snprintf(want, sizeof(want), "[turn %d] conversation %d turn %d", t + 1, i, t);
            recorder_entry r = recorder_get(ids[i][t]);
            if (r.terminal != PARLEY_EVENT_DONE)
                fail_msg("conversation %d turn %d: %s", i, t, r.err_msg);
            assert_string_equal(r.done, want);
            assert_string_equal(r.text, want);
            assert_int_equal(r.seq_errors, 0);
            assert_int_equal(r.terminals, 1);
        }
    parley_stats_t st;
    parley_stats_get(c, &st);
    pl_refserver_http_stats hs;
    pl_refserver_http_get_stats(pl_refserver_http_of(srv), &hs);
    print_message("h2 load: %d conversations of %d turns, %llu requests done, %llu failed, "
                  "%llu retries, over %llu connections (server: %llu, %llu h2, at most %llu "
                  "in flight)\n", CONVERSATIONS, TURNS, (unsigned long long)st.requests_done,
                  (unsigned long long)st.requests_failed, (unsigned long long)st.retries,
                  (unsigned long long)st.connections_opened,
                  (unsigned long long)hs.connections, (unsigned long long)hs.connections_h2,
                  (unsigned long long)hs.max_in_flight);
    assert_int_equal(st.requests_done, CONVERSATIONS * TURNS);
    assert_int_equal(st.requests_failed, 0);
    assert_int_equal(hs.connections_h2, hs.connections);
    /* A handful: libcurl puts up to 100 streams on a connection, and
     * PIPEWAIT makes new streams wait for one being set up. */
    assert_true(st.connections_opened >= 1 && st.connections_opened <= 2 * CONVERSATIONS / 100);
    assert_true(hs.max_in_flight > 100); /* they really ran at once */
    parley_client_destroy(c);
    pl_refserver_stop(srv);
    tls_files_remove(&tls);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_h2_thousand_conversations, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
