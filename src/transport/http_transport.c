/*
 * The vendors' HTTP streaming APIs as a transport: one stream (http_stream.h)
 * per request, libcurl picking or sharing the connection. A stream cannot
 * be told to stop (leaving it is the cancel) and a reply cannot resume part
 * way. libcurl offers no Ping of a given HTTP/2 connection, so a stall is
 * judged by witnesses: the other streams on the same connection.
 *
 * http.max.connections bounds the connections: requests beyond what they
 * carry wait here, in order, not in libcurl's own queue of pending
 * transfers, where the wait would count against the connect timeout.
 */
#include <stdio.h>
#include <stdlib.h>

#include "alloc.h"
#include "clock.h"
#include "http_stream.h"
#include "transport.h"

/* HTTP/2 streams libcurl puts on one connection before it opens another
 * (CURLMOPT_MAX_CONCURRENT_STREAMS; also libcurl's default). */
#define HTTP2_STREAMS_PER_CONNECTION 100

/* The requests whose streams went out on one connection: a stall asks
 * them, and a dead connection sends them all again. */
typedef struct conn_group {
    curl_off_t conn_id;
    pl_tx_list reqs;
    struct conn_group *next;    /* hash chain */
} conn_group;

typedef struct http_transport {
    pl_transport base;
    pl_tx_conf conf;
    const pl_tx_events *ev;
    pl_http_config http;
    conn_group **groups;        /* by connection id; a power of two */
    size_t ngroup_buckets, ngroups;
    uint64_t status[6];         /* answers by status / 100; [0]: none */
    uint64_t http2_answers;
    /* Requests waiting for a connection (http.max.connections), oldest
     * first; their `on` is WAITING(h). */
    pl_tx_list waiting;
    /* The answers come over HTTP/2 (assumed over https:// until one says
     * otherwise): a connection carries many requests at once. */
    bool multiplexed;
} http_transport;

#define WAITING(h) ((void *)&(h)->waiting)

static http_transport *http_of(pl_transport *t)
{
    return (http_transport *)t;
}

static const pl_failure start_failure = {.kind = PL_FAIL_START, .err = PARLEY_ERR_CONNECT};

/* ---- requests by connection ------------------------------------------------ */

static conn_group **group_slot(const http_transport *h, curl_off_t conn_id)
{
    size_t b = (size_t)(((uint64_t)conn_id * 0x9E3779B97F4A7C15ull) >> 32) &
               (h->ngroup_buckets - 1);
    return &h->groups[b];
}

static conn_group *group_find(const http_transport *h, curl_off_t conn_id)
{
    for (conn_group *g = *group_slot(h, conn_id); g; g = g->next)
        if (g->conn_id == conn_id)
            return g;
    return NULL;
}

static void groups_grow(http_transport *h)
{
    conn_group **old = h->groups;
    size_t n = h->ngroup_buckets;
    h->ngroup_buckets *= 2;
    h->groups = pl_xcalloc(h->ngroup_buckets, sizeof(*h->groups));
    for (size_t i = 0; i < n; i++) {
        conn_group *g = old[i];
        while (g) {
            conn_group *next = g->next;
            conn_group **slot = group_slot(h, g->conn_id);
            g->next = *slot;
            *slot = g;
            g = next;
        }
    }
    free(old);
}

static void group_join(http_transport *h, pl_tx_req *q, curl_off_t conn_id)
{
    conn_group *g = group_find(h, conn_id);
    if (!g) {
        if (h->ngroups >= h->ngroup_buckets)
            groups_grow(h);
        g = pl_xcalloc(1, sizeof(*g));
        g->conn_id = conn_id;
        conn_group **slot = group_slot(h, conn_id);
        g->next = *slot;
        *slot = g;
        h->ngroups++;
    }
    pl_tx_list_add(&g->reqs, q);
}

/* The group goes with its last request. */
static void group_leave(http_transport *h, pl_tx_req *q, curl_off_t conn_id)
{
    conn_group **link = group_slot(h, conn_id);
    while (*link && (*link)->conn_id != conn_id)
        link = &(*link)->next;
    conn_group *g = *link;
    if (!g)
        return;
    pl_tx_list_remove(&g->reqs, q);
    if (g->reqs.head)
        return;
    *link = g->next;
    free(g);
    h->ngroups--;
}

/* The stream finishes on its own: the request only leaves it (or the
 * queue it waits in). */
