/*
 * TLS with a throwaway CA (verified, unknown CA, wrong host name, pin
 * mismatch, the insecure switch) and compression negotiation (zstd with and
 * without the dictionary, and a server that offers only parley.v1).
 */
#include <setjmp.h>
#include <stdarg.h>
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
#include "tls_files.h"

#define TEST_KEY "tls-key"

static tls_files tls;

static int group_setup(void **state)
{
    (void)state;
    tls_files_make(&tls);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    tls_files_remove(&tls);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    recorder_reset();
    setenv("PARLEY_API_KEY", TEST_KEY, 1);
    setenv("PARLEY_LOG", "error", 0);
    return 0;
}

static pl_refserver *server_gz(const char *cert, const char *key, int zstd, int dict, int gzip)
{
    pl_refserver_opts o;
    pl_refserver_opts_init(&o);
    o.api_key = TEST_KEY;
    o.quiet = 1;
    o.tls_cert_file = cert;
    o.tls_key_file = key;
    o.zstd = zstd;
    o.zstd_dict = dict;
    o.gzip = gzip;
    char err[256];
    pl_refserver *srv = pl_refserver_start(&o, err, sizeof(err));
    if (!srv)
        fail_msg("refserver: %s", err);
    return srv;
}

static pl_refserver *server(const char *cert, const char *key, int zstd, int dict)
{
    return server_gz(cert, key, zstd, dict, 1);
}

static const char *url(const char *scheme, const char *host, pl_refserver *srv)
{
    static char buf[128];
    snprintf(buf, sizeof(buf), "%s://%s:%d/v1/stream", scheme, host, pl_refserver_port(srv));
    return buf;
}

/* One turn; returns its record. */
static recorder_entry one_turn(parley_client_t *c, const char *text)
{
    parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
    uint64_t id;
    assert_int_equal(parley_send(s, text, &id), PARLEY_OK);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    return recorder_get(id);
}

static void test_verified_with_ca(void **state)
{
    (void)state;
    pl_refserver *srv = server(tls.server_cert, tls.server_key, 1, 1);
    parley_client_t *c = fixture_client_url(url("wss", "127.0.0.1", srv), "tls.ca.file",
                                            tls.ca, NULL);
    assert_string_equal(one_turn(c, "secure").done, "[turn 1] secure");
    parley_stats_t st;
    parley_stats_get(c, &st);
    assert_int_equal(st.insecure_connections, 0);
    parley_client_destroy(c);
    /* With the right pin too. */
    c = fixture_client_url(url("wss", "localhost", srv), "tls.ca.file", tls.ca,
                           "tls.pinned.pubkey", tls.server_pin, NULL);
    assert_string_equal(one_turn(c, "pinned").done, "[turn 1] pinned");
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

/* Each failure names what went wrong and what to do; none is retried. */
static void test_clear_tls_errors(void **state)
{
    (void)state;
    pl_refserver *srv = server(tls.server_cert, tls.server_key, 1, 1);
    parley_client_t *c = fixture_client_url(url("wss", "127.0.0.1", srv), "tls.ca.file",
                                            tls.other_ca, NULL);
    recorder_entry r = one_turn(c, "x");
    assert_int_equal(r.err, PARLEY_ERR_TLS);
    assert_non_null(strstr(r.err_msg, "unknown CA"));
    assert_non_null(strstr(r.err_msg, "tls.ca.file"));
    assert_null(strstr(r.err_msg, "attempts")); /* not retried */
    parley_client_destroy(c);

    recorder_reset();
    c = fixture_client_url(url("wss", "127.0.0.1", srv), "tls.ca.file", tls.ca,
                           "tls.pinned.pubkey",
                           "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", NULL);
    r = one_turn(c, "x");
    assert_int_equal(r.err, PARLEY_ERR_TLS);
    assert_non_null(strstr(r.err_msg, "tls.pinned.pubkey"));
    parley_client_destroy(c);
    pl_refserver_stop(srv);

    /* A certificate for another host name. */
    recorder_reset();
    srv = server(tls.wrong_cert, tls.wrong_key, 1, 1);
    c = fixture_client_url(url("wss", "127.0.0.1", srv), "tls.ca.file", tls.ca, NULL);
    r = one_turn(c, "x");
    assert_int_equal(r.err, PARLEY_ERR_TLS);
    assert_non_null(strstr(r.err_msg, "host name mismatch"));
    parley_client_destroy(c);

    /* The insecure switch connects anyway, and shows in the stats. */
    recorder_reset();
    c = fixture_client_url(url("wss", "127.0.0.1", srv), "tls.insecure", "1", NULL);
    assert_string_equal(one_turn(c, "risky").done, "[turn 1] risky");
    parley_stats_t st;
    parley_stats_get(c, &st);
    assert_true(st.insecure_connections >= 1);
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

/* A long reply, to make frames worth compressing both ways. */
static const char *long_text(void)
{
    static char text[2048];
    text[0] = '\0';
    while (strlen(text) < 300) /* above the threshold, within the recorder */
        strcat(text, "the quick brown fox jumps over the lazy dog; ");
    return text;
}

static void check_compressed_turn(pl_refserver *srv, const char *compression,
                                  int expect_compression)
{
    recorder_reset();
    parley_client_t *c = fixture_client(pl_refserver_port(srv), "compression", compression,
                                        NULL);
    char want[2100];
    snprintf(want, sizeof(want), "[turn 1] %s", long_text());
    recorder_entry r = one_turn(c, long_text());
    assert_string_equal(r.done, want);
    parley_stats_t st;
    parley_stats_get(c, &st);
    if (expect_compression) {
        assert_true(st.bytes_compression_saved > 0); /* we sent compressed */
    } else {
        assert_int_equal(st.bytes_compression_saved, 0);
        assert_int_equal(st.bytes_decompressed, 0);
    }
    parley_client_destroy(c);
}

/* zstd with the dictionary, without it, gzip, and a server offering
 * parley.v1 only. */
static void test_compression_negotiation(void **state)
{
    (void)state;
    pl_refserver *srv = server(NULL, NULL, 1, 1);
    check_compressed_turn(srv, "zstd", 1);
    check_compressed_turn(srv, "gzip", 1); /* the gzip extension, asked for */
    check_compressed_turn(srv, "none", 0);
    pl_refserver_stop(srv);
    srv = server(NULL, NULL, 1, 0); /* no dictionary: plain zstd frames */
    check_compressed_turn(srv, "zstd", 1);
    pl_refserver_stop(srv);
    srv = server_gz(NULL, NULL, 0, 0, 1); /* no zstd: the client falls back to gzip */
    check_compressed_turn(srv, "zstd", 1);
    pl_refserver_stop(srv);
    srv = server_gz(NULL, NULL, 0, 0, 0); /* parley.v1 only: no error, no compression */
    check_compressed_turn(srv, "zstd", 0);
    pl_refserver_stop(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_verified_with_ca, setup),
        cmocka_unit_test_setup(test_clear_tls_errors, setup),
        cmocka_unit_test_setup(test_compression_negotiation, setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
