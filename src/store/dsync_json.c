/* dsync_json.c: the admin objects of directory sync (store_dsync.h
 * shapes; R27, R28): a directory user with its membership's role and roles,
 * its groups and custom attributes; the brief user of dsync.group.* events;
 * a directory group. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dsync_impl.h"

#define ENTERPRISE "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

static json_t *opt_str(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* WorkOS custom_attributes: the enterprise extension and a few core ones. */
json_t *rg_st_dsync_custom_attributes(const json_t *r)
{
    json_t *ext = json_object_get(r, ENTERPRISE);
    json_t *o = json_is_object(ext) ? json_deep_copy(ext) : json_object();
    static const char *const core[] = {"title", "userType", "displayName", "locale"};
    for (size_t i = 0; o && i < sizeof core / sizeof *core; i++) {
        json_t *v = json_object_get(r, core[i]);
        if (json_is_string(v))
            json_object_set(o, core[i], v);
    }
    return o;
}

static json_t *custom_attributes_text(const char *text)
{
    json_t *r = text ? json_loads(text, 0, NULL) : NULL;
    json_t *o = rg_st_dsync_custom_attributes(r);
    json_decref(r);
    return o;
}

/* The membership id of (user, org) into om ("" when none): 1, 0, negative. */
int rg_st_dsync_membership_of(st_db *db, const char *user_id, const char *org,
                              char om[ST_ID], char source[16], char status[16], rg_error *err)
{
    om[0] = '\0';
    st_stmt *st = rg_st_prep(db, err,
                                  "SELECT id, role_source, status FROM memberships"
                                  " WHERE user_id = ? AND organization_id = ?", "ss",
                                  user_id, org);
    if (!st)
        return rg_st_rc(err);
    int rc = rg_st_step(db, st, err);
    if (rc == 1) {
        snprintf(om, ST_ID, "%s", rg_st_col(st, 0));
        snprintf(source, 16, "%s", rg_st_col(st, 1));
        snprintf(status, 16, "%s", rg_st_col(st, 2));
    }
    st_finalize(st);
    return rc;
}

static int add_roles(st_db *db, json_t *o, const char *user_id, const char *org,
                     rg_error *err)
{
    char om[ST_ID], source[16], status[16];
    int rc = user_id ? rg_st_dsync_membership_of(db, user_id, org, om, source, status, err) : 0;
    if (rc <= 0)
        return rc;
    rg_slugs roles = {0};
    if ((rc = rg_st_membership_roles(db, om, &roles, err)))
        return rc;
    json_t *arr = json_object_get(o, "roles");
    for (size_t i = 0; i < roles.n; i++)
        json_array_append_new(arr, json_pack("{s:s}", "slug", roles.v[i]));
    if (roles.n)
        json_object_set_new(o, "role", json_pack("{s:s}", "slug", roles.v[0]));
    rg_slugs_clear(&roles);
    return 0;
}

int rg_st_dsync_pairs(st_db *db, json_t *arr, const char *k0, const char *k1, const char *sql,
                      const char *id, rg_error *err)
{
    st_stmt *st = rg_st_prep(db, err, sql, "s", id);
    int rc = 0;
    while (st && (rc = rg_st_step(db, st, err)) == 1)
        json_array_append_new(arr, json_pack("{s:s,s:s}", k0, rg_st_col(st, 0), k1,
                                             rg_st_col(st, 1)));
    st_finalize(st);
    return !st ? rg_st_rc(err) : rc;
}

json_t *rg_st_dir_user_json(st_db *db, const char *id, rg_error *err)
{
    st_stmt *st = rg_st_prep(
        db, err,
        "SELECT u.id, u.directory_id, d.organization_id, u.external_id, u.user_id, u.email,"
        " u.first_name, u.last_name, u.active, u.resource, u.created_at, u.updated_at"
        " FROM directory_users u JOIN directories d ON d.id = u.directory_id WHERE u.id = ?",
        "s", id);
    if (!st)
        return NULL;
    json_t *o = NULL;
    char org[ST_ID] = "", user[ST_ID] = "";
    int rc = rg_st_step(db, st, err);
    if (rc == 1) {
        snprintf(org, sizeof org, "%s", rg_st_col(st, 2));
        if (rg_st_col(st, 4))
            snprintf(user, sizeof user, "%s", rg_st_col(st, 4));
        o = json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:s,s:n,s:[],s:[],s:o,s:s,s:s}",
                      "object", "directory_user", "id", rg_st_col(st, 0), "directory_id",
                      rg_st_col(st, 1), "organization_id", org, "idp_id",
                      opt_str(rg_st_col(st, 3)), "user_id", opt_str(rg_st_col(st, 4)),
                      "email", opt_str(rg_st_col(st, 5)), "first_name",
                      opt_str(rg_st_col(st, 6)), "last_name", opt_str(rg_st_col(st, 7)),
                      "state", st_col_int(st, 8) ? "active" : "inactive", "role",
                      "roles", "groups", "custom_attributes",
                      custom_attributes_text(rg_st_col(st, 9)), "created_at", rg_st_col(st, 10),
                      "updated_at", rg_st_col(st, 11));
    }
    o = rg_st_row_object(st, rc, o, -1, "directory_user", id, err);
    if (!o)
        return NULL;
    if (add_roles(db, o, *user ? user : NULL, org, err)) {
        json_decref(o);
        return NULL;
    }
    if (rg_st_dsync_pairs(db, json_object_get(o, "groups"), "id", "name",
                          "SELECT g.id, g.display_name FROM directory_group_members m"
                          " JOIN directory_groups g ON g.id = m.group_id WHERE m.user_id = ?"
                          " ORDER BY g.display_name, g.id", id, err)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *user_brief_row(st_stmt *st)
{
    return json_pack("{s:s,s:s,s:o,s:o,s:o,s:o,s:s}", "object", "directory_user", "id",
                     rg_st_col(st, 0), "idp_id", opt_str(rg_st_col(st, 1)), "email",
                     opt_str(rg_st_col(st, 2)), "first_name", opt_str(rg_st_col(st, 3)),
                     "last_name", opt_str(rg_st_col(st, 4)), "state",
                     st_col_int(st, 5) ? "active" : "inactive");
}

json_t *rg_st_dir_user_brief(st_db *db, const char *id, rg_error *err)
{
    return rg_st_object(db,
                        "SELECT id, external_id, email, first_name, last_name, active"
                        " FROM directory_users WHERE id = ?", id, user_brief_row, -1,
                        "directory_user", err);
}

static json_t *group_row(st_stmt *st)
{
    return json_pack("{s:s,s:s,s:o,s:s,s:s,s:s}", "object", "directory_group", "id",
                     rg_st_col(st, 0), "idp_id", opt_str(rg_st_col(st, 1)), "directory_id",
                     rg_st_col(st, 2), "organization_id", rg_st_col(st, 3), "name",
                     rg_st_col(st, 4));
}

json_t *rg_st_dir_group_json(st_db *db, const char *id, rg_error *err)
{
    return rg_st_object(db,
                        "SELECT g.id, g.external_id, g.directory_id, d.organization_id,"
                        " g.display_name, g.created_at, g.updated_at FROM directory_groups g"
                        " JOIN directories d ON d.id = g.directory_id WHERE g.id = ?",
                        id, group_row, 5, "directory_group", err);
}

