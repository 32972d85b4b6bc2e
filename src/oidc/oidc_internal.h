/* oidc_internal.h: what the files of src/oidc share and nobody else sees:
 * the client struct (config immutable after rg_oidc_client_new, caches
 * under its locks), the discovery snapshot, the HTTP fetch (fetch.c),
 * discovery and JWKS caches (discovery.c) and the ID-token claim reading
 * (claims.c). client.c and logout.c build on them. */
#ifndef ROLEGATE_OIDC_INTERNAL_H
#define ROLEGATE_OIDC_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>
#include <pthread.h>
#include <curl/curl.h>
#include <jansson.h>
#include "rolegate/oidc.h"
#include "rolegate/util.h"

#define MAX_GROUPS      1000
#define MAX_GROUP_LEN   256
#define MAX_SUB_LEN     255
#define CURL_POOL_MAX   4

/* An immutable discovery snapshot, shared by reference count. */
typedef struct disc {
    atomic_int refs;
    char *authz, *token, *jwks_uri, *userinfo;   /* userinfo may be NULL */
    char *end_session;       /* RP-Initiated Logout 1.0 end_session_endpoint, may be NULL */
    int auth_post;                               /* client_secret_post, else basic */
    int64_t fetched_us;
} disc;

struct rg_oidc_client {
    /* config, immutable after _new */
    char *issuer, *client_id, *client_secret, *redirect_uri, *scopes;
    char *groups_claim, *email_claim, *name_claim, *ca_file;
    unsigned alg_mask;
    int allow_http_loopback, use_userinfo;
    long timeout_ms;
    size_t max_doc;
    int64_t disc_ttl_us, jwks_min_refresh_us;
    int skew_s, pending_max_age_s;

    pthread_mutex_t lock;        /* guards the fields below */
    disc *disc;
    rg_oidc_keyset *jwks;
    char *jwks_from;             /* the jwks_uri the cached keyset came from */
    int64_t jwks_fetched_us, jwks_attempt_us;
    unsigned long jwks_gen;
    rg_oidc_stats stats;
    CURL *pool[CURL_POOL_MAX];
    int pool_n;

    pthread_mutex_t fetch_lock;  /* one discovery/JWKS fetch at a time */
};

/* ---- fetch.c ------------------------------------------------------------ */
typedef struct http_res {
    long status;
    rg_buf body;          /* NUL-terminated; free with rg_buf_free */
    char ctype[80];       /* response Content-Type, "" if none */
} http_res;

/* Percent-encodes everything but RFC 3986 unreserved characters (valid for a
 * query string and for application/x-www-form-urlencoded bodies). */
void oidc_buf_enc(rg_buf *b, const char *s);
/* 0 if url may be fetched: https, or http to a loopback host when the
 * connection allows it (test IdPs). Credentials in URLs are refused. */
int oidc_url_check(const rg_oidc_client *c, const char *what, const char *url, rg_error *err);
/* GET (form == NULL) or POST form to url. The caller fills err's reason on
 * failure; this returns RG_EIO and a message in err with reason `code`. */
int oidc_http_do(rg_oidc_client *c, const char *code, const char *what, const char *url,
                 const char *form, struct curl_slist *extra, http_res *res, rg_error *err);
/* The body as JSON (duplicates rejected), or NULL. Caller decrefs. */
json_t *oidc_json_of(const http_res *r);

/* ---- discovery.c ---------------------------------------------------------- */
void oidc_disc_free(disc *d);
/* Hands out a reference to a fresh discovery snapshot (oidc_disc_free it). */
int oidc_disc_get(rg_oidc_client *c, disc **out, rg_error *err);
/* Hands out a reference to the keyset for uri (rg_oidc_keyset_free it);
 * seen_gen 0, or the generation that lacked a kid to ask for a refetch. */
int oidc_jwks_get(rg_oidc_client *c, const char *uri, unsigned long seen_gen,
                  rg_oidc_keyset **out, unsigned long *gen_out, rg_error *err);
/* Verifies jws's signature with the keys of d's jwks_uri and the client's
 * alg list (the alg pinned to the key: no HS256-with-the-public-key, no
 * none); an unknown kid refetches the JWKS once (rate-limited). Returns 0
 * or RG_ERR with jose.c's reason code. */
int oidc_verify_sig(rg_oidc_client *c, const disc *d, const rg_oidc_jws *jws, rg_error *err);

/* ---- claims.c --------------------------------------------------------------- */
json_t *oidc_claim_get(json_t *o, const char *path);
char *oidc_claim_str(json_t *o, const char *path);   /* malloc'd or NULL */
int oidc_groups_overage(json_t *o, const char *path);
int oidc_read_groups(json_t *o, const char *path, rg_oidc_identity *id, const char *issuer);
long long oidc_num_secs(json_t *v);
/* The claim checks of OIDC Core 3.1.3.7 after the signature (nonce against
 * p). */
/* 1 if the aud claim (string or array) holds client_id; *n_aud: how many. */
int oidc_aud_has(json_t *aud, const char *client_id, size_t *n_aud);
int oidc_check_claims(const rg_oidc_client *c, json_t *cl, const rg_oidc_pending *p,
                      int64_t now, rg_error *err);

#endif
