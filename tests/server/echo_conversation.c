/*
 * Conversations read into echo requests, validated as the vendors do
 * (echo_conversation.h).
 */
#include "echo_conversation.h"

#include "refserver_common.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define OPENAI_MAX_STOP 4
#define ANTHROPIC_MIN_BUDGET 1024

/* The tool calls of the previous assistant turn, which the next turn must
 * answer. ids and names point into the JSON. */
struct call {
    const char *id;
    const char *name;
    int answered;
};

struct reader {
    pl_echo_conversation *cv;
    struct call *calls;
    size_t ncalls, cap;
    int openai_tool_run; /* the previous message had role "tool" */
};

/* ---- small helpers ----------------------------------------------------------- */

/* A member, JSON null counting as absent. */
static struct json_object *member(struct json_object *o, const char *k)
{
    struct json_object *v = NULL;

    if (json_object_is_type(o, json_type_object))
        json_object_object_get_ex(o, k, &v);
    return v;
}

static int is_type(struct json_object *o, json_type t)
{
    return o && json_object_is_type(o, t);
}

static const char *str_member(struct json_object *o, const char *k)
{
    struct json_object *v = member(o, k);

    return is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static int is_number(struct json_object *o)
{
    return is_type(o, json_type_double) || is_type(o, json_type_int);
}

__attribute__((format(printf, 2, 3)))
static const char *fail(pl_echo_conversation *cv, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cv->err, sizeof cv->err, fmt, ap);
    va_end(ap);
    return cv->err;
}

/* This server aborts when out of memory (refserver_common.h). */
static void add(pl_buf *b, const char *s, size_t len)
{
    if (pl_buf_append(b, s, len))
        pl_rs_check_alloc(NULL);
}

/* One more piece of a text joined by single spaces; b NULL: an earlier
 * turn's content, checked but not rendered. */
static void add_joined(pl_buf *b, const char *s, size_t len)
{
    if (!b)
        return;
    if (b->len)
        add(b, " ", 1);
    add(b, s, len);
}

static pl_echo_str str_of(struct json_object *s)
{
    pl_echo_str v = { json_object_get_string(s),
                      (size_t)json_object_get_string_len(s) };
    return v;
}

static pl_echo_str str_steal(pl_buf *b)
{
    pl_echo_str v;

    add(b, "", 0); /* an empty text still gets its terminator */
    v.s = pl_buf_steal(b, &v.len);
    return v;
}

/* ---- tool calls awaiting their results -------------------------------------- */

static void calls_clear(struct reader *rd)
{
    rd->ncalls = 0;
}

static void call_add(struct reader *rd, const char *id, const char *name)
{
    if (rd->ncalls == rd->cap) {
        rd->cap = rd->cap ? rd->cap * 2 : 8;
        rd->calls = pl_xrealloc(rd->calls, rd->cap * sizeof *rd->calls);
    }
    rd->calls[rd->ncalls].id = id;
    rd->calls[rd->ncalls].name = name;
    rd->calls[rd->ncalls++].answered = 0;
}

/* The unanswered call with this id, or NULL. */
static struct call *call_find(struct reader *rd, const char *id)
{
    size_t i;

    for (i = 0; i < rd->ncalls; i++)
        if (!rd->calls[i].answered && !strcmp(rd->calls[i].id, id))
            return &rd->calls[i];
    return NULL;
}

/* The first unanswered call's id, or NULL. */
static const char *call_pending(const struct reader *rd)
{
    size_t i;

    for (i = 0; i < rd->ncalls; i++)
        if (!rd->calls[i].answered)
            return rd->calls[i].id;
    return NULL;
}

static void result_add(pl_echo_conversation *cv, const char *name,
                       pl_buf *text, int is_error)
{
    pl_echo_result *r;

    if (cv->req.nresults == cv->results_cap) {
        cv->results_cap = cv->results_cap ? cv->results_cap * 2 : 4;
        cv->results = pl_xrealloc(cv->results,
                                  cv->results_cap * sizeof *cv->results);
    }
    r = &cv->results[cv->req.nresults++];
    r->name.s = name;
    r->name.len = strlen(name);
    r->text = str_steal(text);
    r->is_error = is_error;
    cv->req.results = cv->results;
}

