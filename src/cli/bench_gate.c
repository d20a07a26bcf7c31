/* Request claims and the end of a load run (bench_gate.h). */
#include "bench_gate.h"

#include <time.h>

#define PROGRESS_INTERVAL_NS 250000000ull

bool bench_gate_init(bench_gate *g, uint64_t budget, unsigned long slots)
{
    g->budget = budget;
    atomic_init(&g->claimed, 0);
    atomic_init(&g->stopped, false);
    g->running = slots;
    g->end_ns = 0;
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return false;
    /* Monotonic, so that a clock step cannot stretch or cut the run. */
    bool ok = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
              pthread_cond_init(&g->cv, &attr) == 0;
    pthread_condattr_destroy(&attr);
    if (ok)
        pthread_mutex_init(&g->mu, NULL);
    return ok;
}

void bench_gate_destroy(bench_gate *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

bool bench_gate_claim(bench_gate *g)
{
    if (atomic_load_explicit(&g->stopped, memory_order_relaxed))
        return false;
    /* Refused claims still count: the counter may pass the budget, harmlessly. */
    return atomic_fetch_add_explicit(&g->claimed, 1, memory_order_relaxed) < g->budget;
}

void bench_gate_retire(bench_gate *g)
{
    pthread_mutex_lock(&g->mu);
    if (--g->running == 0) {
        g->end_ns = bench_now_ns();
        pthread_cond_signal(&g->cv);
    }
    pthread_mutex_unlock(&g->mu);
}

static struct timespec to_timespec(uint64_t ns)
{
    return (struct timespec){.tv_sec = (time_t)(ns / 1000000000u),
                             .tv_nsec = (long)(ns % 1000000000u)};
}

double bench_gate_wait(bench_gate *g, bench_record *r, bench_progress *p, uint64_t start_ns,
                       double duration_s)
{
    uint64_t stop_ns = duration_s > 0 ? start_ns + (uint64_t)(duration_s * 1e9) : UINT64_MAX;
    pthread_mutex_lock(&g->mu);
    while (g->running > 0) {
        uint64_t now = bench_now_ns();
        if (now >= stop_ns)
            atomic_store(&g->stopped, true);
        bench_progress_show(p, atomic_load_explicit(&r->finished, memory_order_relaxed),
                            atomic_load_explicit(&r->errors, memory_order_relaxed), now);
        uint64_t wake = now + PROGRESS_INTERVAL_NS;
        if (stop_ns > now && stop_ns < wake)
            wake = stop_ns;
        struct timespec deadline = to_timespec(wake);
        pthread_cond_timedwait(&g->cv, &g->mu, &deadline);
    }
    uint64_t end_ns = g->end_ns;
    pthread_mutex_unlock(&g->mu);
    bench_progress_clear(p);
    return (double)(end_ns - start_ns) / 1e9;
}
