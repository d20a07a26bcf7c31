/* Base64 (RFC 4648, with padding), as the vendors take image bytes. */
#ifndef PL_BASE64_H
#define PL_BASE64_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* Append the encoding of data[0, len) to out. Returns 0, or -1 when memory
 * ran out. */
PL_BUF_MUST_CHECK int pl_base64_encode(pl_buf *out, const void *data, size_t len);

/* Is s[0, len) well-formed padded base64? On true, *decoded (may be NULL)
 * receives the number of bytes it stands for. */
bool pl_base64_valid(const char *s, size_t len, size_t *decoded);

#endif
