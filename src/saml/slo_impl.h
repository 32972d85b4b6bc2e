/* slo_impl.h: private to src/saml: the HTTP-Redirect binding's
 * signature check of redirect_sig.c, used by slo.c. */
#ifndef ROLEGATE_SAML_SLO_IMPL_H
#define ROLEGATE_SAML_SLO_IMPL_H
#include "rolegate/saml.h"
#include "rolegate/error.h"

/* query: the raw query (no '?'); msg_param "SAMLRequest" or "SAMLResponse".
 * 0 when SigAlg is one we verify and Signature verifies over the binding's
 * octets with one of the IdP's signing keys; *verified (malloc'd) is then
 * the query for lasso, the verified message and RelayState alone, to read
 * with lasso's signature check off. Else 400 with saml_signature_invalid
 * (field: the parameter at fault) or saml_signature_algorithm (field
 * SigAlg). Reads no XML. */
int rg_saml_redirect_verify(const rg_saml_connection *c, const char *query,
                            const char *msg_param, char **verified, rg_error *err);
#endif
