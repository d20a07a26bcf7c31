/*
 * The baseline for `parley bench`: "direct API calls" as people write them
 * without an SDK. One thread per concurrent caller, each making blocking
 * libcurl easy requests to the Anthropic Messages API (POST /v1/messages,
 * "stream": true) and reading the server-sent events just enough to collect
 * the text. It takes the same load options as `parley bench`, checks every
 * reply against the echo model the same way, and prints the same JSON line
 * (retries is always 0: a failed request is not retried; connections is
 * the sum of CURLINFO_NUM_CONNECTS).
 *
 *   --mode new        a new easy handle, so a new TCP connection, for every
 *                     request (CURLOPT_FORBID_REUSE as well), the way code
 *                     that calls a helper per request ends up
 *   --mode keepalive  one easy handle per thread, its connection kept alive
 *                     from request to request
 *
 * Limits met on purpose, since they are what this baseline shows:
 *   - One thread per caller: each has a stack (DIRECT_STACK_BYTES, small on
 *     purpose; the default 8 MiB would reserve 80 GB of address space at
 *     10,000 callers), a kernel task (ulimit -u, kernel.threads-max), and
 *     two file descriptors: its socket and the eventfd of the multi handle
 *     inside curl_easy_perform(). So 10,000 callers need over 20,000
 *     descriptors: past ulimit -n, libcurl says "Could not connect to
 *     server" with no errno, and such a caller, as nothing here backs off,
 *     spends the rest of the budget failing at once (seen: 3 of 10,000
 *     callers at ulimit -n 20,000 turned 39,000 of 50,000 requests into
 *     errors). pthread_create failing is reported on stderr and the run goes
 *     on with the threads it has.
 *   - Mode new closes a connection per request on the client side, which
 *     leaves it in TIME_WAIT for 60 s. At 28,232 ephemeral ports (Linux's
 *     default 32768-60999) that caps a sustained rate to one server address
 *     at about 470 new connections a second, after which connect() fails
 *     with EADDRNOTAVAIL ("Couldn't connect"), unless the kernel may reuse
 *     TIME_WAIT ports (net.ipv4.tcp_tw_reuse: 2, the default, allows it on
 *     loopback only; 1 everywhere).
 */
#include <curl/curl.h>
#include <json.h>

#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_echo.h"
#include "bench_gate.h"
#include "bench_options.h"
#include "bench_progress.h"
#include "bench_record.h"
#include "buf.h"

#define PROG "direct"
#define MODEL "parley-echo-1"
#define MAX_TOKENS 1024
#define MESSAGES_PATH "/v1/messages"
#define ANTHROPIC_VERSION "2023-06-01"
/* Enough for libcurl and json-c, including under the sanitizers. */
#define DIRECT_STACK_BYTES (256 * 1024)
#define REQUEST_TIMEOUT_S 300L /* parley's request.timeout.ms default */
#define ERRORS_SHOWN 5

typedef enum direct_mode { MODE_NEW, MODE_KEEPALIVE } direct_mode;

typedef struct direct_run {
    bench_load load;
    direct_mode mode;
    char *url;
    struct curl_slist *headers; /* read-only once made: shared by the threads */
    bench_gate gate;
    bench_record record;
    atomic_uint_fast64_t conversations;
    atomic_uint_fast64_t connections;
    atomic_uint errors_shown;
} direct_run;

/* One caller: its thread runs conversations one after the other. */
typedef struct direct_caller {
    direct_run *run;
    pthread_t thread;
    CURL *kept;                   /* mode keepalive: the thread's one handle */
    struct json_object *history;  /* the conversation's messages so far */
    uint64_t conversation;
    unsigned long turn;           /* the turn in flight, from 1 */
    char message[BENCH_MESSAGE_MAX];
    bench_expect expect;
    /* The answer being read. */
    pl_buf line;                  /* an event-stream line not yet complete */
    pl_buf reply;                 /* the text so far */
    uint64_t first_piece_ns, end_ns;
    bool ended;                   /* message_stop came */
    char failure[256];            /* why the answer is not a reply; "" if none */
} direct_caller;

static void synopsis(FILE *out)
{
    fputs("usage: " PROG " --mode new|keepalive --endpoint URL --requests R\n"
          "              [--concurrency N] [--turns K] [--duration S]\n",
          out);
}

/* Bad usage: what is wrong was said; the synopsis and where to learn more. */
static int usage_error(void)
{
    synopsis(stderr);
    fputs("Run 'direct --help' for the details.\n", stderr);
    return 2;
}

