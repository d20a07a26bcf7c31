/*
 * What the end-to-end tests share: the in-process reference server, a client
 * with properties given inline, and a port nobody listens on.
 */
#ifndef PL_TEST_FIXTURES_H
#define PL_TEST_FIXTURES_H

#include <stdint.h>

#include "parley.h"
#include "refserver.h"

/* A quiet reference server on a free loopback port; fails the test if not. */
pl_refserver *fixture_server(const char *api_key, unsigned latency_ms, unsigned token_ms,
                             unsigned chunk_bytes);

/*
 * A started client for `url`, with 2 workers, the recorder as event callback
 * and extra properties as name, value, ..., NULL. Fails the test on error.
 */
parley_client_t *fixture_client_url(const char *url, ...);
/* The same with a stats callback. */
parley_client_t *fixture_client_stats(const char *url, parley_stats_cb *cb, void *opaque, ...);
/* The same for the native endpoint of a server on `port`. */
parley_client_t *fixture_client(int port, ...);

/* A started client of srv's front end for `dialect` (native, anthropic,
 * openai), with quick retries (retry.backoff.ms 20) and more properties
 * as name, value, ..., NULL. */
parley_client_t *fixture_client_dialect(pl_refserver *srv, const char *dialect, ...);
/* Send text with `opaque` (waiting for room) and wait for its terminal
 * event, which must be its only one; returns the request id. */
uint64_t fixture_turn(parley_client_t *c, parley_session_t *s, const char *text, void *opaque);
/* CLOCK_MONOTONIC in milliseconds. */
int64_t fixture_now_ms(void);
/* Sleep; for pacing and sampling, never to wait for a condition. */
void fixture_pause_ms(long ms);

/* A loopback port that was free a moment ago: connecting to it is refused. */
int fixture_closed_port(void);

#endif
