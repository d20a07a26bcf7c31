/*
 * The session store's orders and results, as the sessions (api/) and the
 * I/O thread (engine/io.c) exchange them. The store itself (store.c: one
 * asynchronous hiredis connection driven by the I/O thread's loop) carries
 * them out; nothing here blocks.
 *
 * Keys (docs/cluster.md): every key of session S is
 * "<prefix>{S}:<what>", so one session's keys share a Redis Cluster slot.
 *   hist   a list, one element per completed turn: the turn's two messages
 *          as export writes them ({"role":"user",...},{"role":"assistant",...}
 *          without the brackets), so "[" + elements joined by "," + "]" is
 *          the history parley_session_open_with_history() reads;
 *   last   the request id of the last committed turn (commit's idempotency);
 *   fence  the fencing counter: each acquisition takes the next value;
 *   lease  the owner's name and fence, expiring after the lease time;
 *   pending  the turn in flight (pl_store_order.json), until committed.
 * Every write is a script that checks the writer's fence against `fence`,
 * so a former owner (paused, partitioned) can never write after a newer
 * owner acquired the session.
 */
#ifndef PL_STORE_ORDER_H
#define PL_STORE_ORDER_H

#include <stddef.h>
#include <stdint.h>

#include "mpsc.h"

typedef enum pl_store_op {
    /* Take the lease of `session` (or find it held by another live owner),
     * and read its history and its pending turn, in one round trip. */
    PL_STORE_ACQUIRE = 1,
    /* Record the turn about to be sent (json: {"id":"<request id>",
     * "turn":<index>,"user":<the user message object>}), replacing any;
     * json NULL: clear it (the turn failed or was cancelled). */
    PL_STORE_PENDING,
    /* Append the completed turn `turn` (json: the element of hist), clear
     * pending, set last = request_id; idempotent: a commit of the turn
     * already last with the same request_id answers OK. */
    PL_STORE_COMMIT,
    /* Give the lease up (session closed). */
    PL_STORE_RELEASE
} pl_store_op;

typedef enum pl_store_status {
    PL_STORE_OK = 0,
    PL_STORE_OWNED,       /* ACQUIRE: another owner's lease is live */
    PL_STORE_FENCED,      /* a newer owner acquired the session: write refused */
    PL_STORE_CONFLICT,    /* COMMIT: the list does not end at turn - 1 */
    PL_STORE_UNAVAILABLE  /* no answer within the order's deadline */
} pl_store_status;

/* One order; the submitter allocates it, the I/O thread owns it until the
 * sink's store_done returns, then frees it with pl_store_order_free(). */
typedef struct pl_store_order {
    pl_mpsc_node entry;     /* the I/O thread's queue (pl_io_store); not the submitter's */
    pl_store_op op;
    void *owner;            /* its session, holding a reference */
    const char *session;    /* the session's id, as long as owner lives */
    uint64_t fence;         /* PENDING, COMMIT, RELEASE: the owner's */
    uint64_t request_id;    /* PENDING, COMMIT */
    uint32_t turn;          /* PENDING, COMMIT: 0-based index of the turn */
    char *json;             /* PENDING, COMMIT: owned by the order */
    size_t json_len;
    int64_t deadline_ms;    /* monotonic; retried until then, then UNAVAILABLE */
    int64_t not_before_ms;  /* monotonic; not sent before (an ACQUIRE waiting
                               for another owner's lease); 0: at once */
} pl_store_order;

/* What came back, valid during the sink's store_done call only. */
typedef struct pl_store_result {
    pl_store_status status;
    uint64_t fence;          /* ACQUIRE OK: the owner's new fence */
    int64_t lease_left_ms;   /* ACQUIRE OWNED: until the other lease expires */
    const char *history;     /* ACQUIRE OK: "[...]", "[]" for a new session */
    size_t history_len;
    uint32_t turns;          /* ACQUIRE OK: elements of hist */
    const char *pending;     /* ACQUIRE OK: the pending json, NULL: none */
    size_t pending_len;
    const char *message;     /* not OK: a sentence for the error event */
} pl_store_result;

/* Frees the order and its json (store_order.c). */
void pl_store_order_free(pl_store_order *order);

#endif
