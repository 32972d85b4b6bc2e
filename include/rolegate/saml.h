/* saml.h: the SAML 2.0 service-provider layer (lasso). It knows nothing of
 * roles or HTTP: IdP metadata in (fail-closed lint), SP metadata and signed
 * AuthnRequests out, and a POSTed SAMLResponse turned into a verified
 * identity or a precise rejection with a stable reason code. The pending
 * request store and the replay cache belong to others: they come in as an
 * expected request id and a callback. Layer deps: util only. */
#ifndef ROLEGATE_SAML_H
#define ROLEGATE_SAML_H

#include <stddef.h>
#include <stdint.h>
#include "rolegate/error.h"

#define RG_SAML_DEFAULT_SKEW_S       60
#define RG_SAML_DEFAULT_MAX_RESPONSE (256u * 1024u)
#define RG_SAML_DEFAULT_MAX_LIFETIME_S 3600
#define RG_SAML_MAX_METADATA         (1024u * 1024u)
#define RG_SAML_REQUEST_ID_MAX       128

/* ---- process lifetime --------------------------------------------------- */
/* lasso_init (GType registry, libxml2, xmlsec+OpenSSL) once, from the main
 * thread before any other thread starts; routes GLib domain "Lasso" into
 * rg_log. Idempotent. Returns 0, or -1 if lasso cannot initialise. */
int  rg_saml_global_init(void);
/* lasso_shutdown at exit, after every thread using SAML has stopped. */
void rg_saml_global_shutdown(void);

/* ---- the SP key pair ----------------------------------------------------- */
/* The key pair the SP signs AuthnRequests with and publishes in its
 * metadata: [saml] sp_key_file and sp_cert_file (copied). rg_saml_sp_keys_ensure
 * makes it at the first call of the process when neither file exists
 * (RSA-2048, self-signed, 10 years, key mode 0600) and is a no-op after a
 * success; thread-safe. 0, or -1 (logged: one file without the other, or a
 * write failed; the next call tries again). */
typedef struct rg_saml_sp_keys rg_saml_sp_keys;
rg_saml_sp_keys *rg_saml_sp_keys_new(const char *key_file, const char *cert_file);
void rg_saml_sp_keys_free(rg_saml_sp_keys *k);   /* accepts NULL */
int  rg_saml_sp_keys_ensure(rg_saml_sp_keys *k);

/* ---- IdP metadata lint --------------------------------------------------- */
typedef struct rg_saml_endpoint {
    char *binding;               /* full binding URN */
    char *location;
} rg_saml_endpoint;

typedef struct rg_saml_cert_info {
    char *subject;               /* one-line RFC 2253 subject */
    char  not_after[32];         /* "YYYY-MM-DDThh:mm:ssZ" */
    char  not_before[32];
    char  sha256[96];            /* "AB:CD:..." fingerprint of the DER */
    char *use;                   /* "signing", "encryption" or "" (both) */
    char *pubkey_pem;            /* its SubjectPublicKeyInfo, PEM */
    int   expired, not_yet_valid, sha1_signed;
} rg_saml_cert_info;

typedef struct rg_saml_metadata_info {
    char              *entity_id;
    rg_saml_endpoint  *sso;      /* HTTP-Redirect / HTTP-POST endpoints */
    size_t             n_sso;
    rg_saml_cert_info *certs;    /* every KeyDescriptor certificate */
    size_t             n_certs;
    char             **warnings; /* human-readable, e.g. "certificate ... expired" */
    size_t             n_warnings;
    char              *entity_xml; /* the one IdP EntityDescriptor as a standalone
                                    * document (unwrapped from an EntitiesDescriptor) */
} rg_saml_metadata_info;

/* Lints IdP metadata before it is stored: size <= RG_SAML_MAX_METADATA, no
 * DOCTYPE, XML parsed without network or entity substitution, exactly one
 * EntityDescriptor with an IDPSSODescriptor and an entityID, a
 * SingleSignOnService with the HTTP-Redirect or HTTP-POST binding, at least
 * one signing certificate, every certificate a parsable X.509. Expired,
 * not-yet-valid and SHA-1-signed certificates are warnings in out (the cert
 * signature is not what protects responses; with allow_sha1 == 0 the SHA-1
 * warning also says SHA-1 response signatures will be refused).
 * now: seconds since epoch for the validity warnings (0 = the clock).
 * On success returns 0 and fills out (caller frees with
 * rg_saml_metadata_info_clear; out may be NULL). On failure returns RG_EINVAL
 * with err = 422 "invalid_metadata", field = the element at fault. */
