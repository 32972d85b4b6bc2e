/* login.c: what an SSO login writes (R15-R18), in one transaction: the user
 * found by (connection, subject) or created, the membership found or created
 * at the first login (R18), the roles resolved by core against the
 * organization's table (R15-R17) and written when they changed, and the
 * events user.created, organization_membership.created|updated and
 * authentication.succeeded (R26). R27: a first login of an email that a
 * directory of the organization provisioned links to that user; R30: a
 * membership made inactive by the directory refuses the login (403
 * user_deprovisioned). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/util.h"
#include "store_impl.h"

#define LOGIN_RECORD_GROUPS 100   /* groups kept in a login record */

/* What the login's first statement reads: the user its (connection,
 * subject) identity names, that user's membership of the organization, and
 * the organization's table version. */
typedef struct login_state {
    char user_id[ST_ID];
    char om[ST_ID], source[16];   /* om "": no membership */
    int inactive;
    int have_version;             /* 0: the organization is gone */
    uint64_t version;
    rg_slugs roles;               /* the membership's roles, R11 order ... */
    int roles_read;               /* ... when read with the identity */
} login_state;

/* 1 when the connection row at column 7 on is the one digest (its
 * caller's; NULL: any) names, else negative: 409 connection_changed. */
static int conn_current(st_stmt *st, const unsigned char *digest, rg_error *err)
{
    unsigned char dg[32];
    if (!digest)
        return 1;
    if (rg_st_connection_digest_row(st, 7, dg, err))
        return rg_st_rc(err);
    if (memcmp(dg, digest, sizeof dg) != 0)
        return rg_error_set(err, RG_ECONFLICT, "connection_changed", "connection_id",
                            "the connection changed while this sign-in was verified");
    return 1;
}

/* The connection checked in its organization (404 connection_id when it
 * is not there), the user its (connection, subject) identity names with
 * that user's membership and its roles (R11 order: one row per role), and
 * the table version, in one statement (issue 15: one round trip for what
 * took four), with the connection's row for the caller's digest
 * (connection_digest: the gateway's check of the connection it verified
 * with): 1 with user_id set, 0 no identity yet, negative error. */
static int identity_of(st_db *db, const char *org_id, const char *conn_id,
                       const rg_store_login_user *u, login_state *ls, rg_error *err)
{
    st_stmt *st = rg_st_prep(db, err,
                             "SELECT c.id, i.user_id, m.id, m.role_source, m.status,"
                             " (SELECT e.version + o.version FROM environment e, organizations o"
                             " WHERE e.id = 1 AND o.id = c.organization_id), r.slug, "
                             ST_CONN_DIGEST_SELECT("c") " FROM connections c"
                             " LEFT JOIN identities i ON i.connection_id = c.id AND i.subject = ?"
                             " LEFT JOIN memberships m ON m.user_id = i.user_id"
                             "  AND m.organization_id = c.organization_id"
                             " LEFT JOIN membership_roles mr ON mr.membership_id = m.id"
                             " LEFT JOIN roles r ON r.id = mr.role_id" ST_ROLE_ORDER_JOIN
                             " WHERE c.id = ? AND c.organization_id = ?" ST_ROLE_ORDER_BY,
                             "sss", u->subject, conn_id, org_id);
    if (!st)
        return rg_st_rc(err);
    int rc = rg_st_step(db, st, err), found = 0;
    if (rc == 1) {
        ls->have_version = rg_st_col(st, 5) != NULL;
        ls->version = (uint64_t)st_col_int64(st, 5);
        rc = conn_current(st, u->connection_digest, err);
    }
    if (rc == 1 && rg_st_col(st, 1)) {
        snprintf(ls->user_id, ST_ID, "%s", rg_st_col(st, 1));
        found = 1;
    }
    if (found && rg_st_col(st, 2)) {
        snprintf(ls->om, sizeof ls->om, "%s", rg_st_col(st, 2));
        snprintf(ls->source, sizeof ls->source, "%s", rg_st_col(st, 3));
        ls->inactive = !strcmp(rg_st_col(st, 4), "inactive");
        ls->roles_read = 1;
        size_t cap = 0;
        for (; rc == 1; rc = rg_st_step(db, st, err))
            if (rg_st_col(st, 6) &&
                (rc = rg_st_slug_push(&ls->roles, &cap, rg_st_col(st, 6), err)))
                break;
        if (rc == 0)
            rc = 1;   /* the rows were read to their end */
    }
    st_finalize(st);
    if (rc < 0) {
        rg_slugs_clear(&ls->roles);
        return rc;
    }
    return rc == 0 ? rg_st_not_found(err, "connection_id", "connection", conn_id) : found;
}

