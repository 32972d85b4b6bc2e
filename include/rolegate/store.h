/* store.h: the source of truth of rolegate (DESIGN.md "State"): environment,
 * permissions, roles, priority orders, organizations, users, memberships,
 * connections and their group mappings, events and deletion jobs. One
 * interface (src/store) over a backend chosen by the database target:
 * SQLite (a file) or PostgreSQL (a postgresql:// URL, issue 15), with the
 * same schema, migrations and answers. Implements R7-R23 and R26 on top of
 * core (core.h), which owns the pure rules.
 *
 * Conventions of every function below:
 *  - Returns 0 on success, or a negative RG_E* code with err filled: 404
 *    "not_found" (field = the id or slug asked for), 409 conflicts, 422
 *    validation (core's codes: "invalid_slug", "invalid_name", "invalid_role",
 *    "multiple_roles_not_enabled", ...; the store's: "invalid_request"), 500
 *    "store_error".
 *  - Objects come back through json_t **out in the public shape of RBAC.md
 *    (ready to be sent as is). On success the caller owns *out (json_decref);
 *    on failure *out is NULL. Every out below (rg_store_role_table's too)
 *    may be NULL when the caller does not need the object: the call runs
 *    the same, returns the same status and a write still commits and emits
 *    its events.
 *  - Every write is one transaction (BEGIN IMMEDIATE) that also inserts its
 *    events (R26); a failure rolls back everything (R23); a no-op writes
 *    nothing and emits nothing.
 *  - Strings passed in are borrowed. "NULL: keep" arguments leave the field
 *    unchanged.
 *  - org_id NULL means the environment (environment roles, environment
 *    priority order, environment role table).
 *  - Thread-safe: any function may be called from any thread at the same
 *    time (a pool of connections; writes are serialized by a mutex; reads run
 *    concurrently in WAL). */
#ifndef ROLEGATE_STORE_H
#define ROLEGATE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "rolegate/error.h"
#include "rolegate/core.h"

typedef struct rg_store rg_store;   /* opaque */

/* The schema version this build migrates to (migrations are forward-only and
 * numbered; PRAGMA user_version records the one applied). */
#define RG_STORE_SCHEMA_VERSION 5

/* Opens the store path names and applies pending migrations. A new
 * database holds one role, "member", the environment default (R7).
 * path: a postgresql:// (or postgres://) URL opens PostgreSQL (issue 15:
 * a small pool of libpq connections, SERIALIZABLE writes); anything else,
 * optionally prefixed "sqlite:", is a SQLite database file, created if
 * needed, in WAL mode with foreign keys on and a busy timeout (":memory:"
 * is refused: each pooled connection would see its own database). Returns
 * NULL with err filled on failure (503 store_unavailable when the server
 * cannot be reached). Free with rg_store_close. */
rg_store *rg_store_open(const char *path, rg_error *err);
/* Closes every connection and frees s. Accepts NULL. No call may be running. */
void rg_store_close(rg_store *s);
/* The file a SQLite target names (past "sqlite:"), NULL for PostgreSQL. */
const char *rg_store_target_file(const char *target);
/* The target for messages: a URL's password replaced by "***". */
void rg_store_target_redact(const char *target, char *out, size_t n);
/* The schema version of the open database (SQLite: PRAGMA user_version;
 * PostgreSQL: table rolegate_schema). */
int rg_store_schema_version(rg_store *s);

/* `rolegate store copy FROM TO` (issue 15): copies every table of the store
 * FROM names into the store TO names (targets as rg_store_open takes them:
 * SQLite <-> PostgreSQL, or alike), rows as stored (ids, timestamps, event
 * order, priority positions, secrets and token hashes). FROM is read in one
 * read-only transaction and must be at RG_STORE_SCHEMA_VERSION (never
 * migrated); TO is migrated, must hold nothing but a fresh store's seed, and
 * is written in one transaction (a failure leaves it as it was). Without s
 * store open on either. After the commit report (may be NULL) is called once
 * per table, in copy order, with its row count. Returns 0; RG_ECONFLICT 409
 * "store_not_empty"; RG_EINVAL for other refusals (422 invalid_request: no
 * or the same target; 409 schema_mismatch, not_a_store, table_unknown,
 * table_missing); RG_EIO when a database fails (500 store_error, 503
 * store_unavailable). No message holds a URL's password. */
typedef void (*rg_store_copy_fn)(const char *table, long rows, void *arg);
int rg_store_copy(const char *from, const char *to, rg_store_copy_fn report, void *arg,
                  rg_error *err);

