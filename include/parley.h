/*
 * parley: hold many concurrent AI conversations from a multithreaded C or
 * C++ program. Replies stream to a callback; many sessions share a few
 * WebSocket connections driven by one I/O thread.
 *
 * This header is the whole public API. Every function is thread-safe unless
 * its comment says otherwise.
 *
 * Threads and callbacks
 *   - The event callback runs on one of the library's worker threads. Events
 *     of one session arrive in order and never concurrently; events of
 *     different sessions may run at the same time on different workers.
 *   - No library lock is held while a callback runs. A callback may call
 *     parley_send() and parley_session_close(); it must not call
 *     parley_flush() or parley_client_destroy().
 *   - Every request that parley_send() accepted (returned PARLEY_OK) ends with
 *     exactly one terminal event: PARLEY_EVENT_DONE or PARLEY_EVENT_ERROR,
 *     also when the client is destroyed.
 */
#ifndef PARLEY_H
#define PARLEY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && __GNUC__ >= 4
#define PARLEY_EXPORT __attribute__((visibility("default")))
#else
#define PARLEY_EXPORT
#endif

/* Compile-time version: 0xMMmmpp (major, minor, patch). */
#define PARLEY_VERSION 0x000100
#define PARLEY_VERSION_STR "0.1.0"

/* Run-time version of the linked library, in PARLEY_VERSION's layout. */
PARLEY_EXPORT int parley_version(void);
/* Run-time version as a string such as "0.1.0". */
PARLEY_EXPORT const char *parley_version_str(void);

/* Error codes. Returned by functions and carried by error events. The
 * numbers are ABI: a code keeps its number, new codes take the next ones. */
typedef enum parley_err {
    PARLEY_OK = 0,
    /* Caller errors, returned by functions. */
    PARLEY_ERR_INVALID_ARG = 1,      /* a NULL or malformed argument */
    PARLEY_ERR_UNKNOWN_OPTION = 2,   /* parley_conf_set(): no such property */
    PARLEY_ERR_INVALID_VALUE = 3,    /* parley_conf_set(): value out of range */
    PARLEY_ERR_NO_MEMORY = 4,        /* an allocation failed */
    PARLEY_ERR_STATE = 5,            /* not allowed now (see the function) */
    PARLEY_ERR_NO_KEY = 6,           /* no API key in the environment or file */
    PARLEY_ERR_TIMED_OUT = 7,        /* a wait, or a request, ran out of time */
    PARLEY_ERR_TOO_LARGE = 8,        /* a message exceeds max_message_bytes */
    PARLEY_ERR_SHUTDOWN = 9,         /* the client is being destroyed */
    PARLEY_ERR_QUEUE_FULL = 10,      /* a queue limit is reached: try again later */
    /* Request outcomes, carried by PARLEY_EVENT_ERROR. */
    PARLEY_ERR_CONNECT = 11,         /* could not connect to the endpoint */
    PARLEY_ERR_UNAUTHORIZED = 12,    /* the server refused the API key */
    PARLEY_ERR_CONNECTION_LOST = 13, /* the connection broke during the request */
    PARLEY_ERR_PROTOCOL = 14,        /* the server broke the protocol */
    PARLEY_ERR_INVALID_REQUEST = 15, /* server: invalid_request */
    PARLEY_ERR_RATE_LIMITED = 16,    /* server: rate_limited */
    PARLEY_ERR_OVERLOADED = 17,      /* server: overloaded */
    PARLEY_ERR_SERVER_INTERNAL = 18, /* server: internal */
    PARLEY_ERR_RESUME_FAILED = 19,   /* server: resume_failed */
    PARLEY_ERR_SERVER_TOO_LARGE = 20, /* server: too_large (HTTP 413) */
    PARLEY_ERR_FORBIDDEN = 21,       /* HTTP 403: the key may not do this */
    PARLEY_ERR_NOT_FOUND = 22,       /* HTTP 404: no such path or model */
    PARLEY_ERR_TLS = 23,             /* TLS: the certificate or key was refused */
    PARLEY_ERR_REPLY_TOO_LARGE = 24, /* the reply grew past reply.max.bytes */
    PARLEY_ERR_SESSION_OWNED = 25,   /* another live process owns the session */
    PARLEY_ERR_STORE = 26,           /* the session store failed or was out of reach */
    PARLEY_ERR__COUNT                /* number of codes; not an error */
} parley_err_t;

