/* login_internal.h: what the login files of src/gateway share (login.c,
 * login_pending.c, login_conns.c, login_pages.c,
 * login_finish.c, saml_routes.c, oidc_routes.c, demo.c) and nobody else
 * sees: the login state (pending logins over the cache layer, the per-
 * connection runtime objects), return_to checks, the failure page + event
 * and the common end of every login (R15-R18 through the store, R24
 * session, cookies, redirect). */
#ifndef ROLEGATE_LOGIN_INTERNAL_H
#define ROLEGATE_LOGIN_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>
#include "rolegate/cache.h"
#include "rolegate/gateway.h"
#include "rolegate/http.h"
#include "rolegate/oidc.h"
#include "rolegate/saml.h"

#define LG_STATE_COOKIE     "rolegate_state"
#define LG_STATE_TTL_S      300        /* pending login lifetime (5 min) */
#define LG_RETURN_TO_MAX    1024
#define LG_ID_MAX           80         /* ids: conn_..., org_... */

/* ---- pending logins (the cache layer's login state) ---------------------- */
typedef struct lg_pending {
    char    key[48];                       /* the state cookie value (random) */
    char    kind;                          /* 's' SAML, 'o' OIDC */
    char    conn_id[LG_ID_MAX];
    char    org_id[LG_ID_MAX];
    char    request_id[RG_SAML_REQUEST_ID_MAX];   /* SAML AuthnRequest ID */
    rg_oidc_pending oidc;                  /* OIDC state, nonce, PKCE verifier */
    char    return_to[LG_RETURN_TO_MAX];
    int64_t created_at;                    /* wall clock seconds */
} lg_pending;

typedef struct lg_pending_store lg_pending_store;
/* Over the cache layer's one-time login state (Redis when configured:
 * shared by every instance). cache is borrowed. */
lg_pending_store *lg_pending_new(struct rg_cache *cache, int64_t ttl_s);
void lg_pending_free(lg_pending_store *ps);                 /* accepts NULL */
/* Stores *p under a new random key (written to p->key too) for the TTL.
 * Returns 0, or RG_ENOMEM / RG_EINVAL with err. */
int  lg_pending_put(lg_pending_store *ps, lg_pending *p, rg_error *err);
/* One-time take by state key, by SAML request id or by OIDC state: 0 and
 * *out filled (the login is gone everywhere); RG_ENOTFOUND (404
 * state_not_found) if absent, expired or taken; RG_EIO (503
 * state_store_unavailable) if it may be in Redis and Redis is down. */
int  lg_pending_take_key(lg_pending_store *ps, const char *key, lg_pending *out, rg_error *err);
int  lg_pending_take_request(lg_pending_store *ps, const char *request_id, lg_pending *out,
                             rg_error *err);
int  lg_pending_take_oidc_state(lg_pending_store *ps, const char *state, lg_pending *out,
                                rg_error *err);

/* ---- connection runtime objects ----------------------------------------- */
typedef struct lg_conn {
    char     id[LG_ID_MAX];
    char     org_id[LG_ID_MAX];
    char     type;                  /* 's' | 'o' */
    unsigned char digest[32];       /* rg_store_connection_digest of its row */
    rg_saml_connection *saml;       /* type 's' */
    rg_oidc_client     *oidc;       /* type 'o' */
    int      require_mapped_group;  /* item 6: refuse logins no mapping matches */
    int      refs;                  /* under the cache lock */
} lg_conn;

/* ---- the login state ------------------------------------------------------ */
typedef struct rg_gateway_login {
    rg_ctx            *ctx;
    const rg_config   *cfg;
    int                secure;       /* cfg->server.secure: base_url is https */
    const char        *base;         /* cfg->server.base: base_url without trailing '/' */
    const char        *origin;       /* cfg->server.origin: scheme://host[:port] */
    lg_pending_store  *pending;      /* over ctx->cache */
    pthread_mutex_t    clock;        /* guards conns */
    lg_conn          **conns;
    size_t             nconns, capconns;
    pid_t              demo_idp_pid; /* the demo's fixture IdP child, 0 if none */
    rg_gateway        *gw;           /* /auth's state: revocations (issue 13 SLO) */
} rg_gateway_login;

