#include "fuzz_client.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fuzz_server.h"
#include "utf8.h"

typedef struct fz_request {
    uint64_t id;
    parley_session_t *session;
    char *text; /* the pieces delivered so far */
    size_t text_len;
    uint32_t next_seq;
    bool ended;
} fz_request;

struct fz_client {
    parley_client_t *client;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    fz_request req[FZ_MAX_REQUESTS];
    unsigned n, ended;
    bool served; /* the server wrote the round's input */
};

static bool contains(const char *s, size_t len, const char *needle)
{
    return memmem(s, len, needle, strlen(needle)) != NULL;
}

static fz_request *find(fz_client *c, uint64_t id)
{
    for (unsigned i = 0; i < c->n; i++)
        if (c->req[i].id == id)
            return &c->req[i];
    return NULL;
}

static void on_text(fz_request *r, const parley_event_t *ev)
{
    size_t len;
    const char *piece = parley_event_content(ev, &len);
    FZ_CHECK(piece && piece[len] == '\0');
    FZ_CHECK(parley_event_seq(ev) == r->next_seq);
    FZ_CHECK(pl_utf8_valid(piece, len));
    char *grown = realloc(r->text, r->text_len + len + 1);
    FZ_CHECK(grown);
    memcpy(grown + r->text_len, piece, len);
    r->text = grown;
    r->text_len += len;
    r->next_seq++;
}

static void on_done(fz_request *r, const parley_event_t *ev)
{
    const char *reason = parley_event_stop_reason(ev);
    FZ_CHECK(reason && (!strcmp(reason, "end_turn") || !strcmp(reason, "max_tokens") ||
                        !strcmp(reason, "cancelled")));
    size_t len;
    const char *reply = parley_event_content(ev, &len);
    FZ_CHECK(reply && reply[len] == '\0');
    FZ_CHECK(len == r->text_len && (len == 0 || memcmp(reply, r->text, len) == 0));
}

static void on_error(const parley_event_t *ev)
{
    parley_err_t err = parley_event_error(ev);
    FZ_CHECK(err > PARLEY_OK && err < PARLEY_ERR__COUNT);
    size_t len;
    const char *msg = parley_event_content(ev, &len);
    FZ_CHECK(msg && msg[len] == '\0' && len > 0);
    FZ_CHECK(!contains(msg, len, FZ_API_KEY));
}

