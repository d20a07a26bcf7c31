/*
 * A session handle after parley_session_close(): every call with it is safe,
 * also after the client is destroyed. Sends, options and cancels are refused
 * with PARLEY_ERR_STATE, closing again does nothing; once the session has
 * ended its memory is freed (the id reads NULL) and its handle never names
 * a later session; also when the close races sends from other threads (run
 * under ASan and TSan).
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "client.h"
#include "fixtures.h"
#include "parley.h"
#include "recorder.h"
#include "refserver.h"
#include "session_table.h"

#define TEST_KEY "test-key-0123456789"

static int setup(void **state)
{
    (void)state;
    recorder_reset();
    setenv("PARLEY_API_KEY", TEST_KEY, 1);
    return 0;
}

/* Wait (bounded) until no session of c is running any more: the closed
 * ones have handled their last message and freed their state. */
static bool wait_sessions_ended(parley_client_t *c, int seconds)
{
    int64_t deadline = fixture_now_ms() + seconds * 1000;
    while (atomic_load(&c->sessions_open) != 0) {
        if (fixture_now_ms() > deadline)
            return false;
        sched_yield();
    }
    return true;
}

/* Every call on a closed handle, whose session has ended. Before the fix,
 * the close freed the handle: ASan reported a heap use-after-free here. */
static void test_calls_after_close_are_refused(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 0);
    parley_client_t *c = fixture_client(pl_refserver_port(srv), NULL);
    parley_session_t *s = parley_session_open(c, "closed-one", NULL, 0);
    assert_non_null(s);
    uint64_t id;
    assert_int_equal(parley_send(s, "hello", &id), PARLEY_OK);
    parley_session_close(s);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    assert_string_equal(recorder_get(id).done, "[turn 1] hello"); /* accepted: completes */
    assert_true(wait_sessions_ended(c, 30));

    char err[128] = "";
    assert_int_equal(parley_send(s, "again", NULL), PARLEY_ERR_STATE);
    assert_int_equal(parley_send_wait(s, "again", NULL, 100), PARLEY_ERR_STATE);
    assert_int_equal(parley_session_set(s, "model", "m", err, sizeof(err)), PARLEY_ERR_STATE);
    assert_non_null(strstr(err, "closed"));
    assert_int_equal(parley_cancel(s, id), PARLEY_ERR_STATE);
    parley_session_close(s); /* twice: nothing happens */
    parley_session_close(s);
    assert_null(parley_session_id(s)); /* ended: its memory is gone */
    assert_int_equal(recorder_terminals(), 1);
    parley_client_destroy(c);
    /* The handle outlives the client too. */
    assert_int_equal(parley_send(s, "after destroy", NULL), PARLEY_ERR_STATE);
    assert_int_equal(parley_cancel(s, id), PARLEY_ERR_STATE);
    parley_session_close(s);
    pl_refserver_stop(srv);
}

/* A session that ended gives its slot to a later one: the old handle
 * still resolves to nothing, and sessions opened and closed without end
 * keep the table at the peak of sessions alive at once. Before handles
 * were slots, each closed session stayed allocated until destroy (the
 * soak's RSS grew by about 53 bytes a request). */
#define CHURN_ROUNDS 20
#define CHURN_SESSIONS 100

static void test_ended_sessions_free_their_slots(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 0);
    parley_client_t *c = fixture_client(pl_refserver_port(srv), NULL);
    parley_session_t *old = parley_session_open(c, "old", NULL, 0);
    assert_non_null(old);
    parley_session_close(old);
    assert_true(wait_sessions_ended(c, 30));
    size_t slots_before = pl_session_table_capacity();

    parley_session_t *later = parley_session_open(c, "later", NULL, 0);
    assert_non_null(later);
    assert_ptr_not_equal(later, old);
    assert_null(parley_session_id(old));
    assert_string_equal(parley_session_id(later), "later");
    assert_int_equal(parley_send(old, "stale", NULL), PARLEY_ERR_STATE);
    parley_session_close(old); /* must not close the later session */
    uint64_t id;
    assert_int_equal(parley_send(later, "fresh", &id), PARLEY_OK);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    assert_string_equal(recorder_get(id).done, "[turn 1] fresh");
    parley_session_close(later);

    for (int round = 0; round < CHURN_ROUNDS; round++) {
        parley_session_t *s[CHURN_SESSIONS];
        for (int i = 0; i < CHURN_SESSIONS; i++) {
            s[i] = parley_session_open(c, NULL, NULL, 0);
            assert_non_null(s[i]);
            assert_int_equal(parley_send(s[i], "churn", NULL), PARLEY_OK);
            parley_session_close(s[i]);
        }
        assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
        assert_true(wait_sessions_ended(c, 30));
    }
    assert_int_equal(recorder_terminals(), 1 + CHURN_ROUNDS * CHURN_SESSIONS);
    size_t slots_after = pl_session_table_capacity();
    print_message("table slots: %zu before, %zu after %d sessions\n", slots_before,
                  slots_after, CHURN_ROUNDS * CHURN_SESSIONS);
    assert_true(slots_after <= slots_before + CHURN_SESSIONS);
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

