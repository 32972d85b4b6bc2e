/* acs.c: the Assertion Consumer Service check. A POSTed SAMLResponse becomes
 * a verified identity only if every rule of DESIGN.md "Security floor" holds:
 * our own pre-check of the raw XML (size, no DTD, one Response, exactly one
 * assertion and it is the signed one, references point at their parents,
 * allowed algorithms), lasso's signature verification (hint MAYBE, never
 * IGNORE), then the checks lasso leaves to us (LIBRARIES.md table): issuer,
 * destination, recipient, audience, bearer, time with skew, InResponseTo,
 * replay. Every rejection carries a stable reason code. */
#define RG_SAML_INTERNAL 1
#include <assert.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <glib.h>
#include <lasso/lasso.h>
#include <lasso/utils.h>
#include <lasso/xml/misc_text_node.h>
#include <lasso/xml/saml-2.0/samlp2_response.h>
#include <lasso/xml/saml-2.0/saml2_assertion.h>
#include <lasso/xml/saml-2.0/saml2_attribute.h>
#include <lasso/xml/saml-2.0/saml2_attribute_statement.h>
#include <lasso/xml/saml-2.0/saml2_attribute_value.h>
#include <lasso/xml/saml-2.0/saml2_audience_restriction.h>
#include <lasso/xml/saml-2.0/saml2_authn_statement.h>
#include <lasso/xml/saml-2.0/saml2_conditions.h>
#include <lasso/xml/saml-2.0/saml2_subject_confirmation.h>
#include <lasso/xml/saml-2.0/saml2_subject_confirmation_data.h>
#include <libxml/tree.h>
#include "rolegate/saml.h"
#include "rolegate/util.h"

#define SAMLP_NS "urn:oasis:names:tc:SAML:2.0:protocol"
#define SAML_NS  "urn:oasis:names:tc:SAML:2.0:assertion"
#define DS_NS    "http://www.w3.org/2000/09/xmldsig#"
#define XENC_NS  "http://www.w3.org/2001/04/xmlenc#"
#define STATUS_SUCCESS "urn:oasis:names:tc:SAML:2.0:status:Success"
#define CM_BEARER "urn:oasis:names:tc:SAML:2.0:cm:bearer"

/* ---- rejections ----------------------------------------------------------- */

