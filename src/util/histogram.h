/*
 * A latency histogram that any thread records into without a lock: log-linear
 * buckets over microseconds (8 sub-buckets per power of two, so a reported
 * percentile is within 12.5 % of the true value), relaxed atomic counters.
 * Readers take a snapshot, which is consistent enough for statistics: a
 * value recorded during the copy may or may not be in it.
 */
#ifndef PL_HISTOGRAM_H
#define PL_HISTOGRAM_H

#include <stdatomic.h>
#include <stdint.h>

#define PL_HIST_SUB_BITS 3
#define PL_HIST_SUB (1u << PL_HIST_SUB_BITS)
/* Exact below PL_HIST_SUB us, then PL_HIST_SUB buckets per power of two up
 * to 2^40 us (12.7 days): longer values land in the last bucket. */
#define PL_HIST_BUCKETS (PL_HIST_SUB + (40 - PL_HIST_SUB_BITS) * PL_HIST_SUB)

typedef struct pl_histogram {
    _Atomic uint64_t buckets[PL_HIST_BUCKETS];
    _Atomic uint64_t count, sum_us, max_us;
} pl_histogram;

typedef struct pl_histogram_snapshot {
    uint64_t buckets[PL_HIST_BUCKETS];
    uint64_t count, sum_us, max_us;
} pl_histogram_snapshot;

void pl_histogram_record(pl_histogram *h, uint64_t us);
void pl_histogram_snapshot_take(pl_histogram *h, pl_histogram_snapshot *out);
/* The value below which a fraction q (0 < q <= 1) of the recorded values
 * lie, as the upper bound of its bucket (capped at the maximum seen);
 * 0 when nothing was recorded. */
uint64_t pl_histogram_percentile(const pl_histogram_snapshot *s, double q);
/* Bucket index of a value, and the largest value of a bucket (for tests
 * and for writing the buckets out). */
unsigned pl_histogram_bucket_of(uint64_t us);
uint64_t pl_histogram_bucket_max(unsigned bucket);

#endif
