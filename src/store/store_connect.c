/*
 * The store's connection started off the I/O thread; see store_connect.h.
 *
 * The attempt is one block shared by the caller and the thread, with a
 * reference each; whoever lets go last frees it. The thread publishes its
 * context with a release store of `done` before it writes the eventfd, so
 * a caller that sees `done` (acquire) owns a complete context. A context
 * nobody took is freed by the last one out: it has no event hooks yet, so
 * redisAsyncFree calls nothing back, on whichever thread that is.
 */
#include "store_connect.h"

#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "alloc.h"

struct pl_store_resolving {
    atomic_int refs;             /* the caller's and the thread's */
    atomic_bool done;            /* the thread has set ac */
    redisAsyncContext *ac;       /* the thread's result until taken */
    pl_store_connect_fn *connect;
    int port;
    int fd;                      /* an eventfd, written once done */
    char host[];
};

static bool is_address(const char *host)
{
    unsigned char addr[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

static void release(pl_store_resolving *r)
{
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (r->ac)
        redisAsyncFree(r->ac); /* nobody took it */
    close(r->fd);
    free(r);
}

static void *resolve_and_connect(void *arg)
{
    pl_store_resolving *r = arg;
    r->ac = r->connect(r->host, r->port); /* may block for the resolver's timeout */
    atomic_store_explicit(&r->done, true, memory_order_release);
    uint64_t one = 1;
    ssize_t n;
    do /* cannot fill: written once, 8 bytes */
        n = write(r->fd, &one, sizeof(one));
    while (n < 0 && errno == EINTR);
    release(r);
    return NULL;
}

/* A detached thread with every signal blocked: the host program's
 * handlers are not for a helper of ours. Returns 0 or an errno value. */
static int start_thread(pl_store_resolving *r)
{
    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc != 0)
        return rc;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    pthread_t thread;
    rc = pthread_create(&thread, &attr, resolve_and_connect, r);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    pthread_attr_destroy(&attr);
    return rc;
}

pl_store_resolving *pl_store_connect_start(const char *host, int port,
                                           pl_store_connect_fn *connect,
                                           const pl_logger *log, redisAsyncContext **now)
{
    if (!connect)
        connect = redisAsyncConnect;
    *now = NULL;
    if (is_address(host)) {
        *now = connect(host, port);
        return NULL;
    }
    size_t len = strlen(host);
    pl_store_resolving *r = pl_xcalloc(1, sizeof(*r) + len + 1);
    memcpy(r->host, host, len + 1);
    r->connect = connect;
    r->port = port;
    atomic_init(&r->refs, 2);
    atomic_init(&r->done, false);
    r->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int err = r->fd < 0 ? errno : start_thread(r);
    if (err == 0)
        return r;
    if (r->fd >= 0)
        close(r->fd);
    free(r);
    pl_log(log, PARLEY_LOG_WARNING, "store",
           "session store: no thread to resolve %s on (%s); resolving it on the I/O thread",
           host, strerror(err));
    *now = connect(host, port);
    return NULL;
}

int pl_store_resolving_fd(const pl_store_resolving *r)
{
    return r->fd;
}

bool pl_store_resolving_take(pl_store_resolving *r, redisAsyncContext **ac)
{
    if (!atomic_load_explicit(&r->done, memory_order_acquire))
        return false;
    *ac = r->ac;
    r->ac = NULL;
    release(r);
    return true;
}

void pl_store_resolving_abandon(pl_store_resolving *r)
{
    release(r);
}

bool pl_store_connect_unresolved(const redisAsyncContext *ac)
{
    /* REDIS_ERR_OTHER carries getaddrinfo's failures, and "Can't create
     * socket"/"Can't bind socket" (net.c), which say what they are. */
    return ac->err == REDIS_ERR_OTHER && strncmp(ac->errstr, "Can't ", 6) != 0;
}
