/*
 * Unit tests of the compression codec (src/codec/compress.c).
 *
 * Inputs are copied to heap buffers of exactly their length before they are
 * decompressed, so AddressSanitizer catches any read past the end. The bomb
 * tests check memory twice: the output buffer's capacity, and the process's
 * peak resident size (VmHWM, reset through /proc/self/clear_refs) while the
 * bomb is being refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zdict.h>
#include <zlib.h>
#include <zstd.h>

#include "compress.h"
#include "corpus.h"

#define MiB (1024u * 1024u)
#define BOMB_BYTES (100ull * MiB)

/* ---- helpers ----------------------------------------------------------------- */

static uint64_t rng_state = 0x243F6A8885A308D3ull;

static uint64_t next_random(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void fill_random(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)next_random();
}

/* JSON-ish text: generated conversation messages laid end to end. */
static char *json_text(size_t n, uint64_t seed)
{
    pl_corpus c;
    pl_buf b = PL_BUF_INIT;

    pl_corpus_init(&c, seed);
    while (b.len < n)
        assert_int_equal(pl_corpus_next(&c, PL_CORPUS_MIXED, &b), 0);
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    memcpy(p, b.data, n);
    pl_buf_free(&b);
    return p;
}

/* Decompress from a heap copy of exactly len bytes. */
static int decompress_exact(pl_compress_alg alg, const pl_compress_dict *dict,
                            const void *in, size_t len, size_t limit,
                            pl_buf *out, char *err, size_t err_size)
{
    void *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, in, len);
    int rc = pl_decompress(alg, dict, copy, len, limit, out, err, err_size);
    free(copy);
    return rc;
}

/* Compress then decompress (limit = exactly len) and compare. */
static void round_trip(pl_compress_alg alg, int level,
                       const pl_compress_dict *dict, const void *in, size_t len)
{
    pl_buf z = PL_BUF_INIT, back = PL_BUF_INIT;
    char err[256];

    assert_int_equal(pl_compress(alg, level, dict, in, len, &z), PL_COMPRESS_OK);
    int rc = decompress_exact(alg, dict, z.data, z.len, len, &back, err,
                              sizeof err);
    if (rc != PL_COMPRESS_OK)
        fail_msg("alg %d level %d dict %d len %zu: %s", alg, level, dict != NULL,
                 len, err);
    assert_int_equal(back.len, len);
    if (len)
        assert_memory_equal(back.data, in, len);
    assert_int_equal(back.data[len], '\0'); /* a pl_buf stays a C string */
    /* One byte less of limit is refused, for either algorithm. */
    if (len) {
        pl_buf_reset(&back);
        rc = decompress_exact(alg, dict, z.data, z.len, len - 1, &back, err,
                              sizeof err);
        assert_int_equal(rc, PL_COMPRESS_ETOOBIG);
        assert_int_equal(back.len, 0);
    }
    pl_buf_free(&z);
    pl_buf_free(&back);
}

static const pl_compress_dict *dict(void)
{
    const pl_compress_dict *d = pl_compress_dict_builtin();
    assert_non_null(d);
    return d;
}

/* A second, valid dictionary: the built-in one under another id. */
static pl_compress_dict *other_dict(uint32_t *id)
{
    unsigned char *bytes = malloc(pl_compress_dict_size);
    char err[128];

    assert_non_null(bytes);
    memcpy(bytes, pl_compress_dict_data, pl_compress_dict_size);
    *id = pl_compress_dict_id() ^ 0x5a5a5a5au;
    memcpy(bytes + 4, id, 4); /* little-endian on the machines we run on */
    pl_compress_dict *d = pl_compress_dict_new(bytes, pl_compress_dict_size,
                                               err, sizeof err);
    free(bytes);
    assert_non_null(d);
    assert_int_equal(pl_compress_dict_get_id(d), *id);
    return d;
}

static long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;

    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, strlen(key)))
            v = atol(line + strlen(key));
    fclose(f);
    return v;
}

/* Reset the peak resident size to the current one; 0 when supported. */
static int reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");

    if (!f)
        return -1;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* ---- the threshold ---------------------------------------------------------- */

