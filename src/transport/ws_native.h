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

#endif
