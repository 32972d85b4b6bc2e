/* test_util_codec.c: base64/base64url round trips and rejections, ULID ids
 * (format, monotonic order), constant-time compare, rg_buf, hex digits,
 * FNV-1a and the capped body of a fetch. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "rolegate/util.h"

static void test_b64url_roundtrip(void **st)
{
    (void)st;
    const char *cases[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xff\xfe\xfd"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char enc[64];
        unsigned char dec[64];
        size_t n = strlen(cases[i]);
        size_t el = rg_b64url_encode(cases[i], n, enc);
        assert_int_equal(el, rg_b64url_len(n));
        assert_null(strchr(enc, '='));
        long dl = rg_b64url_decode(enc, el, dec);
        assert_int_equal(dl, (long)n);
        assert_memory_equal(dec, cases[i], n);
    }
    char enc[8];
    rg_b64url_encode("\xfb\xff", 2, enc);
    assert_string_equal(enc, "-_8");
}

static void test_b64url_rejects_bad_input(void **st)
{
    (void)st;
    unsigned char out[16];
    assert_int_equal(rg_b64url_decode("ab+c", 4, out), -1);   /* std alphabet */
    assert_int_equal(rg_b64url_decode("abc=", 4, out), -1);   /* padding */
    assert_int_equal(rg_b64url_decode("a", 1, out), -1);      /* lone sextet */
    assert_int_equal(rg_b64url_decode("Zh", 2, out), -1);     /* non-canonical */
}

static void test_b64_standard(void **st)
{
    (void)st;
    char enc[16];
    unsigned char dec[16];
    rg_b64_encode("fo", 2, enc);
    assert_string_equal(enc, "Zm8=");
    assert_int_equal(rg_b64_decode("Zm9v\nYmFy", 9, dec), 6);
    assert_memory_equal(dec, "foobar", 6);
    assert_int_equal(rg_b64_decode("Zm8=Zm8=", 8, dec), -1);
}

static void test_ids_are_prefixed_ulids_in_order(void **st)
{
    (void)st;
    char prev[40] = "", id[40];
    for (int i = 0; i < 1000; i++) {
        rg_id_new("role", id, sizeof id);
        assert_int_equal(strlen(id), 5 + 26);
        assert_true(rg_id_valid("role", id));
        assert_true(strcmp(prev, id) < 0);
        strcpy(prev, id);
    }
    assert_false(rg_id_valid("org", id));
    assert_false(rg_id_valid("role", "role_123"));
    assert_false(rg_id_valid("role", "role_01ARZ3NDEKTSV4RRFFQ69G5FAI"));  /* I not Crockford */
}

