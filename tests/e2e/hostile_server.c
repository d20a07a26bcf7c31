#include "hostile_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/evp.h>

#include "buf.h"
#include "compress.h"
#include "fixtures.h"

/* Every wait is cut into slices this long, to notice hs_stop(). */
#define SLICE_MS 20
#define HANDSHAKE_MAX 8192
/* Frames from the client beyond this are treated as a broken peer. */
#define CLIENT_FRAME_MAX (64u << 20)

struct hs_server {
    int listen_fd, port;
    char subprotocol[64]; /* "" when the 101 selects none */
    hs_script *script;
    void *arg;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t lock; /* guards counts */
    hs_counts counts;
};

struct hs_conn {
    hs_server *srv;
    int fd;
    unsigned index;
    bool gone;      /* the peer closed, or the server is stopping */
    pl_buf in;      /* bytes read and not yet parsed */
    pl_buf payload; /* the last frame's payload */
    pl_buf message; /* the message being reassembled, or inflated */
};

#define COUNT(srv, stmt)                                                                 \
    do {                                                                                 \
        pthread_mutex_lock(&(srv)->lock);                                                \
        stmt;                                                                            \
        pthread_mutex_unlock(&(srv)->lock);                                              \
    } while (0)

hs_counts hs_get_counts(hs_server *s)
{
    hs_counts c;
    COUNT(s, c = s->counts);
    return c;
}

bool hs_stopping(const hs_conn *c)
{
    return atomic_load(&c->srv->stop);
}

void hs_request_stop(hs_server *s)
{
    atomic_store(&s->stop, true);
}

int hs_port(const hs_server *s)
{
    return s->port;
}

/* ---- socket I/O in slices ------------------------------------------------ */

/* Wait for `events` on the connection: 1 ready, 0 timeout, -1 stopping. */
static int wait_fd(hs_conn *c, short events, int64_t deadline)
{
    for (;;) {
        if (hs_stopping(c))
            return -1;
        int64_t left = deadline - fixture_now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {c->fd, events, 0};
        int n = poll(&p, 1, left < SLICE_MS ? (int)left : SLICE_MS);
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

int hs_send_raw(hs_conn *c, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        if (hs_stopping(c))
            return -1;
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            if (wait_fd(c, POLLOUT, fixture_now_ms() + SLICE_MS) < 0)
                return -1;
        } else {
            return -1; /* what the peer sent before it went away is still read */
        }
    }
    return 0;
}

/* Read what is there into c->in: >0 bytes, 0 timeout, -1 closed or stopping. */
static int fill(hs_conn *c, int64_t deadline)
{
    if (c->gone)
        return -1;
    int w = wait_fd(c, POLLIN, deadline);
    if (w <= 0) {
        c->gone = w < 0;
        return w;
    }
    char tmp[65536];
    ssize_t n = recv(c->fd, tmp, sizeof(tmp), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0) {
        c->gone = true;
        return -1;
    }
    if (pl_buf_append(&c->in, tmp, (size_t)n) != 0)
        fail_msg("hostile server: out of memory");
    return (int)n;
}

