/* sessions.c: the server-side record of issued sessions (issue 13): one row
 * per sid with its membership, user, organization, connection, the IdP's
 * subject and session (SAML SessionIndex / OIDC sid, for single logout),
 * created_at, expires_at (the session's absolute end) and revoked_at.
 * Written in the login's own transaction (login.c) or with the admin
 * session's event, each insert pruning a few records past their absolute
 * end; listed per membership; revoked with an event (R26); the revoked ones
 * still within their end, and the memberships a directory deprovisioned
 * lately (R30), read back for the change channel's listener (issue 15). */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "store_impl.h"
#include "rolegate/util.h"

#define SESS_PRUNE "32"   /* ended records deleted per new one */
#define SESS_PROBE_QUIET_MS 2000   /* no probe after one that found none */
#define SESS_COLS "id, membership_id, user_id, organization_id, connection_id, idp_subject," \
                  " actor, created_at, expires_at, revoked_at, idp_session, idp_subject_format"

static json_t *opt_str(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *session_row_json(st_stmt *st)
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

static json_t *session_json(st_db *db, const char *id, rg_error *err)
{
    return rg_st_object(db, "SELECT " SESS_COLS " FROM sessions WHERE id = ?", id,
                        session_row_json, -1, "session", err);
}

/* The session's row (its membership's user and organization copied). */
static int session_row(st_db *db, const rg_store_session_rec *r, const char *membership_id,
                       const char *created, const char *expires, rg_error *err)
{
    return rg_st_exec_later(db, err,
                      "INSERT INTO sessions(id, membership_id, user_id, organization_id,"
                      " connection_id, idp_subject, idp_subject_format, idp_session, actor,"
                      " created_at, expires_at)"
                      " SELECT ?, id, user_id, organization_id, ?, ?, ?, ?, ?, ?, ?"
                      " FROM memberships WHERE id = ?", "sssssssss", r->id,
                      r->connection_id, r->idp_subject, r->idp_subject_format, r->idp_session,
                      r->actor, created, expires, membership_id) ? rg_st_rc(err) : 0;
}

int rg_st_session_insert(st_db *db, const rg_store_session_rec *r, const char *membership_id,
                         rg_error *err)
{
    char created[ST_TS], expires[ST_TS];
    rg_st_now(created);
    rg_iso8601_ms(r->expires_at * 1000, expires, sizeof expires);
    if (!r->id[0])
        return rg_error_set(err, RG_EINTERNAL, "store_error", NULL, "a session without id");
    /* pruning (issue 13): each new record deletes up to SESS_PRUNE of those
     * past their absolute end (no token of theirs is accepted any more), so
     * the table stays bounded by the live sessions; the index on expires_at
     * keeps it a short range read. Probed first: the DELETE (whose plan may
     * scan the whole table, on PostgreSQL a read that every concurrent
     * SERIALIZABLE insert of a session conflicts with) runs only when an
     * ended record is there. A probe that found none is not repeated on this
     * connection for SESS_PROBE_QUIET_MS (issue 15: one round trip less per
     * login); one that found some is, until they are gone */
    int64_t now_ms = rg_now_ms();
    if (now_ms < db->probe_after_ms)
        return session_row(db, r, membership_id, created, expires, err);
    int64_t ended = 0;
    int rc = rg_st_int(db, err, &ended,
                       "SELECT 1 FROM sessions WHERE expires_at < ? ORDER BY expires_at LIMIT 1",
                       "s", created);
    if (rc < 0)
        return rg_st_rc(err);
    if (rc == 1 && rg_st_exec(db, err,
                              "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions"
                              " WHERE expires_at < ? ORDER BY expires_at LIMIT " SESS_PRUNE ")",
                              "s", created))
        return rg_st_rc(err);
    db->probe_after_ms = rc == 1 ? 0 : now_ms + SESS_PROBE_QUIET_MS;
    return session_row(db, r, membership_id, created, expires, err);
}

typedef struct sess_arg {
    const rg_store_session_rec *r;
    const char *id, *membership_id, *reason;
    const char *conn_id, *subject, *idp_session;
    const rg_store_list_opts *opts;
    json_t *event;
} sess_arg;

/* 0 if the membership exists, else 404 on field (or the error). */
static int membership_check(st_db *db, const char *id, const char *field, rg_error *err)
{
    int64_t n = 0;
    if (rg_st_int(db, err, &n, "SELECT count(*) FROM memberships WHERE id = ?", "s", id) < 0)
        return rg_st_rc(err);
    return n ? 0 : rg_st_not_found(err, field, "organization_membership", id);
}

static int create_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const sess_arg *a = arg;
    int rc = membership_check(tx->db, a->membership_id, "organization_membership_id", err);
    if (!rc)
        rc = rg_st_session_insert(tx->db, a->r, a->membership_id, err);
    if (!rc && a->event)
        rc = rg_st_event(tx->db, "session.created", json_incref(a->event), err) ? rg_st_rc(err) : 0;
    return rc;
}

