/*
 * A one-pass scanner for the small JSON objects that stream in once per
 * piece (protocol_fast.c, dialect_fast.c), for the fast paths that spare
 * them a json-c tree. It accepts only a subset and declines the rest, so
 * that a caller can leave whatever it declines to json-c:
 *
 *   accepted  objects and arrays (nested up to PL_JSON_SCAN_NESTING),
 *             strings with every escape, integers in [0, 10^19), null
 *   declined  true and false, negative or fractional numbers, unpaired
 *             UTF-16 surrogate escapes (json-c would replace them silently),
 *             pairs for U+xD800..U+xDFFF (json-c replaces them too), raw
 *             control characters, anything malformed, and anything but
 *             blanks after the object
 *
 * Members are reported down to PL_JSON_SCAN_DEPTH keys; deeper ones, and
 * whatever is inside arrays, are checked but not reported.
 */
#ifndef PL_JSON_SCAN_H
#define PL_JSON_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define PL_JSON_SCAN_DEPTH 3
/* Well below json-c's default depth (32), past which it refuses a text. */
#define PL_JSON_SCAN_NESTING 16

typedef struct pl_json_value {
    enum { PL_JSON_NULL, PL_JSON_STRING, PL_JSON_NUMBER, PL_JSON_OBJECT, PL_JSON_ARRAY } kind;
    const char *s; /* STRING: decoded, NUL-terminated (may hold NULs) */
    size_t len;
    uint64_t n;    /* NUMBER */
} pl_json_value;

/*
 * Called for every member, in order: keys[0..depth-1] is its path from the
 * top (keys[depth-1] its own name; key_lens their lengths). For an OBJECT,
 * its members follow; for an ARRAY, nothing (its elements are not members).
 * Return false to decline the whole text.
 */
typedef bool pl_json_member_cb(void *ctx, const char *const *keys,
                               const size_t *key_lens, size_t depth,
                               const pl_json_value *v);

/*
 * Scan buf, one object. Decoded strings go into `strings` (emptied first),
 * where they stay until it changes. Returns true when the whole text was
 * accepted and no callback declined.
 */
bool pl_json_scan(pl_buf *strings, const char *buf, size_t len,
                  pl_json_member_cb *cb, void *ctx);

/* Whether a "\uXXXX" escape starts at p (at most end - p bytes); its code
 * unit in *cu. */
bool pl_json_u_escape(const char *p, const char *end, unsigned *cu);

/* Whether the key at keys[i] is `name`. */
bool pl_json_key_is(const char *const *keys, const size_t *key_lens, size_t i,
                    const char *name);

#endif