static void test_worth_it(void **state)
{
    (void)state;
    assert_false(pl_compress_worth_it(0));
    assert_false(pl_compress_worth_it(PL_COMPRESS_MIN_BYTES - 1));
    assert_true(pl_compress_worth_it(PL_COMPRESS_MIN_BYTES));
    assert_true(pl_compress_worth_it(1 * MiB));
    assert_false(pl_compress_worth_it_dict(PL_COMPRESS_MIN_BYTES_DICT - 1));
    assert_true(pl_compress_worth_it_dict(PL_COMPRESS_MIN_BYTES_DICT));
    assert_true(PL_COMPRESS_MIN_BYTES_DICT < PL_COMPRESS_MIN_BYTES);
}

struct size_tally {
    size_t in, out, n;
};

static void tally(struct size_tally *t, const pl_buf *m, const pl_buf *z)
{
    t->in += m->len;
    t->out += z->len;
    t->n++;
}

/*
 * The thresholds' promise, rechecked on generated traffic (another seed
 * than the measurement's): without a dictionary, messages of
 * threshold..threshold+31 bytes shrink on average under zstd level 1 and
 * those just below the threshold (80..103 bytes) do not; with the
 * dictionary, messages from its threshold on shrink.
 */
static void test_threshold_holds(void **state)
{
    (void)state;
    pl_corpus c;
    pl_buf m = PL_BUF_INIT, z = PL_BUF_INIT, zd = PL_BUF_INIT;
    struct size_tally at = { 0 }, below = { 0 }, dict_at = { 0 };

    pl_corpus_init(&c, 7);
    for (int i = 0; i < 20000; i++) {
        pl_buf_reset(&m);
        pl_buf_reset(&z);
        pl_buf_reset(&zd);
        assert_int_equal(pl_corpus_next(&c, PL_CORPUS_MIXED, &m), 0);
        assert_int_equal(pl_compress(PL_COMPRESS_ZSTD, 1, NULL, m.data, m.len, &z), 0);
        assert_int_equal(pl_compress(PL_COMPRESS_ZSTD, 1, pl_compress_dict_builtin(),
                                     m.data, m.len, &zd), 0);
        if (m.len >= PL_COMPRESS_MIN_BYTES && m.len < PL_COMPRESS_MIN_BYTES + 32)
            tally(&at, &m, &z);
        else if (m.len >= 80 && m.len < 104)
            tally(&below, &m, &z);
        if (m.len >= PL_COMPRESS_MIN_BYTES_DICT && m.len < PL_COMPRESS_MIN_BYTES_DICT + 32)
            tally(&dict_at, &m, &zd);
    }
    assert_true(at.n >= 100 && below.n >= 100 && dict_at.n >= 100);
    assert_true(at.out < at.in);
    assert_true(below.out >= below.in);
    assert_true(dict_at.out < dict_at.in);
    pl_buf_free(&m);
    pl_buf_free(&z);
    pl_buf_free(&zd);
}

/* ---- round trips --------------------------------------------------------------- */

struct config {
    pl_compress_alg alg;
    int level;
    int with_dict;
};

static const struct config configs[] = {
    { PL_COMPRESS_ZSTD, 1, 0 }, { PL_COMPRESS_ZSTD, 3, 0 },
    { PL_COMPRESS_ZSTD, 9, 0 }, { PL_COMPRESS_ZSTD, 19, 0 },
    { PL_COMPRESS_ZSTD, 1, 1 }, { PL_COMPRESS_ZSTD, 3, 1 },
    { PL_COMPRESS_ZSTD, 9, 1 }, { PL_COMPRESS_ZSTD, 19, 1 },
    { PL_COMPRESS_GZIP, 1, 0 }, { PL_COMPRESS_GZIP, 6, 0 },
    { PL_COMPRESS_GZIP, 9, 0 },
};

/* Every size from threshold - 64 to threshold + 64, JSON and random. */
static void test_round_trip_around_threshold(void **state)
{
    (void)state;
    size_t lo = PL_COMPRESS_MIN_BYTES - 64, hi = PL_COMPRESS_MIN_BYTES + 64;
    char *text = json_text(hi, 11);
    unsigned char *noise = malloc(hi);

    assert_non_null(noise);
    fill_random(noise, hi);
    for (size_t k = 0; k < sizeof configs / sizeof configs[0]; k++) {
        const struct config *cf = &configs[k];
        const pl_compress_dict *d = cf->with_dict ? dict() : NULL;
        for (size_t len = lo; len <= hi; len++) {
            round_trip(cf->alg, cf->level, d, text, len);
            round_trip(cf->alg, cf->level, d, noise, len);
        }
    }
    free(text);
    free(noise);
}

