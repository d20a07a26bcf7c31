/*
 * The session store's connection, orders and leases; see store.h.
 *
 * Every command is a job. A job waits (no connection ready yet), or is
 * out on the connection: hiredis answers the commands of one connection in
 * the order sent, so `inflight` lists them in that order and each reply
 * belongs to its head. When a connection goes (closed, refused, silent past
 * timeout_ms), hiredis calls every unanswered command back without a reply;
 * those jobs go back to the front of `waiting`, in their order, and are
 * sent again on the next connection, after its handshake (AUTH, SELECT,
 * SCRIPT LOAD). Every script is idempotent (store_scripts.c), so sending a
 * command twice is safe.
 *
 * An order that ends while its command is out (its deadline passed, or
 * shutdown) leaves its job behind as a shell (order NULL) until hiredis
 * hands the job back; a lease that ends does the same to its renewal.
 */
#include "store.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "backoff.h"
#include "buf.h"
#include "clock.h"
#include "safe_text.h"
#include "store_connect.h"
#include "store_scripts.h"
#include "store_url.h"
#include "timer_heap.h"

#define SHA_LEN 40
#define MESSAGE_MAX 512

typedef enum job_kind {
    JOB_ORDER,     /* a session's order */
    JOB_RENEW,     /* a lease's renewal */
    JOB_LEAVE,     /* a lease given up at shutdown */
    JOB_HANDSHAKE  /* AUTH, SELECT or SCRIPT LOAD of a new connection */
} job_kind;

/* Handshake steps; 0 .. PL_SCRIPT_COUNT - 1 load that script. */
enum { STEP_AUTH = -2, STEP_SELECT = -1 };

typedef struct store_lease store_lease;

typedef struct store_job {
    struct store_job *next;
    job_kind kind;
    pl_store_order *order; /* ORDER: NULL once it ended */
    store_lease *lease;    /* RENEW, LEAVE, and a RELEASE order: the lease; NULL: gone */
    pl_timer deadline;     /* ORDER */
    pl_timer start;        /* ORDER held until its not_before_ms */
    int step;              /* HANDSHAKE */
    bool eval;             /* the server had lost the script (NOSCRIPT): send its text */
    int64_t sent_ms, sent_us;
} store_job;

struct store_lease {
    store_lease *prev, *next;
    void *owner;
    const char *session; /* the owner's: alive while the lease holds its reference */
    uint64_t fence;
    pl_timer timer;      /* the next renewal; while one is out, the expiry */
    int64_t expires_ms;  /* as last confirmed: that command's send + lease_ms */
    store_job *out;      /* its renewal (or, at shutdown, its LEAVE), NULL: none */
    bool releasing;      /* a RELEASE order is under way: renewals stopped */
};

typedef struct job_list {
    store_job *head, *tail;
} job_list;

/* RESOLVING: a thread resolves the host name and starts the connect
 * (store_connect.h); HANDSHAKE: connecting, then AUTH, SELECT, SCRIPT LOAD. */
typedef enum conn_state { CONN_NONE, CONN_RESOLVING, CONN_HANDSHAKE, CONN_READY } conn_state;

struct pl_store {
    pl_store_conf conf;
    pl_store_url url;
    char url_shown[320];      /* without the user (pl_safe_url) */
    redisAsyncContext *ac;    /* NULL: no connection */
    pl_store_resolving *resolving; /* CONN_RESOLVING: the attempt under way */
    conn_state state;
    bool want_read, want_write; /* hiredis' interest (its adapter hooks) */
    bool reason_noted;        /* this connection's failure is in last_error */
    bool ever_ready, shut_down, closing;
    int failures;             /* connections failed in a row, for the backoff */
    int64_t reconnect_ms;     /* without a connection: when to connect */
    int64_t now;
    char last_error[256];     /* why the last connection failed */
    char sha[PL_SCRIPT_COUNT][SHA_LEN + 1];
    job_list waiting;         /* to send once ready, in order */
    job_list inflight;        /* sent on this connection, in order */
    job_list requeue;         /* while a connection goes: its unanswered jobs */
    pl_timer_heap deadlines;  /* the orders' */
    pl_timer_heap starts;     /* orders held back until their not_before_ms */
    pl_timer_heap lease_timers;
    store_lease *leases;
    size_t leases_held, orders_held, leaves_out;
    uint64_t round_trips, errors, reconnects, leases_lost;
    pl_histogram latency;
};

/* ---- small parts -------------------------------------------------------- */

static void list_push(job_list *l, store_job *j)
{
    j->next = NULL;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
}

static store_job *list_pop(job_list *l)
{
    store_job *j = l->head;
    if (j) {
        l->head = j->next;
        if (!l->head)
            l->tail = NULL;
        j->next = NULL;
    }
    return j;
}

