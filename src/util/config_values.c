/* config_values.c: checking and storing one option's value: the parsers
 * (durations, sizes, integers, booleans, host:port, http(s) URLs, CIDRs,
 * lists) and one setter per option type, chosen from a table by the row's
 * type. Every setter returns NULL or the reason the value is refused; a
 * refused value leaves the field as it was. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "rolegate/config.h"
#include "rolegate/util.h"
#include "config_internal.h"

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

static int split_listen(const char *s, char *host, size_t hostsz, int *port, long min_port)
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
    if (v < min_port || v > 65535)
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

int rg_config_split_listen(const char *s, char *host, size_t hostsz, int *port)
{
    return split_listen(s, host, hostsz, port, 1);
}

int rg_config_split_listen_any(const char *s, char *host, size_t hostsz, int *port)
{
    return split_listen(s, host, hostsz, port, 0);
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

/* ---- one setter per type ------------------------------------------------- */

typedef const char *setter_fn(char *field, const opt_def *o, const char *v, int append,
                              char *why, size_t whysz);

/* Copies a checked string value into its field if it fits. */
static const char *copy_str(char *field, const opt_def *o, const char *v)
{
    if (strlen(v) >= o->size)
        return "is too long";
    memcpy(field, v, strlen(v) + 1);
    return NULL;
}

static const char *set_str(char *field, const opt_def *o, const char *v, int append,
                           char *why, size_t whysz)
{
    return copy_str(field, o, v);
}

static const char *set_path(char *field, const opt_def *o, const char *v, int append,
                            char *why, size_t whysz)
{
    if (!*v)
        return "must not be empty";
    return copy_str(field, o, v);
}

static const char *set_listen(char *field, const opt_def *o, const char *v, int append,
                              char *why, size_t whysz)
{
    if (rg_config_split_listen(v, NULL, 0, NULL) != 0)
        return "must be host:port with a port in 1..65535 (IPv6 as [addr]:port)";
    return copy_str(field, o, v);
}

static const char *set_http_url(char *field, const opt_def *o, const char *v, int append,
                                char *why, size_t whysz)
{
    const char *bad = check_http_url(v, 1);
    return bad ? bad : copy_str(field, o, v);
}

static const char *set_redis_url(char *field, const opt_def *o, const char *v, int append,
                                 char *why, size_t whysz)
{
    if (*v && strncmp(v, "redis://", 8) != 0 && strncmp(v, "unix:", 5) != 0)
        return "must be empty, redis://host[:port][/db] or unix:/path";
    if (strncmp(v, "redis://", 8) == 0 && !v[8])
        return "has no host";
    return copy_str(field, o, v);
}

/* A relative path, but never "//host" (protocol-relative), or an http(s) URL. */
static const char *set_redirect(char *field, const opt_def *o, const char *v, int append,
                                char *why, size_t whysz)
{
    int path = v[0] == '/' && v[1] != '/' && v[1] != '\\';
    if (!path && check_http_url(v, 1))
        return "must be a path starting with / or an http(s) URL";
    return copy_str(field, o, v);
}

static const char *set_int(char *field, const opt_def *o, const char *v, int append,
                           char *why, size_t whysz)
{
    long long n;
    if (parse_int(v, &n) != 0)
        return "must be an integer";
    if (n < o->min || n > o->max) {
        snprintf(why, whysz, "must be between %lld and %lld", o->min, o->max);
        return why;
    }
    *(int *)field = (int)n;
    return NULL;
}

static const char *set_size(char *field, const opt_def *o, const char *v, int append,
                            char *why, size_t whysz)
{
    long long n;
    if (parse_size(v, &n) != 0)
        return "must be a byte count (optional k or M suffix)";
    if (n < o->min || n > o->max) {
        snprintf(why, whysz, "must be between %lld and %lld bytes", o->min, o->max);
        return why;
    }
    *(size_t *)field = (size_t)n;
    return NULL;
}

