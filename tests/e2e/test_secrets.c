/*
 * The API key never appears in logs, error strings or stats, even at the most
 * verbose log level, where libcurl's trace of the handshake (with its
 * Authorization header) is logged too; not when a server echoes it back, not
 * when it is too short to find in text, not in the HTTP/2 trace. Nor does a
 * password in the endpoint's URL, and a server's control characters reach
 * neither a log line nor an error event. The key can come from a file.
 */
#include <pthread.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "parley.h"
#include "fixtures.h"
#include "loopback_http.h"
#include "recorder.h"
#include "refserver.h"
#include "tls_files.h"

#define SECRET "sk-parley-SECRET-4f1c9a7e20d3"

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char *log_text;
static size_t log_len, log_lines, redacted_auth_lines, control_lines;

static bool has_control(const char *text)
{
    for (const unsigned char *c = (const unsigned char *)text; *c; c++)
        if (*c < 0x20 || *c == 0x7f || (c[0] == 0xc2 && c[1] >= 0x80 && c[1] < 0xa0))
            return true;
    return false;
}

static void capture_log(const parley_client_t *client, int level, const char *facility,
                        const char *message, void *opaque)
{
    (void)client;
    (void)opaque;
    char line[1200];
    int n = snprintf(line, sizeof(line), "%d %s %s\n", level, facility, message);
    pthread_mutex_lock(&log_mu);
    log_text = realloc(log_text, log_len + (size_t)n + 1);
    memcpy(log_text + log_len, line, (size_t)n + 1);
    log_len += (size_t)n;
    log_lines++;
    if (strcasestr(message, "Authorization: [redacted]") ||
        strcasestr(message, "x-api-key: [redacted]"))
        redacted_auth_lines++;
    if (has_control(message))
        control_lines++;
    pthread_mutex_unlock(&log_mu);
}

/* Fail, showing the line, when the log holds needle. Called once no
 * client runs any more (destroyed), so log_text is read without the lock,
 * and a failed assertion cannot leave the lock held for the next test. */
static void assert_log_lacks(const char *needle)
{
    const char *hit = log_text ? strcasestr(log_text, needle) : NULL;
    if (!hit)
        return;
    const char *start = hit;
    while (start > log_text && start[-1] != '\n')
        start--;
    const char *end = strchr(hit, '\n');
    fail_msg("the log shows \"%s\": %.*s", needle, (int)(end ? end - start : 200), start);
}

static bool log_has(const char *needle)
{
    return log_text && strstr(log_text, needle);
}

static int setup(void **state)
{
    (void)state;
    recorder_reset();
    free(log_text);
    log_text = NULL;
    log_len = log_lines = redacted_auth_lines = control_lines = 0;
    unsetenv("PARLEY_LOG");
    return 0;
}

/* A started client for url logging everything to capture_log, with the
 * key from key_file (NULL: the environment) and more properties as name,
 * value, ..., NULL. */
static parley_client_t *verbose_client_url(const char *url, const char *key_file, ...)
{
    parley_conf_t *conf = parley_conf_new();
    char err[512];
    assert_int_equal(parley_conf_set(conf, "endpoint", url, err, sizeof(err)), PARLEY_OK);
    va_list ap;
    va_start(ap, key_file);
    const char *name;
    while ((name = va_arg(ap, const char *))) {
        const char *value = va_arg(ap, const char *);
        if (parley_conf_set(conf, name, value, err, sizeof(err)) != PARLEY_OK)
            fail_msg("%s", err);
    }
    va_end(ap);
    assert_int_equal(parley_conf_set(conf, "log.level", "7", err, sizeof(err)), PARLEY_OK);
    if (key_file)
        assert_int_equal(parley_conf_set(conf, "api_key.file", key_file, err, sizeof(err)),
                         PARLEY_OK);
    parley_conf_set_event_cb(conf, recorder_on_event, NULL);
    parley_conf_set_log_cb(conf, capture_log, NULL);
    parley_client_t *c = parley_client_new(conf, err, sizeof(err));
    if (!c)
        fail_msg("parley_client_new: %s", err);
    assert_null(strstr(err, SECRET));
    assert_int_equal(parley_start(c), PARLEY_OK);
    return c;
}

static parley_client_t *verbose_client(int port, const char *key_file)
{
    char url[128];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/v1/stream", port);
    return verbose_client_url(url, key_file, NULL);
}

static void assert_no_secret_anywhere(parley_client_t *c, uint64_t id)
{
    pthread_mutex_lock(&log_mu);
    assert_true(log_lines > 5);
    assert_true(redacted_auth_lines >= 1); /* the trace ran, and was redacted */
    assert_null(strstr(log_text, SECRET));
    assert_null(strstr(log_text, "SECRET")); /* not even a part of it */
    pthread_mutex_unlock(&log_mu);
    recorder_entry r = recorder_get(id);
    assert_null(strstr(r.err_msg, SECRET));
    assert_null(strstr(r.done, SECRET));
    parley_stats_t st;
    parley_stats_get(c, &st);
    char stats_text[512];
    snprintf(stats_text, sizeof(stats_text), "%llu %llu %llu %llu",
             (unsigned long long)st.requests_sent, (unsigned long long)st.bytes_sent,
             (unsigned long long)st.errors, (unsigned long long)st.connections_opened);
    assert_null(strstr(stats_text, SECRET));
}

