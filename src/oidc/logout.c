/* logout.c: the OIDC half of single logout (issue 13). RP-Initiated Logout
 * 1.0: the end_session_endpoint URL (id_token_hint, client_id,
 * post_logout_redirect_uri, state). Back-Channel Logout 1.0: a logout_token
 * verified like an ID token (alg pinned to the OP's key, signature, iss,
 * aud, iat, exp) plus its own rules (events member, no nonce, sid or sub,
 * jti). Replay (jti) and revocation are the caller's: this layer knows no
 * cache and no session. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "oidc_internal.h"

#define BCL_EVENT "http://schemas.openid.net/event/backchannel-logout"

int rg_oidc_end_session_url(rg_oidc_client *c, const char *id_token_hint,
                            const char *post_logout_redirect_uri, const char *state,
                            char **url, rg_error *err)
{
    assert(c && url);
    *url = NULL;
    disc *d = NULL;
    if (oidc_disc_get(c, &d, err) != RG_OK)
        return RG_ERR;
    if (!d->end_session) {
        oidc_disc_free(d);
        return rg_error_set(err, RG_ENOTFOUND, "oidc_logout_unsupported",
                            "end_session_endpoint", "the OP advertises no end_session_endpoint");
    }
    rg_buf b = {0};
    rg_buf_puts(&b, d->end_session);
    rg_buf_puts(&b, strchr(d->end_session, '?') ? "&" : "?");
    rg_buf_puts(&b, "client_id=");
    oidc_buf_enc(&b, c->client_id);
    if (id_token_hint && *id_token_hint) {
        rg_buf_puts(&b, "&id_token_hint=");
        oidc_buf_enc(&b, id_token_hint);
    }
    if (post_logout_redirect_uri && *post_logout_redirect_uri) {
        rg_buf_puts(&b, "&post_logout_redirect_uri=");
        oidc_buf_enc(&b, post_logout_redirect_uri);
    }
    if (state && *state) {
        rg_buf_puts(&b, "&state=");
        oidc_buf_enc(&b, state);
    }
    oidc_disc_free(d);
    if (!(*url = rg_buf_take(&b)))
        return rg_error_oom(err);
    return RG_OK;
}

void rg_oidc_logout_claims_clear(rg_oidc_logout_claims *lc)
{
    if (!lc)
        return;
    free(lc->sub);
    free(lc->sid);
    free(lc->jti);
    memset(lc, 0, sizeof *lc);
}

static int bad(rg_error *err, const char *code, const char *field, const char *why)
{
    return rg_error_set(err, RG_EINVAL, code, field, "%s", why);
}

/* An optional string claim: 0 and *out (NULL when absent), or RG_ERR. */
static int opt_claim(json_t *cl, const char *name, char **out, rg_error *err)
{
    json_t *v = json_object_get(cl, name);
    *out = NULL;
    if (!v)
        return RG_OK;
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > MAX_SUB_LEN)
        return rg_error_set(err, RG_EINVAL, "oidc_logout_token_malformed", name,
                            "logout token %s is not a string of 1 to %d bytes", name,
                            MAX_SUB_LEN);
    return (*out = strdup(json_string_value(v))) ? RG_OK
                                                 : bad(err, "oidc_logout_token_malformed", NULL,
                                                       "out of memory");
}

