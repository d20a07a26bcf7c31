/*
 * Memory against a hostile HTTP server (the vendors' dialects): an event
 * stream of text deltas that never ends, plain or as a gzip body that
 * inflates about a thousandfold. The request must fail once its reply
 * passes reply.max.bytes, and resident memory must stay bounded meanwhile.
 * Before reply.max.bytes, such a reply grew the process by GBs.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>

#include "parley.h"
#include "fixtures.h"
#include "memwatch.h"
#include "recorder.h"

#define TEST_KEY "memory-http-key"
#define MiB (1024u * 1024u)
#define REPLY_MAX "4194304"
#define ATTACK_MS 4000
#define GROWTH_LIMIT ((size_t)64 * MiB * MEMWATCH_SLACK)

static int setup(void **state)
{
    (void)state;
    recorder_reset();
    setenv("PARLEY_API_KEY", TEST_KEY, 1);
    setenv("ANTHROPIC_API_KEY", TEST_KEY, 1);
    setenv("OPENAI_API_KEY", TEST_KEY, 1);
    setenv("PARLEY_LOG", "error", 0);
    return 0;
}

/* ---- the attacker: one HTTP/1.1 answer that streams for ever ------------- */

typedef struct attacker {
    int listen_fd, port;
    bool gzip;
    bool openai;
    pthread_t thread;
    atomic_bool stop;
    atomic_ullong body_bytes; /* inflated bytes streamed */
} attacker;

static bool send_all(attacker *a, int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0 && !atomic_load(&a->stop)) {
        struct pollfd pfd = {fd, POLLOUT, 0};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return len == 0;
}

static bool send_chunk(attacker *a, int fd, const void *data, size_t len)
{
    char head[32];
    int n = snprintf(head, sizeof(head), "%zx\r\n", len);
    return send_all(a, fd, head, (size_t)n) && send_all(a, fd, data, len) &&
           send_all(a, fd, "\r\n", 2);
}

/* One text delta of 1,000 bytes, in the attacker's dialect. */
static size_t delta_event(const attacker *a, char *out, size_t size)
{
    char text[1001];
    memset(text, 'x', 1000);
    text[1000] = '\0';
    if (a->openai)
        return (size_t)snprintf(out, size,
                                "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\","
                                "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%s\"}}]}\n\n",
                                text);
    return (size_t)snprintf(out, size,
                            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
                            "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"%s\"}}\n\n",
                            text);
}

static const char anthropic_start[] =
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\","
    "\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"x\","
    "\"usage\":{\"input_tokens\":1,\"output_tokens\":0}}}\n\n"
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
    "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";

/* Stream the body until the client goes away or the attack's time is up. */
static void stream_body(attacker *a, int fd)
{
    char event[1400];
    size_t elen = delta_event(a, event, sizeof(event));
    z_stream z = {0};
    if (a->gzip)
        assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 31, 9, Z_DEFAULT_STRATEGY), Z_OK);
    unsigned char out[64 * 1024];
    int64_t end = fixture_now_ms() + ATTACK_MS;
    bool first = true;
    while (fixture_now_ms() < end && !atomic_load(&a->stop)) {
        /* A batch of events: 256 KB inflated. */
        static char batch[256 * 1400 + sizeof(anthropic_start)];
        size_t blen = 0;
        if (first && !a->openai) {
            memcpy(batch, anthropic_start, sizeof(anthropic_start) - 1);
            blen = sizeof(anthropic_start) - 1;
        }
        first = false;
        for (int i = 0; i < 256; i++, blen += elen)
            memcpy(batch + blen, event, elen);
        bool ok;
        if (!a->gzip) {
            ok = send_chunk(a, fd, batch, blen);
        } else {
            z.next_in = (unsigned char *)batch;
            z.avail_in = (unsigned)blen;
            ok = true;
            do {
                z.next_out = out;
                z.avail_out = sizeof(out);
                deflate(&z, Z_SYNC_FLUSH);
                size_t have = sizeof(out) - z.avail_out;
                if (have)
                    ok = send_chunk(a, fd, out, have);
            } while (ok && z.avail_out == 0);
        }
        if (!ok)
            break;
        atomic_fetch_add(&a->body_bytes, blen);
    }
    if (a->gzip)
        deflateEnd(&z);
}

