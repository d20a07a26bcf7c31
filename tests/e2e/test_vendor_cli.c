/*
 * `parley chat` and examples/hello as a new user runs them against a real
 * vendor (issue 17). The vendor is the in-process reference server over TLS,
 * serving the echo model under a real model's name, with the vendor's host
 * name mapped to it by the connect.to property (curl's --connect-to: the
 * request and the certificate check still name api.anthropic.com, whose
 * name the test certificate carries). The programs run as child processes
 * (PARLEY_BIN, as make check sets it); their output is checked word for
 * word.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "fixtures.h"
#include "refserver.h"
#include "refserver_http.h"
#include "tls_files.h"

#define VENDOR_KEY "vendor-test-key-1"
#define MODEL "claude-sonnet-4-5"

static tls_files tls;
static char parley_bin[512], hello_bin[512];
static char workdir[] = "/tmp/parley-vendor-cli-XXXXXX";

/* ---- running a child ---------------------------------------------------- */

static void run(child_result *r, const char *input, bool tty, const char *const *env,
                char *const *argv)
{
    child_run(r, workdir, input, tty, env, argv);
}

#define ARGV(...) ((char *const[]){parley_bin, __VA_ARGS__, NULL})
#define ENV(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ---- the stand-in vendor ---------------------------------------------- */

static pl_refserver *vendor_start(const char *key)
{
    pl_refserver_opts o;
    pl_refserver_opts_init(&o);
    o.quiet = 1;
    o.api_key = key;
    o.chunk_bytes = 4;
    o.tls_cert_file = tls.server_cert;
    o.tls_key_file = tls.server_key;
    o.http_model = MODEL;
    char err[256];
    pl_refserver *srv = pl_refserver_start(&o, err, sizeof(err));
    if (!srv)
        fail_msg("reference server: %s", err);
    return srv;
}

/* --set connect.to=HOST:443:127.0.0.1:PORT */
static char *connect_to(const char *host, pl_refserver *srv)
{
    static char arg[160];
    snprintf(arg, sizeof(arg), "connect.to=%s:443:127.0.0.1:%d", host, pl_refserver_port(srv));
    return arg;
}

static pl_refserver_http_stats http_stats(pl_refserver *srv)
{
    pl_refserver_http_stats hs;
    pl_refserver_http_get_stats(pl_refserver_http_of(srv), &hs);
    return hs;
}

static int group_setup(void **state)
{
    (void)state;
    const char *bin = getenv("PARLEY_BIN");
    snprintf(parley_bin, sizeof(parley_bin), "%s", bin ? bin : "./parley");
    char dir[512];
    snprintf(dir, sizeof(dir), "%s", parley_bin);
    snprintf(hello_bin, sizeof(hello_bin), "%s/examples/hello", dirname(dir));
    if (!mkdtemp(workdir))
        return -1;
    tls_files_make(&tls);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    tls_files_remove(&tls);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", workdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- acceptance -------------------------------------------------------- */

/* https://api.anthropic.com without --dialect talks the anthropic dialect,
 * with ANTHROPIC_API_KEY, to /v1/messages, asking for the model given. */
static void test_anthropic_host_picks_the_dialect(void **state)
{
    (void)state;
    pl_refserver *srv = vendor_start(VENDOR_KEY);
    child_result r;
    run(&r, NULL, false, ENV("ANTHROPIC_API_KEY=" VENDOR_KEY),
        ARGV("chat", "--endpoint", "https://api.anthropic.com", "--model", MODEL, "--cacert",
             tls.ca, "--set", connect_to("api.anthropic.com", srv), "hello", "again"));
    if (r.status != 0)
        fail_msg("exit %d: %s", r.status, r.err);
    assert_string_equal(r.out, "[turn 1] hello\n[turn 2] again\n");
    assert_string_equal(r.err, "");
    pl_refserver_http_stats hs = http_stats(srv);
    assert_int_equal(hs.requests_messages, 2);
    assert_int_equal(hs.requests_chat, 0);
    char *body = pl_refserver_http_received(pl_refserver_http_of(srv), 0);
    assert_non_null(body);
    assert_non_null(strstr(body, "\"model\":\"" MODEL "\""));
    assert_non_null(strstr(body, "\"max_tokens\":1024"));
    free(body);
    pl_refserver_stop(srv);
}

/* https://api.openai.com/v1, the OpenAI SDK's base URL: the openai dialect
 * and /v1/chat/completions; --set reaches the request (max.tokens). */
static void test_openai_sdk_base_url(void **state)
{
    (void)state;
    pl_refserver *srv = vendor_start(VENDOR_KEY);
    child_result r;
    run(&r, NULL, false, ENV("OPENAI_API_KEY=" VENDOR_KEY),
        ARGV("chat", "--endpoint", "https://api.openai.com/v1", "--model", MODEL, "--cacert",
             tls.ca, "--set", connect_to("api.openai.com", srv), "--set", "max_tokens=77",
             "hello"));
    if (r.status != 0)
        fail_msg("exit %d: %s", r.status, r.err);
    assert_string_equal(r.out, "[turn 1] hello\n");
    pl_refserver_http_stats hs = http_stats(srv);
    assert_int_equal(hs.requests_chat, 1);
    char *body = pl_refserver_http_received(pl_refserver_http_of(srv), 0);
    assert_non_null(body);
    assert_non_null(strstr(body, "\"max_completion_tokens\":77"));
    free(body);
    pl_refserver_stop(srv);
}

/* No model for a vendor host: nothing is sent, and the message names the
 * option that fixes it. */
static void test_vendor_without_model_fails_before_sending(void **state)
{
    (void)state;
    pl_refserver *srv = vendor_start(VENDOR_KEY);
    child_result r;
    run(&r, NULL, false, ENV("ANTHROPIC_API_KEY=" VENDOR_KEY),
        ARGV("chat", "--endpoint", "https://api.anthropic.com", "--cacert", tls.ca, "--set",
             connect_to("api.anthropic.com", srv), "hello"));
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err,
                        "parley: no model: api.anthropic.com (anthropic dialect, chosen by the "
                        "host api.anthropic.com) needs one in every request: set --model to an "
                        "Anthropic model, e.g. claude-sonnet-4-5; sessions may override it\n");
    assert_int_equal(http_stats(srv).requests_messages, 0);
    pl_refserver_stop(srv);
}

