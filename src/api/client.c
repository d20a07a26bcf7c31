/* Client lifecycle: create, start, flush, destroy; stats. */
#include "client.h"

#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "alloc.h"
#include "clock.h"
#include "io.h"
#include "log.h"
#include "safe_text.h"
#include "session.h"
#include "session_table.h"
#include "snowflake.h"
#include "stats.h"

static void set_err(char *errstr, size_t size, const char *msg)
{
    if (errstr && size)
        snprintf(errstr, size, "%s", msg);
}

static unsigned default_workers(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 2;
}

/* curl_global_init is not thread-safe before 7.84; call it once. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* What the I/O thread reads of the client (io.h). */
static pl_io_settings io_settings(parley_client_t *c)
{
    const parley_conf_t *conf = c->conf;
    return (pl_io_settings){
        .endpoint = conf->endpoint,
        .endpoint_shown = c->endpoint_shown,
        .dialect_shown = conf->dialect_shown,
        .dialect = conf->dialect,
        .api_key = c->api_key,
        .anthropic_version = conf->anthropic_version,
        .compression = conf->compression,
        .compression_dict = conf->compression_dict != 0,
        .connections = pl_conf_connections(conf),
        .heartbeat_interval_s = conf->heartbeat_interval_s,
        .connect_timeout_ms = conf->connect_timeout_ms,
        .max_message_bytes = conf->max_message_bytes,
        .reply_max_bytes = conf->reply_max_bytes,
        .retry_max_attempts = conf->retry_max_attempts,
        .retry_backoff_ms = conf->retry_backoff_ms,
        .retry_backoff_max_ms = conf->retry_backoff_max_ms,
        .reconnect_backoff_ms = conf->reconnect_backoff_ms,
        .reconnect_backoff_max_ms = conf->reconnect_backoff_max_ms,
        .request_timeout_ms = conf->request_timeout_ms,
        .stall_timeout_ms = conf->stall_timeout_ms,
        .stall_ping_timeout_ms = conf->stall_ping_timeout_ms,
        .http_idle_connections = conf->http_idle_connections,
        .http_max_connections = conf->http_max_connections,
        .stats_interval_ms = c->stats ? conf->stats_interval_ms : 0,
        .easy = {.connect_timeout_ms = conf->connect_timeout_ms,
                 .ca_file = conf->tls_ca_file,
                 .ca_path = conf->tls_ca_path,
                 .pinned_pubkey = conf->tls_pinned_pubkey,
                 .cert_file = conf->tls_cert_file,
                 .key_file = conf->tls_key_file,
                 .insecure = conf->tls_insecure != 0},
        .connect_to = conf->connect_to,
        .pool = c->pool,
        .counters = &c->counters,
        .log = &c->log,
        .store_url = c->has_store ? conf->session_store : NULL,
        .store_password = c->store_password,
        .store_key_prefix = conf->store_key_prefix,
        .store_owner = c->store_owner,
        .store_lease_ms = conf->lease_ms,
        .store_ttl_s = conf->store_ttl_s,
        .store_timeout_ms = conf->store_timeout_ms,
    };
}

/* This client's name in the store's leases: unique among the processes
 * sharing the store, and telling an operator where a lease is held. */
static void name_store_owner(parley_client_t *c)
{
    char host[64] = "";
    if (gethostname(host, sizeof(host) - 1) != 0)
        snprintf(host, sizeof(host), "unknown");
    snprintf(c->store_owner, sizeof(c->store_owner), "%.63s:%ld:%llu", host, (long)getpid(),
             (unsigned long long)pl_snowflake_next(c->worker_id));
}

/* The store's password, when session.store is a URL (its only secret). */
static void free_store_password(parley_client_t *c)
{
    if (c->store_password) {
        explicit_bzero(c->store_password, strlen(c->store_password));
        free(c->store_password);
        c->store_password = NULL;
    }
}

/* A statistics document is due: the I/O thread's part comes with it. */
static void publish_stats(void *client, const pl_io_stats_view *view)
{
    pl_stats_publish(client, view);
}

/* The request options' properties, parsed for the client's dialect now
 * that it is known: a value it cannot carry stops the client here. */
