/* saml_routes.c: the SAML side of the logins: GET /saml/metadata/{id} (our
 * SP metadata), the signed AuthnRequest redirect of /login, POST
 * /saml/acs/{id} (pending login taken once, library verification with the
 * replay cache, then R15-R18 + R24 through lg_finish) and, on the admin
 * listener, PUT /connections/{id}/metadata (IdP metadata lint, fail closed;
 * a new signing certificate needs ?confirm_certificate_change=true, issue 11
 * item 7). */
#include <assert.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>
#include "login_internal.h"
#include "rolegate/metrics.h"
#include "rolegate/store.h"
#include "rolegate/util.h"

/* ---- GET /saml/metadata/{connection_id} ---------------------------------- */

void lg_h_saml_metadata(rg_http_req *req, void *ctx)
{
    /* Served from the stored connection alone (issue 11 item 1): the IdP
     * needs the SP's entityID, ACS URL and certificate before it can give
     * the metadata that makes the connection usable. */
    rg_gateway_login *lg = ctx;
    rg_error err;
    rg_error_clear(&err);
    const char *id = rg_http_param(req, "id");
    json_t *conn = NULL;
    char eid[RG_SAML_URL_MAX], acs[RG_SAML_URL_MAX];
    char *xml = NULL;
    if (!id || strlen(id) >= LG_ID_MAX ||
        rg_store_connection_get(lg->ctx->store, id, &conn, &err) != 0 ||
        !json_is_string(json_object_get(conn, "type")) ||
        strcmp(json_string_value(json_object_get(conn, "type")), "saml") != 0) {
        rg_error_set(&err, RG_ENOTFOUND, 404, "connection_not_found", "connection_id",
                     "no such SAML connection");
    } else if (rg_saml_sp_urls(lg->base, id, eid, acs, sizeof eid) != 0) {
        rg_error_set(&err, RG_EINVAL, 500, "config_invalid", "base_url", "base_url too long");
    } else {
        lg_sp_keys_lazy(lg);
        xml = rg_saml_sp_metadata_build(eid, acs, NULL, lg->cfg->saml.sp_cert_file, &err);
    }
    json_decref(conn);
    if (!xml) {
        rg_http_send_error(req, &err);
        return;
    }
    rg_http_send(req, 200, "application/samlmetadata+xml", xml, strlen(xml));
    free(xml);
}

/* ---- /login → IdP ----------------------------------------------------------- */

void lg_saml_begin(rg_http_req *req, rg_gateway_login *lg, const lg_conn *c, lg_pending *p)
{
    rg_error err;
    rg_error_clear(&err);
    char *url = NULL;
    p->kind = 's';
    if (rg_saml_authn_request(c->saml, NULL, &url, p->request_id, &err) != 0) {
        lg_page(req, err.status ? err.status : 500, "Sign-in unavailable", err.code,
                "The sign-in request could not be built.");
        return;
    }
    if (lg_pending_put(lg->pending, p, &err) != 0) {
        free(url);
        lg_page(req, err.status ? err.status : 500, "Sign-in unavailable", err.code,
                "The sign-in could not be started.");
        return;
    }
    char *cookie = lg_state_cookie(req, lg, p->key, LG_STATE_TTL_S);
    if (cookie)
        rg_http_add_header(req, "Set-Cookie", cookie);
    rg_http_add_header(req, "Cache-Control", "no-store");
    rg_log(RG_LOG_INFO, "event=login_started protocol=saml connection_id=%s request_id=%s",
           c->id, rg_http_request_id(req));
    rg_http_redirect(req, 302, url);
    free(url);
}

/* ---- POST /saml/acs/{connection_id} ------------------------------------------ */

/* The InResponseTo of the root element of an UNVERIFIED response, used only
 * as a lookup key for the pending login under plain http (the library then
 * checks it against the pending request id). "" when absent. */
