/* client.c: one OIDC connection as a relying party: the client's config,
 * the authorize URL with state, nonce and PKCE S256, the callback checks,
 * the code exchange and the ID-token verification (signature through
 * jose.c, claims through claims.c) with userinfo for groups when asked.
 * Fetching (fetch.c) and the discovery/JWKS caches (discovery.c) are their
 * own files; R16 is in claims.c. */
#include <assert.h>
#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "rolegate/oidc.h"
#include "rolegate/util.h"
#include "oidc_internal.h"

static _Thread_local rg_oidc_timing last_timing;

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_rc;
static void global_init_once(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? RG_OK : RG_ERR;
}

int rg_oidc_global_init(void)
{
    pthread_once(&global_once, global_init_once);
    return global_rc;
}

/* ---- small helpers ------------------------------------------------------ */

static char *dup_or(const char *s, const char *dflt)
{
    return strdup(s && *s ? s : dflt);
}

static int64_t num_or(long v, long dflt)
{
    return v == 0 ? dflt : v < 0 ? 0 : v;
}

/* ---- client ------------------------------------------------------------- */

rg_oidc_client *rg_oidc_client_new(const rg_oidc_config *cfg, rg_error *err)
{
    if (!cfg || !cfg->issuer || !*cfg->issuer || !cfg->client_id || !*cfg->client_id ||
        !cfg->redirect_uri || !*cfg->redirect_uri) {
        rg_error_set(err, RG_EINTERNAL, "oidc_config_invalid", NULL,
                     "issuer, client_id and redirect_uri are required");
        return NULL;
    }
    if (cfg->scopes && !strstr(cfg->scopes, "openid")) {
        rg_error_set(err, RG_EINTERNAL, "oidc_config_invalid", "scopes",
                     "scopes must contain openid");
        return NULL;
    }
    rg_oidc_global_init();
    rg_oidc_client *c = calloc(1, sizeof *c);
    if (!c) {
        rg_error_oom(err);
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->fetch_lock, NULL);
    c->allow_http_loopback = cfg->allow_http_loopback;
    c->use_userinfo = cfg->use_userinfo_for_groups;
    c->timeout_ms = (long)num_or(cfg->http_timeout_ms, 5000);
    c->max_doc = cfg->max_doc_bytes ? cfg->max_doc_bytes : 1024 * 1024;
    c->disc_ttl_us = num_or(cfg->discovery_ttl_s, 3600) * 1000000;
    c->jwks_min_refresh_us = num_or(cfg->jwks_min_refresh_s, 60) * 1000000;
    c->skew_s = (int)num_or(cfg->clock_skew_s, 60);
    c->pending_max_age_s = (int)num_or(cfg->pending_max_age_s, 600);
    c->issuer = strdup(cfg->issuer);
    c->client_id = strdup(cfg->client_id);
    c->client_secret = cfg->client_secret && *cfg->client_secret ? strdup(cfg->client_secret) : NULL;
    c->redirect_uri = strdup(cfg->redirect_uri);
    c->scopes = dup_or(cfg->scopes, "openid email profile");
    c->groups_claim = dup_or(cfg->groups_claim, "groups");
    c->email_claim = dup_or(cfg->email_claim, "email");
    c->name_claim = dup_or(cfg->name_claim, "name");
    c->ca_file = cfg->ca_file && *cfg->ca_file ? strdup(cfg->ca_file) : NULL;
    if (!c->issuer || !c->client_id || !c->redirect_uri || !c->scopes || !c->groups_claim ||
        !c->email_claim || !c->name_claim || (cfg->client_secret && *cfg->client_secret && !c->client_secret) ||
        (cfg->ca_file && *cfg->ca_file && !c->ca_file)) {
        rg_error_oom(err);
        rg_oidc_client_free(c);
        return NULL;
    }
    if (rg_oidc_algs_parse(cfg->allowed_algs, &c->alg_mask, err) != RG_OK ||
        oidc_url_check(c, "issuer", c->issuer, err) != RG_OK) {
        if (err && strcmp(err->code, "oidc_discovery_failed") == 0)
            snprintf(err->code, sizeof err->code, "oidc_config_invalid");
        rg_error_recast(err, RG_EINTERNAL);   /* a configuration error */
        rg_oidc_client_free(c);
        return NULL;
    }
    if (strpbrk(c->issuer, "?#")) { /* OIDC Discovery 4: no query, no fragment */
        rg_error_set(err, RG_EINTERNAL, "oidc_config_invalid", "issuer",
                     "issuer must not have a query or fragment");
        rg_oidc_client_free(c);
        return NULL;
    }
    /* HS* is keyed with the client secret: without one it can never verify */
    unsigned hs = 0;
    rg_oidc_algs_parse("HS256 HS384 HS512", &hs, NULL);
    if ((c->alg_mask & hs) && !c->client_secret) {
        rg_error_set(err, RG_EINTERNAL, "oidc_config_invalid", "allowed_algs",
                     "HS* algorithms need a client_secret");
        rg_oidc_client_free(c);
        return NULL;
    }
    return c;
}

