/* jwt.c: session JWTs (R24): signing a claims JSON with the active key, and
 * verifying a token: size cap first, then header checks that pin the alg to
 * the kid's key BEFORE any crypto (no `none`, no HS256-with-the-public-key
 * alg confusion), the signature on the cached EVP_PKEY, then the claims
 * (exp, iat, nbf, iss, sub, sid, org_id). The decoded claims live in one
 * refcounted block so the token cache can hand them out without copying. */
#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include "rolegate/session.h"
#include "rolegate/util.h"

#define HEADER_B64_MAX 1024   /* our headers are ~100 chars */

struct rg_session_claims_data {
    atomic_long refs;
    json_t *root;             /* the payload; every string points into it (or,
                               * NULL, into the bytes after this block) */
    const char **roles;
    const char **permissions;
    char *payload;
    char kid[RG_SESSION_KID_MAX];
};

/* ---- sign ----------------------------------------------------------------- */

int rg_session_sign(const rg_keyring *kr, const char *payload, size_t len,
                    char **token, rg_error *err)
{
    assert(kr && payload && token);
    *token = NULL;
    const rg_session_key *k = rg_keyring_active(kr);
    char header[160];
    int hl = snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
                      rg_session_key_alg(k), rg_session_key_kid(k));
    assert(hl > 0 && (size_t)hl < sizeof header);
    size_t cap = rg_b64url_len((size_t)hl) + rg_b64url_len(len) + 2 + rg_b64url_len(512) + 1;
    char *tmp = malloc(cap);
    if (!tmp)
        return rg_error_oom(err);
    size_t n = rg_b64url_encode(header, (size_t)hl, tmp);
    tmp[n++] = '.';
    n += rg_b64url_encode(payload, len, tmp + n);
    unsigned char *sig = NULL;
    size_t siglen = 0;
    if (rg_session_key_sign(k, tmp, n, &sig, &siglen, err)) {
        free(tmp);
        return RG_ERR;
    }
    assert(siglen <= 512);
    tmp[n++] = '.';
    n += rg_b64url_encode(sig, siglen, tmp + n);
    tmp[n] = 0;
    free(sig);
    *token = tmp;
    return 0;
}

/* ---- claims storage --------------------------------------------------------- */

static void data_release(struct rg_session_claims_data *d)
{
    if (!d || atomic_fetch_sub(&d->refs, 1) != 1)
        return;
    json_decref(d->root);
    free(d->roles);
    free(d->permissions);
    free(d->payload);
    free(d);
}

void rg_session_claims_clear(rg_session_claims *c)
{
    if (!c)
        return;
    data_release(c->data_);
    memset(c, 0, sizeof *c);
}

void rg_session_claims_share(rg_session_claims *dst, const rg_session_claims *src)
{
    assert(dst && src && src->data_);
    atomic_fetch_add(&src->data_->refs, 1);
    *dst = *src;
}

/* ---- claims of a token this process issues ---------------------------------- */

