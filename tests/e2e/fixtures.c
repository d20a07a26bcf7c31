#include "fixtures.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "recorder.h"

pl_refserver *fixture_server(const char *api_key, unsigned latency_ms, unsigned token_ms,
                             unsigned chunk_bytes)
{
    pl_refserver_opts o;
    pl_refserver_opts_init(&o);
    o.api_key = api_key;
    o.latency_ms = latency_ms;
    o.token_ms = token_ms;
    o.chunk_bytes = chunk_bytes;
    o.quiet = 1;
    char err[256];
    pl_refserver *srv = pl_refserver_start(&o, err, sizeof(err));
    if (!srv)
        fail_msg("refserver: %s", err);
    return srv;
}

/* dialect NULL: the endpoint's. */
static parley_client_t *client_va(const char *url, const char *dialect, parley_stats_cb *stats_cb,
                                  void *stats_opaque, va_list ap)
{
    parley_conf_t *conf = parley_conf_new();
    char err[512];
    if (parley_conf_set(conf, "endpoint", url, err, sizeof(err)) != PARLEY_OK ||
        parley_conf_set(conf, "workers", "2", err, sizeof(err)) != PARLEY_OK ||
        (dialect && (parley_conf_set(conf, "dialect", dialect, err, sizeof(err)) != PARLEY_OK ||
                     parley_conf_set(conf, "retry.backoff.ms", "20", err, sizeof(err)) !=
                         PARLEY_OK)))
        fail_msg("%s", err);
    const char *name;
    while ((name = va_arg(ap, const char *))) {
        const char *value = va_arg(ap, const char *);
        if (parley_conf_set(conf, name, value, err, sizeof(err)) != PARLEY_OK)
            fail_msg("%s", err);
    }
    parley_conf_set_event_cb(conf, recorder_on_event, NULL);
    parley_conf_set_stats_cb(conf, stats_cb, stats_opaque);
    parley_client_t *c = parley_client_new(conf, err, sizeof(err));
    if (!c)
        fail_msg("parley_client_new: %s", err);
    assert_int_equal(parley_start(c), PARLEY_OK);
    return c;
}

parley_client_t *fixture_client_url(const char *url, ...)
{
    va_list ap;
    va_start(ap, url);
    parley_client_t *c = client_va(url, NULL, NULL, NULL, ap);
    va_end(ap);
    return c;
}

parley_client_t *fixture_client_stats(const char *url, parley_stats_cb *cb, void *opaque, ...)
{
    va_list ap;
    va_start(ap, opaque);
    parley_client_t *c = client_va(url, NULL, cb, opaque, ap);
    va_end(ap);
    return c;
}

parley_client_t *fixture_client(int port, ...)
{
    char url[128];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/v1/stream", port);
    va_list ap;
    va_start(ap, port);
    parley_client_t *c = client_va(url, NULL, NULL, NULL, ap);
    va_end(ap);
    return c;
}

parley_client_t *fixture_client_dialect(pl_refserver *srv, const char *dialect, ...)
{
    char url[128];
    snprintf(url, sizeof(url),
             strcmp(dialect, "native") ? "http://127.0.0.1:%d" : "ws://127.0.0.1:%d/v1/stream",
             pl_refserver_port(srv));
    va_list ap;
    va_start(ap, dialect);
    parley_client_t *c = client_va(url, dialect, NULL, NULL, ap);
    va_end(ap);
    return c;
}

uint64_t fixture_turn(parley_client_t *c, parley_session_t *s, const char *text, void *opaque)
{
    uint64_t id;
    assert_int_equal(parley_send_opaque(s, text, opaque, &id, -1), PARLEY_OK);
    assert_int_equal(parley_flush(c, 30000), PARLEY_OK);
    assert_int_equal(recorder_get(id).terminals, 1);
    return id;
}

int fixture_closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

int64_t fixture_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void fixture_pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}
