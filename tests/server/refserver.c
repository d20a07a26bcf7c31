/*
 * parley-refserver: the reference server of the parley.v1 protocol
 * (docs/protocol.md), on libwebsockets and json-c.
 *
 * Threading: every lws call and all request/connection state live on the
 * server's own thread. Other threads touch only the atomic counters, the
 * mutex-protected list of received messages, arrival times and fault knobs,
 * and lws_cancel_service() (the one lws call documented as safe from another
 * thread) to stop the loop or to have it perform a restart.
 *
 * Output discipline: nothing is written from outside the writeable callback.
 * Each connection owns a FIFO of serialized messages; producers (receive
 * callback, generation timers) append to it and ask lws for a writeable
 * callback, which drains it.
 *
 * lws 4.1 answers Pings itself and tells the protocol callback nothing about
 * them, so the pings_received counter stays 0.
 *
 * Fault knobs (pl_refserver_set_faults) are copied under faults_lock; the
 * server thread keeps its own copy, refreshed when faults_gen moves, with the
 * "every Nth" counters, which restart from 0 whenever the knobs are set.
 *
 * The server is split like librdkafka's mock cluster: this file is the
 * core (the service thread, the vhost and TLS, fault knobs, arrival times,
 * the public API); refserver_ws.c is the parley.v1 WebSocket front end
 * (connections, requests, validation, compression: the "compression"
 * section there chooses it per connection, inflates binary messages and
 * deflates outgoing ones in conn_queue); refserver_http.c holds the vendor
 * HTTP front ends; refserver_common.c what the front ends share, and
 * echo_model.c the one model they all answer with. TLS is a vhost setting
 * (apply_tls).
 */
#include "refserver_internal.h"

/* ---- small helpers ----------------------------------------------------- */

__attribute__((format(printf, 2, 3)))
void pl_rs_log(const pl_refserver *srv, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    if (srv->opts.quiet)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* One fprintf per line keeps lines whole when threads interleave. */
    fprintf(stderr, "parley-refserver: %s\n", line);
}

int64_t pl_rs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Fibonacci hashing into 2^bits buckets: snowflake ids differ mostly in
 * low bits. */
size_t pl_rs_hash_id(uint64_t id, unsigned bits)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> (64 - bits));
}

/* ---- arrival times (any thread, under arr_lock) ----------------------------- */

static struct arrival *arrival_find(const struct arrival_log *log, uint64_t id)
{
    struct arrival *a = log->buckets[pl_rs_hash_id(id, log->bits)];

    while (a && a->id != id)
        a = a->next;
    return a;
}

/* Double the buckets once there are as many ids as buckets. */
static void arrival_grow(struct arrival_log *log)
{
    size_t i, n = (size_t)1 << log->bits;
    struct arrival **bigger = calloc(n * 2, sizeof *bigger);

    if (!bigger)
        return; /* longer chains: slower, still correct */
    for (i = 0; i < n; i++) {
        while (log->buckets[i]) {
            struct arrival *a = log->buckets[i];
            size_t b = pl_rs_hash_id(a->id, log->bits + 1);
            log->buckets[i] = a->next;
            a->next = bigger[b];
            bigger[b] = a;
        }
    }
    free(log->buckets);
    log->buckets = bigger;
    log->bits++;
}

static struct arrival *arrival_get(struct arrival_log *log, uint64_t id)
{
    struct arrival *a = arrival_find(log, id);
    size_t b;

    if (a)
        return a;
    if (log->ids >= ((size_t)1 << log->bits))
        arrival_grow(log);
    a = pl_xcalloc(1, sizeof *a);
    a->id = id;
    b = pl_rs_hash_id(id, log->bits);
    a->next = log->buckets[b];
    log->buckets[b] = a;
    log->ids++;
    return a;
}

/* A `message` with this valid id arrived now; the first PL_ARRIVALS_MAX
 * times (over all ids) are kept. */
