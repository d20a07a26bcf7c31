/*
 * agent: a small tool-using agent. The model may call two local tools, a
 * calculator and a clock; each call is run as soon as it arrives and its
 * result goes back as the next turn, until the model answers without a
 * call. The loop lives in the event callback: a session's events never run
 * concurrently, so the agent's state needs no lock.
 *
 *   PARLEY_API_KEY=... PARLEY_ENDPOINT=ws://127.0.0.1:8765/v1/stream \
 *       ./agent 'call calculator {"a":6,"op":"*","b":7}'
 *
 * (The reference server's echo model calls a tool when the turn says
 * `call NAME ARGS`; a real model decides for itself: set PARLEY_MODEL and
 * ask "what is 6 times 7?". PARLEY_DIALECT chooses the API behind an http
 * endpoint: anthropic or openai.)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "parley.h"

static const char *const tools_json =
    "[{\"name\":\"calculator\",\"description\":\"Computes a op b\","
    "\"input_schema\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"number\"},"
    "\"op\":{\"type\":\"string\",\"enum\":[\"+\",\"-\",\"*\",\"/\"]},"
    "\"b\":{\"type\":\"number\"}},\"required\":[\"a\",\"op\",\"b\"]}},"
    "{\"name\":\"clock\",\"description\":\"The time now, UTC\","
    "\"input_schema\":{\"type\":\"object\",\"properties\":{}}}]";

typedef struct agent {
    parley_session_t *session;
    parley_turn_t *results; /* the tool results for the next turn */
    int steps;              /* turns sent, to stop a model that never ends */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int finished;           /* 1: answered, -1: failed */
} agent;

#define MAX_STEPS 8

/* The value of "key" in a flat JSON object, as text (enough for the
 * calculator's input; a real agent would use a JSON library). */
static const char *member(const char *json, const char *key, char *out, size_t size)
{
    char quoted[64];
    snprintf(quoted, sizeof(quoted), "\"%s\"", key);
    const char *p = strstr(json, quoted);
    if (!p || !(p = strchr(p + strlen(quoted), ':')))
        return NULL;
    p += strspn(p + 1, " ") + 1;
    size_t n = *p == '"' ? strcspn(p + 1, "\"") : strcspn(p, ",}");
    if (*p == '"')
        p++;
    snprintf(out, size, "%.*s", (int)n, p);
    return out;
}

/* Run one tool; the result text goes into out. Returns 0, or -1 when the
 * call was wrong (the text then says why). */
static int run_tool(const char *name, const char *input, char *out, size_t size)
{
    if (!strcmp(name, "clock")) {
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(out, size, "%H:%M UTC", &tm);
        return 0;
    }
    char a[32], op[8], b[32];
    if (strcmp(name, "calculator") || !member(input, "a", a, sizeof(a)) ||
        !member(input, "op", op, sizeof(op)) || !member(input, "b", b, sizeof(b))) {
        snprintf(out, size, "unknown tool or missing argument");
        return -1;
    }
    double x = strtod(a, NULL), y = strtod(b, NULL), r;
    switch (op[0]) {
    case '+': r = x + y; break;
    case '-': r = x - y; break;
    case '*': r = x * y; break;
    case '/':
        if (y == 0) {
            snprintf(out, size, "division by zero");
            return -1;
        }
        r = x / y;
        break;
    default:
        snprintf(out, size, "unknown operator %s", op);
        return -1;
    }
    snprintf(out, size, "%g", r);
    return 0;
}

static void finish(agent *ag, int how)
{
    pthread_mutex_lock(&ag->mu);
    ag->finished = how;
    pthread_cond_signal(&ag->cv);
    pthread_mutex_unlock(&ag->mu);
}

static void on_event(parley_client_t *client, const parley_event_t *ev, void *opaque)
{
    (void)client, (void)opaque;
    agent *ag = parley_event_opaque(ev); /* given with each turn */
    size_t len;
    const char *content = parley_event_content(ev, &len);
    char result[128];
    switch (parley_event_type(ev)) {
    case PARLEY_EVENT_TOOL_USE: {
        int failed = run_tool(parley_event_tool_name(ev), content, result, sizeof(result));
        printf("tool: %s %.*s -> %s\n", parley_event_tool_name(ev), (int)len, content, result);
        if (!ag->results)
            ag->results = parley_turn_new();
        parley_turn_add_tool_result(ag->results, parley_event_tool_id(ev), result, failed);
        break;
    }
    case PARLEY_EVENT_DONE:
        printf("assistant: %.*s\n", (int)len, content);
        if (!strcmp(parley_event_stop_reason(ev), "tool_use") && ag->results &&
            ++ag->steps < MAX_STEPS) {
            parley_err_t err = parley_send_turn(ag->session, ag->results, ag, NULL, 0);
            parley_turn_destroy(ag->results);
            ag->results = NULL;
            if (err != PARLEY_OK) {
                fprintf(stderr, "agent: cannot send the tool results: %s\n", parley_err2str(err));
                finish(ag, -1);
            }
            break;
        }
        finish(ag, 1);
        break;
    case PARLEY_EVENT_ERROR:
        fprintf(stderr, "agent: %.*s (%s)\n", (int)len, content,
                parley_err2name(parley_event_error(ev)));
        finish(ag, -1);
        break;
    default: /* text pieces and thinking: the DONE shows the whole text */
        break;
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: agent MESSAGE\n");
        return 2;
    }
    agent ag = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    char err[512];
    parley_conf_t *conf = parley_conf_new();
    parley_conf_set_event_cb(conf, on_event, NULL);
    const char *model = getenv("PARLEY_MODEL"), *dialect = getenv("PARLEY_DIALECT");
    if (parley_conf_set(conf, "tools", tools_json, err, sizeof(err)) != PARLEY_OK ||
        (model && parley_conf_set(conf, "model", model, err, sizeof(err)) != PARLEY_OK) ||
        (dialect && parley_conf_set(conf, "dialect", dialect, err, sizeof(err)) != PARLEY_OK)) {
        fprintf(stderr, "agent: %s\n", err);
        parley_conf_destroy(conf);
        return 2;
    }
    parley_client_t *client = parley_client_new(conf, err, sizeof(err));
    if (!client) {
        fprintf(stderr, "agent: %s\n", err);
        parley_conf_destroy(conf);
        return 2;
    }
    ag.session = parley_session_open(client, NULL, err, sizeof(err));
    if (!ag.session || parley_start(client) != PARLEY_OK) {
        fprintf(stderr, "agent: %s\n", ag.session ? "cannot start" : err);
        parley_client_destroy(client);
        return 2;
    }
    printf("user: %s\n", argv[1]);
    parley_err_t sent = parley_send_opaque(ag.session, argv[1], &ag, NULL, -1);
    if (sent == PARLEY_OK) {
        pthread_mutex_lock(&ag.mu);
        while (!ag.finished)
            pthread_cond_wait(&ag.cv, &ag.mu);
        pthread_mutex_unlock(&ag.mu);
    } else {
        fprintf(stderr, "agent: %s\n", parley_err2str(sent));
    }
    parley_client_destroy(client);
    parley_turn_destroy(ag.results);
    return sent == PARLEY_OK && ag.finished == 1 ? 0 : 1;
}
