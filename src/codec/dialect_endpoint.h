/*
 * What an endpoint URL says about the API behind it: its host, the dialect
 * the vendors' well-known hosts speak, whether it is this machine (where the
 * reference server runs), and the full URL a request goes to once the
 * dialect's path is filled in. Pure string work, used when a client is
 * created (conf.c).
 */
#ifndef PL_DIALECT_ENDPOINT_H
#define PL_DIALECT_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>

#include "dialect.h"

/* The host of url (after the scheme and any "user@", without the port or
 * IPv6 brackets) as *host, *len; false when there is none. */
bool pl_endpoint_host(const char *url, const char **host, size_t *len);

/*
 * The dialect a vendor's well-known host speaks (api.anthropic.com:
 * anthropic, api.openai.com: openai), true then; false for any other host.
 */
bool pl_endpoint_vendor_dialect(const char *url, pl_dialect *out);

/* Whether url's host is this machine: localhost, 127.0.0.0/8 or ::1. */
bool pl_endpoint_is_loopback(const char *url);

/*
 * The URL requests go to, as a new string (NULL when out of memory): an
 * endpoint that names no path gets the dialect's (/v1/stream, /v1/messages,
 * /v1/chat/completions), and an HTTP endpoint whose path ends in /v1 (the
 * base URL the vendors' SDKs take) gets the rest of its API path. Any other
 * path is kept as given.
 */
char *pl_endpoint_complete(const char *url, pl_dialect d);

/* The dialect's API path: /v1/stream, /v1/messages or /v1/chat/completions. */
const char *pl_dialect_path(pl_dialect d);

/* The dialect's name: native, anthropic or openai. */
const char *pl_dialect_name(pl_dialect d);

#endif
