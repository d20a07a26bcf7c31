/*
 * Sessions kept in a session store (docs/cluster.md), against a real
 * redis-server of the test's own and the in-process reference server: the
 * history survives the client, a session has one owner at a time, waiting
 * for an owner to finish, a store that comes up late or never, and
 * `parley chat --store` continuing a conversation in another process.
 */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <cmocka.h>

#include "child.h"
#include "fixtures.h"
#include "parley.h"
#include "recorder.h"
#include "redis_server.h"
#include "refserver.h"

#define TEST_KEY "store-sessions-key"

static redis_server *redis;
static pl_refserver *srv;

static int setup(void **state)
{
    (void)state;
    setenv("PARLEY_API_KEY", TEST_KEY, 1);
    recorder_reset();
    redis = redis_server_start(NULL);
    srv = fixture_server(TEST_KEY, 0, 0, 0);
    return redis ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    redis_server_free(redis);
    pl_refserver_stop(srv);
    return 0;
}

/* A started native client of srv on the test's store, with one more
 * property `name` (NULL: none). */
static parley_client_t *store_client(const char *name, const char *value)
{
    char url[96];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/v1/stream", pl_refserver_port(srv));
    return fixture_client_url(url, "session.store", redis_server_url(redis), "session.lease.ms",
                              "1500", name, value, NULL);
}

/* The history of session id, as export writes it. */
static char *history_of(parley_session_t *s)
{
    char *json;
    assert_int_equal(parley_session_export(s, &json, NULL, 10000), PARLEY_OK);
    return json;
}

/* A turn sent and awaited: its DONE's content, which must be `want`. */
static void turn_done(parley_client_t *c, parley_session_t *s, const char *text,
                      const char *want)
{
    uint64_t id = fixture_turn(c, s, text, NULL);
    recorder_entry r = recorder_get(id);
    if (r.terminal != PARLEY_EVENT_DONE)
        fail_msg("turn \"%s\": %s (%s)", text, r.err_msg, parley_err2name(r.err));
    assert_string_equal(r.done, want);
}

static void test_history_outlives_the_client(void **state)
{
    (void)state;
    parley_client_t *a = store_client(NULL, NULL);
    parley_session_t *s = parley_session_open(a, "trip-7", NULL, 0);
    assert_int_equal(parley_session_ready(s, 10000, NULL), PARLEY_OK);
    turn_done(a, s, "hello", "[turn 1] hello");
    turn_done(a, s, "and tomorrow?", "[turn 2] and tomorrow?");
    parley_session_close(s);
    parley_client_destroy(a);

    /* Another client (another owner) goes on from the store. */
    parley_client_t *b = store_client(NULL, NULL);
    s = parley_session_open(b, "trip-7", NULL, 0);
    uint64_t recovered = 1;
    assert_int_equal(parley_session_ready(s, 10000, &recovered), PARLEY_OK);
    assert_int_equal(recovered, 0);
    char *json = history_of(s);
    assert_string_equal(json, "[{\"role\":\"user\",\"content\":\"hello\"},"
                              "{\"role\":\"assistant\",\"content\":\"[turn 1] hello\"},"
                              "{\"role\":\"user\",\"content\":\"and tomorrow?\"},"
                              "{\"role\":\"assistant\",\"content\":\"[turn 2] and tomorrow?\"}]");
    parley_free(json);
    turn_done(b, s, "thanks", "[turn 3] thanks");
    parley_session_close(s);
    parley_client_destroy(b);
}

