/* metadata.c: PUT /connections/{id}/metadata on the admin listener (and,
 * re-served, the setup portal): the IdP metadata of a SAML connection, as
 * XML or as {"metadata_url"} fetched here (https, no redirects, size and
 * time limits). Fail closed: the lint, then lasso itself must load it as a
 * trial connection, else the connection keeps its previous metadata. A
 * signing certificate the IdP did not have before is a trust change that
 * needs ?confirm_certificate_change=true (409 certificate_change otherwise). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>
#include "rolegate/api.h"
#include "rolegate/metrics.h"
#include "rolegate/saml.h"
#include "rolegate/store.h"
#include "rolegate/util.h"

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
        return rg_error_set(err, RG_EUNPROCESSABLE, "metadata_url_insecure", "metadata_url",
                            "metadata_url must be https (http only for loopback test IdPs "
                            "with oidc.allow_http_loopback)");
    CURL *h = curl_easy_init();
    if (!h)
        return rg_error_set(err, RG_ENOMEM, "internal", NULL, "curl init failed");
    rg_buf_capped b = {.max = RG_SAML_MAX_METADATA};
    long timeout = cfg->oidc.http_timeout_ms > 0 ? cfg->oidc.http_timeout_ms : 5000;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, http ? "http" : "https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)RG_SAML_MAX_METADATA);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, rg_buf_capped_write);
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
        rg_buf_free(&b.body);
        return rg_error_set(err, RG_EUNPROCESSABLE, "metadata_too_large", "metadata_url",
                            "the metadata is larger than %u bytes", RG_SAML_MAX_METADATA);
    }
    if (cr != CURLE_OK || code != 200 || !b.body.data) {
        rg_buf_free(&b.body);
        return rg_error_set(err, RG_EUNPROCESSABLE, "metadata_fetch_failed", "metadata_url",
                            "fetching the metadata failed: %s (HTTP %ld)",
                            cr != CURLE_OK ? curl_easy_strerror(cr) : "bad status", code);
    }
    *len = b.body.len;
    *out = rg_buf_take(&b.body);
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

/* The metadata XML of the request: the body (an XML content type) or the
 * document at {"metadata_url"} (JSON; *fetched and *url malloc'd, freed by
 * the caller). 0 with *xml and *len, or an error. */
static int metadata_of_request(rg_http_req *req, const rg_config *cfg, const char **xml,
                               size_t *len, char **fetched, char **url, rg_error *err)
{
    const char *body = rg_http_body(req, len);
    const char *ct = rg_http_content_type(req);
    size_t ctl = strcspn(ct, "; \t");
    *xml = NULL;
    if ((ctl == 28 && strncasecmp(ct, "application/samlmetadata+xml", 28) == 0) ||
        (ctl == 15 && strncasecmp(ct, "application/xml", 15) == 0) ||
        (ctl == 8 && strncasecmp(ct, "text/xml", 8) == 0)) {
        *xml = body;
    } else if (ctl == 16 && strncasecmp(ct, "application/json", 16) == 0) {
        json_error_t je;
        json_t *j = json_loadb(body ? body : "", *len, 0, &je);
        const char *u = json_string_value(json_object_get(j, "metadata_url"));
        if (!j)
            rg_error_set(err, RG_EINVAL, "invalid_json", NULL, "the body is not JSON");
        else if (!json_is_object(j) || !u || json_object_size(j) != 1)
            rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", "metadata_url",
                         "the JSON body is {\"metadata_url\": \"https://...\"}");
        else
            *url = strdup(u);
        json_decref(j);
        if (!*url)
            return -1;
        if (fetch_metadata(cfg, *url, fetched, len, err) != 0)
            return -1;
        *xml = *fetched;
    } else {
        return rg_error_set(err, RG_EMEDIATYPE, "unsupported_media_type", "Content-Type",
                            "send the metadata as application/samlmetadata+xml or "
                            "application/xml, or JSON {\"metadata_url\"}");
    }
    if (!*xml || *len == 0)
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_metadata", "EntityDescriptor",
                            "the metadata is empty");
    return 0;
}

/* Fail closed: the lint (info filled), then lasso itself must load the
 * metadata as a trial connection of connection id. 0 or an error. */
static int metadata_check(const rg_api *api, const char *id, const char *xml, size_t len,
                          rg_saml_metadata_info *info, rg_error *err)
{
    const rg_ctx *ctx = rg_api_ctx(api);
    const rg_config *cfg = ctx->config;
    if (rg_saml_metadata_lint(xml, len, cfg->saml.allow_sha1, 0, info, err) != 0) {
        if (!err->field[0])   /* not XML at all: no element to name */
            snprintf(err->field, sizeof err->field, "body");
        return -1;
    }
    char eid[RG_SAML_URL_MAX], acs[RG_SAML_URL_MAX];
    if (rg_saml_sp_urls(rg_api_base_url(api), id, eid, acs, sizeof eid) != 0)
        return rg_error_set(err, RG_EINTERNAL, "config_invalid", "base_url",
                            "base_url too long");
    rg_saml_conn_config sc;
    rg_saml_conn_config_init(&sc);
    sc.connection_id = id;
    sc.sp_entity_id = eid;
    sc.acs_url = acs;
    sc.sp_key_file = cfg->saml.sp_key_file;
    sc.sp_cert_file = cfg->saml.sp_cert_file;
    sc.idp_metadata = info->entity_xml;
    sc.idp_metadata_len = strlen(info->entity_xml);
    sc.allow_sha1 = cfg->saml.allow_sha1;
    rg_saml_sp_keys_ensure(ctx->sp_keys);   /* made at the first SAML use */
    rg_saml_connection *trial = rg_saml_connection_new(&sc, err);
    if (!trial)
        return -1;
    rg_saml_connection_free(trial);
    return 0;
}

