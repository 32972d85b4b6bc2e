/* config_internal.h: what the files of rolegate.conf's parser share and
 * nobody else sees: the option types, one row of the option table and the
 * table itself (config_options.c), the per-type setters that check and
 * store a value (config_values.c), the parse state and its diagnostics
 * (config.c, the INI walk) and the environment overrides (config_env.c). */
#ifndef ROLEGATE_CONFIG_INTERNAL_H
#define ROLEGATE_CONFIG_INTERNAL_H

#include <stddef.h>
#include <stdio.h>
#include "rolegate/config.h"

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

/* ---- config_options.c: the option table ------------------------------------ */

/* The most rows the table may have (the parse state's seen[] is this long;
 * config_options.c asserts the table fits). */
#define CFG_MAX_OPTS 128
extern const opt_def cfg_opts[];
extern const size_t cfg_nopts;
extern const char *const cfg_sections[];
extern const size_t cfg_nsections;

/* ---- config_values.c: checking and storing one value ------------------------ */

/* Parses value into the option's field (a list option appends when append
 * is set). Returns NULL or the reason, which may be written into why. */
const char *cfg_set_value(rg_config *cfg, const opt_def *o, const char *v, int append,
                          char *why, size_t whysz);

/* ---- config.c: the parse state ---------------------------------------------- */

typedef struct parse_state {
    rg_config      *cfg;
    rg_config_diag *diag;
    const char     *name;        /* file name for error lines */
    const char     *text;        /* string source (NULL for FILE) */
    size_t          pos;
    FILE           *fp;
    int             line;        /* line number of the line last read */
    int             errors;
    int             seen[CFG_MAX_OPTS]; /* line an option was set on, 0 = not set */
    int             section_ok;  /* the current [section] is known */
} parse_state;

/* Counts one error and keeps its line in diag (when given). */
void cfg_diag_add(rg_config_diag *diag, int *errors, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- config_env.c: the environment overrides -------------------------------- */

/* Applies every ROLEGATE_<SECTION>_<OPTION> (and older alias) set, then
 * reports ROLEGATE_<known section>_* variables that name no option. */
void cfg_apply_env(parse_state *ps);

#endif
