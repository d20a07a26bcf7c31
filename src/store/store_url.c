/* Reading redis://[user@]host[:port][/db]; see store_url.h. */
#include "store_url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEME "redis://"

/* A decimal number in [min, max] spanning exactly [s, end). */
static int parse_int(const char *s, const char *end, int min, int max, int *out)
{
    if (s == end || end - s > 9)
        return -1;
    int v = 0;
    for (const char *p = s; p < end; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int fail(char *err, size_t err_size, const char *sentence)
{
    if (err && err_size)
        snprintf(err, err_size, "session.store: %s", sentence);
    return -1;
}

int pl_store_url_parse(const char *url, pl_store_url *out, char *err, size_t err_size)
{
    memset(out, 0, sizeof(*out));
    out->port = PL_STORE_DEFAULT_PORT;
    if (!url || strncmp(url, SCHEME, strlen(SCHEME)) != 0)
        return fail(err, err_size, "expected redis://[user@]host:port[/db] (rediss:// and "
                                   "unix sockets are not supported)");
    const char *p = url + strlen(SCHEME);
    const char *authority_end = p + strcspn(p, "/?#");
    if (*authority_end == '?' || *authority_end == '#')
        return fail(err, err_size, "the URL takes no query or fragment");

    /* The user ends at the last '@', as pl_safe_url() reads it. */
    const char *at = memrchr(p, '@', (size_t)(authority_end - p));
    if (at) {
        if (memchr(p, ':', (size_t)(at - p)))
            return fail(err, err_size, "the URL must not carry a password: give it in the "
                                       "password variable or file instead");
        size_t ulen = (size_t)(at - p);
        if (ulen == 0 || ulen >= sizeof(out->user))
            return fail(err, err_size, "the user name before '@' is empty or too long");
        memcpy(out->user, p, ulen);
        p = at + 1;
    }

    const char *host_end;
    const char *port_start = NULL;
    if (*p == '[') { /* [IPv6]:port */
        const char *close = memchr(p, ']', (size_t)(authority_end - p));
        if (!close)
            return fail(err, err_size, "an IPv6 address lacks its ']'");
        host_end = close;
        p++;
        if (close + 1 < authority_end) {
            if (close[1] != ':')
                return fail(err, err_size, "expected ':' and a port after the IPv6 address");
            port_start = close + 2;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(authority_end - p));
        host_end = colon ? colon : authority_end;
        if (colon)
            port_start = colon + 1;
    }
    size_t hlen = (size_t)(host_end - p);
    if (hlen == 0 || hlen >= sizeof(out->host))
        return fail(err, err_size, "the host is empty or too long");
    memcpy(out->host, p, hlen);
    if (port_start && parse_int(port_start, authority_end, 1, 65535, &out->port) != 0)
        return fail(err, err_size, "the port is not a number from 1 to 65535");

    if (*authority_end == '/' && authority_end[1] != '\0') {
        const char *db = authority_end + 1;
        if (parse_int(db, db + strlen(db), 0, 1 << 20, &out->db) != 0)
            return fail(err, err_size, "the database after '/' is not a number");
    }
    return 0;
}
