/* api.h: the admin REST API (DESIGN.md "admin" listener): handlers that parse
 * and type-check a request, call the store (store.h) and send its JSON back,
 * plus the background thread that runs role-deletion jobs (R20-R23).
 * Handlers only orchestrate: the rules live in core and the store.
 *
 * Use from `rolegate serve`:
 *     rg_api *api = rg_api_register(admin_server, &ctx, &err);  (before start)
 *     ... serve ...
 *     rg_http_server_stop(admin_server, grace);   then   rg_api_free(api);
 *     then rg_store_close(ctx.store). */
#ifndef ROLEGATE_API_H
#define ROLEGATE_API_H

#include <stddef.h>
#include <jansson.h>
#include "rolegate/ctx.h"
#include "rolegate/error.h"
#include "rolegate/http.h"
#include "rolegate/store.h"

typedef struct rg_api rg_api;   /* opaque: the ctx it serves and the job thread */

/* Registers every admin route on admin (not started yet) and starts the
 * deletion-job thread, which runs pending jobs at once (R23: a job left by a
 * crash resumes at the next start) and again whenever a deletion is queued.
 * ctx is borrowed and must outlive the returned handle; ctx->store must be
 * open. Returns NULL with err filled on failure. Free with rg_api_free. */
rg_api *rg_api_register(rg_http_server *admin, rg_ctx *ctx, rg_error *err);

/* Stops the job thread (a batch in progress finishes first; what is left
 * stays queued for the next start, R23) and frees api. Call it after the
 * admin server stopped and before the store is closed. Accepts NULL. */
void rg_api_free(rg_api *api);

/* Wakes the job thread: a deletion was queued (R20). Thread-safe. */
void rg_api_jobs_kick(rg_api *api);

/* ---- internal to src/api (shared by its files) ------------------------- */

/* The store of api's ctx (borrowed). */
rg_store *rg_api_store(const rg_api *api);
/* The ctx api serves (borrowed). */
const rg_ctx *rg_api_ctx(const rg_api *api);

/* The public base_url of api's config without its trailing '/' (borrowed:
 * cfg->server.base, derived at config load). */
const char *rg_api_base_url(const rg_api *api);

/* The route table of each file (registered by rg_api_register, searched by
 * rg_api_route_find); every handler's ctx is the rg_api. */
extern const rg_http_route_def rg_api_roles_routes[];
extern const size_t rg_api_roles_nroutes;
extern const rg_http_route_def rg_api_orgs_routes[];
extern const size_t rg_api_orgs_nroutes;
extern const rg_http_route_def rg_api_directories_routes[];   /* R27-R31 */
extern const size_t rg_api_directories_nroutes;
extern const rg_http_route_def rg_api_metadata_routes[];     /* PUT /connections/{id}/metadata */
extern const size_t rg_api_metadata_nroutes;
extern const rg_http_route_def rg_api_logins_routes[];       /* GET /connections/{id}/logins */
extern const size_t rg_api_logins_nroutes;
/* ---- re-serving a route (public) ------------------------------------------ */
/* The admin API's route METHOD pattern (its handler's ctx is the rg_api;
 * flags and max_body as registered), for a listener that serves the same
 * route under its own guard (the setup portal: scoped to one organization).
 * NULL if the admin API has no such route. */
const rg_http_route_def *rg_api_route_find(const char *method, const char *pattern);
/* Answers a store call: rc != 0 sends err (the JSON error body); else out
 * (stolen) with status, or an empty 204 when out is NULL. */
void rg_api_reply(rg_http_req *req, int rc, const rg_error *err, int status, json_t *out);

/* The shapes most read handlers have, answered in one call (200, or the
 * store's error): GET .../{param} through get(store, that route parameter); a list
 * through list1(store, a, paging) or list2(store, a, b, paging) after the
 * paging parameters are checked (a, b: filters the caller took from the
 * request, NULL for none), or list0(store, paging). */
typedef int (*rg_api_get_fn)(rg_store *s, const char *id, json_t **out, rg_error *err);
typedef int (*rg_api_list0_fn)(rg_store *s, const rg_store_list_opts *o, json_t **out,
                               rg_error *err);
typedef int (*rg_api_list1_fn)(rg_store *s, const char *a, const rg_store_list_opts *o,
                               json_t **out, rg_error *err);
