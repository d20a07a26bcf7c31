/*
 * libFuzzer target: configuration values. parley_conf_set() takes text from
 * wherever the application got it (files, command lines), and
 * pl_conf_finalize() reads the environment (PARLEY_ENDPOINT, PARLEY_LOG, the
 * key variables, ...), so both get hostile input here.
 *
 * The input is lines:
 *   "$" K VALUE    set environment variable number K (mod the list) to VALUE
 *   B VALUE        (B < 0x80) set property number B (mod the count) to VALUE
 *   B NAME=VALUE   (B >= 0x80) set property NAME, which may not exist
 * then the configuration is finalized. Property names come from
 * parley_conf_dump(), so a new property is fuzzed without touching this.
 *
 * Checked besides the sanitizers: a value accepted reads back as text that is
 * accepted again unchanged; a refused value or a failed finalize leaves the
 * configuration as it was; parley_conf_dup() copies every value; an API key
 * returned is one header-safe line.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "fuzz_conf: check failed: %s\n", #cond);         \
            abort();                                                         \
        }                                                                    \
    } while (0)

#define MAX_PROPS 128
#define TEXT_MAX 8192 /* inputs longer than this are skipped */

static const char *const env_vars[] = {
    "PARLEY_ENDPOINT", "PARLEY_WORKER_ID", "PARLEY_LOG",
    "PARLEY_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_API_KEY",
};
#define NENV (sizeof(env_vars) / sizeof(env_vars[0]))

/* "NAME=value" strings handed to putenv(), which keeps the pointer. */
static char env_text[NENV][TEXT_MAX + 32];

static char *props[MAX_PROPS];
static size_t nprops;

/* Take the names from the generated table's rows: "| `name` | ...". */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    size_t size = parley_conf_dump(NULL, 0) + 1;
    char *table = malloc(size);
    CHECK(table != NULL);
    parley_conf_dump(table, size);
    for (char *row = strstr(table, "\n| `"); row && nprops < MAX_PROPS;
         row = strstr(row + 1, "\n| `")) {
        char *name = row + 4, *end = strchr(name, '`');
        CHECK(end != NULL);
        props[nprops] = strndup(name, (size_t)(end - name));
        CHECK(props[nprops] != NULL);
        nprops++;
    }
    free(table);
    CHECK(nprops > 0);
    return 0;
}

/* The text form of property `name`, into buf (TEXT_MAX bytes). */
static void get_text(const parley_conf_t *conf, const char *name, char *buf)
{
    size_t size = TEXT_MAX;
    CHECK(parley_conf_get(conf, name, buf, &size) == PARLEY_OK);
}

/* Every property's text: a snapshot to compare. */
static char **snapshot(const parley_conf_t *conf)
{
    char **all = calloc(nprops, sizeof(*all));
    char text[TEXT_MAX];
    CHECK(all != NULL);
    for (size_t i = 0; i < nprops; i++) {
        get_text(conf, props[i], text);
        CHECK((all[i] = strdup(text)) != NULL);
    }
    return all;
}

/* Compare two snapshots and free them. */
static int same_snapshot(char **a, char **b)
{
    int same = 1;
    for (size_t i = 0; i < nprops; i++) {
        same &= strcmp(a[i], b[i]) == 0;
        free(a[i]);
        free(b[i]);
    }
    free(a);
    free(b);
    return same;
}

static void fuzz_set(parley_conf_t *conf, const char *name, const char *value)
{
    char err[256] = "", before[TEXT_MAX], after[TEXT_MAX];
    int known = parley_conf_get(conf, name, NULL, &(size_t){0}) == PARLEY_OK;
    if (known)
        get_text(conf, name, before);
    parley_err_t rc = parley_conf_set(conf, name, value, err, sizeof(err));
    if (rc != PARLEY_OK) {
        CHECK(rc == PARLEY_ERR_UNKNOWN_OPTION || rc == PARLEY_ERR_INVALID_VALUE);
        CHECK(err[0] != '\0');
        CHECK((rc == PARLEY_ERR_UNKNOWN_OPTION) == !known);
        if (known) {
            get_text(conf, name, after);
            CHECK(strcmp(before, after) == 0);
        }
        return;
    }
    /* What get() prints, set() takes back, and nothing moves. */
    get_text(conf, name, before);
    CHECK(parley_conf_set(conf, name, before, err, sizeof(err)) == PARLEY_OK);
    get_text(conf, name, after);
    CHECK(strcmp(before, after) == 0);
}

/* One input line (NUL-terminated, without its newline). */
static void fuzz_line(parley_conf_t *conf, char *line, size_t len)
{
    if (len == 0)
        return;
    unsigned char op = (unsigned char)line[0];
    if (op == '$' && len >= 2) {
        size_t k = (unsigned char)line[1] % NENV;
        if (len > 2) {
            /* putenv() of a buffer of ours: setenv() would keep every value
             * ever set, and a long run would end out of memory. */
            snprintf(env_text[k], sizeof(env_text[k]), "%s=%s", env_vars[k], line + 2);
            putenv(env_text[k]);
        } else {
            unsetenv(env_vars[k]);
        }
    } else if (op < 0x80) {
        fuzz_set(conf, props[op % nprops], line + 1);
    } else {
        char *eq = strchr(line + 1, '=');
        if (eq) {
            *eq = '\0';
            fuzz_set(conf, line + 1, eq + 1);
        }
    }
}

static void on_event(parley_client_t *c, const parley_event_t *ev, void *opaque)
{
    (void)c;
    (void)ev;
    (void)opaque;
}

/* A key is one line for an Authorization header: no control bytes. */
static void check_key(const char *key)
{
    CHECK(key != NULL && key[0] != '\0');
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        CHECK(*p >= ' ' && *p != 0x7f);
}

static void fuzz_finalize(parley_conf_t *conf)
{
    char err[512] = "";
    char *key = NULL;
    /* The fuzzer must not open files of its choosing (a FIFO would hang). */
    CHECK(parley_conf_set(conf, "api_key.file", "", NULL, 0) == PARLEY_OK);
    parley_conf_set_event_cb(conf, on_event, NULL);
    char **before = snapshot(conf);
    parley_err_t rc = pl_conf_finalize(conf, &key, err, sizeof(err));
    if (rc == PARLEY_OK) {
        check_key(key);
        free(key);
        same_snapshot(before, snapshot(conf)); /* only to free them */
        return;
    }
    CHECK(key == NULL);
    CHECK(err[0] != '\0');
    CHECK(same_snapshot(before, snapshot(conf)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= TEXT_MAX)
        return 0;
    for (size_t i = 0; i < NENV; i++)
        unsetenv(env_vars[i]);
    parley_conf_t *conf = parley_conf_new();
    CHECK(conf != NULL);
    char text[TEXT_MAX];
    memcpy(text, data, size);
    /* Lines end at '\n'; a NUL inside one ends it early, as in C. */
    for (size_t pos = 0; pos <= size;) {
        char *line = text + pos;
        char *nl = memchr(line, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - line) : size - pos;
        line[len] = '\0';
        fuzz_line(conf, line, strlen(line));
        pos += len + 1;
    }
    parley_conf_t *dup = parley_conf_dup(conf);
    CHECK(dup != NULL);
    CHECK(same_snapshot(snapshot(conf), snapshot(dup)));
    parley_conf_destroy(dup);
    fuzz_finalize(conf);
    parley_conf_destroy(conf);
    return 0;
}