/* Every level of both algorithms, on empty, small, 1 KB and 256 KB inputs. */
static void test_round_trip_every_level(void **state)
{
    (void)state;
    static const size_t sizes[] = { 0, 1, 1000, 256 * 1024 };
    size_t big = sizes[3];
    char *text = json_text(big, 12);
    unsigned char *noise = malloc(big);

    assert_non_null(noise);
    fill_random(noise, big);
    for (size_t s = 0; s < 4; s++) {
        for (int level = 1; level <= ZSTD_maxCLevel(); level++) {
            /* Levels 20-22 on 256 KB are slow and prove nothing new. */
            if (s == 3 && level > 19)
                continue;
            round_trip(PL_COMPRESS_ZSTD, level, NULL, text, sizes[s]);
            round_trip(PL_COMPRESS_ZSTD, level, dict(), text, sizes[s]);
            round_trip(PL_COMPRESS_ZSTD, level, NULL, noise, sizes[s]);
        }
        for (int level = 1; level <= 9; level++) {
            round_trip(PL_COMPRESS_GZIP, level, NULL, text, sizes[s]);
            round_trip(PL_COMPRESS_GZIP, level, NULL, noise, sizes[s]);
        }
    }
    free(text);
    free(noise);
}

/* pl_compress and pl_decompress append; what out held stays. */
static void test_appends(void **state)
{
    (void)state;
    pl_buf z = PL_BUF_INIT, back = PL_BUF_INIT;
    char err[128];
    const char *msg = "{\"type\":\"ack\",\"id\":\"1234567890123\"}";

    assert_int_equal(pl_buf_append_str(&z, "XY"), 0);
    assert_int_equal(pl_compress(PL_COMPRESS_ZSTD, 3, NULL, msg, strlen(msg), &z), 0);
    assert_int_equal(pl_buf_append_str(&back, "prefix:"), 0);
    assert_int_equal(pl_decompress(PL_COMPRESS_ZSTD, NULL, z.data + 2, z.len - 2,
                                   1000, &back, err, sizeof err), 0);
    assert_string_equal(back.data, "prefix:{\"type\":\"ack\",\"id\":\"1234567890123\"}");
    assert_memory_equal(z.data, "XY", 2);
    pl_buf_free(&z);
    pl_buf_free(&back);
}

/* ---- the dictionary ------------------------------------------------------------ */

static void test_dict_id(void **state)
{
    (void)state;
    uint32_t id = pl_compress_dict_id();
    pl_buf z = PL_BUF_INIT;
    const char *msg = "{\"type\":\"text\",\"id\":\"1\",\"session\":\"s\",\"seq\":0,"
                      "\"content\":\"hello there, how can I help you today?\"}";

    assert_true(id != 0);
    assert_int_equal(id, ZDICT_getDictID(pl_compress_dict_data, pl_compress_dict_size));
    assert_int_equal(pl_compress_dict_get_id(dict()), id);
    assert_int_equal(pl_compress(PL_COMPRESS_ZSTD, 1, dict(), msg, strlen(msg), &z), 0);
    assert_int_equal(pl_compress_frame_dict_id(z.data, z.len), id);
    pl_buf_reset(&z);
    assert_int_equal(pl_compress(PL_COMPRESS_ZSTD, 1, NULL, msg, strlen(msg), &z), 0);
    assert_int_equal(pl_compress_frame_dict_id(z.data, z.len), 0);
    assert_int_equal(pl_compress_frame_dict_id("xx", 2), 0);
    pl_buf_free(&z);
}

