/*
 * A session's history: its completed turns, user and assistant in turn,
 * each a plain string or a compact JSON array of blocks. Exported and
 * imported as JSON in the Anthropic messages shape; trimmed by whole turns.
 * Touched only by the session's actor (or before the session runs).
 */
#ifndef PL_HISTORY_H
#define PL_HISTORY_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "protocol.h"

typedef struct pl_history {
    pl_history_turn *turns; /* contents owned (malloc'd) */
    size_t n, cap;
    size_t bytes;           /* sum of the contents' lengths */
    size_t with_blocks;     /* messages whose content is blocks */
} pl_history;

/* Append a message, taking content. */
void pl_history_append(pl_history *h, bool assistant, bool blocks, char *content, size_t len);

/*
 * Drop the oldest whole turns (a user message and its reply) until at most
 * max_turns turns (0: any number) and max_bytes bytes of content (0: any)
 * are left. A turn whose user message answers a dropped tool call goes
 * with it, so the history never starts with tool results. Returns the
 * number of turns dropped.
 */
size_t pl_history_trim(pl_history *h, size_t max_turns, size_t max_bytes);

/* Append one message as export writes it: {"role":...,"content":...}.
 * Returns 0, or -1 when memory ran out. */
PL_BUF_MUST_CHECK int pl_history_write_message(pl_buf *out, const pl_history_turn *t);

/* Append the history as a JSON array of {"role","content"} messages.
 * Returns 0, or -1 when memory ran out. */
PL_BUF_MUST_CHECK int pl_history_export(const pl_history *h, pl_buf *out);

/*
 * Replace an empty history with the conversation in json (as export writes
 * it; checked as pl_conversation_check() says). Returns 0, or -1 with a
 * sentence in err.
 */
int pl_history_import(pl_history *h, const char *json, size_t len, char *err, size_t err_size);

void pl_history_free(pl_history *h);

#endif
