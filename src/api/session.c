/* Session actors: the public session API and the conversation state machine. */
#include "session.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "buf.h"
#include "client.h"
#include "clock.h"
#include "dialect.h"
#include "event.h"
#include "io.h"
#include "safe_text.h"
#include "session_table.h"
#include "snowflake.h"
#include "utf8.h"

/* One user turn, from parley_send() to its terminal event. */
typedef struct pl_request {
    uint64_t id;
    char *content;
    size_t content_len;
    pl_buf reply; /* the pieces so far, kept for the history */
    int64_t accepted_us; /* when parley_send() took it: latency starts here */
    bool piece_seen;     /* its first piece arrived (time to first token) */
    struct pl_request *next;
} pl_request;

enum session_msg_kind {
    MSG_SEND = 1,
    MSG_SET,
    MSG_CANCEL,
    MSG_CLOSE,
    MSG_TEXT,
    MSG_DONE,
    MSG_ERROR
};

typedef struct send_msg {
    pl_actor_msg base;
    pl_request *req;
} send_msg;

/* A per-session option; value NULL returns to the client's. */
typedef struct set_msg {
    pl_actor_msg base;
    enum { SET_MODEL, SET_SYSTEM, SET_MAX_TOKENS } what;
    uint32_t number;
    char *value;
} set_msg;

typedef struct cancel_msg {
    pl_actor_msg base;
    uint64_t id;
} cancel_msg;

typedef struct text_msg {
    pl_actor_msg base;
    uint64_t id;
    uint32_t seq;
    size_t len;
    char text[];
} text_msg;

typedef struct done_msg {
    pl_actor_msg base;
    uint64_t id;
    uint64_t input_tokens, output_tokens;
    char stop_reason[16];
} done_msg;

typedef struct error_msg {
    pl_actor_msg base;
    uint64_t id;
    parley_err_t err;
    char message[];
} error_msg;

#define SESSION_OF(a) ((pl_session *)(a))

static void request_free(pl_request *req)
{
    pl_buf_free(&req->reply);
    free(req->content);
    free(req);
}

/* ---- delivering events ------------------------------------------------- */

static void deliver(pl_session *s, parley_event_t *ev)
{
    ev->session = s->handle;
    ev->session_id = s->id;
    parley_conf_t *conf = s->client->conf;
    conf->event_cb(s->client, ev, conf->event_opaque);
}

/* The one terminal event of req: ERROR. Frees req. */
static void fail_request(pl_session *s, pl_request *req, parley_err_t err,
                         const char *message)
{
    parley_event_t ev = {.type = PARLEY_EVENT_ERROR,
                         .request_id = req->id,
                         .content = message,
                         .content_len = strlen(message),
                         .err = err};
    deliver(s, &ev);
    PL_COUNT(s->client, requests_failed, 1);
    pl_client_release(s->client, s, req->content_len);
    request_free(req);
}

/* ---- history and sending ----------------------------------------------- */

static void history_append(pl_session *s, bool assistant, char *content,
                           size_t len)
{
    if (s->nhistory == s->history_cap) {
        s->history_cap = s->history_cap ? s->history_cap * 2 : 8;
        s->history = pl_xrealloc(s->history, s->history_cap * sizeof(*s->history));
    }
    s->history[s->nhistory++] =
        (pl_history_turn){.assistant = assistant, .content = content, .content_len = len};
}

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Hand req to the I/O thread, unless the client is shutting down. The
 * submitting counter lets destroy wait until no session is between the
 * check and the hand-over. */
static bool submit(pl_session *s, pl_request *req, char *frame, size_t len)
{
    parley_client_t *c = s->client;
    atomic_fetch_add(&c->submitting, 1);
    if (atomic_load(&c->shutting_down)) {
        atomic_fetch_sub(&c->submitting, 1);
        return false;
    }
    pl_io_request *io_req = pl_xcalloc(1, sizeof(*io_req));
    io_req->op = PL_IO_SEND;
    io_req->id = req->id;
    io_req->owner = s;
    io_req->owner_id = s->id;
    io_req->frame = frame;
    io_req->frame_len = len;
    pl_session_ref(s);
    pl_io_submit(c->io, io_req);
    atomic_fetch_sub(&c->submitting, 1);
    return true;
}

