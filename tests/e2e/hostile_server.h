/*
 * A hostile WebSocket server for tests: a loopback TCP listener on a free
 * port, served by its own thread, that answers the HTTP upgrade by hand and
 * then hands each connection to a script written by the test. The script
 * sends whatever bytes it likes (well-formed frames, lying frame headers,
 * endless fragments, zstd binary frames), reads or stops reading, and
 * stays silent as long as it likes. Only one connection is served at a time:
 * the next one is accepted when the script of the previous one returned.
 *
 * Everything a script does is bounded: every wait polls in short slices and
 * gives up when hs_stop() was called, so a test always ends.
 */
#ifndef PL_TEST_HOSTILE_SERVER_H
#define PL_TEST_HOSTILE_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hs_server hs_server;
typedef struct hs_conn hs_conn;

/* WebSocket opcodes (RFC 6455 5.2). */
enum {
    HS_OP_CONT = 0x0,
    HS_OP_TEXT = 0x1,
    HS_OP_BINARY = 0x2,
    HS_OP_CLOSE = 0x8,
    HS_OP_PING = 0x9,
    HS_OP_PONG = 0xA
};

/* What the server saw from the clients, over every connection. */
typedef struct hs_counts {
    uint64_t connections; /* upgrades answered */
    uint64_t messages;    /* text and binary messages */
    uint64_t pings, pongs, closes;
    /* The code of the Close frame received on each of the first connections,
     * by index; 0: none (yet). */
    unsigned close_code[8];
} hs_counts;

/* One connection's script, run on the server thread once the 101 was sent.
 * `index` counts connections from 0. The connection is closed on return. */
typedef void hs_script(hs_conn *c, unsigned index, void *arg);

/* Start a server whose 101 answer selects `subprotocol` (NULL: none). Fails
 * the test when it cannot listen. */
hs_server *hs_start(const char *subprotocol, hs_script *script, void *arg);
int hs_port(const hs_server *s);
/* Ask the script to stop (every helper then fails), join the thread, free. */
void hs_stop(hs_server *s);
hs_counts hs_get_counts(hs_server *s);
/* Whether hs_stop() (or hs_request_stop()) was called: long scripts poll it. */
bool hs_stopping(const hs_conn *c);
void hs_request_stop(hs_server *s);

/* ---- sending: any bytes, for fuzzing too -------------------------------- */

/* Write all of buf, waiting for the socket in slices. Returns 0, or -1 when
 * the peer went away or the server is stopping. */
int hs_send_raw(hs_conn *c, const void *buf, size_t len);
/* Write a frame header for a payload of `declared` bytes (which need not
 * follow) into out (14 bytes at most); returns its length. Unmasked, as a
 * server sends. */
size_t hs_frame_header(unsigned char *out, bool fin, unsigned opcode, uint64_t declared);
/* One whole frame. */
int hs_send_frame(hs_conn *c, bool fin, unsigned opcode, const void *payload, size_t len);
/* A text frame holding a printf-formatted message. */
int hs_send_textf(hs_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A binary frame holding `json` as one zstd frame (parley.v1.zstd). */
int hs_send_zstd(hs_conn *c, const void *json, size_t len);
/* hello for the subprotocol the server selected, with max_message_bytes. */
int hs_send_hello(hs_conn *c, uint64_t max_message_bytes);

/* ---- receiving -------------------------------------------------------- */

typedef struct hs_frame {
    unsigned opcode;
    bool fin;
    unsigned char *payload; /* unmasked, NUL-terminated; owned by the conn */
    size_t len;
} hs_frame;

/* Read the next frame within timeout_ms (counted in hs_counts). Returns 1 with
 * *f set (valid until the next read), 0 on timeout, -1 when the peer closed
 * the socket or the server is stopping. */
int hs_read_frame(hs_conn *c, int timeout_ms, hs_frame *f);
/* Read until the next data message, answering Pings; a binary message is
 * inflated as zstd. Returns its NUL-terminated JSON (owned by the conn,
 * valid until the next read) or NULL on timeout, close or stop. */
const char *hs_read_message(hs_conn *c, int timeout_ms);
/* Read and answer Pings until the client closes the connection or
 * timeout_ms passed. Returns true when it closed. */
bool hs_wait_closed(hs_conn *c, int timeout_ms);

/* The string value of "field" in a JSON message from the client (its own
 * encoder's layout: no escapes in ids or sessions), or "" when absent. */
void hs_json_str(const char *json, const char *field, char *out, size_t size);
/* The integer value of "field", or -1 when absent. */
long long hs_json_int(const char *json, const char *field);

/*
 * A well-behaved server loop: for every `message` answer ack, the pieces
 * "p0", "p1", ... from its resume_from up to `pieces`, then done; until the
 * client closes or the server stops.
 */
void hs_serve_echo(hs_conn *c, unsigned pieces);

#endif
