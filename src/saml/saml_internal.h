/* saml_internal.h: what the files of the ACS check (acs.c and the acs_*.c
 * files beside it) share and nobody else sees: the namespaces, the
 * rejection helper with its BAD/DENY shorthands, the DOM helpers, the
 * whole-document scan, the state one check carries from step to step, and
 * the steps themselves: the algorithm policy (acs_policy.c), the structural
 * precheck (acs_precheck.c), the lasso step (acs_lasso.c) and the identity
 * read from the assertion (acs_identity.c). Include after defining
 * RG_SAML_INTERNAL. */
#ifndef ROLEGATE_SAML_INTERNAL_H
#define ROLEGATE_SAML_INTERNAL_H

#include <stdint.h>
#include <string.h>
#include <glib.h>
#include <lasso/lasso.h>
#include <lasso/xml/saml-2.0/samlp2_response.h>
#include <lasso/xml/saml-2.0/saml2_assertion.h>
#include <libxml/tree.h>
#include "rolegate/saml.h"
#include "rolegate/util.h"

#define SAMLP_NS "urn:oasis:names:tc:SAML:2.0:protocol"
#define SAML_NS  "urn:oasis:names:tc:SAML:2.0:assertion"
#define DS_NS    "http://www.w3.org/2000/09/xmldsig#"
#define XENC_NS  "http://www.w3.org/2001/04/xmlenc#"
#define STATUS_SUCCESS "urn:oasis:names:tc:SAML:2.0:status:Success"
#define CM_BEARER "urn:oasis:names:tc:SAML:2.0:cm:bearer"

/* ---- rejections (acs.c) --------------------------------------------------- */

/* Sets err (the error kind, its status, the stable reason code, field
 * SAMLResponse, the formatted message). BAD (400) and DENY (403) are their
 * kind as an expression the reader (and clang's analyzer, which cannot see
 * into another file) sees is never 0. */
void acs_reject(rg_error *err, int kind, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define BAD(err, code, ...)    (acs_reject(err, RG_EINVAL, code, __VA_ARGS__), RG_EINVAL)
#define DENY(err, code, ...)   (acs_reject(err, RG_EFORBIDDEN, code, __VA_ARGS__), RG_EFORBIDDEN)

/* ---- DOM helpers ------------------------------------------------------------ */

static inline int is_el(const xmlNode *n, const char *ns, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
           strcmp((const char *)n->ns->href, ns) == 0 &&
           strcmp((const char *)n->name, name) == 0;
}

static inline int is_local(const xmlNode *n, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static inline xmlNode *child(const xmlNode *n, const char *ns, const char *name)
{
    for (xmlNode *c = n ? n->children : NULL; c; c = c->next)
        if (is_el(c, ns, name))
            return c;
    return NULL;
}

/* Attribute value (owned by the tree) or NULL. */
static inline const char *attr(const xmlNode *n, const char *name)
{
    for (xmlAttr *a = n ? n->properties : NULL; a; a = a->next)
        if (!a->ns && strcmp((const char *)a->name, name) == 0 && a->children &&
            a->children->type == XML_TEXT_NODE && !a->children->next)
            return (const char *)a->children->content;
    return NULL;
}

/* ---- the state of one check -------------------------------------------------- */

typedef struct acs_state {
    unsigned char *xml;
    char          *b64;
    xmlDoc        *doc;
    GHashTable    *ids;
    LassoLogin    *login;
    int            enc;          /* the one assertion is encrypted */
    int            resp_signed;  /* signatures directly in the Response */
    /* set by the lasso step; owned by login */
    LassoProfile        *prof;
    LassoSamlp2Response *resp;
    LassoSaml2Assertion *as;
} acs_state;

/* ---- the algorithm policy (acs_policy.c) ------------------------------------- */

/* 1 if a (may be NULL) is one of the NULL-terminated list. */
int acs_in_list(const char *a, const char *const *list);
/* One ds:Signature: placement, one Reference to its parent's ID, allowed
 * canonicalization, transforms, signature and digest algorithms. */
int acs_check_signature(xmlNode *sig, int allow_sha1, rg_error *err);
/* An EncryptedAssertion's shape and algorithms, before lasso sees it. */
int acs_check_encrypted(xmlNode *ea, rg_error *err);

/* ---- the structural precheck (acs_precheck.c) -------------------------------- */

/* What the whole-document walk found. */
typedef struct scan {
    int responses, assertions, signatures;
    xmlNode *assertion;                 /* the last Assertion/EncryptedAssertion */
    xmlNode *sigs[8];
    int dup_id;
    GHashTable *ids;
} scan;

void acs_scan_tree(xmlNode *n, scan *s);
/* One Assertion element (plain, or as decrypted by lasso): its own
 * signatures, one SubjectConfirmation at most. Sets *signed_ if signed. */
int acs_check_assertion_dom(xmlNode *as, int allow_sha1, int *signed_, rg_error *err);
/* Step 1: raw XML and structure, before any crypto. Fills st->xml, st->b64
 * (the checked bytes re-encoded for lasso), st->doc, st->enc and
 * st->resp_signed. */
int acs_precheck(const rg_saml_connection *c, acs_state *st, const char *b64, size_t len,
                 rg_error *err);

/* ---- the lasso step (acs_lasso.c) --------------------------------------------- */

/* Step 2: lasso verifies the signatures with the IdP's metadata key (hint
 * MAYBE), then the one assertion it read (decrypted: the same checks as a
 * plain one), its ID and the Response's Destination. Sets st->login,
 * st->prof, st->resp and st->as. */
int acs_lasso_verify(const rg_saml_connection *c, acs_state *st, rg_error *err);

/* ---- the identity (acs_identity.c) -------------------------------------------- */

/* xs:dateTime to seconds since the epoch, -1 if bad. */
int64_t acs_parse_time(const char *s);
char *acs_dup_or_null(const char *s);
/* Fills email, name and groups from every AttributeStatement; -1 on OOM. */
int acs_read_attributes(const rg_saml_connection *c, LassoSaml2Assertion *as,
                        rg_saml_identity *id);
int acs_looks_like_email(const char *s);

#endif
