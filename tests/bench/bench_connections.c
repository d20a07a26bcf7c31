/*
 * bench_connections: how many requests in flight one WebSocket connection
 * carries before latency suffers (make bench).
 *
 *   bench_connections [--inflight M] [--latency-ms L] [--connections LIST]
 *                     [--seconds S] [--warmup-seconds W]
 *
 * For each connection count in LIST (1,2,4,8,16,32) a new client keeps M
 * (10,000) requests in flight against the reference server, which answers
 * each after L (200) ms: M slots each send a one-turn session, the first
 * turns spread over L, and each DONE closes its session and sends the
 * slot's next turn on a new one (one turn per session keeps the frames the
 * same size all along). After the first turns and W (1) seconds of
 * ramp-up, the requests sent during the next S (3) seconds are
 * measured from parley_send() to their DONE, the stragglers included. The
 * table gives, per connection count, the requests in flight per connection,
 * the throughput, latency percentiles and the CPU the client and the server
 * used; one JSON line last.
 *
 * The floor is L: a latency well above it means requests queued somewhere.
 * With M in flight and latency T, throughput is M / T (Little's law), so a
 * machine that cannot carry M / L requests per second shows a latency of
 * M / its throughput whatever the connection count; look at the CPU columns
 * before blaming the connections. The reference server runs in a forked
 * child (one thread); the sizing rule's answer for this load is printed
 * with the table.
 */
#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_server.h"
#include "parley.h"

#define MAX_CONFIGS 32
#define TURN "how long did this take"
#define DRAIN_TIMEOUT_MS 120000
/* The in-flight per connection that the sizing rule assumes by default
 * (sizing.inflight.per.connection). */
#define SIZING_DEFAULT_PER_CONNECTION 500

struct options {
    unsigned inflight, latency_ms;
    unsigned connections[MAX_CONFIGS];
    unsigned nconfigs;
    double seconds, warmup_seconds;
};

/* One slot keeps one request in flight, session after session. Its fields
 * are written by whichever thread sends its next turn. */
struct slot {
    _Atomic int64_t sent_ns;
    _Atomic bool measured; /* sent inside the measured window */
    _Atomic unsigned generation;
};

/* The loop's shared state; the event callback runs on the worker threads. */
struct loop {
    parley_client_t *client;
    struct slot *slots;
    _Atomic bool measuring; /* sends now are measured */
    _Atomic bool stopping;  /* DONE no longer sends the next turn */
    _Atomic int64_t window_start_ns, window_end_ns;
    _Atomic size_t done_in_window;
    double *latency_ms;     /* the measured requests' latencies */
    size_t latency_cap;
    _Atomic size_t nlatency;
    _Atomic size_t failed, refused, lost_latencies;
    _Atomic bool error_shown;
};

struct result {
    unsigned connections;
    double throughput, p50, p90, p99, max;
    size_t measured, failed, refused;
    /* CPUs busy over the measured window: the process, its busiest thread */
    double client_cpu, client_thread, server_cpu, server_thread;
};

/* ---- helpers ------------------------------------------------------------ */

