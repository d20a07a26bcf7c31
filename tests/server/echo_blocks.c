/*
 * parley-echo-1 with blocks, tools and thinking (echo_blocks.h).
 */
#include "echo_blocks.h"

#include <json-c/json.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

/* ---- helpers the readers share ------------------------------------------ */

static int json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

char *pl_echo_compact_json(const char *args, size_t len, size_t *out_len)
{
    char *out = malloc(len + 1);
    size_t i, n = 0;
    int in_string = 0;

    if (!out)
        return NULL;
    for (i = 0; i < len; i++) {
        char c = args[i];

        if (in_string) {
            out[n++] = c;
            if (c == '\\' && i + 1 < len)
                out[n++] = args[++i]; /* the escaped character, as written */
            else if (c == '"')
                in_string = 0;
        } else if (!json_space(c)) {
            out[n++] = c;
            in_string = c == '"';
        }
    }
    out[n] = '\0';
    *out_len = n;
    return out;
}

/* Whether s[0, len) is exactly one JSON object (strict JSON). */
static int is_json_object(const char *s, size_t len)
{
    struct json_tokener *tok;
    struct json_object *o;
    int ok;

    if (len > INT32_MAX || !(tok = json_tokener_new()))
        return 0;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    o = json_tokener_parse_ex(tok, s, (int)len);
    ok = o && json_object_is_type(o, json_type_object) &&
         json_tokener_get_parse_end(tok) == len;
    json_object_put(o);
    json_tokener_free(tok);
    return ok;
}

int pl_echo_parse_call(pl_echo_str c, const pl_echo_str *tools, size_t ntools,
                       pl_echo_str *name, pl_echo_str *args)
{
    static const char verb[] = "call ";
    const char *space;
    size_t i, start, end;

    if (c.len < sizeof verb - 1 || memcmp(c.s, verb, sizeof verb - 1))
        return 0;
    name->s = c.s + sizeof verb - 1;
    space = memchr(name->s, ' ', c.len - (sizeof verb - 1));
    if (!space || space == name->s)
        return 0;
    name->len = (size_t)(space - name->s);
    start = (size_t)(space + 1 - c.s);
    end = c.len;
    while (start < end && json_space(c.s[start]))
        start++;
    while (end > start && json_space(c.s[end - 1]))
        end--;
    args->s = c.s + start;
    args->len = end - start;
    /* The names first: parsing is the dearer check. */
    for (i = 0; i < ntools; i++)
        if (tools[i].len == name->len &&
            !memcmp(tools[i].s, name->s, name->len))
            return is_json_object(args->s, args->len);
    return 0;
}

static int base64_value(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A'
         : c >= 'a' && c <= 'z' ? c - 'a' + 26
         : c >= '0' && c <= '9' ? c - '0' + 52
         : c == '+' ? 62 : c == '/' ? 63 : -1;
}

int pl_echo_base64_size(const char *s, size_t len, uint64_t *out)
{
    size_t i, pad = 0, data;

    while (pad < 2 && pad < len && s[len - 1 - pad] == '=')
        pad++;
    data = len - pad;
    if (!data || (pad && len % 4) || data % 4 == 1)
        return -1;
    for (i = 0; i < data; i++)
        if (base64_value((unsigned char)s[i]) < 0)
            return -1;
    *out = (uint64_t)data / 4 * 3 + (data % 4 ? data % 4 - 1 : 0);
    return 0;
}

int pl_echo_image_type_ok(const char *t)
{
    return !strcmp(t, "image/png") || !strcmp(t, "image/jpeg") ||
           !strcmp(t, "image/gif") || !strcmp(t, "image/webp");
}

/* ---- building a turn ------------------------------------------------------- */

/* Appends that run out of memory only mark the buffer failed. */
struct text {
    pl_buf b;
    int failed;
};

static void add(struct text *t, const char *s, size_t len)
{
    if (!len)
        return; /* s may be NULL then */
    t->failed |= pl_buf_append(&t->b, s, len) != 0;
}

static void add_str(struct text *t, const char *s)
{
    add(t, s, strlen(s));
}

static void add_prefix(struct text *t, uint64_t turn)
{
    char prefix[40];
    int n = snprintf(prefix, sizeof prefix, "[turn %" PRIu64 "] ", turn);

    add(t, prefix, (size_t)n);
}