int rg_store_session_create(rg_store *s, const rg_store_session_rec *r,
                            const char *membership_id, json_t *event, rg_error *err)
{
    sess_arg a = { .r = r, .membership_id = membership_id, .event = event };
    int rc = rg_st_write(s, create_tx, &a, NULL, err);
    json_decref(event);   /* stolen */
    return rc;
}

static int list_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const sess_arg *a = arg;
    int rc = membership_check(tx->db, a->membership_id, "id", err);
    if (rc)
        return rc;
    st_list_q q = { "sessions", "id", "membership_id = ?", a->membership_id, NULL, a->opts, 1,
                    session_json, NULL };
    return rg_st_list(tx->db, &q, out, err);
}

int rg_store_session_list(rg_store *s, const char *membership_id, const rg_store_list_opts *o,
                          json_t **out, rg_error *err)
{
    sess_arg a = { .membership_id = membership_id, .opts = o };
    return rg_st_read(s, list_tx, &a, out, err);
}

int rg_store_session_get(rg_store *s, const char *id, json_t **out, rg_error *err)
{
    return rg_st_get(s, session_json, id, out, err);
}

/* Marks session id revoked (at ts) and emits session.revoked with the
 * reason; *o: the session after. */
static int revoke_one(st_db *db, const char *id, const char *ts, const char *reason,
                      json_t **o, rg_error *err)
{
    if (rg_st_exec(db, err, "UPDATE sessions SET revoked_at = ? WHERE id = ?", "ss", ts, id) ||
        !(*o = session_json(db, id, err)))
        return rg_st_rc(err);
    json_t *ev = json_deep_copy(*o);
    if (ev && reason)
        json_object_set_new(ev, "reason", json_string(reason));
    if (!ev)
        return rg_st_oom(err);
    return rg_st_event(db, "session.revoked", ev, err) ? rg_st_rc(err) : 0;
}

static int revoke_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const sess_arg *a = arg;
    json_t *o = session_json(tx->db, a->id, err);
    if (!o)
        return rg_st_rc(err);
    if (!json_is_null(json_object_get(o, "revoked_at"))) {
        *out = o;   /* already revoked: nothing changes, no second event */
        return 0;
    }
    json_decref(o);
    char ts[ST_TS];
    rg_st_now(ts);
    return revoke_one(tx->db, a->id, ts, a->reason, out, err);
}

int rg_store_session_revoke(rg_store *s, const char *id, const char *reason, json_t **out,
                            rg_error *err)
{
    sess_arg a = { .id = id, .reason = reason };
    return rg_st_write(s, revoke_tx, &a, out, err);
}