/* ---- lists ---------------------------------------------------------------
 * Paginated lists answer {"object":"list","data":[...],"list_metadata":
 * {"before":id|null,"after":id|null}}. limit: 0 = default 10, else 1..100
 * (422 "invalid_request", field "limit"); before/after: object ids (cursors;
 * an unknown id gives an empty page); order: NULL (default: "desc", newest
 * first; events: "asc", oldest first), "asc" or "desc" (else 422, field
 * "order"). list_metadata.after is null on the last page. */
typedef struct rg_store_list_opts {
    int limit;
    const char *before;
    const char *after;
    const char *order;
} rg_store_list_opts;

/* ---- environment (R7, R12, R14) ------------------------------------------
 * {"object":"environment","multiple_roles":bool,"default_role":"member",
 *  "updated_at"}
 * out may be NULL: the status alone (e.g. an existence check). */
int rg_store_environment_get(rg_store *s, json_t **out, rg_error *err);
/* multiple_roles: -1 keep, 0 off, 1 on. Turning it off keeps, for every
 * membership, its highest-priority role by its organization's order (R14), in
 * the same transaction (organization_membership.updated per membership
 * changed). default_role: an active environment role slug (R7), else 422
 * "invalid_role" field "default_role". Emits environment.updated.
 * out may be NULL (a write still commits and emits its events). */
int rg_store_environment_update(rg_store *s, int multiple_roles, const char *default_role,
                                json_t **out, rg_error *err);

/* ---- permissions (R2, R6, R22) -------------------------------------------
 * {"object":"permission","id":"perm_...","slug","name","description",
 *  "system":bool,"created_at","updated_at"}. Addressed by slug. */
/* 409 "permission_slug_conflict" (R6); 422 on a bad slug/name/description.
 * system: 1 marks a built-in permission that cannot be deleted.
 * out may be NULL (a write still commits and emits its events). */
int rg_store_permission_create(rg_store *s, const char *slug, const char *name,
                               const char *description, int system, json_t **out,
                               rg_error *err);
/* out may be NULL: the status alone (e.g. an existence check). */
int rg_store_permission_list(rg_store *s, const rg_store_list_opts *o, json_t **out,
                             rg_error *err);
/* out may be NULL: the status alone (e.g. an existence check). */
int rg_store_permission_get(rg_store *s, const char *slug, json_t **out, rg_error *err);
/* name, description: NULL keep ("" clears the description).
 * out may be NULL (a write still commits and emits its events). */
int rg_store_permission_update(rg_store *s, const char *slug, const char *name,
                               const char *description, json_t **out, rg_error *err);
/* R22: removes it from every role (their tables change). A system permission
 * is 409 "system_permission_cannot_be_deleted". */
int rg_store_permission_delete(rg_store *s, const char *slug, rg_error *err);

/* ---- roles (R1-R11, R20-R22) ---------------------------------------------
 * {"object":"role","id":"role_...","slug","name","description",
 *  "type":"EnvironmentRole"|"OrganizationRole","permissions":[slugs, sorted],
 *  "created_at","updated_at"} plus "organization_id" for organization roles
 * and "status":"deleting" while its deletion job runs.
 * org_id NULL: environment roles; else the roles of that organization (404
 * field "organization_id" if it does not exist). */

/* Environment (org_id NULL): slug required (R1, R3), 409
 * "role_slug_conflict"; placed at the bottom of the environment order and of
 * every independent organization's order (R8, R10); emits role.created.
 * Organization: slug given must start with "org-" (R4), 409
 * "organization_role_slug_conflict" if visible in the organization; slug NULL
 * generates one (R5; again on collision). The organization's first role makes
 * it independent (R9). Emits organization_role.created.
 * An environment slug may not equal any organization's role slug either, so
 * a slug names one role in every scope; a role being deleted keeps its slug
 * taken until its job is done (409).
 * out may be NULL (a write still commits and emits its events). */
int rg_store_role_create(rg_store *s, const char *org_id, const char *slug,
                         const char *name, const char *description, json_t **out,
                         rg_error *err);
/* All roles visible in the scope, in priority order (R8, R11), not
 * paginated: {"object":"list","data":[roles],"list_metadata":{"before":null,
 * "after":null}}. Deleting roles are not listed. A constant number of SQL
 * statements whatever the number of roles.
 * out may be NULL: the status alone (e.g. an existence check). */