static size_t str_size(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

/* Copies s (may be NULL) to *at and moves *at past it. */
static const char *str_put(char **at, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *r = memcpy(*at, s, n);
    *at += n;
    return r;
}

int rg_session_claims_of_issued(const rg_claims *c, const char *kid, char *payload,
                                size_t payload_len, rg_session_claims *out, rg_error *err)
{
    assert(c && kid && payload && out);
    memset(out, 0, sizeof *out);
    size_t np = c->omit_permissions ? 0 : c->n_permissions;
    size_t n = str_size(c->iss) + str_size(c->sub) + str_size(c->sid) + str_size(c->org_id) +
               str_size(c->jti) + str_size(c->email) + str_size(c->act_sub);
    for (size_t i = 0; i < c->n_roles; i++)
        n += str_size(c->roles[i]);
    for (size_t i = 0; i < np; i++)
        n += str_size(c->permissions[i]);
    /* the strings follow the block itself: one allocation, freed with it */
    struct rg_session_claims_data *d = calloc(1, sizeof *d + n);
    if (d) {
        d->roles = calloc(c->n_roles + 1, sizeof *d->roles);
        d->permissions = calloc(np + 1, sizeof *d->permissions);
    }
    if (!d || !d->roles || !d->permissions) {
        if (d) {
            free(d->roles);
            free(d->permissions);
        }
        free(d);
        free(payload);
        return rg_error_oom(err);
    }
    atomic_init(&d->refs, 1);
    d->payload = payload;
    snprintf(d->kid, sizeof d->kid, "%s", kid);
    char *at = (char *)(d + 1);
    out->iss = str_put(&at, c->iss);
    out->sub = str_put(&at, c->sub);
    out->sid = str_put(&at, c->sid);
    out->org_id = str_put(&at, c->org_id);
    out->jti = str_put(&at, c->jti);
    out->email = str_put(&at, c->email);
    out->act_sub = str_put(&at, c->act_sub);
    for (size_t i = 0; i < c->n_roles; i++)
        d->roles[i] = str_put(&at, c->roles[i]);
    for (size_t i = 0; i < np; i++)
        d->permissions[i] = str_put(&at, c->permissions[i]);
    out->role = c->n_roles ? d->roles[0] : NULL;   /* R24: role = roles[0] */
    out->roles = d->roles;
    out->n_roles = c->n_roles;
    out->permissions = d->permissions;
    out->n_permissions = np;
    out->permissions_omitted = c->omit_permissions != 0;
    out->iat = c->iat;
    out->exp = c->exp;
    out->auth_time = c->auth_time;
    out->kid = d->kid;
    out->payload = d->payload;
    out->payload_len = payload_len;
    out->data_ = d;
    return 0;
}

/* ---- verify ---------------------------------------------------------------- */

/* Every refused token is a 401 (RG_EUNAUTH); the code says why. */
static int bad(rg_error *err, const char *code, const char *msg)
{
    return rg_error_set(err, RG_EUNAUTH, code, NULL, "%s", msg);
}

/* Decodes a base64url segment into a malloc'd NUL-terminated buffer. */
static unsigned char *b64_segment(const char *s, size_t n, size_t *outlen)
{
    unsigned char *out = malloc(n * 3 / 4 + 4);
    if (!out)
        return NULL;
    long l = rg_b64url_decode(s, n, out);
    if (l < 0) {
        free(out);
        return NULL;
    }
    out[l] = 0;
    *outlen = (size_t)l;
    return out;
}

/* Optional string claim: absent/NULL → NULL; present but not a string → -1. */
static int opt_string(json_t *o, const char *key, const char **out)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return -1;
    *out = json_string_value(v);
    return 0;
}

static int req_string(json_t *o, const char *key, const char **out)
{
    return opt_string(o, key, out) == 0 && *out && **out ? 0 : -1;
}

static int string_array(json_t *o, const char *key, const char ***out, size_t *n)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    *n = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return -1;
    size_t len = json_array_size(v);
    const char **arr = calloc(len + 1, sizeof *arr);
    if (!arr)
        return -1;
    for (size_t i = 0; i < len; i++) {
        json_t *s = json_array_get(v, i);
        if (!json_is_string(s)) {
            free(arr);
            return -1;
        }
        arr[i] = json_string_value(s);
    }
    *out = arr;
    *n = len;
    return 0;
}

/* Header checks (no crypto yet). Returns 0 and *key, or negative with err
 * set. */
