/* oidc_logout.c: OIDC single logout for the browser and the OP (issue 13).
 * RP-initiated: /logout of a session that came from an OIDC connection whose
 * OP advertises an end_session_endpoint goes on to it (the logout hook)
 * with id_token_hint (the ID token kept server-side under the sid in the
 * cache layer's state store, never in the cookie: R24), client_id,
 * post_logout_redirect_uri {base_url}/oidc/signed-out and a one-time state;
 * GET /oidc/signed-out takes that state back and redirects only to
 * session.logout_redirect (no URL from the query: no open redirect).
 * Back-channel: POST /oidc/backchannel-logout/{connection_id} with a
 * logout_token (verified by the oidc layer), its jti remembered in the
 * cache layer's replay cache (Redis when configured), then every live
 * session of (connection, sid) or (connection, sub) revoked in the store
 * (session.revoked events) and on every instance (sid revocations over
 * Redis pub/sub). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "login_internal.h"
#include "rolegate/cache.h"
#include "rolegate/store.h"
#include "rolegate/util.h"

#define OLO_STATE_MS    300000      /* a logout at the OP has 5 minutes to come back */
#define BCL_MAX_AGE_S   300         /* a logout token older than this (+ skew) is stale */

static void idt_key(char *key, size_t n, const char *sid)
{
    snprintf(key, n, "idt:%s", sid);
}

void lg_oidc_keep_id_token(rg_gateway_login *lg, const char *sid, const char *id_token)
{
    if (!sid || !*sid || !id_token || !lg->ctx->cache)
        return;
    char key[96];
    idt_key(key, sizeof key, sid);
    rg_error err;
    /* kept for the session's absolute lifetime; a lost one (restart without
     * Redis, full in-process map) only costs the hint: the OP then asks the
     * user to confirm the logout */
    if (rg_cache_state_put(lg->ctx->cache, key, id_token, lg->cfg->session.lifetime * 1000,
                           &err) != 0)
        rg_log(RG_LOG_WARN, "event=oidc_id_token_not_kept sid=%s code=%s", sid, err.code);
}

int lg_oidc_logout_url(rg_gateway_login *lg, const lg_conn *c, const char *sid, char **url)
{
    *url = NULL;
    rg_error err;
    rg_error_clear(&err);
    char key[96], state[48], skey[80], back[RG_CONFIG_STR + 16], *idt = NULL;
    idt_key(key, sizeof key, sid);
    if (rg_cache_state_take(lg->ctx->cache, key, &idt, &err) != 0)
        idt = NULL;   /* no hint: client_id names us, the OP asks the user */
    rg_random_token(state, sizeof state, 16);
    snprintf(skey, sizeof skey, "olo:%s", state);
    snprintf(back, sizeof back, "%s/oidc/signed-out", lg->base);
    int rc = rg_oidc_end_session_url(c->oidc, idt, back, state, url, &err);
    if (!rc)
        rc = rg_cache_state_put(lg->ctx->cache, skey, c->id, OLO_STATE_MS, &err);
    if (idt) {
        memset(idt, 0, strlen(idt));
        free(idt);
    }
    if (rc) {
        if (err.status != 404)
            rg_log(RG_LOG_WARN, "event=oidc_logout_request_failed connection_id=%s code=%s",
                   c->id, err.code);
        free(*url);
        *url = NULL;
        return 0;
    }
    rg_log(RG_LOG_INFO, "event=oidc_logout_request connection_id=%s sid=%s hint=%d", c->id,
           sid, idt != NULL);
    return 0;
}

/* GET /oidc/signed-out: back from the OP's end_session_endpoint. */
void lg_h_oidc_signed_out(rg_http_req *req, void *ctx)
{
    rg_gateway_login *lg = ctx;
    rg_error err;
    rg_error_clear(&err);
    const char *state = rg_http_query(req, "state");
    char key[96], *conn = NULL;
    int rc = RG_ENOTFOUND;
    if (state && *state && strlen(state) < 64) {
        snprintf(key, sizeof key, "olo:%s", state);
        rc = rg_cache_state_take(lg->ctx->cache, key, &conn, &err);
    }
    if (rc) {
        rg_log(RG_LOG_INFO, "event=oidc_logout_return result=refused rid=%s",
               rg_http_request_id(req));
        lg_page(req, 400, "Signed out", "oidc_logout_state_unknown",
                "You are signed out of this site; this sign-out confirmation was not expected.");
        return;
    }
    rg_log(RG_LOG_INFO, "event=oidc_logout_return result=ok connection_id=%s rid=%s", conn,
           rg_http_request_id(req));
    free(conn);
    rg_http_add_header(req, "Cache-Control", "no-store");
    rg_http_redirect(req, 302, lg->cfg->session.logout_redirect);
}

