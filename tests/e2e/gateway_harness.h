/*
 * What the gateway test drives: the examples/gateway program as a child
 * process, and HTTP requests to it through libcurl. The helpers never call
 * cmocka from other threads: the HTTP helper only records what happened,
 * for the test's main thread to assert.
 */
#ifndef PL_TEST_GATEWAY_HARNESS_H
#define PL_TEST_GATEWAY_HARNESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <curl/curl.h>

/* Every wait in the test gives up after this long: a failure, not a hang. */
#define HARNESS_WAIT_MS 60000

typedef struct gateway_proc {
    pid_t pid;
    int port;
    char stderr_path[64]; /* its stderr, shown when a test fails */
} gateway_proc;

/*
 * Start the gateway ($GATEWAY_BIN, default examples/gateway) with
 * --port 0 --threads 2 --endpoint `endpoint` and the extra arguments given,
 * NULL-terminated, and wait for its "listening on" line. Fails the test if
 * it does not come.
 */
void gateway_start(gateway_proc *g, const char *endpoint, ...);

/* SIGTERM, then wait for the exit; returns the exit status (128 + signal
 * when killed). Fails the test if the gateway does not exit in time. */
int gateway_stop(gateway_proc *g);

/* Kill a gateway that a failed test left running, and remove its stderr
 * file (a teardown). */
void gateway_kill_leftover(void);

/* Signalled by an HTTP call when the first bytes of the body arrive. */
typedef struct first_bytes {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool arrived;
} first_bytes;

void first_bytes_init(first_bytes *f);
void first_bytes_destroy(first_bytes *f);
/* Wait until they arrived; false after HARNESS_WAIT_MS. */
bool first_bytes_wait(first_bytes *f);

typedef struct http_call {
    int port;
    const char *method; /* NULL: POST */
    const char *path;
    const char *body;
    size_t body_len;
    bool chunked_upload; /* send the body chunked, with no Content-Length */
    first_bytes *started; /* may be NULL */
} http_call;

typedef struct http_result {
    CURLcode code;
    long status;
    bool chunked; /* the answer came with Transfer-Encoding: chunked */
    char body[16384];
    size_t body_len;
    bool body_overflow;
} http_result;

/* Make the call (bounded by HARNESS_WAIT_MS) and record the outcome. Safe
 * from any thread, after curl_global_init(). */
void http_do(const http_call *call, http_result *result);

#endif
