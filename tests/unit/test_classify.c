/*
 * The one decision on retrying a failed request (engine/classify.c), rule by
 * rule, for every kind of failure the three paths report.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "classify.h"

/* should_retry: the header's value, -1 when absent, 0 false, 1 true. */
static bool refused(long status, bool upgrade, int should_retry)
{
    pl_failure f = {.kind = PL_FAIL_REFUSED, .status = status, .upgrade = upgrade,
                    .should_retry = should_retry < 0   ? PL_ADVICE_NONE
                                    : should_retry ? PL_ADVICE_YES
                                                   : PL_ADVICE_NO};
    return pl_failure_retryable(&f);
}

/* Statuses: 408, 409, 429 and 5xx (529 included) are worth another try;
 * the other 4xx say the request itself is wrong. */
static void test_statuses(void **state)
{
    (void)state;
    static const long again[] = {408, 409, 429, 500, 502, 503, 504, 529};
    static const long never[] = {400, 401, 403, 404, 413, 422};
    for (size_t i = 0; i < sizeof(again) / sizeof(again[0]); i++) {
        assert_true(pl_status_retryable(again[i]));
        assert_true(refused(again[i], false, -1));
    }
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
        assert_false(pl_status_retryable(never[i]));
        assert_false(refused(never[i], false, -1));
        assert_false(refused(never[i], true, -1));
    }
}

/* A WebSocket upgrade answered 409 is a refusal for good, unlike a
 * request's conflict; the other retryable statuses hold for both. */
static void test_upgrade_409(void **state)
{
    (void)state;
    assert_false(refused(409, true, -1));
    assert_true(refused(409, false, -1));
    assert_true(refused(503, true, -1));
    assert_true(refused(429, true, -1));
}

/* The vendor's x-should-retry header wins over the status either way. */
static void test_should_retry_wins(void **state)
{
    (void)state;
    assert_false(refused(503, false, 0));
    assert_true(refused(400, false, 1));
    assert_true(refused(409, true, 1));
}

/* A server's error message: only a transient one, and only before the
 * reply started (acked on the native protocol, a piece over HTTP). */
static void test_server_errors(void **state)
{
    (void)state;
    static const parley_err_t transient[] = {PARLEY_ERR_RATE_LIMITED, PARLEY_ERR_OVERLOADED,
                                             PARLEY_ERR_SERVER_INTERNAL};
    static const parley_err_t final[] = {PARLEY_ERR_INVALID_REQUEST, PARLEY_ERR_UNAUTHORIZED,
                                         PARLEY_ERR_SERVER_TOO_LARGE, PARLEY_ERR_RESUME_FAILED,
                                         PARLEY_ERR_PROTOCOL};
    for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++) {
        pl_failure f = {.kind = PL_FAIL_SERVER, .err = transient[i]};
        assert_true(pl_failure_retryable(&f));
        f.started = true;
        assert_false(pl_failure_retryable(&f));
    }
    for (size_t i = 0; i < sizeof(final) / sizeof(final[0]); i++) {
        pl_failure f = {.kind = PL_FAIL_SERVER, .err = final[i]};
        assert_false(pl_failure_retryable(&f));
    }
}

/* A lost connection: the native protocol resumes a started reply, HTTP
 * streams cannot, so over HTTP only a reply not yet started is sent again. */
static void test_lost(void **state)
{
    (void)state;
    pl_failure native = {.kind = PL_FAIL_LOST, .err = PARLEY_ERR_CONNECTION_LOST,
                         .started = true, .resumable = true};
    assert_true(pl_failure_retryable(&native));
    pl_failure http = {.kind = PL_FAIL_LOST, .err = PARLEY_ERR_CONNECTION_LOST};
    assert_true(pl_failure_retryable(&http));
    http.started = true;
    assert_false(pl_failure_retryable(&http));
}

/* Starting a transfer and reaching the server are worth another try (the
 * attempts bound them); a TLS failure or a broken protocol is not: another
 * try meets the same certificate or the same server. */
static void test_start_network_tls_invalid(void **state)
{
    (void)state;
    pl_failure f = {.kind = PL_FAIL_START, .err = PARLEY_ERR_CONNECT};
    assert_true(pl_failure_retryable(&f));
    f.kind = PL_FAIL_NETWORK;
    assert_true(pl_failure_retryable(&f));
    f = (pl_failure){.kind = PL_FAIL_TLS, .err = PARLEY_ERR_TLS};
    assert_false(pl_failure_retryable(&f));
    f = (pl_failure){.kind = PL_FAIL_INVALID, .err = PARLEY_ERR_PROTOCOL};
    assert_false(pl_failure_retryable(&f));
    f.kind = (pl_fail_kind)0; /* not a kind: never retried */
    assert_false(pl_failure_retryable(&f));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_statuses),
        cmocka_unit_test(test_upgrade_409),
        cmocka_unit_test(test_should_retry_wins),
        cmocka_unit_test(test_server_errors),
        cmocka_unit_test(test_lost),
        cmocka_unit_test(test_start_network_tls_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
