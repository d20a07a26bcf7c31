/*
 * Configuration. One table, pl_props[], holds every property's name, type,
 * range, default and description; parley_conf_new(), parley_conf_set(),
 * parley_conf_get(), parley_conf_dup() and parley_conf_dump() all read it, so
 * a property is added in one place and the generated docs cannot drift.
 */
#include "conf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dialect_endpoint.h"
#include "option_name.h"
#include "safe_text.h"
#include "utf8.h"

typedef enum pl_prop_type {
    PL_PROP_STRING, /* char *, NULL when unset */
    PL_PROP_INT,    /* int; the table's range must fit in an int */
    PL_PROP_DOUBLE, /* double */
    PL_PROP_INT64   /* int64_t */
} pl_prop_type;

typedef struct pl_prop {
    const char *name;
    pl_prop_type type;
    size_t offset; /* of the field in struct parley_conf */
    /* Integers: the inclusive range. Doubles: any finite value above min. */
    int64_t min, max;
    const char *def;  /* the default as text, as given to parley_conf_set() */
    const char *desc; /* one line for the docs; no '|' (a Markdown cell) */
    /* Strings only: why a value is unacceptable, or NULL when it is fine. */
    const char *(*check)(const char *value);
} pl_prop;

static const char *endpoint_problem(const char *url);
static const char *dialect_problem(const char *name);
static const char *compression_problem(const char *name);
static const char *header_value_problem(const char *value);
static const char *utf8_problem(const char *value);
static const char *connect_to_problem(const char *value);
static const char *store_problem(const char *value);

/* One check per request option: the table's checks take the value alone. */
#define PL_RO_CHECK(fn, opt) \
    static const char *fn(const char *value) { return pl_request_option_problem(opt, value); }
PL_RO_CHECK(temperature_problem, PL_RO_TEMPERATURE)
PL_RO_CHECK(top_p_problem, PL_RO_TOP_P)
PL_RO_CHECK(top_k_problem, PL_RO_TOP_K)
PL_RO_CHECK(stop_sequences_problem, PL_RO_STOP_SEQUENCES)
PL_RO_CHECK(metadata_problem, PL_RO_METADATA)
PL_RO_CHECK(tools_problem, PL_RO_TOOLS)
PL_RO_CHECK(tool_choice_problem, PL_RO_TOOL_CHOICE)
PL_RO_CHECK(thinking_budget_problem, PL_RO_THINKING_BUDGET)
PL_RO_CHECK(prompt_caching_problem, PL_RO_PROMPT_CACHING)
PL_RO_CHECK(extra_body_problem, PL_RO_EXTRA_BODY)
PL_RO_CHECK(extra_headers_problem, PL_RO_EXTRA_HEADERS)

#define PL_OFF(field) offsetof(struct parley_conf, field)

