/* The shape of a load on the command line (bench_options.h). */
#include "bench_options.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* Far beyond any machine's sockets or threads, yet small enough that the
 * per-request sample arrays (8 bytes a request) stay allocatable. */
#define CONCURRENCY_MAX 1000000ul
#define TURNS_MAX 1000000ul
#define REQUESTS_MAX 100000000ul
#define DURATION_MAX_S 1e6

void bench_load_init(bench_load *load)
{
    *load = (bench_load){.concurrency = 1, .turns = 1};
}

static bool parse_count(const char *prog, const char *flag, const char *text,
                        unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end || errno || v < 1 || v > max) {
        fprintf(stderr, "%s: %s needs an integer from 1 to %lu, got \"%s\"\n", prog, flag,
                max, text);
        return false;
    }
    *out = v;
    return true;
}

static bool parse_seconds(const char *prog, const char *text, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    /* The comparison is false for NaN. */
    if (end == text || *end || errno || !(v > 0 && v <= DURATION_MAX_S)) {
        fprintf(stderr, "%s: --duration needs seconds above 0 and up to %.0f, got \"%s\"\n",
                prog, DURATION_MAX_S, text);
        return false;
    }
    *out = v;
    return true;
}

bool bench_load_option(bench_load *load, int opt, const char *arg, const char *prog)
{
    switch (opt) {
    case BENCH_OPT_ENDPOINT:
        load->endpoint = arg;
        return true;
    case BENCH_OPT_CONCURRENCY:
        return parse_count(prog, "--concurrency", arg, CONCURRENCY_MAX, &load->concurrency);
    case BENCH_OPT_TURNS:
        return parse_count(prog, "--turns", arg, TURNS_MAX, &load->turns);
    case BENCH_OPT_REQUESTS:
        return parse_count(prog, "--requests", arg, REQUESTS_MAX, &load->requests);
    case BENCH_OPT_DURATION:
        return parse_seconds(prog, arg, &load->duration_s);
    }
    fprintf(stderr, "%s: internal error: option code %d is not a load option\n", prog, opt);
    return false;
}

bool bench_load_complete(const bench_load *load, const char *prog)
{
    if (load->requests == 0) {
        fprintf(stderr, "%s: --requests is required\n", prog);
        return false;
    }
    return true;
}