void rg_oidc_client_free(rg_oidc_client *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->pool_n; i++)
        curl_easy_cleanup(c->pool[i]);
    oidc_disc_free(c->disc);
    rg_oidc_keyset_free(c->jwks);
    free(c->jwks_from);
    if (c->client_secret) {
        OPENSSL_cleanse(c->client_secret, strlen(c->client_secret));
        free(c->client_secret);
    }
    free(c->issuer);
    free(c->client_id);
    free(c->redirect_uri);
    free(c->scopes);
    free(c->groups_claim);
    free(c->email_claim);
    free(c->name_claim);
    free(c->ca_file);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->fetch_lock);
    free(c);
}

const char *rg_oidc_client_issuer(const rg_oidc_client *c)
{
    return c->issuer;
}

void rg_oidc_client_stats(rg_oidc_client *c, rg_oidc_stats *out)
{
    pthread_mutex_lock(&c->lock);
    *out = c->stats;
    pthread_mutex_unlock(&c->lock);
}

void rg_oidc_last_timing(rg_oidc_timing *out)
{
    *out = last_timing;
}

/* ---- begin ----------------------------------------------------------------- */

static void pkce_challenge(const char *verifier, char out[64])
{
    unsigned char md[32];
    unsigned int ml = 0;
    EVP_Digest(verifier, strlen(verifier), md, &ml, EVP_sha256(), NULL);
    assert(ml == 32);
    rg_b64url_encode(md, 32, out);
}

int rg_oidc_begin(rg_oidc_client *c, char **authorize_url, rg_oidc_pending *p, rg_error *err)
{
    assert(c && authorize_url && p);
    *authorize_url = NULL;
    memset(p, 0, sizeof *p);
    disc *d = NULL;
    if (oidc_disc_get(c, &d, err) != RG_OK)
        return RG_ERR;
    /* 256 bits each: state and nonce far above the 128-bit floor; the PKCE
     * verifier is 43 chars, the RFC 7636 minimum length at full entropy */
    rg_random_token(p->state, sizeof p->state, 32);
    rg_random_token(p->nonce, sizeof p->nonce, 32);
    rg_random_token(p->code_verifier, sizeof p->code_verifier, 32);
    p->created_at = rg_now();
    char challenge[64];
    pkce_challenge(p->code_verifier, challenge);
    rg_buf b = {0};
    rg_buf_puts(&b, d->authz);
    rg_buf_puts(&b, strchr(d->authz, '?') ? "&" : "?");
    rg_buf_puts(&b, "response_type=code&client_id=");
    oidc_buf_enc(&b, c->client_id);
    rg_buf_puts(&b, "&redirect_uri=");
    oidc_buf_enc(&b, c->redirect_uri);
    rg_buf_puts(&b, "&scope=");
    oidc_buf_enc(&b, c->scopes);
    rg_buf_puts(&b, "&state=");
    oidc_buf_enc(&b, p->state);
    rg_buf_puts(&b, "&nonce=");
    oidc_buf_enc(&b, p->nonce);
    rg_buf_puts(&b, "&code_challenge=");
    oidc_buf_enc(&b, challenge);
    rg_buf_puts(&b, "&code_challenge_method=S256");
    oidc_disc_free(d);
    *authorize_url = rg_buf_take(&b);
    if (!*authorize_url) {
        memset(p, 0, sizeof *p);
        return rg_error_oom(err);
    }
    return RG_OK;
}

