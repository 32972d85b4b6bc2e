/* directory.c: directories of an organization (R27) with the hash of their
 * bearer token (rotation invalidates the old one at once, R31), the admin
 * reads of directory users and groups, directory group -> role mappings
 * (R28; setting them recomputes every directory user's roles, R29), and
 * the asynchronous directory deletion (R31: a job removes users and groups
 * in batches; memberships keep existing with the default role). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "rolegate/util.h"
#include "dsync_impl.h"

#define DIR_COLS "id, organization_id, name, type, state, created_at, updated_at"

static json_t *directory_row(st_stmt *st)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "object", "directory", "id",
                     rg_st_col(st, 0), "organization_id", rg_st_col(st, 1), "name",
                     rg_st_col(st, 2), "type", rg_st_col(st, 3), "state", rg_st_col(st, 4));
}

json_t *rg_st_directory_json(st_db *db, const char *id, rg_error *err)
{
    return rg_st_object(db, "SELECT " DIR_COLS " FROM directories WHERE id = ?", id,
                        directory_row, 5, "directory", err);
}

void rg_store_dsync_token_hash(const char *token, char out[RG_DSYNC_TOKEN_HASH])
{
    unsigned char md[32];
    unsigned int n = 0;
    if (!EVP_Digest(token, strlen(token), md, &n, EVP_sha256(), NULL) || n != 32) {
        out[0] = '\0';   /* matches no stored hash */
        return;
    }
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int type_ok(const char *t)
{
    static const char *const types[] = {"okta scim v2.0", "azure scim v2.0",
                                        "generic scim v2.0"};
    for (size_t i = 0; t && i < sizeof types / sizeof *types; i++)
        if (!strcmp(t, types[i]))
            return 1;
    return 0;
}

static int hash_ok(const char *h)
{
    if (!h || strlen(h) != RG_DSYNC_TOKEN_HASH - 1)
        return 0;
    for (; *h; h++)
        if (!strchr("0123456789abcdef", *h))
            return 0;
    return 1;
}

static int dir_create_tx(st_db *db, const char *org_id, const char *name, const char *type,
                         const char *hash, json_t **out, rg_error *err)
{
    int rc = rg_st_org_exists(db, org_id, err);
    if (rc <= 0)
        return rc < 0 ? rc : rg_st_not_found(err, "organization_id", "organization", org_id);
    char id[ST_ID], ts[ST_TS];
    rg_id_new("directory", id, sizeof id);
    rg_st_now(ts);
    if (rg_st_exec(db, err,
                   "INSERT INTO directories(id, organization_id, name, type, state, token_hash,"
                   " created_at, updated_at) VALUES (?, ?, ?, ?, 'active', ?, ?, ?)",
                   "sssssss", id, org_id, name, type, hash, ts, ts))
        return rg_st_rc(err);
    return rg_st_answer(db, rg_st_directory_json(db, id, err), "directory.created", out, err);
}

/* The arguments of create (org_id, name, type, hash), token_set (id, hash),
 * mappings_set (id, maps). */
typedef struct dir_arg {
    const char *id, *name, *type, *hash;
    const json_t *maps;
} dir_arg;

static int dir_create_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const dir_arg *a = arg;
    return dir_create_tx(tx->db, a->id, a->name, a->type, a->hash, out, err);
}

int rg_store_directory_create(rg_store *s, const char *org_id, const char *name,
                              const char *type, const char *token_hash, json_t **out,
                              rg_error *err)
{
    if (out)
        *out = NULL;
    size_t nl = name ? strlen(name) : 0;
    if (nl == 0 || nl > 255)
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", "name",
                            "name must be 1 to 255 bytes");
    for (size_t i = 0; i < nl; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", "name",
                                "name has a control character");
    if (!type_ok(type))
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", "type",
                            "type must be \"okta scim v2.0\", \"azure scim v2.0\" or"
                            " \"generic scim v2.0\"");
    if (!hash_ok(token_hash))
        return rg_error_set(err, RG_EINTERNAL, "store_error", NULL, "bad token hash");
    dir_arg a = { org_id ? org_id : "", name, type, token_hash, NULL };
    return rg_st_write(s, dir_create_fn, &a, out, err);
}

int rg_store_directory_list(rg_store *s, const char *org_id, const rg_store_list_opts *o,
                            json_t **out, rg_error *err)
{
    st_list_q q = { "directories", "id", org_id ? "organization_id = ?" : "", org_id, NULL, o,
                    1, rg_st_directory_json, NULL };
    return rg_st_read_list(s, &q, out, err);
}

