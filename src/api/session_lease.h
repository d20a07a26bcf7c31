/*
 * A session's standing in the session store (docs/cluster.md): its lease,
 * the fencing token its writes carry, and how many turns the store holds.
 * Actor state of the session; session_store.c moves it.
 */
#ifndef PL_SESSION_LEASE_H
#define PL_SESSION_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "parley.h"

typedef enum pl_lease_state {
    PL_LEASE_NONE = 0, /* the memory store: nothing to take */
    PL_LEASE_TAKING,   /* ACQUIRE on its way: turns wait */
    PL_LEASE_HELD,     /* the history is loaded, writes carry `fence` */
    PL_LEASE_FAILED    /* never taken, or lost: every turn ends with `err` */
} pl_lease_state;

struct answer_wait;

typedef struct pl_session_lease {
    pl_lease_state state;
    parley_err_t err;          /* FAILED: SESSION_OWNED or STORE */
    char *why;                 /* FAILED: the sentence of its error events */
    uint64_t fence;
    uint32_t stored_turns;     /* turns in the store (the memory may hold fewer) */
    uint64_t recovered_id;     /* a dead owner's turn, sent again; 0: none */
    int64_t wait_until_ms;     /* monotonic: an owned session is waited for until then */
    bool held;                 /* the store holds a lease for us (until RELEASE) */
    bool closing;              /* the handle is closed: give the lease back once idle */
    struct answer_wait *ready; /* parley_session_ready() callers until not TAKING */
} pl_session_lease;

#endif
