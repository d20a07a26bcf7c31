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
#include "reply.h"
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
    PL_STREAM_PIECE,    /* pieces of the reply: res->pieces */
    PL_STREAM_DONE,     /* the reply is complete: res->end */
    PL_STREAM_ERROR     /* the server reports an error inside the stream */
} pl_stream_kind;

/* A tool call that OpenAI streams in pieces, by its index. */
typedef struct pl_stream_call {
    uint32_t index;
    pl_buf id, name, arguments;
} pl_stream_call;

/* Per-request decoding state; strings in a result stay valid until the next
 * pl_dialect_event() on the same state, pl_stream_state_reset() or
 * pl_stream_state_free(). */
typedef struct pl_stream_state {
    pl_dialect dialect;
    size_t max_tool_input;    /* bound of the tool inputs of one reply, together */
    struct json_tokener *tok;
    struct json_object *last; /* the event whose strings a result points into */
    pl_buf strings;           /* a fast-path event's strings (json_scan.h) */
    pl_piece *pieces;         /* a result's pieces */
    size_t pieces_cap;
    /* how the reply ends, as far as the stream said */
    uint64_t input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens;
    const char *stop_reason;  /* a static string, or stop_reason_buf's */
    pl_buf stop_reason_buf, stop_sequence, message_id;
    bool has_stop_sequence;
    /* Anthropic: the content block being streamed (content_block_start) */
    bool in_block;
    uint32_t block;
    int block_kind;           /* a pl_piece_kind, or -1: a kind we skip */
    pl_buf tool_id, tool_name, tool_input;
    /* OpenAI: the text and tool calls of the choice */
    bool has_text, refusal;
    bool finished;            /* finish_reason came: the calls were delivered */
    pl_stream_call *calls;
    size_t ncalls;
    /* both: the tool inputs assembled so far in this reply, bounded */
    size_t call_bytes;
} pl_stream_state;

typedef struct pl_stream_result {
    pl_stream_kind kind;
    bool arrived;             /* an event of the request arrived (true on every
                                 success, pings included): progress for the
                                 stall watchdog */
    const pl_piece *pieces;   /* PIECE: in order (one, but OpenAI's tool
                                 calls all come with finish_reason) */
    size_t npieces;
    pl_reply_end end;         /* DONE (vendor_request_id: the caller's) */
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

/* max_tool_input bounds the tool calls' inputs of one reply, together, as
 * the stream assembles them; 0: 1 MiB. */
void pl_stream_state_init(pl_stream_state *st, pl_dialect d, size_t max_tool_input);
/* Ready for a new stream of the same dialect, keeping the JSON tokener. */
void pl_stream_state_reset(pl_stream_state *st);
void pl_stream_state_free(pl_stream_state *st);

/*
 * Decode one SSE event. Returns 0 with *res filled, or -1 with a sentence in
 * err when the event is malformed (or a tool call's input is not a JSON
 * object, or grows past max_tool_input): the stream is then unusable.
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

/* Shared by the two vendors' modules (dialect.c). */
/* A new piece at the end of res's (zeroed, kind set); NULL: out of memory. */
pl_piece *pl_stream_add_piece(pl_stream_state *st, pl_stream_result *res, pl_piece_kind kind);
/* Copy a string into one of st's buffers; 0 or -1. */
int pl_stream_keep(pl_buf *b, const char *s, size_t len);
/* Add a piece of a tool call's input to `input`, within st's bound. */
int pl_stream_add_input(pl_stream_state *st, pl_buf *input, const char *s, size_t len,
                        char *err, size_t err_size);
/* A tool call's assembled input made ready: "" is {}, and it must be one
 * JSON object. */
int pl_stream_check_input(pl_stream_state *st, pl_buf *input, char *err, size_t err_size);
/* Keep a stop reason: the vendors' known ones as static strings. */
int pl_stream_set_stop_reason(pl_stream_state *st, const char *reason, size_t len);
/* res becomes the DONE of the reply. */
void pl_stream_done(pl_stream_state *st, pl_stream_result *res);

int pl_anthropic_encode(pl_buf *out, const pl_message_req *req);
int pl_anthropic_event(pl_stream_state *st, struct json_object *obj,
                       const pl_sse_event *ev, pl_stream_result *res, char *err,
                       size_t err_size);
/* The same without json-c for the events of every reply (deltas and the
 * like): 1 when it decoded ev into *res, 0 to leave it to
 * pl_anthropic_event() (which then gives the result or the error), -1 with
 * a sentence in err when the event is well-formed but wrong for the stream
 * (the same error pl_anthropic_event() would give). */
int pl_anthropic_fast_event(pl_stream_state *st, const pl_sse_event *ev,
                            pl_stream_result *res, char *err, size_t err_size);
int pl_openai_encode(pl_buf *out, const pl_message_req *req);
int pl_openai_event(pl_stream_state *st, struct json_object *obj,
                    pl_stream_result *res, char *err, size_t err_size);

#endif
