/*
 * The session store (src/store) against a real redis-server of the test's
 * own (tests/fixtures/redis_server.h), driven by a small poll loop on this
 * thread as the I/O thread drives it, and once through a real pl_io:
 *   - acquire, pending, commit, release, and another owner's acquire after
 *     it (history, pending, next fence); OWNED while a lease is live; a
 *     lease that expires lets the next owner in;
 *   - a former owner's COMMIT and PENDING refused (FENCED) with the history
 *     unchanged, and its lease lost; commit idempotency; CONFLICT; TTL;
 *   - the store down at start (orders wait, then succeed, or end
 *     UNAVAILABLE at their deadline); restarted mid-run with appendonly
 *     (every order ends once, no turn doubled); paused (no answer within
 *     the timeout); AUTH with an ACL user and with a wrong password (a
 *     clear error that never holds the password); renewals keep a lease
 *     past lease_ms; a write failing with EPIPE does not end the process;
 *   - pl_io: without a store an order ends UNAVAILABLE; with one, orders go
 *     through the I/O thread, and pl_io_stop ends the held ones and gives
 *     the leases back;
 *   - a host name: connects; is resolved off the loop's thread (a connect
 *     held in the resolver leaves tick and io free, orders wait or end at
 *     their deadline, and pl_store_free does not wait for it, whose thread
 *     then frees what it made); a name that does not resolve is named in
 *     the error, and the reconnects keep their backoff.
 * Every wait is for a condition, bounded.
 */
#include <errno.h>
#include <fcntl.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "alloc.h"
#include "clock.h"
#include "io.h"
#include "json_writer.h"
#include "pool.h"
#include "redis_server.h"
#include "store.h"
#include "store_url.h"

#define PASSWORD "s3cret-Pa55word"
#define WAIT_MS 10000

/* A session as the store sees it: an owner pointer, what ended for it. */
typedef struct owner {
    const char *session;
    int refs; /* one per order submitted, one per lease, less each release */
    int ended;
    pl_store_status status;
    uint64_t fence;
    int64_t lease_left_ms;
    char history[8192];
    uint32_t turns;
    bool has_pending;
    char pending[1024];
    char message[512];
    int lost;
    char lost_message[512];
} owner;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* for the pl_io test */
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;

