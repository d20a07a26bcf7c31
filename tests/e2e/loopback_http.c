#include "loopback_http.h"

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
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#define REQUEST_MAX 65536
#define ANSWER_MAX 65536
/* A client that sends nothing for this long is given up on. */
#define READ_TIMEOUT_MS 5000

struct loopback_http {
    int listen_fd;
    int stop_pipe[2];
    int port;
    pthread_t thread;
    loopback_answer_fn *answer;
    void *opaque;
    int pace_ms;          /* 0: the answer in one write */
    atomic_uint requests;
};

/* The body's length from the headers (0 when none is declared). */
static size_t content_length(const char *headers)
{
    for (const char *p = headers; (p = strchr(p, '\n')); p++)
        if (!strncasecmp(p + 1, "content-length:", 15))
            return (size_t)strtoul(p + 16, NULL, 10);
    return 0;
}

/* Read one request into buf; false when the client went away first. */
static bool read_request(int fd, char *buf, size_t size)
{
    size_t len = 0;
    for (;;) {
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end && len >= (size_t)(end + 4 - buf) + content_length(buf))
            return true;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (len + 1 >= size || poll(&p, 1, READ_TIMEOUT_MS) != 1)
            return false;
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n <= 0)
            return false;
        len += (size_t)n;
    }
}

static void write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n <= 0)
            return;
        data += n;
        len -= (size_t)n;
    }
}

/* The answer's parts, pace_ms apart; a stop cuts the wait short. */
static void write_paced(loopback_http *srv, int fd, const char *answer)
{
    for (const char *part = answer;;) {
        const char *end = strchr(part, '\f');
        write_all(fd, part, end ? (size_t)(end - part) : strlen(part));
        if (!end)
            return;
        struct pollfd p = {.fd = srv->stop_pipe[0], .events = POLLIN};
        if (poll(&p, 1, srv->pace_ms) != 0)
            return;
        part = end + 1;
    }
}

static void *serve(void *arg)
{
    loopback_http *srv = arg;
    char *request = malloc(REQUEST_MAX), *answer = malloc(ANSWER_MAX);
    for (;;) {
        struct pollfd p[2] = {{.fd = srv->listen_fd, .events = POLLIN},
                              {.fd = srv->stop_pipe[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0 || p[1].revents)
            break;
        int fd = accept(srv->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        if (read_request(fd, request, REQUEST_MAX)) {
            answer[0] = '\0';
            srv->answer(request, answer, ANSWER_MAX, srv->opaque);
            if (srv->pace_ms > 0)
                write_paced(srv, fd, answer);
            else
                write_all(fd, answer, strlen(answer));
            atomic_fetch_add(&srv->requests, 1);
        }
        close(fd);
    }
    free(request);
    free(answer);
    return NULL;
}

loopback_http *loopback_http_start_paced(loopback_answer_fn *answer, void *opaque,
                                         int pace_ms)
{
    loopback_http *srv = calloc(1, sizeof(*srv));
    assert_non_null(srv);
    srv->answer = answer;
    srv->opaque = opaque;
    srv->pace_ms = pace_ms;
    srv->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(srv->listen_fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(srv->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(srv->listen_fd, 16), 0);
    assert_int_equal(getsockname(srv->listen_fd, (struct sockaddr *)&a, &alen), 0);
    srv->port = ntohs(a.sin_port);
    assert_int_equal(pipe(srv->stop_pipe), 0);
    assert_int_equal(pthread_create(&srv->thread, NULL, serve, srv), 0);
    return srv;
}

loopback_http *loopback_http_start(loopback_answer_fn *answer, void *opaque)
{
    return loopback_http_start_paced(answer, opaque, 0);
}

int loopback_http_port(const loopback_http *srv)
{
    return srv->port;
}

unsigned loopback_http_requests(loopback_http *srv)
{
    return atomic_load(&srv->requests);
}

void loopback_http_stop(loopback_http *srv)
{
    write_all(srv->stop_pipe[1], "x", 1);
    pthread_join(srv->thread, NULL);
    close(srv->listen_fd);
    close(srv->stop_pipe[0]);
    close(srv->stop_pipe[1]);
    free(srv);
}
