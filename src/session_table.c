/* Public session handles: slot and generation in one process-wide table. */
#include "session_table.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "alloc.h"
#include "session.h"

/* A handle's bits, from the lowest: a 1 (no object pointer is odd, so a
 * handle never passes for one and is never NULL), the slot index, then the
 * slot's generation, as wide as the pointer allows: a stale handle could
 * only resolve again after the slot has served 2^32 sessions (2^11 where
 * pointers are 32 bits wide). */
#if UINTPTR_MAX > 0xffffffffu
#define INDEX_BITS 31
#else
#define INDEX_BITS 20
#endif
#define GEN_BITS (sizeof(uintptr_t) * 8 - 1 - INDEX_BITS)
#define INDEX_LIMIT ((uint32_t)1 << INDEX_BITS)
#define GEN_MASK ((uint32_t)(((uint64_t)1 << GEN_BITS) - 1))

typedef struct slot {
    struct pl_session *session; /* NULL: free */
    uint32_t gen;
    uint32_t next_free; /* index + 1 of the next free slot; 0 ends the list */
} slot;

/* One lock for the whole table: a lookup and the reference it takes must
 * not interleave with the removal that precedes a session's free(). The
 * sections are a few instructions long. */
static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static slot *slots;
static uint32_t nslots, slots_cap;
static uint32_t free_head; /* index + 1; 0: no free slot */

static parley_session_t *encode(uint32_t index, uint32_t gen)
{
    uintptr_t v = ((uintptr_t)gen << (INDEX_BITS + 1)) | ((uintptr_t)index << 1) | 1u;
    return (parley_session_t *)v;
}

/* The slot handle h names while it is current; NULL otherwise. Under table_mu. */
static slot *lookup(const parley_session_t *h)
{
    uintptr_t v = (uintptr_t)h;
    if (!(v & 1u))
        return NULL;
    uint32_t index = (uint32_t)((v >> 1) & (INDEX_LIMIT - 1));
    uint32_t gen = (uint32_t)(v >> (INDEX_BITS + 1));
    if (index >= nslots || slots[index].gen != gen || !slots[index].session)
        return NULL;
    return &slots[index];
}

parley_session_t *pl_session_table_add(struct pl_session *s)
{
    parley_session_t *h = NULL;
    pthread_mutex_lock(&table_mu);
    uint32_t index;
    if (free_head) {
        index = free_head - 1;
        free_head = slots[index].next_free;
    } else {
        if (nslots == slots_cap) {
            uint32_t cap = slots_cap ? slots_cap * 2 : 64;
            if (cap > INDEX_LIMIT)
                cap = INDEX_LIMIT;
            slot *grown = cap > slots_cap ? realloc(slots, cap * sizeof(*grown)) : NULL;
            if (!grown)
                goto out; /* out of memory, or every index in use */
            slots = grown;
            slots_cap = cap;
        }
        index = nslots++;
        slots[index].gen = 0;
    }
    slots[index].session = s;
    slots[index].next_free = 0;
    h = encode(index, slots[index].gen);
out:
    pthread_mutex_unlock(&table_mu);
    return h;
}

struct pl_session *pl_session_table_ref(const parley_session_t *h)
{
    pthread_mutex_lock(&table_mu);
    slot *sl = lookup(h);
    struct pl_session *s = sl ? sl->session : NULL;
    if (s && !pl_actor_try_ref(&s->actor))
        s = NULL; /* its last reference is gone: it is being freed */
    pthread_mutex_unlock(&table_mu);
    return s;
}

const char *pl_session_table_id(const parley_session_t *h)
{
    pthread_mutex_lock(&table_mu);
    slot *sl = lookup(h);
    const char *id = sl ? sl->session->id : NULL;
    pthread_mutex_unlock(&table_mu);
    return id;
}

void pl_session_table_remove(parley_session_t *h)
{
    pthread_mutex_lock(&table_mu);
    slot *sl = lookup(h);
    if (sl) {
        uint32_t index = (uint32_t)(sl - slots);
        sl->session = NULL;
        sl->gen = (sl->gen + 1) & GEN_MASK;
        sl->next_free = free_head;
        free_head = index + 1;
    }
    pthread_mutex_unlock(&table_mu);
}

struct pl_session **pl_session_table_ref_client(const parley_client_t *client, size_t *n)
{
    pthread_mutex_lock(&table_mu);
    size_t count = 0;
    for (uint32_t i = 0; i < nslots; i++)
        if (slots[i].session && slots[i].session->client == client)
            count++;
    struct pl_session **live = count ? pl_xmalloc(count * sizeof(*live)) : NULL;
    size_t nlive = 0;
    for (uint32_t i = 0; i < nslots && nlive < count; i++) {
        struct pl_session *s = slots[i].session;
        if (s && s->client == client && pl_actor_try_ref(&s->actor))
            live[nlive++] = s;
    }
    pthread_mutex_unlock(&table_mu);
    *n = nlive;
    if (!nlive) {
        free(live);
        return NULL;
    }
    return live;
}

size_t pl_session_table_capacity(void)
{
    pthread_mutex_lock(&table_mu);
    size_t n = nslots;
    pthread_mutex_unlock(&table_mu);
    return n;
}
