/* Exponential backoff with jitter, for retries and reconnects. */
#ifndef PL_BACKOFF_H
#define PL_BACKOFF_H

#include <stdint.h>

/*
 * The delay before attempt `attempt` + 1 (attempt >= 1 failures so far):
 * min(cap, base x 2^(attempt-1)), minus up to 25 % jitter so that many
 * clients failing together do not return together. rng is the caller's
 * xorshift state (non-zero).
 */
int64_t pl_backoff_ms(int attempt, int base_ms, int cap_ms, uint64_t *rng);

/* The next number of a xorshift64 generator (state must be non-zero). */
uint64_t pl_rand_next(uint64_t *state);

#endif
