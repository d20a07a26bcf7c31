/*
 * Content blocks (docs/protocol.md 9.1, the Anthropic Messages shape) as
 * the caller gives them, checked against what the vendors accept, so that a
 * bad block is refused at the call that made it and never reaches a server
 * (which would refuse every later turn of the conversation too).
 */
#ifndef PL_BLOCKS_H
#define PL_BLOCKS_H

#include <stdbool.h>
#include <stddef.h>

struct json_object;

/* The image media types both vendors take. */
bool pl_block_media_type_valid(const char *media_type);

/*
 * Check one block of a user (assistant false) or assistant message: its
 * type is one that role may send and its fields are complete. Returns true,
 * or false with a sentence in err.
 */
bool pl_block_check(struct json_object *block, bool assistant, char *err, size_t err_size);

/*
 * Check a whole conversation given as a JSON array of {"role","content"}
 * messages: roles alternate from "user" and end with "assistant"; each
 * content is a non-empty string or a non-empty array of valid blocks; each
 * tool_use is answered by a tool_result with its id at the start of the
 * next user message. Returns true, or false with err naming the message.
 */
bool pl_conversation_check(struct json_object *messages, char *err, size_t err_size);

/*
 * Does user content answer every tool call of the assistant content before
 * it (both compact JSON when *_blocks, else strings)? Returns true, or false
 * with a sentence in err naming the first call left unanswered.
 */
bool pl_blocks_answer_calls(const char *assistant, size_t assistant_len, bool assistant_blocks,
                            const char *user, size_t user_len, bool user_blocks, char *err,
                            size_t err_size);

#endif
