/* A growable byte buffer, always NUL-terminated after its data. */
#ifndef PL_BUF_H
#define PL_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct pl_buf {
    char *data; /* NULL until the first append */
    size_t len;
    size_t cap;
} pl_buf;

#define PL_BUF_INIT {NULL, 0, 0}

/* Each append returns 0, or -1 when memory ran out (the buffer is unchanged). */
int pl_buf_reserve(pl_buf *b, size_t extra);
int pl_buf_append(pl_buf *b, const void *data, size_t len);
int pl_buf_append_str(pl_buf *b, const char *s);
int pl_buf_append_u64(pl_buf *b, uint64_t v);
int pl_buf_append_i64(pl_buf *b, int64_t v);
/* Append `s` as a JSON string literal, quotes included. */
int pl_buf_append_json_str(pl_buf *b, const char *s, size_t len);
void pl_buf_reset(pl_buf *b);
void pl_buf_free(pl_buf *b);
/* Hand the data over to the caller (who frees it), in an allocation shrunk
 * to len + 1 bytes; the buffer is emptied. */
char *pl_buf_steal(pl_buf *b, size_t *len);

#endif
