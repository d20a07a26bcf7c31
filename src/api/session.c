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
#include "blocks.h"
#include "buf.h"
#include "client.h"
#include "clock.h"
#include "dialect.h"
#include "event.h"
#include "io.h"
#include "option_name.h"
#include "reply_assembly.h"
#include "safe_text.h"
#include "session_msg.h"
#include "session_store.h"
#include "session_table.h"
#include "snowflake.h"
#include "turn.h"
#include "utf8.h"

#define SESSION_OF(a) ((pl_session *)(a))

/* The session whose message this worker thread is handling, if any: its
 * own callbacks may read its state directly (parley_session_export). */
static _Thread_local pl_session *running_session;

bool pl_session_is_running(const pl_session *s)
{
    return running_session == s;
}

static void request_free(pl_request *req)
{
    pl_reply_free(&req->reply);
    free(req->done);
    free(req->kept);
    free(req->content);
    free(req);
}

/* ---- delivering events ------------------------------------------------- */

static void deliver(pl_session *s, pl_request *req, parley_event_t *ev)
{
    ev->session = s->handle;
    ev->session_id = s->id;
    ev->request_id = req->id;
    ev->opaque = req->opaque;
    parley_conf_t *conf = s->client->conf;
    conf->event_cb(s->client, ev, conf->event_opaque);
}

void pl_session_fail(pl_session *s, pl_request *req, parley_err_t err, const char *message)
{
    parley_event_t ev = {.type = PARLEY_EVENT_ERROR,
                         .content = message,
                         .content_len = strlen(message),
                         .err = err};
    deliver(s, req, &ev);
    PL_COUNT(s->client, requests_failed, 1);
    pl_client_release(s->client, s, req->content_len);
    request_free(req);
}

/* ---- history and sending ----------------------------------------------- */

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool pl_session_submit(pl_session *s, pl_request *req, char *frame, size_t len,
                       const char *headers, bool needs_blocks)
{
    parley_client_t *c = s->client;
    if (!pl_client_handing_over(c)) {
        free(frame);
        return false;
    }
    pl_io_request *io_req = pl_xcalloc(1, sizeof(*io_req));
    io_req->op = PL_IO_SEND;
    io_req->id = req->id;
    io_req->owner = s;
    io_req->owner_id = s->id;
    io_req->frame = frame;
    io_req->frame_len = len;
    io_req->headers = headers ? pl_xstrdup(headers) : NULL;
    io_req->needs_blocks = needs_blocks;
    pl_session_ref(s);
    pl_io_submit(c->io, io_req);
    pl_client_handed_over(c);
    req->phase = PL_REQ_SENT;
    return true;
}

/* The session's request options; none set: an empty table. */
static const pl_request_options *own_options(const pl_session *s)
{
    static const pl_request_options none;
    return s->options ? s->options : &none;
}

/* Does the turn use the native protocol's extension `blocks` (protocol.md
 * 9), which only a server announcing it may see? */
static bool uses_blocks(const pl_session *s, const pl_request *req, const pl_request_params *p)
{
    if (req->content_blocks || p->system || p->tools || p->tool_choice || p->stop_sequences ||
        p->metadata || p->thinking_budget || p->has_temperature || p->has_top_p || p->top_k)
        return true;
    return s->history.with_blocks > 0;
}

/* A turn after a reply that called tools must answer them: the vendors
 * refuse it otherwise, and every later turn with it. */
static bool answers_last_calls(pl_session *s, pl_request *req)
{
    if (s->history.n < 2)
        return true;
    const pl_history_turn *last = &s->history.turns[s->history.n - 1];
    char why[240];
    if (pl_blocks_answer_calls(last->content, last->content_len, last->blocks, req->content,
                               req->content_len, req->content_blocks, why, sizeof(why)))
        return true;
    pl_session_fail(s, req, PARLEY_ERR_INVALID_ARG, why);
    return false;
}

