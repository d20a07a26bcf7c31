/*
 * `parley bench` (bench.h): N conversations at once, each K turns in
 * sequence, then a new conversation in its place, until R requests or the
 * time limit.
 *
 * The client does the least work a real server would: no thread per
 * conversation. Each conversation slot lives in the event callback: the
 * DONE of one turn sends the next turn (or opens the next conversation)
 * right there, on the worker that delivered it, which the API allows
 * (docs/introduction.md, "What a callback may call"). The main thread only
 * starts the slots and then waits for them to retire (bench_gate.h).
 *
 * A slot's state needs no lock: the events of one session arrive in order
 * and never concurrently, and a slot has one session at a time; parley_send()
 * hands the slot from the thread that sent to the worker that delivers.
 */
#include "bench.h"

#include <getopt.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_echo.h"
#include "bench_gate.h"
#include "bench_options.h"
#include "bench_progress.h"
#include "bench_record.h"
#include "bench_report.h"
#include "cli_properties.h"
#include "parley.h"

#define PROG "parley bench"
/* Failure messages shown on stderr; the rest are only counted. */
#define ERRORS_SHOWN 5
#define SESSION_PREFIX "bench."

/* One chain of conversations, one at a time. */
typedef struct bench_slot {
    unsigned long index;
    parley_session_t *session; /* the conversation under way; NULL between */
    uint64_t conversation;     /* its number in the run, from 1 */
    unsigned long turn;        /* the turn in flight, from 1 */
    char message[BENCH_MESSAGE_MAX];
    bench_expect expect;
    uint64_t sent_ns, first_piece_ns; /* first_piece_ns 0: no piece yet */
} bench_slot;

typedef struct bench_run {
    parley_client_t *client;
    bench_load load;
    bench_slot *slots;
    unsigned long nslots;
    bench_gate gate;
    bench_record record;
    bench_report report;
    atomic_uint_fast64_t conversations; /* numbers the conversations */
    atomic_uint errors_shown;
} bench_run;

/* The command line, before it becomes a configuration. */
typedef struct bench_args {
    bench_load load;
    const char *dialect;
    const char *connections;
    const char *tls[CLI_TLS_OPTIONS_COUNT];
    bool insecure;
    char **assignments; /* --set name=value, in order */
    size_t nassignments;
    double report_every_s; /* --report-every; 0: no reports */
} bench_args;

static void synopsis(FILE *out)
{
    fputs("usage: parley bench --endpoint URL [--dialect native|anthropic|openai]\n"
          "                    --requests R [--concurrency N] [--turns K] [--duration S]\n"
          "                    [--connections C] [--set NAME=VALUE]...\n"
          "                    [--report-every S]\n"
          "                    [--cacert FILE] [--capath DIR] [--pinnedpubkey PINS]\n"
          "                    [--cert FILE] [--key FILE] [-k|--insecure]\n",
          out);
}

/* Bad usage: what is wrong was said; the synopsis and where to learn more. */
static int usage_error(void)
{
    synopsis(stderr);
    fputs("Run 'parley bench --help' for the details.\n", stderr);
    return 2;
}

static int help(void)
{
    synopsis(stdout);
    fputs("\n"
          "Holds N conversations (sessions) at once, each K turns in sequence, then a\n"
          "new conversation in its place, until R requests have been made or S\n"
          "seconds have passed. Every reply is checked against the reference\n"
          "server's echo model (\"[turn N] MESSAGE\"; against any other server every\n"
          "reply counts as a mismatch). A progress bar goes to stderr\n"
          "when it is a terminal; the last line of stdout is one JSON object:\n"
          "requests, errors, mismatches, retries, connections, rps, lat_ms_mean,\n"
          "lat_ms_p50, lat_ms_p90, lat_ms_p99, lat_ms_max (send to DONE), ttft_ms_p50,\n"
          "ttft_ms_p99 (send to the first piece), cpu_s, max_rss_mb (this process).\n"
          "\n"
          "  --endpoint URL   ws:// or wss:// (native), http:// or https:// (dialects);\n"
          "                   default $PARLEY_ENDPOINT\n"
          BENCH_LOAD_USAGE
          "  --connections C  the client property \"connections\" (native protocol)\n"
          "  --set NAME=VALUE any client property (docs/configuration.md), applied\n"
          "                   last; the bench raises max.inflight.requests to twice\n"
          "                   the concurrency when the default is lower\n"
          "  --report-every S every S seconds a line \"report t_s=... rss_kb=... fds=...\n"
          "                   timers=... inflight=... done=... failed=...\" on stdout:\n"
          "                   memory, open descriptors, timer-heap size, requests\n"
          "                   in flight and ended (what `make soak` watches)\n"
          "  TLS options take curl's names, as in `parley chat`.\n"
          "\n"
          "The API key comes from PARLEY_API_KEY (ANTHROPIC_API_KEY or OPENAI_API_KEY\n"
          "first for those dialects). Exit status: 0 when every reply was the\n"
          "expected one, 1 when a request failed or a reply differed, 2 on bad usage.\n",
          stdout);
    return 0;
}

