/*
 * The fast path of pl_proto_decode() (protocol.h calls it) for the messages
 * a client receives most: text, thinking, ack and done. One pass over the text, no
 * json-c tree. It needs only the message types (proto_msg.h).
 *
 * It decodes only what it understands completely and declines everything
 * else, so that the full decoder gives the result or the error sentence: it
 * never reports an error of its own, and whatever it accepts decodes to
 * exactly what the full decoder would produce.
 */
#ifndef PL_PROTOCOL_FAST_H
#define PL_PROTOCOL_FAST_H

#include <stddef.h>

#include "buf.h"
#include "proto_msg.h"

/*
 * Decode buf into *msg (already initialised by the caller), with the
 * strings in `strings` (emptied first; they stay valid until it changes).
 * Returns 0, or -1 to decline, leaving *msg untouched.
 */
int pl_proto_fast_decode(pl_buf *strings, const char *buf, size_t len,
                         pl_server_msg *msg);

#endif
