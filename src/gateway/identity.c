/* identity.c: identity attributes are data, not text to pass on (issue 11
 * item 13). What an IdP says about a user (subject, email, display name,
 * groups) is checked once, at the end of every SAML and OIDC login, before
 * it is stored, signed into the session or put in an /auth header: valid
 * UTF-8, no control character (U+0000-U+001F, U+007F-U+009F: a CR/LF would
 * split a header), bounded length. Subject, email and groups that break
 * this are refused; the display name is cleaned (README "Identity
 * attributes"). */
#include <string.h>
#include "rolegate/http.h"
#include "rolegate/util.h"
#include "login_internal.h"

#define SUBJECT_MAX 512    /* bytes */
#define EMAIL_MAX   254    /* RFC 5321 path limit */
#define NAME_MAX_B  256
#define GROUP_MAX   1024   /* LDAP DNs can be long */

static int is_control(unsigned cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

/* NULL if s is valid UTF-8 without control characters and at most max
 * bytes; else why not (static). */
static const char *text_problem(const char *s, size_t max)
{
    size_t len = strlen(s);
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned cp = 0;
        size_t n = rg_utf8_char(p, end, &cp);
        if (n == 0)
            return "is not valid UTF-8";
        if (is_control(cp))
            return "contains a control character (CR, LF, TAB, NUL, ...)";
        p += n;
    }
    return len > max ? "is too long" : NULL;
}

/* The display name cleaned into the arena: each control character becomes a
 * space, spaces at either end go, and it is cut to NAME_MAX_B bytes at a
 * character boundary. Not UTF-8 or empty after that: NULL (no name). */
static const char *clean_name(rg_arena *a, const char *s)
{
    size_t len = strlen(s), o = 0;
    char *out = rg_arena_alloc(a, len + 1);
    if (!out)
        return NULL;
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned cp = 0;
        size_t n = rg_utf8_char(p, end, &cp);
        if (n == 0)
            return NULL;
        if (o + n > NAME_MAX_B)
            break;
        if (is_control(cp)) {
            out[o++] = ' ';
        } else {
            memcpy(out + o, p, n);
            o += n;
        }
        p += n;
    }
    while (o && out[o - 1] == ' ')
        o--;
    out[o] = 0;
    char *start = out;
    while (*start == ' ')
        start++;
    return *start ? start : NULL;
}

static int refuse(rg_error *err, const char *field, const char *what, const char *why)
{
    return rg_error_set(err, RG_EINVAL, "identity_attribute_invalid", field,
                        "the identity provider's %s %s", what, why);
}

int lg_identity_check(rg_arena *a, lg_identity *id, rg_error *err)
{
    const char *why;
    if (!id->subject || !*id->subject)
        return refuse(err, "subject", "subject", "is empty");
    if ((why = text_problem(id->subject, SUBJECT_MAX)))
        return refuse(err, "subject", "subject", why);
    if (id->email && *id->email && (why = text_problem(id->email, EMAIL_MAX)))
        return refuse(err, "email", "email", why);
    for (size_t i = 0; i < id->n_groups; i++)
        if (!id->groups[i] || (why = text_problem(id->groups[i], GROUP_MAX)))
            return refuse(err, "groups", "group value", why ? why : "is missing");
    if (id->name && *id->name) {
        const char *clean = text_problem(id->name, NAME_MAX_B) ? clean_name(a, id->name)
                                                                 : id->name;
        if (clean != id->name)
            rg_log(RG_LOG_WARN, "event=identity_name_cleaned protocol=%s result=%s",
                   id->protocol ? id->protocol : "-", clean ? "cleaned" : "dropped");
        id->name = clean;
    }
    return 0;
}