/* The membership of a user found another way (R27) than its identity. */
static int membership_of(st_db *db, const char *org_id, login_state *ls, rg_error *err)
{
    st_stmt *st = rg_st_prep(db, err,
                             "SELECT id, role_source, status FROM memberships"
                             " WHERE user_id = ? AND organization_id = ?", "ss", ls->user_id,
                             org_id);
    if (!st)
        return rg_st_rc(err);
    int rc = rg_st_step(db, st, err);
    if (rc == 1) {
        snprintf(ls->om, sizeof ls->om, "%s", rg_st_col(st, 0));
        snprintf(ls->source, sizeof ls->source, "%s", rg_st_col(st, 1));
        ls->inactive = !strcmp(rg_st_col(st, 2), "inactive");
    }
    st_finalize(st);
    return rc < 0 ? rc : 0;
}

static int user_for_login(st_db *db, const char *org_id, const char *conn_id,
                          const rg_store_login_user *u, login_state *ls, rg_error *err)
{
    char *user_id = ls->user_id;
    int rc = identity_of(db, org_id, conn_id, u, ls, err);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    /* R27: a user a directory of this organization provisioned with this
     * email is the same user (its membership is the one SSO uses) */
    const char *key = u->email && *u->email           ? u->email
                      : strchr(u->subject, '@') != NULL ? u->subject   /* NameID = email */
                                                        : NULL;
    if (key) {
        rc = rg_st_text(db, err, user_id, ST_ID,
                        "SELECT du.user_id FROM directory_users du"
                        " JOIN directories d ON d.id = du.directory_id"
                        " JOIN connections c ON c.organization_id = d.organization_id"
                        " WHERE c.id = ? AND (lower(du.email) = lower(?)"
                        "  OR du.user_name_key = lower(?))"
                        " AND du.user_id IS NOT NULL ORDER BY du.created_at LIMIT 1",
                        "sss", conn_id, key, key);
        if (rc < 0)
            return rc;
        if (rc == 1)
            return rg_st_exec_later(db, err,
                                    "INSERT INTO identities(connection_id, subject, user_id)"
                                    " VALUES (?, ?, ?)", "sss", conn_id, u->subject, user_id) ||
                           membership_of(db, org_id, ls, err)
                       ? rg_st_rc(err)
                       : 0;
    }
    /* first login through this connection: a new user (its profile comes
     * from the IdP; later logins do not change it), no membership yet */
    if (rg_st_user_insert(db, u->email ? u->email : "", u->first_name, u->last_name, user_id,
                          err) ||
        rg_st_exec_later(db, err,
                   "INSERT INTO identities(connection_id, subject, user_id) VALUES (?, ?, ?)",
                   "sss", conn_id, u->subject, user_id))
        return rg_st_rc(err);
    return 0;
}

/* R15-R17 resolve against the organization's table as this transaction
 * sees it: the caller's copy (user->table, e.g. the cache layer's) when
 * its version is the one read here (ls->version, read with the identity;
 * part of the snapshot on PostgreSQL), else the table loaded here into
 * *loaded (a role change committed since the caller's read). *t is
 * borrowed from one of them. 404 organization_id if the organization is
 * gone. */
static int login_table(st_db *db, const char *org_id, const rg_role_table *given,
                       const login_state *ls, const rg_role_table **t,
                       rg_role_table **loaded, rg_error *err)
{
    *t = NULL;
    *loaded = NULL;
    if (given) {
        const char *given_org = rg_role_table_organization(given);
        if (!ls->have_version)
            return rg_st_not_found(err, "organization_id", "organization", org_id);
        if (rg_role_table_version(given) == ls->version && given_org &&
            strcmp(given_org, org_id) == 0) {
            *t = given;
            return 0;
        }
    }
    int rc = rg_st_table_load(db, org_id, loaded, err);
    *t = *loaded;
    return rc;
}

