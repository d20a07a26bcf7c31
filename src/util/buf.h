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

/*
 * Each append returns 0, or -1 when memory ran out or the size would not fit
 * in a size_t (the buffer is unchanged). They return rather than abort
 * because some callers can report the failure (an encoder's caller answers
 * PARLEY_ERR_NO_MEMORY, an HTTP stream ends its transfer); those that cannot
 * call pl_oom() (alloc.h). Ignoring the result is a compiler warning.
 */
#define PL_BUF_MUST_CHECK __attribute__((warn_unused_result))
PL_BUF_MUST_CHECK int pl_buf_reserve(pl_buf *b, size_t extra);
PL_BUF_MUST_CHECK int pl_buf_append(pl_buf *b, const void *data, size_t len);
PL_BUF_MUST_CHECK int pl_buf_append_str(pl_buf *b, const char *s);
PL_BUF_MUST_CHECK int pl_buf_append_u64(pl_buf *b, uint64_t v);
PL_BUF_MUST_CHECK int pl_buf_append_i64(pl_buf *b, int64_t v);
/* Append `s` as a JSON string literal, quotes included. */
PL_BUF_MUST_CHECK int pl_buf_append_json_str(pl_buf *b, const char *s, size_t len);
void pl_buf_reset(pl_buf *b);
void pl_buf_free(pl_buf *b);
/* Hand the data over to the caller (who frees it), in an allocation shrunk
 * to len + 1 bytes; the buffer is emptied. */
char *pl_buf_steal(pl_buf *b, size_t *len);

#endif
