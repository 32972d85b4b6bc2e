/* test_core_resolve_cases.c: the one runner of tests/cases/resolve/NNN-name.conf
 * (format: tests/cases/README.md). Each file is an organization's role table
 * (or a shared one from tests/cases/resolve/tables/ plus changes), one call
 * of the real core API (login resolution R13-R18 by default; assign R12/R19,
 * keep_highest R14, after_delete R20, permissions R12) and its expected
 * outcome, or the expected error. One cmocka test per file. What is not a
 * table (the clear functions, a generated 3000-mapping table) stays in
 * test_core_resolve.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "rolegate/core.h"
#include "rolegate/util.h"
#include "case_conf.h"

#define CASES_DIR "tests/cases/resolve"
#define TABLES_DIR CASES_DIR "/tables"

/* The keys of a role table: a case file or a tables/NAME.table file. */
#define TABLE_KEYS \
    {"env_role", 1}, {"org_role", 1}, {"env_default", 0}, {"org_default", 0}, \
    {"org_order", 0}, {"multiple_roles", 0}, {"map", 1}

static const case_key table_keys[] = {TABLE_KEYS, {NULL, 0}};
static const case_key case_keys[] = {
    TABLE_KEYS,
    {"rule", 0}, {"table", 0}, {"deleted", 0}, {"op", 0},
    {"connection", 0}, {"groups", 0}, {"current_roles", 0}, {"current_source", 0},
    {"roles", 0},
    {"expect_error", 0}, {"expect_status", 0}, {"expect_field", 0}, {"expect_message", 0},
    {"expect_roles", 0}, {"expect_source", 0}, {"expect_changed", 0}, {"expect_created", 0},
    {"expect_matched_groups", 0}, {"expect_matched_roles", 0}, {"expect_permissions", 0},
    {"expect_order", 0}, {"expect_default", 0},
    {NULL, 0},
};

static size_t total_checks;

/* ---- the table ------------------------------------------------------------ */

/* Everything a spec points to, freed with the case. */
typedef struct spec_mem {
    rg_role_spec roles[128];
    char **words[256];
    size_t n_words;
    rg_group_mapping maps[512];
} spec_mem;

static char **keep(spec_mem *m, char **w)
{
    assert_true(m->n_words < 256);
    return m->words[m->n_words++] = w;
}

static int is_deleted(char *const *del, size_t nd, const char *slug)
{
    for (size_t i = 0; i < nd; i++)
        if (strcmp(del[i], slug) == 0)
            return 1;
    return 0;
}

/* The roles of key k ("SLUG PERM..." lines) into m->roles from *n on, less
 * the deleted ones (R20: a deleted role disappears from new logins at once). */
static size_t add_roles(case_conf *c, spec_mem *m, size_t *n, const char *k, rg_role_type type,
                        char *const *del, size_t nd)
{
    size_t first = *n;
    for (int i = 0; i < c->n; i++) {
        if (strcmp(c->items[i].k, k) != 0)
            continue;
        size_t nw = 0;
        char **w = keep(m, case_words(c, c->items[i].v, &nw));
        if (nw == 0)
            fail_msg("%s:%d: %s needs a slug", c->path, c->items[i].line, k);
        if (is_deleted(del, nd, w[0]))
            continue;
        assert_true(*n < 128);
        m->roles[(*n)++] = (rg_role_spec){w[0], type, (const char *const *)(w + 1), nw - 1};
    }
    return *n - first;
}

static rg_role_table *build(case_conf *c, spec_mem *m, rg_error *err)
{
    size_t nd = 0, n = 0, nmap = 0, norder = 0;
    char **del = keep(m, case_list(c, "deleted", &nd));
    rg_table_spec s = {.organization_id = "org_cases", .version = 1};
    s.multiple_roles = case_bool(c, "multiple_roles", 0);
    s.env_roles = m->roles;
    s.n_env_roles = add_roles(c, m, &n, "env_role", RG_ROLE_ENV, del, nd);
    s.org_roles = m->roles + n;
    s.n_org_roles = add_roles(c, m, &n, "org_role", RG_ROLE_ORG, del, nd);
    char **order = keep(m, case_list(c, "org_order", &norder));
    s.org_order = (const char *const *)order;
    s.n_org_order = norder;
    size_t ndef = 0;
    s.env_default = keep(m, case_list(c, "env_default", &ndef))[0];
    s.org_default = keep(m, case_list(c, "org_default", &ndef))[0];
    for (int i = 0; i < c->n; i++) {
        if (strcmp(c->items[i].k, "map") != 0)
            continue;
        size_t nw = 0;
        char **w = keep(m, case_words(c, c->items[i].v, &nw));
        if (nw != 3)
            fail_msg("%s:%d: map = CONNECTION GROUP ROLE (3 words, got %zu)", c->path,
                     c->items[i].line, nw);
        assert_true(nmap < 512);
        m->maps[nmap++] = (rg_group_mapping){w[0], w[1], w[2]};
    }
    s.mappings = m->maps;
    s.n_mappings = nmap;
    return rg_role_table_build(&s, err);
}