static int reject(rg_error *err, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int reject(rg_error *err, int status, const char *code, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return rg_error_set(err, RG_EINVAL, status, code, "SAMLResponse", "%s", msg);
}
#define BAD(err, code, ...)    reject(err, 400, code, __VA_ARGS__)
#define DENY(err, code, ...)   reject(err, 403, code, __VA_ARGS__)

/* ---- algorithms ----------------------------------------------------------- */

/* 1 if a (may be NULL) is one of the NULL-terminated list. */
static int in_list(const char *a, const char *const *list)
{
    for (size_t i = 0; a && list[i]; i++)
        if (strcmp(a, list[i]) == 0)
            return 1;
    return 0;
}

/* 1 allowed, 2 SHA-1 (allowed only by configuration), 0 refused. */
static int sig_alg_class(const char *a)
{
    static const char *const ok[] = {
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
        NULL};
    static const char *const sha1[] = {
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        "http://www.w3.org/2000/09/xmldsig#dsa-sha1",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1",
        NULL};
    return in_list(a, ok) ? 1 : in_list(a, sha1) ? 2 : 0;
}

static int digest_alg_class(const char *a)
{
    if (!a)
        return 0;
    if (strcmp(a, "http://www.w3.org/2001/04/xmlenc#sha256") == 0 ||
        strcmp(a, "http://www.w3.org/2001/04/xmldsig-more#sha384") == 0 ||
        strcmp(a, "http://www.w3.org/2001/04/xmlenc#sha512") == 0)
        return 1;
    if (strcmp(a, "http://www.w3.org/2000/09/xmldsig#sha1") == 0)
        return 2;
    return 0;
}

/* Only canonicalization and enveloped-signature transforms: no XPath, no
 * XSLT (those let a signature cover something other than the element). */
static int transform_ok(const char *a)
{
    static const char *const ok[] = {
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
        "http://www.w3.org/2001/10/xml-exc-c14n#",
        "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
        "http://www.w3.org/2006/12/xml-c14n11",
        NULL};
    return in_list(a, ok);
}

/* ---- DOM helpers ---------------------------------------------------------- */

static int is_el(const xmlNode *n, const char *ns, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
           strcmp((const char *)n->ns->href, ns) == 0 &&
           strcmp((const char *)n->name, name) == 0;
}

static int is_local(const xmlNode *n, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static xmlNode *child(const xmlNode *n, const char *ns, const char *name)
{
    for (xmlNode *c = n ? n->children : NULL; c; c = c->next)
        if (is_el(c, ns, name))
            return c;
    return NULL;
}

/* Attribute value (owned by the tree) or NULL. */
static const char *attr(const xmlNode *n, const char *name)
{
    for (xmlAttr *a = n ? n->properties : NULL; a; a = a->next)
        if (!a->ns && strcmp((const char *)a->name, name) == 0 && a->children &&
            a->children->type == XML_TEXT_NODE && !a->children->next)
            return (const char *)a->children->content;
    return NULL;
}

/* What the whole-document walk found. */
typedef struct scan {
    int responses, assertions, signatures;
    xmlNode *assertion;                 /* the last Assertion/EncryptedAssertion */
    xmlNode *sigs[8];
    int dup_id;
    GHashTable *ids;
} scan;

static void scan_tree(xmlNode *n, scan *s)
{
    for (; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE)
            continue;
        /* Counted by local name in any namespace: a decoy in a foreign
         * namespace is as suspicious as a real second assertion. */
        if (is_local(n, "Assertion") || is_local(n, "EncryptedAssertion")) {
            s->assertions++;
            s->assertion = n;
        }
        if (is_local(n, "Response"))
            s->responses++;
        if (is_el(n, DS_NS, "Signature")) {
            if (s->signatures < (int)(sizeof s->sigs / sizeof s->sigs[0]))
                s->sigs[s->signatures] = n;
            s->signatures++;
        }
        for (xmlAttr *a = n->properties; a; a = a->next) {
            const char *an = (const char *)a->name;
            if (strcmp(an, "ID") == 0 || strcmp(an, "Id") == 0 || strcmp(an, "id") == 0) {
                xmlChar *v = xmlNodeGetContent((xmlNode *)a);
                if (v && g_hash_table_contains(s->ids, v))
                    s->dup_id = 1;
                else if (v)
                    g_hash_table_add(s->ids, g_strdup((char *)v));
                xmlFree(v);
            }
        }
        scan_tree(n->children, s);
    }
}

/* One ds:Signature: it must sit directly in the element it signs and carry
 * exactly one Reference to that element's ID, with allowed algorithms. */
static int check_signature(xmlNode *sig, int allow_sha1, rg_error *err)
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

/* Checks one Assertion element (plain, or as decrypted by lasso): its own
 * signatures, one SubjectConfirmation at most, no nested assertion. Sets
 * *signed_ if it carries a signature. */
static int check_assertion_dom(xmlNode *as, int allow_sha1, int *signed_, rg_error *err)
{
    *signed_ = 0;
    xmlNode *subject = child(as, SAML_NS, "Subject");
    int scs = 0;
    for (xmlNode *c = subject ? subject->children : NULL; c; c = c->next)
        if (is_el(c, SAML_NS, "SubjectConfirmation"))
            scs++;
    if (scs > 1)
        return BAD(err, "saml_malformed", "more than one SubjectConfirmation");
    for (xmlNode *c = as->children; c; c = c->next) {
        if (!is_el(c, DS_NS, "Signature"))
            continue;
        int rc = check_signature(c, allow_sha1, err);
        if (rc)
            return rc;
        (*signed_)++;
    }
    return 0;
}

/* ---- encrypted assertions -------------------------------------------------- */

/* The shape lasso will decrypt, checked before lasso sees it: one
 * EncryptedData with an AES EncryptionMethod, and an EncryptedKey where
 * lasso looks for it (a sibling of the EncryptedData, else inside its
 * KeyInfo) transported with RSA-OAEP. lasso 2.8.1 leaks its copy of the SP
 * key (80 bytes) when the method is missing or unknown or the EncryptedKey
 * is not where it looks, so those never reach it; RSA PKCS#1 v1.5 key
 * transport (open to Bleichenbacher-style oracles) is refused outright. */
static int check_encrypted(xmlNode *ea, rg_error *err)
{
    static const char *const data_algs[] = {
        "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
        "http://www.w3.org/2001/04/xmlenc#aes192-cbc",
        "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
        "http://www.w3.org/2009/xmlenc11#aes128-gcm",
        "http://www.w3.org/2009/xmlenc11#aes192-gcm",
        "http://www.w3.org/2009/xmlenc11#aes256-gcm",
        NULL};
    static const char *const key_algs[] = {
        "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
        "http://www.w3.org/2009/xmlenc11#rsa-oaep",
        NULL};
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
    if (!in_list(attr(em, "Algorithm"), data_algs))
        return DENY(err, "saml_encryption_algorithm_forbidden",
                    "the assertion's encryption is not AES (CBC or GCM)");
    if (!ek)
        ek = child(child(ed, DS_NS, "KeyInfo"), XENC_NS, "EncryptedKey");
    if (!ek)
        return DENY(err, "saml_decryption_failed", "no EncryptedKey");
    xmlNode *km = child(ek, XENC_NS, "EncryptionMethod");
    if (!km || !in_list(attr(km, "Algorithm"), key_algs))
        return DENY(err, "saml_encryption_algorithm_forbidden",
                    "the key transport is not RSA-OAEP");
    return 0;
}

/* ---- time ----------------------------------------------------------------- */

/* n ASCII digits at s as a number, or -1: unlike sscanf("%2d") no sign, no
 * blank, no shorter field is accepted. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* xs:dateTime "YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm|-hh:mm)" → seconds. A value
 * with no zone is taken as UTC (SAML core 1.3.3 requires UTC). -1 if bad. */
static int64_t parse_time(const char *s)
{
    if (!s || strlen(s) < 19 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':')
        return -1;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = digits(s, 4);
    tm.tm_mon = digits(s + 5, 2);
    tm.tm_mday = digits(s + 8, 2);
    tm.tm_hour = digits(s + 11, 2);
    tm.tm_min = digits(s + 14, 2);
    tm.tm_sec = digits(s + 17, 2);
    if (tm.tm_year < 0 || tm.tm_mon < 0 || tm.tm_mday < 0 || tm.tm_hour < 0 || tm.tm_min < 0 ||
        tm.tm_sec < 0)
        return -1;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        while (isdigit((unsigned char)*p))
            p++;
    }
    int off = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh = digits(p + 1, 2), mm = p[3] == ':' ? digits(p + 4, 2) : -1;
        if (hh < 0 || mm < 0 || hh > 14 || mm > 59)
            return -1;
        off = (hh * 3600 + mm * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    }
    if (*p)
        return -1;
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) - off;
}

