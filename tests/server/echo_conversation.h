/*
 * Reading a request's conversation into a pl_echo_request (echo_blocks.h),
 * with the validation of protocol.md section 10.1 (the Anthropic API's
 * rules, and OpenAI's for its shape). Three shapes:
 *
 *   native     `history` + `content` (blocks in the Anthropic shape) and
 *              the fields of section 9.2 of a `message`;
 *   Anthropic  `messages`, `system`, `tools`, `tool_choice`, `thinking`,
 *              `stop_sequences`, `temperature`, `top_p`, `top_k`,
 *              `metadata` of a Messages request;
 *   OpenAI     `messages` (content parts, `tool_calls`, role "tool"),
 *              `tools` (functions), `tool_choice`, `stop`, `temperature`,
 *              `top_p`, `metadata` of a Chat Completions request.
 *
 * Fields the front end owns (model, max_tokens, stream, ids) are not read
 * here. The request points into the JSON and into the conversation, so
 * both must outlive its use.
 */
#ifndef PL_ECHO_CONVERSATION_H
#define PL_ECHO_CONVERSATION_H

#include <json-c/json.h>

#include "echo_blocks.h"

typedef struct pl_echo_conversation {
    pl_echo_request req;  /* max_tokens, chunk_bytes: the caller's to set */
    /* Owned, for req. */
    char *text;
    pl_echo_result *results;
    size_t results_cap;
    pl_echo_str *tools, *stops;
    int uses_blocks;      /* anything beyond plain text (native: only
                             servers announcing "blocks" see such turns) */
    char err[256];        /* room for an error message with its place */
} pl_echo_conversation;

/*
 * Each returns NULL with cv filled (free it with pl_echo_conversation_free
 * in any case), or an invalid_request message (which may point into cv).
 * context_bytes counts the bytes of every content (string, text blocks,
 * and an estimate for other blocks), system prompts included for the HTTP
 * dialects, as the plain echo model did.
 */
const char *pl_echo_read_native(pl_echo_conversation *cv,
                                struct json_object *message);
const char *pl_echo_read_anthropic(pl_echo_conversation *cv,
                                   struct json_object *root);
const char *pl_echo_read_openai(pl_echo_conversation *cv,
                                struct json_object *root);

void pl_echo_conversation_free(pl_echo_conversation *cv);

#endif