int rg_store_directory_get(rg_store *s, const char *id, json_t **out, rg_error *err)
{
    return rg_st_get(s, rg_st_directory_json, id, out, err);
}

static int token_set_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const dir_arg *a = arg;
    char ts[ST_TS];
    rg_st_now(ts);
    int rc = rg_st_exec(tx->db, err,
                        "UPDATE directories SET token_hash = ?, updated_at = ? WHERE id = ?"
                        " AND state = 'active'", "sss", a->hash, ts, a->id);
    if (!rc && st_changes(tx->db) == 0)
        rc = rg_st_not_found(err, "id", "directory", a->id);
    if (!rc && !(*out = rg_st_directory_json(tx->db, a->id, err)))
        rc = rg_st_rc(err);
    return rc;
}

int rg_store_directory_token_set(rg_store *s, const char *id, const char *token_hash,
                                 json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    if (!hash_ok(token_hash))
        return rg_error_set(err, RG_EINTERNAL, "store_error", NULL, "bad token hash");
    dir_arg a = { id ? id : "", NULL, NULL, token_hash, NULL };
    return rg_st_write(s, token_set_tx, &a, out, err);
}

typedef struct auth_arg { const char *id; char *hash, *org_id; int found; } auth_arg;

static int auth_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    auth_arg *a = arg;
    st_stmt *st = rg_st_prep(tx->db, err,
                                  "SELECT token_hash, organization_id FROM directories"
                                  " WHERE id = ? AND state = 'active'", "s", a->id);
    int rc = st ? rg_st_step(tx->db, st, err) : rg_st_rc(err);
    if (rc == 1) {
        snprintf(a->hash, RG_DSYNC_TOKEN_HASH, "%s", rg_st_col(st, 0));
        snprintf(a->org_id, 64, "%s", rg_st_col(st, 1));
    }
    st_finalize(st);
    a->found = rc;
    return rc < 0 ? rc : 0;
}

int rg_store_directory_auth(rg_store *s, const char *id, char hash[RG_DSYNC_TOKEN_HASH],
                            char org_id[64], rg_error *err)
{
    hash[0] = org_id[0] = '\0';
    auth_arg a = { id ? id : "", hash, org_id, 0 };
    int rc = rg_st_read(s, auth_tx, &a, NULL, err);
    return rc ? rc : a.found;
}

/* ---- deletion (R31) ------------------------------------------------------------ */

static int dir_delete_tx(st_db *db, const char *id, json_t **out, rg_error *err)
{
    json_t *o = rg_st_directory_json(db, id, err);
    if (!o)
        return rg_st_rc(err);
    if (!strcmp(json_string_value(json_object_get(o, "state")), "deleting")) {
        *out = o;   /* already queued: nothing new */
        return 0;
    }
    char ts[ST_TS], job[ST_ID];
    rg_st_now(ts);
    rg_id_new("job", job, sizeof job);
    json_object_set_new(o, "state", json_string("deleting"));
    if (rg_st_exec(db, err, "UPDATE directories SET state = 'deleting', updated_at = ?"
                   " WHERE id = ?", "ss", ts, id) ||
        rg_st_exec(db, err,
                   "INSERT INTO jobs(id, kind, role_id, status, cursor, processed, created_at,"
                   " updated_at) VALUES (?, 'directory_delete', ?, 'pending', '', 0, ?, ?)",
                   "ssss", job, id, ts, ts) ||
        rg_st_event(db, "directory.deleted", json_incref(o), err)) {
        json_decref(o);
        return rg_st_rc(err);
    }
    *out = o;
    return 0;
}

static int dir_delete_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    return dir_delete_tx(tx->db, arg, out, err);
}

int rg_store_directory_delete(rg_store *s, const char *id, json_t **out, rg_error *err)
{
    return rg_st_write(s, dir_delete_fn, (void *)(id ? id : ""), out, err);
}

