/*
 * The reference server's timer queue (timer_queue.h) on a bare lws context
 * served by the test itself: due order and ties, cancelling, callbacks
 * that set and cancel timers, clearing, and a few thousand timers at once.
 * Timers wait at most tens of milliseconds and every service loop has a
 * deadline.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include <libwebsockets.h>

#include "timer_queue.h"

#define DEADLINE_US (5 * LWS_US_PER_SEC)
#define MANY 3000

/* One test's timers and what they saw. */
struct item {
    pl_rs_timer timer;
    int id;
    int fired;            /* times fire ran */
    lws_usec_t due;       /* when it was due, copied at set time */
    lws_usec_t fired_at;
    int reschedules;      /* set itself again this many times */
    struct item *cancel;  /* cancel this one when firing */
};

static struct lws_context *ctx;
static pl_rs_timer_queue queue;
static lws_sorted_usec_list_t watchdog;
static int order[MANY * 2];
static size_t nfired;

static int setup(void **state)
{
    struct lws_context_creation_info info;

    (void)state;
    lws_set_log_level(LLL_ERR, NULL);
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS; /* no listener */
    ctx = lws_create_context(&info);
    if (!ctx)
        return -1;
    pl_rs_timer_queue_init(&queue, ctx);
    nfired = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pl_rs_timer_queue_clear(&queue);
    lws_context_destroy(ctx);
    pl_rs_timer_queue_free(&queue);
    return 0;
}

static void on_fire(pl_rs_timer *t)
{
    struct item *it = pl_container_of(t, struct item, timer);

    it->fired++;
    it->fired_at = lws_now_usecs();
    if (nfired < MANY * 2)
        order[nfired] = it->id;
    nfired++;
    if (it->cancel)
        pl_rs_timer_cancel(&queue, &it->cancel->timer);
    if (it->reschedules > 0) {
        it->reschedules--;
        pl_rs_timer_set(&queue, &it->timer, on_fire, 1);
        it->due = it->timer.entry.due;
    }
    /* lws may fire timers before it polls, and then poll with nothing
     * left to wake it: have the loop return as soon as all have fired. */
    if (!pl_rs_timer_queue_len(&queue))
        lws_cancel_service(ctx);
}

static void set(struct item *it, unsigned ms)
{
    pl_rs_timer_set(&queue, &it->timer, on_fire, ms);
    it->due = it->timer.entry.due;
}

static void on_watchdog(lws_sorted_usec_list_t *sul)
{
    (void)sul; /* being due is its job: no poll waits past it */
}

/* Serve the context until the queue is empty (or the deadline). */
static void run_until_empty(void)
{
    lws_usec_t deadline = lws_now_usecs() + DEADLINE_US;

    lws_sul_schedule(ctx, 0, &watchdog, on_watchdog, DEADLINE_US);
    while (pl_rs_timer_queue_len(&queue) && lws_now_usecs() < deadline)
        lws_service(ctx, 0);
    lws_sul_cancel(&watchdog);
    assert_int_equal(pl_rs_timer_queue_len(&queue), 0);
}

/* Earlier first; the same delay in the order set; never before due. */
static void test_due_order_and_ties(void **state)
{
    struct item it[5] = {
        { .id = 0 }, { .id = 1 }, { .id = 2 }, { .id = 3 }, { .id = 4 },
    };
    const unsigned ms[5] = { 30, 10, 20, 10, 0 };
    const int want[5] = { 4, 1, 3, 2, 0 };
    int i;

    (void)state;
    for (i = 0; i < 5; i++)
        set(&it[i], ms[i]);
    /* Force the tie that same-delay timers set in the same microsecond
     * have: only it[1] can sit between their due times, so the heap stays
     * valid. The order they were set in decides. */
    it[3].timer.entry.due = it[1].timer.entry.due;
    it[3].due = it[1].due;
    assert_int_equal(pl_rs_timer_queue_len(&queue), 5);
    run_until_empty();
    assert_int_equal(nfired, 5);
    for (i = 0; i < 5; i++) {
        assert_int_equal(order[i], want[i]);
        assert_int_equal(it[i].fired, 1);
        assert_true(it[i].fired_at >= it[i].due);
        assert_int_equal(it[i].timer.entry.slot, 0);
    }
}

