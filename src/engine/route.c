#include "route.h"

#include <stdlib.h>

#include "alloc.h"

/* Snowflake ids share their high bits within a millisecond; a multiplicative
 * hash spreads the low-order differences over the bucket index. */
static size_t bucket_of(const pl_route_table *t, uint64_t id)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & (t->nbuckets - 1);
}

void pl_route_table_init(pl_route_table *t)
{
    t->nbuckets = 256;
    t->buckets = pl_xcalloc(t->nbuckets, sizeof(*t->buckets));
    t->count = 0;
}

void pl_route_table_free(pl_route_table *t)
{
    free(t->buckets);
    t->buckets = NULL;
    t->nbuckets = t->count = 0;
}

static void grow(pl_route_table *t)
{
    pl_route_table bigger = {.nbuckets = t->nbuckets * 2, .count = t->count};
    bigger.buckets = pl_xcalloc(bigger.nbuckets, sizeof(*bigger.buckets));
    for (size_t i = 0; i < t->nbuckets; i++) {
        pl_route *r = t->buckets[i];
        while (r) {
            pl_route *next = r->next;
            size_t b = bucket_of(&bigger, r->tx.id);
            r->next = bigger.buckets[b];
            bigger.buckets[b] = r;
            r = next;
        }
    }
    free(t->buckets);
    *t = bigger;
}

void pl_route_insert(pl_route_table *t, pl_route *r)
{
    if (t->count >= t->nbuckets)
        grow(t);
    size_t b = bucket_of(t, r->tx.id);
    r->next = t->buckets[b];
    t->buckets[b] = r;
    t->count++;
}

pl_route *pl_route_find(const pl_route_table *t, uint64_t id)
{
    for (pl_route *r = t->buckets[bucket_of(t, id)]; r; r = r->next)
        if (r->tx.id == id)
            return r;
    return NULL;
}

pl_route *pl_route_remove(pl_route_table *t, uint64_t id)
{
    pl_route **link = &t->buckets[bucket_of(t, id)];
    for (; *link; link = &(*link)->next) {
        pl_route *r = *link;
        if (r->tx.id == id) {
            *link = r->next;
            r->next = NULL;
            t->count--;
            return r;
        }
    }
    return NULL;
}

void pl_route_foreach(pl_route_table *t, void (*fn)(pl_route *r, void *arg),
                      void *arg)
{
    for (size_t i = 0; i < t->nbuckets; i++) {
        pl_route *r = t->buckets[i];
        while (r) {
            pl_route *next = r->next;
            fn(r, arg);
            r = next;
        }
    }
}
