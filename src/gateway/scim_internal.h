/* scim_internal.h: what the SCIM files of the gateway share (DESIGN.md
 * "Directory sync"; R27-R31): the User checks and PATCH (scim_user.c), the
 * Group body and PATCH parsing and the resource rendering (scim_group.c);
 * the routes are scim_routes.c. */
#ifndef ROLEGATE_SCIM_INTERNAL_H
#define ROLEGATE_SCIM_INTERNAL_H

#include <jansson.h>
#include "rolegate/error.h"
#include "rolegate/store_dsync.h"

#define SCIM_USER       "urn:ietf:params:scim:schemas:core:2.0:User"
#define SCIM_GROUP      "urn:ietf:params:scim:schemas:core:2.0:Group"
#define SCIM_ENTERPRISE "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
#define SCIM_PATCHOP    "urn:ietf:params:scim:api:messages:2.0:PatchOp"
#define SCIM_LIST       "urn:ietf:params:scim:api:messages:2.0:ListResponse"
#define SCIM_ERROR      "urn:ietf:params:scim:api:messages:2.0:Error"

/* A User body checked against the attribute table into its canonical,
 * stored form (*out, a new object without schemas/id/meta/groups/password).
 * Errors are 400 with the scimType as err->code. */
int  scim_user_check(const json_t *in, json_t **out, rg_error *err);
/* The store's fields of a checked resource (borrowed from res). */
void scim_user_fields(json_t *res, rg_dsync_user *u);
/* RFC 7644 §3.5.2 on the stored resource: *out the checked result. */
int  scim_user_patch(const json_t *current, const json_t *body, json_t **out, rg_error *err);

/* The "Operations" array of a PatchOp body (NULL with err). */
const json_t *scim_operations(const json_t *body, rg_error *err);
/* op's "op" (any case) as 0 add, 1 replace, 2 remove. */
int  scim_op_kind(const json_t *op, int *kind, rg_error *err);

/* A group write from a POST/PUT body (replace: members become exactly the
 * body's) or a PATCH body. The id arrays are malloc'd (scim_group_clear);
 * the strings are borrowed from body. */
int  scim_group_from_body(const json_t *body, int replace, rg_dsync_group *g, rg_error *err);
int  scim_group_from_patch(const json_t *body, rg_dsync_group *g, rg_error *err);
void scim_group_clear(rg_dsync_group *g);

/* SCIM resources from the store's views; base: "{base_url}/scim/v2/{dir}". */
json_t *scim_render_user(const json_t *view, const char *base);
json_t *scim_render_group(const json_t *view, const char *base);

#endif
