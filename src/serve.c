/* serve.c: `rolegate serve`, step by step: its options; the config, the
 * log, free ports and var/; the admin key (generated once into
 * admin_key_file, mode 0600, never logged); the session keys, store, cache
 * and login libraries; the listeners' built-in routes (/healthz, /readyz,
 * /metrics) and every layer's route tables; then the main thread waits for
 * signals (SIGHUP reopens the log, SIGTERM and SIGINT drain in-flight
 * requests and exit 0) and frees in reverse order. */
#include <errno.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "rolegate/api.h"
#include "rolegate/config.h"
#include "rolegate/cache.h"
#include "rolegate/ctx.h"
#include "rolegate/error.h"
#include "rolegate/gateway.h"
#include "rolegate/oidc.h"
#include "rolegate/saml.h"
#include "rolegate/http.h"
#include "rolegate/metrics.h"
#include "rolegate/store.h"
#include "rolegate/util.h"
#include "cli_internal.h"

#define ADMIN_KEY_BYTES 32

/* mkdir -p of the directory holding path (0700: keys and the database). */
static int ensure_parent(const char *path)
{
    char tmp[RG_CONFIG_STR];
    snprintf(tmp, sizeof tmp, "%s", path);
    char *d = dirname(tmp);
    if (strcmp(d, ".") == 0 || strcmp(d, "/") == 0)
        return 0;
    return rg_mkdir_p(d, 0700);
}

/* The admin key: from the config/environment, else admin_key_file, else a
 * new random key written there with mode 0600. Returns a malloc'd key. */
static char *load_admin_key(const rg_config *cfg, const char **source)
{
    if (cfg->server.admin_key[0]) {
        *source = "config or ROLEGATE_ADMIN_KEY";
        if (strlen(cfg->server.admin_key) < 16)
            rg_log(RG_LOG_WARN, "event=admin_key_short length=%zu hint=\"use 16+ random "
                   "characters\"", strlen(cfg->server.admin_key));
        return strdup(cfg->server.admin_key);
    }
    const char *file = cfg->server.admin_key_file;
    *source = file;
    size_t len = 0;
    char *k = rg_file_read(file, 4096, &len);
    if (k) {
        while (len && (k[len - 1] == '\n' || k[len - 1] == '\r' || k[len - 1] == ' '))
            k[--len] = 0;
        struct stat st;
        if (stat(file, &st) == 0 && (st.st_mode & 077))
            rg_log(RG_LOG_WARN, "event=admin_key_file_mode path=%s mode=%03o "
                   "hint=\"chmod 600\"", file, (unsigned)(st.st_mode & 0777));
        if (len == 0) {
            free(k);
            fprintf(stderr, "rolegate: admin key file %s is empty\n", file);
            return NULL;
        }
        return k;
    }
    if (access(file, F_OK) == 0) {
        fprintf(stderr, "rolegate: cannot read admin key file %s\n", file);
        return NULL;
    }
    char key[128];
    rg_random_token(key, sizeof key, ADMIN_KEY_BYTES);
    char line[160];
    int n = snprintf(line, sizeof line, "%s\n", key);
    if (ensure_parent(file) != 0 || rg_file_write(file, line, (size_t)n, 0600) != 0) {
        fprintf(stderr, "rolegate: cannot write admin key file %s: %s\n", file,
                strerror(errno));
        return NULL;
    }
    rg_log(RG_LOG_INFO, "event=admin_key_generated path=%s", file);
    return strdup(key);
}

/* ---- built-in routes ------------------------------------------------------------- */

