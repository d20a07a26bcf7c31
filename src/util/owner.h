/*
 * Thread ownership, checked rather than only stated in comments (as
 * librdkafka's locality asserts): a structure that one thread at a time may
 * touch records that thread while it owns it, and code that only the owner
 * may run asserts it. Before the first owner takes it (while it is being
 * set up) any thread may. The checks compile away under NDEBUG.
 */
#ifndef PL_OWNER_H
#define PL_OWNER_H

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>

typedef struct pl_owner {
#ifndef NDEBUG
    pthread_t thread;
    bool taken;
#endif
    char unused; /* a struct needs a member under NDEBUG too */
} pl_owner;

/* The calling thread owns it from now on. The previous owner must be done
 * with it, and ordered before (a thread's start or join). */
static inline void pl_owner_take(pl_owner *o)
{
#ifndef NDEBUG
    o->thread = pthread_self();
    o->taken = true;
#else
    (void)o;
#endif
}

#ifndef NDEBUG
static inline bool pl_owner_is_caller(const pl_owner *o)
{
    return !o->taken || pthread_equal(o->thread, pthread_self());
}
#endif

/* Only the owner may run this. */
#define PL_ASSERT_OWNER(o) assert(pl_owner_is_caller(o))

#endif
