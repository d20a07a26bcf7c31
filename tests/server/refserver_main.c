/*
 * parley-refserver: runs the reference server (refserver.h) until SIGINT or
 * SIGTERM. Scripts wait for its one stdout line, "listening on ADDR:PORT",
 * to learn the port, so nothing else goes to stdout.
 */
#include "refserver.h"
#include "refserver_http.h"

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
        "GET /v1/refserver/last-request answers the last request received\n"
        "(a POST body or a WebSocket message), for tests.\n"
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
        "  --no-zstd          serve parley.v1 only, even to clients offering\n"
        "                     parley.v1.zstd (compressed binary frames)\n"
        "  --no-gzip          do not select the parley.v1.gzip extension\n"
        "  --no-zstd-dict     do not agree on the parley-v1 zstd dictionary a\n"
        "                     client names in X-Parley-Zstd-Dict\n"
        "  --tls-cert FILE    serve wss:// with this PEM certificate (chain);\n"
        "                     ALPN offers h2 and http/1.1\n"
        "  --tls-key FILE     its PEM private key (default: in --tls-cert's file)\n"
        "  --h2c              also serve /v1/messages and /v1/chat/completions\n"
        "                     as HTTP/2 over cleartext with prior knowledge, on\n"
        "                     a free port of its own (a second stdout line,\n"
        "                     'h2c on ADDR:PORT', names it)\n"
        "  --quiet            no log lines on stderr\n"
        "  --help             show this help\n"
        "\n"
        "Injected faults, for reliability tests (all off by default; N = 0 is\n"
        "off; \"new requests\" are distinct ids, counted over all connections;\n"
        "on the HTTP paths, /v1/messages and /v1/chat/completions, every valid\n"
        "request counts, retries included). [ws] marks a fault of the WebSocket\n"
        "path only, [http] one of the HTTP paths only; the others act on all:\n"
        "  --reject-every N       answer every Nth new request with an error\n"
        "                         instead of ack (nothing is recorded: a retry\n"
        "                         of the same id is a new request again); on\n"
        "                         HTTP the dialect's error status\n"
        "  --reject-fraction F    [ws] or reject each new request with\n"
        "                         probability F, 0 <= F <= 1 (fixed seed)\n"
        "  --reject-code CODE     rate_limited (default; HTTP 429), overloaded\n"
        "                         (HTTP 529 Anthropic, 503 OpenAI) or internal\n"
        "                         (HTTP 500)\n"
        "  --retry-after-ms N     retry_after_ms sent with rejections (on HTTP\n"
        "                         the retry-after-ms header); -1 (the default)\n"
        "                         leaves it out\n"
        "  --drop-after-texts K   [ws] drop a connection (the TCP connection\n"
        "                         ends, no Close frame) once K text messages\n"
        "                         were written on it\n"
        "  --drop-every N         close the connection of every Nth new\n"
        "                         request (TCP, no Close frame) once\n"
        "                         --drop-after-pieces pieces of its reply\n"
        "                         were sent\n"
        "  --drop-after-pieces K  (default 0: before the first piece)\n"
        "  --stall-every N        every Nth new request gets nothing more: on\n"
        "                         WebSocket after its ack, until the client\n"
        "                         repeats it; on HTTP after --stall-after-pieces\n"
        "                         pieces, for ever (the connection stays open)\n"
        "  --stall-after-pieces K [http] (default 0)\n"
        "  --stall-connection-every N\n"
        "                         [ws] every Nth new request silences its\n"
        "                         connection: nothing more is sent or read on\n"
        "                         it (Pings go unanswered), the TCP connection\n"
        "                         stays open\n"
        "  --error-every N        every Nth new request ends with an error after\n"
        "                         --error-after-pieces pieces: WebSocket\n"
        "                         `internal`, HTTP the dialect's overloaded\n"
        "                         error event in the stream\n"
        "  --error-after-pieces K (default 0)\n"
        "  --tiny-writes N        WebSocket messages go out as fragments of at\n"
        "                         most N bytes; HTTP bodies N bytes per write\n"
        "  --malformed-every N    send every Nth text message as truncated JSON\n"
        "                         (naming its id); that request ends there\n"
        "  --unknown-every N      send an unknown-type message before every Nth\n"
        "                         text message (HTTP: an unknown event before\n"
        "                         every Nth piece of each reply)\n"
        "  --oversized-every N    pad every Nth text message to --oversized-bytes;\n"
        "                         that request ends there\n"
        "  --oversized-bytes N    size of those messages (default 2097152)\n"
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

