/* sessions_admin.c: the admin listener's sessions. POST /sessions
 * (admin-issued sessions): {"organization_membership_id", "reason"} → 201
 * {"object": "session","id","token","expires_at"}: the membership's current
 * roles, R24 claims with their permissions, act {"sub":"admin"}, R24 size
 * policy (422 session_too_large under reject), and a R26 session.created
 * event saying who, why, until when (never the token), with the session's
 * record in the same transaction. Issue 13: GET
 * /user_management/organization_memberships/{id}/sessions lists the
 * records; DELETE /sessions/{id} revokes one on every instance (revocation
 * set + Redis) with a session.revoked event. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include "gw_internal.h"
#include "rolegate/cache.h"
#include "rolegate/store.h"
#include "rolegate/util.h"

#define REASON_MAX 200   /* characters */
#define MAX_ROLES  256

/* Number of UTF-8 code points of s, or -1 if s is not valid UTF-8 or holds
 * a control character. */
static long utf8_chars(const char *s)
{
    long n = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int len = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 0;
        if (len == 0 || (len == 1 && (*p < 0x20 || *p == 0x7f)))
            return -1;
        for (int i = 1; i < len; i++)
            if ((p[i] & 0xC0) != 0x80)
                return -1;
        p += len;
        n++;
    }
    return n;
}

static void send_err(rg_http_req *req, const rg_error *err)
{
    rg_http_send_error(req, err);
}

void gw_h_sessions_create(rg_http_req *req, void *ctx)
{
    rg_gateway *gw = ctx;
    rg_error err;
    rg_error_clear(&err);
    json_t *body = rg_http_json(req);
    if (!json_is_object(body)) {
        rg_http_send_errorf(req, RG_EUNPROCESSABLE, "invalid_request", NULL,
                            "the body must be a JSON object");
        return;
    }
    json_t *jid = json_object_get(body, "organization_membership_id");
    json_t *jreason = json_object_get(body, "reason");
    if (!json_is_string(jid) || !json_string_length(jid)) {
        rg_http_send_errorf(req, RG_EUNPROCESSABLE, "invalid_request", "organization_membership_id",
                            "organization_membership_id is required (a string)");
        return;
    }
    if (!json_is_string(jreason)) {
        rg_http_send_errorf(req, RG_EUNPROCESSABLE, "invalid_request", "reason",
                            "reason is required (a string of 1-%d characters)", REASON_MAX);
        return;
    }
    const char *reason = json_string_value(jreason);
    long rl = strlen(reason) == json_string_length(jreason) ? utf8_chars(reason) : -1;
    if (rl < 1 || rl > REASON_MAX) {
        rg_http_send_errorf(req, RG_EUNPROCESSABLE, "invalid_request", "reason",
                            "reason must be 1-%d characters of text", REASON_MAX);
        return;
    }
    if (!gw->ctx->store) {
        rg_http_send_errorf(req, RG_EUNAVAIL, "store_unavailable", NULL, "no store");
        return;
    }
    const char *om_id = json_string_value(jid);
    json_t *om = NULL, *user = NULL;
    rg_role_table *table = NULL;
    char *token = NULL;
    if (rg_store_membership_get(gw->ctx->store, om_id, &om, &err) != 0) {
        if (err.status == 404)
            snprintf(err.field, sizeof err.field, "organization_membership_id");
        send_err(req, &err);
        return;
    }
    const char *user_id = json_string_value(json_object_get(om, "user_id"));
    const char *org_id = json_string_value(json_object_get(om, "organization_id"));
    const char *status = json_string_value(json_object_get(om, "status"));
    if (status && !strcmp(status, "inactive")) {
        /* R30: deprovisioned by the organization's directory */
        rg_error_set(&err, RG_EFORBIDDEN, "user_deprovisioned", "organization_membership_id",
                     "the user was deprovisioned from this organization");
        goto out;
    }
    json_t *jroles = json_object_get(om, "roles");
    const char *roles[MAX_ROLES];
    size_t n_roles = 0;
    size_t i;
    json_t *r;
    json_array_foreach(jroles, i, r) {
        const char *slug = json_string_value(json_object_get(r, "slug"));
        if (slug && n_roles < MAX_ROLES)
            roles[n_roles++] = slug;
    }
    if (!user_id || !org_id || n_roles == 0) {
        /* R13: a membership always holds a role; anything else is a bug */
        rg_error_set(&err, RG_EINTERNAL, "internal", NULL, "membership without user or roles");
        goto out;
    }
    if (rg_store_user_get(gw->ctx->store, user_id, &user, &err) != 0)
        goto out;
    if (rg_store_role_table(gw->ctx->store, org_id, &table, &err) != 0)
        goto out;
    char sid[64];
    int64_t exp = 0;
    size_t clen = 0;
    int omitted = 0;
    if (rg_gateway_session_issue(gw->ctx, table, user_id,
                                 json_string_value(json_object_get(user, "email")), org_id,
                                 roles, n_roles, "admin", &token, NULL, sid, &exp, &clen,
                                 &omitted, &err) != 0)
        goto out;
    char expires[32];
    rg_iso8601_ms(exp * 1000, expires, sizeof expires);
    /* R26: the audit record; the token itself is never stored or logged */
    json_t *ev = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:b,s:I}", "id", sid,
                           "organization_membership_id", om_id, "user_id", user_id,
                           "organization_id", org_id, "reason", reason, "expires_at", expires,
                           "permissions_omitted", omitted, "cookie_bytes", (json_int_t)clen);
    /* the record and its event in one transaction (issue 13) */
    rg_store_session_rec rec = {.expires_at = exp, .actor = "admin"};
    snprintf(rec.id, sizeof rec.id, "%s", sid);
    int erc = ev ? rg_store_session_create(gw->ctx->store, &rec, om_id, ev, &err) : RG_ENOMEM;
    if (erc != 0) {
        /* no audit record, no session */
        if (!err.code[0])
            rg_error_set(&err, RG_EINTERNAL, "internal", NULL, "cannot record the event");
        goto out;
    }
    rg_log(RG_LOG_INFO, "event=session_created sid=%s om=%s org=%s bytes=%zu omitted=%d rid=%s",
           sid, om_id, org_id, clen, omitted, rg_http_request_id(req));
    rg_http_add_header(req, "Cache-Control", "no-store");
    rg_http_send_json(req, 201,
                      json_pack("{s:s,s:s,s:s,s:s}", "object", "session", "id", sid, "token",
                                token, "expires_at", expires));
