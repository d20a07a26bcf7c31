/*
 * What a load run measures, recorded from many threads at once and summed
 * up at the end as the one JSON line both `parley bench` and the baseline
 * tests/bench/direct print.
 *
 * Recording is cheap enough for the threads that do the work: the sample
 * arrays are allocated once for every request the run may make, and a
 * sample takes one atomic increment (its slot) and one store. Percentiles
 * are exact (the samples are sorted once, at the end). The summary must run
 * after every recording thread is done with the record and that end was
 * synchronised with (bench_gate_wait() does both).
 */
#ifndef PARLEY_BENCH_RECORD_H
#define PARLEY_BENCH_RECORD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct bench_record {
    size_t capacity;      /* samples each array holds: the request budget */
    uint32_t *latency_us; /* send to the end of the reply, per DONE */
    uint32_t *ttft_us;    /* send to the first piece, per reply that had one */
    atomic_size_t nlatency, nttft;
    atomic_uint_fast64_t finished;   /* requests that ended, either way */
    atomic_uint_fast64_t errors;     /* ended without a reply */
    atomic_uint_fast64_t mismatches; /* a reply other than the echo model's */
} bench_record;

/* Nanoseconds on the monotonic clock. */
uint64_t bench_now_ns(void);

/* Room for `capacity` requests. Returns false when out of memory. The
 * counters may be read (relaxed) during the run, e.g. for progress. */
bool bench_record_init(bench_record *r, size_t capacity);
void bench_record_free(bench_record *r);

/* A request that ended with its reply, sent at sent_ns; first_piece_ns is
 * 0 when the reply came in no piece. `matches`: the reply was the expected
 * one. Thread-safe; at most `capacity` calls. */
void bench_record_reply(bench_record *r, uint64_t sent_ns, uint64_t first_piece_ns,
                        uint64_t end_ns, bool matches);

/* A request that ended without a reply (or could not be sent). */
void bench_record_error(bench_record *r);

/* What the record cannot know: the client's counters and the run's span. */
typedef struct bench_totals {
    uint64_t retries;
    uint64_t connections;
    double elapsed_s; /* from the first send to the last end */
} bench_totals;

/*
 * Print the summary as one JSON line, with the process's CPU time and peak
 * memory so far: requests, errors, mismatches, retries, connections, rps,
 * lat_ms_mean, lat_ms_p50/p90/p99/max, ttft_ms_p50/p99, cpu_s, max_rss_mb. A
 * mean or percentile with no sample is null. Sorts the samples: call once, after the run.
 */
void bench_record_print_json(bench_record *r, const bench_totals *t, FILE *out);

#endif
