#include "recorder.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct slot {
    uint64_t id; /* 0: empty */
    recorder_entry e;
} slot;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static slot *slots;
static size_t nslots, used, terminals;

static slot *find_locked(uint64_t id, bool create);

static void grow_locked(void)
{
    slot *old = slots;
    size_t old_n = nslots;
    nslots = nslots ? nslots * 2 : 4096;
    slots = calloc(nslots, sizeof(*slots));
    used = 0;
    for (size_t i = 0; i < old_n; i++)
        if (old[i].id) {
            slot *s = find_locked(old[i].id, true);
            s->e = old[i].e;
        }
    free(old);
}

static slot *find_locked(uint64_t id, bool create)
{
    if (create && (used + 1) * 2 > nslots)
        grow_locked();
    if (!nslots)
        return NULL;
    size_t i = (size_t)(id * 0x9E3779B97F4A7C15ull >> 20) & (nslots - 1);
    for (;; i = (i + 1) & (nslots - 1)) {
        if (slots[i].id == id)
            return &slots[i];
        if (!slots[i].id) {
            if (!create)
                return NULL;
            slots[i].id = id;
            memset(&slots[i].e, 0, sizeof(slots[i].e));
            slots[i].e.found = true;
            used++;
            return &slots[i];
        }
    }
}

void recorder_reset(void)
{
    pthread_mutex_lock(&mu);
    free(slots);
    slots = NULL;
    nslots = used = terminals = 0;
    pthread_mutex_unlock(&mu);
}

static void append(char *dst, size_t size, const char *src, size_t len)
{
    size_t have = strlen(dst);
    if (have + len < size) {
        memcpy(dst + have, src, len);
        dst[have + len] = '\0';
    }
}

void recorder_on_event(parley_client_t *client, const parley_event_t *ev, void *opaque)
{
    (void)client;
    (void)opaque;
    size_t len;
    const char *content = parley_event_content(ev, &len);
    pthread_mutex_lock(&mu);
    recorder_entry *e = &find_locked(parley_event_request_id(ev), true)->e;
    e->opaque = parley_event_opaque(ev);
    int seen = e->pieces + e->thinking_pieces + e->tool_calls;
    char line[600];
    switch (parley_event_type(ev)) {
    case PARLEY_EVENT_TEXT:
        if (parley_event_seq(ev) != (uint32_t)seen)
            e->seq_errors++;
        e->pieces++;
        append(e->text, sizeof(e->text), content, len);
        snprintf(line, sizeof(line), "%u", parley_event_block(ev) % 10);
        append(e->text_blocks, sizeof(e->text_blocks), line, 1);
        break;
    case PARLEY_EVENT_THINKING:
        if (parley_event_seq(ev) != (uint32_t)seen)
            e->seq_errors++;
        e->thinking_pieces++;
        append(e->thinking, sizeof(e->thinking), content, len);
        if (parley_event_signature(ev))
            snprintf(e->signature, sizeof(e->signature), "%s", parley_event_signature(ev));
        break;
    case PARLEY_EVENT_TOOL_USE:
        if (parley_event_seq(ev) != (uint32_t)seen)
            e->seq_errors++;
        e->tool_calls++;
        snprintf(line, sizeof(line), "%s %s %.*s\n", parley_event_tool_id(ev),
                 parley_event_tool_name(ev), (int)len, content);
        append(e->tools, sizeof(e->tools), line, strlen(line));
        break;
    case PARLEY_EVENT_DONE:
        e->terminals++;
        e->terminal = PARLEY_EVENT_DONE;
        snprintf(e->done, sizeof(e->done), "%.*s", (int)len, content);
        snprintf(e->stop_reason, sizeof(e->stop_reason), "%s", parley_event_stop_reason(ev));
        if (parley_event_stop_sequence(ev))
            snprintf(e->stop_sequence, sizeof(e->stop_sequence), "%s",
                     parley_event_stop_sequence(ev));
        parley_event_usage(ev, NULL, &e->output_tokens);
        terminals++;
        break;
    case PARLEY_EVENT_ERROR:
        e->terminals++;
        e->terminal = PARLEY_EVENT_ERROR;
        e->err = parley_event_error(ev);
        snprintf(e->err_msg, sizeof(e->err_msg), "%.*s", (int)len, content);
        terminals++;
        break;
    }
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

recorder_entry recorder_get(uint64_t id)
{
    recorder_entry copy = {0};
    pthread_mutex_lock(&mu);
    slot *s = find_locked(id, false);
    if (s)
        copy = s->e;
    pthread_mutex_unlock(&mu);
    return copy;
}

size_t recorder_terminals(void)
{
    pthread_mutex_lock(&mu);
    size_t n = terminals;
    pthread_mutex_unlock(&mu);
    return n;
}

static size_t sum_locked(int which)
{
    size_t n = 0;
    for (size_t i = 0; i < nslots; i++) {
        if (!slots[i].id)
            continue;
        if (which == 0)
            n += (size_t)slots[i].e.seq_errors;
        else
            n += slots[i].e.terminals > 1;
    }
    return n;
}

size_t recorder_seq_errors(void)
{
    pthread_mutex_lock(&mu);
    size_t n = sum_locked(0);
    pthread_mutex_unlock(&mu);
    return n;
}

size_t recorder_requests_with_extra_terminals(void)
{
    pthread_mutex_lock(&mu);
    size_t n = sum_locked(1);
    pthread_mutex_unlock(&mu);
    return n;
}

static struct timespec deadline_in(int seconds)
{
    struct timespec d;
    clock_gettime(CLOCK_REALTIME, &d);
    d.tv_sec += seconds;
    return d;
}

bool recorder_wait_pieces(uint64_t id, int n, int seconds)
{
    struct timespec d = deadline_in(seconds);
    bool ok;
    pthread_mutex_lock(&mu);
    for (;;) {
        slot *s = find_locked(id, false);
        ok = s && s->e.pieces >= n;
        if (ok || pthread_cond_timedwait(&cv, &mu, &d) != 0)
            break;
    }
    pthread_mutex_unlock(&mu);
    return ok;
}

size_t recorder_wait_terminals(size_t n, int seconds)
{
    struct timespec d = deadline_in(seconds);
    pthread_mutex_lock(&mu);
    while (terminals < n)
        if (pthread_cond_timedwait(&cv, &mu, &d) != 0)
            break;
    size_t got = terminals;
    pthread_mutex_unlock(&mu);
    return got;
}
