/* test_core_slug.c: role and permission slug checks (R1-R4), names and
 * descriptions (R2), the error shape of R6, generated slugs (R5, with the
 * R3 rule that a generated slug never begins with "org-"), role sources. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "rolegate/core.h"

#define ID "role_01HZX3K5V9PQRSTW2ABC1B2C3D"   /* suffix "1b2c3d" */

static int env_ok(const char *s)
{
    rg_error e;
    return rg_core_role_slug_check(s, RG_ROLE_ENV, "slug", &e) == 0;
}

static int org_ok(const char *s)
{
    rg_error e;
    return rg_core_role_slug_check(s, RG_ROLE_ORG, "slug", &e) == 0;
}

static void gen(const char *name, char out[RG_SLUG_MAX + 1])
{
    assert_int_equal(rg_core_role_slug_generate(name, ID, out), 0);
}

static void test_R1_valid_role_slugs(void **st)
{
    (void)st;
    assert_true(env_ok("member"));
    assert_true(env_ok("billing-admin"));
    assert_true(env_ok("a_b-c9"));
    assert_true(env_ok("a"));
    assert_true(env_ok("0"));
    char s48[49];
    memset(s48, 'a', 48);
    s48[48] = 0;
    assert_true(env_ok(s48));
}

static void test_R1_rejects_length_out_of_range(void **st)
{
    (void)st;
    char s49[50];
    memset(s49, 'a', 49);
    s49[49] = 0;
    assert_false(env_ok(s49));
    assert_false(env_ok(""));
    assert_false(env_ok(NULL));
}

static void test_R1_rejects_uppercase_and_symbols(void **st)
{
    (void)st;
    assert_false(env_ok("Admin"));
    assert_false(env_ok("ADMIN"));
    assert_false(env_ok("a b"));
    assert_false(env_ok("a.b"));
    assert_false(env_ok("caf\xc3\xa9"));
}

static void test_R1_rejects_bad_separators(void **st)
{
    (void)st;
    assert_false(env_ok("a--b"));
    assert_false(env_ok("a__b"));
    assert_false(env_ok("a-_b"));   /* mixed run is consecutive too */
    assert_false(env_ok("a_-b"));
    assert_false(env_ok("-a"));
    assert_false(env_ok("_a"));
    assert_false(env_ok("a_"));
    assert_false(env_ok("a-"));
    assert_false(env_ok("-"));
}

static void test_R1_priority_is_reserved(void **st)
{
    (void)st;
    rg_error e;
    assert_int_not_equal(rg_core_role_slug_check("priority", RG_ROLE_ENV, "slug", &e), 0);
    assert_non_null(strstr(e.message, "R1"));
    assert_false(org_ok("priority"));
    assert_true(env_ok("priority-x"));   /* only the exact word */
}

static void test_R3_env_slug_must_not_begin_with_org(void **st)
{
    (void)st;
    rg_error e;
    assert_int_not_equal(rg_core_role_slug_check("org-admin", RG_ROLE_ENV, "slug", &e), 0);
    assert_non_null(strstr(e.message, "R3"));
    assert_true(env_ok("organizer"));   /* the prefix is "org-", not "org" */
    assert_true(env_ok("org_admin"));
}

static void test_R4_explicit_org_slug_needs_org_prefix(void **st)
{
    (void)st;
    rg_error e;
    assert_true(org_ok("org-billing-admin"));
    assert_int_not_equal(rg_core_role_slug_check("billing-admin", RG_ROLE_ORG, "slug", &e), 0);
    assert_non_null(strstr(e.message, "R4"));
    assert_false(org_ok("org-"));       /* ends with a separator (R1) */
    assert_false(org_ok("org"));
    assert_false(org_ok("org--x"));
}

static void test_R6_invalid_slug_error_shape(void **st)
{
    (void)st;
    rg_error e;
    memset(&e, 0, sizeof e);
    int rc = rg_core_role_slug_check("Bad Slug", RG_ROLE_ENV, "role_slug", &e);
    assert_true(rc < 0);
    assert_int_equal(e.status, 422);
    assert_string_equal(e.code, "invalid_slug");
    assert_string_equal(e.field, "role_slug");
    assert_non_null(strstr(e.message, "R1"));
}

