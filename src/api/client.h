/* The client's internal state, shared by the session actors and the I/O thread. */
#ifndef PL_CLIENT_H
#define PL_CLIENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "conf.h"
#include "counters.h"
#include "histogram.h"
#include "log.h"
#include "parley.h"
#include "pool.h"

typedef struct pl_io pl_io;
typedef struct pl_stats_sink pl_stats_sink;
struct pl_session;

#define PL_COUNT(client, field, n) PL_COUNTER_ADD(&(client)->counters, field, n)

struct parley_client {
    parley_conf_t *conf;
    pl_request_options request_defaults; /* from the properties; read-only */
    pl_logger log; /* from conf, with the key to take out */
    char *api_key;
    /* The endpoint as every log line, error and statistics document shows
     * it: without user information, query or fragment (pl_safe_url). */
    char *endpoint_shown;
    unsigned worker_id;
    /* The session store (docs/cluster.md): has_store when session.store is a
     * URL; the password (NULL: none) and this client's name in leases. */
    bool has_store;
    char *store_password;
    char store_owner[96];
    pl_pool *pool;
    pl_io *io;
    bool started;                 /* touched only by start/destroy callers */
    pthread_mutex_t lifecycle_mu; /* serialises start and destroy */

    _Atomic bool shutting_down;
    /* Sessions between checking shutting_down and handing a request to the
     * I/O thread; destroy waits for it to reach 0 after setting the flag. */
    _Atomic int submitting;

    /* Requests accepted and not yet ended by a delivered terminal event,
     * and their content bytes (max.inflight.requests, max.queued.bytes). */
    _Atomic int64_t outstanding;
    _Atomic int64_t queued_bytes;
    pthread_mutex_t idle_mu;
    pthread_cond_t idle_cv;
    /* parley_send_wait() callers waiting for room. */
    _Atomic int space_waiters;
    pthread_mutex_t space_mu;
    pthread_cond_t space_cv;

    /* Sessions opened and not ended (the statistics' sessions.open); the
     * sessions themselves are found through session_table.h. */
    _Atomic int64_t sessions_open;

    pl_counters counters;
    /* parley_send() to DONE, and to the first piece, of completed requests. */
    pl_histogram latency, ttft;
    /* Delivers statistics documents to the stats callback; NULL when off. */
    pl_stats_sink *stats;
    int64_t created_ms; /* monotonic, for the statistics' age */
};

/*
 * A session about to hand the I/O thread an order: false, with nothing to
 * undo, when the client is shutting down (the shutdown ends what the
 * session holds); else pl_client_handed_over() must follow the hand-over,
 * and destroy waits until it did.
 */
bool pl_client_handing_over(parley_client_t *client);
void pl_client_handed_over(parley_client_t *client);

/*
 * Reserve room for a request of `bytes` content bytes in the session's and
 * the client's limits: PARLEY_OK, or PARLEY_ERR_QUEUE_FULL with nothing
 * reserved. space_locked: the caller holds space_mu (a waiting
 * parley_send_wait() re-checking), which must not be taken again.
 */
parley_err_t pl_client_admit(parley_client_t *client, struct pl_session *s,
                             size_t bytes, bool space_locked);
/* Release what pl_client_admit() reserved: the request ended (its terminal
 * event was delivered) or was never accepted. */
void pl_client_release(parley_client_t *client, struct pl_session *s, size_t bytes);

/* The CLOCK_REALTIME time timeout_ms (>= 0) from now, for timed waits. */
void pl_deadline_after(struct timespec *deadline, int timeout_ms);

/* A session was opened; one ended (its state is freed). */
void pl_client_session_opened(parley_client_t *client);
void pl_client_session_ended(parley_client_t *client);

#endif
