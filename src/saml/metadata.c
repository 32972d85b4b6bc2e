/* metadata.c: strict parsing of untrusted XML for the SAML layer and the
 * fail-closed lint of IdP metadata run before metadata is stored (DESIGN.md
 * "Security floor": no DTDs, no entities, no network, size limits). It
 * reports the entityID, SSO endpoints and certificates (with expiry and SHA-1
 * warnings) and, as JSON, what the admin API shows after an upload. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include "rolegate/saml.h"
#include "rolegate/util.h"

#define MD_NS    "urn:oasis:names:tc:SAML:2.0:metadata"
#define DS_NS    "http://www.w3.org/2000/09/xmldsig#"
#define PROTO_NS "urn:oasis:names:tc:SAML:2.0:protocol"
#define BIND_REDIRECT "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
#define BIND_POST     "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"

/* ---- strict XML parse ---------------------------------------------------- */

/* 1 if buf holds a markup declaration ("<!DOCTYPE", "<!ENTITY", "<!ELEMENT",
 * "<!ATTLIST", any case): one pass over the '<' bytes. */
static int has_declaration(const char *buf, size_t len)
{
    static const char *const decl[] = {"DOCTYPE", "ENTITY", "ELEMENT", "ATTLIST"};
    const char *p = buf, *end = buf + len;
    while ((p = memchr(p, '<', (size_t)(end - p))) != NULL) {
        p++;
        if (p >= end || *p != '!')
            continue;
        for (size_t i = 0; i < sizeof decl / sizeof decl[0]; i++) {
            size_t n = strlen(decl[i]);
            if ((size_t)(end - p - 1) >= n && strncasecmp(p + 1, decl[i], n) == 0)
                return 1;
        }
    }
    return 0;
}

struct _xmlDoc *rg_saml_xml_parse(const char *buf, size_t len, int *why)
{
    assert(why);
    *why = 2;
    if (!buf || len == 0 || len > (size_t)INT32_MAX)
        return NULL;
    /* A DTD is refused before libxml2 sees it: no entity is ever declared,
     * so none can expand (billion laughs) or fetch a file (XXE). The parse
     * is forced to UTF-8 so this byte scan cannot be dodged by UTF-16. */
    if (has_declaration(buf, len)) {
        *why = 1;
        return NULL;
    }
    /* Item 11: lasso and xmlsec re-parse these bytes honouring a BOM and the
     * declared encoding; only bytes that every parser reads as UTF-8 pass. */
    if (rg_saml_xml_charset_check(buf, len)) {
        *why = 3;
        return NULL;
    }
    xmlDoc *doc = xmlReadMemory(buf, (int)len, "untrusted.xml", "UTF-8",
                                XML_PARSE_NONET | XML_PARSE_NOERROR |
                                XML_PARSE_NOWARNING);
    if (!doc)
        return NULL;
    if (doc->intSubset || doc->extSubset) {   /* defence in depth */
        xmlFreeDoc(doc);
        *why = 1;
        return NULL;
    }
    if (!xmlDocGetRootElement(doc)) {
        xmlFreeDoc(doc);
        return NULL;
    }
    *why = 0;
    return doc;
}

/* ---- lint ---------------------------------------------------------------- */

static int is_el(const xmlNode *n, const char *ns, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
           strcmp((const char *)n->ns->href, ns) == 0 &&
           strcmp((const char *)n->name, name) == 0;
}

static char *attr_dup(const xmlNode *n, const char *name)
{
    xmlChar *v = xmlGetNoNsProp(n, (const xmlChar *)name);
    if (!v)
        return NULL;
    char *s = strdup((const char *)v);
    xmlFree(v);
    return s;
}

/* The capacities of the lint's three growing arrays (rg_grow), beside the
 * counts that rg_saml_metadata_info keeps. */
typedef struct lint_caps { size_t sso, certs, warnings; } lint_caps;

static int push_str(char ***arr, size_t *n, size_t *cap, const char *s)
{
    if (rg_grow(arr, *n, cap, sizeof **arr, 4) < 0)
        return -1;
    (*arr)[*n] = strdup(s);
    if (!(*arr)[*n])
        return -1;
    (*n)++;
    return 0;
}

static void collect_idp_entities(xmlNode *n, xmlNode **found, size_t *count, size_t max)
{
    for (; n; n = n->next) {
        if (is_el(n, MD_NS, "EntityDescriptor")) {
            for (xmlNode *c = n->children; c; c = c->next)
                if (is_el(c, MD_NS, "IDPSSODescriptor")) {
                    if (*count < max)
                        found[*count] = n;
                    (*count)++;
                    break;
                }
        } else if (is_el(n, MD_NS, "EntitiesDescriptor")) {
            collect_idp_entities(n->children, found, count, max);
        }
    }
}

