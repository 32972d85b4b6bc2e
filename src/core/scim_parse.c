/* scim_parse.c: the SCIM filter and PATCH path grammar of scim.h (RFC 7644
 * §3.4.2.2 subset: "eq" and "and"; §3.5.2 paths with value filters and
 * URN-qualified attributes), DESIGN.md "Directory sync". Pure: a cursor
 * over the input, fixed-size outputs, every failure a reason. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "rolegate/scim.h"
#include "rolegate/util.h"

typedef struct cur {
    const char *p;
    char *why;
    size_t whysz;
} cur;

static int fail(cur *c, const char *msg)
{
    snprintf(c->why, c->whysz, "%s", msg);
    return -1;
}

static void skip_sp(cur *c)
{
    while (*c->p == ' ')
        c->p++;
}

static int name_char(char ch, int first)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
        return 1;
    return !first && ((ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '$');
}

/* ATTRNAME into out. */
static int attr_name(cur *c, char *out, size_t outsz)
{
    size_t n = 0;
    if (!name_char(*c->p, 1))
        return fail(c, "an attribute name was expected");
    while (name_char(*c->p, n == 0)) {
        if (n + 1 >= outsz)
            return fail(c, "attribute name too long");
        out[n++] = *c->p++;
    }
    out[n] = '\0';
    return 0;
}

/* [URN ":"] attr ["." sub] as three parts. A URN runs to the last ':'
 * before a character that cannot be in a name. */
static int attr_path(cur *c, char *urn, size_t urnsz, char *attr, char *sub)
{
    urn[0] = sub[0] = '\0';
    if (!strncasecmp(c->p, "urn:", 4)) {
        const char *q = c->p, *last = NULL;
        while (*q && *q != ' ' && *q != '[' && *q != ']' && *q != '"') {
            if (*q == ':')
                last = q;
            q++;
        }
        if (!last || last == c->p + 3 || (size_t)(last - c->p) >= urnsz)
            return fail(c, "a URN attribute was expected (urn:...:attribute)");
        memcpy(urn, c->p, (size_t)(last - c->p));
        urn[last - c->p] = '\0';
        c->p = last + 1;
    }
    if (attr_name(c, attr, RG_SCIM_NAME_MAX))
        return -1;
    if (*c->p == '.') {
        c->p++;
        if (attr_name(c, sub, RG_SCIM_NAME_MAX))
            return -1;
        if (*c->p == '.')
            return fail(c, "only one sub-attribute level exists");
    }
    return 0;
}

/* Appends code point cp as UTF-8. */
static int put_utf8(char *out, size_t *n, size_t outsz, unsigned cp)
{
    unsigned char b[4];
    size_t k;
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        k = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | (cp >> 6));
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        k = 2;
    } else {
        b[0] = (unsigned char)(0xE0 | (cp >> 12));
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        k = 3;
    }
    if (*n + k >= outsz)
        return -1;
    memcpy(out + *n, b, k);
    *n += k;
    return 0;
}

/* A JSON string (the cursor on its '"'), decoded into out. */
static int json_string(cur *c, char *out, size_t outsz)
{
    size_t n = 0;
    c->p++;
    for (;;) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '\0')
            return fail(c, "unterminated string");
        if (ch < 0x20)
            return fail(c, "control character in a string");
        c->p++;
        if (ch == '"')
            break;
        if (ch == '\\') {
            char e = *c->p;
            if (e == '\0')
                return fail(c, "unterminated string");
            c->p++;
            if (e == 'u') {
                unsigned cp = 0;
                for (int i = 0; i < 4; i++) {
                    int h = rg_hex_digit(c->p[i]);
                    if (h < 0)
                        return fail(c, "bad \\u escape");
                    cp = cp * 16 + (unsigned)h;
                }
                c->p += 4;
                if ((cp >= 0xD800 && cp <= 0xDFFF) || cp == 0)
                    return fail(c, "unsupported \\u escape");
                if (put_utf8(out, &n, outsz, cp))
                    return fail(c, "value too long");
                continue;
            }
            switch (e) {
            case '"': case '\\': case '/': ch = (unsigned char)e; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'n': ch = '\n'; break;
            case 'r': ch = '\r'; break;
            case 't': ch = '\t'; break;
            default: return fail(c, "bad escape in a string");
            }
        }
        if (n + 1 >= outsz)
            return fail(c, "value too long");
        out[n++] = (char)ch;
    }
    out[n] = '\0';
    return 0;
}