/* ---- expectations ---------------------------------------------------------- */

static void expect_slugs(case_conf *c, const char *k, int absent_ok, const rg_slugs *s)
{
    case_expect_list(c, k, absent_ok, (const char *const *)s->v, s->n);
}

static void expect_int(case_conf *c, const char *k, long got)
{
    const char *v = case_raw(c, k);
    if (!v)
        return;
    c->checks++;
    if (strtol(v, NULL, 10) != got)
        fail_msg("%s: %s: want %s, got %ld", c->path, k, v, got);
}

static void expect_str(case_conf *c, const char *k, const char *got)
{
    char *want = case_str(c, k);
    if (!want)
        return;
    c->checks++;
    if (strcmp(want, got ? got : "(null)") != 0)
        fail_msg("%s: %s: want '%s', got '%s'", c->path, k, want, got ? got : "(null)");
    free(want);
}

static void need(const case_conf *c, const char *k, const char *op)
{
    if (!case_raw(c, k))
        fail_msg("%s: op %s needs %s", c->path, op, k);
}

static rg_role_source source_of(const case_conf *c, const char *k)
{
    char *v = case_str(c, k);
    if (!v || !strcmp(v, "none")) {
        free(v);
        return RG_SOURCE_NONE;
    }
    rg_role_source s = rg_core_source_parse(v);
    if (s == RG_SOURCE_NONE)
        fail_msg("%s: %s = %s is not none/idp/directory/api/default", c->path, k, v);
    free(v);
    return s;
}

/* An error the case expects: code, and status/field/message when given. */
static void expect_error(case_conf *c, const rg_error *e)
{
    expect_str(c, "expect_error", e->code);
    expect_int(c, "expect_status", e->status);
    expect_str(c, "expect_field", e->field);
    char *msg = case_str(c, "expect_message");
    if (msg) {
        c->checks++;
        if (!strstr(e->message, msg))
            fail_msg("%s: message '%s' lacks '%s'", c->path, e->message, msg);
        free(msg);
    }
}

/* ---- the operations ---------------------------------------------------------- */

static void op_login(case_conf *c, const rg_role_table *t)
{
    size_t ng = 0, nc = 0;
    char **groups = case_list(c, "groups", &ng), **cur = case_list(c, "current_roles", &nc);
    char *conn = case_str(c, "connection");
    rg_login_input in = {.connection_id = conn ? conn : "conn_a",
                         .groups = (const char *const *)groups, .n_groups = ng,
                         .current_roles = (const char *const *)cur, .n_current = nc,
                         .current_source = source_of(c, "current_source")};
    rg_resolution r;
    rg_error e;
    rg_error_clear(&e);
    need(c, "expect_roles", "login");
    need(c, "expect_source", "login");
    if (rg_core_resolve_login(t, &in, &r, &e) != 0)
        fail_msg("%s: resolve failed: %s %s", c->path, e.code, e.message);
    expect_slugs(c, "expect_roles", 0, &r.roles);
    expect_str(c, "expect_source", rg_core_source_name(r.source));
    expect_int(c, "expect_changed", r.changed);
    expect_int(c, "expect_created", r.created);
    /* the login record: absent keys mean no mapping was used */
    expect_slugs(c, "expect_matched_groups", 0, &r.matched_groups);
    expect_slugs(c, "expect_matched_roles", 0, &r.matched_roles);
    expect_slugs(c, "expect_permissions", 1, &r.permissions);
    /* R13: never zero roles, whatever the case says */
    assert_true(r.roles.n >= 1);
    rg_resolution_clear(&r);
    free(conn);
    case_words_free(groups);
    case_words_free(cur);
}