static void asn1_iso(const ASN1_TIME *t, char *out, size_t outsz, int64_t *epoch)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    out[0] = 0;
    *epoch = 0;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return;
    strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
    *epoch = (int64_t)timegm(&tm);
}

static int cert_fill(const unsigned char *der, long derlen, int64_t now, int allow_sha1,
                     const char *use, rg_saml_cert_info *ci, rg_saml_metadata_info *info,
                     lint_caps *cap)
{
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, derlen);
    if (!x || p != der + derlen) {
        X509_free(x);
        return -1;
    }
    memset(ci, 0, sizeof *ci);
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio && X509_NAME_print_ex(bio, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0) {
        char *data = NULL;
        long n = BIO_get_mem_data(bio, &data);
        ci->subject = strndup(data ? data : "", n > 0 ? (size_t)n : 0);
    }
    BIO_free(bio);
    if (!ci->subject)
        ci->subject = strdup("");
    bio = BIO_new(BIO_s_mem());
    if (bio && X509_get0_pubkey(x) && PEM_write_bio_PUBKEY(bio, X509_get0_pubkey(x)) == 1) {
        char *data = NULL;
        long n = BIO_get_mem_data(bio, &data);
        ci->pubkey_pem = n > 0 ? strndup(data, (size_t)n) : NULL;
    }
    BIO_free(bio);
    int64_t nb, na;
    asn1_iso(X509_get0_notBefore(x), ci->not_before, sizeof ci->not_before, &nb);
    asn1_iso(X509_get0_notAfter(x), ci->not_after, sizeof ci->not_after, &na);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    X509_digest(x, EVP_sha256(), md, &mdlen);
    size_t o = 0;
    for (unsigned i = 0; i < mdlen && o + 4 <= sizeof ci->sha256; i++)
        o += (size_t)snprintf(ci->sha256 + o, sizeof ci->sha256 - o, "%s%02X", i ? ":" : "", md[i]);
    int mdnid = NID_undef, pknid = NID_undef;
    OBJ_find_sigid_algs(X509_get_signature_nid(x), &mdnid, &pknid);
    ci->sha1_signed = mdnid == NID_sha1 || mdnid == NID_md5;
    ci->expired = na && na < now;
    ci->not_yet_valid = nb && nb > now;
    ci->use = strdup(use);
    X509_free(x);

    char w[400];
    if (ci->expired) {
        snprintf(w, sizeof w, "certificate %s expired at %s", ci->sha256, ci->not_after);
        push_str(&info->warnings, &info->n_warnings, &cap->warnings, w);
    }
    if (ci->not_yet_valid) {
        snprintf(w, sizeof w, "certificate %s is not valid before %s", ci->sha256, ci->not_before);
        push_str(&info->warnings, &info->n_warnings, &cap->warnings, w);
    }
    if (ci->sha1_signed) {
        snprintf(w, sizeof w, "certificate %s is signed with SHA-1%s", ci->sha256,
                 allow_sha1 ? "" : "; SHA-1 response signatures will be refused");
        push_str(&info->warnings, &info->n_warnings, &cap->warnings, w);
    }
    if (ci->subject && ci->use && ci->pubkey_pem)
        return 0;
    /* a certificate without a usable public key is not counted: free what
     * was filled (found by fuzz_saml_metadata) */
    free(ci->subject);
    free(ci->use);
    free(ci->pubkey_pem);
    memset(ci, 0, sizeof *ci);
    return -2;
}

static int lint_fail(rg_error *err, const char *field, const char *why)
{
    return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_metadata", field, "%s", why);
}

/* Reads a KeyDescriptor's certificates into info; returns the number read,
 * -1 for one that does not parse. */
