/* The progress bar of a load run (bench_progress.h). */
#include "bench_progress.h"

#include <stdio.h>
#include <unistd.h>

#define BAR_WIDTH 30

void bench_progress_init(bench_progress *p, uint64_t total, double duration_s,
                         uint64_t start_ns)
{
    *p = (bench_progress){.on = isatty(STDERR_FILENO) == 1,
                          .total = total,
                          .duration_s = duration_s,
                          .start_ns = start_ns};
}

void bench_progress_show(bench_progress *p, uint64_t finished, uint64_t errors,
                         uint64_t now_ns)
{
    if (!p->on)
        return;
    double elapsed_s = (double)(now_ns - p->start_ns) / 1e9;
    double share = p->total ? (double)finished / (double)p->total : 0;
    if (p->duration_s > 0 && elapsed_s / p->duration_s > share)
        share = elapsed_s / p->duration_s;
    if (share > 1)
        share = 1;
    char bar[BAR_WIDTH + 1];
    int filled = (int)(share * BAR_WIDTH);
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    /* \033[K erases what a longer earlier line left on the right. */
    fprintf(stderr, "\r[%s] %llu/%llu requests  %.0f/s  %llu errors  %.1f s\033[K", bar,
            (unsigned long long)finished, (unsigned long long)p->total,
            elapsed_s > 0 ? (double)finished / elapsed_s : 0.0, (unsigned long long)errors,
            elapsed_s);
    fflush(stderr);
    p->drawn = true;
}

void bench_progress_clear(bench_progress *p)
{
    if (!p->drawn)
        return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    p->drawn = false;
}