static const pl_prop pl_props[] = {
    {"endpoint", PL_PROP_STRING, PL_OFF(endpoint), 0, 0, NULL,
     "Server URL: ws:// or wss:// (native), http:// or https:// (anthropic, "
     "openai). No path: the dialect's is added (/v1/stream, /v1/messages, "
     "/v1/chat/completions); a path ending in /v1 (the vendors' SDK base "
     "URL) gets the rest of the API path; unset: $PARLEY_ENDPOINT",
     endpoint_problem},
    {"dialect", PL_PROP_STRING, PL_OFF(dialect_name), 0, 0, NULL,
     "API behind the endpoint: native (parley.v1 over ws/wss), anthropic or "
     "openai (over http/https); unset: anthropic for api.anthropic.com, "
     "openai for api.openai.com, else native for ws/wss and openai for "
     "http/https",
     dialect_problem},
    {"api.key.env", PL_PROP_STRING, PL_OFF(api_key_env), 0, 0,
     "PARLEY_API_KEY",
     "Environment variable that holds the API key; left at its default, "
     "the anthropic and openai dialects first try ANTHROPIC_API_KEY or "
     "OPENAI_API_KEY",
     NULL},
    {"api.key.file", PL_PROP_STRING, PL_OFF(api_key_file), 0, 0, NULL,
     "File that holds the API key instead (a regular file, mode 0600 or "
     "stricter; one trailing newline is ignored)",
     NULL},
    {"heartbeat.interval.s", PL_PROP_INT, PL_OFF(heartbeat_interval_s), 1,
     3600, "30",
     "Seconds between pings on each connection; the server's hello may ask "
     "for less",
     NULL},
    {"workers", PL_PROP_INT, PL_OFF(workers), 0, 256, "0",
     "Worker threads that run callbacks; 0: one per CPU", NULL},
    {"connections", PL_PROP_INT, PL_OFF(connections), 0, 1024, "0",
     "WebSocket connections to open; 0: the sizing rule over the sizing.* "
     "properties",
     NULL},
    {"sizing.qps", PL_PROP_DOUBLE, PL_OFF(sizing_qps), 0, 0, "1000",
     "Sizing rule: expected requests per second", NULL},
    {"sizing.response.ms", PL_PROP_INT, PL_OFF(sizing_response_ms), 1,
     600000, "1000", "Sizing rule: expected mean response time in ms", NULL},
    {"sizing.inflight.per.connection", PL_PROP_INT,
     PL_OFF(sizing_inflight_per_connection), 1, 1000000, "500",
     "Sizing rule: requests one connection carries at once", NULL},
    {"worker.id", PL_PROP_INT, PL_OFF(worker_id), -1, 1023, "-1",
     "Worker id in request ids, unique per client of a server; -1: "
     "$PARLEY_WORKER_ID or 0",
     NULL},
    {"system", PL_PROP_STRING, PL_OFF(system_prompt), 0, 0, NULL,
     "System prompt sent with every turn (native: to servers with the blocks "
     "extension only); sessions may set their own; UTF-8",
     utf8_problem},
    {"anthropic.version", PL_PROP_STRING, PL_OFF(anthropic_version), 0, 0,
     "2023-06-01",
     "The anthropic-version header of the anthropic dialect; no control "
     "characters",
     header_value_problem},
    {"model", PL_PROP_STRING, PL_OFF(model), 0, 0, NULL,
     "Model to ask for (sessions may set their own); UTF-8. Unset: native "
     "sends none (the server's default); anthropic and openai send "
     "parley-echo-1 (the reference server's) to a loopback host and refuse "
     "to start for any other host",
     utf8_problem},
    {"max.tokens", PL_PROP_INT, PL_OFF(max_tokens), 0, 1000000, "0",
     "Most tokens per reply; 0: anthropic sends 1024 (its API requires a "
     "value), native and openai send none (the server decides)",
     NULL},
    {"temperature", PL_PROP_STRING, PL_OFF(request_option[PL_RO_TEMPERATURE]), 0, 0, NULL,
     "Sampling temperature, 0-1 (anthropic) or 0-2 (openai); unset: the server's",
     temperature_problem},
    {"top.p", PL_PROP_STRING, PL_OFF(request_option[PL_RO_TOP_P]), 0, 0, NULL,
     "Nucleus sampling, 0-1; unset: the server's", top_p_problem},
    {"top.k", PL_PROP_STRING, PL_OFF(request_option[PL_RO_TOP_K]), 0, 0, NULL,
     "Sample from the k likeliest tokens (not openai); unset or 0: the server's",
     top_k_problem},
    {"stop.sequences", PL_PROP_STRING, PL_OFF(request_option[PL_RO_STOP_SEQUENCES]), 0, 0,
     NULL, "JSON array of strings that end the reply where they appear (openai: at most 4)",
     stop_sequences_problem},
    {"metadata", PL_PROP_STRING, PL_OFF(request_option[PL_RO_METADATA]), 0, 0, NULL,
     "JSON object sent as the request's metadata", metadata_problem},
    {"tools", PL_PROP_STRING, PL_OFF(request_option[PL_RO_TOOLS]), 0, 0, NULL,
     "JSON array of tools the model may call, each {name, description, input_schema} "
     "(the anthropic shape; openai gets them as functions)",
     tools_problem},
    {"tool.choice", PL_PROP_STRING, PL_OFF(request_option[PL_RO_TOOL_CHOICE]), 0, 0, NULL,
     "auto, any, none, or a JSON object such as {\"type\":\"tool\",\"name\":\"x\"}",
     tool_choice_problem},
    {"thinking.budget", PL_PROP_STRING, PL_OFF(request_option[PL_RO_THINKING_BUDGET]), 0, 0,
     NULL, "Tokens the model may think before answering (anthropic: at least 1024; not "
     "openai); unset or 0: no thinking",
     thinking_budget_problem},
    {"prompt.caching", PL_PROP_STRING, PL_OFF(request_option[PL_RO_PROMPT_CACHING]), 0, 0,
     NULL, "true: anthropic caches the system prompt, the tools and the history (cache_control)",
     prompt_caching_problem},
    {"extra.body", PL_PROP_STRING, PL_OFF(request_option[PL_RO_EXTRA_BODY]), 0, 0, NULL,
     "JSON object whose members are added to every request body, replacing the library's "
     "of the same name",
     extra_body_problem},
    {"extra.headers", PL_PROP_STRING, PL_OFF(request_option[PL_RO_EXTRA_HEADERS]), 0, 0, NULL,
     "JSON object of HTTP headers added to every request (anthropic-beta, api-key...); HTTP "
     "dialects",
     extra_headers_problem},
    {"connect.timeout.ms", PL_PROP_INT, PL_OFF(connect_timeout_ms), 1,
     600000, "10000", "Time allowed to connect and complete the handshake",
     NULL},
    {"connect.to", PL_PROP_STRING, PL_OFF(connect_to), 0, 0, NULL,
     "Connect elsewhere than the endpoint's host, as curl's --connect-to: "
     "HOST:PORT:TO_HOST:TO_PORT[,...]; the request, TLS name check "
     "included, still names the endpoint's host (a proxy or a test server "
     "standing in for a vendor)",
     connect_to_problem},
    {"max.message.bytes", PL_PROP_INT64, PL_OFF(max_message_bytes), 1024,
     INT64_C(1) << 30, "1048576",
     "Largest message sent or accepted, in bytes", NULL},
    {"tls.ca.file", PL_PROP_STRING, PL_OFF(tls_ca_file), 0, 0, NULL,
     "CA bundle (PEM) to verify servers with; unset: the system's", NULL},
    {"tls.ca.path", PL_PROP_STRING, PL_OFF(tls_ca_path), 0, 0, NULL,
     "Directory of CA certificates (hashed names) to verify servers with",
     NULL},
    {"tls.pinned.pubkey", PL_PROP_STRING, PL_OFF(tls_pinned_pubkey), 0, 0,
     NULL,
     "Accept only these public keys: sha256//BASE64[;sha256//...] or a PEM "
     "or DER file",
     NULL},
    {"tls.cert.file", PL_PROP_STRING, PL_OFF(tls_cert_file), 0, 0, NULL,
     "Client certificate (PEM) for mutual TLS", NULL},
    {"tls.key.file", PL_PROP_STRING, PL_OFF(tls_key_file), 0, 0, NULL,
     "Private key (PEM) of the client certificate", NULL},
    {"tls.insecure", PL_PROP_INT, PL_OFF(tls_insecure), 0, 1, "0",
     "1: do not verify the server's certificate or host name (a warning is "
     "logged on every connection); never in production",
     NULL},
    {"compression", PL_PROP_STRING, PL_OFF(compression), 0, 0, "zstd",
     "Native protocol: zstd offers parley.v1.zstd, then parley.v1.gzip; gzip "
     "offers parley.v1.gzip; plain parley.v1 is always the fallback; none "
     "offers parley.v1 only",
     compression_problem},
    {"compression.dict", PL_PROP_INT, PL_OFF(compression_dict), 0, 1, "1",
     "1: offer the built-in zstd dictionary (X-Parley-Zstd-Dict) and use it "
     "once the server agrees",
     NULL},
    {"log.level", PL_PROP_INT, PL_OFF(log_level), 0, 7, "4",
     "Most verbose level logged: error (3), warning (4), notice (5), info "
     "(6) or debug (7), by name or number; $PARLEY_LOG overrides it",
     NULL},
    {"statistics.interval.ms", PL_PROP_INT, PL_OFF(stats_interval_ms), 0,
     86400000, "0",
     "Milliseconds between statistics documents handed to the stats callback "
     "(parley_conf_set_stats_cb; docs/statistics.md); 0: none",
     NULL},
    {"retry.max.attempts", PL_PROP_INT, PL_OFF(retry_max_attempts), 1, 100,
     "3",
     "Sends of a request without progress before it fails (the first "
     "included)",
     NULL},
    {"retry.backoff.ms", PL_PROP_INT, PL_OFF(retry_backoff_ms), 1, 600000,
     "200", "First retry delay; doubles per attempt, minus up to 25 % jitter",
     NULL},
    {"retry.backoff.max.ms", PL_PROP_INT, PL_OFF(retry_backoff_max_ms), 1,
     3600000, "8000", "Cap of the retry delay", NULL},
    {"reconnect.backoff.ms", PL_PROP_INT, PL_OFF(reconnect_backoff_ms), 1,
     600000, "100",
     "First delay before reconnecting after a failure; doubles per failure, "
     "minus up to 25 % jitter",
     NULL},
    {"reconnect.backoff.max.ms", PL_PROP_INT, PL_OFF(reconnect_backoff_max_ms),
     1, 3600000, "10000", "Cap of the reconnect delay", NULL},
    {"request.timeout.ms", PL_PROP_INT, PL_OFF(request_timeout_ms), 0,
     86400000, "300000",
     "Deadline of a request from parley_send() to its terminal event, "
     "retries included; 0: none",
     NULL},
    {"stall.timeout.ms", PL_PROP_INT, PL_OFF(stall_timeout_ms), 0, 3600000,
     "30000",
     "A request the server says nothing about for this long (no message "
     "naming it; over HTTP, no event of its stream, pings included) is "
     "resumed on another connection; 0: off",
     NULL},
    {"stall.ping.timeout.ms", PL_PROP_INT, PL_OFF(stall_ping_timeout_ms), 1,
     600000, "3000",
     "After a stall, time the connection has to answer a Ping; without a "
     "Pong it is dead: it is closed and every request on it resumes on a "
     "fresh connection",
     NULL},
    {"reply.max.bytes", PL_PROP_INT64, PL_OFF(reply_max_bytes), 1024,
     INT64_C(1) << 40, "16777216",
     "Largest reply accepted, in bytes of text; a longer one fails its "
     "request (PARLEY_ERR_REPLY_TOO_LARGE) instead of growing memory",
     NULL},
    {"session.queue.max", PL_PROP_INT, PL_OFF(session_queue_max), 1, 1000000,
     "1024", "Turns one session may hold unfinished (in flight and waiting)",
     NULL},
    {"max.inflight.requests", PL_PROP_INT, PL_OFF(max_inflight_requests), 1,
     10000000, "100000",
     "Requests the client holds unfinished over all sessions", NULL},
    {"session.store", PL_PROP_STRING, PL_OFF(session_store), 0, 0, "memory",
     "Where sessions keep their history and lease: memory (this process) "
     "or redis://[user@]host:port[/db] (Redis 6+ or Valkey; the password "
     "from session.store.password.env or .file, never in the URL); see "
     "docs/cluster.md",
     store_problem},
    {"session.store.password.env", PL_PROP_STRING, PL_OFF(store_password_env), 0, 0,
     "PARLEY_STORE_PASSWORD",
     "Environment variable that holds the session store's password; unset "
     "or empty: no AUTH",
     NULL},
    {"session.store.password.file", PL_PROP_STRING, PL_OFF(store_password_file), 0, 0,
     NULL,
     "File that holds the session store's password instead (a regular "
     "file, mode 0600 or stricter; one trailing newline is ignored)",
     NULL},
    {"session.store.key.prefix", PL_PROP_STRING, PL_OFF(store_key_prefix), 0, 0, "parley:",
     "Prefix of every key the session store writes (keys are "
     "<prefix>{<session>}:<what>)",
     header_value_problem},
    {"session.store.ttl.s", PL_PROP_INT, PL_OFF(store_ttl_s), 0, 1073741824, "0",
     "Seconds an idle conversation's keys live in the store after its last "
     "write; 0: kept until deleted",
     NULL},
    {"session.store.timeout.ms", PL_PROP_INT, PL_OFF(store_timeout_ms), 1, 600000, "2000",
     "Time for one store round trip before the connection counts as lost "
     "and is made again",
     NULL},
    {"session.store.wait.ms", PL_PROP_INT, PL_OFF(store_wait_ms), 1, 86400000, "30000",
     "How long a session waits for the store (loading, recording, saving a "
     "turn) before its turns end with PARLEY_ERR_STORE",
     NULL},
    {"session.lease.ms", PL_PROP_INT, PL_OFF(lease_ms), 1000, 3600000, "15000",
     "Lease of a session in the store: renewed while the session is open; "
     "after a crash, another process may take the session this long after "
     "the last renewal",
     NULL},
    {"session.lease.wait.ms", PL_PROP_INT, PL_OFF(lease_wait_ms), 0, 86400000, "0",
     "How long opening a session another live process owns waits for its "
     "lease; 0: the session fails at once with PARLEY_ERR_SESSION_OWNED",
     NULL},
    {"http.idle.connections", PL_PROP_INT, PL_OFF(http_idle_connections), 1,
     1000000, "1024",
     "Anthropic and openai dialects: finished connections kept open for the "
     "next requests (libcurl's CURLMOPT_MAXCONNECTS), and as many request "
     "handles; below the requests in flight over http://, turns connect "
     "again",
     NULL},
    {"http.max.connections", PL_PROP_INT, PL_OFF(http_max_connections), 0,
     1000000, "1024",
     "Anthropic and openai dialects: connections open to the endpoint at most; "
     "over http:// (HTTP/1.1, a request per connection) requests beyond it wait "
     "in the client, in order, for a connection to finish (no stall clock "
     "runs while they wait; request.timeout.ms does); over https:// each "
     "connection multiplexes up to 100 HTTP/2 streams first. 0: no bound",
     NULL},
    {"max.queued.bytes", PL_PROP_INT64, PL_OFF(max_queued_bytes), 1024,
     INT64_C(1) << 40, "268435456",
     "Content bytes of the unfinished requests over all sessions", NULL},
};

