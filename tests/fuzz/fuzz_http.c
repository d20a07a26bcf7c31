/*
 * libFuzzer target: the HTTP dialects' I/O path (src/engine/io.c, src/transport/http_stream.c,
 * libcurl's HTTP/1.1 parsing, chunked and gzip bodies, the SSE parser, the
 * dialects' event decoding, retries and retry-after, the log lines they
 * write) against a hostile server.
 *
 * One anthropic and one openai client and one loopback HTTP/1.1 responder
 * live for the whole process. Each input is one round: one of the clients
 * sends a turn on each of 1-3 sessions; the responder reads each request and
 * answers it with the input as the raw response (status line, headers,
 * body), then closes. Requests after those are refused with HTTP 400, which
 * the clients do not retry, and requests still waiting are cancelled, so
 * every request must end within a few seconds; then the next round starts.
 * The clients' promises are checked in fuzz_client.c.
 *
 * Input: byte 0 sets the round, the rest is the response.
 *   bit 0:    the client: anthropic (1) or openai (0)
 *   bits 1-2: requests in flight, 1 + value mod 3
 *   bit 3:    the response is written in pieces of 61 bytes
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_client.h"
#include "fuzz_server.h"

typedef struct round_state {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    fz_phase phase;
    unsigned served;  /* requests given the input (being answered or done) */
    unsigned written; /* of which the input was written */
    unsigned busy;    /* of which the connection is still open */
    const uint8_t *response;
    size_t response_len;
    uint8_t config;
    unsigned n;
} round_state;

static round_state R = {
    .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .phase = FZ_IDLE};
static fz_client *anthropic, *openai;
static fz_client *client; /* the round's */
static int wake[2];       /* ends the hold of the round's connections */

/* Read the request (head and body) and answer it with the input. */
static void answer(int fd)
{
    char head[65536], value[32];
    size_t got;
    int64_t deadline = fz_now_ms() + 2000;
    long hlen = fz_read_head(fd, head, sizeof(head), &got, deadline);
    if (hlen < 0)
        return;
    unsigned long long body = 0;
    if (fz_header(head, "content-length:", value, sizeof(value)))
        body = strtoull(value, NULL, 10);
    if (body > got - (size_t)hlen && !fz_skip(fd, body - (got - (size_t)hlen), deadline))
        return;
    fz_write_all(fd, R.response, R.response_len, R.config & 8 ? 61 : 0);
}

static void on_connection(int fd, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&R.mu);
    bool mine = R.phase == FZ_SERVE && R.served < R.n;
    if (mine) {
        R.served++;
        R.busy++;
    }
    pthread_mutex_unlock(&R.mu);
    if (!mine) {
        fz_refuse(fd);
        return;
    }
    answer(fd);
    pthread_mutex_lock(&R.mu);
    bool all = ++R.written == R.n;
    if (all)
        R.phase = FZ_DRAIN;
    pthread_mutex_unlock(&R.mu);
    if (all)
        fz_round_served(client);
    fz_hold(fd, wake[0]);
    pthread_mutex_lock(&R.mu);
    R.busy--;
    pthread_cond_broadcast(&R.cv);
    pthread_mutex_unlock(&R.mu);
}

static void setup(void)
{
    fz_wake_init(wake);
    unsigned short port = fz_server_start(on_connection, NULL);
    char endpoint[64];
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%u", port);
    static const char *const common[] = {
        "connect.timeout.ms", "3000",
        "request.timeout.ms", "3000",
        "stall.timeout.ms", "300",
        "retry.max.attempts", "2",
        "retry.backoff.ms", "1",
        "retry.backoff.max.ms", "2",
        "model", "fuzz-1",
        "max_tokens", "64",
        "max.message.bytes", "65536",
        NULL};
    const char *props[32];
    size_t n = 0;
    for (; common[n]; n++)
        props[n] = common[n];
    props[n] = "dialect";
    props[n + 1] = "anthropic";
    props[n + 2] = NULL;
    anthropic = fz_client_new(endpoint, props);
    props[n + 1] = "openai";
    openai = fz_client_new(endpoint, props);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (!anthropic)
        setup();
    pthread_mutex_lock(&R.mu);
    client = data[0] & 1 ? anthropic : openai;
    R.config = data[0];
    R.response = data + 1;
    R.response_len = size - 1;
    R.n = 1 + ((data[0] >> 1) & 3) % 3;
    R.served = R.written = R.busy = 0;
    R.phase = FZ_SERVE;
    pthread_mutex_unlock(&R.mu);

    uint64_t ids[FZ_MAX_REQUESTS] = {0};
    fz_round_start(client, R.n, ids);
    fz_round_finish(client);

    /* Its connections are closed before the next round. */
    pthread_mutex_lock(&R.mu);
    R.phase = FZ_IDLE;
    fz_wake(wake);
    while (R.busy)
        pthread_cond_wait(&R.cv, &R.mu);
    fz_wake_reset(wake);
    pthread_mutex_unlock(&R.mu);
    return 0;
}
