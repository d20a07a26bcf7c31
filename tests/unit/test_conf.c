/*
 * Unit tests of the configuration module (src/api/conf.c): defaults, parsing and
 * range checks of parley_conf_set(), parley_conf_get()'s size protocol,
 * parley_conf_dup(), parley_conf_dump(), the sizing rule and
 * pl_conf_finalize()'s use of the environment and the API key file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "parley.h"

#define ERRSTR_SIZE 256

/* The environment variables finalize reads; cleared around every test. */
static const char *const env_vars[] = {"PARLEY_ENDPOINT", "PARLEY_API_KEY",
                                       "PARLEY_WORKER_ID", "MY_KEY",
                                       "ANTHROPIC_API_KEY", "OPENAI_API_KEY",
                                       "PARLEY_LOG"};

/* Every property, so that tests notice one missing from the table. */
static const char *const all_props[] = {
    "endpoint",       "api.key.env",
    "api.key.file",   "heartbeat.interval.s",
    "workers",        "connections",
    "sizing.qps",     "sizing.response.ms",
    "sizing.inflight.per.connection",
    "worker.id",      "model",
    "max.tokens",     "connect.timeout.ms",    "connect.to",
    "max.message.bytes", "log.level", "retry.max.attempts", "dialect",
    "system", "anthropic.version", "tls.ca.file", "tls.ca.path",
    "tls.pinned.pubkey", "tls.cert.file", "tls.key.file", "tls.insecure",
    "compression", "compression.dict",
    "retry.backoff.ms", "retry.backoff.max.ms",
    "reconnect.backoff.ms", "reconnect.backoff.max.ms",
    "request.timeout.ms", "stall.timeout.ms", "stall.ping.timeout.ms", "reply.max.bytes",
    "session.queue.max", "max.inflight.requests",
    "max.queued.bytes", "statistics.interval.ms", "http.idle.connections",
    "http.max.connections",
    "temperature", "top.p", "top.k", "stop.sequences", "metadata", "tools", "tool.choice",
    "thinking.budget", "prompt.caching", "extra.body", "extra.headers",
    "session.store", "session.store.password.env", "session.store.password.file",
    "session.store.key.prefix", "session.store.ttl.s", "session.store.timeout.ms",
    "session.store.wait.ms", "session.lease.ms", "session.lease.wait.ms"};

#define NPROPS (sizeof(all_props) / sizeof(all_props[0]))

/* Key files live in one private directory, removed after the last test. */
static char tmpdir[] = "/tmp/parley-test-conf-XXXXXX";
static char created[16][300];
static size_t ncreated;

static void on_event(parley_client_t *client, const parley_event_t *ev,
                     void *opaque)
{
    (void)client;
    (void)ev;
    (void)opaque;
}

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++)
        unsetenv(env_vars[i]);
}

/* A fresh configuration in *state, in a clean environment. */
static int setup(void **state)
{
    clear_env();
    *state = parley_conf_new();
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    parley_conf_destroy(*state);
    clear_env();
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < ncreated; i++)
        unlink(created[i]);
    return rmdir(tmpdir);
}

/* Write `content` to tmpdir/name with exactly `mode`; returns the path. */
static const char *write_file(const char *name, const char *content,
                              mode_t mode)
{
    char *path;
    size_t len = strlen(content);
    int fd;

    assert_true(ncreated < sizeof(created) / sizeof(created[0]));
    path = created[ncreated++];
    snprintf(path, sizeof(created[0]), "%s/%s", tmpdir, name);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    /* fchmod, not open's mode: the umask must not decide the test. */
    assert_int_equal(fchmod(fd, mode), 0);
    assert_int_equal(close(fd), 0);
    return path;
}

static void set_ok(parley_conf_t *conf, const char *name, const char *value)
{
    char errstr[ERRSTR_SIZE] = "";
    parley_err_t err = parley_conf_set(conf, name, value, errstr,
                                       sizeof(errstr));
    if (err != PARLEY_OK)
        fail_msg("set %s=%s: %s", name, value, errstr);
}

/* Setting must fail with `code` and exactly the message `msg`. */
static void set_fails(parley_conf_t *conf, const char *name,
                      const char *value, parley_err_t code, const char *msg)
{
    char errstr[ERRSTR_SIZE] = "";
    assert_int_equal(
        parley_conf_set(conf, name, value, errstr, sizeof(errstr)), code);
    assert_string_equal(errstr, msg);
}

/* The current text of `name`; the buffer is the caller's. */
static const char *get(const parley_conf_t *conf, const char *name,
                       char *buf, size_t size)
{
    size_t n = size;
    assert_int_equal(parley_conf_get(conf, name, buf, &n), PARLEY_OK);
    assert_int_equal(n, strlen(buf) + 1);
    return buf;
}

static void assert_prop(const parley_conf_t *conf, const char *name,
                        const char *expected)
{
    char buf[128];
    assert_string_equal(get(conf, name, buf, sizeof(buf)), expected);
}

/* ---- defaults, round trips -------------------------------------------- */

static void test_defaults(void **state)
{
    parley_conf_t *conf = *state;

    assert_prop(conf, "endpoint", "");
    assert_prop(conf, "api_key.env", "PARLEY_API_KEY");
    assert_prop(conf, "api_key.file", "");
    assert_prop(conf, "heartbeat.interval.s", "30");
    assert_prop(conf, "workers", "0");
    assert_prop(conf, "connections", "0");
    assert_prop(conf, "sizing.qps", "1000");
    assert_prop(conf, "sizing.response.ms", "1000");
    assert_prop(conf, "sizing.inflight.per.connection", "500");
    assert_prop(conf, "worker.id", "-1");
    assert_prop(conf, "model", "");
    assert_prop(conf, "max_tokens", "0");
    assert_prop(conf, "connect.timeout.ms", "10000");
    assert_prop(conf, "max.message.bytes", "1048576");
    assert_prop(conf, "http.idle.connections", "1024");

    /* The typed fields the rest of the library reads. */
    assert_null(conf->endpoint);
    assert_null(conf->api_key_file);
    assert_null(conf->model);
    assert_int_equal(conf->heartbeat_interval_s, 30);
    assert_true(conf->sizing_qps == 1000.0);
    assert_int_equal(conf->max_message_bytes, 1024 * 1024);
    assert_null(conf->event_cb);
}

