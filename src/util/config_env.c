/* config_env.c: the environment overrides of rolegate.conf. Every option
 * has ROLEGATE_<SECTION>_<OPTION>, derived from its row of the option
 * table, checked by the same setter as the file; the older short names
 * (the row's env column) stay as aliases and must agree with it. A
 * ROLEGATE_<known section>_* variable that names no option is an error.
 * rg_config_option_info lists them for `check-config`. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "rolegate/config.h"
#include "config_internal.h"

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
    for (size_t i = 0; i < cfg_nopts; i++) {
        env_name(&cfg_opts[i], name, sizeof name);
        if (strlen(name) == len && strncmp(name, var, len) == 0)
            return &cfg_opts[i];
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
        for (size_t i = 0; i < cfg_nsections; i++) {
            size_t sl = strlen(cfg_sections[i]);
            if (strncasecmp(rest, cfg_sections[i], sl) == 0 && rest[sl] == '_')
                in_section = 1;
        }
        if (in_section && !opt_by_env(*e, len))
            cfg_diag_add(ps->diag, &ps->errors, "environment: %.*s: unknown option",
                     (int)len, *e);
    }
}

void cfg_apply_env(parse_state *ps)
{
    char why[256], name[160];
    for (size_t i = 0; i < cfg_nopts; i++) {
        env_name(&cfg_opts[i], name, sizeof name);
        const char *v = getenv(name), *used = name;
        const char *alias = cfg_opts[i].env && strcmp(cfg_opts[i].env, name) != 0
                                ? getenv(cfg_opts[i].env) : NULL;
        if (alias && v && strcmp(alias, v) != 0) {
            cfg_diag_add(ps->diag, &ps->errors, "environment: %s: %s.%s: disagrees with %s "
                     "(set one of them)", name, cfg_opts[i].section, cfg_opts[i].name, cfg_opts[i].env);
            continue;
        }
        if (!v && alias)
            v = alias, used = cfg_opts[i].env;
        if (!v)
            continue;
        /* a list option set in the environment replaces the file's lines */
        const char *bad = cfg_set_value(ps->cfg, &cfg_opts[i], v, 0, why, sizeof why);
        if (bad)
            cfg_diag_add(ps->diag, &ps->errors, "environment: %s: %s.%s: %s", used,
                     cfg_opts[i].section, cfg_opts[i].name, bad);
    }
    check_unknown_env(ps);
}

size_t rg_config_option_count(void)
{
    return cfg_nopts;
}

int rg_config_option_info(size_t i, rg_config_option *out)
{
    if (i >= cfg_nopts)
        return -1;
    out->section = cfg_opts[i].section;
    out->name = cfg_opts[i].name;
    env_name(&cfg_opts[i], out->env, sizeof out->env);
    out->alias = cfg_opts[i].env && strcmp(cfg_opts[i].env, out->env) != 0 ? cfg_opts[i].env : NULL;
    out->set_in_env = getenv(out->env) || (out->alias && getenv(out->alias));
    return 0;
}

