/*
 * What a user is told when a request to a server fails or waits (issue 17),
 * word for word where the words are parley's: an HTTP error names the URL
 * and the dialect; a reply cut off is "connection lost mid-reply", not a
 * failure to connect; resume_failed says the turn can be sent again; a
 * stall, and an HTTP request that is retried, show at the default log level
 * (WARNING), rate-limited; a failure that ends its requests is not logged
 * at WARNING besides their error events.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "parley.h"
#include "recorder.h"
#include "refserver.h"
#include "refserver_http.h"

#define TEST_KEY "t0p-s3cr3t-k3y"

/* ---- the log lines of a client --------------------------------------------- */

#define LOG_LINES_MAX 256

static struct {
    pthread_mutex_t mu;
    size_t n;
    int level[LOG_LINES_MAX];
    char line[LOG_LINES_MAX][1024];
} logged = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void on_log(const parley_client_t *client, int level, const char *facility,
                   const char *message, void *opaque)
{
    (void)client, (void)facility, (void)opaque;
    pthread_mutex_lock(&logged.mu);
    if (logged.n < LOG_LINES_MAX) {
        logged.level[logged.n] = level;
        snprintf(logged.line[logged.n], sizeof(logged.line[0]), "%s", message);
        logged.n++;
    }
    pthread_mutex_unlock(&logged.mu);
}

static void log_reset(void)
{
    pthread_mutex_lock(&logged.mu);
    logged.n = 0;
    pthread_mutex_unlock(&logged.mu);
}

/* How many lines at `level` contain `needle`. */
static size_t log_count(int level, const char *needle)
{
    size_t count = 0;
    pthread_mutex_lock(&logged.mu);
    for (size_t i = 0; i < logged.n; i++)
        if (logged.level[i] == level && strstr(logged.line[i], needle))
            count++;
    pthread_mutex_unlock(&logged.mu);
    return count;
}

/* A started client for url at log level notice (so that the level each
 * line gets is seen), with properties as name, value, ..., NULL. */
static parley_client_t *client_for(const char *url, ...)
{
    parley_conf_t *conf = parley_conf_new();
    char err[512];
    va_list ap;
    assert_non_null(conf);
    assert_int_equal(parley_conf_set(conf, "endpoint", url, err, sizeof(err)), PARLEY_OK);
    assert_int_equal(parley_conf_set(conf, "workers", "2", err, sizeof(err)), PARLEY_OK);
    assert_int_equal(parley_conf_set(conf, "log.level", "notice", err, sizeof(err)), PARLEY_OK);
    va_start(ap, url);
    for (const char *name; (name = va_arg(ap, const char *));) {
        const char *value = va_arg(ap, const char *);
        if (parley_conf_set(conf, name, value, err, sizeof(err)) != PARLEY_OK)
            fail_msg("%s=%s: %s", name, value, err);
    }
    va_end(ap);
    parley_conf_set_event_cb(conf, recorder_on_event, NULL);
    parley_conf_set_log_cb(conf, on_log, NULL);
    parley_client_t *c = parley_client_new(conf, err, sizeof(err));
    if (!c)
        fail_msg("parley_client_new: %s", err);
    assert_int_equal(parley_start(c), PARLEY_OK);
    return c;
}

static int setup(void **state)
{
    (void)state;
    recorder_reset();
    log_reset();
    setenv("PARLEY_API_KEY", TEST_KEY, 1);
    unsetenv("ANTHROPIC_API_KEY");
    unsetenv("OPENAI_API_KEY");
    unsetenv("PARLEY_LOG"); /* the test sets the level it reads */
    return 0;
}

static const char *url_of(const char *scheme, int port, const char *path)
{
    static char url[128];
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d%s", scheme, port, path);
    return url;
}

/* Send one turn and wait for its terminal event. */
static recorder_entry one_turn(parley_client_t *c, const char *text)
{
    parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
    uint64_t id;
    assert_non_null(s);
    assert_int_equal(parley_send(s, text, &id), PARLEY_OK);
    assert_int_equal(parley_flush(c, 60000), PARLEY_OK);
    return recorder_get(id);
}

/* ---- HTTP errors ------------------------------------------------------------ */

