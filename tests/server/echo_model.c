/*
 * parley-echo-1, the deterministic reference model (echo_model.h).
 */
#include "echo_model.h"

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
