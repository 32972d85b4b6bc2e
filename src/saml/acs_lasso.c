/* acs_lasso.c: step 2 of the ACS check, the lasso step. lasso verifies the
 * signatures with the IdP's metadata key under hint MAYBE (every assertion
 * covered by a valid Response signature or by its own; a present but
 * invalid signature always fails, LIBRARIES.md) and decrypts an encrypted
 * assertion; its error codes map to our stable reasons here. Then the one
 * assertion lasso read: a decrypted one gets the precheck's checks, must be
 * signed unless the Response is, and names the IdP; its ID; the Response's
 * Destination. */
#define RG_SAML_INTERNAL 1
#include <string.h>
#include <glib.h>
#include <lasso/lasso.h>
#include <lasso/utils.h>
#include <lasso/xml/saml-2.0/samlp2_response.h>
#include <lasso/xml/saml-2.0/saml2_assertion.h>
#include <libxml/tree.h>
#include "saml_internal.h"

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

/* The decrypted assertion gets the same checks as a plain one, and must be
 * signed itself unless the Response signature covers the ciphertext (anyone
 * holding our public key can encrypt). */
static int check_decrypted(const rg_saml_connection *c, const acs_state *st, rg_error *err)
{
    LassoSaml2Assertion *as = st->as;
    xmlNode *dn = lasso_node_get_original_xmlnode(LASSO_NODE(as));
    int as_signed = 0;
    if (dn) {
        scan s2;
        memset(&s2, 0, sizeof s2);
        s2.ids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        acs_scan_tree(dn->children, &s2);
        g_hash_table_destroy(s2.ids);
        int d_assertions = s2.assertions;
        if (d_assertions)
            return DENY(err, "saml_multiple_assertions", "assertion nested in the assertion");
        int rc = acs_check_assertion_dom(dn, c->allow_sha1, &as_signed, err);
        if (rc)
            return rc;
    }
    if (!st->resp_signed && !as_signed)
        return DENY(err, "saml_signature_missing", "encrypted assertion is not signed");
    if (!as->Issuer || !as->Issuer->content ||
        strcmp(as->Issuer->content, c->idp_entity_id) != 0)
        return DENY(err, "saml_wrong_issuer", "the assertion issuer is not the IdP");
    return 0;
}

int acs_lasso_verify(const rg_saml_connection *c, acs_state *st, rg_error *err)
{
    st->login = lasso_login_new(c->server);
    if (!st->login)
        return rg_error_oom(err);
    LassoProfile *prof = st->prof = LASSO_PROFILE(st->login);
    lasso_profile_set_signature_verify_hint(prof, LASSO_PROFILE_SIGNATURE_VERIFY_HINT_MAYBE);
    int lrc = lasso_login_process_authn_response_msg(st->login, st->b64);
    if (lrc != 0)
        return map_lasso_rc(lrc, st->enc, err);
    LassoSamlp2Response *resp = LASSO_IS_SAMLP2_RESPONSE(prof->response)
                                    ? LASSO_SAMLP2_RESPONSE(prof->response) : NULL;
    if (!resp || !resp->Assertion || resp->Assertion->next)
        return DENY(err, "saml_multiple_assertions", "lasso did not read exactly one assertion");
    st->resp = resp;
    st->as = LASSO_SAML2_ASSERTION(resp->Assertion->data);
    if (st->enc) {
        int rc = check_decrypted(c, st, err);
        if (rc)
            return rc;
    }
    if (!st->as->ID || !*st->as->ID)
        return BAD(err, "saml_malformed", "assertion without ID");
    if (resp->parent.Destination && strcmp(resp->parent.Destination, c->acs_url) != 0)
        return DENY(err, "saml_wrong_destination", "Destination is not this ACS");
    return 0;
}