/* The reason the dictionary exists: ~1 KB conversation messages. */
static void test_dict_beats_plain_at_1k(void **state)
{
    (void)state;
    pl_corpus c;
    pl_buf m = PL_BUF_INIT, z = PL_BUF_INIT;
    size_t plain[2] = { 0, 0 }, with[2] = { 0, 0 };
    static const int levels[2] = { 1, 3 };

    pl_corpus_init(&c, 2); /* the benchmark's seed, not the training one */
    for (int i = 0; i < 200; i++) {
        pl_buf_reset(&m);
        assert_int_equal(pl_corpus_message_sized(&c, 900, 1100, &m), 0);
        for (int l = 0; l < 2; l++) {
            pl_buf_reset(&z);
            assert_int_equal(pl_compress(PL_COMPRESS_ZSTD, levels[l], NULL,
                                         m.data, m.len, &z), 0);
            plain[l] += z.len;
            pl_buf_reset(&z);
            assert_int_equal(pl_compress(PL_COMPRESS_ZSTD, levels[l], dict(),
                                         m.data, m.len, &z), 0);
            with[l] += z.len;
        }
    }
    for (int l = 0; l < 2; l++)
        assert_true(with[l] < plain[l]);
    pl_buf_free(&m);
    pl_buf_free(&z);
}

/* A frame names its dictionary; a receiver without it says which it needs. */
static void test_wrong_dictionary(void **state)
{
    (void)state;
    pl_buf z = PL_BUF_INIT, back = PL_BUF_INIT;
    char err[256], want[64];
    uint32_t other_id;
    pl_compress_dict *other = other_dict(&other_id);
    char *text = json_text(800, 13);

    assert_int_equal(pl_compress(PL_COMPRESS_ZSTD, 3, dict(), text, 800, &z), 0);
    /* None loaded. */
    assert_int_equal(decompress_exact(PL_COMPRESS_ZSTD, NULL, z.data, z.len, MiB,
                                      &back, err, sizeof err), PL_COMPRESS_EINVAL);
    snprintf(want, sizeof want, "needs dictionary %u", pl_compress_dict_id());
    assert_non_null(strstr(err, want));
    assert_int_equal(back.len, 0);
    /* Another one loaded. */
    assert_int_equal(decompress_exact(PL_COMPRESS_ZSTD, other, z.data, z.len, MiB,
                                      &back, err, sizeof err), PL_COMPRESS_EINVAL);
    assert_non_null(strstr(err, want));
    /* A frame made with the other dictionary is refused by the built-in. */
    pl_buf_reset(&z);
    assert_int_equal(pl_compress(PL_COMPRESS_ZSTD, 3, other, text, 800, &z), 0);
    assert_int_equal(pl_compress_frame_dict_id(z.data, z.len), other_id);
    assert_int_equal(decompress_exact(PL_COMPRESS_ZSTD, dict(), z.data, z.len, MiB,
                                      &back, err, sizeof err), PL_COMPRESS_EINVAL);
    /* A frame without a dictionary decodes whatever the receiver holds. */
    pl_buf_reset(&z);
    assert_int_equal(pl_compress(PL_COMPRESS_ZSTD, 3, NULL, text, 800, &z), 0);
    assert_int_equal(decompress_exact(PL_COMPRESS_ZSTD, dict(), z.data, z.len, MiB,
                                      &back, err, sizeof err), PL_COMPRESS_OK);
    assert_int_equal(back.len, 800);
    pl_compress_dict_free(other);
    free(text);
    pl_buf_free(&z);
    pl_buf_free(&back);
}

static void test_dict_new_rejects_non_dictionary(void **state)
{
    (void)state;
    unsigned char junk[4096];
    char err[128] = "";

    fill_random(junk, sizeof junk);
    assert_null(pl_compress_dict_new(junk, sizeof junk, err, sizeof err));
    assert_true(err[0] != '\0');
    pl_compress_dict_free(NULL);
}

/* ---- bad arguments -------------------------------------------------------------- */