static void test_a_session_has_one_owner(void **state)
{
    (void)state;
    parley_client_t *a = store_client(NULL, NULL);
    parley_client_t *b = store_client(NULL, NULL);
    parley_session_t *sa = parley_session_open(a, "owned-1", NULL, 0);
    assert_int_equal(parley_session_ready(sa, 10000, NULL), PARLEY_OK);
    turn_done(a, sa, "mine", "[turn 1] mine");

    /* b does not wait (session.lease.wait.ms 0): refused at once, and so is
     * every turn it sends. */
    parley_session_t *sb = parley_session_open(b, "owned-1", NULL, 0);
    assert_int_equal(parley_session_ready(sb, 10000, NULL), PARLEY_ERR_SESSION_OWNED);
    uint64_t id = fixture_turn(b, sb, "theirs", NULL);
    recorder_entry r = recorder_get(id);
    assert_int_equal(r.terminal, PARLEY_EVENT_ERROR);
    assert_int_equal(r.err, PARLEY_ERR_SESSION_OWNED);
    assert_non_null(strstr(r.err_msg, "owned-1"));
    parley_session_close(sb);

    /* a's history is untouched, and a goes on. */
    turn_done(a, sa, "still mine", "[turn 2] still mine");
    parley_session_close(sa);
    parley_client_destroy(a);
    parley_client_destroy(b);
}

static void test_waiting_for_the_owner(void **state)
{
    (void)state;
    parley_client_t *a = store_client(NULL, NULL);
    parley_client_t *b = store_client("session.lease.wait.ms", "20000");
    parley_session_t *sa = parley_session_open(a, "handover", NULL, 0);
    assert_int_equal(parley_session_ready(sa, 10000, NULL), PARLEY_OK);
    turn_done(a, sa, "first", "[turn 1] first");

    /* b's turn waits while a holds the session... */
    parley_session_t *sb = parley_session_open(b, "handover", NULL, 0);
    uint64_t id;
    assert_int_equal(parley_send(sb, "second", &id), PARLEY_OK);
    assert_int_equal(parley_session_ready(sb, 300, NULL), PARLEY_ERR_TIMED_OUT);
    assert_false(recorder_get(id).found);
    /* ...and goes on from a's history once a closes it. */
    parley_session_close(sa);
    assert_int_equal(parley_session_ready(sb, 20000, NULL), PARLEY_OK);
    assert_true(recorder_wait_terminals(2, 30) >= 2);
    recorder_entry r = recorder_get(id);
    assert_int_equal(r.terminal, PARLEY_EVENT_DONE);
    assert_string_equal(r.done, "[turn 2] second");
    parley_session_close(sb);
    parley_client_destroy(a);
    parley_client_destroy(b);
}

/* A closed session gives its lease back also when its last turn failed
 * before it was sent (here: too large with its framing), after the close:
 * the store is paused until the turn and the close are in, so the turn is
 * started (and fails) only once the history has come. */
static void test_lease_given_back_after_a_local_failure(void **state)
{
    (void)state;
    parley_client_t *a = store_client("max.message.bytes", "1024");
    redis_server_pause(redis);
    parley_session_t *s = parley_session_open(a, "local-fail", NULL, 0);
    char big[1001];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    uint64_t id;
    assert_int_equal(parley_send(s, big, &id), PARLEY_OK);
    parley_session_close(s);
    redis_server_resume(redis);
    assert_true(recorder_wait_terminals(1, 30) >= 1);
    assert_int_equal(recorder_get(id).err, PARLEY_ERR_TOO_LARGE);

    /* Another owner waits less than the lease's 1.5 s: only a lease given
     * back lets it in (a kept one is renewed, a forgotten one expires too
     * late). */
    parley_client_t *b = store_client("session.lease.wait.ms", "1000");
    parley_session_t *sb = parley_session_open(b, "local-fail", NULL, 0);
    parley_err_t got = parley_session_ready(sb, 10000, NULL);
    assert_int_equal(got, PARLEY_OK);
    parley_session_close(sb);
    parley_client_destroy(a);
    parley_client_destroy(b);
}