long rg_st_dsync_job_batch(st_db *db, const char *job_id, const char *dir_id, size_t limit,
                           rg_error *err)
{
    char ts[ST_TS], org[ST_ID];
    rg_st_now(ts);
    int rc = rg_st_text(db, err, org, sizeof org,
                        "SELECT organization_id FROM directories WHERE id = ?", "s", dir_id);
    if (rc < 0)
        return rc;
    if (rc == 0)   /* gone with its organization */
        return rg_st_exec(db, err, "UPDATE jobs SET status = 'done', updated_at = ? WHERE id = ?",
                          "ss", ts, job_id);
    /* groups first (their mappings with them), then users: each user's
     * membership falls back to the default role (R31) as it goes */
    if (rg_st_exec(db, err,
                   "DELETE FROM directory_groups WHERE id IN (SELECT id FROM directory_groups"
                   " WHERE directory_id = ? LIMIT ?)", "sI", dir_id, (int64_t)limit))
        return rg_st_rc(err);
    long n = st_changes(db);
    if (n > 0)
        return n;
    st_stmt *st = rg_st_prep(db, err,
                                  "SELECT id FROM directory_users WHERE directory_id = ?"
                                  " LIMIT ?", "sI", dir_id, (int64_t)limit);
    if (!st)
        return rg_st_rc(err);
    char (*ids)[ST_ID] = calloc(limit ? limit : 1, sizeof *ids);
    size_t k = 0;
    while (ids && k < limit && (rc = rg_st_step(db, st, err)) == 1)
        snprintf(ids[k++], ST_ID, "%s", rg_st_col(st, 0));
    st_finalize(st);
    if (!ids)
        return rg_st_oom(err);
    rc = rc < 0 ? rc : 0;
    rg_role_table *t = NULL;
    if (k && !rc)
        rc = rg_st_table_load_order(db, org, &t, err);
    for (size_t i = 0; !rc && i < k; i++) {
        json_t *ev = rg_st_dir_user_json(db, ids[i], err);
        /* no groups left: recomputed to the default role, then the user goes */
        if (!ev || rg_st_dsync_recompute(db, t, org, ids[i], NULL, err) ||
            rg_st_exec(db, err, "DELETE FROM directory_users WHERE id = ?", "s", ids[i]) ||
            rg_st_event(db, "dsync.user.deleted", ev, err))
            rc = rg_st_rc(err);
    }
    rg_role_table_free(t);
    free(ids);
    if (rc)
        return rc;
    if (k)
        return (long)k;
    if (rg_st_exec(db, err, "DELETE FROM directories WHERE id = ?", "s", dir_id) ||
        rg_st_exec(db, err, "UPDATE jobs SET status = 'done', updated_at = ? WHERE id = ?", "ss",
                   ts, job_id))
        return rg_st_rc(err);
    rg_log(RG_LOG_INFO, "store=job_done job=%s directory=%s", job_id, dir_id);
    return 0;
}

/* ---- users and groups (admin reads) -------------------------------------------- */

static int list_two(rg_store *s, const char *table, const char *w_dir, const char *w_other,
                    const char *dir, const char *other, const char *other_field,
                    st_builder fn, const rg_store_list_opts *o, json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    if (!dir && !other)
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", "directory",
                            "give directory or %s", other_field);
    const char *where = dir && other ? NULL : dir ? w_dir : w_other;
    char both[256];
    if (!where) {
        snprintf(both, sizeof both, "%s AND %s", w_dir, w_other);
        where = both;
    }
    st_list_q q = { table, "id", where, dir ? dir : other, dir ? other : NULL, o, 1, fn, NULL };
    return rg_st_read_list(s, &q, out, err);
}

int rg_store_directory_user_list(rg_store *s, const char *directory_id, const char *group_id,
                                 const rg_store_list_opts *o, json_t **out, rg_error *err)
{
    return list_two(s, "directory_users", "directory_id = ?",
                    "id IN (SELECT user_id FROM directory_group_members WHERE group_id = ?)",
                    directory_id, group_id, "group", rg_st_dir_user_json, o, out, err);
}

int rg_store_directory_user_get(rg_store *s, const char *id, json_t **out, rg_error *err)
{
    return rg_st_get(s, rg_st_dir_user_json, id, out, err);
}

int rg_store_directory_group_list(rg_store *s, const char *directory_id, const char *user_id,
                                  const rg_store_list_opts *o, json_t **out, rg_error *err)
{
    return list_two(s, "directory_groups", "directory_id = ?",
                    "id IN (SELECT group_id FROM directory_group_members WHERE user_id = ?)",
                    directory_id, user_id, "user", rg_st_dir_group_json, o, out, err);
}

int rg_store_directory_group_get(rg_store *s, const char *id, json_t **out, rg_error *err)
{
    return rg_st_get(s, rg_st_dir_group_json, id, out, err);
}

/* ---- role mappings (R28) ---------------------------------------------------------- */