static int revoke_idp_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const sess_arg *a = arg;
    st_db *db = tx->db;
    st_stmt *st = rg_st_prep(db, err,
                                  "SELECT id FROM sessions WHERE connection_id = ? AND"
                                  " (? IS NULL OR idp_subject = ?) AND revoked_at IS NULL AND"
                                  " (? IS NULL OR idp_session = ?)", "sssss", a->conn_id,
                                  a->subject, a->subject, a->idp_session, a->idp_session);
    if (!st)
        return rg_st_rc(err);
    rg_slugs ids = {0};
    int rc = rg_st_slugs_collect(db, st, &ids, err);
    json_t *done = rc ? NULL : json_array();
    if (!rc && !done)
        rc = rg_st_oom(err);
    char ts[ST_TS];
    rg_st_now(ts);
    for (size_t i = 0; !rc && i < ids.n; i++) {
        json_t *o = NULL;
        rc = revoke_one(db, ids.v[i], ts, a->reason, &o, err);
        if (o)
            json_array_append_new(done, o);
    }
    rg_slugs_clear(&ids);
    *out = done;
    return rc;
}

int rg_store_session_revoke_idp(rg_store *s, const char *connection_id, const char *subject,
                                const char *idp_session, const char *reason, json_t **out,
                                rg_error *err)
{
    if (out)
        *out = NULL;
    if (!subject && !idp_session)   /* would match every session of the connection */
        return rg_error_set(err, RG_EINVAL, "invalid_request", "subject",
                            "a subject or an IdP session is required");
    sess_arg a = { .conn_id = connection_id, .subject = subject, .idp_session = idp_session,
                   .reason = reason };
    return rg_st_write(s, revoke_idp_tx, &a, out, err);
}

/* ---- revoked records (issue 15) ------------------------------------------------ */

/* Seconds since the epoch of an ISO 8601 UTC time as rg_iso8601_ms writes
 * it ("YYYY-MM-DDTHH:MM:SS[.mmm]Z"); 0 if it is not one. */
static int64_t iso_seconds(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!end || (*end != '.' && *end != 'Z'))
        return 0;
    return (int64_t)timegm(&tm);
}

/* One reload: the revoked session records (sid_fn) or the memberships
 * deprovisioned lately (user_fn), changed after since_ms. */
typedef struct reload_arg {
    int64_t since_ms;
    rg_store_revoked_fn sid_fn;
    rg_store_inactive_fn user_fn;
    void *ctx;
} reload_arg;

static int reload_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const reload_arg *a = arg;
    char ts[ST_TS];
    rg_iso8601_ms(a->since_ms, ts, sizeof ts);
    st_stmt *st = a->sid_fn
        ? rg_st_prep(tx->db, err, "SELECT id, id, expires_at FROM sessions"
                     " WHERE revoked_at IS NOT NULL AND expires_at > ?", "s", ts)
        : rg_st_prep(tx->db, err, "SELECT user_id, organization_id, updated_at FROM memberships"
                     " WHERE status <> 'active' AND updated_at > ?", "s", ts);
    if (!st)
        return rg_st_rc(err);
    int rc;
    while ((rc = rg_st_step(tx->db, st, err)) == 1) {
        const char *c0 = rg_st_col(st, 0), *c1 = rg_st_col(st, 1);
        int64_t at = iso_seconds(rg_st_col(st, 2));
        if (c0 && c1 && at && a->sid_fn)
            a->sid_fn(a->ctx, c0, at);
        else if (c0 && c1 && at)
            a->user_fn(a->ctx, c0, c1, at);
    }
    st_finalize(st);
    return rc < 0 ? rg_st_rc(err) : 0;
}

int rg_store_session_revoked_each(rg_store *s, rg_store_revoked_fn fn, void *ctx,
                                  rg_error *err)
{
    reload_arg a = {rg_now_ms(), fn, NULL, ctx};
    return rg_st_read(s, reload_tx, &a, NULL, err);
}

int rg_store_membership_inactive_each(rg_store *s, int64_t since, rg_store_inactive_fn fn,
                                      void *ctx, rg_error *err)
{
    reload_arg a = {since * 1000, NULL, fn, ctx};
    return rg_st_read(s, reload_tx, &a, NULL, err);
}