static void h_healthz(rg_http_req *req, void *ctx)
{
    rg_http_send_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

static void h_readyz(rg_http_req *req, void *ctx)
{
    /* ready = listening and the store answers a query */
    const rg_ctx *c = ctx;
    if (!c->store || rg_store_schema_version(c->store) < 1) {
        rg_http_send_errorf(req, RG_EUNAVAIL, "not_ready", NULL, "the store does not answer");
        return;
    }
    /* issue 7: Redis down is degraded, not dead (sessions keep working) */
    if (c->cache && c->config && c->config->redis.url[0] && !rg_cache_redis_up(c->cache)) {
        rg_http_send_json(req, 200, json_pack("{s:s,s:s}", "status", "degraded",
                                              "redis", "down"));
        return;
    }
    rg_http_send_json(req, 200, json_pack("{s:s}", "status", "ready"));
}

/* issue 7 wiring: committed role-table changes invalidate the cache (and,
 * through Redis, every instance's); revocations learned from Redis reach
 * /auth's revocation set. */
static void on_store_change(void *cache, const char *org_id)
{
    rg_cache_table_invalidate(cache, org_id);
}

/* issue 13: a committed membership change makes the membership states the
 * refresh at /auth keeps stale (here and, through Redis, everywhere) */
static void on_members_change(void *cache)
{
    rg_cache_members_invalidate(cache);
}

static int on_remote_revoke(void *gw, const char *sid, int64_t exp)
{
    return rg_session_revoke(rg_gateway_revocations(gw), rg_gateway_token_cache(gw), sid,
                             exp, rg_now());
}

/* GET /metrics (admin listener, the admin key): Prometheus text. The cache
 * layer's figures (the rolegate_redis_* series only when Redis is
 * configured, issue 11 item 9), the role-table cache hit ratio, then the
 * metrics registry (logins, /auth, IdP calls: metrics.h). */
static void h_metrics(rg_http_req *req, void *ctx)
{
    const rg_ctx *c = ctx;
    rg_cache_stats st;
    memset(&st, 0, sizeof st);
    if (c->cache)
        rg_cache_stats_get(c->cache, &st);
    rg_buf b = {0};
    if (c->config && c->config->redis.url[0])
        rg_buf_printf(&b,
            "# TYPE rolegate_redis_up gauge\nrolegate_redis_up %d\n"
            "# TYPE rolegate_redis_commands_up gauge\nrolegate_redis_commands_up %d\n"
            "# TYPE rolegate_redis_subscriber_up gauge\nrolegate_redis_subscriber_up %d\n"
            "# TYPE rolegate_redis_failures_total counter\nrolegate_redis_failures_total %lu\n"
            "# TYPE rolegate_redis_skipped_total counter\nrolegate_redis_skipped_total %lu\n"
            "# TYPE rolegate_redis_connects_total counter\nrolegate_redis_connects_total %lu\n",
            c->cache ? rg_cache_redis_up(c->cache) : 0, st.redis_up, st.subscriber_up,
            st.redis_failures, st.redis_skipped, st.redis_connects);
    if (st.channel_store)   /* issue 15: no Redis, PostgreSQL LISTEN/NOTIFY */
        rg_buf_printf(&b, "# TYPE rolegate_store_channel_up gauge\n"
                      "rolegate_store_channel_up %d\n", st.channel_up);
    unsigned long total = st.table_local_hits + st.table_redis_hits + st.table_store_loads;
    rg_buf_printf(&b,
        "# TYPE rolegate_redis_configured gauge\nrolegate_redis_configured %d\n"
        "# TYPE rolegate_role_table_lookups_total counter\n"
        "rolegate_role_table_lookups_total{source=\"local\"} %lu\n"
        "rolegate_role_table_lookups_total{source=\"redis\"} %lu\n"
        "rolegate_role_table_lookups_total{source=\"store\"} %lu\n"
        "# HELP rolegate_role_table_cache_hit_ratio Role-table lookups served by a cache "
        "(in-process or Redis) rather than the store, since start.\n"
        "# TYPE rolegate_role_table_cache_hit_ratio gauge\n"
        "rolegate_role_table_cache_hit_ratio %.4f\n"
        "# TYPE rolegate_role_table_invalidations_received_total counter\n"
        "rolegate_role_table_invalidations_received_total %lu\n"
        "# TYPE rolegate_membership_state_lookups_total counter\n"
        "rolegate_membership_state_lookups_total{source=\"local\"} %lu\n"
        "rolegate_membership_state_lookups_total{source=\"store\"} %lu\n"
        "# TYPE rolegate_saml_replay_checks_local_total counter\n"
        "rolegate_saml_replay_checks_local_total %lu\n"
        "# TYPE rolegate_saml_replay_checks_unavailable_total counter\n"
        "rolegate_saml_replay_checks_unavailable_total %lu\n",
        st.configured, st.table_local_hits, st.table_redis_hits, st.table_store_loads,
        total ? (double)(st.table_local_hits + st.table_redis_hits) / (double)total : 0.0,
        st.invalidations_received, st.member_local_hits, st.member_store_loads,
        st.replay_local, st.replay_unavailable);
    char *reg = rg_metrics_render();
    if (reg)
        rg_buf_puts(&b, reg);
    free(reg);
    if (b.oom || !b.data) {
        rg_buf_free(&b);
        rg_http_send(req, 500, "text/plain", "out of memory\n", 14);
        return;
    }
    rg_http_send(req, 200, "text/plain; version=0.0.4", b.data, b.len);
    rg_buf_free(&b);
}

/* Issue 11 item 3: a port in use is found before anything is written to
 * the store, and the message names the listener and what changes it.
 * host "" = every address. 0 free (or not checkable), -1 in use. */
static int port_free(const char *what, const char *host, int port, const char *option,
                     const char *env)
{
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(host && *host ? host : NULL, ps, &hints, &ai) != 0 || !ai)
        return 0;   /* the listener itself will say what is wrong */
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol), in_use = 0;
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        in_use = bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno == EADDRINUSE;
        close(fd);
    }
    freeaddrinfo(ai);
    if (!in_use)
        return 0;
    fprintf(stderr, "rolegate: the %s on %s:%d cannot start: the port is in use; change "
            "%s (or %s)\n", what, host && *host ? host : "0.0.0.0", port, option, env);
    return -1;
}

