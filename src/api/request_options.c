/* Request options: one parser for the client properties and the session
 * options of the same names. */
#include "request_options.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "alloc.h"
#include "buf.h"
#include "option_name.h"
#include "utf8.h"

/* A JSON option larger than this is a mistake (a tools list is a few KiB). */
#define PL_OPTION_MAX_BYTES (1024 * 1024)

static const char *const option_names[PL_RO__COUNT] = {
    [PL_RO_TEMPERATURE] = "temperature",
    [PL_RO_TOP_P] = "top.p",
    [PL_RO_TOP_K] = "top.k",
    [PL_RO_STOP_SEQUENCES] = "stop.sequences",
    [PL_RO_METADATA] = "metadata",
    [PL_RO_TOOLS] = "tools",
    [PL_RO_TOOL_CHOICE] = "tool.choice",
    [PL_RO_THINKING_BUDGET] = "thinking.budget",
    [PL_RO_PROMPT_CACHING] = "prompt.caching",
    [PL_RO_EXTRA_BODY] = "extra.body",
    [PL_RO_EXTRA_HEADERS] = "extra.headers",
};

const char *pl_request_option_name(pl_request_option opt)
{
    return option_names[opt];
}

int pl_request_option_find(const char *name)
{
    for (int i = 0; i < PL_RO__COUNT; i++)
        if (pl_name_is(name, option_names[i]))
            return i;
    return -1;
}

__attribute__((format(printf, 4, 5))) static parley_err_t
refuse(char *err, size_t size, pl_request_option opt, const char *fmt, ...)
{
    if (err && size) {
        int n = snprintf(err, size, "%s: ", option_names[opt]);
        if (n >= 0 && (size_t)n < size) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + n, size - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return PARLEY_ERR_INVALID_VALUE;
}

/* value as JSON of the given type, or NULL with err written. */
static json_object *parse_json(pl_request_option opt, const char *value, json_type want,
                               char *err, size_t size)
{
    size_t len = strlen(value);
    if (len > PL_OPTION_MAX_BYTES) {
        refuse(err, size, opt, "the JSON is %zu bytes, over %d", len, PL_OPTION_MAX_BYTES);
        return NULL;
    }
    if (!pl_utf8_valid(value, len)) {
        refuse(err, size, opt, "the value is not valid UTF-8");
        return NULL;
    }
    json_tokener *tok = json_tokener_new();
    if (!tok)
        pl_oom("parsing an option");
    json_object *obj = json_tokener_parse_ex(tok, value, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t used = tok->char_offset;
    json_tokener_free(tok);
    if (!obj || jerr != json_tokener_success) {
        json_object_put(obj);
        refuse(err, size, opt, "not valid JSON (%s at byte %zu)",
               jerr == json_tokener_continue ? "it ends too early"
                                             : json_tokener_error_desc(jerr),
               used);
        return NULL;
    }
    if (used < len) {
        json_object_put(obj);
        refuse(err, size, opt, "unexpected text after the JSON value at byte %zu", used);
        return NULL;
    }
    if (!json_object_is_type(obj, want)) {
        json_object_put(obj);
        refuse(err, size, opt, "expected a JSON %s", want == json_type_array ? "array" : "object");
        return NULL;
    }
    return obj;
}

static char *compact(json_object *obj)
{
    const char *s =
        json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    if (!s)
        pl_oom("writing an option");
    return pl_xstrdup(s);
}

static bool blank(const char *s)
{
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            return false;
    return true;
}

static parley_err_t parse_stop_sequences(const char *value, const pl_dialect *d, pl_option_value *out,
                                         char *err, size_t size)
{
    json_object *arr = parse_json(PL_RO_STOP_SEQUENCES, value, json_type_array, err, size);
    if (!arr)
        return PARLEY_ERR_INVALID_VALUE;
    size_t n = json_object_array_length(arr);
    parley_err_t rc = PARLEY_OK;
    if (d && *d == PL_DIALECT_OPENAI && n > 4)
        rc = refuse(err, size, PL_RO_STOP_SEQUENCES, "openai takes at most 4, not %zu", n);
    for (size_t i = 0; rc == PARLEY_OK && i < n; i++) {
        json_object *s = json_object_array_get_idx(arr, i);
        if (!json_object_is_type(s, json_type_string))
            rc = refuse(err, size, PL_RO_STOP_SEQUENCES, "entry %zu is not a string", i);
        else if (blank(json_object_get_string(s)))
            rc = refuse(err, size, PL_RO_STOP_SEQUENCES,
                        "entry %zu is empty or only whitespace", i);
    }
    if (rc == PARLEY_OK)
        out->text = compact(arr);
    json_object_put(arr);
    return rc;
}

/* The vendors' rule for tool names. */
static bool tool_name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)name[i]) && name[i] != '_' && name[i] != '-')
            return false;
    return true;
}

