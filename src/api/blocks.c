/* Content blocks checked as the vendors check them. */
#include "blocks.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "alloc.h"
#include "base64.h"

__attribute__((format(printf, 3, 4))) static bool fail(char *err, size_t size, const char *fmt,
                                                        ...)
{
    if (err && size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, size, fmt, ap);
        va_end(ap);
    }
    return false;
}

bool pl_block_media_type_valid(const char *media_type)
{
    static const char *const types[] = {"image/png", "image/jpeg", "image/gif", "image/webp"};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (!strcmp(media_type, types[i]))
            return true;
    return false;
}

/* The string member `key` of obj, or NULL when absent or not a string. */
static const char *str_member(json_object *obj, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static bool nonempty(const char *s)
{
    return s && *s;
}

static bool check_image(json_object *block, char *err, size_t size)
{
    json_object *source;
    if (!json_object_object_get_ex(block, "source", &source) ||
        !json_object_is_type(source, json_type_object))
        return fail(err, size, "an image block needs a \"source\" object");
    const char *type = str_member(source, "type");
    if (type && !strcmp(type, "url")) {
        const char *url = str_member(source, "url");
        if (!url || (strncmp(url, "https://", 8) && strncmp(url, "http://", 7)))
            return fail(err, size, "an image url source needs an http(s) \"url\"");
        return true;
    }
    if (!type || strcmp(type, "base64"))
        return fail(err, size, "an image source's \"type\" must be base64 or url");
    const char *media = str_member(source, "media_type");
    if (!media || !pl_block_media_type_valid(media))
        return fail(err, size,
                    "an image's \"media_type\" must be image/png, image/jpeg, image/gif or "
                    "image/webp");
    json_object *data;
    if (!json_object_object_get_ex(source, "data", &data) ||
        !json_object_is_type(data, json_type_string) || !json_object_get_string_len(data) ||
        !pl_base64_valid(json_object_get_string(data), (size_t)json_object_get_string_len(data),
                         NULL))
        return fail(err, size, "an image's \"data\" must be non-empty base64");
    return true;
}

static bool check_tool_result(json_object *block, char *err, size_t size)
{
    if (!nonempty(str_member(block, "tool_use_id")))
        return fail(err, size, "a tool_result block needs its \"tool_use_id\"");
    json_object *content, *is_error;
    if (json_object_object_get_ex(block, "content", &content) &&
        !json_object_is_type(content, json_type_string)) {
        if (!json_object_is_type(content, json_type_array))
            return fail(err, size, "a tool_result's \"content\" must be a string or blocks");
        for (size_t i = 0; i < json_object_array_length(content); i++) {
            json_object *inner = json_object_array_get_idx(content, i);
            const char *type = json_object_is_type(inner, json_type_object)
                                   ? str_member(inner, "type")
                                   : NULL;
            if (!type || (strcmp(type, "text") && strcmp(type, "image")))
                return fail(err, size, "a tool_result's content holds text and image blocks only");
            if (!pl_block_check(inner, false, err, size))
                return false;
        }
    }
    if (json_object_object_get_ex(block, "is_error", &is_error) &&
        !json_object_is_type(is_error, json_type_boolean))
        return fail(err, size, "a tool_result's \"is_error\" must be true or false");
    return true;
}

bool pl_block_check(json_object *block, bool assistant, char *err, size_t size)
{
    if (!json_object_is_type(block, json_type_object))
        return fail(err, size, "a block must be a JSON object");
    const char *type = str_member(block, "type");
    if (!type)
        return fail(err, size, "a block needs a \"type\"");
    if (!strcmp(type, "text")) {
        if (!nonempty(str_member(block, "text")))
            return fail(err, size, "a text block needs a non-empty \"text\"");
        return true;
    }
    if (!assistant && !strcmp(type, "image"))
        return check_image(block, err, size);
    if (!assistant && !strcmp(type, "tool_result"))
        return check_tool_result(block, err, size);
    if (assistant && !strcmp(type, "tool_use")) {
        json_object *input;
        if (!nonempty(str_member(block, "id")) || !nonempty(str_member(block, "name")) ||
            !json_object_object_get_ex(block, "input", &input) ||
            !json_object_is_type(input, json_type_object))
            return fail(err, size, "a tool_use block needs \"id\", \"name\" and an \"input\" object");
        return true;
    }
    if (assistant && !strcmp(type, "thinking")) {
        if (!str_member(block, "thinking") || !nonempty(str_member(block, "signature")))
            return fail(err, size, "a thinking block needs \"thinking\" and a \"signature\"");
        return true;
    }
    if (assistant && !strcmp(type, "redacted_thinking")) {
        if (!nonempty(str_member(block, "data")))
            return fail(err, size, "a redacted_thinking block needs its \"data\"");
        return true;
    }
    return fail(err, size, "a %s message cannot hold a block of type \"%.32s\"",
                assistant ? "assistant" : "user", type);
}

/* Does user (a block array or string) answer every tool_use of assistant
 * (a block array) with leading tool_result blocks? */
static bool answers(json_object *assistant, json_object *user, char *err, size_t size)
{
    if (!json_object_is_type(assistant, json_type_array))
        return true;
    size_t nuser = json_object_is_type(user, json_type_array) ? json_object_array_length(user) : 0;
    for (size_t i = 0; i < json_object_array_length(assistant); i++) {
        json_object *call = json_object_array_get_idx(assistant, i);
        const char *type = str_member(call, "type");
        if (!type || strcmp(type, "tool_use"))
            continue;
        const char *id = str_member(call, "id");
        bool found = false;
        for (size_t j = 0; j < nuser && !found; j++) {
            json_object *result = json_object_array_get_idx(user, j);
            const char *rtype = str_member(result, "type");
            if (!rtype || strcmp(rtype, "tool_result"))
                break; /* the results come first */
            const char *rid = str_member(result, "tool_use_id");
            found = rid && id && !strcmp(rid, id);
        }
        if (!found)
            return fail(err, size,
                        "the reply before it called %.64s (%.64s): the next user turn must start "
                        "with its tool_result",
                        str_member(call, "name") ? str_member(call, "name") : "a tool",
                        id ? id : "no id");
    }
    return true;
}

static bool check_content(json_object *content, bool assistant, char *err, size_t size)
{
    if (json_object_is_type(content, json_type_string)) {
        if (!json_object_get_string_len(content))
            return fail(err, size, "its content is empty");
        return true;
    }
    if (!json_object_is_type(content, json_type_array))
        return fail(err, size, "its content must be a string or an array of blocks");
    size_t n = json_object_array_length(content);
    if (!n)
        return fail(err, size, "its content is empty");
    for (size_t i = 0; i < n; i++) {
        char inner[200];
        if (!pl_block_check(json_object_array_get_idx(content, i), assistant, inner,
                            sizeof(inner)))
            return fail(err, size, "block %zu: %s", i, inner);
    }
    return true;
}

bool pl_conversation_check(json_object *messages, char *err, size_t size)
{
    if (!json_object_is_type(messages, json_type_array))
        return fail(err, size, "the history must be a JSON array of messages");
    size_t n = json_object_array_length(messages);
    if (n % 2)
        return fail(err, size, "the history must end with an assistant message (it has %zu)", n);
    for (size_t i = 0; i < n; i++) {
        json_object *m = json_object_array_get_idx(messages, i), *content;
        bool assistant = i % 2;
        const char *role = json_object_is_type(m, json_type_object) ? str_member(m, "role") : NULL;
        char inner[240];
        if (!role || strcmp(role, assistant ? "assistant" : "user"))
            return fail(err, size, "message %zu: the role must be \"%s\" (user and assistant "
                        "alternate, from user)", i, assistant ? "assistant" : "user");
        if (!json_object_object_get_ex(m, "content", &content))
            return fail(err, size, "message %zu has no content", i);
        if (!check_content(content, assistant, inner, sizeof(inner)))
            return fail(err, size, "message %zu: %s", i, inner);
        if (!assistant && i > 0) {
            json_object *before;
            json_object_object_get_ex(json_object_array_get_idx(messages, i - 1), "content",
                                      &before);
            if (!answers(before, content, inner, sizeof(inner)))
                return fail(err, size, "message %zu: %s", i, inner);
        }
    }
    return true;
}

static json_object *parse_compact(const char *s, size_t len)
{
    json_tokener *tok = json_tokener_new();
    if (!tok)
        pl_oom("checking tool results");
    json_object *obj = json_tokener_parse_ex(tok, s, (int)len);
    json_tokener_free(tok);
    return obj;
}

bool pl_blocks_answer_calls(const char *assistant, size_t assistant_len, bool assistant_blocks,
                            const char *user, size_t user_len, bool user_blocks, char *err,
                            size_t size)
{
    /* Most replies call no tool: no parse for them. A call's block holds
     * these bytes in compact JSON, so their absence proves there is none;
     * their presence (maybe inside an input) is checked by parsing. */
    if (!assistant_blocks || !memmem(assistant, assistant_len, "\"type\":\"tool_use\"", 17))
        return true;
    json_object *a = parse_compact(assistant, assistant_len);
    json_object *u = user_blocks ? parse_compact(user, user_len) : NULL;
    bool ok = answers(a, u, err, size);
    json_object_put(a);
    json_object_put(u);
    return ok;
}
