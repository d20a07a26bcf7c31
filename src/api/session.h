/*
 * A session: one conversation, run as an actor. Its state (the history, the
 * turn in flight, the turns waiting) is touched only by the worker running
 * it. The I/O thread reports replies by posting to it.
 */
#ifndef PL_SESSION_H
#define PL_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actor.h"
#include "gate.h"
#include "history.h"
#include "io.h"
#include "parley.h"
#include "protocol.h"
#include "request_options.h"
#include "session_lease.h"

typedef struct pl_session pl_session;

struct pl_session {
    pl_actor actor;
    parley_client_t *client;

    /* Actor state (and max_tokens below). */
    pl_history history;
    size_t history_max_turns, history_max_bytes; /* 0: no limit */
    struct pl_request *inflight;
    struct pl_request *waiting_head, *waiting_tail;
    char *model;          /* NULL: the client's */
    char *system_prompt;  /* NULL: the client's */
    /* The session's own request options (unset ones: the client's); NULL
     * until one is set, so that an idle session does not carry a table of
     * them (a few hundred bytes). */
    pl_request_options *options;
    pl_session_lease lease;     /* with a session store (session_store.h) */

    /* What the caller holds and events show (session_table.h); resolves to
     * nothing once this memory is freed. */
    parley_session_t *handle;

    /* The small members last, so that they pack, and the id right after
     * them: a server holds many sessions, mostly idle, and ids are much
     * shorter than the protocol's 128 bytes, so the allocation is sized to
     * the id (a generated one is about 20 bytes). */
    uint32_t max_tokens;  /* actor state; 0: the client's */
    _Atomic int unfinished; /* turns accepted and not ended (session.queue.max) */
    /* The handle's callers between their check that the session is open
     * and their post, and the closed bit (gate.h): closed once, by
     * parley_session_close or destroy. */
    _Atomic uint32_t gate;
    char id[];           /* NUL-terminated, at most PL_PROTO_SESSION_MAX bytes */
};

/* Close the handle, once: its reference is dropped through the session's
 * mailbox after the last message of a caller that got in before. Returns
 * false when the session was already closed. */
bool pl_session_close_once(pl_session *session);

/* Results from the I/O thread, posted to the session named as a request's
 * owner (text, done, error, release; no statistics). An error's message is
 * made safe to show first (safe_text.h): it may quote a server, which may
 * echo the API key or send control characters. */
extern const pl_io_sink pl_session_sink;

void pl_session_ref(pl_session *s);
void pl_session_unref(pl_session *s);

#endif
