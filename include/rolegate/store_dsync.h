/* store_dsync.h: directory sync in the store (DESIGN.md "Directory sync";
 * RBAC.md R26-R31): directories and their bearer-token hashes, the users and
 * groups a SCIM client pushes, directory group -> role mappings, and the
 * membership roles recomputed in the same transaction as every write (R28,
 * R29). The conventions of store.h apply (0 or negative RG_E*, err filled,
 * json_t **out owned by the caller, one transaction per write with its
 * events). SCIM-specific failures carry the RFC 7644 scimType as err->code:
 * 409 "uniqueness", 400 "invalidValue" / "invalidFilter" / "mutability". */
#ifndef ROLEGATE_STORE_DSYNC_H
#define ROLEGATE_STORE_DSYNC_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "rolegate/error.h"
#include "rolegate/store.h"

#define RG_DSYNC_TOKEN_HASH 65   /* hex SHA-256 + NUL */

/* The hex SHA-256 of a bearer token, as the store keeps it. */
void rg_store_dsync_token_hash(const char *token, char out[RG_DSYNC_TOKEN_HASH]);

/* ---- directories (admin) -------------------------------------------------
 * {"object":"directory","id":"directory_...","organization_id","name","type",
 *  "state":"active"|"deleting","created_at","updated_at"} (the API adds
 * scim_base_url and, once, bearer_token). type: "okta scim v2.0" |
 * "azure scim v2.0" | "generic scim v2.0" (else 422 field "type"); name
 * 1..255 bytes. token_hash: hex SHA-256 of the bearer token. Emits
 * directory.created. */
int rg_store_directory_create(rg_store *s, const char *org_id, const char *name,
                              const char *type, const char *token_hash, json_t **out,
                              rg_error *err);
/* org_id NULL: every directory. */
int rg_store_directory_list(rg_store *s, const char *org_id, const rg_store_list_opts *o,
                            json_t **out, rg_error *err);
int rg_store_directory_get(rg_store *s, const char *id, json_t **out, rg_error *err);
/* R31: the token becomes token_hash at once (the old one stops working). */
int rg_store_directory_token_set(rg_store *s, const char *id, const char *token_hash,
                                 json_t **out, rg_error *err);
/* The directory's token hash and organization, for the SCIM endpoint: 1
 * found (and active), 0 not (or being deleted), negative error. */
int rg_store_directory_auth(rg_store *s, const char *id, char hash[RG_DSYNC_TOKEN_HASH],
                            char org_id[64], rg_error *err);
/* R31 (answer 202): state "deleting" at once (its SCIM endpoint answers 401
 * from then on), directory.deleted emitted and a job queued
 * (rg_store_jobs_run runs it): batches remove its users and groups; the
 * memberships they held keep existing with the organization's default role
 * (role_source "default"); the last batch removes the directory. */
int rg_store_directory_delete(rg_store *s, const char *id, json_t **out, rg_error *err);

/* ---- directory users and groups (admin, read) ----------------------------
 * {"object":"directory_user","id":"directory_user_...","directory_id",
 *  "organization_id","idp_id","user_id","email","first_name","last_name",
 *  "state":"active"|"inactive","role":{slug}|null,"roles":[{slug}],
 *  "groups":[{"id","name"}],"custom_attributes":{...},"created_at",
 *  "updated_at"}; {"object":"directory_group","id":"directory_group_...",
 *  "idp_id","directory_id","organization_id","name","created_at",
 *  "updated_at"}. Lists: directory_id or group_id / user_id (either may be
 * NULL, not both: 422 "invalid_request"). */
int rg_store_directory_user_list(rg_store *s, const char *directory_id, const char *group_id,
                                 const rg_store_list_opts *o, json_t **out, rg_error *err);
int rg_store_directory_user_get(rg_store *s, const char *id, json_t **out, rg_error *err);
int rg_store_directory_group_list(rg_store *s, const char *directory_id, const char *user_id,
                                  const rg_store_list_opts *o, json_t **out, rg_error *err);
int rg_store_directory_group_get(rg_store *s, const char *id, json_t **out, rg_error *err);

/* ---- directory role mappings (R28) ----------------------------------------
 * A JSON array of {"directory_group_id","role_slug"} sorted by group then
 * slug. set: every group must be one of the directory's (422 "invalid_request"
 * field "role_mappings[i].directory_group_id"), every slug visible in its
 * organization (422 "invalid_role"); duplicates merged; the roles of every
 * directory user are recomputed in the same transaction (R29). */