static void test_store_late_and_never(void **state)
{
    (void)state;
    assert_int_equal(redis_server_stop(redis), 0);
    /* Down at start: the turn waits, and completes once the store is up. */
    parley_client_t *c = store_client("session.store.wait.ms", "30000");
    parley_session_t *s = parley_session_open(c, "late", NULL, 0);
    uint64_t id;
    assert_int_equal(parley_send(s, "patience", &id), PARLEY_OK);
    assert_int_equal(parley_session_ready(s, 500, NULL), PARLEY_ERR_TIMED_OUT);
    assert_false(recorder_get(id).found);
    assert_int_equal(redis_server_restart(redis), 0);
    assert_int_equal(parley_session_ready(s, 30000, NULL), PARLEY_OK);
    assert_true(recorder_wait_terminals(1, 30) >= 1);
    recorder_entry r = recorder_get(id);
    assert_int_equal(r.terminal, PARLEY_EVENT_DONE);
    assert_string_equal(r.done, "[turn 1] patience");
    parley_session_close(s);
    parley_client_destroy(c);

    /* Never up: the session fails with the store's error within its wait. */
    assert_int_equal(redis_server_stop(redis), 0);
    c = store_client("session.store.wait.ms", "1000");
    s = parley_session_open(c, "never", NULL, 0);
    assert_int_equal(parley_send(s, "hello?", &id), PARLEY_OK);
    int64_t start = fixture_now_ms();
    assert_int_equal(parley_session_ready(s, 20000, NULL), PARLEY_ERR_STORE);
    assert_true(fixture_now_ms() - start < 15000);
    assert_true(recorder_wait_terminals(2, 30) >= 2);
    r = recorder_get(id);
    assert_int_equal(r.terminal, PARLEY_EVENT_ERROR);
    assert_int_equal(r.err, PARLEY_ERR_STORE);
    parley_session_close(s);
    parley_client_destroy(c);
    assert_int_equal(redis_server_restart(redis), 0);
}

static void test_bad_store_settings(void **state)
{
    (void)state;
    parley_conf_t *conf = parley_conf_new();
    char err[512];
    assert_int_equal(parley_conf_set(conf, "session.store", "mysql://x", err, sizeof(err)),
                     PARLEY_ERR_INVALID_VALUE);
    assert_non_null(strstr(err, "redis://"));
    /* A password in the URL is refused, and not repeated in the message. */
    assert_int_equal(parley_conf_set(conf, "session.store", "redis://app:s3cr3t-pw@host:6379",
                                     err, sizeof(err)),
                     PARLEY_ERR_INVALID_VALUE);
    assert_null(strstr(err, "s3cr3t-pw"));
    assert_non_null(strstr(err, "session.store.password"));
    parley_conf_destroy(conf);
}

/* parley chat --store: two runs, two processes, one conversation. */
static void test_chat_continues_from_the_store(void **state)
{
    (void)state;
    char endpoint[96], store[96], key[64];
    snprintf(endpoint, sizeof(endpoint), "PARLEY_ENDPOINT=ws://127.0.0.1:%d/v1/stream",
             pl_refserver_port(srv));
    snprintf(store, sizeof(store), "%s", redis_server_url(redis));
    snprintf(key, sizeof(key), "PARLEY_API_KEY=%s", TEST_KEY);
    const char *env[] = {endpoint, key, NULL};
    const char *bin = getenv("PARLEY_BIN") ? getenv("PARLEY_BIN") : "./parley";
    char *first[] = {(char *)bin, "chat", "--store", store, "--session", "cli-1", "hello", NULL};
    child_result r;
    child_run(&r, "/tmp", NULL, false, env, first);
    if (r.status != 0)
        fail_msg("parley chat: status %d: %s", r.status, r.err);
    assert_string_equal(r.out, "[turn 1] hello\n");
    char *second[] = {(char *)bin, "chat", "--store", store, "--session", "cli-1",
                      "and tomorrow?", NULL};
    child_run(&r, "/tmp", NULL, false, env, second);
    if (r.status != 0)
        fail_msg("parley chat: status %d: %s", r.status, r.err);
    assert_string_equal(r.out, "[turn 2] and tomorrow?\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_history_outlives_the_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_session_has_one_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waiting_for_the_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_given_back_after_a_local_failure, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_late_and_never, setup, teardown),
        cmocka_unit_test(test_bad_store_settings),
        cmocka_unit_test_setup_teardown(test_chat_continues_from_the_store, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