static parley_err_t parse_tools(const char *value, pl_option_value *out, char *err, size_t size)
{
    json_object *arr = parse_json(PL_RO_TOOLS, value, json_type_array, err, size);
    if (!arr)
        return PARLEY_ERR_INVALID_VALUE;
    parley_err_t rc = PARLEY_OK;
    size_t n = json_object_array_length(arr);
    for (size_t i = 0; rc == PARLEY_OK && i < n; i++) {
        json_object *tool = json_object_array_get_idx(arr, i), *name, *desc, *schema;
        if (!json_object_is_type(tool, json_type_object)) {
            rc = refuse(err, size, PL_RO_TOOLS, "tool %zu is not a JSON object", i);
        } else if (!json_object_object_get_ex(tool, "name", &name) ||
                   !json_object_is_type(name, json_type_string) ||
                   !tool_name_valid(json_object_get_string(name))) {
            rc = refuse(err, size, PL_RO_TOOLS,
                        "tool %zu needs a \"name\" of 1-64 letters, digits, '_' or '-'", i);
        } else if (json_object_object_get_ex(tool, "description", &desc) &&
                   !json_object_is_type(desc, json_type_string)) {
            rc = refuse(err, size, PL_RO_TOOLS, "tool %zu: \"description\" must be a string", i);
        } else if (!json_object_object_get_ex(tool, "input_schema", &schema) ||
                   !json_object_is_type(schema, json_type_object)) {
            rc = refuse(err, size, PL_RO_TOOLS,
                        "tool %zu (%s) needs an \"input_schema\" object (a JSON schema)", i,
                        json_object_get_string(name));
        }
        for (size_t j = 0; rc == PARLEY_OK && j < i; j++) {
            json_object *other;
            json_object_object_get_ex(json_object_array_get_idx(arr, j), "name", &other);
            if (!strcmp(json_object_get_string(other), json_object_get_string(name)))
                rc = refuse(err, size, PL_RO_TOOLS, "two tools are named %s",
                            json_object_get_string(name));
        }
    }
    if (rc == PARLEY_OK)
        out->text = compact(arr);
    json_object_put(arr);
    return rc;
}

static parley_err_t parse_tool_choice(const char *value, pl_option_value *out, char *err,
                                      size_t size)
{
    /* The three words stand for their objects, as a command line wants. */
    if (!strcmp(value, "auto") || !strcmp(value, "any") || !strcmp(value, "none")) {
        char buf[32];
        snprintf(buf, sizeof(buf), "{\"type\":\"%s\"}", value);
        out->text = pl_xstrdup(buf);
        return PARLEY_OK;
    }
    json_object *obj = parse_json(PL_RO_TOOL_CHOICE, value, json_type_object, err, size);
    if (!obj)
        return PARLEY_ERR_INVALID_VALUE;
    json_object *type, *name;
    parley_err_t rc = PARLEY_OK;
    const char *t = json_object_object_get_ex(obj, "type", &type) &&
                            json_object_is_type(type, json_type_string)
                        ? json_object_get_string(type)
                        : "";
    if (!strcmp(t, "tool")) {
        if (!json_object_object_get_ex(obj, "name", &name) ||
            !json_object_is_type(name, json_type_string) ||
            !tool_name_valid(json_object_get_string(name)))
            rc = refuse(err, size, PL_RO_TOOL_CHOICE, "type tool needs the tool's \"name\"");
    } else if (strcmp(t, "auto") && strcmp(t, "any") && strcmp(t, "none")) {
        rc = refuse(err, size, PL_RO_TOOL_CHOICE,
                    "\"type\" must be auto, any, none or tool");
    }
    if (rc == PARLEY_OK)
        out->text = compact(obj);
    json_object_put(obj);
    return rc;
}

/* An HTTP header name: a token (RFC 9110). */
static bool header_name_valid(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
            return false;
    return true;
}

