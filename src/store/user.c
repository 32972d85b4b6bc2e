/* user.c: users: create (user.created), list by email, get and delete with
 * their memberships (each with its organization_membership.deleted, R26).
 * Each public function is one transaction of the runner. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/util.h"
#include "store_impl.h"

static json_t *user_row(st_stmt *st)
{
    const char *fn = rg_st_col(st, 2), *ln = rg_st_col(st, 3);
    return json_pack("{s:s,s:s,s:s,s:o,s:o}", "object", "user", "id", rg_st_col(st, 0),
                     "email", rg_st_col(st, 1), "first_name", fn ? json_string(fn) : json_null(),
                     "last_name", ln ? json_string(ln) : json_null());
}

json_t *rg_st_user_json(st_db *db, const char *user_id, rg_error *err)
{
    return rg_st_object(db,
                        "SELECT id, email, first_name, last_name, created_at, updated_at"
                        " FROM users WHERE id = ?", user_id, user_row, 4, "user", err);
}

static int email_check(const char *email, rg_error *err)
{
    size_t n = email ? strlen(email) : 0;
    const char *at = email ? strchr(email, '@') : NULL;
    if (n == 0 || n > 254 || !at || at == email || !at[1])
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", "email",
                            "email must be an address (name@domain, at most 254 bytes)");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)email[i] <= 0x20 || email[i] == 0x7f)
            return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", "email",
                                "email has a space or control character");
    return 0;
}

static int optional_label(const char *s, const char *field, rg_error *err)
{
    return s ? rg_st_label_check(s, field, err) : 0;
}

int rg_st_user_insert(st_db *db, const char *email, const char *first, const char *last,
                      char id[ST_ID], rg_error *err)
{
    char ts[ST_TS];
    rg_id_new("user", id, ST_ID);
    rg_st_now(ts);
    if (rg_st_exec_later(db, err,
                         "INSERT INTO users(id, email, first_name, last_name, created_at,"
                         " updated_at) VALUES (?, ?, ?, ?, ?, ?)", "ssssss", id, email, first,
                         last, ts, ts))
        return rg_st_rc(err);
    json_t *o = rg_st_user_json(db, id, err);
    return o ? rg_st_event(db, "user.created", o, err) : rg_st_rc(err);
}

typedef struct user_arg { const char *email, *first, *last; } user_arg;

static int user_create_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const user_arg *a = arg;
    char id[ST_ID];
    int rc = rg_st_user_insert(tx->db, a->email, a->first, a->last, id, err);
    if (!rc && !(*out = rg_st_user_json(tx->db, id, err)))
        rc = rg_st_rc(err);
    return rc;
}

int rg_store_user_create(rg_store *s, const char *email, const char *first_name,
                         const char *last_name, json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    int rc = email_check(email, err);
    if (!rc)
        rc = optional_label(first_name, "first_name", err);
    if (!rc)
        rc = optional_label(last_name, "last_name", err);
    if (rc)
        return rc;
    user_arg a = { email, first_name, last_name };
    return rg_st_write(s, user_create_tx, &a, out, err);
}

int rg_store_user_list(rg_store *s, const char *email, const rg_store_list_opts *o,
                       json_t **out, rg_error *err)
{
    st_list_q q = { "users", "id", email ? "email = ?" : "", email, NULL, o, 1,
                    rg_st_user_json, NULL };
    return rg_st_read_list(s, &q, out, err);
}

int rg_store_user_get(rg_store *s, const char *id, json_t **out, rg_error *err)
{
    return rg_st_get(s, rg_st_user_json, id, out, err);
}

static int user_delete_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const char *id = arg;
    st_db *db = tx->db;
    json_t *before = rg_st_user_json(db, id, err);
    if (!before)
        return rg_st_rc(err);
    if (rg_st_emit_each(db, "SELECT id FROM memberships WHERE user_id = ? ORDER BY id", id,
                        rg_st_membership_json, "organization_membership.deleted", err) ||
        rg_st_exec(db, err, "DELETE FROM users WHERE id = ?", "s", id)) {
        json_decref(before);
        return rg_st_rc(err);
    }
    return rg_st_event(db, "user.deleted", before, err);
}

int rg_store_user_delete(rg_store *s, const char *id, rg_error *err)
{
    return rg_st_write(s, user_delete_tx, (void *)(id ? id : ""), NULL, err);
}