/* ---- messages that point at the options ------------------------------- */

static void test_messages_name_the_options(void **state)
{
    (void)state;
    child_result r;
    run(&r, NULL, false, NULL, ARGV("chat", "hello"));
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err, "parley: no endpoint: set --endpoint or PARLEY_ENDPOINT "
                               "(docs/vendors.md names the vendors')\n");
    run(&r, NULL, false, NULL,
        ARGV("chat", "--endpoint", "https://api.anthropic.com", "--model", MODEL, "hello"));
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err, "parley: no API key: set ANTHROPIC_API_KEY (the variable of the "
                               "anthropic dialect, chosen by the host api.anthropic.com) or "
                               "--key-file\n");
    run(&r, NULL, false, ENV("PARLEY_API_KEY=k"),
        ARGV("chat", "--endpoint", "ws://h", "--dialect", "openai", "hello"));
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err, "parley: the openai dialect (set by --dialect) needs an endpoint "
                               "starting with http:// or https://\n");
    run(&r, NULL, false, NULL, ARGV("chat", "--set", "max_token=5", "hello"));
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err, "parley: no such property \"max_token\": did you mean "
                               "\"max.tokens\"?\n");
    run(&r, NULL, false, NULL, ARGV("chat", "--set", "nothing", "hello"));
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err, "parley: --set needs name=value, got \"nothing\"\n");
}

/* --key-file: the key from a file, none in the environment. */
static void test_key_file(void **state)
{
    (void)state;
    pl_refserver *srv = vendor_start(VENDOR_KEY);
    char key_path[128];
    snprintf(key_path, sizeof(key_path), "%s/key", workdir);
    int fd = open(key_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, VENDOR_KEY "\n", strlen(VENDOR_KEY) + 1),
                     (ssize_t)strlen(VENDOR_KEY) + 1);
    close(fd);
    char url[96];
    snprintf(url, sizeof(url), "wss://localhost:%d", pl_refserver_port(srv));
    child_result r;
    run(&r, NULL, false, NULL,
        ARGV("chat", "--endpoint", url, "--key-file", key_path, "--cacert", tls.ca, "hi"));
    if (r.status != 0)
        fail_msg("exit %d: %s", r.status, r.err);
    assert_string_equal(r.out, "[turn 1] hi\n");
    pl_refserver_stop(srv);
}

/* ---- a conversation that goes on -------------------------------------- */

/* A failed turn is reported once and the next one is sent; the exit
 * status says that one failed. */
static void test_chat_goes_on_after_a_failed_turn(void **state)
{
    (void)state;
    pl_refserver *srv = vendor_start(VENDOR_KEY);
    pl_refserver_http_faults f;
    pl_refserver_http_faults_init(&f);
    f.reject_every = 2;
    f.reject_status = 400;
    pl_refserver_http_set_faults(pl_refserver_http_of(srv), &f);
    child_result r;
    run(&r, "first\nsecond\nthird\n", false, ENV("ANTHROPIC_API_KEY=" VENDOR_KEY),
        ARGV("chat", "--endpoint", "https://api.anthropic.com", "--model", MODEL, "--cacert",
             tls.ca, "--set", connect_to("api.anthropic.com", srv)));
    assert_int_equal(r.status, 1);
    /* The failed turn is not in the history: the third is turn 2. */
    assert_string_equal(r.out, "[turn 1] first\n[turn 2] third\n");
    const char *want = "parley: HTTP 400 from https://api.anthropic.com/v1/messages (anthropic "
                       "dialect, chosen by the host api.anthropic.com): invalid_request_error: ";
    if (strncmp(r.err, want, strlen(want)) != 0)
        fail_msg("stderr: %s", r.err);
    assert_non_null(strstr(r.err, " (INVALID_REQUEST)\n"));
    assert_null(strchr(strchr(r.err, '\n') + 1, '\n')); /* one line */
    pl_refserver_stop(srv);
}

