/*
 * The first hour with a real vendor (issue 17), as far as the configuration
 * decides it: the dialect from the vendors' hosts and the reason given for
 * it, the model a vendor host requires, the key variable each message
 * names, the endpoint's path filled in, and the property names (the rule,
 * the old names, "did you mean", the key that is never a property,
 * log.level by name). Every message is checked word for word.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "dialect_endpoint.h"
#include "parley.h"

static const char *const env_vars[] = {"PARLEY_ENDPOINT", "PARLEY_API_KEY", "ANTHROPIC_API_KEY",
                                       "OPENAI_API_KEY", "PARLEY_LOG", "MY_KEY"};

static void on_event(parley_client_t *client, const parley_event_t *ev, void *opaque)
{
    (void)client, (void)ev, (void)opaque;
}

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++)
        unsetenv(env_vars[i]);
}

static int setup(void **state)
{
    clear_env();
    parley_conf_t *conf = parley_conf_new();
    if (!conf)
        return -1;
    parley_conf_set_event_cb(conf, on_event, NULL);
    *state = conf;
    return 0;
}

static int teardown(void **state)
{
    parley_conf_destroy(*state);
    clear_env();
    return 0;
}

static void set_ok(parley_conf_t *conf, const char *name, const char *value)
{
    char err[512] = "";
    if (parley_conf_set(conf, name, value, err, sizeof(err)) != PARLEY_OK)
        fail_msg("set %s=%s: %s", name, value, err);
}

/* Setting must fail with `code` and exactly the message `msg`. */
static void set_fails(parley_conf_t *conf, const char *name, const char *value,
                      parley_err_t code, const char *msg)
{
    char err[512] = "";
    assert_int_equal(parley_conf_set(conf, name, value, err, sizeof(err)), code);
    assert_string_equal(err, msg);
}

/* Finalize must succeed; the key is dropped. */
static void finalize_ok(parley_conf_t *conf)
{
    char err[512] = "", *key = NULL;
    if (pl_conf_finalize(conf, &key, err, sizeof(err)) != PARLEY_OK)
        fail_msg("finalize: %s", err);
    free(key);
}

/* Finalize must fail with `code` and exactly the message `msg`. */
static void finalize_fails(parley_conf_t *conf, parley_err_t code, const char *msg)
{
    char err[512] = "", *key = NULL;
    assert_int_equal(pl_conf_finalize(conf, &key, err, sizeof(err)), code);
    assert_null(key);
    assert_string_equal(err, msg);
}

/* ---- the dialect ---------------------------------------------------------- */

/* https://api.anthropic.com without "dialect": anthropic, its key variable,
 * its path; the reason is kept for later messages. */
static void test_dialect_from_anthropic_host(void **state)
{
    parley_conf_t *conf = *state;
    setenv("ANTHROPIC_API_KEY", "a-key", 1);
    set_ok(conf, "endpoint", "https://api.anthropic.com");
    set_ok(conf, "model", "claude-sonnet-4-5");
    finalize_ok(conf);
    assert_int_equal(conf->dialect, PL_DIALECT_ANTHROPIC);
    assert_string_equal(conf->endpoint, "https://api.anthropic.com/v1/messages");
    assert_string_equal(conf->dialect_shown,
                        "anthropic dialect, chosen by the host api.anthropic.com");
}

static void test_dialect_from_openai_host(void **state)
{
    parley_conf_t *conf = *state;
    setenv("OPENAI_API_KEY", "o-key", 1);
    set_ok(conf, "endpoint", "https://API.OpenAI.com/v1");
    set_ok(conf, "model", "gpt-4o-mini");
    finalize_ok(conf);
    assert_int_equal(conf->dialect, PL_DIALECT_OPENAI);
    assert_string_equal(conf->endpoint, "https://API.OpenAI.com/v1/chat/completions");
    assert_string_equal(conf->dialect_shown,
                        "openai dialect, chosen by the host API.OpenAI.com");
}

static void test_dialect_reasons(void **state)
{
    parley_conf_t *conf = *state;
    setenv("PARLEY_API_KEY", "k", 1);
    set_ok(conf, "endpoint", "ws://127.0.0.1:9");
    finalize_ok(conf);
    assert_string_equal(conf->dialect_shown, "native dialect, chosen by the scheme ws://");
    set_ok(conf, "endpoint", "http://127.0.0.1:9");
    finalize_ok(conf);
    assert_string_equal(conf->dialect_shown, "openai dialect, chosen by the scheme http://");
    set_ok(conf, "dialect", "anthropic");
    finalize_ok(conf);
    assert_string_equal(conf->dialect_shown,
                        "anthropic dialect, set by the \"dialect\" property");
}

