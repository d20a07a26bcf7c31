/* Streaming JSON writer; see json_writer.h. */
#include "json_writer.h"

#include <string.h>

void pl_jw_init(pl_json_writer *w)
{
    memset(w, 0, sizeof(*w));
    w->first[0] = true;
}

static void put(pl_json_writer *w, const char *s, size_t len)
{
    if (!w->failed && pl_buf_append(&w->out, s, len) != 0)
        w->failed = true;
}

/* The comma before a value and its key. */
static void lead(pl_json_writer *w, const char *key)
{
    if (!w->first[w->depth])
        put(w, ",", 1);
    w->first[w->depth] = false;
    if (key) {
        if (!w->failed && pl_buf_append_json_str(&w->out, key, strlen(key)) != 0)
            w->failed = true;
        put(w, ":", 1);
    }
}

static void open_level(pl_json_writer *w, const char *key, const char *bracket)
{
    lead(w, key);
    put(w, bracket, 1);
    if (w->depth + 1 >= PL_JSON_MAX_DEPTH) {
        w->failed = true;
        return;
    }
    w->first[++w->depth] = true;
}

static void close_level(pl_json_writer *w, const char *bracket)
{
    if (w->depth > 0)
        w->depth--;
    put(w, bracket, 1);
}

void pl_jw_object(pl_json_writer *w, const char *key) { open_level(w, key, "{"); }
void pl_jw_array(pl_json_writer *w, const char *key) { open_level(w, key, "["); }
void pl_jw_end_object(pl_json_writer *w) { close_level(w, "}"); }
void pl_jw_end_array(pl_json_writer *w) { close_level(w, "]"); }

void pl_jw_u64(pl_json_writer *w, const char *key, uint64_t v)
{
    lead(w, key);
    if (!w->failed && pl_buf_append_u64(&w->out, v) != 0)
        w->failed = true;
}

void pl_jw_i64(pl_json_writer *w, const char *key, int64_t v)
{
    lead(w, key);
    if (!w->failed && pl_buf_append_i64(&w->out, v) != 0)
        w->failed = true;
}

void pl_jw_ratio(pl_json_writer *w, const char *key, uint64_t sent, uint64_t saved)
{
    uint64_t original = sent + saved;
    pl_jw_fixed(w, key, original ? sent * 10000 / original : 10000, 4);
}

void pl_jw_fixed(pl_json_writer *w, const char *key, uint64_t units, unsigned decimals)
{
    uint64_t scale = 1;
    for (unsigned i = 0; i < decimals; i++)
        scale *= 10;
    char frac[16];
    uint64_t rest = units % scale;
    for (unsigned i = decimals; i > 0; i--) {
        frac[i] = (char)('0' + rest % 10);
        rest /= 10;
    }
    frac[0] = '.';
    pl_jw_u64(w, key, units / scale);
    put(w, frac, decimals + 1);
}

void pl_jw_str(pl_json_writer *w, const char *key, const char *s)
{
    lead(w, key);
    if (!w->failed && pl_buf_append_json_str(&w->out, s, strlen(s)) != 0)
        w->failed = true;
}

void pl_jw_bool(pl_json_writer *w, const char *key, bool v)
{
    lead(w, key);
    put(w, v ? "true" : "false", v ? 4 : 5);
}
