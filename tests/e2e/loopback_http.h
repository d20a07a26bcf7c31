/*
 * A tiny HTTP/1.1 responder on a loopback port, for tests of what a hostile
 * server may answer: it reads each request (headers, and a body of
 * Content-Length bytes), asks a callback for the whole answer, writes it
 * and closes the connection. One thread, one connection at a time.
 */
#ifndef PL_TEST_LOOPBACK_HTTP_H
#define PL_TEST_LOOPBACK_HTTP_H

#include <stddef.h>

typedef struct loopback_http loopback_http;

/* Write the answer (status line, headers, body) to `request` (its headers
 * and body, NUL-terminated) into answer (size bytes, NUL-terminated). */
typedef void loopback_answer_fn(const char *request, char *answer, size_t size,
                                void *opaque);

/* Listening on 127.0.0.1 at a free port; fails the test when it cannot. */
loopback_http *loopback_http_start(loopback_answer_fn *answer, void *opaque);
/* The same, writing the answer in parts: each '\f' in it (not written)
 * separates two parts sent pace_ms apart, as a server that thinks between
 * events would. */
loopback_http *loopback_http_start_paced(loopback_answer_fn *answer, void *opaque,
                                         int pace_ms);
int loopback_http_port(const loopback_http *srv);
/* Requests answered so far. */
unsigned loopback_http_requests(loopback_http *srv);
void loopback_http_stop(loopback_http *srv);

#endif
