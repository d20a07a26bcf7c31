/*
 * JSON values kept as the server wrote them. A tool call's input is handed
 * to the user, and sent back in the history, as the text the server sent
 * (key order, escapes and number spellings kept: protocol.md 10.1), which a
 * json-c round trip would not preserve (it clamps big integers, re-spells
 * numbers). These work on raw text; the callers check it with json-c first.
 */
#ifndef PL_JSON_RAW_H
#define PL_JSON_RAW_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

struct json_tokener;

/*
 * The raw text of the value of the top-level member `key` of obj, a JSON
 * object text that already parsed as strict JSON; the last one when the key
 * is given twice (json-c keeps the last too). False when no member is
 * spelled exactly `key` (a key written with escapes is not found).
 */
bool pl_json_raw_member(const char *obj, size_t len, const char *key,
                        const char **value, size_t *value_len);

/* Append text without the blanks outside its strings (compact JSON). */
int pl_json_append_compact(pl_buf *out, const char *text, size_t len);

/*
 * Check that text is exactly one JSON object (strict JSON, valid UTF-8, no
 * unpaired UTF-16 surrogate escape), with *tok (made when NULL, kept for
 * the next call). Returns 0, or -1 with a sentence in err.
 */
int pl_json_check_object(struct json_tokener **tok, const char *text, size_t len,
                         char *err, size_t err_size);

#endif
