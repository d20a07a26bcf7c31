/*
 * The reference server's parley.v1.zstd, its dictionary extension and TLS
 * (docs/protocol.md), seen from a client driven by hand: libcurl's
 * WebSocket in CONNECT_ONLY mode sends exactly the headers and frames each
 * test chooses, and the test compresses and inspects frames itself with
 * src/codec/compress.c. The library's client is not involved.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <zstd.h>

#include "buf.h"
#include "compress.h"
#include "refserver.h"

#define WAIT_MS 5000
#define SESSION "zstd-test"

/* ---- the server -------------------------------------------------------------- */

static pl_refserver *start(int zstd, int zstd_dict, unsigned chunk_bytes,
                           uint64_t max_bytes, const char *cert, const char *key)
{
    pl_refserver_opts o;
    char err[256];

    pl_refserver_opts_init(&o);
    o.quiet = 1;
    o.zstd = zstd;
    o.zstd_dict = zstd_dict;
    o.chunk_bytes = chunk_bytes;
    if (max_bytes)
        o.max_message_bytes = max_bytes;
    o.tls_cert_file = cert;
    o.tls_key_file = key;
    pl_refserver *srv = pl_refserver_start(&o, err, sizeof err);
    if (!srv)
        fail_msg("server did not start: %s", err);
    return srv;
}

static pl_refserver_stats stats(pl_refserver *srv)
{
    pl_refserver_stats st;
    pl_refserver_get_stats(srv, &st);
    return st;
}

/* ---- a hand-driven WebSocket client ---------------------------------------------- */

struct client {
    CURL *h;
    char selected[64]; /* Sec-WebSocket-Protocol of the 101, "" when absent */
};

/* CURLOPT_HEADERFUNCTION: keep the selected subprotocol of the 101. */
static size_t on_header(char *line, size_t size, size_t n, void *arg)
{
    struct client *c = arg;
    size_t len = size * n;
    static const char name[] = "sec-websocket-protocol:";

    if (len > sizeof name - 1 && !strncasecmp(line, name, sizeof name - 1)) {
        const char *v = line + sizeof name - 1;
        size_t vlen = len - (sizeof name - 1);
        while (vlen && (*v == ' ' || *v == '\t'))
            v++, vlen--;
        while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' ||
                        v[vlen - 1] == ' '))
            vlen--;
        snprintf(c->selected, sizeof c->selected, "%.*s", (int)vlen, v);
    }
    return len;
}

static struct curl_slist *upgrade_headers(const char *protos, const char *dict)
{
    struct curl_slist *hs = NULL;
    char line[256];

    if (protos) {
        snprintf(line, sizeof line, "Sec-WebSocket-Protocol: %s", protos);
        hs = curl_slist_append(hs, line);
    }
    if (dict) {
        snprintf(line, sizeof line, "X-Parley-Zstd-Dict: %s", dict);
        hs = curl_slist_append(hs, line);
    }
    return hs;
}

/* Upgrade; protos and dict (header values) may be NULL; ca: wss://. */
static void client_open(struct client *c, pl_refserver *srv, const char *protos,
                        const char *dict, const char *ca)
{
    char url[128];
    struct curl_slist *hs = upgrade_headers(protos, dict);
    long code = 0;

    memset(c, 0, sizeof *c);
    snprintf(url, sizeof url, "%s://127.0.0.1:%d/v1/stream", ca ? "wss" : "ws",
             pl_refserver_port(srv));
    c->h = curl_easy_init();
    assert_non_null(c->h);
    curl_easy_setopt(c->h, CURLOPT_URL, url);
    curl_easy_setopt(c->h, CURLOPT_CONNECT_ONLY, 2L);
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c->h, CURLOPT_HEADERDATA, c);
    if (ca)
        curl_easy_setopt(c->h, CURLOPT_CAINFO, ca);
    CURLcode rc = curl_easy_perform(c->h);
    curl_slist_free_all(hs);
    if (rc != CURLE_OK)
        fail_msg("upgrade failed: %s", curl_easy_strerror(rc));
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &code);
    assert_int_equal(code, 101);
}

static void client_close(struct client *c)
{
    size_t sent;

    curl_ws_send(c->h, "", 0, &sent, 0, CURLWS_CLOSE);
    curl_easy_cleanup(c->h);
}

static void wait_socket(struct client *c, short events)
{
    curl_socket_t fd;
    struct pollfd p;

    curl_easy_getinfo(c->h, CURLINFO_ACTIVESOCKET, &fd);
    p.fd = fd;
    p.events = events;
    poll(&p, 1, 50);
}

