/* A user turn built from blocks (parley_turn_t). */
#ifndef PL_TURN_H
#define PL_TURN_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "parley.h"

struct parley_turn {
    pl_buf blocks;   /* the block objects, compact JSON, joined by commas */
    size_t nblocks;
    bool text_only;  /* one text block: sent as a plain string */
    pl_buf text;     /* that block's text */
};

/* The turn's content as a turn carries it (malloc'd): a plain string for a
 * turn of one text block, else the JSON array of its blocks (*blocks).
 * Returns 0, or -1 when memory ran out. */
int pl_turn_content(const parley_turn_t *turn, char **content, size_t *len, bool *blocks);

#endif
