/*
 * Throwaway TLS material for tests, made by the openssl command: a CA, a
 * server certificate it signed for 127.0.0.1, localhost and the vendors' API
 * hosts (reached through connect.to), one for another
 * host name, and an unrelated CA.
 */
#ifndef PL_TEST_TLS_FILES_H
#define PL_TEST_TLS_FILES_H

typedef struct tls_files {
    char dir[64];
    char ca[96], other_ca[96];           /* PEM certificates */
    char server_cert[96], server_key[96]; /* for 127.0.0.1, localhost and the
                                             vendors' API hosts (test_vendor_cli) */
    char wrong_cert[96], wrong_key[96];   /* for other.example only */
    char server_pin[128];                 /* sha256//BASE64 of the server key */
} tls_files;

/* Make them in a new temporary directory; fails the test when openssl does. */
void tls_files_make(tls_files *t);
/* Remove the directory and everything in it. */
void tls_files_remove(tls_files *t);

#endif