static void on_done(void *p, const pl_store_order *order, const pl_store_result *r)
{
    owner *o = p;
    pthread_mutex_lock(&lock);
    o->ended++;
    o->status = r->status;
    if (order->op == PL_STORE_ACQUIRE)
        o->fence = r->fence;
    o->lease_left_ms = r->lease_left_ms;
    o->turns = r->turns;
    snprintf(o->history, sizeof(o->history), "%.*s", (int)r->history_len,
             r->history ? r->history : "");
    o->has_pending = r->pending != NULL;
    snprintf(o->pending, sizeof(o->pending), "%.*s", (int)r->pending_len,
             r->pending ? r->pending : "");
    snprintf(o->message, sizeof(o->message), "%s", r->message ? r->message : "");
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

static void on_lost(void *p, const char *message)
{
    owner *o = p;
    o->lost++;
    snprintf(o->lost_message, sizeof(o->lost_message), "%s", message);
}

static void on_release(void *p)
{
    owner *o = p;
    pthread_mutex_lock(&lock);
    o->refs--;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

/* Every log line, to look for the password in. */
static char log_text[16384];
static size_t log_len;

static void on_log(const parley_client_t *client, int level, const char *facility,
                   const char *message, void *opaque)
{
    (void)client, (void)level, (void)opaque;
    pthread_mutex_lock(&lock);
    int n = snprintf(log_text + log_len, sizeof(log_text) - log_len, "%s: %s\n", facility,
                     message);
    if (n > 0 && log_len + (size_t)n < sizeof(log_text))
        log_len += (size_t)n;
    pthread_mutex_unlock(&lock);
}

static pl_logger logger = {.level = PARLEY_LOG_DEBUG, .cb = on_log};
static uint64_t rng = 0x2545F4914F6CDD1Dull;

typedef struct store_opts {
    const char *url;
    const char *password;
    const char *owner_name;
    int lease_ms, ttl_s, timeout_ms;
    redisAsyncContext *(*connect)(const char *host, int port);
} store_opts;

static pl_store *store_new(store_opts o)
{
    pl_store_conf conf = {
        .url = o.url,
        .password = o.password,
        .key_prefix = "t:",
        .owner_name = o.owner_name ? o.owner_name : "a",
        .lease_ms = o.lease_ms ? o.lease_ms : 5000,
        .ttl_s = o.ttl_s,
        .timeout_ms = o.timeout_ms ? o.timeout_ms : 1000,
        .backoff_ms = 20,
        .backoff_max_ms = 200,
        .log = &logger,
        .rng = &rng,
        .ev = {on_done, on_lost, on_release},
        .connect = o.connect,
    };
    char err[256];
    pl_store *s = pl_store_new(&conf, err, sizeof(err));
    if (!s)
        fail_msg("pl_store_new: %s", err);
    return s;
}

/* One pass of the loop the I/O thread runs, sleeping at most max_ms. */
static void drive(pl_store *s, int max_ms)
{
    int fd;
    short events;
    int64_t due = pl_store_tick(s, pl_monotonic_ms(), &fd, &events);
    struct pollfd p = {.fd = fd, .events = events};
    int wait = due < max_ms ? (int)due : max_ms;
    if (poll(&p, fd >= 0 ? 1 : 0, wait) > 0)
        pl_store_io(s, p.revents, pl_monotonic_ms());
}

/* Drive the stores until *counter reaches want (bounded). */
static void drive_until(pl_store *s, pl_store *other, const int *counter, int want)
{
    int64_t until = pl_monotonic_ms() + WAIT_MS;
    while (*counter < want) {
        assert_true(pl_monotonic_ms() < until);
        drive(s, 20);
        if (other)
            drive(other, 0);
    }
}

/* Drive for ms: the time itself is the condition (a lease outliving it). */
static void drive_for(pl_store *s, int ms)
{
    int64_t until = pl_monotonic_ms() + ms;
    while (pl_monotonic_ms() < until)
        drive(s, 20);
}

static void submit(pl_store *s, owner *o, pl_store_op op, uint64_t fence, uint32_t turn,
                   uint64_t request_id, const char *json, int deadline_in_ms)
{
    pl_store_order *order = pl_xcalloc(1, sizeof(*order));
    order->op = op;
    order->owner = o;
    order->session = o->session;
    order->fence = fence;
    order->turn = turn;
    order->request_id = request_id;
    if (json) {
        order->json = pl_xstrdup(json);
        order->json_len = strlen(json);
    }
    order->deadline_ms = pl_monotonic_ms() + (deadline_in_ms ? deadline_in_ms : WAIT_MS);
    o->refs++;
    pl_store_submit(s, order, pl_monotonic_ms());
}

/* Submit one order and drive until it ended; returns its status. */
static pl_store_status order(pl_store *s, owner *o, pl_store_op op, uint64_t fence,
                             uint32_t turn, uint64_t request_id, const char *json)
{
    int want = o->ended + 1;
    submit(s, o, op, fence, turn, request_id, json, 0);
    drive_until(s, NULL, &o->ended, want);
    return o->status;
}

/* ---- looking at redis directly ------------------------------------------ */

static redisContext *inspect(const redis_server *r)
{
    redisContext *c = redisConnect("127.0.0.1", redis_server_port(r));
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    return c;
}

static long long integer(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* GET key into out ("" for nil). */
static void get(redisContext *c, const char *key, char *out, size_t size)
{
    redisReply *r = redisCommand(c, "GET %s", key);
    assert_non_null(r);
    snprintf(out, size, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
}

/* Wait until the key has expired (a lease nobody renews). */
static void wait_expired(redisContext *c, const char *key)
{
    int64_t until = pl_monotonic_ms() + WAIT_MS;
    while (integer(c, "PTTL %s", key) != -2) {
        assert_true(pl_monotonic_ms() < until);
        poll(NULL, 0, 10);
    }
}

static redis_server *redis;
static int sessions_made;
/* For the tests of host names (held_connect below). */
static sem_t hook_entered, hook_go, hook_returned;

/* A fresh session id per test, so the tests share one server. */
static owner new_owner(char *id, size_t size)
{
    snprintf(id, size, "s%d", ++sessions_made);
    return (owner){.session = id};
}

static int setup(void **state)
{
    (void)state;
    sem_init(&hook_entered, 0, 0);
    sem_init(&hook_go, 0, 0);
    sem_init(&hook_returned, 0, 0);
    redis = redis_server_start(NULL);
    return redis ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    redis_server_free(redis);
    return 0;
}

/* ---- the tests ---------------------------------------------------------- */

static void test_url(void **state)
{
    (void)state;
    pl_store_url u;
    char err[200];
    assert_int_equal(pl_store_url_parse("redis://alice@10.0.0.7:6380/3", &u, err, sizeof(err)), 0);
    assert_string_equal(u.user, "alice");
    assert_string_equal(u.host, "10.0.0.7");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 3);
    assert_int_equal(pl_store_url_parse("redis://[::1]:7000", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 7000);
    assert_int_equal(pl_store_url_parse("redis://cache", &u, err, sizeof(err)), 0);
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_int_equal(pl_store_url_parse("redis://bob:hunter2@h:1", &u, err, sizeof(err)), -1);
    assert_null(strstr(err, "hunter2"));
    assert_non_null(strstr(err, "password"));
    assert_int_equal(pl_store_url_parse("rediss://h:1", &u, err, sizeof(err)), -1);
    assert_int_equal(pl_store_url_parse("redis://h:70000", &u, err, sizeof(err)), -1);
    assert_int_equal(pl_store_url_parse("redis://h:1/x", &u, err, sizeof(err)), -1);
    assert_int_equal(pl_store_url_parse("redis://:1", &u, err, sizeof(err)), -1);
}

static void test_acquire_new_session(void **state)
{
    (void)state;
    pl_store *s = store_new((store_opts){.url = redis_server_url(redis)});
    char id[16];
    owner a = new_owner(id, sizeof(id));
    assert_int_equal(order(s, &a, PL_STORE_ACQUIRE, 0, 0, 0, NULL), PL_STORE_OK);
    assert_int_equal(a.fence, 1);
    assert_string_equal(a.history, "[]");
    assert_int_equal(a.turns, 0);
    assert_false(a.has_pending);
    assert_int_equal(a.refs, 1); /* the lease keeps the ACQUIRE's reference */
    pl_store_stats st;
    pl_store_stats_get(s, &st);
    assert_int_equal(st.leases_held, 1);
    assert_true(st.connected);
    assert_int_equal(st.round_trips, 1);
    pl_json_writer w;
    pl_jw_init(&w);
    pl_jw_object(&w, NULL);
    pl_store_write_stats(s, &w);
    pl_jw_end_object(&w);
    assert_false(w.failed);
    assert_non_null(strstr(w.out.data, "\"connected\":true"));
    assert_non_null(strstr(w.out.data, "\"leases_held\":1"));
    assert_non_null(strstr(w.out.data, "\"round_trips\":1"));
    pl_buf_free(&w.out);
    pl_histogram_snapshot snap;
    pl_histogram_snapshot_take(pl_store_latency(s), &snap);
    assert_int_equal(snap.count, 1);

    assert_int_equal(order(s, &a, PL_STORE_RELEASE, 1, 0, 0, NULL), PL_STORE_OK);
    assert_int_equal(a.refs, 0); /* the RELEASE's and the lease's */
    pl_store_stats_get(s, &st);
    assert_int_equal(st.leases_held, 0);
    redisContext *c = inspect(redis);
    char key[64];
    snprintf(key, sizeof(key), "t:{%s}:lease", id);
    assert_int_equal(integer(c, "EXISTS %s", key), 0);
    redisFree(c);
    pl_store_free(s);
}

#define USER_MSG(n) "{\"role\":\"user\",\"content\":\"q" #n "\"}"
#define ELEMENT(n) USER_MSG(n) ",{\"role\":\"assistant\",\"content\":\"a" #n "\"}"

static void test_commit_then_next_owner(void **state)
{
    (void)state;
    pl_store *s = store_new((store_opts){.url = redis_server_url(redis)});
    pl_store *t = store_new((store_opts){.url = redis_server_url(redis), .owner_name = "b"});
    char id[16];
    owner a = new_owner(id, sizeof(id));
    owner b = {.session = id};
    assert_int_equal(order(s, &a, PL_STORE_ACQUIRE, 0, 0, 0, NULL), PL_STORE_OK);
    assert_int_equal(order(s, &a, PL_STORE_PENDING, 1, 0, 7,
                           "{\"id\":\"7\",\"turn\":0,\"user\":" USER_MSG(0) "}"),
                     PL_STORE_OK);
    assert_int_equal(order(s, &a, PL_STORE_COMMIT, 1, 0, 7, ELEMENT(0)), PL_STORE_OK);
    const char *pending1 = "{\"id\":\"8\",\"turn\":1,\"user\":" USER_MSG(1) "}";
    assert_int_equal(order(s, &a, PL_STORE_PENDING, 1, 1, 8, pending1), PL_STORE_OK);

    /* Owned while a's lease lives. */
    assert_int_equal(order(t, &b, PL_STORE_ACQUIRE, 0, 0, 0, NULL), PL_STORE_OWNED);
    assert_true(b.lease_left_ms > 0 && b.lease_left_ms <= 5000);
    assert_non_null(strstr(b.message, "owned by another process"));
    assert_int_equal(b.refs, 0);

    assert_int_equal(order(s, &a, PL_STORE_RELEASE, 1, 0, 0, NULL), PL_STORE_OK);
    assert_int_equal(order(t, &b, PL_STORE_ACQUIRE, 0, 0, 0, NULL), PL_STORE_OK);
    assert_int_equal(b.fence, 2);
    assert_string_equal(b.history, "[" ELEMENT(0) "]");
    assert_int_equal(b.turns, 1);
    assert_true(b.has_pending); /* the turn in flight when a let go */
    assert_string_equal(b.pending, pending1);
    assert_int_equal(order(t, &b, PL_STORE_RELEASE, 2, 0, 0, NULL), PL_STORE_OK);
    assert_int_equal(a.refs, 0);
    assert_int_equal(b.refs, 0);
    pl_store_free(s);
    pl_store_free(t);
}

/* a's process pauses (its store is not driven) past its lease; b takes the
 * session; a's writes are refused and its lease is lost. */
static void test_expired_owner_is_fenced(void **state)
{
    (void)state;
    pl_store *s = store_new((store_opts){.url = redis_server_url(redis), .lease_ms = 300});
    pl_store *t = store_new((store_opts){.url = redis_server_url(redis), .owner_name = "b"});
    char id[16], key[64];
    owner a = new_owner(id, sizeof(id));
    owner b = {.session = id};
    redisContext *c = inspect(redis);
    assert_int_equal(order(s, &a, PL_STORE_ACQUIRE, 0, 0, 0, NULL), PL_STORE_OK);
    assert_int_equal(order(s, &a, PL_STORE_COMMIT, 1, 0, 7, ELEMENT(0)), PL_STORE_OK);
    snprintf(key, sizeof(key), "t:{%s}:lease", id);
    wait_expired(c, key);

    assert_int_equal(order(t, &b, PL_STORE_ACQUIRE, 0, 0, 0, NULL), PL_STORE_OK);
    assert_int_equal(b.fence, 2);
    assert_int_equal(order(t, &b, PL_STORE_PENDING, 2, 1, 9, "{\"id\":\"9\"}"), PL_STORE_OK);

    /* a wakes up: its lease is gone, its writes are refused. */
    drive_until(s, NULL, &a.lost, 1);
    assert_int_equal(a.refs, 0);
    assert_int_equal(order(s, &a, PL_STORE_COMMIT, 1, 1, 8, ELEMENT(1)), PL_STORE_FENCED);
    assert_non_null(strstr(a.message, "newer owner"));
    assert_int_equal(order(s, &a, PL_STORE_PENDING, 1, 1, 8, "{\"id\":\"8\"}"), PL_STORE_FENCED);
    snprintf(key, sizeof(key), "t:{%s}:hist", id);
    assert_int_equal(integer(c, "LLEN %s", key), 1);
    char pending[64];
    snprintf(key, sizeof(key), "t:{%s}:pending", id);
    get(c, key, pending, sizeof(pending));
    assert_string_equal(pending, "{\"id\":\"9\"}");
    snprintf(key, sizeof(key), "t:{%s}:lease", id);
    char lease[64];
    get(c, key, lease, sizeof(lease));
    assert_string_equal(lease, "b 2");
    assert_int_equal(a.refs, 0);
    pl_store_stats st;
    pl_store_stats_get(s, &st);
    assert_int_equal(st.leases_lost, 1);

    assert_int_equal(order(t, &b, PL_STORE_RELEASE, 2, 0, 0, NULL), PL_STORE_OK);
    redisFree(c);
    pl_store_free(s);
    pl_store_free(t);
}

/* Renewals keep the lease past lease_ms; a renewal that finds a newer
 * owner loses it. */
static void test_renewal(void **state)
{
    (void)state;
    pl_store *s = store_new((store_opts){.url = redis_server_url(redis), .lease_ms = 300});
    char id[16], key[64], lease[64];
    owner a = new_owner(id, sizeof(id));
    redisContext *c = inspect(redis);
    snprintf(key, sizeof(key), "t:{%s}:lease", id);
    assert_int_equal(order(s, &a, PL_STORE_ACQUIRE, 0, 0, 0, NULL), PL_STORE_OK);
    drive_for(s, 1200); /* four lease times */
    assert_int_equal(a.lost, 0);
    get(c, key, lease, sizeof(lease));
    assert_string_equal(lease, "a 1");
    long long left = integer(c, "PTTL %s", key);
    assert_true(left > 0 && left <= 300);

    /* Another process takes the session (as after a's pause). */
    integer(c, "INCR t:{%s}:fence", id);
    redisReply *r = redisCommand(c, "SET %s %s PX 5000", key, "b 2");
    freeReplyObject(r);
    drive_until(s, NULL, &a.lost, 1);
    assert_non_null(strstr(a.lost_message, "newer owner"));
    assert_int_equal(a.refs, 0);
    get(c, key, lease, sizeof(lease));
    assert_string_equal(lease, "b 2"); /* never touched */
    redisFree(c);
    pl_store_free(s);
}

static void test_commit_idempotent_and_conflict(void **state)
{
    (void)state;
    pl_store *s = store_new((store_opts){.url = redis_server_url(redis)});
    char id[16], key[64];
    owner a = new_owner(id, sizeof(id));
    redisContext *c = inspect(redis);
    assert_int_equal(order(s, &a, PL_STORE_ACQUIRE, 0, 0, 0, NULL), PL_STORE_OK);
    assert_int_equal(order(s, &a, PL_STORE_COMMIT, 1, 0, 7, ELEMENT(0)), PL_STORE_OK);
    assert_int_equal(order(s, &a, PL_STORE_COMMIT, 1, 0, 7, ELEMENT(0)), PL_STORE_OK);
    snprintf(key, sizeof(key), "t:{%s}:hist", id);
    assert_int_equal(integer(c, "LLEN %s", key), 1);
    /* The same turn under another request id is not the same commit. */
    assert_int_equal(order(s, &a, PL_STORE_COMMIT, 1, 0, 99, ELEMENT(0)), PL_STORE_CONFLICT);
    assert_int_equal(order(s, &a, PL_STORE_COMMIT, 1, 5, 8, ELEMENT(5)), PL_STORE_CONFLICT);
    assert_non_null(strstr(a.message, "holds 1 turns"));
    assert_int_equal(integer(c, "LLEN %s", key), 1);
    assert_int_equal(order(s, &a, PL_STORE_RELEASE, 1, 0, 0, NULL), PL_STORE_OK);
    assert_int_equal(a.refs, 0);
    redisFree(c);
    pl_store_free(s);
}

static void test_ttl(void **state)
{
    (void)state;
    pl_store *s = store_new((store_opts){.url = redis_server_url(redis), .ttl_s = 100});
    char id[16], key[64];
    owner a = new_owner(id, sizeof(id));
    redisContext *c = inspect(redis);
    assert_int_equal(order(s, &a, PL_STORE_ACQUIRE, 0, 0, 0, NULL), PL_STORE_OK);
    assert_int_equal(order(s, &a, PL_STORE_PENDING, 1, 0, 7, "{\"id\":\"7\"}"), PL_STORE_OK);
    assert_int_equal(order(s, &a, PL_STORE_COMMIT, 1, 0, 7, ELEMENT(0)), PL_STORE_OK);
    static const char *const kept[] = {"hist", "last", "fence"};
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof(key), "t:{%s}:%s", id, kept[i]);
        long long ttl = integer(c, "PTTL %s", key);
        assert_true(ttl > 90000 && ttl <= 100000);
    }
    snprintf(key, sizeof(key), "t:{%s}:lease", id); /* its own, shorter expiry */
    long long lease = integer(c, "PTTL %s", key);
    assert_true(lease > 0 && lease <= 5000);
    assert_int_equal(order(s, &a, PL_STORE_RELEASE, 1, 0, 0, NULL), PL_STORE_OK);
    redisFree(c);
    pl_store_free(s);

    /* Without a TTL, the keys stay. */
    s = store_new((store_opts){.url = redis_server_url(redis)});
    owner b = new_owner(id, sizeof(id));
    c = inspect(redis);
    assert_int_equal(order(s, &b, PL_STORE_ACQUIRE, 0, 0, 0, NULL), PL_STORE_OK);
    assert_int_equal(order(s, &b, PL_STORE_COMMIT, 1, 0, 7, ELEMENT(0)), PL_STORE_OK);
    snprintf(key, sizeof(key), "t:{%s}:hist", id);
    assert_int_equal(integer(c, "PTTL %s", key), -1);
    assert_int_equal(order(s, &b, PL_STORE_RELEASE, 1, 0, 0, NULL), PL_STORE_OK);
    redisFree(c);
    pl_store_free(s);
}

/* Down at start: orders wait, then go when it comes up within their
 * deadline; past it they end UNAVAILABLE. */
static void test_store_down_at_start(void **state)
{
    (void)state;
    redis_server *r = redis_server_start(NULL);
    assert_non_null(r);
    assert_int_equal(redis_server_stop(r), 0);
    pl_store *s = store_new((store_opts){.url = redis_server_url(r)});
    char id[16];
    owner a = new_owner(id, sizeof(id));
    char id_b[16];
    owner b = new_owner(id_b, sizeof(id_b));
    submit(s, &a, PL_STORE_ACQUIRE, 0, 0, 0, NULL, 8000);
    submit(s, &b, PL_STORE_ACQUIRE, 0, 0, 0, NULL, 300);
    drive_until(s, NULL, &b.ended, 1);
    assert_int_equal(b.status, PL_STORE_UNAVAILABLE);
    assert_non_null(strstr(b.message, "could not be reached in time"));
    assert_non_null(strstr(b.message, redis_server_url(r)));
    assert_int_equal(b.refs, 0);
    assert_int_equal(a.ended, 0); /* still waiting */
    pl_store_stats st;
    pl_store_stats_get(s, &st);
    assert_int_equal(st.orders, 1);
    assert_false(st.connected);
    assert_true(st.errors >= 1);

    assert_int_equal(redis_server_restart(r), 0);
    drive_until(s, NULL, &a.ended, 1);
    assert_int_equal(a.status, PL_STORE_OK);
    assert_int_equal(a.fence, 1);
    assert_int_equal(order(s, &a, PL_STORE_RELEASE, 1, 0, 0, NULL), PL_STORE_OK);
    assert_int_equal(a.refs, 0);
    pl_store_free(s);
    redis_server_free(r);
}

/* A paused server accepts and never answers: the reply timeout gives the
 * connection up, and the order ends at its deadline. */
static void test_store_paused(void **state)
{
    (void)state;
    pl_store *s = store_new((store_opts){.url = redis_server_url(redis), .timeout_ms = 200});
    char id[16];
    owner a = new_owner(id, sizeof(id));
    assert_int_equal(order(s, &a, PL_STORE_ACQUIRE, 0, 0, 0, NULL), PL_STORE_OK);
    redis_server_pause(redis);
    submit(s, &a, PL_STORE_COMMIT, 1, 0, 7, ELEMENT(0), 1000);
    drive_until(s, NULL, &a.ended, 2);
    redis_server_resume(redis);
    assert_int_equal(a.status, PL_STORE_UNAVAILABLE);
    assert_non_null(strstr(a.message, "in time"));
    /* Back: the connection is made again and the COMMIT (which the paused
     * server may have taken in its socket) is idempotent. */
    assert_int_equal(order(s, &a, PL_STORE_COMMIT, 1, 0, 7, ELEMENT(0)), PL_STORE_OK);
    pl_store_stats st;
    pl_store_stats_get(s, &st);
    assert_true(st.reconnects >= 1);
    assert_int_equal(order(s, &a, PL_STORE_RELEASE, 1, 0, 0, NULL), PL_STORE_OK);
    assert_int_equal(a.refs, 0);
    pl_store_free(s);
}

#define SESSIONS 40
#define TURNS 5

/* Restarted (appendonly) while commits of many sessions are out: every
 * order ends once, all OK, and each history holds each turn once. */
static void test_restart_mid_run(void **state)
{
    (void)state;
    static const char *const aof[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};
    redis_server *r = redis_server_start(aof);
    assert_non_null(r);
    pl_store *s = store_new((store_opts){.url = redis_server_url(r), .lease_ms = 30000});
    static owner o[SESSIONS];
    static char ids[SESSIONS][16];
    int ended = 0;
    for (int i = 0; i < SESSIONS; i++) {
        snprintf(ids[i], sizeof(ids[i]), "r%d", i);
        o[i] = (owner){.session = ids[i]};
        submit(s, &o[i], PL_STORE_ACQUIRE, 0, 0, 0, NULL, 0);
    }
    for (;;) { /* all acquired */
        ended = 0;
        for (int i = 0; i < SESSIONS; i++)
            ended += o[i].ended;
        if (ended == SESSIONS)
            break;
        drive(s, 20);
    }
    for (int turn = 0; turn < TURNS; turn++) {
        char json[128];
        for (int i = 0; i < SESSIONS; i++) {
            assert_int_equal(o[i].status, PL_STORE_OK);
            snprintf(json, sizeof(json), "{\"id\":\"%d\"}", 100 + turn);
            submit(s, &o[i], PL_STORE_PENDING, o[i].fence, (uint32_t)turn, 100 + turn, json, 0);
            snprintf(json, sizeof(json), "\"turn %d\"", turn);
            submit(s, &o[i], PL_STORE_COMMIT, o[i].fence, (uint32_t)turn, 100 + turn, json, 0);
        }
        if (turn == 2) {
            drive(s, 0); /* some out, some answered */
            assert_int_equal(redis_server_restart(r), 0);
        }
        int want = SESSIONS * (1 + 2 * (turn + 1));
        int64_t until = pl_monotonic_ms() + WAIT_MS;
        for (;;) {
            ended = 0;
            for (int i = 0; i < SESSIONS; i++)
                ended += o[i].ended;
            if (ended >= want)
                break;
            assert_true(pl_monotonic_ms() < until);
            drive(s, 20);
        }
        assert_int_equal(ended, want); /* each once */
    }
    redisContext *c = inspect(r);
    for (int i = 0; i < SESSIONS; i++) {
        assert_int_equal(o[i].status, PL_STORE_OK);
        redisReply *h = redisCommand(c, "LRANGE t:{%s}:hist 0 -1", ids[i]);
        assert_int_equal(h->elements, TURNS);
        for (size_t k = 0; k < h->elements; k++) {
            char want[32];
            snprintf(want, sizeof(want), "\"turn %zu\"", k);
            assert_string_equal(h->element[k]->str, want);
        }
        freeReplyObject(h);
        submit(s, &o[i], PL_STORE_RELEASE, o[i].fence, 0, 0, NULL, 0);
    }
    for (int i = 0; i < SESSIONS; i++) {
        drive_until(s, NULL, &o[i].ended, 2 + 2 * TURNS);
        assert_int_equal(o[i].refs, 0);
    }
    pl_store_stats st;
    pl_store_stats_get(s, &st);
    assert_true(st.reconnects >= 1);
    assert_true(st.round_trips >= SESSIONS * (2 + 2 * TURNS));
    redisFree(c);
    pl_store_free(s);
    redis_server_free(r);
}

static void test_auth(void **state)
{
    (void)state;
    static const char *const acl[] = {"--user", "alice", "on", ">" PASSWORD, "~*", "&*",
                                      "+@all", "--user", "default", "off", NULL};
    redis_server *r = redis_server_start(acl);
    assert_non_null(r);
    char url[96];
    snprintf(url, sizeof(url), "redis://alice@127.0.0.1:%d/2", redis_server_port(r));
    pl_store *s = store_new((store_opts){.url = url, .password = PASSWORD});
    char id[16];
    owner a = new_owner(id, sizeof(id));
    assert_int_equal(order(s, &a, PL_STORE_ACQUIRE, 0, 0, 0, NULL), PL_STORE_OK);
    assert_int_equal(order(s, &a, PL_STORE_RELEASE, 1, 0, 0, NULL), PL_STORE_OK);
    pl_store_free(s);

    log_len = 0;
    s = store_new((store_opts){.url = url, .password = "wrong-" PASSWORD});
    owner b = new_owner(id, sizeof(id));
    submit(s, &b, PL_STORE_ACQUIRE, 0, 0, 0, NULL, 500);
    drive_until(s, NULL, &b.ended, 1);
    assert_int_equal(b.status, PL_STORE_UNAVAILABLE);
    assert_non_null(strstr(b.message, "login was refused"));
    assert_non_null(strstr(b.message, "WRONGPASS"));
    assert_null(strstr(b.message, PASSWORD));
    assert_null(strstr(b.message, "alice@")); /* the URL as shown */
    log_text[log_len] = '\0';
    assert_non_null(strstr(log_text, "login was refused"));
    assert_null(strstr(log_text, PASSWORD));
    pl_store_free(s);
    redis_server_free(r);

    /* The default user's password alone (AUTH <password>). */
    static const char *const requirepass[] = {"--requirepass", PASSWORD, NULL};
    r = redis_server_start(requirepass);
    assert_non_null(r);
    s = store_new((store_opts){.url = redis_server_url(r), .password = PASSWORD});
    owner d = new_owner(id, sizeof(id));
    assert_int_equal(order(s, &d, PL_STORE_ACQUIRE, 0, 0, 0, NULL), PL_STORE_OK);
    assert_int_equal(order(s, &d, PL_STORE_RELEASE, 1, 0, 0, NULL), PL_STORE_OK);
    pl_store_free(s);
    /* Without the password: NOAUTH, an error that does not pass. */
    s = store_new((store_opts){.url = redis_server_url(r)});
    owner e = new_owner(id, sizeof(id));
    submit(s, &e, PL_STORE_ACQUIRE, 0, 0, 0, NULL, 500);
    drive_until(s, NULL, &e.ended, 1);
    assert_int_equal(e.status, PL_STORE_UNAVAILABLE);
    assert_non_null(strstr(e.message, "wants a password: NOAUTH"));
    pl_store_free(s);
    redis_server_free(r);
}

/* A write that meets a socket that can no longer send fails with EPIPE,
 * which raises SIGPIPE: the process lives on (its default would end it),
 * and the order goes on a new connection. */
static void test_write_after_close(void **state)
{
    (void)state;
    pl_store *s = store_new((store_opts){.url = redis_server_url(redis)});
    char id[16];
    owner a = new_owner(id, sizeof(id));
    assert_int_equal(order(s, &a, PL_STORE_ACQUIRE, 0, 0, 0, NULL), PL_STORE_OK);
    int fd;
    short events;
    pl_store_tick(s, pl_monotonic_ms(), &fd, &events);
    assert_true(fd >= 0);
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    assert_int_equal(order(s, &a, PL_STORE_RELEASE, 1, 0, 0, NULL), PL_STORE_OK);
    pl_store_stats st;
    pl_store_stats_get(s, &st);
    assert_true(st.reconnects >= 1);
    assert_int_equal(a.refs, 0);
    pl_store_free(s);
}

/* ---- host names ---------------------------------------------------------- */

/* The test's hold on the connect the store's resolving thread makes: it
 * enters, waits for `go` (at most WAIT_MS: a connect made on the loop's
 * own thread then returns, and the test sees it did), and tells. */
static atomic_bool hook_has_returned;
static atomic_int hook_calls;
static atomic_llong hook_call_ms[8]; /* when each of the first calls began */

/* The semaphores are made once (setup); each test starts them at 0. */
static void hook_reset(void)
{
    sem_t *sems[] = {&hook_entered, &hook_go, &hook_returned};
    for (size_t i = 0; i < sizeof(sems) / sizeof(sems[0]); i++)
        while (sem_trywait(sems[i]) == 0)
            ;
    atomic_store(&hook_has_returned, false);
    atomic_store(&hook_calls, 0);
}

static bool sem_wait_ms(sem_t *sem, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    int rc;
    while ((rc = sem_timedwait(sem, &ts)) != 0 && errno == EINTR)
        ;
    return rc == 0;
}

static redisAsyncContext *held_connect(const char *host, int port)
{
    sem_post(&hook_entered);
    sem_wait_ms(&hook_go, WAIT_MS);
    redisAsyncContext *ac = redisAsyncConnect(host, port);
    atomic_store(&hook_has_returned, true);
    sem_post(&hook_returned);
    return ac;
}

static redisAsyncContext *counted_connect(const char *host, int port)
{
    int n = atomic_fetch_add(&hook_calls, 1);
    if (n < 8)
        atomic_store(&hook_call_ms[n], pl_monotonic_ms());
    return redisAsyncConnect(host, port);
}

/* The test server's URL with the name `localhost` for its address. */
static void localhost_url(char *url, size_t size, const redis_server *r)
{
    snprintf(url, size, "redis://localhost:%d", redis_server_port(r));
}

/* hiredis 0.14.1 asks getaddrinfo for IPv4 addresses first and for IPv6
 * ones only when there is none, so `localhost` reaches the server on
 * 127.0.0.1 even where /etc/hosts lists ::1 first. A machine whose
 * `localhost` has no 127.0.0.1 cannot run these tests: they are skipped,
 * saying so. */
static void need_localhost_ipv4(void)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
    bool found = false;
    if (getaddrinfo("localhost", NULL, &hints, &ai) == 0) {
        for (struct addrinfo *p = ai; p; p = p->ai_next)
            found |= ((struct sockaddr_in *)p->ai_addr)->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
        freeaddrinfo(ai);
    }
    if (!found) {
        print_message("localhost does not resolve to 127.0.0.1 here: skipped\n");
        skip();
    }
}

/* A host name connects (resolved on the store's thread, with hiredis'
 * own connect) and an order completes. */
static void test_host_name(void **state)
{
    (void)state;
    need_localhost_ipv4();
    char url[64];
    localhost_url(url, sizeof(url), redis);
    pl_store *s = store_new((store_opts){.url = url});
    char id[16];
    owner a = new_owner(id, sizeof(id));
    assert_int_equal(order(s, &a, PL_STORE_ACQUIRE, 0, 0, 0, NULL), PL_STORE_OK);
    pl_store_stats st;
    pl_store_stats_get(s, &st);
    assert_true(st.connected);
    assert_int_equal(order(s, &a, PL_STORE_RELEASE, 1, 0, 0, NULL), PL_STORE_OK);
    assert_int_equal(a.refs, 0);
    pl_store_free(s);
}

/* A store on `localhost` whose connect held_connect holds (as a silent
 * DNS server would) until the test posts hook_go. */
static pl_store *store_with_held_connect(void)
{
    need_localhost_ipv4();
    hook_reset();
    char url[64];
    localhost_url(url, sizeof(url), redis);
    return store_new((store_opts){.url = url, .connect = held_connect});
}

/* While the connect of a host name is held (as by a silent DNS server),
 * the loop goes on: tick and io return, an order whose deadline comes
 * ends with the usual error, another waits and completes once the
 * connect is let go. */
static void test_host_name_resolves_off_the_loop(void **state)
{
    (void)state;
    pl_store *s = store_with_held_connect();
    int fd;
    short events;
    pl_store_tick(s, pl_monotonic_ms(), &fd, &events);
    assert_true(sem_wait_ms(&hook_entered, WAIT_MS));
    assert_false(atomic_load(&hook_has_returned)); /* the tick returned, the connect held */
    char id_a[16], id_b[16];
    owner a = new_owner(id_a, sizeof(id_a));
    owner b = new_owner(id_b, sizeof(id_b));
    submit(s, &a, PL_STORE_ACQUIRE, 0, 0, 0, NULL, 0);
    submit(s, &b, PL_STORE_ACQUIRE, 0, 0, 0, NULL, 300);
    pl_store_tick(s, pl_monotonic_ms(), &fd, &events);
    assert_true(fd >= 0);
    assert_true(events & POLLIN);
    pl_store_io(s, POLLIN, pl_monotonic_ms()); /* nothing to take yet */
    drive_until(s, NULL, &b.ended, 1);
    /* All of that ran while the connect was still held. */
    assert_false(atomic_load(&hook_has_returned));
    assert_int_equal(b.status, PL_STORE_UNAVAILABLE);
    assert_non_null(strstr(b.message, "could not be reached in time"));
    assert_non_null(strstr(b.message, "resolving its host name"));
    assert_int_equal(b.refs, 0);
    assert_int_equal(a.ended, 0);
    pl_store_stats st;
    pl_store_stats_get(s, &st);
    assert_int_equal(st.orders, 1);
    assert_false(st.connected);

    sem_post(&hook_go);
    drive_until(s, NULL, &a.ended, 1);
    assert_int_equal(a.status, PL_STORE_OK);
    assert_int_equal(order(s, &a, PL_STORE_RELEASE, 1, 0, 0, NULL), PL_STORE_OK);
    assert_int_equal(a.refs, 0);
    pl_store_free(s);
}

/* pl_store_free does not wait for a held connect; let go, the thread
 * frees the context nobody took and the attempt (its descriptor closes;
 * ASan sees the memory). */
static void test_free_while_resolving(void **state)
{
    (void)state;
    pl_store *s = store_with_held_connect();
    char id[16];
    owner a = new_owner(id, sizeof(id));
    submit(s, &a, PL_STORE_ACQUIRE, 0, 0, 0, NULL, 0);
    int fd;
    short events;
    pl_store_tick(s, pl_monotonic_ms(), &fd, &events);
    assert_true(sem_wait_ms(&hook_entered, WAIT_MS));
    assert_true(fd >= 0);
    pl_store_free(s);
    assert_false(atomic_load(&hook_has_returned));
    assert_int_equal(a.ended, 1);
    assert_int_equal(a.status, PL_STORE_UNAVAILABLE);
    assert_string_equal(a.message, "the client is shutting down");
    assert_int_equal(a.refs, 0);

    sem_post(&hook_go);
    assert_true(sem_wait_ms(&hook_returned, WAIT_MS));
    /* The thread closes the attempt's descriptor once it freed the
     * context; nothing else here opens one meanwhile. */
    int64_t until = pl_monotonic_ms() + WAIT_MS;
    while (fcntl(fd, F_GETFD) != -1 || errno != EBADF) {
        assert_true(pl_monotonic_ms() < until);
        poll(NULL, 0, 1);
    }
}

/* A name that does not resolve (getaddrinfo refuses "a..b" without asking
 * a DNS server): the error names the host, never the password, and the
 * attempts keep the reconnect backoff (20 ms, then 40, less 25 % jitter). */
static void test_host_not_resolved(void **state)
{
    (void)state;
    hook_reset();
    char url[64];
    snprintf(url, sizeof(url), "redis://a..b:%d", redis_server_port(redis));
    log_len = 0;
    pl_store *s = store_new((store_opts){.url = url, .password = PASSWORD,
                                         .connect = counted_connect});
    char id[16];
    owner a = new_owner(id, sizeof(id));
    submit(s, &a, PL_STORE_ACQUIRE, 0, 0, 0, NULL, 300);
    drive_until(s, NULL, &a.ended, 1);
    assert_int_equal(a.status, PL_STORE_UNAVAILABLE);
    assert_non_null(strstr(a.message, "could not be reached in time: could not resolve host a..b"));
    assert_null(strstr(a.message, PASSWORD));
    int64_t until = pl_monotonic_ms() + WAIT_MS;
    while (atomic_load(&hook_calls) < 3) {
        assert_true(pl_monotonic_ms() < until);
        drive(s, 20);
    }
    assert_true(atomic_load(&hook_call_ms[1]) - atomic_load(&hook_call_ms[0]) >= 15);
    assert_true(atomic_load(&hook_call_ms[2]) - atomic_load(&hook_call_ms[1]) >= 30);
    pl_store_stats st;
    pl_store_stats_get(s, &st);
    assert_true(st.errors >= 2);
    assert_false(st.connected);
    pthread_mutex_lock(&lock);
    log_text[log_len] = '\0';
    assert_non_null(strstr(log_text, "could not resolve host a..b"));
    assert_null(strstr(log_text, PASSWORD));
    pthread_mutex_unlock(&lock);
    pl_store_free(s);
}

/* ---- through the I/O thread ---------------------------------------------- */

static void wait_for(const int *counter, int want)
{
    int64_t until = pl_monotonic_ms() + WAIT_MS;
    pthread_mutex_lock(&lock);
    while (*counter != want) {
        assert_true(pl_monotonic_ms() < until);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&changed, &lock, &ts);
    }
    pthread_mutex_unlock(&lock);
}

