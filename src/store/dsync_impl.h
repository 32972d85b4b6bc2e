/* dsync_impl.h: what directory.c and dsync.c share (directory sync, R27-R31):
 * the objects' JSON, the R28 role recomputation of a directory user's
 * membership and the hooks other store files call when a change affects
 * directory roles (R29) or a directory is deleted (R31). */
#ifndef ROLEGATE_DSYNC_IMPL_H
#define ROLEGATE_DSYNC_IMPL_H

#include "rolegate/store_dsync.h"
#include "store_impl.h"

/* Admin objects (store_dsync.h shapes); NULL with err (404 when missing). */
json_t *rg_st_directory_json(st_db *db, const char *id, rg_error *err);
json_t *rg_st_dir_user_json(st_db *db, const char *id, rg_error *err);
json_t *rg_st_dir_group_json(st_db *db, const char *id, rg_error *err);
/* {"id","idp_id","email","first_name","last_name","state"}: the user in
 * dsync.group.user_added|user_removed (one query). */
json_t *rg_st_dir_user_brief(st_db *db, const char *id, rg_error *err);
/* Appends {k0: column 0, k1: column 1} of every row of sql (whose one
 * parameter is id) to arr. 0, or negative with err. */
int rg_st_dsync_pairs(st_db *db, json_t *arr, const char *k0, const char *k1, const char *sql,
                      const char *id, rg_error *err);

/* The organization of directory dir if it is active: 0, or 404
 * (field directory_id) / negative error. */
int rg_st_dsync_dir_org(st_db *db, const char *dir, char org[ST_ID], rg_error *err);
/* The membership of (user_id, org) into om, with its role_source and
 * status: 1 found, 0 none (om ""), negative error. */
int rg_st_dsync_membership_of(st_db *db, const char *user_id, const char *org,
                              char om[ST_ID], char source[16], char status[16], rg_error *err);
/* WorkOS custom_attributes of a stored SCIM resource (a new object). */
json_t *rg_st_dsync_custom_attributes(const json_t *resource);
/* SCIM views (store_dsync.h) of one user of directory dir; and one read
 * transaction around such a builder. */
json_t *rg_st_dsync_user_view(st_db *db, const char *dir, const char *id, rg_error *err);
int rg_st_dsync_view(rg_store *s, const char *dir,
                     json_t *(*fn)(st_db *, const char *, const char *, rg_error *),
                     const char *id, json_t **out, rg_error *err);

/* R28/R30: sets the membership of directory user du_id in org from its
 * groups' mappings (t: the organization's table, for ranks and default)
 * and its active flag: created when none exists, status "inactive" while
 * the user is inactive; organization_membership.created|updated when it
 * changed. A user without a linked user is skipped. roles_out (may be
 * NULL; clear it): the membership's roles now, in priority order. */
int rg_st_dsync_recompute(st_db *db, const rg_role_table *t, const char *org_id,
                          const char *du_id, rg_slugs *roles_out, rg_error *err);
/* R29: the same for every directory user of org_id (NULL: of every
 * organization), e.g. after its priority order or default changed. */
int rg_st_dsync_recompute_org(st_db *db, const char *org_id, rg_error *err);
/* R20/R29: a role is being deleted: its directory mappings go and the
 * directory users of its scope (org_id NULL: all) are recomputed. */
int rg_st_dsync_role_deleted(st_db *db, const char *role_id, const char *org_id,
                             rg_error *err);
/* R31: one batch (<= limit rows) of a directory deletion job; returns the
 * rows processed, 0 when the directory is gone and the job marked done. */
long rg_st_dsync_job_batch(st_db *db, const char *job_id, const char *dir_id,
                           size_t limit, rg_error *err);

#endif
