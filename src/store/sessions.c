/* sessions.c: the server-side record of issued sessions (issue 13): one row
 * per sid with its membership, user, organization, connection, the IdP's
 * subject and session (SAML SessionIndex / OIDC sid, for single logout),
 * created_at, expires_at (the session's absolute end) and revoked_at.
 * Written in the login's own transaction (login.c) or with the admin
 * session's event; listed per membership; revoked with an event (R26). */
#include <stdlib.h>
#include <string.h>
#include "store_impl.h"
#include "rolegate/util.h"

#define SESS_COLS "id, membership_id, user_id, organization_id, connection_id, idp_subject," \
                  " actor, created_at, expires_at, revoked_at, idp_session, idp_subject_format"

static json_t *opt_str(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *session_row_json(sqlite3_stmt *st)
{
    char now[ST_TS];
    rg_st_now(now);
    const char *exp = rg_st_col(st, 8), *rev = rg_st_col(st, 9);
    /* ISO 8601 UTC strings of one format compare as times */
    const char *state = rev ? "revoked" : (exp && strcmp(exp, now) <= 0) ? "expired" : "active";
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:s,s:s,s:o,s:s}", "object",
                     "session",
                     "id", rg_st_col(st, 0), "organization_membership_id", rg_st_col(st, 1),
                     "user_id", rg_st_col(st, 2), "organization_id", rg_st_col(st, 3),
                     "connection_id", opt_str(rg_st_col(st, 4)), "idp_subject",
                     opt_str(rg_st_col(st, 5)), "idp_session", opt_str(rg_st_col(st, 10)),
                     "idp_subject_format", opt_str(rg_st_col(st, 11)),
                     "actor", opt_str(rg_st_col(st, 6)),
                     "created_at", rg_st_col(st, 7), "expires_at", exp ? exp : "",
                     "revoked_at", opt_str(rev), "state", state);
}

static json_t *session_json(sqlite3 *db, const char *id, rg_error *err)
{
    sqlite3_stmt *st = rg_st_prep(db, err, "SELECT " SESS_COLS " FROM sessions WHERE id = ?",
                                  "s", id);
    if (!st)
        return NULL;
    json_t *o = NULL;
    int rc = rg_st_step(db, st, err);
    if (rc == 1 && !(o = session_row_json(st)))
        rg_st_oom(err);
    else if (rc == 0)
        rg_st_not_found(err, "id", "session", id);
    sqlite3_finalize(st);
    return o;
}

int rg_st_session_insert(sqlite3 *db, const rg_store_session_rec *r, const char *membership_id,
                         rg_error *err)
{
    char created[ST_TS], expires[ST_TS];
    rg_st_now(created);
    rg_iso8601_ms(r->expires_at * 1000, expires, sizeof expires);
    if (!r->id[0])
        return rg_error_set(err, RG_EINVAL, 500, "store_error", NULL, "a session without id");
    return rg_st_exec(db, err,
                      "INSERT INTO sessions(id, membership_id, user_id, organization_id,"
                      " connection_id, idp_subject, idp_subject_format, idp_session, actor,"
                      " created_at, expires_at)"
                      " SELECT ?, id, user_id, organization_id, ?, ?, ?, ?, ?, ?, ?"
                      " FROM memberships WHERE id = ?", "sssssssss", r->id,
                      r->connection_id, r->idp_subject, r->idp_subject_format, r->idp_session,
                      r->actor, created, expires, membership_id) ? RG_EIO : 0;
}

int rg_store_session_create(rg_store *s, const rg_store_session_rec *r,
                            const char *membership_id, json_t *event, rg_error *err)
{
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 1, err);
    if (rc) {
        json_decref(event);
        return rc;
    }
    int64_t n = 0;
    rc = rg_st_int(tx.db, err, &n, "SELECT count(*) FROM memberships WHERE id = ?", "s",
                   membership_id) < 0 ? RG_EIO : 0;
    if (!rc && n == 0)
        rc = rg_st_not_found(err, "organization_membership_id", "organization_membership",
                             membership_id);
    if (!rc)
        rc = rg_st_session_insert(tx.db, r, membership_id, err);
    if (!rc && event) {
        rc = rg_st_event(tx.db, "session.created", event, err) ? RG_EIO : 0;
        event = NULL;   /* stolen */
    }
    json_decref(event);
    return rg_st_end(&tx, rc, err);
}

