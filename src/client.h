/* The client's internal state, shared by the session actors and the I/O thread. */
#ifndef PL_CLIENT_H
#define PL_CLIENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf.h"
#include "parley.h"
#include "pool.h"

typedef struct pl_io pl_io;

/* Counters behind parley_stats_get(); each is updated with relaxed atomics. */
typedef struct pl_counters {
    _Atomic uint64_t requests_sent, requests_done, requests_failed;
    _Atomic uint64_t frames_sent, frames_received;
    _Atomic uint64_t bytes_sent, bytes_received;
    _Atomic uint64_t connections_opened, errors, unknown_messages;
} pl_counters;

#define PL_COUNT(client, field, n) \
    atomic_fetch_add_explicit(&(client)->counters.field, (n), memory_order_relaxed)

struct parley_client {
    parley_conf_t *conf;
    char *api_key;
    unsigned worker_id;
    pl_pool *pool;
    pl_io *io;
    bool started;                 /* touched only by start/destroy callers */
    pthread_mutex_t lifecycle_mu; /* serialises start and destroy */

    _Atomic bool shutting_down;
    /* Sessions between checking shutting_down and handing a request to the
     * I/O thread; destroy waits for it to reach 0 after setting the flag. */
    _Atomic int submitting;

    /* Requests accepted and not yet ended by a delivered terminal event. */
    _Atomic int64_t outstanding;
    pthread_mutex_t idle_mu;
    pthread_cond_t idle_cv;

    /* Every live session, for destroy; guarded by registry_mu. */
    pthread_mutex_t registry_mu;
    parley_session_t *sessions;

    pl_counters counters;
};

/* A terminal event was delivered: one fewer outstanding request. */
void pl_client_request_ended(parley_client_t *client);

/* Registry of live sessions. */
void pl_client_register(parley_client_t *client, parley_session_t *session);
void pl_client_unregister(parley_client_t *client, parley_session_t *session);

#endif