#define PL_NPROPS (sizeof(pl_props) / sizeof(pl_props[0]))

/* Room for any number's text form and for a quoted property name. */
#define PL_TEXT_MAX 64

/* The most of a refused value an error message quotes. */
#define PL_VALUE_SHOWN_MAX 200

/* An API key file larger than this is not an API key file. */
#define PL_KEY_FILE_MAX 65536

/* ---- helpers --------------------------------------------------------- */

/*
 * Write a sentence into errstr (which may be NULL or of size 0) and return
 * err, so that failures read `return conf_error(...)`.
 */
__attribute__((format(printf, 4, 5))) static parley_err_t
conf_error(char *errstr, size_t errstr_size, parley_err_t err,
           const char *fmt, ...)
{
    if (errstr && errstr_size > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
    }
    return err;
}

/* By the naming rule (option_name.h). */
static const pl_prop *prop_find(const char *name)
{
    for (size_t i = 0; i < PL_NPROPS; i++)
        if (pl_name_is(name, pl_props[i].name))
            return &pl_props[i];
    return NULL;
}

/* The longest name the suggestion compares; longer ones get none. */
#define PL_NAME_COMPARED_MAX 48

/* Edits (insert, delete, replace, swap two neighbours) from a to b. */
static size_t edit_distance(const char *a, size_t la, const char *b, size_t lb)
{
    size_t d[PL_NAME_COMPARED_MAX + 1][PL_NAME_COMPARED_MAX + 1];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

/* given in lowercase, with dots for '_' and '-', into norm
 * (PL_NAME_COMPARED_MAX + 1 bytes); false when it is longer. */
static bool name_normalize(const char *given, char *norm)
{
    size_t len = strlen(given);
    if (len > PL_NAME_COMPARED_MAX)
        return false;
    for (size_t i = 0; i <= len; i++)
        norm[i] = (char)tolower((unsigned char)pl_name_char(given[i]));
    return true;
}

/* The property a mistyped name most likely meant, or NULL: the closest
 * name within a few edits (more for longer names). */
static const pl_prop *prop_nearest(const char *given)
{
    char norm[PL_NAME_COMPARED_MAX + 1];
    const pl_prop *best = NULL;
    size_t best_d = SIZE_MAX;

    if (!name_normalize(given, norm))
        return NULL;
    size_t len = strlen(norm);
    for (size_t i = 0; i < PL_NPROPS; i++) {
        size_t n = strlen(pl_props[i].name);
        if (n > PL_NAME_COMPARED_MAX)
            continue;
        size_t d = edit_distance(norm, len, pl_props[i].name, n);
        size_t allowed = n < 8 ? 2 : 2 + n / 8;
        if (d <= allowed && d < best_d) {
            best = &pl_props[i];
            best_d = d;
        }
    }
    return best;
}

/* Whether a name asks to set the key itself, which is never a property. */
static bool names_the_key(const char *given)
{
    static const char *const key_names[] = {"api.key", "apikey", "key", "api.key.value",
                                            "anthropic.api.key", "openai.api.key"};
    char norm[PL_NAME_COMPARED_MAX + 1];
    if (!name_normalize(given, norm))
        return false;
    for (size_t i = 0; i < sizeof(key_names) / sizeof(key_names[0]); i++)
        if (!strcmp(norm, key_names[i]))
            return true;
    return false;
}

static parley_err_t unknown_property(const char *name, char *errstr, size_t errstr_size)
{
    char shown[PL_TEXT_MAX];
    const pl_prop *near;

    pl_safe_text(shown, sizeof(shown), name, strlen(name), NULL);
    if (names_the_key(name))
        return conf_error(errstr, errstr_size, PARLEY_ERR_UNKNOWN_OPTION,
                          "no such property \"%s\": the API key is never a property, "
                          "so that it stays out of code and command lines; say where "
                          "it is with \"api.key.env\" (an environment variable, "
                          "default PARLEY_API_KEY) or \"api.key.file\" (a file, "
                          "mode 0600)",
                          shown);
    if ((near = prop_nearest(name)))
        return conf_error(errstr, errstr_size, PARLEY_ERR_UNKNOWN_OPTION,
                          "no such property \"%s\": did you mean \"%s\"?", shown,
                          near->name);
    return conf_error(errstr, errstr_size, PARLEY_ERR_UNKNOWN_OPTION,
                      "no such property \"%s\"", shown);
}

static void *prop_field(parley_conf_t *conf, const pl_prop *p)
{
    return (char *)conf + p->offset;
}

static const void *prop_cfield(const parley_conf_t *conf, const pl_prop *p)
{
    return (const char *)conf + p->offset;
}

/* "sizing.qps" as it appears in messages: quoted, so it reads as a name. */
static void prop_label(const pl_prop *p, char *buf, size_t size)
{
    snprintf(buf, size, "\"%s\"", p->name);
}

/*
 * Parse all of `text` as a base-10 integer in [min, max]. `label` names where
 * the text came from in the message. strtoll() alone would accept leading
 * blanks, a bare sign and trailing junk, so the form is checked first.
 */
static parley_err_t parse_int(const char *label, const char *text,
                              int64_t min, int64_t max, int64_t *out,
                              char *errstr, size_t errstr_size)
{
    const char *digits = (*text == '-' || *text == '+') ? text + 1 : text;
    char *end;
    long long v;

    if (*digits < '0' || *digits > '9')
        goto not_integer;
    errno = 0;
    v = strtoll(text, &end, 10);
    if (*end != '\0')
        goto not_integer;
    if (errno == ERANGE || v < min || v > max)
        return conf_error(errstr, errstr_size, PARLEY_ERR_INVALID_VALUE,
                          "%s: %s is out of range %" PRId64 "..%" PRId64,
                          label, text, min, max);
    *out = v;
    return PARLEY_OK;

not_integer:
    return conf_error(errstr, errstr_size, PARLEY_ERR_INVALID_VALUE,
                      "%s: \"%s\" is not an integer", label, text);
}

/*
 * Parse all of `text` as a finite decimal number above min. Only plain
 * notation passes: strtod() would also take "nan", "inf", hex and blanks.
 */
static parley_err_t parse_double(const char *label, const char *text,
                                 double min, double *out, char *errstr,
                                 size_t errstr_size)
{
    char *end;
    double v;

    if (*text == '\0' || text[strspn(text, "0123456789+-.eE")] != '\0')
        goto not_number;
    errno = 0;
    v = strtod(text, &end);
    if (end == text || *end != '\0')
        goto not_number;
    if (!isfinite(v))
        return conf_error(errstr, errstr_size, PARLEY_ERR_INVALID_VALUE,
                          "%s: %s is too large", label, text);
    if (!(v > min))
        return conf_error(errstr, errstr_size, PARLEY_ERR_INVALID_VALUE,
                          "%s: %s is out of range > %g", label, text, min);
    *out = v;
    return PARLEY_OK;

not_number:
    return conf_error(errstr, errstr_size, PARLEY_ERR_INVALID_VALUE,
                      "%s: \"%s\" is not a number", label, text);
}

/*
 * The shortest text that reads back as v ("0.2", not "0.20000000000000001"),
 * in plain notation when there is one ("1000", not "1e+03").
 */
static void format_double(double v, char *buf, size_t size)
{
    for (int pass = 0; pass < 2; pass++) {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, size, "%.*g", prec, v);
            if (strtod(buf, NULL) == v && (pass == 1 || !strchr(buf, 'e')))
                return;
        }
    }
}

