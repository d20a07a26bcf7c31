/*
 * The fault matrix (issue 12): every fault of the reference server against
 * every path (native WebSocket, Anthropic and OpenAI over HTTP/1.1), plus a
 * frozen server process (SIGSTOP) and black-holed connections, each cell
 * asserting its documented outcome exactly:
 *
 *   - which requests complete (all, where the protocol allows it), which
 *     fail and with which code (for faults that hit single requests: exactly
 *     the requests the server hit);
 *   - no piece lost or repeated: the pieces of a completed reply join to the
 *     echo model's text, and those of a failed one are a prefix of it;
 *   - every request exactly one terminal event.
 *
 * Each cell runs in a child process of its own, so that a cell that hangs
 * (or crashes) is reported as such and killed while the others still run.
 * The outcome table goes to $PARLEY_FAULT_MATRIX_OUT (default
 * fault-matrix.md); tests/e2e/fault_matrix_doc.sh puts it into
 * docs/reliability.md.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "fixtures.h"
#include "blackhole_proxy.h"
#include "parley.h"
#include "recorder.h"
#include "refserver.h"
#include "refserver_http.h"

#define TEST_KEY "matrix-key"

/* Sanitized builds run every cell with fewer requests (the same faults). */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SESSIONS 20
#define TURNS 3
#define CELL_LIMIT_S 60
#else
#define SESSIONS 40
#define TURNS 5
#define CELL_LIMIT_S 45
#endif
#define STALL_MS "500"    /* stall.timeout.ms, as in the acceptance */
/* Silence a connection this often: more of them over a cell than the
 * client's 4, so that requests cannot just move to one still alive. */
#define CONNECTION_STALL_EVERY (SESSIONS * TURNS / 8)
#define DEADLINE_MS 10000 /* request.timeout.ms of the matrix's requests */
#define TEXT_(x) #x
#define TEXT(x) TEXT_(x)
#define HIT_AFTER 3       /* pieces before a mid-stream fault acts */

extern char **environ;

/* ---- what a cell reports ------------------------------------------------ */

typedef struct cell_result {
    char fault[64];
    char path[16];
    char expected[96];
    unsigned requests, completed;
    unsigned failed_by[PARLEY_ERR__COUNT];
    unsigned long long retries, reconnects;
    long long elapsed_ms;
    int ok;         /* every assertion of the cell held */
    char why[640];  /* otherwise the first that did not */
} cell_result;

#define MAX_RESULTS 64
static cell_result results[MAX_RESULTS];
static size_t nresults;

#define REASONS_KEPT 3

/* Records a failed check of a cell: the first few, then how many more. */
__attribute__((format(printf, 2, 3)))
static void cell_fail(cell_result *r, const char *fmt, ...)
{
    static int count; /* failed checks of this cell (one cell per process) */
    if (r->ok)
        count = 0;
    r->ok = 0;
    count++;
    char *more = strstr(r->why, " [+");
    if (more)
        *more = '\0';
    size_t len = strlen(r->why);
    if (count > REASONS_KEPT) {
        snprintf(r->why + len, sizeof(r->why) - len, " [+%d more]", count - REASONS_KEPT);
        return;
    }
    if (len && len + 2 < sizeof(r->why)) {
        memcpy(r->why + len, "; ", 3);
        len += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why + len, sizeof(r->why) - len, fmt, ap);
    va_end(ap);
}

/* ---- running cells in child processes ---------------------------------- */

enum path { NATIVE, ANTHROPIC, OPENAI, NPATHS };
static const char *const path_names[NPATHS] = {"native", "anthropic", "openai"};

/* One cell: a fault (arg) against path p, its outcome into r. */
typedef void cell_fn(const void *arg, enum path p, cell_result *r);

typedef struct child {
    pid_t pid;
    int fd;        /* where its report comes */
    cell_result r; /* the names, until the report replaces it */
} child;

static void child_start(child *ch, cell_fn *fn, const void *arg, const char *fault,
                        enum path p)
{
    ch->r = (cell_result){.ok = 1};
    snprintf(ch->r.fault, sizeof(ch->r.fault), "%s", fault);
    snprintf(ch->r.path, sizeof(ch->r.path), "%s", path_names[p]);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    ch->pid = fork();
    assert_true(ch->pid >= 0);
    if (ch->pid == 0) {
        close(fds[0]);
        recorder_reset();
        int64_t t0 = fixture_now_ms();
        fn(arg, p, &ch->r);
        ch->r.elapsed_ms = fixture_now_ms() - t0;
        ssize_t w = write(fds[1], &ch->r, sizeof(ch->r));
        /* A cell that gave up on a hung client skips the exit handlers, which
         * could wait on it too. */
        if (w != (ssize_t)sizeof(ch->r) || strstr(ch->r.why, "[hung]"))
            _exit(3);
        exit(0);
    }
    close(fds[1]);
    ch->fd = fds[0];
}

