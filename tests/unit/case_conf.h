/* case_conf.h: the case-file reader shared by the data-driven runners of
 * tests/cases/resolve and tests/cases/oidc (format: tests/cases/README.md):
 * `key = value` lines, full-line `#` comments, values continued on indented
 * lines, curl's %repeat[N x TEXT]% macro, words with "quoted" forms, a
 * key list per runner so an unknown or repeated key fails the case, and the
 * folder listing that fails when the folder holds no case or a stray file,
 * and case_run, the one cmocka test per file of every runner.
 * Header-only (static functions, like test_oidc_stub.h); include after
 * cmocka.h and rolegate/util.h. */
#ifndef TEST_CASE_CONF_H
#define TEST_CASE_CONF_H

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CASE_MAX_ITEMS 256
#define CASE_UNUSED __attribute__((unused))

/* The keys a runner knows: repeat != 0 lets a key appear on several lines. */
typedef struct case_key { const char *name; int repeat; } case_key;

typedef struct case_item { char *k, *v; int line; } case_item;
typedef struct case_conf {
    char path[512];
    case_item items[CASE_MAX_ITEMS];
    int n;
    size_t checks;          /* comparisons made, for the runner's summary */
} case_conf;

/* %repeat[N x TEXT]% -> TEXT N times (curl's tests/FILEFORMAT.md macro). */
static char *case_expand(const char *path, int line, const char *v)
{
    rg_buf b = {0};
    for (const char *p = v; *p;) {
        const char *m = strstr(p, "%repeat[");
        if (!m) {
            rg_buf_puts(&b, p);
            break;
        }
        rg_buf_append(&b, p, (size_t)(m - p));
        char *x = NULL;
        unsigned long times = strtoul(m + 8, &x, 10);
        const char *end = x ? strstr(x, "]%") : NULL;
        if (!x || strncmp(x, " x ", 3) != 0 || !end || times > 1000000)
            fail_msg("%s:%d: bad %%repeat[N x TEXT]%% macro", path, line);
        for (unsigned long i = 0; i < times; i++)
            rg_buf_append(&b, x + 3, (size_t)(end - x - 3));
        p = end + 2;
    }
    char *s = rg_buf_take(&b);
    return s ? s : strdup("");
}

static const case_key *case_key_find(const case_key *keys, const char *k)
{
    for (const case_key *c = keys; c->name; c++)
        if (strcmp(c->name, k) == 0)
            return c;
    return NULL;
}

/* Reads path into c, appending to what c holds (a case can first load a
 * shared fixture); `only` (may be NULL) restricts which keys this file may
 * set. Fails the test on an unknown key, a line without '=', a key repeated
 * that may not be, or a value that never ends. */
static void case_load(case_conf *c, const char *path, const case_key *keys,
                      const case_key *only)
{
    const int first = c->n;   /* keys of earlier files may be given again */
    snprintf(c->path, sizeof c->path, "%s", path);
    char *text = rg_file_read(path, 1 << 20, NULL);
    if (!text)
        fail_msg("%s: cannot read", path);
    int lineno = 0;
    case_item *last = NULL;
    for (char *line = text, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        lineno++;
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
            line[--len] = 0;
        if (line[0] == ' ' || line[0] == '\t') {   /* continues the last value */
            if (!last)
                fail_msg("%s:%d: indented line with no key before it", path, lineno);
            char *p = line;
            while (*p == ' ' || *p == '\t')
                p++;
            char *v = malloc(strlen(last->v) + strlen(p) + 2);
            sprintf(v, "%s\n%s", last->v, p);
            free(last->v);
            last->v = v;
            continue;
        }
        if (!line[0] || line[0] == '#') {
            last = NULL;
            continue;
        }
        char *eq = strchr(line, '=');
        if (!eq)
            fail_msg("%s:%d: not a 'key = value' line: %s", path, lineno, line);
        char *ke = eq;
        while (ke > line && (ke[-1] == ' ' || ke[-1] == '\t'))
            ke--;
        *ke = 0;
        char *v = eq + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        const case_key *kd = case_key_find(keys, line);
        if (!kd)
            fail_msg("%s:%d: unknown key '%s' (tests/cases/README.md lists the keys)", path,
                     lineno, line);
        if (only && !case_key_find(only, line))
            fail_msg("%s:%d: key '%s' is not allowed in this file", path, lineno, line);
        for (int i = first; i < c->n && !kd->repeat; i++)
            if (strcmp(c->items[i].k, line) == 0)
                fail_msg("%s:%d: key '%s' given twice (first on line %d)", path, lineno, line,
                         c->items[i].line);
        if (c->n >= CASE_MAX_ITEMS)
            fail_msg("%s:%d: more than %d keys", path, lineno, CASE_MAX_ITEMS);
        last = &c->items[c->n++];
        last->k = strdup(line);
        last->v = strdup(v);
        last->line = lineno;
    }
    free(text);
    for (int i = first; i < c->n; i++) {
        char *x = case_expand(path, c->items[i].line, c->items[i].v);
        free(c->items[i].v);
        c->items[i].v = x;
    }
}

