/* test_session_issue.c: issuing a session (R24): claims (rg_core_claims_json)
 * → signed JWT → Set-Cookie within the 4096-byte budget. Over budget the
 * session.oversize policy decides: reject fails with session_too_large and the
 * numbers; omit_permissions re-issues a token with permissions_omitted: true
 * that fits. Never a truncated cookie. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "rolegate/session.h"
#include "test_tmpdir.h"
#include "rolegate/util.h"

#define ISS "https://sso.test"

typedef struct fx {
    char *dir;
    rg_keyring *kr;
    char **perms;
    size_t nperms;
} fx;

static int setup(void **st)
{
    fx *f = calloc(1, sizeof *f);
    f->dir = tt_mkdtemp("session-issue");
    rg_error err = {0};
    f->kr = rg_session_keys_load(f->dir, 1, &err);
    assert_non_null(f->kr);
    f->nperms = 300;
    f->perms = calloc(f->nperms, sizeof *f->perms);
    for (size_t i = 0; i < f->nperms; i++) {
        f->perms[i] = malloc(48);
        snprintf(f->perms[i], 48, "billing-invoices:read-%03u", (unsigned)i);   /* sorted */
    }
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    fx *f = *st;
    for (size_t i = 0; i < f->nperms; i++)
        free(f->perms[i]);
    free(f->perms);
    rg_keyring_free(f->kr);
    tt_rm_rf(f->dir);
    free(f);
    return 0;
}

static const char *roles2[] = {"admin", "member"};

static rg_claims base_claims(int64_t now)
{
    rg_claims c = {0};
    c.iss = ISS;
    c.sub = "user_01HZX";
    c.sid = "sess_01HZX";
    c.jti = "jti_01HZX";
    c.org_id = "org_01HZX";
    c.email = "ada@example.test";
    c.roles = roles2;
    c.n_roles = 2;
    c.iat = now;
    c.exp = now + 3600;
    return c;
}

static void verify_token(fx *f, const char *tok, int64_t now, rg_session_claims *out)
{
    rg_error err = {0};
    assert_int_equal(rg_session_verify(f->kr, tok, now, 60, ISS, out, &err), 0);
}

static void test_R24_small_session_fits_and_verifies(void **st)
{
    fx *f = *st;
    int64_t now = rg_now();
    rg_claims c = base_claims(now);
    const char *perms[] = {"posts:read", "posts:write"};
    c.permissions = perms;
    c.n_permissions = 2;
    char *tok = NULL, *cookie = NULL;
    size_t clen = 0;
    int omitted = -1;
    rg_error err = {0};
    assert_int_equal(rg_session_issue(f->kr, &c, RG_OVERSIZE_REJECT, 0, 1, 3600, &tok,
                                      &cookie, &clen, &omitted, &err), 0);
    assert_int_equal(omitted, 0);
    assert_int_equal(clen, strlen(cookie));
    assert_true(clen <= RG_SESSION_COOKIE_BUDGET);
    char want[64];
    snprintf(want, sizeof want, "__Host-rolegate=");
    assert_int_equal(strncmp(cookie, want, strlen(want)), 0);
    assert_non_null(strstr(cookie, tok));
    assert_non_null(strstr(cookie, "; Max-Age=3600; HttpOnly; SameSite=Lax; Secure"));
    rg_session_claims v;
    verify_token(f, tok, now, &v);
    /* R24: sid, sub, org_id, role, roles, permissions, iat, exp, iss, jti */
    assert_string_equal(v.sid, "sess_01HZX");
    assert_string_equal(v.sub, "user_01HZX");
    assert_string_equal(v.org_id, "org_01HZX");
    assert_string_equal(v.role, "admin");
    assert_int_equal(v.n_roles, 2);
    assert_string_equal(v.roles[1], "member");
    assert_int_equal(v.n_permissions, 2);
    assert_string_equal(v.permissions[1], "posts:write");
    assert_int_equal(v.permissions_omitted, 0);
    assert_int_equal(v.iat, now);
    assert_int_equal(v.exp, now + 3600);
    assert_string_equal(v.jti, "jti_01HZX");
    assert_string_equal(v.email, "ada@example.test");
    rg_session_claims_clear(&v);
    free(tok);
    free(cookie);
}

