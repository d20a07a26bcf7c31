/*
 * Configuration: one table (conf.c) holds every property's name, type, range,
 * default and description; parley_conf_set() parses into the typed fields
 * below, and docs/configuration.md is generated from the same table.
 */
#ifndef PL_CONF_H
#define PL_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dialect.h"
#include "parley.h"
#include "request_options.h"

struct parley_conf {
    char *endpoint;            /* "endpoint"; NULL: from $PARLEY_ENDPOINT */
    char *dialect_name;        /* "dialect": native, anthropic, openai; NULL: by scheme */
    char *system_prompt;       /* "system"; NULL: none */
    char *anthropic_version;   /* "anthropic.version", default "2023-06-01" */
    pl_dialect dialect;        /* resolved from dialect_name, the host, the scheme */
    /* The dialect and why it was chosen, for messages: "anthropic dialect,
     * chosen by the host api.anthropic.com"; set by pl_conf_finalize(). */
    char dialect_shown[160];
    char *api_key_env;         /* "api.key.env", default "PARLEY_API_KEY" */
    char *api_key_file;        /* "api.key.file", default NULL */
    int heartbeat_interval_s;  /* "heartbeat.interval.s", 1..3600, default 30 */
    int workers;               /* "workers", 0..256, 0 = number of CPUs */
    int connections;           /* "connections", 0..1024, 0 = sizing rule */
    double sizing_qps;         /* "sizing.qps", > 0, default 1000 */
    int sizing_response_ms;    /* "sizing.response.ms", 1..600000, default 1000 */
    int sizing_inflight_per_connection; /* "sizing.inflight.per.connection",
                                           1..1000000, default 500 */
    int worker_id;             /* "worker.id", -1..1023; -1 = $PARLEY_WORKER_ID or 0 */
    bool worker_id_defaulted;  /* set by pl_conf_finalize: neither gave one, so 0 */
    char *model;               /* "model"; NULL: the server's default */
    int max_tokens;            /* "max.tokens", 0..1000000, 0 = the dialect's default */
    /* "temperature", "tools"...: the request options' defaults as given
     * (request_options.h parses them when the client is made). */
    char *request_option[PL_RO__COUNT];
    int connect_timeout_ms;    /* "connect.timeout.ms", 1..600000, default 10000 */
    char *connect_to;          /* "connect.to": curl's CONNECT_TO entries, comma-separated */
    int64_t max_message_bytes; /* "max.message.bytes", 1024..(1<<30), default 1 MiB */
    /* Reliability (see docs/reliability.md). */
    int retry_max_attempts;    /* "retry.max.attempts", 1..100, default 3 */
    int retry_backoff_ms;      /* "retry.backoff.ms", 1..600000, default 200 */
    int retry_backoff_max_ms;  /* "retry.backoff.max.ms", 1..3600000, default 8000 */
    int reconnect_backoff_ms;  /* "reconnect.backoff.ms", 1..600000, default 100 */
    int reconnect_backoff_max_ms; /* "reconnect.backoff.max.ms", 1..3600000, default 10000 */
    int request_timeout_ms;    /* "request.timeout.ms", 0..86400000, default 300000 */
    int stall_timeout_ms;      /* "stall.timeout.ms", 0..3600000, default 30000 */
    int stall_ping_timeout_ms; /* "stall.ping.timeout.ms", 1..600000, default 3000 */
    int64_t reply_max_bytes;   /* "reply.max.bytes", 1024..(1<<40), default 16 MiB */
    int session_queue_max;     /* "session.queue.max", 1..1000000, default 1024 */
    int max_inflight_requests; /* "max.inflight.requests", 1..10000000, default 100000 */
    int http_idle_connections; /* "http.idle.connections", 1..1000000, default 1024 */
    int http_max_connections;  /* "http.max.connections", 0..1000000, default 1024 */
    int64_t max_queued_bytes;  /* "max.queued.bytes", 1024..(1<<40), default 256 MiB */
 /* TLS (wss:// and https://); verification is on unless tls_insecure. */
    char *tls_ca_file;         /* "tls.ca.file" */
    char *tls_ca_path;         /* "tls.ca.path" */
    char *tls_pinned_pubkey;   /* "tls.pinned.pubkey" */
    char *tls_cert_file;       /* "tls.cert.file" */
    char *tls_key_file;        /* "tls.key.file" */
    int tls_insecure;          /* "tls.insecure", 0..1, default 0 */
    char *compression;         /* "compression": zstd (default), gzip or none */
    int compression_dict;      /* "compression.dict", 0..1, default 1 */
    int log_level;             /* "log.level", 0..7, default 4; $PARLEY_LOG wins */
    /* The session store (docs/cluster.md). */
    char *session_store;       /* "session.store": "memory" (default) or redis://... */
    char *store_password_env;  /* "session.store.password.env", default PARLEY_STORE_PASSWORD */
    char *store_password_file; /* "session.store.password.file" */
    char *store_key_prefix;    /* "session.store.key.prefix", default "parley:" */
    int store_ttl_s;           /* "session.store.ttl.s", 0..(1<<30), 0 = kept */
    int store_timeout_ms;      /* "session.store.timeout.ms", 1..600000, default 2000 */
    int store_wait_ms;         /* "session.store.wait.ms", 1..86400000, default 30000 */
    int lease_ms;              /* "session.lease.ms", 1000..3600000, default 15000 */
    int lease_wait_ms;         /* "session.lease.wait.ms", 0..86400000, default 0 */
    parley_event_cb *event_cb;
    void *event_opaque;
    parley_log_cb *log_cb;     /* NULL: stderr */
    void *log_opaque;
    int stats_interval_ms;     /* "statistics.interval.ms", 0..86400000, 0 = off */
    parley_stats_cb *stats_cb;
    void *stats_opaque;
};

