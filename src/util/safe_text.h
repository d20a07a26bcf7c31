/*
 * Text shown to people: log lines, error events, statistics. Parts of it
 * come from servers (error messages, echoed headers) and from the
 * configuration (the endpoint), so before it is shown the API key is taken
 * out and control characters are escaped: a server must not be able to
 * forge log lines (CR, LF) or drive a terminal (ESC, C1 controls).
 */
#ifndef PL_SAFE_TEXT_H
#define PL_SAFE_TEXT_H

#include <stddef.h>

/* What stands for the key. */
#define PL_REDACTED "[redacted]"
/* A key shorter than this is not looked for in free text: it cannot be told
 * from ordinary words. The headers that carry it are redacted whole instead
 * (log.c). */
#define PL_KEY_MATCH_MIN 4
/* The start of a key at least this long is redacted too: text cut short
 * somewhere on its way (a fixed-size buffer) may end in part of the key. */
#define PL_KEY_PART_MIN 8

/*
 * Copy `in` (len bytes, any bytes) into out (size bytes, always
 * NUL-terminated when size > 0), with
 *   - every occurrence of key (when at least PL_KEY_MATCH_MIN bytes long),
 *     and every run of its first PL_KEY_PART_MIN or more bytes, replaced by
 *     PL_REDACTED (key may be NULL);
 *   - LF, CR and TAB written as \n, \r and \t, other C0 bytes, DEL and bytes
 *     that are not UTF-8 as \xHH, and the C1 controls U+0080..U+009F as
 *     \u00HH. Backslashes stay as they are.
 * The result is valid UTF-8. Returns the length the whole result needs
 * (without the NUL), like snprintf; when it does not fit, out holds the
 * units (characters, escapes, PL_REDACTED) that fit whole.
 */
size_t pl_safe_text(char *out, size_t size, const char *in, size_t len,
                    const char *key);

/*
 * The URL as shown in logs, errors and statistics: without its user
 * information, query and fragment (which may carry credentials), with
 * control characters escaped as above. Works on any string.
 */
void pl_safe_url(const char *url, char *out, size_t size);

#endif