static void test_R2_permission_slugs(void **st)
{
    (void)st;
    rg_error e;
    assert_int_equal(rg_core_permission_slug_check("users:view", "slug", &e), 0);
    assert_int_equal(rg_core_permission_slug_check("reports.*", "slug", &e), 0);
    assert_int_equal(rg_core_permission_slug_check("a-b_c.d:e*", "slug", &e), 0);
    assert_int_equal(rg_core_permission_slug_check("-lead.", "slug", &e), 0);
    assert_int_not_equal(rg_core_permission_slug_check("Users:view", "slug", &e), 0);
    assert_string_equal(e.code, "invalid_slug");
    assert_non_null(strstr(e.message, "R2"));
    assert_int_not_equal(rg_core_permission_slug_check("users view", "slug", &e), 0);
    assert_int_not_equal(rg_core_permission_slug_check("users/view", "slug", &e), 0);
    assert_int_not_equal(rg_core_permission_slug_check("", "slug", &e), 0);
    char s[50];
    memset(s, 'p', 49);
    s[49] = 0;
    assert_int_not_equal(rg_core_permission_slug_check(s, "slug", &e), 0);
    s[48] = 0;
    assert_int_equal(rg_core_permission_slug_check(s, "slug", &e), 0);
}

static void test_R2_name_counts_characters_not_bytes(void **st)
{
    (void)st;
    rg_error e;
    /* 48 x "é" = 96 bytes but 48 characters: fine; 49: too long */
    char s[128] = "";
    for (int i = 0; i < 48; i++)
        strcat(s, "\xc3\xa9");
    assert_int_equal(rg_core_name_check(s, "name", &e), 0);
    strcat(s, "\xc3\xa9");
    assert_int_not_equal(rg_core_name_check(s, "name", &e), 0);
    assert_string_equal(e.code, "invalid_name");
    assert_string_equal(e.field, "name");
    assert_int_equal(e.status, 422);
    assert_int_equal(rg_core_name_check("Billing Admin", "name", &e), 0);
    assert_int_not_equal(rg_core_name_check("", "name", &e), 0);
    assert_int_not_equal(rg_core_name_check(NULL, "name", &e), 0);
}

static void test_R2_name_rejects_bad_utf8_and_controls(void **st)
{
    (void)st;
    rg_error e;
    assert_int_not_equal(rg_core_name_check("caf\xe9", "name", &e), 0);           /* Latin-1 */
    assert_non_null(strstr(e.message, "UTF-8"));
    assert_int_not_equal(rg_core_name_check("\xc0\xaf", "name", &e), 0);          /* overlong */
    assert_int_not_equal(rg_core_name_check("\xed\xa0\x80", "name", &e), 0);      /* surrogate */
    assert_int_not_equal(rg_core_name_check("\xe2\x82", "name", &e), 0);          /* truncated */
    assert_int_not_equal(rg_core_name_check("a\tb", "name", &e), 0);
    assert_non_null(strstr(e.message, "control"));
    assert_int_not_equal(rg_core_name_check("a\x7f", "name", &e), 0);
    assert_int_not_equal(rg_core_name_check("a\xc2\x85", "name", &e), 0);         /* C1 NEL */
    assert_int_equal(rg_core_name_check("\xf0\x9f\x98\x80 ok", "name", &e), 0);  /* emoji */
}

static void test_R2_description_length(void **st)
{
    (void)st;
    rg_error e;
    assert_int_equal(rg_core_description_check(NULL, "description", &e), 0);
    assert_int_equal(rg_core_description_check("", "description", &e), 0);
    char s[400] = "";
    for (int i = 0; i < 150; i++)
        strcat(s, i % 2 ? "x" : "\xc3\xa9");
    assert_int_equal(rg_core_description_check(s, "description", &e), 0);
    strcat(s, "x");
    assert_int_not_equal(rg_core_description_check(s, "description", &e), 0);
    assert_string_equal(e.code, "invalid_description");
    assert_string_equal(e.field, "description");
    assert_int_not_equal(rg_core_description_check("bad \xff", "description", &e), 0);
}

