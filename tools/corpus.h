/*
 * A deterministic generator of realistic parley.v1 messages: what a client
 * and a server put on the wire during chat conversations. `make dict`
 * trains the zstd dictionary on it (seed 1) and the compression benchmark
 * measures on it (seed 2), so both see the same kind of traffic but never
 * the same messages.
 *
 * Same seed, same messages, on every machine: the generator uses its own
 * PRNG and no floating point.
 */
#ifndef PL_CORPUS_H
#define PL_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef enum pl_corpus_kind {
    PL_CORPUS_MIXED = 0, /* a kind drawn with its share of real traffic */
    PL_CORPUS_MESSAGE,   /* client `message`: a turn with its history */
    PL_CORPUS_TEXT,      /* server `text`: one streamed piece */
    PL_CORPUS_DONE,
    PL_CORPUS_ACK,
    PL_CORPUS_HELLO,
    PL_CORPUS_ERROR,
    PL_CORPUS_CANCEL
} pl_corpus_kind;

typedef struct pl_corpus {
    uint64_t rng;
    int64_t clock_ms; /* Unix ms; moves forward a little per message */
} pl_corpus;

void pl_corpus_init(pl_corpus *c, uint64_t seed);

/* Append one message of `kind` (one JSON object, no newline) to out.
 * Returns 0, or -1 when memory ran out. */
int pl_corpus_next(pl_corpus *c, pl_corpus_kind kind, pl_buf *out);

/*
 * Append a client `message` of lo..hi bytes (160 <= lo, lo + 32 <= hi):
 * earlier turns are added to its history, and the last one shortened,
 * until it fits. Returns 0, or -1 when memory ran out.
 */
int pl_corpus_message_sized(pl_corpus *c, size_t lo, size_t hi, pl_buf *out);

#endif