static void die(const char *what)
{
    fprintf(stderr, "bench_connections: %s\n", what);
    exit(1);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_s(double seconds)
{
    struct timespec ts = {(time_t)seconds,
                          (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* utime + stime, in seconds, from a /proc/.../stat file, or -1. */
static double stat_cpu_s(const char *path)
{
    char text[1024];
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    /* The command name may hold spaces: count fields after its ')'. */
    const char *p = strrchr(text, ')');
    unsigned long long utime = 0, stime = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                     &utime, &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* The CPU time of a process and of each of its threads at one moment, to
 * tell a busy process from one busy thread (the I/O thread, the server's
 * one thread) that holds everything up. */
#define MAX_THREADS 64
struct cpu_times {
    double process_s;
    unsigned nthreads;
    struct {
        long tid;
        double cpu_s;
    } thread[MAX_THREADS];
};

static void cpu_times_take(pid_t pid, struct cpu_times *t)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    t->process_s = stat_cpu_s(path);
    t->nthreads = 0;
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *dir = opendir(path);
    struct dirent *e;
    while (dir && (e = readdir(dir)) && t->nthreads < MAX_THREADS) {
        if (e->d_name[0] == '.')
            continue;
        char file[320];
        snprintf(file, sizeof(file), "/proc/%d/task/%s/stat", (int)pid, e->d_name);
        t->thread[t->nthreads].tid = strtol(e->d_name, NULL, 10);
        t->thread[t->nthreads++].cpu_s = stat_cpu_s(file);
    }
    if (dir)
        closedir(dir);
}

/* CPUs the process kept busy between two samples, and its busiest thread. */
static void cpu_busy(const struct cpu_times *from, const struct cpu_times *to,
                     double wall_s, double *process, double *busiest)
{
    *process = (to->process_s - from->process_s) / wall_s;
    *busiest = 0;
    for (unsigned i = 0; i < to->nthreads; i++)
        for (unsigned j = 0; j < from->nthreads; j++)
            if (from->thread[j].tid == to->thread[i].tid) {
                double busy = (to->thread[i].cpu_s - from->thread[j].cpu_s) / wall_s;
                if (busy > *busiest)
                    *busiest = busy;
            }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The value below which share (0..1) of the sorted values lie. */
static double percentile(const double *sorted, size_t n, double share)
{
    if (!n)
        return 0;
    size_t i = (size_t)(share * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

/* ---- the loop ----------------------------------------------------------- */

/* Send the slot's next turn on a new session, named after the slot so that
 * its events find the slot again. */
static void send_turn(struct loop *lp, unsigned slot)
{
    struct slot *s = &lp->slots[slot];
    char id[48];
    snprintf(id, sizeof(id), "slot-%u.%u", slot, atomic_fetch_add(&s->generation, 1));
    parley_session_t *session = parley_session_open(lp->client, id, NULL, 0);
    if (!session)
        die("a session could not be opened");
    atomic_store(&s->measured, atomic_load(&lp->measuring));
    atomic_store(&s->sent_ns, now_ns());
    if (parley_send(session, TURN, NULL) != PARLEY_OK) {
        atomic_fetch_add(&lp->refused, 1);
        parley_session_close(session);
    }
}

static unsigned slot_of(const char *session_id)
{
    return (unsigned)strtoul(session_id + strlen("slot-"), NULL, 10);
}

static void on_event(parley_client_t *client, const parley_event_t *ev, void *opaque)
{
    (void)client;
    struct loop *lp = opaque;
    parley_event_type_t type = parley_event_type(ev);
    if (type == PARLEY_EVENT_TEXT)
        return;
    int64_t now = now_ns();
    unsigned slot = slot_of(parley_event_session_id(ev));
    struct slot *s = &lp->slots[slot];
    if (type == PARLEY_EVENT_ERROR) {
        atomic_fetch_add(&lp->failed, 1);
        if (!atomic_exchange(&lp->error_shown, true))
            fprintf(stderr, "bench_connections: a request failed: %s\n",
                    parley_event_content(ev, NULL));
    } else if (atomic_load(&s->measured)) {
        size_t i = atomic_fetch_add(&lp->nlatency, 1);
        if (i < lp->latency_cap)
            lp->latency_ms[i] = (double)(now - atomic_load(&s->sent_ns)) / 1e6;
        else
            atomic_fetch_add(&lp->lost_latencies, 1);
    }
    if (now >= atomic_load(&lp->window_start_ns) && now < atomic_load(&lp->window_end_ns))
        atomic_fetch_add(&lp->done_in_window, 1);
    parley_session_close(parley_event_session(ev));
    if (!atomic_load(&lp->stopping))
        send_turn(lp, slot);
}

static parley_client_t *make_client(const char *endpoint, unsigned connections,
                                    struct loop *lp)
{
    parley_conf_t *conf = parley_conf_new();
    char value[32], err[512];
    snprintf(value, sizeof(value), "%u", connections);
    if (parley_conf_set(conf, "endpoint", endpoint, err, sizeof(err)) != PARLEY_OK ||
        parley_conf_set(conf, "connections", value, err, sizeof(err)) != PARLEY_OK)
        die(err);
    parley_conf_set_event_cb(conf, on_event, lp);
    parley_client_t *c = parley_client_new(conf, err, sizeof(err));
    if (!c)
        die(err);
    if (parley_start(c) != PARLEY_OK)
        die("parley_start failed");
    return c;
}

static void run_config(const struct options *o, const char *endpoint, pid_t server_pid,
                       unsigned connections, struct loop *lp, struct result *res)
{
    memset(lp->slots, 0, o->inflight * sizeof(*lp->slots));
    atomic_store(&lp->measuring, false);
    atomic_store(&lp->stopping, false);
    atomic_store(&lp->window_start_ns, INT64_MAX);
    atomic_store(&lp->window_end_ns, INT64_MAX);
    atomic_store(&lp->done_in_window, 0);
    atomic_store(&lp->nlatency, 0);
    atomic_store(&lp->failed, 0);
    atomic_store(&lp->refused, 0);
    atomic_store(&lp->lost_latencies, 0);
    lp->client = make_client(endpoint, connections, lp);

    /* The first turns are spread over one server latency: sent all at once
     * they would stay in step, and the load would come in waves with idle
     * gaps between them instead of a steady M in flight. */
    int64_t t0 = now_ns();
    for (unsigned i = 0; i < o->inflight; i++) {
        int64_t due = t0 + (int64_t)o->latency_ms * 1000000 * i / o->inflight;
        int64_t wait = due - now_ns();
        if (wait > 0)
            sleep_s((double)wait / 1e9);
        send_turn(lp, i);
    }
    sleep_s(o->warmup_seconds);

    struct cpu_times client0, server0, client1, server1;
    cpu_times_take(getpid(), &client0);
    cpu_times_take(server_pid, &server0);
    int64_t start = now_ns();
    atomic_store(&lp->window_start_ns, start);
    atomic_store(&lp->window_end_ns, start + (int64_t)(o->seconds * 1e9));
    atomic_store(&lp->measuring, true);
    sleep_s(o->seconds);
    atomic_store(&lp->measuring, false);
    atomic_store(&lp->stopping, true);
    double wall = (double)(now_ns() - start) / 1e9;
    cpu_times_take(getpid(), &client1);
    cpu_times_take(server_pid, &server1);
    cpu_busy(&client0, &client1, wall, &res->client_cpu, &res->client_thread);
    cpu_busy(&server0, &server1, wall, &res->server_cpu, &res->server_thread);

    if (parley_flush(lp->client, DRAIN_TIMEOUT_MS) != PARLEY_OK)
        die("the requests in flight did not finish in time");
    parley_client_destroy(lp->client);
    lp->client = NULL;

    size_t n = atomic_load(&lp->nlatency);
    if (n > lp->latency_cap)
        n = lp->latency_cap;
    qsort(lp->latency_ms, n, sizeof(double), cmp_double);
    res->connections = connections;
    res->measured = n;
    res->throughput = (double)atomic_load(&lp->done_in_window) / o->seconds;
    res->p50 = percentile(lp->latency_ms, n, 0.50);
    res->p90 = percentile(lp->latency_ms, n, 0.90);
    res->p99 = percentile(lp->latency_ms, n, 0.99);
    res->max = n ? lp->latency_ms[n - 1] : 0;
    res->failed = atomic_load(&lp->failed);
    res->refused = atomic_load(&lp->refused);
    if (atomic_load(&lp->lost_latencies))
        fprintf(stderr, "bench_connections: %zu latencies did not fit the array\n",
                atomic_load(&lp->lost_latencies));
}

/* ---- the report --------------------------------------------------------- */

static void report(const struct options *o, const struct result *res)
{
    unsigned rule = parley_connections_for((double)o->inflight * 1000 / o->latency_ms,
                                           (double)o->latency_ms / 1000,
                                           SIZING_DEFAULT_PER_CONNECTION);
    printf("bench_connections: %u requests kept in flight, server latency %u ms, "
           "%.1f s measured after %.1f s of ramp-up; %ld CPUs\n",
           o->inflight, o->latency_ms, o->seconds, o->warmup_seconds,
           sysconf(_SC_NPROCESSORS_ONLN));
    printf("sizing rule for this load (qps %.0f, %u ms, %d per connection): %u "
           "connection%s; the client's default (sizing.* defaults): %u\n\n",
           (double)o->inflight * 1000 / o->latency_ms, o->latency_ms,
           SIZING_DEFAULT_PER_CONNECTION, rule, rule == 1 ? "" : "s",
           parley_connections_for(1000, 1, SIZING_DEFAULT_PER_CONNECTION));
    printf("| connections | in flight/conn |   req/s | p50 ms | p90 ms | p99 ms | max ms "
           "| client CPU (busiest thread) | server CPU (busiest thread) | failed |\n");
    printf("|------------:|---------------:|--------:|-------:|-------:|-------:|-------:"
           "|---------------------------:|---------------------------:|-------:|\n");
    for (unsigned i = 0; i < o->nconfigs; i++) {
        const struct result *r = &res[i];
        printf("| %11u | %14u | %7.0f | %6.0f | %6.0f | %6.0f | %6.0f | %18.2f (%4.2f) "
               "| %18.2f (%4.2f) | %6zu |\n",
               r->connections, (o->inflight + r->connections - 1) / r->connections,
               r->throughput, r->p50, r->p90, r->p99, r->max, r->client_cpu,
               r->client_thread, r->server_cpu, r->server_thread, r->failed + r->refused);
    }
    printf("\nfloor: %u ms (the server's latency); at M in flight the best throughput "
           "is M / latency = %.0f req/s\n",
           o->latency_ms, (double)o->inflight * 1000 / o->latency_ms);

    printf("{\"bench\":\"connections\",\"inflight\":%u,\"latency_ms\":%u,\"seconds\":%.1f,"
           "\"sizing_rule_connections\":%u,\"results\":[",
           o->inflight, o->latency_ms, o->seconds, rule);
    for (unsigned i = 0; i < o->nconfigs; i++) {
        const struct result *r = &res[i];
        printf("%s{\"connections\":%u,\"throughput\":%.0f,\"p50_ms\":%.1f,\"p90_ms\":%.1f,"
               "\"p99_ms\":%.1f,\"max_ms\":%.1f,\"measured\":%zu,\"failed\":%zu,"
               "\"refused\":%zu,\"client_cpus\":%.2f,\"client_busiest_thread\":%.2f,"
               "\"server_cpus\":%.2f,\"server_busiest_thread\":%.2f}",
               i ? "," : "", r->connections, r->throughput, r->p50, r->p90, r->p99,
               r->max, r->measured, r->failed, r->refused, r->client_cpu,
               r->client_thread, r->server_cpu, r->server_thread);
    }
    printf("]}\n");
}

/* ---- main --------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: bench_connections [--inflight M] [--latency-ms L] "
                    "[--connections 1,2,4,...] [--seconds S] [--warmup-seconds W]\n");
    exit(2);
}

static void parse_connections(struct options *o, const char *list)
{
    o->nconfigs = 0;
    for (const char *p = list; *p;) {
        char *end;
        unsigned long n = strtoul(p, &end, 10);
        if (end == p || n == 0 || n > 1024 || o->nconfigs == MAX_CONFIGS)
            usage();
        o->connections[o->nconfigs++] = (unsigned)n;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            usage();
    }
}

int main(int argc, char **argv)
{
    struct options o = {.inflight = 10000, .latency_ms = 200, .seconds = 3,
                        .warmup_seconds = 1};
    parse_connections(&o, "1,2,4,8,16,32");
    for (int a = 1; a < argc; a += 2) {
        const char *value = a + 1 < argc ? argv[a + 1] : NULL;
        if (!value)
            usage();
        if (!strcmp(argv[a], "--inflight"))
            o.inflight = (unsigned)strtoul(value, NULL, 10);
        else if (!strcmp(argv[a], "--latency-ms"))
            o.latency_ms = (unsigned)strtoul(value, NULL, 10);
        else if (!strcmp(argv[a], "--connections"))
            parse_connections(&o, value);
        else if (!strcmp(argv[a], "--seconds"))
            o.seconds = strtod(value, NULL);
        else if (!strcmp(argv[a], "--warmup-seconds"))
            o.warmup_seconds = strtod(value, NULL);
        else
            usage();
    }
    if (o.inflight == 0 || o.latency_ms == 0 || o.seconds <= 0 || o.warmup_seconds < 0)
        usage();

    if (!getenv("PARLEY_API_KEY"))
        setenv("PARLEY_API_KEY", "bench", 1);
    pl_refserver_opts so;
    pl_refserver_opts_init(&so);
    so.api_key = getenv("PARLEY_API_KEY");
    so.latency_ms = o.latency_ms;
    so.quiet = 1;
    /* Finished requests are kept for repeats this long: a short window keeps
     * the server's memory flat over hundreds of thousands of requests. */
    so.idempotency_window_s = 5;
    bench_server server;
    char err[256];
    if (bench_server_fork(&server, &so, err, sizeof(err)) != 0)
        die(err);
    char endpoint[64];
    snprintf(endpoint, sizeof(endpoint), "ws://127.0.0.1:%d/v1/stream", server.port);

    /* Room for every measured latency even if requests ended at once. */
    struct loop lp = {0};
    lp.slots = calloc(o.inflight, sizeof(*lp.slots));
    lp.latency_cap = (size_t)((double)o.inflight * (o.seconds * 1000 / o.latency_ms + 2) * 4);
    lp.latency_ms = malloc(lp.latency_cap * sizeof(double));
    struct result res[MAX_CONFIGS];
    if (!lp.slots || !lp.latency_ms)
        die("out of memory");
    for (unsigned i = 0; i < o.nconfigs; i++)
        run_config(&o, endpoint, server.pid, o.connections[i], &lp, &res[i]);
    bench_server_stop(&server);
    report(&o, res);
    free(lp.slots);
    free(lp.latency_ms);
    return 0;
}
