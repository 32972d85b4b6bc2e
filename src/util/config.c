/* config.c: parses rolegate.conf (libinih) and ROLEGATE_* environment
 * overrides (config_env.c) into one immutable rg_config. One table lists
 * every option with its type (config_options.c), so parsing, validation and
 * env overrides share one code path (config_values.c). This file is the INI
 * walk: lines read and counted, section headers checked, each name = value
 * handed to its option's setter, the rules between options, the derived
 * values. Every problem is collected as "FILE:LINE: section.option: what is
 * wrong"; unknown sections and options are errors, never silently ignored. */
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "rolegate/config.h"
#include "rolegate/error.h"
#include "rolegate/util.h"
#include "config_internal.h"

/* ---- the INI walk --------------------------------------------------------- */

void cfg_diag_add(rg_config_diag *diag, int *errors, const char *fmt, ...)
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
    for (size_t i = 0; i < cfg_nsections; i++)
        if (strlen(cfg_sections[i]) == n && strncmp(cfg_sections[i], s, n) == 0)
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
        cfg_diag_add(ps->diag, &ps->errors, "%s:%d: line longer than %d characters "
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
            cfg_diag_add(ps->diag, &ps->errors, "%s:%d: section header without ']'",
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
            cfg_diag_add(ps->diag, &ps->errors, "%s:%d: [%.*s]: unknown section", ps->name,
                     ps->line, (int)sl, s);
    }
    return str;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    parse_state *ps = user;
    char why[256];
    if (!*section) {
        cfg_diag_add(ps->diag, &ps->errors, "%s:%d: %s: option outside a [section]",
                 ps->name, ps->line, name);
        return 1;
    }
    if (!ps->section_ok)
        return 1;   /* already reported as an unknown section */
    for (size_t i = 0; i < cfg_nopts; i++) {
        if (strcmp(cfg_opts[i].section, section) != 0 || strcmp(cfg_opts[i].name, name) != 0)
            continue;
        int list = cfg_opts[i].type == T_PROXIES || cfg_opts[i].type == T_ORIGINS;
        if (ps->seen[i] && !list) {
            cfg_diag_add(ps->diag, &ps->errors, "%s:%d: %s.%s: set twice (first on line %d)",
                     ps->name, ps->line, section, name, ps->seen[i]);
            return 1;
        }
        const char *bad = cfg_set_value(ps->cfg, &cfg_opts[i], value, ps->seen[i] != 0, why, sizeof why);
        if (bad)
            cfg_diag_add(ps->diag, &ps->errors, "%s:%d: %s.%s: %s", ps->name, ps->line, section,
                     name, bad);
        ps->seen[i] = ps->line;
        return 1;
    }
    cfg_diag_add(ps->diag, &ps->errors, "%s:%d: %s.%s: unknown option", ps->name, ps->line,
             section, name);
    return 1;
}

/* Rules between options, checked once every source is read. */
static void check_together(parse_state *ps)
{
    const rg_config *c = ps->cfg;
    if (!c->session.refresh)
        return;   /* snapshot tokens of `lifetime`: the others do not apply */
    if (c->session.refresh_after >= c->session.token_lifetime)
        cfg_diag_add(ps->diag, &ps->errors, "%s: session.refresh_after (%llds) must be shorter "
                 "than session.token_lifetime (%llds)", ps->name,
                 (long long)c->session.refresh_after, (long long)c->session.token_lifetime);
    if (c->session.token_lifetime > c->session.idle_timeout)
        cfg_diag_add(ps->diag, &ps->errors, "%s: session.token_lifetime (%llds) must not exceed "
                 "session.idle_timeout (%llds)", ps->name,
                 (long long)c->session.token_lifetime, (long long)c->session.idle_timeout);
    if (c->session.idle_timeout > c->session.lifetime)
        cfg_diag_add(ps->diag, &ps->errors, "%s: session.idle_timeout (%llds) must not exceed "
                 "session.lifetime (%llds)", ps->name,
                 (long long)c->session.idle_timeout, (long long)c->session.lifetime);
}

static int run_parse(parse_state *ps, unsigned flags)
{
    int first_err = ini_parse_stream(reader, ps, handler, ps);
    if (first_err > 0 && ps->errors == 0)  /* a syntax error inih saw, we did not */
        cfg_diag_add(ps->diag, &ps->errors, "%s:%d: not a 'name = value' line", ps->name,
                 first_err);
    if (flags & RG_CONFIG_ENV)
        cfg_apply_env(ps);
    if (ps->errors == 0)
        check_together(ps);
    if (ps->errors == 0 && rg_config_derive(ps->cfg) != 0)   /* base_url was checked */
        cfg_diag_add(ps->diag, &ps->errors, "%s: server.base_url: has no host", ps->name);
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
        cfg_diag_add(diag, &ps.errors, "%s:0: cannot open: %s", path, strerror(errno));
        return RG_EIO;
    }
    int rc = run_parse(&ps, flags);
    fclose(ps.fp);
    return rc;
}

