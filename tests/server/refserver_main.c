/*
 * parley-refserver: runs the reference server (refserver.h) until SIGINT or
 * SIGTERM. Scripts wait for its one stdout line, "listening on ADDR:PORT",
 * to learn the port, so nothing else goes to stdout.
 */
#include "refserver.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "parley-refserver"
#define EXIT_USAGE 2

static void usage(FILE *out)
{
    fprintf(out,
        "Usage: " PROG " [options]\n"
        "Reference server of the parley.v1 streaming protocol "
        "(WebSocket path /v1/stream).\n"
        "\n"
        "  --bind ADDR        address to listen on (default 127.0.0.1)\n"
        "  --port N           TCP port, 0 picks a free one (default 0)\n"
        "  --api-key KEY      require 'Authorization: Bearer KEY' on upgrade;\n"
        "                     without this flag the key is read from the\n"
        "                     environment variable PARLEY_API_KEY (the flag\n"
        "                     wins); with neither, no key is required\n"
        "  --latency-ms N     delay before the first piece of a reply (default 0)\n"
        "  --token-ms N       delay between pieces (default 0)\n"
        "  --chunk-bytes N    at most N bytes per piece, N >= 1 (default 16)\n"
        "  --heartbeat-s N    heartbeat_s announced in hello, N >= 1 (default 30)\n"
        "  --quiet            no log lines on stderr\n"
        "  --help             show this help\n"
        "\n"
        "Prints 'listening on ADDR:PORT' on stdout once ready and runs until\n"
        "SIGINT or SIGTERM. Exit status: 0 after a signal, 1 when it cannot\n"
        "listen, 2 on bad usage.\n");
}

/* Parses a decimal in [min, max] into *out, or says what is wrong. */
static int parse_number(const char *flag, const char *text, unsigned long min,
                        unsigned long max, unsigned long *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end || errno || v < min || v > max) {
        fprintf(stderr, PROG ": %s needs an integer from %lu to %lu, got '%s'\n",
                flag, min, max, text);
        return -1;
    }
    *out = v;
    return 0;
}

enum { OPT_BIND = 1, OPT_PORT, OPT_KEY, OPT_LATENCY, OPT_TOKEN, OPT_CHUNK,
       OPT_HEARTBEAT, OPT_QUIET, OPT_HELP };

static const struct option long_options[] = {
    { "bind", required_argument, NULL, OPT_BIND },
    { "port", required_argument, NULL, OPT_PORT },
    { "api-key", required_argument, NULL, OPT_KEY },
    { "latency-ms", required_argument, NULL, OPT_LATENCY },
    { "token-ms", required_argument, NULL, OPT_TOKEN },
    { "chunk-bytes", required_argument, NULL, OPT_CHUNK },
    { "heartbeat-s", required_argument, NULL, OPT_HEARTBEAT },
    { "quiet", no_argument, NULL, OPT_QUIET },
    { "help", no_argument, NULL, OPT_HELP },
    { NULL, 0, NULL, 0 },
};

/* Applies one numeric option; returns -1 on a bad value. */
static int set_number(pl_refserver_opts *o, int opt, const char *arg)
{
    const char *flag = NULL;
    unsigned long v;

    switch (opt) {
    case OPT_PORT: flag = "--port"; break;
    case OPT_LATENCY: flag = "--latency-ms"; break;
    case OPT_TOKEN: flag = "--token-ms"; break;
    case OPT_CHUNK: flag = "--chunk-bytes"; break;
    case OPT_HEARTBEAT: flag = "--heartbeat-s"; break;
    }
    if (parse_number(flag, arg,
                     opt == OPT_CHUNK || opt == OPT_HEARTBEAT ? 1 : 0,
                     opt == OPT_PORT ? 65535 : UINT_MAX, &v))
        return -1;
    switch (opt) {
    case OPT_PORT: o->port = (int)v; break;
    case OPT_LATENCY: o->latency_ms = (unsigned)v; break;
    case OPT_TOKEN: o->token_ms = (unsigned)v; break;
    case OPT_CHUNK: o->chunk_bytes = (unsigned)v; break;
    case OPT_HEARTBEAT: o->heartbeat_s = (unsigned)v; break;
    }
    return 0;
}

/* Returns 0, or the exit status to leave with (help is a success). */
static int parse_args(int argc, char **argv, pl_refserver_opts *o, int *help)
{
    int opt;

    while ((opt = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        switch (opt) {
        case OPT_BIND: o->bind_addr = optarg; break;
        case OPT_KEY: o->api_key = optarg; break;
        case OPT_QUIET: o->quiet = 1; break;
        case OPT_HELP: *help = 1; return 0;
        case '?':
            fprintf(stderr, "Try '" PROG " --help'.\n");
            return EXIT_USAGE;
        default:
            if (set_number(o, opt, optarg))
                return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    if (o->api_key && !o->api_key[0]) {
        fprintf(stderr, PROG ": --api-key must not be empty\n");
        return EXIT_USAGE;
    }
    if (!o->api_key) {
        const char *env = getenv("PARLEY_API_KEY");
        o->api_key = env && env[0] ? env : NULL;
    }
    return 0;
}

int main(int argc, char **argv)
{
    pl_refserver_opts opts;
    pl_refserver *srv;
    sigset_t stop_signals;
    char err[256];
    int help = 0, status, sig;

    pl_refserver_opts_init(&opts);
    status = parse_args(argc, argv, &opts, &help);
    if (status || help) {
        if (help)
            usage(stdout);
        return status;
    }

    /* Blocked before the server thread exists, so it inherits the mask and
     * the signals wait for sigwait below instead of interrupting anyone. */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    srv = pl_refserver_start(&opts, err, sizeof err);
    if (!srv) {
        fprintf(stderr, PROG ": %s\n", err);
        return 1;
    }
    /* An IPv6 address goes in brackets, so the port stays after the last ':'. */
    printf(strchr(opts.bind_addr, ':') ? "listening on [%s]:%d\n"
                                       : "listening on %s:%d\n",
           opts.bind_addr, pl_refserver_port(srv));
    fflush(stdout);

    sigwait(&stop_signals, &sig);
    if (!opts.quiet)
        fprintf(stderr, PROG ": %s, stopping\n", strsignal(sig));
    pl_refserver_stop(srv);
    return 0;
}
