/* test_saml_metadata.c: the fail-closed IdP metadata lint (saml.h):
 * accepted fixture metadata and its info/JSON, and every rejection with its
 * field; certificate warnings (expired, not yet valid, SHA-1) use
 * certificates generated here so they never go stale. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include "rolegate/saml.h"
#include "rolegate/util.h"

#define MD_HEAD "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" " \
                "xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" entityID=\"%s\">"
#define IDP_OPEN "<md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">"
#define KD(use, b64) "<md:KeyDescriptor" use "><ds:KeyInfo><ds:X509Data><ds:X509Certificate>" \
                     b64 "</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
#define SSO_REDIRECT "<md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:" \
                     "HTTP-Redirect\" Location=\"https://idp.example.com/sso\"/>"

static char *fixture_md;
static char *fixture_cert_b64;   /* base64 DER of idp-fixtures/idp.crt */

static char *cert_b64_of(X509 *x)
{
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    assert_true(n > 0);
    char *out = malloc(((size_t)n + 2) / 3 * 4 + 1);
    out[rg_b64_encode(der, (size_t)n, out)] = 0;
    OPENSSL_free(der);
    return out;
}

/* A self-signed certificate valid from now+nb_off to now+na_off seconds. */
static char *make_cert(long nb_off, long na_off, const EVP_MD *md)
{
    EVP_PKEY *pk = EVP_RSA_gen(2048);
    assert_non_null(pk);
    X509 *x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), nb_off);
    X509_gmtime_adj(X509_getm_notAfter(x), na_off);
    X509_set_pubkey(x, pk);
    X509_NAME *nm = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)"lint.test", -1, -1, 0);
    X509_set_issuer_name(x, nm);
    assert_true(X509_sign(x, pk, md) > 0);
    char *b = cert_b64_of(x);
    X509_free(x);
    EVP_PKEY_free(pk);
    return b;
}

/* One IdP entity whose IDPSSODescriptor holds inner_fmt (printf: the
 * certificate goes in with %s). */
