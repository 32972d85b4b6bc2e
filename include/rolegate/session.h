/* session.h: signing keys, session JWTs, the verified-token cache, the
 * revocation set and the session cookie (R24, R25; DESIGN.md "Sessions:
 * algorithm pinned to the key; kid rotation").
 *
 * Design decisions (LIBRARIES.md section 3 explains why libjwt is not used):
 *  - Keys are OpenSSL 3 EVP_PKEYs parsed ONCE when a key directory is loaded;
 *    sign and verify call EVP_DigestSign / EVP_DigestVerify on the cached key
 *    (libjwt re-parses the PEM on every call, ~300 us).
 *  - Every key pins its algorithm: P-256 keys are ES256, RSA (>= 2048 bits)
 *    keys are RS256. A token is verified only with the key its `kid` names,
 *    and only if its header `alg` equals that key's pinned alg EXACTLY, so
 *    `none`, HS256 (alg confusion) or RS256-for-an-EC-key are refused before
 *    any crypto runs.
 *  - kid = RFC 7638 JWK thumbprint (base64url SHA-256, 43 chars).
 *  - Key directory (default var/keys/, mode 0700): one PKCS#8 PEM private key
 *    per file named <kid>.pem (mode 0600; a key file readable by group or
 *    others is refused), and a file `active` holding the kid that signs.
 *  - A keyring is immutable once loaded and reference counted: a reload
 *    builds a new one and the caller swaps the pointer; threads holding the
 *    old one keep it alive with rg_keyring_ref.
 *  - Token cache and revocation set are internally locked (thread-safe).
 * Error codes are stable strings in rg_error.code (status 401 for every
 * token_* code; 500 for key problems, 422 session_too_large). */
#ifndef ROLEGATE_SESSION_H
#define ROLEGATE_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include "rolegate/error.h"
#include "rolegate/config.h"
#include "rolegate/core.h"

#define RG_SESSION_KID_MAX       64      /* buffer size for a kid (43 used) */
#define RG_SESSION_TOKEN_MAX     16384   /* longer tokens: token_too_large */
#define RG_SESSION_COOKIE_BUDGET 4096    /* R24: browser limit per cookie */
#define RG_SESSION_KEYS_DIR      "var/keys"
#define RG_SESSION_COOKIE_SECURE "__Host-rolegate"
#define RG_SESSION_COOKIE_PLAIN  "rolegate"

/* ---- keys --------------------------------------------------------------- */
typedef struct rg_keyring rg_keyring;          /* opaque, immutable */
typedef struct rg_session_key rg_session_key;  /* borrowed from its keyring */

/* Loads every <kid>.pem of dir. If dir is missing or holds no key and
 * create_if_empty is set, creates dir (0700) and a first ES256 key made
 * active. Fails (NULL, err: code "keys_invalid" / "keys_missing" /
 * "keys_no_active", status 500) on a file that is not a P-256 or RSA>=2048
 * private key, a file name that is not the key's kid, a key file readable by
 * group/others, or an `active` file naming no loaded key (or missing).
 * Free with rg_keyring_free. */
rg_keyring *rg_session_keys_load(const char *dir, int create_if_empty, rg_error *err);
/* Takes one more reference (returns kr). */
rg_keyring *rg_keyring_ref(rg_keyring *kr);
/* Drops one reference; the last one frees. Accepts NULL. */
void rg_keyring_free(rg_keyring *kr);

size_t      rg_keyring_count(const rg_keyring *kr);
/* The key that signs, and the key with this kid (NULL if none). Borrowed. */
const rg_session_key *rg_keyring_active(const rg_keyring *kr);
const rg_session_key *rg_keyring_find(const rg_keyring *kr, const char *kid);
const char *rg_session_key_kid(const rg_session_key *k);   /* borrowed */
const char *rg_session_key_alg(const rg_session_key *k);   /* "ES256" | "RS256" */
/* The public keys as a JWKS document {"keys":[{kty, crv, x, y | n, e, kid,
 * use:"sig", alg}, ...]}, active key first. Borrowed: valid while kr lives
 * (built once at load, so serving /.well-known/jwks.json costs nothing). */
const char *rg_keyring_jwks_json(const rg_keyring *kr);
/* Number of signature verifications done with this keyring's keys (a
 * statistic; shows the token cache working). */