/* ---- identity ------------------------------------------------------------- */

void rg_saml_identity_clear(rg_saml_identity *id)
{
    if (!id)
        return;
    free(id->subject);
    free(id->subject_format);
    free(id->email);
    free(id->name);
    for (size_t i = 0; i < id->n_groups; i++)
        free(id->groups[i]);
    free(id->groups);
    free(id->issuer);
    free(id->assertion_id);
    free(id->in_response_to);
    free(id->session_index);
    memset(id, 0, sizeof *id);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* The unescaped text of one AttributeValue: all its text children joined, so
 * a comment splitting the text cannot truncate it (the signature covers the
 * text without the comment). NULL for element content or an empty value. */
static char *attribute_text(LassoNode *value)
{
    if (!LASSO_IS_SAML2_ATTRIBUTE_VALUE(value))
        return NULL;
    rg_buf b = {0};
    int text = 0;
    for (GList *a = LASSO_SAML2_ATTRIBUTE_VALUE(value)->any; a; a = a->next) {
        if (!LASSO_IS_MISC_TEXT_NODE(a->data))
            return rg_buf_free(&b), NULL;
        LassoMiscTextNode *t = LASSO_MISC_TEXT_NODE(a->data);
        if (!t->text_child)
            return rg_buf_free(&b), NULL;
        if (t->content)
            rg_buf_puts(&b, t->content);
        text = 1;
    }
    if (!text || b.len == 0) {
        rg_buf_free(&b);
        return NULL;
    }
    return rg_buf_take(&b);
}

static int name_in(char *const *list, const LassoSaml2Attribute *at)
{
    for (size_t i = 0; list[i]; i++)
        if ((at->Name && strcmp(at->Name, list[i]) == 0) ||
            (at->FriendlyName && strcmp(at->FriendlyName, list[i]) == 0))
            return 1;
    return 0;
}

/* Fills email, name and groups from every AttributeStatement. */
static int read_attributes(const rg_saml_connection *c, LassoSaml2Assertion *as,
                           rg_saml_identity *id)
{
    for (GList *st = as->AttributeStatement; st; st = st->next) {
        if (!LASSO_IS_SAML2_ATTRIBUTE_STATEMENT(st->data))
            continue;
        for (GList *al = LASSO_SAML2_ATTRIBUTE_STATEMENT(st->data)->Attribute; al; al = al->next) {
            if (!LASSO_IS_SAML2_ATTRIBUTE(al->data))
                continue;
            LassoSaml2Attribute *at = LASSO_SAML2_ATTRIBUTE(al->data);
            int g = name_in(c->group_attrs, at);
            int e = !id->email && name_in(c->email_attrs, at);
            int n = !id->name && name_in(c->name_attrs, at);
            if (!g && !e && !n)
                continue;
            for (GList *v = at->AttributeValue; v; v = v->next) {
                char *t = attribute_text(v->data);
                if (!t)
                    continue;
                if (e && !id->email) {
                    id->email = strdup(t);
                    if (!id->email)
                        return free(t), -1;
                }
                if (n && !id->name) {
                    id->name = strdup(t);
                    if (!id->name)
                        return free(t), -1;
                }
                if (!g) {
                    free(t);
                    continue;
                }
                char **gr = realloc(id->groups, (id->n_groups + 1) * sizeof *gr);
                if (!gr)
                    return free(t), -1;
                id->groups = gr;
                gr[id->n_groups++] = t;
            }
        }
    }
    return 0;
}

static int looks_like_email(const char *s)
{
    const char *at = s ? strchr(s, '@') : NULL;
    if (!at || at == s || !at[1] || strchr(at + 1, '@') || !strchr(at + 1, '.'))
        return 0;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '<' || *p == '>' || *p == '"')
            return 0;
    return 1;
}

