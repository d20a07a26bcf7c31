/*
 * zstd and gzip codecs (compress.h).
 *
 * Per-thread state: one ZSTD_CCtx, one ZSTD_DCtx, one deflate and one inflate
 * z_stream, found through a pthread key whose destructor frees them when the
 * thread exits. Making a context costs far more than a 1 KB message does to
 * compress, and the contexts are not thread-safe, hence one per thread.
 *
 * Shared state: a dictionary's ZSTD_DDict is made with the dictionary; its
 * ZSTD_CDicts (one per compression level, since a CDict fixes its level) are
 * made on first use under the dictionary's mutex and published with an
 * atomic store, so the common path is one acquire load and no lock.
 */
#include "compress.h"

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zdict.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

/*
 * The thresholds (compress.h) were measured with
 * `tests/bench/bench_compress --threshold`: 60,000 generated parley.v1
 * messages of every kind (tools/corpus.c, seed 2, which the dictionary was
 * not trained on) grouped by size in steps of 8 bytes, each compressed with
 * zstd level 1. Without a dictionary a frame costs 9-13 bytes of header
 * even when nothing compresses: messages of 88-95 bytes grow by 1.2 bytes on
 * average (18 % shrink), 96-103 bytes are a coin toss (46 %), 104-111 save
 * 2 bytes (85 %), and from 112 bytes on 96 % or more of the messages shrink
 * and the mean saving grows with size (4 bytes at 112-119, 8 at 128-135).
 * Hence 112. With the dictionary every group shrinks, down to the smallest
 * messages the protocol has (32-39 bytes, `ack` and `cancel`: 3 bytes saved,
 * 100 % shrink), hence 32. Table: docs/benchmarks.md.
 */
bool pl_compress_worth_it(size_t len)
{
    return len >= PL_COMPRESS_MIN_BYTES;
}

bool pl_compress_worth_it_dict(size_t len)
{
    return len >= PL_COMPRESS_MIN_BYTES_DICT;
}

/* Inflate writes at most this much per step, so a bomb is noticed early. */
#define PL_INFLATE_STEP (64u * 1024u)

/* zstd's highest level (ZSTD_MAX_CLEVEL is not in its stable API); levels
 * above what the linked zstd offers are refused at run time too. */
#define PL_ZSTD_LEVEL_MAX 22

/* ---- errors ------------------------------------------------------------- */

