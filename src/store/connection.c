/* connection.c: an organization's SAML and OIDC connections: create, list,
 * get (public: never the client_secret; private: with it, for the login
 * paths only), update (a config patch) and delete, each one transaction of
 * the runner with its event (R26), and the digest of a stored connection
 * (the gateway's per-login check that what it built is current). Their IdP
 * group mappings (R15) are role_mapping.c's. */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/util.h"
#include "store_impl.h"

static int reserved_key(const char *k)
{
    static const char *const keys[] = { "object", "id", "organization_id", "type", "name",
                                        "state", "created_at", "updated_at", "role_mappings" };
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (!strcmp(k, keys[i]))
            return 1;
    return 0;
}

static int nonempty(const json_t *cfg, const char *k)
{
    const char *v = json_string_value(json_object_get(cfg, k));
    return v && *v;
}

/* "active" once the connection can log anyone in: SAML with IdP metadata,
 * OIDC with an issuer and a client id; "draft" before (issue 11 item 1). */
static const char *conn_state(const char *type, const json_t *cfg)
{
    int ok = strcmp(type, "saml") == 0 ? nonempty(cfg, "idp_metadata")
                                       : nonempty(cfg, "issuer") && nonempty(cfg, "client_id");
    return ok ? "active" : "draft";
}

/* The row a connection's object is made of: rg_st_connection_json builds
 * the object from it, rg_st_connection_digest_row hashes it (equal
 * digests, equal objects), so both read these columns and no others. */
#define CONN_ROW_SQL "SELECT " ST_CONN_DIGEST_SELECT("c") " FROM connections c WHERE c.id = ?"

json_t *rg_st_connection_json(st_db *db, const char *conn_id, int with_secret,
                              rg_error *err)
{
    st_stmt *st = rg_st_prep(db, err, CONN_ROW_SQL, "s", conn_id);
    if (!st)
        return NULL;
    json_t *o = NULL;
    int rc = rg_st_step(db, st, err);
    if (rc == 1) {
        json_t *cfg = json_loads(rg_st_col(st, 4), 0, NULL);
        o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "object", "connection", "id",
                      rg_st_col(st, 0), "organization_id", rg_st_col(st, 1), "type",
                      rg_st_col(st, 2), "name", rg_st_col(st, 3), "state",
                      conn_state(rg_st_col(st, 2), cfg));
        const char *k;
        json_t *v;
        if (o && json_is_object(cfg))
            json_object_foreach(cfg, k, v) {
                if (reserved_key(k) || (!with_secret && !strcmp(k, "client_secret")))
                    continue;
                json_object_set(o, k, v);
            }
        json_decref(cfg);
    }
    return rg_st_row_object(st, rc, o, 5, "connection", conn_id, err);
}

json_t *rg_st_conn_public(st_db *db, const char *id, rg_error *err)
{
    return rg_st_connection_json(db, id, 0, err);
}

static json_t *conn_private(st_db *db, const char *id, rg_error *err)
{
    return rg_st_connection_json(db, id, 1, err);
}

/* The config without the reserved members, as JSON text (malloc'd). */
static int config_text(const json_t *config, char **text, rg_error *err)
{
    if (config && !json_is_object(config))
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", "config",
                            "the connection settings must be a JSON object");
    json_t *c = json_object();
    const char *k;
    json_t *v;
    if (c && config)
        json_object_foreach((json_t *)config, k, v) {
            if (!reserved_key(k) && !json_is_null(v))
                json_object_set(c, k, v);
        }
    *text = c ? json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(c);
    return *text ? 0 : rg_st_oom(err);
}

/* The arguments of create (org_id, type) and update (id, patch). */
typedef struct conn_arg {
    const char *id, *org_id, *type, *name, *cfg;
    const json_t *patch;
} conn_arg;

static int conn_create_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const conn_arg *a = arg;
    st_db *db = tx->db;
    int rc = rg_st_org_exists(db, a->org_id, err);
    if (rc <= 0)
        return rc < 0 ? rc : rg_st_not_found(err, "organization_id", "organization", a->org_id);
    char id[ST_ID], ts[ST_TS];
    rg_id_new("conn", id, sizeof id);
    rg_st_now(ts);
    if (rg_st_exec(db, err,
                   "INSERT INTO connections(id, organization_id, type, name, config, created_at,"
                   " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   "sssssss", id, a->org_id, a->type, a->name, a->cfg, ts, ts))
        return rg_st_rc(err);
    if (!(*out = rg_st_conn_public(db, id, err)))
        return rg_st_rc(err);
    return rg_st_event(db, "connection.created", json_incref(*out), err);
}

int rg_store_connection_create(rg_store *s, const char *org_id, const char *type,
                               const char *name, const json_t *config, json_t **out,
                               rg_error *err)
{
    if (out)
        *out = NULL;
    if (!type || (strcmp(type, "saml") && strcmp(type, "oidc")))
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", "type",
                            "type must be \"saml\" or \"oidc\"");
    char *cfg = NULL;
    int rc = rg_st_label_check(name, "name", err);
    if (!rc)
        rc = config_text(config, &cfg, err);
    if (rc)
        return rc;
    conn_arg a = { NULL, org_id ? org_id : "", type, name, cfg, NULL };
    rc = rg_st_write(s, conn_create_tx, &a, out, err);
    free(cfg);
    return rc;
}

int rg_store_connection_list(rg_store *s, const char *org_id, const rg_store_list_opts *o,
                             json_t **out, rg_error *err)
{
    st_list_q q = { "connections", "id", org_id ? "organization_id = ?" : "", org_id, NULL, o,
                    1, rg_st_conn_public, NULL };
    return rg_st_read_list(s, &q, out, err);
}