static void test_bad_arguments(void **state)
{
    (void)state;
    pl_buf z = PL_BUF_INIT;
    char err[128];

    assert_int_equal(pl_compress(PL_COMPRESS_ZSTD, 0, NULL, "a", 1, &z), PL_COMPRESS_EINVAL);
    assert_int_equal(pl_compress(PL_COMPRESS_ZSTD, 23, NULL, "a", 1, &z), PL_COMPRESS_EINVAL);
    assert_int_equal(pl_compress(PL_COMPRESS_GZIP, 0, NULL, "a", 1, &z), PL_COMPRESS_EINVAL);
    assert_int_equal(pl_compress(PL_COMPRESS_GZIP, 10, NULL, "a", 1, &z), PL_COMPRESS_EINVAL);
    assert_int_equal(pl_compress(PL_COMPRESS_GZIP, 6, dict(), "a", 1, &z), PL_COMPRESS_EINVAL);
    assert_int_equal(pl_compress((pl_compress_alg)9, 1, NULL, "a", 1, &z), PL_COMPRESS_EINVAL);
    assert_int_equal(pl_compress(PL_COMPRESS_ZSTD, 1, NULL, NULL, 1, &z), PL_COMPRESS_EINVAL);
    assert_int_equal(z.len, 0);
    assert_int_equal(pl_decompress((pl_compress_alg)9, NULL, "a", 1, 10, &z, err,
                                   sizeof err), PL_COMPRESS_EINVAL);
    assert_non_null(strstr(err, "unknown"));
    assert_int_equal(pl_decompress(PL_COMPRESS_GZIP, dict(), "a", 1, 10, &z, err,
                                   sizeof err), PL_COMPRESS_EINVAL);
    /* err may be NULL. */
    assert_int_equal(pl_decompress(PL_COMPRESS_ZSTD, NULL, "a", 1, 10, &z, NULL, 0),
                     PL_COMPRESS_EINVAL);
    pl_buf_free(&z);
}

/* ---- broken zstd frames --------------------------------------------------------- */

static void expect_zstd_error(const void *in, size_t len, size_t limit, int code,
                              const char *phrase)
{
    pl_buf back = PL_BUF_INIT;
    char err[256] = "";

    assert_int_equal(pl_buf_append_str(&back, "keep"), 0);
    int rc = decompress_exact(PL_COMPRESS_ZSTD, dict(), in, len, limit, &back,
                              err, sizeof err);
    if (rc != code)
        fail_msg("expected %d, got %d (%s)", code, rc, err);
    assert_string_equal(back.data, "keep");
    if (phrase && !strstr(err, phrase))
        fail_msg("error \"%s\" does not say \"%s\"", err, phrase);
    pl_buf_free(&back);
}

static void test_zstd_truncated(void **state)
{
    (void)state;
    pl_buf z = PL_BUF_INIT;
    char *text = json_text(1000, 14);

    assert_int_equal(pl_compress(PL_COMPRESS_ZSTD, 3, NULL, text, 1000, &z), 0);
    for (size_t cut = 0; cut < z.len; cut++)
        expect_zstd_error(z.data, cut, MiB, PL_COMPRESS_EINVAL, NULL);
    expect_zstd_error(z.data, 3, MiB, PL_COMPRESS_EINVAL, "not a zstd frame");
    expect_zstd_error(z.data, z.len - 1, MiB, PL_COMPRESS_EINVAL, "truncated");
    free(text);
    pl_buf_free(&z);
}

/* Without a checksum a flipped bit may decode to other bytes; what matters
 * is that nothing crashes, reads out of bounds or exceeds the limit. */
static void test_zstd_corrupted(void **state)
{
    (void)state;
    pl_buf z = PL_BUF_INIT, back = PL_BUF_INIT;
    char *text = json_text(1000, 15);
    char err[256];

    assert_int_equal(pl_compress(PL_COMPRESS_ZSTD, 3, dict(), text, 1000, &z), 0);
    for (size_t i = 0; i < z.len * 8; i++) {
        z.data[i / 8] ^= (char)(1 << (i % 8));
        pl_buf_reset(&back);
        int rc = decompress_exact(PL_COMPRESS_ZSTD, dict(), z.data, z.len, 2000,
                                  &back, err, sizeof err);
        assert_true(rc == PL_COMPRESS_OK || rc == PL_COMPRESS_EINVAL ||
                    rc == PL_COMPRESS_ETOOBIG);
        assert_true(back.len <= 2000);
        if (rc != PL_COMPRESS_OK)
            assert_true(err[0] != '\0' && back.len == 0);
        z.data[i / 8] ^= (char)(1 << (i % 8));
    }
    /* A wrong magic number, and garbage. */
    z.data[0] ^= 1;
    expect_zstd_error(z.data, z.len, MiB, PL_COMPRESS_EINVAL, "not a zstd frame");
    expect_zstd_error("{\"type\":\"ack\"}", 14, MiB, PL_COMPRESS_EINVAL,
                      "not a zstd frame");
    free(text);
    pl_buf_free(&z);
    pl_buf_free(&back);
}

