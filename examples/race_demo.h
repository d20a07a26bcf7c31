/*
 * The race-condition demo (docs/race-condition.md): threads increment one
 * shared counter, first unsafely, then with three fixes. The variants are
 * functions, so that the tests run them too; race_demo_main() is the
 * command (`examples/race_demo`, `parley race-demo`).
 */
#ifndef RACE_DEMO_H
#define RACE_DEMO_H

#include <stddef.h>

typedef enum race_variant {
    RACE_UNSAFE, /* read, sleep, write: a data race, on purpose */
    RACE_ATOMIC, /* one atomic fetch-and-add */
    RACE_MUTEX,  /* read, sleep, write under a lock */
    RACE_ACTOR,  /* the counter is an actor's state; threads send to it */
    RACE__COUNT
} race_variant;

typedef struct race_params {
    unsigned threads;    /* threads incrementing at once */
    unsigned increments; /* increments per thread */
    unsigned sleep_ms;   /* the work between reading and writing */
} race_params;

/* "unsafe", "atomic", "mutex", "actor". */
const char *race_variant_name(race_variant v);

/*
 * Run one variant: start the threads together, wait until every increment
 * has been applied, and store in *ms (may be NULL) how long that took.
 * Returns the final count (threads x increments when nothing was lost), or
 * -1 with a sentence in err when it could not run.
 */
long race_run(race_variant v, const race_params *p, double *ms, char *err,
              size_t err_size);

/* The command: [--threads N] [--increments K] [--sleep-ms M]. */
int race_demo_main(int argc, char **argv);

#endif
