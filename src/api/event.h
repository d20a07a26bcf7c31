/* The event handed to the user's callback; lives on the worker's stack. */
#ifndef PL_EVENT_H
#define PL_EVENT_H

#include "parley.h"

struct parley_event {
    parley_event_type_t type;
    parley_session_t *session;
    const char *session_id;
    uint64_t request_id;
    void *opaque;
    const char *content;
    size_t content_len;
    uint32_t seq;
    uint32_t block;
    const char *signature;              /* THINKING */
    const char *tool_id, *tool_name;    /* TOOL_USE */
    const char *stop_reason;            /* DONE */
    const char *stop_sequence;          /* DONE */
    uint64_t input_tokens, output_tokens;
    uint64_t cache_creation_tokens, cache_read_tokens;
    const char *message_id, *vendor_request_id; /* DONE, ERROR */
    parley_err_t err;
};

#endif