static void test_round_trip_string(void **state)
{
    parley_conf_t *conf = *state;

    set_ok(conf, "model", "claude-test-1");
    assert_prop(conf, "model", "claude-test-1");
    assert_string_equal(conf->model, "claude-test-1");
    set_ok(conf, "api_key.env", "MY_KEY");
    assert_prop(conf, "api_key.env", "MY_KEY");
    set_ok(conf, "endpoint", "wss://api.example.com/v1/stream");
    assert_prop(conf, "endpoint", "wss://api.example.com/v1/stream");
}

static void test_empty_string_resets(void **state)
{
    parley_conf_t *conf = *state;

    set_ok(conf, "api_key.env", "MY_KEY");
    set_ok(conf, "api_key.env", "");
    assert_prop(conf, "api_key.env", "PARLEY_API_KEY");
    set_ok(conf, "model", "m");
    set_ok(conf, "model", "");
    assert_null(conf->model);
    set_ok(conf, "endpoint", "ws://h");
    set_ok(conf, "endpoint", "");
    assert_null(conf->endpoint);
}

static void test_round_trip_int(void **state)
{
    parley_conf_t *conf = *state;

    set_ok(conf, "workers", "8");
    assert_prop(conf, "workers", "8");
    assert_int_equal(conf->workers, 8);
    set_ok(conf, "worker.id", "1023");
    assert_prop(conf, "worker.id", "1023");
    set_ok(conf, "worker.id", "-1");
    assert_int_equal(conf->worker_id, -1);
    set_ok(conf, "max_tokens", "+42");
    assert_prop(conf, "max_tokens", "42");
}

static void test_round_trip_double(void **state)
{
    parley_conf_t *conf = *state;

    set_ok(conf, "sizing.qps", "0.2");
    assert_prop(conf, "sizing.qps", "0.2");
    set_ok(conf, "sizing.qps", "2500.25");
    assert_prop(conf, "sizing.qps", "2500.25");
    assert_true(conf->sizing_qps == 2500.25);
    set_ok(conf, "sizing.qps", "1e6");
    assert_prop(conf, "sizing.qps", "1000000");
    /* No plain form is this short: the exponent form is kept. */
    set_ok(conf, "sizing.qps", "1e-7");
    assert_prop(conf, "sizing.qps", "1e-07");
    set_ok(conf, "sizing.qps", "1e300");
    assert_prop(conf, "sizing.qps", "1e+300");
}

static void test_round_trip_int64(void **state)
{
    parley_conf_t *conf = *state;

    set_ok(conf, "max.message.bytes", "1073741824");
    assert_prop(conf, "max.message.bytes", "1073741824");
    assert_int_equal(conf->max_message_bytes, INT64_C(1) << 30);
    set_ok(conf, "max.message.bytes", "1024");
    assert_int_equal(conf->max_message_bytes, 1024);
}

/* ---- errors of parley_conf_set() --------------------------------------- */

static void test_unknown_name(void **state)
{
    parley_conf_t *conf = *state;
    size_t n = 0;

    set_fails(conf, "hearbeat.interval.s", "10", PARLEY_ERR_UNKNOWN_OPTION,
              "no such property \"hearbeat.interval.s\": did you mean "
              "\"heartbeat.interval.s\"?");
    set_fails(conf, "", "10", PARLEY_ERR_UNKNOWN_OPTION,
              "no such property \"\"");
    assert_int_equal(parley_conf_get(conf, "nope", NULL, &n),
                     PARLEY_ERR_UNKNOWN_OPTION);
}

static void test_bad_integer_forms(void **state)
{
    static const char *const bad[] = {"",   "12x", " 1", "1 ",  "abc", "+",
                                      "-",  "--1", "0x10", "1.5", "1e3"};
    parley_conf_t *conf = *state;
    char msg[ERRSTR_SIZE];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(msg, sizeof(msg),
                 "\"heartbeat.interval.s\": \"%s\" is not an integer", bad[i]);
        set_fails(conf, "heartbeat.interval.s", bad[i],
                  PARLEY_ERR_INVALID_VALUE, msg);
    }
    /* A failed set leaves the old value. */
    assert_int_equal(conf->heartbeat_interval_s, 30);
}

static void test_integer_overflow(void **state)
{
    parley_conf_t *conf = *state;

    set_fails(conf, "heartbeat.interval.s", "99999999999999999999",
              PARLEY_ERR_INVALID_VALUE,
              "\"heartbeat.interval.s\": 99999999999999999999 is out of "
              "range 1..3600");
    set_fails(conf, "max.message.bytes", "-99999999999999999999",
              PARLEY_ERR_INVALID_VALUE,
              "\"max.message.bytes\": -99999999999999999999 is out of "
              "range 1024..1073741824");
    /* Would wrap to a small int if stored without the range check. */
    set_fails(conf, "workers", "4294967297", PARLEY_ERR_INVALID_VALUE,
              "\"workers\": 4294967297 is out of range 0..256");
    assert_int_equal(conf->workers, 0);
}

static void test_out_of_range(void **state)
{
    parley_conf_t *conf = *state;

    set_fails(conf, "workers", "999", PARLEY_ERR_INVALID_VALUE,
              "\"workers\": 999 is out of range 0..256");
    set_fails(conf, "workers", "-1", PARLEY_ERR_INVALID_VALUE,
              "\"workers\": -1 is out of range 0..256");
    set_ok(conf, "workers", "0");
    set_ok(conf, "workers", "256");
    set_fails(conf, "heartbeat.interval.s", "0", PARLEY_ERR_INVALID_VALUE,
              "\"heartbeat.interval.s\": 0 is out of range 1..3600");
    set_fails(conf, "heartbeat.interval.s", "3601", PARLEY_ERR_INVALID_VALUE,
              "\"heartbeat.interval.s\": 3601 is out of range 1..3600");
    set_fails(conf, "worker.id", "-2", PARLEY_ERR_INVALID_VALUE,
              "\"worker.id\": -2 is out of range -1..1023");
    set_fails(conf, "worker.id", "1024", PARLEY_ERR_INVALID_VALUE,
              "\"worker.id\": 1024 is out of range -1..1023");
    set_fails(conf, "max.message.bytes", "1023", PARLEY_ERR_INVALID_VALUE,
              "\"max.message.bytes\": 1023 is out of range 1024..1073741824");
    set_fails(conf, "max.message.bytes", "1073741825",
              PARLEY_ERR_INVALID_VALUE,
              "\"max.message.bytes\": 1073741825 is out of range "
              "1024..1073741824");
    assert_int_equal(conf->workers, 256);
}