static void test_R24_defaults_iat_now_and_exp_from_lifetime(void **st)
{
    fx *f = *st;
    int64_t before = rg_now();
    rg_claims c = base_claims(0);
    c.iat = 0;
    c.exp = 0;
    char *tok = NULL, *cookie = NULL;
    rg_error err = {0};
    assert_int_equal(rg_session_issue(f->kr, &c, RG_OVERSIZE_REJECT, 0, 0, 600, &tok,
                                      &cookie, NULL, NULL, &err), 0);
    assert_int_equal(strncmp(cookie, "rolegate=", 9), 0);
    assert_null(strstr(cookie, "Secure"));
    rg_session_claims v;
    verify_token(f, tok, before, &v);
    assert_true(v.iat >= before && v.iat <= before + 5);
    assert_int_equal(v.exp, v.iat + 600);
    rg_session_claims_clear(&v);
    free(tok);
    free(cookie);
}

static void test_R24_many_permissions_rejected_as_session_too_large(void **st)
{
    fx *f = *st;
    rg_claims c = base_claims(rg_now());
    c.permissions = (const char *const *)f->perms;
    c.n_permissions = f->nperms;
    char *tok = (char *)1, *cookie = (char *)1;
    size_t clen = 7;
    rg_error err = {0};
    assert_int_not_equal(rg_session_issue(f->kr, &c, RG_OVERSIZE_REJECT, 0, 1, 3600,
                                          &tok, &cookie, &clen, NULL, &err), 0);
    assert_string_equal(err.code, "session_too_large");
    assert_int_equal(err.status, 422);
    assert_null(tok);
    assert_null(cookie);
    assert_int_equal(clen, 7);   /* untouched on failure */
    /* the message names size, budget and number of permissions */
    assert_non_null(strstr(err.message, "4096"));
    assert_non_null(strstr(err.message, "300 permissions"));
    assert_non_null(strstr(err.message, "bytes"));
}

static void test_R24_omit_permissions_fits_and_marks_token(void **st)
{
    fx *f = *st;
    int64_t now = rg_now();
    rg_claims c = base_claims(now);
    c.permissions = (const char *const *)f->perms;
    c.n_permissions = f->nperms;
    char *tok = NULL, *cookie = NULL;
    size_t clen = 0;
    int omitted = 0;
    rg_error err = {0};
    assert_int_equal(rg_session_issue(f->kr, &c, RG_OVERSIZE_OMIT_PERMISSIONS, 0, 1,
                                      3600, &tok, &cookie, &clen, &omitted, &err), 0);
    assert_int_equal(omitted, 1);
    assert_true(clen <= 4096);
    assert_int_equal(clen, strlen(cookie));
    rg_session_claims v;
    verify_token(f, tok, now, &v);
    assert_int_equal(v.permissions_omitted, 1);
    assert_int_equal(v.n_permissions, 0);
    assert_non_null(strstr(v.payload, "\"permissions_omitted\":true"));
    assert_string_equal(v.role, "admin");   /* roles kept: the app maps them */
    rg_session_claims_clear(&v);
    free(tok);
    free(cookie);
    /* a session that fits is not touched by the policy */
    c.n_permissions = 3;
    assert_int_equal(rg_session_issue(f->kr, &c, RG_OVERSIZE_OMIT_PERMISSIONS, 0, 1,
                                      3600, &tok, &cookie, &clen, &omitted, &err), 0);
    assert_int_equal(omitted, 0);
    verify_token(f, tok, now, &v);
    assert_int_equal(v.n_permissions, 3);
    assert_int_equal(v.permissions_omitted, 0);
    rg_session_claims_clear(&v);
    free(tok);
    free(cookie);
}

static void test_R24_still_too_large_after_omitting_fails(void **st)
{
    fx *f = *st;
    rg_claims c = base_claims(rg_now());
    /* the permission strings used as 300 roles: too big even without perms */
    c.roles = (const char *const *)f->perms;
    c.n_roles = f->nperms;
    c.permissions = (const char *const *)f->perms;
    c.n_permissions = f->nperms;
    char *tok = NULL, *cookie = NULL;
    int omitted = 5;
    rg_error err = {0};
    assert_int_not_equal(rg_session_issue(f->kr, &c, RG_OVERSIZE_OMIT_PERMISSIONS, 0, 1,
                                          3600, &tok, &cookie, NULL, &omitted, &err), 0);
    assert_string_equal(err.code, "session_too_large");
    assert_non_null(strstr(err.message, "already omitted"));
    assert_null(tok);
    assert_null(cookie);
    assert_int_equal(omitted, 0);
}

