/* The gateway's HTTP side on libmicrohttpd (gateway_http.h). */
#include "gateway_http.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <time.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#define CHAT_PATH "/chat/"
#define MAX_SESSION_NAME 128
/* How long an idle keep-alive connection is kept. A connection waiting
 * for its reply is suspended, and MHD does not time suspended ones out. */
#define IDLE_TIMEOUT_S 60u

struct gw_http {
    struct MHD_Daemon *daemon;
    gw_sessions *sessions;
    int listen_fd; /* ours: bound before MHD starts, closed after it stops */
    bool accepting;
    int port;
    /* Requests whose turn was sent and whose answer MHD has not finished:
     * shutdown lets them finish writing before it closes connections. */
    pthread_mutex_t answering_lock;
    pthread_cond_t answering_done;
    unsigned answering;
};

/* One HTTP request, from its headers until MHD reports it completed. */
typedef struct exchange {
    char *session_name;
    char *body; /* the user's turn, NUL-terminated once complete */
    size_t body_len;
    bool body_too_large;
    /* Once the turn is sent: */
    gw_stream *stream;
    parley_session_t *session;
    uint64_t request_id;
} exchange;

/* ---- responses ---------------------------------------------------------- */

static enum MHD_Result respond_text(struct MHD_Connection *c, unsigned status,
                                   const char *text, const char *allow)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    if (allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result respond_error(struct MHD_Connection *c, unsigned status,
                                     const char *why)
{
    char text[600];
    snprintf(text, sizeof(text), "error: %s\n", why);
    return respond_text(c, status, text, NULL);
}

static enum MHD_Result respond_too_large(struct MHD_Connection *c)
{
    char why[80];
    snprintf(why, sizeof(why), "the message is too large (at most %d bytes)",
             GW_MAX_BODY_BYTES);
    return respond_error(c, MHD_HTTP_CONTENT_TOO_LARGE, why);
}

/* The status for a turn that failed before any text. */
static unsigned status_for(parley_err_t err)
{
    switch (err) {
    case PARLEY_ERR_INVALID_ARG:
        return MHD_HTTP_BAD_REQUEST;
    case PARLEY_ERR_TOO_LARGE:
    case PARLEY_ERR_SERVER_TOO_LARGE:
        return MHD_HTTP_CONTENT_TOO_LARGE;
    case PARLEY_ERR_RATE_LIMITED:
        return MHD_HTTP_TOO_MANY_REQUESTS;
    case PARLEY_ERR_QUEUE_FULL:
    case PARLEY_ERR_OVERLOADED:
    case PARLEY_ERR_SHUTDOWN:
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    case PARLEY_ERR_TIMED_OUT:
        return MHD_HTTP_GATEWAY_TIMEOUT;
    case PARLEY_ERR_SESSION_OWNED:
        /* Another gateway kept the conversation past --lease-wait-ms: the
         * turn may be sent again. */
        return MHD_HTTP_CONFLICT;
    case PARLEY_ERR_STORE:
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    case PARLEY_ERR_NO_MEMORY:
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    default:
        /* The AI service could not be reached, refused our key, broke the
         * protocol or failed: the gateway's upstream is at fault. */
        return MHD_HTTP_BAD_GATEWAY;
    }
}

/* The reply as chunked text, read from the stream while pieces arrive. */
static enum MHD_Result respond_stream(struct MHD_Connection *c, gw_stream *stream)
{
    struct MHD_Response *r = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, 4096, gw_stream_read, gw_stream_ref(stream), gw_stream_release);
    if (!r) {
        gw_stream_unref(stream);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ok;
}

/* ---- the request's life ------------------------------------------------- */

static bool session_name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len < 1 || len > MAX_SESSION_NAME)
        return false;
    return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                        "0123456789._:-") == len;
}

/* First call, headers only: refuse what the headers already condemn (MHD
 * then drops any body and closes), else start collecting the body. */
