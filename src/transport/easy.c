#include "easy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

struct curl_slist *pl_easy_connect_to(const char *entries)
{
    struct curl_slist *list = NULL;
    for (const char *e = entries; e && *e;) {
        size_t len = strcspn(e, ",");
        char *entry = strndup(e, len);
        if (!entry)
            pl_oom("the connect.to list");
        list = pl_easy_header(list, entry);
        free(entry);
        e += len + (e[len] == ',');
    }
    return list;
}

struct curl_slist *pl_easy_header(struct curl_slist *list, const char *line)
{
    struct curl_slist *more = curl_slist_append(list, line);
    if (!more)
        pl_oom("a request header");
    return more;
}

void pl_easy_setup(CURL *e, const pl_easy_opts *o, char *errbuf)
{
    curl_easy_setopt(e, CURLOPT_USERAGENT, "parley/" PARLEY_VERSION_STR);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    errbuf[0] = '\0';
    if (o->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file);
    if (o->ca_path)
        curl_easy_setopt(e, CURLOPT_CAPATH, o->ca_path);
    if (o->pinned_pubkey)
        curl_easy_setopt(e, CURLOPT_PINNEDPUBLICKEY, o->pinned_pubkey);
    if (o->cert_file)
        curl_easy_setopt(e, CURLOPT_SSLCERT, o->cert_file);
    if (o->key_file)
        curl_easy_setopt(e, CURLOPT_SSLKEY, o->key_file);
    if (o->connect_to)
        curl_easy_setopt(e, CURLOPT_CONNECT_TO, o->connect_to);
    if (o->insecure) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (o->trace) {
        curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, o->trace);
        curl_easy_setopt(e, CURLOPT_DEBUGDATA, o->trace_data);
        curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
    }
}

/* What to do about a certificate the client refused, from libcurl's detail. */
static const char *verification_advice(const char *detail)
{
    if (strstr(detail, "expired"))
        return "the server's certificate has expired (or this machine's clock is "
               "wrong): the server needs a new certificate";
    if (strstr(detail, "subject name") || strstr(detail, "host name") ||
        strstr(detail, "does not match"))
        return "host name mismatch: the server's certificate is not for this host; "
               "connect by a name the certificate lists";
    if (strstr(detail, "issuer") || strstr(detail, "self-signed") ||
        strstr(detail, "self signed") || strstr(detail, "unknown ca"))
        return "the server's certificate is signed by an unknown CA: set tls.ca.file "
               "(--cacert) to the CA that signed it, or update the system CA bundle; "
               "do not turn verification off in production";
    return "the server's certificate could not be verified";
}

void pl_easy_explain(CURLcode rc, const char *errbuf, const char *url, char *msg,
                     size_t size, pl_failure *f)
{
    const char *detail = errbuf && errbuf[0] ? errbuf : curl_easy_strerror(rc);
    *f = (pl_failure){.kind = PL_FAIL_TLS, .err = PARLEY_ERR_TLS};
    switch (rc) {
    case CURLE_PEER_FAILED_VERIFICATION:
        snprintf(msg, size, "TLS: %s (%s: %s)", verification_advice(detail), url, detail);
        return;
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        snprintf(msg, size, "TLS: the server's public key does not match "
                 "tls.pinned.pubkey (%s: %s)", url, detail);
        return;
    case CURLE_SSL_CACERT_BADFILE:
        snprintf(msg, size, "TLS: cannot use the CA file or directory set in "
                 "tls.ca.file/tls.ca.path (%s)", detail);
        return;
    case CURLE_SSL_CERTPROBLEM:
        snprintf(msg, size, "TLS: cannot use the client certificate or key in "
                 "tls.cert.file/tls.key.file (%s)", detail);
        return;
    default:
        *f = (pl_failure){.kind = PL_FAIL_NETWORK, .err = PARLEY_ERR_CONNECT};
        snprintf(msg, size, "could not connect to %s: %s", url, detail);
        return;
    }
}
