/* core.h: the role model of RBAC.md, pure: no I/O, no globals, libc only.
 * Slugs and names (R1-R6), the compiled role table of one organization
 * (R7-R11), resolution of roles at login (R12-R17), the role-assignment rules
 * of the API (R12-R14, R19, R20) and the session claims (R24).
 * Memory: every function that returns heap memory says so; the matching
 * *_free / *_clear functions accept NULL. */
#ifndef ROLEGATE_CORE_H
#define ROLEGATE_CORE_H

#include <stddef.h>
#include <stdint.h>
#include "rolegate/error.h"

#define RG_SLUG_MAX 48   /* R1, R2 */
#define RG_NAME_MAX 48   /* R2: names of roles and permissions, in characters */
#define RG_DESC_MAX 150  /* R2: descriptions, in characters */

typedef enum { RG_ROLE_ENV = 0, RG_ROLE_ORG = 1 } rg_role_type;

typedef enum {
    RG_SOURCE_NONE = 0,      /* no membership yet (R18) */
    RG_SOURCE_IDP,           /* "idp": set by an SSO login (R17) */
    RG_SOURCE_DIRECTORY,     /* "directory": never overridden by SSO (R17) */
    RG_SOURCE_API,           /* "api": set through the admin API (R19) */
    RG_SOURCE_DEFAULT        /* "default": fell back to the default role */
} rg_role_source;

const char *rg_core_source_name(rg_role_source s);     /* "idp", ... ; "" for NONE */
rg_role_source rg_core_source_parse(const char *s);    /* NONE if unknown */

/* ---- slugs, names, descriptions (R1-R6) --------------------------------
 * Each returns 0, or a negative code with err filled: status 422, code
 * "invalid_slug" | "invalid_name" | "invalid_description", field set, and a
 * message naming the rule broken. */

/* R1 + R3 (type ENV: no "org-" prefix) + R4 (type ORG, explicit: must begin
 * with "org-"). "priority" is reserved for both. field names the field in the
 * error (usually "slug"). */
int rg_core_role_slug_check(const char *slug, rg_role_type type, const char *field,
                            rg_error *err);
/* R2: permission slugs. */
int rg_core_permission_slug_check(const char *slug, const char *field, rg_error *err);
/* R2: 1..48 characters (UTF-8 code points), valid UTF-8, no control chars. */
int rg_core_name_check(const char *name, const char *field, rg_error *err);
/* R2: 0..150 characters (UTF-8 code points), valid UTF-8. NULL is fine. */
int rg_core_description_check(const char *desc, const char *field, rg_error *err);

/* R5: generates the slug of an organization role created without one, from
 * its name and its id ("role_<ULID>"): the normalized name, "-", and the last
 * 6 characters of the ULID lowercased; the name part cut so the whole is
 * <= 48 and separators left at the cut trimmed; a name that normalizes to
 * nothing yields the suffix alone. out must hold RG_SLUG_MAX+1 bytes.
 * Returns 0, or RG_EINVAL if role_id has no ULID part. */
int rg_core_role_slug_generate(const char *name, const char *role_id,
                               char out[RG_SLUG_MAX + 1]);

/* ---- the compiled role table (R7-R11, R15) -----------------------------
 * Built from what the store holds; immutable once built, so it can be
 * shared between threads and cached (its version tells when it is stale). */

typedef struct rg_role_spec {
    const char *slug;
    rg_role_type type;
    const char *const *permissions;   /* permission slugs, any order */
    size_t n_permissions;
} rg_role_spec;

typedef struct rg_group_mapping {
    const char *connection_id;        /* the connection that owns it (R15) */
    const char *idp_group;            /* exact, case-sensitive */
    const char *role_slug;
} rg_group_mapping;

typedef struct rg_table_spec {
    const char *organization_id;      /* NULL: the environment alone */
    uint64_t version;                 /* carried through for caches */
    int multiple_roles;               /* R12 environment setting */
    /* Environment roles in the environment's priority order, highest first. */
    const rg_role_spec *env_roles;
    size_t n_env_roles;
    const char *env_default;          /* R7: the environment default role */
    /* The organization's own roles (any order). */
    const rg_role_spec *org_roles;
    size_t n_org_roles;
    /* R9: the organization's own priority order (slugs, highest first) when it
     * is independent, else NULL/0 to inherit the environment's live. Roles of
     * the table missing from it are placed at the bottom (R10): environment
     * roles in environment order, then organization roles by slug. Slugs in
     * it that name no role are ignored. */
    const char *const *org_order;
    size_t n_org_order;
    const char *org_default;          /* R9: own default, or NULL to inherit */
    /* R15: mappings of the organization's connections; mappings to roles not
     * in the table are ignored. */
    const rg_group_mapping *mappings;
    size_t n_mappings;
} rg_table_spec;

typedef struct rg_role_table rg_role_table;   /* opaque, immutable */

/* Builds the table. Returns NULL with err filled (status 500, code
 * "invalid_role_table") when the spec is inconsistent, e.g. a default role
 * that is not in the table, or duplicate slugs. Free with rg_role_table_free. */
rg_role_table *rg_role_table_build(const rg_table_spec *spec, rg_error *err);
void rg_role_table_free(rg_role_table *t);

