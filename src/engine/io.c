/*
 * The I/O thread: the loop alone. It takes the sessions' orders
 * (submissions), runs the routes' timers (route_policy.c), lets the
 * transport (transport.h: ws_transport.c or http_transport.c) tend its
 * connections, sleeps in pl_io_events_wait() (io_events.h: libcurl's event
 * interface over epoll, or curl_multi_poll), lets libcurl act and hands
 * finished transfers to the transport; it publishes the statistics when
 * due. With a session store (store.h) it also takes the store orders,
 * waits on the store's connection beside libcurl's and runs its timers.
 * Everything here runs on that thread except pl_io_submit(), pl_io_store()
 * and the start and stop calls.
 */
#include "io.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "io_events.h"
#include "log.h"
#include "mpsc.h"
#include "owner.h"
#include "pool.h"
#include "route_policy.h"
#include "store.h"
#include "transport.h"

#define IO_POLL_MAX_MS 1000
/* How long pl_io_stop waits, at most, for the store to take the leases
 * back (the next owners need not wait for them to expire). */
#define STORE_LEAVE_MAX_MS 1000

struct pl_io {
    pl_io_sink sink; /* the sessions and the statistics */
    pl_io_settings set;
    CURLM *multi;
    pl_io_events events; /* how the thread sleeps and wakes libcurl */
    pthread_t thread;
    bool thread_started;
    /* Everything below but the submissions' producer side: the I/O thread
     * while it runs, then the thread that stopped it (PL_ASSERT_OWNER). */
    pl_owner owner;
    _Atomic bool stopping;
    pl_mpsc submissions; /* pl_io_request */
    pl_mpsc store_orders; /* pl_store_order */
    /* Set while the thread is in (or about to enter) its wait: only then
     * does a submission need pl_io_events_wake(), a system call. */
    _Atomic bool polling;

    pl_router router;        /* the requests in flight */
    pl_transport *transport; /* the dialect's */
    pl_store *store;         /* NULL: no session store (memory) */
    uint64_t rng;
    int64_t next_stats_ms;   /* 0: statistics are off */
    int64_t wakes_held_ms;   /* since when libcurl's reads hold wake-ups */
};

/* Wake-ups are held while libcurl reads (run_once), but a read
 * that goes on (a flood of messages, each inflated) must not keep the
 * workers waiting for its end. */
#define WAKES_HELD_MAX_MS 2

static void pass_on_held_wakes(void *arg)
{
    pl_io *io = arg;
    int64_t now = pl_monotonic_ms();
    if (now - io->wakes_held_ms < WAKES_HELD_MAX_MS)
        return;
    pl_pool_release_wakes(io->set.pool);
    pl_pool_hold_wakes(io->set.pool);
    io->wakes_held_ms = now;
}

/* libcurl's trace, at debug level: text and headers only, never payloads. */
static int trace_cb(CURL *easy, curl_infotype type, char *data, size_t size, void *userdata)
{
    (void)easy;
    pl_io *io = userdata;
    if (type == CURLINFO_TEXT || type == CURLINFO_HEADER_IN || type == CURLINFO_HEADER_OUT)
        pl_log_curl_trace(io->set.log, data, size);
    return 0;
}

static int64_t monotonic_ms(void)
{
    return pl_monotonic_ms();
}

/* The vendors' API over cleartext http://: HTTP/1.1, a connection per
 * request in flight. */
static bool one_transfer_per_socket(const pl_io_settings *s)
{
    return s->dialect != PL_DIALECT_NATIVE && strncasecmp(s->endpoint, "http://", 7) == 0;
}