int rg_store_connection_get(rg_store *s, const char *id, json_t **out, rg_error *err)
{
    return rg_st_get(s, rg_st_conn_public, id, out, err);
}

int rg_store_connection_private(rg_store *s, const char *id, json_t **out, rg_error *err)
{
    return rg_st_get(s, conn_private, id, out, err);
}

typedef struct digest_arg { const char *id; unsigned char *dg; } digest_arg;

/* SHA-256 over the columns, each as its length then its bytes (no column
 * can run into the next). */
int rg_st_connection_digest_row(st_stmt *st, int col, unsigned char dg[32], rg_error *err)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    for (int i = col; ok && i < col + ST_CONN_DIGEST_COLS; i++) {
        const char *v = rg_st_col(st, i) ? rg_st_col(st, i) : "";
        uint64_t n = strlen(v);
        ok = EVP_DigestUpdate(md, &n, sizeof n) && EVP_DigestUpdate(md, v, (size_t)n);
    }
    unsigned int dl = 0;
    ok = ok && EVP_DigestFinal_ex(md, dg, &dl) && dl == 32;
    EVP_MD_CTX_free(md);
    return ok ? 0 : rg_st_oom(err);
}

static int conn_digest_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const digest_arg *a = arg;
    st_stmt *st = rg_st_prep(tx->db, err, CONN_ROW_SQL, "s", a->id);
    if (!st)
        return rg_st_rc(err);
    int rc = rg_st_step(tx->db, st, err);
    if (rc == 1)
        rc = rg_st_connection_digest_row(st, 0, a->dg, err);
    else if (rc == 0)
        rc = rg_st_not_found(err, "id", "connection", a->id);
    st_finalize(st);
    return rc;
}

int rg_store_connection_digest(rg_store *s, const char *id, unsigned char dg[32], rg_error *err)
{
    digest_arg a = {id, dg};
    return rg_st_read_one(s, conn_digest_tx, &a, NULL, err);   /* 1 round trip */
}

static int conn_update_tx(st_db *db, const char *id, const char *name,
                          const json_t *patch, json_t **out, rg_error *err)
{
    char cur_name[512] = "";
    int rc = rg_st_text(db, err, cur_name, sizeof cur_name,
                        "SELECT name FROM connections WHERE id = ?", "s", id);
    if (rc <= 0)
        return rc < 0 ? rc : rg_st_not_found(err, "id", "connection", id);
    st_stmt *st = rg_st_prep(db, err, "SELECT config FROM connections WHERE id = ?", "s",
                                  id);
    if (!st)
        return rg_st_rc(err);
    json_t *cfg = NULL;
    if (rg_st_step(db, st, err) == 1)
        cfg = json_loads(rg_st_col(st, 0), 0, NULL);
    st_finalize(st);
    if (!json_is_object(cfg)) {
        json_decref(cfg);
        cfg = json_object();
    }
    json_t *next = json_deep_copy(cfg);
    const char *k;
    json_t *v;
    if (next && patch)
        json_object_foreach((json_t *)patch, k, v) {
            if (reserved_key(k))
                continue;
            if (json_is_null(v))
                json_object_del(next, k);
            else
                json_object_set(next, k, v);
        }
    int changed = (name && strcmp(name, cur_name)) || !json_equal(cfg, next);
    json_decref(cfg);
    char *text = NULL;
    rc = next ? config_text(next, &text, err) : rg_st_oom(err);
    json_decref(next);
    if (rc)
        return rc;
    if (changed) {
        char ts[ST_TS];
        rg_st_now(ts);
        rc = rg_st_exec(db, err,
                        "UPDATE connections SET name = coalesce(?, name), config = ?,"
                        " updated_at = ? WHERE id = ?", "ssss", name, text, ts, id);
    }
    free(text);
    if (rc)
        return rc;
    return rg_st_answer(db, rg_st_conn_public(db, id, err),
                            changed ? "connection.updated" : NULL, out, err);
}

static int conn_update_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const conn_arg *a = arg;
    return conn_update_tx(tx->db, a->id, a->name, a->patch, out, err);
}

int rg_store_connection_update(rg_store *s, const char *id, const char *name,
                               const json_t *config_patch, json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    int rc = 0;
    if (name)
        rc = rg_st_label_check(name, "name", err);
    if (!rc && config_patch && !json_is_object(config_patch))
        rc = rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", "config",
                          "the connection settings must be a JSON object");
    if (rc)
        return rc;
    conn_arg a = { id ? id : "", NULL, NULL, name, NULL, config_patch };
    return rg_st_write(s, conn_update_fn, &a, out, err);
}

static int conn_delete_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const char *id = arg;
    st_db *db = tx->db;
    json_t *before = rg_st_conn_public(db, id, err);
    if (!before)
        return rg_st_rc(err);
    const char *org = json_string_value(json_object_get(before, "organization_id"));
    if (rg_st_bump_org(db, org, err) ||   /* its mappings leave the table */
        rg_st_exec(db, err, "DELETE FROM connections WHERE id = ?", "s", id)) {
        json_decref(before);
        return rg_st_rc(err);
    }
    return rg_st_event(db, "connection.deleted", before, err);
}

int rg_store_connection_delete(rg_store *s, const char *id, rg_error *err)
{
    return rg_st_write(s, conn_delete_tx, (void *)(id ? id : ""), NULL, err);
}