/* Seconds into an int or an int64_t field, as the field's size says. */
static const char *set_duration(char *field, const opt_def *o, const char *v, int append,
                                char *why, size_t whysz)
{
    int64_t d;
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
}

static const char *set_bool(char *field, const opt_def *o, const char *v, int append,
                            char *why, size_t whysz)
{
    int b;
    if (parse_bool(v, &b) != 0)
        return "must be true or false";
    *(int *)field = b;
    return NULL;
}

/* The keyword options: each word, the value it stands for, and the reason
 * a value outside them is refused. The fields are int-sized (an enum or an
 * int), written as int. */
typedef struct keyword {
    const char *word;
    int         value;
} keyword;
typedef struct keywords {
    const keyword *k;
    size_t         n;
    const char    *reason;
} keywords;
_Static_assert(sizeof(rg_oversize_policy) == sizeof(int) &&
               sizeof(rg_replay_policy) == sizeof(int), "keyword fields are int-sized");

static const keyword oversize_k[] = {{"reject", RG_OVERSIZE_REJECT},
                                     {"omit_permissions", RG_OVERSIZE_OMIT_PERMISSIONS}};
static const keyword replay_k[] = {{"reject", RG_REPLAY_REJECT}, {"local", RG_REPLAY_LOCAL}};
static const keyword loglevel_k[] = {{"debug", RG_LOG_DEBUG}, {"info", RG_LOG_INFO},
                                     {"warn", RG_LOG_WARN}, {"error", RG_LOG_ERROR}};
static const keywords oversize_words = {oversize_k, sizeof oversize_k / sizeof *oversize_k,
                                        "must be reject or omit_permissions"};
static const keywords replay_words = {replay_k, sizeof replay_k / sizeof *replay_k,
                                      "must be reject or local"};
static const keywords loglevel_words = {loglevel_k, sizeof loglevel_k / sizeof *loglevel_k,
                                        "must be debug, info, warn or error"};

static const char *set_keyword(char *field, const char *v, const keywords *kw)
{
    for (size_t i = 0; i < kw->n; i++)
        if (strcmp(v, kw->k[i].word) == 0) {
            *(int *)field = kw->k[i].value;
            return NULL;
        }
    return kw->reason;
}

static const char *set_oversize(char *field, const opt_def *o, const char *v, int append,
                                char *why, size_t whysz)
{
    return set_keyword(field, v, &oversize_words);
}

static const char *set_replay(char *field, const opt_def *o, const char *v, int append,
                              char *why, size_t whysz)
{
    return set_keyword(field, v, &replay_words);
}

static const char *set_loglevel(char *field, const opt_def *o, const char *v, int append,
                                char *why, size_t whysz)
{
    return set_keyword(field, v, &loglevel_words);
}

/* A list: each item checked; repeated lines append with a comma. */
static const char *set_list(char *field, const opt_def *o, const char *v, int append,
                            char *why, size_t whysz)
{
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

static setter_fn *const setters[] = {
    [T_STR] = set_str,           [T_PATH] = set_path,         [T_LISTEN] = set_listen,
    [T_HTTP_URL] = set_http_url, [T_REDIS_URL] = set_redis_url, [T_REDIRECT] = set_redirect,
    [T_INT] = set_int,           [T_SIZE] = set_size,         [T_DURATION] = set_duration,
    [T_BOOL] = set_bool,         [T_OVERSIZE] = set_oversize, [T_REPLAY] = set_replay,
    [T_LOGLEVEL] = set_loglevel, [T_PROXIES] = set_list,      [T_ORIGINS] = set_list,
};

const char *cfg_set_value(rg_config *cfg, const opt_def *o, const char *v, int append,
                          char *why, size_t whysz)
{
    if ((size_t)o->type >= sizeof setters / sizeof *setters || !setters[o->type])
        return "has an unknown type";
    return setters[o->type]((char *)cfg + o->off, o, v, append, why, whysz);
}
