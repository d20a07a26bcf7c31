/*
 * Issue 14's acceptance, as a user runs it: `parley chat --tools` given a
 * tool call and then the tool result line, and examples/agent completing a
 * call -> result -> answer conversation, on the three paths against the
 * reference server's echo model (docs/protocol.md section 10). The programs
 * run as child processes (PARLEY_BIN, as make check sets it); their output
 * is checked word for word.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "child.h"
#include "fixtures.h"
#include "refserver.h"

#define KEY "chat-tools-key"

static const char *const paths[] = {"native", "anthropic", "openai"};
static char parley_bin[512], agent_bin[512], tools_path[600], history_path[600];
static char workdir[] = "/tmp/parley-chat-tools-XXXXXX";
static pl_refserver *srv;

static int group_setup(void **state)
{
    (void)state;
    const char *bin = getenv("PARLEY_BIN");
    snprintf(parley_bin, sizeof(parley_bin), "%s", bin ? bin : "./parley");
    char dir[512];
    snprintf(dir, sizeof(dir), "%s", parley_bin);
    snprintf(agent_bin, sizeof(agent_bin), "%s/examples/agent", dirname(dir));
    if (!mkdtemp(workdir))
        return -1;
    snprintf(tools_path, sizeof(tools_path), "%s/tools.json", workdir);
    snprintf(history_path, sizeof(history_path), "%s/history.json", workdir);
    FILE *f = fopen(tools_path, "w");
    if (!f)
        return -1;
    fputs("[{\"name\":\"get_weather\",\"description\":\"The weather in a city\",\n"
          "  \"input_schema\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":"
          "\"string\"}},\"required\":[\"city\"]}}]\n",
          f);
    fclose(f);
    srv = fixture_server(KEY, 0, 0, 3);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    pl_refserver_stop(srv);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", workdir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *endpoint(const char *path)
{
    static char url[96];
    snprintf(url, sizeof(url),
             strcmp(path, "native") ? "PARLEY_ENDPOINT=http://127.0.0.1:%d"
                                    : "PARLEY_ENDPOINT=ws://127.0.0.1:%d/v1/stream",
             pl_refserver_port(srv));
    return url;
}

static const char *call_id(const char *path)
{
    return strcmp(path, "openai") ? "toolu_echo_1" : "call_echo_1";
}

/* The acceptance: the call, the call line, the result line. */
static void test_chat_tool_conversation(void **state)
{
    (void)state;
    for (size_t p = 0; p < sizeof(paths) / sizeof(paths[0]); p++) {
        char result_line[160], want[512];
        snprintf(result_line, sizeof(result_line),
                 "{\"type\":\"tool_result\",\"tool_use_id\":\"%s\",\"content\":\"18 C\"}",
                 call_id(paths[p]));
        child_result r;
        char dialect[32];
        snprintf(dialect, sizeof(dialect), "%s", paths[p]);
        child_run(&r, workdir, NULL, false,
                  (const char *const[]){"PARLEY_API_KEY=" KEY, endpoint(paths[p]), NULL},
                  (char *const[]){parley_bin, "chat", "--dialect", dialect, "--tools",
                                  tools_path, "--export", history_path,
                                  "call get_weather {\"city\":\"Paris\"}", result_line, NULL});
        snprintf(want, sizeof(want),
                 "[turn 1] calling get_weather\n"
                 "{\"type\":\"tool_use\",\"id\":\"%s\",\"name\":\"get_weather\","
                 "\"input\":{\"city\":\"Paris\"}}\n"
                 "[turn 2] get_weather returned: 18 C\n",
                 call_id(paths[p]));
        if (r.status != 0 || strcmp(r.out, want))
            fail_msg("%s: status %d\nstdout:\n%s\nstderr:\n%s", paths[p], r.status, r.out,
                     r.err);

        /* The exported history continues in another process. */
        child_run(&r, workdir, "and tomorrow?\n", false,
                  (const char *const[]){"PARLEY_API_KEY=" KEY, endpoint(paths[p]), NULL},
                  (char *const[]){parley_bin, "chat", "--dialect", dialect, "--tools",
                                  tools_path, "--history", history_path, NULL});
        if (r.status != 0 || strcmp(r.out, "[turn 3] and tomorrow?\n"))
            fail_msg("%s --history: status %d\nstdout:\n%s\nstderr:\n%s", paths[p], r.status,
                     r.out, r.err);
    }
}

/* A broken history file is refused with the reason, status 2. */
static void test_chat_bad_history(void **state)
{
    (void)state;
    FILE *f = fopen(history_path, "w");
    assert_non_null(f);
    fputs("[{\"role\":\"user\",\"content\":\"hi\"}]", f);
    fclose(f);
    child_result r;
    child_run(&r, workdir, "x\n", false,
              (const char *const[]){"PARLEY_API_KEY=" KEY, endpoint("native"), NULL},
              (char *const[]){parley_bin, "chat", "--history", history_path, NULL});
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "end with an assistant message"));
}

static void test_agent_example(void **state)
{
    (void)state;
    for (size_t p = 0; p < sizeof(paths) / sizeof(paths[0]); p++) {
        char dialect[48];
        snprintf(dialect, sizeof(dialect), "PARLEY_DIALECT=%s", paths[p]);
        child_result r;
        child_run(&r, workdir, NULL, false,
                  (const char *const[]){"PARLEY_API_KEY=" KEY, endpoint(paths[p]), dialect,
                                        NULL},
                  (char *const[]){agent_bin, "call calculator {\"a\":6,\"op\":\"*\",\"b\":7}",
                                  NULL});
        const char *want = "user: call calculator {\"a\":6,\"op\":\"*\",\"b\":7}\n"
                           "tool: calculator {\"a\":6,\"op\":\"*\",\"b\":7} -> 42\n"
                           "assistant: [turn 1] calling calculator\n"
                           "assistant: [turn 2] calculator returned: 42\n";
        if (r.status != 0 || strcmp(r.out, want))
            fail_msg("%s: status %d\nstdout:\n%s\nstderr:\n%s", paths[p], r.status, r.out,
                     r.err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_tool_conversation),
        cmocka_unit_test(test_chat_bad_history),
        cmocka_unit_test(test_agent_example),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
