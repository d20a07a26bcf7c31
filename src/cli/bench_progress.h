/*
 * The progress bar of a load run, on stderr and only when stderr is a
 * terminal: stdout stays the results alone, and a log of a run piped to a
 * file holds no carriage-return noise.
 */
#ifndef PARLEY_BENCH_PROGRESS_H
#define PARLEY_BENCH_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct bench_progress {
    bool on;           /* stderr is a terminal */
    bool drawn;        /* a bar is on the screen, to be cleared */
    uint64_t total;    /* requests the run may make */
    double duration_s; /* its time limit; 0: none */
    uint64_t start_ns;
} bench_progress;

void bench_progress_init(bench_progress *p, uint64_t total, double duration_s,
                         uint64_t start_ns);

/* Redraw the bar: the share done (of the requests or of the time, whichever
 * is further along), requests finished, their rate so far, errors. */
void bench_progress_show(bench_progress *p, uint64_t finished, uint64_t errors,
                         uint64_t now_ns);

/* Erase the bar, so that what follows starts on a clean line. */
void bench_progress_clear(bench_progress *p);

#endif
