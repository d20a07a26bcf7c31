/*
 * The gateway's named conversations: each name maps to one parley session,
 * opened on first use and kept open until shutdown, so every turn sent to
 * it carries the conversation so far. Each turn is sent with the HTTP
 * reply's stream as its opaque pointer, so that the event callback hands
 * each event to the reply that asked for it without any lookup.
 *
 * Every call into parley from MHD's threads goes through here, behind a
 * gate that shutdown closes before destroying the client: after
 * gw_sessions_detach() no MHD thread touches parley again.
 */
#ifndef GATEWAY_SESSIONS_H
#define GATEWAY_SESSIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway_stream.h"
#include "parley.h"

typedef struct gw_sessions gw_sessions;

/* An empty registry of at most max_sessions names; NULL when out of memory. */
gw_sessions *gw_sessions_new(size_t max_sessions);

/* The client whose sessions these are; set once, before the first send.
 * per_turn (a client with a session store): each turn opens its
 * conversation and closes it, instead of keeping it open until shutdown,
 * so that the next turn may go to another gateway (docs/cluster.md). */
void gw_sessions_attach(gw_sessions *reg, parley_client_t *client, bool per_turn);

/* The client's event callback (parley_conf_set_event_cb; its opaque is
 * unused): runs on parley's workers and hands each event to its turn's
 * stream, the request's opaque pointer. */
void gw_sessions_on_event(parley_client_t *client, const parley_event_t *ev,
                          void *unused);

/*
 * Send content as the next turn of the conversation `name` (opened if new),
 * its events going to `stream`, which the turn references until its
 * terminal event. On PARLEY_OK, *session and *request_id identify the turn
 * for gw_sessions_cancel() (the handle may be closed already: per_turn). Otherwise no event will come, and `why` (at most
 * why_size bytes) says what was wrong: PARLEY_ERR_QUEUE_FULL also when
 * max_sessions names are in use, PARLEY_ERR_SHUTDOWN once shutdown began,
 * or what parley_send() returned.
 */
parley_err_t gw_sessions_send(gw_sessions *reg, const char *name, const char *content,
                              gw_stream *stream, parley_session_t **session,
                              uint64_t *request_id, char *why, size_t why_size);

/* Cancel a turn whose client went away (ignored once shutdown closed the
 * gate, or when the turn already ended). */
void gw_sessions_cancel(gw_sessions *reg, parley_session_t *session, uint64_t request_id);

/* Shutdown, step 1: from now on sends fail with PARLEY_ERR_SHUTDOWN. */
void gw_sessions_stop_sending(gw_sessions *reg);

/* Shutdown, step 2: waits for any call into parley in progress on an MHD
 * thread; none starts afterwards, so the client may be destroyed. */
void gw_sessions_detach(gw_sessions *reg);

/* Free the registry, after parley_client_destroy() (which freed the session
 * handles and delivered every terminal event). */
void gw_sessions_free(gw_sessions *reg);

#endif