static void unlink_request(http_transport *h, pl_tx_req *q)
{
    pl_http_stream *s = q->on;
    if (!s)
        return;
    if (q->on == WAITING(h)) {
        pl_tx_list_remove(&h->waiting, q);
        q->on = NULL;
        return;
    }
    if (pl_http_conn_id(s) >= 0)
        group_leave(h, q, pl_http_conn_id(s));
    q->on = NULL;
}

/* ---- what the streams report ---------------------------------------------- */

static void stream_piece(void *owner, void *req, const pl_piece *piece)
{
    http_transport *h = owner;
    pl_tx_req *q = req;
    h->ev->long_read(h->ev->ctx);
    h->ev->piece(h->ev->ctx, q, q->next_seq, NULL, piece);
}

static void stream_alive(void *owner, void *req)
{
    http_transport *h = owner;
    h->ev->alive(h->ev->ctx, req);
}

static void stream_done(void *owner, void *req, const pl_stream_result *res)
{
    http_transport *h = owner;
    pl_tx_req *q = req;
    unlink_request(h, q);
    pl_tx_done d = {.seq_end = PL_TX_SEQ_NONE, .end = res->end};
    h->ev->done(h->ev->ctx, q, &d);
}

static void stream_failed(void *owner, void *req, const pl_failure *f, const char *msg,
                          int64_t retry_after_ms)
{
    http_transport *h = owner;
    pl_tx_req *q = req;
    unlink_request(h, q);
    h->ev->failed(h->ev->ctx, q, f, msg, retry_after_ms);
}

static void stream_connected(void *owner, void *req, curl_off_t before)
{
    http_transport *h = owner;
    pl_tx_req *q = req;
    if (before >= 0)
        group_leave(h, q, before);
    group_join(h, q, pl_http_conn_id(q->on));
}

static const pl_http_events stream_events = {.piece = stream_piece,
                                             .done = stream_done,
                                             .failed = stream_failed,
                                             .alive = stream_alive,
                                             .connected = stream_connected};

/* ---- requests ------------------------------------------------------------ */

/* Transfers the multi handle may hold: one a connection over HTTP/1.1,
 * HTTP2_STREAMS_PER_CONNECTION over HTTP/2; 0: no bound. (Holding HTTP/2
 * streams back until the connections carrying requests were full, to keep
 * libcurl's pending queue short, made whole connections go silent for the
 * stall timeout with 10,000 conversations: tried and dropped.) */
static size_t transfer_limit(const http_transport *h)
{
    size_t bound = (size_t)h->conf.http_max_connections;
    return h->multiplexed ? bound * HTTP2_STREAMS_PER_CONNECTION : bound;
}

static bool stream_start(http_transport *h, pl_tx_req *q, pl_failure *f, char *msg,
                         size_t msg_size)
{
    pl_http_stream *s = pl_http_start(h->conf.multi, &h->http, q, q->id, q->frame,
                                      q->frame_len, q->headers, msg, msg_size);
    if (!s) {
        *f = start_failure;
        return false;
    }
    q->on = s; /* its connection group once it goes out (stream_connected) */
    return true;
}

static pl_tx_start http_start(pl_transport *t, pl_tx_req *q, const void *avoid, int64_t now,
                              int64_t *wait_ms, pl_failure *f, char *msg, size_t msg_size)
{
    (void)avoid, (void)now, (void)wait_ms;
    http_transport *h = http_of(t);
    size_t limit = transfer_limit(h);
    if (limit && (h->http.active >= limit || h->waiting.head)) {
        pl_tx_list_add(&h->waiting, q); /* started by start_waiting() */
        q->on = WAITING(h);
        return PL_TX_PLACED;
    }
    return stream_start(h, q, f, msg, msg_size) ? PL_TX_PLACED : PL_TX_FAILED;
}

/* Requests that waited for a connection go out as transfers end (outside
 * libcurl's callbacks, which may not add a transfer). */
static void start_waiting(http_transport *h)
{
    size_t limit = transfer_limit(h);
    while (h->waiting.head && (!limit || h->http.active < limit)) {
        pl_tx_req *q = h->waiting.head;
        pl_tx_list_remove(&h->waiting, q);
        q->on = NULL;
        pl_failure f;
        char msg[256];
        if (stream_start(h, q, &f, msg, sizeof(msg)))
            h->ev->on_wire(h->ev->ctx, q, pl_monotonic_ms()); /* its stall clock starts */
        else
            h->ev->failed(h->ev->ctx, q, &f, msg, -1);
    }
}

/* Pieces come in order over HTTP: nothing to repeat. */
static void http_resend(pl_transport *t, pl_tx_req *q)
{
    (void)t, (void)q;
}

