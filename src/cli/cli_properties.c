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

bool cli_conf_set(parley_conf_t *conf, const char *name, const char *value)
{
    char err[256];
    if (parley_conf_set(conf, name, value, err, sizeof(err)) == PARLEY_OK)
        return true;
    fprintf(stderr, "parley: %s\n", err);
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
