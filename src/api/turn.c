/* A user turn built block by block (parley_turn_*), kept as the compact JSON
 * the encoders copy into every request that carries it. */
#include "turn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "alloc.h"
#include "base64.h"
#include "blocks.h"
#include "utf8.h"

parley_turn_t *parley_turn_new(void)
{
    return calloc(1, sizeof(parley_turn_t));
}

void parley_turn_destroy(parley_turn_t *turn)
{
    if (!turn)
        return;
    pl_buf_free(&turn->blocks);
    pl_buf_free(&turn->text);
    free(turn);
}

static bool text_ok(const char *s)
{
    return s && *s && pl_utf8_valid(s, strlen(s));
}

/* Start the next block: a comma after the one before. On failure the turn
 * is cut back to `mark`. */
static int block_open(parley_turn_t *t, size_t *mark)
{
    *mark = t->blocks.len;
    return t->nblocks ? pl_buf_append(&t->blocks, ",", 1) : 0;
}

static parley_err_t block_close(parley_turn_t *t, size_t mark, int rc, bool text)
{
    if (rc != 0) {
        t->blocks.len = mark;
        return PARLEY_ERR_NO_MEMORY;
    }
    t->nblocks++;
    t->text_only = t->nblocks == 1 ? text : false;
    return PARLEY_OK;
}

parley_err_t parley_turn_add_text(parley_turn_t *t, const char *text)
{
    if (!t || !text_ok(text))
        return PARLEY_ERR_INVALID_ARG;
    size_t mark, len = strlen(text);
    int rc = block_open(t, &mark);
    rc = rc || pl_buf_append_str(&t->blocks, "{\"type\":\"text\",\"text\":") ||
         pl_buf_append_json_str(&t->blocks, text, len) || pl_buf_append(&t->blocks, "}", 1);
    /* A turn of one text block is sent as a plain string, as parley_send()
     * sends it: keep the text for that. */
    if (rc == 0 && t->nblocks == 0) {
        pl_buf_reset(&t->text);
        rc = pl_buf_append(&t->text, text, len);
    }
    return block_close(t, mark, rc, true);
}