int rg_store_session_list(rg_store *s, const char *membership_id, const rg_store_list_opts *o,
                          json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 0, err);
    if (rc)
        return rc;
    int64_t n = 0;
    json_t *l = NULL;
    rc = rg_st_int(tx.db, err, &n, "SELECT count(*) FROM memberships WHERE id = ?", "s",
                   membership_id) < 0 ? RG_EIO : 0;
    if (!rc && n == 0)
        rc = rg_st_not_found(err, "id", "organization_membership", membership_id);
    if (!rc)
        rc = rg_st_list(tx.db, "sessions", "id", "membership_id = ?", membership_id, NULL, o, 1,
                        session_json, &l, err);
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, l, out);
}

int rg_store_session_get(rg_store *s, const char *id, json_t **out, rg_error *err)
{
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 0, err);
    if (rc)
        return rc;
    json_t *o = session_json(tx.db, id, err);
    rc = rg_st_end(&tx, o ? 0 : rg_st_rc(err), err);
    return rg_st_finish(rc, o, out);
}

int rg_store_session_revoke(rg_store *s, const char *id, const char *reason, json_t **out,
                            rg_error *err)
{
    if (out)
        *out = NULL;
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 1, err);
    if (rc)
        return rc;
    json_t *o = session_json(tx.db, id, err);
    if (!o) {
        rc = rg_st_rc(err);
    } else if (!json_is_null(json_object_get(o, "revoked_at"))) {
        rc = 0;   /* already revoked: nothing changes, no second event */
    } else {
        char ts[ST_TS];
        rg_st_now(ts);
        json_decref(o);
        o = NULL;
        if (rg_st_exec(tx.db, err, "UPDATE sessions SET revoked_at = ? WHERE id = ?", "ss", ts,
                       id) || !(o = session_json(tx.db, id, err)))
            rc = RG_EIO;
        json_t *ev = o ? json_deep_copy(o) : NULL;
        if (!rc && ev && reason)
            json_object_set_new(ev, "reason", json_string(reason));
        if (!rc && (!ev || rg_st_event(tx.db, "session.revoked", ev, err)))
            rc = ev ? RG_EIO : rg_st_oom(err);
    }
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, o, out);
}

int rg_store_session_revoke_idp(rg_store *s, const char *connection_id, const char *subject,
                                const char *idp_session, const char *reason, json_t **out,
                                rg_error *err)
{
    if (out)
        *out = NULL;
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 1, err);
    if (rc)
        return rc;
    json_t *done = json_array();
    sqlite3_stmt *st = done ? rg_st_prep(tx.db, err,
                                         "SELECT id FROM sessions WHERE connection_id = ? AND"
                                         " idp_subject = ? AND revoked_at IS NULL AND"
                                         " (? IS NULL OR idp_session = ?)", "ssss",
                                         connection_id, subject, idp_session, idp_session)
                            : NULL;
    json_t *ids = json_array();
    while (st && ids && (rc = rg_st_step(tx.db, st, err)) == 1)
        json_array_append_new(ids, json_string(rg_st_col(st, 0)));
    if (st)
        sqlite3_finalize(st);
    rc = !st || !ids ? RG_EIO : rc < 0 ? rc : 0;
    char ts[ST_TS];
    rg_st_now(ts);
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) {
        if (rc)
            break;
        const char *id = json_string_value(v);
        json_t *o = NULL;
        if (rg_st_exec(tx.db, err, "UPDATE sessions SET revoked_at = ? WHERE id = ?", "ss", ts,
                       id) || !(o = session_json(tx.db, id, err))) {
            rc = RG_EIO;
            break;
        }
        json_t *ev = json_deep_copy(o);
        if (ev && reason)
            json_object_set_new(ev, "reason", json_string(reason));
        if (!ev || rg_st_event(tx.db, "session.revoked", ev, err))
            rc = RG_EIO;
        json_array_append_new(done, o);
    }
    json_decref(ids);
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, done, out);
}
