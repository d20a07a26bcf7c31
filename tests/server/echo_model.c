/*
 * parley-echo-1, the deterministic reference model (echo_model.h).
 */
#include "echo_model.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t pl_echo_input_tokens(uint64_t context_bytes)
{
    /* (bytes + 3) / 4 would overflow near UINT64_MAX. */
    return context_bytes / 4 + (context_bytes % 4 != 0);
}

size_t pl_echo_next_code_point(const char *s, size_t pos, size_t len)
{
    unsigned char b = (unsigned char)s[pos];
    size_t n = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;

    return n < len - pos ? pos + n : len;
}

size_t pl_echo_cut(const char *s, size_t len, size_t chunk_bytes,
                   size_t *piece_end)
{
    size_t pos = 0, n = 0;

    if (!chunk_bytes)
        chunk_bytes = PL_ECHO_DEFAULT_CHUNK_BYTES;
    while (pos < len) {
        /* The first code point always goes in, even when it is longer than
         * chunk_bytes: a piece never splits a character. */
        size_t end = pl_echo_next_code_point(s, pos, len);

        while (end < len) {
            size_t next = pl_echo_next_code_point(s, end, len);
            if (next - pos > chunk_bytes)
                break;
            end = next;
        }
        piece_end[n++] = end;
        pos = end;
    }
    return n;
}

/* "[turn N] " + content, NUL-terminated; NULL when out of memory. */
static char *compose(uint64_t prior_user_turns, const char *content,
                     size_t content_len, size_t *len)
{
    char prefix[40];
    /* N = T + 1 wraps only at 2^64 user turns: not a real conversation. */
    int plen = snprintf(prefix, sizeof prefix, "[turn %" PRIu64 "] ",
                        prior_user_turns + 1);
    char *text;

    if (content_len > SIZE_MAX - (size_t)plen - 1)
        return NULL;
    text = malloc((size_t)plen + content_len + 1);
    if (!text)
        return NULL;
    memcpy(text, prefix, (size_t)plen);
    if (content_len)
        memcpy(text + plen, content, content_len);
    text[plen + content_len] = '\0';
    *len = (size_t)plen + content_len;
    return text;
}

int pl_echo_reply_build(pl_echo_reply *r, uint64_t prior_user_turns,
                        const char *content, size_t content_len,
                        uint64_t context_bytes, size_t chunk_bytes,
                        uint64_t max_tokens)
{
    memset(r, 0, sizeof *r);
    r->text = compose(prior_user_turns, content, content_len, &r->len);
    /* The prefix makes len >= 1, so this allocation is never of 0 bytes. */
    r->piece_end = r->text && r->len <= SIZE_MAX / sizeof *r->piece_end
                       ? malloc(r->len * sizeof *r->piece_end) : NULL;
    if (!r->piece_end) {
        free(r->text);
        memset(r, 0, sizeof *r);
        return -1;
    }
    r->total_pieces = pl_echo_cut(r->text, r->len, chunk_bytes, r->piece_end);
    r->npieces = (uint64_t)r->total_pieces < max_tokens ? r->total_pieces
                                                        : (size_t)max_tokens;
    r->truncated = r->npieces < r->total_pieces;
    r->input_tokens = pl_echo_input_tokens(context_bytes);
    return 0;
}

void pl_echo_reply_free(pl_echo_reply *r)
{
    free(r->text);
    free(r->piece_end);
    memset(r, 0, sizeof *r);
}

size_t pl_echo_piece_start(const pl_echo_reply *r, size_t k)
{
    return k ? r->piece_end[k - 1] : 0;
}

size_t pl_echo_piece_len(const pl_echo_reply *r, size_t k)
{
    return r->piece_end[k] - pl_echo_piece_start(r, k);
}

const char *pl_echo_stop_reason(const pl_echo_reply *r)
{
    return r->truncated ? "max_tokens" : "end_turn";
}