static void unused_piece(void *o, uint64_t id, uint32_t seq, const pl_piece *p)
{
    (void)o, (void)id, (void)seq, (void)p;
}

static void unused_done(void *o, uint64_t id, const pl_reply_end *end)
{
    (void)o, (void)id, (void)end;
}

static void unused_error(void *o, uint64_t id, parley_err_t err, const char *m)
{
    (void)o, (void)id, (void)err, (void)m;
}

static pl_io *io_new(pl_pool *pool, pl_counters *counters, const char *store_url)
{
    pl_io_settings set = {
        .endpoint = "http://127.0.0.1:9/v1/messages",
        .endpoint_shown = "http://127.0.0.1:9/v1/messages",
        .dialect_shown = "anthropic",
        .dialect = PL_DIALECT_ANTHROPIC,
        .api_key = "k",
        .connections = 1,
        .connect_timeout_ms = 1000,
        .retry_max_attempts = 1,
        .retry_backoff_ms = 10,
        .retry_backoff_max_ms = 10,
        .reconnect_backoff_ms = 20,
        .reconnect_backoff_max_ms = 200,
        .stall_ping_timeout_ms = 1000,
        .easy = {.connect_timeout_ms = 1000},
        .pool = pool,
        .counters = counters,
        .log = &logger,
        .store_url = store_url,
        .store_key_prefix = "io:",
        .store_owner = "io-test",
        .store_lease_ms = 5000,
        .store_timeout_ms = 300,
    };
    pl_io_sink sink = {
        .piece = unused_piece,
        .done = unused_done,
        .error = unused_error,
        .release = on_release,
        .store_done = on_done,
        .lease_lost = on_lost,
    };
    char err[256];
    pl_io *io = pl_io_new(&set, &sink, err, sizeof(err));
    if (!io)
        fail_msg("pl_io_new: %s", err);
    assert_int_equal(pl_io_start(io), 0);
    return io;
}