int rg_store_role_list(rg_store *s, const char *org_id, json_t **out, rg_error *err);
/* With org_id, environment roles are visible too (R11). A role being deleted
 * is returned with "status":"deleting".
 * out may be NULL: the status alone (e.g. an existence check). */
int rg_store_role_get(rg_store *s, const char *org_id, const char *slug, json_t **out,
                      rg_error *err);
/* Changes name/description (NULL keep). With org_id only that organization's
 * own roles can be changed (an environment role there is 404). Emits
 * role.updated / organization_role.updated unless nothing changed.
 * out may be NULL (a write still commits and emits its events). */
int rg_store_role_update(rg_store *s, const char *org_id, const char *slug,
                         const char *name, const char *description, json_t **out,
                         rg_error *err);
/* PUT: the role's permissions become exactly perms (each must exist, else 422
 * "invalid_permission" field "permissions").
 * out may be NULL (a write still commits and emits its events). */
int rg_store_role_permissions_set(rg_store *s, const char *org_id, const char *slug,
                                  const char *const *perms, size_t n, json_t **out,
                                  rg_error *err);
/* POST: adds perms (already held ones are fine; all held: no-op).
 * out may be NULL (a write still commits and emits its events). */
int rg_store_role_permissions_add(rg_store *s, const char *org_id, const char *slug,
                                  const char *const *perms, size_t n, json_t **out,
                                  rg_error *err);
/* DELETE .../permissions/{perm}: removes one (404 if the role lacks it).
 * out may be NULL (a write still commits and emits its events). */
int rg_store_role_permission_remove(rg_store *s, const char *org_id, const char *slug,
                                    const char *perm, json_t **out, rg_error *err);
/* R20/R21 (answer 202): the role disappears from role tables and lists at
 * once, mappings to it are removed, role.deleted / organization_role.deleted
 * is emitted and a deletion job is queued (run it with rg_store_jobs_run).
 * The environment default cannot be deleted: 409
 * "default_role_cannot_be_deleted" (R7). If the role is the default of
 * organizations: without replacement_default 409
 * "replacement_default_required" (the message lists them); with it (must be
 * visible in each, else 422 "invalid_role" field "replacement_default") they
 * get it first (organization.updated each). *out: the role, "status":
 * "deleting".
 * out may be NULL (a write still commits and emits its events). */
int rg_store_role_delete(rg_store *s, const char *org_id, const char *slug,
                         const char *replacement_default, json_t **out, rg_error *err);
/* R8/R9: the scope's priority order becomes slugs (highest first); it must
 * name every visible role exactly once, else 422 "invalid_priority" field
 * "slugs". For an organization it makes it independent (R9). Emits
 * role_priority.updated {"organization_id":id|null,"slugs":[...]} unless
 * nothing changed. *out: the role list as rg_store_role_list.
 * out may be NULL (a write still commits and emits its events). */
int rg_store_priority_set(rg_store *s, const char *org_id, const char *const *slugs,
                          size_t n, json_t **out, rg_error *err);

/* ---- role tables (what logins use) ---------------------------------------
 * Loads the scope's roles, order, defaults, permissions, the
 * multiple_roles setting and the mappings of the organization's connections
 * and builds the core table (rg_role_table_build). The caller frees *out
 * with rg_role_table_free. A constant number of SQL statements whatever the
 * number of roles, permissions and mappings.
 * out may be NULL (the table is built, checked and freed). */
int rg_store_role_table(rg_store *s, const char *org_id, rg_role_table **out,
                        rg_error *err);
/* The version of the scope's table: it grows with every change that affects
 * the table (bumped in the same transaction). 0 if org_id is unknown. */
uint64_t rg_store_table_version(rg_store *s, const char *org_id);
/* A change hook (the role-table cache's invalidation, issue 7): called
 * after every committed write that bumped a table version, once per
 * organization bumped (org_id) or once with NULL when the environment was
 * bumped (every organization inherits it). Runs on the writing thread
 * after the commit, with no store lock held, so it may call the store.
 * Set it before any thread uses s; fn NULL removes it. */
typedef void (*rg_store_change_fn)(void *ctx, const char *org_id);
void rg_store_set_change_hook(rg_store *s, rg_store_change_fn fn, void *ctx);
/* Issue 13: called once after every committed write that inserted, updated
 * or deleted a row of a membership or of its roles, whatever the path (the
 * admin API, SCIM, a login, a role job, the cascade of a user's or an
 * organization's deletion): what the membership-state cache of session
 * refreshes drops. Same thread and lock rules as the change hook. A backend
 * must call it for every such write (rg_st_members_note, from every prepare). */
