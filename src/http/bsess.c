/* bsess.c: browser sessions of the admin console and the setup portal: a
 * random cookie id (HttpOnly, SameSite=Strict) paired with a CSRF token
 * that the page sends back as X-CSRF-Token on every write, with an optional
 * scope (the portal's organization). Kept in process, bounded (the oldest
 * goes first when full), compared in constant time. The console's sign-in
 * (POST/GET/DELETE /console/session) lives here too: it exchanges the admin
 * key for such a session, and the admin listener's auth check accepts the
 * cookie only with a valid CSRF header on writes (DESIGN.md "Admin
 * console"). */
#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "http_internal.h"
#include "rolegate/util.h"

typedef struct bs_entry {
    char    id[RG_HTTP_BSESS_TOKEN], csrf[RG_HTTP_BSESS_TOKEN];
    char    scope[RG_HTTP_BSESS_SCOPE];
    int64_t expires, created;   /* seconds */
    int     used;
} bs_entry;

struct rg_http_bsess {
    pthread_mutex_t lock;
    bs_entry       *e;
    size_t          max;
    int             ttl;
};

rg_http_bsess *rg_http_bsess_new(size_t max, int ttl_s)
{
    rg_http_bsess *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->max = max ? max : 64;
    b->ttl = ttl_s > 0 ? ttl_s : 3600;
    if (!(b->e = calloc(b->max, sizeof *b->e))) {
        free(b);
        return NULL;
    }
    pthread_mutex_init(&b->lock, NULL);
    return b;
}

