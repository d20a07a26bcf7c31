/* A session kept in the session store (session_store.h). */
#include "session_store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "alloc.h"
#include "buf.h"
#include "client.h"
#include "clock.h"
#include "history.h"
#include "log.h"
#include "session.h"
#include "session_table.h"

/* An owned session is asked for again this often at most while its lease
 * is waited for (session.lease.wait.ms), sooner when the lease ends sooner. */
#define LEASE_RETRY_MAX_MS 100

static bool has_store(const pl_session *s)
{
    return s->client->has_store;
}

/* ---- orders ------------------------------------------------------------ */

/* Hand an order to the I/O thread (taking json); false when the client is
 * shutting down, which ends every lease anyway. */
static bool submit_order(pl_session *s, pl_store_op op, uint64_t request_id, char *json,
                         size_t json_len, int64_t not_before_ms)
{
    parley_client_t *c = s->client;
    if (!pl_client_handing_over(c)) {
        free(json);
        return false;
    }
    pl_store_order *o = pl_xcalloc(1, sizeof(*o));
    o->op = op;
    o->owner = s;
    o->session = s->id;
    o->fence = s->lease.fence;
    o->request_id = request_id;
    o->turn = s->lease.stored_turns;
    o->json = json;
    o->json_len = json_len;
    o->deadline_ms = pl_monotonic_ms() + c->conf->store_wait_ms;
    o->not_before_ms = not_before_ms;
    pl_session_ref(s);
    pl_io_store(c->io, o);
    pl_client_handed_over(c);
    return true;
}

static void answer_ready(pl_session *s)
{
    answer_wait *w;
    while ((w = s->lease.ready)) {
        s->lease.ready = w->next;
        w->err = s->lease.state == PL_LEASE_FAILED ? s->lease.err : PARLEY_OK;
        w->recovered_id = s->lease.recovered_id;
        pl_answer_give(w);
    }
}

/* The session cannot be had, or is had no longer: every turn waiting ends
 * with err, and so will every turn sent from now on. */
static void lease_failed(pl_session *s, parley_err_t err, const char *why)
{
    s->lease.state = PL_LEASE_FAILED;
    s->lease.err = err;
    free(s->lease.why);
    s->lease.why = pl_xstrdup(why);
    pl_log(&s->client->log, PARLEY_LOG_WARNING, "store", "session %s: %s", s->id, why);
    pl_request *req;
    while ((req = s->waiting_head)) {
        s->waiting_head = req->next;
        pl_session_fail(s, req, err, why);
    }
    s->waiting_tail = NULL;
    answer_ready(s);
}

/* Give the lease back: the session is closed and no turn is left. */
static void release_lease(pl_session *s)
{
    s->lease.held = false;
    submit_order(s, PL_STORE_RELEASE, 0, NULL, 0, 0);
}

void pl_session_store_open(pl_session *s)
{
    if (!has_store(s))
        return;
    s->lease.state = PL_LEASE_TAKING;
    s->lease.wait_until_ms = pl_monotonic_ms() + s->client->conf->lease_wait_ms;
    if (!submit_order(s, PL_STORE_ACQUIRE, 0, NULL, 0, 0)) {
        s->lease.state = PL_LEASE_FAILED;
        s->lease.err = PARLEY_ERR_SHUTDOWN;
        s->lease.why = pl_xstrdup("the client is being destroyed");
    }
}

bool pl_session_store_loading(const pl_session *s)
{
    return s->lease.state == PL_LEASE_TAKING;
}

bool pl_session_store_refuses(pl_session *s, pl_request *req)
{
    if (s->lease.state != PL_LEASE_FAILED)
        return false;
    pl_session_fail(s, req, s->lease.err, s->lease.why);
    return true;
}

/* req's message as the history holds it (req keeps the content). */
static pl_history_turn user_message(const pl_request *req)
{
    return (pl_history_turn){.assistant = false,
                             .blocks = req->content_blocks,
                             .content = req->content,
                             .content_len = req->content_len};
}

