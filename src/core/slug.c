/* slug.c: validation of role and permission slugs, names and descriptions
 * (R1-R4, R2, R6) and generation of organization role slugs from a name and
 * a role id (R5, with the R3 rule that only explicit organization slugs
 * begin with "org-"). Also the role_source names. Pure libc. */
#include <assert.h>
#include <stdint.h>
#include <string.h>
#include "rolegate/core.h"
#include "rolegate/util.h"

#define ULID_LEN 26
#define SUFFIX_LEN 6

const char *rg_core_source_name(rg_role_source s)
{
    switch (s) {
    case RG_SOURCE_IDP:       return "idp";
    case RG_SOURCE_DIRECTORY: return "directory";
    case RG_SOURCE_API:       return "api";
    case RG_SOURCE_DEFAULT:   return "default";
    case RG_SOURCE_NONE:      break;
    }
    return "";
}

rg_role_source rg_core_source_parse(const char *s)
{
    if (!s)
        return RG_SOURCE_NONE;
    if (!strcmp(s, "idp"))
        return RG_SOURCE_IDP;
    if (!strcmp(s, "directory"))
        return RG_SOURCE_DIRECTORY;
    if (!strcmp(s, "api"))
        return RG_SOURCE_API;
    if (!strcmp(s, "default"))
        return RG_SOURCE_DEFAULT;
    return RG_SOURCE_NONE;
}

static int is_sep(char c)
{
    return c == '-' || c == '_';
}

static int is_slug_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || is_sep(c);
}

static int invalid_slug(rg_error *err, const char *field, const char *why)
{
    return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_slug", field ? field : "slug",
                        "%s", why);
}

int rg_core_role_slug_check(const char *slug, rg_role_type type, const char *field,
                            rg_error *err)
{
    if (!slug || !*slug)
        return invalid_slug(err, field, "R1: a role slug must have 1-48 characters");
    size_t n = strlen(slug);
    if (n > RG_SLUG_MAX)
        return invalid_slug(err, field, "R1: a role slug must have 1-48 characters");
    for (size_t i = 0; i < n; i++) {
        if (!is_slug_char(slug[i]))
            return invalid_slug(err, field,
                                "R1: a role slug may only contain a-z, 0-9, '-' and '_'");
        /* R1: "a-_b" is a run of two separators as much as "a--b" */
        if (i > 0 && is_sep(slug[i]) && is_sep(slug[i - 1]))
            return invalid_slug(err, field, "R1: a role slug must not contain "
                                "consecutive separators");
    }
    if (is_sep(slug[0]) || is_sep(slug[n - 1]))
        return invalid_slug(err, field, "R1: a role slug must not begin or end with "
                            "a separator");
    if (!strcmp(slug, "priority"))
        return invalid_slug(err, field, "R1: the slug 'priority' is reserved");
    int org_prefix = !strncmp(slug, "org-", 4);
    if (type == RG_ROLE_ENV && org_prefix)
        return invalid_slug(err, field, "R3: an environment role slug must not begin "
                            "with 'org-'");
    if (type == RG_ROLE_ORG && !org_prefix)
        return invalid_slug(err, field, "R4: an organization role slug must begin "
                            "with 'org-'");
    return 0;
}

int rg_core_permission_slug_check(const char *slug, const char *field, rg_error *err)
{
    size_t n = slug ? strlen(slug) : 0;
    if (n == 0 || n > RG_SLUG_MAX)
        return invalid_slug(err, field, "R2: a permission slug must have 1-48 characters");
    for (size_t i = 0; i < n; i++) {
        char c = slug[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                 c == '.' || c == ':' || c == '_' || c == '*';
        if (!ok)
            return invalid_slug(err, field, "R2: a permission slug may only contain "
                                "a-z, 0-9 and '- . : _ *'");
    }
    return 0;
}

/* Counts the code points of s; returns -1 on invalid UTF-8, -2 on a control
 * character when controls are refused (C0, DEL and C1). */
static long utf8_count(const char *s, int refuse_controls)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
    long n = 0;
    while (*p) {
        unsigned cp;
        size_t l = rg_utf8_char(p, end, &cp);
        if (!l)
            return -1;
        if (refuse_controls && (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)))
            return -2;
        p += l;
        n++;
    }
    return n;
}

int rg_core_name_check(const char *name, const char *field, rg_error *err)
{
    const char *f = field ? field : "name";
    if (!name)
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_name", f, "R2: a name is required");
    long n = utf8_count(name, 1);
    if (n == -1)
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_name", f,
                            "R2: a name must be valid UTF-8");
    if (n == -2)
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_name", f,
                            "R2: a name must not contain control characters");
    if (n < 1 || n > RG_NAME_MAX)
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_name", f,
                            "R2: a name must have 1-48 characters");
    return 0;
}