int rg_store_directory_mappings_get(rg_store *s, const char *id, json_t **out, rg_error *err);
int rg_store_directory_mappings_set(rg_store *s, const char *id, const json_t *mappings,
                                    json_t **out, rg_error *err);

/* ---- SCIM writes (R27-R30) -------------------------------------------------
 * What a SCIM User becomes in the store; strings borrowed from resource. */
typedef struct rg_dsync_user {
    json_t *resource;          /* the attributes to keep (a reference the store drops) */
    const char *user_name;     /* required, unique per directory (case-insensitive) */
    const char *external_id;   /* may be NULL */
    const char *email;         /* primary email, may be NULL */
    const char *first_name, *last_name;   /* may be NULL */
    int active;
} rg_dsync_user;
/* Builds the new user from the stored resource (current: NULL on create).
 * Runs inside the write transaction (so a PATCH reads and writes one
 * version). Returns 0 or negative with err (nothing is written). */
typedef int (*rg_dsync_user_fn)(void *ctx, const json_t *current, rg_dsync_user *out,
                                rg_error *err);
/* What a write did to the user's sessions (R30). */
typedef struct rg_dsync_outcome {
    char user_id[64];          /* the linked user ("" if none) */
    char org_id[64];
    int deprovisioned;         /* now inactive or deleted: revoke its sessions */
} rg_dsync_outcome;

/* A SCIM view: {"id","resource":{...},"created_at","updated_at","groups":
 * [{"value","display"}]} for users; {"id","display_name","external_id",
 * "created_at","updated_at","members":[{"value","display"}]} for groups
 * (members only when asked). */

/* Creates (id NULL) or replaces/patches the user id of directory_id. R27:
 * linked to the user of its email (else a userName that is an email;
 * created when none) and its membership of the organization (created when
 * none); the roles recomputed (R28); active false sets the membership
 * "inactive" (R30), true restores it. Emits dsync.user.created|updated,
 * user.created, organization_membership.created|updated. 409 "uniqueness"
 * for a taken userName; 404 for an unknown id. out, oc may be NULL. */
int rg_store_dsync_user_write(rg_store *s, const char *directory_id, const char *id,
                              rg_dsync_user_fn fn, void *ctx, rg_dsync_outcome *oc,
                              json_t **out, rg_error *err);
int rg_store_dsync_user_get(rg_store *s, const char *directory_id, const char *id,
                            json_t **out, rg_error *err);
/* R30: removes the user from its groups and the directory, deletes its
 * membership (organization_membership.deleted, dsync.user.deleted);
 * oc->deprovisioned set. */
int rg_store_dsync_user_delete(rg_store *s, const char *directory_id, const char *id,
                               rg_dsync_outcome *oc, rg_error *err);

/* A filter term "attr eq value" (terms are and-ed). Users: id, userName
 * (case-insensitive), externalId, displayName, emails.value (any email,
 * case-insensitive). Groups: id, displayName, externalId, members.value /
 * members (has that member). Another attr: 400 "invalidFilter". */
typedef struct rg_dsync_term {
    const char *attr;
    const char *value;
} rg_dsync_term;
/* {"total": n, "items": [views]}: startIndex 1-based (< 1 is 1), count
 * 0..1000 (items at most count). */
int rg_store_dsync_user_query(rg_store *s, const char *directory_id,
                              const rg_dsync_term *terms, size_t n_terms, long start,
                              long count, json_t **out, rg_error *err);

/* A group write: display_name NULL keep (required on create); external_id
 * NULL keep, "" clear; replace_members: members become add exactly; else
 * add then remove. Every member must be a user of the directory (400
 * "invalidValue" naming it, nothing changed). Membership roles of every
 * user added or removed are recomputed (R29). Emits dsync.group.created|
 * updated, dsync.group.user_added|user_removed per member. */
typedef struct rg_dsync_group {
    const char *display_name;
    const char *external_id;
    int replace_members;
    const char *const *add;
    size_t n_add;
    const char *const *remove;
    size_t n_remove;
} rg_dsync_group;
int rg_store_dsync_group_write(rg_store *s, const char *directory_id, const char *id,
                               const rg_dsync_group *g, json_t **out, rg_error *err);
int rg_store_dsync_group_get(rg_store *s, const char *directory_id, const char *id,
                             int with_members, json_t **out, rg_error *err);
int rg_store_dsync_group_query(rg_store *s, const char *directory_id,
                               const rg_dsync_term *terms, size_t n_terms, long start,
                               long count, int with_members, json_t **out, rg_error *err);
/* Its members' roles recomputed (R29); dsync.group.deleted. */
int rg_store_dsync_group_delete(rg_store *s, const char *directory_id, const char *id,
                                rg_error *err);

#endif