/* A sentence describing err, e.g. "could not connect to the endpoint". */
PARLEY_EXPORT const char *parley_err2str(parley_err_t err);
/* The code's name without prefix, e.g. "CONNECT". */
PARLEY_EXPORT const char *parley_err2name(parley_err_t err);

typedef struct parley_conf parley_conf_t;
typedef struct parley_client parley_client_t;
typedef struct parley_session parley_session_t;
typedef struct parley_event parley_event_t;
typedef struct parley_turn parley_turn_t;

typedef enum parley_event_type {
    PARLEY_EVENT_TEXT = 1,     /* one streamed piece of a reply's text */
    PARLEY_EVENT_DONE = 2,     /* the reply is complete (terminal) */
    PARLEY_EVENT_ERROR = 3,    /* the request failed (terminal) */
    PARLEY_EVENT_THINKING = 4, /* one streamed piece of the model's thinking */
    PARLEY_EVENT_TOOL_USE = 5  /* the model calls a tool (the whole call) */
} parley_event_type_t;

/*
 * The event callback. `ev` and every string it exposes are valid only until
 * the callback returns. `opaque` is the pointer given to
 * parley_conf_set_event_cb().
 */
typedef void parley_event_cb(parley_client_t *client, const parley_event_t *ev,
                             void *opaque);

/* Log levels, as syslog's. */
typedef enum parley_log_level {
    PARLEY_LOG_ERROR = 3,
    PARLEY_LOG_WARNING = 4,
    PARLEY_LOG_NOTICE = 5,
    PARLEY_LOG_INFO = 6,
    PARLEY_LOG_DEBUG = 7 /* includes libcurl's trace of the handshake */
} parley_log_level_t;

/*
 * The log callback. Runs on any library thread (the I/O thread, a worker, or
 * the thread in parley_client_new/destroy), never under a library lock; it
 * must not block for long, nor call back into the client. `message` holds no
 * secret: the API key and Authorization headers are redacted, the endpoint
 * shows no user name, password or query. Nor does it hold a control
 * character: a server's CR, LF or ESC arrive escaped (\r, \n, \x1b), so
 * one message is one line. At most 1,023 bytes.
 */
typedef void parley_log_cb(const parley_client_t *client, int level,
                           const char *facility, const char *message,
                           void *opaque);

/*
 * The statistics callback: every `statistics.interval.ms` it receives one
 * JSON document (`json`, NUL-terminated, `json_len` bytes without the NUL)
 * describing the client: counters, latency histograms, connections, queue
 * depths (docs/statistics.md). It runs on a worker thread, never two at once,
 * never under a library lock; `json` is valid only until it returns.
 * `opaque` is the pointer given to parley_conf_set_stats_cb().
 */
typedef void parley_stats_cb(parley_client_t *client, const char *json,
                             size_t json_len, void *opaque);

/* ---- Configuration ---------------------------------------------------- */

/*
 * A new configuration holding every property's default. Properties are
 * listed, with type, range and default, in docs/configuration.md and by
 * parley_conf_dump().
 */
PARLEY_EXPORT parley_conf_t *parley_conf_new(void);
/* A deep copy of conf (strings, callbacks and their opaques); NULL when out
 * of memory. */
PARLEY_EXPORT parley_conf_t *parley_conf_dup(const parley_conf_t *conf);
/* Free a configuration that no client owns (NULL is allowed). */
PARLEY_EXPORT void parley_conf_destroy(parley_conf_t *conf);

/*
 * Set property `name` to `value` (its text form). On failure returns
 * PARLEY_ERR_UNKNOWN_OPTION or PARLEY_ERR_INVALID_VALUE and writes a sentence
 * saying what was wrong into errstr (may be NULL).
 */