static void op_roles(case_conf *c, const rg_role_table *t, const char *op)
{
    size_t n = 0;
    char **roles = case_list(c, "roles", &n);
    const char *const *v = (const char *const *)roles;
    rg_slugs out = {0};
    rg_error e;
    rg_error_clear(&e);
    if (strcmp(op, "assign") == 0) {
        if (rg_core_roles_assign(t, case_raw(c, "roles") ? v : NULL, n, &out, &e) != 0) {
            if (!case_raw(c, "expect_error"))
                fail_msg("%s: assign refused: %s %s", c->path, e.code, e.message);
            expect_error(c, &e);
            c->checks++;
            assert_int_equal(out.n, 0);   /* a refusal hands back nothing */
            assert_null(out.v);
        } else {
            if (case_raw(c, "expect_error"))
                fail_msg("%s: assign accepted, want %s", c->path, case_raw(c, "expect_error"));
            need(c, "expect_roles", op);
            expect_slugs(c, "expect_roles", 0, &out);
        }
    } else if (strcmp(op, "keep_highest") == 0) {
        need(c, "expect_roles", op);
        assert_int_equal(rg_core_roles_keep_highest(t, v, n, &out), 0);
        expect_slugs(c, "expect_roles", 0, &out);
    } else if (strcmp(op, "after_delete") == 0) {
        size_t nd = 0;
        char **del = case_list(c, "deleted", &nd);
        if (nd != 1)
            fail_msg("%s: op after_delete needs one deleted role", c->path);
        need(c, "expect_changed", op);
        rg_role_source src = source_of(c, "current_source");
        int rc = rg_core_roles_after_delete(t, v, n, del[0], &out, &src);
        assert_true(rc >= 0);
        expect_int(c, "expect_changed", rc);
        expect_slugs(c, "expect_roles", 0, &out);   /* unchanged: nothing handed back */
        expect_str(c, "expect_source", rg_core_source_name(src));
        case_words_free(del);
    } else if (strcmp(op, "permissions") == 0) {
        need(c, "expect_permissions", op);
        assert_int_equal(rg_core_permissions_of(t, v, n, &out), 0);
        expect_slugs(c, "expect_permissions", 0, &out);
    } else {
        fail_msg("%s: unknown op '%s' (login, assign, keep_highest, after_delete, permissions)",
                 c->path, op);
    }
    rg_slugs_clear(&out);
    case_words_free(roles);
}

/* ---- one case ------------------------------------------------------------------ */

static void load(case_conf *c, const char *file)
{
    char path[512];
    snprintf(path, sizeof path, CASES_DIR "/%s", file);
    case_conf first = {0};
    case_load(&first, path, case_keys, NULL);   /* to learn its table */
    char *table = case_str(&first, "table");
    case_free(&first);
    memset(c, 0, sizeof *c);
    if (table) {
        char tp[512];
        snprintf(tp, sizeof tp, TABLES_DIR "/%s.table", table);
        case_load(c, tp, case_keys, table_keys);
        free(table);
    }
    case_load(c, path, case_keys, NULL);   /* its keys after the table's */
    snprintf(c->path, sizeof c->path, "%s", path);
}

static void run_case(void **state)
{
    case_conf c;
    load(&c, *state);
    case_check_rule(&c);
    spec_mem *m = calloc(1, sizeof *m);
    rg_error e;
    rg_error_clear(&e);
    rg_role_table *t = build(&c, m, &e);
    char *op = case_str(&c, "op");
    if (!t) {
        if (!case_raw(&c, "expect_error"))
            fail_msg("%s: table refused: %s %s", c.path, e.code, e.message);
        expect_error(&c, &e);
    } else {
        if (case_raw(&c, "expect_error") && (!op || strcmp(op, "assign") != 0))
            fail_msg("%s: table built, want %s", c.path, case_raw(&c, "expect_error"));
        size_t n = rg_role_table_count(t);
        const char **order = calloc(n ? n : 1, sizeof *order);
        for (size_t i = 0; i < n; i++)
            order[i] = rg_role_table_slug_at(t, i);
        case_expect_list(&c, "expect_order", 1, order, n);
        free(order);
        expect_str(&c, "expect_default", rg_role_table_default(t));
        if (!op || strcmp(op, "login") == 0)
            op_login(&c, t);
        else
            op_roles(&c, t, op);
    }
    if (c.checks == 0)
        fail_msg("%s: checks nothing (no expect_ key)", c.path);
    total_checks += c.checks;
    free(op);
    rg_role_table_free(t);
    for (size_t i = 0; i < m->n_words; i++)
        case_words_free(m->words[i]);
    free(m);
    case_free(&c);
}

int main(int argc, char **argv)
{
    static const char *const allowed[] = {"tables", NULL};
    return case_run("resolve_cases", CASES_DIR, allowed, argc, argv, run_case, &total_checks);
}
