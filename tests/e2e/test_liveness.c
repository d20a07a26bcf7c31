/*
 * Silent servers: a connection that stops answering is found dead by a Ping
 * after a stall and replaced, its requests resuming without losing an
 * attempt; a request that alone is slow moves elsewhere at the cost of one;
 * a server that never completes the handshake, or an outage longer than the
 * stall timeout, neither spins the I/O thread nor keeps a request past its
 * deadline.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "parley.h"
#include "fixtures.h"
#include "recorder.h"
#include "refserver.h"

#define TEST_KEY "liveness-key"

/* CPU time (user + system) of the whole process so far, in ms. */
static int64_t cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

static int setup(void **state)
{
    (void)state;
    recorder_reset();
    setenv("PARLEY_API_KEY", TEST_KEY, 1);
    setenv("PARLEY_LOG", "error", 0); /* the faults make warnings by design */
    return 0;
}

/* A socket that listens but never accepts: the kernel completes TCP
 * connections into its backlog, and nothing ever answers on them. */
static int silent_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 64), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/*
 * Send one request, wait for its terminal event and check that it came by
 * the deadline, once, as an error, while the process used little CPU: a
 * spinning I/O thread burns a whole core the whole time.
 */
static void expect_error_by_deadline_without_spin(parley_client_t *c, int deadline_ms)
{
    parley_session_t *s = parley_session_open(c, "patient", NULL, 0);
    uint64_t id;
    int64_t wall0 = fixture_now_ms(), cpu0 = cpu_ms();
    assert_int_equal(parley_send(s, "anyone?", &id), PARLEY_OK);
    assert_int_equal(recorder_wait_terminals(1, 30), 1);
    int64_t wall = fixture_now_ms() - wall0, cpu = cpu_ms() - cpu0;
    recorder_entry r = recorder_get(id);
    assert_int_equal(r.terminals, 1);
    assert_int_equal(r.terminal, PARLEY_EVENT_ERROR);
    assert_true(wall < deadline_ms + 5000);
    print_message("terminal after %lld ms (%s: %s), CPU %lld ms\n", (long long)wall,
                  parley_err2name(r.err), r.err_msg, (long long)cpu);
    /* Idle waiting costs a few ms; spinning costs about the wall time. */
    assert_true(cpu * 3 < wall);
    int64_t t0 = fixture_now_ms();
    parley_client_destroy(c);
    assert_true(fixture_now_ms() - t0 < 5000);
}

/* The server accepts TCP and never answers the upgrade. */
static void test_unanswered_upgrade_neither_spins_nor_hangs(void **state)
{
    (void)state;
    int port, fd = silent_listener(&port);
    parley_client_t *c = fixture_client(port, "connections", "1", "stall.timeout.ms", "100",
                                        "connect.timeout.ms", "600", "request.timeout.ms", "2500",
                                        "retry.max.attempts", "100", "reconnect.backoff.ms", "50",
                                        NULL);
    expect_error_by_deadline_without_spin(c, 2500);
    close(fd);
}

/* The server is down for longer than the stall timeout, with a reconnect
 * backoff above it. */
static void test_outage_longer_than_stall_neither_spins_nor_hangs(void **state)
{
    (void)state;
    parley_client_t *c = fixture_client(fixture_closed_port(), "connections", "1",
                                        "stall.timeout.ms", "100", "reconnect.backoff.ms",
                                        "1000", "reconnect.backoff.max.ms", "1000",
                                        "retry.backoff.ms", "10",
                                        "request.timeout.ms", "2500", "retry.max.attempts",
                                        "100", NULL);
    expect_error_by_deadline_without_spin(c, 2500);
}

/* The connection says hello, then reads and writes nothing (pings
 * unanswered): the stall's Ping finds it dead, a fresh connection replaces
 * it, and the request completes there with its single attempt intact. */
static void test_dead_connection_is_replaced_free_of_charge(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 4);
    pl_refserver_set_faults(srv, &(pl_refserver_faults){.mute_connections = 1,
                                                        .retry_after_ms = -1});
    parley_client_t *c = fixture_client(pl_refserver_port(srv), "connections", "1",
                                        "retry.max.attempts", "1", "stall.timeout.ms", "300",
                                        NULL);
    parley_session_t *s = parley_session_open(c, "survivor", NULL, 0);
    uint64_t id;
    assert_int_equal(parley_send(s, "still there?", &id), PARLEY_OK);
    assert_int_equal(recorder_wait_terminals(1, 30), 1);
    recorder_entry r = recorder_get(id);
    assert_int_equal(r.terminal, PARLEY_EVENT_DONE);
    assert_string_equal(r.text, "[turn 1] still there?");
    assert_int_equal(r.seq_errors, 0);
    parley_stats_t st;
    parley_stats_get(c, &st);
    assert_true(st.stalls >= 1);
    assert_true(st.reconnects >= 1);
    pl_refserver_stats ss;
    pl_refserver_get_stats(srv, &ss);
    assert_int_equal(ss.connections_accepted, 2);
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

/* The server is alive (it answers the Ping) but never streams one request:
 * that request alone moves, each move costs it an attempt, and the live
 * connection is kept. */
static void test_slow_request_moves_alone_and_pays(void **state)
{
    (void)state;
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 4);
    pl_refserver_set_faults(srv, &(pl_refserver_faults){.stall_every = 1,
                                                        .retry_after_ms = -1});
    parley_client_t *c = fixture_client(pl_refserver_port(srv), "connections", "1",
                                        "retry.max.attempts", "2", "stall.timeout.ms", "200",
                                        "retry.backoff.ms", "10",
                                        NULL);
    parley_session_t *s = parley_session_open(c, "slowpoke", NULL, 0);
    uint64_t id;
    assert_int_equal(parley_send(s, "take your time", &id), PARLEY_OK);
    assert_int_equal(recorder_wait_terminals(1, 30), 1);
    recorder_entry r = recorder_get(id);
    /* The repeat is served (stall_every stalls first sends only). */
    assert_int_equal(r.terminal, PARLEY_EVENT_DONE);
    assert_string_equal(r.text, "[turn 1] take your time");
    parley_stats_t st;
    parley_stats_get(c, &st);
    assert_int_equal(st.stalls, 1);
    assert_int_equal(st.retries, 1);
    assert_int_equal(st.reconnects, 0);
    pl_refserver_stats ss;
    pl_refserver_get_stats(srv, &ss);
    assert_int_equal(ss.connections_accepted, 1);
    parley_client_destroy(c);

    /* With one attempt only, the same stall ends the request. */
    recorder_reset();
    c = fixture_client(pl_refserver_port(srv), "connections", "1", "retry.max.attempts", "1",
                       "stall.timeout.ms", "200", NULL);
    s = parley_session_open(c, "slowpoke2", NULL, 0);
    assert_int_equal(parley_send(s, "again", &id), PARLEY_OK);
    assert_int_equal(recorder_wait_terminals(1, 30), 1);
    r = recorder_get(id);
    assert_int_equal(r.terminal, PARLEY_EVENT_ERROR);
    assert_int_equal(r.err, PARLEY_ERR_TIMED_OUT);
    assert_non_null(strstr(r.err_msg, "stalled"));
    parley_client_destroy(c);
    pl_refserver_stop(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_unanswered_upgrade_neither_spins_nor_hangs, setup),
        cmocka_unit_test_setup(test_outage_longer_than_stall_neither_spins_nor_hangs, setup),
        cmocka_unit_test_setup(test_dead_connection_is_replaced_free_of_charge, setup),
        cmocka_unit_test_setup(test_slow_request_moves_alone_and_pays, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
