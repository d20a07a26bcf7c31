/*
 * Unit tests of pl_utf8_valid (RFC 3629): every case runs on a heap copy of
 * exactly the given length, so AddressSanitizer catches a read past the end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* Validate len bytes from a buffer holding nothing beyond them. */
static bool valid_exact(const char *s, size_t len)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, s, len);
    bool ok = pl_utf8_valid(copy, len);
    free(copy);
    return ok;
}

/* For string literals: the length excludes the terminating NUL. */
#define VALID(lit) valid_exact((lit), sizeof(lit) - 1)

static void test_empty(void **state)
{
    (void)state;
    assert_true(pl_utf8_valid("", 0));
    assert_true(pl_utf8_valid(NULL, 0)); /* nothing to read */
    assert_true(valid_exact("", 0));
}

static void test_ascii(void **state)
{
    (void)state;
    assert_true(VALID("hello, world"));
    assert_true(VALID("\x01\x1f\x7f"));
    /* NUL is a valid character; the length, not a terminator, bounds it. */
    assert_true(VALID("a\0b"));
    char all[128];
    for (int i = 0; i < 128; i++)
        all[i] = (char)i;
    assert_true(valid_exact(all, sizeof(all)));
}

static void test_two_byte(void **state)
{
    (void)state;
    assert_true(VALID("\xC2\x80"));         /* U+0080, smallest */
    assert_true(VALID("caf\xC3\xA9"));      /* é */
    assert_true(VALID("\xDF\xBF"));         /* U+07FF, largest */
}

static void test_three_byte(void **state)
{
    (void)state;
    assert_true(VALID("\xE0\xA0\x80"));     /* U+0800, smallest */
    assert_true(VALID("\xE2\x82\xAC"));     /* € */
    assert_true(VALID("\xED\x9F\xBF"));     /* U+D7FF, just below surrogates */
    assert_true(VALID("\xEE\x80\x80"));     /* U+E000, just above them */
    assert_true(VALID("\xEF\xBF\xBF"));     /* U+FFFF */
}

static void test_four_byte(void **state)
{
    (void)state;
    assert_true(VALID("\xF0\x90\x80\x80")); /* U+10000, smallest */
    assert_true(VALID("\xF0\x9F\x98\x80")); /* 😀 */
    assert_true(VALID("\xF4\x8F\xBF\xBF")); /* U+10FFFF, largest */
    assert_true(VALID("a\xF0\x9F\x98\x80z\xC3\xA9\xE2\x82\xAC"));
}

static void test_overlong(void **state)
{
    (void)state;
    assert_false(VALID("\xC0\x80"));         /* NUL in 2 bytes */
    assert_false(VALID("\xC1\xBF"));         /* U+007F in 2 bytes */
    assert_false(VALID("\xE0\x80\x80"));     /* NUL in 3 bytes */
    assert_false(VALID("\xE0\x9F\xBF"));     /* U+07FF in 3 bytes */
    assert_false(VALID("\xF0\x80\x80\x80")); /* NUL in 4 bytes */
    assert_false(VALID("\xF0\x8F\xBF\xBF")); /* U+FFFF in 4 bytes */
}

static void test_surrogates(void **state)
{
    (void)state;
    assert_false(VALID("\xED\xA0\x80"));     /* U+D800 */
    assert_false(VALID("\xED\xBF\xBF"));     /* U+DFFF */
    /* A CESU-8 pair (the UTF-16 form of 😀 encoded half by half). */
    assert_false(VALID("\xED\xA0\xBD\xED\xB8\x80"));
}

static void test_above_max(void **state)
{
    (void)state;
    assert_false(VALID("\xF4\x90\x80\x80"));     /* U+110000 */
    assert_false(VALID("\xF5\x80\x80\x80"));     /* lead byte past F4 */
    assert_false(VALID("\xF7\xBF\xBF\xBF"));
    assert_false(VALID("\xF8\x88\x80\x80\x80")); /* old 5-byte form */
    assert_false(VALID("\xFC\x84\x80\x80\x80\x80"));
    assert_false(VALID("\xFE"));
    assert_false(VALID("\xFF"));
}