/*
 * Why `url` cannot be a parley endpoint, or NULL when it can. The host is
 * what follows the scheme and any "user@", up to ":port", "/", "?" or "#".
 */
/* The length of url's scheme and "://" when parley speaks it, else 0. */
static size_t scheme_length(const char *url)
{
    static const char *const schemes[] = {"ws://", "wss://", "http://", "https://"};
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (strncasecmp(url, schemes[i], strlen(schemes[i])) == 0)
            return strlen(schemes[i]);
    return 0;
}

static bool scheme_is_http(const char *url)
{
    return strncasecmp(url, "http", 4) == 0;
}

/* The port after the host, if any (an IPv6 literal is in brackets). An
 * empty one would silently mean the scheme's default port. */
static const char *port_problem(const char *host, size_t authority)
{
    const char *end = host + authority;
    const char *colon;
    if (host[0] == '[') {
        const char *close = memchr(host, ']', authority);
        colon = close && close + 1 < end && close[1] == ':' ? close + 1 : NULL;
    } else {
        colon = memchr(host, ':', authority);
    }
    if (!colon)
        return NULL;
    const char *port = colon + 1;
    if (port == end)
        return "has an empty port: put the port after the ':', or leave the ':' out "
               "for the scheme's default";
    unsigned long number = 0;
    for (const char *d = port; d < end; d++) {
        if (*d < '0' || *d > '9')
            return "has a port that is not a number";
        if (number <= 65535)
            number = number * 10 + (unsigned long)(*d - '0');
    }
    if (number == 0 || number > 65535)
        return "has a port outside 1-65535";
    return NULL;
}

/* "memory" or a redis:// URL; the URL's parts are checked when the client
 * is made (store_url.h), where the message can say which. A password in
 * the URL is refused: URLs end up in logs and on command lines. */
static const char *store_problem(const char *value)
{
    if (!strcmp(value, "memory"))
        return NULL;
    if (strncmp(value, "redis://", 8))
        return "is not memory or a redis://host:port URL";
    const char *at = strchr(value + 8, '@');
    const char *colon = strchr(value + 8, ':');
    if (at && colon && colon < at)
        return "holds a password: give it with session.store.password.env or "
               "session.store.password.file instead";
    return NULL;
}

static const char *endpoint_problem(const char *url)
{
    size_t scheme = scheme_length(url);
    if (!scheme)
        return "must start with ws://, wss://, http:// or https://";

    /* A stray newline (from a file or a shell) would reach the request. */
    for (const unsigned char *c = (const unsigned char *)url; *c; c++)
        if (*c <= ' ' || *c == 0x7f)
            return "must not contain spaces or control characters";

    const char *host = url + scheme;
    size_t authority = strcspn(host, "/?#");
    for (size_t i = authority; i > 0; i--) {
        if (host[i - 1] == '@') {
            host += i;
            authority -= i;
            break;
        }
    }
    if (authority == 0 || host[0] == ':')
        return "has no host";
    return port_problem(host, authority);
}

/* A CR or LF would end the header and start one of the value's choosing. */
static const char *header_value_problem(const char *value)
{
    for (const unsigned char *c = (const unsigned char *)value; *c; c++)
        if ((*c < ' ' && *c != '\t') || *c == 0x7f)
            return "must not contain control characters (CR, LF): it is sent as an HTTP "
                   "header";
    return NULL;
}

/* Sent inside the JSON of every request: invalid UTF-8 would fail each. */
static const char *utf8_problem(const char *value)
{
    return pl_utf8_valid(value, strlen(value)) ? NULL : "is not valid UTF-8";
}

/* Whether one CONNECT_TO entry (len bytes) has curl's four fields:
 * HOST:PORT:TO_HOST:TO_PORT, any of them empty, a host maybe [IPv6]. */
static bool connect_to_entry_ok(const char *entry, size_t len)
{
    size_t colons = 0;
    bool in_brackets = false;
    for (size_t i = 0; i < len; i++) {
        if (entry[i] == '[')
            in_brackets = true;
        else if (entry[i] == ']')
            in_brackets = false;
        else if (entry[i] == ':' && !in_brackets)
            colons++;
    }
    return colons == 3 && !in_brackets;
}

/* curl's CONNECT_TO entries, comma-separated. */
static const char *connect_to_problem(const char *value)
{
    for (const unsigned char *c = (const unsigned char *)value; *c; c++)
        if (*c <= ' ' || *c == 0x7f)
            return "must not contain spaces or control characters";
    for (const char *entry = value;; ) {
        size_t len = strcspn(entry, ",");
        if (!connect_to_entry_ok(entry, len))
            return "is not HOST:PORT:TO_HOST:TO_PORT[,...] (curl's --connect-to)";
        if (!entry[len])
            return NULL;
        entry += len + 1;
    }
}

