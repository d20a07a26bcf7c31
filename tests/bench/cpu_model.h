/* The CPU's model name, for the "machine:" line benchmarks print first. */
#ifndef PL_BENCH_CPU_MODEL_H
#define PL_BENCH_CPU_MODEL_H

#include <stddef.h>

/* The "model name" of /proc/cpuinfo into out, or "unknown". */
void bench_cpu_model(char *out, size_t size);

#endif