/* A 404 names the URL (the path was filled in) and the dialect with why. */
static void test_http_error_names_url_and_dialect(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 16);
    char base[160], want[700];
    snprintf(base, sizeof(base), "%s", url_of("http", pl_refserver_port(srv), ""));
    parley_client_t *c = client_for(base, "dialect", "anthropic", "model", "no-such-model",
                                    NULL);
    recorder_entry r = one_turn(c, "x");
    assert_int_equal(r.err, PARLEY_ERR_NOT_FOUND);
    snprintf(want, sizeof(want),
             "HTTP 404 from %s/v1/messages (anthropic dialect, set by the \"dialect\" "
             "property): not_found_error: model: unknown model (this server serves "
             "parley-echo-1) (request-id ",
             base);
    if (strncmp(r.err_msg, want, strlen(want)) != 0)
        fail_msg("got: %s\nwant: %s...", r.err_msg, want);
    const char *advice = "); check the endpoint's path, the dialect and the \"model\" property";
    assert_string_equal(r.err_msg + strlen(r.err_msg) - strlen(advice), advice);
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

/* A native endpoint on a path the server does not serve: the dialect and
 * the path to use. */
static void test_native_404_names_dialect_and_path(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 16);
    char url[160], want[500];
    snprintf(url, sizeof(url), "%s", url_of("ws", pl_refserver_port(srv), "/v1/messages"));
    parley_client_t *c = client_for(url, NULL);
    recorder_entry r = one_turn(c, "x");
    assert_int_equal(r.err, PARLEY_ERR_CONNECT);
    snprintf(want, sizeof(want),
             "the server answered HTTP 404 to the WebSocket upgrade of %s (native dialect, "
             "chosen by the scheme ws://); the native protocol's path is /v1/stream, and the "
             "vendors' APIs take an http(s):// endpoint",
             url);
    assert_string_equal(r.err_msg, want);
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

/* ---- replies cut off ------------------------------------------------------- */

/* The server goes away mid-reply and does not come back: the connection was
 * lost mid-reply, which the failed reconnects must not hide. */
static void test_native_server_gone_mid_reply(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 100, 2);
    int port = pl_refserver_port(srv);
    parley_client_t *c = client_for(url_of("ws", port, "/v1/stream"), "retry.backoff.ms", "10",
                                    "reconnect.backoff.ms", "10", "connect.timeout.ms", "2000",
                                    NULL);
    parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
    uint64_t id;
    assert_int_equal(parley_send(s, "a reply of many pieces", &id), PARLEY_OK);
    assert_true(recorder_wait_pieces(id, 1, 30));
    pl_refserver_stop(srv);
    assert_int_equal(parley_flush(c, 60000), PARLEY_OK);
    recorder_entry r = recorder_get(id);
    assert_int_equal(r.err, PARLEY_ERR_CONNECTION_LOST);
    const char *want = "connection lost mid-reply after ";
    if (strncmp(r.err_msg, want, strlen(want)) != 0)
        fail_msg("got: %s", r.err_msg);
    char part[220];
    snprintf(part, sizeof(part), ", and resuming failed: could not connect to %s: ",
             url_of("ws", port, "/v1/stream"));
    assert_non_null(strstr(r.err_msg, part));
    assert_non_null(strstr(r.err_msg, "(after 3 attempts)"));
    parley_client_destroy(c);
}

/* A restarted server forgot the request: resume_failed, with the advice. */
static void test_resume_failed_advice(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 100, 2);
    parley_client_t *c = client_for(url_of("ws", pl_refserver_port(srv), "/v1/stream"),
                                    "reconnect.backoff.ms", "10", NULL);
    parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
    uint64_t id;
    assert_int_equal(parley_send(s, "a reply of many pieces", &id), PARLEY_OK);
    assert_true(recorder_wait_pieces(id, 1, 30));
    pl_refserver_restart(srv);
    assert_int_equal(parley_flush(c, 60000), PARLEY_OK);
    recorder_entry r = recorder_get(id);
    assert_int_equal(r.err, PARLEY_ERR_RESUME_FAILED);
    assert_string_equal(r.err_msg,
                        "server error resume_failed: unknown or expired request id (the "
                        "server no longer holds the reply, e.g. after a restart: the session "
                        "is unchanged and the turn can be sent again)");
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

