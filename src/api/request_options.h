/*
 * The request options: what a turn asks of the model besides its content
 * (temperature, tools, thinking...). Each is a client property (the
 * default) and a session option (parley_session_set), with one parser for
 * both, so a value means the same in either place and a bad one is refused
 * when it is set, not by the server later.
 */
#ifndef PL_REQUEST_OPTIONS_H
#define PL_REQUEST_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dialect.h"
#include "parley.h"
#include "request_params.h"

typedef enum pl_request_option {
    PL_RO_TEMPERATURE = 0,
    PL_RO_TOP_P,
    PL_RO_TOP_K,
    PL_RO_STOP_SEQUENCES,
    PL_RO_METADATA,
    PL_RO_TOOLS,
    PL_RO_TOOL_CHOICE,
    PL_RO_THINKING_BUDGET,
    PL_RO_PROMPT_CACHING,
    PL_RO_EXTRA_BODY,
    PL_RO_EXTRA_HEADERS,
    PL_RO__COUNT
} pl_request_option;

/* An option's value once parsed; `text` is owned (compact JSON, or the
 * header lines of extra.headers). */
typedef struct pl_option_value {
    bool unset;      /* the empty value: back to the default */
    char *text;
    double number;   /* temperature, top.p */
    uint32_t count;  /* top.k, thinking.budget */
    bool flag;       /* prompt.caching */
} pl_option_value;

/* Every option, each unset or holding its value. */
typedef struct pl_request_options {
    bool set[PL_RO__COUNT];
    pl_option_value value[PL_RO__COUNT];
} pl_request_options;

/* The property name of an option ("top.p"). */
const char *pl_request_option_name(pl_request_option opt);
/* The option a name means (the properties' spellings: "top_p", "top-p"),
 * or -1. */
int pl_request_option_find(const char *name);

/*
 * Parse value for opt. The dialect (NULL: not known yet) refuses what it
 * cannot carry (thinking, top.k or more than 4 stop sequences on openai, an
 * anthropic thinking budget under 1024 or temperature over 1, headers on
 * native).
 * Returns PARLEY_OK with *out filled, or PARLEY_ERR_INVALID_VALUE with a
 * sentence in err (which names the option).
 */
parley_err_t pl_request_option_parse(pl_request_option opt, const char *value,
                                     const pl_dialect *d, pl_option_value *out,
                                     char *err, size_t err_size);

/* What is wrong with value whatever the dialect, as the configuration's
 * checks say it (a sentence without the option's name), or NULL. */
const char *pl_request_option_problem(pl_request_option opt, const char *value);

/* Store a parsed value (taking its text), or unset on v->unset. */
void pl_request_options_apply(pl_request_options *o, pl_request_option opt,
                              pl_option_value *v);
void pl_request_options_free(pl_request_options *o);

/*
 * The parameters of a turn: each option from `own` when set there, else
 * from `defaults`. Strings point into the two sets, which must outlive
 * params. system is left for the caller.
 */
void pl_request_params_fill(pl_request_params *params, const pl_request_options *own,
                            const pl_request_options *defaults);

/* The extra headers of a turn (header lines joined by '\n'), or NULL. */
const char *pl_request_extra_headers(const pl_request_options *own,
                                     const pl_request_options *defaults);

#endif
