/* fetch.c: the OIDC client's HTTP: a small pool of curl handles per client
 * (connections and TLS sessions reused), GET/POST with a size cap and a
 * timeout, https only (plain http to a loopback test IdP when the
 * connection allows it), and the request-duration metric (issue 11 item 9). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "oidc_internal.h"
#include "rolegate/metrics.h"

void oidc_buf_enc(rg_buf *b, const char *s)
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

/* 0 if url may be fetched: https, or http to a loopback host when the
 * connection allows it (test IdPs). Credentials in URLs are refused. */
int oidc_url_check(const rg_oidc_client *c, const char *what, const char *url, rg_error *err)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *user = NULL;
    int rc = RG_OK;
    char q[120];
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        rc = rg_error_set(err, RG_EUPSTREAM, "oidc_discovery_failed", what, "%s is not a URL: %s",
                          what, rg_log_quote(q, sizeof q, url));
    } else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
        rc = rg_error_set(err, RG_EUPSTREAM, "oidc_insecure_issuer", what,
                          "%s has credentials in the URL", what);
    } else if (strcmp(scheme, "https") == 0) {
        rc = RG_OK;
    } else if (strcmp(scheme, "http") == 0 && c->allow_http_loopback &&
               (strcmp(host, "127.0.0.1") == 0 || strcmp(host, "[::1]") == 0 ||
                strcmp(host, "localhost") == 0)) {
        rc = RG_OK;
    } else {
        rc = rg_error_set(err, RG_EUPSTREAM, "oidc_insecure_issuer", what,
                          "%s must be https (plain http only to a loopback test IdP with "
                          "allow_http_loopback): %s", what, rg_log_quote(q, sizeof q, url));
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_url_cleanup(u);
    return rc;
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


int oidc_http_do(rg_oidc_client *c, const char *code, const char *what, const char *url,
                   const char *form, struct curl_slist *extra, http_res *res, rg_error *err)
{
    memset(res, 0, sizeof *res);
    int rc = oidc_url_check(c, what, url, err);
    if (rc != RG_OK)
        return rc;
    CURL *h = handle_get(c);
    if (!h)
        return rg_error_set(err, RG_EUPSTREAM, code, what, "curl_easy_init failed");
    rg_buf_capped s = {.max = c->max_doc};
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
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, rg_buf_capped_write);
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
        rc = s.over || cc == CURLE_FILESIZE_EXCEEDED ? rg_error_set(err, RG_EUNREACHABLE, code, what, "%s over %zu bytes", what, c->max_doc)
                    : rg_error_set(err, RG_EUNREACHABLE, code, what, "%s fetch failed: %s", what,
                                   rg_log_quote(q, sizeof q, ebuf[0] ? ebuf : curl_easy_strerror(cc)));
    } else {
        char *ct = NULL;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &res->status);
        if (curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
            snprintf(res->ctype, sizeof res->ctype, "%s", ct);
        if (s.body.oom) {
            rg_buf_free(&s.body);
            rc = rg_error_set(err, RG_EUPSTREAM, code, what, "out of memory");
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

json_t *oidc_json_of(const http_res *r)
{
    return r->body.data ? json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, NULL) : NULL;
}