/* ---- storing and reading values ---------------------------------------- */

/* A value as error messages quote it: a URL (the endpoint, the session
 * store) without its credentials (pl_safe_url), any value without control
 * characters, both cut short. */
static void value_shown(const pl_prop *p, const char *value, char *buf, size_t size)
{
    if (p->check == endpoint_problem || p->check == store_problem)
        pl_safe_url(value, buf, size);
    else
        pl_safe_text(buf, size, value, strlen(value), NULL);
}

static parley_err_t store_string(parley_conf_t *conf, const pl_prop *p,
                                 const char *value, char *errstr,
                                 size_t errstr_size)
{
    /* An empty value is the only way to unset a string: back to default. */
    const char *v = *value ? value : p->def;
    char **field = prop_field(conf, p);
    char *copy = NULL;

    if (v && p->check) {
        const char *why = p->check(v);
        char shown[PL_VALUE_SHOWN_MAX];
        if (why) {
            value_shown(p, v, shown, sizeof(shown));
            return conf_error(errstr, errstr_size, PARLEY_ERR_INVALID_VALUE,
                              "\"%s\": \"%s\" %s", p->name, shown, why);
        }
    }
    if (v && !(copy = strdup(v)))
        return conf_error(errstr, errstr_size, PARLEY_ERR_NO_MEMORY,
                          "out of memory");
    free(*field);
    *field = copy;
    return PARLEY_OK;
}

parley_err_t pl_conf_parse_int_as(const char *name, const char *text, int64_t *out,
                                  char *errstr, size_t errstr_size)
{
    const pl_prop *p = prop_find(name);
    char label[PL_TEXT_MAX];
    if (!p || (p->type != PL_PROP_INT && p->type != PL_PROP_INT64))
        return conf_error(errstr, errstr_size, PARLEY_ERR_INVALID_ARG,
                          "no integer property \"%s\"", name);
    prop_label(p, label, sizeof(label));
    return parse_int(label, text, p->min, p->max, out, errstr, errstr_size);
}

/* The names of the log levels from PARLEY_LOG_ERROR on, as PARLEY_LOG and
 * log.level take them. */
static const char *const level_names[] = {"error", "warning", "notice", "info", "debug"};

/* The level a name stands for, or -1. */
static int level_by_name(const char *text)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcasecmp(text, level_names[i]) == 0)
            return PARLEY_LOG_ERROR + (int)i;
    return -1;
}

/* Parse `value` for property p and store it; conf is unchanged on error. */
static parley_err_t prop_store(parley_conf_t *conf, const pl_prop *p,
                               const char *value, char *errstr,
                               size_t errstr_size)
{
    char label[PL_TEXT_MAX];
    parley_err_t err;
    int64_t i = 0; /* initialized only to quiet -Wmaybe-uninitialized */
    double d = 0;

    if (p->type == PL_PROP_STRING)
        return store_string(conf, p, value, errstr, errstr_size);

    prop_label(p, label, sizeof(label));
    if (p->type == PL_PROP_DOUBLE) {
        err = parse_double(label, value, (double)p->min, &d, errstr,
                           errstr_size);
        if (err == PARLEY_OK)
            *(double *)prop_field(conf, p) = d;
        return err;
    }
    if (p->offset == PL_OFF(log_level) && level_by_name(value) >= 0) {
        *(int *)prop_field(conf, p) = level_by_name(value);
        return PARLEY_OK;
    }
    err = parse_int(label, value, p->min, p->max, &i, errstr, errstr_size);
    if (err != PARLEY_OK && p->offset == PL_OFF(log_level))
        return conf_error(errstr, errstr_size, err,
                          "%s: \"%.32s\" is not error, warning, notice, info, debug "
                          "or 0-7", label, value);
    if (err != PARLEY_OK)
        return err;
    if (p->type == PL_PROP_INT)
        *(int *)prop_field(conf, p) = (int)i;
    else
        *(int64_t *)prop_field(conf, p) = i;
    return PARLEY_OK;
}

/*
 * The text form of p's value: written into buf (PL_TEXT_MAX bytes) for
 * numbers; a string property's own storage for strings ("" when unset).
 */
static const char *prop_text(const parley_conf_t *conf, const pl_prop *p,
                             char *buf)
{
    const void *field = prop_cfield(conf, p);

    switch (p->type) {
    case PL_PROP_STRING: {
        const char *s = *(char *const *)field;
        return s ? s : "";
    }
    case PL_PROP_INT:
        snprintf(buf, PL_TEXT_MAX, "%d", *(const int *)field);
        break;
    case PL_PROP_DOUBLE:
        format_double(*(const double *)field, buf, PL_TEXT_MAX);
        break;
    case PL_PROP_INT64:
        snprintf(buf, PL_TEXT_MAX, "%" PRId64, *(const int64_t *)field);
        break;
    }
    return buf;
}

/* ---- public configuration API ---------------------------------------- */

parley_conf_t *parley_conf_new(void)
{
    parley_conf_t *conf = calloc(1, sizeof(*conf));
    if (!conf)
        return NULL;
    /* Defaults go through the parser, so a bad table entry shows at once. */
    for (size_t i = 0; i < PL_NPROPS; i++) {
        const pl_prop *p = &pl_props[i];
        if (p->def && prop_store(conf, p, p->def, NULL, 0) != PARLEY_OK) {
            parley_conf_destroy(conf);
            return NULL;
        }
    }
    return conf;
}

parley_conf_t *parley_conf_dup(const parley_conf_t *src)
{
    parley_conf_t *conf;

    if (!src || !(conf = malloc(sizeof(*conf))))
        return NULL;
    *conf = *src;
    /* Detach every string first, so a failed copy frees only its own. */
    for (size_t i = 0; i < PL_NPROPS; i++)
        if (pl_props[i].type == PL_PROP_STRING)
            *(char **)prop_field(conf, &pl_props[i]) = NULL;
    for (size_t i = 0; i < PL_NPROPS; i++) {
        const pl_prop *p = &pl_props[i];
        const char *s;
        if (p->type != PL_PROP_STRING)
            continue;
        s = *(char *const *)prop_cfield(src, p);
        if (s && !(*(char **)prop_field(conf, p) = strdup(s))) {
            parley_conf_destroy(conf);
            return NULL;
        }
    }
    return conf;
}

void parley_conf_destroy(parley_conf_t *conf)
{
    if (!conf)
        return;
    for (size_t i = 0; i < PL_NPROPS; i++)
        if (pl_props[i].type == PL_PROP_STRING)
            free(*(char **)prop_field(conf, &pl_props[i]));
    free(conf);
}

parley_err_t parley_conf_set(parley_conf_t *conf, const char *name,
                             const char *value, char *errstr,
                             size_t errstr_size)
{
    const pl_prop *p;

    if (!conf || !name || !value)
        return conf_error(errstr, errstr_size, PARLEY_ERR_INVALID_ARG,
                          "parley_conf_set(): conf, name and value must "
                          "not be NULL");
    if (!(p = prop_find(name)))
        return unknown_property(name, errstr, errstr_size);
    return prop_store(conf, p, value, errstr, errstr_size);
}

/*
 * A dest too small still receives as much as fits (NUL-terminated), but the
 * call fails, so that a truncated value is never mistaken for the real one.
 */