/* Closing twice at once, with a turn in flight: the turn still ends once. */
static void test_close_twice_with_a_turn_in_flight(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 200, 0, 0);
    parley_client_t *c = fixture_client(pl_refserver_port(srv), NULL);
    parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
    uint64_t id;
    assert_int_equal(parley_send(s, "in flight", &id), PARLEY_OK);
    parley_session_close(s);
    parley_session_close(s);
    assert_int_equal(parley_send(s, "refused", NULL), PARLEY_ERR_STATE);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    recorder_entry r = recorder_get(id);
    assert_int_equal(r.terminals, 1);
    assert_string_equal(r.done, "[turn 1] in flight");
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

/* A closed session's unfinished turn can still be cancelled. */
static void test_cancel_after_close_reaches_the_turn(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 20000, 0, 0); /* no reply for 20 s */
    parley_client_t *c = fixture_client(pl_refserver_port(srv), NULL);
    parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
    uint64_t id;
    assert_int_equal(parley_send(s, "slow", &id), PARLEY_OK);
    parley_session_close(s);
    assert_int_equal(parley_cancel(s, id), PARLEY_OK);
    assert_int_equal(parley_flush(c, 15000), PARLEY_OK);
    recorder_entry r = recorder_get(id);
    assert_int_equal(r.terminals, 1);
    assert_string_equal(r.stop_reason, "cancelled");
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

#define RACE_THREADS 4
#define RACE_ROUNDS 50
#define RACE_SENDS 10

typedef struct race {
    parley_session_t *session;
    atomic_bool go;
    atomic_int accepted, other;
} race;

/* Up to RACE_SENDS sends, from when the race starts until one is refused. */
static void *send_until_refused(void *arg)
{
    race *r = arg;
    while (!atomic_load(&r->go))
        sched_yield();
    for (int i = 0; i < RACE_SENDS; i++) {
        parley_err_t err = parley_send(r->session, "race", NULL);
        if (err == PARLEY_OK) {
            atomic_fetch_add(&r->accepted, 1);
        } else {
            if (err != PARLEY_ERR_STATE)
                atomic_fetch_add(&r->other, 1);
            break;
        }
    }
    return NULL;
}

/* Sends from several threads while another closes: each is accepted (and
 * ends with one terminal event) or refused, never lost, never a crash. */
static void test_close_races_sends(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 0);
    parley_client_t *c = fixture_client(pl_refserver_port(srv), NULL);
    int accepted = 0;
    for (int round = 0; round < RACE_ROUNDS; round++) {
        race r = {.session = parley_session_open(c, NULL, NULL, 0)};
        assert_non_null(r.session);
        pthread_t t[RACE_THREADS];
        for (int i = 0; i < RACE_THREADS; i++)
            assert_int_equal(pthread_create(&t[i], NULL, send_until_refused, &r), 0);
        atomic_store(&r.go, true);
        /* Close while the senders are at it: after the first accepted. */
        int64_t deadline = fixture_now_ms() + 10000;
        while (atomic_load(&r.accepted) == 0 && fixture_now_ms() < deadline)
            sched_yield();
        parley_session_close(r.session);
        for (int i = 0; i < RACE_THREADS; i++)
            pthread_join(t[i], NULL);
        assert_int_equal(atomic_load(&r.other), 0);
        assert_int_equal(parley_send(r.session, "late", NULL), PARLEY_ERR_STATE);
        accepted += atomic_load(&r.accepted);
    }
    assert_int_equal(parley_flush(c, 60000), PARLEY_OK);
    assert_int_equal(recorder_terminals(), (size_t)accepted);
    assert_int_equal(recorder_requests_with_extra_terminals(), 0);
    assert_true(wait_sessions_ended(c, 30));
    print_message("%d of %d sends accepted before the close won\n", accepted,
                  RACE_ROUNDS * RACE_THREADS * RACE_SENDS);
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_calls_after_close_are_refused, setup),
        cmocka_unit_test_setup(test_close_twice_with_a_turn_in_flight, setup),
        cmocka_unit_test_setup(test_cancel_after_close_reaches_the_turn, setup),
        cmocka_unit_test_setup(test_close_races_sends, setup),
        cmocka_unit_test_setup(test_ended_sessions_free_their_slots, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