static int ports_free(const rg_config *cfg)
{
    char host[256], ahost[256];
    int port = 0, aport = 0, bad = 0;
    rg_config_split_listen(cfg->server.public_listen, host, sizeof host, &port);
    rg_config_split_listen(cfg->server.admin_listen, ahost, sizeof ahost, &aport);
    bad |= port_free("public listener", host, port, "[server] public_listen",
                     "ROLEGATE_PUBLIC_LISTEN");
    bad |= port_free("admin listener", ahost, aport, "[server] admin_listen",
                     "ROLEGATE_ADMIN_LISTEN");
    if (cfg->demo.enabled)
        bad |= port_free("demo fixture IdP", "127.0.0.1", cfg->demo.idp_port,
                         "[demo] idp_port", "ROLEGATE_DEMO_IDP_PORT");
    return bad ? -1 : 0;
}

static rg_http_server *make_server(const rg_config *cfg, const char *name,
                                   const char *listen, const char *admin_key)
{
    rg_http_options o = {
        .name = name,
        .listen = listen,
        .threads = rg_config_threads(cfg),
        .max_body = cfg->server.max_body,
        .connection_timeout = cfg->server.connection_timeout,
        .request_timeout = cfg->server.request_timeout,
        .max_connections = cfg->server.max_connections,
        .max_connections_per_ip = cfg->server.max_connections_per_ip,
        .admin_key = admin_key,
        .trusted_proxies = admin_key ? NULL : cfg->server.trusted_proxies,
    };
    rg_error err;
    rg_http_server *s = rg_http_server_new(&o, &err);
    if (!s)
        fprintf(stderr, "rolegate: %s listener: %s\n", name, err.message);
    return s;
}

/* The probes of both listeners (ctx: the rg_ctx). */
static const rg_http_route_def main_public_routes[] = {
    {"GET", "/healthz", h_healthz, 0, 0},
    {"GET", "/readyz", h_readyz, 0, 0},
};
static const rg_http_route_def main_admin_routes[] = {
    {"GET", "/healthz", h_healthz, 0, 0},
    {"GET", "/metrics", h_metrics, 0, 0},
};

