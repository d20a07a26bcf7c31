/*
 * libFuzzer target: zstd frame handling (and gzip) in pl_decompress(),
 * which reads whatever a peer sends in a binary frame.
 *
 * Input: byte 0 chooses how the rest is decoded:
 *   bit 0      gzip instead of zstd
 *   bit 1      pass the built-in dictionary (zstd only)
 *   bits 2-7   the limit: 1 << min(bits, 20) bytes (1 B .. 1 MiB)
 * then the frame itself.
 *
 * Besides the sanitizers' checks it asserts what compress.h promises: the
 * result is a documented code; an error leaves out unchanged and says why;
 * a success never passes the limit, matches a zstd frame's declared size and
 * dictionary, and its output compresses and decompresses back to itself.
 * The thread's codec contexts are reused across inputs, as a connection
 * reuses them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "compress.h"

/* Not assert(): it must hold in every build, NDEBUG or not. */
#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "fuzz_compress: check failed: %s\n", #cond);     \
            abort();                                                         \
        }                                                                    \
    } while (0)

#define PREFIX "prefix"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    CHECK(pl_compress_dict_builtin() != NULL);
    return 0;
}

/* What a successful zstd result must agree with in the frame's header. */
static void check_zstd_header(const uint8_t *in, size_t len,
                              const pl_compress_dict *dict, size_t got)
{
    uint32_t id = pl_compress_frame_dict_id(in, len);

    CHECK(ZSTD_getFrameContentSize(in, len) == got);
    CHECK(ZSTD_findFrameCompressedSize(in, len) == len);
    CHECK(id == 0 || (dict && id == pl_compress_dict_get_id(dict)));
}

/* The output is data like any other: it goes back and forth unchanged. */
static void check_round_trip(pl_compress_alg alg, const pl_compress_dict *dict,
                             const char *data, size_t len)
{
    pl_buf z = PL_BUF_INIT, back = PL_BUF_INIT;
    char err[256];

    CHECK(pl_compress(alg, 1, dict, data, len, &z) == PL_COMPRESS_OK);
    CHECK(pl_decompress(alg, dict, z.data, z.len, len, &back, err,
                        sizeof err) == PL_COMPRESS_OK);
    CHECK(back.len == len && (len == 0 || !memcmp(back.data, data, len)));
    pl_buf_free(&z);
    pl_buf_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pl_buf out = PL_BUF_INIT;
    char err[256];
    pl_compress_alg alg;
    const pl_compress_dict *dict;
    unsigned shift;
    size_t limit, plen = strlen(PREFIX);
    int rc;

    if (size < 1)
        return 0;
    alg = data[0] & 1 ? PL_COMPRESS_GZIP : PL_COMPRESS_ZSTD;
    dict = alg == PL_COMPRESS_ZSTD && data[0] & 2 ? pl_compress_dict_builtin()
                                                 : NULL;
    shift = data[0] >> 2;
    limit = (size_t)1 << (shift > 20 ? 20 : shift);
    data++, size--;

    /* out already holds something, which must survive either way. */
    CHECK(pl_buf_append_str(&out, PREFIX) == 0);
    err[0] = 'x';
    rc = pl_decompress(alg, dict, data, size, limit, &out, err, sizeof err);
    CHECK(rc == PL_COMPRESS_OK || rc == PL_COMPRESS_EINVAL ||
          rc == PL_COMPRESS_ETOOBIG || rc == PL_COMPRESS_ENOMEM);
    CHECK(out.len >= plen && !memcmp(out.data, PREFIX, plen));
    CHECK(out.data[out.len] == '\0');
    if (rc != PL_COMPRESS_OK) {
        CHECK(out.len == plen);
        CHECK(err[0] != '\0' && memchr(err, '\0', sizeof err));
    } else {
        CHECK(err[0] == '\0');
        CHECK(out.len - plen <= limit);
        if (alg == PL_COMPRESS_ZSTD)
            check_zstd_header(data, size, dict, out.len - plen);
        check_round_trip(alg, dict, out.data + plen, out.len - plen);
    }
    pl_buf_free(&out);
    return 0;
}
