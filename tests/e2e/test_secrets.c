/*
 * The API key never appears in logs, error strings or stats, even at the most
 * verbose log level, where libcurl's trace of the handshake (with its
 * Authorization header) is logged too. The key can come from a file.
 */
#include <pthread.h>
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
#include "recorder.h"
#include "refserver.h"

#define SECRET "sk-parley-SECRET-4f1c9a7e20d3"

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char *log_text;
static size_t log_len, log_lines, redacted_auth_lines;

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
    if (strstr(message, "Authorization: [redacted]"))
        redacted_auth_lines++;
    pthread_mutex_unlock(&log_mu);
}

static int setup(void **state)
{
    (void)state;
    recorder_reset();
    free(log_text);
    log_text = NULL;
    log_len = log_lines = redacted_auth_lines = 0;
    unsetenv("PARLEY_LOG");
    return 0;
}

static parley_client_t *verbose_client(int port, const char *key_file)
{
    parley_conf_t *conf = parley_conf_new();
    char url[128], err[512];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/v1/stream", port);
    assert_int_equal(parley_conf_set(conf, "endpoint", url, err, sizeof(err)), PARLEY_OK);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_key_not_in_debug_logs, setup),
        cmocka_unit_test_setup(test_key_not_in_unauthorized_error, setup),
        cmocka_unit_test_setup(test_key_from_private_file, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