/* ---- serve, step by step ---------------------------------------------------------- */

/* What serve builds, torn down in reverse by serve_free. */
typedef struct serve_state {
    rg_ctx             ctx;
    rg_http_server    *pub, *adm;
    rg_gateway        *gw;
    rg_api            *api;
    rg_gateway_login  *login;    /* login: /login, ACS, OIDC callback */
    rg_gateway_portal *portal;   /* the setup portal */
} serve_state;

/* serve's options: -1 to go on (*path, *demo set), else the exit code. */
static int serve_args(int argc, char **argv, const char **path, int *demo)
{
    for (int i = 2; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            *path = argv[++i];
        } else if (strcmp(argv[i], "--demo") == 0) {
            *demo = 1;   /* [demo] enabled for this run (make run) */
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return cli_help("serve");
        } else {
            fprintf(stderr, "rolegate serve: unknown option '%s'\n", argv[i]);
            cli_usage(stderr, argv[0]);
            return 2;
        }
    }
    if (!*path && access(DEFAULT_CONFIG, R_OK) == 0)
        *path = DEFAULT_CONFIG;
    return -1;
}

/* The config, the log, free ports and var/: -1 to go on, else the exit
 * code. Nothing is written before the ports are known to be free. */
static int serve_config(rg_config *cfg, const char *path, int demo)
{
    rg_config_diag diag;
    if (rg_config_load(cfg, path, RG_CONFIG_ENV, &diag) != 0) {
        cli_print_diag(&diag);
        return 2;
    }
    if (demo)
        cfg->demo.enabled = 1;
    if (cfg->log.file[0])
        ensure_parent(cfg->log.file);
    if (rg_log_open(cfg->log.file[0] ? cfg->log.file : NULL, (rg_log_level)cfg->log.level) != 0)
        fprintf(stderr, "rolegate: cannot open log file %s, logging to stderr\n",
                cfg->log.file);

    if (ports_free(cfg) != 0)   /* before the store or any file is written */
        return 1;
    /* var/ layout: the database, keys and SAML SP key directories */
    if (rg_store_target_file(cfg->store.database))   /* not for a postgresql:// URL */
        ensure_parent(rg_store_target_file(cfg->store.database));
    rg_mkdir_p(cfg->session.keys_dir, 0700);
    ensure_parent(cfg->saml.sp_key_file);
    return -1;
}

/* Signals go to this thread's sigwait only: block them before any thread
 * starts so the pool threads inherit the mask. */
static void block_signals(sigset_t *sigs)
{
    sigemptyset(sigs);
    sigaddset(sigs, SIGTERM);
    sigaddset(sigs, SIGINT);
    sigaddset(sigs, SIGHUP);
    sigaddset(sigs, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, sigs, NULL);
}

/* Keys, store, cache and the login libraries, before any thread; then the
 * two servers. 0, or -1 with the reason on stderr. */
