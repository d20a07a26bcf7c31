/*
 * libFuzzer target: the native dialect's I/O path (src/engine/io.c, src/transport/ws_conn.c,
 * libcurl's WebSocket framing, the decoder, decompression, the retry and
 * resume logic, the log lines they write) against a hostile server.
 *
 * One parley client (native, one connection) and one loopback server live
 * for the whole process. Each input is one round: the client sends a turn on
 * each of 1-3 sessions; the server accepts its connection, answers the
 * upgrade and says hello as a valid server would, reads the requests, then
 * writes the input as the raw server byte stream (frames of any opcode,
 * length, fragmentation, masking, invalid UTF-8, zstd or gzip payloads) and
 * closes. Connections after that are refused with HTTP 400, which the client
 * does not retry, and requests still waiting are cancelled, so every
 * request must end within a few seconds; then the next round starts. The
 * client's promises are checked in fuzz_client.c.
 *
 * Input: byte 0 sets the round (below), the rest is the stream. Request ids
 * are not known in advance, so "$0".."$9" in a frame's payload stand for the
 * id of request N mod the number of requests (as its decimal string); the
 * frame's length field is adjusted by what the substitution added, so a
 * length that lied still lies by as much.
 *   bits 0-2: Sec-WebSocket-Protocol of the 101 answer: none, parley.v1,
 *             parley.v1.zstd, parley.v1.gzip, parley.v2 (never offered),
 *             then parley.v1.zstd again
 *   bit 3:    hello agrees on the built-in zstd dictionary
 *   bit 4:    hello lowers max_message_bytes to 1024
 *   bits 5-6: requests in flight, 1 + value mod 3
 *   bit 7:    the stream is written in pieces of 61 bytes
 */
#include <openssl/sha.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compress.h"
#include "fuzz_client.h"
#include "fuzz_server.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC11B65"

typedef struct round_state {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    fz_phase phase;
    bool taken;      /* a connection was given the input this round */
    bool busy;       /* and is being served still */
    bool ids_ready;  /* ids[] holds the round's request ids */
    const uint8_t *stream;
    size_t stream_len;
    uint8_t config;
    unsigned n;
    uint64_t ids[FZ_MAX_REQUESTS];
} round_state;

static round_state R = {
    .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .phase = FZ_IDLE};
static fz_client *client;
static int wake[2]; /* ends the hold of the round's connection */

static void base64(const unsigned char *in, size_t len, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < len ? (unsigned)in[i + 1] << 8 : 0) |
                     (i + 2 < len ? in[i + 2] : 0);
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
        out[o++] = i + 1 < len ? abc[v >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? abc[v & 63] : '=';
    }
    out[o] = '\0';
}

/* An unmasked frame with FIN, as a server sends it. */
static size_t put_frame(uint8_t *out, uint8_t opcode, const char *payload, size_t len)
{
    size_t h = 0;
    out[h++] = 0x80 | opcode;
    if (len < 126) {
        out[h++] = (uint8_t)len;
    } else {
        out[h++] = 126;
        out[h++] = (uint8_t)(len >> 8);
        out[h++] = (uint8_t)len;
    }
    memcpy(out + h, payload, len);
    return h + len;
}

static const char *subprotocol(uint8_t config)
{
    static const char *const names[] = {NULL, "parley.v1", "parley.v1.zstd", "parley.v1.gzip",
                                        "parley.v2"};
    unsigned i = config & 7;
    return i < 5 ? names[i] : "parley.v1.zstd";
}

/* The upgrade answer and hello; false when the client's request was not
 * a WebSocket upgrade in time. */