/* ---- the run: slots driven from the event callback ---------------------- */

static void show_error(bench_run *run, const char *what, const char *detail)
{
    if (atomic_fetch_add(&run->errors_shown, 1) < ERRORS_SHOWN)
        fprintf(stderr, PROG ": %s: %s\n", what, detail);
}

/* Send the slot's current turn. Returns false when the send was refused
 * (counted as a failed request). */
static bool send_turn(bench_run *run, bench_slot *slot)
{
    bench_echo_message(slot->message, sizeof(slot->message), slot->conversation, slot->turn);
    bench_expect_reply(&slot->expect, slot->turn, slot->message);
    slot->first_piece_ns = 0;
    slot->sent_ns = bench_now_ns();
    /* From here the slot belongs to the session's events. */
    parley_err_t err = parley_send(slot->session, slot->message, NULL);
    if (err == PARLEY_OK)
        return true;
    bench_record_error(&run->record);
    show_error(run, "send refused", parley_err2str(err));
    return false;
}

static bool open_conversation(bench_run *run, bench_slot *slot)
{
    slot->conversation = atomic_fetch_add(&run->conversations, 1) + 1;
    slot->turn = 1;
    char id[64], err[256];
    /* The process id keeps each run's conversations new in a session
     * store (--set session.store=redis://...), which outlives the run. */
    snprintf(id, sizeof(id), SESSION_PREFIX "%lu.%llu.%ld", slot->index,
             (unsigned long long)slot->conversation, (long)getpid());
    slot->session = parley_session_open(run->client, id, err, sizeof(err));
    if (slot->session)
        return true;
    bench_record_error(&run->record);
    show_error(run, "cannot open a session", err);
    return false;
}

static void close_conversation(bench_slot *slot)
{
    if (slot->session)
        parley_session_close(slot->session);
    slot->session = NULL;
}

/*
 * Start the slot's next request: the next turn of its conversation when
 * `same_conversation`, else the first turn of a new one; retire the slot
 * when no request may start any more. A request refused at once is counted
 * and the next one tried in a new conversation; every try holds a claim, so
 * this ends within the budget.
 */
static void slot_continue(bench_run *run, bench_slot *slot, bool same_conversation)
{
    for (;;) {
        if (!bench_gate_claim(&run->gate)) {
            close_conversation(slot);
            bench_gate_retire(&run->gate);
            return;
        }
        if (same_conversation) {
            slot->turn++;
        } else {
            close_conversation(slot);
            if (!open_conversation(run, slot))
                continue;
        }
        if (send_turn(run, slot))
            return;
        same_conversation = false;
    }
}

/* The slot an event belongs to, from its session id "bench.SLOT.CONV.PID"
 * (every session of this client is one the bench opened). */
static bench_slot *slot_of(bench_run *run, const parley_event_t *ev)
{
    const char *id = parley_event_session_id(ev);
    return &run->slots[strtoul(id + strlen(SESSION_PREFIX), NULL, 10)];
}

