/* copy_impl.h: what the two files of the store copy share (copy.c: the
 * table list, FROM, TO, the checks and messages; copy_rows.c: the rows and
 * the sequences). */
#ifndef ROLEGATE_STORE_COPY_IMPL_H
#define ROLEGATE_STORE_COPY_IMPL_H

#include "store_impl.h"

#define CP_NAME 64        /* a table or column name */
#define CP_MAXTABLES 64
#define CP_MAXCOLS 32

typedef struct cp_table {
    const char *name;
    const char *pg_order;   /* ORDER BY of the rows read from PostgreSQL */
} cp_table;

/* Every table of the schema, parents before children (copy.c). */
extern const cp_table rg_cp_tables[];
extern const size_t rg_cp_ntables;

typedef struct cp_ctx {
    const char *from_t, *to_t;   /* the targets as given */
    st_db *from, *to;
    int to_tx;                   /* TO's write transaction is open */
    int to_created;              /* TO was a SQLite file the copy created */
    long rows[CP_MAXTABLES];     /* rows copied, by rg_cp_tables index */
} cp_ctx;

/* 1 if db is PostgreSQL's. */
int rg_cp_is_pg(const st_db *db);
/* 1 if s is a plain lowercase SQL name (a-z, 0-9, _), shorter than CP_NAME. */
int rg_cp_ident_ok(const char *s);
/* Prefixes err's message with what, removes both targets' passwords from
 * it; the kind of a refusal (RG_ECONFLICT 409, RG_EUNPROCESSABLE 422),
 * else RG_EIO. */
int rg_cp_fail(const cp_ctx *c, rg_error *err, const char *what);
/* copy_rows.c: empties TO's tables (the seed), copies every table's rows in
 * the list's order into c->rows, then advances TO's identity sequences. */
int rg_cp_rows(cp_ctx *c, rg_error *err);

#endif
