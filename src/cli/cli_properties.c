/* Options that are plain client properties (cli_properties.h). */
#include "cli_properties.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const cli_property_option cli_tls_options[] = {
    {"cacert", "tls.ca.file"},      {"capath", "tls.ca.path"},
    {"pinnedpubkey", "tls.pinned.pubkey"}, {"cert", "tls.cert.file"},
    {"key", "tls.key.file"},
};
/* The commands size their getopt tables by the macro: keep the two in step. */
_Static_assert(sizeof(cli_tls_options) / sizeof(cli_tls_options[0]) == CLI_TLS_OPTIONS_COUNT,
               "CLI_TLS_OPTIONS_COUNT must match the table");

/* The properties that have an option of their own. */
static const cli_property_option property_options[] = {
    {"endpoint", "endpoint"},         {"dialect", "dialect"},
    {"model", "model"},               {"system", "system"},
    {"key-file", "api.key.file"},     {"cacert", "tls.ca.file"},
    {"capath", "tls.ca.path"},        {"pinnedpubkey", "tls.pinned.pubkey"},
    {"cert", "tls.cert.file"},        {"key", "tls.key.file"},
    {"insecure", "tls.insecure"},
};

/* snprintf() that keeps count of what it wrote into out. */
static void append(char *out, size_t size, size_t *used, const char *text, size_t len)
{
    if (*used + 1 >= size)
        return;
    if (len > size - 1 - *used)
        len = size - 1 - *used;
    memcpy(out + *used, text, len);
    *used += len;
    out[*used] = '\0';
}

void cli_explain(const char *message, char *out, size_t size)
{
    static const char open[] = "the \"", close[] = "\" property";
    size_t used = 0;
    if (size == 0)
        return;
    out[0] = '\0';
    for (const char *m = message; *m;) {
        const char *start = strstr(m, open);
        const char *name = start ? start + strlen(open) : NULL;
        const char *end = name ? strstr(name, close) : NULL;
        if (!end || memchr(name, '"', (size_t)(end - name))) {
            append(out, size, &used, m, strlen(m));
            return;
        }
        append(out, size, &used, m, (size_t)(start - m));
        size_t name_len = (size_t)(end - name);
        const char *option = NULL;
        for (size_t i = 0; i < sizeof(property_options) / sizeof(property_options[0]); i++)
            if (strlen(property_options[i].property) == name_len &&
                !strncmp(property_options[i].property, name, name_len))
                option = property_options[i].option;
        if (option) {
            append(out, size, &used, "--", 2);
            append(out, size, &used, option, strlen(option));
        } else {
            append(out, size, &used, "--set ", 6);
            append(out, size, &used, name, name_len);
            append(out, size, &used, "=...", 4);
        }
        m = end + strlen(close);
    }
}

void cli_error(const char *message)
{
    char explained[2048];
    cli_explain(message, explained, sizeof(explained));
    fprintf(stderr, "parley: %s\n", explained);
}

bool cli_conf_set(parley_conf_t *conf, const char *name, const char *value)
{
    char err[512];
    if (parley_conf_set(conf, name, value, err, sizeof(err)) == PARLEY_OK)
        return true;
    cli_error(err);
    return false;
}

bool cli_conf_set_insecure(parley_conf_t *conf)
{
    fprintf(stderr, "parley: warning: --insecure: the server's certificate is not verified\n");
    return cli_conf_set(conf, "tls.insecure", "1");
}

bool cli_conf_set_assignment(parley_conf_t *conf, const char *assignment)
{
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment) {
        fprintf(stderr, "parley: --set needs name=value, got \"%s\"\n", assignment);
        return false;
    }
    size_t name_len = (size_t)(eq - assignment);
    char *name = malloc(name_len + 1);
    if (!name) {
        fprintf(stderr, "parley: out of memory\n");
        return false;
    }
    memcpy(name, assignment, name_len);
    name[name_len] = '\0';
    bool ok = cli_conf_set(conf, name, eq + 1);
    free(name);
    return ok;
}
