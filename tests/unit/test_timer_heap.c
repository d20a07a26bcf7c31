/*
 * The intrusive timer heap (src/timer_heap.h): due order with ties in the
 * order set, cancelling from the root, the middle and the last slot,
 * re-arming earlier and later, pop_due against the clock, clear, and
 * 100,000 timers set then cancelled in a shuffled order leaving nothing.
 * After every change the heap's order and each timer's slot are checked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "timer_heap.h"

#define MANY 100000

/* An owner, as a route or a reply embeds its timer. */
struct item {
    int id;
    pl_timer timer;
};

/* Every parent due no later than its children (ties: set no later), and
 * every timer knows its slot. */
static void check_heap(const pl_timer_heap *h)
{
    for (size_t i = 0; i < h->len; i++) {
        const pl_timer *t = h->items[i];
        assert_int_equal(t->slot, i + 1);
        if (i == 0)
            continue;
        const pl_timer *parent = h->items[(i - 1) / 2];
        assert_true(parent->due < t->due ||
                    (parent->due == t->due && parent->order < t->order));
    }
}

static int pop_id(pl_timer_heap *h, int64_t now)
{
    pl_timer *t = pl_timer_pop_due(h, now);
    if (!t)
        return -1;
    assert_false(pl_timer_pending(t));
    check_heap(h);
    return pl_container_of(t, struct item, timer)->id;
}

static void set(pl_timer_heap *h, struct item *it, int64_t due)
{
    pl_timer_set(h, &it->timer, due);
    assert_true(pl_timer_pending(&it->timer));
    check_heap(h);
}

/* Earlier first; the same due time in the order set, however the sifts
 * moved them. */
