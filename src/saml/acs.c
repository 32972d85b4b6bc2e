/* acs.c: the Assertion Consumer Service check. A POSTed SAMLResponse becomes
 * a verified identity only if every rule of DESIGN.md "Security floor" holds:
 * our own pre-check of the raw XML (acs_precheck.c: size, no DTD, one
 * Response, exactly one assertion and it is the signed one, references point
 * at their parents, the algorithms of acs_policy.c), lasso's signature
 * verification (acs_lasso.c: hint MAYBE, never IGNORE), then, here, the
 * checks lasso leaves to us (LIBRARIES.md table): bearer, recipient,
 * audience, time with skew, InResponseTo, the assertion's lifetime, replay;
 * the identity is read by acs_identity.c. Every rejection carries a stable
 * reason code (acs_reject). */
#define RG_SAML_INTERNAL 1
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include <lasso/lasso.h>
#include <lasso/xml/saml-2.0/samlp2_response.h>
#include <lasso/xml/saml-2.0/saml2_assertion.h>
#include <lasso/xml/saml-2.0/saml2_audience_restriction.h>
#include <lasso/xml/saml-2.0/saml2_authn_statement.h>
#include <lasso/xml/saml-2.0/saml2_conditions.h>
#include <lasso/xml/saml-2.0/saml2_subject_confirmation.h>
#include <lasso/xml/saml-2.0/saml2_subject_confirmation_data.h>
#include <libxml/tree.h>
#include "saml_internal.h"

/* ---- rejections ----------------------------------------------------------- */

void acs_reject(rg_error *err, int kind, const char *code, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rg_error_set(err, kind, code, "SAMLResponse", "%s", msg);
}

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

/* ---- step 3: what lasso leaves to us ---------------------------------------- */

/* The times step 3 reads, for the lifetime and the identity. */
typedef struct acs_times {
    int64_t     scd_noa, c_noa, session_noa;
    const char *session_index;
} acs_times;

/* A bearer SubjectConfirmation for this ACS; every AudienceRestriction
 * names this SP. *scd_out: the confirmation data. */
static int check_bearer_audience(const rg_saml_connection *c, LassoSaml2Assertion *as,
                                 LassoSaml2SubjectConfirmationData **scd_out, rg_error *err)
{
    LassoSaml2Subject *subj = as->Subject;
    LassoSaml2SubjectConfirmation *sc = subj ? subj->SubjectConfirmation : NULL;
    if (!sc || !sc->Method || strcmp(sc->Method, CM_BEARER) != 0)
        return DENY(err, "saml_not_bearer", "no bearer SubjectConfirmation");
    LassoSaml2SubjectConfirmationData *scd = sc->SubjectConfirmationData;
    if (!scd || !scd->Recipient || strcmp(scd->Recipient, c->acs_url) != 0)
        return DENY(err, "saml_wrong_recipient", "Recipient is not this ACS");
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
    if (audiences <= 0)
        return DENY(err, "saml_wrong_audience", "the audience is not this SP");
    *scd_out = scd;
    return 0;
}

/* Time: [NotBefore - skew, NotOnOrAfter + skew). The bearer profile
 * requires NotOnOrAfter on the confirmation data. Conditions is present
 * (the audience check needs it). */
static int check_validity(LassoSaml2Assertion *as, LassoSaml2SubjectConfirmationData *scd,
                          int64_t now, int64_t skew, acs_times *t, rg_error *err)
{
    LassoSaml2Conditions *cond = as->Conditions;
    t->scd_noa = acs_parse_time(scd->NotOnOrAfter);
    int64_t c_nb = cond->NotBefore ? acs_parse_time(cond->NotBefore) : 0;
    t->c_noa = cond->NotOnOrAfter ? acs_parse_time(cond->NotOnOrAfter) : 0;
    int64_t scd_nb = scd->NotBefore ? acs_parse_time(scd->NotBefore) : 0;
    if (t->scd_noa < 0 || c_nb < 0 || t->c_noa < 0 || scd_nb < 0)
        return BAD(err, "saml_malformed", "bad or missing NotOnOrAfter/NotBefore");
    if ((c_nb && now + skew < c_nb) || (scd_nb && now + skew < scd_nb))
        return DENY(err, "saml_not_yet_valid", "the assertion is not valid yet");
    if (now - skew >= t->scd_noa || (t->c_noa && now - skew >= t->c_noa))
        return DENY(err, "saml_expired", "the assertion has expired");
    return 0;
}

/* The AuthnStatements: an IdP session that has ended refuses the login;
 * the first SessionIndex is kept. */
static int check_authn_statements(LassoSaml2Assertion *as, int64_t now, int64_t skew,
                                  acs_times *t, rg_error *err)
{
    t->session_noa = 0;
    t->session_index = NULL;
    for (GList *a = as->AuthnStatement; a; a = a->next) {
        if (!LASSO_IS_SAML2_AUTHN_STATEMENT(a->data))
            continue;
        LassoSaml2AuthnStatement *s = a->data;
        if (s->SessionNotOnOrAfter) {
            t->session_noa = acs_parse_time(s->SessionNotOnOrAfter);
            if (t->session_noa < 0)
                return BAD(err, "saml_malformed", "bad SessionNotOnOrAfter");
            if (now - skew >= t->session_noa)
                return DENY(err, "saml_expired", "the IdP session has ended");
        }
        if (!t->session_index)
            t->session_index = s->SessionIndex;
    }
    return 0;
}

