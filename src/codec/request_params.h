/*
 * What a turn asks of the model besides its content: the per-session
 * options (parley_session_set) over the client's defaults, already checked
 * when they were set. JSON values are kept as compact JSON text so that the
 * native and Anthropic encoders copy them as they are; only the OpenAI
 * encoder reshapes some (tools become functions).
 */
#ifndef PL_REQUEST_PARAMS_H
#define PL_REQUEST_PARAMS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct pl_request_params {
    const char *system;          /* the system prompt; NULL: none */
    const char *tools;           /* JSON array of {"name","description",
                                    "input_schema"}; NULL: none */
    const char *tool_choice;     /* JSON object ({"type":"auto"} ...); NULL: none */
    const char *stop_sequences;  /* JSON array of strings; NULL: none */
    const char *metadata;        /* JSON object; NULL: none */
    const char *extra_body;      /* JSON object whose members are added to the
                                    body (replacing ours of the same name);
                                    NULL: none */
    uint32_t thinking_budget;    /* budget_tokens; 0: thinking off */
    bool has_temperature, has_top_p;
    double temperature, top_p;
    uint32_t top_k;              /* 0: omitted */
    bool prompt_caching;         /* Anthropic: cache_control on the system
                                    prompt, the tools and the last block */
} pl_request_params;

#endif