typedef void (*rg_store_members_fn)(void *ctx);
void rg_store_set_members_hook(rg_store *s, rg_store_members_fn fn, void *ctx);

/* ---- the change channel (issue 15: several instances without Redis) -----
 * PostgreSQL carries the cache layer's messages between the instances that
 * share one database (LISTEN/NOTIFY); SQLite has none (one instance per
 * file). Channel names are at most 63 bytes (PostgreSQL identifiers),
 * payloads at most RG_STORE_CHANNEL_MAX bytes (NOTIFY's limit is 8000). */
#define RG_STORE_CHANNEL_MAX 7999
/* 1 when the store's backend has a change channel (PostgreSQL). */
int rg_store_channel_supported(const rg_store *s);
/* From now on every write that bumps a table version or writes a membership
 * (what the change and members hooks report) also sends on channel, INSIDE
 * its own transaction, org_id for each organization bumped ("*" when the
 * environment was), and members_payload once when a membership or its
 * roles were written: the message is delivered if and only if the write
 * commits, and only after it. A failed NOTIFY fails the write (retried
 * like a lost connection). channel NULL stops. 0, or RG_EINVAL (no
 * channel in this backend, a name or payload too long). Set it before
 * threads use s (like the hooks). */
int rg_store_channel_on_write(rg_store *s, const char *channel, const char *members_payload);
/* Sends one message on channel in a transaction of its own. 0, RG_EINVAL
 * (no channel, too long) or the store's error (503 store_unavailable). */
int rg_store_channel_send(rg_store *s, const char *channel, const char *payload,
                          rg_error *err);
/* A listener: a connection of its own to the store's database (never one of
 * the pool) that LISTENs to n channels. NULL with why filled (the server's
 * message, never the URL's password) when the server cannot be reached or
 * the backend has no channel. Its socket (rg_store_listener_fd) is for
 * poll(2); the caller owns the reconnect and its backoff. One thread uses
 * a listener at a time. Free with rg_store_listener_close (accepts NULL). */
typedef struct rg_store_listener rg_store_listener;
rg_store_listener *rg_store_listen(rg_store *s, const char *const *channels, size_t n,
                                   char *why, size_t whysz);
int  rg_store_listener_fd(const rg_store_listener *l);
/* Reads what the socket holds without blocking and calls fn(ctx, channel,
 * payload) for each message, in commit order. Returns how many messages and
 * ping answers were read (>= 0), or -1 with why filled when the connection
 * is lost (the listener is then only good for close). */
typedef void (*rg_store_message_fn)(void *ctx, const char *channel, const char *payload);
int  rg_store_listener_read(rg_store_listener *l, rg_store_message_fn fn, void *ctx,
                            char *why, size_t whysz);
/* Sends a round trip (SELECT 1) unless one is under way; its answer counts
 * in the next rg_store_listener_read. 0 sent, 1 one under way already, -1
 * lost (why filled). A server that stops answering is noticed by the
 * caller's timeout on it. */
int  rg_store_listener_ping(rg_store_listener *l, char *why, size_t whysz);
void rg_store_listener_close(rg_store_listener *l);

/* ---- shared state (issue 15: several instances without Redis) -----------
 * What the cache layer keeps in Redis when it has one: ids seen (the SAML
 * replay cache, the OIDC back-channel logout jti cache) and one-time login
 * state. Rows of the store with an expiry in ms since the epoch (a row past
 * it is absent; each write prunes a bounded number of them), each call one
 * transaction of its own. Keys are 1..RG_STORE_SHARED_KEY_MAX bytes. */
#define RG_STORE_SHARED_KEY_MAX 1024
/* 1 when the cache layer should keep its shared state here: the backend
 * serves several machines (PostgreSQL). The calls work on SQLite too. */
int rg_store_shared_supported(const rg_store *s);
/* Takes the id key until expires_ms unless a live row holds it (one INSERT
 * ... ON CONFLICT, its rows counted). scope (a connection id, or NULL: no
 * quota) may hold at most quota live ids: 2 and nothing kept when this one
 * would be one too many (issue 11 item 12). 0 taken, 1 held (a replay),
 * 2, or negative with err (the store's error: 503 store_unavailable). */
int rg_store_shared_claim(rg_store *s, const char *key, const char *scope, long quota,
                          int64_t expires_ms, rg_error *err);
/* Sets key to value until expires_ms (replacing any). 0 or negative. */
int rg_store_shared_put(rg_store *s, const char *key, const char *value, int64_t expires_ms,
                        rg_error *err);