static void results_drop(pl_echo_conversation *cv)
{
    size_t i;

    for (i = 0; i < cv->req.nresults; i++)
        free((char *)cv->results[i].text.s);
    cv->req.nresults = 0;
}

/* ---- images -------------------------------------------------------------------- */

/* "<image MEDIA_TYPE N bytes>" for base64 data, after checking both. */
static const char *image_base64(pl_echo_conversation *cv, const char *where,
                                const char *media_type, const char *data,
                                size_t len, pl_buf *out)
{
    char text[160];
    uint64_t size;
    int n;

    if (!pl_echo_image_type_ok(media_type))
        return fail(cv, "%s: image media_type must be one of image/png, "
                        "image/jpeg, image/gif, image/webp", where);
    if (pl_echo_base64_size(data, len, &size))
        return fail(cv, "%s: image data is not valid base64", where);
    n = snprintf(text, sizeof text, "<image %s %" PRIu64 " bytes>",
                 media_type, size);
    add_joined(out, text, (size_t)n);
    return NULL;
}

/* An Anthropic image block's source, rendered into out. */
static const char *image_block(pl_echo_conversation *cv, const char *where,
                               struct json_object *block, pl_buf *out,
                               uint64_t *bytes)
{
    struct json_object *source = member(block, "source");
    struct json_object *data = member(source, "data");
    const char *type = str_member(source, "type");
    const char *media = str_member(source, "media_type");

    if (type && !strcmp(type, "url") && str_member(source, "url")) {
        *bytes += strlen(str_member(source, "url"));
        add_joined(out, "<image url>", 11);
        return NULL;
    }
    if (!type || strcmp(type, "base64") || !media ||
        !is_type(data, json_type_string))
        return fail(cv, "%s: image source must be {\"type\":\"base64\","
                        "\"media_type\",\"data\"} or {\"type\":\"url\","
                        "\"url\"}", where);
    *bytes += (size_t)json_object_get_string_len(data);
    return image_base64(cv, where, media, json_object_get_string(data),
                        (size_t)json_object_get_string_len(data), out);
}

/* An OpenAI image_url part: a data URL counts as base64. */
static const char *image_url_part(pl_echo_conversation *cv, const char *where,
                                  struct json_object *part, pl_buf *out,
                                  uint64_t *bytes)
{
    static const char marker[] = ";base64,";
    const char *url = str_member(member(part, "image_url"), "url");
    const char *data;
    char media[64];
    size_t mlen;

    if (!url)
        return fail(cv, "%s: image_url must be {\"url\": string}", where);
    *bytes += strlen(url);
    if (strncmp(url, "data:", 5)) {
        add_joined(out, "<image url>", 11);
        return NULL;
    }
    data = strstr(url, marker);
    mlen = data ? (size_t)(data - url - 5) : 0;
    if (!data || mlen >= sizeof media)
        return fail(cv, "%s: a data URL must be data:MEDIA_TYPE;base64,DATA",
                    where);
    memcpy(media, url + 5, mlen);
    media[mlen] = '\0';
    data += sizeof marker - 1;
    return image_base64(cv, where, media, data, strlen(data), out);
}

/* ---- the Anthropic shape (native and Anthropic) ------------------------------- */

/* A text block's text, which must not be empty. */
static const char *text_block(pl_echo_conversation *cv, const char *where,
                              struct json_object *block, pl_buf *out,
                              uint64_t *bytes)
{
    struct json_object *text = member(block, "text");

    if (!is_type(text, json_type_string))
        return fail(cv, "%s: text blocks need a string \"text\"", where);
    if (!json_object_get_string_len(text))
        return fail(cv, "%s: text content blocks must be non-empty", where);
    *bytes += (size_t)json_object_get_string_len(text);
    if (out)
        add_joined(out, json_object_get_string(text),
                   (size_t)json_object_get_string_len(text));
    return NULL;
}