static json_t *mappings_array(st_db *db, const char *dir_id, rg_error *err)
{
    st_stmt *st = rg_st_prep(db, err,
                                  "SELECT m.group_id, r.slug FROM directory_role_mappings m"
                                  " JOIN roles r ON r.id = m.role_id WHERE m.directory_id = ?"
                                  " AND r.status = 'active' ORDER BY m.group_id, r.slug",
                                  "s", dir_id);
    if (!st)
        return NULL;
    json_t *arr = json_array();
    int rc;
    while (arr && (rc = rg_st_step(db, st, err)) == 1)
        if (json_array_append_new(arr, json_pack("{s:s,s:s}", "directory_group_id",
                                                 rg_st_col(st, 0), "role_slug",
                                                 rg_st_col(st, 1)))) {
            json_decref(arr);
            arr = NULL;
        }
    st_finalize(st);
    if (!arr)
        rg_st_oom(err);
    else if (rc < 0) {
        json_decref(arr);
        arr = NULL;
    }
    return arr;
}

static int mappings_get_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    json_t *d = rg_st_directory_json(tx->db, arg, err);
    if (!d)
        return rg_st_rc(err);
    json_decref(d);
    return (*out = mappings_array(tx->db, arg, err)) ? 0 : rg_st_rc(err);
}

int rg_store_directory_mappings_get(rg_store *s, const char *id, json_t **out, rg_error *err)
{
    return rg_st_read(s, mappings_get_tx, (void *)(id ? id : ""), out, err);
}

static int mappings_set_tx(st_db *db, const char *id, const json_t *maps, json_t **out,
                           rg_error *err)
{
    json_t *d = rg_st_directory_json(db, id, err);
    if (!d)
        return rg_st_rc(err);
    char org[ST_ID];
    snprintf(org, sizeof org, "%s", json_string_value(json_object_get(d, "organization_id")));
    json_decref(d);
    json_t *before = mappings_array(db, id, err);
    if (!before)
        return rg_st_rc(err);
    int rc = rg_st_exec(db, err, "DELETE FROM directory_role_mappings WHERE directory_id = ?",
                        "s", id);
    size_t i;
    json_t *m;
    json_array_foreach(maps, i, m) {
        char field[64];
        const char *g = json_string_value(json_object_get(m, "directory_group_id"));
        const char *slug = json_string_value(json_object_get(m, "role_slug"));
        if (rc)
            break;
        if (!json_is_object(m) || !g || !slug || json_object_size(m) != 2) {
            snprintf(field, sizeof field, "role_mappings[%zu]", i);
            rc = rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", field,
                              "each mapping is {\"directory_group_id\", \"role_slug\"}");
            break;
        }
        int64_t one;
        if ((rc = rg_st_int(db, err, &one, "SELECT 1 FROM directory_groups WHERE id = ?"
                            " AND directory_id = ?", "ss", g, id)) <= 0) {
            snprintf(field, sizeof field, "role_mappings[%zu].directory_group_id", i);
            rc = rc < 0 ? rc : rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", field,
                                            "no group %.64s in this directory", g);
            break;
        }
        st_role r;
        if ((rc = rg_st_role_find(db, org, slug, 0, 0, &r, err)) <= 0) {
            snprintf(field, sizeof field, "role_mappings[%zu].role_slug", i);
            rc = rc < 0 ? rc : rg_error_set(err, RG_EUNPROCESSABLE, "invalid_role", field,
                                            "no role '%.64s' in this organization", slug);
            break;
        }
        rc = rg_st_exec(db, err, "INSERT INTO directory_role_mappings(directory_id, group_id,"
                        " role_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", "sss", id, g, r.id);
    }
    json_t *after = rc ? NULL : mappings_array(db, id, err);
    if (!rc && !after)
        rc = rg_st_rc(err);
    /* R29: every user of the directory at once (a no-op changes nothing) */
    if (!rc && !json_equal(before, after))
        rc = rg_st_dsync_recompute_org(db, org, err);
    json_decref(before);
    if (rc) {
        json_decref(after);
        return rc;
    }
    *out = after;
    return 0;
}

static int mappings_set_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const dir_arg *a = arg;
    return mappings_set_tx(tx->db, a->id, a->maps, out, err);
}

int rg_store_directory_mappings_set(rg_store *s, const char *id, const json_t *mappings,
                                    json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    if (!json_is_array(mappings))
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", "role_mappings",
                            "a JSON array of {\"directory_group_id\", \"role_slug\"}");
    dir_arg a = { id ? id : "", NULL, NULL, NULL, mappings };
    return rg_st_write(s, mappings_set_fn, &a, out, err);
}
