/*
 * Writing a request body's top-level members by hand (the encoders of
 * protocol.c and dialect*.c), with the caller's extra_body merged in: its
 * members come last and replace ours of the same name (request_params.h).
 * json-c is used only when there is an extra_body, so a plain-text turn
 * never touches it.
 */
#ifndef PL_REQUEST_BODY_H
#define PL_REQUEST_BODY_H

#include <stdbool.h>

#include "buf.h"
#include "request_params.h"

struct json_object;
struct pl_message_req; /* protocol.h, which includes this file's users */

typedef struct pl_body {
    pl_buf *out;
    struct json_object *extra; /* extra_body parsed; NULL: none */
} pl_body;

/* Start with params' extra_body (params may be NULL). Returns 0, or -1 when
 * memory ran out or extra_body is not a JSON object (set-time checks make
 * that a bug of the caller). */
int pl_body_open(pl_body *b, pl_buf *out, const pl_request_params *params);
/* Whether we write member `key`: false when extra_body replaces it (never
 * ask it of a `kept` member). */
bool pl_body_ours(const pl_body *b, const char *key);
/* Append extra_body's members (each after a comma: the body has members
 * already) but those named in `kept` (NULL-terminated: the members that
 * carry the conversation and the stream, which a merge would break or
 * duplicate), and free what open() made. Returns 0 or -1. */
int pl_body_close(pl_body *b, const char *const *kept);
/* Free what open() made, after a failure. */
void pl_body_abandon(pl_body *b);

/* Writes a dialect's members of req's body, from its opening brace; 0 or -1. */
typedef int pl_body_members(pl_body *b, const struct pl_message_req *req);

/* A vendor's whole request body: open with params' extra_body, the
 * dialect's members of req, extra_body merged (but `messages` and
 * `stream`), the closing brace. Returns 0, or -1 with out as it was. */
int pl_body_write_http(pl_buf *out, const pl_request_params *params, pl_body_members *members,
                       const struct pl_message_req *req);

/* Append a JSON number for v (finite), the shortest text that reads back
 * as v, with a '.' whatever the locale. Returns 0 or -1. */
int pl_body_append_double(pl_buf *out, double v);

/* Append ,"key": */
int pl_body_key(pl_buf *out, const char *key);

/*
 * The members native and Anthropic bodies share, in the same shape
 * (protocol.md 9.2): tools, tool_choice, thinking, stop_sequences,
 * temperature, top_p, top_k, metadata, each after a comma and only when
 * set and not replaced. `tools`, when not NULL, is written instead of
 * params->tools (Anthropic's with cache_control). Returns 0 or -1.
 */
int pl_body_common_params(pl_body *b, const pl_request_params *params,
                          const char *tools);

#endif