static int help(void)
{
    synopsis(stdout);
    fputs("\n"
          "The baseline of `parley bench`: a thread per concurrent caller, blocking\n"
          "libcurl requests to the Anthropic Messages API (POST /v1/messages,\n"
          "streamed) of an echo-model server (parley-refserver). Prints the same JSON\n"
          "line as `parley bench`.\n"
          "\n"
          "  --mode new       a new connection for every request\n"
          "  --mode keepalive one kept-alive connection per thread\n"
          "  --endpoint URL   http://HOST:PORT (the path defaults to " MESSAGES_PATH ")\n"
          BENCH_LOAD_USAGE
          "\n"
          "The API key comes from ANTHROPIC_API_KEY, else PARLEY_API_KEY (none: no\n"
          "x-api-key header). Exit status: 0 when every reply was the expected one,\n"
          "1 when a request failed or a reply differed, 2 on bad usage.\n",
          stdout);
    return 0;
}

static void show_error(direct_run *run, const char *what, const char *detail)
{
    if (atomic_fetch_add(&run->errors_shown, 1) < ERRORS_SHOWN)
        fprintf(stderr, PROG ": %s: %s\n", what, detail);
}

/* ---- reading the event stream ------------------------------------------ */

static void fail(direct_caller *c, const char *why)
{
    if (!c->failure[0])
        snprintf(c->failure, sizeof(c->failure), "%s", why);
}

static const char *string_at(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* A piece of the reply. */
static void on_text(direct_caller *c, const char *text, size_t len)
{
    if (!c->first_piece_ns)
        c->first_piece_ns = bench_now_ns();
    bench_expect_piece(&c->expect, text, len);
    if (pl_buf_append(&c->reply, text, len) != 0)
        fail(c, "out of memory");
}

/* One "data:" line: a text delta, the end, or an error. Other events
 * (message_start, ping, content_block_stop...) carry nothing we need. */
static void on_data(direct_caller *c, const char *json, size_t len)
{
    struct json_tokener *tok = json_tokener_new();
    struct json_object *event = tok ? json_tokener_parse_ex(tok, json, (int)len) : NULL;
    json_tokener_free(tok);
    const char *type = event ? string_at(event, "type") : NULL;
    struct json_object *delta, *text;
    if (!type) {
        fail(c, "an event that is not a JSON object with a type");
    } else if (!strcmp(type, "content_block_delta") &&
               json_object_object_get_ex(event, "delta", &delta) &&
               json_object_object_get_ex(delta, "text", &text) &&
               json_object_is_type(text, json_type_string)) {
        on_text(c, json_object_get_string(text), (size_t)json_object_get_string_len(text));
    } else if (!strcmp(type, "message_stop")) {
        c->end_ns = bench_now_ns();
        c->ended = true;
    } else if (!strcmp(type, "error")) {
        fail(c, json_object_to_json_string_ext(event, JSON_C_TO_STRING_PLAIN));
    }
    json_object_put(event);
}

static void on_line(direct_caller *c, const char *line, size_t len)
{
    if (len && line[len - 1] == '\r')
        len--;
    if (len >= 5 && !memcmp(line, "data:", 5)) {
        size_t skip = len > 5 && line[5] == ' ' ? 6 : 5;
        on_data(c, line + skip, len - skip);
    }
}

/* libcurl hands the body over in pieces that split lines anywhere. */
static size_t on_body(char *data, size_t size, size_t n, void *userdata)
{
    direct_caller *c = userdata;
    size_t len = size * n, start = 0;
    for (size_t i = 0; i < len; i++) {
        if (data[i] != '\n')
            continue;
        if (c->line.len) {
            if (pl_buf_append(&c->line, data + start, i - start) != 0)
                return 0;
            on_line(c, c->line.data, c->line.len);
            pl_buf_reset(&c->line);
        } else {
            on_line(c, data + start, i - start);
        }
        start = i + 1;
    }
    return pl_buf_append(&c->line, data + start, len - start) == 0 ? len : 0;
}

/* ---- one request ------------------------------------------------------- */

/* The request body: the history, then the new user turn (kept in the
 * history: a failed turn ends the conversation anyway). */
static char *request_body(direct_caller *c)
{
    struct json_object *turn = json_object_new_object();
    json_object_object_add(turn, "role", json_object_new_string("user"));
    json_object_object_add(turn, "content", json_object_new_string(c->message));
    json_object_array_add(c->history, turn);

    struct json_object *root = json_object_new_object();
    json_object_object_add(root, "model", json_object_new_string(MODEL));
    json_object_object_add(root, "max_tokens", json_object_new_int(MAX_TOKENS));
    json_object_object_add(root, "stream", json_object_new_boolean(1));
    json_object_object_add(root, "messages", json_object_get(c->history));
    char *body = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
    json_object_put(root);
    return body;
}

static void keep_reply(direct_caller *c)
{
    struct json_object *turn = json_object_new_object();
    json_object_object_add(turn, "role", json_object_new_string("assistant"));
    json_object_object_add(turn, "content",
                           json_object_new_string_len(c->reply.data ? c->reply.data : "",
                                                      (int)c->reply.len));
    json_object_array_add(c->history, turn);
}

/* Send the caller's current turn and read the answer. Returns true when
 * the reply came (matching or not), false when the request failed. */
static bool request(direct_caller *c)
{
    direct_run *run = c->run;
    bench_echo_message(c->message, sizeof(c->message), c->conversation, c->turn);
    bench_expect_reply(&c->expect, c->turn, c->message);
    pl_buf_reset(&c->line);
    pl_buf_reset(&c->reply);
    c->first_piece_ns = c->end_ns = 0;
    c->ended = false;
    c->failure[0] = '\0';

    char *body = request_body(c);
    CURL *h = c->kept ? c->kept : curl_easy_init();
    if (!body || !h) {
        free(body);
        if (h && !c->kept)
            curl_easy_cleanup(h);
        bench_record_error(&run->record);
        show_error(run, "request failed", "out of memory");
        return false;
    }
    curl_easy_setopt(h, CURLOPT_URL, run->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, run->headers);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* libcurl's rule for threads */
    curl_easy_setopt(h, CURLOPT_TIMEOUT, REQUEST_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, run->mode == MODE_NEW ? 1L : 0L);
    char curl_err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);

    uint64_t sent_ns = bench_now_ns();
    CURLcode rc = curl_easy_perform(h);
    long status = 0, connects = 0, os_errno = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &connects);
    curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
    atomic_fetch_add_explicit(&run->connections, (uint64_t)connects, memory_order_relaxed);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL); /* curl_err goes out of scope */
    if (!c->kept)
        curl_easy_cleanup(h);
    free(body);

    char why[320];
    if (rc != CURLE_OK && os_errno) /* e.g. EADDRNOTAVAIL: no port out of TIME_WAIT */
        snprintf(why, sizeof(why), "%s (%s)", curl_err[0] ? curl_err : curl_easy_strerror(rc),
                 strerror((int)os_errno));
    else if (rc != CURLE_OK)
        snprintf(why, sizeof(why), "%s", curl_err[0] ? curl_err : curl_easy_strerror(rc));
    else if (status != 200) /* its JSON body has no newline: all in `line` */
        snprintf(why, sizeof(why), "HTTP %ld: %.*s", status, (int)c->line.len,
                 c->line.data ? c->line.data : "");
    else if (c->failure[0])
        snprintf(why, sizeof(why), "%s", c->failure);
    else if (!c->ended)
        snprintf(why, sizeof(why), "the stream ended without message_stop");
    else {
        bool matches = bench_expect_met(&c->expect, NULL, 0);
        bench_record_reply(&run->record, sent_ns, c->first_piece_ns, c->end_ns, matches);
        if (!matches)
            show_error(run, "reply differs from the echo model's",
                       c->reply.data ? c->reply.data : "");
        keep_reply(c);
        return true;
    }
    bench_record_error(&run->record);
    show_error(run, "request failed", why);
    return false;
}

