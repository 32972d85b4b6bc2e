/* db.c: opening the store (the backend its target names, backend.h: a pool
 * of connections; migrate.c brings the schema up to date) and closing it,
 * and the statement helpers every file of the store uses (bind formats,
 * step, one value, errors) over the backend interface. Transactions are
 * tx.c's, lists list.c's. */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/core.h"
#include "rolegate/util.h"
#include "store_impl.h"

/* ---- errors and small helpers -------------------------------------------- */

int rg_st_dberr(st_db *db, rg_error *err)
{
    if (!db)
        return rg_error_set(err, RG_EIO, "store_error", NULL, "no connection");
    return db->be->dberr(db, err);
}

int rg_st_oom(rg_error *err)
{
    return rg_error_oom(err);
}

int rg_st_not_found(rg_error *err, const char *field, const char *what, const char *id)
{
    return rg_error_set(err, RG_ENOTFOUND, "not_found", field, "%s '%.80s' not found",
                        what, id ? id : "");
}

json_t *rg_st_row_object(st_stmt *st, int rc, json_t *o, int at, const char *what,
                         const char *id, rg_error *err)
{
    if (rc == 1 && o && at >= 0) {
        json_object_set_new(o, "created_at", json_string(rg_st_col(st, at)));
        json_object_set_new(o, "updated_at", json_string(rg_st_col(st, at + 1)));
    } else if (rc == 1 && !o) {
        rg_st_oom(err);
    } else if (rc == 0) {
        rg_st_not_found(err, "id", what, id);
    }
    st_finalize(st);
    return o;
}

json_t *rg_st_object(st_db *db, const char *sql, const char *id, json_t *(*row)(st_stmt *st),
                     int at, const char *what, rg_error *err)
{
    st_stmt *st = rg_st_prep(db, err, sql, "s", id);
    if (!st)
        return NULL;
    int rc = rg_st_step(db, st, err);
    return rg_st_row_object(st, rc, rc == 1 ? row(st) : NULL, at, what, id, err);
}

int rg_st_text_changed(const json_t *before, const char *name, const char *description)
{
    const char *was_name = json_string_value(json_object_get(before, "name"));
    const char *was_desc = json_string_value(json_object_get(before, "description"));
    return (name && strcmp(name, was_name)) || (description && strcmp(description, was_desc));
}

int rg_st_text_check(const char *name, int name_required, const char *description,
                     rg_error *err)
{
    int rc = name || name_required ? rg_core_name_check(name, "name", err) : 0;
    return rc ? rc : rg_core_description_check(description, "description", err);
}

void rg_st_now(char out[ST_TS])
{
    rg_iso8601_ms(rg_now_ms(), out, ST_TS);
}

const char *rg_st_col(st_stmt *st, int i)
{
    return st->db->be->col_text(st, i);
}

int rg_st_label_check(const char *s, const char *field, rg_error *err)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 255)
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", field,
                            "%s must be 1 to 255 bytes", field);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", field,
                                "%s has a control character", field);
    return 0;
}

/* ---- statements ------------------------------------------------------------ */

static st_stmt *prepv(st_db *db, rg_error *err, const char *sql, const char *fmt,
                      va_list ap)
{
    st_stmt *st = db->be->prepare(db, sql, err);
    if (!st)
        return NULL;
    db->stmts++;
    rg_st_members_note(db, sql);   /* issue 13: the members hook */
    int idx = 1;
    for (const char *f = fmt ? fmt : ""; *f; f++, idx++) {
        int rc;
        switch (*f) {
        case 's':
            rc = db->be->bind_text(st, idx, va_arg(ap, const char *));
            break;
        case 'i':
            rc = db->be->bind_int64(st, idx, va_arg(ap, int));
            break;
        case 'I':
            rc = db->be->bind_int64(st, idx, va_arg(ap, int64_t));
            break;
        case 'n':
            rc = db->be->bind_text(st, idx, NULL);
            break;
        default:
            assert(!"bad bind format");
            rc = RG_EINVAL;
        }
        if (rc) {
            rg_st_dberr(db, err);
            st_finalize(st);
            return NULL;
        }
    }
    return st;
}

st_stmt *rg_st_prep(st_db *db, rg_error *err, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    st_stmt *st = prepv(db, err, sql, fmt, ap);
    va_end(ap);
    return st;
}

int rg_st_step(st_db *db, st_stmt *st, rg_error *err)
{
    int rc = db->be->step(st);
    return rc >= 0 ? rc : rg_st_dberr(db, err);
}

/* Runs sql: with text or num, its first row's first column goes there (1 found, 0
 * none); without, every row is stepped through (0), or with later it may be
 * sent without waiting (the backend's exec_later). Negative on an error. */
static int run_v(st_db *db, rg_error *err, int later, char *text, size_t textsz,
                 int64_t *num, const char *sql, const char *fmt, va_list ap)
{
    st_stmt *st = prepv(db, err, sql, fmt, ap);
    if (!st)
        return rg_st_rc(err);
    if (later && db->be->exec_later) {
        int lrc = db->be->exec_later(st) ? rg_st_dberr(db, err) : 0;
        st_finalize(st);
        return lrc;
    }
    int rc = rg_st_step(db, st, err);
    if (rc == 1 && text) {
        const char *v = rg_st_col(st, 0);
        snprintf(text, textsz, "%s", v ? v : "");
    } else if (rc == 1 && num) {
        *num = st_col_int64(st, 0);
    } else {
        while (rc == 1)
            rc = rg_st_step(db, st, err);
    }
    st_finalize(st);
    return rc;
}

