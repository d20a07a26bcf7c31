/*
 * One streamed HTTP reply: the hand-off between parley's worker threads,
 * which push the pieces of a turn as its events arrive, and libmicrohttpd's
 * threads, which send them to the client.
 *
 * Neither side ever waits for the other. When MHD has nothing to send it
 * suspends the connection (so no MHD thread sits idle waiting for a reply);
 * the worker that brings the next piece or the end resumes it. A small buffer
 * holds what arrived and was not yet sent: at most the unread part of one
 * reply.
 *
 * A stream is reference-counted because three owners end at unrelated times:
 * the HTTP exchange (until MHD reports the request completed), the MHD
 * response reading from it (until MHD frees the response), and the parley
 * turn (until its terminal event). Whatever arrives after the client went
 * away is dropped.
 */
#ifndef GATEWAY_STREAM_H
#define GATEWAY_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <microhttpd.h>

#include "parley.h"

typedef struct gw_stream gw_stream;

/* A stream for the request on `connection`, holding one reference (the
 * exchange's); NULL when out of memory. */
gw_stream *gw_stream_new(struct MHD_Connection *connection);
gw_stream *gw_stream_ref(gw_stream *s);
void gw_stream_unref(gw_stream *s);

/* ---- parley's side: a worker, from the turn's event callback ---------- */

/* A TEXT piece: queued for the client, or dropped if the client is gone. */
void gw_stream_push(gw_stream *s, const char *text, size_t len);

/*
 * The terminal event: DONE when err is PARLEY_OK, else ERROR with parley's
 * sentence in message. An error after text ends the body with a line saying
 * what went wrong; an error before any text becomes the HTTP status.
 */
void gw_stream_end(gw_stream *s, parley_err_t err, const char *message);

/* ---- MHD's side --------------------------------------------------------- */

typedef enum gw_stream_start {
    GW_STREAM_WAITING, /* nothing yet: the connection is now suspended */
    GW_STREAM_REPLY,   /* text arrived (or an empty reply): answer 200 */
    GW_STREAM_FAILED   /* the turn failed before any text */
} gw_stream_start;

/*
 * From the access handler, once the turn is sent and each time MHD calls
 * again after a resume: has the reply begun? On GW_STREAM_FAILED, *err and
 * the message (at most message_size bytes, NUL-terminated) say why.
 */
gw_stream_start gw_stream_begin(gw_stream *s, parley_err_t *err, char *message,
                                size_t message_size);

/* MHD's content reader (MHD_ContentReaderCallback) over the stream. */
ssize_t gw_stream_read(void *stream, uint64_t pos, char *buf, size_t max);

/* MHD's free callback of the response that reads the stream: its unref. */
void gw_stream_release(void *stream);

/*
 * MHD is done with the request (completed, failed, or the client left):
 * from now on pieces are dropped. Returns true when the turn had not ended,
 * so that the caller cancels it instead of letting it run for no one.
 */
bool gw_stream_detach(gw_stream *s);

#endif