static void peek_in_response_to(const char *b64, size_t len, size_t max, char *out,
                                size_t outsz)
{
    out[0] = 0;
    if (len > max / 3 * 4 + 8)
        return;
    unsigned char *x = malloc(len / 4 * 3 + 4);
    if (!x)
        return;
    long n = rg_b64_decode(b64, len, x);
    if (n <= 0) {
        free(x);
        return;
    }
    x[n] = 0;
    /* the root element: the first '<' not starting "<?" or "<!" */
    const char *p = (const char *)x;
    while ((p = strchr(p, '<')) && (p[1] == '?' || p[1] == '!'))
        p++;
    const char *end = p ? strchr(p, '>') : NULL;
    for (const char *a = p; a && end && (a = strstr(a, "InResponseTo")) && a < end; a++) {
        if (!isspace((unsigned char)a[-1]))
            continue;
        const char *q = a + 12;
        while (isspace((unsigned char)*q))
            q++;
        if (*q++ != '=')
            continue;
        while (isspace((unsigned char)*q))
            q++;
        char quote = *q++;
        if (quote != '"' && quote != '\'')
            break;
        size_t l = strcspn(q, quote == '"' ? "\"" : "'");
        if (l < outsz && q + l < end) {
            memcpy(out, q, l);
            out[l] = 0;
        }
        break;
    }
    free(x);
}

void lg_h_saml_acs(rg_http_req *req, void *ctx)
{
    rg_gateway_login *lg = ctx;
    rg_error err;
    rg_error_clear(&err);
    lg_conn *c = NULL;
    const char *cid = rg_http_param(req, "id");
    if (lg_conn_acquire(lg, cid, &c, &err) != 0 || c->type != 's') {
        if (c)
            rg_error_set(&err, RG_ENOTFOUND, 404, "connection_not_found", "connection_id",
                         "not a SAML connection");
        lg_conn_release(lg, c);
        /* no known connection: nothing to record it under */
        lg_page(req, err.status ? err.status : 404, "Sign-in failed", err.code,
                "This sign-in address is not known.");
        return;
    }
    const char *resp = rg_http_form(req, "SAMLResponse");
    if (!resp || !*resp) {
        rg_error_set(&err, RG_EINVAL, 400, "saml_malformed", "SAMLResponse",
                     "no SAMLResponse in the form");
        lg_fail(req, lg, c->id, c->org_id, "saml", NULL, &err);
        lg_conn_release(lg, c);
        return;
    }
    size_t rlen = strlen(resp);

    /* The pending login, taken once. Bound to the browser by the state
     * cookie (SameSite=None; Secure under https). Under plain http the
     * cross-site POST carries no cookie, so the request id the IdP echoes
     * (InResponseTo) finds it; the library then requires equality. */
    lg_pending p;
    int have = 0;
    rg_error serr;
    rg_error_clear(&serr);
    const char *key = rg_http_cookie(req, LG_STATE_COOKIE);
    if (key && lg_pending_take_key(lg->pending, key, &p, &serr) == 0)
        have = p.kind == 's' && strcmp(p.conn_id, c->id) == 0;
    if (!have && !lg->secure) {
        char irt[RG_SAML_REQUEST_ID_MAX];
        peek_in_response_to(resp, rlen, lg->cfg->saml.max_response, irt, sizeof irt);
        if (irt[0] && lg_pending_take_request(lg->pending, irt, &p, &serr) == 0)
            have = strcmp(p.conn_id, c->id) == 0;
    }
    if (!have && serr.status == 503) {
        /* the login may be pending in Redis, which is down: say so rather
         * than judge the response as unsolicited */
        lg_fail(req, lg, c->id, c->org_id, "saml", NULL, &serr);
        lg_conn_release(lg, c);
        return;
    }

    rg_saml_identity id;
    memset(&id, 0, sizeof id);
    lg_timing t = {0};
    int64_t t0 = rg_thread_cpu_us();
    /* the replay cache of the cache layer: Redis (shared) when configured,
     * with this connection's own quota (issue 11 item 12) */
    rg_cache_replay_scope scope = {.cache = lg->ctx->cache, .connection_id = c->id};
    int rc = rg_saml_acs_verify(c->saml, resp, rlen, have ? p.request_id : NULL, 0,
                                rg_cache_replay_check_scoped, &scope, &id, &err);
    t.verify_us = rg_thread_cpu_us() - t0;
    if (rc) {
        lg_fail(req, lg, c->id, c->org_id, "saml", NULL, &err);
        rg_saml_identity_clear(&id);
        lg_conn_release(lg, c);
        return;
    }
    /* IdP-initiated (allowed by the connection): nowhere to go back but / */
    const char *return_to = have && p.return_to[0] ? p.return_to : "/";
    lg_identity li = {
        .subject = id.subject,
        .email = id.email,
        .name = id.name,
        .groups = (const char *const *)id.groups,
        .n_groups = id.n_groups,
        .protocol = "saml",
        .subject_format = id.subject_format,
        .idp_session = id.session_index,   /* for single logout (issue 13) */
    };
    lg_finish(req, lg, c, &li, return_to, &t);
    rg_saml_identity_clear(&id);
    lg_conn_release(lg, c);
}