static int login_tx(st_tx *tx, const char *org_id, const char *conn_id,
                    const rg_store_login_user *u, const char *const *groups, size_t n_groups,
                    rg_resolution *res, json_t **out, rg_error *err)
{
    st_db *db = tx->db;
    login_state ls;
    memset(&ls, 0, sizeof ls);
    int rc = user_for_login(db, org_id, conn_id, u, &ls, err);
    rg_slugs cur = ls.roles;   /* read with the identity, or below */
    if (rc || ls.inactive) {
        rg_slugs_clear(&cur);
        return rc ? rc
                  /* R30: deprovisioned by the organization's directory */
                  : rg_error_set(err, RG_EFORBIDDEN, "user_deprovisioned", NULL,
                                 "this user was deprovisioned from the organization");
    }
    const char *user_id = ls.user_id, *source = ls.source;
    char *om = ls.om;
    if (*om && !ls.roles_read && (rc = rg_st_membership_roles(db, om, &cur, err)))
        return rc;
    int64_t r0 = u->resolve_cpu_us ? rg_thread_cpu_us() : 0;
    const rg_role_table *t = NULL;
    rg_role_table *loaded = NULL;
    if ((rc = login_table(db, org_id, u->table, &ls, &t, &loaded, err))) {
        rg_slugs_clear(&cur);
        return rc;
    }
    rg_login_input in = {
        .connection_id = conn_id,
        .groups = groups,
        .n_groups = n_groups,
        .current_roles = (const char *const *)cur.v,
        .n_current = cur.n,
        .current_source = *om ? rg_core_source_parse(source) : RG_SOURCE_NONE,
    };
    rc = rg_core_resolve_login(t, &in, res, err);   /* R15-R17 */
    if (u->resolve_cpu_us)
        *u->resolve_cpu_us = rg_thread_cpu_us() - r0;
    rg_role_table_free(loaded);   /* res owns copies of what it holds */
    rg_slugs_clear(&cur);
    if (rc)
        return rc;
    const char *new_source = rg_core_source_name(res->source);
    char ts[ST_TS];
    rg_st_now(ts);
    const char *event = NULL;
    if (!*om) {
        /* R18: the membership is created at the first login */
        rg_id_new("om", om, sizeof ls.om);
        if (rg_st_exec_later(db, err,
                       "INSERT INTO memberships(id, user_id, organization_id, role_source,"
                       " status, created_at, updated_at) VALUES (?, ?, ?, ?, 'active', ?, ?)",
                       "ssssss", om, user_id, org_id, new_source, ts, ts))
            return rg_st_rc(err);
        event = "organization_membership.created";
    } else if (res->changed) {
        event = "organization_membership.updated";
    }
    if (event) {
        json_t *m = NULL;
        if (rg_st_membership_write(db, om, org_id, (const char *const *)res->roles.v,
                                   res->roles.n, new_source, err) ||
            !(m = rg_st_membership_json(db, om, err)) || rg_st_event(db, event, m, err))
            return rg_st_rc(err);
    }
    /* the session, inside the transaction: a refused one (R24 size)
     * leaves no membership change behind */
    size_t token_size = 0;
    if (u->issue && (rc = u->issue(u->issue_ctx, user_id, res, &token_size, err)))
        return rc;
    if (u->issue && u->session && u->session->id[0]) {
        rg_store_session_rec r = *u->session;
        r.connection_id = conn_id;
        r.idp_subject = u->subject;
        if ((rc = rg_st_session_insert(db, &r, om, err)))
            return rc;
    }
    /* the login record: why this user got these roles */
    json_t *roles = json_array(), *gv = json_array(), *maps = json_array();
    for (size_t i = 0; roles && i < res->roles.n; i++)
        json_array_append_new(roles, json_string(res->roles.v[i]));
    for (size_t i = 0; gv && i < n_groups && i < LOGIN_RECORD_GROUPS; i++)
        json_array_append_new(gv, json_string(groups[i]));
    for (size_t i = 0; maps && i < res->matched_groups.n && i < res->matched_roles.n; i++)
        json_array_append_new(maps, json_pack("{s:s,s:s}", "idp_group", res->matched_groups.v[i],
                                              "role_slug", res->matched_roles.v[i]));
    json_t *ev = roles && gv && maps
                     ? json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:O,s:O,s:O,s:s}", "type", "sso",
                                 "subject", u->subject, "user_id", user_id, "organization_id",
                                 org_id, "connection_id", conn_id, "organization_membership_id",
                                 om, "groups_received", (json_int_t)n_groups, "groups", gv,
                                 "mappings", maps, "roles", roles, "role_source", new_source)
                     : NULL;
    json_decref(roles);
    json_decref(gv);
    json_decref(maps);
    if (ev && u->issue)
        json_object_set_new(ev, "token_size", json_integer((json_int_t)token_size));
    if (!ev)
        return rg_st_oom(err);
    if (rg_st_event(db, "authentication.succeeded", ev, err))
        return rg_st_rc(err);
    if (out && !(*out = rg_st_membership_json(db, om, err)))
        return rg_st_rc(err);
    return 0;
}

typedef struct login_arg {
    const char *org_id, *conn_id;
    const rg_store_login_user *user;
    const char *const *groups;
    size_t n_groups;
    rg_resolution *res;
    int want_membership;
} login_arg;

static int login_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const login_arg *a = arg;
    rg_resolution_clear(a->res);   /* a second run starts over */
    memset(a->res, 0, sizeof *a->res);
    return login_tx(tx, a->org_id, a->conn_id, a->user, a->groups, a->n_groups, a->res,
                    a->want_membership ? out : NULL, err);
}

int rg_store_login_apply(rg_store *s, const char *org_id, const char *connection_id,
                         const rg_store_login_user *user, const char *const *groups,
                         size_t n_groups, rg_resolution *res, json_t **membership,
                         rg_error *err)
{
    if (membership)
        *membership = NULL;
    if (res)
        memset(res, 0, sizeof *res);
    if (!user || !user->subject || !*user->subject)
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", "subject",
                            "a login needs the IdP's subject");
    if (n_groups && !groups)
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", "groups", "groups missing");
    rg_resolution local;
    memset(&local, 0, sizeof local);
    login_arg a = { org_id ? org_id : "", connection_id ? connection_id : "", user, groups,
                    n_groups, &local, membership != NULL };
    json_t *m = NULL;
    int rc = rg_st_write(s, login_fn, &a, &m, err);
    if (rc) {
        rg_resolution_clear(&local);
        return rc;
    }
    if (res)
        *res = local;
    else
        rg_resolution_clear(&local);
    if (membership)
        *membership = m;
    return 0;
}
