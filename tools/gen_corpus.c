/*
 * gen_corpus: print generated parley.v1 messages (tools/corpus.h), one JSON
 * object per line (JSON strings escape newlines, so lines are messages).
 *
 *   gen_corpus [--seed N] [--count N] [--kind mixed|message|text|done|ack|
 *              hello|error|cancel|message1k]
 *
 * `message1k` is a client message of 900..1100 bytes, the benchmark's case.
 * `make dict` trains the dictionary on `--seed 1 --count 20000` (mixed).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corpus.h"

static const char *const kinds[] = {
    "mixed", "message", "text", "done", "ack", "hello", "error", "cancel",
};
#define KIND_1K 100

static int parse_kind(const char *s)
{
    size_t i;

    if (!strcmp(s, "message1k"))
        return KIND_1K;
    for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(s, kinds[i]))
            return (int)i;
    return -1;
}

static int parse_u64(const char *s, unsigned long long *v)
{
    char *end;

    errno = 0;
    *v = strtoull(s, &end, 10);
    return s[0] >= '0' && s[0] <= '9' && !*end && !errno ? 0 : -1;
}

static int usage(void)
{
    fputs("usage: gen_corpus [--seed N] [--count N] [--kind mixed|message|"
          "text|done|ack|hello|error|cancel|message1k]\n", stderr);
    return 2;
}

int main(int argc, char **argv)
{
    unsigned long long seed = 1, count = 1000, i;
    int kind = 0, a;
    pl_corpus c;
    pl_buf b = PL_BUF_INIT;

    for (a = 1; a + 1 < argc; a += 2) {
        if (!strcmp(argv[a], "--seed") && !parse_u64(argv[a + 1], &seed))
            continue;
        if (!strcmp(argv[a], "--count") && !parse_u64(argv[a + 1], &count))
            continue;
        if (!strcmp(argv[a], "--kind") && (kind = parse_kind(argv[a + 1])) >= 0)
            continue;
        return usage();
    }
    if (a != argc)
        return usage();
    pl_corpus_init(&c, seed);
    for (i = 0; i < count; i++) {
        pl_buf_reset(&b);
        if (kind == KIND_1K ? pl_corpus_message_sized(&c, 900, 1100, &b)
                            : pl_corpus_next(&c, (pl_corpus_kind)kind, &b)) {
            fputs("gen_corpus: out of memory\n", stderr);
            return 1;
        }
        fwrite(b.data, 1, b.len, stdout);
        putchar('\n');
    }
    pl_buf_free(&b);
    return ferror(stdout) ? 1 : 0;
}