/* A dialect that cannot be right says which it is and why. */
static void test_dialect_errors_say_why(void **state)
{
    parley_conf_t *conf = *state;
    setenv("PARLEY_API_KEY", "k", 1);
    set_ok(conf, "model", "m");
    set_ok(conf, "endpoint", "https://api.openai.com");
    set_ok(conf, "dialect", "anthropic");
    finalize_fails(conf, PARLEY_ERR_INVALID_VALUE,
                   "the anthropic dialect (set by the \"dialect\" property) does not fit "
                   "api.openai.com, which speaks the openai dialect: leave the \"dialect\" "
                   "property unset");
    set_ok(conf, "dialect", "");
    set_ok(conf, "endpoint", "wss://api.anthropic.com");
    finalize_fails(conf, PARLEY_ERR_INVALID_VALUE,
                   "the anthropic dialect (chosen by the host api.anthropic.com) needs an "
                   "endpoint starting with http:// or https://");
    set_ok(conf, "endpoint", "ws://h");
    set_ok(conf, "dialect", "openai");
    finalize_fails(conf, PARLEY_ERR_INVALID_VALUE,
                   "the openai dialect (set by the \"dialect\" property) needs an endpoint "
                   "starting with http:// or https://");
}

/* ---- the model ------------------------------------------------------------ */

/* A vendor host without a model: no client, and the message says how. */
static void test_vendor_host_needs_model(void **state)
{
    parley_conf_t *conf = *state;
    setenv("ANTHROPIC_API_KEY", "a-key", 1);
    setenv("OPENAI_API_KEY", "o-key", 1);
    set_ok(conf, "endpoint", "https://api.anthropic.com");
    finalize_fails(conf, PARLEY_ERR_INVALID_ARG,
                   "no model: api.anthropic.com (anthropic dialect, chosen by the host "
                   "api.anthropic.com) needs one in every request: set the \"model\" "
                   "property to an Anthropic model, e.g. claude-sonnet-4-5; sessions may "
                   "override it");
    set_ok(conf, "endpoint", "https://api.openai.com/v1");
    finalize_fails(conf, PARLEY_ERR_INVALID_ARG,
                   "no model: api.openai.com (openai dialect, chosen by the host "
                   "api.openai.com) needs one in every request: set the \"model\" "
                   "property to an OpenAI model, e.g. gpt-4o-mini; sessions may "
                   "override it");
    set_ok(conf, "endpoint", "http://gateway.internal:4000");
    finalize_fails(conf, PARLEY_ERR_INVALID_ARG,
                   "no model: gateway.internal (openai dialect, chosen by the scheme "
                   "http://) needs one in every request: set the \"model\" property to a "
                   "model the server serves; sessions may override it");
    /* The endpoint was left as set: a failed finalize changes nothing. */
    assert_string_equal(conf->endpoint, "http://gateway.internal:4000");
}

/* The reference server's echo model stays the default on loopback only,
 * and the native protocol never needs one. */
static void test_loopback_and_native_need_no_model(void **state)
{
    parley_conf_t *conf = *state;
    setenv("PARLEY_API_KEY", "k", 1);
    static const char *const fine[] = {"http://127.0.0.1:8765", "http://localhost:1",
                                       "http://[::1]:2/v1", "http://127.1.2.3",
                                       "wss://api.example.com"};
    for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
        set_ok(conf, "endpoint", fine[i]);
        finalize_ok(conf);
    }
    assert_false(pl_endpoint_is_loopback("http://127.0.0.1.example.com"));
    assert_false(pl_endpoint_is_loopback("http://localhost.example.com"));
    assert_true(pl_endpoint_is_loopback("http://user:pw@127.0.0.1:80/v1"));
}

/* ---- the key -------------------------------------------------------------- */

