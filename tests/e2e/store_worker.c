/*
 * One process of test_store_fleet's fleet: it drives conversations kept in
 * a session store, each "conv-N" a run of turns "conv N turn K", and takes
 * over more of them when told. Lines on stdin:
 *   take FIRST COUNT   open conv-FIRST .. conv-(FIRST+COUNT-1) and drive each
 *                      to TURNS turns, from wherever the store has it
 *   finish             wait until every conversation taken has its turns,
 *                      print "done COMPLETED RECOVERED" (turns completed here,
 *                      of which left in flight by a former owner) and exit
 *                      (1 on any error)
 * It prints "progress N" after each 50 completed turns, and an error line
 * on stderr for every failed turn.
 *
 *   store_worker STORE_URL ENDPOINT TURNS LEASE_MS
 * (the API key in PARLEY_API_KEY)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley.h"

#define MAX_CONVERSATIONS 1000

static int turns_wanted;
static _Atomic int completed_turns, failed_turns, finished_conversations, taken, recovered_turns;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;

static void say(FILE *f, const char *fmt, const char *a, long n)
{
    pthread_mutex_lock(&out_lock);
    fprintf(f, fmt, a, n);
    fflush(f);
    pthread_mutex_unlock(&out_lock);
}

/* Turns the session holds (its user messages); -1 when it did not answer. */
static int turns_held(parley_session_t *s, int timeout_ms)
{
    char *json;
    if (parley_session_export(s, &json, NULL, timeout_ms) != PARLEY_OK)
        return -1;
    int n = 0;
    for (const char *p = json; (p = strstr(p, "\"role\":\"user\"")); p++)
        n++;
    parley_free(json);
    return n;
}

static void conversation_finished(void)
{
    pthread_mutex_lock(&done_lock);
    atomic_fetch_add(&finished_conversations, 1);
    pthread_cond_broadcast(&done_cond);
    pthread_mutex_unlock(&done_lock);
}

/* Send turn k of the session's conversation (its id is "conv-N"). */
static void send_turn(parley_session_t *s, int k)
{
    char text[64];
    snprintf(text, sizeof(text), "conv %s turn %d", parley_session_id(s) + 5, k);
    parley_err_t err = parley_send(s, text, NULL);
    if (err != PARLEY_OK) {
        say(stderr, "store_worker: cannot send %s: %ld\n", text, (long)err);
        atomic_fetch_add(&failed_turns, 1);
        conversation_finished();
    }
}

static void on_event(parley_client_t *client, const parley_event_t *ev, void *opaque)
{
    (void)client, (void)opaque;
    parley_event_type_t type = parley_event_type(ev);
    if (type == PARLEY_EVENT_ERROR) {
        size_t len;
        const char *why = parley_event_content(ev, &len);
        pthread_mutex_lock(&out_lock);
        fprintf(stderr, "store_worker: %s: turn failed: %.*s (%s)\n",
                parley_event_session_id(ev), (int)len, why,
                parley_err2name(parley_event_error(ev)));
        pthread_mutex_unlock(&out_lock);
        atomic_fetch_add(&failed_turns, 1);
        conversation_finished();
        return;
    }
    if (type != PARLEY_EVENT_DONE)
        return;
    parley_session_t *s = parley_event_session(ev);
    /* The history does not hold this turn yet: it joins after DONE. */
    int done = turns_held(s, 0) + 1; /* its own callback: answered at once */
    int total = atomic_fetch_add(&completed_turns, 1) + 1;
    if (total % 50 == 0)
        say(stdout, "progress%s %ld\n", "", total);
    if (done < turns_wanted)
        send_turn(s, done + 1);
    else
        conversation_finished();
}

static parley_client_t *client_new(const char *store, const char *endpoint, const char *lease_ms)
{
    parley_conf_t *conf = parley_conf_new();
    char err[512];
    const char *props[][2] = {
        {"endpoint", endpoint},   {"session.store", store},       {"session.lease.ms", lease_ms},
        {"session.lease.wait.ms", "60000"}, {"workers", "2"},      {"connections", "2"},
        {"log.level", "warning"},
    };
    for (size_t i = 0; i < sizeof(props) / sizeof(props[0]); i++)
        if (parley_conf_set(conf, props[i][0], props[i][1], err, sizeof(err)) != PARLEY_OK) {
            fprintf(stderr, "store_worker: %s\n", err);
            exit(2);
        }
    parley_conf_set_event_cb(conf, on_event, NULL);
    parley_client_t *c = parley_client_new(conf, err, sizeof(err));
    if (!c || parley_start(c) != PARLEY_OK) {
        fprintf(stderr, "store_worker: %s\n", err);
        exit(2);
    }
    return c;
}

/* Open conv-first.. and start each from where the store has it. */
static void take(parley_client_t *c, parley_session_t **held, int first, int count)
{
    for (int i = first; i < first + count; i++) {
        char id[32], err[256];
        snprintf(id, sizeof(id), "conv-%d", i);
        parley_session_t *s = parley_session_open(c, id, err, sizeof(err));
        if (!s) {
            fprintf(stderr, "store_worker: %s: %s\n", id, err);
            exit(2);
        }
        held[atomic_fetch_add(&taken, 1)] = s;
        uint64_t recovered;
        parley_err_t rc = parley_session_ready(s, 120000, &recovered);
        if (rc != PARLEY_OK) {
            say(stderr, "store_worker: %s: not ready: %ld\n", id, (long)rc);
            atomic_fetch_add(&failed_turns, 1);
            conversation_finished();
            continue;
        }
        if (recovered) {
            atomic_fetch_add(&recovered_turns, 1);
            continue; /* its DONE goes on from there */
        }
        int n = turns_held(s, -1);
        if (n < 0)
            exit(2);
        if (n < turns_wanted)
            send_turn(s, n + 1);
        else
            conversation_finished();
    }
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: store_worker STORE_URL ENDPOINT TURNS LEASE_MS\n");
        return 2;
    }
    turns_wanted = atoi(argv[3]);
    parley_client_t *c = client_new(argv[1], argv[2], argv[4]);
    static parley_session_t *held[MAX_CONVERSATIONS];
    char line[128];
    while (fgets(line, sizeof(line), stdin)) {
        int first, count;
        if (sscanf(line, "take %d %d", &first, &count) == 2 && count > 0 &&
            atomic_load(&taken) + count <= MAX_CONVERSATIONS) {
            take(c, held, first, count);
        } else if (!strncmp(line, "finish", 6)) {
            break;
        }
    }
    pthread_mutex_lock(&done_lock);
    while (atomic_load(&finished_conversations) < atomic_load(&taken))
        pthread_cond_wait(&done_cond, &done_lock);
    pthread_mutex_unlock(&done_lock);
    for (int i = 0; i < atomic_load(&taken); i++)
        parley_session_close(held[i]);
    parley_client_destroy(c);
    printf("done %d %d\n", atomic_load(&completed_turns), atomic_load(&recovered_turns));
    return atomic_load(&failed_turns) ? 1 : 0;
}