PARLEY_EXPORT parley_err_t parley_conf_set(parley_conf_t *conf,
                                           const char *name, const char *value,
                                           char *errstr, size_t errstr_size);

/*
 * Copy property `name`'s current text form into dest. On entry *dest_size is
 * the size of dest; on return it is the size needed (including the NUL).
 * dest may be NULL to ask for the size.
 */
PARLEY_EXPORT parley_err_t parley_conf_get(const parley_conf_t *conf,
                                           const char *name, char *dest,
                                           size_t *dest_size);

/* The callback that receives every event of every session. Required. */
PARLEY_EXPORT void parley_conf_set_event_cb(parley_conf_t *conf,
                                            parley_event_cb *cb, void *opaque);

/*
 * Receive the statistics JSON every `statistics.interval.ms` (a property,
 * default 0: off; both must be set for documents to flow).
 */
PARLEY_EXPORT void parley_conf_set_stats_cb(parley_conf_t *conf,
                                            parley_stats_cb *cb, void *opaque);

/*
 * Where log lines go (default: stderr, as "parley LEVEL FACILITY: message").
 * Which lines: the `log.level` property, overridden by the environment
 * variable PARLEY_LOG (error, warning, notice, info, debug, or 0-7).
 */
PARLEY_EXPORT void parley_conf_set_log_cb(parley_conf_t *conf,
                                          parley_log_cb *cb, void *opaque);

/*
 * Write a table of every property (name, type, range, default, description)
 * as Markdown into buf. Returns the length the table needs, like snprintf.
 */
PARLEY_EXPORT size_t parley_conf_dump(char *buf, size_t size);

/*
 * The sizing rule: connections = ceil(qps x mean_response_s / in-flight
 * requests per connection), at least 1. The `connections` property defaults
 * to this rule applied to the sizing.* properties.
 */
PARLEY_EXPORT unsigned parley_connections_for(double qps,
                                              double mean_response_s,
                                              unsigned inflight_per_connection);

/* ---- Client ----------------------------------------------------------- */

/*
 * Create a client from conf. On success the client owns conf (do not use or
 * destroy it afterwards); on failure returns NULL, conf stays the caller's and
 * errstr says why (no endpoint, no API key, an inconsistent setting). The API
 * key is read here from the environment variable named by `api.key.env`
 * (default PARLEY_API_KEY) or the file named by `api.key.file` (a regular
 * file, mode 0600 or stricter: anything else is refused at once). A key
 * holding a control character is refused: it is sent as a header.
 */
PARLEY_EXPORT parley_client_t *parley_client_new(parley_conf_t *conf,
                                                 char *errstr,
                                                 size_t errstr_size);

/*
 * Start the background threads (the workers and the I/O thread) and the
 * connections. Sending before parley_start() is allowed: requests wait.
 * Returns PARLEY_ERR_STATE when already started.
 */
PARLEY_EXPORT parley_err_t parley_start(parley_client_t *client);

/*
 * Wait until every accepted request has had its terminal event delivered, or
 * timeout_ms passed (negative: no limit). Returns PARLEY_OK or
 * PARLEY_ERR_TIMED_OUT; PARLEY_ERR_STATE when called from a callback.
 */
PARLEY_EXPORT parley_err_t parley_flush(parley_client_t *client,
                                        int timeout_ms);

/*
 * Stop the client: sends stop being accepted, every unfinished request ends
 * with a PARLEY_ERR_SHUTDOWN error event, the threads stop, and every session
 * handle still open is freed. No callback runs after it returns. Must not be
 * called from a callback (it then does nothing but log).
 */
PARLEY_EXPORT void parley_client_destroy(parley_client_t *client);

/* ---- Sessions --------------------------------------------------------- */

/*
 * Open a conversation. `session_id` is 1-128 bytes of [A-Za-z0-9._:-], or
 * NULL for a generated one. The session owns its history: each turn sent
 * carries the turns before it. Returns NULL with errstr on a bad id.
 */