void pl_rs_record_arrival(pl_refserver *srv, uint64_t id)
{
    struct arrival_log *log = &srv->arrivals;
    int64_t t = pl_rs_now_ms();
    struct arrival *a;

    pthread_mutex_lock(&srv->arr_lock);
    if (log->total < PL_ARRIVALS_MAX) {
        a = arrival_get(log, id);
        if (a->n == a->cap) {
            a->cap = a->cap ? a->cap * 2 : 4;
            a->times_ms = pl_xrealloc(a->times_ms, a->cap * sizeof *a->times_ms);
        }
        a->times_ms[a->n++] = t;
        log->total++;
    }
    pthread_mutex_unlock(&srv->arr_lock);
}

static void arrivals_free(struct arrival_log *log)
{
    size_t i, n = (size_t)1 << log->bits;

    for (i = 0; log->buckets && i < n; i++) {
        while (log->buckets[i]) {
            struct arrival *a = log->buckets[i];
            log->buckets[i] = a->next;
            free(a->times_ms);
            free(a);
        }
    }
    free(log->buckets);
}

/* ---- fault knobs ------------------------------------------------------------ */

/* The knobs as the server thread applies them. When they were set since its
 * last look, take a fresh copy and restart the "every Nth" counters. */
struct fault_state *pl_rs_faults(pl_refserver *srv)
{
    struct fault_state *fs = &srv->faults;

    if (atomic_load_explicit(&srv->faults_gen, memory_order_acquire) == fs->gen)
        return fs;
    pthread_mutex_lock(&srv->faults_lock);
    fs->k = srv->faults_set;
    fs->k.f.reject_code = fs->k.code;
    fs->gen = atomic_load_explicit(&srv->faults_gen, memory_order_relaxed);
    pthread_mutex_unlock(&srv->faults_lock);
    fs->new_requests = 0;
    fs->texts = 0;
    fs->muted = 0;
    fs->rng = PL_FAULT_SEED;
    return fs;
}

/* True for every k-th n (n counts from 1); k == 0 is off. */
static int every(unsigned k, uint64_t n)
{
    return k && n % k == 0;
}

/* xorshift64*, as a double in [0, 1). */
static double fault_random(struct fault_state *fs)
{
    fs->rng ^= fs->rng >> 12;
    fs->rng ^= fs->rng << 25;
    fs->rng ^= fs->rng >> 27;
    return (double)((fs->rng * 0x2545F4914F6CDD1Dull) >> 11) * 0x1.0p-53;
}

/* Counts one new request and says what the knobs make of it (when several
 * hit it: reject, then silence, stall, drop, error). */
enum request_fault pl_rs_next_request_fault(pl_refserver *srv)
{
    struct fault_state *fs = pl_rs_faults(srv);
    const pl_refserver_faults *f = &fs->k.f;
    uint64_t n = ++fs->new_requests;

    if (every(f->reject_every, n) ||
        (f->reject_fraction > 0 && fault_random(fs) < f->reject_fraction))
        return REQUEST_REJECT;
    if (every(f->stall_connection_every, n))
        return REQUEST_SILENCE;
    if (every(f->stall_every, n))
        return REQUEST_STALL;
    if (every(f->drop_every, n))
        return REQUEST_DROP;
    return every(f->error_every, n) ? REQUEST_ERROR : REQUEST_SERVE;
}

/* Counts one text message going out and says what the knobs make of it;
 * *unknown_first tells to send an unknown-type message before it. */
enum text_fault pl_rs_next_text_fault(pl_refserver *srv, int *unknown_first)
{
    struct fault_state *fs = pl_rs_faults(srv);
    const pl_refserver_faults *f = &fs->k.f;
    uint64_t n = ++fs->texts;

    *unknown_first = every(f->unknown_every, n);
    if (every(f->malformed_every, n))
        return TEXT_MALFORMED;
    if (every(f->oversized_every, n))
        return TEXT_OVERSIZED;
    return TEXT_PLAIN;
}

/*
 * lws's own keepalive ("validity") counts only Pongs: with its default policy
 * it pings after 300 s and hangs up at 310 s unless a Pong came back, even
 * on a busy connection. The contract leaves idle closing optional, and a
 * client's Pings are invisible to lws 4.1 callbacks, so it is turned off.
 */