static int lint_keydescriptor(xmlNode *kd, int64_t now, int allow_sha1,
                              rg_saml_metadata_info *info, lint_caps *cap, int *signing)
{
    char *use = attr_dup(kd, "use");
    int is_signing = !use || !*use || strcmp(use, "signing") == 0;
    int is_enc = use && strcmp(use, "encryption") == 0;
    if (!is_signing && !is_enc) {
        free(use);
        return -1;
    }
    int n = 0;
    for (xmlNode *ki = kd->children; ki; ki = ki->next) {
        if (!is_el(ki, DS_NS, "KeyInfo"))
            continue;
        for (xmlNode *xd = ki->children; xd; xd = xd->next) {
            if (!is_el(xd, DS_NS, "X509Data"))
                continue;
            for (xmlNode *xc = xd->children; xc; xc = xc->next) {
                if (!is_el(xc, DS_NS, "X509Certificate"))
                    continue;
                xmlChar *txt = xmlNodeGetContent(xc);
                size_t tl = txt ? strlen((char *)txt) : 0;
                unsigned char *der = malloc(tl / 4 * 3 + 4);
                long dl = der ? rg_b64_decode((char *)txt, tl, der) : -1;
                xmlFree(txt);
                if (rg_grow(&info->certs, info->n_certs, &cap->certs, sizeof *info->certs, 2) < 0) {
                    free(der);
                    free(use);
                    return -1;
                }
                if (dl <= 0 || cert_fill(der, dl, now, allow_sha1, use ? use : "",
                                         &info->certs[info->n_certs], info, cap) != 0) {
                    free(der);
                    free(use);
                    return -1;
                }
                free(der);
                info->n_certs++;
                n++;
                if (is_signing)
                    (*signing)++;
            }
        }
    }
    free(use);
    return n;
}

static char *standalone_entity(xmlNode *entity)
{
    xmlDoc *nd = xmlNewDoc((const xmlChar *)"1.0");
    if (!nd)
        return NULL;
    /* xmlDocCopyNode re-declares namespaces inherited from ancestors. */
    xmlNode *copy = xmlDocCopyNode(entity, nd, 1);
    if (!copy) {
        xmlFreeDoc(nd);
        return NULL;
    }
    xmlDocSetRootElement(nd, copy);
    xmlChar *mem = NULL;
    int sz = 0;
    xmlDocDumpMemoryEnc(nd, &mem, &sz, "UTF-8");
    xmlFreeDoc(nd);
    char *s = mem ? strndup((char *)mem, (size_t)sz) : NULL;
    xmlFree(mem);
    return s;
}

static int lint_doc(xmlDoc *doc, int allow_sha1, int64_t now, rg_saml_metadata_info *info,
                    rg_error *err)
{
    xmlNode *root = xmlDocGetRootElement(doc);
    if (!is_el(root, MD_NS, "EntityDescriptor") && !is_el(root, MD_NS, "EntitiesDescriptor"))
        return lint_fail(err, "EntityDescriptor",
                         "the root element is not a SAML 2.0 metadata EntityDescriptor");
    xmlNode *found[2] = {0};
    size_t count = 0;
    collect_idp_entities(root, found, &count, 2);
    if (count == 0)
        return lint_fail(err, "IDPSSODescriptor", "no EntityDescriptor has an IDPSSODescriptor");
    if (count > 1)
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_metadata", "EntitiesDescriptor",
                            "the metadata describes %zu identity providers; upload exactly one",
                            count);
    xmlNode *ent = found[0];
    info->entity_id = attr_dup(ent, "entityID");
    if (!info->entity_id || !*info->entity_id)
        return lint_fail(err, "EntityDescriptor@entityID", "the entityID is missing or empty");

    xmlNode *idp = NULL;
    for (xmlNode *c = ent->children; c; c = c->next) {
        if (!is_el(c, MD_NS, "IDPSSODescriptor"))
            continue;
        char *pse = attr_dup(c, "protocolSupportEnumeration");
        int ok = pse && strstr(pse, PROTO_NS) != NULL;
        free(pse);
        if (ok) {
            idp = c;
            break;
        }
    }
    if (!idp)
        return lint_fail(err, "IDPSSODescriptor@protocolSupportEnumeration",
                         "no IDPSSODescriptor supports the SAML 2.0 protocol");

    int signing = 0;
    lint_caps cap = {info->n_sso, info->n_certs, info->n_warnings};
    for (xmlNode *c = idp->children; c; c = c->next) {
        if (is_el(c, MD_NS, "SingleSignOnService")) {
            char *b = attr_dup(c, "Binding"), *l = attr_dup(c, "Location");
            int usable = b && l && (strcmp(b, BIND_REDIRECT) == 0 || strcmp(b, BIND_POST) == 0) &&
                         (strncmp(l, "https://", 8) == 0 || strncmp(l, "http://", 7) == 0);
            if (usable) {
                if (rg_grow(&info->sso, info->n_sso, &cap.sso, sizeof *info->sso, 2) == 0) {
                    info->sso[info->n_sso].binding = b;
                    info->sso[info->n_sso].location = l;
                    info->n_sso++;
                    continue;
                }
            }
            free(b);
            free(l);
        } else if (is_el(c, MD_NS, "KeyDescriptor")) {
            if (lint_keydescriptor(c, now, allow_sha1, info, &cap, &signing) < 0)
                return lint_fail(err, "IDPSSODescriptor/KeyDescriptor",
                                 "a KeyDescriptor has an unknown use or a certificate that is "
                                 "not a parsable X.509 certificate");
        }
    }
    if (info->n_sso == 0)
        return lint_fail(err, "IDPSSODescriptor/SingleSignOnService",
                         "no SingleSignOnService with the HTTP-Redirect or HTTP-POST binding "
                         "and an http(s) Location");
    if (signing == 0)
        return lint_fail(err, "IDPSSODescriptor/KeyDescriptor",
                         "no signing certificate (KeyDescriptor use=\"signing\" or without use)");
    info->entity_xml = standalone_entity(ent);
    if (!info->entity_xml)
        return rg_error_oom(err);
    return 0;
}

