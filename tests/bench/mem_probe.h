/*
 * How much memory this process holds, as the kernel and as malloc see it,
 * for the benchmarks that report bytes per session or per request.
 *
 * RSS comes from /proc/self/status rather than /proc/self/statm: both read
 * the same kernel counters, but status names the parts. RssAnon is the
 * heap, stacks and anonymous mappings, where sessions live; RssFile is
 * library code and data paged in from disk, which grows as the program first
 * runs a code path and says nothing about sessions; VmHWM is the peak, which
 * catches a high point between two samples. statm only gives "resident" and
 * a "shared" that mixes file and shared-memory pages.
 *
 * RSS alone is not the whole story with glibc: free() keeps most memory in
 * its arenas (one per thread that allocated, up to 8 per CPU), so RSS stays
 * up after the objects are gone, and a page counts once touched whatever
 * share of it is in use. mallinfo2() (summed over every arena) gives the
 * bytes malloc has handed out and not had back, chunk headers included:
 * what the objects themselves cost. The benchmarks report both.
 */
#ifndef BENCH_MEM_PROBE_H
#define BENCH_MEM_PROBE_H

#include <stddef.h>

typedef struct mem_sample {
    long rss_kib;       /* VmRSS */
    long anon_kib;      /* RssAnon */
    long file_kib;      /* RssFile */
    long hwm_kib;       /* VmHWM: the peak RSS since start or the last reset */
    size_t heap_in_use; /* mallinfo2: uordblks + hblkhd, every arena */
    size_t heap_held;   /* mallinfo2: arena + hblkhd, what malloc took from the OS */
    int arenas;         /* malloc arenas in existence (malloc_info) */
} mem_sample;

/* Take a sample now. Fields the kernel does not offer stay -1. */
void mem_sample_take(mem_sample *s);

/* Start VmHWM again from the current RSS (writes 5 to /proc/self/clear_refs).
 * Returns 0, or -1 when the kernel refused: VmHWM then keeps the process'
 * lifetime peak. */
int mem_peak_reset(void);

#endif
