/* test_core_claims.c: the session claims JSON of R24: fixed key order,
 * role = roles[0], the omit_permissions form, optional email and act,
 * string escaping, and a parse-back with jansson. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include "rolegate/core.h"

static const char *roles[] = {"admin", "viewer"};
static const char *perms[] = {"reports:view", "users:edit"};

static rg_claims base(void)
{
    rg_claims c = {.iss = "https://sso.example.com", .sub = "user_01", .sid = "sess_01",
                   .jti = "jti_01", .org_id = "org_01", .roles = roles, .n_roles = 2,
                   .permissions = perms, .n_permissions = 2, .iat = 1700000000,
                   .exp = 1700003600};
    return c;
}

static char *to_json(const rg_claims *c)
{
    char *j = NULL;
    size_t n = 0;
    assert_int_equal(rg_core_claims_json(c, &j, &n), 0);
    assert_non_null(j);
    assert_int_equal(n, strlen(j));
    return j;
}

static void test_R24_claims_fixed_key_order(void **st)
{
    (void)st;
    rg_claims c = base();
    char *j = to_json(&c);
    assert_string_equal(j,
        "{\"iss\":\"https://sso.example.com\",\"sub\":\"user_01\",\"sid\":\"sess_01\","
        "\"org_id\":\"org_01\",\"role\":\"admin\",\"roles\":[\"admin\",\"viewer\"],"
        "\"permissions\":[\"reports:view\",\"users:edit\"],\"iat\":1700000000,"
        "\"exp\":1700003600,\"jti\":\"jti_01\"}");
    free(j);
}

static void test_R24_claims_email_and_act(void **st)
{
    (void)st;
    rg_claims c = base();
    c.email = "a@example.com";
    c.act_sub = "admin_7";
    c.n_permissions = 0;
    char *j = to_json(&c);
    assert_string_equal(j,
        "{\"iss\":\"https://sso.example.com\",\"sub\":\"user_01\",\"sid\":\"sess_01\","
        "\"org_id\":\"org_01\",\"role\":\"admin\",\"roles\":[\"admin\",\"viewer\"],"
        "\"permissions\":[],\"email\":\"a@example.com\",\"act\":{\"sub\":\"admin_7\"},"
        "\"iat\":1700000000,\"exp\":1700003600,\"jti\":\"jti_01\"}");
    free(j);
}

static void test_R24_omit_permissions(void **st)
{
    (void)st;
    rg_claims c = base();
    c.omit_permissions = 1;
    char *j = to_json(&c);
    assert_null(strstr(j, "\"permissions\":"));
    assert_null(strstr(j, "users:edit"));
    assert_non_null(strstr(j, ",\"roles\":[\"admin\",\"viewer\"],\"permissions_omitted\":true,"
                              "\"iat\":"));
    free(j);
}

static void test_R24_string_escaping(void **st)
{
    (void)st;
    rg_claims c = base();
    c.sub = "a\"b\\c/d\n\x01\x1f\x7f";
    c.email = "j\xc3\xa9r\xc3\xb4me@\xe6\x97\xa5.example";   /* UTF-8 passes through */
    c.sid = "bad\xff" "utf8\xc3";                            /* invalid: U+FFFD */
    char *j = to_json(&c);
    assert_non_null(strstr(j, "\"sub\":\"a\\\"b\\\\c/d\\u000a\\u0001\\u001f\\u007f\""));
    assert_non_null(strstr(j, "\"email\":\"j\xc3\xa9r\xc3\xb4me@\xe6\x97\xa5.example\""));
    assert_non_null(strstr(j, "\"sid\":\"bad\\ufffdutf8\\ufffd\""));
    free(j);
}

static void test_R24_parse_back(void **st)
{
    (void)st;
    rg_claims c = base();
    c.sub = "quote\" back\\ nl\n tab\t caf\xc3\xa9";
    c.email = "e@x";
    c.act_sub = "adm\"in";
    c.iat = -5;
    c.exp = INT64_MAX;
    char *j = to_json(&c);
    json_error_t jerr;
    json_t *o = json_loads(j, JSON_REJECT_DUPLICATES, &jerr);
    if (!o)
        fail_msg("not JSON: %s in %s", jerr.text, j);
    assert_string_equal(json_string_value(json_object_get(o, "sub")), c.sub);
    assert_string_equal(json_string_value(json_object_get(o, "role")), "admin");
    json_t *r = json_object_get(o, "roles");
    assert_int_equal(json_array_size(r), 2);
    assert_string_equal(json_string_value(json_array_get(r, 1)), "viewer");
    json_t *p = json_object_get(o, "permissions");
    assert_int_equal(json_array_size(p), 2);
    assert_string_equal(json_string_value(json_array_get(p, 0)), "reports:view");
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "act"), "sub")),
                        "adm\"in");
    assert_int_equal(json_integer_value(json_object_get(o, "iat")), -5);
    assert_true(json_integer_value(json_object_get(o, "exp")) == INT64_MAX);
    assert_int_equal(json_object_size(o), 12);
    /* keys come back in the fixed order */
    const char *order[] = {"iss", "sub", "sid", "org_id", "role", "roles", "permissions",
                           "email", "act", "iat", "exp", "jti"};
    const char *prev = j;
    for (size_t i = 0; i < 12; i++) {
        char key[32];
        snprintf(key, sizeof key, "\"%s\":", order[i]);
        const char *at = strstr(prev, key);
        assert_non_null(at);
        prev = at + 1;
    }
    json_decref(o);
    free(j);
}

static void test_R24_null_fields_stay_valid_json(void **st)
{
    (void)st;
    rg_claims c = {.sub = "u", .iat = 1, .exp = 2};
    char *j = to_json(&c);
    assert_string_equal(j, "{\"iss\":null,\"sub\":\"u\",\"sid\":null,\"org_id\":null,"
                           "\"role\":null,\"roles\":[],\"permissions\":[],\"iat\":1,"
                           "\"exp\":2,\"jti\":null}");
    json_t *o = json_loads(j, 0, NULL);
    assert_non_null(o);
    json_decref(o);
    free(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_R24_claims_fixed_key_order),
        cmocka_unit_test(test_R24_claims_email_and_act),
        cmocka_unit_test(test_R24_omit_permissions),
        cmocka_unit_test(test_R24_string_escaping),
        cmocka_unit_test(test_R24_parse_back),
        cmocka_unit_test(test_R24_null_fields_stay_valid_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
