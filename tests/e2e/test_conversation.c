/*
 * Rich conversations end to end, on the three paths (native protocol,
 * Anthropic Messages, OpenAI Chat Completions) against the in-process
 * reference server: per-request opaque pointers, history export and import,
 * trimming, cancelled turns kept out of the history, session options.
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

#define TEST_KEY "conversation-key"

static const char *const paths[] = {"native", "anthropic", "openai"};
#define NPATHS (sizeof(paths) / sizeof(paths[0]))

static int setup(void **state)
{
    (void)state;
    recorder_reset();
    setenv("PARLEY_API_KEY", TEST_KEY, 1);
    setenv("PARLEY_LOG", "error", 0);
    return 0;
}

static void test_opaque_on_every_event(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 4); /* several pieces */
    for (size_t p = 0; p < NPATHS; p++) {
        parley_client_t *c = fixture_client_dialect(srv, paths[p], NULL);
        parley_session_t *s = parley_session_open(c, "opaque", NULL, 0);
        int mine;
        uint64_t id = fixture_turn(c, s, "hello there", &mine);
        recorder_entry r = recorder_get(id);
        assert_string_equal(r.done, "[turn 1] hello there");
        assert_true(r.pieces > 1);
        assert_ptr_equal(r.opaque, &mine); /* the last event's, DONE */
        assert_int_equal(r.seq_errors, 0);
        /* Without one, NULL. */
        uint64_t plain;
        assert_int_equal(parley_send(s, "again", &plain), PARLEY_OK);
        assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
        assert_null(recorder_get(plain).opaque);
        parley_client_destroy(c);
    }
    pl_refserver_stop(srv);
}

/* Export, import into a new session (another client), next turn: the same
 * reply as the unbroken session gives. */
static void test_export_import_continues(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 0);
    for (size_t p = 0; p < NPATHS; p++) {
        parley_client_t *c = fixture_client_dialect(srv, paths[p], NULL);
        parley_session_t *s = parley_session_open(c, "unbroken", NULL, 0);
        fixture_turn(c, s, "first", NULL);
        fixture_turn(c, s, "second \"quoted\"", NULL);
        char *json;
        size_t len;
        assert_int_equal(parley_session_export(s, &json, &len, 10000), PARLEY_OK);
        assert_int_equal(strlen(json), len);
        assert_string_equal(json, "[{\"role\":\"user\",\"content\":\"first\"},"
                                  "{\"role\":\"assistant\",\"content\":\"[turn 1] first\"},"
                                  "{\"role\":\"user\",\"content\":\"second \\\"quoted\\\"\"},"
                                  "{\"role\":\"assistant\",\"content\":\"[turn 2] second "
                                  "\\\"quoted\\\"\"}]");
        uint64_t unbroken = fixture_turn(c, s, "third", NULL);

        parley_client_t *c2 = fixture_client_dialect(srv, paths[p], NULL);
        char err[300];
        parley_session_t *moved =
            parley_session_open_with_history(c2, "moved", json, len, err, sizeof(err));
        assert_non_null(moved);
        uint64_t after = fixture_turn(c2, moved, "third", NULL);
        assert_string_equal(recorder_get(after).done, recorder_get(unbroken).done);
        assert_string_equal(recorder_get(after).done, "[turn 3] third");
        parley_free(json);

        /* A history the vendors would refuse is refused at the door. */
        const char *bad = "[{\"role\":\"user\",\"content\":\"\"}]";
        assert_null(
            parley_session_open_with_history(c2, "bad", bad, strlen(bad), err, sizeof(err)));
        assert_non_null(strstr(err, "end with an assistant"));
        parley_client_destroy(c2);
        parley_client_destroy(c);
    }
    pl_refserver_stop(srv);
}

