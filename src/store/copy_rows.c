/* copy_rows.c: the rows of the store copy (copy.c): TO's tables emptied of
 * migration 1's seed, then every table's rows read from FROM in insertion
 * order (SQLite: rowid; PostgreSQL: the table's pg_order) and written to TO
 * as text values, CP_BATCH rows per INSERT (one round trip per batch on
 * PostgreSQL), every column the database's catalog names (FROM's and TO's
 * must agree); last, TO's identity sequences (PostgreSQL: events.seq) set to
 * the highest copied value, so later inserts do not collide (SQLite's
 * AUTOINCREMENT follows explicit values by itself). All of it inside TO's one
 * write transaction, which copy.c commits or rolls back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "copy_impl.h"

#define CP_BATCH 64   /* rows per INSERT statement */

typedef struct cp_cols {
    char v[CP_MAXCOLS][CP_NAME];
    int n;
} cp_cols;

/* The columns of table in db (identity: only PostgreSQL's identity
 * columns; none on SQLite) in their order. 0 or negative. */
static int columns(st_db *db, const char *table, int identity, cp_cols *out, rg_error *err)
{
    const char *sql =
        rg_cp_is_pg(db)
            ? identity ? "SELECT column_name FROM information_schema.columns WHERE table_schema ="
                         " current_schema() AND table_name = ? AND is_identity = 'YES'"
                         " ORDER BY ordinal_position"
                       : "SELECT column_name FROM information_schema.columns WHERE table_schema ="
                         " current_schema() AND table_name = ? ORDER BY ordinal_position"
            : identity ? NULL
                       : "SELECT name FROM pragma_table_info(?) ORDER BY cid";
    out->n = 0;
    if (!sql)
        return 0;
    st_stmt *st = rg_st_prep(db, err, sql, "s", table);
    if (!st)
        return RG_EIO;
    int rc;
    while ((rc = rg_st_step(db, st, err)) == 1) {
        const char *name = rg_st_col(st, 0);
        if (out->n == CP_MAXCOLS || !rg_cp_ident_ok(name)) {
            rc = rg_error_set(err, RG_ECONFLICT, "schema_mismatch", NULL,
                              "table %s: a column the copy cannot name (%.40s)", table,
                              name ? name : "NULL");
            break;
        }
        snprintf(out->v[out->n++], CP_NAME, "%s", name);
    }
    st_finalize(st);
    if (rc == 0 && out->n == 0 && !identity)
        rc = rg_error_set(err, RG_ECONFLICT, "table_missing", NULL, "table %s has no columns",
                          table);
    return rc < 0 ? rc : 0;
}

/* 1 if a and b hold the same names (in any order). */
static int same_cols(const cp_cols *a, const cp_cols *b)
{
    if (a->n != b->n)
        return 0;
    for (int i = 0; i < a->n; i++) {
        int found = 0;
        for (int j = 0; j < b->n && !found; j++)
            found = !strcmp(a->v[i], b->v[j]);
        if (!found)
            return 0;
    }
    return 1;
}

/* INSERT of k rows of ncols values (vals, row-major; NULL is SQL NULL) into
 * table; frees and clears the values. */
static int insert(st_db *to, const char *table, const char *list, int ncols, char **vals,
                  int k, rg_error *err)
{
    size_t cap = strlen(table) + strlen(list) + 64 + (size_t)k * ((size_t)ncols * 2 + 4);
    char *sql = malloc(cap);
    int rc = sql ? 0 : rg_st_oom(err);
    if (sql) {
        size_t n = (size_t)snprintf(sql, cap, "INSERT INTO \"%s\"(%s) VALUES ", table, list);
        for (int r = 0; r < k; r++) {
            sql[n++] = r ? ',' : ' ';
            sql[n++] = '(';
            for (int j = 0; j < ncols; j++) {
                if (j)
                    sql[n++] = ',';
                sql[n++] = '?';
            }
            sql[n++] = ')';
        }
        sql[n] = 0;
    }
    st_stmt *st = sql ? to->be->prepare(to, sql, err) : NULL;
    free(sql);
    if (sql && !st)
        rc = RG_EIO;
    for (int i = 0; st && !rc && i < k * ncols; i++)
        if (to->be->bind_text(st, i + 1, vals[i]))
            rc = rg_st_dberr(to, err);
    if (st && !rc)
        rc = rg_st_step(to, st, err);
    st_finalize(st);
    for (int i = 0; i < k * ncols; i++) {
        free(vals[i]);
        vals[i] = NULL;
    }
    return rc < 0 ? rc : 0;
}

