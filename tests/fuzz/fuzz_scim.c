/* fuzz_scim.c: libFuzzer target for the SCIM filter and PATCH path parsers
 * (scim.h; issue 12). Each input is parsed as both. Properties: a refusal
 * always gives a reason; an accepted filter has 1..max terms with non-empty
 * attributes, and printing it back (attr eq "value" joined with " and ",
 * values re-escaped) parses to the same terms; an accepted path has an
 * attribute, and printing it back parses to the same path. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/scim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "property failed: %s (line %d)\n", #c, __LINE__); abort(); } } while (0)

typedef struct out { char *p; size_t n, cap; } out;

static void put(out *o, const char *s, size_t n)
{
    if (o->n + n + 1 > o->cap) {
        o->cap = (o->n + n + 1) * 2;
        o->p = realloc(o->p, o->cap);
        CHECK(o->p);
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
    o->p[o->n] = '\0';
}

static void puts_(out *o, const char *s) { put(o, s, strlen(s)); }

static void put_value(out *o, const rg_scim_term *t)
{
    if (t->type == RG_SCIM_V_TRUE) { puts_(o, "true"); return; }
    if (t->type == RG_SCIM_V_FALSE) { puts_(o, "false"); return; }
    if (t->type == RG_SCIM_V_NULL) { puts_(o, "null"); return; }
    puts_(o, "\"");
    for (const unsigned char *s = (const unsigned char *)t->value; *s; s++) {
        char e[8];
        if (*s == '"' || *s == '\\') {
            e[0] = '\\'; e[1] = (char)*s; e[2] = 0;
        } else if (*s < 0x20) {
            snprintf(e, sizeof e, "\\u%04x", *s);
        } else {
            e[0] = (char)*s; e[1] = 0;
        }
        puts_(o, e);
    }
    puts_(o, "\"");
}

static void put_terms(out *o, const rg_scim_term *t, int n)
{
    for (int i = 0; i < n; i++) {
        if (i)
            puts_(o, " and ");
        puts_(o, t[i].attr);
        puts_(o, " eq ");
        put_value(o, &t[i]);
    }
}

static int same_terms(const rg_scim_term *a, const rg_scim_term *b, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(a[i].attr, b[i].attr) || a[i].type != b[i].type ||
            strcmp(a[i].value, b[i].value))
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    CHECK(s);
    memcpy(s, data, size);
    s[size] = '\0';
    rg_scim_term t[RG_SCIM_TERMS_MAX], t2[RG_SCIM_TERMS_MAX];
    char why[RG_SCIM_WHY_MAX];
    why[0] = '\0';
    int n = rg_scim_filter_parse(s, t, RG_SCIM_TERMS_MAX, why, sizeof why);
    if (n < 0) {
        CHECK(why[0] != '\0');
    } else {
        CHECK(n >= 1 && n <= RG_SCIM_TERMS_MAX);
        out o = {0};
        put_terms(&o, t, n);
        int n2 = rg_scim_filter_parse(o.p, t2, RG_SCIM_TERMS_MAX, why, sizeof why);
        CHECK(n2 == n && same_terms(t, t2, n));
        for (int i = 0; i < n; i++)
            CHECK(t[i].attr[0] != '\0');
        free(o.p);
    }
    rg_scim_path p, p2;
    why[0] = '\0';
    if (rg_scim_path_parse(s, &p, why, sizeof why) != 0) {
        CHECK(why[0] != '\0');
    } else {
        CHECK(p.attr[0] != '\0' && p.n_filter <= RG_SCIM_TERMS_MAX);
        out o = {0};
        if (p.urn[0]) {
            puts_(&o, p.urn);
            puts_(&o, ":");
        }
        puts_(&o, p.attr);
        if (p.n_filter) {
            puts_(&o, "[");
            put_terms(&o, p.filter, (int)p.n_filter);
            puts_(&o, "]");
        }
        if (p.sub[0]) {
            puts_(&o, ".");
            puts_(&o, p.sub);
        }
        CHECK(rg_scim_path_parse(o.p, &p2, why, sizeof why) == 0);
        CHECK(!strcmp(p.urn, p2.urn) && !strcmp(p.attr, p2.attr) && !strcmp(p.sub, p2.sub) &&
              p.n_filter == p2.n_filter && same_terms(p.filter, p2.filter, (int)p.n_filter));
        free(o.p);
    }
    free(s);
    return 0;
}