parley_err_t parley_conf_get(const parley_conf_t *conf, const char *name,
                             char *dest, size_t *dest_size)
{
    char buf[PL_TEXT_MAX] = "";
    const pl_prop *p;
    const char *text;
    size_t need;

    if (!conf || !name || !dest_size)
        return PARLEY_ERR_INVALID_ARG;
    if (!(p = prop_find(name)))
        return PARLEY_ERR_UNKNOWN_OPTION;
    text = prop_text(conf, p, buf);
    need = strlen(text) + 1;
    if (!dest) {
        *dest_size = need;
        return PARLEY_OK;
    }
    if (*dest_size > 0)
        snprintf(dest, *dest_size, "%s", text);
    if (*dest_size < need) {
        *dest_size = need;
        return PARLEY_ERR_INVALID_ARG;
    }
    *dest_size = need;
    return PARLEY_OK;
}

void parley_conf_set_event_cb(parley_conf_t *conf, parley_event_cb *cb,
                              void *opaque)
{
    if (!conf)
        return;
    conf->event_cb = cb;
    conf->event_opaque = opaque;
}

void parley_conf_set_stats_cb(parley_conf_t *conf, parley_stats_cb *cb,
                              void *opaque)
{
    if (!conf)
        return;
    conf->stats_cb = cb;
    conf->stats_opaque = opaque;
}

void parley_conf_set_log_cb(parley_conf_t *conf, parley_log_cb *cb,
                            void *opaque)
{
    if (!conf)
        return;
    conf->log_cb = cb;
    conf->log_opaque = opaque;
}

/* ---- the documentation table ----------------------------------------- */

/* snprintf() into a buffer that may run out: counts what did not fit too. */
typedef struct pl_out {
    char *buf;
    size_t size;
    size_t len; /* what the whole text needs, excluding the NUL */
} pl_out;

__attribute__((format(printf, 2, 3))) static void
out_printf(pl_out *o, const char *fmt, ...)
{
    bool room = o->buf && o->len < o->size;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(room ? o->buf + o->len : NULL, room ? o->size - o->len : 0,
                  fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
}

static const char *type_name(pl_prop_type type)
{
    switch (type) {
    case PL_PROP_STRING:
        return "string";
    case PL_PROP_DOUBLE:
        return "float";
    case PL_PROP_INT:
    case PL_PROP_INT64:
        break;
    }
    return "integer";
}

static void range_text(const pl_prop *p, char *buf, size_t size)
{
    if (p->type == PL_PROP_STRING)
        buf[0] = '\0';
    else if (p->type == PL_PROP_DOUBLE)
        snprintf(buf, size, "> %" PRId64, p->min);
    else
        snprintf(buf, size, "%" PRId64 "..%" PRId64, p->min, p->max);
}

size_t parley_conf_dump(char *buf, size_t size)
{
    pl_out out = {buf, size, 0};
    char range[PL_TEXT_MAX];

    out_printf(&out, "| Property | Type | Range | Default | Description |\n"
                     "|---|---|---|---|---|\n");
    for (size_t i = 0; i < PL_NPROPS; i++) {
        const pl_prop *p = &pl_props[i];
        range_text(p, range, sizeof(range));
        out_printf(&out, "| `%s` | %s | %s | %s | %s |\n", p->name,
                   type_name(p->type), range, p->def ? p->def : "",
                   p->desc);
    }
    return out.len;
}

/* ---- connection sizing ------------------------------------------------ */

/* More connections than this is a configuration mistake, not a plan. */
#define PL_CONNECTIONS_MAX 1024

unsigned parley_connections_for(double qps, double mean_response_s,
                                unsigned inflight_per_connection)
{
    double n;

    /* The comparisons are written so that NaN fails them too. */
    if (inflight_per_connection == 0 || !(qps > 0) || !(mean_response_s > 0))
        return 1;
    n = qps * mean_response_s / inflight_per_connection;
    /*
     * Decimal inputs carry rounding error (1000 x 0.2 / 100 may come out a
     * hair above 2); without the slack ceil() would add a connection.
     */
    n = ceil(n - n * 1e-9);
    if (!(n < PL_CONNECTIONS_MAX))
        return PL_CONNECTIONS_MAX;
    return n < 1 ? 1 : (unsigned)n;
}

unsigned pl_conf_connections(const parley_conf_t *conf)
{
    if (conf->connections > 0)
        return (unsigned)conf->connections;
    return parley_connections_for(
        conf->sizing_qps, conf->sizing_response_ms / 1000.0,
        (unsigned)conf->sizing_inflight_per_connection);
}

/* ---- finalize: what comes from the environment ---------------------- */

/* The endpoint to fill in from $PARLEY_ENDPOINT (*out NULL: none needed). */
static parley_err_t resolve_endpoint(const parley_conf_t *conf, char **out,
                                     char *errstr, size_t errstr_size)
{
    const char *env, *why;

    *out = NULL;
    if (conf->endpoint)
        return PARLEY_OK;
    env = getenv("PARLEY_ENDPOINT");
    if (!env || !*env)
        return conf_error(errstr, errstr_size, PARLEY_ERR_INVALID_ARG,
                          "no endpoint: set the \"endpoint\" property or "
                          "PARLEY_ENDPOINT (docs/vendors.md names the vendors')");
    if ((why = endpoint_problem(env))) {
        char shown[PL_VALUE_SHOWN_MAX];
        pl_safe_url(env, shown, sizeof(shown));
        return conf_error(errstr, errstr_size, PARLEY_ERR_INVALID_ARG,
                          "environment variable PARLEY_ENDPOINT: \"%s\" %s",
                          shown, why);
    }
    if (!(*out = strdup(env)))
        return conf_error(errstr, errstr_size, PARLEY_ERR_NO_MEMORY,
                          "out of memory");
    return PARLEY_OK;
}

/* The worker id: the property's, else $PARLEY_WORKER_ID, else 0, which
 * *defaulted says (two processes on one store must not both take it). */
static parley_err_t resolve_worker_id(const parley_conf_t *conf, int *out, bool *defaulted,
                                      char *errstr, size_t errstr_size)
{
    const char *env;
    int64_t id;

    *out = conf->worker_id;
    *defaulted = false;
    if (conf->worker_id != -1)
        return PARLEY_OK;
    env = getenv("PARLEY_WORKER_ID");
    if (!env || !*env) {
        *out = 0;
        *defaulted = true;
        return PARLEY_OK;
    }
    if (parse_int("environment variable PARLEY_WORKER_ID", env, 0, 1023, &id,
                  errstr, errstr_size) != PARLEY_OK)
        return PARLEY_ERR_INVALID_ARG;
    *out = (int)id;
    return PARLEY_OK;
}

/*
 * Why `key` (len bytes) cannot go into an Authorization header, or NULL.
 * A second line would inject a header of its own. Never quotes the key.
 */
static const char *key_problem(const char *key, size_t len)
{
    if (len == 0)
        return "is empty";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c == 0)
            return "contains a NUL byte";
        if (c < ' ' || c == 0x7f)
            return "contains a control character (more than one line?)";
    }
    return NULL;
}

/* Read all of fd (at most max bytes) into a new NUL-terminated buffer. */
static char *read_all(int fd, size_t max, size_t *len)
{
    char *buf = malloc(max + 1);
    ssize_t n;

    *len = 0;
    if (!buf)
        return NULL;
    while (*len < max) {
        n = read(fd, buf + *len, max - *len);
        if (n == 0)
            break;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            explicit_bzero(buf, *len);
            free(buf);
            return NULL;
        }
        *len += (size_t)n;
    }
    buf[*len] = '\0';
    return buf;
}

/* Check the open key file's type and mode, then read the key from it. */
/* A secret (`what`: "API key", "session store password") from a file;
 * failures are err. */