/* An HTTP stream cannot be told to stop: leaving it is the cancel. */
static bool http_cancel(pl_transport *t, pl_tx_req *q, bool by_caller)
{
    (void)t, (void)q, (void)by_caller;
    return false;
}

static void http_detach(pl_transport *t, pl_tx_req *q)
{
    http_transport *h = http_of(t);
    pl_http_stream *s = q->on == WAITING(h) ? NULL : q->on;
    unlink_request(h, q);
    if (s)
        pl_http_release(s);
}

/* A request waiting for a connection is not on the wire: no stall clock. */
static bool http_sent(const pl_transport *t, const pl_tx_req *q)
{
    const http_transport *h = (const http_transport *)t;
    return q->on != NULL && q->on != (const void *)&h->waiting;
}

/*
 * A stall. A stream that heard nothing at all, not even the answer's
 * headers, was never taken up: the silence is the connection's (or a frozen
 * server's), not the request's. Streams that share the connection and heard
 * nothing within the stall timeout either mean the connection is dead; one
 * that heard anything (an SSE ping included) means it lives and the request
 * alone was slow. The verdict is given at once.
 */
static bool http_trial(pl_transport *t, pl_tx_req *q, int64_t now, const char *msg)
{
    http_transport *h = http_of(t);
    pl_http_stream *s = q->on;
    curl_off_t conn_id = pl_http_conn_id(s);
    conn_group *g = conn_id >= 0 ? group_find(h, conn_id) : NULL;
    unsigned silent_witnesses = 0;
    bool alive = false;
    for (pl_tx_req *w = g ? g->reqs.head : NULL; w; w = w->next) {
        if (w == q)
            continue;
        if (((pl_http_stream *)w->on)->last_rx_ms > now - h->conf.stall_timeout_ms)
            alive = true;
        else
            silent_witnesses++;
    }
    if (alive) {
        h->ev->acquitted(h->ev->ctx, q, s, now);
        return false;
    }
    /* Answered and then alone in its silence, the request may be what the
     * server chokes on: it pays. The connection goes either way. */
    pl_http_condemn_conn(s);
    bool stalled_pays = s->last_rx_ms > 0 && silent_witnesses == 0;
    pl_failure stalled = {.kind = PL_FAIL_LOST, .err = PARLEY_ERR_TIMED_OUT};
    h->ev->lost(h->ev->ctx, q, &stalled, msg, stalled_pays ? PL_BLAME_REQ_NOW : PL_BLAME_CONN);
    if (conn_id < 0)
        return false; /* no connection to take the others off */
    pl_log(h->conf.log, PARLEY_LOG_WARNING, "conn",
           "an HTTP connection to %s went silent (%u stream%s on it heard nothing for %d ms): "
           "it is closed and its requests start again", h->conf.endpoint_shown,
           silent_witnesses + 1, silent_witnesses ? "s" : "", h->conf.stall_timeout_ms);
    /* Every request on the dead connection leaves it, the connection is
     * closed behind the last one, and those that had received no piece
     * start again (the others cannot resume over HTTP). The group goes
     * with its last request. */
    while ((g = group_find(h, conn_id))) {
        pl_tx_req *w = g->reqs.head;
        pl_http_condemn_conn(w->on);
        char why[200];
        snprintf(why, sizeof(why), "the connection went silent after %u piece%s; HTTP "
                 "streaming APIs cannot resume a reply", w->next_seq,
                 w->next_seq == 1 ? "" : "s");
        pl_failure lost = {.kind = PL_FAIL_LOST, .err = PARLEY_ERR_CONNECTION_LOST,
                           .started = w->next_seq > 0};
        h->ev->lost(h->ev->ctx, w, &lost, why, PL_BLAME_CONN);
        if (w->on) /* the engine always detaches; never loop on it */
            http_detach(t, w);
    }
    return false;
}

static int64_t http_tick(pl_transport *t, int64_t now, struct curl_waitfd *fds, unsigned *nfds)
{
    (void)t, (void)now, (void)fds, (void)nfds;
    return INT64_MAX;
}

static unsigned http_max_waitfds(const pl_transport *t)
{
    (void)t;
    return 0;
}

