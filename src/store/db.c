/* db.c: the SQLite side of the store: opening (WAL, busy timeout, foreign
 * keys), the numbered forward-only migrations (the first seeds the "member"
 * default role, R7), the connection pool and write lock, transactions (R23:
 * every change is one transaction), statement helpers, events (R26), table
 * versions and the generic cursor-paginated list (per-id or batch builders). */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

void rg_st_now(char out[ST_TS])
{
    rg_iso8601_ms(rg_now_ms(), out, ST_TS);
}

const char *rg_st_col(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
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

/* ---- migrations -------------------------------------------------------------
 * Forward-only: migrations[i] takes the schema from version i to i+1; each
 * runs in its own transaction with the new PRAGMA user_version. */

static const char migration_1[] =
    "CREATE TABLE environment("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  multiple_roles INTEGER NOT NULL DEFAULT 0,"
    "  default_role_id TEXT NOT NULL,"
    "  version INTEGER NOT NULL DEFAULT 1,"
    "  updated_at TEXT NOT NULL);"
    "CREATE TABLE permissions("
    "  id TEXT PRIMARY KEY, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL,"
    "  description TEXT NOT NULL DEFAULT '', system INTEGER NOT NULL DEFAULT 0,"
    "  created_at TEXT NOT NULL, updated_at TEXT NOT NULL);"
    "CREATE TABLE organizations("
    "  id TEXT PRIMARY KEY, name TEXT NOT NULL, domains TEXT NOT NULL DEFAULT '[]',"
    "  independent INTEGER NOT NULL DEFAULT 0, default_role_id TEXT,"
    "  version INTEGER NOT NULL DEFAULT 1,"
    "  created_at TEXT NOT NULL, updated_at TEXT NOT NULL);"
    "CREATE TABLE roles("
    "  id TEXT PRIMARY KEY, slug TEXT NOT NULL, name TEXT NOT NULL,"
    "  description TEXT NOT NULL DEFAULT '',"
    "  organization_id TEXT REFERENCES organizations(id) ON DELETE CASCADE,"
    "  status TEXT NOT NULL DEFAULT 'active',"
    "  created_at TEXT NOT NULL, updated_at TEXT NOT NULL);"
    "CREATE UNIQUE INDEX roles_scope_slug ON roles(coalesce(organization_id, ''), slug);"
    "CREATE INDEX roles_slug ON roles(slug);"
    "CREATE INDEX roles_org ON roles(organization_id);"
    "CREATE TABLE role_permissions("
    "  role_id TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,"
    "  permission_id TEXT NOT NULL REFERENCES permissions(id) ON DELETE CASCADE,"
    "  PRIMARY KEY (role_id, permission_id));"
    "CREATE INDEX role_permissions_perm ON role_permissions(permission_id);"
    /* scope '' is the environment's order, else an organization id */
    "CREATE TABLE priorities("
    "  scope TEXT NOT NULL,"
    "  role_id TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,"
    "  position INTEGER NOT NULL,"
    "  PRIMARY KEY (scope, role_id));"
    "CREATE INDEX priorities_role ON priorities(role_id);"
    "CREATE TABLE users("
    "  id TEXT PRIMARY KEY, email TEXT NOT NULL, first_name TEXT, last_name TEXT,"
    "  created_at TEXT NOT NULL, updated_at TEXT NOT NULL);"
    "CREATE INDEX users_email ON users(email);"
    "CREATE TABLE connections("
    "  id TEXT PRIMARY KEY,"
    "  organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,"
    "  type TEXT NOT NULL, name TEXT NOT NULL, config TEXT NOT NULL DEFAULT '{}',"
    "  created_at TEXT NOT NULL, updated_at TEXT NOT NULL);"
    "CREATE INDEX connections_org ON connections(organization_id);"
    "CREATE TABLE identities("
    "  connection_id TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,"
    "  subject TEXT NOT NULL,"
    "  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  PRIMARY KEY (connection_id, subject));"
    "CREATE INDEX identities_user ON identities(user_id);"
    "CREATE TABLE role_mappings("
    "  connection_id TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,"
    "  idp_group TEXT NOT NULL,"
    "  role_id TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,"
    "  PRIMARY KEY (connection_id, idp_group, role_id));"
    "CREATE INDEX role_mappings_role ON role_mappings(role_id);"
    "CREATE TABLE memberships("
    "  id TEXT PRIMARY KEY,"
    "  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,"
    "  role_source TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'active',"
    "  created_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
    "  UNIQUE (user_id, organization_id));"
    "CREATE INDEX memberships_org ON memberships(organization_id);"
    /* no cascade on role_id: a role row goes only once its job has moved
     * every membership off it (R20) */
    "CREATE TABLE membership_roles("
    "  membership_id TEXT NOT NULL REFERENCES memberships(id) ON DELETE CASCADE,"
    "  role_id TEXT NOT NULL REFERENCES roles(id),"
    "  PRIMARY KEY (membership_id, role_id));"
    "CREATE INDEX membership_roles_role ON membership_roles(role_id, membership_id);"
    "CREATE TABLE events("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
    "  event TEXT NOT NULL, data TEXT NOT NULL, created_at TEXT NOT NULL);"
    "CREATE TABLE jobs("
    "  id TEXT PRIMARY KEY, kind TEXT NOT NULL, role_id TEXT NOT NULL,"
    "  status TEXT NOT NULL DEFAULT 'pending', cursor TEXT NOT NULL DEFAULT '',"
    "  processed INTEGER NOT NULL DEFAULT 0,"
    "  created_at TEXT NOT NULL, updated_at TEXT NOT NULL);"
    "CREATE INDEX jobs_status ON jobs(status, id);";

/* R7: a new environment has one role, "member", its default. */
static int seed_1(sqlite3 *db, rg_error *err)
{
    char id[ST_ID], ts[ST_TS];
    rg_id_new("role", id, sizeof id);
    rg_st_now(ts);
    if (rg_st_exec(db, err,
                   "INSERT INTO roles(id, slug, name, description, organization_id, status,"
                   " created_at, updated_at) VALUES (?, 'member', 'Member', '', NULL,"
                   " 'active', ?, ?)", "sss", id, ts, ts) ||
        rg_st_exec(db, err, "INSERT INTO priorities(scope, role_id, position) VALUES ('', ?, 0)",
                   "s", id) ||
        rg_st_exec(db, err,
                   "INSERT INTO environment(id, multiple_roles, default_role_id, version,"
                   " updated_at) VALUES (1, 0, ?, 1, ?)", "ss", id, ts))
        return RG_EIO;
    return 0;
}

/* Directory sync (R27-R31, issue 12): directories of an organization with
 * the SHA-256 of their bearer token, the users and groups their SCIM client
 * pushes (resource: the SCIM attributes as stored), group members, and
 * directory group -> role mappings (R28). */
static const char migration_2_dsync[] =
    "CREATE TABLE directories("
    "  id TEXT PRIMARY KEY,"
    "  organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL, type TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'active',"
    "  token_hash TEXT NOT NULL,"
    "  created_at TEXT NOT NULL, updated_at TEXT NOT NULL);"
    "CREATE INDEX directories_org ON directories(organization_id);"
    "CREATE TABLE directory_users("
    "  id TEXT PRIMARY KEY,"
    "  directory_id TEXT NOT NULL REFERENCES directories(id) ON DELETE CASCADE,"
    "  user_id TEXT REFERENCES users(id) ON DELETE SET NULL,"
    "  user_name TEXT NOT NULL, user_name_key TEXT NOT NULL, external_id TEXT,"
    "  email TEXT, first_name TEXT, last_name TEXT, active INTEGER NOT NULL DEFAULT 1,"
    "  resource TEXT NOT NULL DEFAULT '{}',"
    "  created_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
    "  UNIQUE (directory_id, user_name_key));"
    "CREATE INDEX directory_users_ext ON directory_users(directory_id, external_id);"
    "CREATE INDEX directory_users_email ON directory_users(lower(email));"
    "CREATE INDEX directory_users_user ON directory_users(user_id);"
    "CREATE TABLE directory_groups("
    "  id TEXT PRIMARY KEY,"
    "  directory_id TEXT NOT NULL REFERENCES directories(id) ON DELETE CASCADE,"
    "  display_name TEXT NOT NULL, external_id TEXT,"
    "  created_at TEXT NOT NULL, updated_at TEXT NOT NULL);"
    "CREATE INDEX directory_groups_dir ON directory_groups(directory_id, display_name);"
    "CREATE INDEX directory_groups_ext ON directory_groups(directory_id, external_id);"
    "CREATE TABLE directory_group_members("
    "  group_id TEXT NOT NULL REFERENCES directory_groups(id) ON DELETE CASCADE,"
    "  user_id TEXT NOT NULL REFERENCES directory_users(id) ON DELETE CASCADE,"
    "  PRIMARY KEY (group_id, user_id));"
    "CREATE INDEX directory_group_members_user ON directory_group_members(user_id, group_id);"
    "CREATE TABLE directory_role_mappings("
    "  directory_id TEXT NOT NULL REFERENCES directories(id) ON DELETE CASCADE,"
    "  group_id TEXT NOT NULL REFERENCES directory_groups(id) ON DELETE CASCADE,"
    "  role_id TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,"
    "  PRIMARY KEY (directory_id, group_id, role_id));"
    "CREATE INDEX directory_role_mappings_role ON directory_role_mappings(role_id);"
    "CREATE INDEX directory_role_mappings_group ON directory_role_mappings(group_id);"
    /* R27: a directory user is linked to the user of its email */
    "CREATE INDEX users_email_lower ON users(lower(email));";
/* Issue 13: the record of issued sessions (admin sessions list, revoke,
 * single logout by the IdP's subject / session). */
static const char migration_3_sessions[] =
    "CREATE TABLE sessions("
    "  id TEXT PRIMARY KEY,"
    "  membership_id TEXT NOT NULL REFERENCES memberships(id) ON DELETE CASCADE,"
    "  user_id TEXT NOT NULL, organization_id TEXT NOT NULL,"
    "  connection_id TEXT, idp_subject TEXT, idp_subject_format TEXT, idp_session TEXT,"
    "  actor TEXT,"
    "  created_at TEXT NOT NULL, expires_at TEXT NOT NULL, revoked_at TEXT);"
    "CREATE INDEX sessions_membership ON sessions(membership_id, id);"
    "CREATE INDEX sessions_idp ON sessions(connection_id, idp_subject);"
    "CREATE INDEX sessions_idp_session ON sessions(connection_id, idp_session);";

typedef struct migration {
    const char *sql;
    int (*seed)(sqlite3 *db, rg_error *err);
} migration;

static const migration migrations[RG_STORE_SCHEMA_VERSION] = {
    { migration_1, seed_1 },
    { migration_2_dsync, NULL },
    { migration_3_sessions, NULL },
};

static int user_version(sqlite3 *db, rg_error *err, int *v)
{
    int64_t x = 0;
    int rc = rg_st_int(db, err, &x, "PRAGMA user_version", "");
    if (rc < 0)
        return rc;
    *v = (int)x;
    return 0;
}

static int migrate(sqlite3 *db, int *version, rg_error *err)
{
    for (;;) {
        int v;
        if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
            return rg_st_dberr(db, err);
        /* read inside the write transaction: another process may have
         * migrated meanwhile */
        if (user_version(db, err, &v))
            goto fail;
        if (v > RG_STORE_SCHEMA_VERSION) {
            rg_error_set(err, RG_EIO, 500, "store_error", NULL,
                         "database schema version %d is newer than this build (%d)", v,
                         RG_STORE_SCHEMA_VERSION);
            goto fail;
        }
        if (v == RG_STORE_SCHEMA_VERSION) {
            sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
            *version = v;
            return 0;
        }
        const migration *m = &migrations[v];
        if (m->sql && sqlite3_exec(db, m->sql, NULL, NULL, NULL) != SQLITE_OK) {
            rg_st_dberr(db, err);
            goto fail;
        }
        if (m->seed && m->seed(db, err))
            goto fail;
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", v + 1);
        if (sqlite3_exec(db, pragma, NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
            rg_st_dberr(db, err);
            goto fail;
        }
        rg_log(RG_LOG_INFO, "store=migrated schema_version=%d", v + 1);
        continue;
    fail:
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return RG_EIO;
    }
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
        if (i == 0 && migrate(s->conns[0], &s->schema_version, err))
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

/* ---- pool and transactions ---------------------------------------------------- */

static int pool_take(rg_store *s)
{
    pthread_mutex_lock(&s->pool_lock);
    for (;;) {
        for (int i = 0; i < ST_POOL; i++)
            if (!s->busy[i]) {
                s->busy[i] = 1;
                pthread_mutex_unlock(&s->pool_lock);
                return i;
            }
        pthread_cond_wait(&s->pool_cond, &s->pool_lock);
    }
}

static void pool_give(rg_store *s, int slot)
{
    pthread_mutex_lock(&s->pool_lock);
    assert(s->busy[slot]);
    s->busy[slot] = 0;
    pthread_cond_signal(&s->pool_cond);
    pthread_mutex_unlock(&s->pool_lock);
}

/* The write transaction of this thread, so rg_st_bump_* (given only the
 * connection) can record what it bumped. */
static _Thread_local st_tx *cur_write;

void rg_store_set_change_hook(rg_store *s, rg_store_change_fn fn, void *ctx)
{
    assert(s);
    s->on_change = fn;
    s->on_change_ctx = ctx;
}

static void dirty_note(sqlite3 *db, const char *org_id)
{
    st_tx *tx = cur_write;
    if (!tx || tx->db != db)
        return;   /* migrations: before any hook is set */
    if (!org_id) {
        tx->dirty_env = 1;
        return;
    }
    for (size_t i = 0; i < tx->ndirty; i++)
        if (strcmp(tx->dirty[i], org_id) == 0)
            return;
    if (tx->ndirty == tx->capdirty) {
        size_t cap = tx->capdirty ? tx->capdirty * 2 : 4;
        char (*d)[ST_ID] = realloc(tx->dirty, cap * sizeof *d);
        if (!d) {
            tx->dirty_env = 1;   /* reporting every table covers the lost one */
            return;
        }
        tx->dirty = d;
        tx->capdirty = cap;
    }
    snprintf(tx->dirty[tx->ndirty++], ST_ID, "%s", org_id);
}

int rg_st_begin(rg_store *s, st_tx *tx, int write, rg_error *err)
{
    assert(s && tx);
    tx->s = s;
    tx->write = write;
    tx->dirty_env = 0;
    tx->dirty = NULL;
    tx->ndirty = tx->capdirty = 0;
    /* the write lock first, then a connection: a writer never holds a
     * connection while it waits for another writer */
    if (write)
        pthread_mutex_lock(&s->write_lock);
    tx->slot = pool_take(s);
    tx->db = s->conns[tx->slot];
    if (sqlite3_exec(tx->db, write ? "BEGIN IMMEDIATE" : "BEGIN", NULL, NULL, NULL) !=
        SQLITE_OK) {
        int rc = rg_st_dberr(tx->db, err);
        pool_give(s, tx->slot);
        if (write)
            pthread_mutex_unlock(&s->write_lock);
        tx->db = NULL;
        return rc;
    }
    if (write)
        cur_write = tx;
    return 0;
}

int rg_st_end(st_tx *tx, int rc, rg_error *err)
{
    assert(tx && tx->db);
    if (rc == 0) {
        if (sqlite3_exec(tx->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
            rc = rg_st_dberr(tx->db, err);
            sqlite3_exec(tx->db, "ROLLBACK", NULL, NULL, NULL);
        }
    } else {
        /* R23: a failure changes nothing */
        sqlite3_exec(tx->db, "ROLLBACK", NULL, NULL, NULL);
    }
    pool_give(tx->s, tx->slot);
    if (tx->write) {
        cur_write = NULL;
        pthread_mutex_unlock(&tx->s->write_lock);
    }
    tx->db = NULL;
    /* after the commit and the locks: the hook may read the store */
    rg_store *s = tx->s;
    if (rc == 0 && s->on_change) {
        if (tx->dirty_env)
            s->on_change(s->on_change_ctx, NULL);
        else
            for (size_t i = 0; i < tx->ndirty; i++)
                s->on_change(s->on_change_ctx, tx->dirty[i]);
    }
    free(tx->dirty);
    tx->dirty = NULL;
    tx->ndirty = tx->capdirty = 0;
    return rc;
}

int rg_st_rc(const rg_error *err)
{
    switch (err ? err->status : 500) {
    case 404: return RG_ENOTFOUND;
    case 409: return RG_ECONFLICT;
    case 422: return RG_EINVAL;
    default: return err && !strcmp(err->code, "internal") ? RG_ENOMEM : RG_EIO;
    }
}

int rg_st_finish(int rc, json_t *o, json_t **out)
{
    if (rc == 0 && out)
        *out = o;
    else
        json_decref(o);
    return rc;
}

/* ---- events and versions ------------------------------------------------------ */

int rg_st_event(sqlite3 *db, const char *name, json_t *data, rg_error *err)
{
    assert(name);
    if (!data)
        data = json_object();
    char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
    json_decref(data);
    if (!text)
        return rg_st_oom(err);
    char id[ST_ID], ts[ST_TS];
    rg_id_new("event", id, sizeof id);
    rg_st_now(ts);
    int rc = rg_st_exec(db, err,
                        "INSERT INTO events(id, event, data, created_at) VALUES (?, ?, ?, ?)",
                        "ssss", id, name, text, ts);
    free(text);
    return rc;
}

int rg_st_bump_env(sqlite3 *db, rg_error *err)
{
    dirty_note(db, NULL);
    return rg_st_exec(db, err, "UPDATE environment SET version = version + 1 WHERE id = 1",
                      "");
}

int rg_st_bump_org(sqlite3 *db, const char *org_id, rg_error *err)
{
    dirty_note(db, org_id);
    return rg_st_exec(db, err, "UPDATE organizations SET version = version + 1 WHERE id = ?",
                      "s", org_id);
}

/* ---- lists ----------------------------------------------------------------------- */

json_t *rg_st_list_object(json_t *data, const char *before, const char *after)
{
    json_t *meta = json_pack("{s:o?,s:o?}", "before", before ? json_string(before) : NULL,
                             "after", after ? json_string(after) : NULL);
    json_t *o = json_pack("{s:s,s:o,s:o}", "object", "list", "data", data, "list_metadata",
                          meta);
    return o;
}

char *rg_st_ids_json(const char (*ids)[ST_ID], size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        if (json_array_append_new(arr, json_string(ids[i]))) {
            json_decref(arr);
            arr = NULL;
        }
    char *text = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
    json_decref(arr);
    return text;
}

/* One page: either build (one object per id) or batch (all at once). */
static int list_page(sqlite3 *db, const char *table, const char *key, const char *where,
                     const char *bind1, const char *bind2, const rg_store_list_opts *o,
                     int default_desc, st_builder build, st_batch_builder batch,
                     json_t **out, rg_error *err)
{
    assert(out && (build || batch));
    rg_store_list_opts none = {0};
    if (!o)
        o = &none;
    int limit = o->limit ? o->limit : 10;
    if (limit < 1 || limit > 100)
        return rg_error_set(err, RG_EINVAL, 422, "invalid_request", "limit",
                            "limit must be between 1 and 100");
    int desc = default_desc;
    if (o->order) {
        if (!strcmp(o->order, "asc"))
            desc = 0;
        else if (!strcmp(o->order, "desc"))
            desc = 1;
        else
            return rg_error_set(err, RG_EINVAL, 422, "invalid_request", "order",
                                "order must be \"asc\" or \"desc\"");
    }
    if (o->before && o->after)
        return rg_error_set(err, RG_EINVAL, 422, "invalid_request", "before",
                            "give before or after, not both");
    const char *cursor = o->after ? o->after : o->before;
    /* Walking backwards (before=) reads the rows next to the cursor in the
     * opposite direction, then reverses them. */
    int backwards = o->before != NULL;
    int scan_desc = backwards ? !desc : desc;
    char sql[1024];
    int n = snprintf(sql, sizeof sql, "SELECT id FROM %s WHERE (%s)", table,
                     where && *where ? where : "1");
    if (cursor)
        n += snprintf(sql + n, sizeof sql - (size_t)n,
                      " AND %s %s (SELECT %s FROM %s WHERE id = ?)", key,
                      scan_desc ? "<" : ">", key, table);
    n += snprintf(sql + n, sizeof sql - (size_t)n, " ORDER BY %s %s LIMIT ?", key,
                  scan_desc ? "DESC" : "ASC");
    assert((size_t)n < sizeof sql);
    const char *args[3] = {0};
    int na = 0;
    if (bind1)
        args[na++] = bind1;
    if (bind2)
        args[na++] = bind2;
    if (cursor)
        args[na++] = cursor;
    sqlite3_stmt *st = NULL;
    switch (na) {
    case 0: st = rg_st_prep(db, err, sql, "i", limit + 1); break;
    case 1: st = rg_st_prep(db, err, sql, "si", args[0], limit + 1); break;
    case 2: st = rg_st_prep(db, err, sql, "ssi", args[0], args[1], limit + 1); break;
    default: st = rg_st_prep(db, err, sql, "sssi", args[0], args[1], args[2], limit + 1);
    }
    if (!st)
        return RG_EIO;
    char (*ids)[ST_ID] = calloc((size_t)limit + 1, sizeof *ids);
    if (!ids) {
        sqlite3_finalize(st);
        return rg_st_oom(err);
    }
    int count = 0, rc;
    while ((rc = rg_st_step(db, st, err)) == 1) {
        const char *id = rg_st_col(st, 0);
        snprintf(ids[count++], ST_ID, "%s", id ? id : "");
    }
    sqlite3_finalize(st);
    if (rc < 0) {
        free(ids);
        return rc;
    }
    int more = count > limit;
    if (more)
        count = limit;
    if (backwards)   /* back to the list's order */
        for (int i = 0; i < count / 2; i++) {
            char tmp[ST_ID];
            memcpy(tmp, ids[i], ST_ID);
            memcpy(ids[i], ids[count - 1 - i], ST_ID);
            memcpy(ids[count - 1 - i], tmp, ST_ID);
        }
    json_t *data = batch ? batch(db, (const char (*)[ST_ID])ids, (size_t)count, err)
                         : json_array();
    if (!data) {
        free(ids);
        return batch ? rg_st_rc(err) : rg_st_oom(err);
    }
    for (int i = 0; !batch && i < count; i++) {
        json_t *obj = build(db, ids[i], err);
        if (!obj) {
            json_decref(data);
            free(ids);
            return RG_EIO;
        }
        json_array_append_new(data, obj);
    }
    /* after: the last item when more follow it (forwards), or whenever we
     * came backwards from a cursor; before: the first item when more precede
     * it (backwards) or when we came forwards from a cursor. */
    const char *after = NULL, *before = NULL;
    if (count > 0) {
        if (backwards ? 1 : more)
            after = ids[count - 1];
        if (backwards ? more : cursor != NULL)
            before = ids[0];
    }
    json_t *list = rg_st_list_object(data, before, after);
    free(ids);
    if (!list)
        return rg_st_oom(err);
    *out = list;
    return 0;
}

int rg_st_list(sqlite3 *db, const char *table, const char *key, const char *where,
               const char *bind1, const char *bind2, const rg_store_list_opts *o,
               int default_desc, st_builder build, json_t **out, rg_error *err)
{
    return list_page(db, table, key, where, bind1, bind2, o, default_desc, build, NULL, out,
                     err);
}

int rg_st_list_batch(sqlite3 *db, const char *table, const char *key, const char *where,
                     const char *bind1, const char *bind2, const rg_store_list_opts *o,
                     int default_desc, st_batch_builder build, json_t **out, rg_error *err)
{
    return list_page(db, table, key, where, bind1, bind2, o, default_desc, NULL, build, out,
                     err);
}