/* `front` goes before `l`'s jobs; front is left empty. */
static void list_prepend(job_list *l, job_list *front)
{
    if (!front->head)
        return;
    front->tail->next = l->head;
    if (!l->head)
        l->tail = front->tail;
    l->head = front->head;
    front->head = front->tail = NULL;
}

static store_job *job_new(job_kind kind)
{
    store_job *j = pl_xcalloc(1, sizeof(*j));
    j->kind = kind;
    return j;
}

static bool job_alive(const store_job *j)
{
    switch (j->kind) {
    case JOB_ORDER:
        return j->order != NULL;
    case JOB_RENEW:
    case JOB_LEAVE:
        return j->lease != NULL;
    default:
        return false; /* a handshake belongs to its connection */
    }
}

/* Text for people: the password (should a server ever echo it) redacted,
 * control characters escaped. */
static void say(const pl_store *s, char *out, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void say(const pl_store *s, char *out, size_t size, const char *fmt, ...)
{
    char raw[MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof(raw) ? (size_t)n : sizeof(raw) - 1;
    pl_safe_text(out, size, raw, len, s->conf.password);
}

static void note_error(pl_store *s, const char *what)
{
    say(s, s->last_error, sizeof(s->last_error), "%s", what);
    s->reason_noted = true;
}

static bool starts_with(const char *s, const char *prefix)
{
    return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Error replies that say "not now" (loading after a restart, a busy
 * script, a replica after failover, a login lost) rather than "never":
 * the connection is made again and the command sent again. */
static bool error_is_transient(const char *e)
{
    static const char *const transient[] = {"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN",
                                            "READONLY", "NOAUTH", "CLUSTERDOWN", "NOSCRIPT"};
    for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
        if (starts_with(e, transient[i]))
            return true;
    return false;
}

/* The first element of a script's answer: "OK", "OWNED", "FENCED", ... */
static const char *reply_status(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return NULL;
    return r->element[0]->str;
}

/* ---- the connection ------------------------------------------------------ */

static void drop_connection(pl_store *s);
static void flush_waiting(pl_store *s);
static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);

static void ev_add_read(void *d)
{
    ((pl_store *)d)->want_read = true;
}

static void ev_del_read(void *d)
{
    ((pl_store *)d)->want_read = false;
}

static void ev_add_write(void *d)
{
    ((pl_store *)d)->want_write = true;
}

static void ev_del_write(void *d)
{
    ((pl_store *)d)->want_write = false;
}

/* A connection that never became ready (its reason in last_error): the
 * next waits out the backoff. */
static void attempt_failed(pl_store *s)
{
    s->failures++;
    int64_t wait = pl_backoff_ms(s->failures, s->conf.backoff_ms, s->conf.backoff_max_ms,
                                 s->conf.rng);
    /* The first failure of a streak is news; the rest of it is noise. */
    pl_log(s->conf.log, s->failures == 1 ? PARLEY_LOG_WARNING : PARLEY_LOG_DEBUG, "store",
           "session store %s: %s; trying again in %lld ms", s->url_shown, s->last_error,
           (long long)wait);
    s->reconnect_ms = s->now + wait;
}

/* hiredis is done with the connection (its last call, after every
 * unanswered command was called back): its jobs go first on the next. */
static void ev_cleanup(void *d)
{
    pl_store *s = d;
    bool was_ready = s->state == CONN_READY;
    if (!s->reason_noted)
        note_error(s, s->ac->c.err ? s->ac->c.errstr : "the connection closed");
    s->ac = NULL;
    s->state = CONN_NONE;
    s->want_read = s->want_write = false;
    list_prepend(&s->waiting, &s->requeue);
    if (s->closing)
        return;
    s->errors++;
    if (was_ready) {
        pl_log(s->conf.log, PARLEY_LOG_WARNING, "store", "session store %s lost: %s; reconnecting",
               s->url_shown, s->last_error);
        s->failures = 0;
        s->reconnect_ms = s->now;
        return;
    }
    attempt_failed(s);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    pl_store *s = ac->ev.data;
    if (status != REDIS_OK && !s->reason_noted)
        note_error(s, ac->c.errstr);
}

/* Let the connection go; its jobs wait for the next one. Inside a hiredis
 * callback the context goes when the callback returns. */
static void drop_connection(pl_store *s)
{
    if (s->ac)
        redisAsyncFree(s->ac);
}

/*
 * hiredis 0.14.1 writes with write(2), which raises SIGPIPE when the
 * socket can no longer send (EPIPE), and SIGPIPE's default ends the host
 * program. So the write
 * runs with SIGPIPE blocked in this thread, and a SIGPIPE it raised (it was
 * not pending before) is taken back before the mask is restored, as libpq
 * does.
 */
static void write_out(pl_store *s)
{
    sigset_t pipe_only, saved, pending;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &saved);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE);
    redisAsyncHandleWrite(s->ac);
    if (!was_pending && !s->ac) { /* a failed write drops the connection */
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE)) {
            const struct timespec zero = {0, 0};
            sigtimedwait(&pipe_only, NULL, &zero);
        }
    }
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
}