/* ---- PUT /connections/{id}/metadata (admin) ------------------------------- */

typedef struct fetch_buf { char *data; size_t len, max; int over; } fetch_buf;

static size_t fetch_write(char *p, size_t sz, size_t nm, void *ud)
{
    fetch_buf *b = ud;
    size_t n = sz * nm;
    if (b->len + n > b->max) {
        b->over = 1;
        return 0;   /* abort: CURLE_WRITE_ERROR (7.88 cannot cap otherwise) */
    }
    char *d = realloc(b->data, b->len + n + 1);
    if (!d)
        return 0;
    memcpy(d + b->len, p, n);
    b->data = d;
    b->len += n;
    d[b->len] = 0;
    return n;
}

/* 1 if the URL's host is 127.0.0.1, ::1 or localhost. */
static int url_loopback(const char *url)
{
    const char *h = strstr(url, "://");
    if (!h)
        return 0;
    h += 3;
    size_t n = strcspn(h, "/?#");
    const char *at = memchr(h, '@', n);
    if (at)
        return 0;
    if (n >= 9 && strncmp(h, "127.0.0.1", 9) == 0 && (n == 9 || h[9] == ':'))
        return 1;
    if (n >= 5 && strncmp(h, "[::1]", 5) == 0 && (n == 5 || h[5] == ':'))
        return 1;
    if (n >= 9 && strncasecmp(h, "localhost", 9) == 0 && (n == 9 || h[9] == ':'))
        return 1;
    return 0;
}

/* Fetches metadata from url: https with TLS verified (plain http only to a
 * loopback host with oidc.allow_http_loopback, for tests), no redirects,
 * time and size limits. *out malloc'd. */
static int fetch_metadata(const rg_config *cfg, const char *url, char **out, size_t *len,
                          rg_error *err)
{
    *out = NULL;
    int http = strncasecmp(url, "http://", 7) == 0;
    if (strncasecmp(url, "https://", 8) != 0 && !(http && cfg->oidc.allow_http_loopback &&
                                                  url_loopback(url)))
        return rg_error_set(err, RG_EINVAL, 422, "metadata_url_insecure", "metadata_url",
                            "metadata_url must be https (http only for loopback test IdPs "
                            "with oidc.allow_http_loopback)");
    CURL *h = curl_easy_init();
    if (!h)
        return rg_error_set(err, RG_ENOMEM, 500, "internal", NULL, "curl init failed");
    fetch_buf b = {.max = RG_SAML_MAX_METADATA};
    long timeout = cfg->oidc.http_timeout_ms > 0 ? cfg->oidc.http_timeout_ms : 5000;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, http ? "http" : "https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)RG_SAML_MAX_METADATA);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fetch_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "rolegate");
    int64_t t0 = rg_mono_us();
    CURLcode cr = curl_easy_perform(h);
    rg_metrics_observe("rolegate_idp_request_duration_seconds", "kind", "saml_metadata",
                       (double)(rg_mono_us() - t0) / 1e6);   /* issue 11 item 9 */
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    if (b.over || cr == CURLE_FILESIZE_EXCEEDED) {
        free(b.data);
        return rg_error_set(err, RG_EINVAL, 422, "metadata_too_large", "metadata_url",
                            "the metadata is larger than %u bytes", RG_SAML_MAX_METADATA);
    }
    if (cr != CURLE_OK || code != 200 || !b.data) {
        free(b.data);
        return rg_error_set(err, RG_EIO, 422, "metadata_fetch_failed", "metadata_url",
                            "fetching the metadata failed: %s (HTTP %ld)",
                            cr != CURLE_OK ? curl_easy_strerror(cr) : "bad status", code);
    }
    *out = b.data;
    *len = b.len;
    return 0;
}

/* SHA-256 fingerprints of the certificates that may sign (use "signing" or
 * unspecified) as a JSON array (new ref). */
static json_t *signing_fps(const rg_saml_metadata_info *info)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < info->n_certs; i++)
        if (strcmp(info->certs[i].use, "encryption") != 0)
            json_array_append_new(a, json_string(info->certs[i].sha256));
    return a;
}

static int fp_in(const json_t *arr, const json_t *fp)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
        if (json_equal(e, fp))
            return 1;
    return 0;
}

