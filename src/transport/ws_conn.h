/*
 * One WebSocket connection driven by the I/O thread's curl multi handle, in
 * write-callback mode. Only the I/O thread touches it.
 *
 * libcurl 8.14 traps handled here (docs/protocol.md, "Control frames"):
 * auto-pong is off and Pongs are sent by us at a frame boundary; curl_ws_send
 * may send part of a frame, so frames leave strictly one at a time from a
 * queue; empty data frames are never sent; frames arrive in pieces and are
 * reassembled in our buffer, with our own size limit; zero-length frames
 * never reach the write callback, so Pings are found by a tap on the raw
 * bytes (see pl_ws_tap).
 */
#ifndef PL_WS_CONN_H
#define PL_WS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "buf.h"
#include "clock.h"
#include "easy.h"

typedef struct pl_ws_conn pl_ws_conn;

/* What arrives, handed to the connection's owner (the native transport), which
 * ws_conn does not know: it frames, the owner reads. Both run inside a curl
 * callback, where the transfer must not be removed (see doomed). */
typedef struct pl_ws_conn_events {
    /* A complete message arrived. */
    void (*message)(void *owner, pl_ws_conn *conn, const char *data, size_t len,
                    bool binary);
    /* A message over the limit arrives; `start` holds its first bytes, to
     * tell whose it was. Nothing more is read from the connection: it must be
     * closed (1009), or it could be held for as long as the server makes the
     * message (2^63 bytes, endless fragments). */
    void (*oversized)(void *owner, pl_ws_conn *conn, const char *start, size_t len);
} pl_ws_conn_events;

typedef enum pl_ws_state {
    PL_WS_IDLE = 0,   /* no transfer */
    PL_WS_CONNECTING, /* TCP, TLS and the upgrade, then waiting for hello */
    PL_WS_OPEN        /* hello received: requests may be sent */
} pl_ws_state;

typedef struct pl_out_frame {
    struct pl_out_frame *next;
    unsigned flags; /* CURLWS_TEXT, CURLWS_PING, CURLWS_PONG, ... */
    size_t len, off;
    char data[];
} pl_out_frame;

typedef struct pl_frame_queue {
    pl_out_frame *head, *tail;
} pl_frame_queue;

/*
 * A reader of frame headers over the raw bytes received after the upgrade.
 * libcurl 8.14 never gives a zero-length frame to the write callback (curl
 * issue 18286), so an empty Ping would go unanswered; its raw-data trace
 * (CURLINFO_DATA_IN to the debug callback, with CURLOPT_VERBOSE) shows every
 * byte before its frame decoder. The tap follows the frame boundaries there
 * and answers every Ping, empty or not; data frames are still taken from the
 * write callback.
 */
typedef struct pl_ws_tap {
    bool active;               /* the 101 arrived: the bytes are frames */
    unsigned char head[14];    /* the frame header being read */
    unsigned head_len, head_need;
    bool in_payload;
    uint64_t left;             /* payload bytes of the frame still to come */
    bool ping;                 /* the frame is a Ping: keep its payload */
    unsigned char ping_data[125];
    size_t ping_len;
} pl_ws_tap;

struct pl_ws_conn {
    CURLM *multi;           /* the owner's, which runs the transfers */
    const pl_ws_conn_events *events;
    void *owner;            /* passed to events */
    unsigned index;
    pl_ws_state state;
    CURL *easy;
    struct curl_slist *headers;
    curl_socket_t sock;
    char errbuf[CURL_ERROR_SIZE];

    char subprotocol[64];   /* Sec-WebSocket-Protocol of the 101 answer */
    pl_buf refusal_body;    /* body of a non-101 answer, bounded */
    bool upgraded;          /* the 101 answer arrived */
    bool offered_zstd;      /* we offered parley.v1.zstd */
    bool offered_gzip;      /* we offered parley.v1.gzip */
    bool offered_dict;      /* ... and the built-in dictionary */
    int compression;        /* the selected pl_compress_alg; 0: parley.v1 */
    bool dict_agreed;       /* hello named our dictionary */

    curl_debug_callback trace; /* the I/O thread's trace, or NULL */
    void *trace_data;
    pl_ws_tap tap;