int  rg_saml_metadata_lint(const char *xml, size_t len, int allow_sha1, int64_t now,
                           rg_saml_metadata_info *out, rg_error *err);
/* Frees everything inside info (not info itself). Accepts NULL. */
void rg_saml_metadata_info_clear(rg_saml_metadata_info *info);
/* The info as JSON text {"entity_id","sso":[{"binding","location"}],
 * "certificates":[{"subject","not_before","not_after","sha256","use",
 * "warnings":[..]}],"warnings":[..]}. malloc'd; caller frees. NULL on OOM. */
char *rg_saml_metadata_info_json(const rg_saml_metadata_info *info);

/* ---- connection --------------------------------------------------------- */
typedef struct rg_saml_conn_config {
    const char *connection_id;   /* e.g. "conn_01H..." */
    const char *sp_entity_id;    /* {base_url}/saml/metadata/{connection_id} */
    const char *acs_url;         /* {base_url}/saml/acs/{connection_id} */
    const char *sp_key_pem;      /* SP private key PEM text, or ... */
    const char *sp_key_file;     /* ... a path to it (one of the two) */
    const char *sp_cert_pem;     /* SP certificate PEM text, or ... */
    const char *sp_cert_file;    /* ... a path to it (one of the two) */
    const char *idp_metadata;    /* IdP metadata XML (linted here again) */
    size_t      idp_metadata_len;
    /* NULL-terminated lists of attribute names; NULL = the defaults. */
    const char *const *group_attributes;
    const char *const *email_attributes;
    const char *const *name_attributes;
    int         allow_idp_initiated;   /* default 0 */
    int         allow_sha1;            /* default 0 */
    int         clock_skew_s;          /* default 60 */
    size_t      max_response_size;     /* decoded XML bytes, default 256 KiB */
    /* item 12: an assertion ending more than this after now is refused
     * (saml_assertion_lifetime_too_long); 0 = default 3600 s */
    int64_t     max_assertion_lifetime_s;
} rg_saml_conn_config;

/* Zeroes cfg and sets the defaults above. */
void rg_saml_conn_config_init(rg_saml_conn_config *cfg);

/* Opaque and immutable after _new: one LassoServer (SP metadata, SP key, the
 * IdP), safe to share between threads; every call below uses per-call lasso
 * objects. */
typedef struct rg_saml_connection rg_saml_connection;

/* Builds a connection; the config strings are copied. NULL on error with err
 * set (422 invalid_metadata for bad IdP metadata, 500 saml_config
 * otherwise). rg_saml_global_init must have run. */
rg_saml_connection *rg_saml_connection_new(const rg_saml_conn_config *cfg, rg_error *err);
/* Accepts NULL. No call on conn may be running. */
void rg_saml_connection_free(rg_saml_connection *conn);

/* The SP metadata XML for GET /saml/metadata/{id}; owned by conn. */
const char *rg_saml_sp_metadata_xml(const rg_saml_connection *conn);
/* The SP's URLs of a connection, the one place they are spelled:
 * {base_url}/saml/metadata/{id} (the entityID, where the SP metadata is
 * served) and {base_url}/saml/acs/{id} (trailing '/' of base_url dropped),
 * each into a buffer of n bytes. 0, or -1 when they do not fit. */
#define RG_SAML_URL_MAX 640
int  rg_saml_sp_urls(const char *base_url, const char *connection_id, char *entity_id,
                     char *acs_url, size_t n);
/* The same SP metadata without a connection object, for a connection that
 * has no IdP metadata yet (issue 11 item 1: the IdP needs it first). The
 * certificate is PEM text or a file (one of the two). malloc'd (caller
 * frees); NULL with err (500 saml_config) when the certificate is unusable. */