static bool answer_upgrade(int fd, uint8_t config)
{
    char head[16384], key[128];
    size_t got;
    if (fz_read_head(fd, head, sizeof(head), &got, fz_now_ms() + 2000) < 0)
        return false;
    FZ_CHECK(fz_header(head, "sec-websocket-key:", key, sizeof(key)));
    char joined[256];
    snprintf(joined, sizeof(joined), "%s" WS_GUID, key);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)joined, strlen(joined), digest);
    char accept[64];
    base64(digest, sizeof(digest), accept);

    const char *proto = subprotocol(config);
    char dict[32] = "";
    if (config & 8)
        snprintf(dict, sizeof(dict), ",\"zstd_dict\":%u", (unsigned)pl_compress_dict_id());
    char hello[512];
    int hlen = snprintf(hello, sizeof(hello),
                        "{\"type\":\"hello\",\"protocol\":\"%s\",\"max_message_bytes\":%u,"
                        "\"heartbeat_s\":30,\"idempotency_window_s\":600,"
                        "\"server\":\"fuzz/1\"%s}",
                        proto ? proto : "parley.v1", config & 16 ? 1024u : 1048576u, dict);
    uint8_t out[1024];
    int n = snprintf((char *)out, sizeof(out),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
                     accept, proto ? "Sec-WebSocket-Protocol: " : "", proto ? proto : "",
                     proto ? "\r\n" : "");
    size_t len = (size_t)n + put_frame(out + n, 1, hello, (size_t)hlen);
    fz_write_all(fd, out, len, 0);
    return true;
}

/* Read the client's frames until it has sent `n` data frames (its
 * requests), closed, or took too long. */
static void read_requests(int fd, unsigned n)
{
    int64_t deadline = fz_now_ms() + 2000;
    unsigned seen = 0;
    while (seen < n) {
        uint8_t h[14];
        if (!fz_read_exact(fd, h, 2, deadline))
            return;
        uint64_t len = h[1] & 127;
        size_t ext = len == 126 ? 2 : len == 127 ? 8 : 0;
        if (!fz_read_exact(fd, h + 2, ext + 4, deadline)) /* a client always masks */
            return;
        if (ext) {
            len = 0;
            for (size_t i = 0; i < ext; i++)
                len = len << 8 | h[2 + i];
        }
        if (!fz_skip(fd, len, deadline))
            return;
        unsigned opcode = h[0] & 15;
        if (opcode == 1 || opcode == 2)
            seen++;
    }
}

typedef struct byte_buf {
    uint8_t *data;
    size_t len, cap;
} byte_buf;

static void put(byte_buf *b, const void *data, size_t len)
{
    if (len == 0)
        return;
    if (b->len + len > b->cap) {
        b->cap = (b->len + len) * 2 + 64;
        b->data = realloc(b->data, b->cap);
        FZ_CHECK(b->data);
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

/* Append to out the payload with each "$N" replaced by a request id. */
static void substitute(byte_buf *out, const uint8_t *p, size_t len, const char ids[][24],
                       unsigned n)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '$' && i + 1 < len && p[i + 1] >= '0' && p[i + 1] <= '9') {
            const char *id = ids[(unsigned)(p[i + 1] - '0') % n];
            put(out, id, strlen(id));
            i++;
        } else {
            put(out, &p[i], 1);
        }
    }
}

/* The input as the stream to send: frame by frame while headers parse,
 * with ids substituted in unmasked payloads and lengths adjusted; raw
 * from the first header that does not fit. */
static void build_stream(byte_buf *out, const uint8_t *in, size_t len, const uint64_t *idv,
                         unsigned n)
{
    char ids[FZ_MAX_REQUESTS][24];
    for (unsigned i = 0; i < n; i++)
        snprintf(ids[i], sizeof(ids[i]), "%llu", (unsigned long long)idv[i]);
    size_t pos = 0;
    while (pos < len) {
        size_t left = len - pos;
        const uint8_t *f = in + pos;
        if (left < 2)
            break;
        unsigned len7 = f[1] & 127;
        bool masked = f[1] & 128;
        size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
        size_t hdr = 2 + ext + (masked ? 4 : 0);
        if (left < hdr)
            break;
        uint64_t declared = len7;
        if (ext) {
            declared = 0;
            for (size_t i = 0; i < ext; i++)
                declared = declared << 8 | f[2 + i];
        }
        size_t avail = declared < left - hdr ? (size_t)declared : left - hdr;
        byte_buf payload = {0};
        if (masked)
            put(&payload, f + hdr, avail);
        else
            substitute(&payload, f + hdr, avail, ids, n);
        uint64_t grown = payload.len - avail;
        if (declared <= UINT64_MAX - grown)
            declared += grown;
        /* The smallest length form that fits, never smaller than the input's. */
        size_t new_ext = declared > 65535 || ext == 8 ? 8 : declared > 125 || ext == 2 ? 2 : 0;
        uint8_t h[14];
        h[0] = f[0];
        h[1] = (uint8_t)((f[1] & 128) | (new_ext == 8 ? 127 : new_ext == 2 ? 126 : declared));
        for (size_t i = 0; i < new_ext; i++)
            h[2 + i] = (uint8_t)(declared >> (8 * (new_ext - 1 - i)));
        put(out, h, 2 + new_ext);
        if (masked)
            put(out, f + 2 + ext, 4);
        if (payload.len)
            put(out, payload.data, payload.len);
        free(payload.data);
        pos += hdr + avail;
    }
    if (pos < len)
        put(out, in + pos, len - pos);
}