static const lws_retry_bo_t no_validity_checks = { .secs_since_valid_ping = 0 };

/*
 * lws picks, from the client's Sec-WebSocket-Protocol list in the client's
 * order, the first name found here, and the first entry when the client
 * sends none: parley.v1 stays first. create_context leaves parley.v1.zstd
 * out of the vhost when opts.zstd is 0 (vhost_protocols).
 */
static const struct lws_protocols protocols[] = {
    {
        .name = PL_PROTOCOL,
        .callback = pl_rs_ws_callback,
        .per_session_data_size = sizeof(struct conn),
        .rx_buffer_size = PL_RX_BUFFER,
    },
    {
        .name = PL_PROTOCOL_ZSTD,
        .callback = pl_rs_ws_callback,
        .per_session_data_size = sizeof(struct conn),
        .rx_buffer_size = PL_RX_BUFFER,
    },
    {
        .name = PL_PROTOCOL_GZIP,
        .callback = pl_rs_ws_callback,
        .per_session_data_size = sizeof(struct conn),
        .rx_buffer_size = PL_RX_BUFFER,
    },
    { .name = NULL },
};

#define PL_NPROTOCOLS (sizeof protocols / sizeof protocols[0])

/* The vhost's protocols (lws's pprotocols form, NULL-terminated): every
 * entry of protocols[] except parley.v1.zstd when compression is off. */
static void vhost_protocols(const pl_refserver *srv,
                            const struct lws_protocols **out)
{
    const struct lws_protocols *p;
    size_t n = 0;

    for (p = protocols; p->name; p++)
        if ((srv->opts.zstd || strcmp(p->name, PL_PROTOCOL_ZSTD)) &&
            (srv->opts.gzip || strcmp(p->name, PL_PROTOCOL_GZIP)))
            out[n++] = p;
    out[n++] = &pl_refserver_http_protocol; /* claims only its mounts */
    out[n] = NULL;
}

/* Readable, or a sentence in srv->start_err saying why not. */
static int tls_file_ok(pl_refserver *srv, const char *what, const char *path)
{
    FILE *f = fopen(path, "r");

    if (f) {
        fclose(f);
        return 1;
    }
    snprintf(srv->start_err, sizeof srv->start_err, "cannot read the TLS %s "
             "%s: %s", what, path, strerror(errno));
    return 0;
}

/*
 * wss://: lws loads the PEM certificate and key into the vhost's OpenSSL
 * context. ALPN offers h2 before http/1.1 so that HTTP endpoints can
 * multiplex over TLS; WebSocket clients ask for http/1.1 (or nothing).
 */
static int apply_tls(pl_refserver *srv, struct lws_context_creation_info *info)
{
    const char *key = srv->tls_key ? srv->tls_key : srv->tls_cert;

    if (!srv->tls_cert)
        return 0;
    if (!tls_file_ok(srv, "certificate", srv->tls_cert) ||
        !tls_file_ok(srv, "private key", key))
        return -1;
    info->options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info->ssl_cert_filepath = srv->tls_cert;
    info->ssl_private_key_filepath = key;
    info->alpn = PL_TLS_ALPN;
    return 0;
}

/* ---- the service thread ---------------------------------------------- */

static void set_lws_logging(void)
{
    lws_set_log_level(LLL_ERR, NULL);
}

/* lws logging is process-wide: set it once, before any context exists. */
static pthread_once_t lws_log_once = PTHREAD_ONCE_INIT;

/* The HTTP endpoints share the vhost: their module takes the server's
 * settings and adds its mounts and options to the vhost's info. */
static int create_http(pl_refserver *srv, struct lws_context_creation_info *info)
{
    pl_refserver_http_opts ho;
    pl_refserver_http_opts_init(&ho);
    ho.api_key = srv->api_key;
    ho.latency_ms = srv->opts.latency_ms;
    ho.token_ms = srv->opts.token_ms;
    ho.chunk_bytes = srv->opts.chunk_bytes;
    ho.max_body_bytes = srv->opts.max_message_bytes;
    ho.quiet = srv->opts.quiet;
    ho.model = srv->opts.http_model;
    srv->http = pl_refserver_http_new(&ho);
    if (!srv->http) {
        snprintf(srv->start_err, sizeof srv->start_err, "out of memory");
        lws_context_destroy(srv->ctx);
        srv->ctx = NULL;
        return -1;
    }
    pl_refserver_http_vhost_info(srv->http, info);
    return 0;
}