/* One whole data frame; flags CURLWS_TEXT or CURLWS_BINARY. */
static void client_send(struct client *c, const void *data, size_t len,
                        unsigned flags)
{
    size_t done = 0, sent;

    for (;;) {
        CURLcode rc = curl_ws_send(c->h, (const char *)data + done, len - done,
                                   &sent, 0, flags);
        if (rc == CURLE_AGAIN) {
            wait_socket(c, POLLOUT);
            continue;
        }
        if (rc != CURLE_OK)
            fail_msg("send failed: %s", curl_easy_strerror(rc));
        done += sent;
        if (done == len)
            return;
    }
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The next data message (reassembled); *binary says which kind it was. */
static void client_recv(struct client *c, pl_buf *msg, int *binary)
{
    char chunk[65536];
    int64_t deadline = mono_ms() + WAIT_MS;

    pl_buf_reset(msg);
    while (mono_ms() < deadline) {
        const struct curl_ws_frame *meta;
        size_t n;
        CURLcode rc = curl_ws_recv(c->h, chunk, sizeof chunk, &n, &meta);
        if (rc == CURLE_AGAIN) {
            wait_socket(c, POLLIN);
            continue;
        }
        if (rc != CURLE_OK)
            fail_msg("receive failed: %s", curl_easy_strerror(rc));
        if (meta->flags & (CURLWS_PING | CURLWS_PONG | CURLWS_CLOSE))
            continue;
        assert_int_equal(pl_buf_append(msg, chunk, n), 0);
        if (!meta->bytesleft && !(meta->flags & CURLWS_CONT)) {
            *binary = (meta->flags & CURLWS_BINARY) != 0;
            return;
        }
    }
    fail_msg("no message within %d ms", WAIT_MS);
}

/* What arrived, decoded. */
struct got {
    json_object *json;
    int binary;
    uint32_t dict_id; /* of a binary frame */
};

/* Receive one message; a binary one is decompressed with `dict` (which a
 * client without the dictionary passes as NULL). */
static struct got recv_json(struct client *c, const pl_compress_dict *dict)
{
    pl_buf raw = PL_BUF_INIT, json = PL_BUF_INIT;
    struct got g = { NULL, 0, 0 };
    char err[256];

    client_recv(c, &raw, &g.binary);
    if (g.binary) {
        g.dict_id = pl_compress_frame_dict_id(raw.data, raw.len);
        if (pl_decompress(PL_COMPRESS_ZSTD, dict, raw.data, raw.len, 1 << 20,
                          &json, err, sizeof err))
            fail_msg("cannot decompress a server frame: %s", err);
    } else {
        assert_int_equal(pl_buf_append(&json, raw.data, raw.len), 0);
    }
    g.json = json_tokener_parse(json.data);
    if (!g.json)
        fail_msg("not JSON: %s", json.data);
    pl_buf_free(&raw);
    pl_buf_free(&json);
    return g;
}

static const char *str(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static int has(json_object *o, const char *key)
{
    return json_object_object_get_ex(o, key, NULL);
}

/* The hello, which is always a text frame. */
static json_object *recv_hello(struct client *c, const char *protocol)
{
    struct got g = recv_json(c, NULL);

    assert_false(g.binary);
    assert_string_equal(str(g.json, "type"), "hello");
    assert_string_equal(str(g.json, "protocol"), protocol);
    return g.json;
}

static char *message_json(uint64_t id, const char *content)
{
    pl_buf b = PL_BUF_INIT;

    assert_int_equal(pl_buf_append_str(&b, "{\"type\":\"message\",\"id\":\""), 0);
    assert_int_equal(pl_buf_append_u64(&b, id), 0);
    assert_int_equal(pl_buf_append_str(&b, "\",\"session\":\"" SESSION "\","
                                       "\"timestamp\":1767225600000,\"content\":"), 0);
    assert_int_equal(pl_buf_append_json_str(&b, content, strlen(content)), 0);
    assert_int_equal(pl_buf_append_str(&b, "}"), 0);
    return pl_buf_steal(&b, NULL);
}

/* Send a `message`: as text, or as a zstd frame (with dict when given). */
static void send_message(struct client *c, uint64_t id, const char *content,
                         int compressed, const pl_compress_dict *dict)
{
    char *json = message_json(id, content);
    pl_buf z = PL_BUF_INIT;

    if (!compressed) {
        client_send(c, json, strlen(json), CURLWS_TEXT);
    } else {
        assert_int_equal(pl_compress(PL_COMPRESS_ZSTD, 3, dict, json,
                                     strlen(json), &z), 0);
        client_send(c, z.data, z.len, CURLWS_BINARY);
    }
    free(json);
    pl_buf_free(&z);
}

/*
 * Read a whole reply (ack, texts, done) and check it: the text is
 * "[turn 1] content", every binary frame uses dictionary `want_dict` (0:
 * none). Returns how many of its messages came compressed.
 */
static int expect_reply(struct client *c, uint64_t id, const char *content,
                        const pl_compress_dict *dict, uint32_t want_dict)
{
    pl_buf text = PL_BUF_INIT, want = PL_BUF_INIT;
    char id_str[24];
    int binaries = 0;

    assert_int_equal(pl_buf_append_str(&want, "[turn 1] "), 0);
    assert_int_equal(pl_buf_append_str(&want, content), 0);
    snprintf(id_str, sizeof id_str, "%llu", (unsigned long long)id);
    for (;;) {
        struct got g = recv_json(c, dict);
        const char *type = str(g.json, "type");
        if (g.binary) {
            binaries++;
            assert_int_equal(g.dict_id, want_dict);
        }
        if (!strcmp(type, "error"))
            fail_msg("error: %s", str(g.json, "content"));
        assert_string_equal(str(g.json, "id"), id_str);
        if (!strcmp(type, "text"))
            assert_int_equal(pl_buf_append_str(&text, str(g.json, "content")), 0);
        int done = !strcmp(type, "done");
        json_object_put(g.json);
        if (done)
            break;
    }
    assert_string_equal(text.data, want.data);
    pl_buf_free(&text);
    pl_buf_free(&want);
    return binaries;
}

/* An error without id, with `code`, whose content mentions `phrase`. */
static void expect_error(struct client *c, const char *code, const char *phrase)
{
    struct got g = recv_json(c, NULL);

    assert_string_equal(str(g.json, "type"), "error");
    assert_string_equal(str(g.json, "code"), code);
    assert_false(has(g.json, "id"));
    if (!strstr(str(g.json, "content"), phrase))
        fail_msg("error \"%s\" does not say \"%s\"", str(g.json, "content"), phrase);
    json_object_put(g.json);
}

static const char *long_content(void)
{
    return "Could you summarise the shipping policy for orders sent to Lisbon, "
           "including returns of damaged items, the refund timeline, and "
           "whether the original box is required? Thanks!";
}

static char dict_header[32];

static const char *our_dict(void)
{
    snprintf(dict_header, sizeof dict_header, "%u", pl_compress_dict_id());
    return dict_header;
}

#define BOTH "parley.v1.zstd, parley.v1"

/* ---- parley.v1.zstd without the dictionary --------------------------------------- */

/* A client without the dictionary (no header): zstd frames without one. */
static void test_zstd_without_dictionary(void **state)
{
    (void)state;
    pl_refserver *srv = start(1, 1, 4096, 0, NULL, NULL);
    struct client c;

    client_open(&c, srv, BOTH, NULL, NULL);
    assert_string_equal(c.selected, "parley.v1.zstd");
    json_object *hello = recv_hello(&c, "parley.v1.zstd");
    assert_false(has(hello, "zstd_dict"));
    json_object_put(hello);
    /* Compressed in, compressed out (one big piece and the done). */
    send_message(&c, 101, long_content(), 1, NULL);
    assert_int_equal(expect_reply(&c, 101, long_content(), NULL, 0), 2);
    /* Text in still works on a zstd connection. */
    send_message(&c, 102, long_content(), 0, NULL);
    assert_int_equal(expect_reply(&c, 102, long_content(), NULL, 0), 2);
    pl_refserver_stats st = stats(srv);
    assert_int_equal(st.compressed_received, 1);
    assert_int_equal(st.compressed_sent, 4);
    assert_int_equal(st.dict_agreed, 0);
    client_close(&c);
    pl_refserver_stop(srv);
}

/* Below the threshold messages stay text: 16-byte pieces make ~90-byte
 * text messages, under PL_COMPRESS_MIN_BYTES, so only the done (longer)
 * is compressed. */
static void test_small_messages_stay_text(void **state)
{
    (void)state;
    pl_refserver *srv = start(1, 1, 16, 0, NULL, NULL);
    struct client c;

    client_open(&c, srv, BOTH, NULL, NULL);
    json_object_put(recv_hello(&c, "parley.v1.zstd"));
    send_message(&c, 201, "hello there", 1, NULL);
    assert_int_equal(expect_reply(&c, 201, "hello there", NULL, 0), 1);
    client_close(&c);
    pl_refserver_stop(srv);
}

/* ---- the dictionary extension ------------------------------------------------------ */

static void test_zstd_with_dictionary(void **state)
{
    (void)state;
    pl_refserver *srv = start(1, 1, 16, 0, NULL, NULL);
    const pl_compress_dict *d = pl_compress_dict_builtin();
    struct client c;

    client_open(&c, srv, BOTH, our_dict(), NULL);
    assert_string_equal(c.selected, "parley.v1.zstd");
    json_object *hello = recv_hello(&c, "parley.v1.zstd");
    json_object *v;
    assert_true(json_object_object_get_ex(hello, "zstd_dict", &v));
    assert_true(json_object_get_int64(v) == (int64_t)pl_compress_dict_id());
    json_object_put(hello);
    send_message(&c, 301, long_content(), 1, d);
    /* With the dictionary even the small pieces are worth compressing:
     * ack, every text and the done come as dictionary frames. */
    int n = expect_reply(&c, 301, long_content(), d, pl_compress_dict_id());
    assert_true(n > 10);
    assert_int_equal(stats(srv).dict_agreed, 1);
    client_close(&c);
    pl_refserver_stop(srv);
}

/* The header may list several ids; ours among them is agreed. */
static void test_dictionary_list(void **state)
{
    (void)state;
    pl_refserver *srv = start(1, 1, 4096, 0, NULL, NULL);
    char list[64];
    struct client c;

    snprintf(list, sizeof list, "17, %u", pl_compress_dict_id());
    client_open(&c, srv, BOTH, list, NULL);
    json_object *hello = recv_hello(&c, "parley.v1.zstd");
    assert_true(has(hello, "zstd_dict"));
    json_object_put(hello);
    client_close(&c);
    pl_refserver_stop(srv);
}

/* A client with another dictionary: none is agreed, frames come without
 * one, and a frame made with its dictionary is refused (connection kept). */
static void test_other_dictionary(void **state)
{
    (void)state;
    pl_refserver *srv = start(1, 1, 4096, 0, NULL, NULL);
    struct client c;

    client_open(&c, srv, BOTH, "12345", NULL);
    json_object *hello = recv_hello(&c, "parley.v1.zstd");
    assert_false(has(hello, "zstd_dict"));
    json_object_put(hello);
    send_message(&c, 401, long_content(), 1, pl_compress_dict_builtin());
    expect_error(&c, "invalid_request", "needs dictionary");
    send_message(&c, 402, long_content(), 1, NULL);
    assert_int_equal(expect_reply(&c, 402, long_content(), NULL, 0), 2);
    client_close(&c);
    pl_refserver_stop(srv);
}

/* A server without the dictionary (--no-zstd-dict) omits the field. */
static void test_server_without_dictionary(void **state)
{
    (void)state;
    pl_refserver *srv = start(1, 0, 4096, 0, NULL, NULL);
    struct client c;

    client_open(&c, srv, BOTH, our_dict(), NULL);
    json_object *hello = recv_hello(&c, "parley.v1.zstd");
    assert_false(has(hello, "zstd_dict"));
    json_object_put(hello);
    send_message(&c, 501, long_content(), 1, NULL);
    assert_int_equal(expect_reply(&c, 501, long_content(), NULL, 0), 2);
    assert_int_equal(stats(srv).dict_agreed, 0);
    client_close(&c);
    pl_refserver_stop(srv);
}

/* ---- parley.v1 ---------------------------------------------------------------------- */

/* --no-zstd: only parley.v1 is served, and a binary frame is refused. */
static void test_server_without_zstd(void **state)
{
    (void)state;
    pl_refserver *srv = start(0, 1, 4096, 0, NULL, NULL);
    struct client c;

    client_open(&c, srv, BOTH, our_dict(), NULL);
    assert_string_equal(c.selected, "parley.v1");
    json_object *hello = recv_hello(&c, "parley.v1");
    assert_false(has(hello, "zstd_dict"));
    json_object_put(hello);
    send_message(&c, 601, long_content(), 1, NULL);
    expect_error(&c, "invalid_request", "binary frames are not accepted");
    send_message(&c, 602, long_content(), 0, NULL);
    assert_int_equal(expect_reply(&c, 602, long_content(), NULL, 0), 0);
    client_close(&c);
    pl_refserver_stop(srv);
}

/* A client offering parley.v1 only, or nothing, gets parley.v1. */
static void test_client_without_zstd(void **state)
{
    (void)state;
    pl_refserver *srv = start(1, 1, 4096, 0, NULL, NULL);
    struct client c;

    client_open(&c, srv, "parley.v1", our_dict(), NULL);
    assert_string_equal(c.selected, "parley.v1");
    json_object_put(recv_hello(&c, "parley.v1"));
    send_message(&c, 701, long_content(), 0, NULL);
    assert_int_equal(expect_reply(&c, 701, long_content(), NULL, 0), 0);
    client_close(&c);

    client_open(&c, srv, NULL, NULL, NULL);
    assert_string_equal(c.selected, "");
    json_object_put(recv_hello(&c, "parley.v1"));
    client_close(&c);
    pl_refserver_stop(srv);
}

/* ---- bad frames ----------------------------------------------------------------------- */

/* A frame that would decompress past max_message_bytes is refused from its
 * header (too_large), and the connection goes on. */
static void test_bomb_is_too_large(void **state)
{
    (void)state;
    pl_refserver *srv = start(1, 1, 4096, 64 * 1024, NULL, NULL);
    size_t big = 8u << 20;
    char *zeros = calloc(1, big);
    pl_buf z = PL_BUF_INIT;
    struct client c;

    assert_non_null(zeros);
    assert_int_equal(pl_compress(PL_COMPRESS_ZSTD, 1, NULL, zeros, big, &z), 0);
    assert_true(z.len < 64 * 1024);
    client_open(&c, srv, BOTH, NULL, NULL);
    json_object_put(recv_hello(&c, "parley.v1.zstd"));
    client_send(&c, z.data, z.len, CURLWS_BINARY);
    expect_error(&c, "too_large", "over the limit");
    send_message(&c, 801, long_content(), 1, NULL);
    assert_int_equal(expect_reply(&c, 801, long_content(), NULL, 0), 2);
    client_close(&c);
    pl_refserver_stop(srv);
    free(zeros);
    pl_buf_free(&z);
}

static void test_broken_frames(void **state)
{
    (void)state;
    pl_refserver *srv = start(1, 1, 4096, 0, NULL, NULL);
    char *json = message_json(901, long_content());
    pl_buf z = PL_BUF_INIT;
    struct client c;
    static const char bad_utf8[] = "{\"type\":\"cancel\",\"id\":\"\xff\"}";

    client_open(&c, srv, BOTH, NULL, NULL);
    json_object_put(recv_hello(&c, "parley.v1.zstd"));
    client_send(&c, "not zstd at all", 15, CURLWS_BINARY);
    expect_error(&c, "invalid_request", "not a zstd frame");
    assert_int_equal(pl_compress(PL_COMPRESS_ZSTD, 3, NULL, json, strlen(json), &z), 0);
    client_send(&c, z.data, z.len - 3, CURLWS_BINARY);
    expect_error(&c, "invalid_request", "truncated");
    pl_buf_reset(&z);
    assert_int_equal(pl_compress(PL_COMPRESS_ZSTD, 3, NULL, bad_utf8,
                                 sizeof bad_utf8 - 1, &z), 0);
    client_send(&c, z.data, z.len, CURLWS_BINARY);
    expect_error(&c, "invalid_request", "UTF-8");
    /* Still serving. */
    send_message(&c, 902, long_content(), 1, NULL);
    assert_int_equal(expect_reply(&c, 902, long_content(), NULL, 0), 2);
    client_close(&c);
    pl_refserver_stop(srv);
    free(json);
    pl_buf_free(&z);
}

/* A compressed frame bigger than lws's 64 KiB receive pieces. */
static void test_large_compressed_message(void **state)
{
    (void)state;
    pl_refserver *srv = start(1, 1, 1 << 20, 0, NULL, NULL);
    size_t n = 300 * 1024;
    char *content = malloc(n + 1);
    uint64_t r = 88172645463325252ull;
    struct client c;

    assert_non_null(content);
    for (size_t i = 0; i < n; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        content[i] = (char)('a' + r % 26);
    }
    content[n] = '\0';
    client_open(&c, srv, BOTH, our_dict(), NULL);
    json_object_put(recv_hello(&c, "parley.v1.zstd"));
    send_message(&c, 1001, content, 1, pl_compress_dict_builtin());
    /* The piece and the done; the 26-byte ack is under every threshold. */
    assert_int_equal(expect_reply(&c, 1001, content, pl_compress_dict_builtin(),
                                  pl_compress_dict_id()), 2);
    char *got = pl_refserver_received(srv, 0);
    assert_non_null(strstr(got, content));
    free(got);
    client_close(&c);
    pl_refserver_stop(srv);
    free(content);
}

/* ---- TLS ---------------------------------------------------------------------------- */

static char tls_dir[64], tls_cert[128], tls_key[128];

/* A throw-away self-signed certificate for 127.0.0.1, made with the
 * openssl tool (installed by scripts/install-deps.sh). */
static int make_certificate(void)
{
    char cmd[512];

    snprintf(tls_dir, sizeof tls_dir, "/tmp/parley-tls-XXXXXX");
    if (!mkdtemp(tls_dir))
        return -1;
    snprintf(tls_cert, sizeof tls_cert, "%s/cert.pem", tls_dir);
    snprintf(tls_key, sizeof tls_key, "%s/key.pem", tls_dir);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
             "-nodes -days 1 -subj /CN=localhost -addext "
             "subjectAltName=IP:127.0.0.1,DNS:localhost -keyout %s -out %s "
             ">/dev/null 2>&1", tls_key, tls_cert);
    return system(cmd) == 0 ? 0 : -1;
}

static void remove_certificate(void)
{
    unlink(tls_cert);
    unlink(tls_key);
    rmdir(tls_dir);
}

static void test_tls_zstd_dictionary(void **state)
{
    (void)state;
    if (make_certificate()) {
        remove_certificate();
        fail_msg("cannot make a certificate with the openssl tool");
    }
    pl_refserver *srv = start(1, 1, 16, 0, tls_cert, tls_key);
    const pl_compress_dict *d = pl_compress_dict_builtin();
    struct client c;

    client_open(&c, srv, BOTH, our_dict(), tls_cert);
    assert_string_equal(c.selected, "parley.v1.zstd");
    json_object *hello = recv_hello(&c, "parley.v1.zstd");
    assert_true(has(hello, "zstd_dict"));
    json_object_put(hello);
    send_message(&c, 1101, long_content(), 1, d);
    assert_true(expect_reply(&c, 1101, long_content(), d, pl_compress_dict_id()) > 10);
    client_close(&c);
    pl_refserver_stop(srv);

    /* Without --tls-key the key is looked for in the certificate's file. */
    char both[160], cmd[512];
    snprintf(both, sizeof both, "%s/both.pem", tls_dir);
    snprintf(cmd, sizeof cmd, "cat %s %s > %s", tls_key, tls_cert, both);
    assert_int_equal(system(cmd), 0);
    srv = start(1, 1, 4096, 0, both, NULL);
    client_open(&c, srv, BOTH, NULL, tls_cert);
    json_object_put(recv_hello(&c, "parley.v1.zstd"));
    send_message(&c, 1102, long_content(), 1, NULL);
    assert_int_equal(expect_reply(&c, 1102, long_content(), NULL, 0), 2);
    client_close(&c);
    pl_refserver_stop(srv);
    unlink(both);
    remove_certificate();
}

static void test_tls_bad_files(void **state)
{
    (void)state;
    pl_refserver_opts o;
    char err[256];

    pl_refserver_opts_init(&o);
    o.quiet = 1;
    o.tls_cert_file = "/nonexistent/cert.pem";
    assert_null(pl_refserver_start(&o, err, sizeof err));
    assert_non_null(strstr(err, "cannot read the TLS certificate /nonexistent/cert.pem"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zstd_without_dictionary),
        cmocka_unit_test(test_small_messages_stay_text),
        cmocka_unit_test(test_zstd_with_dictionary),
        cmocka_unit_test(test_dictionary_list),
        cmocka_unit_test(test_other_dictionary),
        cmocka_unit_test(test_server_without_dictionary),
        cmocka_unit_test(test_server_without_zstd),
        cmocka_unit_test(test_client_without_zstd),
        cmocka_unit_test(test_bomb_is_too_large),
        cmocka_unit_test(test_broken_frames),
        cmocka_unit_test(test_large_compressed_message),
        cmocka_unit_test(test_tls_zstd_dictionary),
        cmocka_unit_test(test_tls_bad_files),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    pl_compress_thread_release();
    curl_global_cleanup();
    return failed;
}