static enum MHD_Result begin_exchange(struct MHD_Connection *c, const char *url,
                                      const char *method, void **req_cls)
{
    if (strncmp(url, CHAT_PATH, strlen(CHAT_PATH)))
        return respond_error(c, MHD_HTTP_NOT_FOUND, "no such path: use POST /chat/<session>");
    if (strcmp(method, MHD_HTTP_METHOD_POST))
        return respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                            "error: only POST is allowed here\n", MHD_HTTP_METHOD_POST);
    const char *name = url + strlen(CHAT_PATH);
    if (!session_name_valid(name))
        return respond_error(c, MHD_HTTP_BAD_REQUEST,
                             "bad session name: it must be 1-128 characters of "
                             "A-Z a-z 0-9 . _ : -");
    const char *length = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
    unsigned long long declared = length ? strtoull(length, NULL, 10) : 0;
    /* Far too large: answer now. A client sending that much waits for
     * "100 Continue" first (curl does above 1 MiB), so no body is lost. */
    if (declared > GW_DRAIN_MAX_BYTES)
        return respond_too_large(c);
    exchange *ex = calloc(1, sizeof(*ex));
    if (!ex || !(ex->session_name = strdup(name))) {
        free(ex);
        return MHD_NO; /* out of memory: MHD closes the connection */
    }
    /* Too large, but not by much: read and drop it, then answer 413.
     * Answering first and closing with the body unread makes the kernel
     * reset the connection, and the client loses the answer. */
    ex->body_too_large = declared > GW_MAX_BODY_BYTES;
    *req_cls = ex;
    return MHD_YES;
}

/* A piece of the body. Beyond the limit (a chunked upload declares no
 * length) the rest is read and dropped, and the answer is 413. */
static enum MHD_Result take_body(exchange *ex, const char *data, size_t size)
{
    if (ex->body_too_large || size > GW_MAX_BODY_BYTES - ex->body_len) {
        ex->body_too_large = true;
        return MHD_YES;
    }
    char *grown = realloc(ex->body, ex->body_len + size + 1);
    if (!grown)
        return MHD_NO;
    memcpy(grown + ex->body_len, data, size);
    ex->body = grown;
    ex->body_len += size;
    ex->body[ex->body_len] = '\0';
    return MHD_YES;
}

/* After the turn is sent, and again each time the stream resumes the
 * connection before the answer was chosen: answer once the reply begins. */
static enum MHD_Result answer_when_ready(struct MHD_Connection *c, exchange *ex)
{
    parley_err_t err = PARLEY_OK;
    char message[600];
    switch (gw_stream_begin(ex->stream, &err, message, sizeof(message))) {
    case GW_STREAM_WAITING:
        return MHD_YES;
    case GW_STREAM_FAILED:
        return respond_text(c, status_for(err), message, NULL);
    case GW_STREAM_REPLY:
        break;
    }
    return respond_stream(c, ex->stream);
}

/* The whole body is in: send it as the session's next turn. */
static enum MHD_Result start_turn(gw_http *h, struct MHD_Connection *c, exchange *ex)
{
    if (ex->body_too_large)
        return respond_too_large(c);
    if (ex->body_len == 0)
        return respond_error(c, MHD_HTTP_BAD_REQUEST,
                             "the message is empty: send it as the request body");
    if (strlen(ex->body) != ex->body_len)
        return respond_error(c, MHD_HTTP_BAD_REQUEST, "the message contains a NUL byte");
    gw_stream *stream = gw_stream_new(c);
    if (!stream)
        return respond_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    char why[256];
    parley_err_t err = gw_sessions_send(h->sessions, ex->session_name, ex->body, stream,
                                        &ex->session, &ex->request_id, why, sizeof(why));
    if (err != PARLEY_OK) {
        gw_stream_unref(stream);
        return respond_error(c, status_for(err), why);
    }
    ex->stream = stream;
    pthread_mutex_lock(&h->answering_lock);
    h->answering++;
    pthread_mutex_unlock(&h->answering_lock);
    free(ex->body); /* parley holds its own copy */
    ex->body = NULL;
    return answer_when_ready(c, ex);
}

/* MHD's access handler: called for the headers, for each piece of the
 * body, once the body is complete, and after each resume until answered. */
static enum MHD_Result handle_request(void *cls, struct MHD_Connection *c, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **req_cls)
{
    (void)version;
    exchange *ex = *req_cls;
    if (!ex)
        return begin_exchange(c, url, method, req_cls);
    if (*upload_data_size) {
        enum MHD_Result ok = take_body(ex, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return ok;
    }
    if (!ex->stream)
        return start_turn(cls, c, ex);
    return answer_when_ready(c, ex);
}

/* MHD is done with the request, whether answered in full or not (the client
 * left, an error, shutdown). A turn still running has no one to read it. */
static void request_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                              enum MHD_RequestTerminationCode how)
{
    (void)c;
    (void)how;
    gw_http *h = cls;
    exchange *ex = *req_cls;
    if (!ex)
        return;
    if (ex->stream) {
        if (gw_stream_detach(ex->stream))
            gw_sessions_cancel(h->sessions, ex->session, ex->request_id);
        gw_stream_unref(ex->stream);
        pthread_mutex_lock(&h->answering_lock);
        if (--h->answering == 0)
            pthread_cond_broadcast(&h->answering_done);
        pthread_mutex_unlock(&h->answering_lock);
    }
    free(ex->session_name);
    free(ex->body);
    free(ex);
    *req_cls = NULL;
}

