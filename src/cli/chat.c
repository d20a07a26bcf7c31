/*
 * `parley chat`: one conversation from the command line. Each MESSAGE (or
 * each line of standard input) is the next turn; a line of JSON blocks
 * (such as a tool_result) is sent as blocks. Replies stream to stdout, a
 * tool call prints as one line of compact JSON, thinking goes to stderr.
 */
#include "chat.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_properties.h"
#include "parley.h"

/* The largest file --tools or --history reads. */
#define CHAT_FILE_MAX (16 * 1024 * 1024)

/* The main thread waits for each turn's terminal event; the worker that
 * runs the session's events writes the output. */
typedef struct chat_state {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool turn_over;
    bool failed;
    /* Output of the turn in flight (touched by the session's events only). */
    bool printed;       /* anything on stdout this turn */
    bool at_line_start; /* stdout's last byte was a newline */
    bool thinking_open; /* thinking printed on stderr, not yet ended by a newline */
} chat_state;

/* s as a JSON string on f (a tool call's id and name, which a server
 * chooses; a --stop value). */
static void put_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void end_thinking(chat_state *st)
{
    if (st->thinking_open) {
        fputc('\n', stderr);
        st->thinking_open = false;
    }
}

static void print_tool_call(chat_state *st, const parley_event_t *ev, const char *input,
                            size_t len)
{
    if (!st->at_line_start)
        putchar('\n');
    fputs("{\"type\":\"tool_use\",\"id\":", stdout);
    put_json_string(stdout, parley_event_tool_id(ev));
    fputs(",\"name\":", stdout);
    put_json_string(stdout, parley_event_tool_name(ev));
    fputs(",\"input\":", stdout);
    fwrite(input, 1, len, stdout);
    fputs("}\n", stdout);
    st->printed = st->at_line_start = true;
}