/* ---- lasso ------------------------------------------------------------------ */

static int map_lasso_rc(int rc, int encrypted, rg_error *err)
{
    switch (rc) {
    case LASSO_DS_ERROR_SIGNATURE_NOT_FOUND:
        return DENY(err, "saml_signature_missing", "no signature covers the assertion");
    case LASSO_DS_ERROR_INVALID_SIGNATURE:
    case LASSO_DS_ERROR_SIGNATURE_VERIFICATION_FAILED:
    case LASSO_DS_ERROR_INVALID_REFERENCE_FOR_SAML:
    case LASSO_DS_ERROR_TOO_MUCH_REFERENCES:
    case LASSO_PROFILE_ERROR_CANNOT_VERIFY_SIGNATURE:
    case LASSO_DS_ERROR_PUBLIC_KEY_LOAD_FAILED:
    case LASSO_DS_ERROR_DIGEST_COMPUTE_FAILED:
    case LASSO_DS_ERROR_SIGNATURE_FAILED:
        return DENY(err, "saml_signature_invalid", "signature verification failed (%s)",
                    lasso_strerror(rc));
    case LASSO_PROFILE_ERROR_INVALID_ISSUER:
    case LASSO_PROFILE_ERROR_MISSING_ISSUER:
    case LASSO_SERVER_ERROR_PROVIDER_NOT_FOUND:
    case LASSO_PROFILE_ERROR_UNKNOWN_PROVIDER:
        return DENY(err, "saml_wrong_issuer", "the issuer is not this connection's IdP");
    case LASSO_LOGIN_ERROR_STATUS_NOT_SUCCESS:
    case LASSO_LOGIN_ERROR_REQUEST_DENIED:
    case LASSO_LOGIN_ERROR_FEDERATION_NOT_FOUND:
    case LASSO_LOGIN_ERROR_UNKNOWN_PRINCIPAL:
        return DENY(err, "saml_status_not_success", "the IdP answered with an error status");
    case LASSO_PROFILE_ERROR_MISSING_ASSERTION:
        if (encrypted)
            return DENY(err, "saml_decryption_failed", "the encrypted assertion did not decrypt");
        return BAD(err, "saml_malformed", "no assertion");
    default:
        return BAD(err, "saml_malformed", "lasso rejected the response (%s)", lasso_strerror(rc));
    }
}

/* ---- the ACS check ---------------------------------------------------------- */