static bool header_value_valid(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

/* Headers libcurl or the dialect sets: replacing them would break the
 * request or leak the key into the wrong header. */
static bool header_reserved(const char *name)
{
    static const char *const reserved[] = {"content-type", "content-length", "host",
                                           "transfer-encoding", "connection", "x-api-key",
                                           "authorization", "accept"};
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (!strcasecmp(name, reserved[i]))
            return true;
    return false;
}

static parley_err_t parse_extra_headers(const char *value, const pl_dialect *d, pl_option_value *out,
                                        char *err, size_t size)
{
    if (d && *d == PL_DIALECT_NATIVE)
        return refuse(err, size, PL_RO_EXTRA_HEADERS,
                      "the native protocol has no per-request headers (HTTP dialects only)");
    json_object *obj = parse_json(PL_RO_EXTRA_HEADERS, value, json_type_object, err, size);
    if (!obj)
        return PARLEY_ERR_INVALID_VALUE;
    pl_buf lines = PL_BUF_INIT;
    parley_err_t rc = PARLEY_OK;
    json_object_object_foreach(obj, name, v)
    {
        if (rc != PARLEY_OK)
            break;
        if (!header_name_valid(name))
            rc = refuse(err, size, PL_RO_EXTRA_HEADERS, "\"%.64s\" is not a header name", name);
        else if (header_reserved(name))
            rc = refuse(err, size, PL_RO_EXTRA_HEADERS,
                        "%s is set by the library and cannot be replaced", name);
        else if (!json_object_is_type(v, json_type_string) ||
                 !header_value_valid(json_object_get_string(v)))
            rc = refuse(err, size, PL_RO_EXTRA_HEADERS,
                        "the value of %s must be a string without control characters", name);
        else if ((lines.len && pl_buf_append(&lines, "\n", 1)) ||
                 pl_buf_append_str(&lines, name) || pl_buf_append(&lines, ": ", 2) ||
                 pl_buf_append_str(&lines, json_object_get_string(v)))
            pl_oom("keeping extra headers");
    }
    json_object_put(obj);
    if (rc != PARLEY_OK || !lines.len) {
        pl_buf_free(&lines);
        if (rc == PARLEY_OK)
            out->unset = true; /* {}: none */
        return rc;
    }
    out->text = pl_buf_steal(&lines, NULL);
    return PARLEY_OK;
}

static parley_err_t parse_number(pl_request_option opt, const char *value, double lo, double hi,
                                 pl_option_value *out, char *err, size_t size)
{
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (end == value || *end || errno || !isfinite(v) || v < lo || v > hi)
        return refuse(err, size, opt, "expected a number from %g to %g, not \"%.32s\"", lo, hi,
                      value);
    out->number = v;
    return PARLEY_OK;
}

static parley_err_t parse_count(pl_request_option opt, const char *value, uint32_t hi,
                                pl_option_value *out, char *err, size_t size)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (end == value || *end || errno || value[0] == '-' || v > hi)
        return refuse(err, size, opt, "expected an integer from 0 to %u, not \"%.32s\"", hi,
                      value);
    out->count = (uint32_t)v;
    return PARLEY_OK;
}

static parley_err_t parse_flag(const char *value, pl_option_value *out, char *err, size_t size)
{
    static const char *const yes[] = {"true", "1", "yes", "on"}, *const no[] = {"false", "0",
                                                                               "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(value, yes[i]) || !strcasecmp(value, no[i])) {
            out->flag = !strcasecmp(value, yes[i]);
            return PARLEY_OK;
        }
    }
    return refuse(err, size, PL_RO_PROMPT_CACHING, "expected true or false, not \"%.32s\"", value);
}

static parley_err_t parse_value(pl_request_option opt, const char *value, const pl_dialect *d,
                                pl_option_value *out, char *err, size_t size)
{
    json_object *obj;
    switch (opt) {
    case PL_RO_TEMPERATURE:
        /* Anthropic takes 0-1, OpenAI 0-2. */
        return parse_number(opt, value, 0, d && *d == PL_DIALECT_ANTHROPIC ? 1 : 2, out, err, size);
    case PL_RO_TOP_P:
        return parse_number(opt, value, 0, 1, out, err, size);
    case PL_RO_TOP_K:
        if (d && *d == PL_DIALECT_OPENAI)
            return refuse(err, size, opt, "the openai API has no top_k");
        return parse_count(opt, value, 1000000, out, err, size);
    case PL_RO_THINKING_BUDGET:
        if (d && *d == PL_DIALECT_OPENAI && strcmp(value, "0"))
            return refuse(err, size, opt, "the openai chat completions API has no thinking budget");
        if (parse_count(opt, value, 1000000, out, err, size) != PARLEY_OK)
            return PARLEY_ERR_INVALID_VALUE;
        if (d && *d == PL_DIALECT_ANTHROPIC && out->count && out->count < 1024)
            return refuse(err, size, opt, "the anthropic API needs at least 1024 tokens, not %u",
                          out->count);
        return PARLEY_OK;
    case PL_RO_PROMPT_CACHING:
        return parse_flag(value, out, err, size);
    case PL_RO_STOP_SEQUENCES:
        return parse_stop_sequences(value, d, out, err, size);
    case PL_RO_TOOLS:
        return parse_tools(value, out, err, size);
    case PL_RO_TOOL_CHOICE:
        return parse_tool_choice(value, out, err, size);
    case PL_RO_METADATA:
    case PL_RO_EXTRA_BODY:
        obj = parse_json(opt, value, json_type_object, err, size);
        if (!obj)
            return PARLEY_ERR_INVALID_VALUE;
        out->text = compact(obj);
        json_object_put(obj);
        return PARLEY_OK;
    case PL_RO_EXTRA_HEADERS:
        return parse_extra_headers(value, d, out, err, size);
    case PL_RO__COUNT:
        break;
    }
    return refuse(err, size, opt, "unknown option");
}