/* Issue 11 item 7: the stored metadata's signing fingerprints (new ref), or
 * NULL when the connection had none (a first upload needs no confirmation).
 * Unreadable old metadata counts as no known certificate: any is a change. */
static json_t *stored_fps(const json_t *conn)
{
    const char *md = json_string_value(json_object_get(conn, "idp_metadata"));
    if (!md || !*md)
        return NULL;
    rg_saml_metadata_info oi;
    memset(&oi, 0, sizeof oi);
    json_t *fps = rg_saml_metadata_lint(md, strlen(md), 1, 0, &oi, NULL) == 0 ? signing_fps(&oi)
                                                                             : json_array();
    rg_saml_metadata_info_clear(&oi);
    return fps;
}

/* 1 if new_fp names a signing certificate that old_fp does not (a rollover
 * that only drops an old certificate needs no confirmation). */
static int certs_changed(const json_t *old_fp, const json_t *new_fp)
{
    size_t i;
    json_t *e;
    json_array_foreach(new_fp, i, e)
        if (!fp_in(old_fp, e))
            return 1;
    return 0;
}

/* 409 certificate_change, naming the old and new fingerprints. */
static void send_cert_change(rg_http_req *req, json_t *old_fp, json_t *new_fp)
{
    const char *o = json_string_value(json_array_get(old_fp, 0));
    const char *n = json_string_value(json_array_get(new_fp, 0));
    char msg[400];
    snprintf(msg, sizeof msg, "the IdP's signing certificate changes (SHA-256 %s -> %s); "
             "repeat with ?confirm_certificate_change=true if this is expected",
             o ? o : "none", n ? n : "none");
    json_t *body = json_pack("{s:s,s:s,s:[{s:s,s:s}],s:O,s:O}", "code", "certificate_change",
                             "message", msg, "errors", "field", "confirm_certificate_change",
                             "code", "certificate_change", "old_certificates_sha256", old_fp,
                             "new_certificates_sha256", new_fp);
    rg_http_send_json(req, 409, body);
}

