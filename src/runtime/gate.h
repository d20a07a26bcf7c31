/*
 * A gate: one atomic word holding a "closed" bit and the number of callers
 * between their check that an object is open and the message they post to
 * it. Closing must not let such a message land after the object's last one;
 * so whoever leaves the gate closed and empty (the closer itself, or the
 * last caller still inside) posts the last message, once, and every message
 * of a caller that got in is posted before it. Used by the user actors and
 * by session handles.
 */
#ifndef PL_GATE_H
#define PL_GATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* The closed bit; the bits below count the callers inside. */
#define PL_GATE_CLOSED (UINT32_C(1) << 31)

/* Count a caller in, unless the gate is closed. A compare-and-swap rather
 * than an add, so that a refused caller never changes the count: once the
 * gate is closed and empty it stays so, and the last message is posted once. */
static inline bool pl_gate_enter(_Atomic uint32_t *gate)
{
    uint32_t g = atomic_load(gate);
    do {
        if (g & PL_GATE_CLOSED)
            return false;
    } while (!atomic_compare_exchange_weak(gate, &g, g + 1));
    return true;
}

/* Count a caller out. True when it was the last inside a closed gate: the
 * caller must then post the last message. */
static inline bool pl_gate_leave(_Atomic uint32_t *gate)
{
    return atomic_fetch_sub(gate, 1) == (PL_GATE_CLOSED | 1);
}

/* Close the gate; false when it already was. *empty says whether no caller
 * was inside: the closer must then post the last message itself. */
static inline bool pl_gate_close(_Atomic uint32_t *gate, bool *empty)
{
    uint32_t old = atomic_fetch_or(gate, PL_GATE_CLOSED);
    *empty = old == 0;
    return !(old & PL_GATE_CLOSED);
}

/* Whether the gate is closed (a snapshot). */
static inline bool pl_gate_is_closed(_Atomic uint32_t *gate)
{
    return atomic_load(gate) & PL_GATE_CLOSED;
}

#endif