static void test_bad_doubles(void **state)
{
    static const char *const not_numbers[] = {"", "nan", "inf", "0x10",
                                              " 1", "1 ", "1,5", "abc"};
    parley_conf_t *conf = *state;
    char msg[ERRSTR_SIZE];

    for (size_t i = 0; i < sizeof(not_numbers) / sizeof(not_numbers[0]);
         i++) {
        snprintf(msg, sizeof(msg), "\"sizing.qps\": \"%s\" is not a number",
                 not_numbers[i]);
        set_fails(conf, "sizing.qps", not_numbers[i],
                  PARLEY_ERR_INVALID_VALUE, msg);
    }
    set_fails(conf, "sizing.qps", "0", PARLEY_ERR_INVALID_VALUE,
              "\"sizing.qps\": 0 is out of range > 0");
    set_fails(conf, "sizing.qps", "-5", PARLEY_ERR_INVALID_VALUE,
              "\"sizing.qps\": -5 is out of range > 0");
    set_fails(conf, "sizing.qps", "1e999", PARLEY_ERR_INVALID_VALUE,
              "\"sizing.qps\": 1e999 is too large");
    assert_true(conf->sizing_qps == 1000.0);
}

static void test_endpoint_validation(void **state)
{
    static const char *const good[] = {
        "ws://localhost:8080/v1/stream", "wss://api.example.com",
        "ws://[::1]:9000", "WSS://HOST", "ws://user@host/x?q=1#f"};
    parley_conf_t *conf = *state;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        set_ok(conf, "endpoint", good[i]);
    set_ok(conf, "endpoint", "ws://kept");

    set_ok(conf, "endpoint", "http://x");
    set_ok(conf, "endpoint", "HTTPS://api.example.com");
    set_ok(conf, "endpoint", "ws://kept");
    set_fails(conf, "endpoint", "ftp://x", PARLEY_ERR_INVALID_VALUE,
              "\"endpoint\": \"ftp://x\" must start with ws://, wss://, "
              "http:// or https://");
    set_fails(conf, "endpoint", "localhost:80", PARLEY_ERR_INVALID_VALUE,
              "\"endpoint\": \"localhost:80\" must start with ws://, "
              "wss://, http:// or https://");
    set_fails(conf, "endpoint", "ws://", PARLEY_ERR_INVALID_VALUE,
              "\"endpoint\": \"ws://\" has no host");
    set_fails(conf, "endpoint", "wss:///v1", PARLEY_ERR_INVALID_VALUE,
              "\"endpoint\": \"wss:///v1\" has no host");
    set_fails(conf, "endpoint", "ws://:8080", PARLEY_ERR_INVALID_VALUE,
              "\"endpoint\": \"ws://:8080\" has no host");
    /* Quoted without user information, which may hold a password. */
    set_fails(conf, "endpoint", "ws://user:pw@/x", PARLEY_ERR_INVALID_VALUE,
              "\"endpoint\": \"ws:///x\" has no host");
    set_fails(conf, "endpoint", "ws://a b", PARLEY_ERR_INVALID_VALUE,
              "\"endpoint\": \"ws://a b\" must not contain spaces or "
              "control characters");
    assert_string_equal(conf->endpoint, "ws://kept");
}

/* An empty port would silently mean port 80 or 443. */
static void test_endpoint_port(void **state)
{
    static const char *const good[] = {
        "ws://127.0.0.1:1/v1/stream", "wss://h:65535", "http://[::1]:8080/",
        "https://[::1]", "ws://user:pw@host:9000/x", "ws://host/x:1"};
    static const char *const empty[] = {
        "ws://127.0.0.1:/v1/stream", "wss://h:", "http://127.0.0.1:/v1/messages",
        "https://h:?q", "ws://[::1]:/x", "ws://user:pw@host:/x"};
    parley_conf_t *conf = *state;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        set_ok(conf, "endpoint", good[i]);
    set_ok(conf, "endpoint", "ws://kept");
    for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
        char errstr[ERRSTR_SIZE];
        assert_int_equal(parley_conf_set(conf, "endpoint", empty[i], errstr, sizeof(errstr)),
                         PARLEY_ERR_INVALID_VALUE);
        assert_non_null(strstr(errstr, "has an empty port"));
    }
    set_fails(conf, "endpoint", "ws://127.0.0.1:/v1/stream", PARLEY_ERR_INVALID_VALUE,
              "\"endpoint\": \"ws://127.0.0.1:/v1/stream\" has an empty port: put the "
              "port after the ':', or leave the ':' out for the scheme's default");
    set_fails(conf, "endpoint", "ws://h:80x", PARLEY_ERR_INVALID_VALUE,
              "\"endpoint\": \"ws://h:80x\" has a port that is not a number");
    set_fails(conf, "endpoint", "ws://h:1:2", PARLEY_ERR_INVALID_VALUE,
              "\"endpoint\": \"ws://h:1:2\" has a port that is not a number");
    set_fails(conf, "endpoint", "ws://h:0", PARLEY_ERR_INVALID_VALUE,
              "\"endpoint\": \"ws://h:0\" has a port outside 1-65535");
    set_fails(conf, "endpoint", "wss://h:65536/x", PARLEY_ERR_INVALID_VALUE,
              "\"endpoint\": \"wss://h:65536/x\" has a port outside 1-65535");
    set_fails(conf, "endpoint", "ws://h:99999999999999999999", PARLEY_ERR_INVALID_VALUE,
              "\"endpoint\": \"ws://h:99999999999999999999\" has a port outside 1-65535");
    assert_string_equal(conf->endpoint, "ws://kept");
}

static void test_null_arguments(void **state)
{
    parley_conf_t *conf = *state;
    char errstr[ERRSTR_SIZE] = "";
    size_t n = 8;

    assert_int_equal(parley_conf_set(NULL, "workers", "1", errstr,
                                     sizeof(errstr)),
                     PARLEY_ERR_INVALID_ARG);
    assert_true(strlen(errstr) > 0);
    assert_int_equal(parley_conf_set(conf, NULL, "1", NULL, 0),
                     PARLEY_ERR_INVALID_ARG);
    assert_int_equal(parley_conf_set(conf, "workers", NULL, NULL, 0),
                     PARLEY_ERR_INVALID_ARG);
    assert_int_equal(parley_conf_get(NULL, "workers", NULL, &n),
                     PARLEY_ERR_INVALID_ARG);
    assert_int_equal(parley_conf_get(conf, NULL, NULL, &n),
                     PARLEY_ERR_INVALID_ARG);
    assert_int_equal(parley_conf_get(conf, "workers", errstr, NULL),
                     PARLEY_ERR_INVALID_ARG);
    assert_null(parley_conf_dup(NULL));
    parley_conf_destroy(NULL);
    parley_conf_set_event_cb(NULL, on_event, NULL);
}

