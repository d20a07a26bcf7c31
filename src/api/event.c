#include "event.h"

parley_event_type_t parley_event_type(const parley_event_t *ev)
{
    return ev->type;
}

parley_session_t *parley_event_session(const parley_event_t *ev)
{
    return ev->session;
}

const char *parley_event_session_id(const parley_event_t *ev)
{
    return ev->session_id;
}

uint64_t parley_event_request_id(const parley_event_t *ev)
{
    return ev->request_id;
}

const char *parley_event_content(const parley_event_t *ev, size_t *len)
{
    if (len)
        *len = ev->content_len;
    return ev->content;
}

uint32_t parley_event_seq(const parley_event_t *ev)
{
    return ev->seq;
}

const char *parley_event_stop_reason(const parley_event_t *ev)
{
    return ev->type == PARLEY_EVENT_DONE ? ev->stop_reason : NULL;
}

void parley_event_usage(const parley_event_t *ev, uint64_t *input_tokens,
                        uint64_t *output_tokens)
{
    if (input_tokens)
        *input_tokens = ev->input_tokens;
    if (output_tokens)
        *output_tokens = ev->output_tokens;
}

parley_err_t parley_event_error(const parley_event_t *ev)
{
    return ev->type == PARLEY_EVENT_ERROR ? ev->err : PARLEY_OK;
}

void *parley_event_opaque(const parley_event_t *ev)
{
    return ev->opaque;
}

uint32_t parley_event_block(const parley_event_t *ev)
{
    return ev->block;
}

const char *parley_event_signature(const parley_event_t *ev)
{
    return ev->type == PARLEY_EVENT_THINKING ? ev->signature : NULL;
}

const char *parley_event_tool_id(const parley_event_t *ev)
{
    return ev->type == PARLEY_EVENT_TOOL_USE ? ev->tool_id : NULL;
}

const char *parley_event_tool_name(const parley_event_t *ev)
{
    return ev->type == PARLEY_EVENT_TOOL_USE ? ev->tool_name : NULL;
}

const char *parley_event_stop_sequence(const parley_event_t *ev)
{
    return ev->type == PARLEY_EVENT_DONE ? ev->stop_sequence : NULL;
}

void parley_event_cache_usage(const parley_event_t *ev, uint64_t *creation_tokens,
                              uint64_t *read_tokens)
{
    if (creation_tokens)
        *creation_tokens = ev->cache_creation_tokens;
    if (read_tokens)
        *read_tokens = ev->cache_read_tokens;
}

const char *parley_event_message_id(const parley_event_t *ev)
{
    return ev->message_id;
}

const char *parley_event_vendor_request_id(const parley_event_t *ev)
{
    return ev->vendor_request_id;
}