PARLEY_EXPORT parley_session_t *parley_session_open(parley_client_t *client,
                                                    const char *session_id,
                                                    char *errstr,
                                                    size_t errstr_size);

/*
 * With a session store (the session.store property, docs/cluster.md), a
 * session opens at once and then takes its lease and loads its history from
 * the store; turns sent meanwhile wait. This waits up to timeout_ms
 * (negative: no limit) for that to end: PARLEY_OK (the history is loaded;
 * always so without a store), PARLEY_ERR_SESSION_OWNED (another live
 * process holds the lease past session.lease.wait.ms), PARLEY_ERR_STORE
 * (the store could not be reached in time), PARLEY_ERR_TIMED_OUT, or
 * PARLEY_ERR_STATE from a callback of another session (it would wait for a
 * worker). On a failure every turn of the session ends with that error.
 * When the former owner died with a turn in flight, that turn is sent again
 * under its request id, which *recovered_request_id (may be NULL) receives
 * (0: none); its events come to the event callback with a NULL opaque.
 */
PARLEY_EXPORT parley_err_t parley_session_ready(parley_session_t *session, int timeout_ms,
                                                uint64_t *recovered_request_id);

/*
 * Set a per-session option, for the turns sent after this call. The request
 * options are the properties of the same names (docs/configuration.md,
 * docs/conversations.md), whose values are the client's defaults: "model",
 * "system", "max.tokens", "temperature", "top.p", "top.k",
 * "stop.sequences" (a JSON array of strings), "metadata" (a JSON object),
 * "tools" (a JSON array of {"name","description","input_schema"}),
 * "tool.choice" (auto, any, none, or a JSON object), "thinking.budget"
 * (tokens; 0: off), "prompt.caching" (true/false), "extra.body" (a JSON
 * object whose members are added to every request body) and
 * "extra.headers" (a JSON object of header names and values, HTTP
 * dialects); and two of the session alone: "history.max.turns" and
 * "history.max.bytes" (0: no limit), which drop the oldest whole turns
 * before a turn is sent. An empty value returns to the client's setting.
 * Names take the properties' spellings ("max_tokens", "top-p"). Returns
 * PARLEY_ERR_UNKNOWN_OPTION or PARLEY_ERR_INVALID_VALUE with errstr (bad
 * JSON, a value out of range, a field the dialect lacks), or
 * PARLEY_ERR_STATE once the session is closed.
 */
PARLEY_EXPORT parley_err_t parley_session_set(parley_session_t *session,
                                              const char *name, const char *value,
                                              char *errstr, size_t errstr_size);

/* The session's id, valid until the session ends: after
 * parley_session_close() and its last turn's event, NULL (inside its own
 * events, parley_event_session_id() is always valid). */
PARLEY_EXPORT const char *parley_session_id(const parley_session_t *session);

/*
 * Send the next user turn. Returns at once (never waits on the network) and
 * stores the request id in *request_id (may be NULL). A session runs one turn
 * at a time: a turn sent while another is in flight waits for it, so turns
 * reach the server in the order they were sent. Errors: PARLEY_ERR_INVALID_ARG
 * (NULL or invalid UTF-8 content), PARLEY_ERR_TOO_LARGE, PARLEY_ERR_SHUTDOWN,
 * PARLEY_ERR_STATE (session closed). Only a PARLEY_OK send gets events.
 */
PARLEY_EXPORT parley_err_t parley_send(parley_session_t *session,
                                       const char *content,
                                       uint64_t *request_id);

/*
 * Like parley_send(), but when a queue limit (session.queue.max,
 * max.inflight.requests, max.queued.bytes) is reached it waits up to
 * timeout_ms (negative: no limit) for room instead of failing with
 * PARLEY_ERR_QUEUE_FULL; PARLEY_ERR_TIMED_OUT when none came. From a
 * callback it does not wait (it would wait for itself).
 */
PARLEY_EXPORT parley_err_t parley_send_wait(parley_session_t *session,
                                            const char *content,
                                            uint64_t *request_id,
                                            int timeout_ms);