static int check_header(const rg_keyring *kr, const char *h, size_t hn,
                        const rg_session_key **key, rg_error *err)
{
    *key = NULL;
    if (hn == 0 || hn > HEADER_B64_MAX)
        return bad(err, "token_malformed", "token header is empty or too long");
    size_t len = 0;
    unsigned char *raw = b64_segment(h, hn, &len);
    if (!raw)
        return bad(err, "token_malformed", "token header is not base64url");
    json_error_t je;
    json_t *hdr = json_loadb((const char *)raw, len, JSON_REJECT_DUPLICATES, &je);
    free(raw);
    int rc = RG_EINVAL;
    if (!json_is_object(hdr)) {
        rc = bad(err, "token_malformed", "token header is not a JSON object");
        goto out;
    }
    json_t *typ = json_object_get(hdr, "typ");
    if (typ && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT") != 0)) {
        rc = bad(err, "token_malformed", "token typ is not JWT");
        goto out;
    }
    if (json_object_get(hdr, "crit")) {   /* RFC 7515 4.1.11: we understand none */
        rc = bad(err, "token_malformed", "token header has crit");
        goto out;
    }
    json_t *kid = json_object_get(hdr, "kid");
    if (!json_is_string(kid)) {
        rc = bad(err, "token_malformed", "token header has no kid");
        goto out;
    }
    const rg_session_key *cand = rg_keyring_find(kr, json_string_value(kid));
    if (!cand) {
        rc = bad(err, "token_unknown_kid", "token kid names no key of the keyring");
        goto out;
    }
    /* the alg is pinned to the key: the header only has to agree, exactly.
     * This refuses none, HS256 signed with the public key, RS256 on EC... */
    json_t *alg = json_object_get(hdr, "alg");
    if (!json_is_string(alg) || strcmp(json_string_value(alg), rg_session_key_alg(cand)) != 0) {
        rc = bad(err, "token_alg_mismatch", "token alg is not the alg of its key");
        goto out;
    }
    *key = cand;
    rc = 0;
out:
    json_decref(hdr);
    return rc;
}

static int check_claims(struct rg_session_claims_data *d, rg_session_claims *c,
                        int64_t now, int64_t skew, int64_t lapse, const char *expected_iss,
                        rg_error *err)
{
    json_t *o = d->root;
    json_t *exp = json_object_get(o, "exp"), *iat = json_object_get(o, "iat");
    json_t *nbf = json_object_get(o, "nbf");
    if (!json_is_integer(exp) || !json_is_integer(iat) || (nbf && !json_is_integer(nbf)))
        return bad(err, "token_malformed", "exp and iat must be integers");
    c->exp = json_integer_value(exp);
    c->iat = json_integer_value(iat);
    if (c->exp <= now - skew - lapse)
        return bad(err, "token_expired", "token has expired");
    json_t *at = json_object_get(o, "auth_time");
    if (at && (!json_is_integer(at) || json_integer_value(at) > c->iat))
        return bad(err, "token_malformed", "auth_time must be an integer <= iat");
    c->auth_time = at ? json_integer_value(at) : 0;
    if (c->iat > now + skew || (nbf && json_integer_value(nbf) > now + skew))
        return bad(err, "token_not_yet_valid", "token is issued in the future");
    if (opt_string(o, "iss", &c->iss) < 0)
        return bad(err, "token_malformed", "iss must be a string");
    if (expected_iss && (!c->iss || strcmp(c->iss, expected_iss) != 0))
        return bad(err, "token_wrong_issuer", "token iss is not this gateway");
    if (req_string(o, "sub", &c->sub) || req_string(o, "sid", &c->sid) ||
        req_string(o, "org_id", &c->org_id))
        return bad(err, "token_malformed", "sub, sid and org_id are required strings");
    json_t *omitted = json_object_get(o, "permissions_omitted");
    json_t *act = json_object_get(o, "act");
    size_t nr = 0, np = 0;
    if (opt_string(o, "jti", &c->jti) || opt_string(o, "email", &c->email) ||
        opt_string(o, "role", &c->role) || (omitted && !json_is_boolean(omitted)) ||
        (act && !json_is_object(act)) || (act && opt_string(act, "sub", &c->act_sub)) ||
        string_array(o, "roles", &d->roles, &nr) ||
        string_array(o, "permissions", &d->permissions, &np))
        return bad(err, "token_malformed", "a claim has the wrong type");
    c->roles = d->roles;
    c->n_roles = nr;
    c->permissions = d->permissions;
    c->n_permissions = np;
    c->permissions_omitted = json_is_true(omitted);
    return 0;
}

