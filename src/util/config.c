/* config.c: parses rolegate.conf (libinih) and ROLEGATE_* environment
 * overrides into one immutable rg_config. One table lists every option with
 * its type, so parsing, validation and env overrides share one code path.
 * Every problem is collected as "FILE:LINE: section.option: what is wrong";
 * unknown sections and options are errors, never silently ignored. Every
 * option has the override ROLEGATE_<SECTION>_<OPTION>, derived from its row
 * (so a new row gets one for free), checked by the same set_value as the
 * file; the older short names (the env column) stay as aliases. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "rolegate/config.h"
#include "rolegate/error.h"
#include "rolegate/util.h"

typedef enum {
    T_STR,       /* any string (may be empty) */
    T_PATH,      /* non-empty string */
    T_LISTEN,    /* host:port */
    T_HTTP_URL,  /* http(s)://host... */
    T_REDIS_URL, /* "" or redis://... or unix:/path */
    T_REDIRECT,  /* "/path" or http(s) URL */
    T_INT,       /* int in [min,max] */
    T_SIZE,      /* size_t bytes, optional k/m suffix, in [min,max] */
    T_DURATION,  /* int64 seconds with s/m/h/d suffix, in [min,max] */
    T_BOOL,
    T_OVERSIZE,
    T_REPLAY,
    T_LOGLEVEL,
    T_PROXIES,   /* list of IP / CIDR; repeated lines append */
    T_ORIGINS,   /* list of http(s) origins; repeated lines append */
} opt_type;

typedef struct opt_def {
    const char *section, *name;
    opt_type    type;
    size_t      off, size;
    long long   min, max;
    const char *env;          /* older alias of the override, or NULL */
} opt_def;

#define O(sec, field) offsetof(rg_config, sec.field), sizeof(((rg_config *)0)->sec.field)
static const opt_def opts[] = {
    {"server", "public_listen", T_LISTEN, O(server, public_listen), 0, 0, "ROLEGATE_PUBLIC_LISTEN"},
    {"server", "admin_listen", T_LISTEN, O(server, admin_listen), 0, 0, "ROLEGATE_ADMIN_LISTEN"},
    {"server", "base_url", T_HTTP_URL, O(server, base_url), 0, 0, "ROLEGATE_BASE_URL"},
    {"server", "admin_key", T_STR, O(server, admin_key), 0, 0, "ROLEGATE_ADMIN_KEY"},
    {"server", "admin_key_file", T_PATH, O(server, admin_key_file), 0, 0, NULL},
    {"server", "threads", T_INT, O(server, threads), 0, 256, NULL},
    {"server", "max_body", T_SIZE, O(server, max_body), 1024, 1LL << 30, NULL},
    {"server", "connection_timeout", T_DURATION, O(server, connection_timeout), 1, 3600, NULL},
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
#define NOPTS (sizeof opts / sizeof *opts)

static const char *const sections[] = {"server", "store", "log", "session",
                                       "saml", "oidc", "redis", "demo"};

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

/* ---- value parsers ------------------------------------------------------ */

int rg_config_parse_duration(const char *s, int64_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || v > (unsigned long long)INT64_MAX / 86400)
        return -1;
    int64_t mul = 1;
    if (*end) {
        switch (*end) {
        case 's': mul = 1; break;
        case 'm': mul = 60; break;
        case 'h': mul = 3600; break;
        case 'd': mul = 86400; break;
        default: return -1;
        }
        if (end[1])
            return -1;
    }
    *out = (int64_t)v * mul;
    return 0;
}

static int parse_size(const char *s, long long *out)
{
    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || v > (1ULL << 40))
        return -1;
    if (*end) {
        if ((*end == 'k' || *end == 'K') && !end[1])
            v <<= 10;
        else if ((*end == 'm' || *end == 'M') && !end[1])
            v <<= 20;
        else
            return -1;
    }
    *out = (long long)v;
    return 0;
}

static int parse_int(const char *s, long long *out)
{
    const char *p = s;
    if (*p == '-')
        p++;
    if (!isdigit((unsigned char)*p))
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *out = 1, 0;
        if (strcasecmp(s, no[i]) == 0)
            return *out = 0, 0;
    }
    return -1;
}

