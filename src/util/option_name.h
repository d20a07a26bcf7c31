/*
 * The naming rule of properties and options: lowercase words joined by
 * dots, the unit last ("connect.timeout.ms"). A '_' or '-' in a given name
 * stands for a dot, so the names from before the rule ("max_tokens",
 * "api_key.env") and the spellings of other tools ("max-tokens") find the
 * property too. One rule for the client's properties (conf.c), the request
 * options (request_options.c) and the session's own options (session.c).
 */
#ifndef PL_OPTION_NAME_H
#define PL_OPTION_NAME_H

#include <stdbool.h>

/* A given name's character as the rule reads it. */
static inline char pl_name_char(char c)
{
    return c == '_' || c == '-' ? '.' : c;
}

/* Does `given` name `name` (a name as the rule writes it)? */
static inline bool pl_name_is(const char *given, const char *name)
{
    for (; *given && *name; given++, name++)
        if (pl_name_char(*given) != *name)
            return false;
    return *given == *name;
}

#endif