/* Send req as the turn in flight. Returns false when it ended at once. */
static bool start_turn(pl_session *s, pl_request *req)
{
    parley_conf_t *conf = s->client->conf;
    pl_message_req m = {.id = req->id,
                        .session = s->id,
                        .timestamp_ms = unix_ms(),
                        .content = req->content,
                        .content_len = req->content_len,
                        .history = s->history,
                        .nhistory = s->nhistory,
                        .model = s->model ? s->model : conf->model,
                        .max_tokens = s->max_tokens ? s->max_tokens
                                                    : (uint32_t)conf->max_tokens};
    pl_request_params params = {.system = s->system_prompt ? s->system_prompt
                                                           : conf->system_prompt};
    if (conf->dialect != PL_DIALECT_NATIVE)
        m.params = &params; /* the native path sends no system prompt yet */
    pl_buf frame = PL_BUF_INIT;
    int rc = conf->dialect == PL_DIALECT_NATIVE
                 ? pl_proto_encode_message(&frame, &m)
                 : pl_dialect_encode(&frame, conf->dialect, &m);
    if (rc != 0) {
        pl_buf_free(&frame);
        fail_request(s, req, PARLEY_ERR_NO_MEMORY, "out of memory encoding the request");
        return false;
    }
    /* Room for the resume_from field the I/O thread may add on a repeat. */
    if ((int64_t)frame.len + 32 > conf->max_message_bytes) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "the request with its history is %zu bytes, over max.message.bytes (%lld)",
                 frame.len, (long long)conf->max_message_bytes);
        pl_buf_free(&frame);
        fail_request(s, req, PARLEY_ERR_TOO_LARGE, msg);
        return false;
    }
    size_t len;
    char *bytes = pl_buf_steal(&frame, &len);
    if (!submit(s, req, bytes, len)) {
        free(bytes);
        fail_request(s, req, PARLEY_ERR_SHUTDOWN,
                     "the client was destroyed before the request was sent");
        return false;
    }
    s->inflight = req;
    return true;
}

/* Start waiting turns until one is in flight or none is left. */
static void start_next(pl_session *s)
{
    while (!s->inflight && s->waiting_head) {
        pl_request *req = s->waiting_head;
        s->waiting_head = req->next;
        if (!s->waiting_head)
            s->waiting_tail = NULL;
        req->next = NULL;
        start_turn(s, req);
    }
}

/* ---- message handlers -------------------------------------------------- */

static void on_send(pl_session *s, pl_request *req)
{
    if (s->inflight) {
        if (s->waiting_tail)
            s->waiting_tail->next = req;
        else
            s->waiting_head = req;
        s->waiting_tail = req;
        return;
    }
    start_turn(s, req);
    start_next(s);
}

static uint64_t elapsed_us(const pl_request *req)
{
    int64_t d = pl_monotonic_us() - req->accepted_us;
    return d > 0 ? (uint64_t)d : 0;
}

/* The I/O thread routes by id, so a result for another id means a bug or a
 * stale message; it is counted and dropped rather than misdelivered. */
static pl_request *current(pl_session *s, uint64_t id)
{
    if (s->inflight && s->inflight->id == id)
        return s->inflight;
    PL_COUNT(s->client, errors, 1);
    return NULL;
}

static void on_text(pl_session *s, text_msg *m)
{
    pl_request *req = current(s, m->id);
    if (!req)
        return;
    if (!req->piece_seen) {
        req->piece_seen = true;
        pl_histogram_record(&s->client->ttft, elapsed_us(req));
    }
    if (pl_buf_append(&req->reply, m->text, m->len) != 0)
        pl_oom("keeping a reply");
    parley_event_t ev = {.type = PARLEY_EVENT_TEXT,
                         .request_id = m->id,
                         .content = m->text,
                         .content_len = m->len,
                         .seq = m->seq};
    deliver(s, &ev);
}

