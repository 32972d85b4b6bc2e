/* acs_precheck.c: step 1 of the ACS check, the structural precheck of the
 * raw XML before any crypto: size and base64, a UTF-8 document without DTD,
 * a samlp:Response whose status is Success, exactly one Response and one
 * assertion (a direct child, the signed one, no duplicate IDs), every
 * signature in the Response or the assertion and within the algorithm
 * policy (acs_policy.c), the issuer this connection's IdP and the
 * Destination this ACS. The whole-document scan lives here too; the lasso
 * step uses it again on the decrypted assertion. */
#define RG_SAML_INTERNAL 1
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include <libxml/tree.h>
#include "saml_internal.h"

/* ---- the scan --------------------------------------------------------------- */

void acs_scan_tree(xmlNode *n, scan *s)
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
        acs_scan_tree(n->children, s);
    }
}

/* Checks one Assertion element (plain, or as decrypted by lasso): its own
 * signatures, one SubjectConfirmation at most, no nested assertion. Sets
 * *signed_ if it carries a signature. */
int acs_check_assertion_dom(xmlNode *as, int allow_sha1, int *signed_, rg_error *err)
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
        int rc = acs_check_signature(c, allow_sha1, err);
        if (rc)
            return rc;
        (*signed_)++;
    }
    return 0;
}

/* ---- the steps of the precheck ------------------------------------------------ */

/* Size, base64, one UTF-8 document without DTD; st->b64 gets exactly the
 * bytes checked here, re-encoded by us, for lasso. */
static int decode_and_parse(const rg_saml_connection *c, acs_state *st, const char *b64,
                            size_t len, rg_error *err)
{
    /* base64 grows by 4/3 plus line breaks; anything beyond 3/2 is too big. */
    if (len > c->max_response / 2 * 3 + 64)
        return BAD(err, "saml_response_too_large", "SAMLResponse exceeds %zu bytes",
                   c->max_response);
    st->xml = malloc(len / 4 * 3 + 4);
    if (!st->xml)
        return rg_error_oom(err);
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
    st->b64 = malloc(((size_t)n + 2) / 3 * 4 + 1);
    if (!st->b64)
        return rg_error_oom(err);
    st->b64[rg_b64_encode(st->xml, (size_t)n, st->b64)] = 0;
    return 0;
}

/* The root is a samlp:Response, and its status comes first: an error answer
 * has no assertion to count. */
static int check_root_status(xmlNode *root, rg_error *err)
{
    if (!is_el(root, SAMLP_NS, "Response"))
        return BAD(err, "saml_malformed", "the root element is not a samlp:Response");
    xmlNode *status = child(root, SAMLP_NS, "Status");
    xmlNode *code = child(status, SAMLP_NS, "StatusCode");
    const char *value = attr(code, "Value");
    if (!value)
        return BAD(err, "saml_malformed", "no StatusCode");
    if (strcmp(value, STATUS_SUCCESS) != 0)
        return DENY(err, "saml_status_not_success", "the IdP answered with an error status");
    return 0;
}

/* Signature wrapping defence: exactly one Response, exactly one assertion,
 * and it is a direct child of the Response; so the assertion lasso reads is
 * the only one anywhere in the document. Sets st->enc. */
static int check_structure(acs_state *st, xmlNode *root, scan *s, rg_error *err)
{
    s->ids = st->ids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    acs_scan_tree(root, s);
    if (s->assertions > 1)
        return DENY(err, "saml_multiple_assertions", "%d assertions in the response",
                    s->assertions);
    if (s->assertions == 0)
        return BAD(err, "saml_malformed", "no assertion");
    if (s->responses != 1 || s->assertion->parent != root)
        return DENY(err, "saml_malformed", "the assertion is not a direct child of the Response");
    if (s->dup_id)
        return DENY(err, "saml_malformed", "duplicate ID attributes");
    st->enc = is_el(s->assertion, SAML_NS, "EncryptedAssertion");
    if (!st->enc && !is_el(s->assertion, SAML_NS, "Assertion"))
        return DENY(err, "saml_malformed", "the assertion is not a SAML 2.0 assertion");
    if (st->enc)
        return acs_check_encrypted(s->assertion, err);
    return 0;
}

/* Every signature sits directly in the Response or the assertion, one per
 * element at most, within the policy; something is signed. Sets
 * st->resp_signed. */
static int check_signatures(const rg_saml_connection *c, acs_state *st, xmlNode *root,
                            const scan *s, rg_error *err)
{
    st->resp_signed = 0;
    int as_signed = 0;
    if (s->signatures > (int)(sizeof s->sigs / sizeof s->sigs[0]))
        return DENY(err, "saml_signature_invalid", "too many signatures");
    for (int i = 0; i < s->signatures; i++) {
        xmlNode *p = s->sigs[i]->parent;
        if (p != root && p != s->assertion)
            return DENY(err, "saml_signature_invalid", "a signature signs neither the "
                                                       "Response nor the assertion");
        int rc = acs_check_signature(s->sigs[i], c->allow_sha1, err);
        if (rc)
            return rc;
        if (p == root)
            st->resp_signed++;
        else
            as_signed++;
    }
    if (st->resp_signed > 1 || as_signed > 1)
        return DENY(err, "saml_signature_invalid", "more than one signature on one element");
    if (!st->enc) {
        int dummy = 0;
        int rc = acs_check_assertion_dom(s->assertion, c->allow_sha1, &dummy, err);
        if (rc)
            return rc;
    }
    if (s->signatures == 0 && !st->enc)
        return DENY(err, "saml_signature_missing", "neither the Response nor the assertion "
                                                   "is signed");
    return 0;
}

/* Issuer before any key is chosen: the one IdP of this connection. Then
 * SAML bindings 3.5.5.2: a signed Response must name its Destination. */
static int check_issuer_destination(const rg_saml_connection *c, const acs_state *st,
                                    xmlNode *root, xmlNode *assertion, rg_error *err)
{
    xmlNode *iss = child(root, SAML_NS, "Issuer");
    if (iss) {
        xmlChar *t = xmlNodeGetContent(iss);
        int ok = t && strcmp((char *)t, c->idp_entity_id) == 0;
        xmlFree(t);
        if (!ok)
            return DENY(err, "saml_wrong_issuer", "the Response issuer is not the IdP");
    }
    if (!st->enc) {
        xmlNode *ai = child(assertion, SAML_NS, "Issuer");
        xmlChar *t = ai ? xmlNodeGetContent(ai) : NULL;
        int ok = t && strcmp((char *)t, c->idp_entity_id) == 0;
        xmlFree(t);
        if (!ok)
            return DENY(err, "saml_wrong_issuer", "the assertion issuer is not the IdP");
    }
    const char *dest = attr(root, "Destination");
    if (dest ? strcmp(dest, c->acs_url) != 0 : st->resp_signed > 0)
        return DENY(err, "saml_wrong_destination", "Destination is not this ACS");
    return 0;
}

int acs_precheck(const rg_saml_connection *c, acs_state *st, const char *b64, size_t len,
                 rg_error *err)
{
    int rc = decode_and_parse(c, st, b64, len, err);
    if (rc)
        return rc;
    xmlNode *root = xmlDocGetRootElement(st->doc);
    scan s;
    memset(&s, 0, sizeof s);
    if ((rc = check_root_status(root, err)) || (rc = check_structure(st, root, &s, err)) ||
        (rc = check_signatures(c, st, root, &s, err)))
        return rc;
    return check_issuer_destination(c, st, root, s.assertion, err);
}
