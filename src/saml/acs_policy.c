/* acs_policy.c: where the signature policy is. The algorithms the ACS check
 * accepts, as const tables (signature methods, the SHA-1 ones allowed only
 * by configuration, digests, canonicalization and transforms, assertion
 * encryption and key transport), and the two checks that apply them before
 * lasso sees the document: one ds:Signature (placement, its one Reference,
 * its algorithms) and one EncryptedAssertion (shape and algorithms). */
#define RG_SAML_INTERNAL 1
#include <string.h>
#include <libxml/tree.h>
#include "saml_internal.h"

/* ---- the tables ------------------------------------------------------------ */

/* Signature methods: RSA and ECDSA over SHA-2. */
static const char *const sig_algs[] = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
    NULL};

/* SHA-1 signature methods: only with the connection's allow_sha1. */
static const char *const sig_algs_sha1[] = {
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    "http://www.w3.org/2000/09/xmldsig#dsa-sha1",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1",
    NULL};

static const char *const digest_algs[] = {
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
    NULL};

static const char *const digest_algs_sha1[] = {
    "http://www.w3.org/2000/09/xmldsig#sha1",
    NULL};

/* Only canonicalization and enveloped-signature transforms: no XPath, no
 * XSLT (those let a signature cover something other than the element). */
static const char *const transforms[] = {
    "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
    "http://www.w3.org/2006/12/xml-c14n11",
    NULL};

/* The assertion's encryption: AES, CBC or GCM. */
static const char *const data_enc_algs[] = {
    "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes192-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
    "http://www.w3.org/2009/xmlenc11#aes128-gcm",
    "http://www.w3.org/2009/xmlenc11#aes192-gcm",
    "http://www.w3.org/2009/xmlenc11#aes256-gcm",
    NULL};

/* Key transport: RSA-OAEP only (PKCS#1 v1.5 is open to Bleichenbacher-style
 * oracles). */
static const char *const key_transport_algs[] = {
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
    "http://www.w3.org/2009/xmlenc11#rsa-oaep",
    NULL};

/* ---- applying them ------------------------------------------------------------ */

int acs_in_list(const char *a, const char *const *list)
{
    for (size_t i = 0; a && list[i]; i++)
        if (strcmp(a, list[i]) == 0)
            return 1;
    return 0;
}

/* 1 allowed, 2 SHA-1 (allowed only by configuration), 0 refused. */
static int sig_alg_class(const char *a)
{
    return acs_in_list(a, sig_algs) ? 1 : acs_in_list(a, sig_algs_sha1) ? 2 : 0;
}

static int digest_alg_class(const char *a)
{
    return acs_in_list(a, digest_algs) ? 1 : acs_in_list(a, digest_algs_sha1) ? 2 : 0;
}

static int transform_ok(const char *a)
{
    return acs_in_list(a, transforms);
}

/* One ds:Signature: it must sit directly in the element it signs and carry
 * exactly one Reference to that element's ID, with allowed algorithms. */
int acs_check_signature(xmlNode *sig, int allow_sha1, rg_error *err)
{
    xmlNode *parent = sig->parent;
    const char *id = parent && parent->type == XML_ELEMENT_NODE ? attr(parent, "ID") : NULL;
    if (!id || !*id)
        return DENY(err, "saml_signature_invalid", "signature parent has no ID");
    xmlNode *si = child(sig, DS_NS, "SignedInfo");
    if (!si)
        return DENY(err, "saml_signature_invalid", "signature without SignedInfo");
    xmlNode *cm = child(si, DS_NS, "CanonicalizationMethod");
    if (!cm || !transform_ok(attr(cm, "Algorithm")))
        return DENY(err, "saml_signature_invalid", "canonicalization method not allowed");
    xmlNode *sm = child(si, DS_NS, "SignatureMethod");
    int sc = sm ? sig_alg_class(attr(sm, "Algorithm")) : 0;
    if (sc == 0)
        return DENY(err, "saml_signature_invalid", "signature algorithm not allowed");
    if (sc == 2 && !allow_sha1)
        return DENY(err, "saml_sha1_forbidden", "SHA-1 signature refused");
    int refs = 0;
    for (xmlNode *r = si->children; r; r = r->next) {
        if (!is_el(r, DS_NS, "Reference"))
            continue;
        refs++;
        const char *uri = attr(r, "URI");
        if (!uri || uri[0] != '#' || strcmp(uri + 1, id) != 0)
            return DENY(err, "saml_signature_invalid",
                        "signature reference does not point at the signed element");
        xmlNode *tr = child(r, DS_NS, "Transforms");
        for (xmlNode *t = tr ? tr->children : NULL; t; t = t->next)
            if (is_el(t, DS_NS, "Transform") && !transform_ok(attr(t, "Algorithm")))
                return DENY(err, "saml_signature_invalid", "transform not allowed");
        xmlNode *dm = child(r, DS_NS, "DigestMethod");
        int dc = dm ? digest_alg_class(attr(dm, "Algorithm")) : 0;
        if (dc == 0)
            return DENY(err, "saml_signature_invalid", "digest algorithm not allowed");
        if (dc == 2 && !allow_sha1)
            return DENY(err, "saml_sha1_forbidden", "SHA-1 digest refused");
    }
    if (refs != 1)
        return DENY(err, "saml_signature_invalid", "signature must have exactly one reference");
    return 0;
}

/* The shape lasso will decrypt, checked before lasso sees it: one
 * EncryptedData with an AES EncryptionMethod, and an EncryptedKey where
 * lasso looks for it (a sibling of the EncryptedData, else inside its
 * KeyInfo) transported with RSA-OAEP. lasso 2.8.1 leaks its copy of the SP
 * key (80 bytes) when the method is missing or unknown or the EncryptedKey
 * is not where it looks, so those never reach it; RSA PKCS#1 v1.5 key
 * transport (open to Bleichenbacher-style oracles) is refused outright. */
int acs_check_encrypted(xmlNode *ea, rg_error *err)
{
    xmlNode *ed = NULL, *ek = NULL;
    int n_ed = 0;
    for (xmlNode *c = ea->children; c; c = c->next) {
        if (is_el(c, XENC_NS, "EncryptedData")) {
            ed = c;
            n_ed++;
        } else if (is_el(c, XENC_NS, "EncryptedKey") && !ek) {
            ek = c;
        }
    }
    if (n_ed != 1)
        return DENY(err, "saml_decryption_failed",
                    "the EncryptedAssertion must hold exactly one EncryptedData");
    xmlNode *em = child(ed, XENC_NS, "EncryptionMethod");
    if (!em)
        return DENY(err, "saml_decryption_failed", "the EncryptedData has no EncryptionMethod");
    if (!acs_in_list(attr(em, "Algorithm"), data_enc_algs))
        return DENY(err, "saml_encryption_algorithm_forbidden",
                    "the assertion's encryption is not AES (CBC or GCM)");
    if (!ek)
        ek = child(child(ed, DS_NS, "KeyInfo"), XENC_NS, "EncryptedKey");
    if (!ek)
        return DENY(err, "saml_decryption_failed", "no EncryptedKey");
    xmlNode *km = child(ek, XENC_NS, "EncryptionMethod");
    if (!km || !acs_in_list(attr(km, "Algorithm"), key_transport_algs))
        return DENY(err, "saml_encryption_algorithm_forbidden",
                    "the key transport is not RSA-OAEP");
    return 0;
}
