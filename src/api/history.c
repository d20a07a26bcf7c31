/* A session's history (history.h). */
#include "history.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "alloc.h"
#include "blocks.h"
#include "utf8.h"

void pl_history_append(pl_history *h, bool assistant, bool blocks, char *content, size_t len)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 8;
        h->turns = pl_xrealloc(h->turns, h->cap * sizeof(*h->turns));
    }
    h->turns[h->n++] = (pl_history_turn){
        .assistant = assistant, .blocks = blocks, .content = content, .content_len = len};
    h->bytes += len;
    h->with_blocks += blocks;
}

/* Does this user message hold tool results (which answer the reply before
 * it)? In compact JSON a tool_result block holds these bytes. */
static bool answers_a_call(const pl_history_turn *t)
{
    return t->blocks && memmem(t->content, t->content_len, "\"type\":\"tool_result\"", 20);
}

size_t pl_history_trim(pl_history *h, size_t max_turns, size_t max_bytes)
{
    size_t drop = 0, bytes = h->bytes; /* drop: messages, always whole turns */
    while (drop + 2 <= h->n &&
           ((max_turns && (h->n - drop) / 2 > max_turns) || (max_bytes && bytes > max_bytes))) {
        bytes -= h->turns[drop].content_len + h->turns[drop + 1].content_len;
        drop += 2;
        while (drop + 2 <= h->n && answers_a_call(&h->turns[drop])) {
            bytes -= h->turns[drop].content_len + h->turns[drop + 1].content_len;
            drop += 2;
        }
    }
    if (!drop)
        return 0;
    for (size_t i = 0; i < drop; i++) {
        h->with_blocks -= h->turns[i].blocks;
        free((char *)h->turns[i].content);
    }
    memmove(h->turns, h->turns + drop, (h->n - drop) * sizeof(*h->turns));
    h->n -= drop;
    h->bytes = bytes;
    return drop / 2;
}

int pl_history_write_message(pl_buf *out, const pl_history_turn *t)
{
    if (pl_buf_append_str(out, t->assistant ? "{\"role\":\"assistant\",\"content\":"
                                            : "{\"role\":\"user\",\"content\":") ||
        (t->blocks ? pl_buf_append(out, t->content, t->content_len)
                   : pl_buf_append_json_str(out, t->content, t->content_len)))
        return -1;
    return pl_buf_append(out, "}", 1);
}

int pl_history_export(const pl_history *h, pl_buf *out)
{
    if (pl_buf_append(out, "[", 1) != 0)
        return -1;
    for (size_t i = 0; i < h->n; i++)
        if ((i && pl_buf_append(out, ",", 1)) || pl_history_write_message(out, &h->turns[i]))
            return -1;
    return pl_buf_append(out, "]", 1);
}

int pl_history_import(pl_history *h, const char *json, size_t len, char *err, size_t err_size)
{
    if (!pl_utf8_valid(json, len)) {
        snprintf(err, err_size, "the history is not valid UTF-8");
        return -1;
    }
    json_tokener *tok = json_tokener_new();
    if (!tok)
        pl_oom("reading a history");
    json_object *messages = json_tokener_parse_ex(tok, json, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t used = tok->char_offset;
    json_tokener_free(tok);
    if (!messages || jerr != json_tokener_success || used < len) {
        json_object_put(messages);
        snprintf(err, err_size, "the history is not one JSON value (%s at byte %zu)",
                 jerr == json_tokener_success ? "more text after it"
                 : jerr == json_tokener_continue ? "it ends too early"
                                                 : json_tokener_error_desc(jerr),
                 used);
        return -1;
    }
    if (!pl_conversation_check(messages, err, err_size)) {
        json_object_put(messages);
        return -1;
    }
    for (size_t i = 0; i < json_object_array_length(messages); i++) {
        json_object *content;
        json_object_object_get_ex(json_object_array_get_idx(messages, i), "content", &content);
        bool blocks = json_object_is_type(content, json_type_array);
        const char *s = blocks ? json_object_to_json_string_ext(
                                     content, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
                               : json_object_get_string(content);
        size_t slen = blocks ? strlen(s) : (size_t)json_object_get_string_len(content);
        char *copy = pl_xmalloc(slen + 1);
        memcpy(copy, s, slen + 1);
        pl_history_append(h, i % 2, blocks, copy, slen);
    }
    json_object_put(messages);
    return 0;
}

void pl_history_free(pl_history *h)
{
    for (size_t i = 0; i < h->n; i++)
        free((char *)h->turns[i].content);
    free(h->turns);
    *h = (pl_history){0};
}
