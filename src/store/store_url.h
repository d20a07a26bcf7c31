/*
 * What a session store URL says: redis://[user@]host[:port][/db]. The
 * password is never part of it (it comes from the environment or a file,
 * docs/cluster.md), so a URL that carries one is refused rather than used.
 */
#ifndef PL_STORE_URL_H
#define PL_STORE_URL_H

#include <stddef.h>

#define PL_STORE_DEFAULT_PORT 6379

typedef struct pl_store_url {
    char host[256]; /* a name or an address; IPv6 without its brackets */
    char user[128]; /* "": none (AUTH with the password alone) */
    int port;
    int db;
} pl_store_url;

/* Returns 0, or -1 with a sentence in err (which never repeats a
 * password the URL may wrongly hold). */
int pl_store_url_parse(const char *url, pl_store_url *out, char *err, size_t err_size);

#endif
