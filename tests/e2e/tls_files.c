#include "tls_files.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/* Run a shell command in dir; fail the test when it fails. */
static void run(const char *dir, const char *fmt, ...)
{
    char inner[800], cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(inner, sizeof(inner), fmt, ap);
    va_end(ap);
    /* Quiet, but a redirection inside the command still goes to its file. */
    snprintf(cmd, sizeof(cmd), "cd '%s' && ( %s ) >/dev/null 2>&1", dir, inner);
    if (system(cmd) != 0)
        fail_msg("command failed: %s", cmd);
}

static void make_ca(const char *dir, const char *name)
{
    run(dir, "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=%s' "
             "-keyout %s.key -out %s.pem", name, name, name);
}

/* A certificate for `san`, signed by the CA `ca`. */
static void make_leaf(const char *dir, const char *name, const char *ca, const char *san)
{
    run(dir, "openssl req -newkey rsa:2048 -nodes -subj '/CN=%s' -keyout %s.key -out %s.csr",
        name, name, name);
    run(dir, "printf 'subjectAltName=%s\\n' > %s.ext && openssl x509 -req -in %s.csr -CA %s.pem "
             "-CAkey %s.key -CAcreateserial -days 2 -extfile %s.ext -out %s.pem",
        san, name, name, ca, ca, name, name);
}

void tls_files_make(tls_files *t)
{
    snprintf(t->dir, sizeof(t->dir), "/tmp/parley-tls-XXXXXX");
    if (!mkdtemp(t->dir))
        fail_msg("mkdtemp failed");
    make_ca(t->dir, "ca");
    make_ca(t->dir, "otherca");
    make_leaf(t->dir, "server", "ca",
              "IP:127.0.0.1,DNS:localhost,DNS:api.anthropic.com,DNS:api.openai.com");
    make_leaf(t->dir, "wrong", "ca", "DNS:other.example");
    snprintf(t->ca, sizeof(t->ca), "%s/ca.pem", t->dir);
    snprintf(t->other_ca, sizeof(t->other_ca), "%s/otherca.pem", t->dir);
    snprintf(t->server_cert, sizeof(t->server_cert), "%s/server.pem", t->dir);
    snprintf(t->server_key, sizeof(t->server_key), "%s/server.key", t->dir);
    snprintf(t->wrong_cert, sizeof(t->wrong_cert), "%s/wrong.pem", t->dir);
    snprintf(t->wrong_key, sizeof(t->wrong_key), "%s/wrong.key", t->dir);

    /* The pin libcurl compares: sha256 of the DER public key, in base64. */
    run(t->dir, "openssl x509 -in server.pem -pubkey -noout | openssl pkey -pubin "
                "-outform der | openssl dgst -sha256 -binary | base64 > pin.txt");
    char path[128];
    snprintf(path, sizeof(path), "%s/pin.txt", t->dir);
    FILE *f = fopen(path, "r");
    char b64[96] = "";
    if (!f || !fgets(b64, sizeof(b64), f))
        fail_msg("cannot read %s", path);
    fclose(f);
    b64[strcspn(b64, "\n")] = '\0';
    snprintf(t->server_pin, sizeof(t->server_pin), "sha256//%s", b64);
}

void tls_files_remove(tls_files *t)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", t->dir);
}