/* 400 with the stable code; nothing was revoked. */
static void bcl_refuse(rg_http_req *req, const char *conn_id, const rg_error *err)
{
    rg_log(RG_LOG_WARN, "event=oidc_backchannel_logout result=refused connection_id=%s code=%s "
           "rid=%s", conn_id, err->code, rg_http_request_id(req));
    rg_http_add_header(req, "Cache-Control", "no-store");
    rg_http_send_error(req, err);
}

/* Revokes every live session the token names: store (events) + every instance. */
static int bcl_revoke(rg_gateway_login *lg, const lg_conn *c, const rg_oidc_logout_claims *lc,
                      size_t *n, rg_error *err)
{
    json_t *done = NULL;
    *n = 0;
    if (rg_store_session_revoke_idp(lg->ctx->store, c->id, lc->sub, lc->sid,
                                    "oidc_backchannel_logout", &done, err) != 0)
        return RG_ERR;
    size_t i;
    json_t *o;
    json_array_foreach(done, i, o) {
        const char *sid = json_string_value(json_object_get(o, "id"));
        if (sid && lg->gw && rg_gateway_revoke_sid(lg->gw, sid, rg_now() + lg->cfg->session.lifetime) == 0)
            (*n)++;
    }
    json_decref(done);
    return 0;
}

/* POST /oidc/backchannel-logout/{id}: Back-Channel Logout 1.0 section 2.5-2.8. */
void lg_h_oidc_backchannel(rg_http_req *req, void *ctx)
{
    rg_gateway_login *lg = ctx;
    rg_error err;
    rg_error_clear(&err);
    const char *id = rg_http_param(req, "id");
    lg_conn *c = NULL;
    if (lg_conn_acquire(lg, id, &c, &err) != 0 || c->type != 'o') {
        lg_conn_release(lg, c);
        rg_http_add_header(req, "Cache-Control", "no-store");
        rg_http_send_errorf(req, RG_ENOTFOUND, "connection_not_found", "connection_id",
                            "no such OIDC connection");
        return;
    }
    const char *tok[2];
    size_t nt = rg_http_form_all(req, "logout_token", tok, 2);
    rg_oidc_logout_claims lc;
    memset(&lc, 0, sizeof lc);
    int rc = nt == 1 ? rg_oidc_logout_token_verify(c->oidc, tok[0], rg_now(), BCL_MAX_AGE_S, &lc,
                                                   &err)
                     : rg_error_set(&err, RG_EINVAL, "invalid_request", "logout_token",
                                    "exactly one logout_token is required");
    if (!rc) {
        /* 2.6 step 10: a jti seen before is a replay (every instance: Redis) */
        char jid[300];
        snprintf(jid, sizeof jid, "bcl:%s", lc.jti);
        rg_cache_replay_scope sc = {.cache = lg->ctx->cache, .connection_id = c->id};
        int r = rg_cache_replay_check_scoped(&sc, rg_oidc_client_issuer(c->oidc), jid, lc.exp);
        if (r == 1)
            rc = rg_error_set(&err, RG_EINVAL, "oidc_logout_token_replayed", "jti",
                              "this logout token was used already");
        else if (r != 0)
            rc = rg_error_set(&err, RG_EUNAVAIL, "replay_cache_unavailable", "jti",
                              "the replay cache is unavailable; try again");
    }
    size_t n = 0;
    if (!rc)
        rc = bcl_revoke(lg, c, &lc, &n, &err);
    if (rc) {
        bcl_refuse(req, c->id, &err);
    } else {
        char q1[120], q2[120];
        rg_log(RG_LOG_INFO, "event=oidc_backchannel_logout result=ok connection_id=%s sub=%s "
               "op_sid=%s sessions=%zu rid=%s", c->id,
               rg_log_quote(q1, sizeof q1, lc.sub ? lc.sub : "-"),
               rg_log_quote(q2, sizeof q2, lc.sid ? lc.sid : "-"), n, rg_http_request_id(req));
        rg_http_add_header(req, "Cache-Control", "no-store");
        rg_http_send_json(req, 200, json_pack("{s:I}", "revoked", (json_int_t)n));
    }
    rg_oidc_logout_claims_clear(&lc);
    lg_conn_release(lg, c);
}
