/* login_common.c: what every browser login shares: the pending-login store
 * (one-time, 5 min, through the cache layer: shared by instances via Redis), the
 * per-connection SAML/OIDC runtime objects (built from the stored config,
 * rebuilt when it changes, refcounted), return_to checks (open-redirect
 * guard), the failure page + authentication.failed event, and the end of
 * every login: R15-R18 through rg_store_login_apply, R24 session, cookies. */
#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <openssl/evp.h>
#include "login_internal.h"
#include "rolegate/metrics.h"
#include "rolegate/store.h"
#include "rolegate/util.h"

/* ==== pending logins ====================================================
 * One-time login state in the cache layer (rg_cache_state_put/take): in
 * Redis when configured, so a login started on one instance completes on
 * another; in a bounded in-process map otherwise or while Redis is down.
 * Entries, each with the login's TTL:
 *   k:<key>         the pending login (JSON), key = the state cookie value
 *   r:<request id>  -> key   (SAML: found by InResponseTo under plain http)
 *   o:<state>       -> key   (OIDC: the callback's state, for the log line)
 * Whoever takes k:<key> first owns the login (GETDEL is atomic); an index
 * entry left behind only points at nothing. */

struct lg_pending_store {
    rg_cache *cache;
    int64_t   ttl;      /* seconds */
};

lg_pending_store *lg_pending_new(rg_cache *cache, int64_t ttl_s)
{
    assert(cache);
    lg_pending_store *ps = calloc(1, sizeof *ps);
    if (!ps)
        return NULL;
    ps->cache = cache;
    ps->ttl = ttl_s;
    return ps;
}

void lg_pending_free(lg_pending_store *ps)
{
    free(ps);
}

#define IDX_KEY_MAX (RG_OIDC_TOKEN_MAX + RG_SAML_REQUEST_ID_MAX + 4)

/* "<tag>:<v>" into out (v must fit) */
static int pkey(char *out, size_t n, char tag, const char *v)
{
    int w = snprintf(out, n, "%c:%s", tag, v);
    return w > 0 && (size_t)w < n ? 0 : -1;
}

/* The index entry of p: r:<request id> (SAML) or o:<state> (OIDC) into
 * out[IDX_KEY_MAX]. 0, or -1 when p has none. */
static int index_key(const lg_pending *p, char out[IDX_KEY_MAX])
{
    const char *v = p->kind == 's' ? p->request_id : p->oidc.state;
    return *v ? pkey(out, IDX_KEY_MAX, p->kind == 's' ? 'r' : 'o', v) : -1;
}

