/*
 * A session kept in the session store (docs/cluster.md): its lease taken
 * and its history loaded when it opens, each turn recorded before it is
 * sent and saved before its DONE, the lease given back when it closes. The
 * store's orders go through the I/O thread (store_order.h); their answers
 * come back as messages of the session's actor, so no worker ever waits on
 * the store. Without a store (session.store=memory) every call here does
 * nothing and turns go straight to the I/O thread.
 */
#ifndef PL_SESSION_STORE_H
#define PL_SESSION_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "session_msg.h"

struct pl_session;

/* The session was just published: take its lease and load its history. */
void pl_session_store_open(struct pl_session *s);

/* Turns wait: the history is still on its way from the store. */
bool pl_session_store_loading(const struct pl_session *s);

/* The session could not be had (owned elsewhere, the store out of reach):
 * req ends now with that error, and true is returned. */
bool pl_session_store_refuses(struct pl_session *s, pl_request *req);

/* Record req, about to be sent, as the session's turn in flight. The turn
 * does not wait for the answer: the record reaches the store before the
 * turn's save (the store's orders keep their order), and a turn whose
 * record failed cannot be saved either. */
void pl_session_store_record(struct pl_session *s, pl_request *req);

/* The reply of req is complete: save the turn (user message and kept)
 * before its DONE. Returns true when it took over (the DONE comes once
 * saved), false without a store or with nothing to save. */
bool pl_session_store_save(struct pl_session *s, pl_request *req, const done_msg *m,
                           char *kept, bool kept_blocks, size_t kept_len);

/* req failed after it was recorded: its record goes, so that no later owner
 * sends it again. */
void pl_session_store_forget(struct pl_session *s, pl_request *req);

/* A closed session with no turn left gives its lease back (after each
 * pass over the waiting turns, and at the close). */
void pl_session_store_release_if_done(struct pl_session *s);

/* The handle was closed. */
void pl_session_store_closing(struct pl_session *s);

/* MSG_STORE, MSG_LEASE_LOST and MSG_READY. */
void pl_session_store_handle(struct pl_session *s, pl_actor_msg *msg);

/* The I/O thread's reports (sink.h), posted to the session. */
void pl_session_post_store_done(void *owner, const pl_store_order *order,
                                const pl_store_result *result);
void pl_session_post_lease_lost(void *owner, const char *message);

#endif
