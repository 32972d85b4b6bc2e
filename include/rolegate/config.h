/* config.h: rolegate's configuration, parsed ONCE (INI file through libinih,
 * then ROLEGATE_* environment overrides) into an immutable rg_config that is
 * passed down explicitly (no globals). Every option, its default and its
 * meaning are listed in etc/rolegate.conf. Strings are fixed-size arrays in
 * the struct, so an rg_config owns no heap memory: copy it, never free it.
 * Validation errors are collected as "FILE:LINE: option: what is wrong". */
#ifndef ROLEGATE_CONFIG_H
#define ROLEGATE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define RG_CONFIG_STR   512    /* size of every path/url/short string option */
#define RG_CONFIG_LIST  4096   /* size of the comma-separated list options */

typedef enum { RG_OVERSIZE_REJECT, RG_OVERSIZE_OMIT_PERMISSIONS } rg_oversize_policy;
typedef enum { RG_REPLAY_REJECT, RG_REPLAY_LOCAL } rg_replay_policy;

typedef struct rg_config_server {
    char    public_listen[RG_CONFIG_STR];   /* "host:port", "[v6]:port" */
    char    admin_listen[RG_CONFIG_STR];
    char    base_url[RG_CONFIG_STR];        /* http(s)://host[:port][/path] */
    char    admin_key[RG_CONFIG_STR];       /* "" = read/generate admin_key_file */
    char    admin_key_file[RG_CONFIG_STR];
    int     threads;                        /* 0 = number of cores */
    size_t  max_body;                       /* bytes, default body cap */
    int     connection_timeout;             /* seconds idle */
    int     request_timeout;                /* seconds for headers, then body (+1 s/8 KiB) */
    int     max_connections;                /* per listener */
    int     max_connections_per_ip;         /* 0 = no limit */
    char    trusted_proxies[RG_CONFIG_LIST];  /* "ip,cidr,..." (validated) */
    char    return_to_origins[RG_CONFIG_LIST];/* "https://a.example,..." */
    int     portal_link_ttl;                /* seconds a setup-portal link lives */
    /* Derived from base_url once, when the config is loaded (rg_config_derive),
     * so no handler parses it again: */
    char    base[RG_CONFIG_STR];            /* base_url without trailing '/' */
    char    origin[RG_CONFIG_STR];          /* "scheme://host[:port]", lowercased */
    char    login_url[RG_CONFIG_STR + 8];   /* base + "/login" */
    int     secure;                         /* base_url is https: Secure cookies */
} rg_config_server;

typedef struct rg_config {
    rg_config_server server;
    struct { char database[RG_CONFIG_STR]; } store;
    struct { char file[RG_CONFIG_STR]; int level; /* rg_log_level */ } log;
    struct {
        char    keys_dir[RG_CONFIG_STR];
        int64_t lifetime;                   /* seconds: absolute session end */
        int64_t token_lifetime;             /* seconds a token is valid */
        int64_t idle_timeout;               /* seconds without a refresh: dead */
        int64_t refresh_after;              /* token age /auth refreshes at */
        int     refresh;                    /* 0: snapshot tokens of lifetime */
        rg_oversize_policy oversize;
        char    logout_redirect[RG_CONFIG_STR];
        int     cookie_budget;              /* bytes */
    } session;
    struct {
        int64_t clock_skew;                 /* seconds */
        size_t  max_response;               /* bytes of decoded SAMLResponse */
        rg_replay_policy replay_check_without_redis;
        char    sp_key_file[RG_CONFIG_STR];
        char    sp_cert_file[RG_CONFIG_STR];
        int     allow_sha1;
        int64_t max_assertion_lifetime;     /* seconds ahead an assertion may end */
        int     replay_quota;               /* live replay entries per connection */
    } saml;
    struct {
        int     allow_http_loopback;
        int     http_timeout_ms;
        int64_t jwks_min_refresh;           /* seconds */
    } oidc;
    struct {
        char    url[RG_CONFIG_STR];         /* "" = no Redis */
        char    prefix[RG_CONFIG_STR];
        int     connect_timeout_ms;
        int     command_timeout_ms;
        int64_t table_ttl;                  /* seconds */
    } redis;
    struct { int enabled; int idp_port; } demo;   /* idp_port: the fixture IdP (item 3) */
} rg_config;

/* Collected validation errors, one formatted line each. */
#define RG_CONFIG_MAX_ERRORS 32
typedef struct rg_config_diag {
    int  count;                             /* may exceed the stored lines */
    char lines[RG_CONFIG_MAX_ERRORS][384];
} rg_config_diag;

/* flags for rg_config_load / rg_config_parse_string */
#define RG_CONFIG_ENV 1u   /* apply ROLEGATE_<SECTION>_<OPTION> overrides (and the
                             * older aliases); an unknown ROLEGATE_<SECTION>_*
                             * variable is an error like an unknown option */

/* Fills cfg with the built-in defaults (see etc/rolegate.conf). */
void rg_config_defaults(rg_config *cfg);

/* Parses the INI file at path over the defaults, then (with RG_CONFIG_ENV)
 * the environment. path NULL = defaults only. Returns 0, or RG_EINVAL with
 * every problem in diag (diag may be NULL) and cfg left unspecified; RG_EIO
 * if the file cannot be read. An unknown section or option is an error. */
int rg_config_load(rg_config *cfg, const char *path, unsigned flags, rg_config_diag *diag);

/* The same over INI text held in memory; name is used in error lines. */
int rg_config_parse_string(rg_config *cfg, const char *name, const char *text,
                           unsigned flags, rg_config_diag *diag);

/* Fills the derived fields of cfg->server (base, origin, login_url, secure)
 * from base_url. rg_config_defaults and a successful load call it; call it
 * again after changing base_url by hand. Returns 0, or -1 if base_url has no
 * "scheme://host" (a loaded config never has such a base_url). */
int rg_config_derive(rg_config *cfg);

/* The lowercased origin "scheme://host[:port]" of url into out (outsz
 * bytes). 0, or -1 if url has no scheme://host or out is too small. */
int rg_url_origin(const char *url, char *out, size_t outsz);

/* Splits "host:port" / "[v6]:port" / ":port" (host "" = any). Returns 0 or
 * -1 (bad syntax, port outside 1..65535). */
int rg_config_split_listen(const char *s, char *host, size_t hostsz, int *port);
/* The same, port 0 allowed (the kernel picks a free port: the http layer's
 * listen address, e.g. in tests). */
int rg_config_split_listen_any(const char *s, char *host, size_t hostsz, int *port);

/* Parses a duration: digits with an optional s/m/h/d suffix (seconds if
 * none). Returns 0 or -1. */
int rg_config_parse_duration(const char *s, int64_t *out_seconds);

/* One row of the option table, for check-config --list. */
typedef struct rg_config_option {
    const char *section, *name;   /* static strings */
    char        env[160];         /* ROLEGATE_<SECTION>_<OPTION> */
    const char *alias;            /* older short variable name, or NULL */
    int         set_in_env;       /* the variable (or its alias) is set now */
} rg_config_option;

/* Number of options, and row i of the table (0 or -1 past the end). */
size_t rg_config_option_count(void);
int rg_config_option_info(size_t i, rg_config_option *out);

/* Effective worker threads for cfg->server.threads (0 = cores, >= 2). */
int rg_config_threads(const rg_config *cfg);

#endif
