/* db.c: the SQLite side of the store: opening (WAL, busy timeout, foreign
 * keys; migrate.c brings the schema up to date) and closing, and the
 * statement helpers every file of the store uses (bind formats, step, one
 * value, errors). Transactions are tx.c's, lists list.c's. */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/core.h"
#include "rolegate/util.h"
#include "store_impl.h"

/* ---- errors and small helpers -------------------------------------------- */

int rg_st_dberr(sqlite3 *db, rg_error *err)
{
    return rg_error_set(err, RG_EIO, 500, "store_error", NULL, "sqlite: %s",
                        db ? sqlite3_errmsg(db) : "no connection");
}

int rg_st_oom(rg_error *err)
{
    return rg_error_set(err, RG_ENOMEM, 500, "internal", NULL, "out of memory");
}

int rg_st_not_found(rg_error *err, const char *field, const char *what, const char *id)
{
    return rg_error_set(err, RG_ENOTFOUND, 404, "not_found", field, "%s '%.80s' not found",
                        what, id ? id : "");
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

const char *rg_st_col(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

int rg_st_label_check(const char *s, const char *field, rg_error *err)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 255)
        return rg_error_set(err, RG_EINVAL, 422, "invalid_request", field,
                            "%s must be 1 to 255 bytes", field);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return rg_error_set(err, RG_EINVAL, 422, "invalid_request", field,
                                "%s has a control character", field);
    return 0;
}

/* ---- statements ------------------------------------------------------------ */

static sqlite3_stmt *prepv(sqlite3 *db, rg_error *err, const char *sql, const char *fmt,
                           va_list ap)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        rg_st_dberr(db, err);
        return NULL;
    }
    int idx = 1;
    for (const char *f = fmt ? fmt : ""; *f; f++, idx++) {
        int rc;
        switch (*f) {
        case 's': {
            const char *v = va_arg(ap, const char *);
            rc = v ? sqlite3_bind_text(st, idx, v, -1, SQLITE_TRANSIENT)
                   : sqlite3_bind_null(st, idx);
            break;
        }
        case 'i':
            rc = sqlite3_bind_int(st, idx, va_arg(ap, int));
            break;
        case 'I':
            rc = sqlite3_bind_int64(st, idx, (sqlite3_int64)va_arg(ap, int64_t));
            break;
        case 'n':
            rc = sqlite3_bind_null(st, idx);
            break;
        default:
            assert(!"bad bind format");
            rc = SQLITE_MISUSE;
        }
        if (rc != SQLITE_OK) {
            rg_st_dberr(db, err);
            sqlite3_finalize(st);
            return NULL;
        }
    }
    return st;
}

sqlite3_stmt *rg_st_prep(sqlite3 *db, rg_error *err, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sqlite3_stmt *st = prepv(db, err, sql, fmt, ap);
    va_end(ap);
    return st;
}

int rg_st_step(sqlite3 *db, sqlite3_stmt *st, rg_error *err)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return rg_st_dberr(db, err);
}

int rg_st_exec(sqlite3 *db, rg_error *err, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sqlite3_stmt *st = prepv(db, err, sql, fmt, ap);
    va_end(ap);
    if (!st)
        return RG_EIO;
    int rc;
    while ((rc = rg_st_step(db, st, err)) == 1)
        ;
    sqlite3_finalize(st);
    return rc;
}

int rg_st_text(sqlite3 *db, rg_error *err, char *out, size_t outsz, const char *sql,
               const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sqlite3_stmt *st = prepv(db, err, sql, fmt, ap);
    va_end(ap);
    if (!st)
        return RG_EIO;
    int rc = rg_st_step(db, st, err);
    if (rc == 1) {
        const char *v = rg_st_col(st, 0);
        snprintf(out, outsz, "%s", v ? v : "");
    }
    sqlite3_finalize(st);
    return rc;
}

int rg_st_int(sqlite3 *db, rg_error *err, int64_t *out, const char *sql, const char *fmt,
              ...)
{
    va_list ap;
    va_start(ap, fmt);
    sqlite3_stmt *st = prepv(db, err, sql, fmt, ap);
    va_end(ap);
    if (!st)
        return RG_EIO;
    int rc = rg_st_step(db, st, err);
    if (rc == 1)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc;
}


/* ---- open / close ------------------------------------------------------------ */

static sqlite3 *conn_open(const char *path, rg_error *err)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                 SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rg_st_dberr(db, err);
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 10000);
    /* WAL: readers run beside the writer; NORMAL sync is durable in WAL
     * except for the last transactions at power loss, never corrupt. */
    if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                         " PRAGMA foreign_keys=ON;", NULL, NULL, NULL) != SQLITE_OK) {
        rg_st_dberr(db, err);
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

rg_store *rg_store_open(const char *path, rg_error *err)
{
    if (!path || !*path || !strcmp(path, ":memory:") || !strncmp(path, "file:", 5)) {
        rg_error_set(err, RG_EINVAL, 500, "store_error", "path",
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
        if (!(s->conns[i] = conn_open(path, err)))
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
            sqlite3_close(s->conns[i]);
    }
    pthread_mutex_destroy(&s->pool_lock);
    pthread_cond_destroy(&s->pool_cond);
    pthread_mutex_destroy(&s->write_lock);
    pthread_mutex_destroy(&s->jobs_lock);
    for (size_t i = 0; i < ST_LOGIN_TABLES; i++)
        rg_role_table_free(s->login_tables[i].t);
    free(s->path);
    free(s);
}

int rg_store_schema_version(rg_store *s)
{
    return s ? s->schema_version : 0;
}


int rg_st_emit_each(sqlite3 *db, const char *sql, const char *param, st_builder fn,
                     const char *event, rg_error *err)
{
    sqlite3_stmt *st = rg_st_prep(db, err, sql, "s", param);
    if (!st)
        return RG_EIO;
    int rc;
    while ((rc = rg_st_step(db, st, err)) == 1) {
        char id[ST_ID];
        snprintf(id, sizeof id, "%s", rg_st_col(st, 0));
        json_t *o = fn(db, id, err);
        if (!o || rg_st_event(db, event, o, err)) {
            rc = RG_EIO;
            break;
        }
    }
    sqlite3_finalize(st);
    return rc < 0 ? rc : 0;
}