/* Failures must not write past a short errstr, nor need one at all. */
static void test_errstr_small_or_absent(void **state)
{
    parley_conf_t *conf = *state;
    char small[8];

    assert_int_equal(parley_conf_set(conf, "workers", "999", NULL, 0),
                     PARLEY_ERR_INVALID_VALUE);
    memset(small, 'x', sizeof(small));
    assert_int_equal(parley_conf_set(conf, "workers", "999", small, 0),
                     PARLEY_ERR_INVALID_VALUE);
    assert_int_equal(small[0], 'x');
    assert_int_equal(
        parley_conf_set(conf, "workers", "999", small, sizeof(small)),
        PARLEY_ERR_INVALID_VALUE);
    assert_string_equal(small, "\"worker");
}

/* ---- parley_conf_get()'s size protocol --------------------------------- */

static void test_get_size_protocol(void **state)
{
    parley_conf_t *conf = *state;
    char buf[32];
    size_t n = 0;

    set_ok(conf, "model", "abcdef");
    assert_int_equal(parley_conf_get(conf, "model", NULL, &n), PARLEY_OK);
    assert_int_equal(n, 7);

    n = 7;
    assert_int_equal(parley_conf_get(conf, "model", buf, &n), PARLEY_OK);
    assert_string_equal(buf, "abcdef");
    assert_int_equal(n, 7);

    /* Too small: what fits, NUL-terminated, the size needed, and an error. */
    n = 4;
    assert_int_equal(parley_conf_get(conf, "model", buf, &n),
                     PARLEY_ERR_INVALID_ARG);
    assert_string_equal(buf, "abc");
    assert_int_equal(n, 7);

    n = 0;
    buf[0] = 'x';
    assert_int_equal(parley_conf_get(conf, "model", buf, &n),
                     PARLEY_ERR_INVALID_ARG);
    assert_int_equal(buf[0], 'x');
    assert_int_equal(n, 7);

    n = 0;
    assert_int_equal(parley_conf_get(conf, "workers", NULL, &n), PARLEY_OK);
    assert_int_equal(n, 2);
}

/* ---- parley_conf_dup() --------------------------------------------------- */

static void test_dup_is_deep(void **state)
{
    parley_conf_t *conf = *state;
    parley_conf_t *copy;
    int opaque;

    set_ok(conf, "model", "original-model");
    set_ok(conf, "endpoint", "ws://original");
    set_ok(conf, "api_key.file", "/original/key");
    set_ok(conf, "workers", "3");
    parley_conf_set_event_cb(conf, on_event, &opaque);

    copy = parley_conf_dup(conf);
    assert_non_null(copy);
    assert_ptr_not_equal(copy->model, conf->model);
    assert_ptr_not_equal(copy->api_key_env, conf->api_key_env);
    assert_prop(copy, "model", "original-model");
    assert_prop(copy, "workers", "3");
    assert_ptr_equal(copy->event_cb, on_event);
    assert_ptr_equal(copy->event_opaque, &opaque);

    set_ok(copy, "model", "changed");
    set_ok(copy, "endpoint", "");
    set_ok(copy, "api_key.env", "MY_KEY");
    set_ok(copy, "workers", "9");
    parley_conf_set_event_cb(copy, NULL, NULL);

    assert_prop(conf, "model", "original-model");
    assert_prop(conf, "endpoint", "ws://original");
    assert_prop(conf, "api_key.env", "PARLEY_API_KEY");
    assert_prop(conf, "api_key.file", "/original/key");
    assert_prop(conf, "workers", "3");
    assert_ptr_equal(conf->event_cb, on_event);
    parley_conf_destroy(copy);
}

/* ---- parley_conf_dump() -------------------------------------------------- */

static void test_dump(void **state)
{
    static const char header[] =
        "| Property | Type | Range | Default | Description |\n"
        "|---|---|---|---|---|\n";
    size_t len = parley_conf_dump(NULL, 0);
    char *buf, *line, *save = NULL;
    char name[64], small[16];
    size_t rows = 0;

    (void)state;
    assert_true(len > 0);
    buf = malloc(len + 1);
    assert_non_null(buf);
    assert_int_equal(parley_conf_dump(buf, len + 1), len);
    assert_int_equal(strlen(buf), len);
    assert_true(strncmp(buf, header, strlen(header)) == 0);
    for (size_t i = 0; i < NPROPS; i++) {
        snprintf(name, sizeof(name), "| `%s` |", all_props[i]);
        if (!strstr(buf, name))
            fail_msg("dump lacks %s", all_props[i]);
    }
    assert_non_null(strstr(buf, "| `workers` | integer | 0..256 | 0 |"));
    assert_non_null(strstr(buf, "| `sizing.qps` | float | > 0 | 1000 |"));

    /* Every row has exactly the table's six cell borders. */
    for (line = strtok_r(buf, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save), rows++) {
        size_t pipes = 0;
        for (const char *c = line; *c; c++)
            pipes += *c == '|';
        assert_int_equal(pipes, 6);
    }
    assert_int_equal(rows, NPROPS + 2);
    free(buf);

    /* Like snprintf: a short buffer gets a terminated prefix. */
    assert_int_equal(parley_conf_dump(small, sizeof(small)), len);
    assert_string_equal(small, "| Property | Ty");
}

/* ---- sizing --------------------------------------------------------------- */

static void test_connections_for(void **state)
{
    (void)state;
    assert_int_equal(parley_connections_for(1000, 0.2, 100), 2);
    assert_int_equal(parley_connections_for(1001, 1, 1000), 2);
    assert_int_equal(parley_connections_for(1000, 1, 1000), 1);
    assert_int_equal(parley_connections_for(3000, 0.1, 100), 3);
    assert_int_equal(parley_connections_for(1000, 0.7, 100), 7);
    assert_int_equal(parley_connections_for(1, 0.001, 500), 1);
    assert_int_equal(parley_connections_for(0, 1, 10), 1);
    assert_int_equal(parley_connections_for(-5, 1, 10), 1);
    assert_int_equal(parley_connections_for(100, -1, 10), 1);
    assert_int_equal(parley_connections_for(NAN, 1, 10), 1);
    assert_int_equal(parley_connections_for(100, NAN, 10), 1);
    assert_int_equal(parley_connections_for(100, 1, 0), 1);
    assert_int_equal(parley_connections_for(1e12, 10, 1), 1024);
    assert_int_equal(parley_connections_for(INFINITY, 1, 1), 1024);
    assert_int_equal(parley_connections_for(1e308, 1e308, 1), 1024);
    assert_int_equal(parley_connections_for(1023, 1, 1), 1023);
}