static pl_transport *make_transport(pl_io *io, char *err, size_t err_size)
{
    const pl_io_settings *s = &io->set;
    pl_tx_conf conf = {
        .multi = io->multi,
        .easy = &io->set.easy,
        .endpoint = s->endpoint,
        .endpoint_shown = s->endpoint_shown,
        .dialect_shown = s->dialect_shown,
        .dialect = s->dialect,
        .api_key = s->api_key,
        .anthropic_version = s->anthropic_version,
        .compression = s->compression,
        .compression_dict = s->compression_dict,
        .connections = s->connections,
        .heartbeat_interval_s = s->heartbeat_interval_s,
        .connect_timeout_ms = s->connect_timeout_ms,
        .max_message_bytes = s->max_message_bytes,
        .reconnect_backoff_ms = s->reconnect_backoff_ms,
        .reconnect_backoff_max_ms = s->reconnect_backoff_max_ms,
        .stall_timeout_ms = s->stall_timeout_ms,
        .stall_ping_timeout_ms = s->stall_ping_timeout_ms,
        .http_idle_connections = s->http_idle_connections,
        .http_max_connections = s->http_max_connections,
        .counters = s->counters,
        .log = s->log,
        .rng = &io->rng,
        .ev = pl_router_events(&io->router),
    };
    return s->dialect == PL_DIALECT_NATIVE ? pl_ws_transport_new(&conf, err, err_size)
                                           : pl_http_transport_new(&conf, err, err_size);
}

static pl_store *make_store(pl_io *io, char *errstr, size_t errstr_size)
{
    const pl_io_settings *s = &io->set;
    pl_store_conf conf = {
        .url = s->store_url,
        .password = s->store_password,
        .key_prefix = s->store_key_prefix,
        .owner_name = s->store_owner,
        .lease_ms = s->store_lease_ms,
        .ttl_s = s->store_ttl_s,
        .timeout_ms = s->store_timeout_ms,
        .backoff_ms = s->reconnect_backoff_ms,
        .backoff_max_ms = s->reconnect_backoff_max_ms,
        .log = s->log,
        .rng = &io->rng,
        .ev = {io->sink.store_done, io->sink.lease_lost, io->sink.release},
    };
    io->store = pl_store_new(&conf, errstr, errstr_size);
    return io->store;
}

pl_io *pl_io_new(const pl_io_settings *settings, const pl_io_sink *sink, char *errstr,
                 size_t errstr_size)
{
    pl_io *io = pl_xcalloc(1, sizeof(*io));
    io->set = *settings;
    io->sink = *sink;
    /* libcurl's trace, at debug level only. */
    io->set.easy.trace = PL_LOG_ON(io->set.log, PARLEY_LOG_DEBUG) ? trace_cb : NULL;
    io->set.easy.trace_data = io;
    io->set.easy.connect_to = pl_easy_connect_to(settings->connect_to);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    io->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)getpid() ^
              (uint64_t)(uintptr_t)io;
    if (!io->rng)
        io->rng = 0x9E3779B97F4A7C15ull;
    pl_policy_conf policy = {
        .retry_max_attempts = settings->retry_max_attempts,
        .retry_backoff_ms = settings->retry_backoff_ms,
        .retry_backoff_max_ms = settings->retry_backoff_max_ms,
        .request_timeout_ms = settings->request_timeout_ms,
        .stall_timeout_ms = settings->stall_timeout_ms,
        .reply_max_bytes = settings->reply_max_bytes,
        .endpoint_shown = settings->endpoint_shown,
    };
    pl_router_init(&io->router, &policy, sink, settings->counters, settings->log, &io->rng,
                   monotonic_ms);
    io->router.long_read = pass_on_held_wakes;
    io->router.long_read_ctx = io;
    char err[160] = "could not create the curl multi handle";
    io->multi = curl_multi_init();
    /* libcurl's event interface where a socket is one transfer's
     * (io_events.h says why only there). */
    bool sockets = one_transfer_per_socket(settings);
    bool events = io->multi && pl_io_events_init(&io->events, io->multi, sockets) == 0;
    if (io->multi && !events)
        snprintf(err, sizeof(err), "could not create the I/O thread's epoll set");
    if (events)
        io->transport = make_transport(io, err, sizeof(err));
    if (!io->transport) {
        if (errstr && errstr_size)
            snprintf(errstr, errstr_size, "%s", err);
        if (io->multi)
            curl_multi_cleanup(io->multi);
        if (events)
            pl_io_events_free(&io->events);
        pl_router_free(&io->router);
        curl_slist_free_all(io->set.easy.connect_to);
        free(io);
        return NULL;
    }
    pl_router_set_transport(&io->router, io->transport);
    pl_mpsc_init(&io->submissions);
    pl_mpsc_init(&io->store_orders);
    if (settings->store_url && !make_store(io, errstr, errstr_size)) {
        pl_io_free(io);
        return NULL;
    }
    return io;
}