typedef struct acs_state {
    unsigned char *xml;
    char          *b64;
    xmlDoc        *doc;
    GHashTable    *ids;
    LassoLogin    *login;
} acs_state;

static void acs_state_free(acs_state *st)
{
    free(st->xml);
    free(st->b64);
    if (st->doc)
        xmlFreeDoc(st->doc);
    if (st->ids)
        g_hash_table_destroy(st->ids);
    if (st->login)
        lasso_login_destroy(st->login);
}

/* Step 1: raw XML and structure, before any crypto. Sets *enc when the one
 * assertion is encrypted and *resp_signed when the Response carries a
 * signature (checked here for placement and algorithms only). */
static int precheck(const rg_saml_connection *c, acs_state *st, const char *b64, size_t len,
                    int *enc, int *resp_signed, rg_error *err)
{
    /* base64 grows by 4/3 plus line breaks; anything beyond 3/2 is too big. */
    if (len > c->max_response / 2 * 3 + 64)
        return BAD(err, "saml_response_too_large", "SAMLResponse exceeds %zu bytes",
                   c->max_response);
    st->xml = malloc(len / 4 * 3 + 4);
    if (!st->xml)
        return rg_error_set(err, RG_ENOMEM, 500, "internal", NULL, "out of memory");
    long n = rg_b64_decode(b64, len, st->xml);
    if (n <= 0)
        return BAD(err, "saml_malformed", "SAMLResponse is not base64");
    if ((size_t)n > c->max_response)
        return BAD(err, "saml_response_too_large", "SAMLResponse exceeds %zu bytes",
                   c->max_response);
    int why = 0;
    st->doc = rg_saml_xml_parse((const char *)st->xml, (size_t)n, &why);
    if (!st->doc && why == 3)   /* item 11: one reading of the bytes, UTF-8 */
        return BAD(err, "saml_encoding_forbidden", "%s",
                   rg_saml_xml_charset_check((const char *)st->xml, (size_t)n));
    if (!st->doc)
        return why == 1 ? BAD(err, "saml_dtd_forbidden", "a DTD is not allowed")
                        : BAD(err, "saml_malformed", "SAMLResponse is not well-formed XML");
    /* lasso gets exactly the bytes checked here, re-encoded by us. */
    st->b64 = malloc(((size_t)n + 2) / 3 * 4 + 1);
    if (!st->b64)
        return rg_error_set(err, RG_ENOMEM, 500, "internal", NULL, "out of memory");
    st->b64[rg_b64_encode(st->xml, (size_t)n, st->b64)] = 0;

    xmlNode *root = xmlDocGetRootElement(st->doc);
    if (!is_el(root, SAMLP_NS, "Response"))
        return BAD(err, "saml_malformed", "the root element is not a samlp:Response");

    /* Status first: an error answer has no assertion to count. */
    xmlNode *status = child(root, SAMLP_NS, "Status");
    xmlNode *code = child(status, SAMLP_NS, "StatusCode");
    const char *value = attr(code, "Value");
    if (!value)
        return BAD(err, "saml_malformed", "no StatusCode");
    if (strcmp(value, STATUS_SUCCESS) != 0)
        return DENY(err, "saml_status_not_success", "the IdP answered with an error status");

    scan s;
    memset(&s, 0, sizeof s);
    s.ids = st->ids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    scan_tree(root, &s);
    /* Signature wrapping defence: exactly one Response, exactly one
     * assertion, and it is a direct child of the Response; so the assertion
     * lasso reads is the only one anywhere in the document. */
    if (s.assertions > 1)
        return DENY(err, "saml_multiple_assertions", "%d assertions in the response",
                    s.assertions);
    if (s.assertions == 0)
        return BAD(err, "saml_malformed", "no assertion");
    if (s.responses != 1 || s.assertion->parent != root)
        return DENY(err, "saml_malformed", "the assertion is not a direct child of the Response");
    if (s.dup_id)
        return DENY(err, "saml_malformed", "duplicate ID attributes");
    *enc = is_el(s.assertion, SAML_NS, "EncryptedAssertion");
    if (!*enc && !is_el(s.assertion, SAML_NS, "Assertion"))
        return DENY(err, "saml_malformed", "the assertion is not a SAML 2.0 assertion");
    if (*enc) {
        int rc = check_encrypted(s.assertion, err);
        if (rc)
            return rc;
    }

    /* Every signature sits directly in the Response or the assertion. */
    *resp_signed = 0;
    int as_signed = 0;
    if (s.signatures > (int)(sizeof s.sigs / sizeof s.sigs[0]))
        return DENY(err, "saml_signature_invalid", "too many signatures");
    for (int i = 0; i < s.signatures; i++) {
        xmlNode *p = s.sigs[i]->parent;
        if (p != root && p != s.assertion)
            return DENY(err, "saml_signature_invalid", "a signature signs neither the "
                                                       "Response nor the assertion");
        int rc = check_signature(s.sigs[i], c->allow_sha1, err);
        if (rc)
            return rc;
        if (p == root)
            (*resp_signed)++;
        else
            as_signed++;
    }
    if (*resp_signed > 1 || as_signed > 1)
        return DENY(err, "saml_signature_invalid", "more than one signature on one element");
    if (!*enc) {
        int dummy = 0;
        int rc = check_assertion_dom(s.assertion, c->allow_sha1, &dummy, err);
        if (rc)
            return rc;
    }
    if (s.signatures == 0 && !*enc)
        return DENY(err, "saml_signature_missing", "neither the Response nor the assertion "
                                                   "is signed");

    /* Issuer before any key is chosen: the one IdP of this connection. */
    xmlNode *iss = child(root, SAML_NS, "Issuer");
    if (iss) {
        xmlChar *t = xmlNodeGetContent(iss);
        int ok = t && strcmp((char *)t, c->idp_entity_id) == 0;
        xmlFree(t);
        if (!ok)
            return DENY(err, "saml_wrong_issuer", "the Response issuer is not the IdP");
    }
    if (!*enc) {
        xmlNode *ai = child(s.assertion, SAML_NS, "Issuer");
        xmlChar *t = ai ? xmlNodeGetContent(ai) : NULL;
        int ok = t && strcmp((char *)t, c->idp_entity_id) == 0;
        xmlFree(t);
        if (!ok)
            return DENY(err, "saml_wrong_issuer", "the assertion issuer is not the IdP");
    }
    /* SAML bindings 3.5.5.2: a signed Response must name its Destination. */
    const char *dest = attr(root, "Destination");
    if (dest ? strcmp(dest, c->acs_url) != 0 : *resp_signed > 0)
        return DENY(err, "saml_wrong_destination", "Destination is not this ACS");
    return 0;
}