/* InResponseTo: lasso does not compare it for a fresh LassoLogin. Both the
 * Response and the confirmation data must match what we sent; without
 * either, the connection must allow IdP-initiated login. *irt: the value
 * to record (the confirmation data's, else the Response's), or NULL. */
static int check_in_response_to(const rg_saml_connection *c, const LassoSamlp2Response *resp,
                                const LassoSaml2SubjectConfirmationData *scd,
                                const char *expected, const char **irt, rg_error *err)
{
    const char *irt_r = resp->parent.InResponseTo, *irt_s = scd->InResponseTo;
    if (irt_r && !*irt_r)
        irt_r = NULL;
    if (irt_s && !*irt_s)
        irt_s = NULL;
    if (irt_r || irt_s) {
        if (!expected || (irt_r && strcmp(irt_r, expected) != 0) ||
            (irt_s && strcmp(irt_s, expected) != 0))
            return DENY(err, "saml_in_response_to_mismatch",
                        "InResponseTo does not match a pending request");
    } else if (!c->allow_idp_initiated) {
        return DENY(err, "saml_unsolicited", "IdP-initiated login is not allowed here");
    }
    *irt = irt_s ? irt_s : irt_r;
    return 0;
}

/* The NameID, the assertion's lifetime, then *out: subject, issuer, ids,
 * session, expiry, attributes. *expires_out: when the replay entry ends. */
static int fill_identity(const rg_saml_connection *c, const acs_state *st, const acs_times *t,
                         const char *irt, int64_t now, rg_saml_identity *out,
                         int64_t *expires_out, rg_error *err)
{
    LassoSaml2NameID *nid = LASSO_IS_SAML2_NAME_ID(st->prof->nameIdentifier)
                                ? LASSO_SAML2_NAME_ID(st->prof->nameIdentifier) : NULL;
    if (!nid || !nid->content || !*nid->content)
        return BAD(err, "saml_malformed", "no NameID");

    int64_t expires = t->scd_noa;
    if (t->c_noa && t->c_noa < expires)
        expires = t->c_noa;
    /* issue 11 item 12: an assertion valid for years would hold its replay
     * entry for years; it is refused, not remembered for less (a shorter
     * memory would let it be replayed later) */
    if (expires - now > c->max_lifetime)
        return DENY(err, "saml_assertion_lifetime_too_long",
                    "the assertion is valid for more than %lld s", (long long)c->max_lifetime);
    expires += c->skew;
    *expires_out = expires;

    out->subject = strdup(nid->content);
    out->subject_format = acs_dup_or_null(nid->Format);
    out->issuer = strdup(c->idp_entity_id);
    out->assertion_id = strdup(st->as->ID);
    out->in_response_to = acs_dup_or_null(irt);
    out->session_index = acs_dup_or_null(t->session_index);
    out->session_not_on_or_after = t->session_noa;
    out->expires_at = expires;
    if (!out->subject || !out->issuer || !out->assertion_id ||
        acs_read_attributes(c, st->as, out) != 0)
        return rg_error_oom(err);
    if (!out->email && acs_looks_like_email(out->subject) &&
        !(out->email = strdup(out->subject)))
        return rg_error_oom(err);
    return 0;
}

/* Replay last, so forged or stale responses never fill the cache. */
static int check_replay(rg_saml_replay_fn replay_check, void *replay_ctx,
                        const rg_saml_identity *out, int64_t expires, rg_error *err)
{
    if (!replay_check)
        return 0;
    int r = replay_check(replay_ctx, out->issuer, out->assertion_id, expires);
    if (r == 1)
        return DENY(err, "saml_replay", "this assertion was already used");
    if (r == 2)   /* item 12: this connection's share, not everyone's */
        return rg_error_set(err, RG_EUNAVAIL, "saml_replay_quota_exceeded", "SAMLResponse",
                            "this connection holds its whole share of the replay cache");
    if (r != 0)
        return rg_error_set(err, RG_EUNAVAIL, "saml_replay_cache_unavailable", "SAMLResponse",
                            "the replay cache is unavailable");
    return 0;
}

/* ---- the ACS check ---------------------------------------------------------- */

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
    LassoSaml2SubjectConfirmationData *scd = NULL;
    acs_times t;
    memset(&t, 0, sizeof t);
    const char *irt = NULL;
    int64_t expires = 0;

    int rc = acs_precheck(c, &st, b64, len, err);
    if (!rc)
        rc = acs_lasso_verify(c, &st, err);
    if (!rc)
        rc = check_bearer_audience(c, st.as, &scd, err);
    if (!rc)
        rc = check_validity(st.as, scd, now, skew, &t, err);
    if (!rc)
        rc = check_authn_statements(st.as, now, skew, &t, err);
    if (!rc)
        rc = check_in_response_to(c, st.resp, scd, expected, &irt, err);
    if (!rc)
        rc = fill_identity(c, &st, &t, irt, now, out, &expires, err);
    if (!rc)
        rc = check_replay(replay_check, replay_ctx, out, expires, err);
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