/* R, a tool result's content: a string, or text (and image) blocks. */
static const char *tool_result_text(pl_echo_conversation *cv,
                                    const char *where,
                                    struct json_object *content, pl_buf *out,
                                    uint64_t *bytes)
{
    size_t i, n;
    const char *err;

    if (!content)
        return NULL;
    if (is_type(content, json_type_string)) {
        *bytes += (size_t)json_object_get_string_len(content);
        add(out, json_object_get_string(content),
            (size_t)json_object_get_string_len(content));
        return NULL;
    }
    if (!is_type(content, json_type_array))
        return fail(cv, "%s: tool_result content must be a string or an "
                        "array of text blocks", where);
    n = json_object_array_length(content);
    for (i = 0; i < n; i++) {
        struct json_object *b = json_object_array_get_idx(content, i);
        const char *type = str_member(b, "type");

        if (type && !strcmp(type, "text"))
            err = text_block(cv, where, b, out, bytes);
        else if (type && !strcmp(type, "image"))
            err = image_block(cv, where, b, out, bytes);
        else
            err = fail(cv, "%s: tool_result content blocks must be text",
                       where);
        if (err)
            return err;
    }
    return NULL;
}

static const char *tool_use_block(struct reader *rd, const char *where,
                                  struct json_object *b, uint64_t *bytes)
{
    const char *id = str_member(b, "id"), *name = str_member(b, "name");
    struct json_object *input = member(b, "input");

    if (!id || !*id || !name || !*name || !is_type(input, json_type_object))
        return fail(rd->cv, "%s: tool_use blocks need \"id\", \"name\" and an "
                            "object \"input\"", where);
    *bytes += strlen(json_object_to_json_string_ext(input,
                                                    JSON_C_TO_STRING_PLAIN));
    call_add(rd, id, name);
    return NULL;
}

static const char *tool_result_block(struct reader *rd, const char *where,
                                     struct json_object *b, int last,
                                     uint64_t *bytes)
{
    pl_echo_conversation *cv = rd->cv;
    const char *id = str_member(b, "tool_use_id");
    struct json_object *is_error = member(b, "is_error");
    struct call *call = id ? call_find(rd, id) : NULL;
    pl_buf r = PL_BUF_INIT;
    const char *err;

    if (!id)
        return fail(cv, "%s: tool_result blocks need a \"tool_use_id\"", where);
    if (!call)
        return fail(cv, "%s: unexpected tool_use_id found in tool_result "
                        "blocks: %s. Each tool_result block must have a "
                        "corresponding tool_use block in the previous "
                        "message.", where, id);
    if (is_error && !is_type(is_error, json_type_boolean))
        return fail(cv, "%s: is_error must be a boolean", where);
    call->answered = 1;
    err = tool_result_text(cv, where, member(b, "content"), &r, bytes);
    if (!err && last)
        result_add(cv, call->name, &r,
                   is_error && json_object_get_boolean(is_error));
    pl_buf_free(&r);
    return err;
}

static const char *thinking_block(pl_echo_conversation *cv, const char *where,
                                  struct json_object *b, uint64_t *bytes)
{
    struct json_object *thinking = member(b, "thinking");
    const char *sig = str_member(b, "signature");

    if (!is_type(thinking, json_type_string))
        return fail(cv, "%s: thinking blocks need a string \"thinking\"",
                    where);
    if (!sig || !*sig)
        return fail(cv, "%s: thinking blocks need a non-empty signature",
                    where);
    *bytes += (size_t)json_object_get_string_len(thinking);
    return NULL;
}

/* One block of a message, checked against its role. *c gets C's part. */
static const char *read_block(struct reader *rd, const char *where, int user,
                              struct json_object *b, int last, pl_buf *c,
                              int *leading_results)
{
    pl_echo_conversation *cv = rd->cv;
    const char *type = str_member(b, "type");
    uint64_t *bytes = &cv->req.context_bytes;
    int result = type && !strcmp(type, "tool_result");

    if (result && !*leading_results)
        return fail(cv, "%s: tool_result blocks must come first in a user "
                        "turn", where);
    *leading_results = result;
    if (!type)
        return fail(cv, "%s: content blocks need a string \"type\"", where);
    if (!strcmp(type, "text"))
        return text_block(cv, where, b, c, bytes);
    if ((!strcmp(type, "image") || result) && !user)
        return fail(cv, "%s: %s blocks are allowed in user turns only",
                    where, type);
    if ((!strcmp(type, "tool_use") || !strcmp(type, "thinking")) && user)
        return fail(cv, "%s: %s blocks are allowed in assistant turns only",
                    where, type);
    if (!strcmp(type, "image"))
        return image_block(cv, where, b, c, bytes);
    if (result)
        return tool_result_block(rd, where, b, last, bytes);
    if (!strcmp(type, "tool_use"))
        return tool_use_block(rd, where, b, bytes);
    if (!strcmp(type, "thinking"))
        return thinking_block(cv, where, b, bytes);
    return fail(cv, "%s: unknown content block type \"%s\"", where, type);
}