/*
 * The h2c vhost (opts.h2c): the main vhost's settings on a free port of its
 * own, cleartext, every connection HTTP/2 with prior knowledge.
 */
static int create_h2c_vhost(pl_refserver *srv,
                            struct lws_context_creation_info info)
{
    struct lws_vhost *vh;

    info.port = 0;
    info.vhost_name = "parley-h2c";
    info.options |= LWS_SERVER_OPTION_H2_PRIOR_KNOWLEDGE;
    info.options &= ~(uint64_t)LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.ssl_cert_filepath = NULL;
    info.ssl_private_key_filepath = NULL;
    info.alpn = NULL;
    vh = lws_create_vhost(srv->ctx, &info);
    srv->h2c_port = vh ? lws_get_vhost_listen_port(vh) : 0;
    if (srv->h2c_port > 0)
        return 0;
    srv->h2c_port = 0;
    snprintf(srv->start_err, sizeof srv->start_err,
             "cannot listen for h2c on %s", srv->bind_addr);
    return -1;
}

static int create_context(pl_refserver *srv)
{
    struct lws_context_creation_info info;
    const struct lws_protocols *vh_protocols[PL_NPROTOCOLS + 1];
    struct lws_vhost *vh;
    struct in_addr v4;

    memset(&info, 0, sizeof info);
    /* Explicit vhost: lws_create_vhost reports a failed bind as NULL. */
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
                   LWS_SERVER_OPTION_VALIDATE_UTF8;
    /* On an IPv6 socket lws 4.1 binds an IPv4 address as the wildcard,
     * listening on every interface: keep IPv4 addresses on IPv4. */
    if (inet_pton(AF_INET, srv->bind_addr, &v4) == 1)
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info.user = srv;
    if (apply_tls(srv, &info))
        return -1;
    srv->ctx = lws_create_context(&info);
    if (!srv->ctx) {
        snprintf(srv->start_err, sizeof srv->start_err,
                 "cannot create the lws context");
        return -1;
    }
    pl_rs_timer_queue_init(&srv->steps, srv->ctx);
    info.port = srv->opts.port;
    info.iface = srv->bind_addr;
    vhost_protocols(srv, vh_protocols);
    info.pprotocols = vh_protocols;
    info.vhost_name = "parley";
    info.retry_and_idle_policy = &no_validity_checks;
    if (create_http(srv, &info))
        return -1;
    vh = lws_create_vhost(srv->ctx, &info);
    /* An address of no local interface leaves the vhost waiting for one
     * to appear, with no port: that is a failure here too. */
    srv->port = vh ? lws_get_vhost_listen_port(vh) : 0;
    if (srv->port <= 0)
        snprintf(srv->start_err, sizeof srv->start_err,
                 "cannot listen on %s port %d%s", srv->bind_addr,
                 srv->opts.port, srv->tls_cert
                     ? " (or the TLS certificate and key could not be loaded)"
                     : "");
    if (srv->port <= 0 || (srv->opts.h2c && create_h2c_vhost(srv, info))) {
        lws_context_destroy(srv->ctx);
        srv->ctx = NULL;
        pl_refserver_http_free(srv->http);
        srv->http = NULL;
        return -1;
    }
    return 0;
}

static void signal_started(pl_refserver *srv, int state)
{
    pthread_mutex_lock(&srv->lock);
    srv->start_state = state;
    pthread_cond_signal(&srv->started_cond);
    pthread_mutex_unlock(&srv->lock);
}

