/* login_pending.c: the pending-login store: one-time, 5 min, through the
 * cache layer's login state (shared by instances via Redis). A pending
 * login is kept as JSON under its random state key, with an index entry by
 * SAML request id or OIDC state, so the ACS and the callback can take it
 * once by either. */
#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <openssl/evp.h>
#include "login_internal.h"
#include "rolegate/metrics.h"
#include "rolegate/store.h"
#include "rolegate/util.h"

/* ==== pending logins ====================================================
 * One-time login state in the cache layer (rg_cache_state_put/take): in
 * Redis when configured, so a login started on one instance completes on
 * another; in a bounded in-process map otherwise or while Redis is down.
 * Entries, each with the login's TTL:
 *   k:<key>         the pending login (JSON), key = the state cookie value
 *   r:<request id>  -> key   (SAML: found by InResponseTo under plain http)
 *   o:<state>       -> key   (OIDC: the callback's state, for the log line)
 * Whoever takes k:<key> first owns the login (GETDEL is atomic); an index
 * entry left behind only points at nothing. */

struct lg_pending_store {
    rg_cache *cache;
    int64_t   ttl;      /* seconds */
};

lg_pending_store *lg_pending_new(rg_cache *cache, int64_t ttl_s)
{
    assert(cache);
    lg_pending_store *ps = calloc(1, sizeof *ps);
    if (!ps)
        return NULL;
    ps->cache = cache;
    ps->ttl = ttl_s;
    return ps;
}

void lg_pending_free(lg_pending_store *ps)
{
    free(ps);
}

#define IDX_KEY_MAX (RG_OIDC_TOKEN_MAX + RG_SAML_REQUEST_ID_MAX + 4)

/* "<tag>:<v>" into out (v must fit) */
static int pkey(char *out, size_t n, char tag, const char *v)
{
    int w = snprintf(out, n, "%c:%s", tag, v);
    return w > 0 && (size_t)w < n ? 0 : -1;
}

/* The index entry of p: r:<request id> (SAML) or o:<state> (OIDC) into
 * out[IDX_KEY_MAX]. 0, or -1 when p has none. */
static int index_key(const lg_pending *p, char out[IDX_KEY_MAX])
{
    const char *v = p->kind == 's' ? p->request_id : p->oidc.state;
    return *v ? pkey(out, IDX_KEY_MAX, p->kind == 's' ? 'r' : 'o', v) : -1;
}