static int valid_hostname(const char *h, size_t n)
{
    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)h[i]) && h[i] != '-' && h[i] != '.' && h[i] != '_')
            return 0;
    return 1;
}

int rg_config_split_listen(const char *s, char *host, size_t hostsz, int *port)
{
    const char *colon;
    size_t hl;
    const char *h = s;
    if (*s == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return -1;
        h = s + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
        char tmp[64];
        struct in6_addr a6;
        if (hl == 0 || hl >= sizeof tmp)
            return -1;
        memcpy(tmp, h, hl);
        tmp[hl] = 0;
        if (inet_pton(AF_INET6, tmp, &a6) != 1)
            return -1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        hl = (size_t)(colon - s);
        if (memchr(s, ':', hl))   /* bare IPv6 must be bracketed */
            return -1;
        if (hl && !valid_hostname(s, hl))
            return -1;
    }
    const char *p = colon + 1;
    if (!*p || strlen(p) > 5)
        return -1;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q))
            return -1;
    long v = strtol(p, NULL, 10);
    if (v < 1 || v > 65535)
        return -1;
    if (host) {
        if (hl >= hostsz)
            return -1;
        memcpy(host, h, hl);
        host[hl] = 0;
    }
    if (port)
        *port = (int)v;
    return 0;
}

/* "http(s)://host[:port]" followed by rest (path allowed if allow_path). */
static const char *check_http_url(const char *s, int allow_path)
{
    const char *p;
    if (strncmp(s, "http://", 7) == 0)
        p = s + 7;
    else if (strncmp(s, "https://", 8) == 0)
        p = s + 8;
    else
        return "must start with http:// or https://";
    size_t n = strcspn(p, "/?#");
    if (n == 0)
        return "has no host";
    char hp[300];
    if (n >= sizeof hp)
        return "host too long";
    memcpy(hp, p, n);
    hp[n] = 0;
    char *host = hp, *port = NULL;
    if (hp[0] == '[') {
        char *rb = strchr(hp, ']');
        if (!rb)
            return "has a bad IPv6 host";
        *rb = 0;
        host = hp + 1;
        struct in6_addr a6;
        if (inet_pton(AF_INET6, host, &a6) != 1)
            return "has a bad IPv6 host";
        if (rb[1] == ':')
            port = rb + 2;
        else if (rb[1])
            return "has a bad host";
    } else {
        char *c = strchr(hp, ':');
        if (c) {
            *c = 0;
            port = c + 1;
        }
        if (!valid_hostname(host, strlen(host)))
            return "has a bad host";
    }
    if (port) {
        if (!*port || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port))
            return "has a bad port";
        long v = strtol(port, NULL, 10);
        if (v < 1 || v > 65535)
            return "has a port outside 1..65535";
    }
    const char *rest = p + n;
    if (*rest == '?' || *rest == '#')
        return "must not carry a query or fragment";
    if (*rest && !allow_path)
        return "must be an origin (scheme://host[:port], no path)";
    for (const char *q = rest; *q; q++)
        if ((unsigned char)*q <= 0x20 || *q == 0x7f)
            return "contains spaces or control characters";
    return NULL;
}

static const char *check_cidr(const char *item)
{
    char buf[80];
    size_t n = strlen(item);
    if (n >= sizeof buf)
        return "is not an IP address or CIDR";
    memcpy(buf, item, n + 1);
    char *slash = strchr(buf, '/');
    long bits = -1;
    if (slash) {
        *slash = 0;
        const char *b = slash + 1;
        if (!*b || strlen(b) > 3 || strspn(b, "0123456789") != strlen(b))
            return "has a bad prefix length";
        bits = strtol(b, NULL, 10);
    }
    unsigned char a[16];
    if (inet_pton(AF_INET, buf, a) == 1)
        return bits > 32 ? "has a prefix length over 32" : NULL;
    if (inet_pton(AF_INET6, buf, a) == 1)
        return bits > 128 ? "has a prefix length over 128" : NULL;
    return "is not an IP address or CIDR";
}

