/*
 * What parley.v1 messages mean for the requests (protocol.md): the native
 * transport's events for its connections (pl_ws_conn_events), decoded and
 * reported to the engine through pl_tx_events. A failure found here, inside
 * a curl callback, dooms the connection; the pool carries it out.
 */
#ifndef PL_WS_NATIVE_H
#define PL_WS_NATIVE_H

#include "ws_conn.h"

/* For pl_ws_conn.events; the connections' owner is their pl_ws_pool. */
extern const pl_ws_conn_events pl_ws_native_events;

struct pl_tx_req;

/*
 * Queue request q on conn, asking the server to resume after the pieces
 * already delivered. A request of the extension `blocks` waits for the
 * server's hello (which says whether it has it) and returns false when the
 * server has not: the caller fails it (*f, msg).
 */
bool pl_ws_native_queue(pl_ws_conn *conn, const struct pl_tx_req *q, pl_failure *f, char *msg,
                        size_t msg_size);

#endif
