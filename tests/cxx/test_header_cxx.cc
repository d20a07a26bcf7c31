/*
 * parley.h from C++: the header compiles as C++ (-Wall -Wextra -pedantic,
 * no C-only constructs), its functions link with C linkage, and callbacks
 * written as captureless lambdas convert to the callback types. Then a
 * short round of calls whose results are checked.
 */
#include <parley.h>

#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <csetjmp>
#include <cstring>
#include <string>
extern "C" {
#include <cmocka.h>
}

static void header_is_cxx(void **)
{
    parley_event_cb *on_event = [](parley_client_t *, const parley_event_t *, void *) {};
    parley_stats_cb *on_stats = [](parley_client_t *, const char *, size_t, void *) {};
    parley_log_cb *on_log = [](const parley_client_t *, int, const char *, const char *, void *) {};

    parley_conf_t *conf = parley_conf_new();
    assert_non_null(conf);
    parley_conf_set_event_cb(conf, on_event, nullptr);
    parley_conf_set_stats_cb(conf, on_stats, nullptr);
    parley_conf_set_log_cb(conf, on_log, nullptr);

    char err[256];
    assert_int_equal(parley_conf_set(conf, "workers", "3", err, sizeof(err)), PARLEY_OK);
    assert_int_equal(parley_conf_set(conf, "workers", "-1", err, sizeof(err)),
                     PARLEY_ERR_INVALID_VALUE);
    assert_true(std::string(err).find("workers") != std::string::npos);
    assert_int_equal(parley_conf_set(conf, "no.such.thing", "1", err, sizeof(err)),
                     PARLEY_ERR_UNKNOWN_OPTION);

    char value[16];
    size_t size = sizeof(value);
    assert_int_equal(parley_conf_get(conf, "workers", value, &size), PARLEY_OK);
    assert_string_equal(value, "3");

    assert_string_equal(parley_err2name(PARLEY_ERR_QUEUE_FULL), "QUEUE_FULL");
    assert_string_equal(parley_version_str(), PARLEY_VERSION_STR);
    assert_int_equal(parley_connections_for(1000, 1.0, 500), 2);
    parley_conf_destroy(conf);
}

int main()
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(header_is_cxx)};
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
