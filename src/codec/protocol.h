/*
 * The parley.v1 wire codec (docs/protocol.md): encodes what the client
 * sends and decodes what the server sends. No I/O, no shared state: each
 * decoder belongs to one thread.
 */
#ifndef PL_PROTOCOL_H
#define PL_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "proto_msg.h"
#include "request_params.h"

#define PL_PROTO_SUBPROTOCOL "parley.v1"
#define PL_PROTO_SUBPROTOCOL_ZSTD "parley.v1.zstd"
/* Extension (docs/protocol.md): binary frames hold one gzip member. */
#define PL_PROTO_SUBPROTOCOL_GZIP "parley.v1.gzip"

/* ---- Client to server ---- */

typedef struct pl_history_turn {
    bool assistant; /* role: "assistant" when true, "user" otherwise */
    const char *content;
    size_t content_len;
    bool blocks;    /* content is a JSON array of blocks (protocol.md 9.1),
                       compact; false: a plain string (last, so that
                       {assistant, content, len} initializers still read) */
} pl_history_turn;

typedef struct pl_message_req {
    uint64_t id;
    const char *session;
    int64_t timestamp_ms;
    const char *content;
    size_t content_len;
    bool content_blocks; /* content is a JSON array of blocks, compact */
    const pl_history_turn *history;
    size_t nhistory;
    const char *model;   /* NULL: omitted (the server's default) */
    uint32_t max_tokens; /* 0: omitted */
    const pl_request_params *params; /* NULL: none of them */
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

/* ---- Server to client (the messages: proto_msg.h) ---- */

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

/*
 * Find a top-level-looking `"id":"<decimal>"` in the first bytes of a message
 * too large to decode, to tell which request it belonged to. A best effort:
 * returns 0 and the id, or -1.
 */
int pl_proto_peek_id(const char *start, size_t len, uint64_t *id);

#endif
