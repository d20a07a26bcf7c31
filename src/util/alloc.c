#include "alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Noreturn void pl_oom(const char *doing)
{
    fprintf(stderr, "parley: out of memory %s\n", doing);
    abort();
}

static _Noreturn void out_of_memory(size_t size)
{
    fprintf(stderr, "parley: out of memory allocating %zu bytes\n", size);
    abort();
}

void *pl_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        out_of_memory(size);
    return p;
}

void *pl_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        out_of_memory(n * size);
    return p;
}

void *pl_xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (!q)
        out_of_memory(size);
    return q;
}

char *pl_xstrdup(const char *s)
{
    size_t len = strlen(s);
    char *copy = pl_xmalloc(len + 1);
    memcpy(copy, s, len + 1);
    return copy;
}
