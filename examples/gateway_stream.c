/* One streamed HTTP reply between parley's workers and MHD (gateway_stream.h). */
#include "gateway_stream.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gw_stream {
    pthread_mutex_t lock; /* guards every field below */
    unsigned refs;
    /* NULL once MHD is done with the request: nothing is queued any more. */
    struct MHD_Connection *connection;
    /* The connection is suspended waiting for this stream. Whoever clears the
     * flag resumes it, under the lock, so it is resumed exactly once and MHD
     * never sees a resume without its suspend. A suspended connection is not
     * processed by MHD, so it cannot complete (and be freed) meanwhile. */
    bool suspended;
    bool has_text; /* a piece arrived: the answer is a 200 */
    bool ended;    /* the terminal event arrived: nothing more will come */
    parley_err_t error;
    /* Bytes not yet handed to MHD: data[start, end). After a failure before
     * any text they hold the error line, which becomes the body of the
     * error status instead. */
    char *data;
    size_t start, end, cap;
};

gw_stream *gw_stream_new(struct MHD_Connection *connection)
{
    gw_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    pthread_mutex_init(&s->lock, NULL);
    s->refs = 1;
    s->connection = connection;
    return s;
}

gw_stream *gw_stream_ref(gw_stream *s)
{
    pthread_mutex_lock(&s->lock);
    s->refs++;
    pthread_mutex_unlock(&s->lock);
    return s;
}

void gw_stream_unref(gw_stream *s)
{
    pthread_mutex_lock(&s->lock);
    unsigned left = --s->refs;
    pthread_mutex_unlock(&s->lock);
    if (left)
        return;
    pthread_mutex_destroy(&s->lock);
    free(s->data);
    free(s);
}

void gw_stream_release(void *stream)
{
    gw_stream_unref(stream);
}

/* Called with the lock held: MHD may process the connection again. */
static void resume_if_suspended(gw_stream *s)
{
    if (!s->suspended)
        return;
    s->suspended = false;
    MHD_resume_connection(s->connection);
}

/* Called with the lock held. Running out of memory here ends the process,
 * as in the library: a reply silently cut short would be worse. */
static void append(gw_stream *s, const char *text, size_t len)
{
    size_t used = s->end - s->start;
    if (s->cap - s->end < len && s->start > 0) {
        memmove(s->data, s->data + s->start, used);
        s->start = 0;
        s->end = used;
    }
    if (s->cap - used < len) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap - used < len)
            cap *= 2;
        char *grown = realloc(s->data, cap);
        if (!grown) {
            fprintf(stderr, "gateway: out of memory buffering a reply\n");
            abort();
        }
        s->data = grown;
        s->cap = cap;
    }
    memcpy(s->data + s->end, text, len);
    s->end += len;
}

void gw_stream_push(gw_stream *s, const char *text, size_t len)
{
    pthread_mutex_lock(&s->lock);
    if (s->connection && len) {
        append(s, text, len);
        s->has_text = true;
        resume_if_suspended(s);
    }
    pthread_mutex_unlock(&s->lock);
}

void gw_stream_end(gw_stream *s, parley_err_t err, const char *message)
{
    pthread_mutex_lock(&s->lock);
    s->ended = true;
    s->error = err;
    if (s->connection) {
        if (err != PARLEY_OK) {
            char line[512];
            /* After text the line ends the body, so it starts on a line of
             * its own. */
            int n = snprintf(line, sizeof(line), "%serror: %s (%s)\n",
                             s->has_text ? "\n" : "", message, parley_err2name(err));
            append(s, line, n < (int)sizeof(line) ? (size_t)n : sizeof(line) - 1);
        }
        resume_if_suspended(s);
    }
    pthread_mutex_unlock(&s->lock);
}

gw_stream_start gw_stream_begin(gw_stream *s, parley_err_t *err, char *message,
                                size_t message_size)
{
    gw_stream_start start;
    pthread_mutex_lock(&s->lock);
    if (s->has_text || (s->ended && s->error == PARLEY_OK)) {
        start = GW_STREAM_REPLY;
    } else if (s->ended) {
        size_t n = s->end - s->start;
        if (n >= message_size)
            n = message_size - 1;
        memcpy(message, s->data + s->start, n);
        message[n] = '\0';
        *err = s->error;
        start = GW_STREAM_FAILED;
    } else {
        /* Suspended under the lock, so that the worker bringing the first
         * event either ran before (and we saw it) or finds the flag set. */
        s->suspended = true;
        MHD_suspend_connection(s->connection);
        start = GW_STREAM_WAITING;
    }
    pthread_mutex_unlock(&s->lock);
    return start;
}

ssize_t gw_stream_read(void *stream, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    gw_stream *s = stream;
    ssize_t n;
    pthread_mutex_lock(&s->lock);
    if (s->start < s->end) {
        size_t avail = s->end - s->start;
        size_t take = avail < max ? avail : max;
        memcpy(buf, s->data + s->start, take);
        s->start += take;
        n = (ssize_t)take;
    } else if (s->ended) {
        /* An error cuts the chunked body short (no final chunk), so HTTP
         * clients see the reply as incomplete, not just read the line. */
        n = s->error == PARLEY_OK ? MHD_CONTENT_READER_END_OF_STREAM
                                  : MHD_CONTENT_READER_END_WITH_ERROR;
    } else {
        /* Returning 0 without suspending would make MHD call again at once,
         * spinning; the next push or the end resumes the connection. */
        s->suspended = true;
        MHD_suspend_connection(s->connection);
        n = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return n;
}

bool gw_stream_detach(gw_stream *s)
{
    pthread_mutex_lock(&s->lock);
    s->connection = NULL;
    bool running = !s->ended;
    pthread_mutex_unlock(&s->lock);
    return running;
}