static int word(cur *c, const char *w)
{
    size_t n = strlen(w);
    if (strncasecmp(c->p, w, n) == 0 && !name_char(c->p[n], 0)) {
        c->p += n;
        return 1;
    }
    return 0;
}

/* attrPath SP "eq" SP value (stop: the character ending the term list). */
static int term(cur *c, rg_scim_term *t)
{
    char urn[RG_SCIM_URN_MAX], attr[RG_SCIM_NAME_MAX], sub[RG_SCIM_NAME_MAX];
    skip_sp(c);
    if (*c->p == '(')
        return fail(c, "parentheses are not supported");
    if (word(c, "not"))
        return fail(c, "'not' is not supported");
    if (attr_path(c, urn, sizeof urn, attr, sub))
        return -1;
    if (*c->p == '[')
        return fail(c, "value filters are not supported in a filter");
    snprintf(t->attr, sizeof t->attr, "%s%s%s%s%s", urn, *urn ? ":" : "", attr,
             *sub ? "." : "", sub);
    if (*c->p != ' ')
        return fail(c, "an operator was expected after the attribute");
    skip_sp(c);
    if (!word(c, "eq")) {
        static const char *const known[] = {"ne", "co", "sw", "ew", "pr", "gt", "ge", "lt",
                                            "le"};
        for (size_t i = 0; i < sizeof known / sizeof *known; i++)
            if (word(c, known[i]))
                return fail(c, "only the 'eq' operator is supported");
        return fail(c, "unknown operator");
    }
    if (*c->p != ' ')
        return fail(c, "a value was expected after 'eq'");
    skip_sp(c);
    t->value[0] = '\0';
    if (*c->p == '"') {
        t->type = RG_SCIM_V_STRING;
        return json_string(c, t->value, sizeof t->value);
    }
    if (word(c, "true"))
        t->type = RG_SCIM_V_TRUE;
    else if (word(c, "false"))
        t->type = RG_SCIM_V_FALSE;
    else if (word(c, "null"))
        t->type = RG_SCIM_V_NULL;
    else
        return fail(c, "the value must be a JSON string, true, false or null");
    return 0;
}

/* term *( SP "and" SP term ), up to end (a NUL, or ']' for a value filter). */
static int terms(cur *c, rg_scim_term *t, size_t max, char end)
{
    size_t n = 0;
    for (;;) {
        if (n == max)
            return fail(c, "too many terms");
        if (term(c, &t[n]))
            return -1;
        n++;
        skip_sp(c);
        if (*c->p == end)
            return (int)n;
        if (word(c, "and")) {
            if (*c->p != ' ')
                return fail(c, "a term was expected after 'and'");
            continue;
        }
        if (word(c, "or"))
            return fail(c, "'or' is not supported");
        return fail(c, "'and' or the end was expected");
    }
}

int rg_scim_filter_parse(const char *s, rg_scim_term *t, size_t max, char *why, size_t whysz)
{
    cur c = {.p = s ? s : "", .why = why, .whysz = whysz};
    if (!*c.p)
        return fail(&c, "empty filter");
    if (max > RG_SCIM_TERMS_MAX)
        max = RG_SCIM_TERMS_MAX;
    return terms(&c, t, max, '\0');
}

int rg_scim_path_parse(const char *s, rg_scim_path *out, char *why, size_t whysz)
{
    cur c = {.p = s ? s : "", .why = why, .whysz = whysz};
    memset(out, 0, sizeof *out);
    if (attr_path(&c, out->urn, sizeof out->urn, out->attr, out->sub))
        return -1;
    if (*c.p == '[') {
        if (out->sub[0])
            return fail(&c, "a value filter follows the attribute, not a sub-attribute");
        c.p++;
        int n = terms(&c, out->filter, RG_SCIM_TERMS_MAX, ']');
        if (n < 0)
            return -1;
        out->n_filter = (size_t)n;
        c.p++;   /* ']' */
        if (*c.p == '.') {
            c.p++;
            if (attr_name(&c, out->sub, sizeof out->sub))
                return -1;
        }
    }
    if (*c.p)
        return fail(&c, "unexpected characters after the path");
    return 0;
}