/* The reply text, before any cut; *tool set when C calls a tool. */
static void compose_text(struct text *t, const pl_echo_request *req,
                         pl_echo_str *tool, pl_echo_str *args)
{
    size_t i;

    add_prefix(t, req->turn);
    if (req->nresults) {
        for (i = 0; i < req->nresults; i++) {
            const pl_echo_result *r = &req->results[i];
            if (i)
                add_str(t, "; ");
            add(t, r->name.s, r->name.len);
            add_str(t, r->is_error ? " failed: " : " returned: ");
            add(t, r->text.s, r->text.len);
        }
    } else if (pl_echo_parse_call(req->text, req->tools, req->ntools, tool,
                                  args)) {
        add_str(t, "calling ");
        add(t, tool->s, tool->len);
    } else {
        tool->s = NULL; /* not a call */
        add(t, req->text.s, req->text.len);
    }
}

/* The earliest stop sequence in s (on a tie the shorter), or -1. */
static long find_stop(const pl_echo_request *req, const char *s, size_t len,
                      size_t *pos)
{
    long best = -1;
    size_t i;

    for (i = 0; i < req->nstops; i++) {
        const pl_echo_str *st = &req->stops[i];
        const char *hit = st->len && st->len <= len
                              ? memmem(s, len, st->s, st->len) : NULL;
        size_t at = hit ? (size_t)(hit - s) : 0;

        if (hit && (best < 0 || at < *pos ||
                    (at == *pos && st->len < req->stops[best].len))) {
            best = (long)i;
            *pos = at;
        }
    }
    return best;
}

/*
 * A thinking or text block of text[0, len) (owned from now on), cut into
 * pieces of which at most *budget are kept. Returns 0 with nothing added
 * when no piece is kept; -1 when out of memory; 1 when added. *cut says
 * whether pieces were dropped.
 */
static int add_text_block(pl_echo_turn *t, pl_echo_block_type type,
                          char *text, size_t len, size_t chunk_bytes,
                          uint64_t *budget, int *cut)
{
    pl_echo_block *b = &t->blocks[t->nblocks];
    size_t *ends = len ? malloc(len * sizeof *ends) : NULL;
    size_t total;

    *cut = 0;
    if (len && !ends) {
        free(text);
        return -1;
    }
    total = pl_echo_cut(text, len, chunk_bytes, ends);
    b->npieces = (uint64_t)total < *budget ? total : (size_t)*budget;
    *budget -= b->npieces;
    *cut = b->npieces < total;
    if (!b->npieces) {
        free(text);
        free(ends);
        return 0;
    }
    b->type = type;
    b->text = text;
    b->len = ends[b->npieces - 1];
    b->text[b->len] = '\0';
    b->piece_end = ends;
    b->first_unit = t->nunits;
    b->nunits = b->npieces;
    t->nunits += b->nunits;
    t->nblocks++;
    return 1;
}

static char *steal(struct text *t, size_t *len)
{
    if (!t->b.data)
        t->failed |= pl_buf_append(&t->b, "", 0) != 0;
    if (t->failed) {
        pl_buf_free(&t->b);
        return NULL;
    }
    return pl_buf_steal(&t->b, len);
}

static int add_thinking(pl_echo_turn *t, const pl_echo_request *req,
                        size_t chunk_bytes, uint64_t *budget, int *cut)
{
    struct text th = { PL_BUF_INIT, 0 };
    char sig[48];
    size_t len;
    char *text;
    int rc;

    add_str(&th, "thinking about: ");
    add(&th, req->text.s, req->text.len);
    if (!(text = steal(&th, &len)))
        return -1;
    rc = add_text_block(t, PL_ECHO_BLOCK_THINKING, text, len, chunk_bytes,
                        budget, cut);
    if (rc <= 0 || *cut)
        return rc;
    snprintf(sig, sizeof sig, "echo-sig-%" PRIu64, req->turn);
    return (t->blocks[t->nblocks - 1].signature = strdup(sig)) ? 1 : -1;
}