/* ---- orders from the sessions ------------------------------------------- */

static void drain_submissions(pl_io *io)
{
    PL_ASSERT_OWNER(&io->owner); /* the queue's one consumer */
    pl_mpsc_node *e = pl_mpsc_take_all(&io->submissions);
    int64_t now = pl_monotonic_ms();
    while (e) {
        pl_mpsc_node *next = e->next;
        pl_io_request *req = pl_mpsc_entry(e, pl_io_request, entry);
        if (req->op == PL_IO_SEND)
            pl_router_send(&io->router, req->id, req->owner, req->owner_id, req->frame,
                           req->frame_len, req->headers, req->needs_blocks, now);
        else
            pl_router_cancel(&io->router, req->id);
        free(req);
        e = next;
    }
}

/* Store orders go to the store; without one each ends at once. */
static void drain_store_orders(pl_io *io, int64_t now)
{
    PL_ASSERT_OWNER(&io->owner); /* the queue's one consumer */
    pl_mpsc_node *e = pl_mpsc_take_all(&io->store_orders);
    while (e) {
        pl_mpsc_node *next = e->next;
        pl_store_order *order = pl_mpsc_entry(e, pl_store_order, entry);
        if (io->store) {
            pl_store_submit(io->store, order, now);
        } else {
            pl_store_result r = {
                .status = PL_STORE_UNAVAILABLE,
                .message = "no session store is configured (session.store is memory)",
            };
            io->sink.store_done(order->owner, order, &r);
            io->sink.release(order->owner);
            pl_store_order_free(order);
        }
        e = next;
    }
}

/* ---- the loop ----------------------------------------------------------- */

/* Every transfer of the multi handle is the one transport's: its
 * CURLOPT_PRIVATE names the transport's connection or stream. */
static void handle_finished_transfers(pl_io *io)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(io->multi, &left)))
        if (msg->msg == CURLMSG_DONE)
            io->transport->ops->transfer_done(io->transport, msg->easy_handle,
                                              msg->data.result);
}

/* Publish the statistics when due; returns ms until they are due next. */
static int64_t publish_stats(pl_io *io, int64_t now)
{
    if (!io->next_stats_ms)
        return IO_POLL_MAX_MS;
    if (now >= io->next_stats_ms) {
        pl_io_stats_view v = {
            .transport = io->transport,
            .routes = pl_router_count(&io->router),
            .routes_waiting = pl_router_waiting(&io->router),
            .timers = pl_router_timers(&io->router),
            .store = io->store,
        };
        io->sink.stats(io->sink.stats_ctx, &v);
        /* Fixed steps from the start, but never a burst after a long pause. */
        io->next_stats_ms += io->set.stats_interval_ms;
        if (io->next_stats_ms <= now)
            io->next_stats_ms = now + io->set.stats_interval_ms;
    }
    return io->next_stats_ms - now;
}

/* The store's timers and buffered writes; its connection joins curl's
 * descriptors at extra[*slot] (-1: none). Returns ms until it is due. */
static int64_t tend_store(pl_io *io, int64_t now, struct curl_waitfd *extra, unsigned *nextra,
                          int *slot)
{
    if (!io->store)
        return IO_POLL_MAX_MS;
    int fd;
    short events;
    int64_t due = pl_store_tick(io->store, now, &fd, &events);
    if (fd >= 0) {
        *slot = (int)(*nextra)++;
        extra[*slot] = (struct curl_waitfd){
            .fd = fd,
            .events = (short)(((events & POLLIN) ? CURL_WAIT_POLLIN : 0) |
                              ((events & POLLOUT) ? CURL_WAIT_POLLOUT : 0)),
        };
    }
    return due;
}

/* Messages posted to sessions during one pass wake each worker once, at the
 * latest before the thread blocks in its wait. */