static void case_free(case_conf *c)
{
    for (int i = 0; i < c->n; i++) {
        free(c->items[i].k);
        free(c->items[i].v);
    }
    c->n = 0;
}

/* The raw value of k (the last one if repeated), or NULL. */
static const char *case_raw(const case_conf *c, const char *k)
{
    for (int i = c->n - 1; i >= 0; i--)
        if (strcmp(c->items[i].k, k) == 0)
            return c->items[i].v;
    return NULL;
}

/* Splits v into words (malloc'd NULL-terminated array, *n words). A word is
 * bare (no space, no '"') or "quoted" with \" \\ \n \t \xHH escapes, so any
 * byte string can be written; "" is the empty word. */
static char **case_words(const case_conf *c, const char *v, size_t *n)
{
    size_t cap = 8;
    char **out = calloc(cap, sizeof *out);
    *n = 0;
    for (const char *p = v ? v : ""; *p;) {
        if (isspace((unsigned char)*p)) {
            p++;
            continue;
        }
        rg_buf b = {0};
        if (*p == '"') {
            for (p++; *p != '"'; p++) {
                if (!*p)
                    fail_msg("%s: unterminated \"word\" in: %s", c->path, v);
                char ch = *p;
                if (*p == '\\') {
                    p++;
                    if (*p == 'n')
                        ch = '\n';
                    else if (*p == 't')
                        ch = '\t';
                    else if (*p == '"' || *p == '\\')
                        ch = *p;
                    else if (*p == 'x' && isxdigit((unsigned char)p[1]) &&
                             isxdigit((unsigned char)p[2])) {
                        char hex[3] = {p[1], p[2], 0};
                        ch = (char)strtol(hex, NULL, 16);
                        p += 2;
                    } else
                        fail_msg("%s: bad escape \\%c in: %s", c->path, *p ? *p : '0', v);
                }
                rg_buf_append(&b, &ch, 1);
            }
            p++;
            if (*p && !isspace((unsigned char)*p))
                fail_msg("%s: text glued to a \"word\" in: %s", c->path, v);
        } else {
            const char *s = p;
            while (*p && !isspace((unsigned char)*p))
                p++;
            if (memchr(s, '"', (size_t)(p - s)))
                fail_msg("%s: a '\"' inside a bare word in: %s", c->path, v);
            rg_buf_append(&b, s, (size_t)(p - s));
        }
        if (*n + 1 >= cap) {
            cap *= 2;
            out = realloc(out, cap * sizeof *out);
        }
        out[(*n)++] = rg_buf_take(&b);
        out[*n] = NULL;
    }
    return out;
}

static void case_words_free(char **w)
{
    for (size_t i = 0; w && w[i]; i++)
        free(w[i]);
    free(w);
}

/* The words of key k (an empty list when absent). */
static CASE_UNUSED char **case_list(const case_conf *c, const char *k, size_t *n)
{
    return case_words(c, case_raw(c, k), n);
}

/* A one-word value: the text, or the quoted word unquoted (malloc'd), or
 * NULL when absent. */
static char *case_str(const case_conf *c, const char *k)
{
    const char *v = case_raw(c, k);
    if (!v)
        return NULL;
    if (v[0] != '"')
        return strdup(v);
    size_t n = 0;
    char **w = case_words(c, v, &n);
    if (n != 1)
        fail_msg("%s: %s takes one \"quoted\" value", c->path, k);
    char *s = w[0];
    w[0] = NULL;
    free(w);
    return s;
}

/* on/off, yes/no, 1/0; dflt when absent. */
static CASE_UNUSED int case_bool(const case_conf *c, const char *k, int dflt)
{
    const char *v = case_raw(c, k);
    if (!v)
        return dflt;
    if (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "1"))
        return 1;
    if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "0"))
        return 0;
    fail_msg("%s: %s = %s is not on/off", c->path, k, v);
    return dflt;
}

/* Checks the words of key k against got[0..n) (the key absent: an empty
 * list expected, unless absent_ok). */
