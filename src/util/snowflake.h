/*
 * Request ids (protocol section 3): 41 bits of milliseconds since
 * 2026-01-01T00:00:00Z, 10 bits of worker id, 12 bits of sequence.
 */
#ifndef PL_SNOWFLAKE_H
#define PL_SNOWFLAKE_H

#include <stdint.h>

#define PL_SNOWFLAKE_EPOCH_MS 1767225600000LL /* 2026-01-01T00:00:00Z */
#define PL_SNOWFLAKE_WORKER_BITS 10
#define PL_SNOWFLAKE_SEQ_BITS 12

/*
 * The next id for worker_id (0..1023). Unique across all threads of the
 * process and strictly increasing, also when the wall clock steps back: the
 * generator then keeps counting from the last timestamp it used, borrowing
 * milliseconds from the future when a sequence runs out.
 */
uint64_t pl_snowflake_next(unsigned worker_id);

/* Same, with the current time given (for tests); now_ms is Unix ms. */
uint64_t pl_snowflake_next_at(unsigned worker_id, int64_t now_ms);

#endif
