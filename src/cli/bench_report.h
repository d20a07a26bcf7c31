/*
 * Resource reports of a long `parley bench` run (`--report-every S`, what
 * `make soak` watches): every S seconds one line on stdout,
 *
 *   report t_s=60 rss_kb=52344 fds=14 timers=212 inflight=200 done=18000 failed=0
 *
 * the process's resident memory and open file descriptors (from /proc), and
 * from the client's statistics document the I/O thread's timer-heap size,
 * the requests accepted and not yet ended, and the requests ended so far.
 * The results' JSON object stays the last line of stdout.
 */
#ifndef PARLEY_BENCH_REPORT_H
#define PARLEY_BENCH_REPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "parley.h"

typedef struct bench_report {
    uint64_t start_ns;
} bench_report;

/* Have the client's statistics every every_s seconds (a whole number of
 * milliseconds) printed as report lines; false, with a message, when the
 * configuration refuses the interval. */
bool bench_report_setup(bench_report *r, parley_conf_t *conf, double every_s);

#endif