int rg_oidc_callback_check(const rg_oidc_client *c, const rg_oidc_pending *p,
                           const char *state, const char *iss, rg_error *err)
{
    if (!state || !p->state[0] || !rg_ct_equal(state, strlen(state), p->state, strlen(p->state)))
        return rg_error_set(err, RG_EINVAL, "oidc_state_mismatch", "state",
                            "callback state does not match the pending login");
    /* RFC 9207: an iss parameter, when present, names the IdP that answered */
    if (iss && strcmp(iss, c->issuer) != 0)
        return rg_error_set(err, RG_EINVAL, "oidc_wrong_issuer", "iss",
                            "callback iss does not name this connection's issuer");
    return RG_OK;
}

int rg_oidc_idp_error(const char *error, const char *error_description, rg_error *err)
{
    (void)error_description; /* free text from the IdP: never echoed or logged */
    char code[41];
    size_t n = 0;
    for (const char *s = error ? error : ""; *s && n < sizeof code - 1; s++)
        if (isalnum((unsigned char)*s) || *s == '_' || *s == '-' || *s == '.')
            code[n++] = *s;
    code[n] = 0;
    return rg_error_set(err, RG_EUNAUTH, "oidc_idp_error", "error",
                        "the IdP refused the login: %s", n ? code : "unknown_error");
}

/* ---- finish ---------------------------------------------------------------- */

static int token_exchange(rg_oidc_client *c, const disc *d, const rg_oidc_pending *p,
                          const char *code, json_t **resp, rg_error *err)
{
    rg_buf form = {0}, auth = {0};
    rg_buf_puts(&form, "grant_type=authorization_code&code=");
    oidc_buf_enc(&form, code);
    rg_buf_puts(&form, "&redirect_uri=");
    oidc_buf_enc(&form, c->redirect_uri);
    rg_buf_puts(&form, "&code_verifier=");
    oidc_buf_enc(&form, p->code_verifier);
    struct curl_slist *hdr = NULL;
    if (!c->client_secret || d->auth_post) {
        rg_buf_puts(&form, "&client_id=");
        oidc_buf_enc(&form, c->client_id);
        if (c->client_secret) {
            rg_buf_puts(&form, "&client_secret=");
            oidc_buf_enc(&form, c->client_secret);
        }
    } else {
        /* RFC 6749 2.3.1: id and secret are form-encoded before base64 */
        rg_buf cred = {0};
        oidc_buf_enc(&cred, c->client_id);
        rg_buf_puts(&cred, ":");
        oidc_buf_enc(&cred, c->client_secret);
        char *b64 = cred.oom ? NULL : malloc(cred.len * 4 / 3 + 8);
        if (b64) {
            rg_b64_encode(cred.data, cred.len, b64);
            rg_buf_printf(&auth, "Authorization: Basic %s", b64);
            OPENSSL_cleanse(b64, strlen(b64));
            free(b64);
        }
        if (cred.data)
            OPENSSL_cleanse(cred.data, cred.len);
        rg_buf_free(&cred);
        hdr = auth.data && !auth.oom ? curl_slist_append(NULL, auth.data) : NULL;
        if (!hdr)
            form.oom = 1;
    }
    int rc;
    http_res r = {0};
    if (form.oom)
        rc = rg_error_oom(err);
    else
        rc = oidc_http_do(c, "oidc_token_exchange_failed", "token_endpoint", d->token, form.data, hdr, &r, err);
    pthread_mutex_lock(&c->lock);
    c->stats.token_requests++;
    pthread_mutex_unlock(&c->lock);
    if (form.data)
        OPENSSL_cleanse(form.data, form.len);
    if (auth.data)
        OPENSSL_cleanse(auth.data, auth.len);
    for (struct curl_slist *e = hdr; e; e = e->next)
        OPENSSL_cleanse(e->data, strlen(e->data));
    curl_slist_free_all(hdr);
    rg_buf_free(&form);
    rg_buf_free(&auth);
    if (rc != RG_OK)
        return RG_ERR;
    json_t *doc = oidc_json_of(&r);
    if (r.body.data)
        OPENSSL_cleanse(r.body.data, r.body.len);
    rg_buf_free(&r.body);
    if (r.status != 200 || !json_is_object(doc)) {
        /* e.g. invalid_grant for a reused or expired code; only the error
         * code (sanitized) is kept, never the description or the body */
        char ecode[41] = "";
        const char *e = json_string_value(json_object_get(doc, "error"));
        size_t n = 0;
        for (; e && *e && n < sizeof ecode - 1; e++)
            if (isalnum((unsigned char)*e) || *e == '_' || *e == '-' || *e == '.')
                ecode[n++] = *e;
        ecode[n] = 0;
        json_decref(doc);
        return rg_error_set(err, r.status >= 400 && r.status < 500 ? RG_EUNAUTH : RG_EUPSTREAM,
                            "oidc_token_exchange_failed", "code",
                            "token endpoint answered %ld error=%s", r.status, n ? ecode : "-");
    }
    *resp = doc;
    return RG_OK;
}

