/*
 * How the I/O thread sleeps and what it wakes libcurl for: libcurl's
 * event interface (curl_multi_socket_action) over an epoll set, instead of
 * curl_multi_poll + curl_multi_perform.
 *
 * Why: libcurl 8.14's curl_multi_perform runs every transfer of the multi
 * handle on every call, and an HTTP transfer waiting for its answer costs a
 * recv(2) and a poll(2) each time it runs. With N requests in flight every
 * wake-up cost N times that: it was most of the HTTP path's CPU
 * (docs/benchmarks.md, "Issue 16"). socket_action runs only the transfers
 * of the socket that has something (all the streams of one connection on
 * HTTP/2) and those whose timer is due.
 *
 * Only where it holds up: HTTP/1.1 (http://), where a socket is one
 * transfer's. Over HTTP/2 it is cheaper too at a few hundred conversations
 * (libcurl alone, tests/bench/curl_floor: 220-245 against 290-400 us per
 * request at 200), but libcurl 8.14 handles its queue of transfers waiting
 * for a connection badly under it: each transfer that connects or ends
 * moves the whole queue back to be tried again (lib/multi.c,
 * process_pending_handles), and with thousands waiting libcurl alone spent
 * 660-2,500 us per request with a p99 up to 49 s, while parley's requests
 * timed out in that queue (connect.timeout.ms) at 10,000 conversations. So
 * there and on the native protocol the thread keeps curl_multi_poll and
 * curl_multi_perform (`sockets` false); docs/benchmarks.md, "Issue 16",
 * has the figures.
 *
 * Everything here runs on the I/O thread but pl_io_events_wake().
 */
#ifndef PL_IO_EVENTS_H
#define PL_IO_EVENTS_H

#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>

#define PL_IO_EVENTS_BATCH 256

struct epoll_event;

typedef struct pl_io_events {
    CURLM *multi;
    bool sockets;            /* socket_action over epoll; false: poll + perform */
    int epfd;                /* libcurl's sockets and wake_fd */
    int wake_fd;             /* an eventfd: pl_io_events_wake() */
    int64_t curl_due_ms;     /* libcurl's timer (monotonic ms); -1: none */
    int nready;              /* events that the last wait found */
    struct epoll_event *ready;
} pl_io_events;

/* With `sockets`, take over multi's socket and timer callbacks. Returns 0
 * or -1 (errno). */
int pl_io_events_init(pl_io_events *ev, CURLM *multi, bool sockets);
void pl_io_events_free(pl_io_events *ev);

/* Wake the thread out of pl_io_events_wait() (any thread; async-safe). */
void pl_io_events_wake(pl_io_events *ev);

/*
 * Sleep until one of libcurl's sockets has something, libcurl's timer is
 * due, a wake, one of extra (their revents filled in, as curl_multi_poll
 * does) is ready, or timeout_ms passed.
 */
void pl_io_events_wait(pl_io_events *ev, struct curl_waitfd *extra, unsigned nextra,
                       int timeout_ms);

/* Let libcurl act on what the wait found: the transfers of the ready
 * sockets, then those whose timer is due. */
void pl_io_events_run(pl_io_events *ev);

#endif
