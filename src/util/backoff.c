#include "backoff.h"

uint64_t pl_rand_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

int64_t pl_backoff_ms(int attempt, int base_ms, int cap_ms, uint64_t *rng)
{
    int64_t delay = base_ms;
    for (int i = 1; i < attempt && delay < cap_ms; i++)
        delay *= 2;
    if (delay > cap_ms)
        delay = cap_ms;
    /* Jitter in [0, 25 %) of the delay, in 1/1024 steps. */
    int64_t jitter = delay * (int64_t)(pl_rand_next(rng) % 256) / 1024;
    return delay - jitter;
}