static int add_tool(pl_echo_turn *t, const pl_echo_request *req,
                    pl_echo_str name, pl_echo_str args, size_t chunk_bytes)
{
    pl_echo_block *b = &t->blocks[t->nblocks++];
    char id[64];

    snprintf(id, sizeof id, "%s%" PRIu64,
             req->tool_id_prefix ? req->tool_id_prefix
                                 : PL_ECHO_TOOL_ID_ANTHROPIC, req->turn);
    b->type = PL_ECHO_BLOCK_TOOL_USE;
    b->first_unit = t->nunits++;
    b->nunits = 1;
    b->tool_id = strdup(id);
    b->name = malloc(name.len + 1);
    b->text = pl_echo_compact_json(args.s, args.len, &b->len);
    /* A JSON object is at least "{}": never 0 bytes. */
    b->piece_end = b->text ? malloc(b->len * sizeof *b->piece_end) : NULL;
    if (!b->tool_id || !b->name || !b->piece_end)
        return -1;
    memcpy(b->name, name.s, name.len);
    b->name[name.len] = '\0';
    b->npieces = pl_echo_cut(b->text, b->len, chunk_bytes, b->piece_end);
    return 1;
}

int pl_echo_turn_build(pl_echo_turn *t, const pl_echo_request *req)
{
    struct text reply = { PL_BUF_INIT, 0 };
    pl_echo_str tool = { NULL, 0 }, args = { NULL, 0 };
    uint64_t budget = req->max_tokens;
    size_t len, stop_at = 0;
    long stop;
    char *text;
    int cut = 0, truncated = 0;

    memset(t, 0, sizeof *t);
    compose_text(&reply, req, &tool, &args);
    if (!(text = steal(&reply, &len)))
        return -1;
    stop = find_stop(req, text, len, &stop_at);
    if (stop >= 0) {
        const pl_echo_str *st = &req->stops[stop];
        len = stop_at;
        tool.s = NULL; /* the cut removes the tool call */
        if (!(t->stop_sequence = malloc(st->len + 1)))
            goto oom;
        memcpy(t->stop_sequence, st->s, st->len);
        t->stop_sequence[st->len] = '\0';
        t->stop_sequence_len = st->len;
    }
    if (req->thinking) {
        if (add_thinking(t, req, req->chunk_bytes, &budget, &cut) < 0)
            goto oom;
        truncated |= cut;
    }
    if (add_text_block(t, PL_ECHO_BLOCK_TEXT, text, len, req->chunk_bytes,
                       &budget, &cut) < 0) {
        text = NULL;
        goto oom;
    }
    text = NULL; /* owned by the block, or freed */
    truncated |= cut;
    if (tool.s && (truncated || !budget))
        truncated = 1; /* a tool call is whole or absent */
    else if (tool.s && add_tool(t, req, tool, args, req->chunk_bytes) < 0)
        goto oom;
    t->stop_reason = truncated ? "max_tokens"
                   : stop >= 0 ? "stop_sequence"
                   : tool.s ? "tool_use" : "end_turn";
    if (truncated) {
        free(t->stop_sequence);
        t->stop_sequence = NULL;
        t->stop_sequence_len = 0;
    }
    t->input_tokens = pl_echo_input_tokens(req->context_bytes);
    return 0;
oom:
    free(text);
    pl_echo_turn_free(t);
    return -1;
}

void pl_echo_turn_free(pl_echo_turn *t)
{
    size_t i;

    for (i = 0; i < PL_ECHO_MAX_BLOCKS; i++) {
        pl_echo_block *b = &t->blocks[i];
        free(b->text);
        free(b->piece_end);
        free(b->signature);
        free(b->tool_id);
        free(b->name);
    }
    free(t->stop_sequence);
    memset(t, 0, sizeof *t);
}

const pl_echo_block *pl_echo_turn_unit(const pl_echo_turn *t, size_t k,
                                       size_t *piece)
{
    size_t i;

    for (i = 0; i < t->nblocks; i++) {
        const pl_echo_block *b = &t->blocks[i];
        if (k < b->first_unit + b->nunits) {
            *piece = k - b->first_unit;
            return b;
        }
    }
    *piece = 0;
    return NULL;
}

size_t pl_echo_block_index(const pl_echo_turn *t, const pl_echo_block *b)
{
    return (size_t)(b - t->blocks);
}

size_t pl_echo_block_piece_start(const pl_echo_block *b, size_t k)
{
    return k ? b->piece_end[k - 1] : 0;
}

size_t pl_echo_block_piece_len(const pl_echo_block *b, size_t k)
{
    return b->piece_end[k] - pl_echo_block_piece_start(b, k);
}

const pl_echo_block *pl_echo_turn_text(const pl_echo_turn *t)
{
    size_t i;

    for (i = 0; i < t->nblocks; i++)
        if (t->blocks[i].type == PL_ECHO_BLOCK_TEXT)
            return &t->blocks[i];
    return NULL;
}
