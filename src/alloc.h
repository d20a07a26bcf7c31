/*
 * Allocation on internal paths. Like librdkafka's rd_malloc, running out of
 * memory there ends the process with a message: a message or reply half
 * dropped would break the delivery guarantee silently, which is worse.
 */
#ifndef PL_ALLOC_H
#define PL_ALLOC_H

#include <stddef.h>

void *pl_xmalloc(size_t size);
void *pl_xcalloc(size_t n, size_t size);
void *pl_xrealloc(void *p, size_t size);
char *pl_xstrndup(const char *s, size_t len);

#endif