/* Validates each comma-separated item of a list value. */
static const char *check_list(const char *v, opt_type t, char *why, size_t whysz)
{
    char item[600];
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        size_t n = strcspn(p, ",");
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n >= sizeof item)
            return "has an item that is too long";
        memcpy(item, p, n);
        item[n] = 0;
        const char *bad = t == T_PROXIES ? check_cidr(item) : check_http_url(item, 0);
        if (bad) {
            snprintf(why, whysz, "'%s' %s", item, bad);
            return why;
        }
        p += strcspn(p, ",");
    }
    return NULL;
}

/* Parses value into the option's field. Returns NULL or the reason. */
static const char *set_value(rg_config *cfg, const opt_def *o, const char *v, int append,
                             char *why, size_t whysz)
{
    char *field = (char *)cfg + o->off;
    long long n;
    int64_t d;
    int b;
    switch (o->type) {
    case T_PATH:
        if (!*v)
            return "must not be empty";
        /* fall through */
    case T_STR:
        if (strlen(v) >= o->size)
            return "is too long";
        memcpy(field, v, strlen(v) + 1);
        return NULL;
    case T_LISTEN:
        if (rg_config_split_listen(v, NULL, 0, NULL) != 0)
            return "must be host:port with a port in 1..65535 (IPv6 as [addr]:port)";
        if (strlen(v) >= o->size)
            return "is too long";
        memcpy(field, v, strlen(v) + 1);
        return NULL;
    case T_HTTP_URL: {
        const char *bad = check_http_url(v, 1);
        if (bad)
            return bad;
        if (strlen(v) >= o->size)
            return "is too long";
        memcpy(field, v, strlen(v) + 1);
        return NULL;
    }
    case T_REDIS_URL:
        if (*v && strncmp(v, "redis://", 8) != 0 && strncmp(v, "unix:", 5) != 0)
            return "must be empty, redis://host[:port][/db] or unix:/path";
        if (strncmp(v, "redis://", 8) == 0 && !v[8])
            return "has no host";
        if (strlen(v) >= o->size)
            return "is too long";
        memcpy(field, v, strlen(v) + 1);
        return NULL;
    case T_REDIRECT:
        if (v[0] == '/' && v[1] != '/' && v[1] != '\\') {
            /* a relative path, but never "//host" (protocol-relative) */
        } else {
            const char *bad = check_http_url(v, 1);
            if (bad)
                return "must be a path starting with / or an http(s) URL";
        }
        if (strlen(v) >= o->size)
            return "is too long";
        memcpy(field, v, strlen(v) + 1);
        return NULL;
    case T_INT:
        if (parse_int(v, &n) != 0)
            return "must be an integer";
        if (n < o->min || n > o->max) {
            snprintf(why, whysz, "must be between %lld and %lld", o->min, o->max);
            return why;
        }
        *(int *)field = (int)n;
        return NULL;
    case T_SIZE:
        if (parse_size(v, &n) != 0)
            return "must be a byte count (optional k or M suffix)";
        if (n < o->min || n > o->max) {
            snprintf(why, whysz, "must be between %lld and %lld bytes", o->min, o->max);
            return why;
        }
        *(size_t *)field = (size_t)n;
        return NULL;
    case T_DURATION:
        if (rg_config_parse_duration(v, &d) != 0)
            return "must be a duration: digits with an optional s, m, h or d suffix";
        if (d < o->min || d > o->max) {
            snprintf(why, whysz, "must be between %llds and %llds", o->min, o->max);
            return why;
        }
        if (o->size == sizeof(int))
            *(int *)field = (int)d;
        else
            *(int64_t *)field = d;
        return NULL;
    case T_BOOL:
        if (parse_bool(v, &b) != 0)
            return "must be true or false";
        *(int *)field = b;
        return NULL;
    case T_OVERSIZE:
        if (strcmp(v, "reject") == 0)
            *(rg_oversize_policy *)field = RG_OVERSIZE_REJECT;
        else if (strcmp(v, "omit_permissions") == 0)
            *(rg_oversize_policy *)field = RG_OVERSIZE_OMIT_PERMISSIONS;
        else
            return "must be reject or omit_permissions";
        return NULL;
    case T_REPLAY:
        if (strcmp(v, "reject") == 0)
            *(rg_replay_policy *)field = RG_REPLAY_REJECT;
        else if (strcmp(v, "local") == 0)
            *(rg_replay_policy *)field = RG_REPLAY_LOCAL;
        else
            return "must be reject or local";
        return NULL;
    case T_LOGLEVEL:
        if (strcmp(v, "debug") == 0)
            *(int *)field = RG_LOG_DEBUG;
        else if (strcmp(v, "info") == 0)
            *(int *)field = RG_LOG_INFO;
        else if (strcmp(v, "warn") == 0)
            *(int *)field = RG_LOG_WARN;
        else if (strcmp(v, "error") == 0)
            *(int *)field = RG_LOG_ERROR;
        else
            return "must be debug, info, warn or error";
        return NULL;
    case T_PROXIES:
    case T_ORIGINS: {
        const char *bad = check_list(v, o->type, why, whysz);
        if (bad)
            return bad;
        size_t cur = append ? strlen(field) : 0;
        size_t need = cur + (cur && *v ? 1 : 0) + strlen(v) + 1;
        if (need > o->size)
            return "is too long";
        if (!append)
            field[0] = 0;
        if (cur && *v)
            strcat(field, ",");
        strcat(field, v);
        return NULL;
    }
    }
    return "has an unknown type";
}

