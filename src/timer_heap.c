#include "timer_heap.h"

#include <stdlib.h>

#include "alloc.h"

static void swap(pl_timer *a, pl_timer *b)
{
    pl_timer t = *a;
    *a = *b;
    *b = t;
}

void pl_timer_push(pl_timer_heap *h, pl_timer t)
{
    if (h->len == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 256;
        h->items = pl_xrealloc(h->items, h->cap * sizeof(*h->items));
    }
    size_t i = h->len++;
    h->items[i] = t;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->items[parent].due_ms <= h->items[i].due_ms)
            break;
        swap(&h->items[parent], &h->items[i]);
        i = parent;
    }
}

const pl_timer *pl_timer_peek(const pl_timer_heap *h)
{
    return h->len ? &h->items[0] : NULL;
}

bool pl_timer_pop(pl_timer_heap *h, pl_timer *out)
{
    if (!h->len)
        return false;
    *out = h->items[0];
    h->items[0] = h->items[--h->len];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, min = i;
        if (l < h->len && h->items[l].due_ms < h->items[min].due_ms)
            min = l;
        if (r < h->len && h->items[r].due_ms < h->items[min].due_ms)
            min = r;
        if (min == i)
            break;
        swap(&h->items[i], &h->items[min]);
        i = min;
    }
    return true;
}

void pl_timer_heap_free(pl_timer_heap *h)
{
    free(h->items);
    h->items = NULL;
    h->len = h->cap = 0;
}
