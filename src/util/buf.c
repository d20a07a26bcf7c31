#include "buf.h"

#include <stdlib.h>
#include <string.h>

int pl_buf_reserve(pl_buf *b, size_t extra)
{
    /* len + extra + 1 must not wrap around, or a huge request would look
     * satisfied and the caller would write past the allocation. */
    if (extra > SIZE_MAX - 1 - b->len)
        return -1;
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2)
            return -1;
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int pl_buf_append(pl_buf *b, const void *data, size_t len)
{
    if (pl_buf_reserve(b, len) != 0)
        return -1;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int pl_buf_append_str(pl_buf *b, const char *s)
{
    return pl_buf_append(b, s, strlen(s));
}

int pl_buf_append_u64(pl_buf *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return pl_buf_append(b, tmp + i, sizeof(tmp) - i);
}

int pl_buf_append_i64(pl_buf *b, int64_t v)
{
    if (v >= 0)
        return pl_buf_append_u64(b, (uint64_t)v);
    if (pl_buf_append(b, "-", 1) != 0)
        return -1;
    return pl_buf_append_u64(b, (uint64_t)0 - (uint64_t)v);
}

int pl_buf_append_json_str(pl_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    /* Worst case every byte becomes \u00XX. */
    if (len > (SIZE_MAX - 2) / 6 || pl_buf_reserve(b, len * 6 + 2) != 0)
        return -1;
    char *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': *o++ = '\\'; *o++ = '"'; break;
        case '\\': *o++ = '\\'; *o++ = '\\'; break;
        case '\n': *o++ = '\\'; *o++ = 'n'; break;
        case '\r': *o++ = '\\'; *o++ = 'r'; break;
        case '\t': *o++ = '\\'; *o++ = 't'; break;
        case '\b': *o++ = '\\'; *o++ = 'b'; break;
        case '\f': *o++ = '\\'; *o++ = 'f'; break;
        default:
            if (c < 0x20) {
                *o++ = '\\'; *o++ = 'u'; *o++ = '0'; *o++ = '0';
                *o++ = hex[c >> 4]; *o++ = hex[c & 15];
            } else {
                *o++ = (char)c;
            }
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
    return 0;
}

void pl_buf_reset(pl_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void pl_buf_free(pl_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *pl_buf_steal(pl_buf *b, size_t *len)
{
    char *p = b->data;
    if (len)
        *len = b->len;
    /* The taker usually keeps the data (a request's frame until the reply
     * ends, a reply in the history for the session's life), but the
     * capacity doubled as it grew, and a JSON string reserves six bytes per
     * byte escaped: a 4 KB turn's frame sat in 32 KB. Give the rest back;
     * glibc shrinks in place, and a failed shrink keeps the block. */
    if (p && b->len + 1 < b->cap) {
        char *fitted = realloc(p, b->len + 1);
        if (fitted)
            p = fitted;
    }
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
