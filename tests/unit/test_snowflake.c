/* Snowflake request ids: layout, uniqueness across threads, monotonicity. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "snowflake.h"

#define THREADS 8
#define PER_THREAD 50000

static uint64_t ids[THREADS][PER_THREAD];

static void *generate(void *arg)
{
    uint64_t *out = arg;
    for (int i = 0; i < PER_THREAD; i++)
        out[i] = pl_snowflake_next(7);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_unique_across_threads(void **state)
{
    (void)state;
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, generate, ids[i]), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    /* Each thread sees its own ids strictly increase. */
    for (int i = 0; i < THREADS; i++)
        for (int k = 1; k < PER_THREAD; k++)
            assert_true(ids[i][k] > ids[i][k - 1]);
    uint64_t *all = malloc(sizeof(ids));
    assert_non_null(all);
    for (int i = 0; i < THREADS; i++)
        for (int k = 0; k < PER_THREAD; k++)
            all[i * PER_THREAD + k] = ids[i][k];
    qsort(all, THREADS * PER_THREAD, sizeof(*all), cmp_u64);
    for (size_t k = 1; k < (size_t)THREADS * PER_THREAD; k++)
        assert_true(all[k] != all[k - 1]);
    free(all);
}

static void test_layout(void **state)
{
    (void)state;
    int64_t now = PL_SNOWFLAKE_EPOCH_MS + 86400000LL * 400; /* far ahead of the others */
    uint64_t id = pl_snowflake_next_at(513, now);
    assert_true(id >= 1 && id <= (uint64_t)INT64_MAX);
    assert_int_equal((id >> 12) & 1023, 513);
    assert_int_equal(id >> 22, (uint64_t)(now - PL_SNOWFLAKE_EPOCH_MS));
}

static void test_clock_steps_back(void **state)
{
    (void)state;
    int64_t now = PL_SNOWFLAKE_EPOCH_MS + 86400000LL * 500;
    uint64_t before = pl_snowflake_next_at(1, now);
    uint64_t after = pl_snowflake_next_at(1, now - 60000); /* a minute back */
    assert_true(after > before);
    /* It keeps the last timestamp rather than going back with the clock. */
    assert_int_equal(after >> 22, before >> 22);
}

static void test_sequence_overflow_borrows(void **state)
{
    (void)state;
    int64_t now = PL_SNOWFLAKE_EPOCH_MS + 86400000LL * 600;
    uint64_t prev = pl_snowflake_next_at(2, now);
    for (int i = 0; i < 10000; i++) { /* more than 4096 in one millisecond */
        uint64_t id = pl_snowflake_next_at(2, now);
        assert_true(id > prev);
        assert_int_equal((id >> 12) & 1023, 2);
        prev = id;
    }
    assert_true((prev >> 22) > (uint64_t)(now - PL_SNOWFLAKE_EPOCH_MS));
}

static void test_before_epoch_is_positive(void **state)
{
    (void)state;
    uint64_t id = pl_snowflake_next_at(0, 0); /* 1970 */
    assert_true(id >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unique_across_threads),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_clock_steps_back),
        cmocka_unit_test(test_sequence_overflow_borrows),
        cmocka_unit_test(test_before_epoch_is_positive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