static void test_key_messages_name_the_dialect(void **state)
{
    parley_conf_t *conf = *state;
    set_ok(conf, "endpoint", "https://api.anthropic.com");
    set_ok(conf, "model", "claude-sonnet-4-5");
    finalize_fails(conf, PARLEY_ERR_NO_KEY,
                   "no API key: set ANTHROPIC_API_KEY (the variable of the anthropic "
                   "dialect, chosen by the host api.anthropic.com) or the "
                   "\"api.key.file\" property");
    /* The OpenAI dialect by default while an Anthropic key is set. */
    setenv("ANTHROPIC_API_KEY", "a-key", 1);
    set_ok(conf, "endpoint", "https://llm.example.com");
    finalize_fails(conf, PARLEY_ERR_NO_KEY,
                   "no API key: set OPENAI_API_KEY (the variable of the openai dialect, "
                   "chosen by the scheme https://) or the \"api.key.file\" property; "
                   "ANTHROPIC_API_KEY is set: for Anthropic's API set the \"dialect\" "
                   "property to anthropic");
    set_ok(conf, "api_key.env", "MY_KEY");
    finalize_fails(conf, PARLEY_ERR_NO_KEY,
                   "no API key: set MY_KEY (named by the \"api.key.env\" property) or the "
                   "\"api.key.file\" property");
}

/* ---- the endpoint's path -------------------------------------------------- */

static void expect_complete(const char *url, pl_dialect d, const char *want)
{
    char *got = pl_endpoint_complete(url, d);
    assert_non_null(got);
    if (strcmp(got, want) != 0)
        fail_msg("%s: got %s, want %s", url, got, want);
    free(got);
}

static void test_endpoint_paths(void **state)
{
    (void)state;
    expect_complete("ws://h:1", PL_DIALECT_NATIVE, "ws://h:1/v1/stream");
    expect_complete("wss://h/", PL_DIALECT_NATIVE, "wss://h/v1/stream");
    expect_complete("ws://h/v1", PL_DIALECT_NATIVE, "ws://h/v1");
    expect_complete("ws://h/custom", PL_DIALECT_NATIVE, "ws://h/custom");
    expect_complete("https://h", PL_DIALECT_ANTHROPIC, "https://h/v1/messages");
    expect_complete("https://h/v1", PL_DIALECT_ANTHROPIC, "https://h/v1/messages");
    expect_complete("https://h/v1/", PL_DIALECT_OPENAI, "https://h/v1/chat/completions");
    expect_complete("https://h/api/v1", PL_DIALECT_OPENAI,
                    "https://h/api/v1/chat/completions");
    expect_complete("https://h:8/v1?x=1", PL_DIALECT_OPENAI,
                    "https://h:8/v1/chat/completions?x=1");
    expect_complete("http://h?x=/v1", PL_DIALECT_OPENAI, "http://h/v1/chat/completions?x=/v1");
    expect_complete("https://h/v1/messages", PL_DIALECT_ANTHROPIC, "https://h/v1/messages");
    expect_complete("https://h/proxy", PL_DIALECT_ANTHROPIC, "https://h/proxy");
}

/* ---- property names ------------------------------------------------------- */

/* One rule (dots), and the names from before it still work. */
static void test_old_names_are_aliases(void **state)
{
    parley_conf_t *conf = *state;
    char buf[64];
    size_t n = sizeof(buf);
    set_ok(conf, "max_tokens", "77");
    assert_int_equal(conf->max_tokens, 77);
    set_ok(conf, "max-tokens", "78");
    assert_int_equal(conf->max_tokens, 78);
    set_ok(conf, "api_key.env", "MY_KEY");
    assert_int_equal(parley_conf_get(conf, "api.key.env", buf, &n), PARLEY_OK);
    assert_string_equal(buf, "MY_KEY");
    set_ok(conf, "connect_timeout_ms", "1234");
    assert_int_equal(conf->connect_timeout_ms, 1234);
    n = sizeof(buf);
    assert_int_equal(parley_conf_get(conf, "max_tokens", buf, &n), PARLEY_OK);
    assert_string_equal(buf, "78");
    /* The table itself follows the rule. */
    size_t len = parley_conf_dump(NULL, 0);
    char *dump = malloc(len + 1);
    assert_non_null(dump);
    parley_conf_dump(dump, len + 1);
    for (char *row = strstr(dump, "| `"); row; row = strstr(row + 1, "| `")) {
        size_t name_len = strcspn(row + 3, "`");
        for (size_t i = 0; i < name_len; i++)
            if (row[3 + i] == '_' || row[3 + i] == '-')
                fail_msg("property %.*s breaks the naming rule", (int)name_len, row + 3);
    }
    free(dump);
}

