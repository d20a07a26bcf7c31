/*
 * An incremental parser of server-sent events (the text/event-stream format
 * of the HTML standard), with no I/O: feed it bytes in chunks of any size and
 * it calls back once per complete event. Handles LF, CRLF and CR line ends
 * (a CRLF split across chunks included), comments, multi-line data, a leading
 * byte order mark, and fields it does not know.
 */
#ifndef PL_SSE_H
#define PL_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

typedef struct pl_sse_event {
    const char *type; /* "message" when the event named none */
    size_t type_len;
    const char *data; /* the data lines joined with LF; NUL-terminated */
    size_t data_len;
    const char *id;   /* the last event id seen, "" when none */
    size_t id_len;
} pl_sse_event;

/* Called per event; return 0 to go on, anything else to stop the feed. */
typedef int pl_sse_cb(void *userdata, const pl_sse_event *ev);

typedef struct pl_sse_parser {
    pl_buf line;        /* the line being read */
    pl_buf data;        /* the event's data so far */
    pl_buf type;        /* the event's type so far */
    pl_buf id;          /* the last event id */
    size_t max_event_bytes;
    bool after_cr;      /* the last byte was CR: an LF next is part of it */
    bool started;       /* past the optional byte order mark */
    size_t bom_seen;    /* bytes of the byte order mark matched so far */
} pl_sse_parser;

/* max_event_bytes bounds a line and an event's data (0: 1 MiB). */
void pl_sse_init(pl_sse_parser *p, size_t max_event_bytes);
/* Ready for a new stream, keeping the buffers' memory. */
void pl_sse_reset(pl_sse_parser *p);
void pl_sse_free(pl_sse_parser *p);

/*
 * Feed bytes. Returns 0; the callback's non-zero value when it stopped the
 * feed; or -1 when a line or an event exceeds max_event_bytes (the stream
 * is then unusable).
 */
int pl_sse_feed(pl_sse_parser *p, const char *bytes, size_t len, pl_sse_cb *cb,
                void *userdata);

#endif
