/*
 * train_dict: train a zstd dictionary on samples, one per line.
 *
 *   train_dict SAMPLES.jsonl OUT.dict [SIZE]
 *
 * ZDICT_trainFromBuffer (fastCover, zstd's default trainer) with a SIZE-byte
 * budget (default 16384). Training is deterministic: the same samples give
 * the same dictionary and the same id (a hash of the content), so `make dict`
 * reproduces the committed src/dict/parley-v1.dict.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zdict.h>

#include "buf.h"

/* Read the whole file; lines become samples (newlines dropped). */
static int read_samples(const char *path, pl_buf *data, size_t **sizes,
                        unsigned *n)
{
    FILE *f = fopen(path, "rb");
    char *line = NULL;
    size_t cap = 0, alloc = 0;
    ssize_t len;

    if (!f)
        return -1;
    *n = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] == '\n')
            len--;
        if (!len)
            continue;
        if (*n == alloc) {
            alloc = alloc ? alloc * 2 : 1024;
            *sizes = realloc(*sizes, alloc * sizeof **sizes);
            if (!*sizes)
                return -1;
        }
        (*sizes)[(*n)++] = (size_t)len;
        if (pl_buf_append(data, line, (size_t)len))
            return -1;
    }
    free(line);
    fclose(f);
    return 0;
}

int main(int argc, char **argv)
{
    pl_buf data = PL_BUF_INIT;
    size_t *sizes = NULL, cap = 16384, got;
    unsigned n = 0;
    void *dict;
    FILE *out;

    if (argc < 3 || argc > 4) {
        fputs("usage: train_dict SAMPLES.jsonl OUT.dict [SIZE]\n", stderr);
        return 2;
    }
    if (argc == 4)
        cap = (size_t)strtoul(argv[3], NULL, 10);
    if (read_samples(argv[1], &data, &sizes, &n) || !n) {
        fprintf(stderr, "train_dict: cannot read samples from %s\n", argv[1]);
        return 1;
    }
    dict = malloc(cap);
    got = ZDICT_trainFromBuffer(dict, cap, data.data, sizes, n);
    if (ZDICT_isError(got)) {
        fprintf(stderr, "train_dict: %s\n", ZDICT_getErrorName(got));
        return 1;
    }
    out = fopen(argv[2], "wb");
    if (!out || fwrite(dict, 1, got, out) != got || fclose(out)) {
        fprintf(stderr, "train_dict: cannot write %s\n", argv[2]);
        return 1;
    }
    fprintf(stderr, "train_dict: %u samples, %zu bytes -> %zu-byte dictionary, "
            "id %u\n", n, data.len, got, ZDICT_getDictID(dict, got));
    free(dict);
    free(sizes);
    pl_buf_free(&data);
    return 0;
}
