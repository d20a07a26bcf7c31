/*
 * What a session's actor handles: its turns (pl_request) and the messages
 * posted to its mailbox by the callers, the I/O thread and the store.
 * Shared by session.c and session_store.c only.
 */
#ifndef PL_SESSION_MSG_H
#define PL_SESSION_MSG_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actor.h"
#include "parley.h"
#include "reply.h"
#include "reply_assembly.h"
#include "request_options.h"
#include "store_order.h"

/* Where a turn stands: QUEUED -> SENT, then SAVING with a store. */
typedef enum pl_request_phase {
    PL_REQ_QUEUED = 0, /* waiting for the turn before it */
    PL_REQ_SENT,       /* with the I/O thread */
    PL_REQ_SAVING      /* replied; its COMMIT is on the way to the store */
} pl_request_phase;

/* One user turn, from parley_send() to its terminal event. */
typedef struct pl_request {
    uint64_t id;
    char *content;
    size_t content_len;
    bool content_blocks; /* content is a JSON array of blocks */
    void *opaque;        /* the caller's, on every event */
    pl_reply reply;      /* the pieces so far, kept for the history */
    int64_t accepted_us; /* when parley_send() took it: latency starts here */
    bool piece_seen;     /* its first piece arrived (time to first token) */
    /* With a session store (session_store.h): where the turn stands, and
     * what waits for the store's answer. */
    pl_request_phase phase;
    struct done_msg *done; /* SAVING: how the reply ended, delivered once saved */
    char *kept;            /* SAVING: the reply as the history keeps it */
    size_t kept_len;
    bool kept_blocks;
    struct pl_request *next;
} pl_request;

enum session_msg_kind {
    MSG_SEND = 1,
    MSG_SET,
    MSG_CANCEL,
    MSG_CLOSE,
    MSG_PIECE,
    MSG_DONE,
    MSG_ERROR,
    MSG_EXPORT,
    MSG_STORE,      /* a store order ended (store_msg) */
    MSG_LEASE_LOST, /* the session's lease went to another owner (error_msg) */
    MSG_READY       /* parley_session_ready() asks (answer_msg) */
};

typedef struct send_msg {
    pl_actor_msg base;
    pl_request *req;
} send_msg;

/* A per-session option, parsed by the caller; unset returns to the
 * client's. */
typedef struct set_msg {
    pl_actor_msg base;
    enum { SET_MODEL, SET_SYSTEM, SET_MAX_TOKENS, SET_REQUEST_OPTION, SET_HISTORY_TURNS,
           SET_HISTORY_BYTES } what;
    pl_request_option option; /* SET_REQUEST_OPTION */
    pl_option_value value;    /* SET_REQUEST_OPTION */
    uint64_t number;
    char *text;
} set_msg;

typedef struct cancel_msg {
    pl_actor_msg base;
    uint64_t id;
} cancel_msg;

/* A piece from the I/O thread; its strings follow it, each NUL-terminated,
 * in the order text, signature, tool id, tool name. */
typedef struct piece_msg {
    pl_actor_msg base;
    uint64_t id;
    uint32_t seq, block;
    pl_piece_kind kind;
    size_t len;
    bool has_signature;
    char data[];
} piece_msg;

/* How a reply ended; stop_sequence, message_id and vendor_request_id
 * follow it in data (each NUL-terminated, empty when absent). */
typedef struct done_msg {
    pl_actor_msg base;
    uint64_t id;
    uint64_t input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens;
    char stop_reason[32]; /* the longest vendor reason is 29 bytes */
    char data[];
} done_msg;

typedef struct error_msg {
    pl_actor_msg base;
    uint64_t id;
    parley_err_t err;
    char message[];
} error_msg;

/* A caller waiting for the session's answer (parley_session_export,
 * parley_session_ready): shared by the caller and the message, freed by
 * whichever lets go last (the caller may time out). */
typedef struct answer_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic int refs;
    bool answered;
    char *json;              /* export */
    size_t len;
    parley_err_t err;        /* ready */
    uint64_t recovered_id;   /* ready */
    struct answer_wait *next; /* ready: the session's list of waiters */
} answer_wait;

typedef struct answer_msg {
    pl_actor_msg base;
    answer_wait *wait;
} answer_msg;

/* A store order's end (store_order.h), copied for the session: the
 * history, the pending turn and the message follow it in data, each
 * NUL-terminated. */
typedef struct store_msg {
    pl_actor_msg base;
    pl_store_op op;
    pl_store_status status;
    uint64_t request_id;
    uint64_t fence;
    int64_t lease_left_ms;
    uint32_t turns;
    size_t history_len, pending_len;
    bool has_pending;
    char data[];
} store_msg;


/* ---- what session.c lends session_store.c ----------------------------- */

struct pl_session;

/* The one terminal event of req: ERROR. Frees req; the session's next turn
 * is the caller's to start. */
void pl_session_fail(struct pl_session *s, pl_request *req, parley_err_t err,
                     const char *message);
/* The turn in flight is complete: DONE (the text of kept when it is one
 * text block, else the reply's), then kept (may be NULL: nothing to keep)
 * joins the history with the user's message. Frees req, starts the next. */
void pl_session_finish(struct pl_session *s, pl_request *req, const done_msg *m, char *kept,
                       bool kept_blocks, size_t kept_len);
/* Hand the encoded turn to the I/O thread; false when the client is
 * shutting down (the frame is freed either way). */
bool pl_session_submit(struct pl_session *s, pl_request *req, char *frame, size_t len,
                       const char *headers, bool needs_blocks);
void pl_session_start_next(struct pl_session *s);
/* Whether this thread is running one of s's messages (its callbacks). */
bool pl_session_is_running(const struct pl_session *s);
/* A caller of the public API is done posting to the session (gate.h). */
void pl_session_leave(struct pl_session *s);
/* Post a question (MSG_EXPORT, MSG_READY) to s and wait up to timeout_ms
 * (negative: no limit) for the answer: the wait, answered or not, to read
 * under its mutex and let go with pl_answer_release(); NULL when memory
 * ran out. */
answer_wait *pl_session_ask(struct pl_session *s, int kind, int timeout_ms);
/* Answer a waiting caller and let go of the message's share. */
void pl_answer_give(answer_wait *w);
void pl_answer_release(answer_wait *w);

#endif
