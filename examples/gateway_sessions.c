/* The gateway's named conversations and their turns (gateway_sessions.h). */
#include "gateway_sessions.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 4096

typedef struct gw_session gw_session;

struct gw_session {
    gw_session *next; /* in its bucket */
    parley_session_t *handle;
    char name[];
};

enum gate_state {
    GATE_OPEN,        /* turns may be sent */
    GATE_NOT_SENDING, /* shutting down: no new turns, cancels still go */
    GATE_CLOSED       /* the client is going away: no call into parley */
};

struct gw_sessions {
    /* Read-held by an MHD thread for each call into parley, write-held by
     * shutdown to move the state on: once closed, no call is in progress
     * and none starts. Workers never take it (they may call parley freely,
     * and the client's destroy waits for them). */
    pthread_rwlock_t gate;
    enum gate_state state;
    parley_client_t *client;
    /* Guards the buckets and the count. Sessions are only added, and freed
     * with the registry, so a pointer found stays valid without the lock. */
    pthread_mutex_t names_lock;
    size_t count, max;
    /* With a session store, each turn opens its conversation, which loads it
     * and takes its lease, and closes it, which saves it and gives the lease
     * back: any gateway of a fleet can then take the next turn. */
    bool per_turn;
    gw_session *buckets[BUCKETS];
};

gw_sessions *gw_sessions_new(size_t max_sessions)
{
    gw_sessions *reg = calloc(1, sizeof(*reg));
    if (!reg)
        return NULL;
    pthread_rwlock_init(&reg->gate, NULL);
    pthread_mutex_init(&reg->names_lock, NULL);
    reg->max = max_sessions;
    return reg;
}

void gw_sessions_attach(gw_sessions *reg, parley_client_t *client, bool per_turn)
{
    reg->client = client;
    reg->per_turn = per_turn;
}

static void say(char *why, size_t why_size, const char *sentence)
{
    snprintf(why, why_size, "%s", sentence);
}

/* FNV-1a: names are short, and any even spread will do. */
static size_t bucket_of(const char *name)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % BUCKETS;
}

static gw_session *lookup_locked(gw_sessions *reg, const char *name)
{
    for (gw_session *s = reg->buckets[bucket_of(name)]; s; s = s->next)
        if (!strcmp(s->name, name))
            return s;
    return NULL;
}

/* The session named `name`, opened now if new. Called with the gate
 * read-held and open. */
static gw_session *find_or_open(gw_sessions *reg, const char *name, parley_err_t *err,
                                char *why, size_t why_size)
{
    pthread_mutex_lock(&reg->names_lock);
    gw_session *s = lookup_locked(reg, name);
    if (s)
        goto out;
    if (reg->count >= reg->max) {
        *err = PARLEY_ERR_QUEUE_FULL;
        snprintf(why, why_size, "too many conversations (at most %zu): try again later",
                 reg->max);
        goto out;
    }
    parley_session_t *handle = parley_session_open(reg->client, name, why, why_size);
    if (!handle) {
        *err = PARLEY_ERR_INVALID_ARG; /* parley's sentence says what */
        goto out;
    }
    size_t len = strlen(name);
    s = calloc(1, sizeof(*s) + len + 1);
    if (!s) {
        parley_session_close(handle);
        *err = PARLEY_ERR_NO_MEMORY;
        say(why, why_size, "out of memory");
        goto out;
    }
    s->handle = handle;
    memcpy(s->name, name, len + 1);
    size_t b = bucket_of(name);
    s->next = reg->buckets[b];
    reg->buckets[b] = s;
    reg->count++;
out:
    pthread_mutex_unlock(&reg->names_lock);
    return s;
}

static const char *send_failure(parley_err_t err)
{
    switch (err) {
    case PARLEY_ERR_INVALID_ARG:
        return "the message is not valid UTF-8";
    case PARLEY_ERR_QUEUE_FULL:
        return "too many turns waiting: try again later";
    default:
        return parley_err2str(err);
    }
}

/* The turn's stream rides along as its request's opaque pointer: every
 * event of the turn hands it back, so nothing needs registering (and no
 * lock covers parley_send against its own first event). */
