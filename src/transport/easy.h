/*
 * What every easy handle of the I/O thread shares, WebSocket or HTTP:
 * timeouts, TLS settings, libcurl's trace, and the sentence that explains a
 * failed transfer to the caller.
 */
#ifndef PL_EASY_H
#define PL_EASY_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#include "failure.h"
#include "parley.h"

typedef struct pl_easy_opts {
    long connect_timeout_ms;
    const char *ca_file, *ca_path;   /* NULL: the system's CA bundle */
    const char *pinned_pubkey;       /* "sha256//..." pins, or NULL */
    const char *cert_file, *key_file; /* client certificate (mutual TLS) */
    bool insecure;                   /* no peer or host name verification */
    struct curl_slist *connect_to;   /* "connect.to" entries, or NULL */
    curl_debug_callback trace;       /* NULL: no trace */
    void *trace_data;
} pl_easy_opts;

/* The "connect.to" property (comma-separated entries) as the list that
 * CURLOPT_CONNECT_TO takes; NULL for NULL. Free with curl_slist_free_all. */
struct curl_slist *pl_easy_connect_to(const char *entries);

/* list with `line` appended (copied); out of memory aborts (alloc.h), where
 * curl_slist_append would return NULL and the caller lose the list. */
struct curl_slist *pl_easy_header(struct curl_slist *list, const char *line);

/* Apply the shared options to e. */
void pl_easy_setup(CURL *e, const pl_easy_opts *o, char *errbuf);

/*
 * A sentence for a transfer that failed with rc before any HTTP answer
 * (connect, TLS), naming the URL and keeping libcurl's detail, and the
 * failure it was: PL_FAIL_TLS (another try gets the same certificate) or
 * PL_FAIL_NETWORK, with its parley error.
 */
void pl_easy_explain(CURLcode rc, const char *errbuf, const char *url, char *msg,
                     size_t size, pl_failure *f);

#endif