/* ---- callers ----------------------------------------------------------- */

static void new_conversation(direct_caller *c)
{
    json_object_put(c->history);
    c->history = json_object_new_array();
    c->conversation = atomic_fetch_add(&c->run->conversations, 1) + 1;
    c->turn = 1;
}

static void *caller_main(void *arg)
{
    direct_caller *c = arg;
    direct_run *run = c->run;
    if (run->mode == MODE_KEEPALIVE)
        c->kept = curl_easy_init(); /* NULL: each request then says so */
    bool same_conversation = false;
    while (bench_gate_claim(&run->gate)) {
        if (same_conversation)
            c->turn++;
        else
            new_conversation(c);
        /* A failed turn is not in the server's view of the history: the
         * conversation starts afresh, as in `parley bench`. */
        same_conversation = request(c) && c->turn < run->load.turns;
    }
    if (c->kept)
        curl_easy_cleanup(c->kept);
    json_object_put(c->history);
    pl_buf_free(&c->line);
    pl_buf_free(&c->reply);
    bench_gate_retire(&run->gate);
    return NULL;
}

/* ---- setup ------------------------------------------------------------- */

/* The endpoint, with the Messages path when it names a host only. */
static char *messages_url(const char *endpoint)
{
    const char *authority = strstr(endpoint, "://");
    const char *path = authority ? strchr(authority + 3, '/') : NULL;
    size_t base = path ? (size_t)(path - endpoint) : strlen(endpoint);
    bool bare = !path || !strcmp(path, "/");
    pl_buf url = PL_BUF_INIT;
    if (pl_buf_append(&url, endpoint, base) != 0 ||
        pl_buf_append_str(&url, bare ? MESSAGES_PATH : path) != 0) {
        pl_buf_free(&url);
        return NULL;
    }
    return pl_buf_steal(&url, NULL);
}