char *rg_saml_sp_metadata_build(const char *sp_entity_id, const char *acs_url,
                                const char *sp_cert_pem, const char *sp_cert_file,
                                rg_error *err);
/* The IdP's entityID (owned by conn). */
const char *rg_saml_idp_entity_id(const rg_saml_connection *conn);

/* Builds a signed (RSA-SHA256) AuthnRequest for the HTTP-Redirect binding,
 * asking for an HTTP-POST response. relay_state may be NULL (<= 80 bytes per
 * the binding spec). On success *redirect_url is malloc'd (caller frees) and
 * request_id holds the request's ID to keep in the pending-login store. */
int  rg_saml_authn_request(const rg_saml_connection *conn, const char *relay_state,
                           char **redirect_url, char request_id[RG_SAML_REQUEST_ID_MAX],
                           rg_error *err);

/* ---- ACS ---------------------------------------------------------------- */
/* Replay check: 0 first use (and now remembered until expires_at), 1 seen
 * before, -1 backend unavailable, 2 the connection's share of the cache is
 * full (the response is then rejected: 503 saml_replay_cache_unavailable or
 * saml_replay_quota_exceeded). */
typedef int (*rg_saml_replay_fn)(void *ctx, const char *issuer,
                                 const char *assertion_id, int64_t expires_at);

typedef struct rg_saml_identity {
    char   *subject;             /* NameID text, full (comment-safe) */
    char   *subject_format;      /* NameID Format or NULL */
    char   *email;               /* first email attribute, else NameID if it looks like one; may be NULL */
    char   *name;                /* display name or NULL */
    char  **groups;              /* every value of every group attribute, unescaped */
    size_t  n_groups;
    char   *issuer;              /* the IdP entityID */
    char   *assertion_id;
    char   *in_response_to;      /* NULL for IdP-initiated */
    char   *session_index;       /* AuthnStatement SessionIndex or NULL */
    int64_t session_not_on_or_after; /* AuthnStatement SessionNotOnOrAfter, 0 if absent */
    int64_t expires_at;          /* assertion validity end (replay TTL), seconds */
} rg_saml_identity;

/* Frees every field (malloc'd) and zeroes id. Accepts NULL. */
void rg_saml_identity_clear(rg_saml_identity *id);

/* Verifies a POSTed SAMLResponse (the base64 form value, URL-decoded). Accepts
 * only if: it fits in max_response_size and has no DTD; the document holds
 * exactly one Response and exactly one (Encrypted)Assertion, a direct child of
 * it; every signature references its parent's ID; the assertion is covered
 * by a valid signature (response or assertion) of the IdP's key with an
 * allowed algorithm (no SHA-1 unless allowed); Issuer is the IdP; Destination
 * and Recipient are the ACS; Audience is the SP; the subject confirmation is
 * bearer; the time windows hold within the skew; InResponseTo matches
 * expected_request_id (NULL: nothing pending, accepted only if the connection
 * allows IdP-initiated logins and the response has no InResponseTo); the
 * replay callback says first use (replay_check may be NULL only in tests that
 * accept replays: then no replay check is done).
 * now: seconds since epoch (0 = the clock). On success fills out (clear it
 * with rg_saml_identity_clear) and returns 0. On failure returns RG_EINVAL
 * (or RG_EIO for the replay backend) with err: status 400 (malformed), 403
 * (untrusted) or 503 (replay cache down) and one of the stable codes:
 * saml_response_too_large saml_malformed saml_dtd_forbidden
 * saml_signature_missing saml_signature_invalid saml_multiple_assertions
 * saml_wrong_issuer saml_wrong_destination saml_wrong_recipient
 * saml_wrong_audience saml_not_bearer saml_expired saml_not_yet_valid
 * saml_unsolicited saml_in_response_to_mismatch saml_replay
 * saml_replay_cache_unavailable saml_replay_quota_exceeded saml_sha1_forbidden
 * saml_status_not_success saml_decryption_failed saml_encoding_forbidden
 * saml_assertion_lifetime_too_long. Thread-safe on a shared conn. */
int  rg_saml_acs_verify(const rg_saml_connection *conn, const char *saml_response_b64,
                        size_t len, const char *expected_request_id, int64_t now,
                        rg_saml_replay_fn replay_check, void *replay_ctx,
                        rg_saml_identity *out, rg_error *err);