static const char *unanswered(struct reader *rd, const char *where)
{
    return fail(rd->cv, "%s: tool_use ids were found without tool_result "
                        "blocks immediately after: %s. Each tool_use block "
                        "must have a corresponding tool_result block in the "
                        "next message.", where, call_pending(rd));
}

/*
 * One message; last: the user turn being answered (its C or its tool
 * results go into cv->req). An assistant message replaces the calls
 * awaiting results; a user message must answer them all, first thing.
 */
static const char *read_message(struct reader *rd, const char *where,
                                int user, struct json_object *content,
                                int last)
{
    pl_echo_conversation *cv = rd->cv;
    pl_buf c = PL_BUF_INIT;
    size_t i, n, others = 0;
    int leading = 1;
    const char *err = NULL;

    /* Only a user turn of blocks can answer the calls awaiting results. */
    if (call_pending(rd) && (!user || !is_type(content, json_type_array)))
        return unanswered(rd, where);
    if (!user || !is_type(content, json_type_array))
        calls_clear(rd); /* an assistant turn's own calls go next */
    if (user)
        cv->req.turn++;
    if (is_type(content, json_type_string)) {
        size_t len = (size_t)json_object_get_string_len(content);
        if (!len && !last)
            return fail(cv, "%s: all messages must have non-empty content "
                            "except for the optional final assistant message",
                        where);
        cv->req.context_bytes += len;
        if (last) {
            cv->text = pl_rs_strndup(json_object_get_string(content), len);
            cv->req.text.s = cv->text;
            cv->req.text.len = len;
        }
        return NULL;
    }
    if (!is_type(content, json_type_array))
        return fail(cv, "%s: content must be a string or an array of content "
                        "blocks", where);
    n = json_object_array_length(content);
    if (!n && !last)
        return fail(cv, "%s: all messages must have non-empty content except "
                        "for the optional final assistant message", where);
    for (i = 0; i < n && !err; i++) {
        char at[96];
        snprintf(at, sizeof at, "%s.content.%zu", where, i);
        err = read_block(rd, at, user, json_object_array_get_idx(content, i),
                         last, &c, &leading);
        others += !leading;
    }
    if (!err && user && call_pending(rd))
        err = unanswered(rd, where);
    if (user)
        calls_clear(rd);
    if (!err && last && (others || !cv->req.nresults)) {
        results_drop(cv); /* text beside the results: C is the text */
        cv->req.text = str_steal(&c);
        cv->text = (char *)cv->req.text.s;
    }
    pl_buf_free(&c);
    return err;
}

/* Role and content of a messages item, for both Anthropic-shape readers. */
static const char *read_item(struct reader *rd, const char *where,
                             struct json_object *item, int last)
{
    const char *role = str_member(item, "role");

    if (!role || (strcmp(role, "user") && strcmp(role, "assistant")))
        return fail(rd->cv, "%s: role must be \"user\" or \"assistant\"",
                    where);
    if (last && strcmp(role, "user"))
        return fail(rd->cv, "%s: the last message must have role \"user\"",
                    where);
    return read_message(rd, where, !strcmp(role, "user"),
                        member(item, "content"), last);
}

/* ---- request fields ------------------------------------------------------------ */

/* A system prompt: a string or an array of text blocks. */
static const char *read_system(pl_echo_conversation *cv,
                               struct json_object *system, uint64_t *bytes)
{
    size_t i, n;

    if (!system)
        return NULL;
    if (is_type(system, json_type_string)) {
        *bytes += (size_t)json_object_get_string_len(system);
        return NULL;
    }
    if (!is_type(system, json_type_array))
        return fail(cv, "system: must be a string or an array of text blocks");
    n = json_object_array_length(system);
    for (i = 0; i < n; i++) {
        struct json_object *b = json_object_array_get_idx(system, i);
        const char *type = str_member(b, "type");
        char at[48];
        const char *err;

        snprintf(at, sizeof at, "system.%zu", i);
        if (!type || strcmp(type, "text"))
            return fail(cv, "%s: system blocks must be text", at);
        if ((err = text_block(cv, at, b, NULL, bytes)))
            return err;
    }
    return NULL;
}

