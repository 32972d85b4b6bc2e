/* test_core_scim.c: the SCIM filter and PATCH path grammar (scim.h; issue 12,
 * DESIGN.md "Directory sync"): what Okta and Entra ID send parses, with the
 * values decoded; everything outside the subset is refused with a reason. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "rolegate/scim.h"

static int filter(const char *s, rg_scim_term *t, char *why)
{
    return rg_scim_filter_parse(s, t, RG_SCIM_TERMS_MAX, why, RG_SCIM_WHY_MAX);
}

static void test_filters_of_okta_and_entra_parse(void **st)
{
    (void)st;
    rg_scim_term t[RG_SCIM_TERMS_MAX];
    char why[RG_SCIM_WHY_MAX];
    assert_int_equal(filter("userName eq \"test.user@okta.local\"", t, why), 1);
    assert_string_equal(t[0].attr, "userName");
    assert_string_equal(t[0].value, "test.user@okta.local");
    assert_int_equal(t[0].type, RG_SCIM_V_STRING);
    assert_int_equal(filter("externalId EQ \"0a21\"", t, why), 1);
    assert_int_equal(filter("id eq \"g1\" and members.value eq \"u1\"", t, why), 2);
    assert_string_equal(t[1].attr, "members.value");
    assert_string_equal(t[1].value, "u1");
    assert_int_equal(filter("emails.value eq \"a\\\"b\\\\c\\u00e9\"", t, why), 1);
    assert_string_equal(t[0].value, "a\"b\\c\xc3\xa9");
    assert_int_equal(filter("urn:ietf:params:scim:schemas:core:2.0:User:userName eq \"x\"", t,
                            why), 1);
    assert_string_equal(t[0].attr, "urn:ietf:params:scim:schemas:core:2.0:User:userName");
    assert_int_equal(filter("active eq true", t, why), 1);
    assert_int_equal(t[0].type, RG_SCIM_V_TRUE);
}

static void test_filters_outside_the_subset_are_refused_with_a_reason(void **st)
{
    (void)st;
    rg_scim_term t[RG_SCIM_TERMS_MAX];
    char why[RG_SCIM_WHY_MAX];
    static const char *const bad[] = {
        "", "userName", "userName eq", "userName co \"a\"", "userName sw \"a\"",
        "userName pr", "userName eq \"a\" or id eq \"b\"", "(userName eq \"a\")",
        "not (userName eq \"a\")", "userName eq a", "userName eq \"unterminated",
        "userName eq \"a\" and", "emails[type eq \"work\"] eq \"x\"", "userName eq \"\\q\"",
        "userName eq \"\\u12\"", "userName eq \"a\" garbage", "a.b.c eq \"x\"",
        "userName eq \"\\",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        why[0] = '\0';
        assert_int_equal(filter(bad[i], t, why), -1);
        assert_true(why[0] != '\0');
    }
    /* more terms than the caller has room for */
    assert_int_equal(rg_scim_filter_parse("a eq \"1\" and b eq \"2\"", t, 1, why, sizeof why),
                     -1);
}

static void test_patch_paths(void **st)
{
    (void)st;
    rg_scim_path p;
    char why[RG_SCIM_WHY_MAX];
    assert_int_equal(rg_scim_path_parse("name.givenName", &p, why, sizeof why), 0);
    assert_string_equal(p.attr, "name");
    assert_string_equal(p.sub, "givenName");
    assert_int_equal(p.n_filter, 0);
    assert_int_equal(rg_scim_path_parse("emails[type eq \"work\"].value", &p, why, sizeof why), 0);
    assert_string_equal(p.attr, "emails");
    assert_string_equal(p.sub, "value");
    assert_int_equal(p.n_filter, 1);
    assert_string_equal(p.filter[0].attr, "type");
    assert_string_equal(p.filter[0].value, "work");
    assert_int_equal(rg_scim_path_parse("members[value eq \"2819c223\"]", &p, why, sizeof why), 0);
    assert_string_equal(p.attr, "members");
    assert_string_equal(p.sub, "");
    assert_string_equal(p.filter[0].value, "2819c223");
    assert_int_equal(rg_scim_path_parse(
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", &p, why,
        sizeof why), 0);
    assert_string_equal(p.urn, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User");
    assert_string_equal(p.attr, "department");
    assert_int_equal(rg_scim_path_parse(
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value", &p, why,
        sizeof why), 0);
    assert_string_equal(p.attr, "manager");
    assert_string_equal(p.sub, "value");
    static const char *const bad[] = {
        "", "name.", "name..x", "a.b.c", "emails[type eq \"work\"", "emails[]",
        "emails[type co \"w\"]", "name.givenName[type eq \"x\"]", "emails[type eq \"w\"]x",
        "urn:", "1abc", "members[value eq \"x\"].", "urn:a:b:", "a b",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        why[0] = '\0';
        assert_int_equal(rg_scim_path_parse(bad[i], &p, why, sizeof why), -1);
        assert_true(why[0] != '\0');
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filters_of_okta_and_entra_parse),
        cmocka_unit_test(test_filters_outside_the_subset_are_refused_with_a_reason),
        cmocka_unit_test(test_patch_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