/* Send req as the turn in flight. Returns false when it ended at once. */
static bool start_turn(pl_session *s, pl_request *req)
{
    parley_conf_t *conf = s->client->conf;
    pl_history_trim(&s->history, s->history_max_turns, s->history_max_bytes);
    if (!answers_last_calls(s, req))
        return false;
    pl_request_params params = {.system = s->system_prompt ? s->system_prompt
                                                           : conf->system_prompt};
    pl_request_params_fill(&params, own_options(s), &s->client->request_defaults);
    pl_message_req m = {.id = req->id,
                        .session = s->id,
                        .timestamp_ms = unix_ms(),
                        .content = req->content,
                        .content_len = req->content_len,
                        .content_blocks = req->content_blocks,
                        .history = s->history.turns,
                        .nhistory = s->history.n,
                        .model = s->model ? s->model : conf->model,
                        .max_tokens = s->max_tokens ? s->max_tokens
                                                    : (uint32_t)conf->max_tokens,
                        .params = &params};
    pl_buf frame = PL_BUF_INIT;
    int rc = conf->dialect == PL_DIALECT_NATIVE
                 ? pl_proto_encode_message(&frame, &m)
                 : pl_dialect_encode(&frame, conf->dialect, &m);
    if (rc != 0) {
        pl_buf_free(&frame);
        pl_session_fail(s, req, PARLEY_ERR_NO_MEMORY, "out of memory encoding the request");
        return false;
    }
    /* Room for the resume_from field the I/O thread may add on a repeat. */
    if ((int64_t)frame.len + 32 > conf->max_message_bytes) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "the request with its history is %zu bytes, over max.message.bytes (%lld)",
                 frame.len, (long long)conf->max_message_bytes);
        pl_buf_free(&frame);
        pl_session_fail(s, req, PARLEY_ERR_TOO_LARGE, msg);
        return false;
    }
    size_t len;
    char *bytes = pl_buf_steal(&frame, &len);
    bool needs_blocks = conf->dialect == PL_DIALECT_NATIVE && uses_blocks(s, req, &params);
    const char *headers = pl_request_extra_headers(own_options(s),
                                                   &s->client->request_defaults);
    /* With a store, recorded there as in flight; the record and the turn
     * leave together, and the turn is saved before its DONE. */
    pl_session_store_record(s, req);
    if (!pl_session_submit(s, req, bytes, len, headers, needs_blocks)) {
        pl_session_fail(s, req, PARLEY_ERR_SHUTDOWN,
                        "the client was destroyed before the request was sent");
        return false;
    }
    s->inflight = req;
    return true;
}

/* Start waiting turns until one is in flight or none is left (or the
 * session's history is still on its way from the store); a closed session
 * left idle gives its lease back. */
void pl_session_start_next(pl_session *s)
{
    while (!s->inflight && s->waiting_head && !pl_session_store_loading(s)) {
        pl_request *req = s->waiting_head;
        s->waiting_head = req->next;
        if (!s->waiting_head)
            s->waiting_tail = NULL;
        req->next = NULL;
        start_turn(s, req);
    }
    pl_session_store_release_if_done(s);
}

/* ---- message handlers -------------------------------------------------- */