static void tool_names_init(pl_echo_conversation *cv, size_t n)
{
    cv->tools = pl_xcalloc(n ? n : 1, sizeof *cv->tools);
    cv->req.tools = cv->tools;
}

/* tools: [{"name","description","input_schema"}] */
static const char *read_anthropic_tools(pl_echo_conversation *cv,
                                        struct json_object *tools)
{
    size_t i, n;

    if (!tools)
        return NULL;
    if (!is_type(tools, json_type_array))
        return fail(cv, "tools: must be an array");
    n = json_object_array_length(tools);
    tool_names_init(cv, n);
    for (i = 0; i < n; i++) {
        struct json_object *t = json_object_array_get_idx(tools, i);
        struct json_object *name = member(t, "name");
        struct json_object *desc = member(t, "description");

        if (!is_type(name, json_type_string) ||
            !json_object_get_string_len(name) ||
            !is_type(member(t, "input_schema"), json_type_object) ||
            (desc && !is_type(desc, json_type_string)))
            return fail(cv, "tools.%zu: a tool needs a \"name\" and an object "
                            "\"input_schema\" (\"description\": a string)", i);
        cv->tools[cv->req.ntools++] = str_of(name);
    }
    return NULL;
}

static const char *read_anthropic_tool_choice(pl_echo_conversation *cv,
                                              struct json_object *choice)
{
    const char *type = str_member(choice, "type");

    if (!choice)
        return NULL;
    if (type && (!strcmp(type, "auto") || !strcmp(type, "any") ||
                 !strcmp(type, "none") ||
                 (!strcmp(type, "tool") && str_member(choice, "name"))))
        return NULL;
    return fail(cv, "tool_choice: must be {\"type\":\"auto\"|\"any\"|"
                    "\"none\"} or {\"type\":\"tool\",\"name\":...}");
}

static const char *read_thinking(pl_echo_conversation *cv,
                                 struct json_object *thinking,
                                 int64_t min_budget)
{
    const char *type = str_member(thinking, "type");
    struct json_object *budget = member(thinking, "budget_tokens");

    if (!thinking || (type && !strcmp(type, "disabled")))
        return NULL;
    if (!type || strcmp(type, "enabled"))
        return fail(cv, "thinking: must be {\"type\":\"enabled\","
                        "\"budget_tokens\":N} or {\"type\":\"disabled\"}");
    if (!is_type(budget, json_type_int) ||
        json_object_get_int64(budget) < min_budget)
        return fail(cv, "thinking.budget_tokens: must be an integer >= "
                        "%" PRId64, min_budget);
    cv->req.thinking = 1;
    return NULL;
}

/* An array of strings (or, with single, one string) into cv->stops. */
static const char *read_stops(pl_echo_conversation *cv, const char *name,
                              struct json_object *stops, int single,
                              size_t max)
{
    size_t i, n;

    if (!stops)
        return NULL;
    if (single && is_type(stops, json_type_string)) {
        cv->stops = pl_xmalloc(sizeof *cv->stops);
        cv->stops[0] = str_of(stops);
        cv->req.stops = cv->stops;
        cv->req.nstops = 1;
        return NULL;
    }
    if (!is_type(stops, json_type_array))
        return fail(cv, "%s: must be an array of strings", name);
    n = json_object_array_length(stops);
    if (n > max)
        return fail(cv, "%s: at most %zu stop sequences are allowed", name,
                    max);
    cv->stops = pl_xcalloc(n ? n : 1, sizeof *cv->stops);
    cv->req.stops = cv->stops;
    for (i = 0; i < n; i++) {
        struct json_object *s = json_object_array_get_idx(stops, i);
        if (!is_type(s, json_type_string))
            return fail(cv, "%s: must be an array of strings", name);
        cv->stops[cv->req.nstops++] = str_of(s);
    }
    return NULL;
}

/* temperature, top_p (numbers), top_k (integer), metadata (object):
 * accepted, and of no effect on the reply. */
static const char *read_sampling(pl_echo_conversation *cv,
                                 struct json_object *root, int top_k)
{
    static const char *const numbers[] = { "temperature", "top_p" };
    struct json_object *v;
    size_t i;