parley_err_t parley_turn_add_image(parley_turn_t *t, const char *media_type, const void *data,
                                   size_t len)
{
    if (!t || !media_type || !pl_block_media_type_valid(media_type) || !data || !len)
        return PARLEY_ERR_INVALID_ARG;
    size_t mark;
    int rc = block_open(t, &mark);
    rc = rc ||
         pl_buf_append_str(&t->blocks,
                           "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":") ||
         pl_buf_append_json_str(&t->blocks, media_type, strlen(media_type)) ||
         pl_buf_append_str(&t->blocks, ",\"data\":\"") || pl_base64_encode(&t->blocks, data, len) ||
         pl_buf_append_str(&t->blocks, "\"}}");
    return block_close(t, mark, rc, false);
}

parley_err_t parley_turn_add_image_url(parley_turn_t *t, const char *url)
{
    if (!t || !text_ok(url) || (strncmp(url, "https://", 8) && strncmp(url, "http://", 7)))
        return PARLEY_ERR_INVALID_ARG;
    size_t mark;
    int rc = block_open(t, &mark);
    rc = rc || pl_buf_append_str(&t->blocks, "{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":") ||
         pl_buf_append_json_str(&t->blocks, url, strlen(url)) || pl_buf_append_str(&t->blocks, "}}");
    return block_close(t, mark, rc, false);
}

parley_err_t parley_turn_add_tool_result(parley_turn_t *t, const char *tool_use_id,
                                         const char *content, int is_error)
{
    if (!t || !text_ok(tool_use_id) || !content || !pl_utf8_valid(content, strlen(content)))
        return PARLEY_ERR_INVALID_ARG;
    size_t mark;
    int rc = block_open(t, &mark);
    rc = rc || pl_buf_append_str(&t->blocks, "{\"type\":\"tool_result\",\"tool_use_id\":") ||
         pl_buf_append_json_str(&t->blocks, tool_use_id, strlen(tool_use_id)) ||
         pl_buf_append_str(&t->blocks, ",\"content\":") ||
         pl_buf_append_json_str(&t->blocks, content, strlen(content)) ||
         (is_error && pl_buf_append_str(&t->blocks, ",\"is_error\":true")) ||
         pl_buf_append(&t->blocks, "}", 1);
    return block_close(t, mark, rc, false);
}

static parley_err_t add_json_block(parley_turn_t *t, json_object *block, char *err,
                                   size_t err_size)
{
    if (!pl_block_check(block, false, err, err_size))
        return PARLEY_ERR_INVALID_ARG;
    const char *type;
    json_object *v;
    json_object_object_get_ex(block, "type", &v);
    type = json_object_get_string(v);
    if (!strcmp(type, "text")) {
        json_object_object_get_ex(block, "text", &v);
        return parley_turn_add_text(t, json_object_get_string(v));
    }
    const char *s = json_object_to_json_string_ext(
        block, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    if (!s)
        return PARLEY_ERR_NO_MEMORY;
    size_t mark;
    int rc = block_open(t, &mark);
    rc = rc || pl_buf_append_str(&t->blocks, s);
    return block_close(t, mark, rc, false);
}

parley_err_t parley_turn_add_json(parley_turn_t *t, const char *json, char *err,
                                  size_t err_size)
{
    if (!t || !json) {
        if (err && err_size)
            snprintf(err, err_size, "turn and json must not be NULL");
        return PARLEY_ERR_INVALID_ARG;
    }
    size_t len = strlen(json);
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return PARLEY_ERR_NO_MEMORY;
    json_object *obj = pl_utf8_valid(json, len) ? json_tokener_parse_ex(tok, json, (int)len) : NULL;
    bool whole = obj && json_tokener_get_error(tok) == json_tokener_success &&
                 (size_t)tok->char_offset == len;
    json_tokener_free(tok);
    if (!whole) {
        json_object_put(obj);
        if (err && err_size)
            snprintf(err, err_size, "not valid JSON (UTF-8, one value)");
        return PARLEY_ERR_INVALID_ARG;
    }
    /* All or nothing: check every block before adding any. */
    bool array = json_object_is_type(obj, json_type_array);
    size_t n = array ? json_object_array_length(obj) : 1;
    parley_err_t rc = n ? PARLEY_OK : PARLEY_ERR_INVALID_ARG;
    if (!n && err && err_size)
        snprintf(err, err_size, "an empty array holds no block");
    for (size_t i = 0; rc == PARLEY_OK && i < n; i++) {
        char inner[200];
        if (!pl_block_check(array ? json_object_array_get_idx(obj, i) : obj, false, inner,
                            sizeof(inner))) {
            if (err && err_size)
                snprintf(err, err_size, "block %zu: %s", i, inner);
            rc = PARLEY_ERR_INVALID_ARG;
        }
    }
    for (size_t i = 0; rc == PARLEY_OK && i < n; i++)
        rc = add_json_block(t, array ? json_object_array_get_idx(obj, i) : obj, err, err_size);
    json_object_put(obj);
    return rc;
}

int pl_turn_content(const parley_turn_t *t, char **content, size_t *len, bool *blocks)
{
    pl_buf out = PL_BUF_INIT;
    *blocks = !t->text_only;
    int rc = t->text_only ? pl_buf_append(&out, t->text.data, t->text.len)
                          : pl_buf_append(&out, "[", 1) ||
                                pl_buf_append(&out, t->blocks.data, t->blocks.len) ||
                                pl_buf_append(&out, "]", 1);
    if (rc != 0) {
        pl_buf_free(&out);
        return -1;
    }
    *content = pl_buf_steal(&out, len);
    return 0;
}