static pl_store_order *io_order(owner *o, pl_store_op op, uint64_t fence)
{
    pl_store_order *order = pl_xcalloc(1, sizeof(*order));
    order->op = op;
    order->owner = o;
    order->session = o->session;
    order->fence = fence;
    order->deadline_ms = pl_monotonic_ms() + 5000;
    pthread_mutex_lock(&lock);
    o->refs++;
    pthread_mutex_unlock(&lock);
    return order;
}

static void test_io_thread(void **state)
{
    (void)state;
    pl_pool *pool = pl_pool_new(1);
    assert_int_equal(pl_pool_start(pool), 0);
    static pl_counters counters;

    /* Without a store: at once UNAVAILABLE. */
    pl_io *io = io_new(pool, &counters, NULL);
    char id[16], key[64];
    owner a = new_owner(id, sizeof(id));
    pl_io_store(io, io_order(&a, PL_STORE_ACQUIRE, 0));
    wait_for(&a.ended, 1);
    assert_int_equal(a.status, PL_STORE_UNAVAILABLE);
    assert_non_null(strstr(a.message, "no session store"));
    wait_for(&a.refs, 0);
    pl_io_stop(io);
    pl_io_free(io);

    /* With one: the lease is taken through the I/O thread and given back
     * by pl_io_stop. */
    io = io_new(pool, &counters, redis_server_url(redis));
    owner b = new_owner(id, sizeof(id));
    pl_io_store(io, io_order(&b, PL_STORE_ACQUIRE, 0));
    wait_for(&b.ended, 1);
    assert_int_equal(b.status, PL_STORE_OK);
    assert_int_equal(b.refs, 1);
    redisContext *c = inspect(redis);
    snprintf(key, sizeof(key), "io:{%s}:lease", id);
    assert_int_equal(integer(c, "EXISTS %s", key), 1);
    pl_io_stop(io);
    assert_int_equal(b.refs, 0);
    assert_int_equal(b.lost, 0);
    assert_int_equal(integer(c, "EXISTS %s", key), 0); /* given back */
    pl_io_free(io);

    /* An order that a paused store holds ends when the client stops. */
    io = io_new(pool, &counters, redis_server_url(redis));
    owner d = new_owner(id, sizeof(id));
    pl_io_store(io, io_order(&d, PL_STORE_ACQUIRE, 0));
    wait_for(&d.ended, 1);
    assert_int_equal(d.status, PL_STORE_OK);
    redis_server_pause(redis);
    pl_io_store(io, io_order(&d, PL_STORE_COMMIT, d.fence));
    pl_io_stop(io); /* waits its bound for the paused store to take the lease */
    redis_server_resume(redis);
    assert_int_equal(d.ended, 2);
    assert_int_equal(d.status, PL_STORE_UNAVAILABLE);
    assert_string_equal(d.message, "the client is shutting down");
    assert_int_equal(d.refs, 0);
    pl_io_free(io);
    redisFree(c);
    pl_pool_stop(pool);
    pl_pool_free(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url),
        cmocka_unit_test(test_acquire_new_session),
        cmocka_unit_test(test_commit_then_next_owner),
        cmocka_unit_test(test_expired_owner_is_fenced),
        cmocka_unit_test(test_renewal),
        cmocka_unit_test(test_commit_idempotent_and_conflict),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_store_down_at_start),
        cmocka_unit_test(test_store_paused),
        cmocka_unit_test(test_restart_mid_run),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_write_after_close),
        cmocka_unit_test(test_io_thread),
        cmocka_unit_test(test_host_name),
        cmocka_unit_test(test_host_name_resolves_off_the_loop),
        cmocka_unit_test(test_free_while_resolving),
        cmocka_unit_test(test_host_not_resolved),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