static void on_done(pl_session *s, done_msg *m)
{
    pl_request *req = current(s, m->id);
    if (!req)
        return;
    s->inflight = NULL;
    if (!req->reply.data && pl_buf_append(&req->reply, "", 0) != 0)
        pl_oom("keeping a reply");
    parley_event_t ev = {.type = PARLEY_EVENT_DONE,
                         .request_id = m->id,
                         .content = req->reply.data,
                         .content_len = req->reply.len,
                         .stop_reason = m->stop_reason,
                         .input_tokens = m->input_tokens,
                         .output_tokens = m->output_tokens};
    deliver(s, &ev);
    /* The history takes over both strings of the completed turn. */
    history_append(s, false, req->content, req->content_len);
    size_t reply_len;
    char *reply = pl_buf_steal(&req->reply, &reply_len);
    history_append(s, true, reply, reply_len);
    req->content = NULL;
    PL_COUNT(s->client, requests_done, 1);
    pl_histogram_record(&s->client->latency, elapsed_us(req));
    pl_client_release(s->client, s, req->content_len);
    request_free(req);
    start_next(s);
}

static void on_error(pl_session *s, error_msg *m)
{
    pl_request *req = current(s, m->id);
    if (!req)
        return;
    s->inflight = NULL;
    fail_request(s, req, m->err, m->message);
    start_next(s);
}

/* A waiting turn ends here at once; the turn in flight is cancelled at the
 * server, through the I/O thread, which answers with done (cancelled). */
static void on_cancel(pl_session *s, uint64_t id)
{
    if (s->inflight && s->inflight->id == id) {
        pl_io_request *io_req = pl_xcalloc(1, sizeof(*io_req));
        io_req->op = PL_IO_CANCEL;
        io_req->id = id;
        parley_client_t *c = s->client;
        atomic_fetch_add(&c->submitting, 1);
        if (atomic_load(&c->shutting_down))
            free(io_req); /* the shutdown ends the request anyway */
        else
            pl_io_submit(c->io, io_req);
        atomic_fetch_sub(&c->submitting, 1);
        return;
    }
    pl_request **link = &s->waiting_head, *prev = NULL;
    for (; *link; prev = *link, link = &(*link)->next) {
        pl_request *req = *link;
        if (req->id != id)
            continue;
        *link = req->next;
        if (s->waiting_tail == req)
            s->waiting_tail = prev;
        parley_event_t ev = {.type = PARLEY_EVENT_DONE,
                             .request_id = id,
                             .content = "",
                             .stop_reason = "cancelled"};
        deliver(s, &ev);
        PL_COUNT(s->client, requests_done, 1);
        pl_client_release(s->client, s, req->content_len);
        request_free(req);
        return;
    }
}

static void on_set(pl_session *s, set_msg *m)
{
    switch (m->what) {
    case SET_MODEL:
        free(s->model);
        s->model = m->value;
        break;
    case SET_SYSTEM:
        free(s->system_prompt);
        s->system_prompt = m->value;
        break;
    case SET_MAX_TOKENS:
        s->max_tokens = m->number;
        break;
    }
}

static void session_handle(pl_actor *actor, pl_actor_msg *msg)
{
    pl_session *s = SESSION_OF(actor);
    switch (msg->kind) {
    case MSG_SEND:
        on_send(s, ((send_msg *)msg)->req);
        break;
    case MSG_SET:
        on_set(s, (set_msg *)msg);
        break;
    case MSG_CANCEL:
        on_cancel(s, ((cancel_msg *)msg)->id);
        break;
    case MSG_CLOSE:
        pl_session_unref(s); /* the handle's reference */
        break;
    case MSG_TEXT:
        on_text(s, (text_msg *)msg);
        break;
    case MSG_DONE:
        on_done(s, (done_msg *)msg);
        break;
    case MSG_ERROR:
        on_error(s, (error_msg *)msg);
        break;
    }
    free(msg);
}

/* The last reference is gone: no turn is in flight or waiting, since each
 * holds a reference through its message or its I/O route. The handle
 * resolves to nothing from here on (session_table.h), then the memory goes. */
static void session_finalize(pl_actor *actor)
{
    pl_session *s = SESSION_OF(actor);
    pl_session_table_remove(s->handle);
    for (size_t i = 0; i < s->nhistory; i++)
        free((char *)s->history[i].content);
    free(s->history);
    free(s->model);
    free(s->system_prompt);
    pl_client_session_ended(s->client);
    free(s);
}

void pl_session_ref(pl_session *s)
{
    pl_actor_ref(&s->actor);
}

void pl_session_unref(pl_session *s)
{
    pl_actor_unref(&s->actor);
}

