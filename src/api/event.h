/* The event handed to the user's callback; lives on the worker's stack. */
#ifndef PL_EVENT_H
#define PL_EVENT_H

#include "parley.h"

struct parley_event {
    parley_event_type_t type;
    parley_session_t *session;
    const char *session_id;
    uint64_t request_id;
    const char *content;
    size_t content_len;
    uint32_t seq;
    const char *stop_reason;
    uint64_t input_tokens, output_tokens;
    parley_err_t err;
};

#endif
