/* conn.c: one SAML connection = one immutable LassoServer holding our SP
 * metadata (generated here: signed AuthnRequests, signed assertions wanted,
 * HTTP-POST ACS), the SP key and exactly one linted IdP; plus the signed
 * HTTP-Redirect AuthnRequest. The server is only read after _new, so threads
 * share it and use a fresh LassoLogin per call (LIBRARIES.md section 1). */
#define RG_SAML_INTERNAL 1
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include <lasso/lasso.h>
#include <lasso/utils.h>
#include <lasso/xml/saml-2.0/samlp2_authn_request.h>
#include <lasso/xml/saml-2.0/samlp2_name_id_policy.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include "rolegate/saml.h"
#include "rolegate/util.h"

const char *const rg_saml_default_group_attributes[] = {
    "groups",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
    "http://schemas.xmlsoap.org/claims/Group",
    "memberOf",
    "Role",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
    "groupMembership",
    NULL,
};
const char *const rg_saml_default_email_attributes[] = {
    "email",
    "mail",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    NULL,
};
const char *const rg_saml_default_name_attributes[] = {
    "name",
    "displayName",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
    "http://schemas.microsoft.com/identity/claims/displayname",
    "cn",
    NULL,
};

void rg_saml_conn_config_init(rg_saml_conn_config *cfg)
{
    assert(cfg);
    memset(cfg, 0, sizeof *cfg);
    cfg->clock_skew_s = RG_SAML_DEFAULT_SKEW_S;
    cfg->max_response_size = RG_SAML_DEFAULT_MAX_RESPONSE;
}

static char **list_dup(const char *const *src, const char *const *dflt)
{
    const char *const *l = src ? src : dflt;
    size_t n = 0;
    while (l[n])
        n++;
    char **out = calloc(n + 1, sizeof *out);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!(out[i] = strdup(l[i]))) {
            for (size_t j = 0; j < i; j++)
                free(out[j]);
            free(out);
            return NULL;
        }
    return out;
}

static void list_free(char **l)
{
    for (size_t i = 0; l && l[i]; i++)
        free(l[i]);
    free(l);
}

static void xml_escape(rg_buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': rg_buf_puts(b, "&amp;"); break;
        case '<': rg_buf_puts(b, "&lt;"); break;
        case '>': rg_buf_puts(b, "&gt;"); break;
        case '"': rg_buf_puts(b, "&quot;"); break;
        default: rg_buf_append(b, s, 1);
        }
    }
}

/* The base64 DER of a PEM certificate (parsed with OpenSSL first, so junk is
 * refused here rather than by the IdP). malloc'd. */
static char *cert_b64(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!x)
        return NULL;
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    X509_free(x);
    if (n <= 0)
        return NULL;
    char *out = malloc(((size_t)n + 2) / 3 * 4 + 1);
    if (out)
        out[rg_b64_encode(der, (size_t)n, out)] = 0;
    OPENSSL_free(der);
    return out;
}

