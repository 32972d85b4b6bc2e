/* config_options.c: the option table of rolegate.conf, one row per option
 * (section, name, type, where it lives in rg_config, bounds, the older
 * environment alias), and the sections it knows; the defaults every parse
 * starts from; what is derived from the options once they are read (base,
 * origin, login URL, secure); the thread count. A new option is one row
 * here, a field in rg_config and its default: parsing, checking and the
 * ROLEGATE_<SECTION>_<OPTION> override come from the row. */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "rolegate/config.h"
#include "rolegate/util.h"
#include "config_internal.h"

#define O(sec, field) offsetof(rg_config, sec.field), sizeof(((rg_config *)0)->sec.field)
const opt_def cfg_opts[] = {
    {"server", "public_listen", T_LISTEN, O(server, public_listen), 0, 0, "ROLEGATE_PUBLIC_LISTEN"},
    {"server", "admin_listen", T_LISTEN, O(server, admin_listen), 0, 0, "ROLEGATE_ADMIN_LISTEN"},
    {"server", "base_url", T_HTTP_URL, O(server, base_url), 0, 0, "ROLEGATE_BASE_URL"},
    {"server", "admin_key", T_STR, O(server, admin_key), 0, 0, "ROLEGATE_ADMIN_KEY"},
    {"server", "admin_key_file", T_PATH, O(server, admin_key_file), 0, 0, NULL},
    {"server", "threads", T_INT, O(server, threads), 0, 256, NULL},
    {"server", "max_body", T_SIZE, O(server, max_body), 1024, 1LL << 30, NULL},
    {"server", "connection_timeout", T_DURATION, O(server, connection_timeout), 1, 3600, NULL},
    {"server", "request_timeout", T_DURATION, O(server, request_timeout), 1, 3600, NULL},
    {"server", "max_connections", T_INT, O(server, max_connections), 1, 1000000, NULL},
    {"server", "max_connections_per_ip", T_INT, O(server, max_connections_per_ip), 0, 1000000, NULL},
    {"server", "trusted_proxies", T_PROXIES, O(server, trusted_proxies), 0, 0, NULL},
    {"server", "return_to_origins", T_ORIGINS, O(server, return_to_origins), 0, 0, NULL},
    {"server", "portal_link_ttl", T_DURATION, O(server, portal_link_ttl), 1, 86400, NULL},
    {"store", "database", T_PATH, O(store, database), 0, 0, "ROLEGATE_DATABASE"},
    {"log", "file", T_STR, O(log, file), 0, 0, NULL},
    {"log", "level", T_LOGLEVEL, O(log, level), 0, 0, NULL},
    {"session", "keys_dir", T_PATH, O(session, keys_dir), 0, 0, "ROLEGATE_KEYS_DIR"},
    {"session", "lifetime", T_DURATION, O(session, lifetime), 10, 366LL * 86400, NULL},
    {"session", "token_lifetime", T_DURATION, O(session, token_lifetime), 2, 366LL * 86400, NULL},
    {"session", "idle_timeout", T_DURATION, O(session, idle_timeout), 2, 366LL * 86400, NULL},
    {"session", "refresh_after", T_DURATION, O(session, refresh_after), 1, 366LL * 86400, NULL},
    {"session", "refresh", T_BOOL, O(session, refresh), 0, 0, NULL},
    {"session", "oversize", T_OVERSIZE, O(session, oversize), 0, 0, NULL},
    {"session", "logout_redirect", T_REDIRECT, O(session, logout_redirect), 0, 0, NULL},
    {"session", "cookie_budget", T_INT, O(session, cookie_budget), 256, 4096, NULL},
    {"saml", "clock_skew", T_DURATION, O(saml, clock_skew), 0, 3600, NULL},
    {"saml", "max_response", T_SIZE, O(saml, max_response), 1024, 16LL << 20, NULL},
    {"saml", "replay_check_without_redis", T_REPLAY, O(saml, replay_check_without_redis), 0, 0, NULL},
    {"saml", "sp_key_file", T_PATH, O(saml, sp_key_file), 0, 0, NULL},
    {"saml", "sp_cert_file", T_PATH, O(saml, sp_cert_file), 0, 0, NULL},
    {"saml", "allow_sha1", T_BOOL, O(saml, allow_sha1), 0, 0, NULL},
    /* issue 11 item 12: the replay cache cannot be held hostage */
    {"saml", "max_assertion_lifetime", T_DURATION, O(saml, max_assertion_lifetime), 60, 86400, NULL},
    {"saml", "replay_quota", T_INT, O(saml, replay_quota), 1, 1000000, NULL},
    {"oidc", "allow_http_loopback", T_BOOL, O(oidc, allow_http_loopback), 0, 0,
     "ROLEGATE_OIDC_ALLOW_HTTP_LOOPBACK"},
    {"oidc", "http_timeout_ms", T_INT, O(oidc, http_timeout_ms), 1, 600000, NULL},
    {"oidc", "jwks_min_refresh", T_DURATION, O(oidc, jwks_min_refresh), 0, 86400, NULL},
    {"redis", "url", T_REDIS_URL, O(redis, url), 0, 0, "ROLEGATE_REDIS_URL"},
    {"redis", "prefix", T_STR, O(redis, prefix), 0, 0, NULL},
    {"redis", "connect_timeout_ms", T_INT, O(redis, connect_timeout_ms), 1, 60000, NULL},
    {"redis", "command_timeout_ms", T_INT, O(redis, command_timeout_ms), 1, 60000, NULL},
    {"redis", "table_ttl", T_DURATION, O(redis, table_ttl), 1, 30LL * 86400, NULL},
    {"demo", "enabled", T_BOOL, O(demo, enabled), 0, 0, NULL},
    {"demo", "idp_port", T_INT, O(demo, idp_port), 1, 65535, NULL},
};
#undef O
const size_t cfg_nopts = sizeof cfg_opts / sizeof *cfg_opts;
_Static_assert(sizeof cfg_opts / sizeof *cfg_opts <= CFG_MAX_OPTS,
               "the option table outgrew CFG_MAX_OPTS (config_internal.h)");