    for (i = 0; i < sizeof numbers / sizeof *numbers; i++)
        if ((v = member(root, numbers[i])) && !is_number(v))
            return fail(cv, "%s: must be a number", numbers[i]);
    if (top_k && (v = member(root, "top_k")) &&
        (!is_type(v, json_type_int) || json_object_get_int64(v) < 0))
        return fail(cv, "top_k: must be an integer >= 0");
    if ((v = member(root, "metadata")) && !is_type(v, json_type_object))
        return fail(cv, "metadata: must be an object");
    return NULL;
}

/* The fields of protocol.md 9.2, shared by native and Anthropic. */
static const char *read_anthropic_fields(pl_echo_conversation *cv,
                                         struct json_object *root,
                                         int64_t min_budget,
                                         uint64_t *system_bytes)
{
    const char *err;

    if ((err = read_system(cv, member(root, "system"), system_bytes)) ||
        (err = read_anthropic_tools(cv, member(root, "tools"))) ||
        (err = read_anthropic_tool_choice(cv, member(root, "tool_choice"))) ||
        (err = read_thinking(cv, member(root, "thinking"), min_budget)) ||
        (err = read_stops(cv, "stop_sequences", member(root, "stop_sequences"),
                          0, SIZE_MAX)))
        return err;
    return read_sampling(cv, root, 1);
}

static void reader_init(struct reader *rd, pl_echo_conversation *cv)
{
    memset(cv, 0, sizeof *cv);
    cv->req.max_tokens = PL_ECHO_NO_LIMIT;
    memset(rd, 0, sizeof *rd);
    rd->cv = cv;
}

const char *pl_echo_read_native(pl_echo_conversation *cv,
                                struct json_object *message)
{
    struct json_object *history = member(message, "history");
    struct reader rd;
    uint64_t system_bytes = 0; /* not counted: section 8 counts contents */
    const char *err;
    size_t i, n = 0;

    reader_init(&rd, cv);
    err = read_anthropic_fields(cv, message, 1, &system_bytes);
    if (!err && history && !is_type(history, json_type_array))
        err = "field \"history\" must be an array";
    if (history && !err)
        n = json_object_array_length(history);
    for (i = 0; i < n && !err; i++) {
        struct json_object *item = json_object_array_get_idx(history, i);
        const char *role = str_member(item, "role");
        char at[48];

        snprintf(at, sizeof at, "history.%zu", i);
        if (!json_object_is_type(item, json_type_object))
            err = "history items must be objects";
        else if (!role || (strcmp(role, "user") && strcmp(role, "assistant")))
            err = "history item role must be \"user\" or \"assistant\"";
        else
            err = read_message(&rd, at, !strcmp(role, "user"),
                               member(item, "content"), 0);
    }
    if (!err)
        err = read_message(&rd, "content", 1, member(message, "content"), 1);
    free(rd.calls);
    return err;
}

const char *pl_echo_read_anthropic(pl_echo_conversation *cv,
                                   struct json_object *root)
{
    struct json_object *msgs = member(root, "messages");
    struct reader rd;
    const char *err;
    size_t i, n;

    reader_init(&rd, cv);
    err = read_anthropic_fields(cv, root, ANTHROPIC_MIN_BUDGET,
                                &cv->req.context_bytes);
    if (!err && (!is_type(msgs, json_type_array) ||
                 !json_object_array_length(msgs)))
        err = "messages: a non-empty array is required";
    n = err ? 0 : json_object_array_length(msgs);
    for (i = 0; i < n && !err; i++) {
        char at[48];
        snprintf(at, sizeof at, "messages.%zu", i);
        err = read_item(&rd, at, json_object_array_get_idx(msgs, i),
                        i + 1 == n);
    }
    free(rd.calls);
    return err;
}

/* ---- the OpenAI shape --------------------------------------------------------- */

/* A content: a string or an array of parts (text; image_url with images,
 * refusal without: the user's parts, or the others'). */