static char *build_sp_metadata(const char *entity_id, const char *acs, const char *cert)
{
    rg_buf b = {0};
    rg_buf_puts(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                    "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" "
                    "xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" entityID=\"");
    xml_escape(&b, entity_id);
    rg_buf_puts(&b, "\">\n <md:SPSSODescriptor AuthnRequestsSigned=\"true\" "
                    "WantAssertionsSigned=\"true\" "
                    "protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">\n");
    static const char *const uses[] = {"signing", "encryption"};
    for (int i = 0; i < 2; i++)
        rg_buf_printf(&b, "  <md:KeyDescriptor use=\"%s\"><ds:KeyInfo><ds:X509Data>"
                          "<ds:X509Certificate>%s</ds:X509Certificate></ds:X509Data>"
                          "</ds:KeyInfo></md:KeyDescriptor>\n", uses[i], cert);
    rg_buf_puts(&b, "  <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
                    "</md:NameIDFormat>\n"
                    "  <md:AssertionConsumerService index=\"0\" isDefault=\"true\" "
                    "Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" Location=\"");
    xml_escape(&b, acs);
    rg_buf_puts(&b, "\"/>\n");
    /* issue 13: Single Logout at {base_url}/saml/slo/{connection_id} (the
     * metadata schema orders SingleLogoutService before NameIDFormat, so the
     * element is inserted there) */
    const char *at = strstr(acs, "/saml/acs/");
    if (at) {
        rg_buf slo = {0};
        rg_buf_printf(&slo, "  <md:SingleLogoutService "
                            "Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" "
                            "Location=\"");
        char *url = NULL;
        rg_buf u = {0};
        rg_buf_printf(&u, "%.*s/saml/slo/%s", (int)(at - acs), acs, at + 10);
        url = rg_buf_take(&u);
        if (url)
            xml_escape(&slo, url);
        free(url);
        rg_buf_puts(&slo, "\"/>\n");
        char *el = rg_buf_take(&slo), *doc = rg_buf_take(&b);
        const char *acs_el = doc ? strstr(doc, "  <md:NameIDFormat>") : NULL;
        rg_buf out = {0};
        if (el && acs_el) {
            rg_buf_printf(&out, "%.*s%s%s", (int)(acs_el - doc), doc, el, acs_el);
        } else if (doc) {
            rg_buf_puts(&out, doc);
        }
        free(el);
        free(doc);
        b = out;
    }
    rg_buf_puts(&b, " </md:SPSSODescriptor>\n</md:EntityDescriptor>\n");
    return rg_buf_take(&b);
}

int rg_saml_sp_urls(const char *base_url, const char *connection_id, char *entity_id,
                    char *acs_url, size_t n)
{
    assert(base_url && connection_id && entity_id && acs_url);
    size_t bl = strlen(base_url);
    while (bl && base_url[bl - 1] == '/')
        bl--;
    int a = snprintf(entity_id, n, "%.*s/saml/metadata/%s", (int)bl, base_url, connection_id);
    int b = snprintf(acs_url, n, "%.*s/saml/acs/%s", (int)bl, base_url, connection_id);
    return a > 0 && (size_t)a < n && b > 0 && (size_t)b < n ? 0 : -1;
}

char *rg_saml_sp_metadata_build(const char *sp_entity_id, const char *acs_url,
                                const char *sp_cert_pem, const char *sp_cert_file,
                                rg_error *err)
{
    char *cert = sp_cert_pem ? strdup(sp_cert_pem)
                             : sp_cert_file ? rg_file_read(sp_cert_file, 64 * 1024, NULL) : NULL;
    char *cert64 = cert ? cert_b64(cert) : NULL;
    free(cert);
    if (!cert64 || !sp_entity_id || !acs_url) {
        free(cert64);
        rg_error_set(err, RG_EINTERNAL, "saml_config", "sp_cert",
                     "the SP certificate is missing or unreadable");
        return NULL;
    }
    char *md = build_sp_metadata(sp_entity_id, acs_url, cert64);
    free(cert64);
    if (!md)
        rg_error_oom(err);
    return md;
}

static int cfg_fail(rg_error *err, const char *field, const char *msg)
{
    return rg_error_set(err, RG_EINTERNAL, "saml_config", field, "%s", msg);
}

static char *read_pem(const char *text, const char *path)
{
    if (text)
        return strdup(text);
    if (path)
        return rg_file_read(path, 64 * 1024, NULL);
    return NULL;
}

/* lasso keeps each metadata key with its X.509 certificate and duplicates the
 * key for every signature it checks; with OpenSSL 3 copying the certificate
 * re-decodes its public key, which costs more than the RSA verification
 * itself (measured with perf on tests/bench/bench_saml: 38% of a
 * verification in xmlSecKeyDuplicate). The same public keys without the certificate
 * are put first in the provider's list, so a good signature is checked with a
 * cheap copy; lasso's own keys stay behind them. The set of keys that can
 * verify is unchanged: the signing certificates the lint read. The same keys
 * as OpenSSL keys verify HTTP-Redirect signatures (redirect_sig.c). */
static int add_bare_keys(rg_saml_connection *c, const rg_saml_metadata_info *info,
                         rg_error *err)
{
    LassoProvider *idp = lasso_server_get_provider(c->server, c->idp_entity_id);
    c->sig_keys = calloc(info->n_certs ? info->n_certs : 1, sizeof *c->sig_keys);
    if (!c->sig_keys)
        return rg_error_oom(err);
    for (size_t i = info->n_certs; idp && i-- > 0;) {
        const rg_saml_cert_info *ci = &info->certs[i];
        if (strcmp(ci->use, "encryption") == 0)
            continue;
        /* the same key for the HTTP-Redirect checks of redirect_sig.c */
        BIO *bio = BIO_new_mem_buf(ci->pubkey_pem, -1);
        EVP_PKEY *pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        if (!pk)
            return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_metadata", "KeyDescriptor",
                                "the signing key %s does not load", ci->sha256);
        c->sig_keys[c->n_sig_keys++] = pk;
        LassoKey *k = lasso_key_new_for_signature_from_memory(
            ci->pubkey_pem, strlen(ci->pubkey_pem), NULL, LASSO_SIGNATURE_METHOD_RSA_SHA256, NULL);
        int rc = k ? lasso_provider_add_key(idp, k, FALSE) : -1;
        if (k)
            g_object_unref(k);
        if (rc != 0)
            return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_metadata", "KeyDescriptor",
                                "lasso could not load the signing key %s", ci->sha256);
    }
    return 0;
}

