/*
 * bench_compress: what compression buys on parley.v1 traffic (make bench).
 *
 *   bench_compress [--messages N] [--rounds R] [--threshold]
 *
 * Default: N (2000) client messages of 900..1100 bytes from the traffic
 * generator (tools/corpus.c, seed 2; the dictionary was trained on seed 1),
 * each compressed and decompressed one at a time, as a connection does,
 * R (7) times; the median round is reported. One Markdown table: the size
 * ratio (compressed / original), how much smaller, and microseconds per
 * message to compress and to decompress.
 *
 * --threshold: instead, 60,000 generated messages of every kind grouped by
 * size, with what zstd level 1 (without and with the dictionary) and gzip 6
 * make of each group: the measurement behind PL_COMPRESS_MIN_BYTES.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>
#include <zstd.h>

#include "compress.h"
#include "cpu_model.h"
#include "corpus.h"

#define BENCH_SEED 2

struct codec {
    const char *name;
    pl_compress_alg alg; /* 0: none */
    int level;
    int dict;
};

static const struct codec codecs[] = {
    { "none", 0, 0, 0 },
    { "gzip -1", PL_COMPRESS_GZIP, 1, 0 },
    { "gzip -6", PL_COMPRESS_GZIP, 6, 0 },
    { "zstd -1", PL_COMPRESS_ZSTD, 1, 0 },
    { "zstd -3", PL_COMPRESS_ZSTD, 3, 0 },
    { "zstd -9", PL_COMPRESS_ZSTD, 9, 0 },
    { "zstd -1 + dictionary", PL_COMPRESS_ZSTD, 1, 1 },
    { "zstd -3 + dictionary", PL_COMPRESS_ZSTD, 3, 1 },
};
#define NCODECS (sizeof codecs / sizeof codecs[0])

/* ---- helpers ----------------------------------------------------------------- */

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_compress: %s\n", what);
    exit(1);
}

static const pl_compress_dict *dict_for(const struct codec *c)
{
    return c->dict ? pl_compress_dict_builtin() : NULL;
}

/* The machine, so that numbers in docs say where they came from. */
static void print_machine(void)
{
    char model[256];
    bench_cpu_model(model, sizeof(model));
    printf("machine: %ld CPUs online, %s; zstd %s, zlib %s, dictionary id %u "
           "(%zu bytes)\n", sysconf(_SC_NPROCESSORS_ONLN), model,
           ZSTD_versionString(), zlibVersion(), pl_compress_dict_id(),
           pl_compress_dict_size);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    printf("WARNING: built with a sanitizer: times are meaningless, use "
           "build/plain\n");
#endif
}

/* ---- the 1 KB table ------------------------------------------------------------- */

struct corpus {
    pl_buf *msg;
    size_t n, bytes;
};

static void make_messages(struct corpus *cp, size_t n)
{
    pl_corpus c;

    pl_corpus_init(&c, BENCH_SEED);
    cp->msg = calloc(n, sizeof *cp->msg);
    if (!cp->msg)
        die("out of memory");
    cp->n = n;
    cp->bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (pl_corpus_message_sized(&c, 900, 1100, &cp->msg[i]))
            die("out of memory");
        cp->bytes += cp->msg[i].len;
    }
}

/* One round: compress every message into z[i]; returns microseconds. */
static double compress_round(const struct codec *c, const struct corpus *cp,
                             pl_buf *z)
{
    double t0 = now_us();

    for (size_t i = 0; i < cp->n; i++) {
        pl_buf_reset(&z[i]);
        if (pl_compress(c->alg, c->level, dict_for(c), cp->msg[i].data,
                        cp->msg[i].len, &z[i]))
            die("compression failed");
    }
    return now_us() - t0;
}

static double decompress_round(const struct codec *c, const struct corpus *cp,
                               const pl_buf *z, pl_buf *out)
{
    char err[256];
    double t0 = now_us();

    for (size_t i = 0; i < cp->n; i++) {
        pl_buf_reset(out);
        if (pl_decompress(c->alg, dict_for(c), z[i].data, z[i].len,
                          1024 * 1024, out, err, sizeof err))
            die(err);
    }
    return now_us() - t0;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return v[n / 2];
}

static void bench_codec(const struct codec *c, const struct corpus *cp,
                        unsigned rounds)
{
    pl_buf *z = calloc(cp->n, sizeof *z), out = PL_BUF_INIT;
    double *tc = calloc(rounds, sizeof *tc), *td = calloc(rounds, sizeof *td);
    size_t packed = 0;

    if (!z || !tc || !td)
        die("out of memory");
    if (!c->alg) {
        printf("| %-22s | %6.3f | %5.1f %% | %7s | %7s |\n", c->name, 1.0, 0.0,
               "-", "-");
        free(z), free(tc), free(td);
        return;
    }
    /* A warm-up round makes the contexts and the dictionary's CDict. */
    compress_round(c, cp, z);
    decompress_round(c, cp, z, &out);
    for (unsigned r = 0; r < rounds; r++) {
        tc[r] = compress_round(c, cp, z);
        td[r] = decompress_round(c, cp, z, &out);
    }
    for (size_t i = 0; i < cp->n; i++)
        packed += z[i].len;
    double ratio = (double)packed / (double)cp->bytes;
    printf("| %-22s | %6.3f | %5.1f %% | %7.2f | %7.2f |\n", c->name, ratio,
           (1 - ratio) * 100, median(tc, rounds) / (double)cp->n,
           median(td, rounds) / (double)cp->n);
    for (size_t i = 0; i < cp->n; i++)
        pl_buf_free(&z[i]);
    pl_buf_free(&out);
    free(z), free(tc), free(td);
}

