/* The server's messages: error code names and the checks both decoders
 * share (proto_msg.h). */
#include "proto_msg.h"

#include <string.h>

int pl_proto_parse_id(const char *s, size_t len, uint64_t *id)
{
    /* 2^63-1 has 19 digits, and 19 digits cannot overflow a uint64, so the
     * range check can come after the accumulation. */
    if (!s || len == 0 || len > 19 || s[0] < '1' || s[0] > '9')
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return -1;
    *id = v;
    return 0;
}

static bool session_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':'
        || c == '-';
}

bool pl_proto_session_valid(const char *s, size_t len)
{
    if (!s || len == 0 || len > PL_PROTO_SESSION_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!session_char_ok(s[i]))
            return false;
    return true;
}

/* Section 4.5's codes by name. */
static const struct {
    const char *name;
    pl_server_err code;
} error_codes[] = {
    {"invalid_request", PL_SERR_INVALID_REQUEST},
    {"unauthorized", PL_SERR_UNAUTHORIZED},
    {"too_large", PL_SERR_TOO_LARGE},
    {"rate_limited", PL_SERR_RATE_LIMITED},
    {"overloaded", PL_SERR_OVERLOADED},
    {"internal", PL_SERR_INTERNAL},
    {"resume_failed", PL_SERR_RESUME_FAILED},
};

const char *pl_proto_server_err_name(pl_server_err code)
{
    for (size_t i = 0; i < sizeof(error_codes) / sizeof(error_codes[0]); i++)
        if (error_codes[i].code == code)
            return error_codes[i].name;
    return "other";
}

pl_server_err pl_proto_server_err_of(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(error_codes) / sizeof(error_codes[0]); i++)
        /* By length too: a JSON string may hold NUL bytes. */
        if (strlen(error_codes[i].name) == len && memcmp(name, error_codes[i].name, len) == 0)
            return error_codes[i].code;
    return PL_SERR_OTHER;
}