static void free_requests(pl_refserver *srv)
{
    size_t i, n = (size_t)1 << srv->reqs.bits;

    for (i = 0; i < n; i++) {
        while (srv->reqs.buckets[i]) {
            struct request *r = srv->reqs.buckets[i];
            srv->reqs.buckets[i] = r->hash_next;
            pl_rs_ws_req_free(r);
        }
    }
    srv->reqs.count = 0;
}

/*
 * pl_refserver_restart, on the server thread: drop every connection hard
 * and forget every request. The listener, the received-message log, the
 * arrival times and the fault knobs stay.
 */
static void restart_now(pl_refserver *srv)
{
    struct conn *c;

    for (c = srv->open_conns; c; c = c->next_open) {
        if (!c->dropped) {
            pl_rs_ws_conn_hard_drop(c);
            lws_callback_on_writable(c->wsi); /* conn_drain returns -1 */
        }
    }
    pl_rs_timer_queue_clear(&srv->steps);
    free_requests(srv);
    srv->expiry_head = srv->expiry_tail = NULL;
    pl_refserver_http_restart(srv->http);
    pl_rs_log(srv, "restarted: connections dropped, requests forgotten");
}

/* Between two lws_service calls: perform the restarts asked since the last
 * look (one does for several), then release their callers. */
static void serve_restarts(pl_refserver *srv)
{
    uint64_t asked = atomic_load(&srv->restarts_asked);

    if (asked == srv->restarts_done) /* only this thread writes it */
        return;
    restart_now(srv);
    atomic_fetch_add(&srv->stats.restarts, asked - srv->restarts_done);
    pthread_mutex_lock(&srv->lock);
    srv->restarts_done = asked;
    pthread_cond_broadcast(&srv->restart_cond);
    pthread_mutex_unlock(&srv->lock);
}

static void *service_main(void *arg)
{
    pl_refserver *srv = arg;
    struct lws_context *ctx;

    pthread_once(&lws_log_once, set_lws_logging);
    if (create_context(srv)) {
        signal_started(srv, -1);
        return NULL;
    }
    signal_started(srv, 1);
    pl_rs_log(srv, "listening on %s:%d", srv->bind_addr, srv->port);

    while (!atomic_load(&srv->stopping)) {
        if (lws_service(srv->ctx, 0) < 0) {
            pl_rs_log(srv, "service loop failed, no longer serving");
            break;
        }
        serve_restarts(srv);
    }

    /* pl_refserver_stop and pl_refserver_restart call lws_cancel_service
     * under srv->lock on a non-NULL srv->ctx: clearing it under the lock
     * means that call has returned, or will not happen, before the context
     * is destroyed. A restart still waiting gives up. */
    pthread_mutex_lock(&srv->lock);
    ctx = srv->ctx;
    srv->ctx = NULL;
    pthread_cond_broadcast(&srv->restart_cond);
    pthread_mutex_unlock(&srv->lock);
    /* The queue's lws timer must be off lws's list before the context
     * (and its scheduler) goes away. */
    pl_rs_timer_queue_clear(&srv->steps);
    lws_context_destroy(ctx); /* closes connections: conn_close */
    pl_refserver_http_free(srv->http); /* after the context, which used it */
    srv->http = NULL;
    free_requests(srv);
    pl_rs_timer_queue_free(&srv->steps);
    return NULL;
}

/* ---- public API ----------------------------------------------------------- */

static const pl_refserver_faults no_faults = { .retry_after_ms = -1 };

void pl_refserver_opts_init(pl_refserver_opts *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->bind_addr = "127.0.0.1";
    opts->chunk_bytes = 16;
    opts->heartbeat_s = 30;
    opts->max_message_bytes = 1048576;
    opts->idempotency_window_s = 600;
    opts->zstd = 1;
    opts->gzip = 1;
    opts->zstd_dict = 1;
}

