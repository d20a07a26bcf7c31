/*
 * The reference server's shared helpers (refserver_common.h).
 */
#include "refserver_common.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *pl_rs_check_alloc(void *p)
{
    if (!p) {
        fputs("parley-refserver: out of memory\n", stderr);
        abort();
    }
    return p;
}

char *pl_rs_strndup(const char *s, size_t n)
{
    char *d = pl_xmalloc(n + 1);

    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

int pl_rs_key_matches(const char *given, const char *key)
{
    size_t i, n = strlen(key);
    unsigned char diff = 0;

    if (!given || strlen(given) != n)
        return 0;
    for (i = 0; i < n; i++)
        diff |= (unsigned char)(given[i] ^ key[i]);
    return diff == 0;
}

void pl_rs_received_init(pl_rs_received_log *log, size_t max)
{
    memset(log, 0, sizeof *log);
    pthread_mutex_init(&log->lock, NULL);
    log->max = max;
}

/* Orders the last messages of the WebSocket and HTTP logs. */
static _Atomic uint64_t arrivals;

void pl_rs_received_add(pl_rs_received_log *log, const char *text, size_t len)
{
    char *last = pl_rs_strndup(text, len);

    pthread_mutex_lock(&log->lock);
    free(log->last);
    log->last = last;
    log->last_len = len;
    log->last_order = atomic_fetch_add(&arrivals, 1) + 1;
    if (log->len < log->max) {
        if (log->len == log->cap) {
            log->cap = log->cap ? log->cap * 2 : 256;
            log->items = pl_xrealloc(log->items, log->cap * sizeof *log->items);
        }
        log->items[log->len++] = pl_rs_strndup(text, len);
    }
    pthread_mutex_unlock(&log->lock);
}

char *pl_rs_received_copy(pl_rs_received_log *log, size_t n)
{
    char *copy = NULL;

    pthread_mutex_lock(&log->lock);
    if (n < log->len)
        copy = strdup(log->items[n]);
    pthread_mutex_unlock(&log->lock);
    return copy;
}

char *pl_rs_received_last(pl_rs_received_log *log, size_t *len,
                          uint64_t *order)
{
    char *copy = NULL;

    pthread_mutex_lock(&log->lock);
    *len = log->last_len;
    *order = log->last_order;
    if (log->last)
        copy = pl_rs_strndup(log->last, log->last_len);
    pthread_mutex_unlock(&log->lock);
    return copy;
}

void pl_rs_received_free(pl_rs_received_log *log)
{
    size_t i;

    for (i = 0; i < log->len; i++)
        free(log->items[i]);
    free(log->items);
    free(log->last);
    pthread_mutex_destroy(&log->lock);
    memset(log, 0, sizeof *log);
}

void pl_rs_put_str(struct json_object *o, const char *k, const char *v)
{
    json_object_object_add(o, k, v ? json_object_new_string(v) : NULL);
}

void pl_rs_put_u64(struct json_object *o, const char *k, uint64_t v)
{
    json_object_object_add(o, k, json_object_new_uint64(v));
}

struct json_object *pl_rs_raw_json(const char *json)
{
    struct json_object *o = json_object_new_object();

    json_object_set_serializer(o, json_object_userdata_to_json_string,
                               pl_rs_strndup(json, strlen(json)),
                               json_object_free_userdata);
    return o;
}
