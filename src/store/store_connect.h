/*
 * Starting the store's connection without the I/O thread ever waiting on
 * the resolver. hiredis 0.14.1 resolves a host name with a blocking
 * getaddrinfo() inside redisAsyncConnect(); with a slow or silent DNS
 * server that would freeze every conversation of the client for the
 * resolver's whole timeout. So a numeric address connects at once, on the
 * caller's thread, and a name connects on a short-lived detached thread of
 * its own, which hands the new context over through an eventfd the caller
 * polls. The caller may give an attempt up at any time without waiting for
 * its thread: the thread then frees what it made.
 */
#ifndef PL_STORE_CONNECT_H
#define PL_STORE_CONNECT_H

#include <stdbool.h>

#include "log.h"

struct redisAsyncContext;

/* What starts a connection: redisAsyncConnect, or a test's stand-in. */
typedef struct redisAsyncContext *pl_store_connect_fn(const char *host, int port);

/* One connection being made by a thread of its own. */
typedef struct pl_store_resolving pl_store_resolving;

/*
 * Start connecting to host:port with connect (NULL: redisAsyncConnect).
 * A numeric address, or a name when no thread can be made (a warning is
 * logged), connects here: NULL, with the context (NULL: out of memory) in
 * *now. Otherwise the attempt, its thread under way.
 */
pl_store_resolving *pl_store_connect_start(const char *host, int port,
                                           pl_store_connect_fn *connect,
                                           const pl_logger *log,
                                           struct redisAsyncContext **now);

/* The descriptor to poll for POLLIN: readable once the thread is done. */
int pl_store_resolving_fd(const pl_store_resolving *r);

/* True once the thread is done: then the attempt is gone and *ac is its
 * context (NULL: out of memory), the caller's now. False: still busy. */
bool pl_store_resolving_take(pl_store_resolving *r, struct redisAsyncContext **ac);

/* Give the attempt up without waiting; its thread frees the context. */
void pl_store_resolving_abandon(pl_store_resolving *r);

/* Whether a context's error is its host name not resolving (hiredis
 * 0.14.1 gives gai_strerror()'s text alone, which does not say so). */
bool pl_store_connect_unresolved(const struct redisAsyncContext *ac);

#endif
