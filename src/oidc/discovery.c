/* discovery.c: the OIDC client's caches: the discovery document (TTL, the
 * issuer compared exactly, every endpoint URL checked; a stale copy kept
 * when the IdP is unreachable, never when it names another issuer) and the
 * JWKS (expires with the discovery TTL; an unknown kid refetches at most
 * once per jwks_min_refresh: key rotation without a restart). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "oidc_internal.h"

void oidc_disc_free(disc *d)
{
    if (!d || atomic_fetch_sub(&d->refs, 1) != 1)
        return;
    free(d->authz);
    free(d->token);
    free(d->jwks_uri);
    free(d->userinfo);
    free(d->end_session);
    free(d);
}

static int disc_fetch(rg_oidc_client *c, disc **out, rg_error *err)
{
    rg_buf url = {0};
    size_t il = strlen(c->issuer);
    rg_buf_append(&url, c->issuer, il && c->issuer[il - 1] == '/' ? il - 1 : il);
    rg_buf_puts(&url, "/.well-known/openid-configuration");
    if (url.oom)
        return rg_error_oom(err);
    http_res r;
    int rc = oidc_http_do(c, "oidc_discovery_failed", "discovery", url.data, NULL, NULL, &r, err);
    rg_buf_free(&url);
    pthread_mutex_lock(&c->lock);
    c->stats.discovery_fetches++;
    pthread_mutex_unlock(&c->lock);
    if (rc != RG_OK)
        return rc;
    json_t *doc = r.status == 200 ? oidc_json_of(&r) : NULL;
    rg_buf_free(&r.body);
    const char *iss = json_string_value(json_object_get(doc, "issuer"));
    const char *authz = json_string_value(json_object_get(doc, "authorization_endpoint"));
    const char *token = json_string_value(json_object_get(doc, "token_endpoint"));
    const char *jwks = json_string_value(json_object_get(doc, "jwks_uri"));
    const char *ui = json_string_value(json_object_get(doc, "userinfo_endpoint"));
    const char *es = json_string_value(json_object_get(doc, "end_session_endpoint"));
    char q[120];
    if (!json_is_object(doc))
        rc = rg_error_set(err, RG_EUPSTREAM, "oidc_discovery_failed", "discovery",
                          "discovery answered %ld, not a JSON object", r.status);
    else if (!iss || strcmp(iss, c->issuer) != 0) /* exact: no slash or case folding */
        rc = rg_error_set(err, RG_EUPSTREAM, "oidc_issuer_mismatch", "issuer",
                          "discovery names issuer %s, not the configured one",
                          rg_log_quote(q, sizeof q, iss ? iss : "(none)"));
    else if (!authz || !token || !jwks)
        rc = rg_error_set(err, RG_EUPSTREAM, "oidc_discovery_failed", "discovery",
                          "discovery lacks authorization_endpoint, token_endpoint or jwks_uri");
    else if (oidc_url_check(c, "authorization_endpoint", authz, err) || oidc_url_check(c, "token_endpoint", token, err) ||
             oidc_url_check(c, "jwks_uri", jwks, err) || (ui && oidc_url_check(c, "userinfo_endpoint", ui, err)) ||
             (es && oidc_url_check(c, "end_session_endpoint", es, err)))
        rc = RG_ERR;
    if (rc != RG_OK) {
        json_decref(doc);
        return rc;
    }
    /* client_secret_basic unless the IdP lists only client_secret_post */
    json_t *methods = json_object_get(doc, "token_endpoint_auth_methods_supported");
    int basic = !json_is_array(methods), post = 0;
    size_t i;
    json_t *m;
    json_array_foreach(methods, i, m) {
        const char *s = json_string_value(m);
        basic |= s && strcmp(s, "client_secret_basic") == 0;
        post |= s && strcmp(s, "client_secret_post") == 0;
    }
    if (!basic && !post && c->client_secret)
        rg_log(RG_LOG_WARN, "event=oidc_discovery_warning issuer=%s reason=\"no client_secret "
               "auth method listed; using client_secret_basic\"", rg_log_quote(q, sizeof q, c->issuer));
    disc *d = calloc(1, sizeof *d);
    if (d) {
        atomic_init(&d->refs, 1);
        d->authz = strdup(authz);
        d->token = strdup(token);
        d->jwks_uri = strdup(jwks);
        d->userinfo = ui ? strdup(ui) : NULL;
        d->end_session = es ? strdup(es) : NULL;
        d->auth_post = !basic && post;
        d->fetched_us = rg_mono_us();
    }
    json_decref(doc);
    if (!d || !d->authz || !d->token || !d->jwks_uri || (ui && !d->userinfo) || (es && !d->end_session)) {
        oidc_disc_free(d);
        return rg_error_oom(err);
    }
    *out = d;
    return RG_OK;
}

/* Hands out a reference to a fresh discovery snapshot (disc_free it). A
 * stale one is kept when a refresh fails to reach the IdP, but never when
 * the IdP answers with a wrong issuer. */