static int userinfo(rg_oidc_client *c, const disc *d, const char *access_token,
                    json_t **out, rg_error *err)
{
    if (!d->userinfo || !access_token)
        return rg_error_set(err, RG_EUPSTREAM, "oidc_userinfo_failed", "userinfo", "%s",
                            d->userinfo ? "no access_token to call userinfo with"
                                        : "the IdP has no userinfo_endpoint");
    rg_buf auth = {0};
    rg_buf_printf(&auth, "Authorization: Bearer %s", access_token);
    struct curl_slist *hdr = auth.oom ? NULL : curl_slist_append(NULL, auth.data);
    http_res r = {0};
    int rc = hdr ? oidc_http_do(c, "oidc_userinfo_failed", "userinfo", d->userinfo, NULL, hdr, &r, err)
                 : rg_error_oom(err);
    pthread_mutex_lock(&c->lock);
    c->stats.userinfo_requests++;
    pthread_mutex_unlock(&c->lock);
    for (struct curl_slist *e = hdr; e; e = e->next)
        OPENSSL_cleanse(e->data, strlen(e->data));
    curl_slist_free_all(hdr);
    if (auth.data)
        OPENSSL_cleanse(auth.data, auth.len);
    rg_buf_free(&auth);
    if (rc != RG_OK)
        return RG_ERR;
    json_t *doc = r.status == 200 && strncmp(r.ctype, "application/json", 16) == 0 ? oidc_json_of(&r) : NULL;
    rg_buf_free(&r.body);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return rg_error_set(err, RG_EUPSTREAM, "oidc_userinfo_failed", "userinfo",
                            "userinfo answered %ld %s, not a JSON object (signed userinfo is "
                            "not supported)", r.status, r.ctype[0] ? r.ctype : "-");
    }
    *out = doc;
    return RG_OK;
}