static void test_conf_connections(void **state)
{
    parley_conf_t *conf = *state;

    /* Defaults: 1000 qps x 1 s / 500 per connection. */
    assert_int_equal(pl_conf_connections(conf), 2);
    set_ok(conf, "sizing.qps", "5000");
    set_ok(conf, "sizing.response.ms", "200");
    set_ok(conf, "sizing.inflight.per.connection", "100");
    assert_int_equal(pl_conf_connections(conf), 10);
    set_ok(conf, "connections", "7");
    assert_int_equal(pl_conf_connections(conf), 7);
}

/* ---- pl_conf_finalize() --------------------------------------------------- */

/* A configuration that finalizes once an endpoint and a key exist. */
static void make_ready(parley_conf_t *conf)
{
    parley_conf_set_event_cb(conf, on_event, NULL);
}

static parley_err_t finalize(parley_conf_t *conf, char **key, char *errstr)
{
    errstr[0] = '\0';
    return pl_conf_finalize(conf, key, errstr, ERRSTR_SIZE);
}

static void test_finalize_no_callback(void **state)
{
    parley_conf_t *conf = *state;
    char errstr[ERRSTR_SIZE];
    char *key = (char *)"garbage";

    setenv("PARLEY_ENDPOINT", "ws://h", 1);
    setenv("PARLEY_API_KEY", "k", 1);
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_ERR_INVALID_ARG);
    assert_string_equal(errstr,
                        "no event callback: call parley_conf_set_event_cb()");
    assert_null(key);
}

static void test_finalize_endpoint_from_env(void **state)
{
    parley_conf_t *conf = *state;
    char errstr[ERRSTR_SIZE];
    char *key = NULL;

    make_ready(conf);
    setenv("PARLEY_ENDPOINT", "ws://env-host:9000/v1/stream", 1);
    setenv("PARLEY_API_KEY", "env-key", 1);
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_OK);
    assert_string_equal(conf->endpoint, "ws://env-host:9000/v1/stream");
    assert_string_equal(key, "env-key");
    assert_int_equal(conf->worker_id, 0);
    assert_true(conf->worker_id_defaulted); /* nothing gave one */
    free(key);
}

static void test_finalize_endpoint_property_wins(void **state)
{
    parley_conf_t *conf = *state;
    char errstr[ERRSTR_SIZE];
    char *key = NULL;

    make_ready(conf);
    set_ok(conf, "endpoint", "wss://property-host");
    setenv("PARLEY_ENDPOINT", "http://ignored", 1);
    setenv("PARLEY_API_KEY", "k", 1);
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_OK);
    assert_string_equal(conf->endpoint, "wss://property-host/v1/stream");
    free(key);
}

static void test_finalize_missing_endpoint(void **state)
{
    parley_conf_t *conf = *state;
    char errstr[ERRSTR_SIZE];
    char *key = NULL;

    make_ready(conf);
    setenv("PARLEY_API_KEY", "k", 1);
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_ERR_INVALID_ARG);
    assert_string_equal(errstr, "no endpoint: set the \"endpoint\" property "
                                "or PARLEY_ENDPOINT (docs/vendors.md names the vendors')");
    setenv("PARLEY_ENDPOINT", "", 1);
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_ERR_INVALID_ARG);
    assert_null(key);
}

static void test_finalize_bad_env_endpoint(void **state)
{
    parley_conf_t *conf = *state;
    char errstr[ERRSTR_SIZE];
    char *key = NULL;

    make_ready(conf);
    setenv("PARLEY_API_KEY", "k", 1);
    setenv("PARLEY_ENDPOINT", "gopher://x", 1);
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_ERR_INVALID_ARG);
    assert_string_equal(errstr, "environment variable PARLEY_ENDPOINT: "
                                "\"gopher://x\" must start with ws://, wss://, "
                                "http:// or https://");
    setenv("PARLEY_ENDPOINT", "ws://host\n", 1);
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_ERR_INVALID_ARG);
    assert_non_null(strstr(errstr, "PARLEY_ENDPOINT"));
    assert_null(conf->endpoint);
    assert_null(key);
}

static void test_finalize_key_from_named_env(void **state)
{
    parley_conf_t *conf = *state;
    char errstr[ERRSTR_SIZE];
    char *key = NULL;

    make_ready(conf);
    set_ok(conf, "endpoint", "ws://h");
    set_ok(conf, "api_key.env", "MY_KEY");
    setenv("PARLEY_API_KEY", "not-this-one", 1);
    setenv("MY_KEY", "from-my-key", 1);
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_OK);
    assert_string_equal(key, "from-my-key");
    free(key);
}

static void test_finalize_missing_key(void **state)
{
    parley_conf_t *conf = *state;
    char errstr[ERRSTR_SIZE];
    char *key = NULL;

    make_ready(conf);
    setenv("PARLEY_ENDPOINT", "ws://h", 1);
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_ERR_NO_KEY);
    assert_true(strncmp(errstr, "no API key: set PARLEY_API_KEY", 30) == 0);

    set_ok(conf, "api_key.env", "MY_KEY");
    setenv("PARLEY_API_KEY", "ignored: MY_KEY is configured", 1);
    setenv("MY_KEY", "", 1);
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_ERR_NO_KEY);
    assert_true(strncmp(errstr, "no API key: set MY_KEY", 22) == 0);
    assert_null(key);
    /* A failed finalize leaves the configuration as the caller set it. */
    assert_null(conf->endpoint);
    assert_int_equal(conf->worker_id, -1);
}

static void test_finalize_key_file_0600(void **state)
{
    parley_conf_t *conf = *state;
    char errstr[ERRSTR_SIZE];
    char *key = NULL;

    make_ready(conf);
    set_ok(conf, "endpoint", "ws://h");
    setenv("PARLEY_API_KEY", "the-env-key-loses", 1);
    set_ok(conf, "api_key.file", write_file("key-lf", "file-key\n", 0600));
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_OK);
    assert_string_equal(key, "file-key");
    free(key);

    set_ok(conf, "api_key.file", write_file("key-crlf", "crlf-key\r\n", 0400));
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_OK);
    assert_string_equal(key, "crlf-key");
    free(key);

    set_ok(conf, "api_key.file", write_file("key-bare", "bare-key", 0600));
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_OK);
    assert_string_equal(key, "bare-key");
    free(key);
}

/* The session store's password: from its file (0600), else its variable,
 * else none; never quoted in a message. */