static parley_err_t key_from_fd(int fd, const char *path, const char *what, parley_err_t err,
                                char **key, char *errstr, size_t errstr_size)
{
    struct stat st;
    const char *why;
    size_t len;
    char *buf;

    if (fstat(fd, &st) != 0)
        return conf_error(errstr, errstr_size, err,
                          "%s file \"%s\": %s", what, path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return conf_error(errstr, errstr_size, err,
                          "%s file \"%s\" is not a regular file", what, path);
    /* A key others can read is no longer secret; ssh refuses such keys too. */
    if (st.st_mode & 077)
        return conf_error(errstr, errstr_size, err,
                          "%s file \"%s\" is accessible by group or "
                          "others (mode %04o): run chmod 600 on it",
                          what, path, (unsigned)(st.st_mode & 07777));
    if (st.st_size > PL_KEY_FILE_MAX)
        return conf_error(errstr, errstr_size, err,
                          "%s file \"%s\" is larger than %d bytes",
                          what, path, PL_KEY_FILE_MAX);
    if (!(buf = read_all(fd, (size_t)st.st_size, &len)))
        return conf_error(errstr, errstr_size, err,
                          "cannot read %s file \"%s\"", what, path);
    /* Editors end files with a newline; "\r\n" counts as one line end. */
    if (len > 0 && buf[len - 1] == '\n')
        buf[--len] = '\0';
    if (len > 0 && buf[len - 1] == '\r')
        buf[--len] = '\0';
    if ((why = key_problem(buf, len))) {
        explicit_bzero(buf, len);
        free(buf);
        return conf_error(errstr, errstr_size, err,
                          "%s file \"%s\" %s", what, path, why);
    }
    *key = buf;
    return PARLEY_OK;
}

static parley_err_t key_from_file(const char *path, const char *what, parley_err_t err,
                                  char **key, char *errstr, size_t errstr_size)
{
    /* Without O_NONBLOCK, opening a FIFO would wait for a writer forever;
     * key_from_fd then refuses anything but a regular file. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return conf_error(errstr, errstr_size, err, "cannot open %s file \"%s\": %s", what,
                          path, strerror(errno));
    parley_err_t got = key_from_fd(fd, path, what, err, key, errstr, errstr_size);
    close(fd);
    return got;
}

/* The key from environment variable var. When it is unset, the message
 * says why that variable after its name (`whose`) and ends with `hint`
 * (both may be ""). */
static parley_err_t key_from_env(const char *var, const char *whose, const char *hint,
                                 char **key, char *errstr, size_t errstr_size)
{
    const char *value = getenv(var);
    const char *why;

    if (!value || !*value)
        return conf_error(errstr, errstr_size, PARLEY_ERR_NO_KEY,
                          "no API key: set %s%s or the \"api.key.file\" property%s",
                          var, whose, hint);
    if ((why = key_problem(value, strlen(value))))
        return conf_error(errstr, errstr_size, PARLEY_ERR_NO_KEY,
                          "the API key in environment variable %s %s", var,
                          why);
    if (!(*key = strdup(value)))
        return conf_error(errstr, errstr_size, PARLEY_ERR_NO_MEMORY,
                          "out of memory");
    return PARLEY_OK;
}

static const char *compression_problem(const char *name)
{
    return !strcmp(name, "zstd") || !strcmp(name, "gzip") || !strcmp(name, "none")
               ? NULL
               : "is not zstd, gzip or none";
}

static const char *dialect_problem(const char *name)
{
    if (!strcmp(name, "native") || !strcmp(name, "anthropic") || !strcmp(name, "openai"))
        return NULL;
    return "is not native, anthropic or openai";
}

/* The dialect and why it was chosen, resolved by pl_conf_finalize(). */
typedef struct pl_dialect_choice {
    pl_dialect dialect;
    bool explicit_name; /* set by the "dialect" property */
    char why[112];      /* "chosen by the host api.anthropic.com" */
} pl_dialect_choice;

/*
 * The dialect: the "dialect" property, else the vendor's well-known host,
 * else the scheme (ws/wss: native, http/https: openai). It must agree with
 * the scheme, and with the host when that is a vendor's.
 */
static parley_err_t resolve_dialect(const parley_conf_t *conf, const char *endpoint,
                                    pl_dialect_choice *c, char *errstr, size_t errstr_size)
{
    bool http = scheme_is_http(endpoint);
    const char *name = conf->dialect_name, *host = "";
    size_t host_len = 0;
    pl_dialect vendor = PL_DIALECT_NATIVE;
    bool at_vendor = pl_endpoint_vendor_dialect(endpoint, &vendor);

    pl_endpoint_host(endpoint, &host, &host_len);
    c->explicit_name = name != NULL;
    if (name) {
        c->dialect = !strcmp(name, "anthropic") ? PL_DIALECT_ANTHROPIC
                     : !strcmp(name, "openai")  ? PL_DIALECT_OPENAI
                                                : PL_DIALECT_NATIVE;
        snprintf(c->why, sizeof(c->why), "set by the \"dialect\" property");
    } else if (at_vendor) {
        c->dialect = vendor;
        snprintf(c->why, sizeof(c->why), "chosen by the host %.*s", (int)host_len, host);
    } else {
        c->dialect = http ? PL_DIALECT_OPENAI : PL_DIALECT_NATIVE;
        snprintf(c->why, sizeof(c->why), "chosen by the scheme %.*s",
                 (int)scheme_length(endpoint), endpoint);
    }
    if (at_vendor && c->dialect != vendor)
        return conf_error(errstr, errstr_size, PARLEY_ERR_INVALID_VALUE,
                          "the %s dialect (%s) does not fit %.*s, which speaks the %s "
                          "dialect: leave the \"dialect\" property unset",
                          pl_dialect_name(c->dialect), c->why, (int)host_len, host,
                          pl_dialect_name(vendor));
    if (http == (c->dialect != PL_DIALECT_NATIVE))
        return PARLEY_OK;
    return conf_error(errstr, errstr_size, PARLEY_ERR_INVALID_VALUE,
                      "the %s dialect (%s) needs an endpoint starting with %s",
                      pl_dialect_name(c->dialect), c->why,
                      http ? "ws:// or wss://" : "http:// or https://");
}

/*
 * The HTTP dialects name a model in every request. Unset, the reference
 * server's echo model is sent, which only a server on this machine can
 * serve: anywhere else the client does not start, rather than send a model
 * that fails every request.
 */
static parley_err_t check_model(const parley_conf_t *conf, const char *endpoint,
                                const pl_dialect_choice *c, char *errstr, size_t errstr_size)
{
    const char *host = "";
    size_t host_len = 0;
    pl_dialect vendor;

    if (c->dialect == PL_DIALECT_NATIVE || conf->model || pl_endpoint_is_loopback(endpoint))
        return PARLEY_OK;
    pl_endpoint_host(endpoint, &host, &host_len);
    bool at_vendor = pl_endpoint_vendor_dialect(endpoint, &vendor);
    return conf_error(errstr, errstr_size, PARLEY_ERR_INVALID_ARG,
                      "no model: %.*s (%s dialect, %s) needs one in every request: set the "
                      "\"model\" property to %s; sessions may override it",
                      (int)host_len, host, pl_dialect_name(c->dialect), c->why,
                      !at_vendor ? "a model the server serves"
                      : vendor == PL_DIALECT_ANTHROPIC
                          ? "an Anthropic model, e.g. claude-sonnet-4-5"
                          : "an OpenAI model, e.g. gpt-4o-mini");
}

/* The variable holding the key: the vendor's own name first when the
 * dialect is a vendor's and api.key.env was left at its default. */
static parley_err_t resolve_key_from_env(const parley_conf_t *conf, const pl_dialect_choice *c,
                                         char **key, char *errstr, size_t errstr_size)
{
    const char *var = conf->api_key_env ? conf->api_key_env : "PARLEY_API_KEY";
    const char *vendor = c->dialect == PL_DIALECT_ANTHROPIC ? "ANTHROPIC_API_KEY"
                         : c->dialect == PL_DIALECT_OPENAI  ? "OPENAI_API_KEY"
                                                            : NULL;
    const char *other = c->dialect == PL_DIALECT_ANTHROPIC ? "OPENAI_API_KEY"
                                                           : "ANTHROPIC_API_KEY";
    char whose[200], hint[120] = "";

    if (!vendor || strcmp(var, "PARLEY_API_KEY") != 0) {
        snprintf(whose, sizeof(whose), "%s",
                 conf->api_key_env ? " (named by the \"api.key.env\" property)" : "");
        return key_from_env(var, whose, "", key, errstr, errstr_size);
    }
    const char *v = getenv(vendor);
    if ((v && *v) || !getenv(var) || !*getenv(var)) {
        snprintf(whose, sizeof(whose), " (the variable of the %s dialect, %s)",
                 pl_dialect_name(c->dialect), c->why);
        /* A key for the other vendor hints at the dialect the user meant. */
        const char *o = c->explicit_name ? NULL : getenv(other);
        if (o && *o)
            snprintf(hint, sizeof(hint), "; %s is set: for %s API set the \"dialect\" "
                     "property to %s", other,
                     c->dialect == PL_DIALECT_OPENAI ? "Anthropic's" : "OpenAI's",
                     c->dialect == PL_DIALECT_OPENAI ? "anthropic" : "openai");
        return key_from_env(vendor, whose, hint, key, errstr, errstr_size);
    }
    return key_from_env(var, "", "", key, errstr, errstr_size);
}

/* PARLEY_LOG, when set, overrides log.level: a name or a number 0-7. */
static parley_err_t resolve_log_level(const parley_conf_t *conf, int *out,
                                      char *errstr, size_t errstr_size)
{
    const char *env = getenv("PARLEY_LOG");
    int64_t level;

    *out = conf->log_level;
    if (!env || !*env)
        return PARLEY_OK;
    if (level_by_name(env) >= 0) {
        *out = level_by_name(env);
        return PARLEY_OK;
    }
    if (parse_int("environment variable PARLEY_LOG", env, 0, 7, &level,
                  errstr, errstr_size) != PARLEY_OK)
        return conf_error(errstr, errstr_size, PARLEY_ERR_INVALID_ARG,
                          "environment variable PARLEY_LOG: \"%.32s\" is not "
                          "error, warning, notice, info, debug or 0-7",
                          env);
    *out = (int)level;
    return PARLEY_OK;
}

/* Properties that only make sense together. */
static parley_err_t check_cross(const parley_conf_t *conf, char *errstr,
                                size_t errstr_size)
{
    if (conf->retry_backoff_max_ms < conf->retry_backoff_ms)
        return conf_error(errstr, errstr_size, PARLEY_ERR_INVALID_VALUE,
                          "\"retry.backoff.max.ms\" (%d) is below "
                          "\"retry.backoff.ms\" (%d)",
                          conf->retry_backoff_max_ms, conf->retry_backoff_ms);
    if (conf->reconnect_backoff_max_ms < conf->reconnect_backoff_ms)
        return conf_error(errstr, errstr_size, PARLEY_ERR_INVALID_VALUE,
                          "\"reconnect.backoff.max.ms\" (%d) is below "
                          "\"reconnect.backoff.ms\" (%d)",
                          conf->reconnect_backoff_max_ms,
                          conf->reconnect_backoff_ms);
    if (conf->max_queued_bytes < conf->max_message_bytes)
        return conf_error(errstr, errstr_size, PARLEY_ERR_INVALID_VALUE,
                          "\"max.queued.bytes\" (%lld) is below "
                          "\"max.message.bytes\" (%lld): no message could be "
                          "sent",
                          (long long)conf->max_queued_bytes,
                          (long long)conf->max_message_bytes);
    return PARLEY_OK;
}

/*
 * Everything is resolved into locals and committed only when all of it
 * succeeded: on failure the caller keeps conf exactly as it was set, so a
 * retry after fixing the environment sees the new environment.
 */
parley_err_t pl_conf_finalize(parley_conf_t *conf, char **api_key,
                              char *errstr, size_t errstr_size)
{
    char *endpoint = NULL, *complete = NULL;
    parley_err_t err;
    int worker_id = -1;
    bool worker_id_defaulted = false;
    int log_level = 0;
    pl_dialect_choice dialect = {.dialect = PL_DIALECT_NATIVE};

    if (!conf || !api_key)
        return conf_error(errstr, errstr_size, PARLEY_ERR_INVALID_ARG,
                          "no configuration");
    *api_key = NULL;
    if (!conf->event_cb)
        return conf_error(errstr, errstr_size, PARLEY_ERR_INVALID_ARG,
                          "no event callback: call "
                          "parley_conf_set_event_cb()");
    err = resolve_endpoint(conf, &endpoint, errstr, errstr_size);
    if (err == PARLEY_OK)
        err = resolve_worker_id(conf, &worker_id, &worker_id_defaulted, errstr, errstr_size);
    const char *given = endpoint ? endpoint : conf->endpoint;
    if (err == PARLEY_OK)
        err = resolve_dialect(conf, given, &dialect, errstr, errstr_size);
    if (err == PARLEY_OK)
        err = check_model(conf, given, &dialect, errstr, errstr_size);
    if (err == PARLEY_OK && !(complete = pl_endpoint_complete(given, dialect.dialect)))
        err = conf_error(errstr, errstr_size, PARLEY_ERR_NO_MEMORY, "out of memory");
    if (err == PARLEY_OK)
        err = resolve_log_level(conf, &log_level, errstr, errstr_size);
    if (err == PARLEY_OK)
        err = check_cross(conf, errstr, errstr_size);
    /* The key is read last, so nothing can fail while we hold it. */
    if (err == PARLEY_OK && conf->api_key_file)
        err = key_from_file(conf->api_key_file, "API key", PARLEY_ERR_NO_KEY, api_key, errstr,
                            errstr_size);
    else if (err == PARLEY_OK)
        err = resolve_key_from_env(conf, &dialect, api_key, errstr, errstr_size);
    free(endpoint);
    if (err != PARLEY_OK) {
        free(complete);
        return err;
    }
    free(conf->endpoint);
    conf->endpoint = complete;
    conf->worker_id = worker_id;
    conf->worker_id_defaulted = worker_id_defaulted;
    conf->log_level = log_level;
    conf->dialect = dialect.dialect;
    snprintf(conf->dialect_shown, sizeof(conf->dialect_shown), "%s dialect, %s",
             pl_dialect_name(dialect.dialect), dialect.why);
    return PARLEY_OK;
}

parley_err_t pl_conf_store_password(const parley_conf_t *conf, char **password,
                                    char *errstr, size_t errstr_size)
{
    *password = NULL;
    if (conf->store_password_file)
        return key_from_file(conf->store_password_file, "session store password",
                             PARLEY_ERR_INVALID_VALUE, password, errstr, errstr_size);
    const char *value = getenv(conf->store_password_env);
    if (!value || !*value)
        return PARLEY_OK;
    const char *why = key_problem(value, strlen(value));
    if (why)
        return conf_error(errstr, errstr_size, PARLEY_ERR_INVALID_VALUE,
                          "the session store password in environment variable %s %s",
                          conf->store_password_env, why);
    if (!(*password = strdup(value)))
        return conf_error(errstr, errstr_size, PARLEY_ERR_NO_MEMORY, "out of memory");
    return PARLEY_OK;
}