unsigned long rg_keyring_verify_count(const rg_keyring *kr);

/* Generates a key of alg "ES256" (P-256) or "RS256" (RSA 2048) in dir
 * (created 0700 if missing), writes <kid>.pem (0600) and, if make_active,
 * the `active` file. The kid is written to kid_out. Returns 0, or negative
 * with err filled (code "keygen_failed", or "invalid_alg" status 400). */
int rg_session_keygen(const char *dir, const char *alg, int make_active,
                      char kid_out[RG_SESSION_KID_MAX], rg_error *err);
/* `rolegate keygen [--dir DIR] [--alg ES256|RS256] [--no-activate]`:
 * argv[0] is the command name ("keygen"), options follow. Prints the new kid
 * on stdout, errors on stderr. Returns the process exit code (0, 1 failure,
 * 2 usage). */
int rg_session_cmd_keygen(int argc, char **argv);

/* RFC 7638 thumbprint of the public key in a PEM (SPKI public key or
 * PKCS#8 / traditional private key; P-256 or RSA). Returns 0 or negative. */
int rg_session_kid_of_pem(const char *pem, size_t len, char kid_out[RG_SESSION_KID_MAX],
                          rg_error *err);

/* JWS signature of data with k, in JOSE form (ES256: raw R||S, 64 bytes,
 * always low-S; RS256: PKCS#1 v1.5, key size). *sig is malloc'd (caller
 * frees). */
/* 1 if the 32-byte big-endian ECDSA s is at most half P-256's order. */
int rg_session_es256_low_s(const unsigned char s[32]);
int rg_session_key_sign(const rg_session_key *k, const void *data, size_t n,
                        unsigned char **sig, size_t *siglen, rg_error *err);
/* 1 if sig is a valid JOSE signature of data under k, else 0. ES256 takes
 * only low-S signatures (issue 11 item 14: no second token string). */
int rg_session_key_verify(const rg_session_key *k, const void *data, size_t n,
                          const unsigned char *sig, size_t siglen);

/* ---- tokens ------------------------------------------------------------- */

/* Signs payload (a JSON object, e.g. from rg_core_claims_json) with the
 * active key: header {"alg":<pinned>,"typ":"JWT","kid":<kid>}. *token is
 * malloc'd (caller frees). */
int rg_session_sign(const rg_keyring *kr, const char *payload, size_t len,
                    char **token, rg_error *err);

/* The decoded claims of a verified token. Strings and arrays are borrowed
 * from shared, reference-counted storage (a cache hit costs no copy): they
 * stay valid until rg_session_claims_clear. Optional claims absent: NULL / 0. */
typedef struct rg_session_claims {
    const char *iss, *sub, *sid, *org_id, *jti;
    const char *email;                 /* optional */
    const char *role;                  /* optional: highest-priority role */
    const char *const *roles;          /* n_roles strings */
    size_t n_roles;
    const char *const *permissions;    /* n_permissions strings */
    size_t n_permissions;
    int permissions_omitted;           /* R24 omit_permissions policy used */
    const char *act_sub;               /* admin-issued: act.sub, else NULL */
    int64_t iat, exp;
    int64_t auth_time;                 /* session start; 0 if absent (older tokens) */
    const char *kid;                   /* the key that signed */
    const char *payload;               /* raw payload JSON, NUL-terminated */
    size_t payload_len;
    struct rg_session_claims_data *data_;  /* private: the shared storage */
} rg_session_claims;

/* Releases the storage (if last reference) and zeroes c. Accepts NULL and a
 * zeroed struct. */
void rg_session_claims_clear(rg_session_claims *c);
/* dst becomes another reference to src's claims (no deep copy). */
void rg_session_claims_share(rg_session_claims *dst, const rg_session_claims *src);

/* Verifies a session JWT (no cache, no revocation: see
 * rg_session_verify_cached). In order: length <= RG_SESSION_TOKEN_MAX
 * (token_too_large); three base64url parts and a JSON header (token_malformed);
 * typ "JWT" or absent, no "crit" (token_malformed); kid known
 * (token_unknown_kid); alg == the key's pinned alg (token_alg_mismatch);
 * signature (token_bad_signature); exp integer > now - skew (token_expired);
 * iat integer <= now + skew, and nbf if present (token_not_yet_valid);
 * iss == expected_iss unless that is NULL (token_wrong_issuer); sub, sid,
 * org_id non-empty strings and every optional claim of the right type
 * (token_malformed). On success fills *out (clear it with
 * rg_session_claims_clear) and returns 0; else returns negative, *out zeroed. */