__attribute__((format(printf, 4, 5)))
static int fail(int code, char *err, size_t err_size, const char *fmt, ...)
{
    va_list ap;

    if (err && err_size) {
        va_start(ap, fmt);
        vsnprintf(err, err_size, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* ---- per-thread contexts ------------------------------------------------ */

struct codec_tls {
    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
    z_stream deflate;
    int deflate_level;   /* 0: deflate not initialised */
    z_stream inflate;
    int inflate_ready;
};

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static int tls_key_ok;

static void codec_tls_free(void *p)
{
    struct codec_tls *t = p;

    if (!t)
        return;
    ZSTD_freeCCtx(t->cctx);
    ZSTD_freeDCtx(t->dctx);
    if (t->deflate_level)
        deflateEnd(&t->deflate);
    if (t->inflate_ready)
        inflateEnd(&t->inflate);
    free(t);
}

static void tls_key_create(void)
{
    tls_key_ok = pthread_key_create(&tls_key, codec_tls_free) == 0;
}

/* The calling thread's contexts, made empty on first use; NULL: no memory. */
static struct codec_tls *codec_tls(void)
{
    struct codec_tls *t;

    pthread_once(&tls_once, tls_key_create);
    if (!tls_key_ok)
        return NULL;
    t = pthread_getspecific(tls_key);
    if (t)
        return t;
    t = calloc(1, sizeof *t);
    if (t && pthread_setspecific(tls_key, t) != 0) {
        free(t);
        t = NULL;
    }
    return t;
}

void pl_compress_thread_release(void)
{
    pthread_once(&tls_once, tls_key_create);
    if (!tls_key_ok)
        return;
    codec_tls_free(pthread_getspecific(tls_key));
    pthread_setspecific(tls_key, NULL);
}

static ZSTD_CCtx *thread_cctx(void)
{
    struct codec_tls *t = codec_tls();

    if (t && !t->cctx)
        t->cctx = ZSTD_createCCtx();
    return t ? t->cctx : NULL;
}

static ZSTD_DCtx *thread_dctx(void)
{
    struct codec_tls *t = codec_tls();

    if (t && !t->dctx)
        t->dctx = ZSTD_createDCtx();
    return t ? t->dctx : NULL;
}

/*
 * The thread's deflate stream, reset, at `level`. A level change makes a
 * new stream: deflateParams() on a used stream may have to flush, and
 * callers change levels rarely.
 */
static z_stream *thread_deflate(int level)
{
    struct codec_tls *t = codec_tls();

    if (!t)
        return NULL;
    if (t->deflate_level == level) {
        deflateReset(&t->deflate);
        return &t->deflate;
    }
    if (t->deflate_level)
        deflateEnd(&t->deflate);
    t->deflate_level = 0;
    memset(&t->deflate, 0, sizeof t->deflate);
    /* windowBits 15 + 16: a gzip wrapper instead of zlib's. */
    if (deflateInit2(&t->deflate, level, Z_DEFLATED, 15 + 16, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    t->deflate_level = level;
    return &t->deflate;
}

static z_stream *thread_inflate(void)
{
    struct codec_tls *t = codec_tls();

    if (!t)
        return NULL;
    if (t->inflate_ready) {
        inflateReset(&t->inflate);
        return &t->inflate;
    }
    memset(&t->inflate, 0, sizeof t->inflate);
    /* 15 + 16: gzip only; zlib's auto-detection (+32) would also take
     * zlib-wrapped data, which nobody should be sending. */
    if (inflateInit2(&t->inflate, 15 + 16) != Z_OK)
        return NULL;
    t->inflate_ready = 1;
    return &t->inflate;
}

/* ---- dictionaries -------------------------------------------------------- */

struct pl_compress_dict {
    void *data;
    size_t size;
    uint32_t id;
    ZSTD_DDict *ddict;
    pthread_mutex_t lock;               /* serialises CDict creation */
    _Atomic(ZSTD_CDict *) cdict[PL_ZSTD_LEVEL_MAX + 1]; /* by level */
};

pl_compress_dict *pl_compress_dict_new(const void *data, size_t size,
                                       char *err, size_t err_size)
{
    uint32_t id = (uint32_t)ZDICT_getDictID(data, size);
    pl_compress_dict *d;

    /* A raw-content "dictionary" has id 0: frames could not name it. */
    if (!id) {
        fail(0, err, err_size, "not a zstd dictionary with an id");
        return NULL;
    }
    d = calloc(1, sizeof *d);
    if (!d || !(d->data = malloc(size)))
        goto nomem;
    memcpy(d->data, data, size);
    d->size = size;
    d->id = id;
    d->ddict = ZSTD_createDDict(d->data, size);
    if (!d->ddict)
        goto nomem;
    pthread_mutex_init(&d->lock, NULL);
    return d;
nomem:
    if (d)
        free(d->data);
    free(d);
    fail(0, err, err_size, "out of memory loading a zstd dictionary");
    return NULL;
}

void pl_compress_dict_free(pl_compress_dict *d)
{
    int level;

    if (!d)
        return;
    for (level = 0; level <= PL_ZSTD_LEVEL_MAX; level++)
        ZSTD_freeCDict(atomic_load(&d->cdict[level]));
    ZSTD_freeDDict(d->ddict);
    pthread_mutex_destroy(&d->lock);
    free(d->data);
    free(d);
}

uint32_t pl_compress_dict_get_id(const pl_compress_dict *d)
{
    return d ? d->id : 0;
}

/* The dictionary digested for `level`, made once by whoever asks first. */
static ZSTD_CDict *dict_cdict(pl_compress_dict *d, int level)
{
    ZSTD_CDict *c = atomic_load_explicit(&d->cdict[level], memory_order_acquire);

    if (c)
        return c;
    pthread_mutex_lock(&d->lock);
    c = atomic_load_explicit(&d->cdict[level], memory_order_relaxed);
    if (!c) {
        c = ZSTD_createCDict(d->data, d->size, level);
        atomic_store_explicit(&d->cdict[level], c, memory_order_release);
    }
    pthread_mutex_unlock(&d->lock);
    return c;
}

static pl_compress_dict *builtin;
static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;

static void builtin_load(void)
{
    builtin = pl_compress_dict_new(pl_compress_dict_data,
                                   pl_compress_dict_size, NULL, 0);
}

const pl_compress_dict *pl_compress_dict_builtin(void)
{
    pthread_once(&builtin_once, builtin_load);
    return builtin;
}

uint32_t pl_compress_dict_id(void)
{
    /* Read from the bytes, so it is known even if loading ran out of memory. */
    return (uint32_t)ZDICT_getDictID(pl_compress_dict_data,
                                     pl_compress_dict_size);
}

uint32_t pl_compress_frame_dict_id(const void *in, size_t len)
{
    return in ? ZSTD_getDictID_fromFrame(in, len) : 0;
}

/* ---- zstd ------------------------------------------------------------------ */

static int zstd_compress(int level, const pl_compress_dict *dict,
                         const void *in, size_t len, pl_buf *out)
{
    ZSTD_CCtx *cctx = thread_cctx();
    size_t bound = ZSTD_compressBound(len), n;
    ZSTD_CDict *cdict = NULL;

    if (level < 1 || level > ZSTD_maxCLevel() || level > PL_ZSTD_LEVEL_MAX)
        return PL_COMPRESS_EINVAL;
    if (ZSTD_isError(bound))
        return PL_COMPRESS_EINVAL; /* too large for zstd */
    /* The CDict is shared state: creating it lazily is the only mutation,
     * done under the dictionary's lock. */
    if (dict && !(cdict = dict_cdict((pl_compress_dict *)dict, level)))
        return PL_COMPRESS_ENOMEM;
    if (!cctx || pl_buf_reserve(out, bound) != 0)
        return PL_COMPRESS_ENOMEM;
    /* Both calls write the content size into the frame header (the
     * receiver's bound) and no checksum (TCP and TLS already check). */
    n = cdict ? ZSTD_compress_usingCDict(cctx, out->data + out->len, bound,
                                         in, len, cdict)
              : ZSTD_compressCCtx(cctx, out->data + out->len, bound, in, len,
                                  level);
    if (ZSTD_isError(n))
        return ZSTD_getErrorCode(n) == ZSTD_error_memory_allocation
                   ? PL_COMPRESS_ENOMEM : PL_COMPRESS_EINVAL;
    out->len += n;
    out->data[out->len] = '\0';
    return PL_COMPRESS_OK;
}

/* Little-endian 32-bit read, for the frame's magic number. */
static uint32_t read_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/*
 * Everything that can be checked from the frame's header and block
 * structure, before any memory is spent on its content: one ordinary
 * (not skippable) frame, its content size declared and within the limit,
 * nothing after it. Sets *size.
 */
static int zstd_check_frame(const void *in, size_t len, size_t limit,
                            unsigned long long *size, char *err,
                            size_t err_size)
{
    size_t frame_len;

    if (len < 4 || read_le32(in) != ZSTD_MAGICNUMBER)
        return fail(PL_COMPRESS_EINVAL, err, err_size,
                    "not a zstd frame (wrong magic number)");
    *size = ZSTD_getFrameContentSize(in, len);
    if (*size == ZSTD_CONTENTSIZE_ERROR)
        return fail(PL_COMPRESS_EINVAL, err, err_size,
                    "truncated or invalid zstd frame header");
    if (*size == ZSTD_CONTENTSIZE_UNKNOWN)
        return fail(PL_COMPRESS_EINVAL, err, err_size,
                    "zstd frame does not declare its content size");
    if (*size > limit)
        return fail(PL_COMPRESS_ETOOBIG, err, err_size,
                    "zstd frame decompresses to %llu bytes, over the limit "
                    "of %zu", *size, limit);
    frame_len = ZSTD_findFrameCompressedSize(in, len);
    if (ZSTD_isError(frame_len))
        return fail(PL_COMPRESS_EINVAL, err, err_size,
                    "truncated or corrupted zstd frame: %s",
                    ZSTD_getErrorName(frame_len));
    if (frame_len != len)
        return fail(PL_COMPRESS_EINVAL, err, err_size,
                    "%zu bytes after the zstd frame (one frame expected)",
                    len - frame_len);
    return PL_COMPRESS_OK;
}

/* The DDict the frame asks for: NULL for none; an error when it names a
 * dictionary other than dict. */
static int zstd_pick_dict(const void *in, size_t len,
                          const pl_compress_dict *dict, ZSTD_DDict **ddict,
                          char *err, size_t err_size)
{
    unsigned id = ZSTD_getDictID_fromFrame(in, len);

    *ddict = NULL;
    if (!id)
        return PL_COMPRESS_OK;
    if (!dict)
        return fail(PL_COMPRESS_EINVAL, err, err_size,
                    "zstd frame needs dictionary %u, and none is loaded", id);
    if (id != dict->id)
        return fail(PL_COMPRESS_EINVAL, err, err_size,
                    "zstd frame needs dictionary %u, not the loaded %u", id,
                    (unsigned)dict->id);
    *ddict = dict->ddict;
    return PL_COMPRESS_OK;
}

static int zstd_decompress(const pl_compress_dict *dict, const void *in,
                           size_t len, size_t limit, pl_buf *out, char *err,
                           size_t err_size)
{
    unsigned long long size = 0;
    ZSTD_DDict *ddict;
    ZSTD_DCtx *dctx;
    size_t n;
    int rc;

    if ((rc = zstd_check_frame(in, len, limit, &size, err, err_size)) ||
        (rc = zstd_pick_dict(in, len, dict, &ddict, err, err_size)))
        return rc;
    /* Only now, with the size known to be within the limit, allocate. */
    dctx = thread_dctx();
    if (!dctx || pl_buf_reserve(out, (size_t)size) != 0)
        return fail(PL_COMPRESS_ENOMEM, err, err_size,
                    "out of memory decompressing %llu bytes", size);
    /* With exactly `size` bytes of room a lying frame fails rather than
     * writing more. */
    n = ddict ? ZSTD_decompress_usingDDict(dctx, out->data + out->len,
                                           (size_t)size, in, len, ddict)
              : ZSTD_decompressDCtx(dctx, out->data + out->len, (size_t)size,
                                    in, len);
    if (ZSTD_isError(n) || n != size) {
        out->data[out->len] = '\0';
        return fail(PL_COMPRESS_EINVAL, err, err_size,
                    "corrupted zstd frame: %s",
                    ZSTD_isError(n) ? ZSTD_getErrorName(n)
                                    : "content size mismatch");
    }
    out->len += n;
    out->data[out->len] = '\0';
    return PL_COMPRESS_OK;
}

/* ---- gzip ------------------------------------------------------------------ */

static int gzip_compress(int level, const void *in, size_t len, pl_buf *out)
{
    z_stream *z;
    uLong bound;

    if (level < 1 || level > 9)
        return PL_COMPRESS_EINVAL;
    if (len > UINT_MAX)
        return PL_COMPRESS_EINVAL; /* zlib counts input in uInt */
    z = thread_deflate(level);
    if (!z)
        return PL_COMPRESS_ENOMEM;
    bound = deflateBound(z, (uLong)len);
    if (bound > UINT_MAX || pl_buf_reserve(out, bound) != 0)
        return PL_COMPRESS_ENOMEM;
    z->next_in = (Bytef *)(uintptr_t)in; /* zlib does not write input */
    z->avail_in = (uInt)len;
    z->next_out = (Bytef *)out->data + out->len;
    z->avail_out = (uInt)bound;
    /* deflateBound() room: one Z_FINISH call always completes. */
    if (deflate(z, Z_FINISH) != Z_STREAM_END)
        return PL_COMPRESS_EINVAL;
    out->len += bound - z->avail_out;
    out->data[out->len] = '\0';
    return PL_COMPRESS_OK;
}

/*
 * Inflate into out in steps of at most PL_INFLATE_STEP bytes, never giving
 * zlib room past limit + 1 bytes of output: producing that last byte proves
 * the content is over the limit.
 */
static int gzip_inflate_steps(z_stream *z, size_t limit, pl_buf *out,
                              size_t start, char *err, size_t err_size)
{
    for (;;) {
        size_t produced = out->len - start;
        size_t room = limit - produced + 1, got;
        int ret;

        if (room > PL_INFLATE_STEP)
            room = PL_INFLATE_STEP;
        if (pl_buf_reserve(out, room) != 0)
            return fail(PL_COMPRESS_ENOMEM, err, err_size,
                        "out of memory inflating gzip data");
        z->next_out = (Bytef *)out->data + out->len;
        z->avail_out = (uInt)room;
        ret = inflate(z, Z_NO_FLUSH);
        got = room - z->avail_out;
        out->len += got;
        if (out->len - start > limit)
            return fail(PL_COMPRESS_ETOOBIG, err, err_size,
                        "gzip data decompresses to more than the limit of "
                        "%zu bytes", limit);
        if (ret == Z_STREAM_END)
            return PL_COMPRESS_OK;
        if (ret != Z_OK && ret != Z_BUF_ERROR)
            return fail(PL_COMPRESS_EINVAL, err, err_size,
                        "corrupted gzip data: %s",
                        z->msg ? z->msg : "invalid data");
        /* Room left over means inflate stopped for want of input. */
        if (z->avail_out)
            return fail(PL_COMPRESS_EINVAL, err, err_size,
                        "truncated gzip data");
    }
}

static int gzip_decompress(const void *in, size_t len, size_t limit,
                           pl_buf *out, char *err, size_t err_size)
{
    size_t start = out->len;
    z_stream *z;
    int rc;

    if (len > UINT_MAX)
        return fail(PL_COMPRESS_EINVAL, err, err_size,
                    "gzip input of %zu bytes is too large", len);
    if (limit >= SIZE_MAX - 1)
        limit = SIZE_MAX - 2; /* keep limit + 1 from wrapping */
    z = thread_inflate();
    if (!z)
        return fail(PL_COMPRESS_ENOMEM, err, err_size,
                    "out of memory for an inflate stream");
    z->next_in = (Bytef *)(uintptr_t)in; /* zlib does not write input */
    z->avail_in = (uInt)len;
    rc = gzip_inflate_steps(z, limit, out, start, err, err_size);
    if (rc == PL_COMPRESS_OK && z->avail_in)
        rc = fail(PL_COMPRESS_EINVAL, err, err_size,
                  "%u bytes after the gzip member (one member expected)",
                  z->avail_in);
    if (rc != PL_COMPRESS_OK)
        out->len = start;
    /* pl_buf's promise; every step reserved room for it. */
    if (out->data)
        out->data[out->len] = '\0';
    return rc;
}

/* ---- entry points ------------------------------------------------------------ */

int pl_compress(pl_compress_alg alg, int level, const pl_compress_dict *dict,
                const void *in, size_t len, pl_buf *out)
{
    if (!out || (!in && len))
        return PL_COMPRESS_EINVAL;
    if (alg == PL_COMPRESS_ZSTD)
        return zstd_compress(level, dict, in ? in : "", len, out);
    if (alg == PL_COMPRESS_GZIP && !dict)
        return gzip_compress(level, in ? in : "", len, out);
    return PL_COMPRESS_EINVAL;
}

int pl_decompress(pl_compress_alg alg, const pl_compress_dict *dict,
                  const void *in, size_t len, size_t limit, pl_buf *out,
                  char *err, size_t err_size)
{
    if (err && err_size)
        err[0] = '\0';
    if (!out || (!in && len))
        return fail(PL_COMPRESS_EINVAL, err, err_size, "no input or output");
    if (alg == PL_COMPRESS_ZSTD)
        return zstd_decompress(dict, in ? in : "", len, limit, out, err,
                               err_size);
    if (alg == PL_COMPRESS_GZIP && !dict)
        return gzip_decompress(in ? in : "", len, limit, out, err, err_size);
    return fail(PL_COMPRESS_EINVAL, err, err_size,
                alg == PL_COMPRESS_GZIP ? "gzip takes no dictionary"
                                        : "unknown compression algorithm");
}