/* ---- posting from other threads ---------------------------------------- */

/* Text pieces reach the caller; the other kinds wait for the sessions to
 * keep them (issue 14). */
static void post_piece(void *owner, uint64_t id, uint32_t seq, const pl_piece *piece)
{
    if (piece->kind != PL_PIECE_TEXT)
        return;
    pl_session *s = owner;
    const char *text = piece->text;
    size_t len = piece->len;
    text_msg *m = pl_xmalloc(sizeof(*m) + len + 1);
    m->base.kind = MSG_TEXT;
    m->id = id;
    m->seq = seq;
    m->len = len;
    memcpy(m->text, text, len);
    m->text[len] = '\0';
    pl_actor_post(&s->actor, &m->base);
}

static void post_done(void *owner, uint64_t id, const pl_reply_end *end)
{
    pl_session *s = owner;
    done_msg *m = pl_xcalloc(1, sizeof(*m));
    m->base.kind = MSG_DONE;
    m->id = id;
    m->input_tokens = end->input_tokens;
    m->output_tokens = end->output_tokens;
    snprintf(m->stop_reason, sizeof(m->stop_reason), "%s",
             end->stop_reason ? end->stop_reason : "end_turn");
    pl_actor_post(&s->actor, &m->base);
}

/* Every error event's text passes here, whether it quotes a server or not. */
static void post_error(void *owner, uint64_t id, parley_err_t err, const char *message)
{
    pl_session *s = owner;
    size_t len = strlen(message);
    const char *key = s->client->api_key;
    size_t shown = pl_safe_text(NULL, 0, message, len, key);
    error_msg *m = pl_xmalloc(sizeof(*m) + shown + 1);
    m->base.kind = MSG_ERROR;
    m->id = id;
    m->err = err;
    pl_safe_text(m->message, shown + 1, message, len, key);
    pl_actor_post(&s->actor, &m->base);
}

static void release_owner(void *owner)
{
    pl_session_unref(owner);
}

const pl_io_sink pl_session_sink = {
    .piece = post_piece,
    .done = post_done,
    .error = post_error,
    .release = release_owner,
};

/* Post the close, which drops the handle's reference. */
static void post_close(pl_session *s)
{
    pl_actor_msg *m = pl_xcalloc(1, sizeof(*m));
    m->kind = MSG_CLOSE;
    /* The close drops the handle's reference, maybe the last: hold our own
     * until the post has finished touching the actor. */
    pl_session_ref(s);
    pl_actor_post(&s->actor, m);
    pl_session_unref(s);
}

bool pl_session_close_once(pl_session *s)
{
    bool empty;
    if (!pl_gate_close(&s->gate, &empty))
        return false;
    if (empty) /* no caller inside: none will post the close */
        post_close(s);
    return true;
}

/* A caller of the public API is done posting to the session. */
static void session_leave(pl_session *s)
{
    if (pl_gate_leave(&s->gate))
        post_close(s);
}

/* ---- public API --------------------------------------------------------- */

static void set_err(char *errstr, size_t size, const char *msg)
{
    if (errstr && size)
        snprintf(errstr, size, "%s", msg);
}

parley_session_t *parley_session_open(parley_client_t *client,
                                      const char *session_id, char *errstr,
                                      size_t errstr_size)
{
    if (!client) {
        set_err(errstr, errstr_size, "client is NULL");
        return NULL;
    }
    if (atomic_load(&client->shutting_down)) {
        set_err(errstr, errstr_size, "the client is being destroyed");
        return NULL;
    }
    char generated[32];
    if (!session_id) {
        snprintf(generated, sizeof(generated), "s-%llu",
                 (unsigned long long)pl_snowflake_next(client->worker_id));
        session_id = generated;
    }
    size_t id_len = strlen(session_id);
    if (!pl_proto_session_valid(session_id, id_len)) {
        set_err(errstr, errstr_size,
                "invalid session id: it must be 1-128 bytes of [A-Za-z0-9._:-]");
        return NULL;
    }
    pl_session *s = calloc(1, offsetof(pl_session, id) + id_len + 1);
    if (!s) {
        set_err(errstr, errstr_size, "out of memory");
        return NULL;
    }
    pl_actor_init(&s->actor, client->pool, session_handle, session_finalize);
    s->client = client;
    memcpy(s->id, session_id, id_len + 1);
    s->handle = pl_session_table_add(s);
    if (!s->handle) {
        free(s);
        set_err(errstr, errstr_size, "out of memory");
        return NULL;
    }
    pl_client_session_opened(client);
    return s->handle;
}