static const char *openai_content(pl_echo_conversation *cv, const char *where,
                                  struct json_object *content, int images,
                                  pl_buf *out, size_t *nparts)
{
    uint64_t *bytes = &cv->req.context_bytes;
    size_t i, n;
    const char *err;

    *nparts = 0;
    if (is_type(content, json_type_string)) {
        *nparts = (size_t)json_object_get_string_len(content);
        *bytes += *nparts;
        if (out)
            add(out, json_object_get_string(content), *nparts);
        return NULL;
    }
    if (!is_type(content, json_type_array))
        return fail(cv, "%s: content must be a string or an array of content "
                        "parts", where);
    n = json_object_array_length(content);
    for (i = 0; i < n; i++) {
        struct json_object *p = json_object_array_get_idx(content, i);
        const char *type = str_member(p, "type");
        char at[96];

        err = NULL;
        snprintf(at, sizeof at, "%s.content.%zu", where, i);
        if (type && !strcmp(type, "text"))
            err = text_block(cv, at, p, out, bytes);
        else if (type && !images && !strcmp(type, "refusal") &&
                 str_member(p, "refusal"))
            *bytes += strlen(str_member(p, "refusal")); /* an assistant's */
        else if (type && images && !strcmp(type, "image_url"))
            err = image_url_part(cv, at, p, out, bytes);
        else
            err = fail(cv, "%s: unsupported content part type", at);
        if (err)
            return err;
    }
    *nparts = n;
    return NULL;
}

/* An assistant message's tool_calls become the calls awaiting results. */
static const char *openai_tool_calls(struct reader *rd, const char *where,
                                     struct json_object *calls)
{
    size_t i, n;

    if (!calls)
        return NULL;
    if (!is_type(calls, json_type_array))
        return fail(rd->cv, "%s: tool_calls must be an array", where);
    n = json_object_array_length(calls);
    for (i = 0; i < n; i++) {
        struct json_object *c = json_object_array_get_idx(calls, i);
        struct json_object *fn = member(c, "function");
        const char *id = str_member(c, "id"), *name = str_member(fn, "name");
        const char *type = str_member(c, "type");

        if (!id || !name || !type || strcmp(type, "function") ||
            !str_member(fn, "arguments"))
            return fail(rd->cv, "%s.tool_calls.%zu: a tool call needs \"id\", "
                                "\"type\":\"function\" and \"function\" with "
                                "\"name\" and \"arguments\"", where, i);
        rd->cv->req.context_bytes += strlen(str_member(fn, "arguments"));
        call_add(rd, id, name);
    }
    return NULL;
}

static const char *openai_tool_message(struct reader *rd, const char *where,
                                       struct json_object *m)
{
    pl_echo_conversation *cv = rd->cv;
    const char *id = str_member(m, "tool_call_id");
    struct call *call = id ? call_find(rd, id) : NULL;
    pl_buf r = PL_BUF_INIT;
    size_t nparts;
    const char *err;

    if (!call)
        return fail(cv, "%s: Invalid parameter: messages with role 'tool' "
                        "must be a response to a preceding message with "
                        "'tool_calls'.", where);
    call->answered = 1;
    if (!rd->openai_tool_run) {
        cv->req.turn++; /* a run of tool messages is one turn */
        results_drop(cv);
    }
    err = openai_content(cv, where, member(m, "content"), 0, &r, &nparts);
    if (!err)
        result_add(cv, call->name, &r, 0);
    pl_buf_free(&r);
    return err;
}

static const char *openai_unanswered(struct reader *rd, const char *where)
{
    return fail(rd->cv, "%s: An assistant message with 'tool_calls' must be "
                        "followed by tool messages responding to each "
                        "'tool_call_id'. The following tool_call_ids did not "
                        "have response messages: %s", where, call_pending(rd));
}

static const char *openai_message(struct reader *rd, const char *where,
                                  struct json_object *m, int last)
{
    pl_echo_conversation *cv = rd->cv;
    const char *role = str_member(m, "role");
    struct json_object *content = member(m, "content");
    int tool_run = role && !strcmp(role, "tool");
    pl_buf c = PL_BUF_INIT;
    size_t nparts = 0;
    const char *err = NULL;