/* Cancelled timers never fire, wherever they sat; setting again moves. */
static void test_cancel_and_reset(void **state)
{
    struct item it[4] = { { .id = 0 }, { .id = 1 }, { .id = 2 }, { .id = 3 } };

    (void)state;
    set(&it[0], 5);
    set(&it[1], 10);
    set(&it[2], 15);
    set(&it[3], 20);
    pl_rs_timer_cancel(&queue, &it[0].timer);  /* the earliest */
    pl_rs_timer_cancel(&queue, &it[2].timer);  /* one inside */
    pl_rs_timer_cancel(&queue, &it[2].timer);  /* not pending: nothing */
    set(&it[3], 1);                            /* now the earliest */
    assert_int_equal(pl_rs_timer_queue_len(&queue), 2);
    run_until_empty();
    assert_int_equal(nfired, 2);
    assert_int_equal(order[0], 3);
    assert_int_equal(order[1], 1);
    assert_int_equal(it[0].fired + it[2].fired, 0);
}

/* A callback sets itself again (the pacing of pieces) and cancels a timer
 * due in the same round. */
static void test_callbacks_set_and_cancel(void **state)
{
    struct item pacer = { .id = 0, .reschedules = 3 };
    struct item victim = { .id = 1 }, killer = { .id = 2, .cancel = &victim };

    (void)state;
    set(&pacer, 2);
    set(&killer, 5);
    set(&victim, 5);
    victim.timer.entry.due = killer.timer.entry.due; /* a tie, as in the test above */
    run_until_empty();
    assert_int_equal(pacer.fired, 4);
    assert_int_equal(killer.fired, 1);
    assert_int_equal(victim.fired, 0);
    assert_true(pacer.fired_at >= pacer.due);
}

/* Clear forgets every timer; the queue works afterwards. */
static void test_clear(void **state)
{
    struct item it[3] = { { .id = 0 }, { .id = 1 }, { .id = 2 } };

    (void)state;
    set(&it[0], 1);
    set(&it[1], 2);
    pl_rs_timer_queue_clear(&queue);
    assert_int_equal(pl_rs_timer_queue_len(&queue), 0);
    assert_int_equal(it[0].timer.entry.slot + it[1].timer.entry.slot, 0);
    pl_rs_timer_cancel(&queue, &it[0].timer); /* harmless after clear */
    set(&it[2], 3);
    run_until_empty();
    assert_int_equal(nfired, 1);
    assert_int_equal(order[0], 2);
    assert_int_equal(it[0].fired + it[1].fired, 0);
}

/* Thousands at once, a third cancelled: each of the others fires once, in
 * due order. */
static void test_many(void **state)
{
    static struct item it[MANY];
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    size_t i, expected = 0;

    (void)state;
    memset(it, 0, sizeof it);
    for (i = 0; i < MANY; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        it[i].id = (int)i;
        set(&it[i], (unsigned)(rng >> 59)); /* 0-31 ms */
    }
    for (i = 0; i < MANY; i += 3)
        pl_rs_timer_cancel(&queue, &it[i].timer);
    for (i = 0; i < MANY; i++)
        expected += i % 3 != 0;
    assert_int_equal(pl_rs_timer_queue_len(&queue), expected);
    run_until_empty();
    assert_int_equal(nfired, expected);
    for (i = 0; i < MANY; i++)
        assert_int_equal(it[i].fired, i % 3 != 0);
    for (i = 1; i < nfired; i++) {
        const struct item *a = &it[order[i - 1]], *b = &it[order[i]];
        assert_true(a->due < b->due ||
                    (a->due == b->due && a->timer.entry.order < b->timer.entry.order));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_due_order_and_ties, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_and_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callbacks_set_and_cancel, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_clear, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