/* The pending record of a turn: {"id":"<request id>","turn":N,"user":{...}}. */
static char *pending_json(const pl_session *s, const pl_request *req, size_t *len)
{
    pl_buf out = PL_BUF_INIT;
    char head[64];
    snprintf(head, sizeof(head), "{\"id\":\"%llu\",\"turn\":%u,\"user\":",
             (unsigned long long)req->id, s->lease.stored_turns);
    pl_history_turn user = user_message(req);
    if (pl_buf_append_str(&out, head) || pl_history_write_message(&out, &user) ||
        pl_buf_append(&out, "}", 1))
        pl_oom("recording a turn");
    return pl_buf_steal(&out, len);
}

void pl_session_store_record(pl_session *s, pl_request *req)
{
    if (!has_store(s))
        return;
    size_t json_len;
    char *json = pending_json(s, req, &json_len);
    submit_order(s, PL_STORE_PENDING, req->id, json, json_len, 0);
}

bool pl_session_store_save(pl_session *s, pl_request *req, const done_msg *m, char *kept,
                           bool kept_blocks, size_t kept_len)
{
    if (!has_store(s))
        return false;
    if (!kept) {
        pl_session_store_forget(s, req); /* cancelled, or nothing to keep */
        return false;
    }
    pl_buf out = PL_BUF_INIT;
    pl_history_turn user = user_message(req);
    pl_history_turn reply = {
        .assistant = true, .blocks = kept_blocks, .content = kept, .content_len = kept_len};
    if (pl_history_write_message(&out, &user) || pl_buf_append(&out, ",", 1) ||
        pl_history_write_message(&out, &reply))
        pl_oom("saving a turn");
    /* The done message and what follows it (its strings), kept for DONE. */
    const char *end = m->data;
    for (int i = 0; i < 3; i++)
        end += strlen(end) + 1;
    size_t done_size = (size_t)(end - (const char *)m);
    req->done = pl_xmalloc(done_size);
    memcpy(req->done, m, done_size);
    req->kept = kept;
    req->kept_len = kept_len;
    req->kept_blocks = kept_blocks;
    req->phase = PL_REQ_SAVING;
    size_t json_len;
    char *json = pl_buf_steal(&out, &json_len);
    if (!submit_order(s, PL_STORE_COMMIT, req->id, json, json_len, 0)) {
        s->inflight = NULL;
        pl_session_fail(s, req, PARLEY_ERR_SHUTDOWN,
                        "the client was destroyed before the turn was saved");
        pl_session_start_next(s);
    }
    return true;
}

void pl_session_store_forget(pl_session *s, pl_request *req)
{
    if (!has_store(s) || s->lease.state != PL_LEASE_HELD)
        return;
    if (req->phase == PL_REQ_SENT || req->phase == PL_REQ_SAVING)
        submit_order(s, PL_STORE_PENDING, req->id, NULL, 0, 0);
}

void pl_session_store_release_if_done(pl_session *s)
{
    if (s->lease.closing && s->lease.held && !s->inflight && !s->waiting_head)
        release_lease(s);
}

void pl_session_store_closing(pl_session *s)
{
    s->lease.closing = true;
    pl_session_store_release_if_done(s);
}

/* ---- answers ----------------------------------------------------------- */

/* A dead owner's turn in flight, recorded as pending_json() writes it: sent
 * again, first, under its request id, so that the server resumes it
 * (native) or knows it by its Idempotency-Key (HTTP) instead of answering
 * it twice. */
