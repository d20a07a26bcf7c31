/*
 * How much this process's resident memory grew during an attack: a baseline
 * taken before it, and the peak of samples taken while it runs
 * (/proc/self/statm). Thresholds built on it are generous (tens of MiB) yet
 * catch the GB growth of an unbounded queue or buffer.
 */
#ifndef PL_TEST_MEMWATCH_H
#define PL_TEST_MEMWATCH_H

#include <stddef.h>

typedef struct memwatch {
    size_t base, peak; /* bytes resident */
} memwatch;

/* The resident bytes now. */
size_t memwatch_rss(void);
void memwatch_start(memwatch *w);
/* Sample now; returns the peak growth over the baseline so far. */
size_t memwatch_sample(memwatch *w);

/* What a test may grow by: sanitizers add shadow memory and keep freed
 * blocks in quarantine, so their builds get more room. */
#if defined(__SANITIZE_THREAD__)
#define MEMWATCH_SLACK 4
#elif defined(__SANITIZE_ADDRESS__)
#define MEMWATCH_SLACK 2
#else
#define MEMWATCH_SLACK 1
#endif

#endif