/* Copies JSON member name (a string that fits) into dst. */
static int jcopy(json_t *o, const char *name, char *dst, size_t n)
{
    const char *v = json_string_value(json_object_get(o, name));
    if (!v || strlen(v) >= n)
        return -1;
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

static char *pending_encode(const lg_pending *p)
{
    json_t *o = json_pack("{s:s#,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I}", "kind", &p->kind, (size_t)1,
                          "conn", p->conn_id, "org", p->org_id, "rid", p->request_id,
                          "state", p->oidc.state, "nonce", p->oidc.nonce,
                          "verifier", p->oidc.code_verifier, "return_to", p->return_to,
                          "at", (json_int_t)p->created_at);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

static int pending_decode(const char *s, const char *key, lg_pending *p)
{
    memset(p, 0, sizeof *p);
    json_t *o = json_loads(s, JSON_REJECT_DUPLICATES, NULL);
    char kind[2];
    int bad = !json_is_object(o) || jcopy(o, "kind", kind, sizeof kind) ||
              (kind[0] != 's' && kind[0] != 'o') ||
              jcopy(o, "conn", p->conn_id, sizeof p->conn_id) ||
              jcopy(o, "org", p->org_id, sizeof p->org_id) ||
              jcopy(o, "rid", p->request_id, sizeof p->request_id) ||
              jcopy(o, "state", p->oidc.state, sizeof p->oidc.state) ||
              jcopy(o, "nonce", p->oidc.nonce, sizeof p->oidc.nonce) ||
              jcopy(o, "verifier", p->oidc.code_verifier, sizeof p->oidc.code_verifier) ||
              jcopy(o, "return_to", p->return_to, sizeof p->return_to) ||
              !json_is_integer(json_object_get(o, "at"));
    if (!bad) {
        p->kind = kind[0];
        p->created_at = json_integer_value(json_object_get(o, "at"));
        p->oidc.created_at = p->created_at;
        snprintf(p->key, sizeof p->key, "%s", key);
    }
    json_decref(o);
    if (bad) {
        memset(p, 0, sizeof *p);
        rg_log(RG_LOG_WARN, "event=login_state_corrupt");
    }
    return bad ? RG_ENOTFOUND : 0;
}

int lg_pending_put(lg_pending_store *ps, lg_pending *p, rg_error *err)
{
    assert(ps && p);
    rg_random_token(p->key, sizeof p->key, 32);
    if (!p->created_at)
        p->created_at = rg_now();
    char k[64], ik[IDX_KEY_MAX];
    char *val = pending_encode(p);
    if (!val || pkey(k, sizeof k, 'k', p->key))
        return free(val), rg_error_oom(err);
    int64_t ttl_ms = ps->ttl * 1000;
    int rc = rg_cache_state_put(ps->cache, k, val, ttl_ms, err);
    memset(val, 0, strlen(val));   /* the PKCE verifier and nonce */
    free(val);
    /* the index by request id / OIDC state (best effort: the cookie path
     * works without it) */
    if (rc == 0 && index_key(p, ik) == 0) {
        rg_error e2;
        rg_cache_state_put(ps->cache, ik, p->key, ttl_ms, &e2);
    }
    return rc;
}

/* Takes k:<key>; also drops its index entry. */
static int take_by_key(lg_pending_store *ps, const char *key, lg_pending *out, rg_error *err)
{
    char k[64], *val = NULL;
    if (pkey(k, sizeof k, 'k', key))
        return rg_error_set(err, RG_ENOTFOUND, "state_not_found", NULL,
                            "unknown or expired login state");
    int rc = rg_cache_state_take(ps->cache, k, &val, err);
    if (rc)
        return rc;
    rc = pending_decode(val, key, out);
    memset(val, 0, strlen(val));
    free(val);
    if (rc)
        return rg_error_set(err, RG_ENOTFOUND, "state_not_found", NULL,
                            "unreadable login state");
    char ik[IDX_KEY_MAX], *iv = NULL;
    rg_error e2;
    if (index_key(out, ik) == 0 && rg_cache_state_take(ps->cache, ik, &iv, &e2) == 0)
        free(iv);
    if (rg_now() - out->created_at >= ps->ttl) {   /* the cache's TTL, checked again */
        memset(out, 0, sizeof *out);
        return rg_error_set(err, RG_ENOTFOUND, "state_not_found", NULL,
                            "expired login state");
    }
    return 0;
}

/* A state cookie value: what rg_random_token makes (base64url). */
static int key_ok(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    return n > 0 && n < sizeof((lg_pending *)0)->key && rg_b64url_chars(key, n);
}

int lg_pending_take_key(lg_pending_store *ps, const char *key, lg_pending *out, rg_error *err)
{
    assert(ps && out);
    memset(out, 0, sizeof *out);
    if (!key_ok(key))
        return rg_error_set(err, RG_ENOTFOUND, "state_not_found", NULL,
                            "unknown login state");
    return take_by_key(ps, key, out, err);
}

/* By index: i:<v> -> key, then the login itself, which must carry v. */
static int take_by_index(lg_pending_store *ps, char tag, const char *v, size_t max,
                         lg_pending *out, rg_error *err)
{
    memset(out, 0, sizeof *out);
    char ik[IDX_KEY_MAX], *key = NULL;
    if (!v || !*v || strlen(v) >= max || pkey(ik, sizeof ik, tag, v))
        return rg_error_set(err, RG_ENOTFOUND, "state_not_found", NULL,
                            "unknown login state");
    int rc = rg_cache_state_take(ps->cache, ik, &key, err);
    if (rc)
        return rc;
    rc = key_ok(key) ? take_by_key(ps, key, out, err)
                     : rg_error_set(err, RG_ENOTFOUND, "state_not_found", NULL,
                                    "unreadable login state");
    free(key);
    if (rc)
        return rc;
    const char *have = tag == 'r' ? out->request_id : out->oidc.state;
    if (out->kind != (tag == 'r' ? 's' : 'o') ||
        !rg_ct_equal(have, strlen(have), v, strlen(v))) {
        memset(out, 0, sizeof *out);
        return rg_error_set(err, RG_ENOTFOUND, "state_not_found", NULL,
                            "login state mismatch");
    }
    return 0;
}

int lg_pending_take_request(lg_pending_store *ps, const char *request_id, lg_pending *out,
                            rg_error *err)
{
    assert(ps && out);
    return take_by_index(ps, 'r', request_id, RG_SAML_REQUEST_ID_MAX, out, err);
}

int lg_pending_take_oidc_state(lg_pending_store *ps, const char *state, lg_pending *out,
                               rg_error *err)
{
    assert(ps && out);
    return take_by_index(ps, 'o', state, RG_OIDC_TOKEN_MAX, out, err);
}