static void serve_round(int fd)
{
    if (!answer_upgrade(fd, R.config))
        return;
    read_requests(fd, R.n);
    pthread_mutex_lock(&R.mu);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 2;
    while (!R.ids_ready && pthread_cond_timedwait(&R.cv, &R.mu, &until) == 0)
        ;
    bool ready = R.ids_ready;
    pthread_mutex_unlock(&R.mu);
    byte_buf stream = {0};
    if (ready)
        build_stream(&stream, R.stream, R.stream_len, R.ids, R.n);
    fz_write_all(fd, stream.data, stream.len, R.config & 128 ? 61 : 0);
    free(stream.data);
}

static void on_connection(int fd, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&R.mu);
    bool mine = R.phase == FZ_SERVE && !R.taken;
    R.taken |= mine;
    R.busy |= mine;
    pthread_mutex_unlock(&R.mu);
    if (!mine) {
        fz_refuse(fd);
        return;
    }
    serve_round(fd);
    pthread_mutex_lock(&R.mu);
    R.phase = FZ_DRAIN;
    pthread_mutex_unlock(&R.mu);
    fz_round_served(client);
    fz_hold(fd, wake[0]);
    pthread_mutex_lock(&R.mu);
    R.busy = false;
    pthread_cond_broadcast(&R.cv);
    pthread_mutex_unlock(&R.mu);
}

static void setup(void)
{
    fz_wake_init(wake);
    unsigned short port = fz_server_start(on_connection, NULL);
    char endpoint[64];
    snprintf(endpoint, sizeof(endpoint), "ws://127.0.0.1:%u/v1/stream", port);
    static const char *const props[] = {
        "connections", "1",
        "connect.timeout.ms", "3000",
        "request.timeout.ms", "3000",
        "stall.timeout.ms", "300",
        "retry.max.attempts", "3",
        "retry.backoff.ms", "1",
        "retry.backoff.max.ms", "2",
        "reconnect.backoff.ms", "1",
        "reconnect.backoff.max.ms", "1",
        NULL};
    client = fz_client_new(endpoint, props);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (!client)
        setup();
    pthread_mutex_lock(&R.mu);
    R.config = data[0];
    R.stream = data + 1;
    R.stream_len = size - 1;
    R.n = 1 + ((data[0] >> 5) & 3) % 3;
    R.taken = R.busy = R.ids_ready = false;
    R.phase = FZ_SERVE;
    pthread_mutex_unlock(&R.mu);

    uint64_t ids[FZ_MAX_REQUESTS] = {0};
    fz_round_start(client, R.n, ids);
    pthread_mutex_lock(&R.mu);
    memcpy(R.ids, ids, sizeof(ids));
    R.ids_ready = true;
    pthread_cond_broadcast(&R.cv);
    pthread_mutex_unlock(&R.mu);

    fz_round_finish(client);

    /* The connection given the input is closed before the next round. */
    pthread_mutex_lock(&R.mu);
    R.phase = FZ_IDLE;
    fz_wake(wake);
    while (R.busy)
        pthread_cond_wait(&R.cv, &R.mu);
    fz_wake_reset(wake);
    pthread_mutex_unlock(&R.mu);
    return 0;
}
