/* addr.c: listen addresses and trusted proxies: parsing "host:port" and
 * CIDRs, and whether an address is one of the listener's proxies. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "rolegate/config.h"
#include "http_internal.h"

/* ---- addresses and trusted proxies -------------------------------------- */

int rg_http_parse_cidr(const char *s, size_t n, cidr *c)
{
    char buf[80];
    if (n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = 0;
    memset(c, 0, sizeof *c);
    if (inet_pton(AF_INET, buf, c->addr) == 1) {
        c->family = AF_INET;
        c->bits = 32;
    } else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
        c->family = AF_INET6;
        c->bits = 128;
    } else {
        return -1;
    }
    if (slash) {
        char *end;
        long b = strtol(slash + 1, &end, 10);
        if (*end || end == slash + 1 || b < 0 || b > c->bits)
            return -1;
        c->bits = (int)b;
    }
    return 0;
}

int rg_http_addr_trusted(const rg_http_server *s, const char *ip)
{
    unsigned char a[16];
    int fam;
    if (!ip)
        return 0;
    if (inet_pton(AF_INET, ip, a) == 1) {
        fam = AF_INET;
    } else if (inet_pton(AF_INET6, ip, a) == 1) {
        fam = AF_INET6;
        /* an IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d */
        static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, v4mapped, 12) == 0) {
            memmove(a, a + 12, 4);
            fam = AF_INET;
        }
    } else {
        return 0;
    }
    for (int i = 0; i < s->nproxies; i++) {
        const cidr *c = &s->proxies[i];
        if (c->family != fam)
            continue;
        int full = c->bits / 8, rest = c->bits % 8;
        if (memcmp(a, c->addr, (size_t)full) != 0)
            continue;
        if (rest && ((a[full] ^ c->addr[full]) & (0xff << (8 - rest)) & 0xff))
            continue;
        return 1;
    }
    return 0;
}

/* "host:port", "[v6]:port", ":port" (rg_config_split_listen_any: the
 * syntax config load checks); port 0 allowed (any free port). The port as
 * text, for getaddrinfo. */
int rg_http_split_listen(const char *s, char *host, size_t hsz, char *port, size_t psz)
{
    int p;
    if (rg_config_split_listen_any(s, host, hsz, &p) != 0)
        return -1;
    int n = snprintf(port, psz, "%d", p);
    return n < 0 || (size_t)n >= psz ? -1 : 0;
}