/* Deletes key and hands back its value (malloc'd, caller frees) if it was
 * live: exactly one caller of any instance gets it. 0, RG_ENOTFOUND (404
 * state_not_found: never put, expired or taken) or the store's error;
 * *value NULL unless 0. */
int rg_store_shared_take(rg_store *s, const char *key, char **value, rg_error *err);

/* ---- organizations (R9, R21) ---------------------------------------------
 * {"object":"organization","id":"org_...","name","domains":["a.com",...],
 *  "created_at","updated_at"} plus "default_role":slug once it is
 * independent (R9: own roles, own default or own order). */
/* name: 1..255 bytes, no control characters (422 field "name"); domains:
 * host names ([A-Za-z0-9.-], stored lowercased and deduplicated; 422 field
 * "domains"), may be NULL with n 0. Emits organization.created.
 * out may be NULL (a write still commits and emits its events). */
int rg_store_organization_create(rg_store *s, const char *name,
                                 const char *const *domains, size_t n_domains,
                                 json_t **out, rg_error *err);
/* out may be NULL: the status alone (e.g. an existence check). */
int rg_store_organization_list(rg_store *s, const rg_store_list_opts *o, json_t **out,
                               rg_error *err);
/* out may be NULL: the status alone (e.g. an existence check). */
int rg_store_organization_get(rg_store *s, const char *id, json_t **out, rg_error *err);
/* Home-realm discovery (issue 11 item 2): the id of the one organization
 * whose domains list domain (case-insensitive) into org_id[n]. 0; 404
 * "domain_unknown" when none; 409 "domain_ambiguous" when several do. */
int rg_store_organization_by_domain(rg_store *s, const char *domain, char *org_id,
                                    size_t n, rg_error *err);
/* name NULL keep; n_domains < 0 keep domains, else replace them (domains may
 * be NULL when 0); default_role NULL keep, else a slug visible in the
 * organization (422 "invalid_role" field "default_role"); setting it makes
 * the organization independent (R9). Emits organization.updated unless
 * nothing changed.
 * out may be NULL (a write still commits and emits its events). */
int rg_store_organization_update(rg_store *s, const char *id, const char *name,
                                 const char *const *domains, long n_domains,
                                 const char *default_role, json_t **out, rg_error *err);
/* Deletes it with its roles, connections and memberships (their *.deleted
 * events first, then organization.deleted). Pending deletion jobs of its
 * roles finish as no-ops. */
int rg_store_organization_delete(rg_store *s, const char *id, rg_error *err);

/* ---- users ---------------------------------------------------------------
 * {"object":"user","id":"user_...","email","first_name","last_name",
 *  "created_at","updated_at"} (names null when unknown). */
/* email required (contains '@', <= 254 bytes, else 422 "invalid_request"
 * field "email"); names may be NULL. Emits user.created.
 * out may be NULL (a write still commits and emits its events). */
int rg_store_user_create(rg_store *s, const char *email, const char *first_name,
                         const char *last_name, json_t **out, rg_error *err);
/* email NULL: all users; else only users with that exact email.
 * out may be NULL: the status alone (e.g. an existence check). */
int rg_store_user_list(rg_store *s, const char *email, const rg_store_list_opts *o,
                       json_t **out, rg_error *err);
/* out may be NULL: the status alone (e.g. an existence check). */
int rg_store_user_get(rg_store *s, const char *id, json_t **out, rg_error *err);
/* Deletes the user and its memberships (organization_membership.deleted
 * each, then user.deleted). */
int rg_store_user_delete(rg_store *s, const char *id, rg_error *err);

/* ---- organization memberships (R12, R13, R18, R19) -----------------------
 * {"object":"organization_membership","id":"om_...","user_id",
 *  "organization_id","role":{"slug"},"roles":[{"slug"},...] (priority
 *  order, role = the first),"role_source":"idp"|"directory"|"api"|"default",
 *  "status":"active","created_at","updated_at"} */
/* role_slugs NULL: the organization's default role, role_source "default";
 * else (a one-element array for role_slug) the roles checked by
 * rg_core_roles_assign (R12, R19: 422 "invalid_role" for an unknown or empty
 * list, "multiple_roles_not_enabled"), role_source "api". 404 for an unknown
 * user or organization (field "user_id" / "organization_id"); 409
 * "organization_membership_already_exists". Emits
 * organization_membership.created.
 * out may be NULL (a write still commits and emits its events). */
