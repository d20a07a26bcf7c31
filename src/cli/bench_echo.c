/* Turns and expected echo replies of a load run (bench_echo.h). */
#include "bench_echo.h"

#include <stdio.h>
#include <string.h>

void bench_echo_message(char *buf, size_t size, uint64_t conversation, unsigned long turn)
{
    /* A few pieces long at the server's default 16-byte pieces, like a
     * short chat turn. */
    snprintf(buf, size, "conversation %llu, turn %lu: how is it going?",
             (unsigned long long)conversation, turn);
}

void bench_expect_reply(bench_expect *e, unsigned long turn, const char *message)
{
    int n = snprintf(e->text, sizeof(e->text), "[turn %lu] %s", turn, message);
    /* The message is ours and short: it always fits. */
    e->len = n > 0 && (size_t)n < sizeof(e->text) ? (size_t)n : 0;
    e->seen = 0;
    e->pieces_ok = e->len > 0;
}

void bench_expect_piece(bench_expect *e, const char *piece, size_t len)
{
    /* Once a piece is wrong, seen may pass len: compare nothing more. */
    if (e->pieces_ok && (len > e->len - e->seen || memcmp(e->text + e->seen, piece, len) != 0))
        e->pieces_ok = false;
    e->seen += len;
}

bool bench_expect_met(const bench_expect *e, const char *whole, size_t whole_len)
{
    if (!e->pieces_ok || e->seen != e->len)
        return false;
    return !whole || (whole_len == e->len && memcmp(whole, e->text, e->len) == 0);
}