/* The default attribute name lists (NULL-terminated, static). */
extern const char *const rg_saml_default_group_attributes[];
extern const char *const rg_saml_default_email_attributes[];
extern const char *const rg_saml_default_name_attributes[];

/* ---- internal to src/saml (shared between its files, not for others) --- */
struct _xmlDoc;
/* Parses untrusted XML as UTF-8 with XML_PARSE_NONET, no entity substitution
 * and no DTD loading. Returns the document (free with xmlFreeDoc), or NULL
 * with *why = 1 for a DTD/DOCTYPE/ENTITY (refused even before parsing), 2 for
 * anything that is not well-formed XML, 3 for bytes that another parser
 * could read in another encoding (rg_saml_xml_charset_check). */
struct _xmlDoc *rg_saml_xml_parse(const char *buf, size_t len, int *why);
/* Issue 11 item 11: NULL if every XML parser must read buf as UTF-8 (no BOM,
 * valid UTF-8, no NUL, an XML declaration only first, strictly per the
 * grammar, version "1.0", encoding absent or "UTF-8" in any case); else why
 * not (a static string). */
const char *rg_saml_xml_charset_check(const char *buf, size_t len);

/* ---- Single Logout, HTTP-Redirect (issue 13; slo.c) ----------------------- */
/* 1 if the IdP's metadata lists an HTTP-Redirect SingleLogoutService. */
int  rg_saml_slo_supported(const rg_saml_connection *conn);
/* SP-initiated: a signed LogoutRequest for name_id (format and
 * session_index may be NULL) to the IdP's SLO endpoint. *redirect_url
 * malloc'd; request_id to keep for the response. 409 saml_slo_unsupported
 * when the IdP has no such endpoint. */
int  rg_saml_logout_request(const rg_saml_connection *conn, const char *name_id,
                            const char *name_id_format, const char *session_index,
                            const char *relay_state, char **redirect_url,
                            char request_id[RG_SAML_REQUEST_ID_MAX], rg_error *err);
/* The IdP's LogoutResponse (query string without '?'): signed, issued by the
 * IdP, InResponseTo == expected_request_id, status Success. 0 or 400 with a
 * saml_logout_* code. */
int  rg_saml_logout_response_check(const rg_saml_connection *conn, const char *query,
                                   const char *expected_request_id, rg_error *err);
/* IdP-initiated: what a verified LogoutRequest asks to end. */
typedef struct rg_saml_logout_req {
    char *name_id;
    char *session_index;   /* NULL: every session of name_id */
    char *relay_state;     /* NULL if none */
} rg_saml_logout_req;
void rg_saml_logout_req_clear(rg_saml_logout_req *r);
/* Checks the IdP's LogoutRequest (query without '?': signature required,
 * issuer the IdP, a NameID), fills *out and builds the signed LogoutResponse
 * (Success) as *redirect_url (malloc'd). The caller ends the sessions of
 * out->name_id / out->session_index before redirecting. 0, or 400
 * saml_logout_request_invalid / 500. */
int  rg_saml_logout_request_answer(const rg_saml_connection *conn, const char *query,
                                   rg_saml_logout_req *out, char **redirect_url,
                                   rg_error *err);

#ifdef RG_SAML_INTERNAL
/* The connection's insides, visible only to the files of src/saml (which define
 * RG_SAML_INTERNAL); everyone else sees the opaque type. Immutable after
 * rg_saml_connection_new; all strings malloc'd and owned. */
struct _LassoServer;
struct evp_pkey_st;
struct rg_saml_connection {
    struct _LassoServer *server;
    struct evp_pkey_st **sig_keys;   /* the IdP's signing keys (redirect_sig.c) */
    size_t  n_sig_keys;
    char   *connection_id, *sp_entity_id, *acs_url, *idp_entity_id, *sp_metadata;
    char  **group_attrs, **email_attrs, **name_attrs;   /* NULL-terminated */
    int     allow_idp_initiated, allow_sha1, skew;
    size_t  max_response;
    int64_t max_lifetime;   /* seconds */
};
#endif

#endif