const char *const cfg_sections[] = {"server", "store", "log", "session",
                                    "saml", "oidc", "redis", "demo"};
const size_t cfg_nsections = sizeof cfg_sections / sizeof *cfg_sections;

void rg_config_defaults(rg_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    rg_config_server *s = &cfg->server;
    snprintf(s->public_listen, sizeof s->public_listen, "0.0.0.0:8080");
    snprintf(s->admin_listen, sizeof s->admin_listen, "127.0.0.1:8081");
    snprintf(s->base_url, sizeof s->base_url, "http://localhost:8080");
    snprintf(s->admin_key_file, sizeof s->admin_key_file, "var/admin.key");
    s->threads = 0;
    s->max_body = 1048576;
    s->connection_timeout = 30;
    s->request_timeout = 10;
    s->max_connections = 1024;
    s->max_connections_per_ip = 0;
    s->portal_link_ttl = 300;   /* DESIGN.md: setup links live 5 minutes */
    snprintf(cfg->store.database, sizeof cfg->store.database, "var/rolegate.db");
    cfg->log.level = RG_LOG_INFO;
    snprintf(cfg->session.keys_dir, sizeof cfg->session.keys_dir, "var/keys");
    cfg->session.lifetime = 8 * 3600;
    cfg->session.token_lifetime = 5 * 60;
    cfg->session.idle_timeout = 3600;
    cfg->session.refresh_after = 60;
    cfg->session.refresh = 1;
    cfg->session.oversize = RG_OVERSIZE_REJECT;
    /* a public page: a protected / would log the user straight back in */
    snprintf(cfg->session.logout_redirect, sizeof cfg->session.logout_redirect, "/signed-out");
    cfg->session.cookie_budget = 4096;
    cfg->saml.clock_skew = 60;
    cfg->saml.max_response = 262144;
    cfg->saml.replay_check_without_redis = RG_REPLAY_REJECT;
    snprintf(cfg->saml.sp_key_file, sizeof cfg->saml.sp_key_file, "var/saml/sp.key");
    snprintf(cfg->saml.sp_cert_file, sizeof cfg->saml.sp_cert_file, "var/saml/sp.crt");
    cfg->saml.allow_sha1 = 0;
    cfg->saml.max_assertion_lifetime = 3600;
    cfg->saml.replay_quota = 100000;
    cfg->oidc.allow_http_loopback = 0;
    cfg->oidc.http_timeout_ms = 5000;
    cfg->oidc.jwks_min_refresh = 60;
    snprintf(cfg->redis.prefix, sizeof cfg->redis.prefix, "rolegate:");
    cfg->redis.connect_timeout_ms = 500;
    cfg->redis.command_timeout_ms = 500;
    cfg->redis.table_ttl = 300;
    cfg->demo.enabled = 0;   /* the fixture IdP's key is public: opt-in only */
    cfg->demo.idp_port = 8089;
    rg_config_derive(cfg);
}

int rg_url_origin(const char *url, char *out, size_t outsz)
{
    const char *p = strstr(url, "://");
    if (!p || p == url)
        return -1;
    size_t end = (size_t)(p - url) + 3;
    end += strcspn(url + end, "/?#");
    if (end == (size_t)(p - url) + 3 || end >= outsz)
        return -1;
    for (size_t i = 0; i < end; i++)
        out[i] = (char)tolower((unsigned char)url[i]);
    out[end] = 0;
    return 0;
}

int rg_config_derive(rg_config *cfg)
{
    rg_config_server *s = &cfg->server;
    size_t bl = strlen(s->base_url);
    while (bl && s->base_url[bl - 1] == '/')
        bl--;
    snprintf(s->base, sizeof s->base, "%.*s", (int)bl, s->base_url);
    snprintf(s->login_url, sizeof s->login_url, "%s/login", s->base);
    s->secure = strncasecmp(s->base_url, "https://", 8) == 0;
    if (rg_url_origin(s->base, s->origin, sizeof s->origin) != 0) {
        s->origin[0] = 0;
        return -1;
    }
    return 0;
}

int rg_config_threads(const rg_config *cfg)
{
    if (cfg->server.threads > 0)
        return cfg->server.threads;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    /* Handlers block on the store, Redis and IdP calls: never fewer than 2. */
    return n < 2 ? 2 : (int)n;
}