static int serve_open(serve_state *st, const rg_config *cfg, const char *admin_key)
{
    rg_ctx *ctx = &st->ctx;
    rg_error err;
    rg_error_clear(&err);
    /* session keys (dir 0700, a first ES256 key when empty) */
    if (!(ctx->keys = rg_session_keys_load(cfg->session.keys_dir, 1, &err))) {
        fprintf(stderr, "rolegate: session keys: %s\n", err.message);
        return -1;
    }
    /* the SAML SP key pair: files made at the first SAML use */
    if (!(ctx->sp_keys = rg_saml_sp_keys_new(cfg->saml.sp_key_file, cfg->saml.sp_cert_file))) {
        fprintf(stderr, "rolegate: out of memory\n");
        return -1;
    }
    if (!(ctx->store = rg_store_open(cfg->store.database, &err))) {
        char target[RG_CONFIG_STR];   /* a URL's password stays out of it */
        rg_store_target_redact(cfg->store.database, target, sizeof target);
        fprintf(stderr, "rolegate: store %s: %s\n", target, err.message);
        return -1;
    }
    /* role-table cache, replay cache, login state, revocations
     * (in-process without a Redis URL); after the store it reads */
    if (!(ctx->cache = rg_cache_new(cfg, ctx->store, &err))) {
        fprintf(stderr, "rolegate: cache: %s\n", err.message);
        return -1;
    }
    rg_store_set_change_hook(ctx->store, on_store_change, ctx->cache);
    rg_store_set_members_hook(ctx->store, on_members_change, ctx->cache);
    /* login: lasso (GType registry, xmlsec) and curl, before any thread */
    if (rg_saml_global_init() != 0 || rg_oidc_global_init() != 0) {
        fprintf(stderr, "rolegate: cannot initialise the SAML/OIDC libraries\n");
        return -1;
    }
    st->pub = make_server(cfg, "public", cfg->server.public_listen, NULL);
    st->adm = make_server(cfg, "admin", cfg->server.admin_listen, admin_key);
    if (!st->pub || !st->adm)
        return -1;
    ctx->public_server = st->pub;
    ctx->admin_server = st->adm;
    return 0;
}

/* Each layer registers its route tables with one call (before start), then
 * both listeners start. 0, or the rc with err. */
static int serve_register_start(serve_state *st, rg_error *err)
{
    rg_ctx *ctx = &st->ctx;
    if (rg_http_routes_add(st->pub, main_public_routes, RG_HTTP_NROUTES(main_public_routes),
                           ctx, err) != 0 ||
        rg_http_routes_add(st->adm, main_admin_routes, RG_HTTP_NROUTES(main_admin_routes), ctx,
                           err) != 0)
        return -1;
    if (!(st->api = rg_api_register(st->adm, ctx, err)))          /* the admin REST API */
        return -1;
    if (!(st->gw = rg_gateway_auth_register(ctx, err)))   /* /auth /logout JWKS POST /sessions */
        return -1;
    rg_cache_set_revoke_sink(ctx->cache, on_remote_revoke, st->gw);
    rg_cache_set_revoke_user_sink(ctx->cache, rg_gateway_revoke_user_sink, st->gw);   /* R30 */
    if (rg_gateway_scim_register(st->gw, err) != 0)            /* SCIM /scim/v2/{directory} */
        return -1;
    if (!(st->login = rg_gateway_login_register(st->pub, ctx, err)))  /* login + demo */
        return -1;
    rg_gateway_login_set_auth(st->login, st->gw);              /* issue 13: SAML SLO */
    rg_gateway_set_logout_hook(st->gw, rg_gateway_login_logout_hook, st->login);
    rg_gateway_demo_setup(st->login);
    if (rg_gateway_console_register(st->pub, st->adm, err) != 0)   /* console + portal assets */
        return -1;
    if (!(st->portal = rg_gateway_portal_register(st->pub, st->adm, st->login, st->api, err)))
        return -1;                                                  /* setup portal */
    if (rg_http_server_start(st->pub, err) != 0 || rg_http_server_start(st->adm, err) != 0)
        return -1;
    return 0;
}

/* The URLs on stdout (the tests and the README read them) and the log. */
static void serve_announce(const rg_config *cfg, const char *path, const char *key_source)
{
    char host[256], ahost[256];
    int port, aport;
    rg_config_split_listen(cfg->server.public_listen, host, sizeof host, &port);
    rg_config_split_listen(cfg->server.admin_listen, ahost, sizeof ahost, &aport);
    printf("rolegate: public URL %s (listening on http://%s:%d)\n", cfg->server.base_url,
           host[0] ? host : "0.0.0.0", port);
    printf("rolegate: admin URL http://%s:%d\n", ahost[0] ? ahost : "0.0.0.0", aport);
    printf("rolegate: console URL http://%s:%d/ (sign in with the admin key)\n",
           ahost[0] && strcmp(ahost, "0.0.0.0") ? ahost : "127.0.0.1", aport);
    printf("rolegate: admin key from %s\n", key_source);
    fflush(stdout);
    rg_log(RG_LOG_INFO, "event=started config=%s public=%s admin=%s",
           path ? path : "defaults", cfg->server.public_listen, cfg->server.admin_listen);
}