/* Copies table i of the list; its row count into c->rows[i]. */
static int copy_table(cp_ctx *c, size_t i, rg_error *err)
{
    const cp_table *t = &rg_cp_tables[i];
    cp_cols fc, tc;
    if (columns(c->from, t->name, 0, &fc, err) || columns(c->to, t->name, 0, &tc, err))
        return RG_EIO;
    if (fc.n <= 0 || !same_cols(&fc, &tc))
        return rg_error_set(err, RG_ECONFLICT, "schema_mismatch", NULL,
                            "FROM and TO have different columns");
    char list[CP_MAXCOLS * (CP_NAME + 4)], sql[sizeof list + 128];
    size_t n = 0;
    for (int j = 0; j < fc.n; j++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s\"%s\"", j ? ", " : "", fc.v[j]);
    snprintf(sql, sizeof sql, "SELECT %s FROM \"%s\" ORDER BY %s", list, t->name,
             rg_cp_is_pg(c->from) ? t->pg_order : "rowid");
    char **vals = calloc((size_t)CP_BATCH * (size_t)fc.n, sizeof *vals);
    st_stmt *st = vals ? rg_st_prep(c->from, err, sql, NULL) : NULL;
    if (!st) {
        free(vals);
        return vals ? RG_EIO : rg_st_oom(err);
    }
    int rc, k = 0;
    long rows = 0;
    while ((rc = rg_st_step(c->from, st, err)) == 1) {
        for (int j = 0; j < fc.n && rc == 1; j++) {
            const char *v = rg_st_col(st, j);
            if (v && !(vals[k * fc.n + j] = strdup(v)))
                rc = rg_st_oom(err);
        }
        if (rc != 1)
            break;
        rows++;
        if (++k == CP_BATCH) {
            k = 0;
            if ((rc = insert(c->to, t->name, list, fc.n, vals, CP_BATCH, err)) != 0)
                break;
        }
    }
    if (rc == 0 && k)
        rc = insert(c->to, t->name, list, fc.n, vals, k, err);
    for (int j = 0; j < CP_BATCH * fc.n; j++)
        free(vals[j]);
    free(vals);
    st_finalize(st);
    c->rows[i] = rows;
    return rc < 0 ? rc : 0;
}

/* PostgreSQL TO: every identity column's sequence set to the column's
 * highest copied value (a table without rows keeps its fresh sequence). */
static int sequences(cp_ctx *c, rg_error *err)
{
    if (!rg_cp_is_pg(c->to))
        return 0;
    for (size_t i = 0; i < rg_cp_ntables; i++) {
        const char *t = rg_cp_tables[i].name;
        cp_cols ic;
        if (columns(c->to, t, 1, &ic, err))
            return RG_EIO;
        for (int j = 0; j < ic.n && c->rows[i] > 0; j++) {
            char sql[256];
            snprintf(sql, sizeof sql,
                     "SELECT setval(pg_get_serial_sequence('%s', '%s'),"
                     " (SELECT max(\"%s\") FROM \"%s\"))", t, ic.v[j], ic.v[j], t);
            if (rg_st_exec(c->to, err, sql, NULL))
                return RG_EIO;
        }
    }
    return 0;
}

int rg_cp_rows(cp_ctx *c, rg_error *err)
{
    for (size_t i = rg_cp_ntables; i-- > 0;) {
        char sql[96];
        snprintf(sql, sizeof sql, "DELETE FROM \"%s\"", rg_cp_tables[i].name);
        if (rg_st_exec(c->to, err, sql, NULL))
            return rg_cp_fail(c, err, "TO: removing the seed");
    }
    for (size_t i = 0; i < rg_cp_ntables; i++)
        if (copy_table(c, i, err)) {
            char what[96];
            snprintf(what, sizeof what, "table %s", rg_cp_tables[i].name);
            return rg_cp_fail(c, err, what);
        }
    if (sequences(c, err))
        return rg_cp_fail(c, err, "TO: sequences");
    return 0;
}