int rg_session_verify(const rg_keyring *kr, const char *token, int64_t now, int64_t skew,
                      const char *expected_iss, rg_session_claims *out, rg_error *err);

/* The same, except that a token expired less than `lapse` seconds ago (plus
 * skew) is accepted: /auth refreshes such a token while its session is alive
 * (issue 13). Never use it to grant access by itself. */
int rg_session_verify_lapsed(const rg_keyring *kr, const char *token, int64_t now,
                             int64_t skew, int64_t lapse, const char *expected_iss,
                             rg_session_claims *out, rg_error *err);

/* The claims of a token THIS process has just signed with kr (rg_session_
 * issue), without checking the signature again: the refresh at /auth puts
 * them in the token cache at once. Never call it on a token from outside. */
int rg_session_claims_of_own(const rg_keyring *kr, const char *token, int64_t now,
                             rg_session_claims *out, rg_error *err);

/* The claims c as rg_session_verify would read them from the token this
 * process has just signed with c (key kid, payload: that token's payload
 * JSON, taken, payload_len its length), built from c by copying, without
 * parsing (issue 13: the refresh at /auth puts them in the token cache).
 * 0, or RG_ENOMEM (payload freed). Clear *out with rg_session_claims_clear. */
int rg_session_claims_of_issued(const rg_claims *c, const char *kid, char *payload,
                                size_t payload_len, rg_session_claims *out, rg_error *err);

/* ---- revocation set ----------------------------------------------------- */
/* Revoked session ids, in process. An entry lives until its session's exp
 * plus grace seconds (pass the verify skew, so a token accepted within the
 * skew after exp is still refused). Thread-safe (rwlock); add entries from
 * anywhere, e.g. from a Redis subscriber sharing logouts between instances. */
typedef struct rg_revocations rg_revocations;
rg_revocations *rg_revocations_new(int64_t grace);
void   rg_revocations_free(rg_revocations *r);              /* accepts NULL */
/* Revokes sid until exp (+ grace). Returns 0 or RG_ENOMEM. */
int    rg_revocations_add(rg_revocations *r, const char *sid, int64_t exp, int64_t now);
int    rg_revocations_is_revoked(rg_revocations *r, const char *sid, int64_t now);
size_t rg_revocations_count(rg_revocations *r);  /* entries held (may be expired) */
/* R30: revokes every session of user sub in organization org_id issued
 * before `before` (tokens with iat < before are refused), kept until until
 * (+ grace): pass before + the longest session lifetime. Entries of the same
 * (sub, org_id) merge (before and until only grow). sub and org_id must fit
 * RG_REVOKE_KEY_MAX together. Returns 0, RG_EINVAL (empty sub/org_id, too
 * long, before <= 0) or RG_ENOMEM. */
#define RG_REVOKE_KEY_MAX 256
int    rg_revocations_add_user(rg_revocations *r, const char *sub, const char *org_id,
                               int64_t before, int64_t until, int64_t now);
/* 1 if a token of (sub, org_id) issued at iat is refused by such an entry. */
int    rg_revocations_user_revoked(rg_revocations *r, const char *sub, const char *org_id,
                                   int64_t iat, int64_t now);

/* ---- verified-token cache ----------------------------------------------- */
/* Bounded (LRU per shard, 16 locked shards), keyed by SHA-256 of the token;
 * holds the claims of verified tokens and never returns one at or past its
 * exp. Thread-safe. */
typedef struct rg_token_cache rg_token_cache;
typedef struct rg_token_cache_stats {
    unsigned long hits, misses, inserts, evictions;
    size_t entries;
} rg_token_cache_stats;
rg_token_cache *rg_token_cache_new(size_t capacity);  /* 0: 10000 */
void   rg_token_cache_free(rg_token_cache *c);         /* accepts NULL */
/* 1 and *out filled (clear it) on a hit with now < exp, else 0 (*out zeroed). */
int    rg_token_cache_get(rg_token_cache *c, const char *token, size_t len, int64_t now,
                          rg_session_claims *out);