/* The value of n Crockford base32 chars. */
static uint64_t b32_value(const char *s, int n)
{
    static const char digits[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 5 | (uint64_t)(strchr(digits, s[i]) - digits);
    return v;
}

/* The encoding: the first 10 chars are the clock's milliseconds (48 bits
 * under two zero bits), and an id made in the same millisecond as the one
 * before it is that one's random part plus one, in its last chars. */
static void test_ulid_encodes_time_and_increment(void **st)
{
    (void)st;
    char u[RG_ULID_LEN + 1], prev[RG_ULID_LEN + 1] = "";
    int64_t t0 = rg_now_ms();
    rg_ulid_new(u);
    int64_t t1 = rg_now_ms();
    uint64_t ms = b32_value(u, 10);
    assert_true(ms >= (uint64_t)t0 && ms <= (uint64_t)t1);
    int same_ms = 0;
    for (int i = 0; i < 100000 && same_ms < 50; i++) {
        strcpy(prev, u);
        rg_ulid_new(u);
        if (memcmp(prev, u, 10) != 0)
            continue;
        uint64_t a = b32_value(prev + 22, 4), b = b32_value(u + 22, 4);   /* 20 bits */
        if (a == 0xfffff)
            continue;   /* the +1 carries past these chars */
        same_ms++;
        assert_int_equal(b, a + 1);
        assert_memory_equal(prev + 10, u + 10, 12);   /* the higher random chars */
    }
    assert_true(same_ms > 0);
}

static void test_ct_equal(void **st)
{
    (void)st;
    assert_true(rg_ct_equal("abc", 3, "abc", 3));
    assert_false(rg_ct_equal("abc", 3, "abd", 3));
    assert_false(rg_ct_equal("abc", 3, "abcd", 4));
}

static void test_buf(void **st)
{
    (void)st;
    rg_buf b = {0};
    for (int i = 0; i < 100; i++)
        rg_buf_printf(&b, "%d,", i);
    assert_int_equal(b.len, strlen(b.data));
    assert_true(strncmp(b.data, "0,1,2,", 6) == 0);
    char *s = rg_buf_take(&b);
    assert_non_null(s);
    assert_null(b.data);
    free(s);
}

/* The one copy of what three layers each had: hex digits (URL and JSON
 * escapes), FNV-1a (the in-process maps' slots) and the capped body of an
 * HTTP fetch (SAML metadata, OIDC documents). */
static void test_hex_digit_fnv1a_and_capped_buf(void **st)
{
    (void)st;
    assert_int_equal(rg_hex_digit('0'), 0);
    assert_int_equal(rg_hex_digit('9'), 9);
    assert_int_equal(rg_hex_digit('a'), 10);
    assert_int_equal(rg_hex_digit('F'), 15);
    assert_int_equal(rg_hex_digit('g'), -1);
    assert_int_equal(rg_hex_digit('\0'), -1);
    assert_int_equal(rg_hex_digit(-56), -1);   /* a negative char */
    /* FNV-1a 64 with the offset basis every copy had, 1469598103934665603
     * (the published one has one more digit: 14695981039346656037); kept, so
     * every map hashes as before */
    assert_true(rg_fnv1a("") == 1469598103934665603ull);
    assert_true(rg_fnv1a("a") == 0x44bd8ad473cd9906ull);
    assert_true(rg_fnv1a("foobar") == 0x88fad7c0a8ff07f2ull);
    rg_buf_capped c = {.max = 5};
    char abc[] = "abc";
    assert_int_equal(rg_buf_capped_write(abc, 1, 3, &c), 3);
    assert_int_equal(rg_buf_capped_write(abc, 1, 2, &c), 2);   /* exactly max */
    assert_int_equal(c.over, 0);
    assert_int_equal(rg_buf_capped_write(abc, 1, 1, &c), 0);   /* one past: abort */
    assert_int_equal(c.over, 1);
    assert_int_equal(c.body.len, 5);
    assert_string_equal(c.body.data, "abcab");
    rg_buf_free(&c.body);
}

/* %-decoding of a query value or a URL's user info: '+' stays '+', a bad
 * escape, an escaped NUL or an output too small is -1. */
static void test_pct_decode(void **state)
{
    (void)state;
    char out[16];
    assert_int_equal(rg_pct_decode("a%2Bb+c%2f", 10, out, sizeof out), 6);
    assert_string_equal(out, "a+b+c/");
    assert_int_equal(rg_pct_decode("%41%4a", 6, out, sizeof out), 2);
    assert_string_equal(out, "AJ");
    assert_int_equal(rg_pct_decode("%4", 2, out, sizeof out), -1);
    assert_int_equal(rg_pct_decode("%zz", 3, out, sizeof out), -1);
    assert_int_equal(rg_pct_decode("a%00b", 5, out, sizeof out), -1);
    assert_int_equal(rg_pct_decode("abcd", 4, out, 4), -1);     /* no room for the NUL */
    assert_int_equal(rg_pct_decode("abc", 3, out, 4), 3);
    assert_int_equal(rg_pct_decode("", 0, out, sizeof out), 0);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url_roundtrip),
        cmocka_unit_test(test_b64url_rejects_bad_input),
        cmocka_unit_test(test_b64_standard),
        cmocka_unit_test(test_ids_are_prefixed_ulids_in_order),
        cmocka_unit_test(test_ulid_encodes_time_and_increment),
        cmocka_unit_test(test_ct_equal),
        cmocka_unit_test(test_buf),
        cmocka_unit_test(test_hex_digit_fnv1a_and_capped_buf),
        cmocka_unit_test(test_pct_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
