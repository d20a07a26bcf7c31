/*
 * Who may start the next request of a load run, and the wait for the run's
 * end. The run has a budget of requests and maybe a time limit; its
 * conversation slots (a slot is a chain of conversations, one after the
 * other) claim each request before sending it and retire when a claim is
 * refused. The run is over when every slot has retired.
 */
#ifndef PARLEY_BENCH_GATE_H
#define PARLEY_BENCH_GATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bench_progress.h"
#include "bench_record.h"

typedef struct bench_gate {
    uint64_t budget;               /* requests the run may start */
    atomic_uint_fast64_t claimed;  /* claims made, refused ones included */
    atomic_bool stopped;           /* the time limit passed */
    pthread_mutex_t mu;
    pthread_cond_t cv;             /* on CLOCK_MONOTONIC */
    unsigned long running;         /* slots not retired; under mu */
    uint64_t end_ns;               /* when the last slot retired; under mu */
} bench_gate;

/* A run of `slots` slots sharing `budget` requests. Returns false when the
 * condition variable could not be made. */
bool bench_gate_init(bench_gate *g, uint64_t budget, unsigned long slots);
void bench_gate_destroy(bench_gate *g);

/* May one more request start? Lock-free; any thread. */
bool bench_gate_claim(bench_gate *g);

/* A slot is done for good (its claim was refused, or it cannot go on). */
void bench_gate_retire(bench_gate *g);

/*
 * Wait until every slot has retired, redrawing the progress bar a few times
 * a second and refusing claims from duration_s (0: no limit) after
 * start_ns. Returns the seconds from start_ns to the last retirement.
 * Everything the slots recorded is visible to the caller afterwards.
 */
double bench_gate_wait(bench_gate *g, bench_record *r, bench_progress *p, uint64_t start_ns,
                       double duration_s);

#endif
