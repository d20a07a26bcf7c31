/*
 * A loopback TCP proxy for tests that need a connection to go silent the way
 * a dead NAT mapping or load balancer makes it: the sockets stay open, and
 * nothing more passes in either direction. It forwards every connection to
 * an upstream port on its own thread until told to black-hole the
 * connections open at that moment; connections made later are forwarded as
 * usual.
 */
#ifndef PL_TEST_BLACKHOLE_PROXY_H
#define PL_TEST_BLACKHOLE_PROXY_H

#include <stddef.h>

typedef struct blackhole_proxy blackhole_proxy;

/* Listens on a free loopback port and forwards to 127.0.0.1:upstream_port.
 * NULL when a socket or the thread cannot be made. */
blackhole_proxy *blackhole_proxy_start(int upstream_port);

/* The port clients connect to. */
int blackhole_proxy_port(const blackhole_proxy *p);

/* From now on nothing is forwarded on the connections open now, and
 * nothing is read from them: their sockets stay open until the proxy stops.
 * Returns how many connections were black-holed. Waits until the proxy's
 * thread has applied it. */
size_t blackhole_proxy_swallow(blackhole_proxy *p);

/* Connections accepted so far. */
size_t blackhole_proxy_accepted(blackhole_proxy *p);

/* Stops the thread and closes every socket. */
void blackhole_proxy_stop(blackhole_proxy *p);

#endif