    /* Ping, Pong, Close: sent at a frame boundary; at most one of each waits
     * (a ping flood cannot grow it: only the latest Ping needs its Pong). */
    pl_frame_queue control;
    pl_frame_queue data;    /* requests, sent once open */
    pl_out_frame *sending;  /* the frame partly sent */
    bool want_write;        /* curl_ws_send said CURLE_AGAIN */

    pl_buf rx;              /* the message being reassembled */
    bool rx_discard;        /* it exceeds the limit: keep only its start */
    bool rx_binary;
    bool peer_closed;       /* a Close frame arrived */
    bool failed;            /* sending failed: the connection is ending */
    int64_t failed_at_ms;
    /* A failure found inside a curl callback, where the transfer cannot be
     * removed: the I/O loop acts on it after curl_multi_perform returns. */
    bool doomed;
    pl_failure doom;        /* what it was, for its requests */
    unsigned doom_close_code; /* Close frame to send first, 0 for none */
    char doom_msg[256];

    unsigned inflight;      /* requests routed to this connection */
    int failures;           /* losses since it last delivered a piece (text or
                             * done; an ack does not count): ws_native.c resets it */
    uint64_t delivered;     /* text and done messages: the connection was useful */
    int64_t reconnect_at_ms; /* no new connection before this */
    uint64_t max_message_bytes;
    unsigned heartbeat_s;   /* from hello; 0 when absent */
    bool feature_blocks;    /* hello lists the extension `blocks` (protocol.md 9) */
    int64_t last_rx_ms, last_ping_ms;
    int64_t last_pong_ms;
    int64_t opened_at_ms;   /* the transfer started: the handshake's clock */
    /* A request on it stalled at this time and a Ping went out: a Pong
     * after it clears the connection, none within stall.ping.timeout.ms
     * condemns it. 0: not suspect. */
    int64_t suspect_since_ms;

    /* For the statistics (docs/statistics.md); over every transfer of this
     * connection slot, kept by pl_ws_conn_reset(). */
    struct {
        uint64_t frames_sent, frames_received; /* data frames */
        uint64_t bytes_sent, bytes_received;   /* payload, as on the wire */
        uint64_t bytes_saved;     /* what compression saved on what was sent */
        uint64_t opens;           /* handshakes completed (hello) */
        int64_t open_since_ms;    /* hello of the current transfer; 0: none */
        int64_t rtt_ms;           /* last heartbeat Ping to its Pong; -1: none */
    } stats;
};

/* Start connecting, offering parley.v1.zstd (with the built-in dictionary
 * when offer_dict) and parley.v1.gzip as asked, parley.v1 always.
 * Returns 0, or -1 with errbuf set. */
int pl_ws_conn_open(pl_ws_conn *conn, const char *url, const char *api_key,
                    const pl_easy_opts *opts, uint64_t max_message_bytes,
                    bool offer_zstd, bool offer_gzip, bool offer_dict);

/* Queue a frame (copied). Data frames wait for hello; control frames only
 * for the upgrade, and replace a waiting control frame of the same kind. */
void pl_ws_conn_queue_data(pl_ws_conn *conn, const char *data, size_t len);
void pl_ws_conn_queue_control(pl_ws_conn *conn, unsigned flags,
                              const char *data, size_t len);

/*
 * Send what can be sent now without blocking; on parley.v1.zstd a data frame
 * goes compressed when that makes it smaller. Returns the number of data
 * frames completed, or -1 when the connection failed (errbuf says why).
 * *bytes_sent counts payload bytes, *bytes_saved what compression saved.
 */
int pl_ws_conn_flush(pl_ws_conn *conn, uint64_t *bytes_sent, uint64_t *bytes_saved);

/* Data frames and their bytes waiting to be sent (the one partly sent
 * included), for the statistics. */
void pl_ws_conn_queued(const pl_ws_conn *conn, uint64_t *frames, uint64_t *bytes);

/* Whether a partial frame waits for the socket to become writable. */
bool pl_ws_conn_wants_write(const pl_ws_conn *conn);

/* Send a Close frame with `code` now when no frame is half sent (best
 * effort: the connection is being abandoned). */
void pl_ws_conn_close_now(pl_ws_conn *conn, unsigned code);

/* Remove the transfer from the multi handle and return to IDLE; the frame
 * queues are emptied, the failure count and reconnect time kept. */
void pl_ws_conn_reset(pl_ws_conn *conn);

#endif
