/* client.c: one OIDC connection as a relying party: discovery (cached with a
 * TTL, issuer compared exactly), JWKS cache with rate-limited refetch on an
 * unknown kid (key rotation without restart), authorize URL with state,
 * nonce and PKCE S256, code exchange over libcurl, ID-token claim checks and
 * the groups claim path (R16: groups read at each login; an overage is
 * reported, never read as "no groups"). */
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
#include "rolegate/metrics.h"
#include "rolegate/util.h"

#define MAX_GROUPS      1000
#define MAX_GROUP_LEN   256
#define MAX_SUB_LEN     255
#define CURL_POOL_MAX   4

/* An immutable discovery snapshot, shared by reference count. */
typedef struct disc {
    atomic_int refs;
    char *authz, *token, *jwks_uri, *userinfo;   /* userinfo may be NULL */
    int auth_post;                               /* client_secret_post, else basic */
    int64_t fetched_us;
} disc;

struct rg_oidc_client {
    /* config, immutable after _new */
    char *issuer, *client_id, *client_secret, *redirect_uri, *scopes;
    char *groups_claim, *email_claim, *name_claim, *ca_file;
    unsigned alg_mask;
    int allow_http_loopback, use_userinfo;
    long timeout_ms;
    size_t max_doc;
    int64_t disc_ttl_us, jwks_min_refresh_us;
    int skew_s, pending_max_age_s;

    pthread_mutex_t lock;        /* guards the fields below */
    disc *disc;
    rg_oidc_keyset *jwks;
    char *jwks_from;             /* the jwks_uri the cached keyset came from */
    int64_t jwks_fetched_us, jwks_attempt_us;
    unsigned long jwks_gen;
    rg_oidc_stats stats;
    CURL *pool[CURL_POOL_MAX];
    int pool_n;

    pthread_mutex_t fetch_lock;  /* one discovery/JWKS fetch at a time */
};

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

/* Percent-encodes everything but RFC 3986 unreserved characters (valid for a
 * query string and for application/x-www-form-urlencoded bodies). */
static void buf_enc(rg_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            rg_buf_append(b, p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            rg_buf_append(b, e, 3);
        }
    }
}

static void disc_free(disc *d)
{
    if (!d || atomic_fetch_sub(&d->refs, 1) != 1)
        return;
    free(d->authz);
    free(d->token);
    free(d->jwks_uri);
    free(d->userinfo);
    free(d);
}

/* 0 if url may be fetched: https, or http to a loopback host when the
 * connection allows it (test IdPs). Credentials in URLs are refused. */
static int url_check(const rg_oidc_client *c, const char *what, const char *url, rg_error *err)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *user = NULL;
    int rc = RG_OK;
    char q[120];
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        rc = rg_error_set(err, RG_ERR, 502, "oidc_discovery_failed", what, "%s is not a URL: %s",
                          what, rg_log_quote(q, sizeof q, url));
    } else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
        rc = rg_error_set(err, RG_ERR, 502, "oidc_insecure_issuer", what,
                          "%s has credentials in the URL", what);
    } else if (strcmp(scheme, "https") == 0) {
        rc = RG_OK;
    } else if (strcmp(scheme, "http") == 0 && c->allow_http_loopback &&
               (strcmp(host, "127.0.0.1") == 0 || strcmp(host, "[::1]") == 0 ||
                strcmp(host, "localhost") == 0)) {
        rc = RG_OK;
    } else {
        rc = rg_error_set(err, RG_ERR, 502, "oidc_insecure_issuer", what,
                          "%s must be https (plain http only to a loopback test IdP with "
                          "allow_http_loopback): %s", what, rg_log_quote(q, sizeof q, url));
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_url_cleanup(u);
    return rc;
}

/* ---- client ------------------------------------------------------------- */

