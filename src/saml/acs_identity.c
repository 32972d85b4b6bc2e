/* acs_identity.c: what the ACS check reads out of a verified assertion:
 * xs:dateTime values (strict, UTC), the attribute values as text (email,
 * name, groups by the connection's attribute names), whether a NameID looks
 * like an email, and rg_saml_identity_clear for the result. */
#define RG_SAML_INTERNAL 1
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <glib.h>
#include <lasso/lasso.h>
#include <lasso/xml/misc_text_node.h>
#include <lasso/xml/saml-2.0/saml2_assertion.h>
#include <lasso/xml/saml-2.0/saml2_attribute.h>
#include <lasso/xml/saml-2.0/saml2_attribute_statement.h>
#include <lasso/xml/saml-2.0/saml2_attribute_value.h>
#include "saml_internal.h"

/* ---- time ----------------------------------------------------------------- */

/* n ASCII digits at s as a number, or -1: unlike sscanf("%2d") no sign, no
 * blank, no shorter field is accepted. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* xs:dateTime "YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm|-hh:mm)" → seconds. A value
 * with no zone is taken as UTC (SAML core 1.3.3 requires UTC). -1 if bad. */
int64_t acs_parse_time(const char *s)
{
    if (!s || strlen(s) < 19 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':')
        return -1;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = digits(s, 4);
    tm.tm_mon = digits(s + 5, 2);
    tm.tm_mday = digits(s + 8, 2);
    tm.tm_hour = digits(s + 11, 2);
    tm.tm_min = digits(s + 14, 2);
    tm.tm_sec = digits(s + 17, 2);
    if (tm.tm_year < 0 || tm.tm_mon < 0 || tm.tm_mday < 0 || tm.tm_hour < 0 || tm.tm_min < 0 ||
        tm.tm_sec < 0)
        return -1;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        while (isdigit((unsigned char)*p))
            p++;
    }
    int off = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh = digits(p + 1, 2), mm = p[3] == ':' ? digits(p + 4, 2) : -1;
        if (hh < 0 || mm < 0 || hh > 14 || mm > 59)
            return -1;
        off = (hh * 3600 + mm * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    }
    if (*p)
        return -1;
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) - off;
}

/* ---- identity ------------------------------------------------------------- */

void rg_saml_identity_clear(rg_saml_identity *id)
{
    if (!id)
        return;
    free(id->subject);
    free(id->subject_format);
    free(id->email);
    free(id->name);
    for (size_t i = 0; i < id->n_groups; i++)
        free(id->groups[i]);
    free(id->groups);
    free(id->issuer);
    free(id->assertion_id);
    free(id->in_response_to);
    free(id->session_index);
    memset(id, 0, sizeof *id);
}

char *acs_dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* The unescaped text of one AttributeValue: all its text children joined, so
 * a comment splitting the text cannot truncate it (the signature covers the
 * text without the comment). NULL for element content or an empty value. */
static char *attribute_text(LassoNode *value)
{
    if (!LASSO_IS_SAML2_ATTRIBUTE_VALUE(value))
        return NULL;
    rg_buf b = {0};
    int text = 0;
    for (GList *a = LASSO_SAML2_ATTRIBUTE_VALUE(value)->any; a; a = a->next) {
        if (!LASSO_IS_MISC_TEXT_NODE(a->data))
            return rg_buf_free(&b), NULL;
        LassoMiscTextNode *t = LASSO_MISC_TEXT_NODE(a->data);
        if (!t->text_child)
            return rg_buf_free(&b), NULL;
        if (t->content)
            rg_buf_puts(&b, t->content);
        text = 1;
    }
    if (!text || b.len == 0) {
        rg_buf_free(&b);
        return NULL;
    }
    return rg_buf_take(&b);
}

static int name_in(char *const *list, const LassoSaml2Attribute *at)
{
    for (size_t i = 0; list[i]; i++)
        if ((at->Name && strcmp(at->Name, list[i]) == 0) ||
            (at->FriendlyName && strcmp(at->FriendlyName, list[i]) == 0))
            return 1;
    return 0;
}

/* Fills email, name and groups from every AttributeStatement. */
int acs_read_attributes(const rg_saml_connection *c, LassoSaml2Assertion *as,
                        rg_saml_identity *id)
{
    size_t cap = id->n_groups;   /* id->groups holds at least this many */
    for (GList *st = as->AttributeStatement; st; st = st->next) {
        if (!LASSO_IS_SAML2_ATTRIBUTE_STATEMENT(st->data))
            continue;
        for (GList *al = LASSO_SAML2_ATTRIBUTE_STATEMENT(st->data)->Attribute; al; al = al->next) {
            if (!LASSO_IS_SAML2_ATTRIBUTE(al->data))
                continue;
            LassoSaml2Attribute *at = LASSO_SAML2_ATTRIBUTE(al->data);
            int g = name_in(c->group_attrs, at);
            int e = !id->email && name_in(c->email_attrs, at);
            int n = !id->name && name_in(c->name_attrs, at);
            if (!g && !e && !n)
                continue;
            for (GList *v = at->AttributeValue; v; v = v->next) {
                char *t = attribute_text(v->data);
                if (!t)
                    continue;
                if (e && !id->email) {
                    id->email = strdup(t);
                    if (!id->email)
                        return free(t), -1;
                }
                if (n && !id->name) {
                    id->name = strdup(t);
                    if (!id->name)
                        return free(t), -1;
                }
                if (!g) {
                    free(t);
                    continue;
                }
                if (rg_grow(&id->groups, id->n_groups, &cap, sizeof *id->groups, 4) < 0)
                    return free(t), -1;
                id->groups[id->n_groups++] = t;
            }
        }
    }
    return 0;
}

int acs_looks_like_email(const char *s)
{
    const char *at = s ? strchr(s, '@') : NULL;
    if (!at || at == s || !at[1] || strchr(at + 1, '@') || !strchr(at + 1, '.'))
        return 0;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '<' || *p == '>' || *p == '"')
            return 0;
    return 1;
}