uint64_t    rg_role_table_version(const rg_role_table *t);
int         rg_role_table_multiple_roles(const rg_role_table *t);
const char *rg_role_table_organization(const rg_role_table *t);  /* may be NULL */
/* R8/R11: the effective priority order, highest first (borrowed pointers,
 * valid while t lives). */
size_t      rg_role_table_count(const rg_role_table *t);
const char *rg_role_table_slug_at(const rg_role_table *t, size_t rank);
rg_role_type rg_role_table_type_at(const rg_role_table *t, size_t rank);
/* Rank of slug in the priority order (0 = highest), or -1 if not visible. */
long        rg_role_table_rank(const rg_role_table *t, const char *slug);
/* R7/R9: the effective default role (borrowed). */
const char *rg_role_table_default(const rg_role_table *t);
/* Permissions of one role, sorted (borrowed array of borrowed strings). */
const char *const *rg_role_table_permissions(const rg_role_table *t, const char *slug,
                                             size_t *n);

/* ---- a list of role slugs, owned ------------------------------------------ */
/* pooled != 0: the strings live in the same allocation as v (one malloc per
 * list, as resolution builds them); rg_slugs_clear handles both forms. A
 * list built by hand leaves pooled 0 and owns each string. */
typedef struct rg_slugs { char **v; size_t n; int pooled; } rg_slugs;
void rg_slugs_clear(rg_slugs *s);   /* frees every string and the array */

/* ---- resolution at login (R12-R17) -------------------------------------- */
typedef struct rg_login_input {
    const char *connection_id;           /* only this connection's mappings */
    const char *const *groups;           /* groups the IdP sent (may repeat) */
    size_t n_groups;
    const char *const *current_roles;    /* the membership's roles; n=0 if none */
    size_t n_current;
    rg_role_source current_source;       /* RG_SOURCE_NONE: no membership (R18) */
} rg_login_input;

typedef struct rg_resolution {
    rg_slugs roles;                /* new roles, in priority order, >= 1 (R13) */
    rg_role_source source;         /* new role_source */
    int changed;                   /* roles or source differ from the current */
    int created;                   /* no membership existed (R18) */
    /* The mappings that matched, for the login record: pairs (group, role),
     * in the order of the groups received, one pair per mapping used. */
    rg_slugs matched_groups;
    rg_slugs matched_roles;
    rg_slugs permissions;          /* union over roles, sorted, unique */
} rg_resolution;

/* R15-R17: single-role: the highest-priority mapped role; multiple: every
 * mapped role; no match: API-set roles kept, else the default role;
 * "directory" roles never overridden. Current roles that are no longer in
 * the table are dropped first (R13 falls back to the default).
 * Returns 0 or a negative code (only on allocation failure). Clear *out with
 * rg_resolution_clear. */
int  rg_core_resolve_login(const rg_role_table *t, const rg_login_input *in,
                           rg_resolution *out, rg_error *err);
void rg_resolution_clear(rg_resolution *r);

/* R12/R19: roles asked for through the API. Checks them against the table
 * (unknown: 422 "invalid_role", field "role_slugs"; empty list: 422
 * "invalid_role"; several when multiple_roles is off: 422
 * "multiple_roles_not_enabled") and writes them deduplicated in priority order
 * to *out. Returns 0 or a negative code. */
int  rg_core_roles_assign(const rg_role_table *t, const char *const *slugs, size_t n,
                          rg_slugs *out, rg_error *err);

/* R14: the single role a membership keeps when multiple_roles is turned off:
 * its highest-priority visible role, else the default. *out has 1 element. */
int  rg_core_roles_keep_highest(const rg_role_table *t, const char *const *roles,
                                size_t n, rg_slugs *out);

/* R20/R13: a membership's roles after `deleted` is removed: single-role (or
 * nothing left): the default role with *source = RG_SOURCE_DEFAULT;
 * multiple-roles with roles left: those roles, source unchanged. The table
 * passed is the one that no longer shows the deleted role (its default is the
 * replacement). Returns 1 if the membership changes, 0 if it did not hold the
 * role, negative on allocation failure. */
int  rg_core_roles_after_delete(const rg_role_table *t, const char *const *roles,
                                size_t n, const char *deleted, rg_slugs *out,
                                rg_role_source *source);

/* Union of the permissions of roles, sorted and unique. */
int  rg_core_permissions_of(const rg_role_table *t, const char *const *roles, size_t n,
                            rg_slugs *out);

/* ---- session claims (R24) ----------------------------------------------- */
typedef struct rg_claims {
    const char *iss, *sub, *sid, *jti, *org_id;
    const char *email;                   /* optional, NULL to omit */
    const char *const *roles;            /* priority order; role = roles[0] */
    size_t n_roles;
    const char *const *permissions;      /* sorted */
    size_t n_permissions;
    int omit_permissions;                /* R24 policy omit_permissions */
    const char *act_sub;                 /* admin-issued: act {"sub": ...} */
    int64_t iat, exp;
    int64_t auth_time;                   /* session start (refresh keeps it); 0 omits */
} rg_claims;

/* Writes the claims as compact JSON (keys in a fixed order, strings escaped)
 * into a malloc'd string (*json, caller frees) and its length. Returns 0 or
 * RG_ENOMEM. */
int rg_core_claims_json(const rg_claims *c, char **json, size_t *len);

#endif