static void test_store_password(void **state)
{
    parley_conf_t *conf = *state;
    char errstr[ERRSTR_SIZE];
    char *password = NULL;

    set_ok(conf, "session.store", "redis://app@10.0.0.5:6379/2");
    unsetenv("PARLEY_STORE_PASSWORD");
    assert_int_equal(pl_conf_store_password(conf, &password, errstr, sizeof(errstr)), PARLEY_OK);
    assert_null(password);
    setenv("PARLEY_STORE_PASSWORD", "from-env", 1);
    assert_int_equal(pl_conf_store_password(conf, &password, errstr, sizeof(errstr)), PARLEY_OK);
    assert_string_equal(password, "from-env");
    free(password);
    setenv("PARLEY_STORE_PASSWORD", "two\nlines-pw", 1);
    assert_int_equal(pl_conf_store_password(conf, &password, errstr, sizeof(errstr)),
                     PARLEY_ERR_INVALID_VALUE);
    assert_null(strstr(errstr, "lines-pw"));
    unsetenv("PARLEY_STORE_PASSWORD");

    set_ok(conf, "session.store.password.file", write_file("store-pw", "file-pw\n", 0600));
    assert_int_equal(pl_conf_store_password(conf, &password, errstr, sizeof(errstr)), PARLEY_OK);
    assert_string_equal(password, "file-pw");
    free(password);
    const char *shared = write_file("store-pw-0644", "shared-pw\n", 0644);
    set_ok(conf, "session.store.password.file", shared);
    assert_int_equal(pl_conf_store_password(conf, &password, errstr, sizeof(errstr)),
                     PARLEY_ERR_INVALID_VALUE);
    assert_non_null(strstr(errstr, "session store password file"));
    assert_non_null(strstr(errstr, "chmod 600"));
    assert_null(strstr(errstr, "shared-pw"));
    assert_null(password);
}

/* session.store: memory or a redis:// URL without a password. */
static void test_store_url_checked(void **state)
{
    parley_conf_t *conf = *state;
    char errstr[ERRSTR_SIZE];
    set_ok(conf, "session.store", "memory");
    set_ok(conf, "session.store", "redis://127.0.0.1:6379");
    set_ok(conf, "session.store", "redis://app@127.0.0.1:6379/3");
    assert_int_equal(parley_conf_set(conf, "session.store", "rediss://h:1", errstr,
                                     sizeof(errstr)),
                     PARLEY_ERR_INVALID_VALUE);
    assert_int_equal(parley_conf_set(conf, "session.store", "redis://u:pw-in-url@h:1", errstr,
                                     sizeof(errstr)),
                     PARLEY_ERR_INVALID_VALUE);
    assert_null(strstr(errstr, "pw-in-url"));
    assert_int_equal(parley_conf_set(conf, "session.lease.ms", "999", errstr, sizeof(errstr)),
                     PARLEY_ERR_INVALID_VALUE);
}

static void test_finalize_key_file_refused(void **state)
{
    parley_conf_t *conf = *state;
    char errstr[ERRSTR_SIZE], expected[ERRSTR_SIZE];
    const char *path = write_file("key-0644", "shared-key\n", 0644);
    char *key = NULL;

    make_ready(conf);
    set_ok(conf, "endpoint", "ws://h");
    set_ok(conf, "api_key.file", path);
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_ERR_NO_KEY);
    snprintf(expected, sizeof(expected),
             "API key file \"%s\" is accessible by group or others (mode "
             "0644): run chmod 600 on it",
             path);
    assert_string_equal(errstr, expected);
    assert_null(key);

    set_ok(conf, "api_key.file", write_file("key-0640", "k\n", 0640));
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_ERR_NO_KEY);
    set_ok(conf, "api_key.file", write_file("key-empty", "", 0600));
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_ERR_NO_KEY);
    assert_non_null(strstr(errstr, "is empty"));
    set_ok(conf, "api_key.file", write_file("key-newline", "\n", 0600));
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_ERR_NO_KEY);
    set_ok(conf, "api_key.file", write_file("key-2lines", "a\nb\n", 0600));
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_ERR_NO_KEY);
    set_ok(conf, "api_key.file", tmpdir);
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_ERR_NO_KEY);
    set_ok(conf, "api_key.file", "/nonexistent/parley/key");
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_ERR_NO_KEY);
    assert_string_equal(errstr, "cannot open API key file "
                                "\"/nonexistent/parley/key\": No such file "
                                "or directory");
    assert_null(key);
}

static void test_finalize_worker_id(void **state)
{
    static const char *const bad[] = {"abc", "1024", "-1", " 3", "3x",
                                      "99999999999999999999"};
    parley_conf_t *conf = *state;
    char errstr[ERRSTR_SIZE];
    char *key = NULL;

    make_ready(conf);
    set_ok(conf, "endpoint", "ws://h");
    setenv("PARLEY_API_KEY", "k", 1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv("PARLEY_WORKER_ID", bad[i], 1);
        assert_int_equal(finalize(conf, &key, errstr),
                         PARLEY_ERR_INVALID_ARG);
        assert_non_null(strstr(errstr, "PARLEY_WORKER_ID"));
        assert_int_equal(conf->worker_id, -1);
    }
    setenv("PARLEY_WORKER_ID", "1024", 1);
    finalize(conf, &key, errstr);
    assert_string_equal(errstr, "environment variable PARLEY_WORKER_ID: 1024 "
                                "is out of range 0..1023");

    setenv("PARLEY_WORKER_ID", "1023", 1);
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_OK);
    assert_int_equal(conf->worker_id, 1023);
    assert_false(conf->worker_id_defaulted);
    free(key);
}

static void test_finalize_worker_id_property_wins(void **state)
{
    parley_conf_t *conf = *state;
    char errstr[ERRSTR_SIZE];
    char *key = NULL;

    make_ready(conf);
    set_ok(conf, "endpoint", "ws://h");
    set_ok(conf, "worker.id", "5");
    setenv("PARLEY_API_KEY", "k", 1);
    setenv("PARLEY_WORKER_ID", "not even a number", 1);
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_OK);
    assert_int_equal(conf->worker_id, 5);
    assert_false(conf->worker_id_defaulted);
    free(key);
}