static void test_R5_generated_slug_from_name(void **st)
{
    (void)st;
    char out[RG_SLUG_MAX + 1];
    gen("Billing Admin", out);
    assert_string_equal(out, "billing-admin-1b2c3d");
    assert_true(env_ok(out));
}

static void test_R5_suffix_is_last_six_of_ulid_lowercased(void **st)
{
    (void)st;
    char out[RG_SLUG_MAX + 1];
    assert_int_equal(rg_core_role_slug_generate("x", "role_01ARZ3NDEKTSV4RRFFQ69G5FAV", out), 0);
    assert_string_equal(out, "x-9g5fav");
    assert_int_equal(rg_core_role_slug_generate("x", "role_01arz3ndektsv4rrffq69g5fav", out), 0);
    assert_string_equal(out, "x-9g5fav");
}

static void test_R5_rejects_ids_without_ulid(void **st)
{
    (void)st;
    char out[RG_SLUG_MAX + 1];
    assert_int_equal(rg_core_role_slug_generate("x", "role_short", out), RG_EINVAL);
    assert_int_equal(rg_core_role_slug_generate("x", "01ARZ3NDEKTSV4RRFFQ69G5FAV", out), RG_EINVAL);
    assert_int_equal(rg_core_role_slug_generate("x", "role_01ARZ3NDEKTSV4RRFFQ69G5FAI", out),
                     RG_EINVAL);   /* I is not Crockford */
    assert_int_equal(rg_core_role_slug_generate("x", NULL, out), RG_EINVAL);
}

static void test_R5_generated_slug_trims_and_collapses_separators(void **st)
{
    (void)st;
    char out[RG_SLUG_MAX + 1];
    gen("  --Billing   Admin__  ", out);
    assert_string_equal(out, "billing-admin-1b2c3d");
    gen("a - b", out);          /* whitespace and "-" form one run */
    assert_string_equal(out, "a-b-1b2c3d");
    gen("a_-b", out);           /* a mixed run collapses to its first char */
    assert_string_equal(out, "a_b-1b2c3d");
    gen("a . b", out);          /* a run formed by a removal collapses too */
    assert_string_equal(out, "a-b-1b2c3d");
    gen("Sales\tTeam\nEU", out);
    assert_string_equal(out, "sales-team-eu-1b2c3d");
    assert_true(env_ok(out));
}

static void test_R5_generated_slug_removes_non_ascii(void **st)
{
    (void)st;
    char out[RG_SLUG_MAX + 1];
    gen("Caf\xc3\xa9", out);
    assert_string_equal(out, "caf-1b2c3d");
    gen("\xc3\x9c" "ber Admin", out);      /* "Über Admin": no transliteration */
    assert_string_equal(out, "ber-admin-1b2c3d");
    gen("R&D (EU)", out);
    assert_string_equal(out, "rd-eu-1b2c3d");
}

static void test_R5_generated_slug_truncates_name(void **st)
{
    (void)st;
    char out[RG_SLUG_MAX + 1];
    const char *name60 = "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefgh";
    assert_int_equal(strlen(name60), 60);
    gen(name60, out);
    assert_int_equal(strlen(out), RG_SLUG_MAX);
    assert_string_equal(out, "abcdefghijklmnopqrstuvwxyzabcdefghijklmno-1b2c3d");
    assert_true(env_ok(out));
}