static void on_send(pl_session *s, pl_request *req)
{
    if (pl_session_store_refuses(s, req))
        return;
    if (s->inflight || pl_session_store_loading(s)) {
        if (s->waiting_tail)
            s->waiting_tail->next = req;
        else
            s->waiting_head = req;
        s->waiting_tail = req;
        return;
    }
    start_turn(s, req);
    pl_session_start_next(s);
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

static const parley_event_type_t event_of_piece[] = {
    [PL_PIECE_TEXT] = PARLEY_EVENT_TEXT,
    [PL_PIECE_THINKING] = PARLEY_EVENT_THINKING,
    [PL_PIECE_TOOL_USE] = PARLEY_EVENT_TOOL_USE,
};

static void on_piece(pl_session *s, piece_msg *m)
{
    pl_request *req = current(s, m->id);
    if (!req)
        return;
    if (!req->piece_seen) {
        req->piece_seen = true;
        pl_histogram_record(&s->client->ttft, elapsed_us(req));
    }
    const char *signature = m->data + m->len + 1;
    const char *tool_id = signature + strlen(signature) + 1;
    const char *tool_name = tool_id + strlen(tool_id) + 1;
    pl_piece piece = {.kind = m->kind,
                      .block = m->block,
                      .text = m->data,
                      .len = m->len,
                      .signature = m->has_signature ? signature : NULL,
                      .tool_id = tool_id,
                      .tool_name = tool_name};
    pl_reply_add(&req->reply, &piece);
    parley_event_t ev = {.type = event_of_piece[m->kind],
                         .content = m->data,
                         .content_len = m->len,
                         .seq = m->seq,
                         .block = m->block,
                         .signature = piece.signature,
                         .tool_id = tool_id,
                         .tool_name = tool_name};
    deliver(s, req, &ev);
}

/* The next string of a done_msg's data, NULL when empty (absent). */
static const char *next_string(const char **p)
{
    const char *s = *p;
    *p += strlen(s) + 1;
    return *s ? s : NULL;
}

void pl_session_finish(pl_session *s, pl_request *req, const done_msg *m, char *kept,
                       bool kept_blocks, size_t kept_len)
{
    s->inflight = NULL;
    size_t text_len = 0;
    const char *text = "";
    /* A reply of one text block was handed to kept whole. */
    if (kept && !kept_blocks) {
        text = kept;
        text_len = kept_len;
    } else if (req->reply.n) {
        text = pl_reply_text(&req->reply, &text_len);
    }
    const char *p = m->data;
    parley_event_t ev = {.type = PARLEY_EVENT_DONE,
                         .content = text,
                         .content_len = text_len,
                         .stop_reason = m->stop_reason,
                         .stop_sequence = next_string(&p),
                         .message_id = next_string(&p),
                         .vendor_request_id = next_string(&p),
                         .input_tokens = m->input_tokens,
                         .output_tokens = m->output_tokens,
                         .cache_creation_tokens = m->cache_creation_tokens,
                         .cache_read_tokens = m->cache_read_tokens};
    deliver(s, req, &ev);
    if (kept) {
        pl_history_append(&s->history, false, req->content_blocks, req->content,
                          req->content_len);
        pl_history_append(&s->history, true, kept_blocks, kept, kept_len);
        req->content = NULL;
    }
    PL_COUNT(s->client, requests_done, 1);
    pl_histogram_record(&s->client->latency, elapsed_us(req));
    pl_client_release(s->client, s, req->content_len);
    request_free(req);
    pl_session_start_next(s);
}

static void on_done(pl_session *s, done_msg *m)
{
    pl_request *req = current(s, m->id);
    if (!req)
        return;
    /* The history holds completed turns only: a cancelled one, or one
     * whose reply kept nothing a vendor would take back, would make every
     * later request of the session carry an empty or half message. */
    bool blocks = false;
    size_t len = 0;
    char *kept = strcmp(m->stop_reason, "cancelled")
                     ? pl_reply_take_history(&req->reply, &blocks, &len)
                     : NULL;
    /* With a store, DONE waits until the turn is saved. */
    if (pl_session_store_save(s, req, m, kept, blocks, len))
        return;
    pl_session_finish(s, req, m, kept, blocks, len);
}

static void on_error(pl_session *s, error_msg *m)
{
    pl_request *req = current(s, m->id);
    if (!req)
        return;
    s->inflight = NULL;
    pl_session_store_forget(s, req);
    pl_session_fail(s, req, m->err, m->message);
    pl_session_start_next(s);
}

/* DONE with stop reason "cancelled" for a turn that never reached the
 * server. Frees req. */
static void end_cancelled(pl_session *s, pl_request *req)
{
    parley_event_t ev = {.type = PARLEY_EVENT_DONE, .content = "", .stop_reason = "cancelled"};
    deliver(s, req, &ev);
    PL_COUNT(s->client, requests_done, 1);
    pl_client_release(s->client, s, req->content_len);
    request_free(req);
}

/* A waiting turn ends here at once; the turn in flight is cancelled at the
 * server, through the I/O thread, which answers with done (cancelled). */
static void on_cancel(pl_session *s, uint64_t id)
{
    if (s->inflight && s->inflight->id == id) {
        if (s->inflight->phase == PL_REQ_SAVING)
            return; /* replied already: it is being saved */
        parley_client_t *c = s->client;
        if (!pl_client_handing_over(c))
            return; /* the shutdown ends the request anyway */
        pl_io_request *io_req = pl_xcalloc(1, sizeof(*io_req));
        io_req->op = PL_IO_CANCEL;
        io_req->id = id;
        pl_io_submit(c->io, io_req);
        pl_client_handed_over(c);
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
        end_cancelled(s, req);
        pl_session_start_next(s); /* a closed session may be idle now */
        return;
    }
}

static void on_set(pl_session *s, set_msg *m)
{
    switch (m->what) {
    case SET_MODEL:
        free(s->model);
        s->model = m->text;
        break;
    case SET_SYSTEM:
        free(s->system_prompt);
        s->system_prompt = m->text;
        break;
    case SET_MAX_TOKENS:
        s->max_tokens = (uint32_t)m->number;
        break;
    case SET_REQUEST_OPTION:
        if (!s->options)
            s->options = pl_xcalloc(1, sizeof(*s->options));
        pl_request_options_apply(s->options, m->option, &m->value);
        break;
    case SET_HISTORY_TURNS:
        s->history_max_turns = (size_t)m->number;
        break;
    case SET_HISTORY_BYTES:
        s->history_max_bytes = (size_t)m->number;
        break;
    }
}

void pl_answer_release(answer_wait *w)
{
    if (atomic_fetch_sub(&w->refs, 1) != 1)
        return;
    free(w->json);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}

void pl_answer_give(answer_wait *w)
{
    pthread_mutex_lock(&w->mu);
    w->answered = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pl_answer_release(w);
}

static void on_export(pl_session *s, answer_wait *w)
{
    pl_buf out = PL_BUF_INIT;
    if (pl_history_export(&s->history, &out) != 0)
        pl_oom("exporting a history");
    w->json = pl_buf_steal(&out, &w->len);
    pl_answer_give(w);
}

static void session_handle(pl_actor *actor, pl_actor_msg *msg)
{
    pl_session *s = SESSION_OF(actor);
    running_session = s;
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
        pl_session_store_closing(s); /* gives the lease back once idle */
        pl_session_unref(s); /* the handle's reference */
        break;
    case MSG_PIECE:
        on_piece(s, (piece_msg *)msg);
        break;
    case MSG_EXPORT:
        on_export(s, ((answer_msg *)msg)->wait);
        break;
    case MSG_STORE:
    case MSG_LEASE_LOST:
    case MSG_READY:
        pl_session_store_handle(s, msg);
        break;
    case MSG_DONE:
        on_done(s, (done_msg *)msg);
        break;
    case MSG_ERROR:
        on_error(s, (error_msg *)msg);
        break;
    }
    running_session = NULL;
    free(msg);
}

