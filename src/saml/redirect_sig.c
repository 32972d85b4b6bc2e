/* redirect_sig.c: the signature of an HTTP-Redirect binding message (SAML
 * bindings 3.4.4.1), checked here with OpenSSL against the IdP's signing
 * keys before lasso reads the message with its own check turned off.
 * Why not lasso's check: lasso 2.8.1 leaks the decoded Signature parameter
 * on every check, good or bad, so anyone could grow the gateway's memory at
 * /saml/slo (measured: 9.7 KB per request with a 6 KB Signature, 4,000
 * requests +37 MB). The check is the binding's: the octets
 * "SAMLRequest=v[&RelayState=v]&SigAlg=v" (or SAMLResponse) exactly as they
 * are in the query, the algorithm of SigAlg (SHA-1 only with the
 * connection's allow_sha1), a Signature that decodes to at most 1 KiB; each
 * of those parameters at most once, and never both messages. lasso is then
 * given only the verified message and RelayState, without SigAlg and
 * Signature: with them, lasso decodes (and leaks) the Signature even when
 * told not to check it. */
#define RG_SAML_INTERNAL 1
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "rolegate/saml.h"
#include "rolegate/util.h"
#include "slo_impl.h"

#define SIG_MAX_RAW 4096        /* a 4096-bit RSA signature is 684 base64 chars */
#define SIG_MAX     1024

typedef struct qparam { const char *v; size_t n; int seen; } qparam;

/* The SigAlg values we verify and their digests. */
static const EVP_MD *digest_of(const char *alg, int allow_sha1)
{
    static const char pre[] = "http://www.w3.org/2001/04/xmldsig-more#rsa-";
    if (strncmp(alg, pre, sizeof pre - 1) == 0) {
        const char *h = alg + sizeof pre - 1;
        if (!strcmp(h, "sha256"))
            return EVP_sha256();
        if (!strcmp(h, "sha384"))
            return EVP_sha384();
        if (!strcmp(h, "sha512"))
            return EVP_sha512();
        return NULL;
    }
    if (allow_sha1 && !strcmp(alg, "http://www.w3.org/2000/09/xmldsig#rsa-sha1"))
        return EVP_sha1();
    return NULL;
}

/* 400 saml_signature_invalid, field what (the parameter at fault): "what: why" */
static int refuse(rg_error *err, const char *why, const char *what)
{
    return rg_error_set(err, RG_EINVAL, "saml_signature_invalid", what, "%s: %s", what, why);
}

/* The four parameters of the binding found once each in the raw query. */
static int split(const char *query, const char *msg_param, qparam *msg, qparam *relay,
                 qparam *alg, qparam *sig, rg_error *err)
{
    const char *other = strcmp(msg_param, "SAMLRequest") ? "SAMLRequest" : "SAMLResponse";
    for (const char *p = query; *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t kn = eq ? (size_t)(eq - p) : len;
        qparam *slot = NULL;
        const char *name = NULL;
        if (kn == strlen(msg_param) && !strncmp(p, msg_param, kn))
            slot = msg, name = msg_param;
        else if (kn == 10 && !strncmp(p, "RelayState", kn))
            slot = relay, name = "RelayState";
        else if (kn == 6 && !strncmp(p, "SigAlg", kn))
            slot = alg, name = "SigAlg";
        else if (kn == 9 && !strncmp(p, "Signature", kn))
            slot = sig, name = "Signature";
        else if (kn == strlen(other) && !strncmp(p, other, kn))
            return refuse(err, "the query holds both messages", other);
        if (slot) {
            if (slot->seen++)
                return refuse(err, "given twice in the query", name);
            slot->v = eq ? eq + 1 : p + len;
            slot->n = eq ? len - kn - 1 : 0;
        }
        p += len + (amp ? 1 : 0);
    }
    if (!msg->seen)
        return refuse(err, "missing", msg_param);
    if (!alg->seen || !sig->seen)
        return refuse(err, "not signed (SigAlg and Signature are required)", msg_param);
    if (sig->n > SIG_MAX_RAW || alg->n > 128)
        return refuse(err, "too long", sig->n > SIG_MAX_RAW ? "Signature" : "SigAlg");
    return 0;
}

/* 1 if one of the connection's signing keys verifies sig over data. */
static int verify_any(const rg_saml_connection *c, const EVP_MD *md, const char *data,
                      size_t n, const unsigned char *sig, size_t sn)
{
    for (size_t i = 0; i < c->n_sig_keys; i++) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        int ok = ctx && EVP_DigestVerifyInit(ctx, NULL, md, NULL, c->sig_keys[i]) == 1 &&
                 EVP_DigestVerify(ctx, sig, sn, (const unsigned char *)data, n) == 1;
        EVP_MD_CTX_free(ctx);
        if (ok)
            return 1;
    }
    return 0;
}

int rg_saml_redirect_verify(const rg_saml_connection *c, const char *query,
                            const char *msg_param, char **verified, rg_error *err)
{
    assert(c && query && msg_param && verified);
    *verified = NULL;
    qparam msg = {0}, relay = {0}, alg = {0}, sig = {0};
    int rc = split(query, msg_param, &msg, &relay, &alg, &sig, err);
    if (rc)
        return rc;
    char algv[129], sigtext[SIG_MAX_RAW + 1];
    unsigned char raw[SIG_MAX_RAW];
    long sl = rg_pct_decode(sig.v, sig.n, sigtext, sizeof sigtext);
    const EVP_MD *md = rg_pct_decode(alg.v, alg.n, algv, sizeof algv) < 0
                           ? NULL : digest_of(algv, c->allow_sha1);
    if (!md)
        return rg_error_set(err, RG_EINVAL, "saml_signature_algorithm", "SigAlg",
                            "the SigAlg is not one we verify (RSA with SHA-256/384/512%s)",
                            c->allow_sha1 ? " or SHA-1" : "");
    long rn = sl < 0 ? -1 : rg_b64_decode(sigtext, (size_t)sl, raw);
    if (rn <= 0 || rn > SIG_MAX)
        return refuse(err, "not a base64 signature of at most 1 KiB", "Signature");
    /* the signed octets: the parameters as they came, in the binding's order */
    rg_buf b = {0};
    rg_buf_printf(&b, "%s=%.*s", msg_param, (int)msg.n, msg.v);
    if (relay.seen)
        rg_buf_printf(&b, "&RelayState=%.*s", (int)relay.n, relay.v);
    size_t unsigned_len = b.len;
    rg_buf_printf(&b, "&SigAlg=%.*s", (int)alg.n, alg.v);
    if (!b.data || b.oom) {
        rg_buf_free(&b);
        return rg_error_oom(err);
    }
    if (!verify_any(c, md, b.data, b.len, raw, (size_t)rn)) {
        rg_buf_free(&b);
        return refuse(err, "does not verify with the IdP's signing keys", "Signature");
    }
    b.data[unsigned_len] = 0;   /* what lasso reads: the message and RelayState */
    *verified = rg_buf_take(&b);
    return *verified ? 0 : rg_error_oom(err);
}