static char *vmd_with(const char *entity, const char *inner_fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static char *vmd_with(const char *entity, const char *inner_fmt, va_list ap)
{
    char inner[8192];
    int n = vsnprintf(inner, sizeof inner, inner_fmt, ap);
    assert_true(n >= 0 && (size_t)n < sizeof inner);
    rg_buf b = {0};
    rg_buf_printf(&b, MD_HEAD, entity);
    rg_buf_puts(&b, IDP_OPEN);
    rg_buf_puts(&b, inner);
    rg_buf_puts(&b, "</md:IDPSSODescriptor></md:EntityDescriptor>");
    return rg_buf_take(&b);
}

static char *md_with(const char *entity, const char *inner_fmt, ...)
    __attribute__((format(printf, 2, 3)));
static char *md_with(const char *entity, const char *inner_fmt, ...)
{
    va_list ap;
    va_start(ap, inner_fmt);
    char *xml = vmd_with(entity, inner_fmt, ap);
    va_end(ap);
    return xml;
}

/* prefix, then rest: the fixture with another declaration or a BOM. */
static char *prefixed(const char *prefix, const char *rest)
{
    rg_buf b = {0};
    rg_buf_puts(&b, prefix);
    rg_buf_puts(&b, rest);
    return rg_buf_take(&b);
}

static void expect_invalid(const char *xml, const char *field)
{
    rg_error err;
    rg_error_clear(&err);
    rg_saml_metadata_info info;
    memset(&info, 0, sizeof info);
    int rc = rg_saml_metadata_lint(xml, strlen(xml), 0, 0, &info, &err);
    assert_int_equal(rc, RG_EUNPROCESSABLE);
    assert_int_equal(err.status, 422);
    assert_string_equal(err.code, "invalid_metadata");
    assert_string_equal(err.field, field);
    assert_true(strlen(err.message) > 5);
    assert_null(info.entity_id);   /* nothing handed out on failure */
}

/* md_with(entity, inner_fmt, ...) is refused at field. */
static void md_invalid(const char *field, const char *entity, const char *inner_fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void md_invalid(const char *field, const char *entity, const char *inner_fmt, ...)
{
    va_list ap;
    va_start(ap, inner_fmt);
    char *xml = vmd_with(entity, inner_fmt, ap);
    va_end(ap);
    expect_invalid(xml, field);
    free(xml);
}

static void test_valid_fixture_metadata(void **state)
{
    (void)state;
    rg_saml_metadata_info info;
    rg_error err;
    assert_int_equal(rg_saml_metadata_lint(fixture_md, strlen(fixture_md), 0, 0, &info, &err), 0);
    assert_string_equal(info.entity_id, "https://idp.fixture.rolegate.test/metadata");
    assert_int_equal(info.n_sso, 2);
    assert_string_equal(info.sso[0].binding, "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect");
    assert_string_equal(info.sso[0].location, "http://127.0.0.1:8089/saml/sso");
    assert_int_equal(info.n_certs, 1);
    assert_string_equal(info.certs[0].use, "signing");
    assert_non_null(strstr(info.certs[0].subject, "CN=idp.fixture.rolegate.test"));
    assert_int_equal(info.n_warnings, 0);
    assert_false(info.certs[0].expired);
    /* The fingerprint is SHA-256 over the DER, computed independently. */
    unsigned char der[4096], md[32];
    long dl = rg_b64_decode(fixture_cert_b64, strlen(fixture_cert_b64), der);
    assert_true(dl > 0);
    unsigned mdl = 0;
    EVP_Digest(der, (size_t)dl, md, &mdl, EVP_sha256(), NULL);
    char hex[8];
    snprintf(hex, sizeof hex, "%02X:%02X", md[0], md[1]);
    assert_int_equal(strncmp(info.certs[0].sha256, hex, 5), 0);
    assert_int_equal(strlen(info.certs[0].sha256), 95);
    char *json = rg_saml_metadata_info_json(&info);
    assert_non_null(strstr(json, "\"entity_id\":\"https://idp.fixture.rolegate.test/metadata\""));
    assert_non_null(strstr(json, "\"location\":\"http://127.0.0.1:8089/saml/sso\""));
    assert_non_null(strstr(json, info.certs[0].sha256));
    free(json);
    rg_saml_metadata_info_clear(&info);
    rg_saml_metadata_info_clear(NULL);
}

static void test_two_idp_entities_rejected(void **state)
{
    (void)state;
    rg_buf b = {0};
    rg_buf_puts(&b, "<md:EntitiesDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" "
                    "xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">");
    for (int i = 0; i < 2; i++) {
        rg_buf_printf(&b, "<md:EntityDescriptor entityID=\"https://idp%d.example.com\">", i);
        rg_buf_printf(&b, IDP_OPEN KD("", "%s") SSO_REDIRECT "</md:IDPSSODescriptor>"
                          "</md:EntityDescriptor>", fixture_cert_b64);
    }
    rg_buf_puts(&b, "</md:EntitiesDescriptor>");
    char *xml = rg_buf_take(&b);
    expect_invalid(xml, "EntitiesDescriptor");
    free(xml);
}

static void test_entities_with_one_idp_unwrapped(void **state)
{
    (void)state;
    rg_buf b = {0};
    rg_buf_puts(&b, "<md:EntitiesDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" "
                    "xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">"
                    "<md:EntityDescriptor entityID=\"https://sp.example.com\"><md:SPSSODescriptor "
                    "protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\"/>"
                    "</md:EntityDescriptor>");
    rg_buf_printf(&b, "<md:EntityDescriptor entityID=\"https://only-idp.example.com\">"
                      IDP_OPEN KD(" use=\"signing\"", "%s") SSO_REDIRECT
                      "</md:IDPSSODescriptor></md:EntityDescriptor></md:EntitiesDescriptor>",
                  fixture_cert_b64);
    char *xml = rg_buf_take(&b);
    rg_saml_metadata_info info;
    assert_int_equal(rg_saml_metadata_lint(xml, strlen(xml), 0, 0, &info, NULL), 0);
    assert_string_equal(info.entity_id, "https://only-idp.example.com");
    /* The standalone entity re-declares the namespaces it inherited and
     * passes the lint on its own. */
    assert_int_equal(strncmp(info.entity_xml, "<?xml", 5), 0);
    assert_null(strstr(info.entity_xml, "EntitiesDescriptor"));
    rg_saml_metadata_info again;
    assert_int_equal(rg_saml_metadata_lint(info.entity_xml, strlen(info.entity_xml), 0, 0,
                                           &again, NULL), 0);
    assert_string_equal(again.entity_id, "https://only-idp.example.com");
    rg_saml_metadata_info_clear(&again);
    rg_saml_metadata_info_clear(&info);
    free(xml);
}

static void test_no_sso_service_rejected(void **state)
{
    (void)state;
    md_invalid("IDPSSODescriptor/SingleSignOnService", "https://idp.example.com", KD("", "%s"),
               fixture_cert_b64);
    /* An SSO service with only the artifact binding is not usable either. */
    md_invalid("IDPSSODescriptor/SingleSignOnService", "https://idp.example.com",
               KD("", "%s") "<md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:"
               "2.0:bindings:HTTP-Artifact\" Location=\"https://x/sso\"/>", fixture_cert_b64);
}

static void test_no_signing_cert_rejected(void **state)
{
    (void)state;
    md_invalid("IDPSSODescriptor/KeyDescriptor", "https://idp.example.com",
               KD(" use=\"encryption\"", "%s") SSO_REDIRECT, fixture_cert_b64);
    md_invalid("IDPSSODescriptor/KeyDescriptor", "https://idp.example.com", SSO_REDIRECT);
}

static void test_unparsable_cert_rejected(void **state)
{
    (void)state;
    md_invalid("IDPSSODescriptor/KeyDescriptor", "https://idp.example.com",
               KD("", "TUlJQmFkQ2VydA==") SSO_REDIRECT);
}

static void test_doctype_rejected(void **state)
{
    (void)state;
    char *xml = prefixed("<?xml version=\"1.0\"?>\n<!DOCTYPE md:EntityDescriptor [<!ENTITY e SYSTEM "
                         "\"file:///etc/passwd\">]>\n",
                         strchr(fixture_md, '\n') + 1);   /* the fixture without its declaration */
    expect_invalid(xml, "DOCTYPE");
    free(xml);
}

/* Issue 11 item 11: lasso reads IdP metadata again honouring the declared
 * encoding, so UTF-7 metadata could show the lint one certificate and lasso
 * another. Only UTF-8 is taken; the fixture itself declares UTF-8. */
static void test_issue11_item11_metadata_not_utf8_rejected(void **state)
{
    (void)state;
    char *xml = prefixed("<?xml version=\"1.0\" encoding='UTF-7'?>\n", strchr(fixture_md, '\n') + 1);
    expect_invalid(xml, "encoding");
    free(xml);
    xml = prefixed("\xFF\xFE<\x01?\x01", fixture_md);   /* a UTF-16 byte order mark: refused */
    expect_invalid(xml, "encoding");
    free(xml);
    /* a UTF-8 BOM (ADFS writes one) is accepted: lasso gets entity_xml */
    xml = prefixed("\xEF\xBB\xBF", fixture_md);
    rg_saml_metadata_info info;
    memset(&info, 0, sizeof info);
    assert_int_equal(rg_saml_metadata_lint(xml, strlen(xml), 0, 0, &info, NULL), 0);
    assert_null(strstr(info.entity_xml, "\xEF\xBB\xBF"));
    rg_saml_metadata_info_clear(&info);
    free(xml);
}

static void test_missing_entity_id_rejected(void **state)
{
    (void)state;
    md_invalid("EntityDescriptor@entityID", "", KD("", "%s") SSO_REDIRECT, fixture_cert_b64);
}

static void test_garbage_rejected(void **state)
{
    (void)state;
    expect_invalid("this is not metadata", "");
    expect_invalid("<html><body>login page</body></html>", "EntityDescriptor");
    expect_invalid("<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" "
                   "entityID=\"x\"><md:SPSSODescriptor protocolSupportEnumeration=\"urn:oasis:"
                   "names:tc:SAML:2.0:protocol\"/></md:EntityDescriptor>", "IDPSSODescriptor");
    rg_error err;
    assert_int_equal(rg_saml_metadata_lint("", 0, 0, 0, NULL, &err), RG_EUNPROCESSABLE);
    assert_string_equal(err.code, "invalid_metadata");
    /* size cap */
    size_t big = RG_SAML_MAX_METADATA + 1;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    assert_int_equal(rg_saml_metadata_lint(huge, big, 0, 0, NULL, &err), RG_EUNPROCESSABLE);
    assert_non_null(strstr(err.message, "1 MiB"));
    free(huge);
}

static void test_expired_cert_is_a_warning(void **state)
{
    (void)state;
    char *cert = make_cert(-400L * 86400, -2L * 86400, EVP_sha256());
    char *xml = md_with("https://idp.example.com", KD(" use=\"signing\"", "%s") SSO_REDIRECT, cert);
    rg_saml_metadata_info info;
    rg_error err;
    assert_int_equal(rg_saml_metadata_lint(xml, strlen(xml), 0, 0, &info, &err), 0);
    assert_int_equal(info.n_certs, 1);
    assert_true(info.certs[0].expired);
    assert_false(info.certs[0].sha1_signed);
    assert_int_equal(info.n_warnings, 1);
    assert_non_null(strstr(info.warnings[0], "expired"));
    char *json = rg_saml_metadata_info_json(&info);
    assert_non_null(strstr(json, "\"warnings\":[\"expired\"]"));
    free(json);
    rg_saml_metadata_info_clear(&info);
    /* The same metadata checked at a time inside the validity window. */
    assert_int_equal(rg_saml_metadata_lint(xml, strlen(xml), 0, rg_now() - 100L * 86400,
                                           &info, &err), 0);
    assert_false(info.certs[0].expired);
    assert_int_equal(info.n_warnings, 0);
    rg_saml_metadata_info_clear(&info);
    free(xml);
    free(cert);
}

static void test_not_yet_valid_and_sha1_cert_warnings(void **state)
{
    (void)state;
    char *cert = make_cert(30L * 86400, 400L * 86400, EVP_sha1());
    char *xml = md_with("https://idp.example.com", KD("", "%s") SSO_REDIRECT, cert);
    rg_saml_metadata_info info;
    assert_int_equal(rg_saml_metadata_lint(xml, strlen(xml), 0, 0, &info, NULL), 0);
    assert_true(info.certs[0].not_yet_valid);
    assert_true(info.certs[0].sha1_signed);
    assert_int_equal(info.n_warnings, 2);
    assert_non_null(strstr(info.warnings[1], "SHA-1 response signatures will be refused"));
    rg_saml_metadata_info_clear(&info);
    assert_int_equal(rg_saml_metadata_lint(xml, strlen(xml), 1, 0, &info, NULL), 0);
    assert_null(strstr(info.warnings[1], "refused"));
    rg_saml_metadata_info_clear(&info);
    free(xml);
    free(cert);
}

int main(void)
{
    rg_log_open(NULL, RG_LOG_ERROR);
    assert_int_equal(rg_saml_global_init(), 0);
    fixture_md = rg_file_read("idp-fixtures/idp-metadata.xml", 1 << 20, NULL);
    char *pem = rg_file_read("idp-fixtures/idp.crt", 1 << 16, NULL);
    if (!fixture_md || !pem) {
        fprintf(stderr, "run from the repository root (idp-fixtures/ missing)\n");
        return 1;
    }
    /* base64 body of the PEM, on one line */
    rg_buf b = {0};
    for (char *line = strtok(pem, "\n"); line; line = strtok(NULL, "\n"))
        if (strncmp(line, "-----", 5) != 0)
            rg_buf_puts(&b, line);
    fixture_cert_b64 = rg_buf_take(&b);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_fixture_metadata),
        cmocka_unit_test(test_two_idp_entities_rejected),
        cmocka_unit_test(test_entities_with_one_idp_unwrapped),
        cmocka_unit_test(test_no_sso_service_rejected),
        cmocka_unit_test(test_no_signing_cert_rejected),
        cmocka_unit_test(test_unparsable_cert_rejected),
        cmocka_unit_test(test_doctype_rejected),
        cmocka_unit_test(test_missing_entity_id_rejected),
        cmocka_unit_test(test_issue11_item11_metadata_not_utf8_rejected),
        cmocka_unit_test(test_garbage_rejected),
        cmocka_unit_test(test_expired_cert_is_a_warning),
        cmocka_unit_test(test_not_yet_valid_and_sha1_cert_warnings),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(fixture_md);
    free(fixture_cert_b64);
    free(pem);
    rg_saml_global_shutdown();
    return rc;
}