int rg_saml_acs_verify(const rg_saml_connection *c, const char *b64, size_t len,
                       const char *expected, int64_t now, rg_saml_replay_fn replay_check,
                       void *replay_ctx, rg_saml_identity *out, rg_error *err)
{
    assert(c && out);
    memset(out, 0, sizeof *out);
    if (!b64 || len == 0)
        return BAD(err, "saml_malformed", "no SAMLResponse");
    if (now == 0)
        now = rg_now();
    const int64_t skew = c->skew;
    acs_state st;
    memset(&st, 0, sizeof st);
    int enc = 0, resp_signed = 0, rc;

    rc = precheck(c, &st, b64, len, &enc, &resp_signed, err);
    if (rc)
        goto done;

    /* Step 2: lasso verifies the signatures with the IdP's metadata key.
     * MAYBE: every assertion is covered by a valid Response signature or by
     * its own; a present but invalid signature always fails (LIBRARIES.md). */
    st.login = lasso_login_new(c->server);
    if (!st.login) {
        rc = rg_error_set(err, RG_ENOMEM, 500, "internal", NULL, "out of memory");
        goto done;
    }
    LassoProfile *prof = LASSO_PROFILE(st.login);
    lasso_profile_set_signature_verify_hint(prof, LASSO_PROFILE_SIGNATURE_VERIFY_HINT_MAYBE);
    int lrc = lasso_login_process_authn_response_msg(st.login, st.b64);
    if (lrc != 0) {
        rc = map_lasso_rc(lrc, enc, err);
        goto done;
    }
    LassoSamlp2Response *resp = LASSO_IS_SAMLP2_RESPONSE(prof->response)
                                    ? LASSO_SAMLP2_RESPONSE(prof->response) : NULL;
    if (!resp || !resp->Assertion || resp->Assertion->next) {
        rc = DENY(err, "saml_multiple_assertions", "lasso did not read exactly one assertion");
        goto done;
    }
    LassoSaml2Assertion *as = LASSO_SAML2_ASSERTION(resp->Assertion->data);
    if (enc) {
        /* The decrypted assertion gets the same checks as a plain one, and
         * must be signed itself unless the Response signature covers the
         * ciphertext (anyone holding our public key can encrypt). */
        xmlNode *dn = lasso_node_get_original_xmlnode(LASSO_NODE(as));
        int as_signed = 0;
        if (dn) {
            scan s2;
            memset(&s2, 0, sizeof s2);
            s2.ids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
            scan_tree(dn->children, &s2);
            g_hash_table_destroy(s2.ids);
            int d_assertions = s2.assertions;
            if (d_assertions) {
                rc = DENY(err, "saml_multiple_assertions", "assertion nested in the assertion");
                goto done;
            }
            rc = check_assertion_dom(dn, c->allow_sha1, &as_signed, err);
            if (rc)
                goto done;
        }
        if (!resp_signed && !as_signed) {
            rc = DENY(err, "saml_signature_missing", "encrypted assertion is not signed");
            goto done;
        }
        if (!as->Issuer || !as->Issuer->content ||
            strcmp(as->Issuer->content, c->idp_entity_id) != 0) {
            rc = DENY(err, "saml_wrong_issuer", "the assertion issuer is not the IdP");
            goto done;
        }
    }
    if (!as->ID || !*as->ID) {
        rc = BAD(err, "saml_malformed", "assertion without ID");
        goto done;
    }
    if (resp->parent.Destination && strcmp(resp->parent.Destination, c->acs_url) != 0) {
        rc = DENY(err, "saml_wrong_destination", "Destination is not this ACS");
        goto done;
    }

    /* Step 3: what lasso leaves to us. */
    LassoSaml2Subject *subj = as->Subject;
    LassoSaml2SubjectConfirmation *sc = subj ? subj->SubjectConfirmation : NULL;
    if (!sc || !sc->Method || strcmp(sc->Method, CM_BEARER) != 0) {
        rc = DENY(err, "saml_not_bearer", "no bearer SubjectConfirmation");
        goto done;
    }
    LassoSaml2SubjectConfirmationData *scd = sc->SubjectConfirmationData;
    if (!scd || !scd->Recipient || strcmp(scd->Recipient, c->acs_url) != 0) {
        rc = DENY(err, "saml_wrong_recipient", "Recipient is not this ACS");
        goto done;
    }
    LassoSaml2Conditions *cond = as->Conditions;
    int audiences = 0;
    for (GList *ar = cond ? cond->AudienceRestriction : NULL; ar; ar = ar->next) {
        /* Each AudienceRestriction must name us (SAML core 2.5.1.4). lasso
         * keeps one Audience per restriction. */
        LassoSaml2AudienceRestriction *r = ar->data;
        if (!LASSO_IS_SAML2_AUDIENCE_RESTRICTION(r) || !r->Audience ||
            strcmp(r->Audience, c->sp_entity_id) != 0) {
            audiences = -1;
            break;
        }
        audiences++;
    }
    if (audiences <= 0) {
        rc = DENY(err, "saml_wrong_audience", "the audience is not this SP");
        goto done;
    }
    /* Time: [NotBefore - skew, NotOnOrAfter + skew). The bearer profile
     * requires NotOnOrAfter on the confirmation data. */
    int64_t scd_noa = parse_time(scd->NotOnOrAfter);
    int64_t c_nb = cond->NotBefore ? parse_time(cond->NotBefore) : 0;
    int64_t c_noa = cond->NotOnOrAfter ? parse_time(cond->NotOnOrAfter) : 0;
    int64_t scd_nb = scd->NotBefore ? parse_time(scd->NotBefore) : 0;
    if (scd_noa < 0 || c_nb < 0 || c_noa < 0 || scd_nb < 0) {
        rc = BAD(err, "saml_malformed", "bad or missing NotOnOrAfter/NotBefore");
        goto done;
    }
    if ((c_nb && now + skew < c_nb) || (scd_nb && now + skew < scd_nb)) {
        rc = DENY(err, "saml_not_yet_valid", "the assertion is not valid yet");
        goto done;
    }
    if (now - skew >= scd_noa || (c_noa && now - skew >= c_noa)) {
        rc = DENY(err, "saml_expired", "the assertion has expired");
        goto done;
    }
    int64_t session_noa = 0;
    const char *session_index = NULL;
    for (GList *a = as->AuthnStatement; a; a = a->next) {
        if (!LASSO_IS_SAML2_AUTHN_STATEMENT(a->data))
            continue;
        LassoSaml2AuthnStatement *s = a->data;
        if (s->SessionNotOnOrAfter) {
            session_noa = parse_time(s->SessionNotOnOrAfter);
            if (session_noa < 0) {
                rc = BAD(err, "saml_malformed", "bad SessionNotOnOrAfter");
                goto done;
            }
            if (now - skew >= session_noa) {
                rc = DENY(err, "saml_expired", "the IdP session has ended");
                goto done;
            }
        }
        if (!session_index)
            session_index = s->SessionIndex;
    }

    /* InResponseTo: lasso does not compare it for a fresh LassoLogin. Both
     * the Response and the confirmation data must match what we sent. */
    const char *irt_r = resp->parent.InResponseTo, *irt_s = scd->InResponseTo;
    if (irt_r && !*irt_r)
        irt_r = NULL;
    if (irt_s && !*irt_s)
        irt_s = NULL;
    if (irt_r || irt_s) {
        if (!expected || (irt_r && strcmp(irt_r, expected) != 0) ||
            (irt_s && strcmp(irt_s, expected) != 0)) {
            rc = DENY(err, "saml_in_response_to_mismatch",
                      "InResponseTo does not match a pending request");
            goto done;
        }
    } else if (!c->allow_idp_initiated) {
        rc = DENY(err, "saml_unsolicited", "IdP-initiated login is not allowed here");
        goto done;
    }

    LassoSaml2NameID *nid = LASSO_IS_SAML2_NAME_ID(prof->nameIdentifier)
                                ? LASSO_SAML2_NAME_ID(prof->nameIdentifier) : NULL;
    if (!nid || !nid->content || !*nid->content) {
        rc = BAD(err, "saml_malformed", "no NameID");
        goto done;
    }

    int64_t expires = scd_noa;
    if (c_noa && c_noa < expires)
        expires = c_noa;
    /* issue 11 item 12: an assertion valid for years would hold its replay
     * entry for years; it is refused, not remembered for less (a shorter
     * memory would let it be replayed later) */
    if (expires - now > c->max_lifetime) {
        rc = DENY(err, "saml_assertion_lifetime_too_long",
                  "the assertion is valid for more than %lld s", (long long)c->max_lifetime);
        goto done;
    }
    expires += skew;

    out->subject = strdup(nid->content);
    out->subject_format = dup_or_null(nid->Format);
    out->issuer = strdup(c->idp_entity_id);
    out->assertion_id = strdup(as->ID);
    out->in_response_to = dup_or_null(irt_s ? irt_s : irt_r);
    out->session_index = dup_or_null(session_index);
    out->session_not_on_or_after = session_noa;
    out->expires_at = expires;
    if (!out->subject || !out->issuer || !out->assertion_id ||
        read_attributes(c, as, out) != 0) {
        rc = rg_error_set(err, RG_ENOMEM, 500, "internal", NULL, "out of memory");
        goto done;
    }
    if (!out->email && looks_like_email(out->subject) &&
        !(out->email = strdup(out->subject))) {
        rc = rg_error_set(err, RG_ENOMEM, 500, "internal", NULL, "out of memory");
        goto done;
    }

    /* Replay last, so forged or stale responses never fill the cache. */
    if (replay_check) {
        int r = replay_check(replay_ctx, out->issuer, out->assertion_id, expires);
        if (r == 1) {
            rc = DENY(err, "saml_replay", "this assertion was already used");
            goto done;
        }
        if (r == 2) {   /* item 12: this connection's share, not everyone's */
            rc = rg_error_set(err, RG_EIO, 503, "saml_replay_quota_exceeded", "SAMLResponse",
                              "this connection holds its whole share of the replay cache");
            goto done;
        }
        if (r != 0) {
            rc = rg_error_set(err, RG_EIO, 503, "saml_replay_cache_unavailable", "SAMLResponse",
                              "the replay cache is unavailable");
            goto done;
        }
    }
    rc = 0;
done:
    if (rc) {
        char q[120];
        rg_log(RG_LOG_INFO, "event=saml_rejected connection=%s reason=%s detail=%s",
               c->connection_id, err ? err->code : "-",
               rg_log_quote(q, sizeof q, err ? err->message : ""));
        rg_saml_identity_clear(out);
    }
    acs_state_free(&st);
    return rc;
}