/* The last reference is gone: no turn is in flight or waiting, since each
 * holds a reference through its message or its I/O route. The handle
 * resolves to nothing from here on (session_table.h), then the memory goes. */
static void session_finalize(pl_actor *actor)
{
    pl_session *s = SESSION_OF(actor);
    pl_session_table_remove(s->handle);
    pl_history_free(&s->history);
    free(s->lease.why);
    if (s->options) {
        pl_request_options_free(s->options);
        free(s->options);
    }
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

static size_t str_size(const char *s)
{
    return (s ? strlen(s) : 0) + 1;
}

static char *put_string(char *at, const char *s)
{
    size_t n = str_size(s);
    if (s)
        memcpy(at, s, n);
    else
        *at = '\0';
    return at + n;
}

static void post_piece(void *owner, uint64_t id, uint32_t seq, const pl_piece *p)
{
    pl_session *s = owner;
    size_t extra = p->len + 1 + str_size(p->signature) + str_size(p->tool_id) +
                   str_size(p->tool_name);
    piece_msg *m = pl_xmalloc(sizeof(*m) + extra);
    m->base.kind = MSG_PIECE;
    m->id = id;
    m->seq = seq;
    m->block = p->block;
    m->kind = p->kind;
    m->len = p->len;
    m->has_signature = p->signature != NULL;
    if (p->len)
        memcpy(m->data, p->text, p->len);
    m->data[p->len] = '\0';
    char *at = put_string(m->data + p->len + 1, p->signature);
    at = put_string(at, p->tool_id);
    put_string(at, p->tool_name);
    pl_actor_post(&s->actor, &m->base);
}

static void post_done(void *owner, uint64_t id, const pl_reply_end *end)
{
    pl_session *s = owner;
    size_t extra = str_size(end->stop_sequence) + str_size(end->message_id) +
                   str_size(end->vendor_request_id);
    done_msg *m = pl_xcalloc(1, sizeof(*m) + extra);
    m->base.kind = MSG_DONE;
    m->id = id;
    m->input_tokens = end->input_tokens;
    m->output_tokens = end->output_tokens;
    m->cache_creation_tokens = end->cache_creation_tokens;
    m->cache_read_tokens = end->cache_read_tokens;
    snprintf(m->stop_reason, sizeof(m->stop_reason), "%s",
             end->stop_reason ? end->stop_reason : "end_turn");
    char *at = put_string(m->data, end->stop_sequence);
    at = put_string(at, end->message_id);
    put_string(at, end->vendor_request_id);
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
    .store_done = pl_session_post_store_done,
    .lease_lost = pl_session_post_lease_lost,
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

void pl_session_leave(pl_session *s)
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

/* A new session, not yet in the table (no other thread can see it). */
static pl_session *session_new(parley_client_t *client, const char *session_id, char *errstr,
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
    return s;
}

/* Make s visible: from here on it runs as an actor. */
static parley_session_t *session_publish(pl_session *s, char *errstr, size_t errstr_size)
{
    s->handle = pl_session_table_add(s);
    if (!s->handle) {
        pl_history_free(&s->history);
        free(s);
        set_err(errstr, errstr_size, "out of memory");
        return NULL;
    }
    pl_client_session_opened(s->client);
    pl_session_store_open(s);
    return s->handle;
}

parley_session_t *parley_session_open(parley_client_t *client,
                                      const char *session_id, char *errstr,
                                      size_t errstr_size)
{
    pl_session *s = session_new(client, session_id, errstr, errstr_size);
    return s ? session_publish(s, errstr, errstr_size) : NULL;
}

parley_session_t *parley_session_open_with_history(parley_client_t *client,
                                                   const char *session_id, const char *json,
                                                   size_t json_len, char *errstr,
                                                   size_t errstr_size)
{
    if (!json) {
        set_err(errstr, errstr_size, "the history is NULL");
        return NULL;
    }
    if (client && client->has_store) {
        set_err(errstr, errstr_size,
                "with a session store the history comes from the store: open the session "
                "with parley_session_open()");
        return NULL;
    }
    pl_session *s = session_new(client, session_id, errstr, errstr_size);
    if (!s)
        return NULL;
    char why[300];
    if (pl_history_import(&s->history, json, json_len, why, sizeof(why)) != 0) {
        pl_history_free(&s->history);
        free(s);
        set_err(errstr, errstr_size, why);
        return NULL;
    }
    return session_publish(s, errstr, errstr_size);
}

/* A history limit: a count of turns or bytes, 0 for none. */
static parley_err_t parse_limit(const char *name, const char *value, uint64_t *out,
                                char *errstr, size_t errstr_size)
{
    char *end;
    errno = 0;
    unsigned long long n = *value ? strtoull(value, &end, 10) : 0;
    if (*value && (*end || errno || value[0] == '-')) {
        char msg[160];
        snprintf(msg, sizeof(msg), "%s: expected a count (0: no limit), not \"%.32s\"", name,
                 value);
        set_err(errstr, errstr_size, msg);
        return PARLEY_ERR_INVALID_VALUE;
    }
    *out = n;
    return PARLEY_OK;
}

static parley_err_t session_set(pl_session *s, const char *name, const char *value,
                                char *errstr, size_t errstr_size)
{
    set_msg m = {.base.kind = MSG_SET};
    int opt;
    if (!strcmp(name, "model") || !strcmp(name, "system")) {
        m.what = name[0] == 'm' ? SET_MODEL : SET_SYSTEM;
        if (!pl_utf8_valid(value, strlen(value))) {
            set_err(errstr, errstr_size, "the value is not valid UTF-8");
            return PARLEY_ERR_INVALID_VALUE;
        }
        m.text = *value ? strdup(value) : NULL;
        if (*value && !m.text)
            return PARLEY_ERR_NO_MEMORY;
    } else if (pl_name_is(name, "max.tokens")) {
        /* As the client's property (and its spellings, docs/configuration.md),
         * so that a value means the same in both. */
        int64_t n = 0;
        if (*value && pl_conf_parse_int_as(name, value, &n, errstr, errstr_size) != PARLEY_OK)
            return PARLEY_ERR_INVALID_VALUE;
        m.what = SET_MAX_TOKENS;
        m.number = (uint64_t)n;
    } else if (pl_name_is(name, "history.max.turns") || pl_name_is(name, "history.max.bytes")) {
        m.what = pl_name_is(name, "history.max.turns") ? SET_HISTORY_TURNS : SET_HISTORY_BYTES;
        if (parse_limit(name, value, &m.number, errstr, errstr_size) != PARLEY_OK)
            return PARLEY_ERR_INVALID_VALUE;
    } else if ((opt = pl_request_option_find(name)) >= 0) {
        m.what = SET_REQUEST_OPTION;
        m.option = (pl_request_option)opt;
        if (pl_request_option_parse(m.option, value, &s->client->conf->dialect, &m.value, errstr,
                                    errstr_size) != PARLEY_OK)
            return PARLEY_ERR_INVALID_VALUE;
    } else {
        char msg[320];
        snprintf(msg, sizeof(msg),
                 "no such session option \"%.64s\": model, system, max.tokens, temperature, "
                 "top.p, top.k, stop.sequences, metadata, tools, tool.choice, thinking.budget, "
                 "prompt.caching, extra.body, extra.headers, history.max.turns or "
                 "history.max.bytes",
                 name);
        set_err(errstr, errstr_size, msg);
        return PARLEY_ERR_UNKNOWN_OPTION;
    }
    set_msg *post = malloc(sizeof(*post));
    if (!post) {
        free(m.text);
        free(m.value.text);
        return PARLEY_ERR_NO_MEMORY;
    }
    *post = m;
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
    pl_session_leave(s);
    pl_session_unref(s);
    return err;
}

const char *parley_session_id(const parley_session_t *session)
{
    return pl_session_table_id(session);
}

/* A turn as the caller gives it, before it is admitted. */
typedef struct turn_in {
    const char *content;
    size_t len;
    bool blocks; /* content is a checked JSON array of blocks */
    void *opaque;
} turn_in;

/* Checks that need no room: invalid UTF-8, size, state. */
static parley_err_t send_precheck(pl_session *s, const turn_in *t)
{
    if (!t->blocks && !pl_utf8_valid(t->content, t->len))
        return PARLEY_ERR_INVALID_ARG;
    if ((int64_t)t->len > s->client->conf->max_message_bytes)
        return PARLEY_ERR_TOO_LARGE;
    if (pl_gate_is_closed(&s->gate))
        return PARLEY_ERR_STATE;
    if (atomic_load(&s->client->shutting_down))
        return PARLEY_ERR_SHUTDOWN;
    return PARLEY_OK;
}

/* Post an admitted turn to the session. */
static parley_err_t send_admitted(pl_session *s, const turn_in *t, uint64_t *request_id)
{
    pl_request *req = calloc(1, sizeof(*req));
    send_msg *m = calloc(1, sizeof(*m));
    char *copy = malloc(t->len + 1);
    if (!req || !m || !copy) {
        free(req);
        free(m);
        free(copy);
        pl_client_release(s->client, s, t->len);
        return PARLEY_ERR_NO_MEMORY;
    }
    memcpy(copy, t->content, t->len);
    copy[t->len] = '\0';
    req->id = pl_snowflake_next(s->client->worker_id);
    req->content = copy;
    req->content_len = t->len;
    req->content_blocks = t->blocks;
    req->opaque = t->opaque;
    req->accepted_us = pl_monotonic_us();
    m->base.kind = MSG_SEND;
    m->req = req;
    if (request_id)
        *request_id = req->id;
    PL_COUNT(s->client, requests_sent, 1);
    pl_actor_post(&s->actor, &m->base);
    return PARLEY_OK;
}

/* A send inside the session's gate, waiting up to timeout_ms for room. A
 * close while it waits takes effect when it leaves. */
static parley_err_t send_waiting(pl_session *s, const turn_in *t, uint64_t *request_id,
                                 int timeout_ms)
{
    size_t len = t->len;
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
    return send_admitted(s, t, request_id);
}

static parley_err_t send_turn_in(parley_session_t *session, const turn_in *t,
                                 uint64_t *request_id, int timeout_ms)
{
    pl_session *s = pl_session_table_ref(session);
    if (!s)
        return PARLEY_ERR_STATE; /* closed, and every turn has ended */
    parley_err_t err = send_precheck(s, t);
    if (err == PARLEY_OK) {
        if (pl_gate_enter(&s->gate)) {
            err = send_waiting(s, t, request_id, timeout_ms);
            pl_session_leave(s);
        } else {
            err = PARLEY_ERR_STATE; /* closed since the check */
        }
    }
    pl_session_unref(s);
    return err;
}

parley_err_t parley_send_opaque(parley_session_t *session, const char *content, void *opaque,
                                uint64_t *request_id, int timeout_ms)
{
    if (!session || !content)
        return PARLEY_ERR_INVALID_ARG;
    turn_in t = {.content = content, .len = strlen(content), .opaque = opaque};
    return send_turn_in(session, &t, request_id, timeout_ms);
}

parley_err_t parley_send_wait(parley_session_t *session, const char *content,
                              uint64_t *request_id, int timeout_ms)
{
    return parley_send_opaque(session, content, NULL, request_id, timeout_ms);
}

parley_err_t parley_send(parley_session_t *session, const char *content,
                         uint64_t *request_id)
{
    return parley_send_opaque(session, content, NULL, request_id, 0);
}

parley_err_t parley_send_turn(parley_session_t *session, const parley_turn_t *turn,
                              void *opaque, uint64_t *request_id, int timeout_ms)
{
    if (!session || !turn || !turn->nblocks)
        return PARLEY_ERR_INVALID_ARG;
    turn_in t = {.opaque = opaque};
    char *content;
    if (pl_turn_content(turn, &content, &t.len, &t.blocks) != 0)
        return PARLEY_ERR_NO_MEMORY;
    t.content = content;
    parley_err_t err = send_turn_in(session, &t, request_id, timeout_ms);
    free(content);
    return err;
}

/* ---- history export ----------------------------------------------------- */

answer_wait *pl_session_ask(pl_session *s, int kind, int timeout_ms)
{
    answer_wait *w = calloc(1, sizeof(*w));
    answer_msg *m = calloc(1, sizeof(*m));
    if (!w || !m) {
        free(w);
        free(m);
        return NULL;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    atomic_init(&w->refs, 2); /* ours and the message's */
    m->base.kind = kind;
    m->wait = w;
    struct timespec deadline;
    if (timeout_ms > 0)
        pl_deadline_after(&deadline, timeout_ms);
    pl_actor_post(&s->actor, &m->base);
    pthread_mutex_lock(&w->mu);
    while (!w->answered && timeout_ms != 0) {
        int rc = timeout_ms > 0 ? pthread_cond_timedwait(&w->cv, &w->mu, &deadline)
                                : pthread_cond_wait(&w->cv, &w->mu);
        if (rc == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&w->mu);
    return w;
}

/* Ask the session for its history and wait for the answer. */
static parley_err_t export_waiting(pl_session *s, char **json, size_t *len, int timeout_ms)
{
    answer_wait *w = pl_session_ask(s, MSG_EXPORT, timeout_ms);
    if (!w)
        return PARLEY_ERR_NO_MEMORY;
    pthread_mutex_lock(&w->mu);
    parley_err_t err = PARLEY_ERR_TIMED_OUT;
    if (w->answered) {
        *json = w->json;
        *len = w->len;
        w->json = NULL;
        err = PARLEY_OK;
    }
    pthread_mutex_unlock(&w->mu);
    pl_answer_release(w);
    return err;
}

parley_err_t parley_session_export(parley_session_t *session, char **json, size_t *len,
                                   int timeout_ms)
{
    if (!session || !json)
        return PARLEY_ERR_INVALID_ARG;
    pl_session *s = pl_session_table_ref(session);
    if (!s)
        return PARLEY_ERR_STATE;
    size_t n = 0;
    parley_err_t err;
    if (running_session == s) {
        /* Inside one of its own callbacks: the state is ours to read. */
        pl_buf out = PL_BUF_INIT;
        err = pl_history_export(&s->history, &out) == 0 ? PARLEY_OK : PARLEY_ERR_NO_MEMORY;
        if (err == PARLEY_OK)
            *json = pl_buf_steal(&out, &n);
        else
            pl_buf_free(&out);
    } else if (pl_pool_in_worker()) {
        err = PARLEY_ERR_STATE; /* the answer may need this very worker */
    } else if (pl_gate_enter(&s->gate)) {
        err = export_waiting(s, json, &n, timeout_ms);
        pl_session_leave(s);
    } else {
        err = PARLEY_ERR_STATE;
    }
    if (err == PARLEY_OK && len)
        *len = n;
    pl_session_unref(s);
    return err;
}

void parley_free(void *p)
{
    free(p);
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