rg_oidc_client *rg_oidc_client_new(const rg_oidc_config *cfg, rg_error *err)
{
    if (!cfg || !cfg->issuer || !*cfg->issuer || !cfg->client_id || !*cfg->client_id ||
        !cfg->redirect_uri || !*cfg->redirect_uri) {
        rg_error_set(err, RG_EINVAL, 500, "oidc_config_invalid", NULL,
                     "issuer, client_id and redirect_uri are required");
        return NULL;
    }
    if (cfg->scopes && !strstr(cfg->scopes, "openid")) {
        rg_error_set(err, RG_EINVAL, 500, "oidc_config_invalid", "scopes",
                     "scopes must contain openid");
        return NULL;
    }
    rg_oidc_global_init();
    rg_oidc_client *c = calloc(1, sizeof *c);
    if (!c) {
        rg_error_set(err, RG_ENOMEM, 500, "oidc_config_invalid", NULL, "out of memory");
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
        rg_error_set(err, RG_ENOMEM, 500, "oidc_config_invalid", NULL, "out of memory");
        rg_oidc_client_free(c);
        return NULL;
    }
    if (rg_oidc_algs_parse(cfg->allowed_algs, &c->alg_mask, err) != RG_OK ||
        url_check(c, "issuer", c->issuer, err) != RG_OK) {
        if (err && strcmp(err->code, "oidc_discovery_failed") == 0)
            snprintf(err->code, sizeof err->code, "oidc_config_invalid");
        if (err)
            err->status = 500;
        rg_oidc_client_free(c);
        return NULL;
    }
    if (strpbrk(c->issuer, "?#")) { /* OIDC Discovery 4: no query, no fragment */
        rg_error_set(err, RG_EINVAL, 500, "oidc_config_invalid", "issuer",
                     "issuer must not have a query or fragment");
        rg_oidc_client_free(c);
        return NULL;
    }
    /* HS* is keyed with the client secret: without one it can never verify */
    unsigned hs = 0;
    rg_oidc_algs_parse("HS256 HS384 HS512", &hs, NULL);
    if ((c->alg_mask & hs) && !c->client_secret) {
        rg_error_set(err, RG_EINVAL, 500, "oidc_config_invalid", "allowed_algs",
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
    disc_free(c->disc);
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

/* ---- HTTP ----------------------------------------------------------------- */

typedef struct sink { rg_buf body; size_t cap; int over; } sink;

/* Counts bytes: CURLOPT_MAXFILESIZE does not stop a running transfer on
 * curl 7.88 (LIBRARIES.md §6), so the cap is enforced here. */
static size_t sink_write(char *p, size_t sz, size_t n, void *ud)
{
    sink *s = ud;
    size_t total = sz * n;
    if (s->body.len + total > s->cap) {
        s->over = 1;
        return 0;
    }
    rg_buf_append(&s->body, p, total);
    return s->body.oom ? 0 : total;
}

static CURL *handle_get(rg_oidc_client *c)
{
    CURL *h = NULL;
    pthread_mutex_lock(&c->lock);
    if (c->pool_n > 0)
        h = c->pool[--c->pool_n];
    pthread_mutex_unlock(&c->lock);
    return h ? h : curl_easy_init();
}

/* Back to the pool: curl_easy_reset keeps the connection and TLS caches. */
static void handle_put(rg_oidc_client *c, CURL *h)
{
    curl_easy_reset(h);
    pthread_mutex_lock(&c->lock);
    if (c->pool_n < CURL_POOL_MAX) {
        c->pool[c->pool_n++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    if (h)
        curl_easy_cleanup(h);
}

typedef struct http_res {
    long status;
    rg_buf body;          /* NUL-terminated; free with rg_buf_free */
    char ctype[80];       /* response Content-Type, "" if none */
} http_res;

/* GET (form == NULL) or POST form to url. The caller fills err's reason on
 * failure; this returns RG_EIO and a message in err with reason `code`. */
static int http_do(rg_oidc_client *c, const char *code, const char *what, const char *url,
                   const char *form, struct curl_slist *extra, http_res *res, rg_error *err)
{
    memset(res, 0, sizeof *res);
    int rc = url_check(c, what, url, err);
    if (rc != RG_OK)
        return rc;
    CURL *h = handle_get(c);
    if (!h)
        return rg_error_set(err, RG_ENOMEM, 502, code, what, "curl_easy_init failed");
    sink s = {.cap = c->max_doc};
    struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: application/json");
    for (struct curl_slist *e = extra; e && hdrs; e = e->next)
        hdrs = curl_slist_append(hdrs, e->data);
    char ebuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, c->allow_http_loopback ? "http,https" : "https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_doc);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (c->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "rolegate-oidc");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
    if (form) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, form);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(form));
    }
    int64_t t0 = rg_mono_us();
    CURLcode cc = curl_easy_perform(h);
    rg_metrics_observe("rolegate_idp_request_duration_seconds", "kind", what,
                       (double)(rg_mono_us() - t0) / 1e6);   /* issue 11 item 9 */
    char q[120];
    if (cc != CURLE_OK) {
        rg_buf_free(&s.body);
        rc = s.over || cc == CURLE_FILESIZE_EXCEEDED ? rg_error_set(err, RG_EIO, 502, code, what, "%s over %zu bytes", what, c->max_doc)
                    : rg_error_set(err, RG_EIO, 502, code, what, "%s fetch failed: %s", what,
                                   rg_log_quote(q, sizeof q, ebuf[0] ? ebuf : curl_easy_strerror(cc)));
    } else {
        char *ct = NULL;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &res->status);
        if (curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
            snprintf(res->ctype, sizeof res->ctype, "%s", ct);
        if (s.body.oom) {
            rg_buf_free(&s.body);
            rc = rg_error_set(err, RG_ENOMEM, 502, code, what, "out of memory");
        } else {
            if (!s.body.data)
                rg_buf_puts(&s.body, "");
            res->body = s.body;
        }
    }
    curl_slist_free_all(hdrs);
    handle_put(c, h);
    return rc;
}

static json_t *json_of(const http_res *r)
{
    return r->body.data ? json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, NULL) : NULL;
}

/* ---- discovery ------------------------------------------------------------ */

static int disc_fetch(rg_oidc_client *c, disc **out, rg_error *err)
{
    rg_buf url = {0};
    size_t il = strlen(c->issuer);
    rg_buf_append(&url, c->issuer, il && c->issuer[il - 1] == '/' ? il - 1 : il);
    rg_buf_puts(&url, "/.well-known/openid-configuration");
    if (url.oom)
        return rg_error_set(err, RG_ENOMEM, 502, "oidc_discovery_failed", NULL, "out of memory");
    http_res r;
    int rc = http_do(c, "oidc_discovery_failed", "discovery", url.data, NULL, NULL, &r, err);
    rg_buf_free(&url);
    pthread_mutex_lock(&c->lock);
    c->stats.discovery_fetches++;
    pthread_mutex_unlock(&c->lock);
    if (rc != RG_OK)
        return rc;
    json_t *doc = r.status == 200 ? json_of(&r) : NULL;
    rg_buf_free(&r.body);
    const char *iss = json_string_value(json_object_get(doc, "issuer"));
    const char *authz = json_string_value(json_object_get(doc, "authorization_endpoint"));
    const char *token = json_string_value(json_object_get(doc, "token_endpoint"));
    const char *jwks = json_string_value(json_object_get(doc, "jwks_uri"));
    const char *ui = json_string_value(json_object_get(doc, "userinfo_endpoint"));
    char q[120];
    if (!json_is_object(doc))
        rc = rg_error_set(err, RG_ERR, 502, "oidc_discovery_failed", "discovery",
                          "discovery answered %ld, not a JSON object", r.status);
    else if (!iss || strcmp(iss, c->issuer) != 0) /* exact: no slash or case folding */
        rc = rg_error_set(err, RG_ERR, 502, "oidc_issuer_mismatch", "issuer",
                          "discovery names issuer %s, not the configured one",
                          rg_log_quote(q, sizeof q, iss ? iss : "(none)"));
    else if (!authz || !token || !jwks)
        rc = rg_error_set(err, RG_ERR, 502, "oidc_discovery_failed", "discovery",
                          "discovery lacks authorization_endpoint, token_endpoint or jwks_uri");
    else if (url_check(c, "authorization_endpoint", authz, err) || url_check(c, "token_endpoint", token, err) ||
             url_check(c, "jwks_uri", jwks, err) || (ui && url_check(c, "userinfo_endpoint", ui, err)))
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
        d->auth_post = !basic && post;
        d->fetched_us = rg_mono_us();
    }
    json_decref(doc);
    if (!d || !d->authz || !d->token || !d->jwks_uri || (ui && !d->userinfo)) {
        disc_free(d);
        return rg_error_set(err, RG_ENOMEM, 502, "oidc_discovery_failed", NULL, "out of memory");
    }
    *out = d;
    return RG_OK;
}

