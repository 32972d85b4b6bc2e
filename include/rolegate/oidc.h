/* oidc.h: the OpenID Connect relying party (DESIGN.md "oidc" layer). It turns
 * a connection's config into authorize URLs (state, nonce, PKCE S256) and a
 * callback (code + stored pending data) into a verified identity or a precise
 * rejection with a stable reason code. It knows nothing of roles or of HTTP
 * serving; it implements the OIDC half of R16 (groups read from the IdP at
 * each login, overage reported, never read as "no groups").
 *
 * Reason codes (rg_error.code), stable:
 *   oidc_config_invalid, oidc_insecure_issuer, oidc_discovery_failed,
 *   oidc_issuer_mismatch, oidc_token_exchange_failed, oidc_userinfo_failed,
 *   oidc_id_token_malformed, oidc_alg_not_allowed, oidc_unknown_kid,
 *   oidc_bad_signature, oidc_wrong_issuer, oidc_wrong_audience,
 *   oidc_wrong_azp, oidc_expired, oidc_iat_future, oidc_nonce_mismatch,
 *   oidc_state_mismatch, oidc_state_expired, oidc_idp_error.
 * Status: 502 when the IdP is unreachable or misbehaves (discovery, JWKS,
 * 5xx), 401 when a login is rejected, 400 for a bad callback, 500 for config.
 *
 * Threads: an rg_oidc_client may be used by any number of threads at once;
 * its discovery and JWKS caches are guarded by mutexes inside. */
#ifndef ROLEGATE_OIDC_H
#define ROLEGATE_OIDC_H

#include <stddef.h>
#include <stdint.h>
#include "rolegate/error.h"

/* Calls curl_global_init once (idempotent, thread-safe through pthread_once).
 * Call it from main before starting threads. Returns 0 or RG_ERR. */
int rg_oidc_global_init(void);

/* A connection's settings. Strings are copied by rg_oidc_client_new; the
 * struct may be freed afterwards. For numbers, 0 picks the default shown and
 * a negative value means zero (e.g. clock_skew_s = -1 is no skew). */
typedef struct rg_oidc_config {
    const char *issuer;          /* required; compared EXACTLY with discovery and iss */
    const char *client_id;       /* required */
    const char *client_secret;   /* NULL or "" = public client (PKCE only) */
    const char *redirect_uri;    /* required: "{base_url}/oidc/callback" */
    const char *scopes;          /* default "openid email profile"; must contain openid */
    const char *groups_claim;    /* dotted path, default "groups" ("realm_access.roles") */
    const char *email_claim;     /* dotted path, default "email" */
    const char *name_claim;      /* dotted path, default "name" */
    /* Space or comma separated JWS algs allowed for ID tokens. Default
     * "RS256 ES256 PS256". Known: RS256/384/512, PS256/384/512, ES256/384,
     * and HS256/384/512 (keyed with client_secret; only when listed here).
     * "none" or anything unknown makes rg_oidc_client_new fail. */
    const char *allowed_algs;
    /* Plain http is accepted only when this is set AND the host of the URL is
     * 127.0.0.1, ::1 or localhost (test IdPs); everything else must be https
     * with TLS verified (never turned off). Applies to every fetched URL. */
    int allow_http_loopback;
    const char *ca_file;         /* optional CA bundle (PEM) for a private IdP */
    long http_timeout_ms;        /* per request, default 5000 */
    size_t max_doc_bytes;        /* cap on every fetched document, default 1 MiB */
    int discovery_ttl_s;         /* default 3600 */
    int jwks_min_refresh_s;      /* unknown kid refetches at most once per this, default 60 */
    int use_userinfo_for_groups; /* groups claim absent from ID token → ask userinfo */
    int clock_skew_s;            /* default 60 */
    int pending_max_age_s;       /* rg_oidc_finish refuses older pendings, default 600 */
} rg_oidc_config;

typedef struct rg_oidc_client rg_oidc_client;

/* Validates cfg and creates a client. Nothing is fetched yet (discovery is
 * lazy). Errors: oidc_config_invalid, oidc_insecure_issuer (http issuer not
 * allowed). Returns NULL and fills err on failure. Free with
 * rg_oidc_client_free. */
rg_oidc_client *rg_oidc_client_new(const rg_oidc_config *cfg, rg_error *err);
/* Frees the client and its caches; accepts NULL. No call may be running. */
void rg_oidc_client_free(rg_oidc_client *c);

/* What the caller stores server-side between rg_oidc_begin and the callback
 * (bound to the browser by the caller). Plain values: copy it freely. */
#define RG_OIDC_TOKEN_MAX 64
typedef struct rg_oidc_pending {
    char state[RG_OIDC_TOKEN_MAX];         /* 256 random bits, base64url (43 chars) */
    char nonce[RG_OIDC_TOKEN_MAX];         /* 256 random bits, base64url */
    char code_verifier[RG_OIDC_TOKEN_MAX]; /* PKCE, 43 chars (RFC 7636) */
    int64_t created_at;                    /* wall clock seconds */
} rg_oidc_pending;