int rg_oidc_finish(rg_oidc_client *c, const rg_oidc_pending *p, const char *code,
                   int64_t now, rg_oidc_identity *out, rg_error *err)
{
    assert(c && p && out);
    memset(out, 0, sizeof *out);
    memset(&last_timing, 0, sizeof last_timing);
    if (!code || !*code || strlen(code) > 4096)
        return rg_error_set(err, RG_EINVAL, "oidc_token_exchange_failed", "code",
                            "callback has no usable code");
    if (!p->nonce[0] || !p->code_verifier[0])
        return rg_error_set(err, RG_EINVAL, "oidc_state_mismatch", "state", "pending login is empty");
    if (p->created_at && now - p->created_at > c->pending_max_age_s)
        return rg_error_set(err, RG_EINVAL, "oidc_state_expired", "state",
                            "pending login is older than %d s", c->pending_max_age_s);
    disc *d = NULL;
    if (oidc_disc_get(c, &d, err) != RG_OK)
        return RG_ERR;
    json_t *tok = NULL, *claims = NULL, *ui = NULL;
    int have_oom = 0;
    rg_oidc_jws *jws = NULL;
    int64_t t0 = rg_mono_us(), c0 = rg_thread_cpu_us();
    int rc = token_exchange(c, d, p, code, &tok, err);
    int64_t t1 = rg_mono_us(), c1 = rg_thread_cpu_us();
    last_timing.exchange_wall_us = t1 - t0;
    last_timing.exchange_cpu_us = c1 - c0;
    if (rc != RG_OK)
        goto out;
    const char *id_token = json_string_value(json_object_get(tok, "id_token"));
    if (!id_token) {
        rc = rg_error_set(err, RG_EUPSTREAM, "oidc_id_token_malformed", "id_token",
                          "token response has no id_token");
        goto out;
    }
    if ((rc = rg_oidc_jws_parse(id_token, &jws, err)) != RG_OK ||
        (rc = rg_oidc_jws_check_alg(jws, c->alg_mask, err)) != RG_OK)
        goto out;
    if ((rc = oidc_verify_sig(c, d, jws, err)) != RG_OK)
        goto out;
    size_t pl = 0;
    const char *payload = rg_oidc_jws_payload(jws, &pl);
    claims = json_loadb(payload, pl, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(claims)) {
        rc = rg_error_set(err, RG_EUNAUTH, "oidc_id_token_malformed", "id_token",
                          "ID token payload is not a JSON object");
        goto out;
    }
    if ((rc = oidc_check_claims(c, claims, p, now, err)) != RG_OK)
        goto out;
    out->issuer = strdup(c->issuer);
    out->subject = strdup(json_string_value(json_object_get(claims, "sub")));
    out->email = oidc_claim_str(claims, c->email_claim);
    out->name = oidc_claim_str(claims, c->name_claim);
    out->email_verified = json_is_true(json_object_get(claims, "email_verified"));
    /* issue 13: what logout needs later (sid for back-channel matching, the
     * token itself as id_token_hint); both stay server-side */
    const char *osid = json_string_value(json_object_get(claims, "sid"));
    if (osid && *osid && strlen(osid) <= MAX_SUB_LEN && !(out->sid = strdup(osid)))
        have_oom = 1;
    if (strlen(id_token) <= 8192 && !(out->id_token = strdup(id_token)))
        have_oom = 1;
    int have = oidc_read_groups(claims, c->groups_claim, out, c->issuer);
    out->groups_overage = !have && oidc_groups_overage(claims, c->groups_claim);
    if (!have && c->use_userinfo) {
        const char *at = json_string_value(json_object_get(tok, "access_token"));
        if ((rc = userinfo(c, d, at, &ui, err)) != RG_OK)
            goto out;
        const char *usub = json_string_value(json_object_get(ui, "sub"));
        if (!usub || strcmp(usub, out->subject) != 0) {
            rc = rg_error_set(err, RG_EUNAUTH, "oidc_userinfo_failed", "sub",
                              "userinfo sub differs from the ID token's");
            goto out;
        }
        if ((out->groups_from_userinfo = oidc_read_groups(ui, c->groups_claim, out, c->issuer)))
            out->groups_overage = 0;
        else
            out->groups_overage |= oidc_groups_overage(ui, c->groups_claim);
        if (!out->email)
            out->email = oidc_claim_str(ui, c->email_claim);
        if (!out->name)
            out->name = oidc_claim_str(ui, c->name_claim);
    }
    if (!out->issuer || !out->subject || (have && !out->groups) || have_oom) {
        rc = rg_error_oom(err);
        goto out;
    }
    if (out->groups_overage) {
        char q1[120], q2[120];
        rg_log(RG_LOG_WARN, "event=oidc_groups_overage issuer=%s sub=%s reason=\"the IdP left the "
               "groups claim out (_claim_names or hasgroups); groups are incomplete\"",
               rg_log_quote(q1, sizeof q1, c->issuer), rg_log_quote(q2, sizeof q2, out->subject));
    }
out:
    last_timing.verify_wall_us = rg_mono_us() - t1;
    last_timing.verify_cpu_us = rg_thread_cpu_us() - c1;
    if (rc != RG_OK) {
        char q[120];
        rg_oidc_identity_clear(out);
        rg_log(RG_LOG_WARN, "event=oidc_login_rejected issuer=%s reason=%s",
               rg_log_quote(q, sizeof q, c->issuer), err ? err->code : "-");
    }
    if (tok) {
        /* the access token is a bearer secret: wipe it from the parsed copy */
        json_t *at = json_object_get(tok, "access_token");
        if (json_is_string(at))
            OPENSSL_cleanse((char *)json_string_value(at), json_string_length(at));
    }
    json_decref(tok);
    json_decref(claims);
    json_decref(ui);
    rg_oidc_jws_free(jws);
    oidc_disc_free(d);
    return rc == RG_OK ? RG_OK : RG_ERR;
}
