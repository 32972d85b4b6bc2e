/* migrate.c: the numbered forward-only migrations of the store's schema
 * (the first seeds the "member" default role, R7): migrations[i] takes the
 * schema from version i to i+1, each in its own transaction. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/util.h"
#include "store_impl.h"

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
static int seed_1(st_db *db, rg_error *err)
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
        return rg_st_rc(err);
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

/* Issue 13: the sessions past their absolute end are pruned by expires_at
 * (rg_st_session_insert): found through an index, never a table scan. */
static const char migration_4_sessions_expiry[] =
    "CREATE INDEX sessions_expires ON sessions(expires_at);";

/* Issue 15: what several instances share without Redis (shared_state.c):
 * ids seen (v NULL; scope: the connection, for its quota) and one-time
 * login state, each until expires_ms (ms since the epoch). On SQLite the
 * table exists but the cache layer keeps these in process. */
static const char migration_5_shared_state[] =
    "CREATE TABLE shared_state("
    "  k TEXT PRIMARY KEY, v TEXT, scope TEXT, expires_ms INTEGER NOT NULL);"
    "CREATE INDEX shared_state_expires ON shared_state(expires_ms);"
    "CREATE INDEX shared_state_scope ON shared_state(scope, expires_ms);";

typedef struct migration {
    const char *sql;
    int (*seed)(st_db *db, rg_error *err);
} migration;

static const migration migrations[RG_STORE_SCHEMA_VERSION] = {
    { migration_1, seed_1 },
    { migration_2_dsync, NULL },
    { migration_3_sessions, NULL },
    { migration_4_sessions_expiry, NULL },
    { migration_5_shared_state, NULL },
};

int rg_st_migrate(st_db *db, int *version, rg_error *err)
{
    for (;;) {
        int v = 0;
        if (db->be->begin(db, ST_BEGIN_MIGRATE))
            return rg_st_dberr(db, err);
        /* read inside the write transaction: another process may have
         * migrated meanwhile */
        if (db->be->schema_get(db, &v)) {
            rg_st_dberr(db, err);
            goto fail;
        }
        if (v > RG_STORE_SCHEMA_VERSION) {
            rg_error_set(err, RG_EIO, "store_error", NULL,
                         "database schema version %d is newer than this build (%d)", v,
                         RG_STORE_SCHEMA_VERSION);
            goto fail;
        }
        if (v == RG_STORE_SCHEMA_VERSION) {
            if (db->be->commit(db)) {
                rg_st_dberr(db, err);
                goto fail;
            }
            *version = v;
            return 0;
        }
        const migration *m = &migrations[v];
        if (m->sql && db->be->exec_script(db, m->sql)) {
            rg_st_dberr(db, err);
            goto fail;
        }
        if (m->seed && m->seed(db, err))
            goto fail;
        if (db->be->schema_set(db, v + 1) || db->be->commit(db)) {
            rg_st_dberr(db, err);
            goto fail;
        }
        rg_log(RG_LOG_INFO, "store=migrated schema_version=%d", v + 1);
        continue;
    fail:
        db->be->rollback(db);
        return rg_st_rc(err);
    }
}
