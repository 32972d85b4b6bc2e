/* pg_sql.c: the one place where the store's SQL (written for SQLite) becomes
 * PostgreSQL's (issue 15). Statements: '?' -> $n; "IS ?" / "IS NOT ?" ->
 * IS [NOT] DISTINCT FROM $n; json_each(x) [alias] ->
 * json_array_elements_text(CAST(x AS json)) WITH ORDINALITY AS alias(value,
 * ord), json_each(x, '$.f') -> json_array_elements(CAST(x AS json)->'f') ...
 * (objects), alias.key -> (alias.ord - 1) (SQLite's 0-based key);
 * json_extract(x, '$.f') -> (CAST(x AS json)->>'f'); rowid (only in ORDER
 * BY: insertion order) -> created_at, id. Migrations' DDL: INTEGER PRIMARY
 * KEY AUTOINCREMENT -> an identity column; INTEGER -> BIGINT; TEXT -> TEXT
 * COLLATE "C" (byte order, as SQLite's BINARY compares and sorts);
 * REFERENCES without an ON action -> DEFERRABLE INITIALLY DEFERRED (see
 * there). A parameter tested for NULL or in a select list is CAST to TEXT
 * (PostgreSQL cannot type it); a comment "/ * pg: text * /" (no spaces) is
 * text for PostgreSQL alone (FOR UPDATE SKIP LOCKED). String literals and
 * quoted identifiers are copied untouched. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "rolegate/arena.h"
#include "pg_sql.h"

static int is_word(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* Length of the quoted token at s ('...' or "..."), doubled quotes kept. */
static size_t quoted_len(const char *s)
{
    char q = *s;
    size_t i = 1;
    for (;;) {
        if (!s[i])
            return i;
        if (s[i] == q) {
            if (s[i + 1] == q) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i++;
    }
}

/* 1 if the word w (case-insensitive) starts at s and ends at a boundary. */
static int word_at(const char *s, const char *w)
{
    size_t n = strlen(w);
    return !strncasecmp(s, w, n) && !is_word(s[n]);
}

static const char *skip_ws(const char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    return s;
}

/* The end of the parenthesized argument list whose '(' is at s (the char
 * after the matching ')'), and the position of its top-level comma (NULL:
 * one argument). */
static const char *args_end(const char *s, const char **comma)
{
    int depth = 0;
    *comma = NULL;
    for (const char *p = s; *p; p++) {
        if (*p == '\'' || *p == '"') {
            p += quoted_len(p) - 1;
            continue;
        }
        if (*p == '(')
            depth++;
        else if (*p == ')' && --depth == 0)
            return p + 1;
        else if (*p == ',' && depth == 1 && !*comma)
            *comma = p;
    }
    return NULL;
}

static void stmt_into(rg_buf *b, const char *s, size_t len, int *np);

/* '$.field' (a SQLite JSON path of one member) -> 'field'. */
static void path_member(rg_buf *b, const char *s, size_t len)
{
    const char *t = skip_ws(s);
    len -= (size_t)(t - s);
    s = t;
    while (len && isspace((unsigned char)s[len - 1]))
        len--;
    if (len >= 4 && s[0] == '\'' && s[1] == '$' && s[2] == '.') {
        rg_buf_puts(b, "'");
        rg_buf_append(b, s + 3, len - 3);
    } else {
        rg_buf_append(b, s, len);
    }
}

static const char *const not_alias[] = { "WHERE", "JOIN", "ON", "ORDER", "GROUP", "LIMIT",
                                         "LEFT", "INNER", "CROSS", "AND", "OR", NULL };

/* json_each(...) at s (after the name): writes the PostgreSQL set-returning
 * form and returns where the input continues (past the alias if any). */
static const char *json_each_into(rg_buf *b, const char *s, int *np)
{
    const char *comma, *end = args_end(s, &comma);
    if (!end)
        return NULL;
    const char *a1 = s + 1, *a1e = comma ? comma : end - 1;
    rg_buf_puts(b, comma ? "json_array_elements(CAST(" : "json_array_elements_text(CAST(");
    stmt_into(b, a1, (size_t)(a1e - a1), np);
    rg_buf_puts(b, " AS json)");
    if (comma) {
        rg_buf_puts(b, "->");
        path_member(b, comma + 1, (size_t)(end - 1 - (comma + 1)));
    }
    rg_buf_puts(b, ") WITH ORDINALITY AS ");
    const char *p = skip_ws(end);
    int alias = is_word(*p) && !isdigit((unsigned char)*p);
    for (int i = 0; alias && not_alias[i]; i++)
        if (word_at(p, not_alias[i]))
            alias = 0;
    if (alias) {
        const char *q = p;
        while (is_word(*q))
            q++;
        rg_buf_append(b, p, (size_t)(q - p));
        end = q;
    } else {
        rg_buf_puts(b, "je");
    }
    rg_buf_puts(b, "(value, ord)");
    return end;
}

/* json_extract(x, '$.f') at s (after the name). */
static const char *json_extract_into(rg_buf *b, const char *s, int *np)
{
    const char *comma, *end = args_end(s, &comma);
    if (!end || !comma)
        return NULL;
    rg_buf_puts(b, "(CAST(");
    stmt_into(b, s + 1, (size_t)(comma - (s + 1)), np);
    rg_buf_puts(b, " AS json)->>");
    path_member(b, comma + 1, (size_t)(end - 1 - (comma + 1)));
    rg_buf_puts(b, ")");
    return end;
}

static void param(rg_buf *b, int *np)
{
    char t[16];
    snprintf(t, sizeof t, "$%d", ++*np);
    rg_buf_puts(b, t);
}

/* 1 if what is written so far ends with the word SELECT (and spaces). */
static int after_select(const rg_buf *b)
{
    size_t k = b->len;
    while (k > 0 && isspace((unsigned char)b->data[k - 1]))
        k--;
    return k >= 6 && !strncasecmp(b->data + k - 6, "SELECT", 6) &&
           (k == 6 || !is_word(b->data[k - 7]));
}

static void stmt_into(rg_buf *b, const char *s, size_t len, int *np)
{
    const char *p = s, *e = s + len;
    while (p < e && !b->oom) {
        if (*p == '\'' || *p == '"') {
            size_t n = quoted_len(p);
            rg_buf_append(b, p, n);
            p += n;
            continue;
        }
        if (p[0] == '/' && p[1] == '*') {
            /* a comment "pg: text" is text for PostgreSQL alone */
            const char *q = strstr(p + 2, "*/");
            size_t n = q ? (size_t)(q + 2 - p) : strlen(p);
            const char *c = skip_ws(p + 2);
            if (q && !strncmp(c, "pg:", 3)) {
                c = skip_ws(c + 3);
                const char *ce = q;
                while (ce > c && isspace((unsigned char)ce[-1]))
                    ce--;
                rg_buf_append(b, c, (size_t)(ce - c));
            } else {
                rg_buf_append(b, p, n);
            }
            p += n;
            continue;
        }
        if (*p == '?') {
            /* a parameter whose type nothing around it gives (tested for
             * NULL, or a value of a select list) is text */
            const char *q = skip_ws(p + 1);
            int untyped = word_at(q, "IS") || after_select(b);
            if (untyped)
                rg_buf_puts(b, "CAST(");
            param(b, np);
            if (untyped)
                rg_buf_puts(b, " AS TEXT)");
            p++;
            continue;
        }
        int boundary = p == s || !is_word(p[-1]);
        if (boundary && word_at(p, "IS")) {
            const char *q = skip_ws(p + 2);
            int neg = word_at(q, "NOT");
            if (neg)
                q = skip_ws(q + 3);
            if (*q == '?') {
                rg_buf_puts(b, neg ? "IS DISTINCT FROM " : "IS NOT DISTINCT FROM ");
                param(b, np);
                p = q + 1;
                continue;
            }
        }
        if (boundary && (word_at(p, "json_each") || word_at(p, "json_extract"))) {
            int each = word_at(p, "json_each");
            const char *q = skip_ws(p + (each ? 9 : 12));
            const char *next = *q == '(' ? (each ? json_each_into(b, q, np)
                                                 : json_extract_into(b, q, np))
                                         : NULL;
            if (next) {
                p = next;
                continue;
            }
        }
        if (boundary && word_at(p, "rowid")) {
            rg_buf_puts(b, "created_at, id");
            p += 5;
            continue;
        }
        if (*p == '.' && word_at(p + 1, "key") && p > s && is_word(p[-1])) {
            /* alias.key: the alias is already written; wrap it */
            size_t k = b->len;
            while (k > 0 && is_word(b->data[k - 1]))
                k--;
            char alias[64];
            size_t an = b->len - k < sizeof alias - 1 ? b->len - k : sizeof alias - 1;
            memcpy(alias, b->data + k, an);
            alias[an] = 0;
            b->len = k;
            rg_buf_puts(b, "(");
            rg_buf_puts(b, alias);
            rg_buf_puts(b, ".ord - 1)");
            p += 4;
            continue;
        }
        rg_buf_append(b, p, 1);
        p++;
    }
}

char *rg_st_pg_sql(const char *sql, int *nparams)
{
    rg_buf b = { 0 };
    int np = 0;
    stmt_into(&b, sql, strlen(sql), &np);
    if (nparams && !b.oom)
        *nparams = np;
    return rg_buf_take(&b);
}

char *rg_st_pg_ddl(const char *sql)
{
    rg_buf b = { 0 };
    for (const char *p = sql; *p && !b.oom;) {
        if (*p == '\'' || *p == '"') {
            size_t n = quoted_len(p);
            rg_buf_append(&b, p, n);
            p += n;
            continue;
        }
        int boundary = p == sql || !is_word(p[-1]);
        if (boundary && word_at(p, "INTEGER")) {
            const char *q = skip_ws(p + 7);
            if (word_at(q, "PRIMARY") && word_at(skip_ws(skip_ws(q + 7) + 3), "AUTOINCREMENT") &&
                word_at(skip_ws(q + 7), "KEY")) {
                rg_buf_puts(&b, "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY");
                p = skip_ws(skip_ws(q + 7) + 3) + 13;
                continue;
            }
            rg_buf_puts(&b, "BIGINT");
            p += 7;
            continue;
        }
        if (boundary && word_at(p, "REFERENCES")) {
            /* REFERENCES t(c) without an action: checked at commit, as
             * SQLite's end-of-statement check lets a cascade of the same
             * statement remove the referencing rows first */
            const char *q = strchr(p, ')');
            if (q && !word_at(skip_ws(q + 1), "ON")) {
                rg_buf_append(&b, p, (size_t)(q + 1 - p));
                rg_buf_puts(&b, " DEFERRABLE INITIALLY DEFERRED");
                p = q + 1;
                continue;
            }
        }
        if (boundary && word_at(p, "TEXT")) {
            rg_buf_puts(&b, "TEXT COLLATE \"C\"");
            p += 4;
            continue;
        }
        rg_buf_append(&b, p, 1);
        p++;
    }
    return rg_buf_take(&b);
}