static parley_err_t session_set(pl_session *s, const char *name, const char *value,
                                char *errstr, size_t errstr_size)
{
    set_msg m = {.base.kind = MSG_SET};
    if (!strcmp(name, "model") || !strcmp(name, "system")) {
        m.what = name[0] == 'm' ? SET_MODEL : SET_SYSTEM;
        if (!pl_utf8_valid(value, strlen(value))) {
            set_err(errstr, errstr_size, "the value is not valid UTF-8");
            return PARLEY_ERR_INVALID_VALUE;
        }
    } else if (!strcmp(name, "max.tokens") || !strcmp(name, "max_tokens") ||
               !strcmp(name, "max-tokens")) {
        /* As the client's property (and its spellings, docs/configuration.md),
         * so that a value means the same in both. */
        int64_t n = 0;
        if (*value && pl_conf_parse_int_as(name, value, &n, errstr, errstr_size) != PARLEY_OK)
            return PARLEY_ERR_INVALID_VALUE;
        m.what = SET_MAX_TOKENS;
        m.number = (uint32_t)n;
    } else {
        char msg[160];
        snprintf(msg, sizeof(msg), "no such session option \"%.64s\": model, system or "
                 "max.tokens", name);
        set_err(errstr, errstr_size, msg);
        return PARLEY_ERR_UNKNOWN_OPTION;
    }
    set_msg *post = malloc(sizeof(*post));
    char *copy = m.what != SET_MAX_TOKENS && *value ? strdup(value) : NULL;
    if (!post || (m.what != SET_MAX_TOKENS && *value && !copy)) {
        free(post);
        free(copy);
        return PARLEY_ERR_NO_MEMORY;
    }
    *post = m;
    post->value = copy;
    pl_actor_post(&s->actor, &post->base);
    return PARLEY_OK;
}

parley_err_t parley_session_set(parley_session_t *session, const char *name,
                                const char *value, char *errstr, size_t errstr_size)
{
    if (!session || !name || !value) {
        set_err(errstr, errstr_size, "session, name and value must not be NULL");
        return PARLEY_ERR_INVALID_ARG;
    }
    pl_session *s = pl_session_table_ref(session);
    if (!s || !pl_gate_enter(&s->gate)) {
        if (s)
            pl_session_unref(s);
        set_err(errstr, errstr_size, "the session is closed");
        return PARLEY_ERR_STATE;
    }
    parley_err_t err = session_set(s, name, value, errstr, errstr_size);
    session_leave(s);
    pl_session_unref(s);
    return err;
}

const char *parley_session_id(const parley_session_t *session)
{
    return pl_session_table_id(session);
}

/* Checks that need no room: invalid UTF-8, size, state. */
static parley_err_t send_precheck(pl_session *s, const char *content, size_t *len)
{
    *len = strlen(content);
    if (!pl_utf8_valid(content, *len))
        return PARLEY_ERR_INVALID_ARG;
    if ((int64_t)*len > s->client->conf->max_message_bytes)
        return PARLEY_ERR_TOO_LARGE;
    if (pl_gate_is_closed(&s->gate))
        return PARLEY_ERR_STATE;
    if (atomic_load(&s->client->shutting_down))
        return PARLEY_ERR_SHUTDOWN;
    return PARLEY_OK;
}

/* Post an admitted turn to the session. */
static parley_err_t send_admitted(pl_session *s, const char *content, size_t len,
                                  uint64_t *request_id)
{
    pl_request *req = calloc(1, sizeof(*req));
    send_msg *m = calloc(1, sizeof(*m));
    char *copy = malloc(len + 1);
    if (!req || !m || !copy) {
        free(req);
        free(m);
        free(copy);
        pl_client_release(s->client, s, len);
        return PARLEY_ERR_NO_MEMORY;
    }
    memcpy(copy, content, len + 1);
    req->id = pl_snowflake_next(s->client->worker_id);
    req->content = copy;
    req->content_len = len;
    req->accepted_us = pl_monotonic_us();
    m->base.kind = MSG_SEND;
    m->req = req;
    if (request_id)
        *request_id = req->id;
    PL_COUNT(s->client, requests_sent, 1);
    pl_actor_post(&s->actor, &m->base);
    return PARLEY_OK;
}