/* The reject codes the protocol lets a client retry. */
static int parse_reject_code(const char *text)
{
    if (!strcmp(text, "rate_limited") || !strcmp(text, "overloaded") ||
        !strcmp(text, "internal"))
        return 0;
    fprintf(stderr, PROG ": --reject-code needs rate_limited, overloaded or "
            "internal, got '%s'\n", text);
    return -1;
}

static int parse_fraction(const char *text, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(text, &end);
    /* The comparisons are false for NaN. */
    if (end == text || *end || errno || !(v >= 0.0 && v <= 1.0)) {
        fprintf(stderr, PROG ": --reject-fraction needs a number from 0 to 1, "
                "got '%s'\n", text);
        return -1;
    }
    *out = v;
    return 0;
}

/* -1, or a count of milliseconds that fits an int. */
static int parse_retry_after(const char *text, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(text, &end, 10);
    if ((text[0] != '-' && (text[0] < '0' || text[0] > '9')) || *end ||
        errno || v < -1 || v > INT_MAX) {
        fprintf(stderr, PROG ": --retry-after-ms needs -1 or an integer from "
                "0 to %d, got '%s'\n", INT_MAX, text);
        return -1;
    }
    *out = (int)v;
    return 0;
}

enum { OPT_BIND = 1, OPT_PORT, OPT_KEY, OPT_LATENCY, OPT_TOKEN, OPT_CHUNK,
       OPT_HEARTBEAT, OPT_QUIET, OPT_HELP, OPT_REJECT_EVERY,
       OPT_REJECT_FRACTION, OPT_REJECT_CODE, OPT_RETRY_AFTER, OPT_DROP_AFTER,
       OPT_STALL_EVERY, OPT_MALFORMED_EVERY, OPT_UNKNOWN_EVERY,
       OPT_OVERSIZED_EVERY, OPT_OVERSIZED_BYTES, OPT_NO_ZSTD, OPT_NO_ZSTD_DICT, OPT_NO_GZIP,
       OPT_TLS_CERT, OPT_TLS_KEY, OPT_DROP_EVERY, OPT_DROP_AFTER_PIECES,
       OPT_STALL_AFTER_PIECES, OPT_STALL_CONNECTION_EVERY, OPT_ERROR_EVERY,
       OPT_ERROR_AFTER_PIECES, OPT_TINY_WRITES, OPT_H2C };

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
    { "reject-every", required_argument, NULL, OPT_REJECT_EVERY },
    { "reject-fraction", required_argument, NULL, OPT_REJECT_FRACTION },
    { "reject-code", required_argument, NULL, OPT_REJECT_CODE },
    { "retry-after-ms", required_argument, NULL, OPT_RETRY_AFTER },
    { "drop-after-texts", required_argument, NULL, OPT_DROP_AFTER },
    { "stall-every", required_argument, NULL, OPT_STALL_EVERY },
    { "malformed-every", required_argument, NULL, OPT_MALFORMED_EVERY },
    { "unknown-every", required_argument, NULL, OPT_UNKNOWN_EVERY },
    { "oversized-every", required_argument, NULL, OPT_OVERSIZED_EVERY },
    { "oversized-bytes", required_argument, NULL, OPT_OVERSIZED_BYTES },
    { "no-zstd", no_argument, NULL, OPT_NO_ZSTD },
    { "no-gzip", no_argument, NULL, OPT_NO_GZIP },
    { "no-zstd-dict", no_argument, NULL, OPT_NO_ZSTD_DICT },
    { "tls-cert", required_argument, NULL, OPT_TLS_CERT },
    { "tls-key", required_argument, NULL, OPT_TLS_KEY },
    { "drop-every", required_argument, NULL, OPT_DROP_EVERY },
    { "drop-after-pieces", required_argument, NULL, OPT_DROP_AFTER_PIECES },
    { "stall-after-pieces", required_argument, NULL, OPT_STALL_AFTER_PIECES },
    { "stall-connection-every", required_argument, NULL,
      OPT_STALL_CONNECTION_EVERY },
    { "error-every", required_argument, NULL, OPT_ERROR_EVERY },
    { "error-after-pieces", required_argument, NULL, OPT_ERROR_AFTER_PIECES },
    { "tiny-writes", required_argument, NULL, OPT_TINY_WRITES },
    { "h2c", no_argument, NULL, OPT_H2C },
    { NULL, 0, NULL, 0 },
};