/* The key must never reach a message: errstr is logged and shown. */
static void test_key_never_in_errstr(void **state)
{
    static const char secret[] = "sk-SECRET-7f3a9c";
    parley_conf_t *conf = *state;
    char errstr[ERRSTR_SIZE];
    char *key = NULL;

    setenv("PARLEY_API_KEY", secret, 1);
    setenv("PARLEY_ENDPOINT", "ws://h", 1);

#define EXPECT_FAILURE_WITHOUT_SECRET()                                      \
    do {                                                                     \
        assert_int_not_equal(finalize(conf, &key, errstr), PARLEY_OK);      \
        assert_true(errstr[0] != '\0');                                      \
        if (strstr(errstr, secret) || strstr(errstr, "SECRET"))              \
            fail_msg("key leaked into: %s", errstr);                         \
        assert_null(key);                                                    \
    } while (0)

    EXPECT_FAILURE_WITHOUT_SECRET(); /* no event callback */
    make_ready(conf);
    setenv("PARLEY_WORKER_ID", "bad", 1);
    EXPECT_FAILURE_WITHOUT_SECRET();
    unsetenv("PARLEY_WORKER_ID");
    setenv("PARLEY_ENDPOINT", "gopher://h", 1);
    EXPECT_FAILURE_WITHOUT_SECRET();
    unsetenv("PARLEY_ENDPOINT");
    EXPECT_FAILURE_WITHOUT_SECRET(); /* no endpoint */
    set_ok(conf, "endpoint", "ws://h");
    setenv("PARLEY_API_KEY", "sk-SECRET-7f3a9c\nX-Injected: 1", 1);
    EXPECT_FAILURE_WITHOUT_SECRET();
    set_ok(conf, "api_key.file",
           write_file("secret-0644", "sk-SECRET-7f3a9c\n", 0644));
    EXPECT_FAILURE_WITHOUT_SECRET();
    set_ok(conf, "api_key.file",
           write_file("secret-2lines", "sk-SECRET-7f3a9c\nmore\n", 0600));
    EXPECT_FAILURE_WITHOUT_SECRET();
#undef EXPECT_FAILURE_WITHOUT_SECRET
}

/* Properties checked against each other when the client is created. */
static void test_finalize_cross_checks(void **state)
{
    parley_conf_t *conf = *state;
    char errstr[ERRSTR_SIZE];
    char *key = NULL;

    make_ready(conf);
    set_ok(conf, "endpoint", "ws://h");
    setenv("PARLEY_API_KEY", "k", 1);
    set_ok(conf, "retry.backoff.ms", "500");
    set_ok(conf, "retry.backoff.max.ms", "100");
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_ERR_INVALID_VALUE);
    assert_string_equal(errstr, "\"retry.backoff.max.ms\" (100) is below "
                                "\"retry.backoff.ms\" (500)");
    assert_null(key);
    set_ok(conf, "retry.backoff.max.ms", "500");
    set_ok(conf, "reconnect.backoff.ms", "2000");
    set_ok(conf, "reconnect.backoff.max.ms", "1000");
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_ERR_INVALID_VALUE);
    assert_non_null(strstr(errstr, "\"reconnect.backoff.max.ms\" (1000)"));
    set_ok(conf, "reconnect.backoff.max.ms", "2000");
    set_ok(conf, "max.queued.bytes", "2048");
    set_ok(conf, "max.message.bytes", "4096");
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_ERR_INVALID_VALUE);
    assert_non_null(strstr(errstr, "\"max.queued.bytes\" (2048) is below"));
    set_ok(conf, "max.queued.bytes", "4096");
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_OK);
    free(key);
}

/* The dialect follows the scheme unless set, and must agree with it; the
 * vendors' key variables come first for their dialects. */
static void test_finalize_dialect(void **state)
{
    parley_conf_t *conf = *state;
    char errstr[ERRSTR_SIZE];
    char *key = NULL;

    make_ready(conf);
    setenv("PARLEY_API_KEY", "parley-key", 1);
    set_ok(conf, "endpoint", "ws://h");
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_OK);
    assert_int_equal(conf->dialect, PL_DIALECT_NATIVE);
    free(key);

    set_ok(conf, "endpoint", "http://h");
    set_ok(conf, "model", "m"); /* required off loopback (test_vendor_conf.c) */
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_OK);
    assert_int_equal(conf->dialect, PL_DIALECT_OPENAI);
    assert_string_equal(key, "parley-key"); /* no OPENAI_API_KEY: the fallback */
    free(key);

    set_ok(conf, "dialect", "anthropic");
    setenv("ANTHROPIC_API_KEY", "anthropic-key", 1);
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_OK);
    assert_int_equal(conf->dialect, PL_DIALECT_ANTHROPIC);
    assert_string_equal(key, "anthropic-key");
    free(key);
    unsetenv("ANTHROPIC_API_KEY");

    set_ok(conf, "dialect", "native");
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_ERR_INVALID_VALUE);
    assert_string_equal(errstr, "the native dialect (set by the \"dialect\" property) "
                                "needs an endpoint starting with ws:// or wss://");
    set_fails(conf, "dialect", "soap", PARLEY_ERR_INVALID_VALUE,
              "\"dialect\": \"soap\" is not native, anthropic or openai");

    set_ok(conf, "dialect", "openai");
    unsetenv("PARLEY_API_KEY");
    assert_int_equal(finalize(conf, &key, errstr), PARLEY_ERR_NO_KEY);
    assert_non_null(strstr(errstr, "OPENAI_API_KEY"));
    assert_null(key);
}

/* ---- issue 12: values that reach a header, the request, or block -------- */