static void test_did_you_mean(void **state)
{
    parley_conf_t *conf = *state;
    set_fails(conf, "max_token", "5", PARLEY_ERR_UNKNOWN_OPTION,
              "no such property \"max_token\": did you mean \"max.tokens\"?");
    set_fails(conf, "conect.timeout.ms", "5", PARLEY_ERR_UNKNOWN_OPTION,
              "no such property \"conect.timeout.ms\": did you mean \"connect.timeout.ms\"?");
    set_fails(conf, "request_timeout", "5", PARLEY_ERR_UNKNOWN_OPTION,
              "no such property \"request_timeout\": did you mean \"request.timeout.ms\"?");
    set_fails(conf, "Model", "m", PARLEY_ERR_UNKNOWN_OPTION,
              "no such property \"Model\": did you mean \"model\"?");
    set_fails(conf, "colour", "red", PARLEY_ERR_UNKNOWN_OPTION,
              "no such property \"colour\"");
}

static void test_api_key_is_never_a_property(void **state)
{
    parley_conf_t *conf = *state;
    static const char *const names[] = {"api_key", "api.key", "API_KEY", "apikey", "key"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char want[400];
        snprintf(want, sizeof(want),
                 "no such property \"%s\": the API key is never a property, so that it "
                 "stays out of code and command lines; say where it is with "
                 "\"api.key.env\" (an environment variable, default PARLEY_API_KEY) or "
                 "\"api.key.file\" (a file, mode 0600)",
                 names[i]);
        set_fails(conf, names[i], "sk-secret", PARLEY_ERR_UNKNOWN_OPTION, want);
    }
}

/* log.level takes the names PARLEY_LOG takes. */
static void test_log_level_by_name(void **state)
{
    parley_conf_t *conf = *state;
    set_ok(conf, "log.level", "debug");
    assert_int_equal(conf->log_level, PARLEY_LOG_DEBUG);
    set_ok(conf, "log.level", "Warning");
    assert_int_equal(conf->log_level, PARLEY_LOG_WARNING);
    set_ok(conf, "log.level", "6");
    assert_int_equal(conf->log_level, PARLEY_LOG_INFO);
    set_fails(conf, "log.level", "verbose", PARLEY_ERR_INVALID_VALUE,
              "\"log.level\": \"verbose\" is not error, warning, notice, info, debug or 0-7");
    set_fails(conf, "log.level", "9", PARLEY_ERR_INVALID_VALUE,
              "\"log.level\": \"9\" is not error, warning, notice, info, debug or 0-7");
}

static void test_connect_to_form(void **state)
{
    parley_conf_t *conf = *state;
    set_ok(conf, "connect.to", "api.anthropic.com:443:127.0.0.1:8443");
    set_ok(conf, "connect.to", "::127.0.0.1:1,a:1:[::1]:2");
    set_fails(conf, "connect.to", "api.anthropic.com:127.0.0.1", PARLEY_ERR_INVALID_VALUE,
              "\"connect.to\": \"api.anthropic.com:127.0.0.1\" is not "
              "HOST:PORT:TO_HOST:TO_PORT[,...] (curl's --connect-to)");
    set_fails(conf, "connect.to", "a:1:b:2,", PARLEY_ERR_INVALID_VALUE,
              "\"connect.to\": \"a:1:b:2,\" is not HOST:PORT:TO_HOST:TO_PORT[,...] "
              "(curl's --connect-to)");
    set_fails(conf, "connect.to", "a:1:b:2\n", PARLEY_ERR_INVALID_VALUE,
              "\"connect.to\": \"a:1:b:2\\n\" must not contain spaces or control characters");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_dialect_from_anthropic_host),
        T(test_dialect_from_openai_host),
        T(test_dialect_reasons),
        T(test_dialect_errors_say_why),
        T(test_vendor_host_needs_model),
        T(test_loopback_and_native_need_no_model),
        T(test_key_messages_name_the_dialect),
        T(test_endpoint_paths),
        T(test_old_names_are_aliases),
        T(test_did_you_mean),
        T(test_api_key_is_never_a_property),
        T(test_log_level_by_name),
        T(test_connect_to_form),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