/* Copy opts, applying the documented defaults for zero values. */
static void copy_opts(pl_refserver *srv, const pl_refserver_opts *opts)
{
    pl_refserver_opts *o = &srv->opts;

    *o = *opts;
    if (!opts->bind_addr)
        o->bind_addr = "127.0.0.1";
    srv->bind_addr = pl_rs_strndup(o->bind_addr, strlen(o->bind_addr));
    srv->api_key = opts->api_key
        ? pl_rs_strndup(opts->api_key, strlen(opts->api_key)) : NULL;
    o->bind_addr = srv->bind_addr;
    o->api_key = srv->api_key;
    srv->tls_cert = opts->tls_cert_file
        ? pl_rs_strndup(opts->tls_cert_file, strlen(opts->tls_cert_file)) : NULL;
    srv->tls_key = opts->tls_key_file
        ? pl_rs_strndup(opts->tls_key_file, strlen(opts->tls_key_file)) : NULL;
    o->tls_cert_file = srv->tls_cert;
    o->tls_key_file = srv->tls_key;
    if (!o->chunk_bytes)
        o->chunk_bytes = 16;
    if (!o->heartbeat_s)
        o->heartbeat_s = 30;
    if (!o->max_message_bytes)
        o->max_message_bytes = 1048576;
    if (o->max_message_bytes > INT_MAX) /* json-c takes int lengths */
        o->max_message_bytes = INT_MAX;
    if (!o->idempotency_window_s)
        o->idempotency_window_s = 600;
}

static void srv_free(pl_refserver *srv)
{
    pl_rs_received_free(&srv->received);
    free(srv->reqs.buckets);
    free(srv->tx);
    pl_buf_free(&srv->zbuf);
    pl_buf_free(&srv->json);
    arrivals_free(&srv->arrivals);
    free(srv->bind_addr);
    free(srv->api_key);
    free(srv->tls_cert);
    free(srv->tls_key);
    pthread_mutex_destroy(&srv->arr_lock);
    pthread_mutex_destroy(&srv->faults_lock);
    pthread_cond_destroy(&srv->restart_cond);
    pthread_cond_destroy(&srv->started_cond);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}

pl_refserver *pl_refserver_start(const pl_refserver_opts *opts, char *err,
                                 size_t err_size)
{
    pl_refserver *srv = pl_xcalloc(1, sizeof *srv);
    int state;

    copy_opts(srv, opts);
    srv->tx = pl_xmalloc(LWS_PRE + PL_TX_BATCH);
    pl_rs_ws_table_init(&srv->reqs);
    srv->arrivals.bits = 10;
    srv->arrivals.buckets = pl_xcalloc((size_t)1 << srv->arrivals.bits,
                                    sizeof *srv->arrivals.buckets);
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->started_cond, NULL);
    pthread_cond_init(&srv->restart_cond, NULL);
    pl_rs_received_init(&srv->received, PL_RECEIVED_MAX);
    pthread_mutex_init(&srv->faults_lock, NULL);
    pthread_mutex_init(&srv->arr_lock, NULL);
    pl_refserver_set_faults(srv, &no_faults);
    if (pthread_create(&srv->thread, NULL, service_main, srv)) {
        snprintf(err, err_size, "cannot create the server thread");
        srv_free(srv);
        return NULL;
    }
    pthread_mutex_lock(&srv->lock);
    while (!srv->start_state)
        pthread_cond_wait(&srv->started_cond, &srv->lock);
    state = srv->start_state;
    pthread_mutex_unlock(&srv->lock);
    if (state < 0) {
        pthread_join(srv->thread, NULL);
        snprintf(err, err_size, "%s", srv->start_err);
        srv_free(srv);
        return NULL;
    }
    return srv;
}

int pl_refserver_port(const pl_refserver *srv)
{
    return srv->port;
}

int pl_refserver_h2c_port(const pl_refserver *srv)
{
    return srv->h2c_port;
}

void pl_refserver_stop(pl_refserver *srv)
{
    if (!srv)
        return;
    pthread_mutex_lock(&srv->lock);
    atomic_store(&srv->stopping, 1);
    if (srv->ctx)
        lws_cancel_service(srv->ctx);
    pthread_mutex_unlock(&srv->lock);
    pthread_join(srv->thread, NULL);
    srv_free(srv);
}

pl_refserver_http *pl_refserver_http_of(pl_refserver *srv)
{
    return srv->http;
}

