#include "blackhole_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Far more than a test opens: clients keep a few connections each. */
#define MAX_PAIRS 512

typedef struct pair {
    int fd[2];   /* the client's side, the upstream side; -1: closed */
    bool black;  /* swallowed: never polled, read or written again */
} pair;

struct blackhole_proxy {
    int listen_fd, port, upstream_port;
    int ctl[2];  /* commands to the thread: 'S' swallow, 'Q' quit */
    pthread_t thread;
    pair pairs[MAX_PAIRS];
    size_t npairs; /* used slots, the thread's */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t accepted, swallow_asked, swallow_done, swallowed;
};

static void pair_close(pair *pr)
{
    for (int i = 0; i < 2; i++)
        if (pr->fd[i] >= 0) {
            close(pr->fd[i]);
            pr->fd[i] = -1;
        }
}

static int connect_upstream(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void accept_one(blackhole_proxy *p)
{
    int cfd = accept(p->listen_fd, NULL, NULL);
    if (cfd < 0)
        return;
    int ufd = connect_upstream(p->upstream_port);
    pair *slot = NULL;
    for (size_t i = 0; i < p->npairs && !slot; i++)
        if (p->pairs[i].fd[0] < 0 && !p->pairs[i].black)
            slot = &p->pairs[i];
    if (!slot && p->npairs < MAX_PAIRS)
        slot = &p->pairs[p->npairs++];
    if (ufd < 0 || !slot) {
        close(cfd);
        if (ufd >= 0)
            close(ufd);
        return;
    }
    int one = 1;
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    *slot = (pair){.fd = {cfd, ufd}};
    pthread_mutex_lock(&p->mu);
    p->accepted++;
    pthread_mutex_unlock(&p->mu);
}

static bool write_all(int fd, const char *b, size_t n)
{
    while (n) {
        ssize_t k = write(fd, b, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        b += k;
        n -= (size_t)k;
    }
    return true;
}

/* Moves what side `from` of pr has to the other side; closes both when
 * either end is gone. */
static void forward(pair *pr, int from)
{
    char buf[16384];
    ssize_t n = read(pr->fd[from], buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0 || !write_all(pr->fd[1 - from], buf, (size_t)n))
        pair_close(pr);
}

static void swallow_all(blackhole_proxy *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->npairs; i++)
        if (p->pairs[i].fd[0] >= 0 && !p->pairs[i].black) {
            p->pairs[i].black = true;
            n++;
        }
    pthread_mutex_lock(&p->mu);
    p->swallowed = n;
    p->swallow_done++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void *proxy_main(void *arg)
{
    blackhole_proxy *p = arg;
    struct pollfd fds[2 + 2 * MAX_PAIRS];
    int owner[2 + 2 * MAX_PAIRS]; /* pair index * 2 + side, per pollfd */
    for (;;) {
        nfds_t n = 0;
        fds[n++] = (struct pollfd){.fd = p->listen_fd, .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = p->ctl[0], .events = POLLIN};
        for (size_t i = 0; i < p->npairs; i++) {
            if (p->pairs[i].fd[0] < 0 || p->pairs[i].black)
                continue;
            for (int side = 0; side < 2; side++) {
                owner[n] = (int)i * 2 + side;
                fds[n++] = (struct pollfd){.fd = p->pairs[i].fd[side], .events = POLLIN};
            }
        }
        if (poll(fds, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (fds[1].revents) {
            char cmd = 'Q';
            if (read(p->ctl[0], &cmd, 1) != 1 || cmd == 'Q')
                break;
            swallow_all(p);
            continue; /* the poll set changed */
        }
        if (fds[0].revents & POLLIN)
            accept_one(p);
        for (nfds_t k = 2; k < n; k++) {
            pair *pr = &p->pairs[owner[k] / 2];
            if (fds[k].revents && pr->fd[0] >= 0)
                forward(pr, owner[k] % 2);
        }
    }
    for (size_t i = 0; i < p->npairs; i++)
        pair_close(&p->pairs[i]);
    return NULL;
}

blackhole_proxy *blackhole_proxy_start(int upstream_port)
{
    blackhole_proxy *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->upstream_port = upstream_port;
    p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (p->listen_fd < 0 || bind(p->listen_fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(p->listen_fd, 128) != 0 ||
        getsockname(p->listen_fd, (struct sockaddr *)&a, &len) != 0 || pipe(p->ctl) != 0) {
        if (p->listen_fd >= 0)
            close(p->listen_fd);
        free(p);
        return NULL;
    }
    p->port = ntohs(a.sin_port);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pthread_create(&p->thread, NULL, proxy_main, p) != 0) {
        close(p->listen_fd);
        close(p->ctl[0]);
        close(p->ctl[1]);
        free(p);
        return NULL;
    }
    return p;
}

int blackhole_proxy_port(const blackhole_proxy *p)
{
    return p->port;
}

size_t blackhole_proxy_swallow(blackhole_proxy *p)
{
    pthread_mutex_lock(&p->mu);
    size_t ticket = ++p->swallow_asked;
    pthread_mutex_unlock(&p->mu);
    char cmd = 'S';
    if (write(p->ctl[1], &cmd, 1) != 1)
        return 0;
    pthread_mutex_lock(&p->mu);
    while (p->swallow_done < ticket)
        pthread_cond_wait(&p->cv, &p->mu);
    size_t n = p->swallowed;
    pthread_mutex_unlock(&p->mu);
    return n;
}

size_t blackhole_proxy_accepted(blackhole_proxy *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->accepted;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void blackhole_proxy_stop(blackhole_proxy *p)
{
    if (!p)
        return;
    char cmd = 'Q';
    if (write(p->ctl[1], &cmd, 1) == 1)
        pthread_join(p->thread, NULL);
    close(p->listen_fd);
    close(p->ctl[0]);
    close(p->ctl[1]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}