/* ---- Turns made of blocks --------------------------------------------- */

/*
 * A user turn of several content blocks (docs/conversations.md): text,
 * images and tool results, in order. Build it, send it with
 * parley_send_turn() (which copies it: the turn may be sent again or
 * destroyed at once), then destroy it. Not thread-safe: one thread builds
 * a turn. Each add returns PARLEY_ERR_INVALID_ARG for a NULL or empty
 * argument, invalid UTF-8, or an image type the vendors refuse; the turn is
 * then unchanged.
 */
PARLEY_EXPORT parley_turn_t *parley_turn_new(void);
PARLEY_EXPORT void parley_turn_destroy(parley_turn_t *turn);
/* A text block (non-empty UTF-8). */
PARLEY_EXPORT parley_err_t parley_turn_add_text(parley_turn_t *turn,
                                                const char *text);
/* An image from its bytes; media_type is image/png, image/jpeg, image/gif
 * or image/webp. The bytes are copied (sent base64-encoded). */
PARLEY_EXPORT parley_err_t parley_turn_add_image(parley_turn_t *turn,
                                                 const char *media_type,
                                                 const void *data, size_t len);
/* An image the server fetches from an http(s) URL. */
PARLEY_EXPORT parley_err_t parley_turn_add_image_url(parley_turn_t *turn,
                                                     const char *url);
/* The result of the tool call tool_use_id (from a PARLEY_EVENT_TOOL_USE);
 * content is its text (may be empty); is_error non-zero when the tool
 * failed. The results answering a reply's calls must come first in the
 * turn after it, one for each call (the vendors refuse it otherwise). */
PARLEY_EXPORT parley_err_t parley_turn_add_tool_result(parley_turn_t *turn,
                                                       const char *tool_use_id,
                                                       const char *content,
                                                       int is_error);
/* Blocks given as JSON in the shape of protocol.md 9.1 (one block object
 * or an array of them; text, image and tool_result blocks), checked as the
 * adds above check them: PARLEY_ERR_INVALID_ARG with errstr otherwise. */
PARLEY_EXPORT parley_err_t parley_turn_add_json(parley_turn_t *turn,
                                                const char *json,
                                                char *errstr,
                                                size_t errstr_size);

/*
 * Send a turn: as parley_send_wait(), for a turn of blocks (an empty turn
 * is PARLEY_ERR_INVALID_ARG), with `opaque`, a pointer of yours that every
 * event of this request gives back (parley_event_opaque()). timeout_ms 0
 * does not wait for room (as parley_send()).
 */
PARLEY_EXPORT parley_err_t parley_send_turn(parley_session_t *session,
                                            const parley_turn_t *turn,
                                            void *opaque,
                                            uint64_t *request_id,
                                            int timeout_ms);

/* parley_send_wait() with a per-request opaque pointer. */
PARLEY_EXPORT parley_err_t parley_send_opaque(parley_session_t *session,
                                              const char *content,
                                              void *opaque,
                                              uint64_t *request_id,
                                              int timeout_ms);

/* ---- History ----------------------------------------------------------- */

/*
 * The session's history as JSON: an array of {"role","content"} messages in
 * the Anthropic Messages shape (content a string or an array of blocks,
 * thinking with its signature and tool calls included), the turns that
 * completed before the call. Waits up to timeout_ms (negative: no limit)
 * for the session to answer; from a callback of this same session it
 * answers at once, from another session's callback it returns
 * PARLEY_ERR_STATE (it would wait for a worker). On PARLEY_OK *json is a
 * NUL-terminated string to release with parley_free(), *len (may be NULL)
 * its length.
 */
PARLEY_EXPORT parley_err_t parley_session_export(parley_session_t *session,
                                                 char **json, size_t *len,
                                                 int timeout_ms);

/*
 * Open a session (as parley_session_open()) whose history is `json`, as
 * parley_session_export() writes it: restore a conversation, seed one, or
 * move it between clients or machines. The history must alternate user and
 * assistant messages from a user one, end with an assistant one, and be a
 * conversation the vendors accept (docs/conversations.md); otherwise NULL
 * with errstr saying what and where.
 */
