/* slo.c: SAML 2.0 Single Logout over HTTP-Redirect (issue 13) on lasso:
 * SP-initiated (a signed LogoutRequest to the IdP's SingleLogoutService,
 * then its LogoutResponse checked: signature, issuer, InResponseTo, status)
 * and IdP-initiated (the IdP's LogoutRequest checked: signature, issuer;
 * its NameID and SessionIndex handed to the caller, who ends the sessions;
 * then a signed LogoutResponse). rolegate keeps sessions in its own store,
 * so lasso is given a stand-in LassoSession with one assertion holding the
 * NameID and SessionIndex of the session being ended. The query signature
 * of both messages is checked by redirect_sig.c before lasso reads them. */
#define RG_SAML_INTERNAL 1
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include <lasso/lasso.h>
#include <lasso/utils.h>
#include <lasso/xml/saml-2.0/saml2_assertion.h>
#include <lasso/xml/saml-2.0/saml2_authn_statement.h>
#include <lasso/xml/saml-2.0/saml2_name_id.h>
#include <lasso/xml/saml-2.0/saml2_subject.h>
#include <lasso/xml/saml-2.0/samlp2_logout_request.h>
#include <lasso/xml/saml-2.0/samlp2_status_response.h>
#include "rolegate/saml.h"
#include "rolegate/util.h"
#include "slo_impl.h"

int rg_saml_slo_supported(const rg_saml_connection *c)
{
    assert(c);
    LassoProvider *idp = lasso_server_get_provider(c->server, c->idp_entity_id);
    char *loc = idp ? lasso_provider_get_metadata_one(idp, "SingleLogoutService HTTP-Redirect")
                    : NULL;
    int ok = loc && *loc;
    g_free(loc);
    return ok;
}

/* The stand-in session: one assertion of the IdP with nid and index. */
static LassoSession *stand_in(const rg_saml_connection *c, LassoSaml2NameID *nid,
                              const char *session_index)
{
    LassoSession *s = lasso_session_new();
    LassoSaml2Assertion *a = LASSO_SAML2_ASSERTION(lasso_saml2_assertion_new());
    LassoSaml2Subject *sub = LASSO_SAML2_SUBJECT(lasso_saml2_subject_new());
    LassoSaml2AuthnStatement *st = LASSO_SAML2_AUTHN_STATEMENT(lasso_saml2_authn_statement_new());
    lasso_assign_gobject(sub->NameID, nid);
    lasso_assign_gobject(a->Subject, sub);
    /* lasso only matches sessions that have an index: "*" stands for any */
    lasso_assign_string(st->SessionIndex, session_index ? session_index : "*");
    a->AuthnStatement = g_list_append(NULL, st);   /* the list owns st */
    int rc = lasso_session_add_assertion(s, c->idp_entity_id, LASSO_NODE(a));
    g_object_unref(sub);
    g_object_unref(a);
    if (rc != 0) {
        lasso_session_destroy(s);
        return NULL;
    }
    return s;
}

int rg_saml_logout_request(const rg_saml_connection *c, const char *name_id,
                           const char *name_id_format, const char *session_index,
                           const char *relay_state, char **redirect_url,
                           char request_id[RG_SAML_REQUEST_ID_MAX], rg_error *err)
{
    assert(c && name_id && redirect_url && request_id);
    *redirect_url = NULL;
    request_id[0] = 0;
    if (relay_state && strlen(relay_state) > 80)
        return rg_error_set(err, RG_EINVAL, "invalid_relay_state", "relay_state",
                            "RelayState is longer than 80 bytes");
    if (!rg_saml_slo_supported(c))
        return rg_error_set(err, RG_ECONFLICT, "saml_slo_unsupported", NULL,
                            "the IdP metadata has no HTTP-Redirect SingleLogoutService");
    LassoSaml2NameID *nid = LASSO_SAML2_NAME_ID(lasso_saml2_name_id_new_with_string((char *)name_id));
    if (name_id_format)
        lasso_assign_string(nid->Format, name_id_format);
    LassoSession *s = stand_in(c, nid, session_index);
    g_object_unref(nid);
    LassoLogout *lo = s ? lasso_logout_new(c->server) : NULL;
    if (!lo) {
        if (s)
            lasso_session_destroy(s);
        return rg_error_oom(err);
    }
    lasso_assign_gobject(LASSO_PROFILE(lo)->session, s);
    lasso_session_destroy(s);   /* the profile holds its own reference */
    int rc = lasso_logout_init_request(lo, c->idp_entity_id, LASSO_HTTP_METHOD_REDIRECT);
    if (rc == 0 && relay_state)
        lasso_assign_string(LASSO_PROFILE(lo)->msg_relayState, relay_state);
    if (rc == 0)
        rc = lasso_logout_build_request_msg(lo);
    LassoNode *rq = LASSO_PROFILE(lo)->request;
    const char *id = rq ? LASSO_SAMLP2_REQUEST_ABSTRACT(rq)->ID : NULL;
    const char *url = LASSO_PROFILE(lo)->msg_url;
    if (rc != 0 || !id || !url || strlen(id) >= RG_SAML_REQUEST_ID_MAX) {
        lasso_logout_destroy(lo);
        return rg_error_set(err, RG_EINTERNAL, "saml_logout_request_failed", NULL, "lasso: %s",
                            rc ? lasso_strerror(rc) : "no request built");
    }
    snprintf(request_id, RG_SAML_REQUEST_ID_MAX, "%s", id);
    *redirect_url = strdup(url);
    lasso_logout_destroy(lo);
    return *redirect_url ? 0 : rg_error_oom(err);
}

