/* claims.c: reading a verified ID token: claims by dotted path, the groups
 * claim (R15: byte-exact; R16: an overage is reported, never read as "no
 * groups") and the claim checks of OIDC Core 3.1.3.7 (iss, aud, azp, exp,
 * iat, nbf, nonce, sub). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "oidc_internal.h"

/* Looks a claim up by dotted path ("realm_access.roles"). A top-level claim
 * whose name holds the whole path (namespaced claims such as
 * "https://example.com/groups") wins over walking the path. */
json_t *oidc_claim_get(json_t *o, const char *path)
{
    json_t *v = json_object_get(o, path);
    if (v || !strchr(path, '.'))
        return v;
    char seg[256];
    const char *p = path;
    while (json_is_object(o)) {
        size_t n = strcspn(p, ".");
        if (n == 0 || n >= sizeof seg)
            return NULL;
        memcpy(seg, p, n);
        seg[n] = 0;
        o = json_object_get(o, seg);
        if (!p[n])
            return o;
        p += n + 1;
    }
    return NULL;
}

char *oidc_claim_str(json_t *o, const char *path)
{
    const char *s = json_string_value(oidc_claim_get(o, path));
    return s ? strdup(s) : NULL;
}

/* 1 if the IdP marked the groups claim as left out (Entra ID overage). */
int oidc_groups_overage(json_t *o, const char *path)
{
    json_t *names = json_object_get(o, "_claim_names");
    char first[256];
    size_t n = strcspn(path, ".");
    snprintf(first, sizeof first, "%.*s", (int)(n < sizeof first ? n : sizeof first - 1), path);
    if (json_is_object(names) && (json_object_get(names, path) || json_object_get(names, first)))
        return 1;
    return json_is_true(json_object_get(o, "hasgroups"));
}

/* Reads the groups at path into id. Returns 1 if the claim was present.
 * R15: group ids are kept byte-exact (case-sensitive, untrimmed) because
 * mappings compare them exactly. */
int oidc_read_groups(json_t *o, const char *path, rg_oidc_identity *id, const char *issuer)
{
    json_t *v = oidc_claim_get(o, path);
    if (!v)
        return 0;
    json_t *one = json_is_string(v) ? v : NULL;
    size_t n = one ? 1 : json_array_size(v), skipped = 0;
    if (!one && !json_is_array(v)) {
        char q[120];
        rg_log(RG_LOG_WARN, "event=oidc_groups_claim_bad_type issuer=%s claim=%s",
               rg_log_quote(q, sizeof q, issuer), path);
        /* present but unusable: no group. An empty array, not NULL, which
         * the caller takes for out of memory (tests/cases/oidc/012, 013) */
        id->groups = calloc(1, sizeof *id->groups);
        return 1;
    }
    id->groups = calloc(n ? n : 1, sizeof *id->groups);
    for (size_t i = 0; id->groups && i < n; i++) {
        const char *s = json_string_value(one ? one : json_array_get(v, i));
        if (!s || !*s || strlen(s) > MAX_GROUP_LEN || id->n_groups >= MAX_GROUPS) {
            skipped++;
            continue;
        }
        if ((id->groups[id->n_groups] = strdup(s)))
            id->n_groups++;
    }
    if (skipped) {
        char q[120];
        rg_log(RG_LOG_WARN, "event=oidc_groups_skipped issuer=%s count=%zu reason=\"not a string, "
               "empty, over %d bytes or over %d groups\"", rg_log_quote(q, sizeof q, issuer),
               skipped, MAX_GROUP_LEN, MAX_GROUPS);
    }
    return 1;
}

void rg_oidc_identity_clear(rg_oidc_identity *id)
{
    if (!id)
        return;
    for (size_t i = 0; i < id->n_groups; i++)
        free(id->groups[i]);
    free(id->groups);
    free(id->issuer);
    free(id->subject);
    free(id->email);
    free(id->name);
    free(id->sid);
    if (id->id_token) {
        OPENSSL_cleanse(id->id_token, strlen(id->id_token));
        free(id->id_token);
    }
    memset(id, 0, sizeof *id);
}