static parley_err_t request_defaults(const parley_conf_t *conf, pl_request_options *out,
                                     char *errstr, size_t errstr_size)
{
    for (int i = 0; i < PL_RO__COUNT; i++) {
        if (!conf->request_option[i])
            continue;
        pl_option_value v;
        parley_err_t err = pl_request_option_parse((pl_request_option)i, conf->request_option[i],
                                                   &conf->dialect, &v, errstr, errstr_size);
        if (err != PARLEY_OK) {
            pl_request_options_free(out);
            return err;
        }
        pl_request_options_apply(out, (pl_request_option)i, &v);
    }
    return PARLEY_OK;
}

parley_client_t *parley_client_new(parley_conf_t *conf, char *errstr,
                                   size_t errstr_size)
{
    if (!conf) {
        set_err(errstr, errstr_size, "conf is NULL");
        return NULL;
    }
    char *api_key = NULL;
    if (pl_conf_finalize(conf, &api_key, errstr, errstr_size) != PARLEY_OK)
        return NULL;
    pl_request_options defaults = {0};
    if (request_defaults(conf, &defaults, errstr, errstr_size) != PARLEY_OK) {
        free(api_key);
        return NULL;
    }
    bool has_store = strcmp(conf->session_store, "memory") != 0;
    char *store_password = NULL;
    if (has_store &&
        pl_conf_store_password(conf, &store_password, errstr, errstr_size) != PARLEY_OK) {
        free(api_key);
        pl_request_options_free(&defaults);
        return NULL;
    }
    pthread_once(&curl_once, curl_init_once);

    parley_client_t *c = calloc(1, sizeof(*c));
    if (!c) {
        free(api_key);
        free(store_password);
        pl_request_options_free(&defaults);
        set_err(errstr, errstr_size, "out of memory");
        return NULL;
    }
    c->conf = conf;
    c->request_defaults = defaults;
    c->api_key = api_key;
    c->has_store = has_store;
    c->store_password = store_password;
    c->log = (pl_logger){.level = conf->log_level,
                         .cb = conf->log_cb,
                         .opaque = conf->log_opaque,
                         .client = c,
                         .api_key = api_key};
    size_t shown_size = strlen(conf->endpoint) * 6 + 1; /* room for every escape */
    c->endpoint_shown = malloc(shown_size);
    if (!c->endpoint_shown) {
        free(api_key);
        free_store_password(c);
        pl_request_options_free(&c->request_defaults);
        free(c);
        set_err(errstr, errstr_size, "out of memory");
        return NULL;
    }
    pl_safe_url(conf->endpoint, c->endpoint_shown, shown_size);
    c->worker_id = (unsigned)conf->worker_id;
    name_store_owner(c);
    pthread_mutex_init(&c->lifecycle_mu, NULL);
    pthread_mutex_init(&c->idle_mu, NULL);
    pthread_cond_init(&c->idle_cv, NULL);
    pthread_mutex_init(&c->space_mu, NULL);
    pthread_cond_init(&c->space_cv, NULL);
    c->created_ms = pl_monotonic_ms();
    c->pool = pl_pool_new(conf->workers > 0 ? (unsigned)conf->workers : default_workers());
    if (c->pool) {
        c->stats = pl_stats_sink_new(c);
        pl_io_sink sink = pl_session_sink;
        sink.stats = publish_stats;
        sink.stats_ctx = c;
        pl_io_settings settings = io_settings(c);
        c->io = pl_io_new(&settings, &sink, errstr, errstr_size);
    }
    if (c->pool && c->io)
        pl_log(&c->log, PARLEY_LOG_INFO, "client",
               "parley %s: endpoint %s, %u connection%s, %u worker%s, worker id %u",
               PARLEY_VERSION_STR, c->endpoint_shown, pl_conf_connections(conf),
               pl_conf_connections(conf) == 1 ? "" : "s", pl_pool_size(c->pool),
               pl_pool_size(c->pool) == 1 ? "" : "s", c->worker_id);
    /* Processes sharing a store serve one conversation after another: with
     * one worker id their request ids collide at the server. */
    if (c->pool && c->io && has_store && conf->worker_id_defaulted)
        pl_log(&c->log, PARLEY_LOG_WARNING, "client",
               "session.store is set but worker.id is not: every process sharing the store "
               "needs its own (worker.id or $PARLEY_WORKER_ID, 0-1023), or their request "
               "ids collide");
    if (!c->pool || !c->io) {
        if (!c->pool)
            set_err(errstr, errstr_size, "out of memory");
        pl_stats_sink_free(c->stats);
        pl_pool_free(c->pool);
        c->conf = NULL; /* stays the caller's on failure */
        free(c->api_key);
        free_store_password(c);
        free(c->endpoint_shown);
        pl_request_options_free(&c->request_defaults);
        free(c);
        return NULL;
    }
    return c;
}