/* Builds the authorize URL (response_type=code, client_id, redirect_uri,
 * scope, state, nonce, code_challenge S256) and fills *pending_out. Fetches
 * discovery if it is not cached. *authorize_url is malloc'd: free() it.
 * Errors: oidc_discovery_failed, oidc_issuer_mismatch, oidc_insecure_issuer. */
int rg_oidc_begin(rg_oidc_client *c, char **authorize_url,
                  rg_oidc_pending *pending_out, rg_error *err);

/* Checks the callback's parameters against the stored pending data before
 * rg_oidc_finish: state equal (constant time) else oidc_state_mismatch; iss
 * (RFC 9207 callback parameter, may be NULL when the IdP sends none) equal to
 * the issuer else oidc_wrong_issuer. Returns 0 or RG_ERR. */
int rg_oidc_callback_check(const rg_oidc_client *c, const rg_oidc_pending *pending,
                           const char *state, const char *iss, rg_error *err);

/* The verified user. All strings malloc'd and owned by the struct; release
 * with rg_oidc_identity_clear (which zeroes it). email and name may be NULL. */
typedef struct rg_oidc_identity {
    char *issuer;
    char *subject;
    char *email;
    int email_verified;    /* 1 only when the IdP said email_verified: true */
    char *name;
    char **groups;         /* n_groups strings, from the groups claim path */
    size_t n_groups;
    int groups_overage;    /* R16: the IdP left groups out (_claim_names or
                              hasgroups); groups is then incomplete */
    int groups_from_userinfo;
    char *sid;             /* the OP's session id (ID token sid), may be NULL:
                              Back-Channel Logout matches sessions by it */
    char *id_token;        /* the raw ID token, for RP-initiated logout's
                              id_token_hint; NULL if over 8 KiB. Never log it;
                              rg_oidc_identity_clear wipes it */
} rg_oidc_identity;

void rg_oidc_identity_clear(rg_oidc_identity *id);

/* Exchanges code at the token endpoint (client_secret_basic, or
 * client_secret_post when the IdP only lists that; code_verifier always) and
 * verifies the ID token: alg allowed and fitting the JWK, signature, iss, aud,
 * azp, exp, iat, nonce; then reads claims (userinfo when configured and the
 * groups claim is absent; its sub must match). now is wall-clock seconds.
 * On success fills *out (caller clears it) and returns 0; else returns
 * RG_ERR with a reason code above and leaves *out zeroed. */
int rg_oidc_finish(rg_oidc_client *c, const rg_oidc_pending *pending,
                   const char *code, int64_t now, rg_oidc_identity *out,
                   rg_error *err);

/* Maps an IdP error callback (?error=...&error_description=...) to reason
 * oidc_idp_error (status 401). The error code is reduced to [A-Za-z0-9_.-]
 * and 40 chars so it is safe to log and show; the description is not logged.
 * Returns RG_ERR always. */
int rg_oidc_idp_error(const char *error, const char *error_description, rg_error *err);

/* ---- logout (src/oidc/logout.c, issue 13) -------------------------------- */

/* RP-Initiated Logout 1.0: the OP's end_session_endpoint (from discovery)
 * with id_token_hint (may be NULL: then client_id names us), client_id,
 * post_logout_redirect_uri (must be registered at the OP) and state.
 * *url is malloc'd (free it). Returns 0; RG_ENOTFOUND (404
 * oidc_logout_unsupported) when the OP advertises no end_session_endpoint;
 * discovery errors as rg_oidc_begin. */
int rg_oidc_end_session_url(rg_oidc_client *c, const char *id_token_hint,
                            const char *post_logout_redirect_uri, const char *state,
                            char **url, rg_error *err);

/* What a verified Back-Channel Logout token names (malloc'd; clear with
 * rg_oidc_logout_claims_clear). sub or sid may be NULL, never both. */
typedef struct rg_oidc_logout_claims {
    char *sub, *sid, *jti;
    int64_t exp;           /* seconds: how long the jti must be remembered */
} rg_oidc_logout_claims;
void rg_oidc_logout_claims_clear(rg_oidc_logout_claims *lc);

/* Back-Channel Logout 1.0 section 2.6: verifies a logout_token like an ID
 * token (alg allow-list pinned to the key, signature with the OP's JWKS,
 * iss exact, aud holding client_id, iat not in the future and not older
 * than max_age_s, exp not passed: all with clock_skew) plus its own rules:
 * an events claim, a JSON object with the member
 * http://schemas.openid.net/event/backchannel-logout that is a JSON object;
 * no nonce; sid or sub (strings, at most 255 bytes); a jti. The jti replay
 * check is the caller's (it owns the cache). Every refusal is status 400
 * with a stable code: oidc_logout_token_malformed, oidc_alg_not_allowed,
 * oidc_unknown_kid, oidc_bad_signature, oidc_wrong_issuer,
 * oidc_wrong_audience, oidc_expired, oidc_iat_future, oidc_logout_token_stale,
 * oidc_logout_token_events, oidc_logout_token_nonce,
 * oidc_logout_token_no_subject, oidc_logout_token_no_jti; an unreachable OP
 * (discovery, JWKS) is 502 as elsewhere. */