static void recover_turn(pl_session *s, const char *json, size_t len)
{
    json_tokener *tok = json_tokener_new();
    if (!tok)
        pl_oom("reading a pending turn");
    json_object *o = json_tokener_parse_ex(tok, json, (int)len);
    json_tokener_free(tok);
    json_object *id, *turn, *user, *content;
    const char *id_text;
    char *end;
    if (!o || !json_object_object_get_ex(o, "id", &id) ||
        !(id_text = json_object_get_string(id)) || !json_object_object_get_ex(o, "turn", &turn) ||
        !json_object_object_get_ex(o, "user", &user) ||
        !json_object_object_get_ex(user, "content", &content)) {
        pl_log(&s->client->log, PARLEY_LOG_WARNING, "store",
               "session %s: the turn recorded as in flight is unreadable; it is not sent again",
               s->id);
        json_object_put(o);
        return;
    }
    errno = 0;
    uint64_t request_id = strtoull(id_text, &end, 10);
    /* A record of a turn already saved is stale: its owner died after the
     * save and before the record was cleared. */
    if (*end || errno || !request_id ||
        json_object_get_int64(turn) != (int64_t)s->lease.stored_turns) {
        json_object_put(o);
        return;
    }
    bool blocks = json_object_is_type(content, json_type_array);
    const char *text = blocks ? json_object_to_json_string_ext(
                                    content, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
                              : json_object_get_string(content);
    size_t text_len = blocks ? strlen(text) : (size_t)json_object_get_string_len(content);
    if (pl_client_admit(s->client, s, text_len, false) != PARLEY_OK) {
        pl_log(&s->client->log, PARLEY_LOG_WARNING, "store",
               "session %s: no room to send again turn %llu of a former owner",
               s->id, (unsigned long long)request_id);
        json_object_put(o);
        return;
    }
    pl_request *req = pl_xcalloc(1, sizeof(*req));
    req->id = request_id;
    req->content = pl_xmalloc(text_len + 1);
    memcpy(req->content, text, text_len);
    req->content[text_len] = '\0';
    req->content_len = text_len;
    req->content_blocks = blocks;
    req->accepted_us = pl_monotonic_us();
    json_object_put(o);
    req->next = s->waiting_head;
    s->waiting_head = req;
    if (!s->waiting_tail)
        s->waiting_tail = req;
    s->lease.recovered_id = request_id;
    PL_COUNT(s->client, requests_sent, 1);
    pl_log(&s->client->log, PARLEY_LOG_NOTICE, "store",
           "session %s: turn %llu was in flight when its owner stopped; sending it again",
           s->id, (unsigned long long)request_id);
}

/* The store's sentence, after the history and the pending turn in data. */
static const char *store_message(const store_msg *m)
{
    return m->data + m->history_len + 1 + m->pending_len + 1;
}

static void on_acquired(pl_session *s, const store_msg *m)
{
    if (s->lease.state != PL_LEASE_TAKING)
        return;
    const char *message = store_message(m);
    char why[400];
    if (m->status == PL_STORE_OWNED) {
        int64_t now = pl_monotonic_ms();
        if (now < s->lease.wait_until_ms) {
            int64_t wait = m->lease_left_ms > 0 && m->lease_left_ms < LEASE_RETRY_MAX_MS
                               ? m->lease_left_ms
                               : LEASE_RETRY_MAX_MS;
            if (submit_order(s, PL_STORE_ACQUIRE, 0, NULL, 0, now + wait))
                return;
        }
        snprintf(why, sizeof(why),
                 "session %s is owned by another live process (its lease ends in %lld ms)",
                 s->id, (long long)m->lease_left_ms);
        lease_failed(s, PARLEY_ERR_SESSION_OWNED, why);
        return;
    }
    if (m->status != PL_STORE_OK) {
        snprintf(why, sizeof(why), "session store: %s", message);
        lease_failed(s, PARLEY_ERR_STORE, why);
        return;
    }
    s->lease.held = true;
    s->lease.fence = m->fence;
    s->lease.stored_turns = m->turns;
    char err[300];
    if (m->turns && pl_history_import(&s->history, m->data, m->history_len, err,
                                      sizeof(err)) != 0) {
        snprintf(why, sizeof(why), "the history of session %s in the store is unusable: %s",
                 s->id, err);
        lease_failed(s, PARLEY_ERR_STORE, why);
        release_lease(s);
        return;
    }
    if (m->has_pending)
        recover_turn(s, m->data + m->history_len + 1, m->pending_len);
    s->lease.state = PL_LEASE_HELD;
    answer_ready(s);
    pl_session_start_next(s); /* and, closed while it was loading, give it back */
}

/* A write came back refused: a newer owner has the session. */
static void fenced(pl_session *s, char *why, size_t size)
{
    snprintf(why, size,
             "session %s was taken over by another process (its lease was lost); this turn "
             "was not saved",
             s->id);
    s->lease.held = false;
    if (s->lease.state == PL_LEASE_HELD)
        lease_failed(s, PARLEY_ERR_SESSION_OWNED, why);
}

/* The turn in flight failed at the store: err and why, then the next. */
static void turn_failed_at_store(pl_session *s, pl_request *req, const store_msg *m,
                                 const char *doing)
{
    const char *message = store_message(m);
    char why[400];
    parley_err_t err = PARLEY_ERR_STORE;
    s->inflight = NULL;
    if (m->status == PL_STORE_FENCED) {
        fenced(s, why, sizeof(why));
        err = PARLEY_ERR_SESSION_OWNED;
    } else if (m->status == PL_STORE_CONFLICT) {
        snprintf(why, sizeof(why),
                 "session store: the history of session %s changed under its owner; this turn "
                 "was not saved",
                 s->id);
    } else {
        snprintf(why, sizeof(why), "session store: %s %s", doing, message);
    }
    pl_session_fail(s, req, err, why);
    pl_session_start_next(s);
}

/* A record's answer. The turn went on meanwhile; a record refused because
 * a newer owner has the session ends the ownership here (the turn's save
 * will be refused too), one the store did not take only weakens a
 * failover: the turn is not sent again should this process die. */
static void on_recorded(pl_session *s, const store_msg *m)
{
    const char *message = store_message(m);
    char why[400];
    if (m->status == PL_STORE_FENCED) {
        fenced(s, why, sizeof(why));
    } else if (m->status != PL_STORE_OK && m->request_id) {
        pl_log(&s->client->log, PARLEY_LOG_WARNING, "store",
               "session %s: turn %llu could not be recorded as in flight: %s", s->id,
               (unsigned long long)m->request_id, message);
    }
}

static void on_saved(pl_session *s, const store_msg *m)
{
    pl_request *req = s->inflight;
    if (!req || req->id != m->request_id || req->phase != PL_REQ_SAVING)
        return;
    if (m->status != PL_STORE_OK) {
        turn_failed_at_store(s, req, m, "saving the turn:");
        return;
    }
    s->lease.stored_turns++;
    done_msg *done = req->done;
    char *kept = req->kept;
    req->done = NULL;
    req->kept = NULL;
    pl_session_finish(s, req, done, kept, req->kept_blocks, req->kept_len);
    free(done);
}

static void on_ready(pl_session *s, answer_wait *w)
{
    if (s->lease.state == PL_LEASE_TAKING) {
        w->next = s->lease.ready;
        s->lease.ready = w;
        return;
    }
    w->err = s->lease.state == PL_LEASE_FAILED ? s->lease.err : PARLEY_OK;
    w->recovered_id = s->lease.recovered_id;
    pl_answer_give(w);
}

void pl_session_store_handle(pl_session *s, pl_actor_msg *msg)
{
    if (msg->kind == MSG_READY) {
        on_ready(s, ((answer_msg *)msg)->wait);
        return;
    }
    if (msg->kind == MSG_LEASE_LOST) {
        s->lease.held = false;
        if (s->lease.state == PL_LEASE_HELD)
            lease_failed(s, PARLEY_ERR_SESSION_OWNED, ((error_msg *)msg)->message);
        return;
    }
    const store_msg *m = (const store_msg *)msg;
    switch (m->op) {
    case PL_STORE_ACQUIRE: on_acquired(s, m); break;
    case PL_STORE_PENDING: on_recorded(s, m); break;
    case PL_STORE_COMMIT: on_saved(s, m); break;
    case PL_STORE_RELEASE: break;
    }
}

/* ---- posted by the I/O thread ------------------------------------------ */

void pl_session_post_store_done(void *owner, const pl_store_order *order,
                                const pl_store_result *r)
{
    pl_session *s = owner;
    size_t history_len = r->history ? r->history_len : 0;
    size_t pending_len = r->pending ? r->pending_len : 0;
    const char *message = r->message ? r->message : "";
    size_t message_len = strlen(message);
    store_msg *m = pl_xmalloc(sizeof(*m) + history_len + pending_len + message_len + 3);
    *m = (store_msg){.base.kind = MSG_STORE,
                     .op = order->op,
                     .status = r->status,
                     .request_id = order->request_id,
                     .fence = r->fence,
                     .lease_left_ms = r->lease_left_ms,
                     .turns = r->turns,
                     .history_len = history_len,
                     .pending_len = pending_len,
                     .has_pending = r->pending != NULL};
    char *at = m->data;
    memcpy(at, r->history ? r->history : "", history_len);
    at[history_len] = '\0';
    at += history_len + 1;
    memcpy(at, r->pending ? r->pending : "", pending_len);
    at[pending_len] = '\0';
    at += pending_len + 1;
    memcpy(at, message, message_len + 1);
    pl_actor_post(&s->actor, &m->base);
}

void pl_session_post_lease_lost(void *owner, const char *message)
{
    pl_session *s = owner;
    size_t len = strlen(message);
    error_msg *m = pl_xmalloc(sizeof(*m) + len + 1);
    m->base.kind = MSG_LEASE_LOST;
    m->id = 0;
    m->err = PARLEY_ERR_SESSION_OWNED;
    memcpy(m->message, message, len + 1);
    pl_actor_post(&s->actor, &m->base);
}

/* ---- public API --------------------------------------------------------- */

parley_err_t parley_session_ready(parley_session_t *session, int timeout_ms,
                                  uint64_t *recovered_request_id)
{
    if (recovered_request_id)
        *recovered_request_id = 0;
    if (!session)
        return PARLEY_ERR_INVALID_ARG;
    pl_session *s = pl_session_table_ref(session);
    if (!s)
        return PARLEY_ERR_STATE;
    parley_err_t err;
    uint64_t recovered = 0;
    if (pl_session_is_running(s)) {
        /* Inside one of its own callbacks: the state is ours to read. */
        err = s->lease.state == PL_LEASE_FAILED   ? s->lease.err
              : s->lease.state == PL_LEASE_TAKING ? PARLEY_ERR_TIMED_OUT
                                                  : PARLEY_OK;
        recovered = s->lease.recovered_id;
    } else if (pl_pool_in_worker()) {
        err = PARLEY_ERR_STATE; /* the answer may need this very worker */
    } else if (pl_gate_enter(&s->gate)) {
        answer_wait *w = pl_session_ask(s, MSG_READY, timeout_ms);
        pl_session_leave(s);
        if (!w) {
            err = PARLEY_ERR_NO_MEMORY;
        } else {
            pthread_mutex_lock(&w->mu);
            err = w->answered ? w->err : PARLEY_ERR_TIMED_OUT;
            recovered = w->recovered_id;
            pthread_mutex_unlock(&w->mu);
            pl_answer_release(w);
        }
    } else {
        err = PARLEY_ERR_STATE;
    }
    if (recovered_request_id && err == PARLEY_OK)
        *recovered_request_id = recovered;
    pl_session_unref(s);
    return err;
}