void pl_refserver_get_stats(pl_refserver *srv, pl_refserver_stats *st)
{
    struct pl_stats_atomic *a = &srv->stats;

    st->connections_accepted = atomic_load(&a->connections_accepted);
    st->connections_open = atomic_load(&a->connections_open);
    st->upgrades_refused = atomic_load(&a->upgrades_refused);
    st->messages_received = atomic_load(&a->messages_received);
    st->requests_started = atomic_load(&a->requests_started);
    st->requests_replayed = atomic_load(&a->requests_replayed);
    st->cancels_received = atomic_load(&a->cancels_received);
    st->errors_sent = atomic_load(&a->errors_sent);
    st->pings_received = atomic_load(&a->pings_received);
    st->rejected = atomic_load(&a->rejected);
    st->dropped = atomic_load(&a->dropped);
    st->restarts = atomic_load(&a->restarts);
    st->compressed_received = atomic_load(&a->compressed_received);
    st->compressed_sent = atomic_load(&a->compressed_sent);
    st->dict_agreed = atomic_load(&a->dict_agreed);
    st->stream_errors = atomic_load(&a->stream_errors);
    st->silenced = atomic_load(&a->silenced);
}

char *pl_refserver_received(pl_refserver *srv, size_t n)
{
    return pl_rs_received_copy(&srv->received, n);
}

char *pl_rs_last_body(pl_refserver *srv, size_t *len)
{
    size_t ws_len, http_len;
    uint64_t ws_order, http_order;
    char *ws = pl_rs_received_last(&srv->received, &ws_len, &ws_order);
    char *http = pl_refserver_http_last_body(srv->http, &http_len,
                                             &http_order);

    if (http && (!ws || http_order > ws_order)) {
        free(ws);
        *len = http_len;
        return http;
    }
    free(http);
    *len = ws ? ws_len : 0;
    return ws;
}

size_t pl_refserver_last_body(pl_refserver *srv, char *buf, size_t size)
{
    size_t len;
    char *last = pl_rs_last_body(srv, &len);

    if (size) {
        size_t n = len < size - 1 ? len : size - 1;
        if (n)
            memcpy(buf, last, n);
        buf[n] = '\0';
    }
    free(last);
    return len;
}

void pl_refserver_set_faults(pl_refserver *srv, const pl_refserver_faults *f)
{
    struct fault_knobs *k = &srv->faults_set;

    pthread_mutex_lock(&srv->faults_lock);
    k->f = *f;
    snprintf(k->code, sizeof k->code, "%s",
             f->reject_code ? f->reject_code : "rate_limited");
    k->f.reject_code = k->code;
    atomic_fetch_add_explicit(&srv->faults_gen, 1, memory_order_release);
    pthread_mutex_unlock(&srv->faults_lock);
}

/* Asks the server thread (woken by lws_cancel_service) and waits until it
 * has dropped the connections and forgotten the requests. */
void pl_refserver_restart(pl_refserver *srv)
{
    uint64_t ticket;

    pthread_mutex_lock(&srv->lock);
    ticket = atomic_fetch_add(&srv->restarts_asked, 1) + 1;
    if (srv->ctx)
        lws_cancel_service(srv->ctx);
    while (srv->restarts_done < ticket && srv->ctx)
        pthread_cond_wait(&srv->restart_cond, &srv->lock);
    pthread_mutex_unlock(&srv->lock);
}

void pl_refserver_refuse_for(pl_refserver *srv, unsigned ms)
{
    atomic_store(&srv->refuse_until_ms, pl_rs_now_ms() + (int64_t)ms);
}

size_t pl_refserver_arrivals(pl_refserver *srv, uint64_t id, int64_t *times_ms,
                             size_t max)
{
    struct arrival *a;
    size_t n = 0;

    pthread_mutex_lock(&srv->arr_lock);
    a = arrival_find(&srv->arrivals, id);
    if (a) {
        n = a->n;
        if (max)
            memcpy(times_ms, a->times_ms, (n < max ? n : max) * sizeof *times_ms);
    }
    pthread_mutex_unlock(&srv->arr_lock);
    return n;
}
