/*
 * gateway: a multithreaded HTTP server that embeds parley (docs/gateway.md).
 *
 *   POST /chat/<session>   body: the user's message
 *
 * sends the message as the next turn of the conversation <session> (opened
 * on first use, kept with its history until the gateway stops; with
 * --store, kept in Redis, so that gateways sharing it serve any turn of any
 * conversation) and streams the reply back as chunked text while its pieces
 * arrive.
 *
 *   PARLEY_API_KEY=... ./examples/gateway --port 8080 \
 *       --endpoint ws://127.0.0.1:8765/v1/stream
 *   curl -N --data-binary 'hello' http://127.0.0.1:8080/chat/support-42
 *
 * Prints "listening on ADDR:PORT" on stdout once ready (scripts wait for it
 * to learn the port when --port is 0) and runs until SIGINT or SIGTERM.
 *
 * The files: gateway_http.c (libmicrohttpd: requests, answers, the daemon),
 * gateway_sessions.c (named conversations, and routing each parley event to
 * the reply it belongs to), gateway_stream.c (the hand-off of one reply
 * between parley's workers and MHD's threads).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway_http.h"
#include "gateway_sessions.h"
#include "parley.h"

#define PROG "gateway"
#define EXIT_USAGE 2
/* After the drain, how long the answers cut by shutdown may take to reach
 * their clients before the connections close. */
#define FINISH_MS 2000u

typedef struct options {
    gw_http_opts http;
    const char *endpoint; /* NULL: $PARLEY_ENDPOINT */
    const char *dialect;  /* NULL: from the endpoint's scheme */
    const char *store;    /* NULL: conversations live in this process */
    unsigned lease_wait_ms;
    unsigned max_sessions;
    unsigned drain_ms;
} options;

static void usage(FILE *out)
{
    fprintf(out,
        "Usage: " PROG " [options]\n"
        "Serves POST /chat/<session>: the body is the next user turn of that\n"
        "conversation, the reply streams back as chunked text.\n"
        "\n"
        "  --endpoint URL       the AI service: ws(s)://... (parley's native\n"
        "                       protocol) or http(s)://... (a vendor's HTTP API);\n"
        "                       default $PARLEY_ENDPOINT\n"
        "  --dialect NAME       native, anthropic or openai (default: native for\n"
        "                       ws(s)://, openai for http(s)://)\n"
        "  --bind ADDR          numeric address to listen on (default 127.0.0.1)\n"
        "  --port N             TCP port, 0 picks a free one (default 8080)\n"
        "  --threads N          libmicrohttpd threads (default: one per CPU)\n"
        "  --max-connections N  HTTP connections open at once (default 10000)\n"
        "  --max-sessions N     conversations kept (default 10000); more get 503\n"
        "  --store URL          keep conversations in Redis (redis://HOST:PORT[/DB];\n"
        "                       password from $PARLEY_STORE_PASSWORD): any gateway\n"
        "                       sharing the store serves any turn (docs/cluster.md)\n"
        "  --lease-wait-ms N    with --store, how long a turn waits while another\n"
        "                       gateway finishes a turn of the same conversation\n"
        "                       (default 10000)\n"
        "  --drain-ms N         on SIGINT/SIGTERM, time replies in progress get\n"
        "                       to finish before they are cut (default 10000)\n"
        "  --help               show this help\n"
        "\n"
        "The API key comes from the environment (PARLEY_API_KEY; for the\n"
        "anthropic and openai dialects also ANTHROPIC_API_KEY, OPENAI_API_KEY).\n");
}

