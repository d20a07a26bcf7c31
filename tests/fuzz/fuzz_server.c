#include "fuzz_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct fz_server {
    int listener;
    fz_conn_fn *fn;
    void *arg;
} fz_server;

void fz_fail(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "fuzz: %s\n", msg);
    const char *path = getenv("FUZZ_FINDINGS_LOG");
    FILE *f = path ? fopen(path, "a") : NULL;
    if (f) {
        fprintf(f, "pid %ld: %s\n", (long)getpid(), msg);
        fclose(f);
    }
    abort();
}

int64_t fz_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct fz_conn {
    fz_server *server;
    int fd;
} fz_conn;

static void *handle(void *arg)
{
    fz_conn *c = arg;
    c->server->fn(c->fd, c->server->arg);
    close(c->fd);
    free(c);
    return NULL;
}

/* A thread per connection: the client reconnects while its first
 * connection is still being served, and must be answered at once. */
static void *serve(void *arg)
{
    fz_server *s = arg;
    pthread_attr_t detached;
    pthread_attr_init(&detached);
    pthread_attr_setdetachstate(&detached, PTHREAD_CREATE_DETACHED);
    for (;;) {
        int fd = accept(s->listener, NULL, NULL);
        if (fd < 0) {
            FZ_CHECK(errno == EINTR || errno == ECONNABORTED || errno == EMFILE);
            continue;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        fz_conn *c = malloc(sizeof(*c));
        FZ_CHECK(c);
        *c = (fz_conn){s, fd};
        pthread_t t;
        FZ_CHECK(pthread_create(&t, &detached, handle, c) == 0);
    }
    return NULL;
}

unsigned short fz_server_start(fz_conn_fn *fn, void *arg)
{
    static fz_server s;
    s.fn = fn;
    s.arg = arg;
    s.listener = socket(AF_INET, SOCK_STREAM, 0);
    FZ_CHECK(s.listener >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    FZ_CHECK(bind(s.listener, (struct sockaddr *)&a, sizeof(a)) == 0);
    FZ_CHECK(listen(s.listener, 64) == 0);
    FZ_CHECK(getsockname(s.listener, (struct sockaddr *)&a, &alen) == 0);
    pthread_t t;
    FZ_CHECK(pthread_create(&t, NULL, serve, &s) == 0);
    pthread_detach(t);
    return ntohs(a.sin_port);
}

bool fz_wait_readable(int fd, int64_t deadline_ms)
{
    for (;;) {
        int64_t left = deadline_ms - fz_now_ms();
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return true;
        if (n < 0 && errno != EINTR)
            return false;
    }
}

/* One read within the deadline: >0 bytes, 0 when closed, -1 on failure. */
static long read_some(int fd, void *buf, size_t size, int64_t deadline_ms)
{
    if (!fz_wait_readable(fd, deadline_ms))
        return -1;
    long n;
    do
        n = recv(fd, buf, size, 0);
    while (n < 0 && errno == EINTR);
    return n;
}

long fz_read_head(int fd, char *buf, size_t size, size_t *got, int64_t deadline_ms)
{
    *got = 0;
    while (*got + 1 < size) {
        long n = read_some(fd, buf + *got, size - 1 - *got, deadline_ms);
        if (n <= 0)
            return -1;
        *got += (size_t)n;
        buf[*got] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end)
            return end + 4 - buf;
    }
    return -1;
}

bool fz_skip(int fd, uint64_t n, int64_t deadline_ms)
{
    char buf[4096];
    while (n > 0) {
        long r = read_some(fd, buf, n < sizeof(buf) ? n : sizeof(buf), deadline_ms);
        if (r <= 0)
            return false;
        n -= (uint64_t)r;
    }
    return true;
}

bool fz_read_exact(int fd, void *buf, size_t n, int64_t deadline_ms)
{
    size_t got = 0;
    while (got < n) {
        long r = read_some(fd, (char *)buf + got, n - got, deadline_ms);
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

void fz_write_all(int fd, const void *data, size_t len, size_t piece)
{
    const char *p = data;
    while (len > 0) {
        size_t n = piece && piece < len ? piece : len;
        long w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* the client hung up: what it did with the rest is its business */
        p += w;
        len -= (size_t)w;
    }
}

void fz_finish(int fd, int64_t deadline_ms)
{
    shutdown(fd, SHUT_WR);
    char buf[4096];
    while (read_some(fd, buf, sizeof(buf), deadline_ms) > 0)
        ;
}

void fz_hold(int fd, int wake_fd)
{
    shutdown(fd, SHUT_WR);
    int64_t deadline = fz_now_ms() + FZ_HOLD_MAX_MS;
    char buf[4096];
    for (;;) {
        int64_t left = deadline - fz_now_ms();
        if (left <= 0)
            return;
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = wake_fd, .events = POLLIN}};
        if (poll(p, 2, (int)left) < 0 && errno != EINTR)
            return;
        if (p[1].revents)
            return; /* the round is over */
        if (p[0].revents && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) == 0)
            return; /* the client hung up */
    }
}

void fz_wake_init(int wake[2])
{
    FZ_CHECK(pipe2(wake, O_NONBLOCK | O_CLOEXEC) == 0);
}

void fz_wake(int wake[2])
{
    FZ_CHECK(write(wake[1], "x", 1) == 1);
}

void fz_wake_reset(int wake[2])
{
    char buf[64];
    while (read(wake[0], buf, sizeof(buf)) > 0)
        ;
}

void fz_refuse(int fd)
{
    char head[16384];
    size_t got;
    int64_t deadline = fz_now_ms() + 1000;
    if (fz_read_head(fd, head, sizeof(head), &got, deadline) < 0)
        return;
    static const char answer[] = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                                 "Content-Length: 7\r\nConnection: close\r\n\r\nrefused";
    fz_write_all(fd, answer, sizeof(answer) - 1, 0);
    fz_finish(fd, fz_now_ms() + 200);
}

bool fz_header(const char *head, const char *name, char *out, size_t size)
{
    size_t nlen = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line; line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, name, nlen) != 0)
            continue;
        const char *v = line + nlen;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t vlen = strcspn(v, "\r\n");
        while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        snprintf(out, size, "%.*s", (int)vlen, v);
        return true;
    }
    return false;
}