PARLEY_EXPORT parley_session_t *parley_session_open_with_history(
    parley_client_t *client, const char *session_id, const char *json,
    size_t json_len, char *errstr, size_t errstr_size);

/* Release memory the library handed over (parley_session_export()). */
PARLEY_EXPORT void parley_free(void *p);

/*
 * Cancel request_id of this session. A turn still waiting ends at once; the
 * turn in flight is cancelled at the server. Either way its terminal event is
 * DONE with stop reason "cancelled" (the reply so far as content), unless it
 * ended otherwise first. An unknown or finished id is ignored. Returns at once:
 * PARLEY_OK, or PARLEY_ERR_STATE when the session is closed and every turn
 * of it has ended.
 */
PARLEY_EXPORT parley_err_t parley_cancel(parley_session_t *session,
                                         uint64_t request_id);

/*
 * Close the session: later sends fail, turns already accepted still complete
 * with their events, then the session ends and its memory is freed. The
 * handle stays safe to pass, whatever thread uses it and when, also after
 * parley_client_destroy(): parley_send(), parley_send_wait() and
 * parley_session_set() return PARLEY_ERR_STATE; parley_cancel() still
 * cancels the turns not yet ended, then returns PARLEY_ERR_STATE; closing
 * again does nothing; parley_session_id() answers until the session ends,
 * then returns NULL. A send that raced the close either got in (PARLEY_OK:
 * it completes with its events) or was refused. A handle is not a pointer
 * (it names a slot and a generation), so a closed session costs nothing
 * once it has ended, and a stale handle never names a later session.
 */
PARLEY_EXPORT void parley_session_close(parley_session_t *session);

/* ---- Events (valid only inside the callback) --------------------------- */

PARLEY_EXPORT parley_event_type_t parley_event_type(const parley_event_t *ev);
/* The session the event belongs to, and its id. */
PARLEY_EXPORT parley_session_t *parley_event_session(const parley_event_t *ev);
PARLEY_EXPORT const char *parley_event_session_id(const parley_event_t *ev);
/* The request id that parley_send() returned. */
PARLEY_EXPORT uint64_t parley_event_request_id(const parley_event_t *ev);
/*
 * TEXT, THINKING: the piece (UTF-8, NUL-terminated); TOOL_USE: the call's
 * input (a JSON object); ERROR: a message saying what went wrong, safe to
 * print (no API key, no endpoint password, control characters escaped as
 * in log messages; docs/errors.md); DONE: the whole reply's text (its text
 * blocks, joined). *len (may be NULL) receives the length.
 */
PARLEY_EXPORT const char *parley_event_content(const parley_event_t *ev,
                                               size_t *len);
/* TEXT, THINKING, TOOL_USE: the piece's index in the reply, from 0 (one
 * count for all three). */
PARLEY_EXPORT uint32_t parley_event_seq(const parley_event_t *ev);
/* DONE: why the reply ended: "end_turn", "max_tokens", "stop_sequence",
 * "tool_use" (answer the calls with a turn of tool results), "refusal",
 * "pause_turn", "content_filter" or "cancelled"; NULL for other types. */
PARLEY_EXPORT const char *parley_event_stop_reason(const parley_event_t *ev);
/* DONE: token usage reported by the server (0 when absent). */
PARLEY_EXPORT void parley_event_usage(const parley_event_t *ev,
                                      uint64_t *input_tokens,
                                      uint64_t *output_tokens);
/* ERROR: the error code; PARLEY_OK for other types. */
PARLEY_EXPORT parley_err_t parley_event_error(const parley_event_t *ev);
/* The opaque pointer given to parley_send_turn() or parley_send_opaque()
 * for this request; NULL otherwise. */
PARLEY_EXPORT void *parley_event_opaque(const parley_event_t *ev);
/* TEXT, THINKING, TOOL_USE: the index of the reply's content block the
 * piece belongs to, from 0 (a reply may think, then write, then call). */