    if (!role || (strcmp(role, "user") && strcmp(role, "assistant") &&
                  strcmp(role, "system") && strcmp(role, "developer") &&
                  !tool_run))
        return fail(cv, "%s: role must be system, developer, user, assistant "
                        "or tool", where);
    if (last && strcmp(role, "user") && !tool_run)
        return fail(cv, "%s: the last message must have role \"user\" or "
                        "\"tool\"", where);
    if (!tool_run && call_pending(rd))
        return openai_unanswered(rd, where);
    if (tool_run) {
        err = openai_tool_message(rd, where, m);
        rd->openai_tool_run = 1;
        return err;
    }
    rd->openai_tool_run = 0;
    calls_clear(rd);
    if (!strcmp(role, "assistant")) {
        struct json_object *calls = member(m, "tool_calls");
        int has_calls = is_type(calls, json_type_array) &&
                        json_object_array_length(calls);
        /* Content may be null, and empty beside tool calls. */
        if (content)
            err = openai_content(cv, where, content, 0, NULL, &nparts);
        if (!err && content && !nparts && !has_calls)
            err = fail(cv, "%s: content must be non-empty", where);
        return err ? err : openai_tool_calls(rd, where, calls);
    }
    if (!strcmp(role, "user"))
        cv->req.turn++;
    err = openai_content(cv, where, content, !strcmp(role, "user"),
                         last ? &c : NULL, &nparts);
    if (!err && !nparts && !last)
        err = fail(cv, "%s: content must be non-empty", where);
    if (!err && last) {
        results_drop(cv);
        cv->req.text = str_steal(&c);
        cv->text = (char *)cv->req.text.s;
    }
    pl_buf_free(&c);
    return err;
}

/* tools: [{"type":"function","function":{"name",...}}] */
static const char *read_openai_tools(pl_echo_conversation *cv,
                                     struct json_object *tools)
{
    size_t i, n;

    if (!tools)
        return NULL;
    if (!is_type(tools, json_type_array))
        return fail(cv, "tools: must be an array");
    n = json_object_array_length(tools);
    tool_names_init(cv, n);
    for (i = 0; i < n; i++) {
        struct json_object *t = json_object_array_get_idx(tools, i);
        struct json_object *fn = member(t, "function");
        struct json_object *name = member(fn, "name");
        struct json_object *params = member(fn, "parameters");
        const char *type = str_member(t, "type");

        if (!type || strcmp(type, "function") ||
            !is_type(name, json_type_string) ||
            !json_object_get_string_len(name) ||
            (params && !is_type(params, json_type_object)))
            return fail(cv, "tools.%zu: a tool must be {\"type\":\"function\","
                            "\"function\":{\"name\",\"parameters\"}}", i);
        cv->tools[cv->req.ntools++] = str_of(name);
    }
    return NULL;
}

static const char *read_openai_tool_choice(pl_echo_conversation *cv,
                                           struct json_object *choice)
{
    const char *s = is_type(choice, json_type_string)
                        ? json_object_get_string(choice) : NULL;
    const char *type = str_member(choice, "type");

    if (!choice || (s && (!strcmp(s, "none") || !strcmp(s, "auto") ||
                          !strcmp(s, "required"))) ||
        (type && !strcmp(type, "function") &&
         str_member(member(choice, "function"), "name")))
        return NULL;
    return fail(cv, "tool_choice: must be \"none\", \"auto\", \"required\" or "
                    "{\"type\":\"function\",\"function\":{\"name\":...}}");
}

const char *pl_echo_read_openai(pl_echo_conversation *cv,
                                struct json_object *root)
{
    struct json_object *msgs = member(root, "messages");
    struct reader rd;
    const char *err;
    size_t i, n;

    reader_init(&rd, cv);
    cv->req.tool_id_prefix = PL_ECHO_TOOL_ID_OPENAI;
    if ((err = read_openai_tools(cv, member(root, "tools"))) ||
        (err = read_openai_tool_choice(cv, member(root, "tool_choice"))) ||
        (err = read_stops(cv, "stop", member(root, "stop"), 1,
                          OPENAI_MAX_STOP)) ||
        (err = read_sampling(cv, root, 0)))
        return err;
    if (!is_type(msgs, json_type_array) || !json_object_array_length(msgs))
        return "messages: a non-empty array is required";
    n = json_object_array_length(msgs);
    for (i = 0; i < n && !err; i++) {
        char at[48];
        snprintf(at, sizeof at, "messages.%zu", i);
        err = openai_message(&rd, at, json_object_array_get_idx(msgs, i),
                             i + 1 == n);
    }
    if (!err && call_pending(&rd))
        err = openai_unanswered(&rd, "messages");
    free(rd.calls);
    return err;
}

void pl_echo_conversation_free(pl_echo_conversation *cv)
{
    results_drop(cv);
    free(cv->results);
    free(cv->text);
    free(cv->tools);
    free(cv->stops);
    memset(cv, 0, sizeof *cv);
}
