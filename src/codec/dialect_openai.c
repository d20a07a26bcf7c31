/* OpenAI Chat Completions: POST /v1/chat/completions, streamed as data-only
 * SSE events ending with "data: [DONE]". */
#include <stdio.h>
#include <string.h>

#include <json.h>

#include "dialect.h"

static int append_message(pl_buf *out, const char *role, const char *content, size_t len)
{
    if (pl_buf_append_str(out, "{\"role\":\"") != 0 || pl_buf_append_str(out, role) != 0 ||
        pl_buf_append_str(out, "\",\"content\":") != 0 ||
        pl_buf_append_json_str(out, content, len) != 0)
        return -1;
    return pl_buf_append(out, "}", 1);
}

int pl_openai_encode(pl_buf *out, const pl_message_req *req)
{
    const char *system = req->params ? req->params->system : NULL;
    const char *model = req->model ? req->model : "parley-echo-1";
    if (pl_buf_append_str(out, "{\"model\":") != 0 ||
        pl_buf_append_json_str(out, model, strlen(model)) != 0 ||
        pl_buf_append_str(out, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}") != 0)
        return -1;
    if (req->max_tokens && (pl_buf_append_str(out, ",\"max_tokens\":") != 0 ||
                            pl_buf_append_u64(out, req->max_tokens) != 0))
        return -1;
    if (pl_buf_append_str(out, ",\"messages\":[") != 0)
        return -1;
    bool first = true;
    if (system) {
        if (append_message(out, "system", system, strlen(system)) != 0)
            return -1;
        first = false;
    }
    for (size_t i = 0; i < req->nhistory; i++, first = false) {
        const pl_history_turn *h = &req->history[i];
        if ((!first && pl_buf_append(out, ",", 1) != 0) ||
            append_message(out, h->assistant ? "assistant" : "user", h->content,
                           h->content_len) != 0)
            return -1;
    }
    if ((!first && pl_buf_append(out, ",", 1) != 0) ||
        append_message(out, "user", req->content, req->content_len) != 0)
        return -1;
    return pl_buf_append_str(out, "]}");
}

static struct json_object *member(struct json_object *obj, const char *key)
{
    struct json_object *v = NULL;
    return obj && json_object_object_get_ex(obj, key, &v) ? v : NULL;
}

static void read_tokens(struct json_object *usage, const char *key, uint64_t *out)
{
    struct json_object *v = member(usage, key);
    if (v && json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0)
        *out = (uint64_t)json_object_get_int64(v);
}

/* finish_reason "length" means the token limit cut the reply. */
static const char *map_finish_reason(const char *reason)
{
    return !strcmp(reason, "length") ? "max_tokens" : "end_turn";
}

int pl_openai_event(pl_stream_state *st, struct json_object *obj,
                    pl_stream_result *res, char *err, size_t err_size)
{
    struct json_object *e = member(obj, "error");
    if (e) {
        struct json_object *type = member(e, "type"), *msg = member(e, "message");
        res->kind = PL_STREAM_ERROR;
        res->error_type = type && json_object_is_type(type, json_type_string)
                              ? json_object_get_string(type) : NULL;
        res->error_message = msg && json_object_is_type(msg, json_type_string)
                                 ? json_object_get_string(msg) : NULL;
        return 0;
    }
    struct json_object *usage = member(obj, "usage");
    if (usage && json_object_is_type(usage, json_type_object)) {
        read_tokens(usage, "prompt_tokens", &st->input_tokens);
        read_tokens(usage, "completion_tokens", &st->output_tokens);
    }
    struct json_object *choices = member(obj, "choices");
    if (!choices || !json_object_is_type(choices, json_type_array)) {
        snprintf(err, err_size, "a chunk without a \"choices\" array");
        return -1;
    }
    if (json_object_array_length(choices) == 0)
        return 0; /* the usage chunk */
    struct json_object *choice = json_object_array_get_idx(choices, 0);
    struct json_object *finish = member(choice, "finish_reason");
    if (finish && json_object_is_type(finish, json_type_string))
        st->stop_reason = map_finish_reason(json_object_get_string(finish));
    struct json_object *content = member(member(choice, "delta"), "content");
    if (content && json_object_is_type(content, json_type_string) &&
        json_object_get_string_len(content) > 0) {
        res->kind = PL_STREAM_TEXT;
        res->text = json_object_get_string(content);
        res->text_len = (size_t)json_object_get_string_len(content);
    }
    return 0;
}