void lg_h_metadata_put(rg_http_req *req, void *ctx)
{
    rg_gateway_login *lg = ctx;
    const rg_config *cfg = lg->cfg;
    rg_error err;
    rg_error_clear(&err);
    const char *id = rg_http_param(req, "id");
    json_t *conn = NULL, *out = NULL, *old_fp = NULL, *new_fp = NULL;
    char *fetched = NULL, *url = NULL;
    rg_saml_metadata_info info;
    memset(&info, 0, sizeof info);
    if (rg_store_connection_get(lg->ctx->store, id, &conn, &err) != 0)
        goto reply;
    const char *type = json_string_value(json_object_get(conn, "type"));
    if (!type || strcmp(type, "saml") != 0) {
        rg_error_set(&err, RG_EINVAL, 422, "connection_not_saml", "type",
                     "IdP metadata belongs to SAML connections");
        goto reply;
    }
    const char *confirm = rg_http_query(req, "confirm_certificate_change");
    if (confirm && strcmp(confirm, "true") != 0 && strcmp(confirm, "false") != 0) {
        rg_error_set(&err, RG_EINVAL, 422, "invalid_request", "confirm_certificate_change",
                     "confirm_certificate_change is true or false");
        goto reply;
    }
    size_t len = 0;
    const char *body = rg_http_body(req, &len);
    const char *ct = rg_http_content_type(req);
    size_t ctl = strcspn(ct, "; \t");
    const char *xml = NULL;
    if ((ctl == 28 && strncasecmp(ct, "application/samlmetadata+xml", 28) == 0) ||
        (ctl == 15 && strncasecmp(ct, "application/xml", 15) == 0) ||
        (ctl == 8 && strncasecmp(ct, "text/xml", 8) == 0)) {
        xml = body;
    } else if (ctl == 16 && strncasecmp(ct, "application/json", 16) == 0) {
        json_error_t je;
        json_t *j = json_loadb(body ? body : "", len, 0, &je);
        const char *u = json_string_value(json_object_get(j, "metadata_url"));
        if (!j) {
            rg_error_set(&err, RG_EINVAL, 400, "invalid_json", NULL, "the body is not JSON");
        } else if (!json_is_object(j) || !u || json_object_size(j) != 1) {
            rg_error_set(&err, RG_EINVAL, 422, "invalid_request", "metadata_url",
                         "the JSON body is {\"metadata_url\": \"https://...\"}");
        } else {
            url = strdup(u);
        }
        json_decref(j);
        if (!url)
            goto reply;
        if (fetch_metadata(cfg, url, &fetched, &len, &err) != 0)
            goto reply;
        xml = fetched;
    } else {
        rg_error_set(&err, RG_EINVAL, 415, "unsupported_media_type", "Content-Type",
                     "send the metadata as application/samlmetadata+xml or "
                     "application/xml, or JSON {\"metadata_url\"}");
        goto reply;
    }
    if (!xml || len == 0) {
        rg_error_set(&err, RG_EINVAL, 422, "invalid_metadata", "EntityDescriptor",
                     "the metadata is empty");
        goto reply;
    }
    /* fail closed: the lint, then lasso itself must load it; the connection
     * keeps its previous metadata on any failure */
    if (rg_saml_metadata_lint(xml, len, cfg->saml.allow_sha1, 0, &info, &err) != 0) {
        if (!err.field[0])   /* not XML at all: no element to name */
            snprintf(err.field, sizeof err.field, "body");
        goto reply;
    }
    {
        char eid[RG_SAML_URL_MAX], acs[RG_SAML_URL_MAX];
        if (rg_saml_sp_urls(lg->base, id, eid, acs, sizeof eid) != 0) {
            rg_error_set(&err, RG_EINVAL, 500, "config_invalid", "base_url", "base_url too long");
            goto reply;
        }
        rg_saml_conn_config sc;
        rg_saml_conn_config_init(&sc);
        sc.connection_id = id;
        sc.sp_entity_id = eid;
        sc.acs_url = acs;
        sc.sp_key_file = cfg->saml.sp_key_file;
        sc.sp_cert_file = cfg->saml.sp_cert_file;
        sc.idp_metadata = info.entity_xml;
        sc.idp_metadata_len = strlen(info.entity_xml);
        sc.allow_sha1 = cfg->saml.allow_sha1;
        lg_sp_keys_lazy(lg);
        rg_saml_connection *trial = rg_saml_connection_new(&sc, &err);
        if (!trial)
            goto reply;
        rg_saml_connection_free(trial);
    }
    /* item 7: a signing key the IdP did not have before is a trust change */
    new_fp = signing_fps(&info);
    old_fp = stored_fps(conn);
    int changed = old_fp && new_fp && certs_changed(old_fp, new_fp);
    if (changed && !(confirm && strcmp(confirm, "true") == 0)) {
        rg_log(RG_LOG_WARN, "event=saml_metadata_refused connection_id=%s "
               "reason=certificate_change", id);
        send_cert_change(req, old_fp, new_fp);
        goto done;
    }
    json_t *patch = json_pack("{s:s, s:s, s:o, s:O}", "idp_metadata", info.entity_xml,
                              "idp_entity_id", info.entity_id, "idp_metadata_url",
                              url ? json_string(url) : json_null(),
                              "idp_certificates_sha256", new_fp ? new_fp : json_null());
    if (patch && changed)   /* connection.updated then carries both */
        json_object_set(patch, "idp_previous_certificates_sha256", old_fp);
    int rc = patch ? rg_store_connection_update(lg->ctx->store, id, NULL, patch, NULL, &err)
                   : rg_error_set(&err, RG_ENOMEM, 500, "internal", NULL, "out of memory");
    json_decref(patch);
    if (rc)
        goto reply;
    char *ij = rg_saml_metadata_info_json(&info);
    out = ij ? json_loads(ij, 0, NULL) : NULL;
    free(ij);
    if (!out) {
        rg_error_set(&err, RG_ENOMEM, 500, "internal", NULL, "out of memory");
        goto reply;
    }
    json_object_set_new(out, "object", json_string("connection_metadata"));
    json_object_set_new(out, "connection_id", json_string(id));
    if (url)
        json_object_set_new(out, "metadata_url", json_string(url));
    if (changed)
        json_object_set(out, "previous_certificates_sha256", old_fp);
    rg_log(RG_LOG_INFO, "event=saml_metadata_updated connection_id=%s certificates=%zu "
           "warnings=%zu certificate_changed=%d", id, info.n_certs, info.n_warnings, changed);
reply:
    if (out)
        rg_http_send_json(req, 200, out);
    else
        rg_http_send_error(req, &err);
done:
    rg_saml_metadata_info_clear(&info);
    json_decref(conn);
    json_decref(old_fp);
    json_decref(new_fp);
    free(fetched);
    free(url);
}
