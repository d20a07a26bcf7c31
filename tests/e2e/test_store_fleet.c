/*
 * Processes sharing a session store (docs/cluster.md), each a store_worker
 * child driving conversations "conv-N" of turns "conv N turn K" against the
 * in-process reference server, whose echo model answers turn K of a
 * conversation "[turn K] conv N turn K" from the history it is sent. At the
 * end every conversation's history in the store must be exactly that
 * transcript: a turn lost, doubled or out of order shows.
 *   - three processes share 300 conversations; one is killed (SIGKILL)
 *     mid-run and the other two take its conversations over;
 *   - the store (appendonly) is restarted mid-run;
 *   - an owner paused (SIGSTOP) past its lease cannot overwrite its
 *     successor's history when it wakes up.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>

#include "fixtures.h"
#include "parley.h"
#include "piped_child.h"
#include "recorder.h"
#include "redis_server.h"
#include "refserver.h"

#define TEST_KEY "store-fleet-key"
#define TURNS 10
#define LEASE_MS "1500"
/* Bounds on the waits of the test: failures, not hangs. */
#define LINE_WAIT_MS 120000
#define EXIT_WAIT_MS 120000

static redis_server *redis;
static pl_refserver *srv;
static char endpoint[96];

static int setup(void **state)
{
    (void)state;
    setenv("PARLEY_API_KEY", TEST_KEY, 1);
    recorder_reset();
    static const char *const appendonly[] = {"--appendonly", "yes", "--appendfsync", "always",
                                             NULL};
    redis = redis_server_start(appendonly);
    /* Replies take 200 ms, so that a kill finds a turn in flight in each
     * of the process's conversations. */
    srv = fixture_server(TEST_KEY, 200, 2, 0);
    snprintf(endpoint, sizeof(endpoint), "ws://127.0.0.1:%d/v1/stream",
             pl_refserver_port(srv));
    return redis ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    redis_server_free(redis);
    pl_refserver_stop(srv);
    return 0;
}

/* A store_worker with worker id `worker` (request ids must not collide
 * between the processes of a fleet). */
static void worker_start(piped_child *w, int worker, int turns)
{
    static char env_key[64], env_worker[8][32];
    snprintf(env_key, sizeof(env_key), "PARLEY_API_KEY=%s", TEST_KEY);
    snprintf(env_worker[worker], sizeof(env_worker[worker]), "PARLEY_WORKER_ID=%d", worker);
    const char *env[] = {env_key, env_worker[worker], NULL};
    const char *bin = getenv("STORE_WORKER_BIN") ? getenv("STORE_WORKER_BIN")
                                                 : "tests/e2e/store_worker";
    char turns_arg[8];
    snprintf(turns_arg, sizeof(turns_arg), "%d", turns);
    char *argv[] = {(char *)bin, (char *)redis_server_url(redis), endpoint, turns_arg,
                    LEASE_MS, NULL};
    piped_child_start(w, env, argv);
}

/* Wait until the worker has reported at least n completed turns. */
static void wait_progress(piped_child *w, int n)
{
    char line[128];
    int progress = 0;
    while (progress < n) {
        if (!piped_child_line(w, line, sizeof(line), LINE_WAIT_MS)) {
            piped_child_show_stderr(w);
            fail_msg("no progress line past %d turns", progress);
        }
        sscanf(line, "progress %d", &progress);
    }
}

/* Tell the worker to finish and wait for its end; returns its exit status
 * and its count of recovered turns. */
static int worker_finish(piped_child *w, int *recovered)
{
    piped_child_say(w, "finish");
    char line[128];
    int turns = -1;
    *recovered = -1;
    while (piped_child_line(w, line, sizeof(line), LINE_WAIT_MS))
        if (sscanf(line, "done %d %d", &turns, recovered) == 2)
            break;
    int status = piped_child_wait(w, EXIT_WAIT_MS);
    if (status != 0)
        piped_child_show_stderr(w);
    return status;
}

/* The transcript the echo model makes of conversation n. */
static void transcript(char *out, size_t size, int n, int turns)
{
    size_t at = (size_t)snprintf(out, size, "[");
    for (int k = 1; k <= turns; k++)
        at += (size_t)snprintf(out + at, size - at,
                               "%s{\"role\":\"user\",\"content\":\"conv %d turn %d\"},"
                               "{\"role\":\"assistant\",\"content\":\"[turn %d] conv %d turn %d\"}",
                               k > 1 ? "," : "", n, k, k, n, k);
    snprintf(out + at, size - at, "]");
}