/* Stores another reference to claims (nothing if now >= claims->exp). */
void   rg_token_cache_put(rg_token_cache *c, const char *token, size_t len,
                          const rg_session_claims *claims, int64_t now);
/* Drops every entry of sid; returns how many. */
size_t rg_token_cache_drop_sid(rg_token_cache *c, const char *sid);
void   rg_token_cache_get_stats(rg_token_cache *c, rg_token_cache_stats *out);

/* The /auth hot path: length cap, then a cache hit (its kid still in kr, iss
 * still expected) or a full rg_session_verify that fills the cache; then the
 * revocation checks, by sid and by (sub, org_id, iat) (token_revoked, and the
 * cache entry is dropped). cache and
 * revs may be NULL. Same contract as rg_session_verify. */
int rg_session_verify_cached(const rg_keyring *kr, rg_token_cache *cache,
                             rg_revocations *revs, const char *token, int64_t now,
                             int64_t skew, const char *expected_iss,
                             rg_session_claims *out, rg_error *err);
/* Logout: revokes sid until exp (+ the set's grace) and drops its cached
 * tokens. cache may be NULL. Returns 0 or RG_ENOMEM. */
int rg_session_revoke(rg_revocations *revs, rg_token_cache *cache, const char *sid,
                      int64_t exp, int64_t now);

/* R30 deprovisioning: rg_revocations_add_user; rg_session_verify_cached
 * then answers token_revoked for those tokens (cache hits included). */
int rg_session_revoke_user(rg_revocations *revs, const char *sub, const char *org_id,
                           int64_t before, int64_t until, int64_t now);

/* ---- cookie and size budget (R24) --------------------------------------- */
/* The policy over the budget is [session] oversize as config load parsed it
 * (rg_oversize_policy of config.h: RG_OVERSIZE_REJECT or
 * RG_OVERSIZE_OMIT_PERMISSIONS), one enum for both layers. */

/* The cookie name: RG_SESSION_COOKIE_SECURE under HTTPS, else _PLAIN. */
const char *rg_session_cookie_name(int secure);
/* Builds the whole Set-Cookie header value
 * "<name>=<token>; Path=/; Max-Age=<max_age>; HttpOnly; SameSite=Lax[; Secure]"
 * (name NULL: rg_session_cookie_name(secure)). *out malloc'd (caller frees).
 * Returns its length (>= 0) or RG_ENOMEM / RG_EINVAL (bad name or token
 * characters, negative max_age). Max-Age 0 with an empty token clears it. */
long   rg_session_cookie_build(const char *name, const char *token, int64_t max_age,
                               int secure, char **out);
/* The length rg_session_cookie_build would return for a token of token_len
 * bytes, without building it. */
size_t rg_session_cookie_len(const char *name, size_t token_len, int64_t max_age,
                             int secure);

/* Issues a session (R24): claims JSON (rg_core_claims_json) → sign → the
 * Set-Cookie value (Max-Age = lifetime) → size check against budget (0:
 * RG_SESSION_COOKIE_BUDGET). Over budget: REJECT fails with 422
 * "session_too_large" (message: size, budget, number of permissions);
 * OMIT_PERMISSIONS re-issues with omit_permissions = 1 (token claim
 * permissions_omitted: true) and *omitted = 1, failing the same way if still
 * too large. claims->iat 0 means now; claims->exp 0 means iat + lifetime.
 * *token and *set_cookie are malloc'd (caller frees); cookie_len and omitted
 * may be NULL. */
int rg_session_issue(const rg_keyring *kr, const rg_claims *claims,
                     rg_oversize_policy policy, size_t budget, int secure,
                     int64_t lifetime, char **token, char **set_cookie,
                     size_t *cookie_len, int *omitted, rg_error *err);
/* The same (cookie_len and omitted not reported) and, on success, *own: the
 * claims of the token issued, as rg_session_verify would read them but
 * without parsing it (rg_session_claims_of_issued). */
int rg_session_issue_own(const rg_keyring *kr, const rg_claims *claims,
                         rg_oversize_policy policy, size_t budget, int secure,
                         int64_t lifetime, char **token, char **set_cookie,
                         rg_session_claims *own, rg_error *err);

#endif
