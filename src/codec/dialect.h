/*
 * The vendors' HTTP streaming APIs (Anthropic Messages, OpenAI Chat
 * Completions): request bodies, the meaning of their stream events and of
 * their error bodies. No I/O: the HTTP transport (http_stream.c) feeds this
 * module, and unit tests feed it recorded streams.
 */
#ifndef PL_DIALECT_H
#define PL_DIALECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "parley.h"
#include "protocol.h"
#include "sse.h"

/* The API behind the endpoint (conf.c resolves it from the configuration). */
typedef enum pl_dialect {
    PL_DIALECT_NATIVE = 0, /* parley.v1 over WebSocket */
    PL_DIALECT_ANTHROPIC,  /* Anthropic Messages over HTTP + SSE */
    PL_DIALECT_OPENAI      /* OpenAI Chat Completions over HTTP + SSE */
} pl_dialect;

/* What one stream event means for the request. */
typedef enum pl_stream_kind {
    PL_STREAM_NONE = 0, /* nothing for the caller (ping, start, usage...) */
    PL_STREAM_TEXT,     /* a piece of the reply */
    PL_STREAM_DONE,     /* the reply is complete */
    PL_STREAM_ERROR     /* the server reports an error inside the stream */
} pl_stream_kind;

/* Per-request decoding state; strings in a result stay valid until the next
 * pl_dialect_event() on the same state or pl_stream_state_free(). */
typedef struct pl_stream_state {
    pl_dialect dialect;
    struct json_tokener *tok;
    struct json_object *last; /* the event whose strings a result points into */
    uint64_t input_tokens, output_tokens;
    const char *stop_reason;  /* a static string: end_turn or max_tokens */
    pl_buf strings;           /* a fast-path event's strings (json_scan.h) */
} pl_stream_state;

typedef struct pl_stream_result {
    pl_stream_kind kind;
    const char *text;         /* TEXT: the piece */
    size_t text_len;
    const char *stop_reason;  /* DONE: "end_turn" or "max_tokens" */
    uint64_t input_tokens, output_tokens; /* DONE */
    const char *error_type;   /* ERROR: the vendor's error type */
    const char *error_message;
} pl_stream_result;

/*
 * Append the JSON request body of a streamed turn, with req->params (the
 * system prompt among them) when not NULL; max_tokens 0 means the dialect's
 * default (anthropic requires one). Returns 0, or -1 when memory ran out
 * (out is then as it was).
 */
int pl_dialect_encode(pl_buf *out, pl_dialect d, const pl_message_req *req);

void pl_stream_state_init(pl_stream_state *st, pl_dialect d);
/* Ready for a new stream of the same dialect, keeping the JSON tokener. */
void pl_stream_state_reset(pl_stream_state *st);
void pl_stream_state_free(pl_stream_state *st);

/*
 * Decode one SSE event. Returns 0 with *res filled, or -1 with a sentence in
 * err when the event is malformed.
 */
int pl_dialect_event(pl_stream_state *st, const pl_sse_event *ev,
                     pl_stream_result *res, char *err, size_t err_size);

/*
 * Read a vendor error body (either vendor's shape) into type and message;
 * missing parts become "". Returns 0, or -1 when it is not such a body.
 */
int pl_dialect_error_body(const char *body, size_t len, char *type,
                          size_t type_size, char *message, size_t message_size);

/* The parley error for an HTTP status, or for a vendor error type when the
 * status is 200 (an error inside the stream). */
parley_err_t pl_dialect_map_status(long status);
parley_err_t pl_dialect_map_error_type(const char *type);

/* Shared by the two vendors' modules. */
int pl_anthropic_encode(pl_buf *out, const pl_message_req *req);
int pl_anthropic_event(pl_stream_state *st, struct json_object *obj,
                       const pl_sse_event *ev, pl_stream_result *res, char *err,
                       size_t err_size);
/* The same without json-c for the events of every reply (text deltas and
 * the like): true when it decoded ev into *res, false to leave it to
 * pl_anthropic_event() (which then gives the result or the error). */
bool pl_anthropic_fast_event(pl_stream_state *st, const pl_sse_event *ev,
                             pl_stream_result *res);
int pl_openai_encode(pl_buf *out, const pl_message_req *req);
int pl_openai_event(pl_stream_state *st, struct json_object *obj,
                    pl_stream_result *res, char *err, size_t err_size);

#endif