/* ---- the daemon --------------------------------------------------------- */

/* Bound here rather than by MHD, so that a failure says why (errno) and
 * port 0 reports the port chosen. */
static int listen_on(const char *addr, int port, int *bound_port, char *err,
                     size_t err_size)
{
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_PASSIVE,
                             .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai;
    if (getaddrinfo(addr, NULL, &hints, &ai) != 0) {
        snprintf(err, err_size, "'%s' is not a numeric IPv4 or IPv6 address", addr);
        return -1;
    }
    struct sockaddr_storage sa;
    socklen_t sa_len = ai->ai_addrlen;
    memcpy(&sa, ai->ai_addr, sa_len);
    freeaddrinfo(ai);
    if (sa.ss_family == AF_INET)
        ((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)port);

    int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
        bind(fd, (struct sockaddr *)&sa, sa_len) || listen(fd, SOMAXCONN) ||
        getsockname(fd, (struct sockaddr *)&sa, &sa_len)) {
        snprintf(err, err_size, "cannot listen on %s port %d: %s", addr, port,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *bound_port = ntohs(sa.ss_family == AF_INET ? ((struct sockaddr_in *)&sa)->sin_port
                                                : ((struct sockaddr_in6 *)&sa)->sin6_port);
    return fd;
}

static void free_http(gw_http *h)
{
    pthread_cond_destroy(&h->answering_done);
    pthread_mutex_destroy(&h->answering_lock);
    free(h);
}

gw_http *gw_http_start(const gw_http_opts *opts, gw_sessions *sessions, char *err,
                       size_t err_size)
{
    gw_http *h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    h->sessions = sessions;
    pthread_mutex_init(&h->answering_lock, NULL);
    pthread_cond_init(&h->answering_done, NULL);
    h->listen_fd = listen_on(opts->bind_addr, opts->port, &h->port, err, err_size);
    if (h->listen_fd < 0) {
        free_http(h);
        return NULL;
    }
    /* MHD_USE_AUTO picks epoll on Linux, which has no limit on descriptor
     * numbers; suspend/resume lets a connection wait for its reply without
     * holding a thread. */
    h->daemon = MHD_start_daemon(
        MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
        handle_request, h,
        MHD_OPTION_LISTEN_SOCKET, h->listen_fd,
        MHD_OPTION_THREAD_POOL_SIZE, opts->threads,
        MHD_OPTION_CONNECTION_LIMIT, opts->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S,
        MHD_OPTION_NOTIFY_COMPLETED, request_completed, h,
        MHD_OPTION_END);
    if (!h->daemon) {
        snprintf(err, err_size, "libmicrohttpd could not start (%u threads, %u connections)",
                 opts->threads, opts->max_connections);
        close(h->listen_fd);
        free_http(h);
        return NULL;
    }
    h->accepting = true;
    return h;
}

int gw_http_port(const gw_http *h)
{
    return h->port;
}

void gw_http_stop_accepting(gw_http *h)
{
    if (h->accepting)
        MHD_quiesce_daemon(h->daemon);
    h->accepting = false;
}

/* Waits until no answer is being written, or finish_ms passed. */
static void wait_answers_written(gw_http *h, unsigned finish_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += finish_ms / 1000;
    deadline.tv_nsec += (long)(finish_ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&h->answering_lock);
    while (h->answering &&
           pthread_cond_timedwait(&h->answering_done, &h->answering_lock, &deadline) == 0)
        ;
    pthread_mutex_unlock(&h->answering_lock);
}

void gw_http_stop(gw_http *h, unsigned finish_ms)
{
    gw_http_stop_accepting(h);
    wait_answers_written(h, finish_ms);
    MHD_stop_daemon(h->daemon);
    /* Once quiesced, the listening socket is ours again to close. */
    close(h->listen_fd);
    free_http(h);
}