parley_err_t pl_request_option_parse(pl_request_option opt, const char *value, const pl_dialect *d,
                                     pl_option_value *out, char *err, size_t err_size)
{
    *out = (pl_option_value){0};
    if (!*value) {
        out->unset = true;
        return PARLEY_OK;
    }
    parley_err_t rc = parse_value(opt, value, d, out, err, err_size);
    if (rc != PARLEY_OK) {
        free(out->text);
        *out = (pl_option_value){0};
        return rc;
    }
    return PARLEY_OK;
}

void pl_request_options_apply(pl_request_options *o, pl_request_option opt, pl_option_value *v)
{
    free(o->value[opt].text);
    o->set[opt] = !v->unset;
    o->value[opt] = v->unset ? (pl_option_value){0} : *v;
    v->text = NULL;
}

void pl_request_options_free(pl_request_options *o)
{
    for (int i = 0; i < PL_RO__COUNT; i++)
        free(o->value[i].text);
    *o = (pl_request_options){0};
}

/* The value in effect: own's when set there, else the default's, else NULL. */
static const pl_option_value *pick(const pl_request_options *own, const pl_request_options *defaults,
                                   pl_request_option opt)
{
    if (own && own->set[opt])
        return &own->value[opt];
    if (defaults && defaults->set[opt])
        return &defaults->value[opt];
    return NULL;
}

void pl_request_params_fill(pl_request_params *p, const pl_request_options *own,
                            const pl_request_options *defaults)
{
    const pl_option_value *v;
    const char *system = p->system;
    *p = (pl_request_params){.system = system};
    if ((v = pick(own, defaults, PL_RO_TEMPERATURE))) {
        p->has_temperature = true;
        p->temperature = v->number;
    }
    if ((v = pick(own, defaults, PL_RO_TOP_P))) {
        p->has_top_p = true;
        p->top_p = v->number;
    }
    if ((v = pick(own, defaults, PL_RO_TOP_K)))
        p->top_k = v->count;
    if ((v = pick(own, defaults, PL_RO_THINKING_BUDGET)))
        p->thinking_budget = v->count;
    if ((v = pick(own, defaults, PL_RO_PROMPT_CACHING)))
        p->prompt_caching = v->flag;
    if ((v = pick(own, defaults, PL_RO_STOP_SEQUENCES)))
        p->stop_sequences = v->text;
    if ((v = pick(own, defaults, PL_RO_METADATA)))
        p->metadata = v->text;
    if ((v = pick(own, defaults, PL_RO_TOOLS)))
        p->tools = v->text;
    if ((v = pick(own, defaults, PL_RO_TOOL_CHOICE)))
        p->tool_choice = v->text;
    if ((v = pick(own, defaults, PL_RO_EXTRA_BODY)))
        p->extra_body = v->text;
}

const char *pl_request_extra_headers(const pl_request_options *own,
                                     const pl_request_options *defaults)
{
    const pl_option_value *v = pick(own, defaults, PL_RO_EXTRA_HEADERS);
    return v ? v->text : NULL;
}

const char *pl_request_option_problem(pl_request_option opt, const char *value)
{
    /* The configuration's checks return a sentence without the name, which
     * their caller adds: skip ours. */
    static _Thread_local char why[256];
    pl_option_value v;
    if (pl_request_option_parse(opt, value, NULL, &v, why, sizeof(why)) == PARLEY_OK) {
        free(v.text);
        return NULL;
    }
    size_t skip = strlen(option_names[opt]) + 2;
    return strlen(why) > skip ? why + skip : why;
}
