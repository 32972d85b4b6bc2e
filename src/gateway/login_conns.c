/* login_conns.c: the per-connection runtime objects of a login: the lasso
 * SP of a SAML connection and the client of an OIDC one, built from the
 * stored connection JSON, rebuilt when the stored row's digest changes,
 * refcounted under the login state's lock. */
#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "rolegate/arena.h"
#include "login_internal.h"
#include "rolegate/metrics.h"
#include "rolegate/store.h"
#include "rolegate/util.h"

/* ==== connection runtime objects ======================================== */

static void conn_free(lg_conn *c)
{
    if (!c)
        return;
    rg_saml_connection_free(c->saml);
    rg_oidc_client_free(c->oidc);
    free(c);
}

void lg_conn_release(rg_gateway_login *lg, lg_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&lg->clock);
    int last = --c->refs == 0;
    pthread_mutex_unlock(&lg->clock);
    if (last)
        conn_free(c);
}

void lg_conns_clear(rg_gateway_login *lg)
{
    pthread_mutex_lock(&lg->clock);
    lg_conn **v = lg->conns;
    size_t n = lg->nconns;
    lg->conns = NULL;
    lg->nconns = lg->capconns = 0;
    pthread_mutex_unlock(&lg->clock);
    for (size_t i = 0; i < n; i++)
        lg_conn_release(lg, v[i]);
    free(v);
}

