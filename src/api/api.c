/* api.c: the admin API's handle: route registration, the one reply helper
 * every handler ends with, and the background thread that runs role-deletion
 * jobs (R20: DELETE answers 202, the job reassigns memberships later; R23:
 * pending jobs resume at the next start). The thread sleeps on a condition
 * variable and is woken by rg_api_jobs_kick after each queued deletion. */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rolegate/api.h"
#include "rolegate/util.h"

/* While jobs are pending but nothing ran (another runner holds them, or a
 * transient store error), retry after this long. */
#define JOBS_RETRY_MS 200
/* Look for pending jobs at least this often even unkicked: the job of an
 * instance that died mid-run (R23) is taken over by another within this
 * (one cheap COUNT per instance per period). */
#define JOBS_IDLE_MS 5000

struct rg_api {
    rg_ctx         *ctx;        /* borrowed */
    pthread_t       thread;
    int             started;
    pthread_mutex_t lock;       /* guards kicked and stop */
    pthread_cond_t  wake;
    int             kicked;
    int             stop;
};

const rg_ctx *rg_api_ctx(const rg_api *api)
{
    return api->ctx;
}

/* Every route table of the admin API (each file declares its own). */
static const struct {
    const rg_http_route_def *routes;
    const size_t            *n;
} tables[] = {
    {rg_api_roles_routes, &rg_api_roles_nroutes},
    {rg_api_orgs_routes, &rg_api_orgs_nroutes},
    {rg_api_directories_routes, &rg_api_directories_nroutes},
    {rg_api_metadata_routes, &rg_api_metadata_nroutes},
    {rg_api_logins_routes, &rg_api_logins_nroutes},
};

const rg_http_route_def *rg_api_route_find(const char *method, const char *pattern)
{
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
        for (size_t i = 0; i < *tables[t].n; i++) {
            const rg_http_route_def *d = &tables[t].routes[i];
            if (strcmp(d->method, method) == 0 && strcmp(d->pattern, pattern) == 0)
                return d;
        }
    return NULL;
}

rg_store *rg_api_store(const rg_api *api)
{
    assert(api && api->ctx && api->ctx->store);
    return api->ctx->store;
}

const char *rg_api_base_url(const rg_api *api)
{
    assert(api && api->ctx && api->ctx->config);
    return api->ctx->config->server.base;
}

void rg_api_reply(rg_http_req *req, int rc, const rg_error *err, int status, json_t *out)
{
    if (rc != 0) {
        json_decref(out);
        rg_http_send_error(req, err);
        return;
    }
    if (!out) {
        rg_http_send(req, status == 200 ? 204 : status, NULL, "", 0);
        return;
    }
    rg_http_send_json(req, status, out);
}

void rg_api_reply_get(rg_http_req *req, void *ctx, rg_api_get_fn get, const char *param)
{
    rg_error err;
    rg_error_clear(&err);
    json_t *out = NULL;
    int rc = get(rg_api_store(ctx), rg_http_param(req, param), &out, &err);
    rg_api_reply(req, rc, &err, 200, out);
}

void rg_api_reply_delete(rg_http_req *req, void *ctx, rg_api_del_fn del, const char *param)
{
    rg_error err;
    rg_error_clear(&err);
    int rc = del(rg_api_store(ctx), rg_http_param(req, param), &err);
    rg_api_reply(req, rc, &err, 204, NULL);
}

/* One list answer: paging checked, then the store's list with 0-2 filters. */
typedef struct list_call {
    rg_api_list0_fn f0;
    rg_api_list1_fn f1;
    rg_api_list2_fn f2;
    const char *a, *b;
} list_call;

static void reply_list(rg_http_req *req, void *ctx, const list_call *c)
{
    rg_error err;
    rg_error_clear(&err);
    rg_store_list_opts o;
    json_t *out = NULL;
    rg_store *st = rg_api_store(ctx);
    int rc = rg_api_list_opts(req, &o, &err);
    if (!rc)
        rc = c->f2 ? c->f2(st, c->a, c->b, &o, &out, &err)
           : c->f1 ? c->f1(st, c->a, &o, &out, &err)
           : c->f0 ? c->f0(st, &o, &out, &err)
                   : rg_error_set(&err, RG_EINTERNAL, "internal", NULL, "no list");
    rg_api_reply(req, rc, &err, 200, out);
}

void rg_api_reply_list0(rg_http_req *req, void *ctx, rg_api_list0_fn list)
{
    reply_list(req, ctx, &(list_call){.f0 = list});
}

