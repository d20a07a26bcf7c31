/*
 * Options of the parley commands that are plain client properties, shared
 * by `parley chat` and `parley bench`: the TLS options under curl's names
 * (so that users type what they know from curl), and `--set name=value`.
 */
#ifndef PARLEY_CLI_PROPERTIES_H
#define PARLEY_CLI_PROPERTIES_H

#include <stdbool.h>
#include <stddef.h>

#include "parley.h"

typedef struct cli_property_option {
    const char *option;   /* the long option, without "--" */
    const char *property; /* the client property it sets */
} cli_property_option;

/* --cacert, --capath, --pinnedpubkey, --cert, --key. A constant count, so
 * that commands can size their getopt tables at compile time. */
#define CLI_TLS_OPTIONS_COUNT 5
extern const cli_property_option cli_tls_options[];

/*
 * A library message as a command-line user needs it: each `the "NAME"
 * property` becomes the option that sets it (--endpoint, --model,
 * --key-file, --cacert...) or `--set NAME=...`, into out (always
 * NUL-terminated; cut short when it does not fit).
 */
void cli_explain(const char *message, char *out, size_t size);

/* Print "parley: MESSAGE" on stderr, explained for the command line. */
void cli_error(const char *message);

/* Set one property; on failure says why on stderr and returns false. */
bool cli_conf_set(parley_conf_t *conf, const char *name, const char *value);

/* -k / --insecure: turns verification off, with a warning on stderr. */
bool cli_conf_set_insecure(parley_conf_t *conf);

/* "name=value" as given to --set; false (with a message) when malformed or
 * refused. */
bool cli_conf_set_assignment(parley_conf_t *conf, const char *assignment);

#endif