static void http_transfer_done(pl_transport *t, CURL *easy, CURLcode rc)
{
    http_transport *h = http_of(t);
    pl_http_stream *s = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&s);
    if (!s)
        return;
    pl_http_outcome out = pl_http_finish(s, rc);
    h->status[out.status >= 100 && out.status < 600 ? out.status / 100 : 0]++;
    h->http2_answers += out.http2;
    if (out.status)
        h->multiplexed = h->http.tls && out.http2;
    if (out.connects > 0) {
        PL_COUNTER_ADD(h->conf.counters, connections_opened, (uint64_t)out.connects);
        if (h->conf.easy->insecure) {
            PL_COUNTER_ADD(h->conf.counters, insecure_connections, (uint64_t)out.connects);
            pl_log(h->conf.log, PARLEY_LOG_WARNING, "tls",
                   "an HTTP connection was made without certificate verification "
                   "(tls.insecure)");
        }
    }
}

static void http_after_perform(pl_transport *t)
{
    start_waiting(http_of(t));
}

static void http_write_connections(const pl_transport *t, pl_json_writer *w, int64_t now)
{
    (void)t, (void)w, (void)now; /* libcurl's connections are not listed */
}

static void http_write_dialect(const pl_transport *t, pl_json_writer *w)
{
    const http_transport *h = (const http_transport *)t;
    static const char *const classes[] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
    pl_jw_object(w, "responses");
    for (int i = 0; i < 6; i++)
        pl_jw_u64(w, classes[i], h->status[i]);
    pl_jw_end_object(w);
    pl_jw_u64(w, "http2_responses", h->http2_answers);
}

/* Streams whose reply was complete (done delivered) but whose transfer
 * libcurl had not reported finished yet belong to no request any more: they
 * are freed here, or they would outlive the client. */
static void http_shutdown(pl_transport *t)
{
    CURL **easies = curl_multi_get_handles(http_of(t)->conf.multi);
    for (size_t i = 0; easies && easies[i]; i++) {
        pl_http_stream *s = NULL;
        curl_easy_getinfo(easies[i], CURLINFO_PRIVATE, (char **)&s);
        if (s)
            pl_http_release(s);
    }
    curl_free(easies);
}

static void http_destroy(pl_transport *t)
{
    http_transport *h = http_of(t);
    pl_http_config_free(&h->http);
    for (size_t i = 0; i < h->ngroup_buckets; i++) /* none left after shutdown */
        while (h->groups[i]) {
            conn_group *g = h->groups[i];
            h->groups[i] = g->next;
            free(g);
        }
    free(h->groups);
    free(h);
}

static const pl_transport_ops http_ops = {
    .can_resume = false,
    .logs_connections = false,
    .start = http_start,
    .resend = http_resend,
    .cancel = http_cancel,
    .detach = http_detach,
    .sent = http_sent,
    .trial = http_trial,
    .tick = http_tick,
    .max_waitfds = http_max_waitfds,
    .transfer_done = http_transfer_done,
    .after_perform = http_after_perform,
    .write_connections = http_write_connections,
    .write_dialect = http_write_dialect,
    .shutdown = http_shutdown,
    .destroy = http_destroy,
};

pl_transport *pl_http_transport_new(const pl_tx_conf *conf, char *err, size_t err_size)
{
    http_transport *h = pl_xcalloc(1, sizeof(*h));
    h->base.ops = &http_ops;
    h->conf = *conf;
    h->ev = conf->ev;
    h->ngroup_buckets = 64;
    h->groups = pl_xcalloc(h->ngroup_buckets, sizeof(*h->groups));
    if (pl_http_config_init(&h->http, conf->endpoint, (pl_dialect)conf->dialect) != 0) {
        snprintf(err, err_size, "out of memory configuring the HTTP dialect");
        free(h->groups);
        free(h);
        return NULL;
    }
    h->http.dialect_shown = conf->dialect_shown;
    h->http.api_key = conf->api_key;
    h->http.anthropic_version = conf->anthropic_version;
    h->http.max_event_bytes = (size_t)conf->max_message_bytes;
    h->http.easy = *conf->easy;
    h->http.max_idle = (size_t)conf->http_idle_connections;
    h->http.events = &stream_events;
    h->http.owner = h;
    /* libcurl's own cache limit follows the handles added at the moment
     * and closed connections that the next turns then opened again:
     * more connections than conversations (docs/dialects.md). */
    curl_multi_setopt(conf->multi, CURLMOPT_MAXCONNECTS, (long)conf->http_idle_connections);
    /* The bound is kept here (start_waiting); libcurl's is a backstop. */
    h->multiplexed = h->http.tls;
    curl_multi_setopt(conf->multi, CURLMOPT_MAX_CONCURRENT_STREAMS,
                      (long)HTTP2_STREAMS_PER_CONNECTION);
    curl_multi_setopt(conf->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                      (long)conf->http_max_connections);
    return &h->base;
}