/* Hands out a reference to a fresh discovery snapshot (disc_free it). A
 * stale one is kept when a refresh fails to reach the IdP, but never when
 * the IdP answers with a wrong issuer. */
static int disc_get(rg_oidc_client *c, disc **out, rg_error *err)
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
            disc_free(c->disc);
            c->disc = d;
        } else if (c->disc && rc == RG_EIO) {
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
    int rc = http_do(c, "oidc_discovery_failed", "jwks_uri", uri, NULL, NULL, &r, err);
    pthread_mutex_lock(&c->lock);
    c->stats.jwks_fetches++;
    c->jwks_attempt_us = rg_mono_us();
    pthread_mutex_unlock(&c->lock);
    if (rc != RG_OK)
        return rc;
    if (r.status != 200) {
        rg_buf_free(&r.body);
        return rg_error_set(err, RG_EIO, 502, "oidc_discovery_failed", "jwks_uri",
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
static int jwks_get(rg_oidc_client *c, const char *uri, unsigned long seen_gen,
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
                rc = rg_error_set(err, RG_ENOMEM, 502, "oidc_discovery_failed", NULL, "out of memory");
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
    if (disc_get(c, &d, err) != RG_OK)
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
    buf_enc(&b, c->client_id);
    rg_buf_puts(&b, "&redirect_uri=");
    buf_enc(&b, c->redirect_uri);
    rg_buf_puts(&b, "&scope=");
    buf_enc(&b, c->scopes);
    rg_buf_puts(&b, "&state=");
    buf_enc(&b, p->state);
    rg_buf_puts(&b, "&nonce=");
    buf_enc(&b, p->nonce);
    rg_buf_puts(&b, "&code_challenge=");
    buf_enc(&b, challenge);
    rg_buf_puts(&b, "&code_challenge_method=S256");
    disc_free(d);
    *authorize_url = rg_buf_take(&b);
    if (!*authorize_url) {
        memset(p, 0, sizeof *p);
        return rg_error_set(err, RG_ENOMEM, 500, "oidc_discovery_failed", NULL, "out of memory");
    }
    return RG_OK;
}

int rg_oidc_callback_check(const rg_oidc_client *c, const rg_oidc_pending *p,
                           const char *state, const char *iss, rg_error *err)
{
    if (!state || !p->state[0] || !rg_ct_equal(state, strlen(state), p->state, strlen(p->state)))
        return rg_error_set(err, RG_ERR, 400, "oidc_state_mismatch", "state",
                            "callback state does not match the pending login");
    /* RFC 9207: an iss parameter, when present, names the IdP that answered */
    if (iss && strcmp(iss, c->issuer) != 0)
        return rg_error_set(err, RG_ERR, 400, "oidc_wrong_issuer", "iss",
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
    return rg_error_set(err, RG_ERR, 401, "oidc_idp_error", "error",
                        "the IdP refused the login: %s", n ? code : "unknown_error");
}

/* ---- claims ------------------------------------------------------------------ */

/* Looks a claim up by dotted path ("realm_access.roles"). A top-level claim
 * whose name holds the whole path (namespaced claims such as
 * "https://example.com/groups") wins over walking the path. */
static json_t *claim_get(json_t *o, const char *path)
{
    json_t *v = json_object_get(o, path);
    if (v || !strchr(path, '.'))
        return v;
    char seg[256];
    const char *p = path;
    while (json_is_object(o)) {
        size_t n = strcspn(p, ".");
        if (n == 0 || n >= sizeof seg)
            return NULL;
        memcpy(seg, p, n);
        seg[n] = 0;
        o = json_object_get(o, seg);
        if (!p[n])
            return o;
        p += n + 1;
    }
    return NULL;
}

static char *claim_str(json_t *o, const char *path)
{
    const char *s = json_string_value(claim_get(o, path));
    return s ? strdup(s) : NULL;
}

/* 1 if the IdP marked the groups claim as left out (Entra ID overage). */
static int groups_overage(json_t *o, const char *path)
{
    json_t *names = json_object_get(o, "_claim_names");
    char first[256];
    size_t n = strcspn(path, ".");
    snprintf(first, sizeof first, "%.*s", (int)(n < sizeof first ? n : sizeof first - 1), path);
    if (json_is_object(names) && (json_object_get(names, path) || json_object_get(names, first)))
        return 1;
    return json_is_true(json_object_get(o, "hasgroups"));
}

/* Reads the groups at path into id. Returns 1 if the claim was present.
 * R15: group ids are kept byte-exact (case-sensitive, untrimmed) because
 * mappings compare them exactly. */
static int read_groups(json_t *o, const char *path, rg_oidc_identity *id, const char *issuer)
{
    json_t *v = claim_get(o, path);
    if (!v)
        return 0;
    json_t *one = json_is_string(v) ? v : NULL;
    size_t n = one ? 1 : json_array_size(v), skipped = 0;
    if (!one && !json_is_array(v)) {
        char q[120];
        rg_log(RG_LOG_WARN, "event=oidc_groups_claim_bad_type issuer=%s claim=%s",
               rg_log_quote(q, sizeof q, issuer), path);
        return 1;
    }
    id->groups = calloc(n ? n : 1, sizeof *id->groups);
    for (size_t i = 0; id->groups && i < n; i++) {
        const char *s = json_string_value(one ? one : json_array_get(v, i));
        if (!s || !*s || strlen(s) > MAX_GROUP_LEN || id->n_groups >= MAX_GROUPS) {
            skipped++;
            continue;
        }
        if ((id->groups[id->n_groups] = strdup(s)))
            id->n_groups++;
    }
    if (skipped) {
        char q[120];
        rg_log(RG_LOG_WARN, "event=oidc_groups_skipped issuer=%s count=%zu reason=\"not a string, "
               "empty, over %d bytes or over %d groups\"", rg_log_quote(q, sizeof q, issuer),
               skipped, MAX_GROUP_LEN, MAX_GROUPS);
    }
    return 1;
}

void rg_oidc_identity_clear(rg_oidc_identity *id)
{
    if (!id)
        return;
    for (size_t i = 0; i < id->n_groups; i++)
        free(id->groups[i]);
    free(id->groups);
    free(id->issuer);
    free(id->subject);
    free(id->email);
    free(id->name);
    memset(id, 0, sizeof *id);
}

/* ---- finish ---------------------------------------------------------------- */

static int token_exchange(rg_oidc_client *c, const disc *d, const rg_oidc_pending *p,
                          const char *code, json_t **resp, rg_error *err)
{
    rg_buf form = {0}, auth = {0};
    rg_buf_puts(&form, "grant_type=authorization_code&code=");
    buf_enc(&form, code);
    rg_buf_puts(&form, "&redirect_uri=");
    buf_enc(&form, c->redirect_uri);
    rg_buf_puts(&form, "&code_verifier=");
    buf_enc(&form, p->code_verifier);
    struct curl_slist *hdr = NULL;
    if (!c->client_secret || d->auth_post) {
        rg_buf_puts(&form, "&client_id=");
        buf_enc(&form, c->client_id);
        if (c->client_secret) {
            rg_buf_puts(&form, "&client_secret=");
            buf_enc(&form, c->client_secret);
        }
    } else {
        /* RFC 6749 2.3.1: id and secret are form-encoded before base64 */
        rg_buf cred = {0};
        buf_enc(&cred, c->client_id);
        rg_buf_puts(&cred, ":");
        buf_enc(&cred, c->client_secret);
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
        rc = rg_error_set(err, RG_ENOMEM, 502, "oidc_token_exchange_failed", NULL, "out of memory");
    else
        rc = http_do(c, "oidc_token_exchange_failed", "token_endpoint", d->token, form.data, hdr, &r, err);
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
    json_t *doc = json_of(&r);
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
        return rg_error_set(err, RG_ERR, r.status >= 400 && r.status < 500 ? 401 : 502,
                            "oidc_token_exchange_failed", "code",
                            "token endpoint answered %ld error=%s", r.status, n ? ecode : "-");
    }
    *resp = doc;
    return RG_OK;
}

/* A NumericDate as seconds, clamped so a huge value cannot overflow. */
static long long num_secs(json_t *v)
{
    double d = json_number_value(v);
    return d > 9e15 ? 9000000000000000LL : d < -9e15 ? -9000000000000000LL : (long long)d;
}

/* The claim checks of OIDC Core 3.1.3.7 after the signature. */
static int check_claims(const rg_oidc_client *c, json_t *cl, const rg_oidc_pending *p,
                        int64_t now, rg_error *err)
{
    const char *iss = json_string_value(json_object_get(cl, "iss"));
    if (!iss || strcmp(iss, c->issuer) != 0)
        return rg_error_set(err, RG_ERR, 401, "oidc_wrong_issuer", "iss",
                            "ID token iss is not the connection's issuer");
    json_t *aud = json_object_get(cl, "aud");
    int aud_ok = 0;
    size_t n_aud = 0;
    if (json_is_string(aud)) {
        n_aud = 1;
        aud_ok = strcmp(json_string_value(aud), c->client_id) == 0;
    } else if (json_is_array(aud)) {
        size_t i;
        json_t *a;
        n_aud = json_array_size(aud);
        json_array_foreach(aud, i, a)
            aud_ok |= json_is_string(a) && strcmp(json_string_value(a), c->client_id) == 0;
    }
    if (!aud_ok)
        return rg_error_set(err, RG_ERR, 401, "oidc_wrong_audience", "aud",
                            "ID token aud does not contain this client_id");
    json_t *azp = json_object_get(cl, "azp");
    if (azp ? !json_is_string(azp) || strcmp(json_string_value(azp), c->client_id) != 0 : n_aud > 1)
        return rg_error_set(err, RG_ERR, 401, "oidc_wrong_azp", "azp", "%s",
                            azp ? "ID token azp is not this client_id"
                                : "ID token has several audiences and no azp");
    json_t *exp = json_object_get(cl, "exp"), *iat = json_object_get(cl, "iat");
    json_t *nbf = json_object_get(cl, "nbf");
    if (!json_is_number(exp) || !json_is_number(iat) || (nbf && !json_is_number(nbf)))
        return rg_error_set(err, RG_ERR, 401, "oidc_id_token_malformed", "exp",
                            "ID token exp/iat missing or not numbers");
    long long e = num_secs(exp), ia = num_secs(iat), nb = nbf ? num_secs(nbf) : 0;
    if (e <= now - c->skew_s)
        return rg_error_set(err, RG_ERR, 401, "oidc_expired", "exp",
                            "ID token expired (exp %lld, now %lld)", e, (long long)now);
    if (ia > now + c->skew_s)
        return rg_error_set(err, RG_ERR, 401, "oidc_iat_future", "iat",
                            "ID token issued in the future (iat %lld, now %lld)", ia, (long long)now);
    if (nbf && nb > now + c->skew_s)
        return rg_error_set(err, RG_ERR, 401, "oidc_iat_future", "nbf",
                            "ID token not valid yet (nbf %lld, now %lld)", nb, (long long)now);
    const char *nonce = json_string_value(json_object_get(cl, "nonce"));
    if (!nonce || !rg_ct_equal(nonce, strlen(nonce), p->nonce, strlen(p->nonce)))
        return rg_error_set(err, RG_ERR, 401, "oidc_nonce_mismatch", "nonce",
                            "ID token nonce does not match the pending login");
    const char *sub = json_string_value(json_object_get(cl, "sub"));
    if (!sub || !*sub || strlen(sub) > MAX_SUB_LEN)
        return rg_error_set(err, RG_ERR, 401, "oidc_id_token_malformed", "sub",
                            "ID token sub missing, empty or over 255 chars");
    return RG_OK;
}

static int userinfo(rg_oidc_client *c, const disc *d, const char *access_token,
                    json_t **out, rg_error *err)
{
    if (!d->userinfo || !access_token)
        return rg_error_set(err, RG_ERR, 502, "oidc_userinfo_failed", "userinfo", "%s",
                            d->userinfo ? "no access_token to call userinfo with"
                                        : "the IdP has no userinfo_endpoint");
    rg_buf auth = {0};
    rg_buf_printf(&auth, "Authorization: Bearer %s", access_token);
    struct curl_slist *hdr = auth.oom ? NULL : curl_slist_append(NULL, auth.data);
    http_res r = {0};
    int rc = hdr ? http_do(c, "oidc_userinfo_failed", "userinfo", d->userinfo, NULL, hdr, &r, err)
                 : rg_error_set(err, RG_ENOMEM, 502, "oidc_userinfo_failed", NULL, "out of memory");
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
    json_t *doc = r.status == 200 && strncmp(r.ctype, "application/json", 16) == 0 ? json_of(&r) : NULL;
    rg_buf_free(&r.body);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return rg_error_set(err, RG_ERR, 502, "oidc_userinfo_failed", "userinfo",
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
        return rg_error_set(err, RG_ERR, 400, "oidc_token_exchange_failed", "code",
                            "callback has no usable code");
    if (!p->nonce[0] || !p->code_verifier[0])
        return rg_error_set(err, RG_ERR, 400, "oidc_state_mismatch", "state", "pending login is empty");
    if (p->created_at && now - p->created_at > c->pending_max_age_s)
        return rg_error_set(err, RG_ERR, 400, "oidc_state_expired", "state",
                            "pending login is older than %d s", c->pending_max_age_s);
    disc *d = NULL;
    if (disc_get(c, &d, err) != RG_OK)
        return RG_ERR;
    json_t *tok = NULL, *claims = NULL, *ui = NULL;
    rg_oidc_jws *jws = NULL;
    rg_oidc_keyset *ks = NULL;
    int64_t t0 = rg_mono_us(), c0 = rg_thread_cpu_us();
    int rc = token_exchange(c, d, p, code, &tok, err);
    int64_t t1 = rg_mono_us(), c1 = rg_thread_cpu_us();
    last_timing.exchange_wall_us = t1 - t0;
    last_timing.exchange_cpu_us = c1 - c0;
    if (rc != RG_OK)
        goto out;
    const char *id_token = json_string_value(json_object_get(tok, "id_token"));
    if (!id_token) {
        rc = rg_error_set(err, RG_ERR, 502, "oidc_id_token_malformed", "id_token",
                          "token response has no id_token");
        goto out;
    }
    if ((rc = rg_oidc_jws_parse(id_token, &jws, err)) != RG_OK ||
        (rc = rg_oidc_jws_check_alg(jws, c->alg_mask, err)) != RG_OK)
        goto out;
    unsigned long gen = 0;
    if ((rc = jwks_get(c, d->jwks_uri, 0, &ks, &gen, err)) != RG_OK)
        goto out;
    rc = rg_oidc_jws_verify(jws, ks, c->alg_mask, c->client_secret, err);
    if (rc == RG_ENOTFOUND) {
        /* unknown kid: the IdP may have rotated; refetch (rate-limited) */
        rg_oidc_keyset_free(ks);
        ks = NULL;
        if ((rc = jwks_get(c, d->jwks_uri, gen, &ks, &gen, err)) != RG_OK)
            goto out;
        rc = rg_oidc_jws_verify(jws, ks, c->alg_mask, c->client_secret, err);
    }
    if (rc != RG_OK) {
        rc = RG_ERR;
        goto out;
    }
    size_t pl = 0;
    const char *payload = rg_oidc_jws_payload(jws, &pl);
    claims = json_loadb(payload, pl, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(claims)) {
        rc = rg_error_set(err, RG_ERR, 401, "oidc_id_token_malformed", "id_token",
                          "ID token payload is not a JSON object");
        goto out;
    }
    if ((rc = check_claims(c, claims, p, now, err)) != RG_OK)
        goto out;
    out->issuer = strdup(c->issuer);
    out->subject = strdup(json_string_value(json_object_get(claims, "sub")));
    out->email = claim_str(claims, c->email_claim);
    out->name = claim_str(claims, c->name_claim);
    out->email_verified = json_is_true(json_object_get(claims, "email_verified"));
    int have = read_groups(claims, c->groups_claim, out, c->issuer);
    out->groups_overage = !have && groups_overage(claims, c->groups_claim);
    if (!have && c->use_userinfo) {
        const char *at = json_string_value(json_object_get(tok, "access_token"));
        if ((rc = userinfo(c, d, at, &ui, err)) != RG_OK)
            goto out;
        const char *usub = json_string_value(json_object_get(ui, "sub"));
        if (!usub || strcmp(usub, out->subject) != 0) {
            rc = rg_error_set(err, RG_ERR, 401, "oidc_userinfo_failed", "sub",
                              "userinfo sub differs from the ID token's");
            goto out;
        }
        if ((out->groups_from_userinfo = read_groups(ui, c->groups_claim, out, c->issuer)))
            out->groups_overage = 0;
        else
            out->groups_overage |= groups_overage(ui, c->groups_claim);
        if (!out->email)
            out->email = claim_str(ui, c->email_claim);
        if (!out->name)
            out->name = claim_str(ui, c->name_claim);
    }
    if (!out->issuer || !out->subject || (have && !out->groups)) {
        rc = rg_error_set(err, RG_ENOMEM, 500, "oidc_id_token_malformed", NULL, "out of memory");
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
    rg_oidc_keyset_free(ks);
    disc_free(d);
    return rc == RG_OK ? RG_OK : RG_ERR;
}
