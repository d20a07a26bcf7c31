/* The assistant reply assembled from its pieces (reply_assembly.h). */
#include "reply_assembly.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"

static pl_reply_block *block_for(pl_reply *r, const pl_piece *p)
{
    /* Pieces come block after block: the last one is nearly always it. */
    if (r->n && r->blocks[r->n - 1].index == p->block && r->blocks[r->n - 1].kind == p->kind)
        return &r->blocks[r->n - 1];
    for (size_t i = 0; i < r->n; i++)
        if (r->blocks[i].index == p->block && r->blocks[i].kind == p->kind)
            return &r->blocks[i];
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 2;
        r->blocks = pl_xrealloc(r->blocks, r->cap * sizeof(*r->blocks));
    }
    pl_reply_block *b = &r->blocks[r->n++];
    *b = (pl_reply_block){.kind = p->kind, .index = p->block, .text = PL_BUF_INIT};
    return b;
}

static char *dup_or_null(const char *s)
{
    return s ? pl_xstrdup(s) : NULL;
}

void pl_reply_add(pl_reply *r, const pl_piece *p)
{
    pl_reply_block *b = block_for(r, p);
    if (pl_buf_append(&b->text, p->text, p->len) != 0)
        pl_oom("keeping a reply");
    if (p->signature) {
        free(b->signature);
        b->signature = pl_xstrdup(p->signature);
    }
    if (p->kind == PL_PIECE_TOOL_USE && !b->tool_id) {
        b->tool_id = dup_or_null(p->tool_id);
        b->tool_name = dup_or_null(p->tool_name);
    }
}

const char *pl_reply_text(pl_reply *r, size_t *len)
{
    pl_reply_block *only = NULL;
    size_t ntext = 0;
    for (size_t i = 0; i < r->n; i++)
        if (r->blocks[i].kind == PL_PIECE_TEXT) {
            only = &r->blocks[i];
            ntext++;
        }
    if (ntext == 1 && only->text.data) {
        *len = only->text.len;
        return only->text.data;
    }
    pl_buf_reset(&r->joined);
    for (size_t i = 0; i < r->n; i++)
        if (r->blocks[i].kind == PL_PIECE_TEXT &&
            pl_buf_append(&r->joined, r->blocks[i].text.data, r->blocks[i].text.len) != 0)
            pl_oom("joining a reply");
    if (pl_buf_append(&r->joined, "", 0) != 0)
        pl_oom("joining a reply");
    *len = r->joined.len;
    return r->joined.data;
}

/* Would a vendor take this block back on the next turn? */
static bool keepable(const pl_reply_block *b)
{
    switch (b->kind) {
    case PL_PIECE_TEXT:
        return b->text.len > 0;
    case PL_PIECE_THINKING:
        return b->signature && *b->signature;
    case PL_PIECE_TOOL_USE:
        return b->tool_id && b->tool_name && b->text.len > 0;
    }
    return false;
}

static int write_block(pl_buf *out, const pl_reply_block *b)
{
    switch (b->kind) {
    case PL_PIECE_TEXT:
        return pl_buf_append_str(out, "{\"type\":\"text\",\"text\":") ||
               pl_buf_append_json_str(out, b->text.data, b->text.len) ||
               pl_buf_append(out, "}", 1);
    case PL_PIECE_THINKING:
        return pl_buf_append_str(out, "{\"type\":\"thinking\",\"thinking\":") ||
               pl_buf_append_json_str(out, b->text.data ? b->text.data : "", b->text.len) ||
               pl_buf_append_str(out, ",\"signature\":") ||
               pl_buf_append_json_str(out, b->signature, strlen(b->signature)) ||
               pl_buf_append(out, "}", 1);
    case PL_PIECE_TOOL_USE:
        /* The input was checked to be a JSON object when it arrived. */
        return pl_buf_append_str(out, "{\"type\":\"tool_use\",\"id\":") ||
               pl_buf_append_json_str(out, b->tool_id, strlen(b->tool_id)) ||
               pl_buf_append_str(out, ",\"name\":") ||
               pl_buf_append_json_str(out, b->tool_name, strlen(b->tool_name)) ||
               pl_buf_append_str(out, ",\"input\":") ||
               pl_buf_append(out, b->text.data, b->text.len) || pl_buf_append(out, "}", 1);
    }
    return -1;
}

char *pl_reply_take_history(pl_reply *r, bool *blocks, size_t *len)
{
    size_t kept = 0;
    pl_reply_block *last = NULL;
    for (size_t i = 0; i < r->n; i++)
        if (keepable(&r->blocks[i])) {
            kept++;
            last = &r->blocks[i];
        }
    *blocks = false;
    if (!kept)
        return NULL;
    if (kept == 1 && last->kind == PL_PIECE_TEXT)
        return pl_buf_steal(&last->text, len);
    pl_buf out = PL_BUF_INIT;
    int rc = pl_buf_append(&out, "[", 1);
    bool first = true;
    for (size_t i = 0; rc == 0 && i < r->n; i++) {
        if (!keepable(&r->blocks[i]))
            continue;
        rc = (!first && pl_buf_append(&out, ",", 1)) || write_block(&out, &r->blocks[i]);
        first = false;
    }
    if (rc != 0 || pl_buf_append(&out, "]", 1) != 0)
        pl_oom("keeping a reply");
    *blocks = true;
    return pl_buf_steal(&out, len);
}

void pl_reply_free(pl_reply *r)
{
    for (size_t i = 0; i < r->n; i++) {
        pl_buf_free(&r->blocks[i].text);
        free(r->blocks[i].signature);
        free(r->blocks[i].tool_id);
        free(r->blocks[i].tool_name);
    }
    free(r->blocks);
    pl_buf_free(&r->joined);
    *r = (pl_reply){0};
}