void rg_api_reply_list1(rg_http_req *req, void *ctx, rg_api_list1_fn list, const char *a)
{
    reply_list(req, ctx, &(list_call){.f1 = list, .a = a});
}

void rg_api_reply_list2(rg_http_req *req, void *ctx, rg_api_list2_fn list, const char *a,
                        const char *b)
{
    reply_list(req, ctx, &(list_call){.f2 = list, .a = a, .b = b});
}

/* ---- the job thread -------------------------------------------------------- */

static void deadline_in(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Runs jobs until none is pending or nothing moves. Returns the wait before
 * the next look, in ms. */
static long run_jobs(rg_api *api)
{
    rg_store *st = rg_api_store(api);
    for (;;) {
        rg_error err;
        rg_error_clear(&err);
        long pending = 0;   /* read by the run: once a round */
        long rows = rg_store_jobs_run(st, 0, 0, &pending, &err);
        if (rows < 0) {
            rg_log(RG_LOG_ERROR, "event=jobs_failed code=%s", err.code);
            return JOBS_RETRY_MS * 5;
        }
        if (rows > 0)
            rg_log(RG_LOG_INFO, "event=jobs_ran memberships=%ld", rows);
        if (pending < 0) {
            rg_log(RG_LOG_ERROR, "event=jobs_failed code=%s", err.code);
            return JOBS_RETRY_MS * 5;
        }
        if (pending == 0)
            return JOBS_IDLE_MS;
        if (rows == 0)
            return JOBS_RETRY_MS;   /* another runner has them: look again soon */
        pthread_mutex_lock(&api->lock);
        int stop = api->stop;
        pthread_mutex_unlock(&api->lock);
        if (stop)
            return 0;
    }
}

static void *jobs_main(void *arg)
{
    rg_api *api = arg;
    long wait_ms = run_jobs(api);          /* R23: resume what a crash left */
    pthread_mutex_lock(&api->lock);
    while (!api->stop) {
        if (!api->kicked) {
            struct timespec ts;
            deadline_in(&ts, wait_ms);
            int rc = pthread_cond_timedwait(&api->wake, &api->lock, &ts);
            if (rc != 0 && rc != ETIMEDOUT)
                break;
            if (api->stop)
                break;
        }
        api->kicked = 0;
        pthread_mutex_unlock(&api->lock);
        wait_ms = run_jobs(api);
        pthread_mutex_lock(&api->lock);
    }
    pthread_mutex_unlock(&api->lock);
    return NULL;
}

void rg_api_jobs_kick(rg_api *api)
{
    if (!api)
        return;
    pthread_mutex_lock(&api->lock);
    api->kicked = 1;
    pthread_cond_signal(&api->wake);
    pthread_mutex_unlock(&api->lock);
}

/* ---- lifecycle ------------------------------------------------------------- */

rg_api *rg_api_register(rg_http_server *admin, rg_ctx *ctx, rg_error *err)
{
    if (!admin || !ctx || !ctx->store) {
        rg_error_set(err, RG_EINTERNAL, "api_not_ready", NULL,
                     "the admin API needs a server and an open store");
        return NULL;
    }
    rg_api *api = calloc(1, sizeof *api);
    if (!api) {
        rg_error_oom(err);
        return NULL;
    }
    api->ctx = ctx;
    pthread_mutex_init(&api->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);   /* immune to clock jumps */
    pthread_cond_init(&api->wake, &ca);
    pthread_condattr_destroy(&ca);

    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
        if (rg_http_routes_add(admin, tables[t].routes, *tables[t].n, api, err) != 0) {
            rg_api_free(api);
            return NULL;
        }
    int rc = pthread_create(&api->thread, NULL, jobs_main, api);
    if (rc != 0) {
        rg_error_set(err, RG_EINTERNAL, "api_jobs", NULL, "cannot start the job thread: %s",
                     strerror(rc));
        rg_api_free(api);
        return NULL;
    }
    api->started = 1;
    return api;
}

void rg_api_free(rg_api *api)
{
    if (!api)
        return;
    if (api->started) {
        pthread_mutex_lock(&api->lock);
        api->stop = 1;
        pthread_cond_signal(&api->wake);
        pthread_mutex_unlock(&api->lock);
        pthread_join(api->thread, NULL);
    }
    pthread_cond_destroy(&api->wake);
    pthread_mutex_destroy(&api->lock);
    free(api);
}
