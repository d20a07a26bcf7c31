/*
 * The shape of a load, as `parley bench` and the baseline tests/bench/direct
 * both take it on their command lines: where to send, how many
 * conversations at once, how many turns each, how many requests in all and
 * for how long at most. Both programs put BENCH_LOAD_OPTIONS in their getopt
 * tables and hand the matching codes to bench_load_option().
 */
#ifndef PARLEY_BENCH_OPTIONS_H
#define PARLEY_BENCH_OPTIONS_H

#include <getopt.h>
#include <stdbool.h>

typedef struct bench_load {
    const char *endpoint;      /* NULL: the program's default */
    unsigned long concurrency; /* conversations at once */
    unsigned long turns;       /* turns per conversation, in sequence */
    unsigned long requests;    /* requests in all; 0 until given */
    double duration_s;         /* start no request after this; 0: no limit */
} bench_load;

/* getopt_long codes of the shared options, above any short option. */
enum {
    BENCH_OPT_ENDPOINT = 0x100,
    BENCH_OPT_CONCURRENCY,
    BENCH_OPT_TURNS,
    BENCH_OPT_REQUESTS,
    BENCH_OPT_DURATION,
    BENCH_OPT__NEXT /* the first code free for a program's own options */
};

#define BENCH_LOAD_OPTIONS                                                     \
    {"endpoint", required_argument, NULL, BENCH_OPT_ENDPOINT},                 \
    {"concurrency", required_argument, NULL, BENCH_OPT_CONCURRENCY},           \
    {"turns", required_argument, NULL, BENCH_OPT_TURNS},                       \
    {"requests", required_argument, NULL, BENCH_OPT_REQUESTS},                 \
    {"duration", required_argument, NULL, BENCH_OPT_DURATION}

/* The usage lines of the shared options, for the programs' help texts. */
#define BENCH_LOAD_USAGE                                                              \
    "  --concurrency N  conversations at once (default 1)\n"                        \
    "  --turns K        turns per conversation, in sequence; then a new\n"          \
    "                   conversation takes its place (default 1)\n"                 \
    "  --requests R     requests in all (required)\n"                               \
    "  --duration S     start no request after S seconds (decimals allowed);\n"     \
    "                   the ones under way still finish\n"

/* Defaults: one conversation of one turn; requests still to be given. */
void bench_load_init(bench_load *load);

/*
 * Apply one shared option (opt is a BENCH_OPT_* code). Returns false, after
 * saying on stderr what is wrong (prefixed with prog), for a bad value.
 */
bool bench_load_option(bench_load *load, int opt, const char *arg, const char *prog);

/* After parsing: false, with a message, when a required option is missing. */
bool bench_load_complete(const bench_load *load, const char *prog);

#endif
