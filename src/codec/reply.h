/*
 * A reply as the three paths deliver it, decoded into one shape: pieces
 * (text, thinking, a whole tool call), each with the index of the content
 * block it belongs to, and how the reply ended. The native decoder
 * (protocol.c) and the vendors' dialects (dialect*.c) produce these; the
 * engine carries them to the session unchanged, so a new piece kind is a
 * codec change and a session change, nothing in between.
 * Strings point into the decoder's storage: valid until its next call.
 */
#ifndef PL_REPLY_H
#define PL_REPLY_H

#include <stddef.h>
#include <stdint.h>

typedef enum pl_piece_kind {
    PL_PIECE_TEXT = 0, /* a piece of a text block */
    PL_PIECE_THINKING, /* a piece of a thinking block (may be empty when it
                          only carries the block's signature) */
    PL_PIECE_TOOL_USE  /* a whole tool call: the decoder assembles the
                          vendors' input pieces and checks the JSON */
} pl_piece_kind;

typedef struct pl_piece {
    pl_piece_kind kind;
    uint32_t block;         /* the content block's index in the reply, from 0 */
    const char *text;       /* TEXT, THINKING: the piece; TOOL_USE: the input,
                               a JSON object as the server wrote it */
    size_t len;
    const char *signature;  /* THINKING: the block's signature, on its last
                               piece only; NULL otherwise */
    const char *tool_id;    /* TOOL_USE: the call's id ("toolu_...", "call_...") */
    const char *tool_name;  /* TOOL_USE */
} pl_piece;

typedef struct pl_reply_end {
    const char *stop_reason;   /* end_turn, max_tokens, stop_sequence,
                                  tool_use, refusal, pause_turn,
                                  content_filter, cancelled */
    const char *stop_sequence; /* stop_sequence: the one that matched; else NULL */
    uint64_t input_tokens, output_tokens;
    uint64_t cache_creation_tokens, cache_read_tokens;
    const char *message_id;    /* the vendor's message id; NULL when absent */
    const char *vendor_request_id; /* the vendor's request id (HTTP header
                                      request-id / x-request-id); NULL when absent */
} pl_reply_end;

#endif
