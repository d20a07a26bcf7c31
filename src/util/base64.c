#include "base64.h"

#include <stdint.h>
#include <string.h>

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int pl_base64_encode(pl_buf *out, const void *data, size_t len)
{
    const unsigned char *p = data;
    if (pl_buf_reserve(out, (len + 2) / 3 * 4) != 0)
        return -1;
    char quad[4];
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        quad[0] = alphabet[v >> 18 & 63];
        quad[1] = alphabet[v >> 12 & 63];
        quad[2] = i + 1 < len ? alphabet[v >> 6 & 63] : '=';
        quad[3] = i + 2 < len ? alphabet[v & 63] : '=';
        if (pl_buf_append(out, quad, 4) != 0)
            return -1;
    }
    return 0;
}

bool pl_base64_valid(const char *s, size_t len, size_t *decoded)
{
    if (len % 4)
        return false;
    size_t pad = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '=') {
            /* Padding only in the last two places, and nothing after it. */
            if (i < len - 2)
                return false;
            pad++;
        } else if (pad || !memchr(alphabet, c, sizeof(alphabet) - 1) || c == '\0') {
            return false;
        }
    }
    if (decoded)
        *decoded = len / 4 * 3 - pad;
    return true;
}