parley_err_t parley_start(parley_client_t *c)
{
    if (!c)
        return PARLEY_ERR_INVALID_ARG;
    pthread_mutex_lock(&c->lifecycle_mu);
    parley_err_t err = PARLEY_OK;
    if (c->started || atomic_load(&c->shutting_down))
        err = PARLEY_ERR_STATE;
    else if (pl_pool_start(c->pool) != 0 || pl_io_start(c->io) != 0)
        err = PARLEY_ERR_NO_MEMORY;
    else
        c->started = true;
    pthread_mutex_unlock(&c->lifecycle_mu);
    return err;
}

/* Wake the waiters of cv; taking the mutex orders the wake-up after a
 * waiter's check of its condition. */
static void wake(pthread_mutex_t *mu, pthread_cond_t *cv)
{
    pthread_mutex_lock(mu);
    pthread_cond_broadcast(cv);
    pthread_mutex_unlock(mu);
}

/* Give back what a request reserved, and wake whoever waits on it: destroy
 * and parley_flush() for idleness, parley_send_wait() for room. A caller
 * that holds space_mu (a parley_send_wait() re-checking) broadcasts without
 * taking it again. */
static void unreserve(parley_client_t *c, pl_session *s, size_t bytes, bool space_locked)
{
    atomic_fetch_sub(&s->unfinished, 1);
    atomic_fetch_sub(&c->queued_bytes, (int64_t)bytes);
    if (atomic_fetch_sub(&c->outstanding, 1) == 1)
        wake(&c->idle_mu, &c->idle_cv);
    if (atomic_load(&c->space_waiters) > 0) {
        if (space_locked)
            pthread_cond_broadcast(&c->space_cv);
        else
            wake(&c->space_mu, &c->space_cv);
    }
}

bool pl_client_handing_over(parley_client_t *c)
{
    atomic_fetch_add(&c->submitting, 1);
    if (!atomic_load(&c->shutting_down))
        return true;
    atomic_fetch_sub(&c->submitting, 1);
    return false;
}

void pl_client_handed_over(parley_client_t *c)
{
    atomic_fetch_sub(&c->submitting, 1);
}

parley_err_t pl_client_admit(parley_client_t *c, pl_session *s, size_t bytes,
                             bool space_locked)
{
    const parley_conf_t *conf = c->conf;
    /* Add first, then check: concurrent senders can never overshoot. */
    if (atomic_fetch_add(&s->unfinished, 1) >= conf->session_queue_max) {
        atomic_fetch_sub(&s->unfinished, 1);
        return PARLEY_ERR_QUEUE_FULL;
    }
    int64_t before = atomic_fetch_add(&c->queued_bytes, (int64_t)bytes);
    if (atomic_fetch_add(&c->outstanding, 1) >= conf->max_inflight_requests ||
        before + (int64_t)bytes > conf->max_queued_bytes) {
        /* The overshoot may have turned another sender away: it is given
         * back, and the waiters told. */
        unreserve(c, s, bytes, space_locked);
        return PARLEY_ERR_QUEUE_FULL;
    }
    return PARLEY_OK;
}

void pl_client_release(parley_client_t *c, pl_session *s, size_t bytes)
{
    unreserve(c, s, bytes, false);
}

void pl_deadline_after(struct timespec *deadline, int timeout_ms)
{
    clock_gettime(CLOCK_REALTIME, deadline);
    deadline->tv_sec += timeout_ms / 1000;
    deadline->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline->tv_nsec >= 1000000000L) {
        deadline->tv_sec++;
        deadline->tv_nsec -= 1000000000L;
    }
}

/* Wait until no request is outstanding; deadline NULL waits without limit. */
static bool wait_idle(parley_client_t *c, const struct timespec *deadline)
{
    bool idle = true;
    pthread_mutex_lock(&c->idle_mu);
    while (atomic_load(&c->outstanding) != 0) {
        if (!deadline) {
            pthread_cond_wait(&c->idle_cv, &c->idle_mu);
        } else if (pthread_cond_timedwait(&c->idle_cv, &c->idle_mu, deadline) ==
                   ETIMEDOUT) {
            idle = atomic_load(&c->outstanding) == 0;
            break;
        }
    }
    pthread_mutex_unlock(&c->idle_mu);
    return idle;
}

