/*
 * Public session handles. A handle is not a pointer to its session: a
 * closed session is freed once its last turn has ended, yet its owner may
 * still pass the handle (parley.h promises PARLEY_ERR_STATE, not a crash).
 * So a handle names a slot of one process-wide table and the slot's
 * generation; once its session is freed the handle resolves to nothing,
 * and the slot serves a later session under a new generation. Memory stays
 * bounded by the sessions alive at once, not by every session ever opened.
 */
#ifndef PL_SESSION_TABLE_H
#define PL_SESSION_TABLE_H

#include <stddef.h>

#include "parley.h"

struct pl_session;

/* A handle for s (it holds no reference); NULL when out of memory. */
parley_session_t *pl_session_table_add(struct pl_session *s);

/* The session of handle h with a reference taken (pl_session_unref() it),
 * or NULL when h is NULL, not a handle, or its session has ended. */
struct pl_session *pl_session_table_ref(const parley_session_t *h);

/* The session's id while it has not ended, else NULL: the string lives as
 * long as the session (parley_session_id()). */
const char *pl_session_table_id(const parley_session_t *h);

/* Free the slot of a session whose last reference is gone. Called before
 * the session's memory is freed; from then on h resolves to nothing. */
void pl_session_table_remove(parley_session_t *h);

/* Every live session of client, each with a reference taken, in a malloc'ed
 * array of *n (freed by the caller; NULL only when *n is 0). */
struct pl_session **pl_session_table_ref_client(const parley_client_t *client,
                                                size_t *n);

/* Slots allocated in the table (live sessions plus free slots): the figure
 * tests hold against the number of sessions opened. */
size_t pl_session_table_capacity(void);

#endif