out:
    if (!rg_http_answered(req))
        send_err(req, &err);
    free(token);
    rg_role_table_free(table);
    json_decref(user);
    json_decref(om);
}

/* "YYYY-MM-DDThh:mm:ss..." (UTC, the store's format) → seconds. 0 or -1. */
static int iso_seconds(const char *s, int64_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!end)
        return -1;
    *out = (int64_t)timegm(&tm);
    return 0;
}

void gw_h_sessions_list(rg_http_req *req, void *ctx)
{
    rg_gateway *gw = ctx;
    rg_error err;
    rg_error_clear(&err);
    json_t *out = NULL;
    rg_store_list_opts o = {0};
    const char *lim = rg_http_query(req, "limit");
    o.before = rg_http_query(req, "before");
    o.after = rg_http_query(req, "after");
    o.order = rg_http_query(req, "order");
    if (lim) {
        char *end = NULL;
        long v = strtol(lim, &end, 10);
        if (!*lim || *end || v < 1 || v > 100) {
            rg_http_send_errorf(req, RG_EUNPROCESSABLE, "invalid_request", "limit",
                                "limit must be an integer from 1 to 100");
            return;
        }
        o.limit = (int)v;
    }
    if (rg_store_session_list(gw->ctx->store, rg_http_param(req, "id"), &o, &out, &err) != 0) {
        send_err(req, &err);
        return;
    }
    rg_http_send_json(req, 200, out);
}

void gw_h_sessions_delete(rg_http_req *req, void *ctx)
{
    rg_gateway *gw = ctx;
    rg_error err;
    rg_error_clear(&err);
    json_t *s = NULL;
    const char *id = rg_http_param(req, "id");
    if (rg_store_session_revoke(gw->ctx->store, id, "admin", &s, &err) != 0) {
        send_err(req, &err);
        return;
    }
    /* every token of the session, on every instance, until its end */
    int64_t now = rg_now(), end = now + gw->cfg->session.lifetime;
    const char *exp = json_string_value(json_object_get(s, "expires_at"));
    int64_t t;
    if (iso_seconds(exp, &t) == 0)
        end = t;
    if (end > now) {
        rg_session_revoke(gw->revs, gw->tcache, id, end, now);
        if (gw->ctx->cache)
            rg_cache_revoke_publish(gw->ctx->cache, id, end);
    }
    rg_log(RG_LOG_INFO, "event=session_revoked sid=%s by=admin rid=%s", id,
           rg_http_request_id(req));
    rg_http_send_json(req, 200, s);
}