/* Parses a decimal in [min, max], or says what is wrong. */
static int parse_number(const char *flag, const char *text, unsigned long min,
                        unsigned long max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end || errno || v < min || v > max) {
        fprintf(stderr, PROG ": %s needs an integer from %lu to %lu, got '%s'\n", flag,
                min, max, text);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

enum { OPT_ENDPOINT = 1, OPT_DIALECT, OPT_BIND, OPT_PORT, OPT_THREADS,
       OPT_MAX_CONNECTIONS, OPT_MAX_SESSIONS, OPT_STORE, OPT_LEASE_WAIT, OPT_DRAIN, OPT_HELP };

static const struct option long_options[] = {
    {"endpoint", required_argument, NULL, OPT_ENDPOINT},
    {"dialect", required_argument, NULL, OPT_DIALECT},
    {"bind", required_argument, NULL, OPT_BIND},
    {"port", required_argument, NULL, OPT_PORT},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
    {"max-sessions", required_argument, NULL, OPT_MAX_SESSIONS},
    {"store", required_argument, NULL, OPT_STORE},
    {"lease-wait-ms", required_argument, NULL, OPT_LEASE_WAIT},
    {"drain-ms", required_argument, NULL, OPT_DRAIN},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static int set_option(options *o, int opt, char *arg)
{
    unsigned port;
    switch (opt) {
    case OPT_ENDPOINT: o->endpoint = arg; return 0;
    case OPT_DIALECT: o->dialect = arg; return 0;
    case OPT_STORE: o->store = arg; return 0;
    case OPT_LEASE_WAIT:
        return parse_number("--lease-wait-ms", arg, 0, 86400000, &o->lease_wait_ms);
    case OPT_BIND: o->http.bind_addr = arg; return 0;
    case OPT_PORT:
        if (parse_number("--port", arg, 0, 65535, &port))
            return -1;
        o->http.port = (int)port;
        return 0;
    case OPT_THREADS: return parse_number("--threads", arg, 1, 1024, &o->http.threads);
    case OPT_MAX_CONNECTIONS:
        return parse_number("--max-connections", arg, 1, 1000000, &o->http.max_connections);
    case OPT_MAX_SESSIONS:
        return parse_number("--max-sessions", arg, 1, 100000000, &o->max_sessions);
    default: return parse_number("--drain-ms", arg, 0, 3600000, &o->drain_ms);
    }
}

/* Returns 0, or the exit status to leave with (help is a success). */
static int parse_args(int argc, char **argv, options *o, int *help)
{
    int opt;
    while ((opt = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        if (opt == OPT_HELP) {
            *help = 1;
            return 0;
        }
        if (opt == '?') {
            fprintf(stderr, "Try '" PROG " --help'.\n");
            return EXIT_USAGE;
        }
        if (set_option(o, opt, optarg))
            return EXIT_USAGE;
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    return 0;
}

/* A started client whose events go to the sessions; NULL with a message. */
static parley_client_t *start_parley(const options *o, gw_sessions *sessions)
{
    parley_conf_t *conf = parley_conf_new();
    char err[512];
    char lease_wait[16];
    snprintf(lease_wait, sizeof(lease_wait), "%u", o->lease_wait_ms);
    if ((o->endpoint && parley_conf_set(conf, "endpoint", o->endpoint, err, sizeof(err))) ||
        (o->dialect && parley_conf_set(conf, "dialect", o->dialect, err, sizeof(err))) ||
        (o->store && (parley_conf_set(conf, "session.store", o->store, err, sizeof(err)) ||
                      parley_conf_set(conf, "session.lease.wait.ms", lease_wait, err,
                                      sizeof(err))))) {
        fprintf(stderr, PROG ": %s\n", err);
        parley_conf_destroy(conf);
        return NULL;
    }
    parley_conf_set_event_cb(conf, gw_sessions_on_event, sessions);
    parley_client_t *client = parley_client_new(conf, err, sizeof(err));
    if (!client) {
        fprintf(stderr, PROG ": %s\n", err);
        parley_conf_destroy(conf);
        return NULL;
    }
    gw_sessions_attach(sessions, client, o->store != NULL);
    parley_start(client);
    return client;
}

/*
 * The order matters. New work stops first (no new connections, then no new
 * turns) and the replies in progress get drain_ms to finish. Then parley is
 * destroyed, which ends every turn left with an error event: that resumes
 * every connection still waiting for its reply, since MHD must not be
 * stopped while a connection is suspended. MHD stops last; nothing calls
 * into parley after the detach, nor into MHD after the client is gone.
 */
static void shut_down(gw_http *http, parley_client_t *client, gw_sessions *sessions,
                      unsigned drain_ms)
{
    gw_http_stop_accepting(http);
    gw_sessions_stop_sending(sessions);
    if (parley_flush(client, (int)drain_ms) != PARLEY_OK)
        fprintf(stderr, PROG ": replies still in progress after %u ms are cut\n", drain_ms);
    gw_sessions_detach(sessions);
    parley_client_destroy(client);
    gw_http_stop(http, FINISH_MS);
    gw_sessions_free(sessions);
}

int main(int argc, char **argv)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    options o = {
        .http = {.bind_addr = "127.0.0.1", .port = 8080, .max_connections = 10000,
                 .threads = cpus > 0 ? (unsigned)cpus : 1},
        .max_sessions = 10000,
        .lease_wait_ms = 10000,
        .drain_ms = 10000,
    };
    int help = 0;
    int status = parse_args(argc, argv, &o, &help);
    if (status || help) {
        if (help)
            usage(stdout);
        return status;
    }

    /* Blocked before any thread exists, so every thread inherits the mask
     * and the signals wait for sigwait() below instead of interrupting. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    gw_sessions *sessions = gw_sessions_new(o.max_sessions);
    if (!sessions) {
        fprintf(stderr, PROG ": out of memory\n");
        return 1;
    }
    parley_client_t *client = start_parley(&o, sessions);
    if (!client) {
        gw_sessions_free(sessions);
        return 1;
    }
    char err[256];
    gw_http *http = gw_http_start(&o.http, sessions, err, sizeof(err));
    if (!http) {
        fprintf(stderr, PROG ": %s\n", err);
        parley_client_destroy(client);
        gw_sessions_free(sessions);
        return 1;
    }
    /* An IPv6 address goes in brackets, so the port stays after the last ':'. */
    printf(strchr(o.http.bind_addr, ':') ? "listening on [%s]:%d\n" : "listening on %s:%d\n",
           o.http.bind_addr, gw_http_port(http));
    fflush(stdout);

    int sig;
    sigwait(&stop_signals, &sig);
    fprintf(stderr, PROG ": %s, stopping\n", strsignal(sig));
    shut_down(http, client, sessions, o.drain_ms);
    return 0;
}