/* Put a job on the connection; false when hiredis takes no more (it is
 * closing). */
static bool send_job(pl_store *s, store_job *j)
{
    const char *argv[3 + PL_STORE_KEYS + 5];
    size_t lens[3 + PL_STORE_KEYS + 5];
    int argc = 0;
    char fence[24], ttl[24], lease[24], turn[24], rid[24], db[16];
    char *keys = NULL;
#define ARG(p, n) (argv[argc] = (p), lens[argc] = (n), argc++)
#define ARGS(p) ARG(p, strlen(p))

    if (j->kind == JOB_HANDSHAKE) {
        if (j->step == STEP_AUTH) {
            ARGS("AUTH");
            if (s->url.user[0])
                ARGS(s->url.user);
            ARGS(s->conf.password);
        } else if (j->step == STEP_SELECT) {
            snprintf(db, sizeof(db), "%d", s->url.db);
            ARGS("SELECT");
            ARGS(db);
        } else {
            ARGS("SCRIPT");
            ARGS("LOAD");
            ARGS(pl_store_scripts[j->step]);
        }
    } else {
        const pl_store_order *o = j->order;
        const store_lease *l = j->lease;
        int script = j->kind == JOB_RENEW   ? PL_SCRIPT_RENEW
                     : j->kind == JOB_LEAVE ? PL_SCRIPT_RELEASE
                                            : (int)o->op - 1;
        const char *session = o ? o->session : l->session;
        uint64_t f = o ? o->fence : l->fence;
        if (j->eval || !s->sha[script][0]) {
            ARGS("EVAL");
            ARGS(pl_store_scripts[script]);
        } else {
            ARGS("EVALSHA");
            ARG(s->sha[script], SHA_LEN);
        }
        ARGS("5");
        /* "<prefix>{<session>}:<name>", the five one after another. */
        const char *prefix = s->conf.key_prefix ? s->conf.key_prefix : "";
        size_t base = strlen(prefix) + strlen(session) + 3;
        keys = pl_xmalloc(PL_STORE_KEYS * (base + 8));
        char *k = keys;
        for (int i = 0; i < PL_STORE_KEYS; i++) {
            int n = sprintf(k, "%s{%s}:%s", prefix, session, pl_store_key_names[i]);
            ARG(k, (size_t)n);
            k += n + 1;
        }
        snprintf(ttl, sizeof(ttl), "%lld", (long long)s->conf.ttl_s * 1000);
        snprintf(lease, sizeof(lease), "%d", s->conf.lease_ms);
        snprintf(fence, sizeof(fence), "%llu", (unsigned long long)f);
        switch (script) {
        case PL_SCRIPT_ACQUIRE:
            ARGS(s->conf.owner_name);
            ARGS(lease);
            ARGS(ttl);
            break;
        case PL_SCRIPT_PENDING:
        case PL_SCRIPT_COMMIT:
            ARGS(fence);
            ARGS(ttl);
            ARG(o->json ? o->json : "", o->json ? o->json_len : 0);
            if (script == PL_SCRIPT_COMMIT) {
                snprintf(turn, sizeof(turn), "%u", o->turn);
                snprintf(rid, sizeof(rid), "%llu", (unsigned long long)o->request_id);
                ARGS(turn);
                ARGS(rid);
            }
            break;
        case PL_SCRIPT_RELEASE:
            ARGS(fence);
            ARGS(ttl);
            ARGS(s->conf.owner_name);
            break;
        default: /* PL_SCRIPT_RENEW */
            ARGS(fence);
            ARGS(ttl);
            ARGS(s->conf.owner_name);
            ARGS(lease);
            break;
        }
    }
#undef ARG
#undef ARGS
    int rc = redisAsyncCommandArgv(s->ac, on_reply, j, argc, argv, lens);
    free(keys);
    if (rc != REDIS_OK)
        return false;
    j->sent_ms = s->now;
    j->sent_us = pl_monotonic_us();
    list_push(&s->inflight, j);
    return true;
}

/* Send now when the connection is ready and nothing waits before it. */
static void send_or_wait(pl_store *s, store_job *j)
{
    if (s->state == CONN_READY && !s->waiting.head && send_job(s, j))
        return;
    list_push(&s->waiting, j);
}