static void test_zstd_without_content_size(void **state)
{
    (void)state;
    char *text = json_text(1000, 16);
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    unsigned char frame[2048];

    ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
    size_t n = ZSTD_compress2(cctx, frame, sizeof frame, text, 1000);
    assert_false(ZSTD_isError(n));
    assert_true(ZSTD_getFrameContentSize(frame, n) == ZSTD_CONTENTSIZE_UNKNOWN);
    expect_zstd_error(frame, n, MiB, PL_COMPRESS_EINVAL, "content size");
    ZSTD_freeCCtx(cctx);
    free(text);
}

static void test_zstd_two_frames(void **state)
{
    (void)state;
    pl_buf z = PL_BUF_INIT;
    const char *a = "{\"type\":\"ack\",\"id\":\"1\"}";

    assert_int_equal(pl_compress(PL_COMPRESS_ZSTD, 1, NULL, a, strlen(a), &z), 0);
    size_t one = z.len;
    assert_int_equal(pl_compress(PL_COMPRESS_ZSTD, 1, NULL, a, strlen(a), &z), 0);
    expect_zstd_error(z.data, z.len, MiB, PL_COMPRESS_EINVAL, "after the zstd frame");
    /* One stray byte after the frame. */
    expect_zstd_error(z.data, one + 1, MiB, PL_COMPRESS_EINVAL, "1 bytes after");
    pl_buf_free(&z);
}

static void test_zstd_skippable_frame(void **state)
{
    (void)state;
    /* Magic 0x184D2A50, length 4, four bytes of payload. */
    static const unsigned char skip[] = { 0x50, 0x2A, 0x4D, 0x18, 4, 0, 0, 0,
                                          1, 2, 3, 4 };
    expect_zstd_error(skip, sizeof skip, MiB, PL_COMPRESS_EINVAL, "not a zstd frame");
}

/* ---- bombs ------------------------------------------------------------------------ */

/* BOMB_BYTES of zeros as one zstd frame that declares its size, made from a
 * 1 MiB buffer so that making it costs little memory. */
static void zstd_bomb(pl_buf *z)
{
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    unsigned char *zeros = calloc(1, MiB);
    unsigned char chunk[65536];

    assert_non_null(zeros);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 3);
    ZSTD_CCtx_setPledgedSrcSize(cctx, BOMB_BYTES);
    for (unsigned i = 0; i < BOMB_BYTES / MiB; i++) {
        ZSTD_inBuffer in = { zeros, MiB, 0 };
        ZSTD_EndDirective end = i + 1 == BOMB_BYTES / MiB ? ZSTD_e_end : ZSTD_e_continue;
        size_t left;
        do {
            ZSTD_outBuffer out = { chunk, sizeof chunk, 0 };
            left = ZSTD_compressStream2(cctx, &out, &in, end);
            assert_false(ZSTD_isError(left));
            assert_int_equal(pl_buf_append(z, chunk, out.pos), 0);
        } while (in.pos < in.size || (end == ZSTD_e_end && left));
    }
    free(zeros);
    ZSTD_freeCCtx(cctx);
}