parley_err_t parley_flush(parley_client_t *c, int timeout_ms)
{
    if (!c)
        return PARLEY_ERR_INVALID_ARG;
    if (pl_pool_in_worker())
        return PARLEY_ERR_STATE; /* a callback waiting for itself */
    if (timeout_ms < 0)
        return wait_idle(c, NULL) ? PARLEY_OK : PARLEY_ERR_TIMED_OUT;
    struct timespec deadline;
    pl_deadline_after(&deadline, timeout_ms);
    return wait_idle(c, &deadline) ? PARLEY_OK : PARLEY_ERR_TIMED_OUT;
}

void pl_client_session_opened(parley_client_t *c)
{
    atomic_fetch_add_explicit(&c->sessions_open, 1, memory_order_relaxed);
}

void pl_client_session_ended(parley_client_t *c)
{
    atomic_fetch_sub_explicit(&c->sessions_open, 1, memory_order_relaxed);
}

/* Close every session the user left open; those that ended are gone from
 * the table. No lock is held while closing, which may free a session. */
static void close_all_sessions(parley_client_t *c)
{
    size_t n;
    pl_session **live = pl_session_table_ref_client(c, &n);
    for (size_t i = 0; i < n; i++) {
        pl_session_close_once(live[i]);
        pl_session_unref(live[i]);
    }
    free(live);
}

void parley_client_destroy(parley_client_t *c)
{
    if (!c)
        return;
    if (pl_pool_in_worker()) {
        pl_log(&c->log, PARLEY_LOG_ERROR, "client",
               "parley_client_destroy() called from a callback; ignored");
        return;
    }
    pthread_mutex_lock(&c->lifecycle_mu);
    atomic_store(&c->shutting_down, true);
    wake(&c->space_mu, &c->space_cv); /* parley_send_wait() gives up */
    /* From here no session hands new requests to the I/O thread. */
    while (atomic_load(&c->submitting) != 0)
        sched_yield();
    if (!c->started)
        pl_pool_start(c->pool); /* so shutdown events run on workers too */
    close_all_sessions(c);
    pl_io_stop(c->io);
    wait_idle(c, NULL);
    pl_pool_stop(c->pool);
    /* A callback may have opened a session just as destroy began. */
    close_all_sessions(c);
    pl_pool_stop(c->pool);
    pthread_mutex_unlock(&c->lifecycle_mu);

    pl_io_free(c->io);
    pl_stats_sink_free(c->stats); /* the pool delivered every document */
    pl_pool_free(c->pool);
    parley_conf_destroy(c->conf);
    pl_request_options_free(&c->request_defaults);
    free(c->endpoint_shown);
    if (c->api_key) {
        memset(c->api_key, 0, strlen(c->api_key));
        free(c->api_key);
    }
    free_store_password(c);
    pthread_mutex_destroy(&c->lifecycle_mu);
    pthread_mutex_destroy(&c->idle_mu);
    pthread_cond_destroy(&c->idle_cv);
    pthread_mutex_destroy(&c->space_mu);
    pthread_cond_destroy(&c->space_cv);
    free(c);
}

/* parley_stats_t holds the counters of PL_COUNTERS, in its order, and no
 * more: so the list is the one place to add one. */
enum {
#define X(field, group, key) COUNTER_##field,
    PL_COUNTERS(X)
#undef X
    NCOUNTERS
};
#define X(field, group, key)                                                          \
    _Static_assert(offsetof(parley_stats_t, field) == COUNTER_##field * sizeof(uint64_t), \
                   "parley_stats_t." #field " is not where PL_COUNTERS puts it");
PL_COUNTERS(X)
#undef X
_Static_assert(sizeof(parley_stats_t) == NCOUNTERS * sizeof(uint64_t),
               "parley_stats_t has a field PL_COUNTERS lacks");

size_t parley_stats_read(parley_client_t *c, parley_stats_t *st, size_t size)
{
    if (!c || !st)
        return 0;
    parley_stats_t all;
#define X(field, group, key) \
    all.field = atomic_load_explicit(&c->counters.field, memory_order_relaxed);
    PL_COUNTERS(X)
#undef X
    /* A program built against an older header passes a shorter struct and
     * gets the counters it knows; one built against a newer header finds
     * the counters this library lacks zeroed. */
    size_t n = size < sizeof(all) ? size : sizeof(all);
    memcpy(st, &all, n);
    memset((char *)st + n, 0, size - n);
    return n;
}
