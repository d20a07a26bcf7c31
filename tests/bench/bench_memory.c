/*
 * bench_memory: what sessions cost in memory (make bench).
 *
 *   bench_memory [--sessions N] [--inflight M] [--turn-bytes B] [--latency-ms L]
 *                [--token-ms T] [--connections C] [--workers W] [--endpoint URL]
 *                [--set NAME=VALUE]...
 *
 * One client opens N (100,000) sessions and leaves them idle; then M
 * (10,000) of them send one turn of B (40) bytes each, all at once, to a
 * server that waits L (2,000) ms before the first piece of each reply and T
 * (1,000) ms between its four pieces, so that all M are in flight together
 * when the last first piece arrives; then the replies finish,
 * every session is closed and the client destroyed. Memory is sampled after
 * each step (tests/bench/mem_probe.h says what RSS and heap mean here). The
 * results: a table of the samples, a table of bytes per idle session, per
 * request in flight and per completed turn kept in the history, and one JSON
 * line last.
 *
 * The reference server runs in a forked child, so that only the client is
 * measured; --endpoint uses a running server instead (its latency is then
 * its own, and must leave every request in flight until all have started).
 * --set sets any client property (the dialect, tls.ca.file for an https://
 * endpoint: the HTTP path's cost per request in flight, issue 16).
 * The API key is $PARLEY_API_KEY, or "bench" when unset.
 *
 * Before the first sample the client is started and one request per
 * connection has completed, so that the connections, the threads and their
 * malloc arenas exist: what follows is the cost of sessions and requests,
 * not of the client.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_server.h"
#include "client.h"
#include "cpu_model.h"
#include "mem_probe.h"
#include "parley.h"
#include "session.h"
#include "session_table.h"

/* The target of issue 7: bytes of RSS per idle session, history aside. */
#define IDLE_TARGET_BYTES 2048
/* The text the in-flight turns repeat (40 bytes by default). */
#define TURN_TEXT "what does an idle session cost in memory"
/* The forked server cuts each reply ("[turn 1] " and the turn) into this
 * many pieces, so that a request is still in flight, with pieces to come,
 * when its first piece arrives, and ends soon after without making the
 * server schedule a timer per piece of a long reply. */
#define REPLY_PIECES 4
#define REPLY_PREFIX_BYTES 9
/* The warm-up turn: a reply of one piece. */
#define WARMUP_TURN "w"
#define WAIT_MARGIN_MS 60000

struct options {
    size_t sessions, inflight, turn_bytes;
    unsigned latency_ms, token_ms;
    const char *connections; /* NULL: the client's default */
    const char *workers;     /* NULL: the client's default */
    const char *endpoint;    /* NULL: a forked reference server */
    const char *sets[16];    /* --set NAME=VALUE, applied last */
    size_t nsets;
};

/* What the event callback has seen; it runs on the worker threads. */
struct tally {
    _Atomic size_t first_pieces; /* TEXT events with seq 0 */
    _Atomic size_t done;
    _Atomic size_t failed;
    _Atomic bool error_shown;
};

enum phase {
    P_READY,     /* client started, connections open, warm-up sessions gone */
    P_OPEN,      /* N idle sessions */
    P_SENT,      /* M sends returned */
    P_INFLIGHT,  /* each of the M has its first piece, none is done */
    P_REPLIED,   /* all M replies done; their turns are in the history */
    P_CLOSED,    /* every session closed and freed */
    P_TRIMMED,   /* malloc_trim(0) gave free memory back */
    P_DESTROYED, /* the client destroyed */
    P_COUNT
};

static const char *const phase_names[P_COUNT] = {
    "client ready (connections up)", "sessions open, idle", "turns sent",
    "turns in flight (first piece)", "replies done (history kept)",
    "sessions closed", "after malloc_trim(0)", "client destroyed",
};

/* ---- helpers ------------------------------------------------------------ */