static void test_R5_generated_slug_trims_separator_at_cut(void **st)
{
    (void)st;
    char out[RG_SLUG_MAX + 1];
    /* 40 letters, a space, more: the cut at 41 leaves "...-", trimmed */
    gen("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbbbbbb", out);
    assert_string_equal(out, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-1b2c3d");
    assert_int_equal(strlen(out), 47);
    assert_true(env_ok(out));
}

static void test_R5_name_of_only_symbols_yields_suffix(void **st)
{
    (void)st;
    char out[RG_SLUG_MAX + 1];
    gen("!!! *** ???", out);
    assert_string_equal(out, "1b2c3d");
    gen("", out);
    assert_string_equal(out, "1b2c3d");
    gen("\xe6\x97\xa5\xe6\x9c\xac", out);   /* all non-ASCII */
    assert_string_equal(out, "1b2c3d");
    gen(" - _ ", out);
    assert_string_equal(out, "1b2c3d");
}

static void test_R3_R5_generated_slug_never_begins_with_org(void **st)
{
    (void)st;
    char out[RG_SLUG_MAX + 1];
    gen("Org Admin", out);
    assert_string_equal(out, "admin-1b2c3d");
    gen("ORG-ORG admin", out);
    assert_string_equal(out, "admin-1b2c3d");
    gen("Org", out);
    assert_string_equal(out, "1b2c3d");
    gen("Organizers", out);        /* only the word "org" goes */
    assert_string_equal(out, "organizers-1b2c3d");
    gen("org_team", out);          /* "org_" is not the reserved prefix, but
                                     * a separator after "org" still drops it */
    assert_string_equal(out, "team-1b2c3d");
    assert_true(env_ok(out));
}

static void test_R5_generated_slugs_always_pass_R1(void **st)
{
    (void)st;
    const char *names[] = {"x", "A-B", "__", "é-é", "Ops & Dev -- EU_west", "9 lives",
                           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa_-_bbbb"};
    char out[RG_SLUG_MAX + 1];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        gen(names[i], out);
        assert_true(env_ok(out));
        assert_int_not_equal(strncmp(out, "org-", 4), 0);
    }
}

static void test_R17_source_names_round_trip(void **st)
{
    (void)st;
    rg_role_source all[] = {RG_SOURCE_IDP, RG_SOURCE_DIRECTORY, RG_SOURCE_API,
                            RG_SOURCE_DEFAULT};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(rg_core_source_parse(rg_core_source_name(all[i])), all[i]);
    assert_string_equal(rg_core_source_name(RG_SOURCE_IDP), "idp");
    assert_string_equal(rg_core_source_name(RG_SOURCE_NONE), "");
    assert_int_equal(rg_core_source_parse("IDP"), RG_SOURCE_NONE);
    assert_int_equal(rg_core_source_parse(NULL), RG_SOURCE_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_R1_valid_role_slugs),
        cmocka_unit_test(test_R1_rejects_length_out_of_range),
        cmocka_unit_test(test_R1_rejects_uppercase_and_symbols),
        cmocka_unit_test(test_R1_rejects_bad_separators),
        cmocka_unit_test(test_R1_priority_is_reserved),
        cmocka_unit_test(test_R3_env_slug_must_not_begin_with_org),
        cmocka_unit_test(test_R4_explicit_org_slug_needs_org_prefix),
        cmocka_unit_test(test_R6_invalid_slug_error_shape),
        cmocka_unit_test(test_R2_permission_slugs),
        cmocka_unit_test(test_R2_name_counts_characters_not_bytes),
        cmocka_unit_test(test_R2_name_rejects_bad_utf8_and_controls),
        cmocka_unit_test(test_R2_description_length),
        cmocka_unit_test(test_R5_generated_slug_from_name),
        cmocka_unit_test(test_R5_suffix_is_last_six_of_ulid_lowercased),
        cmocka_unit_test(test_R5_rejects_ids_without_ulid),
        cmocka_unit_test(test_R5_generated_slug_trims_and_collapses_separators),
        cmocka_unit_test(test_R5_generated_slug_removes_non_ascii),
        cmocka_unit_test(test_R5_generated_slug_truncates_name),
        cmocka_unit_test(test_R5_generated_slug_trims_separator_at_cut),
        cmocka_unit_test(test_R5_name_of_only_symbols_yields_suffix),
        cmocka_unit_test(test_R3_R5_generated_slug_never_begins_with_org),
        cmocka_unit_test(test_R5_generated_slugs_always_pass_R1),
        cmocka_unit_test(test_R17_source_names_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