static CASE_UNUSED void case_expect_list(case_conf *c, const char *k, int absent_ok,
                                         const char *const *got, size_t n)
{
    if (absent_ok && !case_raw(c, k))
        return;
    size_t nw = 0;
    char **want = case_list(c, k, &nw);
    rg_buf b = {0};
    for (size_t i = 0; i < n; i++)
        rg_buf_printf(&b, "%s\"%s\"", i ? " " : "", got[i]);
    int ok = nw == n;
    for (size_t i = 0; ok && i < n; i++)
        ok = strcmp(want[i], got[i]) == 0;
    c->checks++;
    if (!ok)
        fail_msg("%s: %s: want %zu [%s], got %zu [%s]", c->path, k, nw,
                 case_raw(c, k) ? case_raw(c, k) : "", n, b.data ? b.data : "");
    rg_buf_free(&b);
    case_words_free(want);
}

/* The rule key every case carries: one or more R<n> of RBAC.md (R1-R31),
 * or a name from outside RBAC.md given as "OIDC-Core-3.1.3.7" and alike. */
static CASE_UNUSED void case_check_rule(const case_conf *c)
{
    size_t n = 0;
    char **w = case_list(c, "rule", &n);
    if (n == 0)
        fail_msg("%s: no rule = line (cite the rule of RBAC.md the case checks)", c->path);
    for (size_t i = 0; i < n; i++) {
        char *end = NULL;
        long r = w[i][0] == 'R' ? strtol(w[i] + 1, &end, 10) : 0;
        int rbac = end && !*end && r >= 1 && r <= 31;
        if (!rbac && strncmp(w[i], "OIDC-", 5) != 0)
            fail_msg("%s: rule '%s' is neither R1..R31 nor OIDC-...", c->path, w[i]);
    }
    case_words_free(w);
}

static int case_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The case files of dir: names "NNN-name.conf", sorted, those containing
 * filter (may be NULL). Any other entry but the ones in `allowed` (NULL
 * terminated) is an error, and so is a folder with no case at all: a
 * misnamed or lost case must not pass by being skipped. Returns the count;
 * *out is malloc'd (free each name and the array). */
static size_t case_dir(const char *dir, const char *const *allowed, const char *filter,
                       char ***out)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "no %s (run from the repository root)\n", dir);
        exit(1);
    }
    size_t n = 0, cap = 64, all = 0;
    char **names = calloc(cap, sizeof *names);
    for (struct dirent *e; (e = readdir(d));) {
        const char *nm = e->d_name;
        if (nm[0] == '.')
            continue;
        int ok = 0;
        for (const char *const *a = allowed; a && *a; a++)
            ok |= strcmp(*a, nm) == 0;
        if (ok)
            continue;
        size_t l = strlen(nm);
        if (!(l > 9 && isdigit((unsigned char)nm[0]) && isdigit((unsigned char)nm[1]) &&
              isdigit((unsigned char)nm[2]) && nm[3] == '-' && strcmp(nm + l - 5, ".conf") == 0)) {
            fprintf(stderr, "%s/%s: not a case file (NNN-name.conf) nor a known entry\n", dir, nm);
            exit(1);
        }
        all++;
        if (filter && !strstr(nm, filter))
            continue;
        if (n == cap)
            names = realloc(names, (cap *= 2) * sizeof *names);
        names[n++] = strdup(nm);
    }
    closedir(d);
    if (all == 0) {
        fprintf(stderr, "%s holds no case file: refusing to pass with nothing run\n", dir);
        exit(1);
    }
    qsort(names, n, sizeof *names, case_cmp);
    *out = names;
    return n;
}

/* Runs fn once per case file of dir (one cmocka test named after the file,
 * its state the file name; argv[1] filters by name) and prints
 * "<group>: N cases, M checks" (*checks as fn left it). Returns the exit
 * code: 1 when a case failed. */
static CASE_UNUSED int case_run(const char *group, const char *dir,
                                const char *const *allowed, int argc, char **argv,
                                CMUnitTestFunction fn, const size_t *checks)
{
    char **names = NULL;
    size_t n = case_dir(dir, allowed, argc > 1 ? argv[1] : NULL, &names);
    struct CMUnitTest *tests = calloc(n ? n : 1, sizeof *tests);
    for (size_t i = 0; i < n; i++) {
        tests[i].name = names[i];
        tests[i].test_func = fn;
        tests[i].initial_state = names[i];
    }
    int failed = _cmocka_run_group_tests(group, tests, n, NULL, NULL);
    fprintf(stderr, "%s: %zu cases, %zu checks\n", group, n, *checks);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(tests);
    return failed ? 1 : (n == 0);
}

#endif