typedef int (*rg_api_list2_fn)(rg_store *s, const char *a, const char *b,
                               const rg_store_list_opts *o, json_t **out, rg_error *err);
void rg_api_reply_get(rg_http_req *req, void *ctx, rg_api_get_fn get, const char *param);
void rg_api_reply_list0(rg_http_req *req, void *ctx, rg_api_list0_fn list);
/* DELETE .../{param}: del(store, that route parameter), 204. */
typedef int (*rg_api_del_fn)(rg_store *s, const char *id, rg_error *err);
void rg_api_reply_delete(rg_http_req *req, void *ctx, rg_api_del_fn del, const char *param);
void rg_api_reply_list1(rg_http_req *req, void *ctx, rg_api_list1_fn list, const char *a);
void rg_api_reply_list2(rg_http_req *req, void *ctx, rg_api_list2_fn list, const char *a,
                        const char *b);

/* A handler of one of those shapes, defined in one line (filters of a list
 * are query parameters named qa, qb). */
#define RG_API_GET(name, fn, param) \
    static void name(rg_http_req *req, void *ctx) { rg_api_reply_get(req, ctx, fn, param); }
#define RG_API_DELETE(name, fn, param) \
    static void name(rg_http_req *req, void *ctx) { rg_api_reply_delete(req, ctx, fn, param); }
#define RG_API_LIST0(name, fn) \
    static void name(rg_http_req *req, void *ctx) { rg_api_reply_list0(req, ctx, fn); }
#define RG_API_LIST1(name, fn, qa) \
    static void name(rg_http_req *req, void *ctx) \
    { rg_api_reply_list1(req, ctx, fn, rg_http_query(req, qa)); }
#define RG_API_LIST2(name, fn, qa, qb) \
    static void name(rg_http_req *req, void *ctx) \
    { rg_api_reply_list2(req, ctx, fn, rg_http_query(req, qa), rg_http_query(req, qb)); }

/* The JSON body as an object whose members are all in allowed (a NULL-ended
 * list; NULL allows any member). Returns the borrowed object, or NULL with
 * err: 422 "invalid_type" field "body" (not an object), 422 "unknown_field"
 * field <member> (a member not in allowed). An empty optional body is {}. */
json_t *rg_api_body_object(rg_http_req *req, const char *const *allowed, rg_error *err);

/* Member key of obj as a string (borrowed from obj). Absent (or null when not
 * required): *out = NULL and 0. Wrong type: 422 "invalid_type" field key;
 * missing and required: 422 "required" field key. */
int rg_api_json_string(const json_t *obj, const char *key, int required,
                       const char **out, rg_error *err);
/* The body of a PATCH that renames (R1, R2: the slug is immutable, so
 * "slug" is an unknown field): an object of optional "name" and
 * "description" strings; *name / *desc NULL when absent, and a null
 * description is "" (it clears the description). 0 or 422 in err. */
int rg_api_name_desc_body(rg_http_req *req, const char **name, const char **desc,
                          rg_error *err);
/* Member key as a boolean: *present 0 when absent. Wrong type: 422. */
int rg_api_json_bool(const json_t *obj, const char *key, int *present, int *out,
                     rg_error *err);
/* Member key as an array of strings, copied into an arena array of borrowed
 * strings: *out (NULL when absent and not required) and *n. Wrong type: 422
 * "invalid_type" field key. */
int rg_api_json_strv(rg_http_req *req, const json_t *obj, const char *key, int required,
                     const char ***out, size_t *n, rg_error *err);
/* The same for a value that is itself the array (field names it). */
int rg_api_strv_of(rg_http_req *req, const json_t *arr, const char *field,
                   const char ***out, size_t *n, rg_error *err);
/* The array of one borrowed string (a lone "slug" given where an array may
 * stand): *out NULL-ended in the arena, *n 1. 0, or RG_ENOMEM in err. */
int rg_api_strv_one(rg_http_req *req, const char *one, const char ***out, size_t *n,
                    rg_error *err);

/* Paging query parameters of a list: limit (1-100, default 10), before,
 * after, order ("asc" | "desc"). Bad values: 422 naming the parameter.
 * Strings are borrowed from the request. */
#define RG_API_LIMIT_MAX 100
int rg_api_list_opts(rg_http_req *req, rg_store_list_opts *o, rg_error *err);

#endif
