/*
 * The parley.v1 wire codec (../shared/protocol.md): encodes what the client
 * sends and decodes what the server sends. No I/O, no shared state: each
 * decoder belongs to one thread.
 */
#ifndef PL_PROTOCOL_H
#define PL_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define PL_PROTO_SUBPROTOCOL "parley.v1"
#define PL_PROTO_SUBPROTOCOL_ZSTD "parley.v1.zstd"
/* Extension (docs/protocol.md): binary frames hold one gzip member. */
#define PL_PROTO_SUBPROTOCOL_GZIP "parley.v1.gzip"
#define PL_PROTO_DEFAULT_MAX_MESSAGE_BYTES (1024u * 1024u)
#define PL_PROTO_SESSION_MAX 128

/* ---- Client to server ---- */

typedef struct pl_history_turn {
    bool assistant; /* role: "assistant" when true, "user" otherwise */
    const char *content;
    size_t content_len;
} pl_history_turn;

typedef struct pl_message_req {
    uint64_t id;
    const char *session;
    int64_t timestamp_ms;
    const char *content;
    size_t content_len;
    const pl_history_turn *history;
    size_t nhistory;
    const char *model;   /* NULL: omitted (the server's default) */
    uint32_t max_tokens; /* 0: omitted */
} pl_message_req;

/*
 * Append a complete `message` object to out, without resume_from.
 * Returns 0, or -1 when memory ran out.
 */
int pl_proto_encode_message(pl_buf *out, const pl_message_req *req);

/*
 * Copy an encoded `message` (a JSON object ending in '}') into out with
 * `,"resume_from":N` added before the closing brace. Returns 0 or -1.
 */
int pl_proto_add_resume_from(pl_buf *out, const char *msg, size_t len,
                             uint32_t resume_from);

int pl_proto_encode_cancel(pl_buf *out, uint64_t id);

/* ---- Server to client ---- */

typedef enum pl_server_msg_type {
    PL_SMSG_HELLO = 1,
    PL_SMSG_ACK,
    PL_SMSG_TEXT,
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

/*
 * A decoded server message. Strings point into the decoder's storage and stay
 * valid until the next pl_proto_decode() on the same decoder or
 * pl_decoder_free(). Absent optional fields (or null) leave the has_* flag
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
    /* text */
    uint32_t seq;
    const char *content;     /* text: the piece; error: the message (may be NULL) */
    size_t content_len;
    /* done, error */
    const char *stop_reason; /* done */
    uint64_t input_tokens, output_tokens;
    bool has_seq_end;
    uint32_t seq_end;
    /* error */
    pl_server_err code;
    const char *code_str;
    int64_t retry_after_ms;  /* -1 when absent */
} pl_server_msg;

typedef struct pl_decoder pl_decoder;

pl_decoder *pl_decoder_new(void);
void pl_decoder_free(pl_decoder *dec);

/*
 * Decode one message (one JSON object). Returns 0 and fills *msg, or -1 with
 * a sentence in err saying what was wrong (malformed JSON, not an object,
 * missing or ill-typed field, invalid id, ...). On -1, msg->has_id/msg->id
 * are still set when the message parsed and carried a valid id, so that the
 * caller can fail that one request.
 */
int pl_proto_decode(pl_decoder *dec, const char *buf, size_t len,
                    pl_server_msg *msg, char *err, size_t err_size);

/* ---- Shared helpers ---- */

/* Parse a canonical decimal snowflake id in [1, 2^63-1]. Returns 0 or -1. */
int pl_proto_parse_id(const char *s, size_t len, uint64_t *id);
/*
 * Find a top-level-looking `"id":"<decimal>"` in the first bytes of a message
 * too large to decode, to tell which request it belonged to. A best effort:
 * returns 0 and the id, or -1.
 */
int pl_proto_peek_id(const char *start, size_t len, uint64_t *id);
/* Is s a valid session id: 1-128 bytes of [A-Za-z0-9._:-]? */
bool pl_proto_session_valid(const char *s, size_t len);

#endif