int rg_store_membership_create(rg_store *s, const char *user_id, const char *org_id,
                               const char *const *role_slugs, size_t n, json_t **out,
                               rg_error *err);
/* Filters user_id / org_id may be NULL. A page costs a constant number of
 * SQL statements whatever its size.
 * out may be NULL: the status alone (e.g. an existence check). */
int rg_store_membership_list(rg_store *s, const char *user_id, const char *org_id,
                             const rg_store_list_opts *o, json_t **out, rg_error *err);
/* out may be NULL: the status alone (e.g. an existence check). */
int rg_store_membership_get(rg_store *s, const char *id, json_t **out, rg_error *err);
/* Issue 13, what a session refresh needs and nothing more: the status of the
 * membership of (user_id, org_id) into status (status_len bytes, e.g.
 * "active") and the slugs of the roles it holds into *roles (unordered;
 * the caller ranks them by its cached role table; rg_slugs_clear it). One
 * statement in one read transaction, no JSON. 0; RG_ENOTFOUND (404) when
 * there is no such membership; RG_EIO. */
int rg_store_membership_state(rg_store *s, const char *user_id, const char *org_id,
                              char *status, size_t status_len, rg_slugs *roles, rg_error *err);
/* R19: sets the roles (checked as in create; role_slugs must not be NULL),
 * role_source "api". Emits organization_membership.updated unless roles and
 * source are already those.
 * out may be NULL (a write still commits and emits its events). */
int rg_store_membership_update(rg_store *s, const char *id, const char *const *role_slugs,
                               size_t n, json_t **out, rg_error *err);
int rg_store_membership_delete(rg_store *s, const char *id, rg_error *err);

/* ---- connections (R15) ----------------------------------------------------
 * {"object":"connection","id":"conn_...","organization_id","type":"saml"|
 *  "oidc","name","state":"active", ...the config's members...,
 *  "created_at","updated_at"}: the config object's members are merged at the
 * top level, except "client_secret", which neither the API objects nor the
 * events ever carry: rg_store_connection_private returns it to the gateway. */
/* type "saml" or "oidc" (else 422 field "type"); name: 1..255 bytes;
 * config: a JSON object (borrowed) or NULL; its members named object,
 * id, organization_id, type, name, state, created_at, updated_at and
 * role_mappings are ignored. Emits connection.created.
 * out may be NULL (a write still commits and emits its events). */
int rg_store_connection_create(rg_store *s, const char *org_id, const char *type,
                               const char *name, const json_t *config, json_t **out,
                               rg_error *err);
/* org_id NULL: every connection.
 * out may be NULL: the status alone (e.g. an existence check). */
int rg_store_connection_list(rg_store *s, const char *org_id, const rg_store_list_opts *o,
                             json_t **out, rg_error *err);
/* out may be NULL: the status alone (e.g. an existence check). */
int rg_store_connection_get(rg_store *s, const char *id, json_t **out, rg_error *err);
/* Like get but with client_secret: for the gateway only, never for the API.
 * out may be NULL: the status alone (e.g. an existence check). */
int rg_store_connection_private(rg_store *s, const char *id, json_t **out, rg_error *err);
/* The SHA-256 of the stored row rg_store_connection_private's object is
 * built from, without building it: equal digests, equal objects (the
 * gateway checks at every login that the connection it built is current).
 * 404 as get. */
int rg_store_connection_digest(rg_store *s, const char *id, unsigned char dg[32],
                               rg_error *err);
/* name NULL keep; config_patch (borrowed, may be NULL): members set (a JSON
 * null member removes it). Emits connection.updated unless nothing changed.
 * out may be NULL (a write still commits and emits its events). */
int rg_store_connection_update(rg_store *s, const char *id, const char *name,
                               const json_t *config_patch, json_t **out, rg_error *err);
/* Deletes it and its mappings; emits connection.deleted. */
int rg_store_connection_delete(rg_store *s, const char *id, rg_error *err);
/* R15: {"object":"list","data":[{"object":"role_mapping","idp_group",
 * "role_slug"},...],"list_metadata":{"before":null,"after":null}} sorted by
 * idp_group then role_slug.
 * out may be NULL: the status alone (e.g. an existence check). */
int rg_store_role_mappings_get(rg_store *s, const char *conn_id, json_t **out,
                               rg_error *err);
/* R15: replaces the mappings with mappings, a JSON array (borrowed) of
 * {"idp_group": non-empty string, "role_slug": string} (else 422
 * "invalid_request"); each role_slug must be visible in the connection's
 * organization, else 422 "invalid_role" field "role_mappings[i].role_slug".
 * Duplicates are merged. Emits connection.updated unless nothing changed.
 * *out as rg_store_role_mappings_get.
 * out may be NULL (a write still commits and emits its events). */