static void flush_waiting(pl_store *s)
{
    store_job *j;
    while (s->state == CONN_READY && (j = list_pop(&s->waiting))) {
        if (!job_alive(j)) {
            free(j);
        } else if (!send_job(s, j)) {
            j->next = s->waiting.head; /* back to the front */
            s->waiting.head = j;
            if (!s->waiting.tail)
                s->waiting.tail = j;
            return;
        }
    }
}

/* A connection started (by connect_now, or by the resolving thread):
 * the hooks, then the handshake behind the connect. */
static void connect_started(pl_store *s, redisAsyncContext *ac)
{
    if (!ac)
        pl_oom("connecting to the session store");
    s->state = CONN_NONE;
    if (ac->err) { /* refused at once: no hooks were set, so nothing calls back */
        char why[MESSAGE_MAX];
        if (pl_store_connect_unresolved(ac))
            say(s, why, sizeof(why), "could not resolve host %s: %s", s->url.host, ac->errstr);
        else
            say(s, why, sizeof(why), "%s", ac->errstr);
        note_error(s, why);
        redisAsyncFree(ac);
        s->errors++;
        attempt_failed(s);
        return;
    }
    s->ac = ac;
    ac->ev.data = s;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    s->state = CONN_HANDSHAKE;
    if (s->ever_ready)
        s->reconnects++;
    /* Pipelined behind the connect: hiredis writes them once it is up. */
    for (int step = s->conf.password ? STEP_AUTH : STEP_SELECT; step < PL_SCRIPT_COUNT; step++) {
        if (step == STEP_SELECT && s->url.db == 0)
            continue;
        store_job *j = job_new(JOB_HANDSHAKE);
        j->step = step;
        if (!send_job(s, j))
            free(j);
    }
}

/* A host name resolves on a thread of its own (store_connect.h): the I/O
 * thread waits for it on the attempt's descriptor, never in getaddrinfo. */
static void connect_now(pl_store *s)
{
    s->reason_noted = false;
    redisAsyncContext *ac;
    s->resolving = pl_store_connect_start(s->url.host, s->url.port, s->conf.connect,
                                          s->conf.log, &ac);
    if (s->resolving)
        s->state = CONN_RESOLVING;
    else
        connect_started(s, ac);
}

/* The resolving thread is done (or not yet): its connection goes on here. */
static void take_resolved(pl_store *s)
{
    redisAsyncContext *ac;
    if (!pl_store_resolving_take(s->resolving, &ac))
        return;
    s->resolving = NULL;
    connect_started(s, ac);
}

static void handshake_reply(pl_store *s, store_job *j, const redisReply *r)
{
    int step = j->step;
    free(j);
    char why[MESSAGE_MAX];
    if (r->type == REDIS_REPLY_ERROR) {
        say(s, why, sizeof(why), "%s: %s",
            step == STEP_AUTH              ? "the login was refused"
            : starts_with(r->str, "NOAUTH") ? "the store wants a password"
            : step == STEP_SELECT          ? "the database was refused"
                                           : "a script could not be loaded",
            r->str);
        note_error(s, why);
        drop_connection(s);
        return;
    }
    if (step < 0)
        return;
    if (r->type != REDIS_REPLY_STRING || r->len != SHA_LEN) {
        note_error(s, "SCRIPT LOAD answered something other than a SHA-1");
        drop_connection(s);
        return;
    }
    memcpy(s->sha[step], r->str, SHA_LEN + 1);
    if (step != PL_SCRIPT_COUNT - 1)
        return;
    s->state = CONN_READY;
    s->failures = 0;
    pl_log(s->conf.log, PARLEY_LOG_INFO, "store", "session store %s: %s", s->url_shown,
           s->ever_ready ? "connected again" : "connected");
    s->ever_ready = true;
    flush_waiting(s);
}

/* ---- leases ------------------------------------------------------------- */

static void lease_unlink(pl_store *s, store_lease *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else
        s->leases = l->next;
    if (l->next)
        l->next->prev = l->prev;
    pl_timer_cancel(&s->lease_timers, &l->timer);
    if (l->out) {
        if (l->out->kind == JOB_LEAVE)
            s->leaves_out--;
        l->out->lease = NULL; /* a shell now, freed when hiredis gives it back */
    }
    s->leases_held--;
}

/* The lease ends: its owner's reference goes. */
static void lease_end(pl_store *s, store_lease *l)
{
    lease_unlink(s, l);
    s->conf.ev.release(l->owner);
    free(l);
}

static void lease_lost(pl_store *s, store_lease *l, const char *message)
{
    lease_unlink(s, l);
    s->leases_lost++;
    pl_log(s->conf.log, PARLEY_LOG_WARNING, "store", "%s", message);
    s->conf.ev.lease_lost(l->owner, message);
    s->conf.ev.release(l->owner);
    free(l);
}

