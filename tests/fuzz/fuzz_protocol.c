/*
 * libFuzzer target: the parley.v1 decoder (pl_proto_decode) and the id
 * finder for oversized messages (pl_proto_peek_id), which read whatever a
 * server sends. Besides the sanitizers' checks it asserts what protocol.h
 * promises of a result, and that a reused decoder gives the same answer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

#include "protocol.h"
#include "utf8.h"

/* Not assert(): it must hold in every build, NDEBUG or not. */
#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "fuzz_protocol: check failed: %s\n", #cond);     \
            abort();                                                         \
        }                                                                    \
    } while (0)

/* One decoder for the whole run, as a connection keeps one. */
static pl_decoder *dec;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    dec = pl_decoder_new();
    CHECK(dec != NULL);
    return 0;
}

static int id_valid(uint64_t id)
{
    return id >= 1 && id <= (uint64_t)INT64_MAX;
}

static void check_text(const char *s, size_t len)
{
    CHECK(s != NULL);
    CHECK(pl_utf8_valid(s, len));
}

/* Strings handed out are valid UTF-8 up to their NUL (a JSON string may
 * carry \u0000, so strlen is the part C code would see). */
static void check_cstr(const char *s)
{
    if (s)
        check_text(s, strlen(s));
}

static void check_decoded(const pl_server_msg *m)
{
    CHECK(m->type >= PL_SMSG_HELLO && m->type <= PL_SMSG_UNKNOWN);
    if (m->type == PL_SMSG_ACK || m->type == PL_SMSG_TEXT || m->type == PL_SMSG_DONE)
        CHECK(m->has_id);
    if (m->has_id)
        CHECK(id_valid(m->id));
    if (m->session)
        CHECK(pl_proto_session_valid(m->session, strlen(m->session)));
    if (m->type == PL_SMSG_TEXT) {
        check_text(m->content, m->content_len);
        /* a piece: the same text, and what its kind promises */
        CHECK(m->piece.text == m->content && m->piece.len == m->content_len);
        CHECK(m->piece.kind >= PL_PIECE_TEXT && m->piece.kind <= PL_PIECE_TOOL_USE);
        check_cstr(m->piece.signature);
        CHECK(m->piece.kind == PL_PIECE_THINKING || !m->piece.signature);
        CHECK((m->piece.kind == PL_PIECE_TOOL_USE) == (m->piece.tool_id && m->piece.tool_name));
        check_cstr(m->piece.tool_id);
        check_cstr(m->piece.tool_name);
        if (m->piece.kind == PL_PIECE_TOOL_USE) {
            /* the input: one JSON object, compact (no blank outside strings) */
            json_object *input = json_tokener_parse(m->content);
            CHECK(input && json_object_is_type(input, json_type_object));
            json_object_put(input);
            CHECK(m->content_len >= 2 && m->content[0] == '{');
        }
    }
    check_cstr(m->stop_sequence);
    if (m->type == PL_SMSG_ERROR) {
        check_cstr(m->code_str);
        CHECK(m->code >= PL_SERR_INVALID_REQUEST && m->code <= PL_SERR_OTHER);
        CHECK(m->retry_after_ms >= -1);
        if (m->content)
            check_text(m->content, m->content_len);
    }
    check_cstr(m->protocol);
    check_cstr(m->server);
    check_cstr(m->stop_reason);
}

static void fuzz_decode(const char *buf, size_t len)
{
    pl_server_msg msg, again;
    char err[256], err2[256];
    int rc = pl_proto_decode(dec, buf, len, &msg, err, sizeof(err));
    if (rc == 0)
        check_decoded(&msg);
    else {
        CHECK(rc == -1);
        CHECK(err[0] != '\0'); /* a failure always says why */
        CHECK(!msg.has_id || id_valid(msg.id));
    }
    /* The decoder keeps state between messages; it must not leak into the
     * next answer. (Decoding again frees msg's strings: compare scalars.) */
    pl_server_msg_type type = msg.type;
    int has_id = msg.has_id;
    uint64_t id = msg.id;
    CHECK(pl_proto_decode(dec, buf, len, &again, err2, sizeof(err2)) == rc);
    CHECK(again.type == type && again.has_id == has_id && again.id == id);
    CHECK(strcmp(err, err2) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    uint64_t id = 0;
    fuzz_decode(buf, size);
    if (pl_proto_peek_id(buf, size, &id) == 0)
        CHECK(id_valid(id));
    if (pl_proto_parse_id(buf, size, &id) == 0)
        CHECK(id_valid(id) && size <= 19);
    return 0;
}
