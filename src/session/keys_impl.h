/* keys_impl.h: what the two files of the session keys share and nobody
 * else sees: the key and keyring structs (keys.c loads, names and makes
 * them; sign.c signs and verifies with them) and the per-key OpenSSL
 * contexts sign.c prepares once. */
#ifndef ROLEGATE_SESSION_KEYS_IMPL_H
#define ROLEGATE_SESSION_KEYS_IMPL_H

#include <stdatomic.h>
#include <jansson.h>
#include <openssl/evp.h>
#include "rolegate/session.h"

#define KEYS_MAX      64
#define ES256_HALF    32

struct rg_session_key {
    char kid[RG_SESSION_KID_MAX];
    const char *alg;              /* pinned: "ES256" | "RS256" (static) */
    int is_ec;
    EVP_PKEY *pkey;
    json_t *jwk;                  /* public JWK with kid, use, alg */
    struct rg_keyring *owner;     /* for the verification statistic */
    /* ES256 (sign.c): contexts initialised once for this key, duplicated
     * per call (never used directly: they are shared by every thread);
     * NULL: the one-shot EVP_DigestSign/Verify path */
    EVP_PKEY_CTX *sign_tmpl, *verify_tmpl;
};

struct rg_keyring {
    atomic_long refs;
    atomic_ulong verifies;
    EVP_MD *sha256;               /* fetched once: saves a fetch per call */
    rg_session_key keys[KEYS_MAX];
    size_t n;
    size_t active;
    char *jwks;
};

/* sign.c: prepares k's contexts once k->pkey and k->is_ec are set (none
 * for RSA; a failure leaves the slower path, never an error), and frees them. */
void rg_sess_key_prepare(rg_session_key *k);
void rg_sess_key_release(rg_session_key *k);

#endif