static void lease_start(pl_store *s, void *owner, const char *session, uint64_t fence,
                        int64_t sent_ms)
{
    store_lease *l = pl_xcalloc(1, sizeof(*l));
    l->owner = owner;
    l->session = session;
    l->fence = fence;
    l->expires_ms = sent_ms + s->conf.lease_ms;
    l->next = s->leases;
    if (s->leases)
        s->leases->prev = l;
    s->leases = l;
    s->leases_held++;
    pl_timer_set(&s->lease_timers, &l->timer, sent_ms + s->conf.lease_ms / 3);
}

/* A lease's timer: renew it, or, when its renewal is still out, it ran out. */
static void lease_due(pl_store *s, store_lease *l)
{
    if (!l->out) {
        store_job *j = job_new(JOB_RENEW);
        j->lease = l;
        l->out = j;
        pl_timer_set(&s->lease_timers, &l->timer, l->expires_ms);
        send_or_wait(s, j);
        return;
    }
    char msg[MESSAGE_MAX];
    say(s, msg, sizeof(msg),
        "the lease of session '%s' ran out before the session store %s confirmed a renewal (%s)",
        l->session, s->url_shown, s->last_error[0] ? s->last_error : "no answer in time");
    lease_lost(s, l, msg);
}

/* The lease a RELEASE order gives up: renewals stop now, so that none
 * sets it again after the RELEASE; it ends when the order ends. */
static store_lease *lease_releasing(pl_store *s, void *owner, uint64_t fence)
{
    for (store_lease *l = s->leases; l; l = l->next)
        if (l->owner == owner && l->fence == fence && !l->releasing) {
            l->releasing = true;
            pl_timer_cancel(&s->lease_timers, &l->timer);
            if (l->out)
                l->out->lease = NULL;
            l->out = NULL;
            return l;
        }
    return NULL;
}

/* ---- orders ------------------------------------------------------------- */

static void end_order(pl_store *s, store_job *j, const pl_store_result *r)
{
    pl_store_order *o = j->order;
    j->order = NULL;
    pl_timer_cancel(&s->deadlines, &j->deadline);
    s->orders_held--;
    bool lease_keeps = o->op == PL_STORE_ACQUIRE && r->status == PL_STORE_OK;
    store_lease *ends = o->op == PL_STORE_RELEASE && !s->shut_down ? j->lease : NULL;
    j->lease = NULL;
    s->conf.ev.store_done(o->owner, o, r);
    if (!lease_keeps)
        s->conf.ev.release(o->owner);
    if (ends)
        lease_end(s, ends);
    pl_store_order_free(o);
}

static void end_unavailable(pl_store *s, store_job *j, const char *message)
{
    pl_store_result r = {.status = PL_STORE_UNAVAILABLE, .message = message};
    end_order(s, j, &r);
}

static void deadline_passed(pl_store *s, store_job *j)
{
    char msg[MESSAGE_MAX];
    if (s->state == CONN_READY)
        say(s, msg, sizeof(msg), "the session store %s did not answer in time", s->url_shown);
    else
        say(s, msg, sizeof(msg), "the session store %s could not be reached in time: %s",
            s->url_shown,
            s->last_error[0]              ? s->last_error
            : s->state == CONN_RESOLVING ? "resolving its host name"
                                         : "connecting");
    end_unavailable(s, j, msg);
}

/* ACQUIRE's answer: {"OK", fence, {hist...}, pending|nil} or
 * {"OWNED", pttl, lease}. */
static void acquire_answered(pl_store *s, store_job *j, const redisReply *r, const char *status)
{
    const pl_store_order *o = j->order;
    char msg[MESSAGE_MAX];
    pl_store_result res = {.status = PL_STORE_UNAVAILABLE};
    if (!strcmp(status, "OWNED") && r->elements >= 3 &&
        r->element[1]->type == REDIS_REPLY_INTEGER) {
        res.status = PL_STORE_OWNED;
        res.lease_left_ms = r->element[1]->integer;
        say(s, msg, sizeof(msg), "session '%s' is owned by another process (lease \"%s\", %lld ms left)",
            o->session, r->element[2]->type == REDIS_REPLY_STRING ? r->element[2]->str : "?",
            (long long)res.lease_left_ms);
        res.message = msg;
        end_order(s, j, &res);
        return;
    }
    if (strcmp(status, "OK") != 0 || r->elements < 4 ||
        r->element[1]->type != REDIS_REPLY_INTEGER || r->element[2]->type != REDIS_REPLY_ARRAY) {
        end_unavailable(s, j, "the session store's ACQUIRE answered in an unexpected shape");
        return;
    }
    const redisReply *hist = r->element[2], *pending = r->element[3];
    pl_buf b = {0};
    if (pl_buf_append(&b, "[", 1) != 0)
        pl_oom("reading a stored history");
    for (size_t i = 0; i < hist->elements; i++)
        if ((i && pl_buf_append(&b, ",", 1) != 0) ||
            pl_buf_append(&b, hist->element[i]->str, hist->element[i]->len) != 0)
            pl_oom("reading a stored history");
    if (pl_buf_append(&b, "]", 1) != 0)
        pl_oom("reading a stored history");
    res.status = PL_STORE_OK;
    res.fence = (uint64_t)r->element[1]->integer;
    res.history = (const char *)b.data;
    res.history_len = b.len;
    res.turns = (uint32_t)hist->elements;
    if (pending->type == REDIS_REPLY_STRING) {
        res.pending = pending->str;
        res.pending_len = pending->len;
    }
    lease_start(s, o->owner, o->session, res.fence, j->sent_ms);
    end_order(s, j, &res);
    pl_buf_free(&b);
}