static void on_event(parley_client_t *client, const parley_event_t *ev, void *opaque)
{
    (void)client;
    bench_run *run = opaque;
    bench_slot *slot = slot_of(run, ev);
    size_t len;
    const char *content = parley_event_content(ev, &len);
    switch (parley_event_type(ev)) {
    case PARLEY_EVENT_TEXT:
        if (!slot->first_piece_ns)
            slot->first_piece_ns = bench_now_ns();
        bench_expect_piece(&slot->expect, content, len);
        return;
    case PARLEY_EVENT_DONE: {
        uint64_t end_ns = bench_now_ns();
        bool matches = bench_expect_met(&slot->expect, content, len);
        bench_record_reply(&run->record, slot->sent_ns, slot->first_piece_ns, end_ns, matches);
        if (!matches)
            show_error(run, "reply differs from the echo model's", content);
        slot_continue(run, slot, slot->turn < run->load.turns);
        return;
    }
    case PARLEY_EVENT_ERROR:
        bench_record_error(&run->record);
        show_error(run, "request failed", content);
        /* The failed turn is not in the history: start afresh. */
        slot_continue(run, slot, false);
        return;
    default: /* thinking and tool calls: not ours to show */
        break;
    }
}

/* ---- command line and configuration ------------------------------------- */

enum { OPT_DIALECT = BENCH_OPT__NEXT, OPT_CONNECTIONS, OPT_SET, OPT_REPORT, OPT_TLS };

static const struct option own_options[] = {
    BENCH_LOAD_OPTIONS,
    {"dialect", required_argument, NULL, OPT_DIALECT},
    {"connections", required_argument, NULL, OPT_CONNECTIONS},
    {"set", required_argument, NULL, OPT_SET},
    {"report-every", required_argument, NULL, OPT_REPORT},
    {"insecure", no_argument, NULL, 'k'},
    {"help", no_argument, NULL, 'h'},
};
#define NOWN_OPTIONS (sizeof(own_options) / sizeof(own_options[0]))

/* Parse argv into args; returns -1 to go on, else an exit status. */
static int parse_args(int argc, char **argv, bench_args *args)
{
    struct option opts[NOWN_OPTIONS + CLI_TLS_OPTIONS_COUNT + 1];
    size_t n = 0;
    for (size_t i = 0; i < NOWN_OPTIONS; i++)
        opts[n++] = own_options[i];
    for (size_t i = 0; i < CLI_TLS_OPTIONS_COUNT; i++)
        opts[n++] = (struct option){cli_tls_options[i].option, required_argument, NULL,
                                    OPT_TLS + (int)i};
    opts[n] = (struct option){NULL, 0, NULL, 0};
    args->assignments = calloc((size_t)argc, sizeof(*args->assignments));
    if (!args->assignments) {
        fprintf(stderr, PROG ": out of memory\n");
        return 2;
    }
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "kh", opts, NULL)) != -1) {
        if (c >= OPT_TLS && c < OPT_TLS + (int)CLI_TLS_OPTIONS_COUNT) {
            args->tls[c - OPT_TLS] = optarg;
        } else if (c >= BENCH_OPT_ENDPOINT && c < BENCH_OPT__NEXT) {
            if (!bench_load_option(&args->load, c, optarg, PROG))
                return usage_error();
        } else if (c == OPT_DIALECT) {
            args->dialect = optarg;
        } else if (c == OPT_CONNECTIONS) {
            args->connections = optarg;
        } else if (c == OPT_SET) {
            args->assignments[args->nassignments++] = optarg;
        } else if (c == OPT_REPORT) {
            char *end;
            args->report_every_s = strtod(optarg, &end);
            if (end == optarg || *end || !(args->report_every_s >= 0.001)) {
                fprintf(stderr, PROG ": --report-every wants seconds > 0, not \"%s\"\n", optarg);
                return usage_error();
            }
        } else if (c == 'k') {
            args->insecure = true;
        } else if (c == 'h') {
            return help();
        } else {
            return usage_error();
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument \"%s\"\n", argv[optind]);
        return usage_error();
    }
    if (!bench_load_complete(&args->load, PROG))
        return usage_error();
    return -1;
}

/*
 * Every conversation has one turn in flight, and for a moment a second:
 * the callback sends the next turn before the finished one is released.
 * max.inflight.requests must hold both, or the bench would be refused.
 */
static bool raise_inflight_limit(parley_conf_t *conf, unsigned long concurrency)
{
    char value[32];
    size_t size = sizeof(value);
    if (parley_conf_get(conf, "max.inflight.requests", value, &size) != PARLEY_OK)
        return false;
    unsigned long long needed = 2ull * concurrency;
    if (strtoull(value, NULL, 10) >= needed)
        return true;
    snprintf(value, sizeof(value), "%llu", needed);
    return cli_conf_set(conf, "max.inflight.requests", value);
}