/*
 * Resolve what comes from the environment and check options against each
 * other, once, when a client is created: fills endpoint from PARLEY_ENDPOINT,
 * the dialect from "dialect", else the vendors' hosts (api.anthropic.com,
 * api.openai.com), else the endpoint's scheme (ws/wss: native, http/https:
 * openai), completes the endpoint's path (dialect_endpoint.h), requires a
 * model of the HTTP dialects off loopback, the key variable's default by
 * dialect (ANTHROPIC_API_KEY, OPENAI_API_KEY, then PARLEY_API_KEY),
 * worker_id from PARLEY_WORKER_ID, and reads the API key (from the variable
 * named by api_key.env or the file api_key.file, which must not be readable
 * by group or others) into a new string *api_key (caller frees).
 * Returns PARLEY_OK, or an error with a sentence in errstr.
 */
parley_err_t pl_conf_finalize(parley_conf_t *conf, char **api_key,
                              char *errstr, size_t errstr_size);

/*
 * The session store's password, for a redis:// session.store: from the
 * file session.store.password.file (mode 0600 or stricter), else the
 * variable session.store.password.env; *password is NULL when neither
 * holds one (no AUTH). Returns PARLEY_OK, or PARLEY_ERR_INVALID_VALUE with
 * a sentence in errstr that never quotes the password.
 */
parley_err_t pl_conf_store_password(const parley_conf_t *conf, char **password,
                                    char *errstr, size_t errstr_size);

/*
 * Parse text as a value of the integer property `name`, by the rules and
 * range of parley_conf_set() (no blanks, no junk): PARLEY_OK, or
 * PARLEY_ERR_INVALID_VALUE with a sentence in errstr. For the session
 * options that mean what a property means.
 */
parley_err_t pl_conf_parse_int_as(const char *name, const char *text, int64_t *out,
                                  char *errstr, size_t errstr_size);

/* The number of connections the client opens (explicit or sizing rule). */
unsigned pl_conf_connections(const parley_conf_t *conf);

#endif