/* ---- the INI walk --------------------------------------------------------- */

typedef struct parse_state {
    rg_config      *cfg;
    rg_config_diag *diag;
    const char     *name;        /* file name for error lines */
    const char     *text;        /* string source (NULL for FILE) */
    size_t          pos;
    FILE           *fp;
    int             line;        /* line number of the line last read */
    int             errors;
    int             seen[NOPTS]; /* line an option was set on, 0 = not set */
    int             section_ok;  /* the current [section] is known */
} parse_state;

static void diag_add(rg_config_diag *diag, int *errors, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void diag_add(rg_config_diag *diag, int *errors, const char *fmt, ...)
{
    (*errors)++;
    if (!diag)
        return;
    if (diag->count < RG_CONFIG_MAX_ERRORS) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(diag->lines[diag->count], sizeof diag->lines[0], fmt, ap);
        va_end(ap);
    }
    diag->count++;
}

static int known_section(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof sections / sizeof *sections; i++)
        if (strlen(sections[i]) == n && strncmp(sections[i], s, n) == 0)
            return 1;
    return 0;
}

/* fgets-style reader for inih that counts lines and checks section headers
 * (inih calls the handler only for name=value lines, so an unknown empty
 * section would otherwise pass unnoticed). */
static char *reader(char *str, int num, void *stream)
{
    parse_state *ps = stream;
    int n = 0, c, toolong = 0;
    if (num < 2)
        return NULL;
    for (;;) {
        if (ps->fp) {
            c = fgetc(ps->fp);
        } else {
            c = ps->text[ps->pos] ? (unsigned char)ps->text[ps->pos] : EOF;
            if (c != EOF)
                ps->pos++;
        }
        if (c == EOF) {
            if (n == 0 && !toolong)
                return NULL;
            break;
        }
        if (n < num - 2)
            str[n++] = (char)c;
        else if (c != '\n')
            toolong = 1;
        if (c == '\n')
            break;
    }
    str[n] = 0;
    ps->line++;
    const char *first = str + strspn(str, " \t");
    if (toolong && (*first == '#' || *first == ';')) {
        str[0] = 0;   /* a long comment is harmless */
        return str;
    }
    if (toolong) {
        diag_add(ps->diag, &ps->errors, "%s:%d: line longer than %d characters "
                 "(split a list option over several lines)", ps->name, ps->line, num - 3);
        str[0] = 0;   /* ignore the truncated line */
        return str;
    }
    const char *p = str;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '[' && p == str) {
        const char *e = strchr(p, ']');
        if (!e) {
            diag_add(ps->diag, &ps->errors, "%s:%d: section header without ']'",
                     ps->name, ps->line);
            str[0] = 0;
            return str;
        }
        const char *s = p + 1;
        while (*s == ' ')
            s++;
        size_t sl = (size_t)(e - s);
        while (sl && s[sl - 1] == ' ')
            sl--;
        ps->section_ok = known_section(s, sl);
        if (!ps->section_ok)
            diag_add(ps->diag, &ps->errors, "%s:%d: [%.*s]: unknown section", ps->name,
                     ps->line, (int)sl, s);
    }
    return str;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    parse_state *ps = user;
    char why[256];
    if (!*section) {
        diag_add(ps->diag, &ps->errors, "%s:%d: %s: option outside a [section]",
                 ps->name, ps->line, name);
        return 1;
    }
    if (!ps->section_ok)
        return 1;   /* already reported as an unknown section */
    for (size_t i = 0; i < NOPTS; i++) {
        if (strcmp(opts[i].section, section) != 0 || strcmp(opts[i].name, name) != 0)
            continue;
        int list = opts[i].type == T_PROXIES || opts[i].type == T_ORIGINS;
        if (ps->seen[i] && !list) {
            diag_add(ps->diag, &ps->errors, "%s:%d: %s.%s: set twice (first on line %d)",
                     ps->name, ps->line, section, name, ps->seen[i]);
            return 1;
        }
        const char *bad = set_value(ps->cfg, &opts[i], value, ps->seen[i] != 0, why, sizeof why);
        if (bad)
            diag_add(ps->diag, &ps->errors, "%s:%d: %s.%s: %s", ps->name, ps->line, section,
                     name, bad);
        ps->seen[i] = ps->line;
        return 1;
    }
    diag_add(ps->diag, &ps->errors, "%s:%d: %s.%s: unknown option", ps->name, ps->line,
             section, name);
    return 1;
}