/* The bench's own settings first, then the options, then --set: the
 * command line has the last word. */
static bool configure(parley_conf_t *conf, const bench_args *args)
{
    if (!raise_inflight_limit(conf, args->load.concurrency))
        return false;
    if (args->load.endpoint && !cli_conf_set(conf, "endpoint", args->load.endpoint))
        return false;
    if (args->dialect && !cli_conf_set(conf, "dialect", args->dialect))
        return false;
    if (args->connections && !cli_conf_set(conf, "connections", args->connections))
        return false;
    for (size_t i = 0; i < CLI_TLS_OPTIONS_COUNT; i++)
        if (args->tls[i] && !cli_conf_set(conf, cli_tls_options[i].property, args->tls[i]))
            return false;
    if (args->insecure && !cli_conf_set_insecure(conf))
        return false;
    for (size_t i = 0; i < args->nassignments; i++)
        if (!cli_conf_set_assignment(conf, args->assignments[i]))
            return false;
    return true;
}

static parley_client_t *make_client(const bench_args *args, bench_run *run)
{
    parley_conf_t *conf = parley_conf_new();
    if (!conf || !configure(conf, args) ||
        (args->report_every_s > 0 &&
         !bench_report_setup(&run->report, conf, args->report_every_s))) {
        parley_conf_destroy(conf);
        return NULL;
    }
    parley_conf_set_event_cb(conf, on_event, run);
    char err[512];
    parley_client_t *client = parley_client_new(conf, err, sizeof(err));
    if (!client) {
        fprintf(stderr, PROG ": %s\n", err);
        parley_conf_destroy(conf);
        return NULL;
    }
    if (parley_start(client) != PARLEY_OK) {
        fprintf(stderr, PROG ": cannot start the client\n");
        parley_client_destroy(client);
        return NULL;
    }
    return client;
}

/* ---- the command -------------------------------------------------------- */

/* Start every slot, wait for all to retire, print the results. Returns the
 * exit status. */
static int run_load(bench_run *run)
{
    uint64_t start_ns = bench_now_ns();
    bench_progress progress;
    bench_progress_init(&progress, run->load.requests, run->load.duration_s, start_ns);
    for (unsigned long i = 0; i < run->nslots; i++)
        slot_continue(run, &run->slots[i], false);
    double elapsed_s =
        bench_gate_wait(&run->gate, &run->record, &progress, start_ns, run->load.duration_s);

    parley_stats_t stats;
    parley_stats_get(run->client, &stats);
    parley_client_destroy(run->client);
    run->client = NULL;
    bench_totals totals = {.retries = stats.retries,
                           .connections = stats.connections_opened,
                           .elapsed_s = elapsed_s};
    bench_record_print_json(&run->record, &totals, stdout);
    return atomic_load(&run->record.errors) || atomic_load(&run->record.mismatches) ? 1 : 0;
}

int bench_main(int argc, char **argv)
{
    bench_args args = {0};
    bench_load_init(&args.load);
    int status = parse_args(argc, argv, &args);
    if (status >= 0) {
        free(args.assignments);
        return status;
    }
    bench_run *run = calloc(1, sizeof(*run));
    /* A slot more than there are requests would only retire at once. */
    unsigned long nslots = args.load.concurrency < args.load.requests ? args.load.concurrency
                                                                      : args.load.requests;
    if (run) {
        run->load = args.load;
        run->nslots = nslots;
        run->slots = calloc(nslots, sizeof(*run->slots));
    }
    if (!run || !run->slots || !bench_record_init(&run->record, args.load.requests) ||
        !bench_gate_init(&run->gate, args.load.requests, nslots)) {
        fprintf(stderr, PROG ": out of memory for %lu conversations and %lu requests\n",
                nslots, args.load.requests);
        status = 2;
    } else {
        for (unsigned long i = 0; i < nslots; i++)
            run->slots[i].index = i;
        run->client = make_client(&args, run);
        status = run->client ? run_load(run) : 2;
        bench_gate_destroy(&run->gate);
    }
    if (run) {
        bench_record_free(&run->record);
        free(run->slots);
    }
    free(run);
    free(args.assignments);
    return status;
}