static void test_due_order_and_ties(void **state)
{
    (void)state;
    pl_timer_heap h = {0};
    struct item it[8];
    const int64_t due[8] = {30, 10, 20, 10, 5, 10, 20, 5};
    const int want[8] = {4, 7, 1, 3, 5, 2, 6, 0};
    for (int i = 0; i < 8; i++) {
        it[i] = (struct item){.id = i};
        set(&h, &it[i], due[i]);
    }
    assert_int_equal(pl_timer_heap_len(&h), 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(pop_id(&h, 100), want[i]);
    assert_null(pl_timer_first(&h));
    assert_int_equal(pop_id(&h, 100), -1);
    pl_timer_heap_free(&h);
}

/* Only what is due by now comes out; first() leaves it in. */
static void test_pop_due_waits_for_now(void **state)
{
    (void)state;
    pl_timer_heap h = {0};
    struct item a = {.id = 1}, b = {.id = 2};
    set(&h, &a, 50);
    set(&h, &b, 40);
    assert_int_equal(pop_id(&h, 39), -1);
    assert_ptr_equal(pl_timer_first(&h), &b.timer);
    assert_int_equal(pl_timer_heap_len(&h), 2);
    assert_int_equal(pop_id(&h, 40), 2);
    assert_int_equal(pop_id(&h, 49), -1);
    assert_int_equal(pop_id(&h, 1000), 1);
    pl_timer_heap_free(&h);
}

/* Cancelled timers never come out, wherever they sat: the root, one in
 * the middle, the last slot; cancelling again does nothing. */
static void test_cancel_root_middle_last(void **state)
{
    (void)state;
    pl_timer_heap h = {0};
    struct item it[15];
    for (int i = 0; i < 15; i++) {
        it[i] = (struct item){.id = i};
        set(&h, &it[i], 100 + (int64_t)(i * 7 % 15)); /* a shuffled order */
    }
    pl_timer *root = pl_timer_first(&h);
    struct item *gone_root = pl_container_of(root, struct item, timer);
    struct item *gone_last = pl_container_of(h.items[h.len - 1], struct item, timer);
    struct item *gone_middle = pl_container_of(h.items[4], struct item, timer);
    assert_int_equal(gone_middle->timer.slot, 5); /* a slot with children */

    pl_timer_cancel(&h, &gone_root->timer);
    check_heap(&h);
    pl_timer_cancel(&h, &gone_middle->timer);
    check_heap(&h);
    pl_timer_cancel(&h, &gone_last->timer);
    check_heap(&h);
    pl_timer_cancel(&h, &gone_middle->timer); /* not pending: nothing */
    check_heap(&h);
    assert_int_equal(pl_timer_heap_len(&h), 12);
    assert_false(pl_timer_pending(&gone_root->timer));
    assert_false(pl_timer_pending(&gone_middle->timer));
    assert_false(pl_timer_pending(&gone_last->timer));

    int64_t previous = INT64_MIN;
    for (int n = 0; n < 12; n++) {
        pl_timer *t = pl_timer_pop_due(&h, INT64_MAX);
        assert_non_null(t);
        struct item *owner = pl_container_of(t, struct item, timer);
        assert_true(owner != gone_root && owner != gone_middle && owner != gone_last);
        assert_true(t->due > previous);
        previous = t->due;
    }
    assert_int_equal(pl_timer_heap_len(&h), 0);
    pl_timer_heap_free(&h);
}

/* Setting a pending timer moves it, earlier or later, and never adds a
 * second entry; a re-armed timer goes behind those already set for the
 * same time. */
static void test_rearm_earlier_and_later(void **state)
{
    (void)state;
    pl_timer_heap h = {0};
    struct item a = {.id = 1}, b = {.id = 2}, c = {.id = 3};
    set(&h, &a, 10);
    set(&h, &b, 20);
    set(&h, &c, 30);
    set(&h, &a, 40); /* later: the root moves down */
    assert_int_equal(pl_timer_heap_len(&h), 3);
    assert_ptr_equal(pl_timer_first(&h), &b.timer);
    set(&h, &c, 5); /* earlier: a leaf moves up */
    assert_int_equal(pl_timer_heap_len(&h), 3);
    assert_ptr_equal(pl_timer_first(&h), &c.timer);
    set(&h, &c, 20); /* the same time as b, set after it */
    assert_int_equal(pop_id(&h, 100), 2);
    assert_int_equal(pop_id(&h, 100), 3);
    assert_int_equal(pop_id(&h, 100), 1);
    assert_int_equal(pop_id(&h, 100), -1);
    pl_timer_heap_free(&h);
}

/* Clear leaves every timer not pending and the heap usable. */
static void test_clear(void **state)
{
    (void)state;
    pl_timer_heap h = {0};
    struct item a = {.id = 1}, b = {.id = 2}, c = {.id = 3};
    set(&h, &a, 1);
    set(&h, &b, 2);
    pl_timer_heap_clear(&h);
    assert_int_equal(pl_timer_heap_len(&h), 0);
    assert_false(pl_timer_pending(&a.timer) || pl_timer_pending(&b.timer));
    pl_timer_cancel(&h, &a.timer); /* harmless after clear */
    set(&h, &c, 3);
    set(&h, &a, 4);
    assert_int_equal(pop_id(&h, 10), 3);
    assert_int_equal(pop_id(&h, 10), 1);
    assert_int_equal(pop_id(&h, 10), -1);
    pl_timer_heap_free(&h);
}

static uint64_t next_random(uint64_t *rng)
{
    *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
    return *rng >> 33;
}

/* The I/O thread's life: 100,000 requests each set a timer (some re-armed)
 * and cancel it when they end, in another order: nothing stays behind. */
static void test_many_set_then_cancelled(void **state)
{
    (void)state;
    pl_timer_heap h = {0};
    struct item *it = calloc(MANY, sizeof(*it));
    int *order = malloc(MANY * sizeof(*order));
    assert_non_null(it);
    assert_non_null(order);
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < MANY; i++) {
        it[i].id = i;
        order[i] = i;
        pl_timer_set(&h, &it[i].timer, (int64_t)(next_random(&rng) % 30000));
        if (i % 4 == 0) /* a piece came: re-armed later */
            pl_timer_set(&h, &it[i].timer, it[i].timer.due + 1000);
    }
    assert_int_equal(pl_timer_heap_len(&h), MANY);
    check_heap(&h);
    for (int i = MANY - 1; i > 0; i--) { /* Fisher-Yates */
        int j = (int)(next_random(&rng) % (uint64_t)(i + 1));
        int tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    for (int i = 0; i < MANY; i++) {
        pl_timer_cancel(&h, &it[order[i]].timer);
        if (i == MANY / 2)
            check_heap(&h);
    }
    assert_int_equal(pl_timer_heap_len(&h), 0);
    assert_null(pl_timer_first(&h));
    for (int i = 0; i < MANY; i++)
        assert_false(pl_timer_pending(&it[i].timer));
    pl_timer_heap_free(&h);
    free(order);
    free(it);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_due_order_and_ties),
        cmocka_unit_test(test_pop_due_waits_for_now),
        cmocka_unit_test(test_cancel_root_middle_last),
        cmocka_unit_test(test_rearm_earlier_and_later),
        cmocka_unit_test(test_clear),
        cmocka_unit_test(test_many_set_then_cancelled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
