/*
 * quickstart: eight conversations of three turns each, at the same time, over
 * shared connections. Each reply streams into the callback piece by piece;
 * when a turn is done the callback sends the conversation's next turn.
 *
 *   PARLEY_API_KEY=... PARLEY_ENDPOINT=ws://127.0.0.1:8765/v1/stream ./quickstart
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley.h"

#define SESSIONS 8
#define TURNS 3

static const char *const turns[TURNS] = {"hello", "tell me more", "thank you"};

typedef struct conversation {
    parley_session_t *session;
    int next_turn;       /* touched only by this session's callbacks */
    char reply[TURNS][256];
    size_t reply_len[TURNS];
    int failed;
} conversation;

static conversation convs[SESSIONS];

static conversation *find(const parley_event_t *ev)
{
    parley_session_t *s = parley_event_session(ev);
    for (int i = 0; i < SESSIONS; i++)
        if (convs[i].session == s)
            return &convs[i];
    return NULL;
}

/* Runs on a worker thread; one session's events never run concurrently, so
 * the conversation needs no lock. */
static void on_event(parley_client_t *client, const parley_event_t *ev, void *opaque)
{
    (void)client;
    (void)opaque;
    conversation *c = find(ev);
    size_t len;
    const char *text = parley_event_content(ev, &len);
    int t = c->next_turn;
    switch (parley_event_type(ev)) {
    case PARLEY_EVENT_TEXT: /* one streamed piece */
        if (c->reply_len[t] + len < sizeof(c->reply[t])) {
            memcpy(c->reply[t] + c->reply_len[t], text, len);
            c->reply_len[t] += len;
        }
        break;
    case PARLEY_EVENT_DONE:
        printf("%s done turn %d: %s\n", parley_event_session_id(ev), t + 1, c->reply[t]);
        if (++c->next_turn < TURNS)
            parley_send(c->session, turns[c->next_turn], NULL);
        break;
    case PARLEY_EVENT_ERROR:
        fprintf(stderr, "%s failed: %s (%s)\n", parley_event_session_id(ev), text,
                parley_err2name(parley_event_error(ev)));
        c->failed = 1;
        break;
    default: /* thinking and tool calls: not ours to show */
        break;
    }
}

static int set(parley_conf_t *conf, const char *name, const char *value)
{
    char err[256];
    if (parley_conf_set(conf, name, value, err, sizeof(err)) != PARLEY_OK) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

int main(void)
{
    /* The key comes from PARLEY_API_KEY and the endpoint from
     * PARLEY_ENDPOINT: nothing secret lives in code. */
    parley_conf_t *conf = parley_conf_new();
    if (set(conf, "heartbeat.interval.s", "30") != 0)
        return 1;
    parley_conf_set_event_cb(conf, on_event, NULL);

    char err[512];
    parley_client_t *client = parley_client_new(conf, err, sizeof(err));
    if (!client) {
        fprintf(stderr, "cannot create the client: %s\n", err);
        parley_conf_destroy(conf);
        return 1;
    }
    for (int i = 0; i < SESSIONS; i++) {
        char id[32];
        snprintf(id, sizeof(id), "quickstart-%d", i + 1);
        convs[i].session = parley_session_open(client, id, err, sizeof(err));
    }
    parley_start(client); /* the workers and the I/O thread */
    for (int i = 0; i < SESSIONS; i++)
        parley_send(convs[i].session, turns[0], NULL);

    /* Each callback sends the next turn itself, so wait until nothing is left. */
    int status = 0;
    if (parley_flush(client, 30000) != PARLEY_OK) {
        fprintf(stderr, "timed out waiting for the replies\n");
        status = 1;
    }
    for (int i = 0; i < SESSIONS; i++) {
        printf("\n== conversation %s ==\n", parley_session_id(convs[i].session));
        for (int t = 0; t < convs[i].next_turn && t < TURNS; t++)
            printf("  you:    %s\n  parley: %s\n", turns[t], convs[i].reply[t]);
        if (convs[i].failed || convs[i].next_turn != TURNS)
            status = 1;
    }
    parley_client_destroy(client);
    return status;
}
