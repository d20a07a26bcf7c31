/* Request bodies written by hand, with extra_body merged (request_body.h). */
#include "request_body.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

int pl_body_open(pl_body *b, pl_buf *out, const pl_request_params *params)
{
    b->out = out;
    b->extra = NULL;
    if (!params || !params->extra_body)
        return 0;
    b->extra = json_tokener_parse(params->extra_body);
    if (b->extra && json_object_is_type(b->extra, json_type_object))
        return 0;
    json_object_put(b->extra);
    b->extra = NULL;
    return -1;
}

bool pl_body_ours(const pl_body *b, const char *key)
{
    return !b->extra || !json_object_object_get_ex(b->extra, key, NULL);
}

static bool named_in(const char *key, const char *const *names)
{
    for (; names && *names; names++)
        if (!strcmp(key, *names))
            return true;
    return false;
}

int pl_body_close(pl_body *b, const char *const *kept)
{
    int rc = 0;
    if (b->extra) {
        json_object_object_foreach(b->extra, key, value) {
            if (named_in(key, kept))
                continue;
            const char *text = json_object_to_json_string_ext(
                value, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
            if (!text || pl_body_key(b->out, key) != 0 ||
                pl_buf_append_str(b->out, text) != 0) {
                rc = -1;
                break;
            }
        }
    }
    pl_body_abandon(b);
    return rc;
}

void pl_body_abandon(pl_body *b)
{
    json_object_put(b->extra);
    b->extra = NULL;
}

/* The members of a vendor's body that carry the conversation and the
 * stream: extra_body may not replace them. */
static const char *const http_kept[] = {"messages", "stream", NULL};

int pl_body_write_http(pl_buf *out, const pl_request_params *params, pl_body_members *members,
                       const struct pl_message_req *req)
{
    size_t mark = out->len;
    pl_body body;
    if (pl_body_open(&body, out, params) != 0)
        return -1;
    if (members(&body, req) != 0)
        pl_body_abandon(&body);
    else if (pl_body_close(&body, http_kept) == 0 && pl_buf_append(out, "}", 1) == 0)
        return 0;
    out->len = mark;
    if (out->data)
        out->data[mark] = '\0';
    return -1;
}

int pl_body_append_double(pl_buf *out, double v)
{
    char text[40];
    if (!isfinite(v))
        return -1;
    /* The fewest digits that read back as v: 0.7 stays "0.7". snprintf and
     * strtod agree on the locale's decimal point, which JSON wants as '.'. */
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(text, sizeof(text), "%.*g", digits, v);
        if (strtod(text, NULL) == v)
            break;
    }
    for (char *p = text; *p; p++)
        if (*p == ',')
            *p = '.';
    return pl_buf_append_str(out, text);
}

int pl_body_key(pl_buf *out, const char *key)
{
    if (pl_buf_append(out, ",", 1) != 0 || pl_buf_append_json_str(out, key, strlen(key)) != 0)
        return -1;
    return pl_buf_append(out, ":", 1);
}

/* ,"key":<json text> when set and ours. */
static int raw_member(pl_body *b, const char *key, const char *json)
{
    if (!json || !pl_body_ours(b, key))
        return 0;
    if (pl_body_key(b->out, key) != 0)
        return -1;
    return pl_buf_append_str(b->out, json);
}

int pl_body_common_params(pl_body *b, const pl_request_params *p, const char *tools)
{
    pl_buf *out = b->out;
    if (raw_member(b, "tools", tools ? tools : p->tools) != 0 ||
        raw_member(b, "tool_choice", p->tool_choice) != 0)
        return -1;
    if (p->thinking_budget && pl_body_ours(b, "thinking") &&
        (pl_body_key(out, "thinking") != 0 ||
         pl_buf_append_str(out, "{\"type\":\"enabled\",\"budget_tokens\":") != 0 ||
         pl_buf_append_u64(out, p->thinking_budget) != 0 || pl_buf_append(out, "}", 1) != 0))
        return -1;
    if (raw_member(b, "stop_sequences", p->stop_sequences) != 0)
        return -1;
    if (p->has_temperature && pl_body_ours(b, "temperature") &&
        (pl_body_key(out, "temperature") != 0 || pl_body_append_double(out, p->temperature) != 0))
        return -1;
    if (p->has_top_p && pl_body_ours(b, "top_p") &&
        (pl_body_key(out, "top_p") != 0 || pl_body_append_double(out, p->top_p) != 0))
        return -1;
    if (p->top_k && pl_body_ours(b, "top_k") &&
        (pl_body_key(out, "top_k") != 0 || pl_buf_append_u64(out, p->top_k) != 0))
        return -1;
    return raw_member(b, "metadata", p->metadata);
}