/* Section 2.4/2.6 after the signature. */
static int check_logout_claims(const rg_oidc_client *c, json_t *cl, int64_t now, int max_age_s,
                               rg_oidc_logout_claims *out, rg_error *err)
{
    const char *iss = json_string_value(json_object_get(cl, "iss"));
    if (!iss || strcmp(iss, c->issuer) != 0)
        return bad(err, "oidc_wrong_issuer", "iss", "logout token iss is not the connection's issuer");
    size_t n_aud = 0;
    if (!oidc_aud_has(json_object_get(cl, "aud"), c->client_id, &n_aud))
        return bad(err, "oidc_wrong_audience", "aud", "logout token aud does not contain this client_id");
    json_t *iat = json_object_get(cl, "iat"), *exp = json_object_get(cl, "exp");
    if (!json_is_number(iat) || (exp && !json_is_number(exp)))
        return bad(err, "oidc_logout_token_malformed", "iat", "logout token iat missing or exp not a number");
    long long ia = oidc_num_secs(iat), e = exp ? oidc_num_secs(exp) : ia + max_age_s;
    if (ia > now + c->skew_s)
        return bad(err, "oidc_iat_future", "iat", "logout token issued in the future");
    if (ia < now - max_age_s - c->skew_s)
        return bad(err, "oidc_logout_token_stale", "iat", "logout token is older than allowed");
    if (e <= now - c->skew_s)
        return bad(err, "oidc_expired", "exp", "logout token expired");
    /* 2.4: events holds the back-channel member, itself a JSON object */
    json_t *ev = json_object_get(cl, "events");
    if (!json_is_object(ev) || !json_is_object(json_object_get(ev, BCL_EVENT)))
        return bad(err, "oidc_logout_token_events", "events",
                   "logout token events lacks the back-channel logout member");
    /* 2.4: a nonce would make it confusable with an ID token */
    if (json_object_get(cl, "nonce"))
        return bad(err, "oidc_logout_token_nonce", "nonce", "logout token has a nonce");
    if (opt_claim(cl, "sub", &out->sub, err) || opt_claim(cl, "sid", &out->sid, err) ||
        opt_claim(cl, "jti", &out->jti, err))
        return RG_ERR;
    if (!out->sub && !out->sid)
        return bad(err, "oidc_logout_token_no_subject", "sid", "logout token has neither sid nor sub");
    if (!out->jti)
        return bad(err, "oidc_logout_token_no_jti", "jti", "logout token has no jti");
    out->exp = e + c->skew_s;
    return RG_OK;
}

int rg_oidc_logout_token_verify(rg_oidc_client *c, const char *token, int64_t now,
                                int max_age_s, rg_oidc_logout_claims *out, rg_error *err)
{
    assert(c && out);
    memset(out, 0, sizeof *out);
    if (!token || !*token)
        return bad(err, "oidc_logout_token_malformed", "logout_token", "logout_token is missing");
    rg_oidc_jws *jws = NULL;
    disc *d = NULL;
    json_t *claims = NULL;
    int rc = rg_oidc_jws_parse(token, &jws, err);
    if (rc == RG_OK)
        rc = rg_oidc_jws_check_alg(jws, c->alg_mask, err);
    if (rc == RG_OK && (rc = oidc_disc_get(c, &d, err)) == RG_OK)
        rc = oidc_verify_sig(c, d, jws, err);
    if (rc == RG_OK) {
        size_t pl = 0;
        const char *payload = rg_oidc_jws_payload(jws, &pl);
        claims = json_loadb(payload, pl, JSON_REJECT_DUPLICATES, NULL);
        rc = json_is_object(claims)
                 ? check_logout_claims(c, claims, now, max_age_s > 0 ? max_age_s : 300, out, err)
                 : bad(err, "oidc_logout_token_malformed", "logout_token",
                       "logout token payload is not a JSON object");
    }
    if (rc != RG_OK) {
        rg_oidc_logout_claims_clear(out);
        if (err && err->status != 502 && err->status != 503) {
            rc = rg_error_recast(err, RG_EINVAL);   /* section 2.8: a refused token is a 400 */
            if (strcmp(err->code, "oidc_id_token_malformed") == 0)
                snprintf(err->code, sizeof err->code, "oidc_logout_token_malformed");
        }
    }
    json_decref(claims);
    rg_oidc_jws_free(jws);
    oidc_disc_free(d);
    return rc == RG_OK ? RG_OK : RG_ERR;
}
