/*
 * What the reference server's front ends share (refserver.c: the parley.v1
 * WebSocket protocol; refserver_http.c: the vendor HTTP dialects): the
 * out-of-memory policy, the API key check, the log of received messages
 * that tests read back, and the json-c builders. The model they all answer
 * with is echo_model.h; their pacing is timer_queue.h.
 */
#ifndef PL_REFSERVER_COMMON_H
#define PL_REFSERVER_COMMON_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "alloc.h" /* pl_xmalloc, pl_xcalloc, pl_xrealloc: abort when out */

/*
 * The server is a test fixture: running out of memory is not worth
 * recovering from, and aborting keeps every call site simple. Returns p;
 * aborts with a message when p is NULL (also for a library's failed
 * allocation that it reports as NULL or an error).
 */
void *pl_rs_check_alloc(void *p);

/* s[0, n) and a terminator, in new memory. */
char *pl_rs_strndup(const char *s, size_t n);

/* Whether given (NULL: none) is key; constant time in the key's content,
 * so timing does not reveal it. */
int pl_rs_key_matches(const char *given, const char *key);

/* The messages a front end received, in order, at most max of them, and
 * the last one whatever the count; any thread. */
typedef struct pl_rs_received_log {
    pthread_mutex_t lock;
    char **items;
    size_t len, cap, max;
    char *last;
    size_t last_len;
    uint64_t last_order; /* when it arrived, among every log's messages */
} pl_rs_received_log;

void pl_rs_received_init(pl_rs_received_log *log, size_t max);
void pl_rs_received_add(pl_rs_received_log *log, const char *text, size_t len);
/* A malloc'd copy of message n (from 0), or NULL when there is none. */
char *pl_rs_received_copy(pl_rs_received_log *log, size_t n);
void pl_rs_received_free(pl_rs_received_log *log);
/* A malloc'd copy of the last message (*len: its bytes; *order: its place
 * in the arrivals of every log of the process, later is larger), or NULL
 * when none arrived. */
char *pl_rs_received_last(pl_rs_received_log *log, size_t *len,
                          uint64_t *order);

/* A json-c value that prints as the JSON text given (copied), as written:
 * a tool call's input keeps the client's spelling (protocol.md 10.1). */
struct json_object *pl_rs_raw_json(const char *json);

/* o[k] = v; a NULL v is JSON null. */
void pl_rs_put_str(struct json_object *o, const char *k, const char *v);
void pl_rs_put_u64(struct json_object *o, const char *k, uint64_t v);

#endif