/* history.max.turns keeps the last turns only: the server counts fewer. */
static void test_trim_by_turns(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 0);
    for (size_t p = 0; p < NPATHS; p++) {
        parley_client_t *c = fixture_client_dialect(srv, paths[p], NULL);
        parley_session_t *s = parley_session_open(c, "trimmed", NULL, 0);
        char err[256];
        assert_int_equal(parley_session_set(s, "history.max.turns", "1", err, sizeof(err)),
                         PARLEY_OK);
        fixture_turn(c, s, "one", NULL);
        fixture_turn(c, s, "two", NULL);
        uint64_t id = fixture_turn(c, s, "three", NULL);
        assert_string_equal(recorder_get(id).done, "[turn 2] three");
        assert_int_equal(parley_session_set(s, "history.max.turns", "many", err, sizeof(err)),
                         PARLEY_ERR_INVALID_VALUE);
        parley_client_destroy(c);
    }
    pl_refserver_stop(srv);
}

/* A turn cancelled before its first piece leaves nothing in the history:
 * the next turn is the conversation's first. */
static void test_cancelled_turn_not_in_history(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 400, 0, 0); /* first piece after 400 ms */
    for (size_t p = 0; p < NPATHS; p++) {
        parley_client_t *c = fixture_client_dialect(srv, paths[p], NULL);
        parley_session_t *s = parley_session_open(c, "cancelled", NULL, 0);
        uint64_t id;
        assert_int_equal(parley_send(s, "never mind", &id), PARLEY_OK);
        assert_int_equal(parley_cancel(s, id), PARLEY_OK);
        assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
        assert_string_equal(recorder_get(id).stop_reason, "cancelled");
        uint64_t next = fixture_turn(c, s, "hello", NULL);
        assert_int_equal(recorder_get(next).terminal, PARLEY_EVENT_DONE);
        assert_string_equal(recorder_get(next).done, "[turn 1] hello");
        char *json;
        assert_int_equal(parley_session_export(s, &json, NULL, 10000), PARLEY_OK);
        assert_string_equal(json, "[{\"role\":\"user\",\"content\":\"hello\"},"
                                  "{\"role\":\"assistant\",\"content\":\"[turn 1] hello\"}]");
        parley_free(json);
        parley_client_destroy(c);
    }
    pl_refserver_stop(srv);
}

/* Options a path cannot carry are refused when set, with a reason. */
static void test_options_refused_at_set_time(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 0);
    parley_client_t *openai = fixture_client_dialect(srv, "openai", NULL);
    parley_session_t *s = parley_session_open(openai, "opts", NULL, 0);
    char err[256];
    assert_int_equal(parley_session_set(s, "thinking.budget", "2048", err, sizeof(err)),
                     PARLEY_ERR_INVALID_VALUE);
    assert_non_null(strstr(err, "openai"));
    assert_int_equal(parley_session_set(s, "tools", "[{\"name\":\"x\"", err, sizeof(err)),
                     PARLEY_ERR_INVALID_VALUE);
    assert_non_null(strstr(err, "not valid JSON"));
    assert_int_equal(parley_session_set(s, "temprature", "1", err, sizeof(err)),
                     PARLEY_ERR_UNKNOWN_OPTION);
    assert_int_equal(parley_session_set(s, "top_p", "0.9", err, sizeof(err)), PARLEY_OK);
    parley_client_destroy(openai);

    /* A client-wide default the dialect cannot carry stops the client. */
    parley_conf_t *conf = parley_conf_new();
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", pl_refserver_port(srv));
    assert_int_equal(parley_conf_set(conf, "endpoint", url, err, sizeof(err)), PARLEY_OK);
    assert_int_equal(parley_conf_set(conf, "dialect", "anthropic", err, sizeof(err)), PARLEY_OK);
    assert_int_equal(parley_conf_set(conf, "thinking.budget", "100", err, sizeof(err)), PARLEY_OK);
    parley_conf_set_event_cb(conf, recorder_on_event, NULL);
    assert_null(parley_client_new(conf, err, sizeof(err)));
    assert_non_null(strstr(err, "1024"));
    parley_conf_destroy(conf);
    pl_refserver_stop(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_opaque_on_every_event, setup),
        cmocka_unit_test_setup(test_export_import_continues, setup),
        cmocka_unit_test_setup(test_trim_by_turns, setup),
        cmocka_unit_test_setup(test_cancelled_turn_not_in_history, setup),
        cmocka_unit_test_setup(test_options_refused_at_set_time, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
