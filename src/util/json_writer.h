/*
 * A streaming JSON writer over a pl_buf for documents built in one go (the
 * statistics): it places the commas, escapes strings, and remembers running
 * out of memory so that callers check once at the end.
 */
#ifndef PL_JSON_WRITER_H
#define PL_JSON_WRITER_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"

#define PL_JSON_MAX_DEPTH 16

typedef struct pl_json_writer {
    pl_buf out;
    unsigned depth;
    bool first[PL_JSON_MAX_DEPTH]; /* nothing written yet at this level */
    bool failed;                   /* out of memory or nested too deep */
} pl_json_writer;

void pl_jw_init(pl_json_writer *w);
/* key may be NULL inside arrays and at the top level. */
void pl_jw_object(pl_json_writer *w, const char *key);
void pl_jw_array(pl_json_writer *w, const char *key);
void pl_jw_end_object(pl_json_writer *w);
void pl_jw_end_array(pl_json_writer *w);
void pl_jw_u64(pl_json_writer *w, const char *key, uint64_t v);
void pl_jw_i64(pl_json_writer *w, const char *key, int64_t v);
/* The number units / 10^decimals (1 <= decimals <= 9) written in fixed
 * point: 1234 with 3 decimals is 1.234. Integer arithmetic, so the output
 * does not depend on the process's locale, as printf's %f would. */
void pl_jw_fixed(pl_json_writer *w, const char *key, uint64_t units, unsigned decimals);
/* A compression ratio, sent / (sent + saved) with 4 decimals: 1.0000 when
 * compression saved nothing. */
void pl_jw_ratio(pl_json_writer *w, const char *key, uint64_t sent, uint64_t saved);
void pl_jw_str(pl_json_writer *w, const char *key, const char *s);
void pl_jw_bool(pl_json_writer *w, const char *key, bool v);

#endif