/* ROLEGATE_<SECTION>_<OPTION>: upper case, other characters as '_'. */
static void env_name(const opt_def *o, char *out, size_t n)
{
    int w = snprintf(out, n, "ROLEGATE_%s_%s", o->section, o->name);
    if (w < 0 || (size_t)w >= n)
        out[0] = 0;
    for (char *p = out; *p; p++)
        *p = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
}

static const opt_def *opt_by_env(const char *var, size_t len)
{
    char name[160];
    for (size_t i = 0; i < NOPTS; i++) {
        env_name(&opts[i], name, sizeof name);
        if (strlen(name) == len && strncmp(name, var, len) == 0)
            return &opts[i];
    }
    return NULL;
}

/* A ROLEGATE_<known section>_* variable that names no option is a typo of an
 * override: an error, as an unknown option in the file is. */
static void check_unknown_env(parse_state *ps)
{
    extern char **environ;
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, "ROLEGATE_", 9) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        size_t len = eq ? (size_t)(eq - *e) : strlen(*e);
        const char *rest = *e + 9;
        int in_section = 0;
        for (size_t i = 0; i < sizeof sections / sizeof *sections; i++) {
            size_t sl = strlen(sections[i]);
            if (strncasecmp(rest, sections[i], sl) == 0 && rest[sl] == '_')
                in_section = 1;
        }
        if (in_section && !opt_by_env(*e, len))
            diag_add(ps->diag, &ps->errors, "environment: %.*s: unknown option",
                     (int)len, *e);
    }
}

static void apply_env(parse_state *ps)
{
    char why[256], name[160];
    for (size_t i = 0; i < NOPTS; i++) {
        env_name(&opts[i], name, sizeof name);
        const char *v = getenv(name), *used = name;
        const char *alias = opts[i].env && strcmp(opts[i].env, name) != 0
                                ? getenv(opts[i].env) : NULL;
        if (alias && v && strcmp(alias, v) != 0) {
            diag_add(ps->diag, &ps->errors, "environment: %s: %s.%s: disagrees with %s "
                     "(set one of them)", name, opts[i].section, opts[i].name, opts[i].env);
            continue;
        }
        if (!v && alias)
            v = alias, used = opts[i].env;
        if (!v)
            continue;
        /* a list option set in the environment replaces the file's lines */
        const char *bad = set_value(ps->cfg, &opts[i], v, 0, why, sizeof why);
        if (bad)
            diag_add(ps->diag, &ps->errors, "environment: %s: %s.%s: %s", used,
                     opts[i].section, opts[i].name, bad);
    }
    check_unknown_env(ps);
}