rg_saml_connection *rg_saml_connection_new(const rg_saml_conn_config *cfg, rg_error *err)
{
    assert(cfg);
    if (!cfg->connection_id || !cfg->sp_entity_id || !*cfg->sp_entity_id || !cfg->acs_url ||
        !*cfg->acs_url) {
        cfg_fail(err, "sp_entity_id", "connection id, SP entityID and ACS URL are required");
        return NULL;
    }
    rg_saml_metadata_info info;
    if (rg_saml_metadata_lint(cfg->idp_metadata, cfg->idp_metadata_len, cfg->allow_sha1, 0,
                              &info, err) != 0)
        return NULL;

    rg_saml_connection *c = calloc(1, sizeof *c);
    char *key = read_pem(cfg->sp_key_pem, cfg->sp_key_file);
    char *cert = read_pem(cfg->sp_cert_pem, cfg->sp_cert_file);
    char *cert64 = cert ? cert_b64(cert) : NULL;
    if (!c || !key || !cert64) {
        cfg_fail(err, key ? "sp_cert" : "sp_key", "the SP key or certificate is missing or unreadable");
        goto fail;
    }
    c->connection_id = strdup(cfg->connection_id);
    c->sp_entity_id = strdup(cfg->sp_entity_id);
    c->acs_url = strdup(cfg->acs_url);
    c->idp_entity_id = info.entity_id;
    info.entity_id = NULL;
    c->group_attrs = list_dup(cfg->group_attributes, rg_saml_default_group_attributes);
    c->email_attrs = list_dup(cfg->email_attributes, rg_saml_default_email_attributes);
    c->name_attrs = list_dup(cfg->name_attributes, rg_saml_default_name_attributes);
    c->allow_idp_initiated = cfg->allow_idp_initiated;
    c->allow_sha1 = cfg->allow_sha1;
    c->skew = cfg->clock_skew_s < 0 ? 0 : cfg->clock_skew_s;
    c->max_lifetime = cfg->max_assertion_lifetime_s > 0 ? cfg->max_assertion_lifetime_s
                                                         : RG_SAML_DEFAULT_MAX_LIFETIME_S;
    c->max_response = cfg->max_response_size ? cfg->max_response_size
                                             : RG_SAML_DEFAULT_MAX_RESPONSE;
    c->sp_metadata = build_sp_metadata(cfg->sp_entity_id, cfg->acs_url, cert64);
    if (!c->connection_id || !c->sp_entity_id || !c->acs_url || !c->group_attrs ||
        !c->email_attrs || !c->name_attrs || !c->sp_metadata) {
        rg_error_oom(err);
        goto fail;
    }
    /* The certificate argument stays NULL: a cert buffer makes xmlsec leak a
     * BIO per signature (LIBRARIES.md); it would only add X509Data. */
    c->server = lasso_server_new_from_buffers(c->sp_metadata, key, NULL, NULL);
    if (!c->server) {
        cfg_fail(err, "sp_key", "lasso refused the SP metadata or private key");
        goto fail;
    }
    /* The Debian build signs with RSA-SHA1 by default. */
    c->server->signature_method = LASSO_SIGNATURE_METHOD_RSA_SHA256;
    if (lasso_server_add_provider_from_buffer(c->server, LASSO_PROVIDER_ROLE_IDP,
                                              info.entity_xml, NULL, NULL) != 0 ||
        !lasso_server_get_provider(c->server, c->idp_entity_id)) {
        rg_error_set(err, RG_EUNPROCESSABLE, "invalid_metadata", "EntityDescriptor",
                     "lasso could not load the IdP metadata");
        goto fail;
    }
    if (add_bare_keys(c, &info, err) != 0)
        goto fail;
    free(key);
    free(cert);
    free(cert64);
    rg_saml_metadata_info_clear(&info);
    return c;
fail:
    if (key)
        memset(key, 0, strlen(key));
    free(key);
    free(cert);
    free(cert64);
    rg_saml_metadata_info_clear(&info);
    rg_saml_connection_free(c);
    return NULL;
}

