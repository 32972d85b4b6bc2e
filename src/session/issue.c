/* issue.c: issuing a session (R24, R25): the claims snapshot as JSON
 * (rg_core_claims_json) → signed JWT → Set-Cookie value → the 4096-byte
 * budget, with the documented session.oversize policy (reject, or re-issue
 * without the permissions list) instead of a silently truncated cookie;
 * and (issue 13's refresh) the claims of the token issued, unparsed. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/session.h"
#include "rolegate/util.h"

/* Signs c and builds the cookie. *json (if json is not NULL): the signed
 * payload, kept for the caller. Returns 0 or negative with err set. */
static int sign_and_bake(const rg_keyring *kr, const rg_claims *c, int secure,
                         int64_t lifetime, char **token, char **cookie, size_t *clen,
                         char **json_out, size_t *jl_out, rg_error *err)
{
    char *json = NULL;
    size_t jl = 0;
    if (rg_core_claims_json(c, &json, &jl))
        return rg_error_oom(err);
    int rc = rg_session_sign(kr, json, jl, token, err);
    if (rc) {
        free(json);
        return rc;
    }
    long n = rg_session_cookie_build(NULL, *token, lifetime, secure, cookie);
    if (n < 0) {
        free(json);
        free(*token);
        *token = NULL;
        return rg_error_set(err, RG_EINTERNAL, "internal", NULL, "cannot build the cookie");
    }
    *clen = (size_t)n;
    if (json_out) {
        *json_out = json;
        *jl_out = jl;
    } else {
        free(json);
    }
    return 0;
}

static void drop(char **token, char **set_cookie, char **json)
{
    free(*token);
    free(*set_cookie);
    free(*json);
    *token = *set_cookie = *json = NULL;
}

/* rg_session_issue; with own, *own: the claims of the token issued. */
static int issue(const rg_keyring *kr, const rg_claims *claims, rg_oversize_policy policy,
                 size_t budget, int secure, int64_t lifetime, char **token, char **set_cookie,
                 size_t *cookie_len, int *omitted, rg_session_claims *own, rg_error *err)
{
    assert(kr && claims && token && set_cookie);
    *token = NULL;
    *set_cookie = NULL;
    if (omitted)
        *omitted = 0;
    if (budget == 0)
        budget = RG_SESSION_COOKIE_BUDGET;
    if (lifetime <= 0)
        return rg_error_set(err, RG_EINTERNAL, "internal", NULL, "session lifetime must be > 0");
    rg_claims c = *claims;
    if (c.iat == 0)
        c.iat = rg_now();
    if (c.exp == 0)
        c.exp = c.iat + lifetime;
    size_t clen = 0, jl = 0;
    char *json = NULL, **keep = own ? &json : NULL;
    int rc = sign_and_bake(kr, &c, secure, lifetime, token, set_cookie, &clen, keep, &jl, err);
    if (rc)
        return rc;
    if (clen > budget && policy == RG_OVERSIZE_OMIT_PERMISSIONS && !c.omit_permissions) {
        /* R24 omit_permissions: the app looks permissions up from roles */
        drop(token, set_cookie, &json);
        c.omit_permissions = 1;
        rc = sign_and_bake(kr, &c, secure, lifetime, token, set_cookie, &clen, keep, &jl, err);
        if (rc)
            return rc;
        if (omitted)
            *omitted = 1;
    }
    if (clen > budget) {
        /* R24: never a truncated cookie; the login fails with the numbers */
        drop(token, set_cookie, &json);
        if (omitted)
            *omitted = 0;
        rg_log(RG_LOG_WARN, "event=session_too_large bytes=%zu budget=%zu permissions=%zu "
               "roles=%zu omitted=%d", clen, budget, claims->n_permissions, claims->n_roles,
               c.omit_permissions);
        /* 422: the data (roles, permissions) breaks R24's budget, not a
         * server fault; the message has the numbers */
        return rg_error_set(err, RG_EUNPROCESSABLE, "session_too_large", NULL,
                            "session cookie would be %zu bytes, over the %zu-byte budget "
                            "(%zu permissions, %zu roles%s)", clen, budget,
                            claims->n_permissions, claims->n_roles,
                            c.omit_permissions ? ", permissions already omitted" : "");
    }
    if (own && rg_session_claims_of_issued(&c, rg_session_key_kid(rg_keyring_active(kr)), json,
                                           jl, own, err) != 0) {
        free(*token);
        free(*set_cookie);
        *token = *set_cookie = NULL;
        return RG_ENOMEM;   /* json freed by rg_session_claims_of_issued */
    }
    if (cookie_len)
        *cookie_len = clen;
    return 0;
}

int rg_session_issue(const rg_keyring *kr, const rg_claims *claims,
                     rg_oversize_policy policy, size_t budget, int secure,
                     int64_t lifetime, char **token, char **set_cookie,
                     size_t *cookie_len, int *omitted, rg_error *err)
{
    return issue(kr, claims, policy, budget, secure, lifetime, token, set_cookie, cookie_len,
                 omitted, NULL, err);
}

int rg_session_issue_own(const rg_keyring *kr, const rg_claims *claims,
                         rg_oversize_policy policy, size_t budget, int secure,
                         int64_t lifetime, char **token, char **set_cookie,
                         rg_session_claims *own, rg_error *err)
{
    assert(own);
    return issue(kr, claims, policy, budget, secure, lifetime, token, set_cookie, NULL, NULL,
                 own, err);
}