int rg_saml_metadata_lint(const char *xml, size_t len, int allow_sha1, int64_t now,
                          rg_saml_metadata_info *out, rg_error *err)
{
    rg_saml_metadata_info tmp;
    memset(&tmp, 0, sizeof tmp);
    if (now == 0)
        now = rg_now();
    if (!xml || len == 0)
        return lint_fail(err, "", "the metadata is empty");
    if (len > RG_SAML_MAX_METADATA)
        return lint_fail(err, "", "the metadata is larger than 1 MiB");
    /* ADFS serves its metadata with a UTF-8 BOM. Harmless here: lasso only
     * ever gets our own serialisation (entity_xml), never these bytes */
    if (len >= 3 && memcmp(xml, "\xEF\xBB\xBF", 3) == 0) {
        xml += 3;
        len -= 3;
    }
    int why = 0;
    xmlDoc *doc = rg_saml_xml_parse(xml, len, &why);
    if (!doc)
        return why == 1   ? lint_fail(err, "DOCTYPE", "a DTD or DOCTYPE is not allowed")
               : why == 3 ? lint_fail(err, "encoding", rg_saml_xml_charset_check(xml, len))
                          : lint_fail(err, "", "the metadata is not well-formed XML");
    int rc = lint_doc(doc, allow_sha1, now, &tmp, err);
    xmlFreeDoc(doc);
    if (rc != 0 || !out)
        rg_saml_metadata_info_clear(&tmp);
    else
        *out = tmp;
    return rc;
}

void rg_saml_metadata_info_clear(rg_saml_metadata_info *info)
{
    if (!info)
        return;
    free(info->entity_id);
    for (size_t i = 0; i < info->n_sso; i++) {
        free(info->sso[i].binding);
        free(info->sso[i].location);
    }
    free(info->sso);
    for (size_t i = 0; i < info->n_certs; i++) {
        free(info->certs[i].subject);
        free(info->certs[i].use);
        free(info->certs[i].pubkey_pem);
    }
    free(info->certs);
    for (size_t i = 0; i < info->n_warnings; i++)
        free(info->warnings[i]);
    free(info->warnings);
    free(info->entity_xml);
    memset(info, 0, sizeof *info);
}

char *rg_saml_metadata_info_json(const rg_saml_metadata_info *info)
{
    assert(info);
    json_t *o = json_object(), *sso = json_array(), *certs = json_array(), *w = json_array();
    json_object_set_new(o, "entity_id", json_string(info->entity_id ? info->entity_id : ""));
    for (size_t i = 0; i < info->n_sso; i++)
        json_array_append_new(sso, json_pack("{s:s,s:s}", "binding", info->sso[i].binding,
                                             "location", info->sso[i].location));
    for (size_t i = 0; i < info->n_certs; i++) {
        const rg_saml_cert_info *c = &info->certs[i];
        json_t *cw = json_array();
        if (c->expired)
            json_array_append_new(cw, json_string("expired"));
        if (c->not_yet_valid)
            json_array_append_new(cw, json_string("not_yet_valid"));
        if (c->sha1_signed)
            json_array_append_new(cw, json_string("sha1_signature"));
        json_array_append_new(certs, json_pack("{s:s,s:s,s:s,s:s,s:s,s:o}",
                                               "subject", c->subject, "not_before", c->not_before,
                                               "not_after", c->not_after, "sha256", c->sha256,
                                               "use", c->use, "warnings", cw));
    }
    for (size_t i = 0; i < info->n_warnings; i++)
        json_array_append_new(w, json_string(info->warnings[i]));
    json_object_set_new(o, "sso", sso);
    json_object_set_new(o, "certificates", certs);
    json_object_set_new(o, "warnings", w);
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return s;
}