static bool has_control(const char *text)
{
    for (const unsigned char *c = (const unsigned char *)text; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return true;
    return false;
}

/* A CR LF in anthropic.version would become request headers of its own. */
static void test_header_values_refused_with_controls(void **state)
{
    parley_conf_t *conf = *state;
    static const char *const bad[] = {"2023-06-01\r\nX-Injected: 1", "2023-06-01\n",
                                      "a\rb", "a\x01", "a\x7f"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char errstr[ERRSTR_SIZE] = "";
        assert_int_equal(parley_conf_set(conf, "anthropic.version", bad[i], errstr,
                                         sizeof(errstr)),
                         PARLEY_ERR_INVALID_VALUE);
        assert_non_null(strstr(errstr, "\"anthropic.version\""));
        assert_non_null(strstr(errstr, "header"));
        assert_false(has_control(errstr)); /* the value is quoted escaped */
    }
    set_fails(conf, "anthropic.version", "2023-06-01\r\nX-Injected: 1",
              PARLEY_ERR_INVALID_VALUE,
              "\"anthropic.version\": \"2023-06-01\\r\\nX-Injected: 1\" must not "
              "contain control characters (CR, LF): it is sent as an HTTP header");
    assert_string_equal(conf->anthropic_version, "2023-06-01"); /* unchanged */
    set_ok(conf, "anthropic.version", "2023-06-01\tbeta");
}

/* Invalid UTF-8 in model or system made every request stall; now the set
 * fails at once. */
static void test_model_and_system_must_be_utf8(void **state)
{
    parley_conf_t *conf = *state;
    static const char *const names[] = {"model", "system"};
    for (size_t i = 0; i < 2; i++) {
        char errstr[ERRSTR_SIZE] = "";
        assert_int_equal(parley_conf_set(conf, names[i], "caf\xe9", errstr, sizeof(errstr)),
                         PARLEY_ERR_INVALID_VALUE);
        char expected[ERRSTR_SIZE];
        snprintf(expected, sizeof(expected), "\"%s\": \"caf\\xe9\" is not valid UTF-8",
                 names[i]);
        assert_string_equal(errstr, expected);
        snprintf(expected, sizeof(expected), "\"%s\": \"\\xc0\\xaf\" is not valid UTF-8",
                 names[i]); /* an overlong '/' */
        set_fails(conf, names[i], "\xc0\xaf", PARLEY_ERR_INVALID_VALUE, expected);
        set_ok(conf, names[i], "caf\xc3\xa9 \xe2\x82\xac");
    }
}

typedef struct blocking_new {
    parley_conf_t *conf;
    parley_client_t *client;
    char errstr[ERRSTR_SIZE];
} blocking_new;

static void *client_new_thread(void *arg)
{
    blocking_new *b = arg;
    b->client = parley_client_new(b->conf, b->errstr, sizeof(b->errstr));
    return NULL;
}

/* api_key.file naming a FIFO: refused at once, not a wait for a writer. */
static void test_key_file_fifo_refused_without_blocking(void **state)
{
    parley_conf_t *conf = *state;
    char path[sizeof(tmpdir) + 16];
    snprintf(path, sizeof(path), "%s/key-fifo", tmpdir);
    assert_int_equal(mkfifo(path, 0600), 0);
    make_ready(conf);
    set_ok(conf, "endpoint", "ws://h");
    set_ok(conf, "api_key.file", path);
    blocking_new b = {.conf = conf};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, client_new_thread, &b), 0);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    int rc = pthread_timedjoin_np(t, NULL, &deadline);
    if (rc != 0) { /* blocked in open(): a writer releases it, then fail */
        int w = open(path, O_WRONLY | O_NONBLOCK);
        pthread_join(t, NULL);
        if (w >= 0)
            close(w);
    }
    unlink(path);
    assert_int_equal(rc, 0);
    assert_null(b.client);
    char expected[ERRSTR_SIZE];
    snprintf(expected, sizeof(expected), "API key file \"%s\" is not a regular file", path);
    assert_string_equal(b.errstr, expected);
}

/* The session option max_tokens takes exactly what the property takes. */
static void test_session_max_tokens_parsed_as_conf(void **state)
{
    parley_conf_t *conf = *state;
    static const char *const values[] = {"5", " 5", "5 ", "+7", "-1", "0", "1000000",
                                         "1000001", "0x10", "1e3", "7abc",
                                         "99999999999999999999", "+", "-"};
    parley_conf_t *client_conf = parley_conf_new();
    make_ready(client_conf);
    char errstr[ERRSTR_SIZE] = "";
    assert_int_equal(parley_conf_set(client_conf, "endpoint", "ws://127.0.0.1:1", errstr,
                                     sizeof(errstr)), PARLEY_OK);
    setenv("PARLEY_API_KEY", "k", 1);
    parley_client_t *c = parley_client_new(client_conf, errstr, sizeof(errstr));
    if (!c)
        fail_msg("parley_client_new: %s", errstr);
    parley_session_t *s = parley_session_open(c, "options", errstr, sizeof(errstr));
    assert_non_null(s);
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char conf_err[ERRSTR_SIZE] = "", session_err[ERRSTR_SIZE] = "";
        parley_err_t by_conf =
            parley_conf_set(conf, "max_tokens", values[i], conf_err, sizeof(conf_err));
        parley_err_t by_session =
            parley_session_set(s, "max_tokens", values[i], session_err, sizeof(session_err));
        if (by_conf != by_session)
            fail_msg("max_tokens \"%s\": the property says %s, the session option %s",
                     values[i], parley_err2name(by_conf), parley_err2name(by_session));
        assert_string_equal(session_err, conf_err);
    }
    assert_int_equal(parley_session_set(s, "max_tokens", "", errstr, sizeof(errstr)),
                     PARLEY_OK); /* empty: back to the client's */
    /* The option's name follows the properties' rule: dots, or '_' or '-'. */
    assert_int_equal(parley_session_set(s, "max.tokens", "5", errstr, sizeof(errstr)),
                     PARLEY_OK);
    assert_int_equal(parley_session_set(s, "max-tokens", "5", errstr, sizeof(errstr)),
                     PARLEY_OK);
    assert_int_equal(parley_session_set(s, "max.tokens", "-1", errstr, sizeof(errstr)),
                     PARLEY_ERR_INVALID_VALUE);
    assert_int_equal(parley_session_set(s, "maxtokens", "5", errstr, sizeof(errstr)),
                     PARLEY_ERR_UNKNOWN_OPTION);
    assert_non_null(strstr(errstr, "max.tokens"));
    parley_session_close(s);
    parley_client_destroy(c);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_defaults),
        T(test_round_trip_string),
        T(test_empty_string_resets),
        T(test_round_trip_int),
        T(test_round_trip_double),
        T(test_round_trip_int64),
        T(test_unknown_name),
        T(test_bad_integer_forms),
        T(test_integer_overflow),
        T(test_out_of_range),
        T(test_bad_doubles),
        T(test_endpoint_validation),
        T(test_endpoint_port),
        T(test_null_arguments),
        T(test_errstr_small_or_absent),
        T(test_get_size_protocol),
        T(test_dup_is_deep),
        T(test_dump),
        T(test_connections_for),
        T(test_conf_connections),
        T(test_finalize_no_callback),
        T(test_finalize_endpoint_from_env),
        T(test_finalize_endpoint_property_wins),
        T(test_finalize_missing_endpoint),
        T(test_finalize_bad_env_endpoint),
        T(test_finalize_key_from_named_env),
        T(test_finalize_missing_key),
        T(test_finalize_key_file_0600),
        T(test_finalize_key_file_refused),
        T(test_store_password),
        T(test_store_url_checked),
        T(test_finalize_worker_id),
        T(test_finalize_worker_id_property_wins),
        T(test_key_never_in_errstr),
        T(test_finalize_cross_checks),
        T(test_finalize_dialect),
        T(test_header_values_refused_with_controls),
        T(test_model_and_system_must_be_utf8),
        T(test_key_file_fifo_refused_without_blocking),
        T(test_session_max_tokens_parsed_as_conf),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
