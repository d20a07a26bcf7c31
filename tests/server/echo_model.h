/*
 * The deterministic reference model `parley-echo-1` (protocol.md section 8),
 * as pure functions: no I/O, no globals, no timers. Every server front end
 * (the WebSocket protocol in refserver.c, the vendor HTTP dialects in
 * refserver_http.c) builds the same reply from the same inputs, so tests in
 * any language can assert exact text whichever way they reached the server.
 *
 * The reply to a conversation whose last user turn has text C, preceded by
 * T user turns, is "[turn N] C" with N = T + 1. It is cut greedily into
 * pieces of whole UTF-8 code points of at most chunk_bytes bytes (a code
 * point longer than chunk_bytes is a piece alone); max_tokens caps the number
 * of pieces, and the stop reason is "max_tokens" only when the cap cut the
 * reply. input_tokens = ceil(context bytes / 4), where the caller says which
 * bytes count: the WebSocket protocol counts C plus all history contents,
 * the HTTP dialects count every message content (system ones included).
 * output_tokens is the number of pieces sent.
 *
 * This file holds the rules of section 8 that every reply follows (how
 * text is cut into pieces, how input is counted); echo_blocks.h builds the
 * replies, plain text being the simplest case of sections 9-10.
 */
#ifndef PL_ECHO_MODEL_H
#define PL_ECHO_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define PL_ECHO_MODEL "parley-echo-1"
#define PL_ECHO_DEFAULT_CHUNK_BYTES 16
#define PL_ECHO_NO_LIMIT UINT64_MAX /* max_tokens when the request set none */

/* ceil(bytes / 4), without overflow for any bytes. */
uint64_t pl_echo_input_tokens(uint64_t context_bytes);

/*
 * The end offset (exclusive) of the code point starting at pos in s[0, len).
 * The lead byte decides the length; the result never passes len, so
 * malformed UTF-8 cannot make a caller read out of bounds.
 */
size_t pl_echo_next_code_point(const char *s, size_t pos, size_t len);

/*
 * Cut s[0, len) greedily into pieces of whole code points of at most
 * chunk_bytes bytes (0 means the default 16). Writes each piece's end offset
 * to piece_end, which must have room for len entries (every piece holds at
 * least one byte). Returns the number of pieces (0 only for len 0).
 */
size_t pl_echo_cut(const char *s, size_t len, size_t chunk_bytes,
                   size_t *piece_end);

#endif