/* An HTTP stream cut after two pieces. */
static void test_http_stream_cut_mid_reply(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 2);
    pl_refserver_http_faults f;
    pl_refserver_http_faults_init(&f);
    f.drop_every = 1;
    f.drop_after_pieces = 2;
    pl_refserver_http_set_faults(pl_refserver_http_of(srv), &f);
    char url[160];
    snprintf(url, sizeof(url), "%s", url_of("http", pl_refserver_port(srv), "/v1/chat/completions"));
    parley_client_t *c = client_for(url, NULL);
    recorder_entry r = one_turn(c, "a reply of many pieces");
    assert_int_equal(r.err, PARLEY_ERR_CONNECTION_LOST);
    char want[300];
    snprintf(want, sizeof(want), "connection lost mid-reply: the stream from %s ended after "
             "2 pieces, before the reply completed (", url);
    if (strncmp(r.err_msg, want, strlen(want)) != 0)
        fail_msg("got: %s\nwant: %s...", r.err_msg, want);
    const char *end = "); HTTP streaming APIs cannot resume a reply: send the turn again";
    assert_string_equal(r.err_msg + strlen(r.err_msg) - strlen(end), end);
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

/* ---- waits at the default log level --------------------------------------- */

/* Stalls are warnings (the default level shows them), at most one per
 * 10 s: the second stall right after is a notice. */
static void test_stall_is_a_rate_limited_warning(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 16);
    pl_refserver_faults f = {0};
    f.stall_every = 1;
    pl_refserver_set_faults(srv, &f);
    char url[160];
    snprintf(url, sizeof(url), "%s", url_of("ws", pl_refserver_port(srv), "/v1/stream"));
    parley_client_t *c = client_for(url, "stall.timeout.ms", "200", "retry.max.attempts", "1",
                                    NULL);
    recorder_entry r = one_turn(c, "first");
    assert_int_equal(r.err, PARLEY_ERR_TIMED_OUT);
    r = one_turn(c, "second");
    assert_int_equal(r.err, PARLEY_ERR_TIMED_OUT);
    char waiting[200];
    snprintf(waiting, sizeof(waiting), ": the reply stalled: nothing for ");
    assert_int_equal(log_count(PARLEY_LOG_WARNING, waiting), 1);
    assert_int_equal(log_count(PARLEY_LOG_NOTICE, waiting), 1);
    snprintf(waiting, sizeof(waiting), " ms; waiting on %s", url);
    assert_int_equal(log_count(PARLEY_LOG_WARNING, waiting), 1);
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

/* An HTTP request retried after a failed connect says so at WARNING before
 * its last attempt, not only in the error event at the end. */
static void test_http_retry_is_a_warning(void **state)
{
    (void)state;
    char url[160];
    snprintf(url, sizeof(url), "%s", url_of("http", fixture_closed_port(), ""));
    parley_client_t *c = client_for(url, "retry.backoff.ms", "10", NULL);
    recorder_entry r = one_turn(c, "x");
    assert_int_equal(r.err, PARLEY_ERR_CONNECT);
    char want[260];
    snprintf(want, sizeof(want), ": could not connect to %s/v1/chat/completions: ", url);
    assert_int_equal(log_count(PARLEY_LOG_WARNING, want), 1);
    assert_int_equal(log_count(PARLEY_LOG_WARNING, "; sending it again (attempt 1 of 3 done)"), 1);
    assert_int_equal(log_count(PARLEY_LOG_NOTICE, "; sending it again (attempt 2 of 3 done)"), 1);
    parley_client_destroy(c);
}

/* A refused key ends the request: its error event says so, and the log
 * does not repeat it at WARNING (what `hello` printed twice). */
static void test_final_failure_is_not_a_warning(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server("another-key", 0, 0, 16);
    parley_client_t *c = client_for(url_of("ws", pl_refserver_port(srv), "/v1/stream"), NULL);
    recorder_entry r = one_turn(c, "x");
    assert_int_equal(r.err, PARLEY_ERR_UNAUTHORIZED);
    assert_int_equal(log_count(PARLEY_LOG_WARNING, "unauthorized"), 0);
    assert_int_equal(log_count(PARLEY_LOG_NOTICE, "unauthorized"), 1);
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_http_error_names_url_and_dialect, setup),
        cmocka_unit_test_setup(test_native_404_names_dialect_and_path, setup),
        cmocka_unit_test_setup(test_native_server_gone_mid_reply, setup),
        cmocka_unit_test_setup(test_resume_failed_advice, setup),
        cmocka_unit_test_setup(test_http_stream_cut_mid_reply, setup),
        cmocka_unit_test_setup(test_stall_is_a_rate_limited_warning, setup),
        cmocka_unit_test_setup(test_http_retry_is_a_warning, setup),
        cmocka_unit_test_setup(test_final_failure_is_not_a_warning, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
