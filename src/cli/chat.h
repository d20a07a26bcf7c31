/* `parley chat` (chat.c). */
#ifndef PL_CLI_CHAT_H
#define PL_CLI_CHAT_H

#include <stdio.h>

/* argv[0] is "chat". Returns the exit status. */
int chat_main(int argc, char **argv);

/* The tool's usage text on out; returns status (parley_cli.c). */
int chat_usage(FILE *out, int status);

#endif