static void test_key_not_in_debug_logs(void **state)
{
    (void)state;
    setenv("PARLEY_API_KEY", SECRET, 1);
    pl_refserver *srv = fixture_server(SECRET, 0, 0, 0);
    parley_client_t *c = verbose_client(pl_refserver_port(srv), NULL);
    parley_session_t *s = parley_session_open(c, "secret", NULL, 0);
    uint64_t id;
    assert_int_equal(parley_send(s, "hello", &id), PARLEY_OK);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    assert_string_equal(recorder_get(id).done, "[turn 1] hello");
    assert_no_secret_anywhere(c, id);
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

/* A refused key: the error event and the logs still never show it. */
static void test_key_not_in_unauthorized_error(void **state)
{
    (void)state;
    setenv("PARLEY_API_KEY", SECRET, 1);
    pl_refserver *srv = fixture_server("another-key-entirely", 0, 0, 0);
    parley_client_t *c = verbose_client(pl_refserver_port(srv), NULL);
    parley_session_t *s = parley_session_open(c, "secret", NULL, 0);
    uint64_t id;
    assert_int_equal(parley_send(s, "hello", &id), PARLEY_OK);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    recorder_entry r = recorder_get(id);
    assert_int_equal(r.err, PARLEY_ERR_UNAUTHORIZED);
    assert_no_secret_anywhere(c, id);
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

/* The key from a file readable by its owner only. */
static void test_key_from_private_file(void **state)
{
    (void)state;
    unsetenv("PARLEY_API_KEY");
    char path[] = "/tmp/parley-key-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, 0600), 0);
    assert_int_equal(write(fd, SECRET "\n", sizeof(SECRET)), (ssize_t)sizeof(SECRET));
    close(fd);
    pl_refserver *srv = fixture_server(SECRET, 0, 0, 0);
    parley_client_t *c = verbose_client(pl_refserver_port(srv), path);
    parley_session_t *s = parley_session_open(c, "from-file", NULL, 0);
    uint64_t id;
    assert_int_equal(parley_send(s, "hi", &id), PARLEY_OK);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    assert_string_equal(recorder_get(id).done, "[turn 1] hi");
    assert_no_secret_anywhere(c, id);
    parley_client_destroy(c);
    pl_refserver_stop(srv);

    /* Readable by others: refused, without quoting the key. */
    assert_int_equal(chmod(path, 0644), 0);
    parley_conf_t *conf = parley_conf_new();
    char err[512];
    parley_conf_set(conf, "endpoint", "ws://127.0.0.1:1/v1/stream", NULL, 0);
    parley_conf_set(conf, "api_key.file", path, NULL, 0);
    parley_conf_set_event_cb(conf, recorder_on_event, NULL);
    assert_null(parley_client_new(conf, err, sizeof(err)));
    assert_non_null(strstr(err, "accessible by group or others"));
    assert_null(strstr(err, SECRET));
    parley_conf_destroy(conf);
    unlink(path);
}

/* ---- hostile servers ---------------------------------------------------------- */

/* What a hostile server's error says: the key it was sent, a forged log
 * line and terminal escapes (ESC as JSON's \u001b, CSI as the C1 \u009b). */
static void answer_with_echoed_key(const char *request, char *answer, size_t size,
                                   void *opaque)
{
    (void)opaque;
    char key[128] = "";
    const char *h = strcasestr(request, "\nx-api-key:");
    if (h)
        sscanf(h + 12, " %127[^\r\n]", key);
    char body[512];
    int n = snprintf(body, sizeof(body),
                     "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\","
                     "\"message\":\"invalid x-api-key: %s\\r\\nparley ERROR client: forged"
                     "\\u001b[2J\\u009b31m\"}}", key);
    snprintf(answer, size,
             "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
             "Content-Length: %d\r\nConnection: close\r\n\r\n%s", n, body);
}

/*
 * A server echoes the key in its error, with CR LF and escape sequences, and
 * the endpoint carries a password: the error event and the logs show
 * neither secret, and no control character (so `parley chat`, which prints
 * the event's text on stderr, shows none either).
 */
static void test_echoed_key_and_controls_not_shown(void **state)
{
    (void)state;
    setenv("ANTHROPIC_API_KEY", SECRET, 1);
    loopback_http *srv = loopback_http_start(answer_with_echoed_key, NULL);
    char url[128];
    snprintf(url, sizeof(url), "http://user:hunter2pw@127.0.0.1:%d", loopback_http_port(srv));
    parley_client_t *c = verbose_client_url(url, NULL, "dialect", "anthropic", NULL);
    parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
    uint64_t id;
    assert_int_equal(parley_send(s, "hello", &id), PARLEY_OK);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    recorder_entry r = recorder_get(id);
    assert_int_equal(r.err, PARLEY_ERR_UNAUTHORIZED);
    assert_true(loopback_http_requests(srv) >= 1); /* the server did echo it */
    print_message("error event: %s\n", r.err_msg);
    assert_non_null(strstr(r.err_msg, "invalid x-api-key: [redacted]"));
    assert_non_null(strstr(r.err_msg, "\\r\\nparley ERROR client: forged\\x1b[2J\\u009b31m"));
    assert_false(has_control(r.err_msg));
    parley_client_destroy(c);
    assert_log_lacks(SECRET);
    assert_log_lacks("hunter2pw");
    assert_int_equal(control_lines, 0);
    assert_true(log_has("parley ERROR client: forged")); /* logged, escaped */
    loopback_http_stop(srv);
    unsetenv("ANTHROPIC_API_KEY");
}

/* A password in the endpoint: not in the INFO lines, nor in a connection
 * error, nor in libcurl's trace. */
static void test_endpoint_password_not_shown(void **state)
{
    (void)state;
    setenv("PARLEY_API_KEY", SECRET, 1);
    pl_refserver *srv = fixture_server(SECRET, 0, 0, 0);
    char url[160];
    snprintf(url, sizeof(url), "ws://user:hunter2pw@127.0.0.1:%d/v1/stream",
             pl_refserver_port(srv));
    parley_client_t *c = verbose_client_url(url, NULL, NULL);
    parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
    uint64_t done_id, failed_id;
    assert_int_equal(parley_send(s, "hi", &done_id), PARLEY_OK);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    assert_string_equal(recorder_get(done_id).done, "[turn 1] hi");
    parley_client_destroy(c);
    pl_refserver_stop(srv);

    snprintf(url, sizeof(url), "ws://user:hunter2pw@127.0.0.1:%d/v1/stream",
             fixture_closed_port());
    c = verbose_client_url(url, NULL, "retry.max.attempts", "1", "request.timeout.ms", "5000",
                           NULL);
    s = parley_session_open(c, NULL, NULL, 0);
    assert_int_equal(parley_send(s, "hi", &failed_id), PARLEY_OK);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    recorder_entry r = recorder_get(failed_id);
    print_message("error event: %s\n", r.err_msg);
    assert_true(r.terminal == PARLEY_EVENT_ERROR);
    assert_non_null(strstr(r.err_msg, "ws://127.0.0.1:"));
    assert_null(strstr(r.err_msg, "hunter2pw"));
    parley_client_destroy(c);
    assert_true(log_has("endpoint ws://127.0.0.1:")); /* the INFO line */
    assert_log_lacks("hunter2pw");
}

/* A key too short to find in free text ("k1") is still never logged: the
 * headers carrying it lose their value, in the HTTP/2 trace too. */
static void test_short_key_not_in_h2_trace(void **state)
{
    (void)state;
    static const char *const dialects[] = {"openai", "anthropic"};
    tls_files tls;
    tls_files_make(&tls);
    pl_refserver_opts o;
    pl_refserver_opts_init(&o);
    o.api_key = "k1";
    o.quiet = 1;
    o.tls_cert_file = tls.server_cert;
    o.tls_key_file = tls.server_key;
    pl_refserver *srv = pl_refserver_start(&o, NULL, 0);
    assert_non_null(srv);
    setenv("PARLEY_API_KEY", "k1", 1);
    for (size_t i = 0; i < sizeof(dialects) / sizeof(dialects[0]); i++) {
        setup(NULL);
        char url[96];
        snprintf(url, sizeof(url), "https://127.0.0.1:%d", pl_refserver_port(srv));
        parley_client_t *c = verbose_client_url(url, NULL, "dialect", dialects[i],
                                                "api_key.env", "PARLEY_API_KEY",
                                                "tls.ca.file", tls.ca, NULL);
        parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
        uint64_t id;
        assert_int_equal(parley_send(s, "short", &id), PARLEY_OK);
        assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
        assert_string_equal(recorder_get(id).done, "[turn 1] short");
        parley_client_destroy(c);
        assert_true(log_has("[HTTP/2]")); /* the h2 trace ran */
        assert_true(redacted_auth_lines >= 1);
        assert_log_lacks("Bearer k1");
        assert_log_lacks("x-api-key: k1");
        assert_log_lacks(" k1]");
    }
    pl_refserver_stop(srv);
    tls_files_remove(&tls);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_key_not_in_debug_logs, setup),
        cmocka_unit_test_setup(test_key_not_in_unauthorized_error, setup),
        cmocka_unit_test_setup(test_key_from_private_file, setup),
        cmocka_unit_test_setup(test_echoed_key_and_controls_not_shown, setup),
        cmocka_unit_test_setup(test_endpoint_password_not_shown, setup),
        cmocka_unit_test_setup(test_short_key_not_in_h2_trace, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
