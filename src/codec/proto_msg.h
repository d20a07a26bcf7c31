/*
 * What the server sends in parley.v1 (docs/protocol.md, section 4), decoded,
 * and the checks every decoder of it shares: the full one (protocol.c) and
 * its fast path (protocol_fast.c) both depend on this file, not on each
 * other.
 */
#ifndef PL_PROTO_MSG_H
#define PL_PROTO_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "reply.h"

#define PL_PROTO_DEFAULT_MAX_MESSAGE_BYTES (1024u * 1024u)
#define PL_PROTO_SESSION_MAX 128

typedef enum pl_server_msg_type {
    PL_SMSG_HELLO = 1,
    PL_SMSG_ACK,
    PL_SMSG_TEXT,   /* a piece of a reply: text, thinking or tool_use
                       (protocol.md 9.3); msg.piece says which */
    PL_SMSG_DONE,
    PL_SMSG_ERROR,
    PL_SMSG_UNKNOWN /* a well-formed message of a type this client ignores */
} pl_server_msg_type;

/* Error codes of section 4.5; PL_SERR_OTHER for a code this client lacks. */
typedef enum pl_server_err {
    PL_SERR_INVALID_REQUEST = 1,
    PL_SERR_UNAUTHORIZED,
    PL_SERR_TOO_LARGE,
    PL_SERR_RATE_LIMITED,
    PL_SERR_OVERLOADED,
    PL_SERR_INTERNAL,
    PL_SERR_RESUME_FAILED,
    PL_SERR_OTHER
} pl_server_err;

/* The protocol's name of a code ("rate_limited"...); "other" for PL_SERR_OTHER. */
const char *pl_proto_server_err_name(pl_server_err code);
/* The code of a name (len bytes, NUL bytes compared too); PL_SERR_OTHER for a
 * name this client lacks. */
pl_server_err pl_proto_server_err_of(const char *name, size_t len);

/*
 * A decoded server message. Strings point into the decoder's storage and stay
 * valid until the next pl_proto_decode() on the same decoder or
 * pl_decoder_free() (protocol.h). Absent optional fields (or null) leave the has_* flag
 * false / the pointer NULL.
 */
typedef struct pl_server_msg {
    pl_server_msg_type type;
    bool has_id;
    uint64_t id;
    const char *session;     /* text, done; optional */
    /* hello */
    const char *protocol;
    uint64_t max_message_bytes; /* default when absent */
    uint32_t heartbeat_s;       /* 0 when absent */
    uint32_t idempotency_window_s;
    const char *server;
    uint32_t zstd_dict;         /* extension: the agreed dictionary id, 0: none */
    bool feature_blocks;        /* "features" lists "blocks" (protocol.md 9) */
    /* text, thinking, tool_use: a piece */
    uint32_t seq;
    pl_piece piece;          /* the piece: kind, block (0 when a text message
                                has none), text; a thinking block's last
                                piece has its signature; tool_use: tool_id,
                                tool_name and the input (a JSON object) as
                                compact text */
    const char *content;     /* a piece: piece.text; error: the message (may be NULL) */
    size_t content_len;
    /* done, error */
    const char *stop_reason; /* done: end_turn, max_tokens, cancelled,
                                tool_use, stop_sequence (or another) */
    const char *stop_sequence; /* done: the one that matched; NULL when absent */
    uint64_t input_tokens, output_tokens;
    bool has_seq_end;
    uint32_t seq_end;
    /* error */
    pl_server_err code;
    const char *code_str;
    int64_t retry_after_ms;  /* -1 when absent */
} pl_server_msg;

/* Parse a canonical decimal snowflake id in [1, 2^63-1]. Returns 0 or -1. */
int pl_proto_parse_id(const char *s, size_t len, uint64_t *id);
/* Is s a valid session id: 1-128 bytes of [A-Za-z0-9._:-]? */
bool pl_proto_session_valid(const char *s, size_t len);

#endif