int rg_core_description_check(const char *desc, const char *field, rg_error *err)
{
    const char *f = field ? field : "description";
    if (!desc)
        return 0;
    /* Descriptions are free text: line breaks are allowed, so only UTF-8
     * validity and the length are checked. */
    long n = utf8_count(desc, 0);
    if (n < 0)
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_description", f,
                            "R2: a description must be valid UTF-8");
    if (n > RG_DESC_MAX)
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_description", f,
                            "R2: a description must have at most 150 characters");
    return 0;
}

static int is_crockford(char c)
{
    if (c >= 'a' && c <= 'z')
        c = (char)(c - 'a' + 'A');
    if (c >= '0' && c <= '9')
        return 1;
    return c >= 'A' && c <= 'Z' && c != 'I' && c != 'L' && c != 'O' && c != 'U';
}

/* R3/R5: a generated slug never begins with "org-" (the prefix of explicit
 * organization slugs), so a name part that is "org" or begins with "org" and
 * a separator loses that word ("Org Admin" -> "admin-<suffix>"), repeatedly
 * ("Org Org Admin" -> "admin-<suffix>"). Returns the new start of p. */
static const char *strip_org_words(const char *p, size_t *len)
{
    while (*len >= 3 && !strncmp(p, "org", 3) && (*len == 3 || is_sep(p[3]))) {
        size_t skip = *len == 3 ? 3 : 4;
        p += skip;
        *len -= skip;
        /* runs are collapsed already, so no separator follows the one skipped */
        assert(*len == 0 || !is_sep(p[0]));
    }
    return p;
}

int rg_core_role_slug_generate(const char *name, const char *role_id,
                               char out[RG_SLUG_MAX + 1])
{
    assert(out);
    out[0] = 0;
    if (!role_id)
        return RG_EINVAL;
    const char *us = strrchr(role_id, '_');
    const char *ulid = us ? us + 1 : NULL;
    if (!ulid || us == role_id || strlen(ulid) != ULID_LEN)
        return RG_EINVAL;
    for (size_t i = 0; i < ULID_LEN; i++)
        if (!is_crockford(ulid[i]))
            return RG_EINVAL;
    char suffix[SUFFIX_LEN + 1];
    for (size_t i = 0; i < SUFFIX_LEN; i++) {
        char c = ulid[ULID_LEN - SUFFIX_LEN + i];
        suffix[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    suffix[SUFFIX_LEN] = 0;

    /* R5 normalization, in one pass: ASCII letters lowercased, ASCII
     * whitespace becomes '-', any other byte outside [a-z0-9_-] (including
     * every byte of a non-ASCII character) is removed; a run of separators
     * (even one formed by a removal, "a - b") collapses to its first
     * character; leading separators are dropped here, trailing ones below.
     * Only RG_SLUG_MAX characters can survive, so the scratch is bounded. */
    char norm[RG_SLUG_MAX + 1];
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)(name ? name : ""); *p; p++) {
        char c = (char)*p;
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        else if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f')
            c = '-';
        if (!is_slug_char(c))
            continue;
        if (is_sep(c) && (n == 0 || is_sep(norm[n - 1])))
            continue;
        if (n == RG_SLUG_MAX)
            break;
        norm[n++] = c;
    }
    while (n > 0 && is_sep(norm[n - 1]))
        n--;
    norm[n] = 0;

    size_t len = n;
    const char *part = strip_org_words(norm, &len);
    /* R5: the name part is cut so "<part>-<suffix>" fits RG_SLUG_MAX, and
     * separators the cut leaves at its end are trimmed. */
    size_t room = RG_SLUG_MAX - 1 - SUFFIX_LEN;
    if (len > room)
        len = room;
    while (len > 0 && is_sep(part[len - 1]))
        len--;
    /* the cut keeps >= 40 characters of a name that did not begin with
     * "org-", so it cannot create that prefix */
    assert(len == 0 || len > 4 || strncmp(part, "org", 3) || (len > 3 && !is_sep(part[3])));

    if (len == 0) {
        memcpy(out, suffix, SUFFIX_LEN + 1);   /* R5: nothing left: suffix alone */
        return 0;
    }
    memcpy(out, part, len);
    out[len] = '-';
    memcpy(out + len + 1, suffix, SUFFIX_LEN + 1);
    assert(strlen(out) <= RG_SLUG_MAX);
    return 0;
}
