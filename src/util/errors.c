/* Error names and descriptions, and the run-time version. */
#include "parley.h"

static const struct {
    const char *name;
    const char *desc;
} errors[PARLEY_ERR__COUNT] = {
    [PARLEY_OK] = {"OK", "success"},
    [PARLEY_ERR_INVALID_ARG] = {"INVALID_ARG", "invalid argument"},
    [PARLEY_ERR_UNKNOWN_OPTION] = {"UNKNOWN_OPTION", "unknown configuration property"},
    [PARLEY_ERR_INVALID_VALUE] = {"INVALID_VALUE", "invalid configuration value"},
    [PARLEY_ERR_NO_MEMORY] = {"NO_MEMORY", "out of memory"},
    [PARLEY_ERR_STATE] = {"STATE", "operation not allowed in the current state"},
    [PARLEY_ERR_NO_KEY] = {"NO_KEY", "no API key configured"},
    [PARLEY_ERR_TIMED_OUT] = {"TIMED_OUT", "timed out"},
    [PARLEY_ERR_TOO_LARGE] = {"TOO_LARGE", "message larger than max.message.bytes"},
    [PARLEY_ERR_SHUTDOWN] = {"SHUTDOWN", "the client is shutting down"},
    [PARLEY_ERR_QUEUE_FULL] = {"QUEUE_FULL", "a queue limit is reached; try again later"},
    [PARLEY_ERR_CONNECT] = {"CONNECT", "could not connect to the endpoint"},
    [PARLEY_ERR_UNAUTHORIZED] = {"UNAUTHORIZED", "the server refused the API key"},
    [PARLEY_ERR_CONNECTION_LOST] = {"CONNECTION_LOST", "the connection was lost"},
    [PARLEY_ERR_PROTOCOL] = {"PROTOCOL", "the server violated the protocol"},
    [PARLEY_ERR_INVALID_REQUEST] = {"INVALID_REQUEST", "the server rejected the request as invalid"},
    [PARLEY_ERR_RATE_LIMITED] = {"RATE_LIMITED", "the server is rate limiting"},
    [PARLEY_ERR_OVERLOADED] = {"OVERLOADED", "the server is overloaded"},
    [PARLEY_ERR_SERVER_INTERNAL] = {"SERVER_INTERNAL", "the server failed internally"},
    [PARLEY_ERR_RESUME_FAILED] = {"RESUME_FAILED", "the server could not resume the reply"},
    [PARLEY_ERR_SERVER_TOO_LARGE] = {"SERVER_TOO_LARGE", "the server received a message over its size limit"},
    [PARLEY_ERR_FORBIDDEN] = {"FORBIDDEN", "the API key is not allowed to do this"},
    [PARLEY_ERR_NOT_FOUND] = {"NOT_FOUND", "the server has no such path or model"},
    [PARLEY_ERR_TLS] = {"TLS", "the TLS handshake failed: certificate, host name or key"},
    [PARLEY_ERR_REPLY_TOO_LARGE] = {"REPLY_TOO_LARGE", "the reply is longer than reply.max.bytes"},
    [PARLEY_ERR_SESSION_OWNED] = {"SESSION_OWNED", "another process owns the session"},
    [PARLEY_ERR_STORE] = {"STORE", "the session store failed or could not be reached"},
};

const char *parley_err2str(parley_err_t err)
{
    if ((unsigned)err >= PARLEY_ERR__COUNT)
        return "unknown error code";
    return errors[err].desc;
}

const char *parley_err2name(parley_err_t err)
{
    if ((unsigned)err >= PARLEY_ERR__COUNT)
        return "UNKNOWN";
    return errors[err].name;
}

int parley_version(void)
{
    return PARLEY_VERSION;
}

const char *parley_version_str(void)
{
    return PARLEY_VERSION_STR;
}
