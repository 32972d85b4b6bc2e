/* cookie.c: the session cookie (R24, DESIGN.md "cookies Secure; HttpOnly;
 * SameSite=Lax, __Host- prefix under HTTPS"): builds the whole Set-Cookie
 * value and tells its size without building it, so the issuer can hold the
 * 4096-byte budget (R24) before anything reaches a browser. */
#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/session.h"

#define ATTRS_TAIL "; HttpOnly; SameSite=Lax"
#define ATTR_SECURE "; Secure"

const char *rg_session_cookie_name(int secure)
{
    /* __Host- makes the browser refuse the cookie unless it is Secure, has
     * Path=/ and no Domain: no subdomain can plant or widen it */
    return secure ? RG_SESSION_COOKIE_SECURE : RG_SESSION_COOKIE_PLAIN;
}

static size_t digits(int64_t v)
{
    char tmp[24];
    return (size_t)snprintf(tmp, sizeof tmp, "%" PRId64, v);
}

size_t rg_session_cookie_len(const char *name, size_t token_len, int64_t max_age, int secure)
{
    if (!name)
        name = rg_session_cookie_name(secure);
    return strlen(name) + 1 + token_len + strlen("; Path=/; Max-Age=") + digits(max_age) +
           strlen(ATTRS_TAIL) + (secure ? strlen(ATTR_SECURE) : 0);
}

/* RFC 6265 4.1.1 cookie-octet: a token (base64url and dots) always passes;
 * anything that could end the header value or add an attribute fails. A
 * table: every refresh checks a whole token (issue 13). */
static unsigned char octet_ok[256];
static pthread_once_t octet_once = PTHREAD_ONCE_INIT;

static void octet_init(void)
{
    for (int c = 0x21; c <= 0x7e; c++)
        octet_ok[c] = c != '"' && c != ',' && c != ';' && c != '\\';
}

static int cookie_octets_ok(const char *s)
{
    pthread_once(&octet_once, octet_init);
    const unsigned char *p = (const unsigned char *)s;
    while (octet_ok[*p])
        p++;
    return *p == 0;
}

static int name_ok(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!strchr("!#$%&'*+-.^_`|~", *s) && !((*s >= '0' && *s <= '9') ||
            (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
            return 0;
    return 1;
}

long rg_session_cookie_build(const char *name, const char *token, int64_t max_age,
                             int secure, char **out)
{
    assert(token && out);
    *out = NULL;
    if (!name)
        name = rg_session_cookie_name(secure);
    if (!name_ok(name) || !cookie_octets_ok(token) || max_age < 0)
        return RG_EINVAL;
    size_t n = rg_session_cookie_len(name, strlen(token), max_age, secure);
    char *s = malloc(n + 1);
    if (!s)
        return RG_ENOMEM;
    int w = snprintf(s, n + 1, "%s=%s; Path=/; Max-Age=%" PRId64 "%s%s", name, token, max_age,
                     ATTRS_TAIL, secure ? ATTR_SECURE : "");
    assert(w >= 0 && (size_t)w == n);
    (void)w;
    *out = s;
    return (long)n;
}