int oidc_disc_get(rg_oidc_client *c, disc **out, rg_error *err)
{
    *out = NULL;
    pthread_mutex_lock(&c->lock);
    if (c->disc && rg_mono_us() - c->disc->fetched_us < c->disc_ttl_us) {
        atomic_fetch_add(&c->disc->refs, 1);
        *out = c->disc;
    }
    pthread_mutex_unlock(&c->lock);
    if (*out)
        return RG_OK;
    pthread_mutex_lock(&c->fetch_lock);
    pthread_mutex_lock(&c->lock);
    if (c->disc && rg_mono_us() - c->disc->fetched_us < c->disc_ttl_us) {
        atomic_fetch_add(&c->disc->refs, 1);
        *out = c->disc;   /* another thread refreshed it while we waited */
    }
    pthread_mutex_unlock(&c->lock);
    int rc = RG_OK;
    if (!*out) {
        disc *d = NULL;
        rc = disc_fetch(c, &d, err);
        pthread_mutex_lock(&c->lock);
        if (rc == RG_OK) {
            oidc_disc_free(c->disc);
            c->disc = d;
        } else if (c->disc && rc == RG_EUNREACHABLE) {   /* not a wrong answer */
            char q[120];
            rg_log(RG_LOG_WARN, "event=oidc_discovery_stale issuer=%s reason=%s",
                   rg_log_quote(q, sizeof q, c->issuer), err ? err->code : "-");
            rc = RG_OK;
        }
        if (rc == RG_OK) {
            atomic_fetch_add(&c->disc->refs, 1);
            *out = c->disc;
        }
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_unlock(&c->fetch_lock);
    return rc;
}

/* ---- JWKS ------------------------------------------------------------------ */

static int jwks_fetch(rg_oidc_client *c, const char *uri, rg_oidc_keyset **out, rg_error *err)
{
    http_res r;
    int rc = oidc_http_do(c, "oidc_discovery_failed", "jwks_uri", uri, NULL, NULL, &r, err);
    pthread_mutex_lock(&c->lock);
    c->stats.jwks_fetches++;
    c->jwks_attempt_us = rg_mono_us();
    pthread_mutex_unlock(&c->lock);
    if (rc != RG_OK)
        return rc;
    if (r.status != 200) {
        rg_buf_free(&r.body);
        return rg_error_set(err, RG_EUNREACHABLE, "oidc_discovery_failed", "jwks_uri",
                            "jwks_uri answered %ld", r.status);
    }
    *out = rg_oidc_keyset_parse(r.body.data, r.body.len, err);
    rg_buf_free(&r.body);
    return *out ? RG_OK : RG_ERR;
}

/* Hands out a reference to the keyset for uri (rg_oidc_keyset_free it).
 * seen_gen: 0 for a normal lookup; the generation the caller got with a
 * keyset that lacked a kid, to ask for a refetch (R: at most one per
 * jwks_min_refresh, and none if another thread already refetched). */
int oidc_jwks_get(rg_oidc_client *c, const char *uri, unsigned long seen_gen,
                    rg_oidc_keyset **out, unsigned long *gen_out, rg_error *err)
{
    *out = NULL;
    pthread_mutex_lock(&c->fetch_lock);
    pthread_mutex_lock(&c->lock);
    int64_t now = rg_mono_us();
    int have = c->jwks && c->jwks_from && strcmp(c->jwks_from, uri) == 0;
    /* keys expire with the discovery TTL so a key the IdP withdrew stops working */
    int fresh = have && now - c->jwks_fetched_us < c->disc_ttl_us;
    int want_kid = seen_gen && have && c->jwks_gen == seen_gen &&
                   now - c->jwks_attempt_us >= c->jwks_min_refresh_us;
    int need = !have || !fresh || want_kid;
    pthread_mutex_unlock(&c->lock);
    int rc = RG_OK;
    if (need) {
        rg_oidc_keyset *ks = NULL;
        rc = jwks_fetch(c, uri, &ks, err);
        pthread_mutex_lock(&c->lock);
        if (rc == RG_OK) {
            char *from = strdup(uri);
            if (from) {
                rg_oidc_keyset_free(c->jwks);
                free(c->jwks_from);
                c->jwks = ks;
                c->jwks_from = from;
                c->jwks_fetched_us = rg_mono_us();
                c->jwks_gen++;
            } else {
                rg_oidc_keyset_free(ks);
                rc = rg_error_oom(err);
            }
        } else if (have) {
            char q[120];
            rg_log(RG_LOG_WARN, "event=oidc_jwks_stale issuer=%s reason=%s",
                   rg_log_quote(q, sizeof q, c->issuer), err ? err->code : "-");
            rc = RG_OK;
        }
        pthread_mutex_unlock(&c->lock);
    }
    if (rc == RG_OK) {
        pthread_mutex_lock(&c->lock);
        *out = rg_oidc_keyset_ref(c->jwks);
        *gen_out = c->jwks_gen;
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_unlock(&c->fetch_lock);
    return rc;
}

int oidc_verify_sig(rg_oidc_client *c, const disc *d, const rg_oidc_jws *jws, rg_error *err)
{
    rg_oidc_keyset *ks = NULL;
    unsigned long gen = 0;
    if (oidc_jwks_get(c, d->jwks_uri, 0, &ks, &gen, err) != RG_OK)
        return RG_ERR;
    /* a local rg_error: the code tells an unknown kid from the other 401s
     * even when the caller passes no err */
    rg_error e;
    rg_error_clear(&e);
    int rc = rg_oidc_jws_verify(jws, ks, c->alg_mask, c->client_secret, &e);
    if (rc == RG_EUNAUTH && strcmp(e.code, "oidc_unknown_kid") == 0) {
        /* unknown kid: the IdP may have rotated; refetch (rate-limited) */
        rg_oidc_keyset_free(ks);
        ks = NULL;
        if (oidc_jwks_get(c, d->jwks_uri, gen, &ks, &gen, err) != RG_OK)
            return RG_ERR;
        rg_error_clear(&e);
        rc = rg_oidc_jws_verify(jws, ks, c->alg_mask, c->client_secret, &e);
    }
    if (rc != RG_OK && err)
        *err = e;
    rg_oidc_keyset_free(ks);
    return rc == RG_OK ? RG_OK : RG_ERR;
}