/* Everything the command line sets: the WebSocket path's faults and the
 * HTTP paths'. */
struct settings {
    pl_refserver_opts opts;
    pl_refserver_faults faults;
    pl_refserver_http_faults http;
};

/* Where a numeric option goes: an unsigned field of opts or faults. */
static unsigned *number_target(struct settings *s, int opt)
{
    switch (opt) {
    case OPT_LATENCY: return &s->opts.latency_ms;
    case OPT_TOKEN: return &s->opts.token_ms;
    case OPT_CHUNK: return &s->opts.chunk_bytes;
    case OPT_HEARTBEAT: return &s->opts.heartbeat_s;
    case OPT_REJECT_EVERY: return &s->faults.reject_every;
    case OPT_DROP_AFTER: return &s->faults.drop_after_texts;
    case OPT_STALL_EVERY: return &s->faults.stall_every;
    case OPT_MALFORMED_EVERY: return &s->faults.malformed_every;
    case OPT_UNKNOWN_EVERY: return &s->faults.unknown_every;
    case OPT_OVERSIZED_EVERY: return &s->faults.oversized_every;
    case OPT_DROP_EVERY: return &s->faults.drop_every;
    case OPT_DROP_AFTER_PIECES: return &s->faults.drop_after_pieces;
    case OPT_STALL_AFTER_PIECES: return &s->http.stall_after_pieces;
    case OPT_STALL_CONNECTION_EVERY: return &s->faults.stall_connection_every;
    case OPT_ERROR_EVERY: return &s->faults.error_every;
    case OPT_ERROR_AFTER_PIECES: return &s->faults.error_after_pieces;
    case OPT_TINY_WRITES: return &s->faults.fragment_bytes;
    default: return NULL;
    }
}

/* "--name" of an option, for messages. */
static const char *flag_name(int opt, char *buf, size_t size)
{
    const struct option *lo;

    for (lo = long_options; lo->name; lo++)
        if (lo->val == opt)
            break;
    snprintf(buf, size, "--%s", lo->name ? lo->name : "?");
    return buf;
}

/* Applies one numeric option; returns -1 on a bad value. */
static int set_number(struct settings *s, int opt, const char *arg)
{
    char flag[32];
    unsigned long v, min = 0, max = UINT_MAX;
    unsigned *target = number_target(s, opt);

    if (opt == OPT_CHUNK || opt == OPT_HEARTBEAT || opt == OPT_OVERSIZED_BYTES ||
        opt == OPT_TINY_WRITES)
        min = 1;
    if (opt == OPT_PORT)
        max = 65535;
    if (opt == OPT_OVERSIZED_BYTES)
        max = 1ul << 30; /* built in memory: keep it sane */
    if (parse_number(flag_name(opt, flag, sizeof flag), arg, min, max, &v))
        return -1;
    if (opt == OPT_PORT)
        s->opts.port = (int)v;
    else if (opt == OPT_OVERSIZED_BYTES)
        s->faults.oversized_bytes = v;
    else
        *target = (unsigned)v;
    return 0;
}

