/*
 * The timer heap (timer_heap.h). Each timer records its slot, kept up to
 * date by every move, so a timer is removed from where it sits.
 */
#include "timer_heap.h"

#include <stdlib.h>

#include "alloc.h"

/* Due first: earlier, or as early and set earlier. */
static bool before(const pl_timer *a, const pl_timer *b)
{
    return a->due < b->due || (a->due == b->due && a->order < b->order);
}

static void place(pl_timer_heap *h, size_t i, pl_timer *t)
{
    h->items[i] = t;
    t->slot = i + 1;
}

/* Move the timer at i towards the root while it is due before its parent. */
static void sift_up(pl_timer_heap *h, size_t i)
{
    pl_timer *t = h->items[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(t, h->items[parent]))
            break;
        place(h, i, h->items[parent]);
        i = parent;
    }
    place(h, i, t);
}

/* Move the timer at i towards the leaves while a child is due before it. */
static void sift_down(pl_timer_heap *h, size_t i)
{
    pl_timer *t = h->items[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->len)
            break;
        if (child + 1 < h->len && before(h->items[child + 1], h->items[child]))
            child++;
        if (!before(h->items[child], t))
            break;
        place(h, i, h->items[child]);
        i = child;
    }
    place(h, i, t);
}

/* Remove the timer at index i, keeping the heap ordered. */
static void remove_at(pl_timer_heap *h, size_t i)
{
    pl_timer *gone = h->items[i];
    pl_timer *last = h->items[--h->len];

    gone->slot = 0;
    if (i == h->len)
        return; /* it was the last one */
    place(h, i, last);
    /* The last leaf may belong above or below the slot it fills. */
    if (i > 0 && before(last, h->items[(i - 1) / 2]))
        sift_up(h, i);
    else
        sift_down(h, i);
}

void pl_timer_set(pl_timer_heap *h, pl_timer *t, int64_t due)
{
    pl_timer_cancel(h, t);
    if (h->len == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 256;
        h->items = pl_xrealloc(h->items, h->cap * sizeof(*h->items));
    }
    t->due = due;
    t->order = h->next_order++;
    place(h, h->len++, t);
    sift_up(h, h->len - 1);
}

void pl_timer_cancel(pl_timer_heap *h, pl_timer *t)
{
    if (t->slot)
        remove_at(h, t->slot - 1);
}

pl_timer *pl_timer_first(const pl_timer_heap *h)
{
    return h->len ? h->items[0] : NULL;
}

pl_timer *pl_timer_pop_due(pl_timer_heap *h, int64_t now)
{
    if (!h->len || h->items[0]->due > now)
        return NULL;
    pl_timer *t = h->items[0];
    remove_at(h, 0);
    return t;
}

size_t pl_timer_heap_len(const pl_timer_heap *h)
{
    return h->len;
}

void pl_timer_heap_clear(pl_timer_heap *h)
{
    for (size_t i = 0; i < h->len; i++)
        h->items[i]->slot = 0;
    h->len = 0;
}

void pl_timer_heap_free(pl_timer_heap *h)
{
    free(h->items);
    h->items = NULL;
    h->len = h->cap = 0;
}