int rg_store_role_mappings_set(rg_store *s, const char *conn_id, const json_t *mappings,
                               json_t **out, rg_error *err);

/* ---- logins (R15-R18) ----------------------------------------------------- */
/* ---- sessions (issue 13) -----------------------------------------------
 * The record of an issued session: {"object":"session","id":"session_...",
 * "organization_membership_id","user_id","organization_id","connection_id"
 * (null for admin-issued),"idp_subject","idp_session" (SAML SessionIndex /
 * OIDC sid, or null),"idp_subject_format","actor" ("admin" or null),
 * "created_at","expires_at" (the session's absolute end),"revoked_at" (or
 * null),"state":"active"|"revoked"|"expired"}. Strings may be NULL. */
typedef struct rg_store_session_rec {
    char id[64];                  /* the sid */
    int64_t expires_at;           /* seconds: the session's absolute end */
    const char *connection_id;    /* NULL for admin-issued sessions */
    const char *idp_subject;      /* SAML NameID / OIDC sub (login: the store sets it) */
    const char *idp_subject_format;   /* SAML NameID Format, may be NULL */
    const char *idp_session;      /* SAML SessionIndex / OIDC sid, for logout */
    const char *actor;            /* "admin" for admin-issued */
} rg_store_session_rec;
/* Writes the record of membership_id (404 field organization_membership_id
 * if unknown) and, if event is set (stolen), the session.created event, in
 * one transaction. */
int rg_store_session_create(rg_store *s, const rg_store_session_rec *r,
                            const char *membership_id, json_t *event, rg_error *err);
/* The sessions of a membership, newest first (404 for an unknown one). */
int rg_store_session_list(rg_store *s, const char *membership_id, const rg_store_list_opts *o,
                          json_t **out, rg_error *err);
int rg_store_session_get(rg_store *s, const char *id, json_t **out, rg_error *err);
/* Sets revoked_at and emits session.revoked (with reason if non-NULL) in one
 * transaction; an already revoked session is answered as it is, no event.
 * 404 for an unknown id. *out: the session object (may be NULL). */
int rg_store_session_revoke(rg_store *s, const char *id, const char *reason, json_t **out,
                            rg_error *err);

/* Issue 15: fn(ctx, sid, expires_at seconds) for every session record
 * revoked and not past its absolute end (what another instance's
 * revocation set must hold: the channel's listener reloads them after each
 * reconnect), in one read transaction. 0 or the store's error. */
typedef void (*rg_store_revoked_fn)(void *ctx, const char *sid, int64_t expires_at);
int rg_store_session_revoked_each(rg_store *s, rg_store_revoked_fn fn, void *ctx,
                                  rg_error *err);
/* Issue 15, R30: fn(ctx, user_id, org_id, updated_at seconds) for every
 * membership that is not active (a directory deprovisioned it) and changed
 * after `since` (seconds): its sessions issued before updated_at are
 * revoked on every instance, and a listener that reconnects reloads them
 * from here. One read transaction; 0 or the store's error. */
typedef void (*rg_store_inactive_fn)(void *ctx, const char *user_id, const char *org_id,
                                     int64_t updated_at);
int rg_store_membership_inactive_each(rg_store *s, int64_t since, rg_store_inactive_fn fn,
                                      void *ctx, rg_error *err);
/* Single logout from the IdP: revokes every live session of connection_id
 * whose idp_subject is subject (unless NULL) and whose idp_session is
 * idp_session (unless NULL; OIDC back-channel logout may name only the
 * sid), a session.revoked event each, one transaction; both NULL is 400
 * invalid_request. *out: a JSON array of the revoked sessions (may be
 * empty). */
int rg_store_session_revoke_idp(rg_store *s, const char *connection_id, const char *subject,
                                const char *idp_session, const char *reason, json_t **out,
                                rg_error *err);