static void consume(pl_buf *b, size_t n)
{
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

/* ---- frames -------------------------------------------------------------- */

size_t hs_frame_header(unsigned char *out, bool fin, unsigned opcode, uint64_t declared)
{
    out[0] = (unsigned char)((fin ? 0x80 : 0) | (opcode & 0x0F));
    if (declared < 126) {
        out[1] = (unsigned char)declared;
        return 2;
    }
    if (declared <= 0xFFFF) {
        out[1] = 126;
        out[2] = (unsigned char)(declared >> 8);
        out[3] = (unsigned char)declared;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (unsigned char)(declared >> (56 - 8 * i));
    return 10;
}

int hs_send_frame(hs_conn *c, bool fin, unsigned opcode, const void *payload, size_t len)
{
    unsigned char head[14];
    size_t n = hs_frame_header(head, fin, opcode, len);
    if (hs_send_raw(c, head, n) != 0)
        return -1;
    return len ? hs_send_raw(c, payload, len) : 0;
}

int hs_send_textf(hs_conn *c, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *text = malloc((size_t)n + 1);
    if (!text)
        fail_msg("hostile server: out of memory");
    vsnprintf(text, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    int rc = hs_send_frame(c, true, HS_OP_TEXT, text, (size_t)n);
    free(text);
    return rc;
}

int hs_send_zstd(hs_conn *c, const void *json, size_t len)
{
    pl_buf z = PL_BUF_INIT;
    if (pl_compress(PL_COMPRESS_ZSTD, 1, NULL, json, len, &z) != PL_COMPRESS_OK)
        fail_msg("hostile server: zstd failed");
    int rc = hs_send_frame(c, true, HS_OP_BINARY, z.data, z.len);
    pl_buf_free(&z);
    return rc;
}

int hs_send_hello(hs_conn *c, uint64_t max_message_bytes)
{
    const char *proto = c->srv->subprotocol[0] ? c->srv->subprotocol : "parley.v1";
    return hs_send_textf(c,
                         "{\"type\":\"hello\",\"protocol\":\"%s\",\"max_message_bytes\":%llu,"
                         "\"heartbeat_s\":30,\"idempotency_window_s\":600,"
                         "\"server\":\"hostile/1\"}",
                         proto, (unsigned long long)max_message_bytes);
}

/* Parse one whole frame from c->in into c->payload: 1 done, 0 incomplete,
 * -1 a frame no client may send. */
static int parse_frame(hs_conn *c, hs_frame *f)
{
    const unsigned char *p = (const unsigned char *)c->in.data;
    size_t have = c->in.len;
    if (have < 2)
        return 0;
    size_t head = 2;
    uint64_t len = p[1] & 0x7F;
    if (len == 126)
        head = 4;
    else if (len == 127)
        head = 10;
    bool masked = p[1] & 0x80;
    if (have < head + (masked ? 4 : 0))
        return 0;
    if (head == 4)
        len = (uint64_t)p[2] << 8 | p[3];
    else if (head == 10)
        for (int i = 0, j = 2; i < 8; i++, j++)
            len = i ? len << 8 | p[j] : p[j];
    if (len > CLIENT_FRAME_MAX)
        return -1;
    const unsigned char *mask = p + head;
    if (masked)
        head += 4;
    if (have < head + len)
        return 0;
    pl_buf_reset(&c->payload);
    if (pl_buf_reserve(&c->payload, (size_t)len + 1) != 0)
        fail_msg("hostile server: out of memory");
    for (size_t i = 0; i < len; i++)
        c->payload.data[i] = (char)(p[head + i] ^ (masked ? mask[i % 4] : 0));
    c->payload.len = (size_t)len;
    c->payload.data[len] = '\0';
    f->opcode = p[0] & 0x0F;
    f->fin = p[0] & 0x80;
    f->payload = (unsigned char *)c->payload.data;
    f->len = (size_t)len;
    consume(&c->in, head + (size_t)len);
    hs_server *s = c->srv;
    switch (f->opcode) {
    case HS_OP_PING: COUNT(s, s->counts.pings++); break;
    case HS_OP_PONG: COUNT(s, s->counts.pongs++); break;
    case HS_OP_CLOSE:
        COUNT(s, {
            s->counts.closes++;
            if (c->index < sizeof(s->counts.close_code) / sizeof(s->counts.close_code[0]))
                s->counts.close_code[c->index] =
                    len >= 2 ? (unsigned)f->payload[0] << 8 | f->payload[1] : 0;
        });
        break;
    default:
        if (f->fin)
            COUNT(s, s->counts.messages++);
    }
    return 1;
}

int hs_read_frame(hs_conn *c, int timeout_ms, hs_frame *f)
{
    int64_t deadline = fixture_now_ms() + timeout_ms;
    for (;;) {
        int rc = parse_frame(c, f);
        if (rc != 0) {
            if (rc < 0)
                c->gone = true;
            return rc;
        }
        rc = fill(c, deadline);
        if (rc <= 0)
            return rc;
    }
}

/* Read until a data message is whole, answering Pings: 1, 0 timeout, -1 gone. */
static int read_message(hs_conn *c, int timeout_ms)
{
    int64_t deadline = fixture_now_ms() + timeout_ms;
    pl_buf_reset(&c->message);
    bool binary = false;
    for (;;) {
        hs_frame f;
        int64_t left = deadline - fixture_now_ms();
        int rc = hs_read_frame(c, left > 0 ? (int)left : 0, &f);
        if (rc <= 0)
            return rc;
        if (f.opcode == HS_OP_PING) {
            hs_send_frame(c, true, HS_OP_PONG, f.payload, f.len);
            continue;
        }
        if (f.opcode == HS_OP_CLOSE) {
            c->gone = true;
            return -1;
        }
        if (f.opcode == HS_OP_PONG)
            continue;
        if (f.opcode == HS_OP_BINARY)
            binary = true;
        if (pl_buf_append(&c->message, (const char *)f.payload, f.len) != 0)
            fail_msg("hostile server: out of memory");
        if (f.fin)
            break;
    }
    if (binary) {
        pl_buf plain = PL_BUF_INIT;
        char err[160];
        if (pl_decompress(PL_COMPRESS_ZSTD, NULL, c->message.data, c->message.len,
                          CLIENT_FRAME_MAX, &plain, err, sizeof(err)) != PL_COMPRESS_OK)
            fail_msg("hostile server: a binary message that is not zstd: %s", err);
        pl_buf_free(&c->message);
        c->message = plain;
    }
    if (pl_buf_append(&c->message, "", 1) != 0) /* NUL-terminate */
        fail_msg("hostile server: out of memory");
    c->message.len--;
    return 1;
}

const char *hs_read_message(hs_conn *c, int timeout_ms)
{
    return read_message(c, timeout_ms) == 1 ? c->message.data : NULL;
}

bool hs_wait_closed(hs_conn *c, int timeout_ms)
{
    int64_t deadline = fixture_now_ms() + timeout_ms;
    for (;;) {
        hs_frame f;
        int64_t left = deadline - fixture_now_ms();
        if (left <= 0)
            return false;
        int rc = hs_read_frame(c, (int)left, &f);
        if (rc < 0)
            return !hs_stopping(c);
        if (rc == 1 && f.opcode == HS_OP_PING)
            hs_send_frame(c, true, HS_OP_PONG, f.payload, f.len);
    }
}

/* ---- the client's JSON ---------------------------------------------------- */

static const char *json_value(const char *json, const char *field)
{
    char key[64];
    snprintf(key, sizeof(key), "\"%s\":", field);
    const char *v = strstr(json, key);
    return v ? v + strlen(key) : NULL;
}

void hs_json_str(const char *json, const char *field, char *out, size_t size)
{
    const char *v = json_value(json, field);
    out[0] = '\0';
    if (!v || *v != '"')
        return;
    const char *end = strchr(v + 1, '"');
    if (end)
        snprintf(out, size, "%.*s", (int)(end - v - 1), v + 1);
}

long long hs_json_int(const char *json, const char *field)
{
    const char *v = json_value(json, field);
    return v ? strtoll(v, NULL, 10) : -1;
}

void hs_serve_echo(hs_conn *c, unsigned pieces)
{
    while (!c->gone) {
        const char *m = hs_read_message(c, 1000);
        if (!m)
            continue;
        char type[32], id[32], session[160];
        hs_json_str(m, "type", type, sizeof(type));
        hs_json_str(m, "id", id, sizeof(id));
        hs_json_str(m, "session", session, sizeof(session));
        if (strcmp(type, "message") != 0)
            continue;
        long long from = hs_json_int(m, "resume_from");
        hs_send_textf(c, "{\"type\":\"ack\",\"id\":\"%s\"}", id);
        for (unsigned seq = from > 0 ? (unsigned)from : 0; seq < pieces; seq++)
            hs_send_textf(c, "{\"type\":\"text\",\"id\":\"%s\",\"session\":\"%s\",\"seq\":%u,"
                          "\"content\":\"p%u\"}", id, session, seq, seq);
        hs_send_textf(c, "{\"type\":\"done\",\"id\":\"%s\",\"session\":\"%s\","
                      "\"stop_reason\":\"end_turn\",\"seq_end\":%u,"
                      "\"usage\":{\"input_tokens\":1,\"output_tokens\":%u}}",
                      id, session, pieces, pieces);
    }
}

/* ---- the upgrade ---------------------------------------------------------- */

/* Sec-WebSocket-Accept for a key (RFC 6455 4.2.2): base64(SHA-1(key + GUID)). */
static void accept_value(const char *key, char out[64])
{
    char joined[128];
    snprintf(joined, sizeof(joined), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(joined, strlen(joined), md, &mdlen, EVP_sha1(), NULL))
        fail_msg("hostile server: SHA-1 failed");
    EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
}

/* Read the upgrade request and answer 101. Returns 0, or -1 (not a WebSocket
 * upgrade, or the client went away). */
static int upgrade(hs_conn *c)
{
    int64_t deadline = fixture_now_ms() + 5000;
    char *end;
    for (;;) {
        if (c->in.len && (end = memmem(c->in.data, c->in.len, "\r\n\r\n", 4)))
            break;
        if (c->in.len > HANDSHAKE_MAX || fill(c, deadline) <= 0)
            return -1;
    }
    size_t head_len = (size_t)(end - c->in.data) + 4;
    char head[HANDSHAKE_MAX + 8];
    snprintf(head, sizeof(head), "%.*s", (int)head_len, c->in.data);
    consume(&c->in, head_len);
    char key[64] = "";
    for (char *line = strstr(head, "\r\n"); line; line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, "Sec-WebSocket-Key:", 18) == 0) {
            const char *v = line + 18;
            while (*v == ' ')
                v++;
            size_t n = strcspn(v, " \r\n");
            snprintf(key, sizeof(key), "%.*s", (int)n, v);
        }
    }
    if (!key[0])
        return -1;
    char accept[64];
    accept_value(key, accept);
    char answer[512];
    int n = snprintf(answer, sizeof(answer),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n", accept);
    if (c->srv->subprotocol[0])
        n += snprintf(answer + n, sizeof(answer) - (size_t)n,
                      "Sec-WebSocket-Protocol: %s\r\n", c->srv->subprotocol);
    n += snprintf(answer + n, sizeof(answer) - (size_t)n, "\r\n");
    return hs_send_raw(c, answer, (size_t)n);
}

static void *server_main(void *arg)
{
    hs_server *s = arg;
    unsigned index = 0;
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {s->listen_fd, POLLIN, 0};
        if (poll(&p, 1, SLICE_MS) <= 0)
            continue;
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        hs_conn c = {.srv = s, .fd = fd, .index = index};
        if (upgrade(&c) == 0) {
            COUNT(s, s->counts.connections++);
            s->script(&c, index++, s->arg);
        }
        close(fd);
        pl_buf_free(&c.in);
        pl_buf_free(&c.payload);
        pl_buf_free(&c.message);
    }
    pl_compress_thread_release();
    return NULL;
}

hs_server *hs_start(const char *subprotocol, hs_script *script, void *arg)
{
    hs_server *s = calloc(1, sizeof(*s));
    if (!s)
        fail_msg("hostile server: out of memory");
    snprintf(s->subprotocol, sizeof(s->subprotocol), "%s", subprotocol ? subprotocol : "");
    s->script = script;
    s->arg = arg;
    pthread_mutex_init(&s->lock, NULL);
    s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    if (s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(s->listen_fd, 16) != 0 ||
        getsockname(s->listen_fd, (struct sockaddr *)&a, &alen) != 0)
        fail_msg("hostile server: cannot listen on loopback: %s", strerror(errno));
    s->port = ntohs(a.sin_port);
    if (pthread_create(&s->thread, NULL, server_main, s) != 0)
        fail_msg("hostile server: cannot start its thread");
    return s;
}

void hs_stop(hs_server *s)
{
    if (!s)
        return;
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
