/*
 * The assistant reply being received, block by block (text, thinking with
 * its signature, tool calls), so that the history keeps the whole turn as
 * the vendors require it on the next request, and DONE can show its text.
 * Touched only by the session's actor.
 */
#ifndef PL_REPLY_ASSEMBLY_H
#define PL_REPLY_ASSEMBLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "reply.h"

typedef struct pl_reply_block {
    pl_piece_kind kind;
    uint32_t index;      /* the server's block index */
    pl_buf text;         /* text, thinking, or a tool call's input JSON */
    char *signature;     /* thinking */
    char *tool_id, *tool_name;
} pl_reply_block;

typedef struct pl_reply {
    pl_reply_block *blocks;
    size_t n, cap;
    pl_buf joined;       /* the text blocks joined, when there are several */
} pl_reply;

/* Add a piece to its block (a new block when its index is new). */
void pl_reply_add(pl_reply *r, const pl_piece *piece);

/* The reply's text: its text blocks, in order, joined without separator.
 * Valid until the next call on r. */
const char *pl_reply_text(pl_reply *r, size_t *len);

/*
 * Hand over what the history keeps of the reply (malloc'd): a plain string
 * when it is one text block, else a JSON array of its blocks (*blocks true),
 * without what a vendor would refuse on the next turn (empty text, thinking
 * without signature). NULL when nothing is left to keep.
 */
char *pl_reply_take_history(pl_reply *r, bool *blocks, size_t *len);

void pl_reply_free(pl_reply *r);

#endif