static void bench_1k(size_t n, unsigned rounds)
{
    struct corpus cp;

    make_messages(&cp, n);
    printf("%zu client messages of 900-1100 bytes (mean %zu), seed %d; "
           "median of %u rounds\n\n", cp.n, cp.bytes / cp.n, BENCH_SEED, rounds);
    printf("| codec                  | ratio  | smaller | comp us | dec us  |\n");
    printf("|------------------------|-------:|--------:|--------:|--------:|\n");
    for (size_t k = 0; k < NCODECS; k++) {
        bench_codec(&codecs[k], &cp, rounds);
        fflush(stdout);
    }
    for (size_t i = 0; i < cp.n; i++)
        pl_buf_free(&cp.msg[i]);
    free(cp.msg);
}

/* ---- the threshold table ------------------------------------------------------- */

#define GROUP 8
#define GROUPS 24 /* 0..191 bytes; larger messages all shrink */

struct group {
    size_t n, orig, zstd, zstd_dict, gzip, shrank, shrank_dict;
};

static size_t packed_size(pl_compress_alg alg, int level, int dict,
                          const pl_buf *m, pl_buf *z)
{
    pl_buf_reset(z);
    if (pl_compress(alg, level, dict ? pl_compress_dict_builtin() : NULL,
                    m->data, m->len, z))
        die("compression failed");
    return z->len;
}

static void add_sample(struct group *g, const pl_buf *m, pl_buf *z)
{
    size_t zs = packed_size(PL_COMPRESS_ZSTD, 1, 0, m, z);

    g->n++;
    g->orig += m->len;
    g->zstd += zs;
    g->shrank += zs < m->len;
    zs = packed_size(PL_COMPRESS_ZSTD, 1, 1, m, z);
    g->zstd_dict += zs;
    g->shrank_dict += zs < m->len;
    g->gzip += packed_size(PL_COMPRESS_GZIP, 6, 0, m, z);
}

static void bench_threshold(void)
{
    struct group g[GROUPS];
    pl_corpus c;
    pl_buf m = PL_BUF_INIT, z = PL_BUF_INIT;

    memset(g, 0, sizeof g);
    pl_corpus_init(&c, BENCH_SEED);
    for (int i = 0; i < 60000; i++) {
        pl_buf_reset(&m);
        if (pl_corpus_next(&c, PL_CORPUS_MIXED, &m))
            die("out of memory");
        if (m.len / GROUP < GROUPS)
            add_sample(&g[m.len / GROUP], &m, &z);
    }
    printf("60000 generated messages of every kind (seed %d), by size; mean "
           "bytes saved per message (negative: it grew)\n\n", BENCH_SEED);
    printf("| size (bytes) | messages | zstd -1 | shrank | zstd -1 + dict | shrank | gzip -6 |\n");
    printf("|--------------|---------:|--------:|-------:|---------------:|-------:|--------:|\n");
    for (int k = 0; k < GROUPS; k++) {
        if (!g[k].n)
            continue;
        double n = (double)g[k].n;
        printf("| %4d-%-4d    | %8zu | %+7.1f | %4.0f %% | %+14.1f | %4.0f %% | %+7.1f |\n",
               k * GROUP, k * GROUP + GROUP - 1, g[k].n,
               ((double)g[k].orig - (double)g[k].zstd) / n,
               100.0 * (double)g[k].shrank / n,
               ((double)g[k].orig - (double)g[k].zstd_dict) / n,
               100.0 * (double)g[k].shrank_dict / n,
               ((double)g[k].orig - (double)g[k].gzip) / n);
    }
    pl_buf_free(&m);
    pl_buf_free(&z);
}

int main(int argc, char **argv)
{
    size_t n = 2000;
    unsigned rounds = 7;
    int threshold = 0;

    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--threshold"))
            threshold = 1;
        else if (!strcmp(argv[a], "--messages") && a + 1 < argc)
            n = (size_t)strtoul(argv[++a], NULL, 10);
        else if (!strcmp(argv[a], "--rounds") && a + 1 < argc)
            rounds = (unsigned)strtoul(argv[++a], NULL, 10);
        else {
            fprintf(stderr, "usage: bench_compress [--messages N] [--rounds R] "
                    "[--threshold]\n");
            return 2;
        }
    }
    if (!n || !rounds)
        die("--messages and --rounds must be at least 1");
    print_machine();
    if (threshold)
        bench_threshold();
    else
        bench_1k(n, rounds);
    pl_compress_thread_release();
    return 0;
}