/* parley_send_wait() inside the session's gate. A close while it waits
 * for room takes effect when it leaves. */
static parley_err_t send_waiting(pl_session *s, const char *content, size_t len,
                                 uint64_t *request_id, int timeout_ms)
{
    parley_err_t err = pl_client_admit(s->client, s, len, false);
    bool was_full = err == PARLEY_ERR_QUEUE_FULL;
    if (was_full && timeout_ms != 0 && !pl_pool_in_worker()) {
        parley_client_t *c = s->client;
        struct timespec deadline;
        if (timeout_ms > 0)
            pl_deadline_after(&deadline, timeout_ms);
        /* Announce the wait before re-checking, so that a release either sees
         * the waiter or frees room the re-check sees. */
        atomic_fetch_add(&c->space_waiters, 1);
        pthread_mutex_lock(&c->space_mu);
        while ((err = pl_client_admit(c, s, len, true)) == PARLEY_ERR_QUEUE_FULL &&
               !atomic_load(&c->shutting_down)) {
            int rc = timeout_ms > 0
                         ? pthread_cond_timedwait(&c->space_cv, &c->space_mu, &deadline)
                         : pthread_cond_wait(&c->space_cv, &c->space_mu);
            if (rc == ETIMEDOUT) {
                err = pl_client_admit(c, s, len, true);
                break;
            }
        }
        pthread_mutex_unlock(&c->space_mu);
        atomic_fetch_sub(&c->space_waiters, 1);
        if (err == PARLEY_ERR_QUEUE_FULL)
            err = atomic_load(&c->shutting_down) ? PARLEY_ERR_SHUTDOWN
                                                  : PARLEY_ERR_TIMED_OUT;
    }
    if (was_full && err != PARLEY_OK)
        PL_COUNT(s->client, queue_full, 1);
    if (err != PARLEY_OK)
        return err;
    return send_admitted(s, content, len, request_id);
}

parley_err_t parley_send_wait(parley_session_t *session, const char *content,
                              uint64_t *request_id, int timeout_ms)
{
    if (!session || !content)
        return PARLEY_ERR_INVALID_ARG;
    pl_session *s = pl_session_table_ref(session);
    if (!s)
        return PARLEY_ERR_STATE; /* closed, and every turn has ended */
    size_t len;
    parley_err_t err = send_precheck(s, content, &len);
    if (err == PARLEY_OK) {
        if (pl_gate_enter(&s->gate)) {
            err = send_waiting(s, content, len, request_id, timeout_ms);
            session_leave(s);
        } else {
            err = PARLEY_ERR_STATE; /* closed since the check */
        }
    }
    pl_session_unref(s);
    return err;
}

parley_err_t parley_send(parley_session_t *session, const char *content,
                         uint64_t *request_id)
{
    return parley_send_wait(session, content, request_id, 0);
}

static parley_err_t post_cancel(pl_session *s, uint64_t request_id)
{
    cancel_msg *m = calloc(1, sizeof(*m));
    if (!m)
        return PARLEY_ERR_NO_MEMORY;
    m->base.kind = MSG_CANCEL;
    m->id = request_id;
    pl_actor_post(&s->actor, &m->base);
    return PARLEY_OK;
}

/* A closed session still runs the turns it accepted, and they may still be
 * cancelled until the last has ended. */
parley_err_t parley_cancel(parley_session_t *session, uint64_t request_id)
{
    if (!session)
        return PARLEY_ERR_INVALID_ARG;
    pl_session *s = pl_session_table_ref(session);
    if (!s)
        return PARLEY_ERR_STATE; /* closed, and every turn has ended */
    parley_err_t err = post_cancel(s, request_id);
    pl_session_unref(s);
    return err;
}

void parley_session_close(parley_session_t *session)
{
    pl_session *s = pl_session_table_ref(session);
    if (s) {
        pl_session_close_once(s);
        pl_session_unref(s);
    }
}
