/* charset.c: one reading of untrusted XML bytes (issue 11 item 11, DESIGN.md
 * "Security floor"). rolegate's own checks parse SAML responses and IdP
 * metadata forced to UTF-8, while lasso and xmlsec parse the same bytes again
 * honouring a BOM and the XML declaration: a UTF-7 document is a comment to
 * one and markup to the other. So bytes are taken only if every XML parser
 * must read them as UTF-8: no BOM, valid UTF-8 throughout, and an XML
 * declaration, if any, first and exactly per the XML 1.0 grammar with version
 * "1.0" and encoding, if named, "UTF-8" (any letter case). */
#include <stddef.h>
#include <string.h>
#include <strings.h>
#include "rolegate/saml.h"
#include "rolegate/util.h"

static int is_s(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Cursor over the declaration. */
typedef struct cur { const char *p, *end; } cur;

static int skip_s(cur *c)
{
    const char *start = c->p;
    while (c->p < c->end && is_s(*c->p))
        c->p++;
    return c->p > start;
}

static int eat(cur *c, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
        return 0;
    c->p += n;
    return 1;
}

/* Eq and a quoted value: S? '=' S? ('"' v '"' | "'" v "'"). Sets v and n. */
static int eq_value(cur *c, const char **v, size_t *n)
{
    skip_s(c);
    if (!eat(c, "="))
        return 0;
    skip_s(c);
    if (c->p >= c->end || (*c->p != '"' && *c->p != '\''))
        return 0;
    char q = *c->p++;
    const char *close = memchr(c->p, q, (size_t)(c->end - c->p));
    if (!close)
        return 0;
    *v = c->p;
    *n = (size_t)(close - c->p);
    c->p = close + 1;
    return 1;
}

/* XMLDecl ::= '<?xml' VersionInfo EncodingDecl? SDDecl? S? '?>' at c->p. */
static const char *check_decl(cur *c)
{
    const char *v;
    size_t n;
    c->p += 5;   /* "<?xml" */
    if (!skip_s(c) || !eat(c, "version") || !eq_value(c, &v, &n) || n != 3 ||
        memcmp(v, "1.0", 3) != 0)
        return "the XML declaration must start with version=\"1.0\"";
    int s = skip_s(c);
    if (s && eat(c, "encoding")) {
        if (!eq_value(c, &v, &n) || n != 5 || strncasecmp(v, "UTF-8", 5) != 0)
            return "the XML declaration names an encoding other than UTF-8";
        s = skip_s(c);
    }
    if (s && eat(c, "standalone")) {
        if (!eq_value(c, &v, &n) || !((n == 3 && memcmp(v, "yes", 3) == 0) ||
                                      (n == 2 && memcmp(v, "no", 2) == 0)))
            return "the XML declaration has a bad standalone value";
        skip_s(c);
    }
    if (!eat(c, "?>"))
        return "the XML declaration is malformed";
    return NULL;
}

const char *rg_saml_xml_charset_check(const char *buf, size_t len)
{
    if (!buf)
        return "no document";
    const unsigned char *u = (const unsigned char *)buf, *end = u + len;
    if ((len >= 3 && u[0] == 0xEF && u[1] == 0xBB && u[2] == 0xBF) ||
        (len >= 2 && ((u[0] == 0xFE && u[1] == 0xFF) || (u[0] == 0xFF && u[1] == 0xFE))))
        return "a byte order mark is not allowed (UTF-8 without BOM only)";
    for (const unsigned char *p = u; p < end;) {
        size_t n = rg_utf8_char(p, end, NULL);
        if (n == 0 || (n == 1 && *p == 0))
            return "the document is not UTF-8 (UTF-16, EBCDIC, Latin-1 or invalid bytes)";
        p += n;
    }
    cur c = {buf, buf + len};
    int decl = len >= 6 && memcmp(buf, "<?xml", 5) == 0 && is_s(buf[5]);
    if (decl) {
        const char *why = check_decl(&c);
        if (why)
            return why;
    }
    /* A processing instruction named xml (any case) anywhere else is a
     * declaration out of place, which parsers treat differently. */
    for (const char *p = c.p; (p = memchr(p, '<', (size_t)(c.end - p))) != NULL; p++) {
        if ((size_t)(c.end - p) >= 5 && p[1] == '?' && strncasecmp(p + 2, "xml", 3) == 0 &&
            ((size_t)(c.end - p) == 5 || is_s(p[5]) || p[5] == '?'))
            return "an XML declaration is allowed only at the very start";
    }
    return NULL;
}