static void run_once(pl_io *io)
{
    PL_ASSERT_OWNER(&io->owner);
    const pl_transport_ops *ops = io->transport->ops;
    pl_pool_hold_wakes(io->set.pool);
    drain_submissions(io);
    int64_t now = pl_monotonic_ms();
    drain_store_orders(io, now);
    int64_t timeout = pl_router_run_timers(&io->router, now);
    int64_t stats_due = publish_stats(io, now);
    if (stats_due < timeout)
        timeout = stats_due;
    struct curl_waitfd extra[ops->max_waitfds(io->transport) + 2]; /* + the store's */
    unsigned nextra = 0;
    int64_t tended = ops->tick(io->transport, now, extra, &nextra);
    if (tended < timeout)
        timeout = tended;
    int store_slot = -1;
    int64_t store_due = tend_store(io, now, extra, &nextra, &store_slot);
    if (store_due < timeout)
        timeout = store_due;
    if (timeout > IO_POLL_MAX_MS)
        timeout = IO_POLL_MAX_MS;
    if (timeout < 0)
        timeout = 0;
    /* Announce the sleep, then look at the stack once more: a submitter
     * either pushed before the look (we do not sleep) or sees the flag after
     * its push (it wakes us). The seq_cst store and load keep that order. */
    atomic_store(&io->polling, true);
    if (pl_mpsc_nonempty(&io->submissions) || pl_mpsc_nonempty(&io->store_orders))
        timeout = 0;
    pl_pool_release_wakes(io->set.pool);
    pl_io_events_wait(&io->events, extra, nextra, (int)timeout);
    atomic_store_explicit(&io->polling, false, memory_order_relaxed);
    pl_pool_hold_wakes(io->set.pool);
    io->wakes_held_ms = pl_monotonic_ms();
    if (store_slot >= 0 && extra[store_slot].revents) {
        short seen = extra[store_slot].revents;
        pl_store_io(io->store,
                    (short)(((seen & CURL_WAIT_POLLIN) ? POLLIN : 0) |
                            ((seen & CURL_WAIT_POLLOUT) ? POLLOUT : 0)),
                    pl_monotonic_ms());
    }
    pl_io_events_run(&io->events);
    handle_finished_transfers(io);
    ops->after_perform(io->transport);
    pl_pool_release_wakes(io->set.pool);
}

/* Everything still held ends with a shutdown error; the store's orders
 * end UNAVAILABLE and its leases are given back (store.h). */
static void shut_down(pl_io *io)
{
    drain_submissions(io);
    pl_router_fail_all(&io->router, PARLEY_ERR_SHUTDOWN,
                       "the client was destroyed before the reply completed");
    io->transport->ops->shutdown(io->transport);
    drain_store_orders(io, pl_monotonic_ms());
    if (io->store)
        pl_store_shutdown(io->store, STORE_LEAVE_MAX_MS);
}

static void *io_main(void *arg)
{
    pl_io *io = arg;
    pl_owner_take(&io->owner);
    while (!atomic_load(&io->stopping))
        run_once(io);
    return NULL;
}

int pl_io_start(pl_io *io)
{
    if (io->set.stats_interval_ms > 0)
        io->next_stats_ms = pl_monotonic_ms() + io->set.stats_interval_ms;
    if (pthread_create(&io->thread, NULL, io_main, io) != 0)
        return -1;
    io->thread_started = true;
    return 0;
}

/* One wake-up per sleep rather than per request: a thread that is awake
 * takes the submission before it next sleeps (see run_once). */
static void wake(pl_io *io)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&io->polling, memory_order_relaxed) &&
        atomic_exchange(&io->polling, false))
        pl_io_events_wake(&io->events);
}

void pl_io_submit(pl_io *io, pl_io_request *req)
{
    pl_mpsc_push(&io->submissions, &req->entry);
    wake(io);
}

void pl_io_store(pl_io *io, pl_store_order *order)
{
    pl_mpsc_push(&io->store_orders, &order->entry);
    wake(io);
}

void pl_io_stop(pl_io *io)
{
    atomic_store(&io->stopping, true);
    if (io->thread_started) {
        pl_io_events_wake(&io->events);
        pthread_join(io->thread, NULL);
        io->thread_started = false;
    }
    /* The thread is gone: this thread now owns the multi handle. */
    pl_owner_take(&io->owner);
    shut_down(io);
}

void pl_io_free(pl_io *io)
{
    if (!io)
        return;
    pl_store_free(io->store);
    io->transport->ops->destroy(io->transport);
    pl_router_free(&io->router);
    curl_slist_free_all(io->set.easy.connect_to);
    curl_multi_cleanup(io->multi);
    pl_io_events_free(&io->events);
    free(io);
}