static void write_answered(pl_store *s, store_job *j, const redisReply *r, const char *status)
{
    const pl_store_order *o = j->order;
    char msg[MESSAGE_MAX];
    pl_store_result res = {.status = PL_STORE_OK};
    if (!strcmp(status, "FENCED")) {
        res.status = PL_STORE_FENCED;
        say(s, msg, sizeof(msg),
            "a newer owner acquired session '%s': the write under fence %llu was refused",
            o->session, (unsigned long long)o->fence);
        res.message = msg;
    } else if (!strcmp(status, "CONFLICT") && o->op == PL_STORE_COMMIT && r->elements >= 2 &&
               r->element[1]->type == REDIS_REPLY_INTEGER) {
        res.status = PL_STORE_CONFLICT;
        say(s, msg, sizeof(msg),
            "the stored history of session '%s' holds %lld turns: turn %u cannot follow",
            o->session, r->element[1]->integer, o->turn);
        res.message = msg;
    } else if (strcmp(status, "OK") != 0) {
        res.status = PL_STORE_UNAVAILABLE;
        res.message = "the session store answered in an unexpected shape";
    }
    end_order(s, j, &res);
}

/* An error reply: true when the job goes again (on a new connection);
 * else its text is in msg. */
static bool error_retried(pl_store *s, store_job *j, const redisReply *r, char *msg,
                          size_t size)
{
    s->errors++;
    say(s, msg, size, "the session store %s refused: %s", s->url_shown, r->str);
    if (!error_is_transient(r->str))
        return false;
    /* The script cache was emptied (SCRIPT FLUSH, a failover): this job
     * carries its text, and the next handshake loads them all again. */
    if (starts_with(r->str, "NOSCRIPT"))
        j->eval = true;
    note_error(s, msg);
    list_push(&s->requeue, j); /* first: the rest of the connection's come after */
    drop_connection(s);
    return true;
}

static void order_reply(pl_store *s, store_job *j, const redisReply *r)
{
    char msg[MESSAGE_MAX];
    if (r->type == REDIS_REPLY_ERROR) {
        if (error_retried(s, j, r, msg, sizeof(msg)))
            return;
        end_unavailable(s, j, msg);
    } else {
        const char *status = reply_status(r);
        if (!status)
            end_unavailable(s, j, "the session store answered in an unexpected shape");
        else if (j->order->op == PL_STORE_ACQUIRE)
            acquire_answered(s, j, r, status);
        else
            write_answered(s, j, r, status);
    }
    free(j);
}

static void renew_reply(pl_store *s, store_job *j, const redisReply *r)
{
    store_lease *l = j->lease;
    char msg[MESSAGE_MAX];
    if (r->type == REDIS_REPLY_ERROR && error_retried(s, j, r, msg, sizeof(msg)))
        return;
    l->out = NULL;
    const char *status = r->type == REDIS_REPLY_ERROR ? NULL : reply_status(r);
    if (status && !strcmp(status, "OK")) {
        l->expires_ms = j->sent_ms + s->conf.lease_ms;
        pl_timer_set(&s->lease_timers, &l->timer, j->sent_ms + s->conf.lease_ms / 3);
    } else if (status && !strcmp(status, "FENCED")) {
        say(s, msg, sizeof(msg),
            "a newer owner acquired session '%s': this process's lease (fence %llu) is gone",
            l->session, (unsigned long long)l->fence);
        lease_lost(s, l, msg);
    } else {
        if (r->type != REDIS_REPLY_ERROR)
            say(s, msg, sizeof(msg), "the session store answered a renewal in an unexpected shape");
        lease_lost(s, l, msg);
    }
    free(j);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    pl_store *s = ac->ev.data;
    store_job *j = list_pop(&s->inflight);
    (void)privdata; /* == j: hiredis answers in the order sent */
    redisReply *r = reply;
    if (!r) { /* the connection is going */
        if (job_alive(j))
            list_push(&s->requeue, j);
        else
            free(j);
        return;
    }
    if (j->kind == JOB_HANDSHAKE) {
        handshake_reply(s, j, r);
        return;
    }
    if (!job_alive(j)) {
        free(j);
        return;
    }
    s->round_trips++;
    int64_t us = pl_monotonic_us() - j->sent_us;
    pl_histogram_record(&s->latency, us > 0 ? (uint64_t)us : 0);
    if (j->kind == JOB_ORDER) {
        order_reply(s, j, r);
    } else if (j->kind == JOB_RENEW) {
        renew_reply(s, j, r);
    } else { /* JOB_LEAVE: best effort, whatever the answer */
        j->lease->out = NULL;
        s->leaves_out--;
        free(j);
    }
}

