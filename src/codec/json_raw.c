/* JSON values kept as the server wrote them (json_raw.h). */
#include "json_raw.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <json.h>

#include "json_scan.h"
#include "utf8.h"

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t skip_blanks(const char *s, size_t i, size_t len)
{
    while (i < len && is_blank(s[i]))
        i++;
    return i;
}

/* s[i] is the opening quote: the index after the closing one. */
static size_t skip_string(const char *s, size_t i, size_t len)
{
    for (i++; i < len; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return len;
}

/* The index just after the value starting at s[i] (valid JSON). */
static size_t skip_value(const char *s, size_t i, size_t len)
{
    if (i >= len)
        return len;
    if (s[i] == '"')
        return skip_string(s, i, len);
    if (s[i] == '{' || s[i] == '[') {
        size_t depth = 0;
        while (i < len) {
            char c = s[i];
            if (c == '"') {
                i = skip_string(s, i, len);
                continue;
            }
            if (c == '{' || c == '[')
                depth++;
            else if ((c == '}' || c == ']') && --depth == 0)
                return i + 1;
            i++;
        }
        return len;
    }
    while (i < len && s[i] != ',' && s[i] != '}' && s[i] != ']' && !is_blank(s[i]))
        i++;
    return i;
}

bool pl_json_raw_member(const char *obj, size_t len, const char *key,
                        const char **value, size_t *value_len)
{
    size_t klen = strlen(key);
    bool found = false;
    size_t i = skip_blanks(obj, 0, len);
    if (i >= len || obj[i] != '{')
        return false;
    i = skip_blanks(obj, i + 1, len);
    while (i < len && obj[i] == '"') {
        size_t kend = skip_string(obj, i, len);
        bool match = kend - i == klen + 2 && memcmp(obj + i + 1, key, klen) == 0;
        i = skip_blanks(obj, kend, len);
        if (i >= len || obj[i] != ':')
            return false;
        size_t vstart = skip_blanks(obj, i + 1, len);
        size_t vend = skip_value(obj, vstart, len);
        if (match) {
            *value = obj + vstart;
            *value_len = vend - vstart;
            found = true;
        }
        i = skip_blanks(obj, vend, len);
        if (i < len && obj[i] == ',')
            i = skip_blanks(obj, i + 1, len);
    }
    return found;
}

int pl_json_append_compact(pl_buf *out, const char *text, size_t len)
{
    size_t i = 0;
    while (i < len) {
        if (is_blank(text[i])) {
            i++;
            continue;
        }
        size_t end = i;
        if (text[i] == '"') {
            end = skip_string(text, i, len);
        } else {
            while (end < len && !is_blank(text[end]) && text[end] != '"')
                end++;
        }
        if (pl_buf_append(out, text + i, end - i) != 0)
            return -1;
        i = end;
    }
    return 0;
}

/* json-c replaces an unpaired surrogate escape with U+FFFD silently; the
 * text would then not be what it seems (see protocol.c). Strict JSON: every
 * backslash is inside a string and starts a complete escape. */
static bool has_unpaired_surrogate(const char *s, size_t len)
{
    const char *p = s, *end = s + len;
    while (end - p >= 2 && (p = memchr(p, '\\', (size_t)(end - p))) != NULL) {
        unsigned cu, lo;
        if (!pl_json_u_escape(p, end, &cu)) {
            p += 2;
            continue;
        }
        p += 6;
        if (cu >= 0xDC00 && cu <= 0xDFFF)
            return true;
        if (cu >= 0xD800 && cu <= 0xDBFF) {
            if (!pl_json_u_escape(p, end, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                return true;
            p += 6;
        }
    }
    return false;
}

int pl_json_check_object(struct json_tokener **tok, const char *text, size_t len,
                         char *err, size_t err_size)
{
    if (len > INT_MAX) {
        snprintf(err, err_size, "a JSON value of %zu bytes", len);
        return -1;
    }
    if (!pl_utf8_valid(text, len)) {
        snprintf(err, err_size, "not valid UTF-8");
        return -1;
    }
    if (!*tok && !(*tok = json_tokener_new())) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    json_tokener_reset(*tok);
    json_tokener_set_flags(*tok, JSON_TOKENER_STRICT);
    json_object *obj = json_tokener_parse_ex(*tok, text, (int)len);
    bool ok = obj && json_tokener_get_parse_end(*tok) == len &&
              json_object_is_type(obj, json_type_object);
    json_object_put(obj);
    if (!obj) {
        /* A failed tokener may keep state a reset does not clear (see
         * protocol.c): make a new one next time. */
        json_tokener_free(*tok);
        *tok = NULL;
    }
    if (!ok) {
        snprintf(err, err_size, "not one JSON object");
        return -1;
    }
    if (has_unpaired_surrogate(text, len)) {
        snprintf(err, err_size, "a string holds an unpaired UTF-16 surrogate escape");
        return -1;
    }
    return 0;
}