static void test_R24_budget_is_a_parameter(void **st)
{
    fx *f = *st;
    rg_claims c = base_claims(rg_now());
    char *tok = NULL, *cookie = NULL;
    size_t clen = 0;
    rg_error err = {0};
    assert_int_equal(rg_session_issue(f->kr, &c, RG_OVERSIZE_REJECT, 0, 1, 3600, &tok,
                                      &cookie, &clen, NULL, &err), 0);
    free(tok);
    free(cookie);
    /* exactly the size fits; one byte less does not */
    assert_int_equal(rg_session_issue(f->kr, &c, RG_OVERSIZE_REJECT, clen, 1, 3600,
                                      &tok, &cookie, NULL, NULL, &err), 0);
    free(tok);
    free(cookie);
    assert_int_not_equal(rg_session_issue(f->kr, &c, RG_OVERSIZE_REJECT, clen - 1, 1,
                                          3600, &tok, &cookie, NULL, NULL, &err), 0);
    assert_string_equal(err.code, "session_too_large");
}

static void same_str(const char *a, const char *b)
{
    if (!a || !b)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

/* Both read the same token: equal field by field. */
static void same_claims(const rg_session_claims *a, const rg_session_claims *b)
{
    same_str(a->iss, b->iss);
    same_str(a->sub, b->sub);
    same_str(a->sid, b->sid);
    same_str(a->org_id, b->org_id);
    same_str(a->jti, b->jti);
    same_str(a->email, b->email);
    same_str(a->role, b->role);
    same_str(a->act_sub, b->act_sub);
    same_str(a->kid, b->kid);
    assert_int_equal(a->n_roles, b->n_roles);
    for (size_t i = 0; i < a->n_roles; i++)
        assert_string_equal(a->roles[i], b->roles[i]);
    assert_int_equal(a->n_permissions, b->n_permissions);
    for (size_t i = 0; i < a->n_permissions; i++)
        assert_string_equal(a->permissions[i], b->permissions[i]);
    assert_int_equal(a->permissions_omitted, b->permissions_omitted);
    assert_int_equal(a->iat, b->iat);
    assert_int_equal(a->exp, b->exp);
    assert_int_equal(a->auth_time, b->auth_time);
    assert_int_equal(a->payload_len, b->payload_len);
    assert_memory_equal(a->payload, b->payload, a->payload_len);
}

/* Issue 13: rg_session_issue_own's claims (built, not parsed) are what
 * rg_session_verify reads from the token it issued, with permissions and
 * with them omitted (R24), with an actor and auth_time; a refused one
 * leaves nothing. */
static void test_issue_own_claims_equal_the_verified_ones(void **st)
{
    fx *f = *st;
    int64_t now = rg_now();
    for (int omit = 0; omit < 2; omit++) {
        rg_claims c = base_claims(now);
        c.permissions = (const char *const *)f->perms;
        c.n_permissions = omit ? f->nperms : 2;
        c.act_sub = omit ? "admin" : NULL;
        c.auth_time = now - 100;
        char *tok = NULL, *cookie = NULL;
        rg_session_claims own, seen;
        rg_error err = {0};
        assert_int_equal(rg_session_issue_own(f->kr, &c, RG_OVERSIZE_OMIT_PERMISSIONS,
                                              0, 1, 3600, &tok, &cookie, &own, &err), 0);
        verify_token(f, tok, now, &seen);
        assert_int_equal(own.permissions_omitted, omit);
        same_claims(&own, &seen);
        rg_session_claims shared;
        rg_session_claims_share(&shared, &own);   /* refcounted like parsed ones */
        rg_session_claims_clear(&own);
        assert_string_equal(shared.sid, "sess_01HZX");
        rg_session_claims_clear(&shared);
        rg_session_claims_clear(&seen);
        free(tok);
        free(cookie);
    }
    rg_claims c = base_claims(now);
    c.permissions = (const char *const *)f->perms;
    c.n_permissions = f->nperms;
    char *tok = NULL, *cookie = NULL;
    rg_session_claims own;
    rg_error err = {0};
    assert_int_not_equal(rg_session_issue_own(f->kr, &c, RG_OVERSIZE_REJECT, 0, 1,
                                              3600, &tok, &cookie, &own, &err), 0);
    assert_string_equal(err.code, "session_too_large");
    assert_null(tok);
    assert_null(cookie);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_R24_small_session_fits_and_verifies),
        cmocka_unit_test(test_R24_defaults_iat_now_and_exp_from_lifetime),
        cmocka_unit_test(test_R24_many_permissions_rejected_as_session_too_large),
        cmocka_unit_test(test_R24_omit_permissions_fits_and_marks_token),
        cmocka_unit_test(test_R24_still_too_large_after_omitting_fails),
        cmocka_unit_test(test_R24_budget_is_a_parameter),
        cmocka_unit_test(test_issue_own_claims_equal_the_verified_ones),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