/* Every conversation first..first+count-1 in the store is its transcript. */
static void check_store(int first, int count, int turns)
{
    parley_client_t *c = fixture_client_url(endpoint, "session.store", redis_server_url(redis),
                                            "session.lease.wait.ms", "30000", NULL);
    char id[32], want[4096];
    for (int n = first; n < first + count; n++) {
        snprintf(id, sizeof(id), "conv-%d", n);
        parley_session_t *s = parley_session_open(c, id, NULL, 0);
        uint64_t recovered;
        assert_int_equal(parley_session_ready(s, 30000, &recovered), PARLEY_OK);
        /* Every worker finished its turns: none is left in flight. */
        assert_int_equal(recovered, 0);
        char *json;
        assert_int_equal(parley_session_export(s, &json, NULL, 30000), PARLEY_OK);
        transcript(want, sizeof(want), n, turns);
        if (strcmp(json, want))
            fail_msg("%s in the store:\n%s\nwanted:\n%s", id, json, want);
        parley_free(json);
        parley_session_close(s);
    }
    parley_client_destroy(c);
}

static void test_a_killed_process_is_taken_over(void **state)
{
    (void)state;
    piped_child w[3];
    char take[64];
    for (int i = 0; i < 3; i++) {
        worker_start(&w[i], i + 1, TURNS);
        snprintf(take, sizeof(take), "take %d 100", i * 100);
        piped_child_say(&w[i], take);
    }
    /* A third of its turns done, the third process dies with turns in
     * flight (each of its 100 conversations has one at any time). */
    wait_progress(&w[2], 300);
    piped_child_signal(&w[2], SIGKILL);
    assert_int_equal(piped_child_wait(&w[2], EXIT_WAIT_MS), 128 + SIGKILL);
    piped_child_say(&w[0], "take 200 50");
    piped_child_say(&w[1], "take 250 50");
    int recovered[2];
    assert_int_equal(worker_finish(&w[0], &recovered[0]), 0);
    assert_int_equal(worker_finish(&w[1], &recovered[1]), 0);
    print_message("turns the killed process left in flight, finished by the others: %d + %d\n",
                  recovered[0], recovered[1]);
    /* Its conversations each had a turn in flight, nearly all recorded as
     * such (a few were between a save and the next record). */
    assert_true(recovered[0] + recovered[1] > 0);
    for (int i = 0; i < 3; i++)
        piped_child_free(&w[i]);
    check_store(0, 300, TURNS);
}

static void test_store_restarted_mid_run(void **state)
{
    (void)state;
    piped_child w;
    worker_start(&w, 1, TURNS);
    piped_child_say(&w, "take 0 100");
    wait_progress(&w, 300);
    assert_int_equal(redis_server_stop(redis), 0);
    assert_int_equal(redis_server_restart(redis), 0);
    int recovered;
    assert_int_equal(worker_finish(&w, &recovered), 0);
    assert_int_equal(recovered, 0);
    piped_child_free(&w);
    check_store(0, 100, TURNS);
}

/* Whether conversation id has a turn recorded as in flight. */
static bool has_pending(redisContext *r, const char *id)
{
    redisReply *reply = redisCommand(r, "EXISTS parley:{%s}:pending", id);
    assert_non_null(reply);
    bool exists = reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
    freeReplyObject(reply);
    return exists;
}

static void test_a_paused_owner_cannot_overwrite(void **state)
{
    (void)state;
    /* Replies of about 2 s, so that the owner is paused mid-turn. */
    pl_refserver_stop(srv);
    srv = fixture_server(TEST_KEY, 2000, 0, 0);
    snprintf(endpoint, sizeof(endpoint), "ws://127.0.0.1:%d/v1/stream",
             pl_refserver_port(srv));
    redisContext *r = redisConnect("127.0.0.1", redis_server_port(redis));
    assert_true(r && !r->err);

    piped_child old_owner, successor;
    worker_start(&old_owner, 1, 3);
    piped_child_say(&old_owner, "take 900 1");
    int64_t deadline = fixture_now_ms() + LINE_WAIT_MS;
    while (!has_pending(r, "conv-900") && fixture_now_ms() < deadline)
        fixture_pause_ms(10); /* sampling another process's state */
    assert_true(has_pending(r, "conv-900"));
    piped_child_signal(&old_owner, SIGSTOP);

    /* The successor waits for the lease, finishes the paused turn under its
     * request id, then the conversation. */
    worker_start(&successor, 2, 3);
    piped_child_say(&successor, "take 900 1");
    int recovered;
    assert_int_equal(worker_finish(&successor, &recovered), 0);
    assert_int_equal(recovered, 1);

    /* Woken, the old owner's reply arrives, and its save is refused. */
    piped_child_signal(&old_owner, SIGCONT);
    int old_recovered;
    assert_int_equal(worker_finish(&old_owner, &old_recovered), 1);
    piped_child_free(&old_owner);
    piped_child_free(&successor);
    redisFree(r);
    check_store(900, 1, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_killed_process_is_taken_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_restarted_mid_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_paused_owner_cannot_overwrite, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