static void *attacker_main(void *arg)
{
    attacker *a = arg;
    struct pollfd pfd = {a->listen_fd, POLLIN, 0};
    while (!atomic_load(&a->stop) && poll(&pfd, 1, 100) <= 0)
        ;
    if (atomic_load(&a->stop))
        return NULL;
    int fd = accept(a->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    /* The request: read until its headers end (the body is small and is
     * left unread: the answer does not depend on it). */
    char req[8192];
    size_t got = 0;
    while (got < sizeof(req) - 1 && !atomic_load(&a->stop)) {
        struct pollfd rp = {fd, POLLIN, 0};
        if (poll(&rp, 1, 100) <= 0)
            continue;
        ssize_t n = recv(fd, req + got, sizeof(req) - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n%s"
                     "Transfer-Encoding: chunked\r\n\r\n",
                     a->gzip ? "Content-Encoding: gzip\r\n" : "");
    if (send_all(a, fd, head, (size_t)n))
        stream_body(a, fd);
    close(fd);
    return NULL;
}

static void attacker_start(attacker *a, bool openai, bool gzip)
{
    *a = (attacker){.openai = openai, .gzip = gzip};
    a->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    assert_true(a->listen_fd >= 0);
    assert_int_equal(bind(a->listen_fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(a->listen_fd, 4), 0);
    assert_int_equal(getsockname(a->listen_fd, (struct sockaddr *)&addr, &len), 0);
    a->port = ntohs(addr.sin_port);
    assert_int_equal(pthread_create(&a->thread, NULL, attacker_main, a), 0);
}

static void attacker_stop(attacker *a)
{
    atomic_store(&a->stop, true);
    pthread_join(a->thread, NULL);
    close(a->listen_fd);
}

/* Send one turn to the attacker and watch memory until its terminal event. */
static void run_attack(bool openai, bool gzip)
{
    attacker a;
    attacker_start(&a, openai, gzip);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", a.port);
    parley_client_t *c = fixture_client_url(url, "dialect", openai ? "openai" : "anthropic",
                                            "reply.max.bytes", REPLY_MAX, "retry.max.attempts",
                                            "1", NULL);
    parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
    memwatch w;
    memwatch_start(&w);
    uint64_t id;
    assert_int_equal(parley_send(s, "talk for ever", &id), PARLEY_OK);
    int64_t end = fixture_now_ms() + ATTACK_MS + 5000;
    size_t growth = 0;
    while (recorder_terminals() < 1 && fixture_now_ms() < end && growth <= GROWTH_LIMIT) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL); /* a sampling period, not a synchronisation */
        growth = memwatch_sample(&w);
    }
    growth = memwatch_sample(&w);
    recorder_entry r = recorder_get(id);
    parley_client_destroy(c);
    attacker_stop(&a);
    print_message("%s%s: %llu bytes streamed (inflated), memory grew %zu KiB; %s: %s\n",
                  openai ? "openai" : "anthropic", gzip ? " gzip" : "",
                  (unsigned long long)atomic_load(&a.body_bytes), growth / 1024,
                  parley_err2name(r.err), r.err_msg);
    assert_true(growth <= GROWTH_LIMIT);
    assert_int_equal(r.terminals, 1);
    assert_int_equal(r.terminal, PARLEY_EVENT_ERROR);
    assert_int_equal(r.err, PARLEY_ERR_REPLY_TOO_LARGE);
    assert_non_null(strstr(r.err_msg, "reply.max.bytes"));
}

static void test_endless_event_stream_openai(void **state)
{
    (void)state;
    run_attack(true, false);
}

static void test_endless_gzip_body_anthropic(void **state)
{
    (void)state;
    run_attack(false, true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_endless_event_stream_openai, setup),
        cmocka_unit_test_setup(test_endless_gzip_body_anthropic, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