/* Until SIGTERM or SIGINT; SIGHUP reopens the log (from this thread, not a
 * signal handler: reopen takes a lock). */
static void serve_wait(const sigset_t *sigs)
{
    for (;;) {
        int sig = 0;
        if (sigwait(sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            if (rg_log_reopen() != 0)
                fprintf(stderr, "rolegate: cannot reopen log file\n");
            rg_log(RG_LOG_INFO, "event=log_reopened");
            continue;
        }
        if (sig == SIGTERM || sig == SIGINT) {
            rg_log(RG_LOG_INFO, "event=stopping signal=%s", sig == SIGTERM ? "TERM" : "INT");
            return;
        }
    }
}

/* In reverse order: handlers' state only after no handler can run. */
static void serve_free(serve_state *st)
{
    rg_ctx *ctx = &st->ctx;
    rg_http_server_free(st->pub);    /* stops it first if still running */
    rg_http_server_free(st->adm);
    rg_api_free(st->api);            /* after the admin server, before the store */
    if (ctx->cache)                  /* no sink call after this returns */
        rg_cache_set_revoke_sink(ctx->cache, NULL, NULL);
    if (ctx->cache)
        rg_cache_set_revoke_user_sink(ctx->cache, NULL, NULL);
    rg_gateway_free(st->gw);         /* after both servers */
    rg_gateway_portal_free(st->portal);  /* after both servers, before login */
    rg_gateway_login_free(st->login);  /* login: after both servers */
    if (ctx->store) {
        rg_store_set_change_hook(ctx->store, NULL, NULL);
        rg_store_set_members_hook(ctx->store, NULL, NULL);
    }
    rg_cache_free(ctx->cache);       /* after everything that borrows it, before the store */
    rg_store_close(ctx->store);
    rg_keyring_free(ctx->keys);
    rg_saml_sp_keys_free(ctx->sp_keys);   /* after everything that borrows it */
    rg_saml_global_shutdown();            /* last: no lasso or xmlsec object is left */
}

int cli_serve(int argc, char **argv)
{
    const char *path = NULL;
    int demo = 0;
    int rc = serve_args(argc, argv, &path, &demo);
    if (rc >= 0)
        return rc;
    static rg_config cfg;   /* lives for the whole process; read-only after load */
    if ((rc = serve_config(&cfg, path, demo)) >= 0)
        return rc;

    const char *key_source = NULL;
    char *admin_key = load_admin_key(&cfg, &key_source);
    if (!admin_key)
        return 1;
    sigset_t sigs;
    block_signals(&sigs);

    serve_state st = {.ctx = {.config = &cfg, .admin_key = admin_key}};
    int exit_code = 1;
    rg_error err;
    rg_error_clear(&err);
    if (serve_open(&st, &cfg, admin_key) != 0) {
        /* the reason is on stderr */
    } else if (serve_register_start(&st, &err) != 0) {
        fprintf(stderr, "rolegate: %s\n", err.message);
        rg_log(RG_LOG_ERROR, "event=start_failed error=%s", err.code);
    } else {
        serve_announce(&cfg, path, key_source);
        serve_wait(&sigs);
        /* drain both listeners (in-flight requests finish), then free */
        int grace_ms = cfg.server.connection_timeout * 1000;
        rg_http_server_stop(st.pub, grace_ms);
        rg_http_server_stop(st.adm, grace_ms);
        exit_code = 0;
    }
    serve_free(&st);
    memset(admin_key, 0, strlen(admin_key));
    free(admin_key);
    if (exit_code == 0)
        rg_log(RG_LOG_INFO, "event=stopped");
    return exit_code;
}
