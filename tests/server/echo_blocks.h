/*
 * parley-echo-1 with content blocks, tools and thinking (protocol.md
 * sections 9 and 10), as pure functions: no I/O, no globals. The front ends
 * read a conversation (echo_conversation.h) into a pl_echo_request, and
 * stream the pl_echo_turn built from it in their own shapes.
 *
 * A turn is at most three blocks, in this order: thinking (when the request
 * enables it), text, tool_use (when the request's tools name the tool C
 * asks to call). Its stream is a sequence of "units": each thinking piece,
 * each text piece, and one per tool call; max_tokens caps the units, the
 * native protocol numbers them with seq, and output_tokens counts them. A
 * tool call's input is also cut into argument pieces (Anthropic
 * input_json_delta, OpenAI function.arguments), which are not units.
 */
#ifndef PL_ECHO_BLOCKS_H
#define PL_ECHO_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

#include "echo_model.h"

#define PL_ECHO_MAX_BLOCKS 3
#define PL_ECHO_TOOL_ID_ANTHROPIC "toolu_echo_" /* native and Anthropic */
#define PL_ECHO_TOOL_ID_OPENAI "call_echo_"

/* Bytes that may hold NULs. */
typedef struct pl_echo_str {
    const char *s;
    size_t len;
} pl_echo_str;

/* One tool result of the last user turn. */
typedef struct pl_echo_result {
    pl_echo_str name; /* the tool name of the call it answers */
    pl_echo_str text; /* R: its text blocks joined by one space */
    int is_error;
} pl_echo_result;

/* What the model needs from a request; nothing is owned. */
typedef struct pl_echo_request {
    uint64_t turn;                 /* N: user turns, this one included */
    pl_echo_str text;              /* C, the last user turn's text */
    const pl_echo_result *results; /* nresults > 0: the last user turn is */
    size_t nresults;               /* made of these tool results */
    const pl_echo_str *tools;      /* the request's tool names */
    size_t ntools;
    int thinking;                  /* a thinking block first */
    const pl_echo_str *stops;      /* stop sequences (an empty one never */
    size_t nstops;                 /* matches) */
    uint64_t max_tokens;           /* PL_ECHO_NO_LIMIT: no cap */
    size_t chunk_bytes;            /* 0: PL_ECHO_DEFAULT_CHUNK_BYTES */
    uint64_t context_bytes;        /* what input_tokens counts */
    const char *tool_id_prefix;    /* NULL: PL_ECHO_TOOL_ID_ANTHROPIC */
} pl_echo_request;

typedef enum pl_echo_block_type {
    PL_ECHO_BLOCK_THINKING,
    PL_ECHO_BLOCK_TEXT,
    PL_ECHO_BLOCK_TOOL_USE,
} pl_echo_block_type;

typedef struct pl_echo_block {
    pl_echo_block_type type;
    /* thinking, text: what is sent (after the cuts), NUL-terminated;
     * tool_use: the compact JSON of its input. */
    char *text;
    size_t len;
    size_t *piece_end;   /* piece k is text[piece_start(k), piece_end[k]) */
    size_t npieces;      /* thinking, text: pieces sent; tool_use: argument
                            pieces */
    char *signature;     /* thinking: "echo-sig-N"; NULL when cut short */
    char *tool_id;       /* tool_use */
    char *name;          /* tool_use */
    size_t first_unit;   /* the stream unit of its first piece */
    size_t nunits;       /* thinking, text: npieces; tool_use: 1 */
} pl_echo_block;

/* A reply; free with pl_echo_turn_free. */
typedef struct pl_echo_turn {
    pl_echo_block blocks[PL_ECHO_MAX_BLOCKS];
    size_t nblocks;
    size_t nunits;             /* units to stream (max_tokens applied) */
    const char *stop_reason;   /* end_turn, max_tokens, stop_sequence,
                                  tool_use (static) */
    char *stop_sequence;       /* the match, with stop_reason stop_sequence */
    size_t stop_sequence_len;
    uint64_t input_tokens;
} pl_echo_turn;

/*
 * Build the reply to req. Returns 0, or -1 when out of memory (t is then
 * zeroed and needs no free).
 */
int pl_echo_turn_build(pl_echo_turn *t, const pl_echo_request *req);

void pl_echo_turn_free(pl_echo_turn *t);

/* The block holding unit k (k < nunits), and the piece within it. */
const pl_echo_block *pl_echo_turn_unit(const pl_echo_turn *t, size_t k,
                                       size_t *piece);

/* The index of b in t->blocks (its `block` / `index` on the wire). */
size_t pl_echo_block_index(const pl_echo_turn *t, const pl_echo_block *b);

/* Start offset and length of piece k of b. */
size_t pl_echo_block_piece_start(const pl_echo_block *b, size_t k);
size_t pl_echo_block_piece_len(const pl_echo_block *b, size_t k);

/* The turn's text block, or NULL when it has none. */
const pl_echo_block *pl_echo_turn_text(const pl_echo_turn *t);

/*
 * ARGS with the whitespace outside strings removed (key order, escapes and
 * number spellings as written), NUL-terminated in new memory; NULL when
 * out of memory.
 */
char *pl_echo_compact_json(const char *args, size_t len, size_t *out_len);

/*
 * Whether c is "call NAME ARGS": "call", one space, NAME (no space; one of
 * the tools), one space, then ARGS, a JSON object (whitespace around it
 * allowed). On a match *name and *args point into c.
 */
int pl_echo_parse_call(pl_echo_str c, const pl_echo_str *tools, size_t ntools,
                       pl_echo_str *name, pl_echo_str *args);

/*
 * The decoded size of standard base64 (padding optional; no whitespace) in
 * *out; -1 when s is not valid base64 or is empty.
 */
int pl_echo_base64_size(const char *s, size_t len, uint64_t *out);

/* Whether an image's media type is one the Anthropic API takes (png,
 * jpeg, gif, webp). */
int pl_echo_image_type_ok(const char *media_type);

#endif