void rg_http_bsess_free(rg_http_bsess *b)
{
    if (!b)
        return;
    memset(b->e, 0, b->max * sizeof *b->e);   /* ids are credentials */
    free(b->e);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

int rg_http_bsess_create(rg_http_bsess *b, const char *scope, char *id, char *csrf,
                         int64_t *expires)
{
    assert(b && id && csrf);
    if (scope && strlen(scope) >= RG_HTTP_BSESS_SCOPE)
        return RG_EINVAL;
    int64_t now = rg_now();
    pthread_mutex_lock(&b->lock);
    size_t slot = 0;
    for (size_t i = 0; i < b->max; i++) {   /* a free or expired slot, else the oldest */
        if (!b->e[i].used || b->e[i].expires <= now) {
            slot = i;
            break;
        }
        if (b->e[i].created < b->e[slot].created)
            slot = i;
    }
    bs_entry *e = &b->e[slot];
    memset(e, 0, sizeof *e);
    rg_random_token(e->id, sizeof e->id, 32);
    rg_random_token(e->csrf, sizeof e->csrf, 32);
    snprintf(e->scope, sizeof e->scope, "%s", scope ? scope : "");
    e->created = now;
    e->expires = now + b->ttl;
    e->used = 1;
    memcpy(id, e->id, RG_HTTP_BSESS_TOKEN);
    memcpy(csrf, e->csrf, RG_HTTP_BSESS_TOKEN);
    if (expires)
        *expires = e->expires;
    pthread_mutex_unlock(&b->lock);
    return 0;
}

/* The live entry whose id is `id` (lock held), NULL if none. Every slot is
 * compared, in constant time, so timing tells nothing of the ids. */
static bs_entry *find(rg_http_bsess *b, const char *id, int64_t now)
{
    bs_entry *hit = NULL;
    size_t n = strlen(id);
    for (size_t i = 0; i < b->max; i++) {
        bs_entry *e = &b->e[i];
        if (e->used && rg_ct_equal(e->id, strlen(e->id), id, n) && e->expires > now)
            hit = e;
    }
    return hit;
}

int rg_http_bsess_check(rg_http_bsess *b, const rg_http_req *r, const char *cookie,
                        int need_csrf, char *scope, size_t scope_size, char *csrf_out)
{
    assert(b && r && cookie);
    const char *id = rg_http_cookie(r, cookie);
    /* a planted second cookie of the same name is refused, not guessed at */
    if (!id || rg_http_cookie_count(r, cookie) != 1 || !id[0])
        return RG_ENOTFOUND;
    int rc = 0;
    pthread_mutex_lock(&b->lock);
    bs_entry *e = find(b, id, rg_now());
    if (!e) {
        rc = RG_ENOTFOUND;
    } else if (need_csrf) {
        const char *t = rg_http_header(r, "X-CSRF-Token");
        if (!t || !rg_ct_equal(t, strlen(t), e->csrf, strlen(e->csrf)))
            rc = RG_EINVAL;
    }
    if (rc == 0 && scope)
        snprintf(scope, scope_size, "%s", e->scope);
    if (rc == 0 && csrf_out)
        memcpy(csrf_out, e->csrf, RG_HTTP_BSESS_TOKEN);
    pthread_mutex_unlock(&b->lock);
    return rc;
}

void rg_http_bsess_delete(rg_http_bsess *b, const rg_http_req *r, const char *cookie)
{
    const char *id = rg_http_cookie(r, cookie);
    if (!id)
        return;
    pthread_mutex_lock(&b->lock);
    bs_entry *e = find(b, id, rg_now());
    if (e)
        memset(e, 0, sizeof *e);
    pthread_mutex_unlock(&b->lock);
}

int rg_http_same_origin(const rg_http_req *r)
{
    const char *origin = rg_http_header(r, "Origin");
    const char *site = rg_http_header(r, "Sec-Fetch-Site");
    if (site && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0)
        return 0;
    if (!origin)
        return 1;   /* browsers send Origin on every cross-origin write */
    const char *host = rg_http_header(r, "Host");
    if (!host || (strncasecmp(origin, "http://", 7) != 0 &&
                  strncasecmp(origin, "https://", 8) != 0))
        return 0;
    const char *o = strstr(origin, "://") + 3;
    return strcasecmp(o, host) == 0;
}

int rg_http_bsess_cookie(rg_http_req *r, const char *cookie, const char *id, int max_age,
                         int secure)
{
    rg_arena *a = rg_http_arena(r);
    char *v = rg_arena_printf(a, "%s=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Strict%s",
                              cookie, id ? id : "", id ? max_age : 0,
                              secure ? "; Secure" : "");
    return v ? rg_http_add_header(r, "Set-Cookie", v) : RG_ENOMEM;
}

/* ---- console sign-in --------------------------------------------------------- */

/* Server-side part of the admin listener's check: 0 (a console session,
 * with a valid CSRF token and same origin on writes), 401 or 403. */
int rg_http_console_authorize(rg_http_server *s, const rg_http_req *r)
{
    rg_http_bsess *b = rg_http_server_console(s);
    if (!b)
        return 401;
    const char *m = rg_http_method(r);
    int write = strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0;
    int rc = rg_http_bsess_check(b, r, RG_HTTP_CONSOLE_COOKIE, write, NULL, 0, NULL);
    if (rc == RG_ENOTFOUND)
        return 401;
    if (rc != 0 || (write && !rg_http_same_origin(r)))
        return 403;
    return 0;
}

static void session_answer(rg_http_req *req, int status, const char *csrf, int64_t exp)
{
    rg_http_add_header(req, "Cache-Control", "no-store");
    char ts[32];
    rg_iso8601_ms(exp * 1000, ts, sizeof ts);
    rg_http_send_json(req, status, json_pack("{s:s, s:s, s:s}", "object", "console_session",
                                             "csrf_token", csrf, "expires_at", ts));
}

/* POST /console/session {"key": admin key} -> 201, cookie + CSRF token. */
static void h_session_create(rg_http_req *req, void *ctx)
{
    rg_http_server *s = ctx;
    json_t *j = rg_http_json(req);
    const char *key = json_string_value(json_object_get(j, "key"));
    if (!json_is_object(j) || !key) {
        rg_http_send_errorf(req, RG_EUNPROCESSABLE, "invalid_request", "key",
                            "the body is {\"key\": \"<admin key>\"}");
        return;
    }
    if (!rg_http_same_origin(req)) {
        rg_http_send_errorf(req, RG_EFORBIDDEN, "cross_origin", "Origin",
                            "sign in from the console page");
        return;
    }
    if (!rg_http_server_key_equal(s, key)) {
        rg_log(RG_LOG_WARN, "event=console_signin result=failed peer=%s",
               rg_http_peer_addr(req));
        rg_http_send_errorf(req, RG_EUNAUTH, "unauthorized", "key", "wrong admin key");
        return;
    }
    char id[RG_HTTP_BSESS_TOKEN], csrf[RG_HTTP_BSESS_TOKEN];
    int64_t exp = 0;
    rg_http_bsess *b = rg_http_server_console(s);
    if (!b || rg_http_bsess_create(b, NULL, id, csrf, &exp) != 0) {
        rg_http_send_errorf(req, RG_EINTERNAL, "internal", NULL, "cannot create a session");
        return;
    }
    rg_http_bsess_cookie(req, RG_HTTP_CONSOLE_COOKIE, id, RG_HTTP_CONSOLE_TTL, 0);
    rg_log(RG_LOG_INFO, "event=console_signin result=ok peer=%s", rg_http_peer_addr(req));
    session_answer(req, 201, csrf, exp);
    memset(id, 0, sizeof id);
}

/* GET /console/session: the CSRF token again after a page reload (a
 * cross-origin page cannot read this answer), or 401. */
static void h_session_get(rg_http_req *req, void *ctx)
{
    rg_http_bsess *b = rg_http_server_console(ctx);
    char csrf[RG_HTTP_BSESS_TOKEN];
    if (!b || rg_http_bsess_check(b, req, RG_HTTP_CONSOLE_COOKIE, 0, NULL, 0, csrf) != 0) {
        rg_http_add_header(req, "Cache-Control", "no-store");
        rg_http_send_errorf(req, RG_EUNAUTH, "unauthorized", NULL, "not signed in");
        return;
    }
    session_answer(req, 200, csrf, rg_now() + RG_HTTP_CONSOLE_TTL);
}

/* DELETE /console/session: sign out (CSRF token needed, like every write). */
static void h_session_delete(rg_http_req *req, void *ctx)
{
    rg_http_bsess *b = rg_http_server_console(ctx);
    int rc = b ? rg_http_bsess_check(b, req, RG_HTTP_CONSOLE_COOKIE, 1, NULL, 0, NULL)
               : RG_ENOTFOUND;
    if (rc == RG_EINVAL || (rc == 0 && !rg_http_same_origin(req))) {
        rg_http_send_errorf(req, RG_EFORBIDDEN, "csrf_token_invalid", "X-CSRF-Token",
                            "missing or wrong CSRF token");
        return;
    }
    if (rc == 0)
        rg_http_bsess_delete(b, req, RG_HTTP_CONSOLE_COOKIE);
    rg_http_bsess_cookie(req, RG_HTTP_CONSOLE_COOKIE, NULL, 0, 0);
    rg_http_add_header(req, "Cache-Control", "no-store");
    rg_http_send(req, 204, NULL, NULL, 0);
}

static const rg_http_route_def console_session_routes[] = {
    {"POST", "/console/session", h_session_create, RG_HTTP_BODY_JSON | RG_HTTP_NO_AUTH, 0},
    {"GET", "/console/session", h_session_get, RG_HTTP_NO_AUTH, 0},
    {"DELETE", "/console/session", h_session_delete, RG_HTTP_NO_AUTH, 0},
};

int rg_http_console_auth_register(rg_http_server *admin, rg_error *err)
{
    if (rg_http_server_console_enable(admin) != 0)
        return rg_error_oom(err);
    return rg_http_routes_add(admin, console_session_routes,
                              RG_HTTP_NROUTES(console_session_routes), admin, err);
}
