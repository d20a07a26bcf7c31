/*
 * Whether a failed request may be sent again: the one place that decides
 * it, for every path (native WebSocket, Anthropic, OpenAI). Pure: no clock,
 * no I/O, so tests/unit/test_classify.c holds every rule. What a retry then
 * costs (attempts, backoff, the deadline, which connection to avoid) is the
 * engine's policy (route_policy.c), not a property of the failure.
 */
#ifndef PL_CLASSIFY_H
#define PL_CLASSIFY_H

#include <stdbool.h>

#include "failure.h"

/* Another try may fare better (docs/errors.md lists the rules). */
bool pl_failure_retryable(const pl_failure *f);

/* An HTTP status worth another try: 408, 409, 429 and 5xx. */
bool pl_status_retryable(long status);

#endif