static void die(const char *what)
{
    fprintf(stderr, "bench_memory: %s\n", what);
    exit(1);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void on_event(parley_client_t *client, const parley_event_t *ev, void *opaque)
{
    (void)client;
    struct tally *t = opaque;
    switch (parley_event_type(ev)) {
    case PARLEY_EVENT_TEXT:
        if (parley_event_seq(ev) == 0)
            atomic_fetch_add(&t->first_pieces, 1);
        break;
    case PARLEY_EVENT_DONE:
        atomic_fetch_add(&t->done, 1);
        break;
    case PARLEY_EVENT_ERROR:
        atomic_fetch_add(&t->failed, 1);
        if (!atomic_exchange(&t->error_shown, true))
            fprintf(stderr, "bench_memory: a request failed: %s\n",
                    parley_event_content(ev, NULL));
        break;
    default: /* thinking and tool calls: not ours to show */
        break;
    }
}

static void set_or_die(parley_conf_t *conf, const char *name, const char *value)
{
    char err[256];
    if (parley_conf_set(conf, name, value, err, sizeof(err)) != PARLEY_OK)
        die(err);
}

static long conf_number(const parley_conf_t *conf, const char *name)
{
    char text[64];
    size_t size = sizeof(text);
    if (parley_conf_get(conf, name, text, &size) != PARLEY_OK)
        die("parley_conf_get failed");
    return strtol(text, NULL, 10);
}

/* The connections the client will open: the property, or the sizing rule. */
static unsigned connections_of(const parley_conf_t *conf)
{
    long n = conf_number(conf, "connections");
    if (n > 0)
        return (unsigned)n;
    char qps[64];
    size_t size = sizeof(qps);
    parley_conf_get(conf, "sizing.qps", qps, &size);
    return parley_connections_for(strtod(qps, NULL),
                                  (double)conf_number(conf, "sizing.response.ms") / 1000,
                                  (unsigned)conf_number(conf, "sizing.inflight.per.connection"));
}

/* Whether any session of the client is still alive: closing is
 * asynchronous, and a session's end is the last thing its finalizer counts. */
static bool sessions_alive(parley_client_t *c)
{
    return atomic_load(&c->sessions_open) != 0;
}

static void wait_sessions_freed(parley_client_t *c)
{
    double give_up = now_ms() + WAIT_MARGIN_MS;
    while (sessions_alive(c)) {
        if (now_ms() > give_up)
            die("closed sessions were not freed within a minute");
        sleep_ms(1);
    }
}

/* Wait until `count` reaches `want` or every remaining request failed. */
static void wait_count(const struct tally *t, _Atomic size_t *count, size_t want,
                       double give_up_ms, const char *what)
{
    while (atomic_load(count) + atomic_load(&t->failed) < want) {
        if (now_ms() > give_up_ms) {
            fprintf(stderr, "bench_memory: waited too long for %s (%zu of %zu)\n", what,
                    atomic_load(count), want);
            exit(1);
        }
        sleep_ms(1);
    }
}

static void print_machine(void)
{
    char model[256];
    bench_cpu_model(model, sizeof(model));
    printf("machine: %ld CPUs online, %s; parley %s\n", sysconf(_SC_NPROCESSORS_ONLN),
           model, parley_version_str());
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    printf("WARNING: built with a sanitizer: memory figures are meaningless, use "
           "build/plain\n");
#endif
}

/* TURN_TEXT repeated to `bytes` bytes. */
static char *make_turn(size_t bytes)
{
    char *turn = malloc(bytes + 1);
    if (!turn)
        die("out of memory");
    for (size_t i = 0; i < bytes; i++)
        turn[i] = TURN_TEXT[i % (sizeof(TURN_TEXT) - 1)];
    turn[bytes] = '\0';
    return turn;
}

/* ---- the run ------------------------------------------------------------ */

struct run {
    struct options opt;
    unsigned connections, workers;
    mem_sample at[P_COUNT];
    long peak_kib;    /* VmHWM over the in-flight phase */
    bool peak_reset;  /* false: VmHWM is the lifetime peak */
    double open_ms, send_ms, close_ms;
    size_t done_at_peak, failed;
    size_t session_size, session_chunk, session_id_len;
};

static parley_client_t *make_client(struct run *run, const char *endpoint,
                                    struct tally *tally)
{
    parley_conf_t *conf = parley_conf_new();
    set_or_die(conf, "endpoint", endpoint);
    if (run->opt.connections)
        set_or_die(conf, "connections", run->opt.connections);
    if (run->opt.workers)
        set_or_die(conf, "workers", run->opt.workers);
    for (size_t i = 0; i < run->opt.nsets; i++) {
        const char *set = run->opt.sets[i], *eq = strchr(set, '=');
        char name[128];
        if (!eq || (size_t)(eq - set) >= sizeof(name))
            die("--set needs NAME=VALUE");
        memcpy(name, set, (size_t)(eq - set));
        name[eq - set] = '\0';
        set_or_die(conf, name, eq + 1);
    }
    parley_conf_set_event_cb(conf, on_event, tally);
    run->connections = connections_of(conf);
    long workers = conf_number(conf, "workers");
    run->workers = workers > 0 ? (unsigned)workers : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
    char err[512];
    parley_client_t *c = parley_client_new(conf, err, sizeof(err));
    if (!c)
        die(err);
    if (parley_start(c) != PARLEY_OK)
        die("parley_start failed");
    return c;
}

/* One request per connection, at once, so that each is opened. */
static void warm_up(parley_client_t *c, unsigned connections)
{
    parley_session_t **s = calloc(connections, sizeof(*s));
    if (!s)
        die("out of memory");
    for (unsigned i = 0; i < connections; i++) {
        s[i] = parley_session_open(c, NULL, NULL, 0);
        if (!s[i] || parley_send(s[i], WARMUP_TURN, NULL) != PARLEY_OK)
            die("the warm-up request could not be sent");
    }
    if (parley_flush(c, WAIT_MARGIN_MS) != PARLEY_OK)
        die("the warm-up request did not finish within a minute");
    for (unsigned i = 0; i < connections; i++)
        parley_session_close(s[i]);
    free(s);
    wait_sessions_freed(c);
}

static void run_bench(struct run *run, const char *endpoint)
{
    const struct options *o = &run->opt;
    struct tally tally = {0};
    /* The benchmark's own memory, allocated and touched before the first
     * sample so that it is not counted as the sessions'. */
    parley_session_t **sessions = calloc(o->sessions, sizeof(*sessions));
    if (!sessions)
        die("out of memory");
    memset(sessions, 0, o->sessions * sizeof(*sessions));
    char *turn = make_turn(o->turn_bytes);

    parley_client_t *c = make_client(run, endpoint, &tally);
    warm_up(c, run->connections);
    if (atomic_load(&tally.failed))
        die("the warm-up request failed");
    atomic_store(&tally.first_pieces, 0);
    atomic_store(&tally.done, 0);
    mem_sample_take(&run->at[P_READY]);

    double t0 = now_ms();
    for (size_t i = 0; i < o->sessions; i++) {
        char err[128];
        sessions[i] = parley_session_open(c, NULL, err, sizeof(err));
        if (!sessions[i])
            die(err);
    }
    run->open_ms = now_ms() - t0;
    mem_sample_take(&run->at[P_OPEN]);
    run->session_size = sizeof(pl_session);
    run->session_id_len = strlen(parley_session_id(sessions[0]));
    /* A handle is not a pointer (session_table.h): the session behind it.
     * A glibc chunk is its usable size plus one 8-byte size field. */
    pl_session *first = pl_session_table_ref(sessions[0]);
    run->session_chunk = malloc_usable_size(first) + sizeof(size_t);
    pl_session_unref(first);

    run->peak_reset = mem_peak_reset() == 0;
    t0 = now_ms();
    for (size_t i = 0; i < o->inflight; i++)
        if (parley_send(sessions[i], turn, NULL) != PARLEY_OK)
            die("a send was refused");
    run->send_ms = now_ms() - t0;
    mem_sample_take(&run->at[P_SENT]);

    double give_up = now_ms() + o->latency_ms + WAIT_MARGIN_MS;
    wait_count(&tally, &tally.first_pieces, o->inflight, give_up, "first pieces");
    mem_sample_take(&run->at[P_INFLIGHT]);
    run->done_at_peak = atomic_load(&tally.done) + atomic_load(&tally.failed);

    if (parley_flush(c, o->latency_ms + 3 * o->token_ms + WAIT_MARGIN_MS) != PARLEY_OK)
        die("the replies did not finish in time");
    mem_sample_take(&run->at[P_REPLIED]);
    run->peak_kib = run->at[P_REPLIED].hwm_kib;
    run->failed = atomic_load(&tally.failed);

    t0 = now_ms();
    for (size_t i = 0; i < o->sessions; i++)
        parley_session_close(sessions[i]);
    wait_sessions_freed(c);
    run->close_ms = now_ms() - t0;
    mem_sample_take(&run->at[P_CLOSED]);
    malloc_trim(0);
    mem_sample_take(&run->at[P_TRIMMED]);

    parley_client_destroy(c);
    mem_sample_take(&run->at[P_DESTROYED]);
    free(sessions);
    free(turn);
}

/* ---- the report --------------------------------------------------------- */

/* Bytes per unit between two samples. */
static double rss_per(const mem_sample *from, const mem_sample *to, size_t units)
{
    return units ? (double)(to->rss_kib - from->rss_kib) * 1024 / (double)units : 0;
}

static double heap_per(const mem_sample *from, const mem_sample *to, size_t units)
{
    return units ? ((double)to->heap_in_use - (double)from->heap_in_use) / (double)units : 0;
}

static void report(const struct run *run)
{
    const struct options *o = &run->opt;
    const mem_sample *at = run->at;
    printf("bench_memory: %zu idle sessions, %zu of them with a turn of %zu bytes in "
           "flight; server latency %u ms, %u ms between pieces; %u connection%s, %u "
           "worker%s\n",
           o->sessions, o->inflight, o->turn_bytes, o->latency_ms, o->token_ms, run->connections,
           run->connections == 1 ? "" : "s", run->workers, run->workers == 1 ? "" : "s");
    print_machine();
    printf("RSS: /proc/self/status (VmRSS, RssAnon); heap: mallinfo2() bytes in use over "
           "every malloc arena, chunk headers included\n\n");

    printf("| phase                          |  RSS KiB | anon KiB |  heap KiB | "
           "malloc held KiB | arenas |\n");
    printf("|--------------------------------|---------:|---------:|----------:|"
           "----------------:|-------:|\n");
    for (int p = 0; p < P_COUNT; p++)
        printf("| %-30s | %8ld | %8ld | %9zu | %15zu | %6d |\n", phase_names[p],
               at[p].rss_kib, at[p].anon_kib, at[p].heap_in_use / 1024,
               at[p].heap_held / 1024, at[p].arenas);
    printf("| %-30s | %8ld |          |           |                 |        |\n",
           "peak while in flight (VmHWM)", run->peak_kib);

    double idle_rss = rss_per(&at[P_READY], &at[P_OPEN], o->sessions);
    double idle_heap = heap_per(&at[P_READY], &at[P_OPEN], o->sessions);
    double fly_rss = rss_per(&at[P_OPEN], &at[P_INFLIGHT], o->inflight);
    double fly_heap = heap_per(&at[P_OPEN], &at[P_INFLIGHT], o->inflight);
    double peak_rss = o->inflight ? (double)(run->peak_kib - at[P_OPEN].rss_kib) * 1024 /
                                        (double)o->inflight
                                  : 0;
    double turn_rss = rss_per(&at[P_OPEN], &at[P_REPLIED], o->inflight);
    double turn_heap = heap_per(&at[P_OPEN], &at[P_REPLIED], o->inflight);
    double left_rss = rss_per(&at[P_READY], &at[P_CLOSED], o->sessions);
    double left_heap = heap_per(&at[P_READY], &at[P_CLOSED], o->sessions);
    double trim_rss = rss_per(&at[P_READY], &at[P_TRIMMED], o->sessions);

    printf("\n| per unit                                    | RSS bytes | heap bytes |\n");
    printf("|---------------------------------------------|----------:|-----------:|\n");
    printf("| idle session                                | %9.0f | %10.0f |\n", idle_rss,
           idle_heap);
    printf("| request in flight (at the first pieces)     | %9.0f | %10.0f |\n", fly_rss,
           fly_heap);
    printf("| request in flight (at the RSS peak)         | %9.0f |            |\n",
           peak_rss);
    printf("| completed turn kept in the history          | %9.0f | %10.0f |\n", turn_rss,
           turn_heap);
    printf("| left per session after closing all          | %9.0f | %10.0f |\n", left_rss,
           left_heap);
    printf("| left per session after malloc_trim(0)       | %9.0f |            |\n",
           trim_rss);

    printf("\nRSS only falls when malloc gives pages back: after the replies and the "
           "closes it still holds most of the high point, so there the heap column is the "
           "cost and the RSS column what the process keeps.\n");
    printf("idle session target: at most %d bytes of RSS: %s (%.0f)\n", IDLE_TARGET_BYTES,
           idle_rss <= IDLE_TARGET_BYTES ? "met" : "MISSED", idle_rss);
    printf("sizeof(struct parley_session): %zu bytes; a session with a %zu-byte id takes "
           "a %zu-byte malloc chunk\n",
           run->session_size, run->session_id_len, run->session_chunk);
    printf("opening took %.0f ns per session, closing %.0f ns; the %zu sends %.1f ms\n",
           o->sessions ? run->open_ms * 1e6 / (double)o->sessions : 0,
           o->sessions ? run->close_ms * 1e6 / (double)o->sessions : 0, o->inflight,
           run->send_ms);
    if (!run->peak_reset)
        printf("WARNING: VmHWM could not be reset: the peak is the whole run's\n");
    if (run->done_at_peak)
        printf("WARNING: %zu requests had already ended at the in-flight sample: raise "
               "--token-ms\n", run->done_at_peak);
    if (run->failed)
        printf("WARNING: %zu requests failed\n", run->failed);

    printf("{\"bench\":\"memory\",\"sessions\":%zu,\"inflight\":%zu,\"turn_bytes\":%zu,"
           "\"latency_ms\":%u,"
           "\"token_ms\":%u,\"connections\":%u,\"workers\":%u,"
           "\"idle_rss_bytes_per_session\":%.0f,\"idle_heap_bytes_per_session\":%.0f,"
           "\"inflight_rss_bytes_per_request\":%.0f,\"inflight_heap_bytes_per_request\":%.0f,"
           "\"peak_rss_bytes_per_request\":%.0f,"
           "\"history_rss_bytes_per_turn\":%.0f,\"history_heap_bytes_per_turn\":%.0f,"
           "\"closed_rss_bytes_per_session\":%.0f,\"closed_heap_bytes_per_session\":%.0f,"
           "\"trimmed_rss_bytes_per_session\":%.0f,"
           "\"session_struct_bytes\":%zu,\"session_chunk_bytes\":%zu,"
           "\"ready_rss_kib\":%ld,\"open_rss_kib\":%ld,\"inflight_rss_kib\":%ld,"
           "\"peak_rss_kib\":%ld,\"destroyed_rss_kib\":%ld,"
           "\"done_at_inflight_sample\":%zu,\"failed\":%zu,\"target_met\":%s}\n",
           o->sessions, o->inflight, o->turn_bytes, o->latency_ms, o->token_ms,
           run->connections, run->workers, idle_rss, idle_heap, fly_rss, fly_heap, peak_rss, turn_rss,
           turn_heap, left_rss, left_heap, trim_rss, run->session_size,
           run->session_chunk, at[P_READY].rss_kib, at[P_OPEN].rss_kib,
           at[P_INFLIGHT].rss_kib, run->peak_kib, at[P_DESTROYED].rss_kib,
           run->done_at_peak, run->failed,
           idle_rss <= IDLE_TARGET_BYTES ? "true" : "false");
}

/* ---- main --------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: bench_memory [--sessions N] [--inflight M] [--turn-bytes B] "
                    "[--latency-ms L] [--token-ms T] [--connections C] [--workers W] "
                    "[--endpoint URL] [--set NAME=VALUE]...\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct run run = {.opt = {.sessions = 100000, .inflight = 10000,
                              .turn_bytes = sizeof(TURN_TEXT) - 1, .latency_ms = 2000, .token_ms = 1000}};
    struct options *o = &run.opt;
    for (int a = 1; a < argc; a++) {
        const char *value = a + 1 < argc ? argv[a + 1] : NULL;
        if (!value)
            usage();
        if (!strcmp(argv[a], "--sessions"))
            o->sessions = strtoul(value, NULL, 10);
        else if (!strcmp(argv[a], "--inflight"))
            o->inflight = strtoul(value, NULL, 10);
        else if (!strcmp(argv[a], "--turn-bytes"))
            o->turn_bytes = strtoul(value, NULL, 10);
        else if (!strcmp(argv[a], "--latency-ms"))
            o->latency_ms = (unsigned)strtoul(value, NULL, 10);
        else if (!strcmp(argv[a], "--token-ms"))
            o->token_ms = (unsigned)strtoul(value, NULL, 10);
        else if (!strcmp(argv[a], "--connections"))
            o->connections = value;
        else if (!strcmp(argv[a], "--workers"))
            o->workers = value;
        else if (!strcmp(argv[a], "--endpoint"))
            o->endpoint = value;
        else if (!strcmp(argv[a], "--set") && o->nsets < sizeof(o->sets) / sizeof(o->sets[0]))
            o->sets[o->nsets++] = value;
        else
            usage();
        a++;
    }
    if (o->sessions == 0 || o->inflight > o->sessions)
        die("--sessions must be at least 1 and at least --inflight");
    if (o->turn_bytes == 0)
        die("--turn-bytes must be at least 1");

    if (!getenv("PARLEY_API_KEY"))
        setenv("PARLEY_API_KEY", "bench", 1);
    bench_server server = {.stop_fd = -1};
    char local[64];
    const char *endpoint = o->endpoint;
    if (!endpoint) {
        char err[256];
        size_t reply = REPLY_PREFIX_BYTES + o->turn_bytes;
        size_t chunk = (reply + REPLY_PIECES - 1) / REPLY_PIECES;
        pl_refserver_opts so;
        pl_refserver_opts_init(&so);
        so.api_key = getenv("PARLEY_API_KEY");
        so.latency_ms = o->latency_ms;
        so.token_ms = o->token_ms;
        so.chunk_bytes = chunk < 16 ? 16 : (unsigned)chunk;
        so.quiet = 1;
        if (bench_server_fork(&server, &so, err, sizeof(err)) != 0)
            die(err);
        snprintf(local, sizeof(local), "ws://127.0.0.1:%d/v1/stream", server.port);
        endpoint = local;
    }
    run_bench(&run, endpoint);
    bench_server_stop(&server);
    report(&run);
    return 0;
}