static struct curl_slist *request_headers(void)
{
    const char *key = getenv("ANTHROPIC_API_KEY");
    if (!key || !key[0])
        key = getenv("PARLEY_API_KEY");
    struct curl_slist *h = curl_slist_append(NULL, "content-type: application/json");
    h = h ? curl_slist_append(h, "anthropic-version: " ANTHROPIC_VERSION) : NULL;
    if (h && key && key[0]) {
        pl_buf line = PL_BUF_INIT;
        if (pl_buf_append_str(&line, "x-api-key: ") == 0 && pl_buf_append_str(&line, key) == 0)
            h = curl_slist_append(h, line.data);
        else
            h = NULL;
        /* The key is in the list now; do not leave a copy lying around. */
        if (line.data)
            memset(line.data, 0, line.len);
        pl_buf_free(&line);
    }
    return h;
}

enum { OPT_MODE = BENCH_OPT__NEXT };

static int parse_args(int argc, char **argv, direct_run *run)
{
    static const struct option opts[] = {
        BENCH_LOAD_OPTIONS,
        {"mode", required_argument, NULL, OPT_MODE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool mode_given = false;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c >= BENCH_OPT_ENDPOINT && c < BENCH_OPT__NEXT) {
            if (!bench_load_option(&run->load, c, optarg, PROG))
                return usage_error();
        } else if (c == OPT_MODE && (!strcmp(optarg, "new") || !strcmp(optarg, "keepalive"))) {
            run->mode = optarg[0] == 'n' ? MODE_NEW : MODE_KEEPALIVE;
            mode_given = true;
        } else if (c == OPT_MODE) {
            fprintf(stderr, PROG ": --mode needs new or keepalive, got \"%s\"\n", optarg);
            return usage_error();
        } else if (c == 'h') {
            return help();
        } else {
            return usage_error();
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument \"%s\"\n", argv[optind]);
        return usage_error();
    }
    if (!mode_given || !run->load.endpoint) {
        fprintf(stderr, PROG ": --mode and --endpoint are required\n");
        return usage_error();
    }
    if (!bench_load_complete(&run->load, PROG))
        return usage_error();
    return -1;
}

/* Start the callers, wait for them, print the results. */
static int run_load(direct_run *run, direct_caller *callers, unsigned long ncallers)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, DIRECT_STACK_BYTES);
    uint64_t start_ns = bench_now_ns();
    bench_progress progress;
    bench_progress_init(&progress, run->load.requests, run->load.duration_s, start_ns);
    unsigned long started = 0;
    for (; started < ncallers; started++) {
        callers[started].run = run;
        int err = pthread_create(&callers[started].thread, &attr, caller_main, &callers[started]);
        if (err != 0) {
            fprintf(stderr, PROG ": only %lu of %lu threads could start: %s\n", started,
                    ncallers, strerror(err));
            break;
        }
    }
    pthread_attr_destroy(&attr);
    for (unsigned long i = started; i < ncallers; i++)
        bench_gate_retire(&run->gate); /* callers that never ran */
    double elapsed_s =
        bench_gate_wait(&run->gate, &run->record, &progress, start_ns, run->load.duration_s);
    for (unsigned long i = 0; i < started; i++)
        pthread_join(callers[i].thread, NULL);

    bench_totals totals = {.retries = 0,
                           .connections = atomic_load(&run->connections),
                           .elapsed_s = elapsed_s};
    bench_record_print_json(&run->record, &totals, stdout);
    return atomic_load(&run->record.errors) || atomic_load(&run->record.mismatches) ? 1 : 0;
}

int main(int argc, char **argv)
{
    direct_run run = {0};
    bench_load_init(&run.load);
    int status = parse_args(argc, argv, &run);
    if (status >= 0)
        return status;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, PROG ": libcurl could not be initialised\n");
        return 2;
    }
    unsigned long ncallers = run.load.concurrency < run.load.requests ? run.load.concurrency
                                                                      : run.load.requests;
    direct_caller *callers = calloc(ncallers, sizeof(*callers));
    run.url = messages_url(run.load.endpoint);
    run.headers = request_headers();
    if (callers && run.url && run.headers &&
        bench_record_init(&run.record, run.load.requests) &&
        bench_gate_init(&run.gate, run.load.requests, ncallers)) {
        status = run_load(&run, callers, ncallers);
        bench_gate_destroy(&run.gate);
    } else {
        fprintf(stderr, PROG ": out of memory for %lu callers and %lu requests\n", ncallers,
                run.load.requests);
        status = 2;
    }
    bench_record_free(&run.record);
    curl_slist_free_all(run.headers);
    free(run.url);
    free(callers);
    curl_global_cleanup();
    return status;
}
