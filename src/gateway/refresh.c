/* refresh.c: the refresh of a live session at /auth (issue 13; R25: a role
 * change reaches the user within session.refresh_after; R24: the size
 * policy applies to every refresh). A refresh takes the membership's
 * status and role slugs from the cache layer's membership states (no store
 * read while its copy is current; else rg_store_membership_state's one
 * statement), the role table from the cache layer too, and signs a new
 * token with the same sid and auth_time, whose claims it builds rather than
 * parses (rg_session_issue_own). Concurrent refreshes of one token share
 * one result through a small in-process map keyed by the old token's sid
 * and jti, and any of the tokens they produce stays valid. */
#include <assert.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gw_internal.h"
#include "rolegate/cache.h"
#include "rolegate/util.h"

#define SLOTS      64     /* recent refreshes remembered (direct-mapped) */
#define SHARE_SECS 10     /* a refresh answers the same old token this long */
#define MAX_ROLES  256

/* A refresh is shared by the old token's identity: its sid and jti (every
 * token rolegate signs has a random jti; both are signed, so one pair is one
 * token), no hash of the whole token needed. */
#define KEY_MAX (2 * GW_ORG_ID_MAX + 2)

typedef struct slot {
    pthread_mutex_t lock;
    char key[KEY_MAX];         /* "<sid> <jti>" of the old token */
    int64_t until;             /* 0: empty */
    char *token, *cookie;
    rg_session_claims claims;  /* of token (shared storage) */
} slot;

struct gw_refresh_map {
    slot slots[SLOTS];
};

gw_refresh_map *gw_refresh_map_new(void)
{
    gw_refresh_map *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    for (size_t i = 0; i < SLOTS; i++)
        pthread_mutex_init(&m->slots[i].lock, NULL);
    return m;
}

void gw_refresh_map_free(gw_refresh_map *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < SLOTS; i++) {
        free(m->slots[i].token);
        free(m->slots[i].cookie);
        rg_session_claims_clear(&m->slots[i].claims);
        pthread_mutex_destroy(&m->slots[i].lock);
    }
    free(m);
}

/* The slot of the old token (key: its identity), or NULL when it has none
 * that fits (no sharing then: each refresh signs its own token). */
static slot *slot_of(gw_refresh_map *m, const rg_session_claims *old, char key[KEY_MAX])
{
    if (!old->jti || !old->sid)
        return NULL;
    int n = snprintf(key, KEY_MAX, "%s %s", old->sid, old->jti);
    if (n < 0 || n >= KEY_MAX)
        return NULL;
    return &m->slots[rg_fnv1a(key) % SLOTS];
}