/* Copies JSON member name (a string that fits) into dst. */
static int jcopy(json_t *o, const char *name, char *dst, size_t n)
{
    const char *v = json_string_value(json_object_get(o, name));
    if (!v || strlen(v) >= n)
        return -1;
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

static char *pending_encode(const lg_pending *p)
{
    json_t *o = json_pack("{s:s#,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I}", "kind", &p->kind, (size_t)1,
                          "conn", p->conn_id, "org", p->org_id, "rid", p->request_id,
                          "state", p->oidc.state, "nonce", p->oidc.nonce,
                          "verifier", p->oidc.code_verifier, "return_to", p->return_to,
                          "at", (json_int_t)p->created_at);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

static int pending_decode(const char *s, const char *key, lg_pending *p)
{
    memset(p, 0, sizeof *p);
    json_t *o = json_loads(s, JSON_REJECT_DUPLICATES, NULL);
    char kind[2];
    int bad = !json_is_object(o) || jcopy(o, "kind", kind, sizeof kind) ||
              (kind[0] != 's' && kind[0] != 'o') ||
              jcopy(o, "conn", p->conn_id, sizeof p->conn_id) ||
              jcopy(o, "org", p->org_id, sizeof p->org_id) ||
              jcopy(o, "rid", p->request_id, sizeof p->request_id) ||
              jcopy(o, "state", p->oidc.state, sizeof p->oidc.state) ||
              jcopy(o, "nonce", p->oidc.nonce, sizeof p->oidc.nonce) ||
              jcopy(o, "verifier", p->oidc.code_verifier, sizeof p->oidc.code_verifier) ||
              jcopy(o, "return_to", p->return_to, sizeof p->return_to) ||
              !json_is_integer(json_object_get(o, "at"));
    if (!bad) {
        p->kind = kind[0];
        p->created_at = json_integer_value(json_object_get(o, "at"));
        p->oidc.created_at = p->created_at;
        snprintf(p->key, sizeof p->key, "%s", key);
    }
    json_decref(o);
    if (bad) {
        memset(p, 0, sizeof *p);
        rg_log(RG_LOG_WARN, "event=login_state_corrupt");
    }
    return bad ? RG_ENOTFOUND : 0;
}

int lg_pending_put(lg_pending_store *ps, lg_pending *p, rg_error *err)
{
    assert(ps && p);
    rg_random_token(p->key, sizeof p->key, 32);
    if (!p->created_at)
        p->created_at = rg_now();
    char k[64], ik[IDX_KEY_MAX];
    char *val = pending_encode(p);
    if (!val || pkey(k, sizeof k, 'k', p->key))
        return free(val), rg_error_set(err, RG_ENOMEM, 500, "internal", NULL, "out of memory");
    int64_t ttl_ms = ps->ttl * 1000;
    int rc = rg_cache_state_put(ps->cache, k, val, ttl_ms, err);
    memset(val, 0, strlen(val));   /* the PKCE verifier and nonce */
    free(val);
    /* the index by request id / OIDC state (best effort: the cookie path
     * works without it) */
    if (rc == 0 && index_key(p, ik) == 0) {
        rg_error e2;
        rg_cache_state_put(ps->cache, ik, p->key, ttl_ms, &e2);
    }
    return rc;
}

/* Takes k:<key>; also drops its index entry. */
static int take_by_key(lg_pending_store *ps, const char *key, lg_pending *out, rg_error *err)
{
    char k[64], *val = NULL;
    if (pkey(k, sizeof k, 'k', key))
        return rg_error_set(err, RG_ENOTFOUND, 404, "state_not_found", NULL,
                            "unknown or expired login state");
    int rc = rg_cache_state_take(ps->cache, k, &val, err);
    if (rc)
        return rc;
    rc = pending_decode(val, key, out);
    memset(val, 0, strlen(val));
    free(val);
    if (rc)
        return rg_error_set(err, RG_ENOTFOUND, 404, "state_not_found", NULL,
                            "unreadable login state");
    char ik[IDX_KEY_MAX], *iv = NULL;
    rg_error e2;
    if (index_key(out, ik) == 0 && rg_cache_state_take(ps->cache, ik, &iv, &e2) == 0)
        free(iv);
    if (rg_now() - out->created_at >= ps->ttl) {   /* the cache's TTL, checked again */
        memset(out, 0, sizeof *out);
        return rg_error_set(err, RG_ENOTFOUND, 404, "state_not_found", NULL,
                            "expired login state");
    }
    return 0;
}

/* A state cookie value: what rg_random_token makes (base64url). */
static int key_ok(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    return n > 0 && n < sizeof((lg_pending *)0)->key && rg_b64url_chars(key, n);
}

int lg_pending_take_key(lg_pending_store *ps, const char *key, lg_pending *out, rg_error *err)
{
    assert(ps && out);
    memset(out, 0, sizeof *out);
    if (!key_ok(key))
        return rg_error_set(err, RG_ENOTFOUND, 404, "state_not_found", NULL,
                            "unknown login state");
    return take_by_key(ps, key, out, err);
}

/* By index: i:<v> -> key, then the login itself, which must carry v. */
static int take_by_index(lg_pending_store *ps, char tag, const char *v, size_t max,
                         lg_pending *out, rg_error *err)
{
    memset(out, 0, sizeof *out);
    char ik[IDX_KEY_MAX], *key = NULL;
    if (!v || !*v || strlen(v) >= max || pkey(ik, sizeof ik, tag, v))
        return rg_error_set(err, RG_ENOTFOUND, 404, "state_not_found", NULL,
                            "unknown login state");
    int rc = rg_cache_state_take(ps->cache, ik, &key, err);
    if (rc)
        return rc;
    rc = key_ok(key) ? take_by_key(ps, key, out, err)
                     : rg_error_set(err, RG_ENOTFOUND, 404, "state_not_found", NULL,
                                    "unreadable login state");
    free(key);
    if (rc)
        return rc;
    const char *have = tag == 'r' ? out->request_id : out->oidc.state;
    if (out->kind != (tag == 'r' ? 's' : 'o') ||
        !rg_ct_equal(have, strlen(have), v, strlen(v))) {
        memset(out, 0, sizeof *out);
        return rg_error_set(err, RG_ENOTFOUND, 404, "state_not_found", NULL,
                            "login state mismatch");
    }
    return 0;
}

int lg_pending_take_request(lg_pending_store *ps, const char *request_id, lg_pending *out,
                            rg_error *err)
{
    assert(ps && out);
    return take_by_index(ps, 'r', request_id, RG_SAML_REQUEST_ID_MAX, out, err);
}

int lg_pending_take_oidc_state(lg_pending_store *ps, const char *state, lg_pending *out,
                               rg_error *err)
{
    assert(ps && out);
    return take_by_index(ps, 'o', state, RG_OIDC_TOKEN_MAX, out, err);
}

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
        return rg_error_set(err, RG_EINVAL, 503, "connection_draft", "idp_metadata",
                            "Sign-in through this identity provider is not set up yet. "
                            "Please ask your administrator to finish the connection.");
    rg_saml_sp_keys_ensure(lg->ctx->sp_keys);   /* made at the first SAML use */
    char eid[RG_SAML_URL_MAX], acs[RG_SAML_URL_MAX];
    if (rg_saml_sp_urls(lg->base, c->id, eid, acs, sizeof eid) != 0)
        return rg_error_set(err, RG_EINVAL, 500, "config_invalid", "base_url",
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
        return rg_error_set(err, RG_EINVAL, 503, "connection_draft", !iss || !*iss ? "issuer"
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

int lg_conn_acquire(rg_gateway_login *lg, const char *id, lg_conn **out, rg_error *err)
{
    assert(lg && out);
    *out = NULL;
    if (!id || !*id || strlen(id) >= LG_ID_MAX)
        return rg_error_set(err, RG_ENOTFOUND, 404, "connection_not_found", "connection_id",
                            "no such connection");
    if (!lg->ctx->store)
        return rg_error_set(err, RG_EIO, 503, "store_unavailable", NULL, "no store");
    json_t *j = NULL;
    int rc = rg_store_connection_private(lg->ctx->store, id, &j, err);
    if (rc) {
        if (err && err->status == 404)
            rg_error_set(err, RG_ENOTFOUND, 404, "connection_not_found", "connection_id",
                         "no such connection");
        return rc;
    }
    /* the digest of the whole stored object: any change rebuilds */
    unsigned char dg[32];
    char *dump = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    unsigned int dl = 0;
    if (!dump || !EVP_Digest(dump, strlen(dump), dg, &dl, EVP_sha256(), NULL)) {
        free(dump);
        json_decref(j);
        return rg_error_set(err, RG_ENOMEM, 500, "internal", NULL, "out of memory");
    }
    free(dump);
    pthread_mutex_lock(&lg->clock);
    lg_conn *c = conn_find(lg, id, NULL);
    if (c && memcmp(c->digest, dg, sizeof dg) == 0) {
        c->refs++;
        pthread_mutex_unlock(&lg->clock);
        json_decref(j);
        *out = c;
        return 0;
    }
    pthread_mutex_unlock(&lg->clock);

    /* (re)build outside the lock: lasso parses keys and metadata */
    lg_conn *n = calloc(1, sizeof *n);
    if (!n) {
        json_decref(j);
        return rg_error_set(err, RG_ENOMEM, 500, "internal", NULL, "out of memory");
    }
    snprintf(n->id, sizeof n->id, "%s", id);
    snprintf(n->org_id, sizeof n->org_id, "%s", jstr(j, "organization_id") ? jstr(j, "organization_id") : "");
    memcpy(n->digest, dg, sizeof dg);
    n->require_mapped_group = json_is_true(json_object_get(j, "require_mapped_group"));
    const char *type = jstr(j, "type");
    if (type && strcmp(type, "saml") == 0) {
        n->type = 's';
        rc = conn_build_saml(lg, j, n, err);
    } else if (type && strcmp(type, "oidc") == 0) {
        n->type = 'o';
        rc = conn_build_oidc(lg, j, n, err);
    } else {
        rc = rg_error_set(err, RG_EINVAL, 422, "connection_type_unknown", "type",
                          "unknown connection type");
    }
    json_decref(j);
    if (rc) {
        int draft = err && strcmp(err->code, "connection_draft") == 0;
        rg_log(RG_LOG_WARN, "event=connection_unusable connection_id=%s error=%s%s", n->id,
               err ? err->code : "?", draft ? " hint=\"the admin API's GET /connections/{id}"
               " says what is missing\"" : "");
        conn_free(n);
        return rc;
    }
    pthread_mutex_lock(&lg->clock);
    size_t idx = 0;
    lg_conn *old = conn_find(lg, id, &idx);
    if (old && memcmp(old->digest, dg, sizeof dg) == 0) {
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
        if (lg->nconns == lg->capconns) {
            size_t cap = lg->capconns ? lg->capconns * 2 : 16;
            lg_conn **v = realloc(lg->conns, cap * sizeof *v);
            if (!v) {
                pthread_mutex_unlock(&lg->clock);
                conn_free(n);
                return rg_error_set(err, RG_ENOMEM, 500, "internal", NULL, "out of memory");
            }
            lg->conns = v;
            lg->capconns = cap;
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

/* ==== return_to ========================================================== */

int lg_return_to_ok(const rg_gateway_login *lg, const char *s)
{
    if (!s || !*s || strlen(s) >= LG_RETURN_TO_MAX)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x21 || *p == 0x7f || *p == '\\')
            return 0;   /* browsers read '\' as '/' and drop tabs/newlines */
    if (s[0] == '/')
        return s[1] != '/';   /* "//evil.com" is protocol-relative */
    /* absolute: only http(s) to an allowed origin; the origin must be
     * followed by nothing or by a path, query or fragment */
    if (strncasecmp(s, "https://", 8) != 0 && strncasecmp(s, "http://", 7) != 0)
        return 0;
    const char *host = strstr(s, "://") + 3;
    size_t olen = (size_t)(host - s) + strcspn(host, "/?#");
    if (memchr(host, '@', olen - (size_t)(host - s)))
        return 0;   /* userinfo: "https://good.com@evil.com" */
    char origin[RG_CONFIG_STR];
    if (olen >= sizeof origin)
        return 0;
    for (size_t i = 0; i < olen; i++)
        origin[i] = (char)tolower((unsigned char)s[i]);
    origin[olen] = 0;
    if (strcmp(origin, lg->origin) == 0)
        return 1;
    for (const char *p = lg->cfg->server.return_to_origins; *p;) {
        size_t n = strcspn(p, ", \t");
        while (n && p[n - 1] == '/')
            n--;
        if (n == olen && strncasecmp(p, origin, n) == 0)
            return 1;
        p += strcspn(p, ", \t");
        p += strspn(p, ", \t");
    }
    return 0;
}

/* ==== cookies and pages ================================================== */

char *lg_state_cookie(rg_http_req *req, const rg_gateway_login *lg, const char *key,
                      int max_age)
{
    /* The IdP's POST to the ACS is cross-site: only SameSite=None cookies
     * come with it, and browsers accept those only with Secure (https).
     * Under plain http the cookie is Lax (sent on the OIDC callback, a
     * top-level GET) and the SAML ACS finds its pending login by the
     * response's InResponseTo instead (README-login.md). */
    return rg_arena_printf(rg_http_arena(req), "%s=%s; Path=/; Max-Age=%d; HttpOnly; %s",
                           LG_STATE_COOKIE, key, max_age,
                           lg->secure ? "SameSite=None; Secure" : "SameSite=Lax");
}

char *lg_html_escape(rg_arena *a, const char *s)
{
    if (!s)
        s = "";
    size_t n = 1;
    for (const char *p = s; *p; p++)
        n += (*p == '&' || *p == '<' || *p == '>' || *p == '"' || *p == '\'') ? 6 : 1;
    char *out = rg_arena_alloc(a, n), *o = out;
    if (!out)
        return NULL;
    for (const char *p = s; *p; p++) {
        const char *r = NULL;
        switch (*p) {
        case '&': r = "&amp;"; break;
        case '<': r = "&lt;"; break;
        case '>': r = "&gt;"; break;
        case '"': r = "&quot;"; break;
        case '\'': r = "&#39;"; break;
        default: *o++ = *p; continue;
        }
        size_t l = strlen(r);
        memcpy(o, r, l);
        o += l;
    }
    *o = 0;
    return out;
}

void lg_page(rg_http_req *req, int status, const char *title, const char *code,
             const char *message)
{
    rg_arena *a = rg_http_arena(req);
    char *body = rg_arena_printf(
        a,
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>%s</title></head>\n"
        "<body><h1>%s</h1>\n<p>%s</p>\n<p>Reason code: <code id=\"reason\">%s</code></p>\n"
        "</body></html>\n",
        lg_html_escape(a, title), lg_html_escape(a, title), lg_html_escape(a, message),
        lg_html_escape(a, code));
    rg_http_add_header(req, "Cache-Control", "no-store");
    rg_http_add_header(req, "Content-Security-Policy", "default-src 'none'");
    if (!body) {
        rg_http_send(req, status, "text/plain", "error\n", 6);
        return;
    }
    rg_http_send_arena(req, status, "text/html; charset=utf-8", body, strlen(body));
}

/* The login record's common members. */
static json_t *record_new(const char *conn_id, const char *org_id, const char *protocol,
                          const char *subject)
{
    char ts[40];
    rg_iso8601_ms(rg_now_ms(), ts, sizeof ts);
    json_t *d = json_object();
    if (!d)
        return NULL;
    json_object_set_new(d, "time", json_string(ts));
    json_object_set_new(d, "connection_id", conn_id ? json_string(conn_id) : json_null());
    json_object_set_new(d, "organization_id",
                        org_id && *org_id ? json_string(org_id) : json_null());
    json_object_set_new(d, "protocol", json_string(protocol ? protocol : "unknown"));
    json_object_set_new(d, "subject", subject ? json_string(subject) : json_null());
    return d;
}

void lg_fail(rg_http_req *req, rg_gateway_login *lg, const char *conn_id, const char *org_id,
             const char *protocol, const char *subject, const rg_error *err)
{
    int status = err && err->status ? err->status : 400;
    const char *code = err && err->code[0] ? err->code : "login_failed";
    json_t *d = record_new(conn_id, org_id, protocol, subject);
    if (d) {
        json_object_set_new(d, "reason", json_string(code));
        json_object_set_new(d, "status", json_integer(status));
        if (err && err->message[0])
            json_object_set_new(d, "message", json_string(err->message));
    }
    /* the event is the login record of a failure (no secret, no assertion) */
    rg_error eerr;
    if (lg->ctx->store && conn_id &&
        rg_store_event_emit(lg->ctx->store, "authentication.failed", d, &eerr) != 0)
        rg_log(RG_LOG_ERROR, "event=login_event_failed error=%s", eerr.code);
    json_decref(d);
    char qs[200], qm[300];
    rg_metrics_add("rolegate_login_failures_total", "connection", conn_id ? conn_id : "unknown",
                   "reason", code, 1);   /* issue 11 item 9 */
    rg_log(RG_LOG_INFO, "event=login result=failed protocol=%s connection_id=%s reason=%s "
           "subject=%s request_id=%s message=%s", protocol ? protocol : "unknown",
           conn_id ? conn_id : "-", code, rg_log_quote(qs, sizeof qs, subject ? subject : "-"),
           rg_http_request_id(req), rg_log_quote(qm, sizeof qm, err ? err->message : ""));
    char *clear = lg_state_cookie(req, lg, "", 0);
    if (clear)
        rg_http_add_header(req, "Set-Cookie", clear);
    lg_page(req, status, "Sign-in failed",  code,
            "The sign-in could not be completed. Give the reason code below to your "
            "administrator, or start again from the application.");
}

/* ==== the end of every login ============================================= */

/* "Alice Example" → first "Alice", last "Example" (arena). */
static void split_name(rg_arena *a, const char *name, const char **first, const char **last)
{
    *first = *last = NULL;
    if (!name || !*name)
        return;
    const char *sp = strchr(name, ' ');
    if (!sp) {
        *first = name;
        return;
    }
    *first = rg_arena_strndup(a, name, (size_t)(sp - name));
    while (*sp == ' ')
        sp++;
    *last = *sp ? sp : NULL;
}

/* The session of one login, issued inside its transaction (the store
 * calls finish_issue once the roles are resolved). */
typedef struct finish_ctx {
    rg_gateway_login *lg;
    const lg_conn *conn;
    const lg_identity *id;
    rg_arena *arena;
    char *cookie;          /* malloc'd Set-Cookie value */
    size_t cookie_len;
    int omitted;
    const char *user_id;   /* arena copy */
    int64_t sign_us;       /* CPU spent signing */
    rg_store_session_rec sess;   /* the session's record (issue 13) */
} finish_ctx;

static int finish_issue(void *ctx, const char *user_id, const rg_resolution *res,
                        size_t *token_size, rg_error *err)
{
    finish_ctx *f = ctx;
    const rg_config *cfg = f->lg->cfg;
    int64_t t0 = rg_thread_cpu_us();
    if (!user_id || res->roles.n == 0)
        return rg_error_set(err, RG_ERR, 500, "store_error", NULL, "login gave no membership");
    /* issue 11 item 6 (oauth2-proxy's allowed_groups): a group allow-list.
     * Refused here, inside the login's transaction, so nothing is written */
    if (f->conn->require_mapped_group && res->matched_groups.n == 0)
        return rg_error_set(err, RG_EINVAL, 403, "no_mapped_group", "groups",
                            "none of your groups is allowed to sign in here");
    f->user_id = rg_arena_strdup(f->arena, user_id);
    /* R24: the claims are a snapshot of the roles just resolved (R25) */
    char sid[64], jti[40];
    rg_id_new("session", sid, sizeof sid);
    rg_random_token(jti, sizeof jti, 16);
    rg_claims c = {
        .iss = rg_gateway_issuer(cfg),
        .sub = user_id,
        .sid = sid,
        .jti = jti,
        .org_id = f->conn->org_id,
        .email = f->id->email && *f->id->email ? f->id->email : NULL,
        .roles = (const char *const *)res->roles.v,
        .n_roles = res->roles.n,
        .permissions = (const char *const *)res->permissions.v,
        .n_permissions = res->permissions.n,
        .iat = rg_now(),
    };
    rg_gateway_token_times(cfg, &c);
    snprintf(f->sess.id, sizeof f->sess.id, "%s", sid);
    f->sess.idp_subject_format = f->id->subject_format;
    f->sess.idp_session = f->id->idp_session;
    f->sess.expires_at = c.auth_time ? c.auth_time + cfg->session.lifetime : c.exp;
    rg_session_oversize pol = cfg->session.oversize == RG_OVERSIZE_OMIT_PERMISSIONS
                                  ? RG_SESSION_OVERSIZE_OMIT_PERMISSIONS
                                  : RG_SESSION_OVERSIZE_REJECT;
    char *token = NULL;
    int rc = rg_session_issue(f->lg->ctx->keys, &c, pol, (size_t)cfg->session.cookie_budget,
                              f->lg->secure, cfg->session.lifetime, &token, &f->cookie,
                              &f->cookie_len, &f->omitted, err);
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
    f->sign_us = rg_thread_cpu_us() - t0;
    if (rc) {
        free(f->cookie);
        f->cookie = NULL;
        return rc < 0 ? rc : RG_ERR;
    }
    *token_size = f->cookie_len;
    return 0;
}

void lg_finish(rg_http_req *req, rg_gateway_login *lg, const lg_conn *conn,
               const lg_identity *id, const char *return_to, lg_timing *t)
{
    assert(req && lg && conn && id && id->subject && return_to);
    if (strncmp(return_to, LG_PORTAL_TEST_PREFIX, strlen(LG_PORTAL_TEST_PREFIX)) == 0) {
        lg_portal_test_finish(req, lg, conn, id, return_to + strlen(LG_PORTAL_TEST_PREFIX));
        return;
    }
    rg_arena *a = rg_http_arena(req);
    rg_error err;
    rg_error_clear(&err);
    lg_identity checked = *id;   /* item 13: data, checked before any use */
    if (lg_identity_check(a, &checked, &err) != 0) {
        lg_fail(req, lg, conn->id, conn->org_id, id->protocol,
                strcmp(err.field, "subject") == 0 ? NULL : id->subject, &err);
        return;
    }
    id = &checked;
    finish_ctx f = {.lg = lg, .conn = conn, .id = id, .arena = a};
    int64_t resolve_us = 0;
    rg_store_login_user u = {.subject = id->subject, .email = id->email,
                             .issue = finish_issue, .issue_ctx = &f, .session = &f.sess,
                             .resolve_cpu_us = &resolve_us};
    split_name(a, id->name, &u.first_name, &u.last_name);

    /* R15-R18 + R24: user, membership, roles, the session and their events
     * in ONE transaction; a failure (store, session_too_large: never a
     * truncated cookie) leaves the membership as it was */
    int64_t t0 = rg_thread_cpu_us();
    rg_resolution res;
    memset(&res, 0, sizeof res);
    int rc = rg_store_login_apply(lg->ctx->store, conn->org_id, conn->id, &u, id->groups,
                                  id->n_groups, &res, NULL, &err);
    int64_t t1 = rg_thread_cpu_us();
    if (!rc && !f.cookie)
        rc = rg_error_set(&err, RG_ERR, 500, "store_error", NULL, "login gave no session");
    if (rc) {
        lg_fail(req, lg, conn->id, conn->org_id, id->protocol, id->subject, &err);
        rg_resolution_clear(&res);
        free(f.cookie);
        return;
    }
    const char *user_id = f.user_id;
    char *cookie = f.cookie;
    size_t cookie_len = f.cookie_len;
    int omitted = f.omitted;
    rg_http_add_header(req, "Set-Cookie", cookie);
    free(cookie);
    char *clear = lg_state_cookie(req, lg, "", 0);
    if (clear)
        rg_http_add_header(req, "Set-Cookie", clear);
    rg_http_add_header(req, "Cache-Control", "no-store");

    /* one line per login: the record without tokens or assertions */
    char qs[200], *roles = NULL, *matched = NULL;
    rg_buf rb = {0}, mb = {0};
    for (size_t i = 0; i < res.roles.n; i++)
        rg_buf_printf(&rb, "%s%s", i ? "," : "", res.roles.v[i]);
    for (size_t i = 0; i < res.matched_groups.n && i < res.matched_roles.n; i++)
        rg_buf_printf(&mb, "%s%s->%s", i ? "," : "", res.matched_groups.v[i],
                      res.matched_roles.v[i]);
    roles = rg_buf_take(&rb);
    matched = rg_buf_take(&mb);
    char qm[512];
    rg_metrics_add("rolegate_login_successes_total", "connection", conn->id, NULL, NULL, 1);
    rg_log(RG_LOG_INFO, "event=login result=ok protocol=%s connection_id=%s "
           "organization_id=%s subject=%s user_id=%s groups=%zu matched=%s roles=%s "
           "role_source=%s token_cookie_bytes=%zu permissions_omitted=%d groups_overage=%d "
           "request_id=%s", id->protocol, conn->id, conn->org_id,
           rg_log_quote(qs, sizeof qs, id->subject), user_id, id->n_groups,
           rg_log_quote(qm, sizeof qm, matched ? matched : ""), roles ? roles : "",
           rg_core_source_name(res.source), cookie_len, omitted, id->groups_overage,
           rg_http_request_id(req));
    free(roles);
    free(matched);
    if (t) {
        t->resolve_us = resolve_us;
        t->store_us = t1 - t0 - f.sign_us - resolve_us;
        t->sign_us = f.sign_us;
        rg_log(RG_LOG_DEBUG, "event=login_timing protocol=%s verify_cpu_us=%lld "
               "resolve_cpu_us=%lld store_cpu_us=%lld sign_cpu_us=%lld", id->protocol,
               (long long)t->verify_us, (long long)t->resolve_us, (long long)t->store_us,
               (long long)t->sign_us);
    }
    rg_resolution_clear(&res);
    if (id->sid_out)   /* issue 13: the caller keeps what logout needs */
        snprintf(id->sid_out, 64, "%s", f.sess.id);
    rg_http_redirect(req, 302, return_to);
}