PARLEY_EXPORT uint32_t parley_event_block(const parley_event_t *ev);
/* THINKING: the thinking block's signature, on its last piece (whose
 * content may be empty); NULL otherwise. The history keeps it: the vendors
 * need it on the next turn. */
PARLEY_EXPORT const char *parley_event_signature(const parley_event_t *ev);
/* TOOL_USE: the call's id (answer it with parley_turn_add_tool_result())
 * and the tool's name; the input is the content, a JSON object as the
 * server sent it (checked to be one). NULL for other types. */
PARLEY_EXPORT const char *parley_event_tool_id(const parley_event_t *ev);
PARLEY_EXPORT const char *parley_event_tool_name(const parley_event_t *ev);
/* DONE with stop reason "stop_sequence": the sequence that matched, when
 * the server said (OpenAI does not); NULL otherwise. */
PARLEY_EXPORT const char *parley_event_stop_sequence(const parley_event_t *ev);
/* DONE: prompt-cache usage (Anthropic: tokens written to and read from the
 * cache; OpenAI: cached prompt tokens as read); 0 when absent. */
PARLEY_EXPORT void parley_event_cache_usage(const parley_event_t *ev,
                                            uint64_t *creation_tokens,
                                            uint64_t *read_tokens);
/* DONE: the vendor's message id and the vendor's request id (the
 * request-id or x-request-id header, for their support); NULL when the
 * server gave none. An ERROR's message names the request id instead
 * ("(request-id ...)"). */
PARLEY_EXPORT const char *parley_event_message_id(const parley_event_t *ev);
PARLEY_EXPORT const char *parley_event_vendor_request_id(const parley_event_t *ev);

/* ---- User actors ------------------------------------------------------ */

/*
 * The actor runtime that runs sessions, for your own shared state, without
 * any client or network. An actor is a state plus a lock-free mailbox; a
 * system's worker threads run actors by handing each message to its
 * handler. The guarantees are the sessions':
 *   - A handler runs for one message at a time per actor, never on two
 *     workers at once, so the state needs no lock.
 *   - Messages sent by one thread are handled in the order it sent them.
 *   - Every message a send accepted (PARLEY_OK) is handled exactly once,
 *     also when the actor is stopped or the system destroyed; a refused
 *     message stays the caller's.
 *   - No library lock is held while a handler or state_free runs.
 *
 * Handles are reference-counted so that a send racing a stop is safe: a
 * thread may use a handle while it holds a reference (from
 * parley_actor_spawn() or parley_actor_ref()), and a handler may use the
 * `actor` it was given until it returns.
 */
typedef struct parley_actor_system parley_actor_system_t;
typedef struct parley_actor parley_actor_t;

/*
 * Handles one message: `state` is the pointer given to parley_actor_spawn(),
 * `msg` the pointer given to parley_actor_send() (ownership passes to the
 * handler). Runs on a worker thread, or on the thread destroying the system.
 * It may call parley_actor_send(), parley_actor_spawn(), parley_actor_stop(),
 * parley_actor_ref() and parley_actor_unref(), but not
 * parley_actor_system_destroy().
 */
typedef void parley_actor_handler(parley_actor_t *actor, void *state,
                                  void *msg);

/*
 * A system of `workers` threads (0: one per CPU), started. Returns NULL with
 * a sentence in errstr (may be NULL) when memory or threads ran out.
 */
PARLEY_EXPORT parley_actor_system_t *parley_actor_system_new(
    unsigned workers, char *errstr, size_t errstr_size);

/*
 * Destroy the system: sends from then on are refused (PARLEY_ERR_SHUTDOWN),
 * every message already sent is handled, the workers stop, then state_free
 * runs for every actor not yet stopped and every handle is freed, whatever
 * its references. Handlers and state_free may run on the calling thread. No
 * handler runs after it returns. Must not be called from a handler (it then
 * does nothing but log) nor while other threads still use the system.
 */
PARLEY_EXPORT void parley_actor_system_destroy(parley_actor_system_t *sys);