/* 1 and copies of the shared result if this old token was refreshed lately. */
static int shared_get(slot *s, const char *key, int64_t now, char **token, char **cookie,
                      rg_session_claims *claims)
{
    int hit = 0;
    pthread_mutex_lock(&s->lock);
    if (s->until > now && strcmp(s->key, key) == 0) {
        *token = strdup(s->token);
        *cookie = strdup(s->cookie);
        hit = *token && *cookie;
        if (!hit) {
            free(*token);
            free(*cookie);
            *token = *cookie = NULL;
        } else {
            rg_session_claims_share(claims, &s->claims);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return hit;
}

static void shared_put(slot *s, const char *key, int64_t now, const char *token,
                       const char *cookie, const rg_session_claims *claims)
{
    if (!token || !cookie)
        return;
    char *t = strdup(token), *c = strdup(cookie);
    rg_session_claims keep, old;
    rg_session_claims_share(&keep, claims);
    pthread_mutex_lock(&s->lock);
    free(s->token);
    free(s->cookie);
    old = s->claims;
    s->token = t;
    s->cookie = c;
    s->claims = keep;
    snprintf(s->key, sizeof s->key, "%s", key);
    s->until = t && c ? now + SHARE_SECS : 0;
    pthread_mutex_unlock(&s->lock);
    rg_session_claims_clear(&old);
}

int64_t gw_session_start(const rg_session_claims *c)
{
    return c->auth_time ? c->auth_time : c->iat;
}

int64_t gw_session_end(const rg_config *cfg, const rg_session_claims *c)
{
    if (!cfg->session.refresh)
        return c->exp;
    int64_t end = gw_session_start(c) + cfg->session.lifetime;
    return end > c->exp ? end : c->exp;
}

/* The membership's current roles that the table still shows, in the
 * table's priority order (a role being deleted is gone from the table: R20);
 * none left: the table's default (R13). */
static size_t current_roles(const rg_role_table *t, const rg_slugs *held, const char *v[MAX_ROLES])
{
    size_t n = 0;
    for (size_t i = 0; i < held->n; i++)
        if (n < MAX_ROLES && rg_role_table_rank(t, held->v[i]) >= 0)
            v[n++] = held->v[i];
    for (size_t a = 1; a < n; a++)   /* insertion sort by rank: n is tiny */
        for (size_t b = a; b > 0 && rg_role_table_rank(t, v[b]) < rg_role_table_rank(t, v[b - 1]); b--) {
            const char *x = v[b];
            v[b] = v[b - 1];
            v[b - 1] = x;
        }
    if (n == 0) {
        v[0] = rg_role_table_default(t);
        n = v[0] ? 1 : 0;
    }
    return n;
}

/* The membership of (sub, org): status and role slugs, from the cache
 * layer's membership states (no store read while the copy is current:
 * rg_cache_membership_state), else rg_store_membership_state's one
 * statement. 0 and *held, or err 401 (removed, inactive) / 503 (store). */
static int live_membership(rg_gateway *gw, const rg_session_claims *old, rg_slugs *held,
                           rg_error *err)
{
    char status[16];
    if (!gw->ctx->store || !gw->ctx->cache)
        return rg_error_set(err, RG_EUNAVAIL, "refresh_unavailable", NULL, "no store");
    if (rg_cache_membership_state(gw->ctx->cache, old->sub, old->org_id, status, sizeof status,
                                  held, err) != 0) {
        if (err->status == 404)
            return rg_error_set(err, RG_EUNAUTH, "membership_removed", NULL,
                                "the membership is gone");
        return rg_error_set(err, RG_EUNAVAIL, "refresh_unavailable", NULL, "store: %s",
                            err->code);
    }
    if (strcmp(status, "active") != 0) {
        rg_slugs_clear(held);
        return rg_error_set(err, RG_EUNAUTH, "membership_inactive", NULL,
                            "the membership is not active");
    }
    return 0;
}

/* Signs the new token of the live session old with roles (R24 claims);
 * *fc: its claims, unparsed (rg_session_issue_own). */
static int sign_fresh(rg_gateway *gw, const rg_session_claims *old, const rg_role_table *t,
                      const char *const *roles, size_t n_roles, int64_t now, char **token,
                      char **cookie, rg_session_claims *fc, rg_error *err)
{
    const rg_config *cfg = gw->cfg;
    rg_slugs perms = {0};
    if (rg_core_permissions_of(t, roles, n_roles, &perms) != 0)
        return rg_error_oom(err);
    char jti[40];
    rg_random_token(jti, sizeof jti, 16);
    int64_t start = gw_session_start(old), end = start + cfg->session.lifetime;
    rg_claims c = {
        .iss = rg_gateway_issuer(cfg),
        .sub = old->sub,
        .sid = old->sid,   /* one session: every refresh keeps its id */
        .jti = jti,
        .org_id = old->org_id,
        .email = old->email,
        .roles = roles,
        .n_roles = n_roles,
        .permissions = (const char *const *)perms.v,
        .n_permissions = perms.n,
        .act_sub = old->act_sub,
        .iat = now,
        .auth_time = start,
    };
    c.exp = now + cfg->session.token_lifetime < end ? now + cfg->session.token_lifetime : end;
    rg_oversize_policy pol = cfg->session.oversize;
    /* the cookie lives to the session's end: a lapsed token in it is still
     * refreshed while the session is alive */
    int rc = rg_session_issue_own(gw->ctx->keys, &c, pol, (size_t)cfg->session.cookie_budget,
                                  gw->secure, end - now, token, cookie, fc, err);
    rg_slugs_clear(&perms);
    if (rc && err->status == 422)   /* R24 reject: this session cannot go on */
        rc = rg_error_recast(err, RG_EUNAUTH);
    return rc;
}

int gw_refresh(rg_gateway *gw, const rg_session_claims *old, int64_t now, char **token,
               char **cookie, rg_session_claims *fc, rg_error *err)
{
    assert(gw && old && token && cookie && fc);
    const rg_config *cfg = gw->cfg;
    *token = *cookie = NULL;
    memset(fc, 0, sizeof *fc);
    if (now >= gw_session_start(old) + cfg->session.lifetime)
        return rg_error_set(err, RG_EUNAUTH, "session_expired", NULL,
                            "the session reached its lifetime");
    if (now - old->iat > cfg->session.idle_timeout)
        return rg_error_set(err, RG_EUNAUTH, "session_idle", NULL,
                            "the session was idle too long");
    char key[KEY_MAX];
    slot *sl = slot_of(gw->refreshes, old, key);
    if (sl && shared_get(sl, key, now, token, cookie, fc))
        return 0;
    rg_slugs held = {0};
    int rc = live_membership(gw, old, &held, err);
    if (rc)
        return rc;
    rg_cache_ref *ref = NULL;
    const char *roles[MAX_ROLES];
    size_t n_roles = 0;
    if (rg_cache_table_get(gw->ctx->cache, old->org_id, &ref, err) != 0) {
        rc = err->status == 404 ? rg_error_set(err, RG_EUNAUTH, "organization_unknown",
                                               NULL, "the organization is gone")
                                : rg_error_set(err, RG_EUNAVAIL, "refresh_unavailable", NULL,
                                               "role table: %s", err->code);
        goto out;
    }
    const rg_role_table *t = rg_cache_ref_table(ref);
    if ((n_roles = current_roles(t, &held, roles)) == 0) {
        rc = rg_error_set(err, RG_ENOMEM, "internal", NULL, "no role to give");
        goto out;
    }
    rc = sign_fresh(gw, old, t, roles, n_roles, now, token, cookie, fc, err);
    if (!rc && sl)
        shared_put(sl, key, now, *token, *cookie, fc);
out:
    rg_cache_ref_release(ref);
    rg_slugs_clear(&held);
    return rc;
}
