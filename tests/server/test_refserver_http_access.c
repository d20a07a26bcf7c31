/*
 * How clients reach the reference server's Anthropic endpoint. The API key
 * as x-api-key (what parley sends) or as "Authorization: Bearer" (what the
 * official SDKs send), over HTTP/1.1 and over HTTP/2 with TLS, where lws
 * 4.1 hides x-api-key and anthropic-version but not Authorization
 * (refserver_http.h); and HTTP/2 over cleartext with prior knowledge on
 * the h2c port (opts.h2c). Raw libcurl requests, so that the headers and
 * the protocol are exactly the ones each case names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <curl/curl.h>

#include "refserver.h"
#include "refserver_http.h"
#include "tls_files.h"

#define KEY "auth-key"
#define BODY \
    "{\"model\":\"parley-echo-1\",\"max_tokens\":64,\"stream\":true," \
    "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"

typedef struct reply {
    char text[4096];
    size_t len;
} reply;

static size_t on_data(char *data, size_t size, size_t n, void *opaque)
{
    reply *r = opaque;
    size_t len = size * n, room = sizeof(r->text) - 1 - r->len;

    memcpy(r->text + r->len, data, len < room ? len : room);
    r->len += len < room ? len : room;
    r->text[r->len] = '\0';
    return len;
}

/* POST /v1/messages with anthropic-version and `auth` (a header line, or
 * NULL for none), asking libcurl for `http_version`; the status, the body
 * in *r, the HTTP version used in *version. */
static long post_as(const char *base, const char *ca, const char *auth, long http_version,
                    reply *r, long *version)
{
    char url[128];
    snprintf(url, sizeof(url), "%s/v1/messages", base);
    struct curl_slist *h = curl_slist_append(NULL, "content-type: application/json");
    h = curl_slist_append(h, "anthropic-version: 2023-06-01");
    if (auth)
        h = curl_slist_append(h, auth);
    CURL *e = curl_easy_init();
    assert_non_null(e);
    memset(r, 0, sizeof(*r));
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, BODY);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, http_version);
    if (ca)
        curl_easy_setopt(e, CURLOPT_CAINFO, ca);
    CURLcode rc = curl_easy_perform(e);
    if (rc != CURLE_OK)
        fail_msg("POST %s: %s", url, curl_easy_strerror(rc));
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, version);
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    return status;
}

/* As parley asks: HTTP/2 over TLS, HTTP/1.1 over cleartext. */
static long post(const char *base, const char *ca, const char *auth, reply *r,
                 long *version)
{
    return post_as(base, ca, auth, CURL_HTTP_VERSION_2TLS, r, version);
}

static uint64_t unverified(pl_refserver *srv)
{
    pl_refserver_http_stats st;
    pl_refserver_http_get_stats(pl_refserver_http_of(srv), &st);
    return st.h2_unverified;
}

/* Each way of sending the key, and none, on one server. */
static void check_keys(pl_refserver *srv, const char *base, const char *ca, long want_version)
{
    reply r;
    long version = 0;

    assert_int_equal(post(base, ca, "x-api-key: " KEY, &r, &version), 200);
    assert_int_equal(version, want_version);
    assert_non_null(strstr(r.text, "[turn 1] hi"));
    assert_int_equal(post(base, ca, "Authorization: Bearer " KEY, &r, &version), 200);
    assert_non_null(strstr(r.text, "[turn 1] hi"));
    assert_int_equal(post(base, ca, "Authorization: Bearer wrong", &r, &version), 401);
    assert_non_null(strstr(r.text, "authentication_error"));
    uint64_t before = unverified(srv);
    long none = post(base, ca, NULL, &r, &version);
    if (want_version == CURL_HTTP_VERSION_2_0) {
        /* No key that lws lets through: served, and counted as unchecked. */
        assert_int_equal(none, 200);
        assert_int_equal(unverified(srv), before + 1);
    } else {
        assert_int_equal(none, 401);
        assert_non_null(strstr(r.text, "x-api-key header is required"));
    }
}

static pl_refserver *start_with(const tls_files *tls, int h2c)
{
    pl_refserver_opts o;
    pl_refserver_opts_init(&o);
    o.h2c = h2c;
    o.api_key = KEY;
    o.quiet = 1;
    if (tls) {
        o.tls_cert_file = tls->server_cert;
        o.tls_key_file = tls->server_key;
    }
    pl_refserver *srv = pl_refserver_start(&o, NULL, 0);
    assert_non_null(srv);
    return srv;
}

static pl_refserver *start(const tls_files *tls)
{
    return start_with(tls, 0);
}

static void test_keys_over_http1(void **state)
{
    (void)state;
    pl_refserver *srv = start(NULL);
    char base[64];
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", pl_refserver_port(srv));
    check_keys(srv, base, NULL, CURL_HTTP_VERSION_1_1);
    pl_refserver_stop(srv);
}

static void test_keys_over_h2(void **state)
{
    (void)state;
    tls_files tls;
    tls_files_make(&tls);
    pl_refserver *srv = start(&tls);
    char base[64];
    snprintf(base, sizeof(base), "https://127.0.0.1:%d", pl_refserver_port(srv));
    check_keys(srv, base, tls.ca, CURL_HTTP_VERSION_2_0);
    pl_refserver_stop(srv);
    tls_files_remove(&tls);
}

/* h2c: HTTP/2 with prior knowledge on its own port, with the bearer key
 * checked there too; the main port keeps HTTP/1.1. */
static void test_h2c_prior_knowledge(void **state)
{
    (void)state;
    pl_refserver *srv = start_with(NULL, 1);
    int port = pl_refserver_h2c_port(srv);
    assert_true(port > 0 && port != pl_refserver_port(srv));
    char h2c[64], main_port[64];
    snprintf(h2c, sizeof(h2c), "http://127.0.0.1:%d", port);
    snprintf(main_port, sizeof(main_port), "http://127.0.0.1:%d", pl_refserver_port(srv));
    reply r;
    long version = 0;
    assert_int_equal(post_as(h2c, NULL, "Authorization: Bearer " KEY,
                             CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE, &r, &version), 200);
    assert_int_equal(version, CURL_HTTP_VERSION_2_0);
    assert_non_null(strstr(r.text, "[turn 1] hi"));
    assert_int_equal(post_as(h2c, NULL, "Authorization: Bearer wrong",
                             CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE, &r, &version), 401);
    assert_int_equal(post(main_port, NULL, "x-api-key: " KEY, &r, &version), 200);
    assert_int_equal(version, CURL_HTTP_VERSION_1_1);
    pl_refserver_stop(srv);

    srv = start(NULL);
    assert_int_equal(pl_refserver_h2c_port(srv), 0); /* off by default */
    pl_refserver_stop(srv);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_over_http1),
        cmocka_unit_test(test_keys_over_h2),
        cmocka_unit_test(test_h2c_prior_knowledge),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