int rg_saml_logout_response_check(const rg_saml_connection *c, const char *query,
                                  const char *expected_request_id, rg_error *err)
{
    assert(c && query);
    LassoLogout *lo = lasso_logout_new(c->server);
    if (!lo)
        return rg_error_oom(err);
    /* a LogoutResponse must be signed (HTTP-Redirect: the query signature,
     * checked by us: lasso's check leaks, see redirect_sig.c) */
    char *verified = NULL;
    int rc = rg_saml_redirect_verify(c, query, "SAMLResponse", &verified, err);
    if (rc) {
        lasso_logout_destroy(lo);
        return rc;
    }
    lasso_profile_set_signature_verify_hint(LASSO_PROFILE(lo),
                                            LASSO_PROFILE_SIGNATURE_VERIFY_HINT_IGNORE);
    rc = lasso_logout_process_response_msg(lo, verified);
    free(verified);
    LassoNode *r = LASSO_PROFILE(lo)->response;
    const char *irt = r && LASSO_IS_SAMLP2_STATUS_RESPONSE(r)
                          ? LASSO_SAMLP2_STATUS_RESPONSE(r)->InResponseTo : NULL;
    const char *issuer = LASSO_PROFILE(lo)->remote_providerID;
    if (rc == 0 && (!issuer || strcmp(issuer, c->idp_entity_id) != 0))
        rc = rg_error_set(err, RG_EINVAL, "saml_logout_wrong_issuer", NULL,
                          "the LogoutResponse is not from this connection's IdP");
    else if (rc == 0 && (!expected_request_id || !irt || strcmp(irt, expected_request_id) != 0))
        rc = rg_error_set(err, RG_EINVAL, "saml_logout_unexpected", NULL,
                          "the LogoutResponse answers no logout request of ours");
    else if (rc != 0)
        rc = rg_error_set(err, RG_EINVAL, "saml_logout_response_invalid", NULL,
                          "lasso: %s", lasso_strerror(rc));
    lasso_logout_destroy(lo);
    return rc;
}

void rg_saml_logout_req_clear(rg_saml_logout_req *r)
{
    if (!r)
        return;
    free(r->name_id);
    free(r->session_index);
    free(r->relay_state);
    memset(r, 0, sizeof *r);
}

int rg_saml_logout_request_answer(const rg_saml_connection *c, const char *query,
                                  rg_saml_logout_req *out, char **redirect_url, rg_error *err)
{
    assert(c && query && out && redirect_url);
    memset(out, 0, sizeof *out);
    *redirect_url = NULL;
    LassoLogout *lo = lasso_logout_new(c->server);
    if (!lo)
        return rg_error_oom(err);
    /* signed, checked by us before lasso reads it (redirect_sig.c) */
    char *verified = NULL;
    int rc = rg_saml_redirect_verify(c, query, "SAMLRequest", &verified, err);
    if (rc) {
        lasso_logout_destroy(lo);
        return rc;
    }
    lasso_profile_set_signature_verify_hint(LASSO_PROFILE(lo),
                                            LASSO_PROFILE_SIGNATURE_VERIFY_HINT_IGNORE);
    rc = lasso_logout_process_request_msg(lo, verified);
    free(verified);
    LassoNode *rqn = LASSO_PROFILE(lo)->request;
    LassoSamlp2LogoutRequest *rq = rc == 0 && LASSO_IS_SAMLP2_LOGOUT_REQUEST(rqn)
                                       ? LASSO_SAMLP2_LOGOUT_REQUEST(rqn) : NULL;
    const char *issuer = LASSO_PROFILE(lo)->remote_providerID;
    if (rc != 0 || !rq) {
        rc = rg_error_set(err, RG_EINVAL, "saml_logout_request_invalid", NULL, "lasso: %s",
                          rc ? lasso_strerror(rc) : "not a LogoutRequest");
        goto out;
    }
    if (!issuer || strcmp(issuer, c->idp_entity_id) != 0 || !rq->NameID ||
        !rq->NameID->content) {
        rc = rg_error_set(err, RG_EINVAL, "saml_logout_request_invalid", NULL,
                          "the LogoutRequest is not from this IdP or names no NameID");
        goto out;
    }
    out->name_id = strdup(rq->NameID->content);
    GList *idx = lasso_samlp2_logout_request_get_session_indexes(rq);
    if (idx && idx->data)
        out->session_index = strdup((const char *)idx->data);
    lasso_release_list_of_strings(idx);
    if (LASSO_PROFILE(lo)->msg_relayState)
        out->relay_state = strdup(LASSO_PROFILE(lo)->msg_relayState);
    /* the answer: lasso validates against the stand-in session of this
     * NameID / SessionIndex (the caller ends rolegate's own sessions) */
    LassoSession *s = stand_in(c, rq->NameID, out->session_index);
    if (!s || !out->name_id) {
        if (s)
            lasso_session_destroy(s);
        rc = rg_error_oom(err);
        goto out;
    }
    lasso_assign_gobject(LASSO_PROFILE(lo)->session, s);
    lasso_session_destroy(s);
    rc = lasso_logout_validate_request(lo);
    if (rc == 0)
        rc = lasso_logout_build_response_msg(lo);
    if (rc != 0 || !LASSO_PROFILE(lo)->msg_url) {
        rc = rg_error_set(err, RG_EINTERNAL, "saml_logout_response_failed", NULL, "lasso: %s",
                          rc ? lasso_strerror(rc) : "no response built");
        goto out;
    }
    *redirect_url = strdup(LASSO_PROFILE(lo)->msg_url);
    if (!*redirect_url)
        rc = rg_error_oom(err);
out:
    if (rc)
        rg_saml_logout_req_clear(out);
    lasso_logout_destroy(lo);
    return rc;
}