static void on_event(parley_client_t *client, const parley_event_t *ev, void *opaque)
{
    (void)client;
    fz_client *c = opaque;
    pthread_mutex_lock(&c->mu);
    fz_request *r = find(c, parley_event_request_id(ev));
    FZ_CHECK(r != NULL);   /* no event for a request not in flight */
    FZ_CHECK(!r->ended);   /* nothing after the terminal event */
    FZ_CHECK(parley_event_session(ev) == r->session);
    switch (parley_event_type(ev)) {
    case PARLEY_EVENT_TEXT: on_text(r, ev); break;
    case PARLEY_EVENT_DONE: on_done(r, ev); break;
    case PARLEY_EVENT_ERROR: on_error(ev); break;
    default: FZ_CHECK(!"an event of unknown type");
    }
    if (parley_event_type(ev) != PARLEY_EVENT_TEXT) {
        r->ended = true;
        c->ended++;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
}

static void on_log(const parley_client_t *client, int level, const char *facility,
                   const char *message, void *opaque)
{
    (void)client;
    FZ_CHECK(level >= PARLEY_LOG_ERROR && level <= PARLEY_LOG_DEBUG);
    FZ_CHECK(facility && message);
    FZ_CHECK(!contains(message, strlen(message), FZ_API_KEY));
    if (opaque)
        fprintf(stderr, "%lld parley %d %s: %s\n", (long long)fz_now_ms(), level, facility,
                message);
}

fz_client *fz_client_new(const char *endpoint, const char *const *props)
{
    fz_client *c = calloc(1, sizeof(*c));
    FZ_CHECK(c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    setenv("FZ_PARLEY_KEY", FZ_API_KEY, 1);
    unsetenv("PARLEY_LOG"); /* the properties decide */
    parley_conf_t *conf = parley_conf_new();
    char err[256];
    const char *const common[] = {"endpoint", endpoint, "api_key.env", "FZ_PARLEY_KEY",
                                  "log.level", "7", "workers", "1", NULL};
    for (const char *const *p = common; *p; p += 2)
        if (parley_conf_set(conf, p[0], p[1], err, sizeof(err)) != PARLEY_OK)
            fz_fail("%s=%s: %s", p[0], p[1], err);
    for (const char *const *p = props; *p; p += 2)
        if (parley_conf_set(conf, p[0], p[1], err, sizeof(err)) != PARLEY_OK)
            fz_fail("%s=%s: %s", p[0], p[1], err);
    parley_conf_set_event_cb(conf, on_event, c);
    /* FUZZ_VERBOSE=1 shows the client's log lines on stderr. */
    const char *verbose = getenv("FUZZ_VERBOSE");
    parley_conf_set_log_cb(conf, on_log, verbose && !strcmp(verbose, "1") ? c : NULL);
    c->client = parley_client_new(conf, err, sizeof(err));
    if (!c->client)
        fz_fail("parley_client_new: %s", err);
    FZ_CHECK(parley_start(c->client) == PARLEY_OK);
    return c;
}

void fz_round_start(fz_client *c, unsigned n, uint64_t ids[])
{
    FZ_CHECK(n > 0 && n <= FZ_MAX_REQUESTS);
    /* Held while sending: an event that comes at once waits for its id. */
    pthread_mutex_lock(&c->mu);
    c->n = n;
    c->ended = 0;
    c->served = false;
    for (unsigned i = 0; i < n; i++) {
        fz_request *r = &c->req[i];
        *r = (fz_request){0};
        char sid[16], err[128];
        snprintf(sid, sizeof(sid), "s%u", i);
        r->session = parley_session_open(c->client, sid, err, sizeof(err));
        FZ_CHECK(r->session);
        FZ_CHECK(parley_send(r->session, "hi", &r->id) == PARLEY_OK);
        ids[i] = r->id;
    }
    pthread_mutex_unlock(&c->mu);
}

/* The moment timeout_ms from now, for pthread_cond_timedwait. */
static struct timespec deadline_in(int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    return until;
}

bool fz_round_wait(fz_client *c, int timeout_ms)
{
    struct timespec until = deadline_in(timeout_ms);
    pthread_mutex_lock(&c->mu);
    while (c->ended < c->n && pthread_cond_timedwait(&c->cv, &c->mu, &until) == 0)
        ;
    bool all = c->ended == c->n;
    pthread_mutex_unlock(&c->mu);
    return all;
}

void fz_round_cancel(fz_client *c)
{
    pthread_mutex_lock(&c->mu);
    for (unsigned i = 0; i < c->n; i++)
        if (!c->req[i].ended)
            FZ_CHECK(parley_cancel(c->req[i].session, c->req[i].id) == PARLEY_OK);
    pthread_mutex_unlock(&c->mu);
}

void fz_round_end(fz_client *c)
{
    pthread_mutex_lock(&c->mu);
    for (unsigned i = 0; i < c->n; i++) {
        fz_request *r = &c->req[i];
        if (!r->ended)
            fz_fail("request %llu (%s) has had no terminal event %d ms after it was cancelled",
                    (unsigned long long)r->id, parley_session_id(r->session),
                    FZ_ROUND_MAX_MS);
        parley_session_close(r->session);
        free(r->text);
        *r = (fz_request){0};
    }
    c->n = 0;
    pthread_mutex_unlock(&c->mu);
}

void fz_round_served(fz_client *c)
{
    pthread_mutex_lock(&c->mu);
    c->served = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

void fz_round_finish(fz_client *c)
{
    struct timespec until = deadline_in(FZ_ROUND_MAX_MS);
    pthread_mutex_lock(&c->mu);
    while (!c->served && c->ended < c->n &&
           pthread_cond_timedwait(&c->cv, &c->mu, &until) == 0)
        ;
    bool stuck = !c->served && c->ended < c->n;
    pthread_mutex_unlock(&c->mu);
    if (stuck)
        fz_fail("the server was not done with the round in %d ms", FZ_ROUND_MAX_MS);
    if (!fz_round_wait(c, 100)) {
        fz_round_cancel(c);
        fz_round_wait(c, FZ_ROUND_MAX_MS);
    }
    fz_round_end(c);
}
