/* oidc_routes.c: the OIDC side of the logins: the authorize redirect of
 * /login (state, nonce, PKCE S256 from the library; the pending data kept
 * server-side under the state cookie) and GET /oidc/callback (state checked
 * and consumed, IdP errors recorded, code exchanged and ID token verified by
 * the library, then R15-R18 + R24 through lg_finish; R16 overage logged). */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include "login_internal.h"
#include "rolegate/util.h"

/* Percent-encodes all but RFC 3986 unreserved characters (arena). */
static char *pct(rg_arena *a, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = rg_arena_alloc(a, strlen(s) * 3 + 1), *o = out;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = 0;
    return out;
}

void lg_oidc_begin(rg_http_req *req, rg_gateway_login *lg, const lg_conn *c, lg_pending *p,
                   const char *login_hint)
{
    rg_error err;
    rg_error_clear(&err);
    char *url = NULL;
    p->kind = 'o';
    if (rg_oidc_begin(c->oidc, &url, &p->oidc, &err) != 0) {
        lg_page(req, err.status ? err.status : 502, "Sign-in unavailable", err.code,
                "The identity provider of this organization could not be reached.");
        return;
    }
    const char *loc = url;
    if (login_hint && *login_hint && strlen(login_hint) <= 256) {
        /* OIDC Core 3.1.2.1: a hint the application already knows */
        loc = rg_arena_printf(rg_http_arena(req), "%s&login_hint=%s", url,
                              pct(rg_http_arena(req), login_hint));
    }
    if (lg_begin_redirect(req, lg, c, p, "oidc", loc ? loc : url) == 0)
        memset(p, 0, sizeof *p);   /* the verifier and nonce live server-side only */
    free(url);
}

void lg_h_oidc_callback(rg_http_req *req, void *ctx)
{
    rg_gateway_login *lg = ctx;
    rg_error err;
    rg_error_clear(&err);
    const char *key = rg_http_cookie(req, LG_STATE_COOKIE);
    const char *state = rg_http_query(req, "state");
    const char *error = rg_http_query(req, "error");
    const char *code = rg_http_query(req, "code");
    lg_pending p;
    memset(&p, 0, sizeof p);

    /* The state cookie binds the callback to the browser that started the
     * login (Lax is enough: the callback is a top-level GET). */
    if (!key || !*key || rg_http_cookie_count(req, LG_STATE_COOKIE) != 1) {
        rg_error_set(&err, RG_EINVAL, "login_state_missing", LG_STATE_COOKIE,
                     "the login state cookie is missing: start the sign-in again");
        /* a callback for a pending login of ours without its cookie: take
         * it (it can no longer be used) and record it under its connection */
        rg_error e2;
        if (state && lg_pending_take_oidc_state(lg->pending, state, &p, &e2) == 0)
            lg_fail(req, lg, p.conn_id, p.org_id, "oidc", NULL, &err);
        else
            lg_fail(req, lg, NULL, NULL, "oidc", NULL, &err);
        memset(&p, 0, sizeof p);
        return;
    }
    rg_error terr;
    rg_error_clear(&terr);
    if (lg_pending_take_key(lg->pending, key, &p, &terr) != 0 || p.kind != 'o') {
        /* used already (state reused), expired, or not ours; or Redis,
         * which may hold it, is down (503 state_store_unavailable) */
        if (terr.status == 503)
            err = terr;
        else
            rg_error_set(&err, RG_EINVAL, "login_state_unknown", "state",
                         "this sign-in was already used or has expired: start again");
        lg_fail(req, lg, NULL, NULL, "oidc", NULL, &err);
        memset(&p, 0, sizeof p);
        return;
    }
    lg_conn *c = NULL;
    if (lg_conn_acquire(lg, p.conn_id, &c, &err) != 0 || c->type != 'o') {
        if (c)
            rg_error_set(&err, RG_EINVAL, "login_state_unknown", "state",
                         "the connection changed type");
        lg_fail(req, lg, p.conn_id, p.org_id, "oidc", NULL, &err);
        lg_conn_release(lg, c);
        memset(&p, 0, sizeof p);
        return;
    }
    lg_timing t = {0};
    char sid[64] = "";
    rg_oidc_identity id;
    memset(&id, 0, sizeof id);
    int rc;
    if (error) {
        /* the description is the IdP's text: shown to nobody, logged never */
        rc = rg_oidc_idp_error(error, rg_http_query(req, "error_description"), &err);
    } else if (!state || !*state) {
        rc = rg_error_set(&err, RG_EINVAL, "oidc_state_missing", "state",
                          "the callback has no state parameter");
    } else if ((rc = rg_oidc_callback_check(c->oidc, &p.oidc, state, rg_http_query(req, "iss"),
                                            &err)) == 0) {
        if (!code || !*code) {
            rc = rg_error_set(&err, RG_EINVAL, "oidc_code_missing", "code",
                              "the callback has no code parameter");
        } else {
            rc = rg_oidc_finish(c->oidc, &p.oidc, code, rg_now(), &id, &err);
            rg_oidc_timing ot;
            rg_oidc_last_timing(&ot);
            t.verify_us = ot.verify_cpu_us + ot.exchange_cpu_us;
        }
    }
    memset(&p.oidc, 0, sizeof p.oidc);
    if (rc) {
        lg_fail(req, lg, c->id, c->org_id, "oidc", NULL, &err);
        rg_oidc_identity_clear(&id);
        lg_conn_release(lg, c);
        return;
    }
    if (id.groups_overage)
        /* R16: an incomplete group list is reported, not read as "none" */
        rg_log(RG_LOG_WARN, "event=oidc_groups_overage connection_id=%s groups=%zu",
               c->id, id.n_groups);
    lg_identity li = {
        .subject = id.subject,
        .email = id.email,
        .name = id.name,
        .groups = (const char *const *)id.groups,
        .n_groups = id.n_groups,
        .groups_overage = id.groups_overage,
        .protocol = "oidc",
        .idp_session = id.sid,   /* back-channel logout matches by it (issue 13) */
        .sid_out = sid,
    };
    lg_finish(req, lg, c, &li, p.return_to[0] ? p.return_to : "/", &t);
    if (sid[0])   /* RP-initiated logout's id_token_hint, server-side only */
        lg_oidc_keep_id_token(lg, sid, id.id_token);
    rg_oidc_identity_clear(&id);
    lg_conn_release(lg, c);
}
