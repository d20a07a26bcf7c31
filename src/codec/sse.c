#include "sse.h"

#include <string.h>

#define SSE_DEFAULT_MAX (1024u * 1024u)

static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};

void pl_sse_init(pl_sse_parser *p, size_t max_event_bytes)
{
    memset(p, 0, sizeof(*p));
    p->max_event_bytes = max_event_bytes ? max_event_bytes : SSE_DEFAULT_MAX;
}

void pl_sse_reset(pl_sse_parser *p)
{
    pl_buf_reset(&p->line);
    pl_buf_reset(&p->data);
    pl_buf_reset(&p->type);
    pl_buf_reset(&p->id);
    p->after_cr = false;
    p->started = false;
    p->bom_seen = 0;
}

void pl_sse_free(pl_sse_parser *p)
{
    pl_buf_free(&p->line);
    pl_buf_free(&p->data);
    pl_buf_free(&p->type);
    pl_buf_free(&p->id);
}

static int dispatch(pl_sse_parser *p, pl_sse_cb *cb, void *userdata)
{
    int rc = 0;
    /* An event with no data line is not dispatched (HTML standard 9.2.6). */
    if (p->data.len > 0) {
        size_t len = p->data.len;
        if (len > 0 && p->data.data[len - 1] == '\n')
            len--; /* the LF after the last data line is not data */
        pl_sse_event ev = {
            .type = p->type.len ? p->type.data : "message",
            .type_len = p->type.len ? p->type.len : 7,
            .data = p->data.data,
            .data_len = len,
            .id = p->id.data ? p->id.data : "",
            .id_len = p->id.len,
        };
        p->data.data[len] = '\0';
        rc = cb(userdata, &ev);
    }
    pl_buf_free(&p->data);
    pl_buf_reset(&p->type);
    return rc;
}

/* One complete line (without its end). Returns the callback's value, or -1
 * when the event grows past the limit. */
static int process_line(pl_sse_parser *p, pl_sse_cb *cb, void *userdata)
{
    const char *line = p->line.data ? p->line.data : "";
    size_t len = p->line.len;
    if (len == 0)
        return dispatch(p, cb, userdata);
    if (line[0] == ':')
        return 0; /* a comment */
    const char *colon = memchr(line, ':', len);
    size_t name_len = colon ? (size_t)(colon - line) : len;
    const char *value = colon ? colon + 1 : line + len;
    size_t value_len = (size_t)(line + len - value);
    if (value_len > 0 && value[0] == ' ') {
        value++;
        value_len--;
    }
    if (name_len == 4 && memcmp(line, "data", 4) == 0) {
        if (p->data.len + value_len + 1 > p->max_event_bytes)
            return -1;
        if (pl_buf_append(&p->data, value, value_len) != 0 ||
            pl_buf_append(&p->data, "\n", 1) != 0)
            return -1;
    } else if (name_len == 5 && memcmp(line, "event", 5) == 0) {
        pl_buf_reset(&p->type);
        if (pl_buf_append(&p->type, value, value_len) != 0)
            return -1;
    } else if (name_len == 2 && memcmp(line, "id", 2) == 0) {
        if (!memchr(value, '\0', value_len)) { /* the standard ignores such ids */
            pl_buf_reset(&p->id);
            if (pl_buf_append(&p->id, value, value_len) != 0)
                return -1;
        }
    }
    /* "retry" and unknown fields are ignored: reconnection is ours to pace. */
    return 0;
}

/* Skip a byte order mark at the very start, even one split across chunks. */
static size_t skip_bom(pl_sse_parser *p, const char *bytes, size_t len)
{
    size_t i = 0;
    while (!p->started && i < len) {
        if ((unsigned char)bytes[i] == bom[p->bom_seen]) {
            i++;
            if (++p->bom_seen == sizeof(bom))
                p->started = true;
            continue;
        }
        /* Not a byte order mark: what matched of it was data after all. */
        p->started = true;
        if (p->bom_seen && pl_buf_append(&p->line, (const char *)bom, p->bom_seen) != 0)
            return len + 1;
    }
    return i;
}

int pl_sse_feed(pl_sse_parser *p, const char *bytes, size_t len, pl_sse_cb *cb,
                void *userdata)
{
    size_t i = skip_bom(p, bytes, len);
    if (i > len)
        return -1;
    while (i < len) {
        char c = bytes[i];
        if (c == '\n' && p->after_cr) { /* the LF of a CRLF */
            p->after_cr = false;
            i++;
            continue;
        }
        p->after_cr = false;
        if (c == '\n' || c == '\r') {
            p->after_cr = c == '\r';
            int rc = process_line(p, cb, userdata);
            pl_buf_reset(&p->line);
            i++;
            if (rc != 0)
                return rc;
            continue;
        }
        /* Copy the run of ordinary bytes up to the next line end at once. */
        size_t end = i;
        while (end < len && bytes[end] != '\n' && bytes[end] != '\r')
            end++;
        if (p->line.len + (end - i) > p->max_event_bytes ||
            pl_buf_append(&p->line, bytes + i, end - i) != 0)
            return -1;
        i = end;
    }
    return 0;
}