static int verify(const rg_keyring *kr, const char *token, int64_t now, int64_t skew,
                  int64_t lapse, const char *expected_iss, int own, rg_session_claims *out,
                  rg_error *err)
{
    assert(kr && out);
    memset(out, 0, sizeof *out);
    if (!token)
        return bad(err, "token_malformed", "no token");
    /* cap before anything else: nothing below runs on a huge input */
    size_t tl = strnlen(token, RG_SESSION_TOKEN_MAX + 1);
    if (tl > RG_SESSION_TOKEN_MAX)
        return bad(err, "token_too_large", "token is longer than 16 KiB");
    const char *d1 = memchr(token, '.', tl);
    const char *d2 = d1 ? memchr(d1 + 1, '.', tl - (size_t)(d1 + 1 - token)) : NULL;
    if (!d1 || !d2 || memchr(d2 + 1, '.', tl - (size_t)(d2 + 1 - token)) || d2 == d1 + 1)
        return bad(err, "token_malformed", "token is not three parts");
    /* the header (kid, pinned alg) first: an `alg: none` token with its empty
     * signature is refused as an alg mismatch, never reaches crypto */
    const rg_session_key *k = NULL;
    int hrc = check_header(kr, token, (size_t)(d1 - token), &k, err);
    if (hrc)
        return hrc;
    if (d2 + 1 == token + tl)
        return bad(err, "token_bad_signature", "token has no signature");
    size_t siglen = 0, plen = 0;
    unsigned char *sig = b64_segment(d2 + 1, tl - (size_t)(d2 + 1 - token), &siglen);
    if (!sig)
        return bad(err, "token_malformed", "token signature is not base64url");
    /* own: a token this process has just signed (the refresh at /auth):
     * checking our own signature again would only cost time */
    int ok = own || rg_session_key_verify(k, token, (size_t)(d2 - token), sig, siglen);
    free(sig);
    if (!ok)
        return bad(err, "token_bad_signature", "token signature is invalid");
    unsigned char *payload = b64_segment(d1 + 1, (size_t)(d2 - d1 - 1), &plen);
    if (!payload)
        return bad(err, "token_malformed", "token payload is not base64url");
    struct rg_session_claims_data *d = calloc(1, sizeof *d);
    if (!d) {
        free(payload);
        return rg_error_oom(err);
    }
    atomic_init(&d->refs, 1);
    d->payload = (char *)payload;
    snprintf(d->kid, sizeof d->kid, "%s", rg_session_key_kid(k));
    json_error_t je;
    d->root = json_loadb(d->payload, plen, JSON_REJECT_DUPLICATES, &je);
    int rc = json_is_object(d->root) ? check_claims(d, out, now, skew, lapse, expected_iss, err)
                                     : bad(err, "token_malformed",
                                           "token payload is not a JSON object");
    if (rc) {
        memset(out, 0, sizeof *out);
        data_release(d);
        return rc;
    }
    out->kid = d->kid;
    out->payload = d->payload;
    out->payload_len = plen;
    out->data_ = d;
    return 0;
}

int rg_session_verify(const rg_keyring *kr, const char *token, int64_t now, int64_t skew,
                      const char *expected_iss, rg_session_claims *out, rg_error *err)
{
    return verify(kr, token, now, skew, 0, expected_iss, 0, out, err);
}

int rg_session_verify_lapsed(const rg_keyring *kr, const char *token, int64_t now,
                             int64_t skew, int64_t lapse, const char *expected_iss,
                             rg_session_claims *out, rg_error *err)
{
    return verify(kr, token, now, skew, lapse > 0 ? lapse : 0, expected_iss, 0, out, err);
}

int rg_session_claims_of_own(const rg_keyring *kr, const char *token, int64_t now,
                             rg_session_claims *out, rg_error *err)
{
    return verify(kr, token, now, 0, 0, NULL, 1, out, err);
}
