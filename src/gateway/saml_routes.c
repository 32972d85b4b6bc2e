/* saml_routes.c: the SAML side of the logins: GET /saml/metadata/{id} (our
 * SP metadata), the signed AuthnRequest redirect of /login, POST
 * /saml/acs/{id} (pending login taken once, library verification with the
 * replay cache, then R15-R18 + R24 through lg_finish). The admin side,
 * PUT /connections/{id}/metadata, is api/metadata.c. */
#include <assert.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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
        rg_error_set(&err, RG_ENOTFOUND, "connection_not_found", "connection_id",
                     "no such SAML connection");
    } else if (rg_saml_sp_urls(lg->base, id, eid, acs, sizeof eid) != 0) {
        rg_error_set(&err, RG_EINTERNAL, "config_invalid", "base_url", "base_url too long");
    } else {
        rg_saml_sp_keys_ensure(lg->ctx->sp_keys);   /* made at the first SAML use */
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
    lg_begin_redirect(req, lg, c, p, "saml", url);
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

/* c checked against the stored row: 1 when it was rebuilt (*c the new
 * build, the old one given back), 0 when it is current, negative with err
 * (*c kept) on an error or when the connection is no SAML one any more. */
static int acs_recheck(rg_gateway_login *lg, lg_conn **c, rg_error *err)
{
    lg_conn *n = NULL;
    int rc = lg_conn_acquire(lg, (*c)->id, &n, err);
    if (rc)
        return rc;
    if (n == *c) {
        lg_conn_release(lg, n);
        return 0;
    }
    if (n->type != 's') {
        lg_conn_release(lg, n);
        return rg_error_set(err, RG_ENOTFOUND, "connection_not_found", "connection_id",
                            "not a SAML connection");
    }
    lg_conn_release(lg, *c);
    *c = n;
    return 1;
}

/* The response verified against *c, through the replay cache (issue 11
 * item 12: this connection's quota) unless replay is 0 (a verification
 * again: the first recorded the assertion). Built without a check of the
 * store (!*checked), a refusal checks the row, and a rebuilt connection
 * (the IdP's new metadata, say) verifies the response again: the replay
 * cache is its last check, so a refused response was not recorded. */
static int acs_verify(rg_gateway_login *lg, lg_conn **c, int *checked, const char *resp,
                      size_t rlen, const char *request_id, int replay, rg_saml_identity *id,
                      rg_error *err)
{
    for (;;) {
        rg_cache_replay_scope scope = {.cache = lg->ctx->cache, .connection_id = (*c)->id};
        int rc = rg_saml_acs_verify((*c)->saml, resp, rlen, request_id, 0,
                                    replay ? rg_cache_replay_check_scoped : NULL, &scope, id,
                                    err);
        if (rc == 0 || *checked || err->status == 503 || !strcmp(err->code, "saml_replay"))
            return rc;
        *checked = 1;
        rg_error cerr;
        rg_error_clear(&cerr);
        if (acs_recheck(lg, c, &cerr) != 1)
            return rc;   /* the same row (or no answer): the refusal stands */
        rg_saml_identity_clear(id);
        rg_error_clear(err);
    }
}

void lg_h_saml_acs(rg_http_req *req, void *ctx)
{
    rg_gateway_login *lg = ctx;
    rg_error err;
    rg_error_clear(&err);
    lg_conn *c = NULL;
    const char *cid = rg_http_param(req, "id");
    /* issue 15: the connection as built, its row checked by the login's
     * transaction (no round trip of its own) */
    int checked = 0;
    if (lg_conn_acquire_unchecked(lg, cid, &c, &checked, &err) != 0 || c->type != 's') {
        if (c)
            rg_error_set(&err, RG_ENOTFOUND, "connection_not_found", "connection_id",
                         "not a SAML connection");
        lg_conn_release(lg, c);
        /* no known connection: nothing to record it under */
        lg_page(req, err.status ? err.status : 404, "Sign-in failed", err.code,
                "This sign-in address is not known.");
        return;
    }
    const char *resp = rg_http_form(req, "SAMLResponse");
    if (!resp || !*resp) {
        rg_error_set(&err, RG_EINVAL, "saml_malformed", "SAMLResponse",
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
    for (int replay = 1;; replay = 0) {
        int64_t t0 = rg_thread_cpu_us();
        int rc = acs_verify(lg, &c, &checked, resp, rlen, have ? p.request_id : NULL, replay,
                            &id, &err);
        t.verify_us = rg_thread_cpu_us() - t0;
        if (rc) {
            lg_fail(req, lg, c->id, c->org_id, "saml", NULL, &err);
            break;
        }
        /* IdP-initiated (allowed by the connection): nowhere to go back but / */
        const char *return_to = have && p.return_to[0] ? p.return_to : "/";
        /* idp_session: for single logout (issue 13) */
        lg_identity li = {.subject = id.subject, .email = id.email, .name = id.name,
                          .groups = (const char *const *)id.groups, .n_groups = id.n_groups,
                          .protocol = "saml", .subject_format = id.subject_format,
                          .idp_session = id.session_index,
                          .conn_digest = checked ? NULL : c->digest};
        if (lg_finish(req, lg, c, &li, return_to, &t) != LG_STALE)
            break;
        /* the row changed since c was built: verified again against the
         * current one (checked: the next lg_finish is not stale) */
        rg_saml_identity_clear(&id);
        checked = 1;
        if (acs_recheck(lg, &c, &err) < 0) {
            if (err.status == 404)
                lg_page(req, 404, "Sign-in failed", err.code,
                        "This sign-in address is not known.");
            else
                lg_fail(req, lg, c->id, c->org_id, "saml", NULL, &err);
            break;
        }
    }
    rg_saml_identity_clear(&id);
    lg_conn_release(lg, c);
}