/* Finds or (re)builds the runtime object of connection id from the store
 * (rebuilt when the stored connection changed). *out holds one reference:
 * give it back with lg_conn_release. Errors: 404 "connection_not_found",
 * 422 invalid_metadata / oidc_config_invalid, 503 store_unavailable. */
int  lg_conn_acquire(rg_gateway_login *lg, const char *id, lg_conn **out, rg_error *err);
/* The object built last for connection id, with no read of the store
 * (*checked 0): the login's transaction checks its digest (lg_identity
 * conn_digest); none built yet, lg_conn_acquire's (*checked 1). */
int  lg_conn_acquire_unchecked(rg_gateway_login *lg, const char *id, lg_conn **out,
                               int *checked, rg_error *err);
void lg_conn_release(rg_gateway_login *lg, lg_conn *c);     /* accepts NULL */
/* Drops every cached runtime object (at exit). */
void lg_conns_clear(rg_gateway_login *lg);

/* ---- return_to ------------------------------------------------------------ */
/* 1 if s is a relative path starting with a single '/' (not "//", not "/\",
 * no control characters or backslashes), or an absolute http(s) URL whose
 * origin is this gateway's or listed in server.return_to_origins. */
int  lg_return_to_ok(const rg_gateway_login *lg, const char *s);

/* ---- cookies -------------------------------------------------------------- */
/* "rolegate_state=<key>; Path=/; HttpOnly; Max-Age=300" + "; SameSite=None;
 * Secure" under https, "; SameSite=Lax" under http (arena). key "" and
 * max_age 0 clear it. */
char *lg_state_cookie(rg_http_req *req, const rg_gateway_login *lg, const char *key,
                      int max_age);
/* The end of /login for both protocols: p kept (lg_pending_put), the state
 * cookie set, event=login_started logged with protocol ("saml" | "oidc"),
 * then 302 to url (borrowed). 0, or -1 with the failure page answered. */
int  lg_begin_redirect(rg_http_req *req, rg_gateway_login *lg, const lg_conn *c, lg_pending *p,
                       const char *protocol, const char *url);

/* ---- the end of every login ------------------------------------------------ */
/* What a protocol handler learned (borrowed strings). */
typedef struct lg_identity {
    const char *subject;
    const char *email;
    const char *name;               /* display name, may be NULL */
    const char *const *groups;
    size_t n_groups;
    int groups_overage;             /* OIDC: the IdP left groups out */
    const char *protocol;           /* "saml" | "oidc" */
    const char *subject_format;     /* SAML NameID Format, may be NULL */
    const char *idp_session;        /* SAML SessionIndex / OIDC sid, may be NULL */
    char *sid_out;                  /* may be NULL: receives the new session's sid
                                       (64 bytes) when lg_finish issued one */
    const unsigned char *conn_digest;   /* may be NULL: the digest of the row the
                                           connection was built from, checked in
                                           the login's transaction (LG_STALE) */
} lg_identity;

/* Issue 11 item 13: checks what the IdP said before any use. Refuses (400
 * identity_attribute_invalid, field subject|email|groups) a subject, email
 * or group value that is not UTF-8, holds a control character (U+0000-001F,
 * U+007F-009F) or is too long (512, 254, 1024 bytes); cleans the display
 * name instead (control characters become spaces, trimmed, cut at 256
 * bytes; not UTF-8: dropped), replacing id->name with an arena copy. */
int lg_identity_check(rg_arena *a, lg_identity *id, rg_error *err);

/* Timing of one login, microseconds of this thread's CPU (bench, debug log). */
typedef struct lg_timing { int64_t verify_us, resolve_us, store_us, sign_us; } lg_timing;