/* ---- the loop's entries ------------------------------------------------- */

pl_store *pl_store_new(const pl_store_conf *conf, char *err, size_t err_size)
{
    pl_store_url url;
    if (pl_store_url_parse(conf->url, &url, err, err_size) != 0)
        return NULL;
    const char *problem = NULL;
    if (conf->lease_ms < 3)
        problem = "the lease must last at least 3 ms";
    else if (conf->timeout_ms <= 0)
        problem = "the store's timeout must be positive";
    else if (conf->ttl_s < 0)
        problem = "the time-to-live must not be negative";
    else if (!conf->owner_name || !conf->owner_name[0] || strchr(conf->owner_name, ' '))
        problem = "the owner name must be non-empty and hold no space";
    else if (conf->key_prefix && strpbrk(conf->key_prefix, "{}"))
        problem = "the key prefix must not hold '{' or '}' (the session id is the hash tag)";
    if (problem) {
        if (err && err_size)
            snprintf(err, err_size, "session.store: %s", problem);
        return NULL;
    }
    pl_store *s = pl_xcalloc(1, sizeof(*s));
    s->conf = *conf;
    s->url = url;
    pl_safe_url(conf->url, s->url_shown, sizeof(s->url_shown));
    s->now = pl_monotonic_ms();
    s->reconnect_ms = s->now;
    return s;
}

void pl_store_submit(pl_store *s, pl_store_order *o, int64_t now)
{
    s->now = now;
    store_job *j = job_new(JOB_ORDER);
    j->order = o;
    s->orders_held++;
    if (s->shut_down) {
        end_unavailable(s, j, "the client is shutting down");
        free(j);
        return;
    }
    if (o->op < PL_STORE_ACQUIRE || o->op > PL_STORE_RELEASE || !o->session) {
        end_unavailable(s, j, "a store order without a known operation or a session");
        free(j);
        return;
    }
    pl_timer_set(&s->deadlines, &j->deadline,
                 o->deadline_ms > 0 ? o->deadline_ms : now + s->conf.timeout_ms);
    if (o->op == PL_STORE_RELEASE)
        j->lease = lease_releasing(s, o->owner, o->fence);
    if (o->not_before_ms > now) {
        pl_timer_set(&s->starts, &j->start, o->not_before_ms);
        return;
    }
    send_or_wait(s, j);
}

/* An order held back is due; one that ended meanwhile (its deadline) is a
 * shell. */
static void start_held(pl_store *s, store_job *j)
{
    if (job_alive(j))
        send_or_wait(s, j);
    else
        free(j);
}

