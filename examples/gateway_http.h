/*
 * The gateway's HTTP side: a libmicrohttpd daemon with a pool of polling
 * threads that serves POST /chat/<session>. The request body is the next
 * user turn of that conversation; the reply streams back as chunked text
 * (gateway_stream.h) while the turn's pieces arrive.
 */
#ifndef GATEWAY_HTTP_H
#define GATEWAY_HTTP_H

#include <stddef.h>

#include "gateway_sessions.h"

/* Largest request body (one user turn) accepted; larger ones get 413. */
#define GW_MAX_BODY_BYTES (64 * 1024)
/* A declared body up to this is read and dropped before its 413. */
#define GW_DRAIN_MAX_BYTES (1024 * 1024)

typedef struct gw_http gw_http;

typedef struct gw_http_opts {
    const char *bind_addr;    /* a numeric IPv4 or IPv6 address */
    int port;                 /* 0 picks a free port */
    unsigned threads;         /* MHD's polling threads */
    unsigned max_connections; /* open HTTP connections at once */
} gw_http_opts;

/* Listen and serve in the background. NULL with a sentence in err when the
 * address cannot be bound or the daemon cannot start. */
gw_http *gw_http_start(const gw_http_opts *opts, gw_sessions *sessions, char *err,
                       size_t err_size);

/* The port listened on (the one chosen when opts->port was 0). */
int gw_http_port(const gw_http *http);

/* Shutdown, first step: accept no new connections; the open ones go on. */
void gw_http_stop_accepting(gw_http *http);

/*
 * Wait up to finish_ms for the answers in progress to be written (their
 * turns have ended: the last ones with an error line), then close every
 * connection and free the daemon. MHD must not be stopped while a connection
 * is suspended, and a connection waiting for its reply is: call this only
 * once every turn has ended, after parley_client_destroy().
 */
void gw_http_stop(gw_http *http, unsigned finish_ms);

#endif
