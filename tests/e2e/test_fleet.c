/*
 * The gateway as a fleet (docs/cluster.md): two examples/gateway processes
 * sharing a session store (a redis-server of the test's own) behind
 * HAProxy (round-robin, no stickiness), under wrk with
 * examples/fleet-wrk.lua: each wrk connection is one conversation whose
 * turns go to both gateways in turn, and every reply must number its turn
 * right, which a gateway can only do from the history the other saved.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#include <curl/curl.h>

#include "child.h"
#include "fixtures.h"
#include "gateway_harness.h"
#include "parley.h"
#include "piped_child.h"
#include "redis_server.h"
#include "refserver.h"

#define TEST_KEY "fleet-key"

/* The gateways, for a failed test's teardown (the harness remembers one). */
static gateway_proc g1, g2;

/* Whether something listens on the loopback port. */
static bool listening(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

/* HAProxy on `port`, round-robin over the gateways, with its statistics
 * on stats_port. */
static void haproxy_start(piped_child *h, const char *cfg_path, int port, int stats_port,
                          int g1, int g2)
{
    FILE *f = fopen(cfg_path, "w");
    assert_non_null(f);
    fprintf(f,
            "defaults\n"
            "    mode http\n"
            "    timeout connect 5s\n"
            "    timeout client 60s\n"
            "    timeout server 60s\n"
            "frontend chat\n"
            "    bind 127.0.0.1:%d\n"
            "    default_backend gateways\n"
            "backend gateways\n"
            "    balance roundrobin\n"
            "    server g1 127.0.0.1:%d\n"
            "    server g2 127.0.0.1:%d\n"
            "listen stats\n"
            "    bind 127.0.0.1:%d\n"
            "    stats enable\n"
            "    stats uri /stats\n",
            port, g1, g2, stats_port);
    fclose(f);
    char *argv[] = {"/usr/sbin/haproxy", "-db", "-f", (char *)cfg_path, NULL};
    piped_child_start(h, NULL, argv);
    int64_t deadline = fixture_now_ms() + 10000;
    while (!listening(port) && fixture_now_ms() < deadline)
        fixture_pause_ms(20); /* another process's readiness: sampled */
    if (!listening(port)) {
        piped_child_show_stderr(h);
        fail_msg("haproxy did not listen on %d", port);
    }
}

/* The 2xx answers each gateway gave, from HAProxy's statistics (CSV). */
static void answers_per_gateway(int stats_port, long *g1, long *g2)
{
    http_call call = {.port = stats_port, .method = "GET", .path = "/stats;csv"};
    http_result *r = calloc(1, sizeof(*r));
    http_do(&call, r);
    assert_int_equal(r->status, 200);
    /* "# pxname,svname,...,hrsp_2xx,...": find the column, then the rows. */
    char *save, *line = strtok_r(r->body, "\n", &save);
    assert_non_null(line);
    int column = -1, i = 0;
    for (char *p = line + 2, *f; (f = strsep(&p, ",")); i++)
        if (!strcmp(f, "hrsp_2xx"))
            column = i;
    assert_true(column >= 0);
    *g1 = *g2 = -1;
    while ((line = strtok_r(NULL, "\n", &save))) {
        char *fields[128], *p = line, *f;
        int n = 0;
        while (n < 128 && (f = strsep(&p, ",")))
            fields[n++] = f;
        if (n <= column || strcmp(fields[0], "gateways"))
            continue;
        if (!strcmp(fields[1], "g1"))
            *g1 = atol(fields[column]);
        else if (!strcmp(fields[1], "g2"))
            *g2 = atol(fields[column]);
    }
    free(r);
}

static void test_two_gateways_one_set_of_conversations(void **state)
{
    (void)state;
    setenv("PARLEY_API_KEY", TEST_KEY, 1);
    redis_server *redis = redis_server_start(NULL);
    assert_non_null(redis);
    pl_refserver *srv = fixture_server(TEST_KEY, 0, 0, 0);
    char endpoint[96];
    snprintf(endpoint, sizeof(endpoint), "ws://127.0.0.1:%d/v1/stream", pl_refserver_port(srv));
    /* Each process of a fleet has a worker id of its own, so that request
     * ids never collide (docs/cluster.md). */
    setenv("PARLEY_WORKER_ID", "1", 1);
    gateway_start(&g1, endpoint, "--store", redis_server_url(redis), NULL);
    setenv("PARLEY_WORKER_ID", "2", 1);
    gateway_start(&g2, endpoint, "--store", redis_server_url(redis), NULL);
    unsetenv("PARLEY_WORKER_ID");

    piped_child haproxy;
    char cfg[] = "/tmp/parley-fleet-XXXXXX";
    int cfg_fd = mkstemp(cfg);
    assert_true(cfg_fd >= 0);
    close(cfg_fd);
    int port = fixture_closed_port(), stats_port = fixture_closed_port();
    haproxy_start(&haproxy, cfg, port, stats_port, g1.port, g2.port);

    char url[64], run[32];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    snprintf(run, sizeof(run), "%d", (int)getpid());
    char script[512];
    snprintf(script, sizeof(script), "%s/examples/fleet-wrk.lua",
             getenv("top_srcdir") ? getenv("top_srcdir") : ".");
    char *wrk[] = {"/usr/bin/wrk", "-t4", "-c4", "-d3s", "--timeout", "30s", "-s",
                   script, url, "--", run, NULL};
    child_result r;
    child_run(&r, "/tmp", NULL, false, NULL, wrk);
    assert_int_equal(r.status, 0);
    char *report = strstr(r.out, "turns ");
    if (!report)
        fail_msg("no report from wrk:\n%s\n%s", r.out, r.err);
    int turns, non_200, out_of_step, e_connect, e_read, e_write, e_timeout;
    assert_int_equal(sscanf(report,
                            "turns %d, non-200 %d, out of step %d, socket errors: connect %d, "
                            "read %d, write %d, timeout %d",
                            &turns, &non_200, &out_of_step, &e_connect, &e_read, &e_write,
                            &e_timeout),
                     7);
    print_message("fleet: %s", report);
    assert_int_equal(non_200, 0);
    assert_int_equal(out_of_step, 0);
    assert_int_equal(e_connect + e_read + e_write + e_timeout, 0);
    /* Each conversation went through both gateways. */
    assert_true(turns >= 4 * 2);
    long served1, served2;
    answers_per_gateway(stats_port, &served1, &served2);
    assert_true(served1 > 0);
    assert_true(served2 > 0);

    piped_child_signal(&haproxy, SIGTERM);
    piped_child_wait(&haproxy, 10000);
    piped_child_free(&haproxy);
    unlink(cfg);
    assert_int_equal(gateway_stop(&g1), 0);
    g1.pid = 0;
    assert_int_equal(gateway_stop(&g2), 0);
    g2.pid = 0;
    pl_refserver_stop(srv);
    redis_server_free(redis);
}

static int teardown(void **state)
{
    (void)state;
    if (g1.pid > 0)
        kill(g1.pid, SIGKILL);
    gateway_kill_leftover();
    return 0;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_two_gateways_one_set_of_conversations, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