static void test_truncated_at_end(void **state)
{
    (void)state;
    assert_false(VALID("\xC3"));
    assert_false(VALID("abc\xE2\x82"));
    assert_false(VALID("abc\xE2"));
    assert_false(VALID("\xF0\x9F\x98"));
    assert_false(VALID("\xF0\x9F"));
    assert_false(VALID("\xF0"));
    /* The byte after len would complete the character: it must not count. */
    assert_false(pl_utf8_valid("\xC3\xA9", 1));
    assert_false(pl_utf8_valid("\xE2\x82\xAC", 2));
    assert_false(pl_utf8_valid("\xF0\x9F\x98\x80", 3));
}

static void test_bad_continuation(void **state)
{
    (void)state;
    assert_false(VALID("\x80"));             /* stray continuation */
    assert_false(VALID("\xBF"));
    assert_false(VALID("a\x80z"));
    assert_false(VALID("\xC3\xA9\xA9"));     /* one too many */
    assert_false(VALID("\xC3\x41"));         /* lead then ASCII */
    assert_false(VALID("\xE2\x82\x41"));
    assert_false(VALID("\xF0\x9F\x98\x41"));
    assert_false(VALID("\xE2\xC3\xA9"));     /* lead then another lead */
}

/*
 * An independent reference: decode by the generic bit layout, then apply the
 * RFC 3629 rules (shortest form, no surrogates, at most U+10FFFF).
 */
static bool reference_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i], n, cp;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; }
        else return false;
        if (len - i < n + 1)
            return false;
        for (unsigned k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        static const unsigned min_cp[] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[n] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return false;
        i += n + 1;
    }
    return true;
}

/* Every 1- and 2-byte string, and every 3-byte string with a multi-byte
 * lead, agrees with the reference. */
static void test_exhaustive_short_strings(void **state)
{
    (void)state;
    unsigned char b[3];
    for (unsigned x = 0; x < 256; x++) {
        b[0] = (unsigned char)x;
        assert_int_equal(pl_utf8_valid((char *)b, 1), reference_valid(b, 1));
        for (unsigned y = 0; y < 256; y++) {
            b[1] = (unsigned char)y;
            assert_int_equal(pl_utf8_valid((char *)b, 2), reference_valid(b, 2));
            if (x < 0xC0)
                continue;
            for (unsigned z = 0; z < 256; z++) {
                b[2] = (unsigned char)z;
                if (pl_utf8_valid((char *)b, 3) != reference_valid(b, 3))
                    fail_msg("mismatch on %02X %02X %02X", x, y, z);
            }
        }
    }
}

/* Every code point encodes to something valid, except the surrogates. */
static void test_every_code_point(void **state)
{
    (void)state;
    unsigned char b[4];
    for (unsigned cp = 0; cp <= 0x10FFFF; cp++) {
        size_t n;
        if (cp < 0x80) {
            b[0] = (unsigned char)cp; n = 1;
        } else if (cp < 0x800) {
            b[0] = (unsigned char)(0xC0 | cp >> 6);
            b[1] = (unsigned char)(0x80 | (cp & 0x3F)); n = 2;
        } else if (cp < 0x10000) {
            b[0] = (unsigned char)(0xE0 | cp >> 12);
            b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
            b[2] = (unsigned char)(0x80 | (cp & 0x3F)); n = 3;
        } else {
            b[0] = (unsigned char)(0xF0 | cp >> 18);
            b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
            b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
            b[3] = (unsigned char)(0x80 | (cp & 0x3F)); n = 4;
        }
        bool expect = cp < 0xD800 || cp > 0xDFFF;
        if (pl_utf8_valid((char *)b, n) != expect)
            fail_msg("U+%04X: expected %s", cp, expect ? "valid" : "invalid");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_ascii),
        cmocka_unit_test(test_two_byte),
        cmocka_unit_test(test_three_byte),
        cmocka_unit_test(test_four_byte),
        cmocka_unit_test(test_overlong),
        cmocka_unit_test(test_surrogates),
        cmocka_unit_test(test_above_max),
        cmocka_unit_test(test_truncated_at_end),
        cmocka_unit_test(test_bad_continuation),
        cmocka_unit_test(test_exhaustive_short_strings),
        cmocka_unit_test(test_every_code_point),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