static void on_event(parley_client_t *client, const parley_event_t *ev, void *opaque)
{
    (void)client;
    chat_state *st = opaque;
    size_t len;
    const char *content = parley_event_content(ev, &len);
    switch (parley_event_type(ev)) {
    case PARLEY_EVENT_THINKING:
        fwrite(content, 1, len, stderr);
        st->thinking_open = true;
        return;
    case PARLEY_EVENT_TEXT:
        end_thinking(st);
        fwrite(content, 1, len, stdout);
        fflush(stdout);
        if (len) {
            st->printed = true;
            st->at_line_start = content[len - 1] == '\n';
        }
        return;
    case PARLEY_EVENT_TOOL_USE:
        end_thinking(st);
        print_tool_call(st, ev, content, len);
        fflush(stdout);
        return;
    case PARLEY_EVENT_DONE:
        end_thinking(st);
        /* One reply per line; a tool call's line already ended it. */
        if (!st->printed || !st->at_line_start)
            fputc('\n', stdout);
        fflush(stdout);
        break;
    case PARLEY_EVENT_ERROR: {
        end_thinking(st);
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

/* Send text as the next turn: as blocks when it is JSON blocks (a
 * tool_result line), else as text. */
static parley_err_t send_line(parley_session_t *session, const char *text)
{
    const char *p = text + strspn(text, " \t");
    if (*p == '{' || *p == '[') {
        parley_turn_t *turn = parley_turn_new();
        if (!turn)
            return PARLEY_ERR_NO_MEMORY;
        parley_err_t err = parley_turn_add_json(turn, p, NULL, 0) == PARLEY_OK
                               ? parley_send_turn(session, turn, NULL, NULL, -1)
                               : PARLEY_ERR_INVALID_ARG;
        parley_turn_destroy(turn);
        if (err != PARLEY_ERR_INVALID_ARG)
            return err;
        /* Not blocks: JSON the user wants to talk about. */
    }
    return parley_send_wait(session, text, NULL, -1);
}

/* Send one turn and wait for its end. Returns false on any error. */
static bool chat_turn(parley_session_t *session, chat_state *st, const char *text)
{
    pthread_mutex_lock(&st->mu);
    st->turn_over = false;
    pthread_mutex_unlock(&st->mu);
    st->printed = false;
    st->at_line_start = true;
    parley_err_t err = send_line(session, text);
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

/* A whole file (at most CHAT_FILE_MAX bytes), NUL-terminated; NULL with a
 * message. */
static char *read_file(const char *path, const char *what, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "parley: cannot read the %s file %s: %s\n", what, path, strerror(errno));
        return NULL;
    }
    char *data = malloc(CHAT_FILE_MAX + 1);
    size_t n = data ? fread(data, 1, CHAT_FILE_MAX + 1, f) : 0;
    bool failed = !data || ferror(f) || n > CHAT_FILE_MAX;
    fclose(f);
    if (failed) {
        fprintf(stderr, "parley: cannot read the %s file %s: %s\n", what, path,
                n > CHAT_FILE_MAX ? "larger than 16 MiB" : "read error");
        free(data);
        return NULL;
    }
    data[n] = '\0';
    if (len)
        *len = n;
    return data;
}

static bool write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(data, 1, len, f) == len && fputc('\n', f) != EOF;
    if (f && fclose(f) != 0)
        ok = false;
    if (!ok)
        fprintf(stderr, "parley: cannot write the history to %s: %s\n", path, strerror(errno));
    return ok;
}

/* The --stop values as the JSON array stop.sequences takes (malloc'd), or
 * NULL when out of memory. */
static char *stop_json(char *const *stops, size_t n)
{
    char *json = NULL;
    size_t len;
    FILE *f = open_memstream(&json, &len);
    if (!f)
        return NULL;
    fputc('[', f);
    for (size_t i = 0; i < n; i++) {
        if (i)
            fputc(',', f);
        put_json_string(f, stops[i]);
    }
    fputc(']', f);
    if (fclose(f) != 0) {
        free(json);
        return NULL;
    }
    return json;
}

/* chat's options that are plain properties; the TLS ones come after these. */
static const cli_property_option chat_properties[] = {
    {"endpoint", "endpoint"},       {"dialect", "dialect"},
    {"model", "model"},             {"system", "system"},
    {"key-file", "api.key.file"},   {"temperature", "temperature"},
    {"thinking", "thinking.budget"},
    {"store", "session.store"},
};
#define NCHAT_PROPERTIES (sizeof(chat_properties) / sizeof(chat_properties[0]))
#define NCHAT_OPTIONS (NCHAT_PROPERTIES + CLI_TLS_OPTIONS_COUNT)

static const cli_property_option *chat_option(size_t i)
{
    return i < NCHAT_PROPERTIES ? &chat_properties[i] : &cli_tls_options[i - NCHAT_PROPERTIES];
}

typedef struct chat_options {
    const char *session_id;
    const char *export_path;
    const char *history_path;
} chat_options;

/* Parse chat's options into conf; returns -1 to go on, else an exit code. */
static int parse_chat_options(int argc, char **argv, parley_conf_t *conf, chat_options *o)
{
    enum { OPT_SESSION = 1000, OPT_SET, OPT_STOP, OPT_TOOLS, OPT_EXPORT, OPT_HISTORY,
           OPT_PROPERTY = 2000 };
    struct option opts[NCHAT_OPTIONS + 9];
    size_t n = 0;
    for (size_t i = 0; i < NCHAT_OPTIONS; i++)
        opts[n++] = (struct option){chat_option(i)->option, required_argument, NULL,
                                    OPT_PROPERTY + (int)i};
    opts[n++] = (struct option){"session", required_argument, NULL, OPT_SESSION};
    opts[n++] = (struct option){"set", required_argument, NULL, OPT_SET};
    opts[n++] = (struct option){"stop", required_argument, NULL, OPT_STOP};
    opts[n++] = (struct option){"tools", required_argument, NULL, OPT_TOOLS};
    opts[n++] = (struct option){"export", required_argument, NULL, OPT_EXPORT};
    opts[n++] = (struct option){"history", required_argument, NULL, OPT_HISTORY};
    opts[n++] = (struct option){"insecure", no_argument, NULL, 'k'};
    opts[n++] = (struct option){"help", no_argument, NULL, 'h'};
    opts[n] = (struct option){NULL, 0, NULL, 0};
    char *stops[argc > 0 ? argc : 1]; /* --stop values, at most one per argument */
    size_t nstops = 0;
    int c, status = -1;
    while (status < 0 && (c = getopt_long(argc, argv, "kh", opts, NULL)) != -1) {
        if (c >= OPT_PROPERTY) {
            if (!cli_conf_set(conf, chat_option((size_t)(c - OPT_PROPERTY))->property, optarg))
                status = 2;
        } else if (c == OPT_SESSION) {
            o->session_id = optarg;
        } else if (c == OPT_SET) {
            if (!cli_conf_set_assignment(conf, optarg))
                status = 2;
        } else if (c == OPT_STOP) {
            stops[nstops++] = optarg;
        } else if (c == OPT_TOOLS) {
            char *tools = read_file(optarg, "tools", NULL);
            if (!tools || !cli_conf_set(conf, "tools", tools))
                status = 2;
            free(tools);
        } else if (c == OPT_EXPORT) {
            o->export_path = optarg;
        } else if (c == OPT_HISTORY) {
            o->history_path = optarg;
        } else if (c == 'k') {
            if (!cli_conf_set_insecure(conf))
                status = 2;
        } else if (c == 'h') {
            status = chat_usage(stdout, 0);
        } else {
            status = chat_usage(stderr, 2);
        }
    }
    if (status < 0 && nstops) {
        char *json = stop_json(stops, nstops);
        if (!json || !cli_conf_set(conf, "stop.sequences", json))
            status = 2;
        free(json);
    }
    return status;
}

/* The session, from --history when given. */
static parley_session_t *open_session(parley_client_t *client, const chat_options *o)
{
    char err[512];
    parley_session_t *session;
    if (o->history_path) {
        size_t len;
        char *json = read_file(o->history_path, "history", &len);
        if (!json)
            return NULL;
        session = parley_session_open_with_history(client, o->session_id, json, len, err,
                                                   sizeof(err));
        free(json);
        if (!session)
            fprintf(stderr, "parley: the history in %s: %s\n", o->history_path, err);
        return session;
    }
    session = parley_session_open(client, o->session_id, err, sizeof(err));
    if (!session)
        fprintf(stderr, "parley: %s\n", err);
    return session;
}

/* With --store, the session's history comes from the store first: say
 * now, not at the first turn, when another process owns it. A turn an
 * earlier run left in flight is finished (and printed) before the new ones:
 * no event came before, so its end is the first turn_over. */
static bool session_ready(parley_session_t *session, chat_state *st)
{
    uint64_t recovered;
    parley_err_t err = parley_session_ready(session, -1, &recovered);
    if (err != PARLEY_OK) {
        fprintf(stderr, "parley: session %s: %s\n", parley_session_id(session),
                parley_err2str(err));
        return false;
    }
    if (!recovered)
        return true;
    fprintf(stderr, "parley: finishing turn %llu, left in flight by an earlier run\n",
            (unsigned long long)recovered);
    pthread_mutex_lock(&st->mu);
    while (!st->turn_over)
        pthread_cond_wait(&st->cv, &st->mu);
    bool ok = !st->failed;
    st->failed = false;
    pthread_mutex_unlock(&st->mu);
    return ok;
}

static bool export_history(parley_session_t *session, const char *path)
{
    char *json;
    size_t len;
    parley_err_t err = parley_session_export(session, &json, &len, -1);
    if (err != PARLEY_OK) {
        fprintf(stderr, "parley: cannot export the history: %s\n", parley_err2str(err));
        return false;
    }
    bool ok = write_file(path, json, len);
    parley_free(json);
    return ok;
}

int chat_main(int argc, char **argv)
{
    chat_options o = {0};
    chat_state st = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    parley_conf_t *conf = parley_conf_new();
    /* Failures reach the user through the events, waits (stalls, retries)
     * as warnings; PARLEY_LOG still overrides. */
    if (!conf || !cli_conf_set(conf, "workers", "1") || !cli_conf_set(conf, "connections", "1") ||
        !cli_conf_set(conf, "log.level", "warning")) {
        parley_conf_destroy(conf);
        return 2;
    }
    int status = parse_chat_options(argc, argv, conf, &o);
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
    parley_session_t *session = open_session(client, &o);
    if (!session || parley_start(client) != PARLEY_OK) {
        if (session)
            fprintf(stderr, "parley: cannot start the client\n");
        parley_client_destroy(client);
        return 2;
    }
    if (!session_ready(session, &st)) {
        parley_session_close(session);
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
    if (o.export_path && !export_history(session, o.export_path))
        ok = false;
    parley_session_close(session);
    parley_client_destroy(client);
    return ok ? 0 : 1;
}
