/* The I/O thread's sleep on libcurl's event interface (io_events.h). */
#include "io_events.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"

/* libcurl says which events of socket s it wants now. A socket it never
 * told us of has no socketp yet: it is added, and marked so with ev. */
static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    pl_io_events *ev = userp;
    if (what == CURL_POLL_REMOVE) {
        /* It may be closed already, which removed it: nothing to undo. */
        epoll_ctl(ev->epfd, EPOLL_CTL_DEL, s, NULL);
        return 0;
    }
    struct epoll_event e = {.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) |
                                      ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u),
                            .data.fd = s};
    int op = socketp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(ev->epfd, op, s, &e) != 0) {
        /* A number that libcurl closed and got again, or a socket that its
         * close took out of the set: the other operation fits. */
        op = op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
        if (epoll_ctl(ev->epfd, op, s, &e) != 0)
            return -1; /* libcurl fails the transfers of s */
    }
    if (!socketp)
        curl_multi_assign(ev->multi, s, ev);
    return 0;
}

/* libcurl's next duty: timeout_ms from now, 0 at once, -1 none. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    pl_io_events *ev = userp;
    ev->curl_due_ms = timeout_ms < 0 ? -1 : pl_monotonic_ms() + timeout_ms;
    return 0;
}

int pl_io_events_init(pl_io_events *ev, CURLM *multi, bool sockets)
{
    *ev = (pl_io_events){.multi = multi, .sockets = sockets, .epfd = -1, .wake_fd = -1,
                         .curl_due_ms = -1};
    if (!sockets)
        return 0;
    ev->epfd = epoll_create1(EPOLL_CLOEXEC);
    ev->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event e = {.events = EPOLLIN, .data.fd = ev->wake_fd};
    if (ev->epfd < 0 || ev->wake_fd < 0 || epoll_ctl(ev->epfd, EPOLL_CTL_ADD, ev->wake_fd, &e)) {
        int err = errno;
        pl_io_events_free(ev);
        errno = err;
        return -1;
    }
    ev->ready = pl_xcalloc(PL_IO_EVENTS_BATCH, sizeof(*ev->ready));
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, ev);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, ev);
    return 0;
}

/* After curl_multi_cleanup, which may still call the callbacks. */
void pl_io_events_free(pl_io_events *ev)
{
    if (ev->epfd >= 0)
        close(ev->epfd);
    if (ev->wake_fd >= 0)
        close(ev->wake_fd);
    free(ev->ready);
    ev->ready = NULL;
    ev->epfd = ev->wake_fd = -1;
}

void pl_io_events_wake(pl_io_events *ev)
{
    if (!ev->sockets) {
        curl_multi_wakeup(ev->multi);
        return;
    }
    uint64_t one = 1;
    /* EAGAIN only when the counter is full: a wake is pending anyway. */
    ssize_t n = write(ev->wake_fd, &one, sizeof(one));
    (void)n;
}

static short poll_events(short curl_events)
{
    return (short)(((curl_events & CURL_WAIT_POLLIN) ? POLLIN : 0) |
                   ((curl_events & CURL_WAIT_POLLPRI) ? POLLPRI : 0) |
                   ((curl_events & CURL_WAIT_POLLOUT) ? POLLOUT : 0));
}

/* An error or a hang-up shows as readable: the read finds it (curl's
 * waitfd has no bits for them, and a refused connect must not go unseen
 * while poll() keeps returning at once for it). */
static short curl_revents(short revents)
{
    return (short)(((revents & (POLLIN | POLLERR | POLLHUP)) ? CURL_WAIT_POLLIN : 0) |
                   ((revents & POLLPRI) ? CURL_WAIT_POLLPRI : 0) |
                   ((revents & POLLOUT) ? CURL_WAIT_POLLOUT : 0));
}

void pl_io_events_wait(pl_io_events *ev, struct curl_waitfd *extra, unsigned nextra,
                       int timeout_ms)
{
    if (!ev->sockets) {
        curl_multi_poll(ev->multi, extra, nextra, timeout_ms, NULL);
        return;
    }
    if (ev->curl_due_ms >= 0) {
        int64_t left = ev->curl_due_ms - pl_monotonic_ms();
        if (left < timeout_ms)
            timeout_ms = left < 0 ? 0 : (int)left;
    }
    int n = 0;
    if (nextra == 0) {
        n = epoll_wait(ev->epfd, ev->ready, PL_IO_EVENTS_BATCH, timeout_ms);
    } else {
        /* The epoll set is one descriptor among the extra ones (which may
         * be libcurl's sockets too, waited on for other events). */
        struct pollfd fds[nextra + 1];
        fds[0] = (struct pollfd){.fd = ev->epfd, .events = POLLIN};
        for (unsigned i = 0; i < nextra; i++)
            fds[i + 1] = (struct pollfd){.fd = extra[i].fd,
                                         .events = poll_events(extra[i].events)};
        int rc = poll(fds, nextra + 1, timeout_ms);
        for (unsigned i = 0; i < nextra; i++)
            extra[i].revents = rc > 0 ? curl_revents(fds[i + 1].revents) : 0;
        if (rc > 0 && (fds[0].revents & POLLIN))
            n = epoll_wait(ev->epfd, ev->ready, PL_IO_EVENTS_BATCH, 0);
    }
    ev->nready = n > 0 ? n : 0;
}

void pl_io_events_run(pl_io_events *ev)
{
    int running;
    if (!ev->sockets) {
        curl_multi_perform(ev->multi, &running);
        return;
    }
    for (int i = 0; i < ev->nready; i++) {
        const struct epoll_event *e = &ev->ready[i];
        if (e->data.fd == ev->wake_fd) {
            uint64_t count;
            ssize_t n = read(ev->wake_fd, &count, sizeof(count));
            (void)n;
            continue;
        }
        int mask = ((e->events & (EPOLLIN | EPOLLHUP)) ? CURL_CSELECT_IN : 0) |
                   ((e->events & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
                   ((e->events & EPOLLERR) ? CURL_CSELECT_ERR : 0);
        curl_multi_socket_action(ev->multi, e->data.fd, mask, &running);
    }
    ev->nready = 0;
    /* The socket actions ran the transfers due by then; this runs those
     * due since, and the timer that brought the wait to an end. */
    if (ev->curl_due_ms >= 0 && pl_monotonic_ms() >= ev->curl_due_ms) {
        ev->curl_due_ms = -1; /* the call sets the next one */
        curl_multi_socket_action(ev->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
}