/*
 * What the child reported. One that does not report by deadline_ms is
 * killed; one that exits with a failure status after reporting (a
 * sanitizer's report at exit) fails its cell too.
 */
static cell_result child_finish(child *ch, int64_t deadline_ms, int limit_s)
{
    cell_result r = ch->r;
    struct pollfd pfd = {.fd = ch->fd, .events = POLLIN};
    int ready;
    do {
        int64_t left = deadline_ms - fixture_now_ms();
        ready = poll(&pfd, 1, left > 0 ? (int)left : 0);
    } while (ready < 0 && errno == EINTR);
    cell_result got;
    ssize_t n = ready > 0 ? read(ch->fd, &got, sizeof(got)) : 0;
    if (n == (ssize_t)sizeof(got))
        r = got;
    else {
        kill(ch->pid, SIGKILL);
        r.ok = 0;
        snprintf(r.why, sizeof(r.why), ready > 0 ? "the cell's process died"
                                                 : "hung: killed after %d s", limit_s);
    }
    close(ch->fd);
    int status = 0;
    waitpid(ch->pid, &status, 0);
    if (r.ok && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        r.ok = 0;
        snprintf(r.why, sizeof(r.why), "the cell's process ended with %s %d (a "
                 "sanitizer report?)", WIFEXITED(status) ? "status" : "signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    }
    return r;
}

/*
 * One row: fn against every path at once, each in a child process of its
 * own (a cell that hangs or crashes is reported and killed; the others go
 * on). Records and prints the cells in path order; true when all held.
 */
static bool run_row(cell_fn *fn, const void *arg, const char *fault, int limit_s)
{
    /* PARLEY_FAULT_MATRIX_ONLY=TEXT runs the rows whose name has TEXT. */
    const char *only = getenv("PARLEY_FAULT_MATRIX_ONLY");
    if (only && !strstr(fault, only))
        return true;
    child kids[NPATHS];
    int64_t deadline = fixture_now_ms() + (int64_t)limit_s * 1000;
    for (enum path p = NATIVE; p < NPATHS; p++)
        child_start(&kids[p], fn, arg, fault, p);
    bool all_ok = true;
    for (enum path p = NATIVE; p < NPATHS; p++) {
        cell_result r = child_finish(&kids[p], deadline, limit_s);
        all_ok &= r.ok != 0;
        if (nresults < MAX_RESULTS)
            results[nresults++] = r;
        print_message("%-46s %-9s %4u requests %4u done %4u failed %5llu retries "
                      "%4llu reconnects %6lld ms  %s%s\n", r.fault, r.path, r.requests,
                      r.completed, r.requests - r.completed, r.retries, r.reconnects,
                      r.elapsed_ms,
                      r.ok ? "ok" : "FAILED: ", r.ok ? "" : r.why);
    }
    return all_ok;
}

/* ---- the paths ------------------------------------------------------------- */

static void endpoint_of(enum path p, int port, char *url, size_t size)
{
    if (p == NATIVE)
        snprintf(url, size, "ws://127.0.0.1:%d/v1/stream", port);
    else
        snprintf(url, size, "http://127.0.0.1:%d", port);
}

/* A started client of path p on port, recording events, with the matrix's
 * settings and then name, value pairs (NULL-terminated). NULL with the
 * reason in r when it cannot be made. */
static parley_client_t *matrix_client(enum path p, int port, int worker_id,
                                      cell_result *r, ...)
{
    char url[128], wid[16];
    endpoint_of(p, port, url, sizeof(url));
    snprintf(wid, sizeof(wid), "%d", worker_id);
    const char *common[] = {
        "endpoint", url, "dialect", path_names[p], "workers", "2", "connections", "4",
        "worker.id", wid, "retry.max.attempts", "10", "retry.backoff.ms", "5",
        "retry.backoff.max.ms", "50", "reconnect.backoff.ms", "5",
        "reconnect.backoff.max.ms", "100", "stall.timeout.ms", STALL_MS,
        "request.timeout.ms", TEXT(DEADLINE_MS), NULL,
    };
    parley_conf_t *conf = parley_conf_new();
    char err[512];
    for (size_t i = 0; common[i]; i += 2)
        if (parley_conf_set(conf, common[i], common[i + 1], err, sizeof(err)) != PARLEY_OK) {
            cell_fail(r, "conf %s: %s", common[i], err);
            parley_conf_destroy(conf);
            return NULL;
        }
    va_list ap;
    va_start(ap, r);
    const char *name;
    while ((name = va_arg(ap, const char *))) {
        const char *value = va_arg(ap, const char *);
        if (parley_conf_set(conf, name, value, err, sizeof(err)) != PARLEY_OK) {
            cell_fail(r, "conf %s: %s", name, err);
            va_end(ap);
            parley_conf_destroy(conf);
            return NULL;
        }
    }
    va_end(ap);
    parley_conf_set_event_cb(conf, recorder_on_event, NULL);
    parley_client_t *c = parley_client_new(conf, err, sizeof(err));
    if (!c) {
        cell_fail(r, "parley_client_new: %s", err);
        parley_conf_destroy(conf);
        return NULL;
    }
    if (parley_start(c) != PARLEY_OK) {
        cell_fail(r, "parley_start failed");
        parley_client_destroy(c);
        return NULL;
    }
    return c;
}

/* ---- a load and its check ----------------------------------------------- */

/* What a failed request of a cell may have failed with. */
typedef struct expect {
    bool all_done;           /* every request completes */
    parley_err_t code;       /* otherwise a failure has this code... */
    bool after_pieces;       /* ...and some pieces were delivered first */
    int exact_pieces;        /* > 0: exactly this many */
    bool exactly_the_hits;   /* the failures are exactly the requests the
                                server hit */
} expect;

typedef struct load {
    int sessions, turns;
    uint64_t *ids; /* [sessions * turns] */
} load;

static void load_text(char *out, size_t size, int session, int turn)
{
    snprintf(out, size, "conversation %d turn %d: ünïcödé", session, turn);
}

/* Opens the sessions and queues every turn. */
static bool load_send(parley_client_t *c, load *l, int sessions, int turns, cell_result *r)
{
    l->sessions = sessions;
    l->turns = turns;
    l->ids = calloc((size_t)sessions * (size_t)turns, sizeof(*l->ids));
    for (int i = 0; i < sessions; i++) {
        parley_session_t *s = parley_session_open(c, NULL, NULL, 0);
        if (!s) {
            cell_fail(r, "parley_session_open failed");
            return false;
        }
        for (int t = 0; t < turns; t++) {
            char text[96];
            load_text(text, sizeof(text), i, t);
            parley_err_t e = parley_send(s, text, &l->ids[i * turns + t]);
            if (e != PARLEY_OK) {
                cell_fail(r, "parley_send: %s", parley_err2name(e));
                return false;
            }
        }
    }
    r->requests += (unsigned)(sessions * turns);
    return true;
}

/*
 * Checks every request of l against x: one terminal event; a completed one
 * exactly "[turn N] TEXT" (N counting the session's completed turns) in
 * pieces that join to it; a failed one with x's code, its pieces a prefix of
 * the reply it was getting. Counts into r; returns the failures.
 */
static unsigned load_check(const load *l, const expect *x, cell_result *r)
{
    unsigned failed = 0;
    for (int i = 0; i < l->sessions; i++) {
        int completed = 0;
        for (int t = 0; t < l->turns; t++) {
            uint64_t id = l->ids[i * l->turns + t];
            recorder_entry e = recorder_get(id);
            char text[96], want[160], who[80];
            load_text(text, sizeof(text), i, t);
            snprintf(want, sizeof(want), "[turn %d] %s", completed + 1, text);
            /* The id, to find the request in the client's log. */
            snprintf(who, sizeof(who), "session %d turn %d (request %llu)", i, t,
                     (unsigned long long)id);
            if (e.terminals != 1) {
                cell_fail(r, "%s: %d terminal events", who, e.terminals);
                continue;
            }
            if (e.seq_errors)
                cell_fail(r, "%s: %d pieces out of order (lost or repeated)", who,
                          e.seq_errors);
            if (e.terminal == PARLEY_EVENT_DONE) {
                completed++;
                r->completed++;
                if (strcmp(e.done, want) || strcmp(e.text, want))
                    cell_fail(r, "%s: DONE \"%s\" (pieces \"%s\"), want \"%s\"", who,
                              e.done, e.text, want);
                continue;
            }
            failed++;
            if (e.err >= 0 && e.err < PARLEY_ERR__COUNT)
                r->failed_by[e.err]++;
            if (strncmp(e.text, want, strlen(e.text)))
                cell_fail(r, "%s: pieces \"%s\" are no prefix of \"%s\"", who, e.text,
                          want);
            if (x->all_done || e.err != x->code)
                cell_fail(r, "%s: %s: %s (expected %s)", who, parley_err2name(e.err),
                          e.err_msg, x->all_done ? "completion" : parley_err2name(x->code));
            else if (x->after_pieces && e.pieces == 0)
                cell_fail(r, "%s: %s before any piece: %s", who, parley_err2name(e.err),
                          e.err_msg);
            else if (x->exact_pieces && e.pieces != x->exact_pieces)
                cell_fail(r, "%s: %s after %d pieces, expected %d", who,
                          parley_err2name(e.err), e.pieces, x->exact_pieces);
        }
    }
    return failed;
}

/* Waits for every terminal event until the requests' deadline (and some);
 * false with "[hung]" in r when they did not all come. */
static bool flush_or_hang(parley_client_t *c, int deadline_ms, int extra_ms, cell_result *r)
{
    if (parley_flush(c, deadline_ms + extra_ms) == PARLEY_OK)
        return true;
    cell_fail(r, "[hung] %zu terminal events by the deadline + %d ms", recorder_terminals(),
              extra_ms);
    return false;
}

static void add_client_stats(parley_client_t *c, cell_result *r)
{
    parley_stats_t st;
    parley_stats_get(c, &st);
    r->retries += st.retries;
    r->reconnects += st.reconnects;
}

/* ---- the matrix's faults ----------------------------------------------- */

typedef struct fault_cell {
    const char *name;
    pl_refserver_faults native;      /* the WebSocket path's knobs */
    pl_refserver_http_faults http;   /* the HTTP paths' (via http_faults()) */
    unsigned chunk_bytes;            /* 0: 8 */
    int restarts;                    /* server restarts during the load */
    int deadline_ms;                 /* request.timeout.ms; 0: DEADLINE_MS */
    int load_divisor;                /* fewer requests (slow cells) */
    expect x[NPATHS];
    /* How often the fault struck, as the server (or the client) counted:
     * a cell where it never did tests nothing. NULL: it always acts. */
    uint64_t (*hits)(pl_refserver *srv, parley_client_t *c, enum path p);
} fault_cell;

/* The counters a cell's hits come from. */
typedef struct counters {
    pl_refserver_stats ws;
    pl_refserver_http_stats http;
    parley_stats_t client;
} counters;

static counters counters_of(pl_refserver *srv, parley_client_t *c)
{
    counters k;
    pl_refserver_get_stats(srv, &k.ws);
    pl_refserver_http_get_stats(pl_refserver_http_of(srv), &k.http);
    parley_stats_get(c, &k.client);
    return k;
}

static uint64_t rejected_hits(pl_refserver *srv, parley_client_t *c, enum path p)
{
    counters k = counters_of(srv, c);
    return p == NATIVE ? k.ws.rejected : k.http.rejected;
}

static uint64_t stream_error_hits(pl_refserver *srv, parley_client_t *c, enum path p)
{
    counters k = counters_of(srv, c);
    return p == NATIVE ? k.ws.stream_errors : k.http.stream_errors;
}

static uint64_t drop_hits(pl_refserver *srv, parley_client_t *c, enum path p)
{
    counters k = counters_of(srv, c);
    return p == NATIVE ? k.ws.dropped : k.http.dropped;
}

static uint64_t restart_hits(pl_refserver *srv, parley_client_t *c, enum path p)
{
    (void)p;
    return counters_of(srv, c).ws.restarts;
}

/* Native: the client's stall watchdog caught the stalled requests. */
static uint64_t stall_hits(pl_refserver *srv, parley_client_t *c, enum path p)
{
    counters k = counters_of(srv, c);
    return p == NATIVE ? k.client.stalls : k.http.stalled;
}

static uint64_t connection_stall_hits(pl_refserver *srv, parley_client_t *c, enum path p)
{
    counters k = counters_of(srv, c);
    return p == NATIVE ? k.ws.silenced : k.http.stalled;
}

static uint64_t unknown_hits(pl_refserver *srv, parley_client_t *c, enum path p)
{
    counters k = counters_of(srv, c);
    return p == NATIVE ? k.client.unknown_messages : k.http.unknown_sent;
}

#define ALL_DONE {.all_done = true}
#define ALL_PATHS_DONE {ALL_DONE, ALL_DONE, ALL_DONE}
#define NO_HTTP_HEADERS .retry_after_s = -1, .retry_after_ms = -1, .should_retry = -1

static const fault_cell cells[] = {
    {.name = "rate limited, retry-after 20 ms",
     .native = {.reject_every = 5, .reject_code = "rate_limited", .retry_after_ms = 20},
     .http = {.reject_every = 5, .reject_kind = PL_RSHTTP_REJECT_RATE_LIMITED,
              .retry_after_s = -1, .retry_after_ms = 20, .should_retry = -1},
     .x = ALL_PATHS_DONE, .hits = rejected_hits},
    {.name = "rate limited, no retry-after",
     .native = {.reject_every = 5, .reject_code = "rate_limited", .retry_after_ms = -1},
     .http = {.reject_every = 5, NO_HTTP_HEADERS},
     .x = ALL_PATHS_DONE, .hits = rejected_hits},
    {.name = "overloaded",
     .native = {.reject_every = 5, .reject_code = "overloaded", .retry_after_ms = -1},
     .http = {.reject_every = 5, .reject_kind = PL_RSHTTP_REJECT_OVERLOADED, NO_HTTP_HEADERS},
     .x = ALL_PATHS_DONE, .hits = rejected_hits},
    {.name = "internal error before the first piece",
     .native = {.reject_every = 5, .reject_code = "internal", .retry_after_ms = -1},
     .http = {.reject_every = 5, .reject_kind = PL_RSHTTP_REJECT_INTERNAL, NO_HTTP_HEADERS},
     .x = ALL_PATHS_DONE, .hits = rejected_hits},
    /* After ack the reply is half made: final on every path (docs/errors.md). */
    {.name = "error mid-stream, after 3 pieces",
     .native = {.error_every = 7, .error_after_pieces = HIT_AFTER, .retry_after_ms = -1},
     .http = {.error_every = 7, .error_after_pieces = HIT_AFTER, NO_HTTP_HEADERS},
     .x = {{.code = PARLEY_ERR_SERVER_INTERNAL, .exact_pieces = HIT_AFTER,
            .exactly_the_hits = true},
           {.code = PARLEY_ERR_OVERLOADED, .exact_pieces = HIT_AFTER, .exactly_the_hits = true},
           {.code = PARLEY_ERR_SERVER_INTERNAL, .exact_pieces = HIT_AFTER,
            .exactly_the_hits = true}},
     .hits = stream_error_hits},
    /* Every 7th request's connection, before its first piece: nothing was
     * delivered, retried everywhere. */
    {.name = "connection dropped before the first piece",
     .native = {.drop_every = 7, .drop_after_pieces = 0, .retry_after_ms = -1},
     .http = {.drop_every = 7, .drop_after_pieces = 0, NO_HTTP_HEADERS},
     .x = ALL_PATHS_DONE, .hits = drop_hits},
    /* Every 7th request's connection (on WebSocket with the other requests
     * on it). Native resumes from the pieces delivered; the HTTP APIs
     * cannot. */
    {.name = "connection dropped after 3 pieces",
     .native = {.drop_every = 7, .drop_after_pieces = HIT_AFTER, .retry_after_ms = -1},
     .http = {.drop_every = 7, .drop_after_pieces = HIT_AFTER, NO_HTTP_HEADERS},
     .x = {ALL_DONE,
           {.code = PARLEY_ERR_CONNECTION_LOST, .exact_pieces = HIT_AFTER,
            .exactly_the_hits = true},
           {.code = PARLEY_ERR_CONNECTION_LOST, .exact_pieces = HIT_AFTER,
            .exactly_the_hits = true}},
     .hits = drop_hits},
    /* A restarted server forgot the replies under way: the native ones that
     * had pieces cannot be resumed; HTTP ones that had pieces cannot either. */
    {.name = "server restarts (3, during the load)",
     .native = {.retry_after_ms = -1}, .http = {NO_HTTP_HEADERS}, .restarts = 3,
     .x = {{.code = PARLEY_ERR_RESUME_FAILED, .after_pieces = true},
           {.code = PARLEY_ERR_CONNECTION_LOST, .after_pieces = true},
           {.code = PARLEY_ERR_CONNECTION_LOST, .after_pieces = true}},
     .hits = restart_hits},
    /* Native: acked, then nothing for that request (the connection lives);
     * HTTP: headers, then nothing, before any piece. */
    {.name = "request stalled before its first piece",
     .native = {.stall_every = 10, .retry_after_ms = -1},
     .http = {.stall_every = 10, .stall_after_pieces = 0, NO_HTTP_HEADERS},
     .x = ALL_PATHS_DONE, .hits = stall_hits},
    /* Native: the connection goes silent (nothing sent, Pings unanswered),
     * the case: everything on it must be resumed on a fresh one.
     * HTTP/1.1: a stream stalled after 3 pieces is its connection; the APIs
     * cannot resume, so exactly those fail, as timed out. */
    {.name = "connection stalled (silent, pings unanswered)",
     .native = {.stall_connection_every = CONNECTION_STALL_EVERY, .retry_after_ms = -1},
     /* Each silenced connection costs its requests stall.timeout.ms and the
      * Ping's bound (a few seconds), and a resumed request can meet a
      * second and third silenced connection. */
     .deadline_ms = 30000,
     .http = {.stall_every = 10, .stall_after_pieces = HIT_AFTER, NO_HTTP_HEADERS},
     .x = {ALL_DONE,
           {.code = PARLEY_ERR_TIMED_OUT, .exact_pieces = HIT_AFTER, .exactly_the_hits = true},
           {.code = PARLEY_ERR_TIMED_OUT, .exact_pieces = HIT_AFTER, .exactly_the_hits = true}},
     .hits = connection_stall_hits},
    {.name = "unknown messages and events",
     .native = {.unknown_every = 3, .retry_after_ms = -1},
     .http = {.unknown_every = 2, NO_HTTP_HEADERS},
     .x = ALL_PATHS_DONE, .hits = unknown_hits},
    {.name = "tiny chunks (1-byte pieces, 3-byte writes)",
     .native = {.fragment_bytes = 3, .retry_after_ms = -1},
     .http = {.write_bytes = 3, NO_HTTP_HEADERS},
     .chunk_bytes = 1, .load_divisor = 2,
     .x = ALL_PATHS_DONE},
};
#define NCELLS (sizeof(cells) / sizeof(cells[0]))

static void describe(const expect *x, char *out, size_t size)
{
    if (x->all_done)
        snprintf(out, size, "all complete");
    else if (x->exact_pieces)
        snprintf(out, size, "the hit ones %s after %d pieces", parley_err2name(x->code),
                 x->exact_pieces);
    else
        snprintf(out, size, "complete, or %s%s", parley_err2name(x->code),
                 x->after_pieces ? " after pieces" : "");
}

static pl_refserver *start_server(unsigned chunk_bytes, cell_result *r)
{
    pl_refserver_opts o;
    pl_refserver_opts_init(&o);
    o.api_key = TEST_KEY;
    o.token_ms = 1; /* replies take a few ms: faults meet requests under way */
    o.chunk_bytes = chunk_bytes;
    o.quiet = 1;
    char err[256];
    pl_refserver *srv = pl_refserver_start(&o, err, sizeof(err));
    if (!srv)
        cell_fail(r, "refserver: %s", err);
    return srv;
}

static void run_fault_cell(const void *arg, enum path p, cell_result *r)
{
    const fault_cell *cell = arg;
    const expect *x = &cell->x[p];
    describe(x, r->expected, sizeof(r->expected));
    pl_refserver *srv = start_server(cell->chunk_bytes ? cell->chunk_bytes : 8, r);
    if (!srv)
        return;
    if (p == NATIVE)
        pl_refserver_set_faults(srv, &cell->native);
    else
        pl_refserver_http_set_faults(pl_refserver_http_of(srv), &cell->http);
    int deadline_ms = cell->deadline_ms ? cell->deadline_ms : DEADLINE_MS;
    char deadline[16];
    snprintf(deadline, sizeof(deadline), "%d", deadline_ms);
    parley_client_t *c = matrix_client(p, pl_refserver_port(srv), 1, r, "request.timeout.ms",
                                       deadline, NULL);
    if (!c)
        return;
    int divisor = cell->load_divisor ? cell->load_divisor : 1;
    load l = {0};
    if (!load_send(c, &l, SESSIONS / divisor, TURNS, r))
        return;
    size_t total = (size_t)r->requests;
    for (int k = 1; k <= cell->restarts; k++) {
        /* Spread over the load, each while replies are under way. */
        recorder_wait_terminals(total * (size_t)k / (size_t)(cell->restarts + 1), 30);
        pl_refserver_restart(srv);
    }
    bool ended = flush_or_hang(c, deadline_ms, 5000, r);
    unsigned failed = load_check(&l, x, r);
    add_client_stats(c, r);
    if (!ended)
        return; /* skip destroy: it could hang as well */
    if (recorder_terminals() != total)
        cell_fail(r, "%zu terminal events for %zu requests", recorder_terminals(), total);
    uint64_t hits = cell->hits ? cell->hits(srv, c, p) : 1;
    if (!hits)
        cell_fail(r, "the fault never struck: the cell tests nothing");
    if (x->exactly_the_hits && failed != hits)
        cell_fail(r, "%u requests failed, the server hit %llu", failed,
                  (unsigned long long)hits);
    parley_client_destroy(c);
    pl_refserver_stop(srv);
    free(l.ids);
}

/* Every fault against every path; every cell runs, then the test fails
 * naming those that did not hold. */
static void test_fault_matrix(void **state)
{
    (void)state;
    char failed[2048] = "";
    for (size_t i = 0; i < NCELLS; i++)
        if (!run_row(run_fault_cell, &cells[i], cells[i].name, CELL_LIMIT_S))
            snprintf(failed + strlen(failed), sizeof(failed) - strlen(failed), "\n  %s",
                     cells[i].name);
    if (failed[0])
        fail_msg("faults whose outcome did not hold on some path:%s", failed);
}

/* ---- a frozen server ------------------------------------------------------ */

#define FREEZE_MS 5000
#define SHORT_DEADLINE_MS 2000
#define FROZEN_SESSIONS 10
#define FROZEN_TURNS 4

/* The parley-refserver program: $PARLEY_REFSERVER, or beside $PARLEY_BIN
 * (set by make check), or at the top of the build tree this program is in
 * (tests/e2e/test_fault_matrix). */
static void refserver_program(char *out, size_t size)
{
    const char *env = getenv("PARLEY_REFSERVER");
    if (env) {
        snprintf(out, size, "%s", env);
        return;
    }
    char self[4096];
    const char *bin = getenv("PARLEY_BIN");
    int up = bin ? 1 : 3; /* parley, or tests/e2e/test_fault_matrix */
    if (bin)
        snprintf(self, sizeof(self), "%s", bin);
    else {
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        self[n > 0 ? n : 0] = '\0';
    }
    while (up--) {
        char *slash = strrchr(self, '/');
        if (slash)
            *slash = '\0';
    }
    snprintf(out, size, "%s/parley-refserver", self);
}

/* Starts parley-refserver; its pid in *pid and port returned, 0 on failure
 * (reason in r). */
static int spawn_refserver(pid_t *pid, cell_result *r)
{
    char prog[4200];
    refserver_program(prog, sizeof(prog));
    int out[2];
    if (pipe(out) != 0) {
        cell_fail(r, "pipe: %s", strerror(errno));
        return 0;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    char *argv[] = {prog, "--port", "0", "--api-key", TEST_KEY, "--token-ms", "20",
                    "--chunk-bytes", "4", "--quiet", NULL};
    int rc = posix_spawn(pid, prog, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    if (rc != 0) {
        close(out[0]);
        cell_fail(r, "cannot run %s: %s", prog, strerror(rc));
        return 0;
    }
    FILE *f = fdopen(out[0], "r");
    char line[128] = "";
    int port = 0;
    if (!f || !fgets(line, sizeof(line), f) ||
        sscanf(line, "listening on 127.0.0.1:%d", &port) != 1) {
        cell_fail(r, "%s did not say where it listens (\"%s\")", prog, line);
        kill(*pid, SIGKILL);
        waitpid(*pid, NULL, 0);
        port = 0;
    }
    if (f)
        fclose(f);
    else
        close(out[0]);
    return port;
}

/*
 * The long-deadline expectation of a freeze or a black hole: native
 * requests all complete (resumed once the server answers again); an HTTP
 * request completes, or, when pieces had arrived, times out (these APIs
 * cannot resume a reply).
 */
static const expect survive[NPATHS] = {
    ALL_DONE,
    {.code = PARLEY_ERR_TIMED_OUT, .after_pieces = true},
    {.code = PARLEY_ERR_TIMED_OUT, .after_pieces = true},
};

/* Requests sent while the server is frozen, due before it thaws: each ends
 * with one TIMED_OUT by its deadline. */
static void check_short_deadline(parley_client_t *c, const load *l, int64_t sent_ms,
                                 cell_result *r)
{
    parley_err_t fe = parley_flush(c, SHORT_DEADLINE_MS + 2000);
    int64_t took = fixture_now_ms() - sent_ms;
    if (fe != PARLEY_OK) {
        cell_fail(r, "[hung] requests of %d ms deadline not ended after %lld ms",
                  SHORT_DEADLINE_MS, (long long)took);
        return;
    }
    if (took < SHORT_DEADLINE_MS - 50) {
        recorder_entry first = recorder_get(l->ids[0]);
        cell_fail(r, "requests of %d ms deadline ended after %lld ms: before it (the first "
                  "with %s: %s)", SHORT_DEADLINE_MS, (long long)took,
                  parley_err2name(first.err), first.err_msg);
    }
    for (int i = 0; i < l->sessions * l->turns; i++) {
        recorder_entry e = recorder_get(l->ids[i]);
        if (e.terminals != 1 || e.terminal != PARLEY_EVENT_ERROR ||
            e.err != PARLEY_ERR_TIMED_OUT) {
            cell_fail(r, "a request of %d ms deadline sent to the frozen server ended "
                      "with %d terminal events, %s: %s", SHORT_DEADLINE_MS, e.terminals,
                      e.terminal == PARLEY_EVENT_DONE ? "DONE" : parley_err2name(e.err),
                      e.err_msg);
            continue;
        }
        r->failed_by[PARLEY_ERR_TIMED_OUT]++;
    }
}

static void run_frozen(const void *arg, enum path p, cell_result *r)
{
    (void)arg;
    snprintf(r->expected, sizeof(r->expected), "long deadline: %s; short: TIMED_OUT",
             p == NATIVE ? "all complete" : "complete, or TIMED_OUT after pieces");
    pid_t pid;
    int port = spawn_refserver(&pid, r);
    if (!port)
        return;
    /* The default attempt budget: a freeze must not spend it. */
    parley_client_t *c = matrix_client(p, port, 1, r, "request.timeout.ms", "30000",
                                       "retry.max.attempts", "3", NULL);
    parley_client_t *quick = matrix_client(p, port, 2, r, "request.timeout.ms", "2000",
                                           "retry.max.attempts", "3", NULL);
    load l = {0}, lq = {0};
    if (c && quick && load_send(c, &l, FROZEN_SESSIONS, FROZEN_TURNS, r)) {
        /* Freeze it with replies under way. */
        recorder_wait_terminals((size_t)FROZEN_SESSIONS, 30);
        int64_t frozen_at = fixture_now_ms();
        kill(pid, SIGSTOP);
        int64_t sent = fixture_now_ms();
        if (load_send(quick, &lq, FROZEN_SESSIONS, 1, r))
            check_short_deadline(quick, &lq, sent, r);
        int64_t left = FREEZE_MS - (fixture_now_ms() - frozen_at);
        if (left > 0) /* the fault's duration, not a wait for a condition */
            usleep((useconds_t)left * 1000);
        kill(pid, SIGCONT);
        if (parley_flush(c, 30000 + 5000) != PARLEY_OK) {
            cell_fail(r, "[hung] %zu terminal events 35 s after the freeze",
                      recorder_terminals());
        }
        load_check(&l, &survive[p], r);
    }
    kill(pid, SIGCONT);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    if (c)
        add_client_stats(c, r);
    if (strstr(r->why, "[hung]"))
        return; /* skip destroy: it could hang as well */
    if (c)
        parley_client_destroy(c);
    if (quick)
        parley_client_destroy(quick);
    free(l.ids);
    free(lq.ids);
}

static void test_frozen_server(void **state)
{
    (void)state;
    assert_true(run_row(run_frozen, NULL, "frozen server (SIGSTOP 5 s)", CELL_LIMIT_S + 30));
}

/* ---- black-holed connections -------------------------------------------- */

static void run_black_hole(const void *arg, enum path p, cell_result *r)
{
    (void)arg;
    snprintf(r->expected, sizeof(r->expected), "%s",
             p == NATIVE ? "all complete" : "complete, or TIMED_OUT after pieces");
    pl_refserver_opts o;
    pl_refserver_opts_init(&o);
    o.api_key = TEST_KEY;
    o.token_ms = 20;
    o.chunk_bytes = 4;
    o.quiet = 1;
    char err[256];
    pl_refserver *srv = pl_refserver_start(&o, err, sizeof(err));
    if (!srv) {
        cell_fail(r, "refserver: %s", err);
        return;
    }
    blackhole_proxy *proxy = blackhole_proxy_start(pl_refserver_port(srv));
    if (!proxy) {
        cell_fail(r, "cannot start the proxy");
        pl_refserver_stop(srv);
        return;
    }
    parley_client_t *c = matrix_client(p, blackhole_proxy_port(proxy), 1, r,
                                       "request.timeout.ms", "30000", "retry.max.attempts",
                                       "3", NULL);
    load l = {0};
    if (c && load_send(c, &l, FROZEN_SESSIONS, FROZEN_TURNS, r)) {
        recorder_wait_terminals((size_t)FROZEN_SESSIONS, 30);
        size_t swallowed = blackhole_proxy_swallow(proxy);
        if (!swallowed)
            cell_fail(r, "no connection to black-hole");
        bool ended = parley_flush(c, 30000 + 5000) == PARLEY_OK;
        if (!ended)
            cell_fail(r, "[hung] %zu terminal events 35 s after the black hole",
                      recorder_terminals());
        load_check(&l, &survive[p], r);
        add_client_stats(c, r);
        if (!ended)
            return; /* skip destroy: it could hang as well */
    }
    if (c)
        parley_client_destroy(c);
    blackhole_proxy_stop(proxy);
    pl_refserver_stop(srv);
    free(l.ids);
}

static void test_black_hole(void **state)
{
    (void)state;
    assert_true(run_row(run_black_hole, NULL, "black-holed connections", CELL_LIMIT_S + 30));
}

/* ---- the table --------------------------------------------------------- */

static void failures_text(const cell_result *r, char *out, size_t size)
{
    out[0] = '\0';
    for (int e = 0; e < PARLEY_ERR__COUNT; e++)
        if (r->failed_by[e])
            snprintf(out + strlen(out), size - strlen(out), "%s%s %u", out[0] ? ", " : "",
                     parley_err2name((parley_err_t)e), r->failed_by[e]);
    if (!out[0])
        snprintf(out, size, "0");
}

/* Markdown, one row per cell, in the order run. */
static int write_table(void **state)
{
    (void)state;
    const char *path = getenv("PARLEY_FAULT_MATRIX_OUT");
    FILE *f = fopen(path ? path : "fault-matrix.md", "w");
    if (!f)
        return 0;
    fprintf(f, "| fault | path | requests | completed | failed, by code | retries | "
               "reconnects | documented outcome | held |\n"
               "|---|---|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < nresults; i++) {
        const cell_result *r = &results[i];
        char failures[256];
        failures_text(r, failures, sizeof(failures));
        fprintf(f, "| %s | %s | %u | %u | %s | %llu | %llu | %s | %s |\n", r->fault,
                r->path, r->requests, r->completed, failures, r->retries, r->reconnects,
                r->expected, r->ok ? "yes" : "**no**");
    }
    fclose(f);
    return 0;
}

int main(void)
{
    setenv("PARLEY_API_KEY", TEST_KEY, 1);
    unsetenv("ANTHROPIC_API_KEY");
    unsetenv("OPENAI_API_KEY");
    setenv("PARLEY_LOG", "error", 0); /* the faults make warnings by design */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fault_matrix),
        cmocka_unit_test(test_frozen_server),
        cmocka_unit_test(test_black_hole),
    };
    return cmocka_run_group_tests(tests, NULL, write_table);
}