/* Applies one option that takes text; returns -1 on a bad value. */
static int set_option(struct settings *s, int opt, char *arg)
{
    switch (opt) {
    case OPT_BIND: s->opts.bind_addr = arg; return 0;
    case OPT_KEY: s->opts.api_key = arg; return 0;
    case OPT_TLS_CERT: s->opts.tls_cert_file = arg; return 0;
    case OPT_TLS_KEY: s->opts.tls_key_file = arg; return 0;
    case OPT_REJECT_FRACTION:
        return parse_fraction(arg, &s->faults.reject_fraction);
    case OPT_REJECT_CODE:
        s->faults.reject_code = arg;
        return parse_reject_code(arg);
    case OPT_RETRY_AFTER:
        return parse_retry_after(arg, &s->faults.retry_after_ms);
    default:
        return set_number(s, opt, arg);
    }
}

/* Returns 0, or the exit status to leave with (help is a success). */
static int parse_args(int argc, char **argv, struct settings *s, int *help)
{
    pl_refserver_opts *o = &s->opts;
    int opt;

    while ((opt = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        switch (opt) {
        case OPT_QUIET: o->quiet = 1; break;
        case OPT_NO_ZSTD: o->zstd = 0; break;
        case OPT_NO_ZSTD_DICT: o->zstd_dict = 0; break;
        case OPT_NO_GZIP: o->gzip = 0; break;
        case OPT_H2C: o->h2c = 1; break;
        case OPT_HELP: *help = 1; return 0;
        case '?':
            fprintf(stderr, "Try '" PROG " --help'.\n");
            return EXIT_USAGE;
        default:
            if (set_option(s, opt, optarg))
                return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    if (o->tls_key_file && !o->tls_cert_file) {
        fprintf(stderr, PROG ": --tls-key needs --tls-cert\n");
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

/* The HTTP paths' share of the faults that act on every path. */
static void derive_http_faults(struct settings *s)
{
    const pl_refserver_faults *f = &s->faults;
    pl_refserver_http_faults *h = &s->http;

    h->reject_every = f->reject_every;
    h->reject_kind = !strcmp(f->reject_code, "overloaded")
                         ? PL_RSHTTP_REJECT_OVERLOADED
                     : !strcmp(f->reject_code, "internal")
                         ? PL_RSHTTP_REJECT_INTERNAL
                         : PL_RSHTTP_REJECT_RATE_LIMITED;
    h->retry_after_ms = f->retry_after_ms;
    h->drop_every = f->drop_every;
    h->drop_after_pieces = f->drop_after_pieces;
    h->stall_every = f->stall_every;
    h->error_every = f->error_every;
    h->error_after_pieces = f->error_after_pieces;
    h->unknown_every = f->unknown_every;
    h->write_bytes = f->fragment_bytes;
}

int main(int argc, char **argv)
{
    struct settings s = { .faults = { .retry_after_ms = -1,
                                      .reject_code = "rate_limited" } };
    const pl_refserver_opts *opts = &s.opts;
    pl_refserver *srv;
    sigset_t stop_signals;
    char err[256];
    int help = 0, status, sig;

    pl_refserver_opts_init(&s.opts);
    pl_refserver_http_faults_init(&s.http);
    status = parse_args(argc, argv, &s, &help);
    if (status || help) {
        if (help)
            usage(stdout);
        return status;
    }
    derive_http_faults(&s);

    /* Blocked before the server thread exists, so it inherits the mask and
     * the signals wait for sigwait below instead of interrupting anyone. */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    srv = pl_refserver_start(opts, err, sizeof err);
    if (!srv) {
        fprintf(stderr, PROG ": %s\n", err);
        return 1;
    }
    pl_refserver_set_faults(srv, &s.faults);
    pl_refserver_http_set_faults(pl_refserver_http_of(srv), &s.http);
    /* An IPv6 address goes in brackets, so the port stays after the last ':'. */
    printf(strchr(opts->bind_addr, ':') ? "listening on [%s]:%d\n"
                                        : "listening on %s:%d\n",
           opts->bind_addr, pl_refserver_port(srv));
    if (opts->h2c)
        printf(strchr(opts->bind_addr, ':') ? "h2c on [%s]:%d\n" : "h2c on %s:%d\n",
               opts->bind_addr, pl_refserver_h2c_port(srv));
    fflush(stdout);

    sigwait(&stop_signals, &sig);
    if (!opts->quiet)
        fprintf(stderr, PROG ": %s, stopping\n", strsignal(sig));
    pl_refserver_stop(srv);
    return 0;
}