/* Stores the checked metadata on connection id and builds the answer
 * (*out, a new reference). changed: the signing certificates changed
 * (confirmed), old_fp then goes into the event and the answer. */
static int metadata_store(const rg_api *api, const char *id, const rg_saml_metadata_info *info,
                          const char *url, json_t *old_fp, json_t *new_fp, int changed,
                          json_t **out, rg_error *err)
{
    json_t *patch = json_pack("{s:s, s:s, s:o, s:O}", "idp_metadata", info->entity_xml,
                              "idp_entity_id", info->entity_id, "idp_metadata_url",
                              url ? json_string(url) : json_null(),
                              "idp_certificates_sha256", new_fp ? new_fp : json_null());
    if (patch && changed)   /* connection.updated then carries both */
        json_object_set(patch, "idp_previous_certificates_sha256", old_fp);
    int rc = patch ? rg_store_connection_update(rg_api_store(api), id, NULL, patch, NULL, err)
                   : rg_error_oom(err);
    json_decref(patch);
    if (rc)
        return rc;
    char *ij = rg_saml_metadata_info_json(info);
    *out = ij ? json_loads(ij, 0, NULL) : NULL;
    free(ij);
    if (!*out)
        return rg_error_oom(err);
    json_object_set_new(*out, "object", json_string("connection_metadata"));
    json_object_set_new(*out, "connection_id", json_string(id));
    if (url)
        json_object_set_new(*out, "metadata_url", json_string(url));
    if (changed)
        json_object_set(*out, "previous_certificates_sha256", old_fp);
    rg_log(RG_LOG_INFO, "event=saml_metadata_updated connection_id=%s certificates=%zu "
           "warnings=%zu certificate_changed=%d", id, info->n_certs, info->n_warnings, changed);
    return 0;
}

static void h_metadata_put(rg_http_req *req, void *ctx)
{
    rg_api *api = ctx;
    rg_error err;
    rg_error_clear(&err);
    const char *id = rg_http_param(req, "id");
    json_t *conn = NULL, *out = NULL, *old_fp = NULL, *new_fp = NULL;
    char *fetched = NULL, *url = NULL;
    const char *xml = NULL;
    size_t len = 0;
    rg_saml_metadata_info info;
    memset(&info, 0, sizeof info);
    if (rg_store_connection_get(rg_api_store(api), id, &conn, &err) != 0)
        goto reply;
    const char *type = json_string_value(json_object_get(conn, "type"));
    if (!type || strcmp(type, "saml") != 0) {
        rg_error_set(&err, RG_EUNPROCESSABLE, "connection_not_saml", "type",
                     "IdP metadata belongs to SAML connections");
        goto reply;
    }
    const char *confirm = rg_http_query(req, "confirm_certificate_change");
    if (confirm && strcmp(confirm, "true") != 0 && strcmp(confirm, "false") != 0) {
        rg_error_set(&err, RG_EUNPROCESSABLE, "invalid_request", "confirm_certificate_change",
                     "confirm_certificate_change is true or false");
        goto reply;
    }
    if (metadata_of_request(req, rg_api_ctx(api)->config, &xml, &len, &fetched, &url,
                            &err) != 0 ||
        metadata_check(api, id, xml, len, &info, &err) != 0)
        goto reply;
    /* issue 11 item 7: a signing key the IdP did not have before is a trust change */
    new_fp = signing_fps(&info);
    old_fp = stored_fps(conn);
    int changed = old_fp && new_fp && certs_changed(old_fp, new_fp);
    if (changed && !(confirm && strcmp(confirm, "true") == 0)) {
        rg_log(RG_LOG_WARN, "event=saml_metadata_refused connection_id=%s "
               "reason=certificate_change", id);
        send_cert_change(req, old_fp, new_fp);
        goto done;
    }
    metadata_store(api, id, &info, url, old_fp, new_fp, changed, &out, &err);
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

/* Offloaded: a metadata_url fetch waits on the IdP, the lint and lasso's
 * trial load cost CPU. The body cap is the SAML layer's metadata limit. */
const rg_http_route_def rg_api_metadata_routes[] = {
    {"PUT", "/connections/{id}/metadata", h_metadata_put, RG_HTTP_BODY_RAW | RG_HTTP_OFFLOAD,
     RG_SAML_MAX_METADATA},
};
const size_t rg_api_metadata_nroutes = RG_HTTP_NROUTES(rg_api_metadata_routes);
