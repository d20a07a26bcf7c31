/*
 * The parley command-line tool.
 *   parley chat [--endpoint URL] [--model M] [--set NAME=VALUE]... [MESSAGE...]
 * sends each MESSAGE (or each line of stdin, after a prompt at a terminal)
 * as the next turn of one session and streams each reply to stdout, one
 * reply per line; a failed turn is reported and the next one sent.
 *   parley race-demo [--threads N] [--increments K] [--sleep-ms M]
 * runs examples/race_demo.c (docs/race-condition.md).
 *   parley bench --endpoint URL --requests R [--concurrency N] [--turns K] ...
 * runs a load against an echo-model server and prints one JSON line (bench.c).
 */
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "cli_properties.h"
#include "parley.h"
#include "race_demo.h"

/* The main thread waits for each turn's terminal event. */
typedef struct chat_state {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool turn_over;
    bool failed;
} chat_state;

static void on_event(parley_client_t *client, const parley_event_t *ev, void *opaque)
{
    (void)client;
    chat_state *st = opaque;
    size_t len;
    const char *content = parley_event_content(ev, &len);
    switch (parley_event_type(ev)) {
    case PARLEY_EVENT_TEXT:
        fwrite(content, 1, len, stdout);
        fflush(stdout);
        return;
    case PARLEY_EVENT_DONE:
        fputc('\n', stdout);
        fflush(stdout);
        break;
    case PARLEY_EVENT_ERROR: {
        char explained[2048];
        cli_explain(content, explained, sizeof(explained));
        fprintf(stderr, "parley: %s (%s)\n", explained,
                parley_err2name(parley_event_error(ev)));
        pthread_mutex_lock(&st->mu);
        st->failed = true;
        pthread_mutex_unlock(&st->mu);
        break;
    }
    default:
        return;
    }
    pthread_mutex_lock(&st->mu);
    st->turn_over = true;
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
}

/* The library's log lines as its default writes them, with the properties
 * named as this tool's options. */
static void on_log(const parley_client_t *client, int level, const char *facility,
                   const char *message, void *opaque)
{
    static const char *const names[] = {"ERROR", "WARNING", "NOTICE", "INFO", "DEBUG"};
    char explained[2048];
    (void)client, (void)opaque;
    cli_explain(message, explained, sizeof(explained));
    fprintf(stderr, "parley %s %s: %s\n",
            level >= PARLEY_LOG_ERROR && level <= PARLEY_LOG_DEBUG
                ? names[level - PARLEY_LOG_ERROR]
                : level < PARLEY_LOG_ERROR ? "CRITICAL" : "DEBUG",
            facility, explained);
}

static int usage(FILE *out, int status)
{
    fprintf(out,
            "usage: parley chat [--endpoint URL] [--dialect native|anthropic|openai]\n"
            "                   [--session ID] [--model M] [--system TEXT]\n"
            "                   [--key-file FILE] [--set NAME=VALUE]...\n"
            "                   [--cacert FILE] [--capath DIR] [--pinnedpubkey PINS]\n"
            "                   [--cert FILE] [--key FILE] [-k|--insecure] [MESSAGE...]\n"
            "       parley race-demo [--threads N] [--increments K] [--sleep-ms M]\n"
            "       parley bench --endpoint URL --requests R [--concurrency N] [--turns K]\n"
            "                    [--duration S] [--dialect D] [--connections C]\n"
            "                    [--set NAME=VALUE]... [TLS options]\n"
            "       parley --version\n"
            "\n"
            "chat   sends each MESSAGE as the next turn of one conversation and\n"
            "       prints each reply on its own line; with no MESSAGE, each line\n"
            "       of standard input is a turn (with a prompt at a terminal). A\n"
            "       failed turn is reported and the next one sent; the exit status\n"
            "       is 0 when every turn got its reply, 1 when any failed, 2 when\n"
            "       the options or the configuration are wrong. --set sets any\n"
            "       property (docs/configuration.md), e.g. --set max.tokens=200.\n"
            "race-demo  shows lost updates on a shared counter and three fixes\n"
            "           (atomic, mutex, actor); see docs/race-condition.md.\n"
            "bench  holds N conversations at once against a server answering with\n"
            "       the echo model (parley-refserver), checks every reply and prints\n"
            "       one JSON line of results; `parley bench --help` for the details.\n"
            "\n"
            "The endpoint comes from --endpoint or PARLEY_ENDPOINT: ws:// or wss://\n"
            "for the native protocol, http:// or https:// for the anthropic or\n"
            "openai dialect (--dialect; unset: anthropic for api.anthropic.com,\n"
            "openai for api.openai.com and other http(s) hosts). The API key comes\n"
            "from PARLEY_API_KEY (ANTHROPIC_API_KEY or OPENAI_API_KEY first for\n"
            "those dialects) or --key-file, never from the command line. The\n"
            "vendors' APIs need --model (docs/vendors.md). TLS options take curl's\n"
            "names.\n");
    return status;
}

/* Send one turn and wait for its end. Returns false on any error. */
static bool chat_turn(parley_session_t *session, chat_state *st, const char *text)
{
    pthread_mutex_lock(&st->mu);
    st->turn_over = false;
    pthread_mutex_unlock(&st->mu);
    parley_err_t err = parley_send(session, text, NULL);
    if (err != PARLEY_OK) {
        fprintf(stderr, "parley: cannot send \"%s\": %s\n", text, parley_err2str(err));
        return false;
    }
    pthread_mutex_lock(&st->mu);
    while (!st->turn_over)
        pthread_cond_wait(&st->cv, &st->mu);
    bool ok = !st->failed;
    st->failed = false; /* the next turn starts clean */
    pthread_mutex_unlock(&st->mu);
    return ok;
}

