/*
 * The parley client of the I/O fuzz targets and what it must keep promising
 * whatever the server sends (include/parley.h, docs/protocol.md section 6):
 * each request's pieces arrive in order, none twice and none missing, as
 * valid UTF-8; exactly one terminal event ends it, and DONE carries exactly
 * the pieces delivered; no event names a request not in flight; the API key
 * appears in no event and no log line. A broken promise aborts like a crash.
 *
 * One client lives for the whole process; each input is one round of a few
 * requests (one per session), which must all end before the next round.
 */
#ifndef FUZZ_CLIENT_H
#define FUZZ_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "parley.h"

/* Requests in flight in one round, at most. */
#define FZ_MAX_REQUESTS 4

/* The API key of the fuzzed clients: it must never come out again. */
#define FZ_API_KEY "fz-key-7f3a9c"

typedef struct fz_client fz_client;

/* A started client for endpoint with the given properties (NULL-terminated
 * name, value pairs), logging at debug level into the checks. Aborts when
 * it cannot be made. */
fz_client *fz_client_new(const char *endpoint, const char *const *props);

/* Open `n` sessions (s0, s1, ...) and send one turn on each; the request
 * ids go to ids[]. */
void fz_round_start(fz_client *c, unsigned n, uint64_t ids[]);

/* Wait up to timeout_ms for every request of the round to end; returns
 * whether they all did. */
bool fz_round_wait(fz_client *c, int timeout_ms);

/* Cancel the requests of the round that have not ended. */
void fz_round_cancel(fz_client *c);

/* Every request must have ended (aborts otherwise); close the sessions. */
void fz_round_end(fz_client *c);

/* How long a round may take before it is a bug: far above what a loaded
 * machine needs, far below libFuzzer's -timeout. */
#define FZ_ROUND_MAX_MS 10000

/* The server has written the round's input (any thread). */
void fz_round_served(fz_client *c);

/* End the round: wait until the server has written the input
 * (fz_round_served) or every request ended without it, give what the stream
 * left unfinished a moment, cancel the rest and check that every request
 * ended (fz_round_end). */
void fz_round_finish(fz_client *c);

#endif