size_t rg_config_option_count(void)
{
    return NOPTS;
}

int rg_config_option_info(size_t i, rg_config_option *out)
{
    if (i >= NOPTS)
        return -1;
    out->section = opts[i].section;
    out->name = opts[i].name;
    env_name(&opts[i], out->env, sizeof out->env);
    out->alias = opts[i].env && strcmp(opts[i].env, out->env) != 0 ? opts[i].env : NULL;
    out->set_in_env = getenv(out->env) || (out->alias && getenv(out->alias));
    return 0;
}

/* Rules between options, checked once every source is read. */
static void check_together(parse_state *ps)
{
    const rg_config *c = ps->cfg;
    if (!c->session.refresh)
        return;   /* snapshot tokens of `lifetime`: the others do not apply */
    if (c->session.refresh_after >= c->session.token_lifetime)
        diag_add(ps->diag, &ps->errors, "%s: session.refresh_after (%llds) must be shorter "
                 "than session.token_lifetime (%llds)", ps->name,
                 (long long)c->session.refresh_after, (long long)c->session.token_lifetime);
    if (c->session.token_lifetime > c->session.idle_timeout)
        diag_add(ps->diag, &ps->errors, "%s: session.token_lifetime (%llds) must not exceed "
                 "session.idle_timeout (%llds)", ps->name,
                 (long long)c->session.token_lifetime, (long long)c->session.idle_timeout);
    if (c->session.idle_timeout > c->session.lifetime)
        diag_add(ps->diag, &ps->errors, "%s: session.idle_timeout (%llds) must not exceed "
                 "session.lifetime (%llds)", ps->name,
                 (long long)c->session.idle_timeout, (long long)c->session.lifetime);
}

static int run_parse(parse_state *ps, unsigned flags)
{
    int first_err = ini_parse_stream(reader, ps, handler, ps);
    if (first_err > 0 && ps->errors == 0)  /* a syntax error inih saw, we did not */
        diag_add(ps->diag, &ps->errors, "%s:%d: not a 'name = value' line", ps->name,
                 first_err);
    if (flags & RG_CONFIG_ENV)
        apply_env(ps);
    if (ps->errors == 0)
        check_together(ps);
    if (ps->errors == 0 && rg_config_derive(ps->cfg) != 0)   /* base_url was checked */
        diag_add(ps->diag, &ps->errors, "%s: server.base_url: has no host", ps->name);
    return ps->errors ? RG_EINVAL : RG_OK;
}

int rg_config_parse_string(rg_config *cfg, const char *name, const char *text,
                           unsigned flags, rg_config_diag *diag)
{
    parse_state ps = {.cfg = cfg, .diag = diag, .name = name, .text = text, .section_ok = 1};
    if (diag)
        diag->count = 0;
    rg_config_defaults(cfg);
    return run_parse(&ps, flags);
}

int rg_config_load(rg_config *cfg, const char *path, unsigned flags, rg_config_diag *diag)
{
    parse_state ps = {.cfg = cfg, .diag = diag, .name = path, .text = "", .section_ok = 1};
    if (diag)
        diag->count = 0;
    rg_config_defaults(cfg);
    if (!path) {
        ps.name = "defaults";
        return run_parse(&ps, flags);
    }
    ps.fp = fopen(path, "r");
    if (!ps.fp) {
        diag_add(diag, &ps.errors, "%s:0: cannot open: %s", path, strerror(errno));
        return RG_EIO;
    }
    int rc = run_parse(&ps, flags);
    fclose(ps.fp);
    return rc;
}

int rg_config_threads(const rg_config *cfg)
{
    if (cfg->server.threads > 0)
        return cfg->server.threads;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    /* Handlers block on the store, Redis and IdP calls: never fewer than 2. */
    return n < 2 ? 2 : (int)n;
}