static void gzip_bomb(pl_buf *z)
{
    z_stream s;
    unsigned char *zeros = calloc(1, MiB);
    unsigned char chunk[65536];

    assert_non_null(zeros);
    memset(&s, 0, sizeof s);
    assert_int_equal(deflateInit2(&s, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    for (unsigned i = 0; i < BOMB_BYTES / MiB; i++) {
        int flush = i + 1 == BOMB_BYTES / MiB ? Z_FINISH : Z_NO_FLUSH, ret;
        s.next_in = zeros;
        s.avail_in = MiB;
        do {
            s.next_out = chunk;
            s.avail_out = sizeof chunk;
            ret = deflate(&s, flush);
            assert_true(ret == Z_OK || ret == Z_STREAM_END || ret == Z_BUF_ERROR);
            assert_int_equal(pl_buf_append(z, chunk, sizeof chunk - s.avail_out), 0);
        } while (s.avail_in || (flush == Z_FINISH && ret != Z_STREAM_END));
    }
    deflateEnd(&s);
    free(zeros);
}

/*
 * Refuse the bomb with a 1 MiB limit and check that memory stayed small:
 * the output buffer holds at most about the limit, and the process's peak
 * resident size grew by less than 8 MiB (it would be 100 MiB otherwise).
 */
static void refuse_bomb(pl_compress_alg alg, const pl_buf *bomb,
                        const char *phrase)
{
    pl_buf back = PL_BUF_INIT;
    char err[256];
    long before = status_kb("VmRSS:");
    int peak_known = reset_peak_rss() == 0 && before > 0;

    int rc = pl_decompress(alg, NULL, bomb->data, bomb->len, MiB, &back, err,
                           sizeof err);
    long peak = status_kb("VmHWM:");

    assert_int_equal(rc, PL_COMPRESS_ETOOBIG);
    if (!strstr(err, phrase))
        fail_msg("error \"%s\" does not say \"%s\"", err, phrase);
    assert_int_equal(back.len, 0);
    assert_true(back.cap <= 2 * MiB + 1);
    if (peak_known) {
        print_message("peak RSS grew by %ld KiB while refusing a %llu MiB bomb\n",
                      peak - before, BOMB_BYTES / MiB);
        assert_true(peak - before < 8 * 1024);
    } else {
        print_message("/proc/self/clear_refs unavailable: peak RSS not checked\n");
    }
    pl_buf_free(&back);
}

static void test_zstd_bomb(void **state)
{
    (void)state;
    pl_buf bomb = PL_BUF_INIT;

    zstd_bomb(&bomb);
    assert_true(bomb.len < MiB);
    refuse_bomb(PL_COMPRESS_ZSTD, &bomb,
                "decompresses to 104857600 bytes, over the limit");
    pl_buf_free(&bomb);
}

/* A frame whose header lies (claims 1000 bytes, holds 2 MiB) fails in the
 * 1000-byte buffer it was given. */
static void test_zstd_lying_size(void **state)
{
    (void)state;
    pl_buf z = PL_BUF_INIT;
    unsigned char *zeros = calloc(1, 2 * MiB);
    uint32_t fake = 1000;

    assert_non_null(zeros);
    assert_int_equal(pl_compress(PL_COMPRESS_ZSTD, 1, NULL, zeros, 2 * MiB, &z), 0);
    /* Frame header descriptor (RFC 8878 3.1.1.1.1): a 4-byte content size
     * field (flag 2), no dictionary id; the field comes after the window
     * descriptor byte unless the frame is a single segment. */
    unsigned char fhd = (unsigned char)z.data[4];
    assert_int_equal(fhd >> 6, 2);
    assert_int_equal(fhd & 3, 0);
    memcpy(z.data + 5 + (fhd & 0x20 ? 0 : 1), &fake, 4);
    assert_true(ZSTD_getFrameContentSize(z.data, z.len) == 1000);
    expect_zstd_error(z.data, z.len, MiB, PL_COMPRESS_EINVAL, "corrupted");
    free(zeros);
    pl_buf_free(&z);
}

static void test_gzip_bomb(void **state)
{
    (void)state;
    pl_buf bomb = PL_BUF_INIT;

    gzip_bomb(&bomb);
    assert_true(bomb.len < MiB);
    refuse_bomb(PL_COMPRESS_GZIP, &bomb, "more than the limit");
    pl_buf_free(&bomb);
}

/* ---- broken gzip ------------------------------------------------------------------ */

static void expect_gzip_error(const void *in, size_t len, const char *phrase)
{
    pl_buf back = PL_BUF_INIT;
    char err[256] = "";

    int rc = decompress_exact(PL_COMPRESS_GZIP, NULL, in, len, MiB, &back, err,
                              sizeof err);
    if (rc != PL_COMPRESS_EINVAL)
        fail_msg("expected EINVAL, got %d (%s)", rc, err);
    assert_int_equal(back.len, 0);
    if (phrase && !strstr(err, phrase))
        fail_msg("error \"%s\" does not say \"%s\"", err, phrase);
    pl_buf_free(&back);
}

static void test_gzip_truncated_and_corrupted(void **state)
{
    (void)state;
    pl_buf z = PL_BUF_INIT;
    char *text = json_text(3000, 17);

    assert_int_equal(pl_compress(PL_COMPRESS_GZIP, 6, NULL, text, 3000, &z), 0);
    for (size_t cut = 0; cut < z.len; cut++)
        expect_gzip_error(z.data, cut, NULL);
    expect_gzip_error(z.data, z.len - 1, "truncated");
    /* A broken CRC-32 in the trailer. */
    z.data[z.len - 5] ^= 0x40;
    expect_gzip_error(z.data, z.len, "corrupted");
    z.data[z.len - 5] ^= 0x40;
    /* A wrong magic. */
    z.data[0] ^= 0x01;
    expect_gzip_error(z.data, z.len, "corrupted");
    z.data[0] ^= 0x01;
    /* Two members, or one and a stray byte. */
    size_t one = z.len;
    assert_int_equal(pl_compress(PL_COMPRESS_GZIP, 6, NULL, text, 10, &z), 0);
    expect_gzip_error(z.data, z.len, "after the gzip member");
    expect_gzip_error(z.data, one + 1, "after the gzip member");
    free(text);
    pl_buf_free(&z);
}

/* ---- threads ---------------------------------------------------------------------- */

#define THREADS 4

static void *worker(void *arg)
{
    uintptr_t t = (uintptr_t)arg;
    char *text = json_text(2000, 20 + t);
    pl_buf z = PL_BUF_INIT, back = PL_BUF_INIT;
    char err[128];
    int bad = 0;

    for (int i = 0; i < 200 && !bad; i++) {
        /* Many threads asking for a level's CDict at once. */
        int level = 1 + (int)((t + (uintptr_t)i) % 12);
        pl_compress_alg alg = i % 5 == 4 ? PL_COMPRESS_GZIP : PL_COMPRESS_ZSTD;
        const pl_compress_dict *d =
            alg == PL_COMPRESS_ZSTD && i % 2 ? pl_compress_dict_builtin() : NULL;
        size_t len = 100 + (size_t)i * 9;
        pl_buf_reset(&z);
        pl_buf_reset(&back);
        if (alg == PL_COMPRESS_GZIP && level > 9)
            level = 9;
        bad = pl_compress(alg, level, d, text, len, &z) ||
              pl_decompress(alg, d, z.data, z.len, len, &back, err, sizeof err) ||
              back.len != len || memcmp(back.data, text, len);
    }
    free(text);
    pl_buf_free(&z);
    pl_buf_free(&back);
    return (void *)(uintptr_t)bad;
}

static void test_threads(void **state)
{
    (void)state;
    pthread_t th[THREADS];

    for (uintptr_t t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, worker, (void *)t), 0);
    for (int t = 0; t < THREADS; t++) {
        void *bad;
        assert_int_equal(pthread_join(th[t], &bad), 0);
        assert_null(bad);
    }
}

/* The thread's contexts can be dropped early and come back on next use. */
static void test_thread_release(void **state)
{
    (void)state;
    pl_compress_thread_release();
    pl_compress_thread_release();
    round_trip(PL_COMPRESS_ZSTD, 1, dict(), "{\"type\":\"ack\"}", 14);
    round_trip(PL_COMPRESS_GZIP, 1, NULL, "{\"type\":\"ack\"}", 14);
    pl_compress_thread_release();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worth_it),
        cmocka_unit_test(test_threshold_holds),
        cmocka_unit_test(test_zstd_bomb),
        cmocka_unit_test(test_gzip_bomb),
        cmocka_unit_test(test_zstd_lying_size),
        cmocka_unit_test(test_round_trip_around_threshold),
        cmocka_unit_test(test_round_trip_every_level),
        cmocka_unit_test(test_appends),
        cmocka_unit_test(test_dict_id),
        cmocka_unit_test(test_dict_beats_plain_at_1k),
        cmocka_unit_test(test_wrong_dictionary),
        cmocka_unit_test(test_dict_new_rejects_non_dictionary),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_zstd_truncated),
        cmocka_unit_test(test_zstd_corrupted),
        cmocka_unit_test(test_zstd_without_content_size),
        cmocka_unit_test(test_zstd_two_frames),
        cmocka_unit_test(test_zstd_skippable_frame),
        cmocka_unit_test(test_gzip_truncated_and_corrupted),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_thread_release),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    pl_compress_thread_release(); /* the main thread never runs key destructors */
    return failed;
}