void rg_saml_connection_free(rg_saml_connection *c)
{
    if (!c)
        return;
    if (c->server)
        g_object_unref(c->server);
    for (size_t i = 0; i < c->n_sig_keys; i++)
        EVP_PKEY_free(c->sig_keys[i]);
    free(c->sig_keys);
    free(c->connection_id);
    free(c->sp_entity_id);
    free(c->acs_url);
    free(c->idp_entity_id);
    free(c->sp_metadata);
    list_free(c->group_attrs);
    list_free(c->email_attrs);
    list_free(c->name_attrs);
    free(c);
}

const char *rg_saml_sp_metadata_xml(const rg_saml_connection *c)
{
    assert(c);
    return c->sp_metadata;
}

const char *rg_saml_idp_entity_id(const rg_saml_connection *c)
{
    assert(c);
    return c->idp_entity_id;
}

int rg_saml_authn_request(const rg_saml_connection *c, const char *relay_state,
                          char **redirect_url, char request_id[RG_SAML_REQUEST_ID_MAX],
                          rg_error *err)
{
    assert(c && redirect_url && request_id);
    *redirect_url = NULL;
    request_id[0] = 0;
    /* SAML bindings 3.4.3: RelayState MUST NOT exceed 80 bytes. */
    if (relay_state && strlen(relay_state) > 80)
        return rg_error_set(err, RG_EINVAL, "invalid_relay_state", "relay_state",
                            "RelayState is longer than 80 bytes");
    LassoLogin *l = lasso_login_new(c->server);
    if (!l)
        return rg_error_oom(err);
    int rc = lasso_login_init_authn_request(l, c->idp_entity_id, LASSO_HTTP_METHOD_REDIRECT);
    if (rc != 0) {
        lasso_login_destroy(l);
        return rg_error_set(err, RG_EINTERNAL, "saml_authn_request_failed", NULL,
                            "lasso: %s", lasso_strerror(rc));
    }
    LassoSamlp2AuthnRequest *rq = LASSO_SAMLP2_AUTHN_REQUEST(LASSO_PROFILE(l)->request);
    if (!rq->NameIDPolicy)
        rq->NameIDPolicy = LASSO_SAMLP2_NAME_ID_POLICY(lasso_samlp2_name_id_policy_new());
    lasso_assign_string(rq->NameIDPolicy->Format, LASSO_SAML2_NAME_IDENTIFIER_FORMAT_UNSPECIFIED);
    rq->NameIDPolicy->AllowCreate = TRUE;
    lasso_assign_string(rq->ProtocolBinding, LASSO_SAML2_METADATA_BINDING_POST);
    lasso_assign_string(rq->AssertionConsumerServiceURL, c->acs_url);
    if (relay_state)
        lasso_assign_string(LASSO_PROFILE(l)->msg_relayState, relay_state);
    rc = lasso_login_build_authn_request_msg(l);
    const char *id = LASSO_SAMLP2_REQUEST_ABSTRACT(rq)->ID;
    const char *url = LASSO_PROFILE(l)->msg_url;
    if (rc != 0 || !id || !url || strlen(id) >= RG_SAML_REQUEST_ID_MAX) {
        lasso_login_destroy(l);
        return rg_error_set(err, RG_EINTERNAL, "saml_authn_request_failed", NULL,
                            "lasso: %s", rc ? lasso_strerror(rc) : "no request built");
    }
    snprintf(request_id, RG_SAML_REQUEST_ID_MAX, "%s", id);
    *redirect_url = strdup(url);   /* msg_url belongs to the profile */
    lasso_login_destroy(l);
    if (!*redirect_url)
        return rg_error_oom(err);
    return 0;
}
