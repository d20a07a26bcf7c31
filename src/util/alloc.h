/*
 * Out of memory on internal paths. Like librdkafka's rd_malloc, running out
 * of memory there ends the process with a message: a message or reply half
 * dropped would break the delivery guarantee silently, which is worse.
 *
 * The one convention, everywhere in src/:
 * - pl_x* allocate or end the process;
 * - a path that can tell its caller (a public function, before a request is
 *   accepted) returns PARLEY_ERR_NO_MEMORY instead;
 * - any other path whose allocation, pl_buf append (buf.h) or encoder fails
 *   calls pl_oom(): no hand-written message and abort, no result ignored.
 */
#ifndef PL_ALLOC_H
#define PL_ALLOC_H

#include <stddef.h>

void *pl_xmalloc(size_t size);
void *pl_xcalloc(size_t n, size_t size);
void *pl_xrealloc(void *p, size_t size);
char *pl_xstrdup(const char *s);

/* Print "parley: out of memory <doing>" and abort. */
_Noreturn void pl_oom(const char *doing);

#endif
