/* What an endpoint URL says about the API behind it (dialect_endpoint.h). */
#include "dialect_endpoint.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>


/* The vendors' API hosts, and the dialect each speaks. */
static const struct {
    const char *host;
    pl_dialect dialect;
} vendor_hosts[] = {
    {"api.anthropic.com", PL_DIALECT_ANTHROPIC},
    {"api.openai.com", PL_DIALECT_OPENAI},
};

/* Where url's authority (host and port, maybe "user@") starts, and its
 * length; NULL when url has no "://". */
static const char *authority_of(const char *url, size_t *len)
{
    const char *sep = strstr(url, "://");
    if (!sep)
        return NULL;
    *len = strcspn(sep + 3, "/?#");
    return sep + 3;
}

bool pl_endpoint_host(const char *url, const char **host, size_t *len)
{
    size_t n;
    const char *a = authority_of(url, &n);
    if (!a)
        return false;
    for (size_t i = n; i > 0; i--) {
        if (a[i - 1] == '@') {
            a += i;
            n -= i;
            break;
        }
    }
    if (n > 0 && a[0] == '[') {
        const char *close = memchr(a, ']', n);
        if (!close)
            return false;
        *host = a + 1;
        *len = (size_t)(close - a - 1);
    } else {
        const char *colon = memchr(a, ':', n);
        *host = a;
        *len = colon ? (size_t)(colon - a) : n;
    }
    return *len > 0;
}

/* Whether url's host is `name`, ignoring case and one trailing dot. */
static bool host_is(const char *url, const char *name)
{
    const char *host;
    size_t len;
    if (!pl_endpoint_host(url, &host, &len))
        return false;
    if (len > 1 && host[len - 1] == '.')
        len--;
    return len == strlen(name) && strncasecmp(host, name, len) == 0;
}

bool pl_endpoint_vendor_dialect(const char *url, pl_dialect *out)
{
    for (size_t i = 0; i < sizeof(vendor_hosts) / sizeof(vendor_hosts[0]); i++) {
        if (host_is(url, vendor_hosts[i].host)) {
            *out = vendor_hosts[i].dialect;
            return true;
        }
    }
    return false;
}

bool pl_endpoint_is_loopback(const char *url)
{
    const char *host;
    size_t len;
    if (!pl_endpoint_host(url, &host, &len))
        return false;
    if (host_is(url, "localhost") || host_is(url, "::1"))
        return true;
    /* 127.0.0.0/8, written as a dotted quad. */
    return len >= 9 && len <= 15 && strncmp(host, "127.", 4) == 0 &&
           strspn(host, "0123456789.") >= len;
}

static bool ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

char *pl_endpoint_complete(const char *url, pl_dialect d)
{
    size_t authority_len;
    const char *authority = authority_of(url, &authority_len);
    const char *path = authority ? authority + authority_len : url + strlen(url);
    size_t path_len = strcspn(path, "?#");
    const char *add = "";
    if (path_len == 0 || (path_len == 1 && path[0] == '/')) {
        path_len = 0;
        add = pl_dialect_path(d);
    } else if (d != PL_DIALECT_NATIVE &&
               (ends_with(path, path_len, "/v1") || ends_with(path, path_len, "/v1/"))) {
        /* The SDKs' base URL: the API path is the dialect's after its "/v1". */
        if (path[path_len - 1] == '/')
            path_len--;
        add = pl_dialect_path(d) + strlen("/v1");
    }
    size_t head = (size_t)(path - url) + path_len, add_len = strlen(add);
    const char *rest = path + strcspn(path, "?#");
    size_t rest_len = strlen(rest);
    char *out = malloc(head + add_len + rest_len + 1);
    if (!out)
        return NULL;
    memcpy(out, url, head);
    memcpy(out + head, add, add_len);
    memcpy(out + head + add_len, rest, rest_len + 1);
    return out;
}

const char *pl_dialect_path(pl_dialect d)
{
    /* The native protocol's default path is protocol.md's, section 1. */
    return d == PL_DIALECT_ANTHROPIC ? "/v1/messages"
           : d == PL_DIALECT_OPENAI  ? "/v1/chat/completions"
                                     : "/v1/stream";
}

const char *pl_dialect_name(pl_dialect d)
{
    return d == PL_DIALECT_ANTHROPIC ? "anthropic" : d == PL_DIALECT_OPENAI ? "openai" : "native";
}
