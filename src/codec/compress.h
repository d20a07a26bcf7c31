/*
 * Message compression with no I/O: zstd (optionally with a dictionary) for
 * parley.v1.zstd frames, gzip for HTTP bodies.
 *
 * Threads: every function may be called from any thread. Each thread keeps
 * its own zstd and zlib contexts, made on first use, reused for every call
 * and freed when the thread exits (or by pl_compress_thread_release()).
 * Dictionaries are immutable once made and shared by all threads.
 *
 * Decompression is bounded BEFORE it allocates: a zstd frame must declare
 * its content size in its header and that size must be within the caller's
 * limit; gzip data is inflated in bounded steps and abandoned as soon as the
 * output passes the limit. A decompression bomb therefore costs at most
 * `limit` bytes of memory, never what it claims to expand to.
 */
#ifndef PL_COMPRESS_H
#define PL_COMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef enum pl_compress_alg {
    PL_COMPRESS_ZSTD = 1, /* one zstd frame with its content size */
    PL_COMPRESS_GZIP = 2  /* one gzip member (RFC 1952), zlib's deflate */
} pl_compress_alg;

/* Results of pl_compress() and pl_decompress(). */
enum {
    PL_COMPRESS_OK = 0,
    PL_COMPRESS_EINVAL = -1,   /* bad arguments, or input truncated, corrupted,
                                  not one frame, or needing another dictionary */
    PL_COMPRESS_ETOOBIG = -2,  /* the content is larger than the limit */
    PL_COMPRESS_ENOMEM = -3    /* out of memory */
};

/*
 * Below these sizes a zstd frame of a typical parley.v1 message is not
 * reliably smaller than the message, so it should go out uncompressed:
 * without a dictionary the frame's 9-13 bytes of header eat the gain; with
 * the parley-v1 dictionary, which knows the JSON envelopes, even a 32-byte
 * `ack` shrinks. Measured, not guessed: see compress.c and
 * docs/benchmarks.md.
 */
#define PL_COMPRESS_MIN_BYTES 112
#define PL_COMPRESS_MIN_BYTES_DICT 32

/* True when a message of len bytes is worth a dictionary-less zstd frame. */
bool pl_compress_worth_it(size_t len);

/* The same when the peers agreed on the parley-v1 dictionary. */
bool pl_compress_worth_it_dict(size_t len);

/* ---- dictionaries ---- */

typedef struct pl_compress_dict pl_compress_dict;

/*
 * The built-in parley-v1 dictionary (src/dict/parley-v1.dict, trained on
 * conversation frames by `make dict`). Made once, on first use, by whichever
 * thread comes first; NULL only when memory ran out.
 */
const pl_compress_dict *pl_compress_dict_builtin(void);

/* The built-in dictionary's id (what ZDICT_getDictID says of it), never 0. */
uint32_t pl_compress_dict_id(void);

/*
 * A dictionary from zstd dictionary bytes (copied). NULL, with a reason in
 * err, when the bytes are not a zstd dictionary with an id or memory ran out.
 */
pl_compress_dict *pl_compress_dict_new(const void *data, size_t size,
                                       char *err, size_t err_size);
void pl_compress_dict_free(pl_compress_dict *dict);
uint32_t pl_compress_dict_get_id(const pl_compress_dict *dict);

/* ---- compressing ---- */

/*
 * Append the compressed form of in[0..len) to out.
 * zstd: level 1..ZSTD_maxCLevel() (22); the frame carries its content size
 * and, with dict, the dictionary's id. gzip: level 1..9; dict must be NULL
 * (the gzip format has no dictionaries).
 * Returns PL_COMPRESS_OK, PL_COMPRESS_EINVAL (bad alg, level or dict) or
 * PL_COMPRESS_ENOMEM; on error out is unchanged.
 */
int pl_compress(pl_compress_alg alg, int level, const pl_compress_dict *dict,
                const void *in, size_t len, pl_buf *out);

/*
 * Append the decompressed form of in[0..len) to out, which must hold exactly
 * one zstd frame or one gzip member (trailing bytes are an error).
 * zstd: the frame must declare its content size, at most `limit` bytes. The
 * dictionary is the one the frame names: a frame with dictionary id 0 needs
 * none; one with an id needs dict with that id, else it is an error saying
 * which dictionary it needs. gzip: dict must be NULL; output beyond `limit`
 * is an error found after at most limit + 1 bytes were produced.
 * Returns PL_COMPRESS_OK, or PL_COMPRESS_ETOOBIG / EINVAL / ENOMEM with a
 * sentence in err; on error out is unchanged (its capacity may have grown,
 * by at most about `limit` bytes).
 */
int pl_decompress(pl_compress_alg alg, const pl_compress_dict *dict,
                  const void *in, size_t len, size_t limit, pl_buf *out,
                  char *err, size_t err_size);

/*
 * The dictionary id named in a zstd frame's header: 0 when the frame needs
 * no dictionary (or does not say, or is not a zstd frame). For a receiver
 * that keeps several dictionaries.
 */
uint32_t pl_compress_frame_dict_id(const void *in, size_t len);

/*
 * Free the calling thread's contexts now rather than at thread exit, e.g.
 * before a leak check. The next call on this thread makes new ones.
 */
void pl_compress_thread_release(void);

/* The embedded dictionary bytes (src/codec/compress_dict.c, generated). */
extern const unsigned char pl_compress_dict_data[];
extern const size_t pl_compress_dict_size;

#endif