/* One turn per line; a prompt on stderr when a person types them. Returns
 * false when any turn failed. */
static bool chat_stdin(parley_session_t *session, chat_state *st)
{
    bool prompt = isatty(STDIN_FILENO);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    bool all_ok = true;
    if (prompt)
        fprintf(stderr, "parley chat: one turn per line; end with Ctrl-D\n");
    for (;;) {
        if (prompt) {
            fputs("> ", stderr);
            fflush(stderr);
        }
        if ((n = getline(&line, &cap, stdin)) < 0)
            break;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n > 0 && !chat_turn(session, st, line))
            all_ok = false;
    }
    if (prompt)
        fputc('\n', stderr);
    free(line);
    return all_ok;
}

/* chat's options that are plain properties; the TLS ones come after these. */
static const cli_property_option chat_properties[] = {
    {"endpoint", "endpoint"},       {"dialect", "dialect"},
    {"model", "model"},             {"system", "system"},
    {"key-file", "api.key.file"},
};
#define NCHAT_PROPERTIES (sizeof(chat_properties) / sizeof(chat_properties[0]))
#define NCHAT_OPTIONS (NCHAT_PROPERTIES + CLI_TLS_OPTIONS_COUNT)

static const cli_property_option *chat_option(size_t i)
{
    return i < NCHAT_PROPERTIES ? &chat_properties[i] : &cli_tls_options[i - NCHAT_PROPERTIES];
}

/* Parse chat's options into conf; returns -1 to go on, else an exit code. */
static int parse_chat_options(int argc, char **argv, parley_conf_t *conf,
                              const char **session_id)
{
    enum { OPT_SESSION = 1000, OPT_SET, OPT_PROPERTY = 2000 };
    struct option opts[NCHAT_OPTIONS + 5];
    size_t n = 0;
    for (size_t i = 0; i < NCHAT_OPTIONS; i++)
        opts[n++] = (struct option){chat_option(i)->option, required_argument, NULL,
                                    OPT_PROPERTY + (int)i};
    opts[n++] = (struct option){"session", required_argument, NULL, OPT_SESSION};
    opts[n++] = (struct option){"set", required_argument, NULL, OPT_SET};
    opts[n++] = (struct option){"insecure", no_argument, NULL, 'k'};
    opts[n++] = (struct option){"help", no_argument, NULL, 'h'};
    opts[n] = (struct option){NULL, 0, NULL, 0};
    int c;
    while ((c = getopt_long(argc, argv, "kh", opts, NULL)) != -1) {
        if (c >= OPT_PROPERTY) {
            if (!cli_conf_set(conf, chat_option((size_t)(c - OPT_PROPERTY))->property, optarg))
                return 2;
        } else if (c == OPT_SESSION) {
            *session_id = optarg;
        } else if (c == OPT_SET) {
            if (!cli_conf_set_assignment(conf, optarg))
                return 2;
        } else if (c == 'k') {
            if (!cli_conf_set_insecure(conf))
                return 2;
        } else if (c == 'h') {
            return usage(stdout, 0);
        } else {
            return usage(stderr, 2);
        }
    }
    return -1;
}

static int cmd_chat(int argc, char **argv)
{
    const char *session_id = NULL;
    chat_state st = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    parley_conf_t *conf = parley_conf_new();
    /* Failures reach the user through the events, waits (stalls, retries)
     * as warnings; PARLEY_LOG still overrides. */
    if (!conf || !cli_conf_set(conf, "workers", "1") || !cli_conf_set(conf, "connections", "1") ||
        !cli_conf_set(conf, "log.level", "warning")) {
        parley_conf_destroy(conf);
        return 2;
    }
    int status = parse_chat_options(argc, argv, conf, &session_id);
    if (status >= 0) {
        parley_conf_destroy(conf);
        return status;
    }
    parley_conf_set_event_cb(conf, on_event, &st);
    parley_conf_set_log_cb(conf, on_log, NULL);
    char err[512];
    parley_client_t *client = parley_client_new(conf, err, sizeof(err));
    if (!client) {
        cli_error(err);
        parley_conf_destroy(conf);
        return 2;
    }
    parley_session_t *session = parley_session_open(client, session_id, err, sizeof(err));
    if (!session || parley_start(client) != PARLEY_OK) {
        fprintf(stderr, "parley: %s\n", session ? "cannot start the client" : err);
        parley_client_destroy(client);
        return 2;
    }
    bool ok = true;
    if (optind < argc) {
        for (int i = optind; i < argc; i++)
            if (!chat_turn(session, &st, argv[i]))
                ok = false;
    } else {
        ok = chat_stdin(session, &st);
    }
    parley_session_close(session);
    parley_client_destroy(client);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr, 2);
    if (!strcmp(argv[1], "--version")) {
        printf("parley %s\n", parley_version_str());
        return 0;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "help"))
        return usage(stdout, 0);
    if (!strcmp(argv[1], "chat"))
        return cmd_chat(argc - 1, argv + 1);
    if (!strcmp(argv[1], "race-demo"))
        return race_demo_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "bench"))
        return bench_main(argc - 1, argv + 1);
    fprintf(stderr, "parley: unknown command \"%s\"\n", argv[1]);
    return usage(stderr, 2);
}
