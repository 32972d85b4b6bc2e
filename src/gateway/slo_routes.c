/* slo_routes.c: SAML Single Logout for the browser (issue 13). /logout of a
 * session that came from a SAML connection whose IdP has an HTTP-Redirect
 * SingleLogoutService goes on to the IdP with a signed LogoutRequest (the
 * logout hook of gwauth); GET /saml/slo/{connection_id} takes the IdP's
 * LogoutResponse (checked against the request id kept one-time in the
 * cache layer) or the IdP's own LogoutRequest (every session of that
 * NameID / SessionIndex revoked in the store and on every instance, then a
 * signed LogoutResponse back to the IdP). */
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "login_internal.h"
#include "rolegate/cache.h"
#include "rolegate/store.h"
#include "rolegate/util.h"

#define SLO_STATE_MS 300000   /* a logout at the IdP has 5 minutes to come back */

void rg_gateway_login_set_auth(rg_gateway_login *lg, rg_gateway *gw)
{
    lg->gw = gw;
}

int rg_gateway_login_logout_hook(void *ctx, const char *sid, char **redirect_url)
{
    rg_gateway_login *lg = ctx;
    *redirect_url = NULL;
    rg_error err;
    json_t *s = NULL;
    if (!lg->ctx->store || rg_store_session_get(lg->ctx->store, sid, &s, &err) != 0)
        return 0;   /* no record (older session): rolegate's logout only */
    const char *conn_id = json_string_value(json_object_get(s, "connection_id"));
    const char *nid = json_string_value(json_object_get(s, "idp_subject"));
    lg_conn *c = NULL;
    if (conn_id && nid && lg_conn_acquire(lg, conn_id, &c, &err) == 0 && c->type == 'o') {
        lg_oidc_logout_url(lg, c, sid, redirect_url);   /* oidc_logout.c */
        lg_conn_release(lg, c);
        json_decref(s);
        return 0;
    }
    if (!c || c->type != 's' || !rg_saml_slo_supported(c->saml)) {
        lg_conn_release(lg, c);
        json_decref(s);
        return 0;
    }
    char relay[48], rqid[RG_SAML_REQUEST_ID_MAX], key[80];
    rg_random_token(relay, sizeof relay, 16);
    char *url = NULL;
    int rc = rg_saml_logout_request(
        c->saml, nid, json_string_value(json_object_get(s, "idp_subject_format")),
        json_string_value(json_object_get(s, "idp_session")), relay, &url, rqid, &err);
    snprintf(key, sizeof key, "slo:%s", relay);
    if (!rc && lg->ctx->cache)
        rc = rg_cache_state_put(lg->ctx->cache, key, rqid, SLO_STATE_MS, &err);
    if (rc) {
        rg_log(RG_LOG_WARN, "event=saml_logout_request_failed connection_id=%s code=%s", conn_id,
               err.code);
        free(url);
        url = NULL;
    } else {
        rg_log(RG_LOG_INFO, "event=saml_logout_request connection_id=%s sid=%s", conn_id, sid);
    }
    *redirect_url = url;
    lg_conn_release(lg, c);
    json_decref(s);
    return 0;
}

/* IdP-initiated: end every session of the NameID (and SessionIndex). */
static void idp_logout(rg_http_req *req, rg_gateway_login *lg, lg_conn *c, const char *q)
{
    rg_error err;
    rg_error_clear(&err);
    rg_saml_logout_req rq;
    char *url = NULL;
    if (rg_saml_logout_request_answer(c->saml, q, &rq, &url, &err) != 0) {
        lg_page(req, err.status ? err.status : 400, "Sign-out failed", err.code,
                "The identity provider's sign-out request was refused.");
        return;
    }
    json_t *done = NULL;
    size_t n = 0;
    if (rg_store_session_revoke_idp(lg->ctx->store, c->id, rq.name_id, rq.session_index,
                                    "idp_logout", &done, &err) != 0) {
        rg_saml_logout_req_clear(&rq);
        free(url);
        rg_http_send_error(req, &err);
        return;
    }
    size_t i;
    json_t *o;
    json_array_foreach(done, i, o) {
        const char *sid = json_string_value(json_object_get(o, "id"));
        if (sid && lg->gw && rg_gateway_revoke_sid(lg->gw, sid, rg_now() + lg->cfg->session.lifetime) == 0)
            n++;
    }
    rg_log(RG_LOG_INFO, "event=saml_idp_logout connection_id=%s sessions=%zu rid=%s", c->id, n,
           rg_http_request_id(req));
    json_decref(done);
    rg_saml_logout_req_clear(&rq);
    rg_http_add_header(req, "Cache-Control", "no-store");
    rg_http_redirect(req, 302, url);
    free(url);
}

/* SP-initiated: the IdP's answer to our LogoutRequest. */
static void idp_answer(rg_http_req *req, rg_gateway_login *lg, lg_conn *c, const char *q)
{
    rg_error err;
    rg_error_clear(&err);
    const char *relay = rg_http_query(req, "RelayState");
    char key[128], *rqid = NULL;
    snprintf(key, sizeof key, "slo:%s", relay ? relay : "");
    int rc = relay && strlen(relay) < 64 && lg->ctx->cache
                 ? rg_cache_state_take(lg->ctx->cache, key, &rqid, &err) : RG_ENOTFOUND;
    if (rc == 0)
        rc = rg_saml_logout_response_check(c->saml, q, rqid, &err);
    else
        rg_error_set(&err, RG_EINVAL, "saml_logout_unexpected", NULL,
                     "no sign-out of ours is pending");
    free(rqid);
    if (rc) {
        rg_log(RG_LOG_INFO, "event=saml_logout_response result=refused code=%s rid=%s",
               err.code, rg_http_request_id(req));
        lg_page(req, 400, "Sign-out at the identity provider failed", err.code,
                "You are signed out of this site; the identity provider did not confirm.");
        return;
    }
    rg_log(RG_LOG_INFO, "event=saml_logout_response result=ok connection_id=%s rid=%s", c->id,
           rg_http_request_id(req));
    rg_http_add_header(req, "Cache-Control", "no-store");
    rg_http_redirect(req, 302, lg->cfg->session.logout_redirect);
}

void lg_h_saml_slo(rg_http_req *req, void *ctx)
{
    rg_gateway_login *lg = ctx;
    rg_error err;
    rg_error_clear(&err);
    lg_conn *c = NULL;
    if (lg_conn_acquire(lg, rg_http_param(req, "id"), &c, &err) != 0 || c->type != 's') {
        lg_conn_release(lg, c);
        rg_http_send_errorf(req, RG_ENOTFOUND, "connection_not_found", "connection_id",
                            "no such SAML connection");
        return;
    }
    const char *q = rg_http_raw_query(req);
    if (rg_http_query(req, "SAMLRequest"))
        idp_logout(req, lg, c, q);
    else if (rg_http_query(req, "SAMLResponse"))
        idp_answer(req, lg, c, q);
    else
        rg_http_send_errorf(req, RG_EINVAL, "invalid_request", "SAMLRequest",
                            "SAMLRequest or SAMLResponse is required");
    lg_conn_release(lg, c);
}
