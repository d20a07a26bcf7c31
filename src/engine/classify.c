/* Whether a failure is worth another try (classify.h). */
#include "classify.h"

bool pl_status_retryable(long status)
{
    return status == 408 || status == 409 || status == 429 || status >= 500;
}

/* The server said so about this request: only a transient condition, and
 * only before the reply started (a started reply could be repeated). */
static bool server_error_retryable(const pl_failure *f)
{
    if (f->started)
        return false;
    return f->err == PARLEY_ERR_RATE_LIMITED || f->err == PARLEY_ERR_OVERLOADED ||
           f->err == PARLEY_ERR_SERVER_INTERNAL;
}

static bool refusal_retryable(const pl_failure *f)
{
    if (f->should_retry != PL_ADVICE_NONE) /* the vendor's own advice wins */
        return f->should_retry == PL_ADVICE_YES;
    /* An upgrade answered 409 is a server that refuses WebSocket for good;
     * for a request it is a conflict that clears (Anthropic documents it). */
    if (f->upgrade && f->status == 409)
        return false;
    return pl_status_retryable(f->status);
}

bool pl_failure_retryable(const pl_failure *f)
{
    switch (f->kind) {
    case PL_FAIL_START:   /* the attempts bound a start that keeps failing */
    case PL_FAIL_NETWORK:
        return true;
    case PL_FAIL_TLS:
    case PL_FAIL_INVALID:
        return false;
    case PL_FAIL_REFUSED:
        return refusal_retryable(f);
    case PL_FAIL_SERVER:
        return server_error_retryable(f);
    case PL_FAIL_LOST:
        return f->resumable || !f->started;
    }
    return false;
}