/* R15-R18 + R24: rg_store_login_apply (membership + events, one
 * transaction) → session → Set-Cookie (session, state cleared) → 302 to
 * return_to. On a failure after verification (store, session_too_large) it
 * answers with lg_fail itself, and returns 0, as after an answered login;
 * LG_STALE, with nothing answered nor written, when id->conn_digest is set
 * and the stored connection is no longer that row (changed or gone): the
 * caller verifies the login again against the current one. */
#define LG_STALE 1
int lg_finish(rg_http_req *req, rg_gateway_login *lg, const lg_conn *conn,
              const lg_identity *id, const char *return_to, lg_timing *t);
/* A rejected login: authentication.failed event (the login record: time,
 * connection_id, organization_id, subject if known, protocol, reason), one
 * log line, and an HTML error page with err->status (400 if unset) showing
 * the stable reason code; the state cookie is cleared. conn_id/org_id may be
 * NULL when unknown. */
void lg_fail(rg_http_req *req, rg_gateway_login *lg, const char *conn_id,
             const char *org_id, const char *protocol, const char *subject,
             const rg_error *err);
/* A small HTML page (escaped) with the reason code; Cache-Control no-store. */
void lg_page(rg_http_req *req, int status, const char *title, const char *code,
             const char *message);
/* HTML-escapes s into the arena. */
char *lg_html_escape(rg_arena *a, const char *s);

/* ---- the setup portal's test sign-in (portal.c) --------------------------- */
/* A pending login whose return_to starts with this is a portal test
 * sign-in: not a path, so /login (which checks return_to) never makes one. */
#define LG_PORTAL_TEST_PREFIX "portal-test:"
/* The end of a test sign-in (called by lg_finish): the roles the groups map
 * to (R15-R17, as for a new member), kept for the portal under key; no
 * membership, no session, no login record; 302 to /portal#test=<key>. */
void lg_portal_test_finish(rg_http_req *req, rg_gateway_login *lg, const lg_conn *conn,
                           const lg_identity *id, const char *key);

/* ---- route handlers (ctx = rg_gateway_login) ------------------------------- */
void lg_h_login(rg_http_req *req, void *ctx);
void lg_h_saml_metadata(rg_http_req *req, void *ctx);
void lg_h_saml_acs(rg_http_req *req, void *ctx);
void lg_h_saml_slo(rg_http_req *req, void *ctx);   /* slo_routes.c, issue 13 */
void lg_h_oidc_callback(rg_http_req *req, void *ctx);
/* SAML redirect for a pending login (p filled but for request_id/key): sets
 * the state cookie and answers 302. */
void lg_saml_begin(rg_http_req *req, rg_gateway_login *lg, const lg_conn *c, lg_pending *p);
void lg_oidc_begin(rg_http_req *req, rg_gateway_login *lg, const lg_conn *c, lg_pending *p,
                   const char *login_hint);

/* ---- OIDC single logout (oidc_logout.c, issue 13) ------------------------- */
/* Keeps the ID token (id_token_hint) under sid for the session's lifetime. */
void lg_oidc_keep_id_token(rg_gateway_login *lg, const char *sid, const char *id_token);
/* The logout hook's OIDC half: *url is the OP's end_session URL (malloc'd)
 * or NULL when the OP has none. Returns 0. */
int  lg_oidc_logout_url(rg_gateway_login *lg, const lg_conn *c, const char *sid, char **url);
/* GET /oidc/signed-out and POST /oidc/backchannel-logout/{id} (ctx = lg);
 * the logout_token form is capped at LG_BCL_MAX_BODY bytes. */
#define LG_BCL_MAX_BODY 16384
void lg_h_oidc_signed_out(rg_http_req *req, void *ctx);
void lg_h_oidc_backchannel(rg_http_req *req, void *ctx);

#endif