static parley_err_t send_turn(parley_session_t *handle, const char *content, gw_stream *stream,
                              uint64_t *request_id, char *why, size_t why_size)
{
    gw_stream_ref(stream); /* the turn's, dropped at its terminal event */
    parley_err_t err = parley_send_opaque(handle, content, stream, request_id, 0);
    if (err != PARLEY_OK) {
        gw_stream_unref(stream);
        say(why, why_size, send_failure(err));
    }
    return err;
}

/* One turn in a session of its own (per_turn): closed at once, the turn
 * still completes, and then the session saves it and gives its lease up. */
static parley_err_t send_in_own_session(gw_sessions *reg, const char *name, const char *content,
                                        gw_stream *stream, parley_session_t **session,
                                        uint64_t *request_id, char *why, size_t why_size)
{
    parley_session_t *handle = parley_session_open(reg->client, name, why, why_size);
    if (!handle)
        return PARLEY_ERR_INVALID_ARG; /* parley's sentence says what */
    parley_err_t err = send_turn(handle, content, stream, request_id, why, why_size);
    parley_session_close(handle);
    *session = handle; /* a closed handle still cancels its turns */
    return err;
}

parley_err_t gw_sessions_send(gw_sessions *reg, const char *name, const char *content,
                              gw_stream *stream, parley_session_t **session,
                              uint64_t *request_id, char *why, size_t why_size)
{
    parley_err_t err = PARLEY_ERR_SHUTDOWN;
    pthread_rwlock_rdlock(&reg->gate);
    if (reg->state != GATE_OPEN) {
        say(why, why_size, "the gateway is shutting down");
    } else if (reg->per_turn) {
        err = send_in_own_session(reg, name, content, stream, session, request_id, why,
                                  why_size);
    } else {
        gw_session *s = find_or_open(reg, name, &err, why, why_size);
        if (s) {
            err = send_turn(s->handle, content, stream, request_id, why, why_size);
            *session = s->handle;
        }
    }
    pthread_rwlock_unlock(&reg->gate);
    return err;
}

void gw_sessions_cancel(gw_sessions *reg, parley_session_t *session, uint64_t request_id)
{
    pthread_rwlock_rdlock(&reg->gate);
    if (reg->state != GATE_CLOSED)
        parley_cancel(session, request_id);
    pthread_rwlock_unlock(&reg->gate);
}

void gw_sessions_on_event(parley_client_t *client, const parley_event_t *ev, void *opaque)
{
    (void)client, (void)opaque;
    gw_stream *stream = parley_event_opaque(ev);
    if (!stream)
        return; /* a turn a stopped gateway left in flight, finished here: no one asked */
    parley_event_type_t type = parley_event_type(ev);
    size_t len;
    const char *content = parley_event_content(ev, &len);
    if (type == PARLEY_EVENT_TEXT) {
        gw_stream_push(stream, content, len);
        return;
    }
    if (type != PARLEY_EVENT_DONE && type != PARLEY_EVENT_ERROR)
        return; /* thinking and tool calls: the gateway relays text only */
    parley_err_t err = type == PARLEY_EVENT_ERROR ? parley_event_error(ev) : PARLEY_OK;
    /* parley's sentence for this one speaks of the client object. */
    if (err == PARLEY_ERR_SHUTDOWN)
        content = "the gateway is shutting down";
    gw_stream_end(stream, err, content);
    gw_stream_unref(stream);
}

static void set_state(gw_sessions *reg, enum gate_state state)
{
    pthread_rwlock_wrlock(&reg->gate);
    reg->state = state;
    pthread_rwlock_unlock(&reg->gate);
}

void gw_sessions_stop_sending(gw_sessions *reg)
{
    set_state(reg, GATE_NOT_SENDING);
}

void gw_sessions_detach(gw_sessions *reg)
{
    set_state(reg, GATE_CLOSED);
}

void gw_sessions_free(gw_sessions *reg)
{
    for (size_t b = 0; b < BUCKETS; b++) {
        gw_session *s = reg->buckets[b];
        while (s) {
            gw_session *next = s->next;
            free(s);
            s = next;
        }
    }
    pthread_mutex_destroy(&reg->names_lock);
    pthread_rwlock_destroy(&reg->gate);
    free(reg);
}