static const char *jstr(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A NULL-terminated list from a JSON string array or a single string
 * (borrowed strings in a malloc'd array); NULL when absent or empty. */
static const char **jlist(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    if (json_is_string(v)) {
        const char **l = calloc(2, sizeof *l);
        if (l)
            l[0] = json_string_value(v);
        return l;
    }
    if (!json_is_array(v) || json_array_size(v) == 0)
        return NULL;
    const char **l = calloc(json_array_size(v) + 1, sizeof *l);
    size_t i, n = 0;
    const json_t *e;
    json_array_foreach(v, i, e)
        if (l && json_is_string(e))
            l[n++] = json_string_value(e);
    if (l && n == 0) {
        free(l);
        return NULL;
    }
    return l;
}

static int conn_build_saml(rg_gateway_login *lg, const json_t *j, lg_conn *c, rg_error *err)
{
    const char *md = jstr(j, "idp_metadata");
    if (!md || !*md)   /* a draft (issue 11 item 1): the page names no admin path */
        return rg_error_set(err, RG_EUNAVAIL, "connection_draft", "idp_metadata",
                            "Sign-in through this identity provider is not set up yet. "
                            "Please ask your administrator to finish the connection.");
    rg_saml_sp_keys_ensure(lg->ctx->sp_keys);   /* made at the first SAML use */
    char eid[RG_SAML_URL_MAX], acs[RG_SAML_URL_MAX];
    if (rg_saml_sp_urls(lg->base, c->id, eid, acs, sizeof eid) != 0)
        return rg_error_set(err, RG_EINTERNAL, "config_invalid", "base_url",
                            "base_url too long");
    const char **groups = jlist(j, "groups_attributes");
    const char **email = jlist(j, "email_attribute");
    const char **name = jlist(j, "name_attribute");
    rg_saml_conn_config sc;
    rg_saml_conn_config_init(&sc);
    sc.connection_id = c->id;
    sc.sp_entity_id = eid;
    sc.acs_url = acs;
    sc.sp_key_file = lg->cfg->saml.sp_key_file;
    sc.sp_cert_file = lg->cfg->saml.sp_cert_file;
    sc.idp_metadata = md;
    sc.idp_metadata_len = strlen(md);
    sc.group_attributes = groups;
    sc.email_attributes = email;
    sc.name_attributes = name;
    sc.allow_idp_initiated = json_is_true(json_object_get(j, "allow_idp_initiated"));
    sc.allow_sha1 = lg->cfg->saml.allow_sha1;
    sc.clock_skew_s = lg->cfg->saml.clock_skew > 0 ? (int)lg->cfg->saml.clock_skew : -1;
    sc.max_response_size = lg->cfg->saml.max_response;
    sc.max_assertion_lifetime_s = lg->cfg->saml.max_assertion_lifetime;
    int rc = 0;
    if (!(c->saml = rg_saml_connection_new(&sc, err)))
        rc = RG_ERR;
    free(groups);
    free(email);
    free(name);
    return rc;
}

static int conn_build_oidc(rg_gateway_login *lg, const json_t *j, lg_conn *c, rg_error *err)
{
    char redirect[RG_CONFIG_STR + 32];
    snprintf(redirect, sizeof redirect, "%s/oidc/callback", lg->base);
    /* scopes: a space-separated string or an array of strings */
    char scopes[1024] = "";
    const json_t *sv = json_object_get(j, "scopes");
    if (json_is_string(sv)) {
        snprintf(scopes, sizeof scopes, "%s", json_string_value(sv));
    } else if (json_is_array(sv)) {
        size_t i;
        const json_t *e;
        json_array_foreach(sv, i, e)
            if (json_is_string(e)) {
                size_t l = strlen(scopes);
                snprintf(scopes + l, sizeof scopes - l, "%s%s", l ? " " : "",
                         json_string_value(e));
            }
    }
    const char *iss = jstr(j, "issuer"), *cid = jstr(j, "client_id");
    if (!iss || !*iss || !cid || !*cid)   /* a draft (issue 11 item 1) */
        return rg_error_set(err, RG_EUNAVAIL, "connection_draft", !iss || !*iss ? "issuer"
                            : "client_id", "Sign-in through this identity provider is not "
                            "set up yet. Please ask your administrator to finish the "
                            "connection.");
    rg_oidc_config oc = {
        .issuer = jstr(j, "issuer"),
        .client_id = jstr(j, "client_id"),
        .client_secret = jstr(j, "client_secret"),
        .redirect_uri = redirect,
        .scopes = scopes[0] ? scopes : NULL,
        .groups_claim = jstr(j, "groups_claim"),
        .email_claim = jstr(j, "email_claim"),
        .name_claim = jstr(j, "name_claim"),
        .allowed_algs = jstr(j, "allowed_algs"),
        .allow_http_loopback = lg->cfg->oidc.allow_http_loopback,
        .http_timeout_ms = lg->cfg->oidc.http_timeout_ms,
        /* 0 in rg_oidc_config means "default": a configured 0 is -1 there */
        .jwks_min_refresh_s = lg->cfg->oidc.jwks_min_refresh > 0
                                  ? (int)lg->cfg->oidc.jwks_min_refresh : -1,
        .use_userinfo_for_groups = json_is_true(json_object_get(j, "use_userinfo_for_groups")),
        .clock_skew_s = lg->cfg->saml.clock_skew > 0 ? (int)lg->cfg->saml.clock_skew : -1,
        .pending_max_age_s = LG_STATE_TTL_S,
    };
    c->oidc = rg_oidc_client_new(&oc, err);
    return c->oidc ? 0 : RG_ERR;
}

static lg_conn *conn_find(rg_gateway_login *lg, const char *id, size_t *idx)
{
    for (size_t i = 0; i < lg->nconns; i++)
        if (strcmp(lg->conns[i]->id, id) == 0) {
            if (idx)
                *idx = i;
            return lg->conns[i];
        }
    return NULL;
}

/* A store 404 as the login paths say it. */
static int conn_missing(int rc, rg_error *err)
{
    if (err && err->status == 404)
        rg_error_set(err, RG_ENOTFOUND, "connection_not_found", "connection_id",
                     "no such connection");
    return rc;
}

/* The table's object for id if it was built from the same digest, with a
 * reference taken for the caller; else NULL. Takes the lock. */
static lg_conn *conn_cached(rg_gateway_login *lg, const char *id, const unsigned char dg[32])
{
    pthread_mutex_lock(&lg->clock);
    lg_conn *c = conn_find(lg, id, NULL);
    if (c && memcmp(c->digest, dg, 32) == 0)
        c->refs++;
    else
        c = NULL;
    pthread_mutex_unlock(&lg->clock);
    return c;
}

/* A new runtime object from the stored JSON (outside the lock: lasso parses
 * keys and metadata). An unusable connection is logged. */
static int conn_build(rg_gateway_login *lg, const char *id, const json_t *j,
                      const unsigned char dg[32], lg_conn **out, rg_error *err)
{
    lg_conn *n = calloc(1, sizeof *n);
    if (!n)
        return rg_error_oom(err);
    snprintf(n->id, sizeof n->id, "%s", id);
    snprintf(n->org_id, sizeof n->org_id, "%s", jstr(j, "organization_id") ? jstr(j, "organization_id") : "");
    memcpy(n->digest, dg, sizeof n->digest);
    n->require_mapped_group = json_is_true(json_object_get(j, "require_mapped_group"));
    const char *type = jstr(j, "type");
    int rc;
    if (type && strcmp(type, "saml") == 0) {
        n->type = 's';
        rc = conn_build_saml(lg, j, n, err);
    } else if (type && strcmp(type, "oidc") == 0) {
        n->type = 'o';
        rc = conn_build_oidc(lg, j, n, err);
    } else {
        rc = rg_error_set(err, RG_EUNPROCESSABLE, "connection_type_unknown", "type",
                          "unknown connection type");
    }
    if (rc) {
        int draft = err && strcmp(err->code, "connection_draft") == 0;
        rg_log(RG_LOG_WARN, "event=connection_unusable connection_id=%s error=%s%s", n->id,
               err ? err->code : "?", draft ? " hint=\"the admin API's GET /connections/{id}"
               " says what is missing\"" : "");
        conn_free(n);
        return rc;
    }
    *out = n;
    return 0;
}

/* Puts n in the table (replacing an older build of the same connection),
 * unless another thread built the same one meanwhile: then that one is
 * used and n freed. *out: the object handed to the caller, referenced. */
static int conn_install(rg_gateway_login *lg, lg_conn *n, lg_conn **out, rg_error *err)
{
    pthread_mutex_lock(&lg->clock);
    size_t idx = 0;
    lg_conn *old = conn_find(lg, n->id, &idx);
    if (old && memcmp(old->digest, n->digest, sizeof n->digest) == 0) {
        /* another thread built the same one meanwhile: use it */
        old->refs++;
        pthread_mutex_unlock(&lg->clock);
        conn_free(n);
        *out = old;
        return 0;
    }
    int old_last = 0;
    if (old) {
        lg->conns[idx] = n;
        old_last = --old->refs == 0;   /* the table's reference */
    } else {
        if (rg_grow(&lg->conns, lg->nconns, &lg->capconns, sizeof *lg->conns, 16) != 0) {
            pthread_mutex_unlock(&lg->clock);
            conn_free(n);
            return rg_error_oom(err);
        }
        lg->conns[lg->nconns++] = n;
    }
    n->refs = 2;   /* the table's and the caller's */
    pthread_mutex_unlock(&lg->clock);
    if (old_last)
        conn_free(old);
    rg_log(RG_LOG_INFO, "event=connection_loaded connection_id=%s type=%s", n->id,
           n->type == 's' ? "saml" : "oidc");
    *out = n;
    return 0;
}

int lg_conn_acquire(rg_gateway_login *lg, const char *id, lg_conn **out, rg_error *err)
{
    assert(lg && out);
    *out = NULL;
    if (!id || !*id || strlen(id) >= LG_ID_MAX)
        return rg_error_set(err, RG_ENOTFOUND, "connection_not_found", "connection_id",
                            "no such connection");
    if (!lg->ctx->store)
        return rg_error_set(err, RG_EUNAVAIL, "store_unavailable", NULL, "no store");
    /* the stored row's digest checked (one indexed read, no JSON; the ACS
     * has its login's transaction check it instead, issue 15): the object
     * is rebuilt only when the row changed. The profile
     * of first logins had the whole JSON loaded, dumped sorted and hashed
     * here at 8% of rolegate's CPU. */
    unsigned char dg[32];
    int rc = rg_store_connection_digest(lg->ctx->store, id, dg, err);
    if (rc)
        return conn_missing(rc, err);
    lg_conn *c = conn_cached(lg, id, dg);
    if (c) {
        *out = c;
        return 0;
    }
    /* a write between the two reads builds the newer row under the older
     * digest: the next login sees the digest differ and builds it again */
    json_t *j = NULL;
    rc = rg_store_connection_private(lg->ctx->store, id, &j, err);
    if (rc)
        return conn_missing(rc, err);
    lg_conn *n = NULL;
    rc = conn_build(lg, id, j, dg, &n, err);
    json_decref(j);
    if (rc)
        return rc;
    return conn_install(lg, n, out, err);
}

int lg_conn_acquire_unchecked(rg_gateway_login *lg, const char *id, lg_conn **out,
                              int *checked, rg_error *err)
{
    assert(lg && out && checked);
    *checked = 0;
    if (id && strlen(id) < LG_ID_MAX) {
        pthread_mutex_lock(&lg->clock);
        lg_conn *c = conn_find(lg, id, NULL);
        if (c)
            c->refs++;
        pthread_mutex_unlock(&lg->clock);
        if (c) {
            *out = c;
            return 0;
        }
    }
    *checked = 1;
    return lg_conn_acquire(lg, id, out, err);
}
