/*
 * The pieces of the statistics document: the latency histogram (bucket
 * bounds, percentiles, concurrent recording), the JSON writer (structure,
 * escaping, locale-free fixed point) and the endpoint with credentials cut.
 */
#include <json-c/json.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "histogram.h"
#include "json_writer.h"
#include "safe_text.h"
#include "stats.h"

static void buckets_cover_every_value_tightly(void **state)
{
    (void)state;
    for (uint64_t v = 0; v < (1ull << 36); v = v < 4096 ? v + 1 : v + v / 7 + 1) {
        unsigned b = pl_histogram_bucket_of(v);
        uint64_t hi = pl_histogram_bucket_max(b);
        assert_true(hi >= v);
        /* The bucket below ends below v: each value has exactly one bucket. */
        if (b > 0)
            assert_true(pl_histogram_bucket_max(b - 1) < v);
        /* A bucket is at most 1/8 of its values wide. */
        assert_true(hi - v <= v / PL_HIST_SUB);
    }
    assert_int_equal(pl_histogram_bucket_of(UINT64_MAX), PL_HIST_BUCKETS - 1);
}

static void percentiles_of_a_known_distribution(void **state)
{
    (void)state;
    pl_histogram *h = calloc(1, sizeof(*h));
    for (uint64_t ms = 1; ms <= 1000; ms++)
        pl_histogram_record(h, ms * 1000);
    pl_histogram_snapshot s;
    pl_histogram_snapshot_take(h, &s);
    assert_int_equal(s.count, 1000);
    assert_int_equal(s.max_us, 1000000);
    uint64_t p50 = pl_histogram_percentile(&s, 0.5), p99 = pl_histogram_percentile(&s, 0.99);
    assert_true(p50 >= 500000 && p50 <= 500000 + 500000 / 8);
    assert_true(p99 >= 990000 && p99 <= 1000000);
    assert_int_equal(pl_histogram_percentile(&s, 1.0), 1000000);
    pl_histogram_snapshot empty = {0};
    assert_int_equal(pl_histogram_percentile(&empty, 0.5), 0);
    free(h);
}

#define THREADS 4
#define PER_THREAD 100000

static void *record_many(void *arg)
{
    for (uint64_t i = 0; i < PER_THREAD; i++)
        pl_histogram_record(arg, i % 5000);
    return NULL;
}

static void concurrent_recording_loses_nothing(void **state)
{
    (void)state;
    pl_histogram *h = calloc(1, sizeof(*h));
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, record_many, h), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    pl_histogram_snapshot s;
    pl_histogram_snapshot_take(h, &s);
    assert_int_equal(s.count, THREADS * PER_THREAD);
    assert_int_equal(s.max_us, 4999);
    free(h);
}

static void writer_builds_valid_json(void **state)
{
    (void)state;
    pl_json_writer w;
    pl_jw_init(&w);
    pl_jw_object(&w, NULL);
    pl_jw_str(&w, "quote\"key", "line\nbreak \"and\" \\ tab\t");
    pl_jw_u64(&w, "big", UINT64_MAX);
    pl_jw_i64(&w, "negative", -42);
    pl_jw_fixed(&w, "ms", 1234, 3);
    pl_jw_fixed(&w, "small", 7, 4);
    pl_jw_bool(&w, "yes", true);
    pl_jw_array(&w, "empty");
    pl_jw_end_array(&w);
    pl_jw_array(&w, "pairs");
    for (int i = 0; i < 3; i++) {
        pl_jw_array(&w, NULL);
        pl_jw_u64(&w, NULL, (uint64_t)i);
        pl_jw_object(&w, NULL);
        pl_jw_end_object(&w);
        pl_jw_end_array(&w);
    }
    pl_jw_end_array(&w);
    pl_jw_end_object(&w);
    assert_false(w.failed);
    json_object *doc = json_tokener_parse(w.out.data);
    assert_non_null(doc);
    json_object *v;
    assert_true(json_object_object_get_ex(doc, "quote\"key", &v));
    assert_string_equal(json_object_get_string(v), "line\nbreak \"and\" \\ tab\t");
    assert_true(json_object_object_get_ex(doc, "big", &v));
    assert_int_equal(json_object_get_uint64(v), UINT64_MAX);
    assert_true(json_object_object_get_ex(doc, "ms", &v));
    assert_true(json_object_get_double(v) == 1.234);
    assert_true(json_object_object_get_ex(doc, "small", &v));
    assert_true(json_object_get_double(v) == 0.0007);
    assert_true(json_object_object_get_ex(doc, "pairs", &v));
    assert_int_equal(json_object_array_length(v), 3);
    assert_non_null(strstr(w.out.data, "\"ms\":1.234,\"small\":0.0007,"));
    json_object_put(doc);
    pl_buf_free(&w.out);
}

static void writer_refuses_too_deep(void **state)
{
    (void)state;
    pl_json_writer w;
    pl_jw_init(&w);
    for (int i = 0; i < PL_JSON_MAX_DEPTH + 2; i++)
        pl_jw_array(&w, NULL);
    assert_true(w.failed);
    pl_buf_free(&w.out);
}

static void endpoint_without_credentials(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"ws://127.0.0.1:8080/v1/stream", "ws://127.0.0.1:8080/v1/stream"},
        {"wss://user:secret@example.com/v1/stream?key=abc#x", "wss://example.com/v1/stream"},
        {"https://api.example.com", "https://api.example.com"},
        {"http://token@host:1?x=@y", "http://host:1"},
        {"wss://user:p@ss@example.com/v1", "wss://example.com/v1"}, /* the last '@' */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[128];
        pl_safe_url(cases[i][0], out, sizeof(out));
        assert_string_equal(out, cases[i][1]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buckets_cover_every_value_tightly),
        cmocka_unit_test(percentiles_of_a_known_distribution),
        cmocka_unit_test(concurrent_recording_loses_nothing),
        cmocka_unit_test(writer_builds_valid_json),
        cmocka_unit_test(writer_refuses_too_deep),
        cmocka_unit_test(endpoint_without_credentials),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