/* A NumericDate as seconds, clamped so a huge value cannot overflow. */
long long oidc_num_secs(json_t *v)
{
    double d = json_number_value(v);
    return d > 9e15 ? 9000000000000000LL : d < -9e15 ? -9000000000000000LL : (long long)d;
}

int oidc_aud_has(json_t *aud, const char *client_id, size_t *n_aud)
{
    int ok = 0;
    *n_aud = 0;
    if (json_is_string(aud)) {
        *n_aud = 1;
        ok = strcmp(json_string_value(aud), client_id) == 0;
    } else if (json_is_array(aud)) {
        size_t i;
        json_t *a;
        *n_aud = json_array_size(aud);
        json_array_foreach(aud, i, a)
            ok |= json_is_string(a) && strcmp(json_string_value(a), client_id) == 0;
    }
    return ok;
}

/* The claim checks of OIDC Core 3.1.3.7 after the signature. */
int oidc_check_claims(const rg_oidc_client *c, json_t *cl, const rg_oidc_pending *p,
                        int64_t now, rg_error *err)
{
    const char *iss = json_string_value(json_object_get(cl, "iss"));
    if (!iss || strcmp(iss, c->issuer) != 0)
        return rg_error_set(err, RG_EUNAUTH, "oidc_wrong_issuer", "iss",
                            "ID token iss is not the connection's issuer");
    size_t n_aud = 0;
    int aud_ok = oidc_aud_has(json_object_get(cl, "aud"), c->client_id, &n_aud);
    if (!aud_ok)
        return rg_error_set(err, RG_EUNAUTH, "oidc_wrong_audience", "aud",
                            "ID token aud does not contain this client_id");
    json_t *azp = json_object_get(cl, "azp");
    if (azp ? !json_is_string(azp) || strcmp(json_string_value(azp), c->client_id) != 0 : n_aud > 1)
        return rg_error_set(err, RG_EUNAUTH, "oidc_wrong_azp", "azp", "%s",
                            azp ? "ID token azp is not this client_id"
                                : "ID token has several audiences and no azp");
    json_t *exp = json_object_get(cl, "exp"), *iat = json_object_get(cl, "iat");
    json_t *nbf = json_object_get(cl, "nbf");
    if (!json_is_number(exp) || !json_is_number(iat) || (nbf && !json_is_number(nbf)))
        return rg_error_set(err, RG_EUNAUTH, "oidc_id_token_malformed", "exp",
                            "ID token exp/iat missing or not numbers");
    long long e = oidc_num_secs(exp), ia = oidc_num_secs(iat), nb = nbf ? oidc_num_secs(nbf) : 0;
    if (e <= now - c->skew_s)
        return rg_error_set(err, RG_EUNAUTH, "oidc_expired", "exp",
                            "ID token expired (exp %lld, now %lld)", e, (long long)now);
    if (ia > now + c->skew_s)
        return rg_error_set(err, RG_EUNAUTH, "oidc_iat_future", "iat",
                            "ID token issued in the future (iat %lld, now %lld)", ia, (long long)now);
    if (nbf && nb > now + c->skew_s)
        return rg_error_set(err, RG_EUNAUTH, "oidc_iat_future", "nbf",
                            "ID token not valid yet (nbf %lld, now %lld)", nb, (long long)now);
    const char *nonce = json_string_value(json_object_get(cl, "nonce"));
    if (!nonce || !rg_ct_equal(nonce, strlen(nonce), p->nonce, strlen(p->nonce)))
        return rg_error_set(err, RG_EUNAUTH, "oidc_nonce_mismatch", "nonce",
                            "ID token nonce does not match the pending login");
    const char *sub = json_string_value(json_object_get(cl, "sub"));
    if (!sub || !*sub || strlen(sub) > MAX_SUB_LEN)
        return rg_error_set(err, RG_EUNAUTH, "oidc_id_token_malformed", "sub",
                            "ID token sub missing, empty or over 255 chars");
    return RG_OK;
}