typedef struct rg_store_login_user {
    const char *subject;      /* the IdP's stable id (SAML NameID / OIDC sub) */
    const char *email;        /* may be NULL */
    const char *first_name;   /* may be NULL */
    const char *last_name;    /* may be NULL */
    /* Optional: issues the session inside the login's transaction once the
     * roles are resolved (user_id: the user's id). Returns 0 with
     * *token_size (the cookie's bytes, for the login record), or a negative
     * RG_E* with err filled, which rolls the whole login back. */
    int (*issue)(void *ctx, const char *user_id, const rg_resolution *res,
                 size_t *token_size, rg_error *err);
    void *issue_ctx;
    /* Optional: the session record (issue 13); issue fills id and
     * expires_at, and the store writes the row in the same transaction with
     * this login's membership, connection and subject when id is set. */
    rg_store_session_rec *session;
    /* Optional out: this thread's CPU us spent loading the organization's
     * table and resolving the roles (the benchmark's "resolve" share). */
    int64_t *resolve_cpu_us;
    /* Optional: the organization's role table as the caller read it before
     * the login (the cache layer's copy: DESIGN.md, one login), borrowed
     * for the call. The login's transaction reads the organization's table
     * version and resolves against this table when its version and
     * organization are the ones read; else (NULL, or a role change
     * committed since the caller's read) it loads the table itself, so
     * R15-R17 always resolve against the table the transaction sees. */
    const rg_role_table *table;
    /* Optional: the rg_store_connection_digest (32 bytes) of the connection
     * row the caller verified the login with. The login's first statement
     * reads the row too and refuses the login, writing nothing, with 409
     * connection_changed (field connection_id) when it differs: the caller
     * may then verify again against the current row (issue 15: the
     * gateway's check of its built connection, no round trip of its own). */
    const unsigned char *connection_digest;
} rg_store_login_user;

/* In ONE transaction: finds the user by (connection, subject) or creates it
 * (user.created), finds or creates its membership in org_id (R18), takes
 * the organization's table (user->table when current, else loaded in the
 * transaction), resolves the roles (rg_core_resolve_login, R15-R17),
 * writes them (organization_membership.created / .updated when changed),
 * runs user->issue if set and emits authentication.succeeded, the login
 * record: type "sso", subject, user_id, organization_id, connection_id,
 * organization_membership_id, groups_received (count) and groups (the first
 * 100), mappings [{"idp_group","role_slug"}] that matched, roles,
 * role_source and token_size (when issue ran). The connection must belong to org_id (else
 * 404 field "connection_id"). An existing user's profile is not changed.
 * *res gets the resolution (clear it with rg_resolution_clear); *membership
 * the membership object (caller owns it). res and membership may be NULL:
 * the login is applied the same. */
int rg_store_login_apply(rg_store *s, const char *org_id, const char *connection_id,
                         const rg_store_login_user *user, const char *const *groups,
                         size_t n_groups, rg_resolution *res, json_t **membership,
                         rg_error *err);

/* ---- events (R26) ---------------------------------------------------------
 * {"object":"event","id":"event_...","event":"role.created","data":{...},
 *  "created_at"} */
/* For events that are not a store change: "authentication.failed",
 * "session.created" (admin-issued) and the like. event must be one of R26's
 * names (else 422 "invalid_request"); data: a JSON object (borrowed) or NULL
 * for {}. Never put a secret or token in data. */
int rg_store_event_emit(rg_store *s, const char *event, const json_t *data, rg_error *err);
/* Oldest first by default; event_name NULL or an exact event name filter.
 * out may be NULL: the status alone (e.g. an existence check). */
int rg_store_event_list(rg_store *s, const char *event_name, const rg_store_list_opts *o,
                        json_t **out, rg_error *err);

/* ---- deletion jobs (R20, R23) ---------------------------------------------
 * Runs the pending deletion jobs: each batch of at most batch_rows
 * memberships (0: 100) is one transaction that reassigns them
 * (rg_core_roles_after_delete: the organization's default with role_source
 * "default" in single-role mode, else the role removed, R13), emits
 * organization_membership.updated for each and records the job's progress;
 * once no membership holds the role the role row is removed and the job
 * marked done. stop_after_rows > 0 is a test hook: return after that many
 * membership rows, leaving the job pending, as a crash would (R23: the next
 * run resumes it). Safe to call concurrently with every other function (one
 * runner at a time: a second concurrent call returns 0 at once). Returns the
 * number of membership rows processed, or a negative code. left (may be
 * NULL) gets the jobs still pending on return (rg_store_jobs_pending's
 * answer, a negative code if that read failed): with nothing pending, the one
 * read that found none, so a caller that loops until none is left reads the
 * count once a round. */
long rg_store_jobs_run(rg_store *s, size_t batch_rows, size_t stop_after_rows, long *left,
                       rg_error *err);
/* Number of jobs not done yet, or a negative code. */
long rg_store_jobs_pending(rg_store *s, rg_error *err);

#endif