static int64_t earlier(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

int64_t pl_store_tick(pl_store *s, int64_t now, int *fd, short *events)
{
    s->now = now;
    pl_timer *t;
    while ((t = pl_timer_pop_due(&s->deadlines, now)))
        deadline_passed(s, pl_container_of(t, store_job, deadline));
    while ((t = pl_timer_pop_due(&s->lease_timers, now)))
        lease_due(s, pl_container_of(t, store_lease, timer));
    while ((t = pl_timer_pop_due(&s->starts, now)))
        start_held(s, pl_container_of(t, store_job, start));
    if (s->ac && s->inflight.head && now - s->inflight.head->sent_ms >= s->conf.timeout_ms) {
        char why[96];
        snprintf(why, sizeof(why), "no answer within %d ms", s->conf.timeout_ms);
        note_error(s, why);
        drop_connection(s);
    }
    if (s->resolving)
        take_resolved(s);
    if (!s->ac && !s->resolving && !s->closing && now >= s->reconnect_ms)
        connect_now(s);
    /* Write what the orders put in hiredis' buffer now, not a poll later. */
    if (s->ac && s->want_write && (s->ac->c.flags & REDIS_CONNECTED))
        write_out(s);

    int64_t due = now + 60000;
    if ((t = pl_timer_first(&s->deadlines)))
        due = earlier(due, t->due);
    if ((t = pl_timer_first(&s->lease_timers)))
        due = earlier(due, t->due);
    if ((t = pl_timer_first(&s->starts)))
        due = earlier(due, t->due);
    if (!s->ac && !s->resolving && !s->closing)
        due = earlier(due, s->reconnect_ms);
    if (s->ac && s->inflight.head)
        due = earlier(due, s->inflight.head->sent_ms + s->conf.timeout_ms);
    /* Always read: hiredis wants no read while connecting, but a refused
     * connect shows only as readable once curl_multi_poll drops POLLERR. */
    *fd = s->ac ? s->ac->c.fd : s->resolving ? pl_store_resolving_fd(s->resolving) : -1;
    *events = (short)(POLLIN | (s->want_write ? POLLOUT : 0));
    return due > now ? due - now : 0;
}

void pl_store_io(pl_store *s, short revents, int64_t now)
{
    s->now = now;
    if (s->resolving) {
        if (revents & POLLIN)
            take_resolved(s); /* writes what waits at the next tick */
        return;
    }
    if (s->ac && (revents & (POLLIN | POLLERR | POLLHUP)))
        redisAsyncHandleRead(s->ac);
    if (s->ac && (revents & POLLOUT))
        write_out(s);
}

void pl_store_shutdown(pl_store *s, int bound_ms)
{
    if (s->shut_down)
        return;
    s->shut_down = true;
    s->now = pl_monotonic_ms();
    job_list *lists[] = {&s->inflight, &s->waiting, &s->requeue};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
        for (store_job *j = lists[i]->head; j; j = j->next)
            if (j->kind == JOB_ORDER && j->order)
                end_unavailable(s, j, "the client is shutting down");
    pl_timer *held;
    while ((held = pl_timer_pop_due(&s->starts, INT64_MAX))) {
        store_job *j = pl_container_of(held, store_job, start);
        if (job_alive(j))
            end_unavailable(s, j, "the client is shutting down");
        free(j);
    }

    /* Give every lease up in the store, best effort: the next owner need
     * not wait for it to expire. */
    for (store_lease *l = s->leases; l; l = l->next) {
        pl_timer_cancel(&s->lease_timers, &l->timer);
        if (l->out)
            l->out->lease = NULL;
        store_job *j = job_new(JOB_LEAVE);
        j->lease = l;
        l->out = j;
        s->leaves_out++;
        send_or_wait(s, j);
    }
    int64_t now = s->now, end = now + bound_ms;
    if (s->leaves_out && s->reconnect_ms > now)
        s->reconnect_ms = now; /* one more try now rather than after the backoff */
    while (s->leaves_out && now < end) {
        int fd;
        short events;
        int64_t wait = earlier(pl_store_tick(s, now, &fd, &events), end - now);
        struct pollfd p = {.fd = fd, .events = events};
        if (poll(&p, fd >= 0 ? 1 : 0, (int)wait) > 0)
            pl_store_io(s, p.revents, pl_monotonic_ms());
        now = pl_monotonic_ms();
    }
    while (s->leases)
        lease_end(s, s->leases);
}

void pl_store_free(pl_store *s)
{
    if (!s)
        return;
    pl_store_shutdown(s, 0);
    s->closing = true;
    drop_connection(s); /* hiredis gives every job back; all are shells now */
    if (s->resolving) /* never waits: a stuck resolver must not hold the destroy */
        pl_store_resolving_abandon(s->resolving);
    store_job *j;
    while ((j = list_pop(&s->waiting)))
        free(j);
    pl_timer_heap_free(&s->deadlines);
    pl_timer_heap_free(&s->lease_timers);
    pl_timer_heap_free(&s->starts);
    free(s);
}

void pl_store_stats_get(const pl_store *s, pl_store_stats *out)
{
    *out = (pl_store_stats){
        .connected = s->state == CONN_READY,
        .round_trips = s->round_trips,
        .errors = s->errors,
        .reconnects = s->reconnects,
        .leases_lost = s->leases_lost,
        .leases_held = s->leases_held,
        .orders = s->orders_held,
    };
}

pl_histogram *pl_store_latency(pl_store *s)
{
    return &s->latency;
}

void pl_store_write_stats(const pl_store *s, pl_json_writer *w)
{
    pl_store_stats st;
    pl_store_stats_get(s, &st);
    pl_jw_str(w, "url", s->url_shown);
    pl_jw_bool(w, "connected", st.connected);
    pl_jw_u64(w, "round_trips", st.round_trips);
    pl_jw_u64(w, "errors", st.errors);
    pl_jw_u64(w, "reconnects", st.reconnects);
    pl_jw_u64(w, "orders", st.orders);
    pl_jw_u64(w, "leases_held", st.leases_held);
    pl_jw_u64(w, "leases_lost", st.leases_lost);
}