/*
 * A new actor owning `state`, run by `handler`. state_free (may be NULL) is
 * called once with state after the last message, when the actor stops.
 * Returns a handle holding one reference, or NULL (NULL sys or handler, out
 * of memory, system being destroyed).
 */
PARLEY_EXPORT parley_actor_t *parley_actor_spawn(
    parley_actor_system_t *sys, parley_actor_handler *handler, void *state,
    void (*state_free)(void *state));

/*
 * Queue msg (any pointer, NULL included) for the actor's handler. Any thread,
 * a handler included; lock-free apart from allocating a small envelope;
 * never waits for the handler. Errors: PARLEY_ERR_INVALID_ARG (NULL actor),
 * PARLEY_ERR_STATE (the actor was stopped), PARLEY_ERR_SHUTDOWN (the system
 * is being destroyed), PARLEY_ERR_NO_MEMORY. On error msg stays the caller's.
 */
PARLEY_EXPORT parley_err_t parley_actor_send(parley_actor_t *actor,
                                             void *msg);

/*
 * Stop the actor: later sends fail with PARLEY_ERR_STATE, messages already
 * accepted are still handled, then state_free runs on a worker. Returns at
 * once; PARLEY_ERR_STATE when already stopped. The handle stays valid: the
 * references still decide when it is freed.
 */
PARLEY_EXPORT parley_err_t parley_actor_stop(parley_actor_t *actor);

/*
 * Take one more reference to the handle (e.g. for another thread) and return
 * it. The caller must hold a reference already, or be the actor's handler.
 */
PARLEY_EXPORT parley_actor_t *parley_actor_ref(parley_actor_t *actor);

/*
 * Drop a reference. Dropping the last one stops the actor if it is still
 * running (as parley_actor_stop()); the handle is freed once the actor has
 * stopped and no reference is left. The caller must not use it afterwards.
 */
PARLEY_EXPORT void parley_actor_unref(parley_actor_t *actor);

/* ---- Statistics ------------------------------------------------------- */

/* Its layout is ABI: counters are only ever added at the end. */
typedef struct parley_stats {
    uint64_t requests_sent;      /* accepted by parley_send() */
    uint64_t requests_done;      /* ended with DONE */
    uint64_t requests_failed;    /* ended with ERROR */
    uint64_t frames_sent;        /* WebSocket data frames sent */
    uint64_t frames_received;    /* WebSocket data frames received */
    uint64_t bytes_sent;         /* payload bytes sent */
    uint64_t bytes_received;     /* payload bytes received */
    uint64_t connections_opened; /* connections that completed the handshake */
    uint64_t errors;             /* protocol or connection errors seen */
    uint64_t unknown_messages;   /* server messages of unknown type, ignored */
    uint64_t retries;            /* requests sent again after a failure */
    uint64_t resumes;            /* of which resumed after delivered pieces */
    uint64_t stalls;             /* requests the stall watchdog caught */
    uint64_t reconnects;         /* connections opened after a failure */
    uint64_t queue_full;         /* sends refused by a queue limit */
    uint64_t insecure_connections; /* made with tls.insecure: unverified */
    uint64_t bytes_compression_saved; /* bytes zstd saved on what was sent */
    uint64_t bytes_decompressed;   /* bytes received compressed, once inflated */
} parley_stats_t;

/*
 * A snapshot of the client's counters: fills the first min(size,
 * sizeof(parley_stats_t) of the library) bytes of *stats, zeroes the rest of
 * size, and returns how many bytes it filled (0 when client or stats is
 * NULL). Pass sizeof(*stats): the struct only grows at its end, so a program
 * and a library built against different versions of this header agree on
 * every counter both know, and new ones read as 0.
 */
PARLEY_EXPORT size_t parley_stats_read(parley_client_t *client,
                                       parley_stats_t *stats, size_t size);

/* parley_stats_read() with this header's size of the struct. */
static inline void parley_stats_get(parley_client_t *client,
                                    parley_stats_t *stats)
{
    parley_stats_read(client, stats, sizeof(*stats));
}

#ifdef __cplusplus
}
#endif
#endif /* PARLEY_H */