int rg_oidc_logout_token_verify(rg_oidc_client *c, const char *token, int64_t now,
                                int max_age_s, rg_oidc_logout_claims *out, rg_error *err);

/* The configured issuer (owned by c). */
const char *rg_oidc_client_issuer(const rg_oidc_client *c);

/* ---- lower level, exported for tests and benchmarks ----------------------- */

/* Counters of network fetches done by a client (for tests and metrics). */
typedef struct rg_oidc_stats {
    unsigned long discovery_fetches, jwks_fetches, token_requests, userinfo_requests;
} rg_oidc_stats;
void rg_oidc_client_stats(rg_oidc_client *c, rg_oidc_stats *out);

/* Timing of the last rg_oidc_finish on this thread, in microseconds: the
 * token request (HTTP) and the verification (JWKS lookup, signature, claims,
 * userinfo), each as wall (monotonic) time and as this thread's CPU time
 * (which leaves out the time the IdP takes). For tests/bench/bench_oidc.c. */
typedef struct rg_oidc_timing {
    int64_t exchange_wall_us, exchange_cpu_us, verify_wall_us, verify_cpu_us;
} rg_oidc_timing;
void rg_oidc_last_timing(rg_oidc_timing *out);

/* ---- JOSE (src/oidc/jose.c): JWKS parsing and JWS verification ---------- */

/* A bit set of JWS algs. rg_oidc_algs_parse reads a space/comma separated
 * list (NULL = the default "RS256 ES256 PS256"); "none" and unknown names
 * fail with oidc_config_invalid. Returns 0 or RG_ERR. */
int rg_oidc_algs_parse(const char *list, unsigned *mask_out, rg_error *err);

/* A parsed JWKS: public keys as EVP_PKEY, immutable once built and shared by
 * reference count (so a cache can hand it to verifying threads while it
 * swaps in a new one). Keys that are not usable are skipped and logged: kty
 * other than RSA/EC, curves other than P-256/P-384, RSA under 2048 bits,
 * use other than "sig", an alg that does not fit the key. */
typedef struct rg_oidc_keyset rg_oidc_keyset;
/* Parses a JWKS document ({"keys": [...]}). Fails (oidc_discovery_failed)
 * when it is not JSON or has no usable key. Returns a keyset with one
 * reference, or NULL. */
rg_oidc_keyset *rg_oidc_keyset_parse(const char *json, size_t len, rg_error *err);
rg_oidc_keyset *rg_oidc_keyset_ref(rg_oidc_keyset *ks);   /* +1, returns ks */
void rg_oidc_keyset_free(rg_oidc_keyset *ks);             /* -1; accepts NULL */
size_t rg_oidc_keyset_size(const rg_oidc_keyset *ks);     /* usable keys */
int rg_oidc_keyset_has_kid(const rg_oidc_keyset *ks, const char *kid);

/* A decoded compact JWS (header.payload.signature). */
typedef struct rg_oidc_jws rg_oidc_jws;
/* Splits and decodes; the token is capped at 64 KiB. The header must be a
 * JSON object with a string alg; crit is refused. Errors:
 * oidc_id_token_malformed. *out is freed with rg_oidc_jws_free. */
int rg_oidc_jws_parse(const char *compact, rg_oidc_jws **out, rg_error *err);
void rg_oidc_jws_free(rg_oidc_jws *j);                     /* accepts NULL */
const char *rg_oidc_jws_alg(const rg_oidc_jws *j);         /* owned by j */
const char *rg_oidc_jws_kid(const rg_oidc_jws *j);         /* NULL if none */
/* The decoded payload bytes (NUL-terminated, owned by j). */
const char *rg_oidc_jws_payload(const rg_oidc_jws *j, size_t *len);
/* 0 if alg is in mask, else RG_ERR with oidc_alg_not_allowed. */
int rg_oidc_jws_check_alg(const rg_oidc_jws *j, unsigned mask, rg_error *err);
/* Verifies the signature: the header alg must be in mask and fit the key's
 * kty/crv and the JWK's alg when it has one; the key is chosen by kid (a
 * token without kid tries every fitting key). HS* use hmac_secret (may be
 * NULL: then HS* fails). Returns 0; RG_ENOTFOUND with oidc_unknown_kid when
 * no key has the kid; RG_ERR with oidc_alg_not_allowed / oidc_bad_signature. */
int rg_oidc_jws_verify(const rg_oidc_jws *j, const rg_oidc_keyset *ks, unsigned mask,
                       const char *hmac_secret, rg_error *err);

/* Verifies a compact JWS with one JWK (JSON text) and an alg list, without
 * claim checks: for tests and benchmarks. Same errors as above. */
int rg_oidc_jws_verify_with_jwk(const char *jws, const char *jwk_json,
                                const char *allowed_algs, rg_error *err);

#endif
