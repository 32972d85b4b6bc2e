/* pg_sql.h: the SQLite -> PostgreSQL translation of the store's SQL
 * (pg_sql.c), for the PostgreSQL backend and its unit test. */
#ifndef ROLEGATE_STORE_PG_SQL_H
#define ROLEGATE_STORE_PG_SQL_H

/* One statement: malloc'd PostgreSQL text, *nparams the number of '?'
 * ($1..$n); NULL when out of memory. */
char *rg_st_pg_sql(const char *sql, int *nparams);
/* A migration's DDL script: malloc'd, NULL when out of memory. */
char *rg_st_pg_ddl(const char *sql);

#endif
