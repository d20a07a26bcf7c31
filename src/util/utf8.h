/* UTF-8 validation (RFC 3629: no overlongs, no surrogates, at most U+10FFFF). */
#ifndef PL_UTF8_H
#define PL_UTF8_H

#include <stdbool.h>
#include <stddef.h>

bool pl_utf8_valid(const char *s, size_t len);

/* The length (1-4) of the valid UTF-8 character at the start of s (len > 0
 * bytes), or 0 when s does not start with one. */
size_t pl_utf8_char_len(const char *s, size_t len);

#endif