/* A wait shows at the default level, as a warning that names options. */
static void test_retry_warning_names_options(void **state)
{
    (void)state;
    pl_refserver *srv = vendor_start(VENDOR_KEY);
    pl_refserver_http_faults f;
    pl_refserver_http_faults_init(&f);
    f.reject_every = 1;
    f.reject_status = 429;
    f.retry_after_ms = 10;
    pl_refserver_http_set_faults(pl_refserver_http_of(srv), &f);
    child_result r;
    run(&r, NULL, false, ENV("ANTHROPIC_API_KEY=" VENDOR_KEY),
        ARGV("chat", "--endpoint", "https://api.anthropic.com", "--dialect", "anthropic",
             "--model", MODEL, "--cacert", tls.ca, "--set", connect_to("api.anthropic.com", srv),
             "--set", "retry.max.attempts=2", "hello"));
    assert_int_equal(r.status, 1);
    const char *warning = "parley WARNING request: ";
    if (strncmp(r.err, warning, strlen(warning)) != 0)
        fail_msg("stderr: %s", r.err);
    assert_non_null(strstr(r.err, ": HTTP 429 from https://api.anthropic.com/v1/messages "
                                  "(anthropic dialect, set by --dialect): rate_limit_error: "));
    assert_non_null(strstr(r.err, "; sending it again (attempt 1 of 2 done)\nparley: HTTP 429 "));
    assert_non_null(strstr(r.err, " (after 2 attempts) (RATE_LIMITED)\n"));
    pl_refserver_stop(srv);
}

/* At a terminal there is a prompt; from a pipe there is none. */
static void test_prompt_at_a_terminal(void **state)
{
    (void)state;
    pl_refserver *srv = vendor_start(VENDOR_KEY);
    child_result r;
    run(&r, "hello\n", true, ENV("ANTHROPIC_API_KEY=" VENDOR_KEY),
        ARGV("chat", "--endpoint", "https://api.anthropic.com", "--model", MODEL, "--cacert",
             tls.ca, "--set", connect_to("api.anthropic.com", srv)));
    if (r.status != 0)
        fail_msg("exit %d: %s", r.status, r.err);
    assert_string_equal(r.out, "[turn 1] hello\n");
    assert_string_equal(r.err, "parley chat: one turn per line; end with Ctrl-D\n> > \n");
    run(&r, "hello\n", false, ENV("ANTHROPIC_API_KEY=" VENDOR_KEY),
        ARGV("chat", "--endpoint", "https://api.anthropic.com", "--model", MODEL, "--cacert",
             tls.ca, "--set", connect_to("api.anthropic.com", srv)));
    assert_int_equal(r.status, 0);
    assert_string_equal(r.err, "");
    pl_refserver_stop(srv);
}

/* ---- examples/hello ----------------------------------------------------- */

/* A refused key: each turn's failure printed once (no log line besides),
 * and a non-zero exit status. */
static void test_hello_reports_each_failure_once(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server("the-right-key", 0, 0, 16);
    char endpoint[128];
    snprintf(endpoint, sizeof(endpoint), "PARLEY_ENDPOINT=ws://127.0.0.1:%d/v1/stream",
             pl_refserver_port(srv));
    child_result r;
    run(&r, NULL, false, ENV(endpoint, "PARLEY_API_KEY=a-wrong-key"),
        ((char *const[]){hello_bin, NULL}));
    assert_int_equal(r.status, 1);
    if (strncmp(r.err, "error: unauthorized: ", strlen("error: unauthorized: ")) != 0 ||
        strstr(r.err, "WARNING"))
        fail_msg("stderr: %s", r.err);
    const char *second = strchr(r.err, '\n') + 1;
    assert_int_equal(strncmp(second, "error: unauthorized: ", 21), 0);
    assert_string_equal(strchr(second, '\n'), "\n");
    pl_refserver_stop(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_anthropic_host_picks_the_dialect),
        cmocka_unit_test(test_openai_sdk_base_url),
        cmocka_unit_test(test_vendor_without_model_fails_before_sending),
        cmocka_unit_test(test_messages_name_the_options),
        cmocka_unit_test(test_key_file),
        cmocka_unit_test(test_chat_goes_on_after_a_failed_turn),
        cmocka_unit_test(test_retry_warning_names_options),
        cmocka_unit_test(test_prompt_at_a_terminal),
        cmocka_unit_test(test_hello_reports_each_failure_once),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