int rg_st_exec(st_db *db, rg_error *err, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = run_v(db, err, 0, NULL, 0, NULL, sql, fmt, ap);
    va_end(ap);
    return rc;
}

int rg_st_exec_later(st_db *db, rg_error *err, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = run_v(db, err, 1, NULL, 0, NULL, sql, fmt, ap);
    va_end(ap);
    return rc;
}

int rg_st_text(st_db *db, rg_error *err, char *out, size_t outsz, const char *sql,
               const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = run_v(db, err, 0, out, outsz, NULL, sql, fmt, ap);
    va_end(ap);
    return rc;
}

int rg_st_int(st_db *db, rg_error *err, int64_t *out, const char *sql, const char *fmt,
              ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = run_v(db, err, 0, NULL, 0, out, sql, fmt, ap);
    va_end(ap);
    return rc;
}


/* ---- open / close ------------------------------------------------------------ */

int rg_st_target_is_pg(const char *target)
{
    return target && (!strncmp(target, "postgresql://", 13) ||
                      !strncmp(target, "postgres://", 11));
}

int rg_st_db_is_pg(const st_db *db)
{
    return db && strcmp(db->be->name, "postgresql") == 0;
}

st_db *rg_st_db_open(const char *target, rg_error *err)
{
    return rg_st_target_is_pg(target) ? rg_st_pg_open(target, err)
                                      : rg_st_sqlite_open(target, err);
}

const char *rg_store_target_file(const char *target)
{
    if (!target || rg_st_target_is_pg(target))
        return NULL;
    return strncmp(target, "sqlite:", 7) ? target : target + 7;
}

/* Copies t[0..len) to out at *o (bounded by n), advancing *o. */
static void put(char *out, size_t n, size_t *o, const char *t, size_t len)
{
    for (size_t i = 0; i < len && *o + 1 < n; i++)
        out[(*o)++] = t[i];
    out[*o < n ? *o : n - 1] = 0;
}

void rg_store_target_redact(const char *target, char *out, size_t n)
{
    const char *t = target ? target : "";
    if (!n)
        return;
    out[0] = 0;
    if (!rg_st_target_is_pg(t)) {
        snprintf(out, n, "%s", t);
        return;
    }
    /* the userinfo's password: scheme://user:***@host */
    const char *scheme = strstr(t, "://");
    const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    const char *q = strchr(t, '?');
    if (at && q && q < at)
        at = NULL;   /* an '@' in the query is not userinfo */
    const char *colon = at ? memchr(scheme + 3, ':', (size_t)(at - (scheme + 3))) : NULL;
    size_t o = 0;
    const char *p = t;
    if (colon) {
        put(out, n, &o, t, (size_t)(colon - t));
        put(out, n, &o, ":***", 4);
        p = at;
    }
    /* and a password=... query parameter (libpq reads one there too) */
    for (;;) {
        const char *k = q ? strstr(p, "password=") : NULL;
        if (!k) {
            put(out, n, &o, p, strlen(p));
            break;
        }
        put(out, n, &o, p, (size_t)(k - p) + 9);
        p = k + 9;
        if (k > q && (k[-1] == '?' || k[-1] == '&')) {   /* a key, not "xpassword=" */
            put(out, n, &o, "***", 3);
            p += strcspn(p, "&");
        }
    }
}

rg_store *rg_store_open(const char *path, rg_error *err)
{
    if (path && !rg_st_target_is_pg(path))
        path = rg_store_target_file(path);
    if (!path || !*path || !strcmp(path, ":memory:") || !strncmp(path, "file:", 5)) {
        rg_error_set(err, RG_EINTERNAL, "store_error", "path",
                     "the store needs a database file path");
        return NULL;
    }
    rg_store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        rg_st_oom(err);
        return NULL;
    }
    pthread_mutex_init(&s->pool_lock, NULL);
    pthread_cond_init(&s->pool_cond, NULL);
    pthread_mutex_init(&s->write_lock, NULL);
    pthread_mutex_init(&s->jobs_lock, NULL);
    for (int i = 0; i < ST_POOL; i++) {
        if (!(s->conns[i] = rg_st_db_open(path, err)))
            goto fail;
        if (i == 0 && rg_st_migrate(s->conns[0], &s->schema_version, err))
            goto fail;
    }
    return s;
fail:
    rg_store_close(s);
    return NULL;
}

void rg_store_close(rg_store *s)
{
    if (!s)
        return;
    for (int i = 0; i < ST_POOL; i++) {
        assert(!s->busy[i]);
        if (s->conns[i])
            s->conns[i]->be->close(s->conns[i]);
    }
    pthread_mutex_destroy(&s->pool_lock);
    pthread_cond_destroy(&s->pool_cond);
    pthread_mutex_destroy(&s->write_lock);
    pthread_mutex_destroy(&s->jobs_lock);
    free(s->path);
    free(s);
}

int rg_store_schema_version(rg_store *s)
{
    return s ? s->schema_version : 0;
}


int rg_st_emit_each(st_db *db, const char *sql, const char *param, st_builder fn,
                     const char *event, rg_error *err)
{
    st_stmt *st = rg_st_prep(db, err, sql, "s", param);
    if (!st)
        return rg_st_rc(err);
    int rc;
    while ((rc = rg_st_step(db, st, err)) == 1) {
        char id[ST_ID];
        snprintf(id, sizeof id, "%s", rg_st_col(st, 0));
        json_t *o = fn(db, id, err);
        if (!o || rg_st_event(db, event, o, err)) {
            rc = rg_st_rc(err);
            break;
        }
    }
    st_finalize(st);
    return rc < 0 ? rc : 0;
}
