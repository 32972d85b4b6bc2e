/* codec.c: base64 and base64url, randomness from getrandom(2),
 * constant-time comparison for keys and MACs, hex digits, UTF-8 sequences
 * and the FNV-1a hash of the in-process maps. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include "rolegate/util.h"

static const char b64std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void rg_random_bytes(void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            abort();
        }
        p += r;
        n -= (size_t)r;
    }
}

char *rg_random_token(char *out, size_t outsz, size_t n)
{
    unsigned char raw[64];
    if (n > sizeof raw)
        n = sizeof raw;
    if (rg_b64url_len(n) + 1 > outsz)
        n = (outsz - 1) * 3 / 4;
    rg_random_bytes(raw, n);
    rg_b64url_encode(raw, n, out);
    return out;
}

int rg_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    const unsigned char *x = a, *y = b;
    unsigned char d = (unsigned char)(alen != blen);
    size_t n = alen < blen ? alen : blen;
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(x[i] ^ y[i]);
    return d == 0;
}

size_t rg_b64url_len(size_t n)
{
    return (n / 3) * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

static size_t encode(const unsigned char *in, size_t n, char *out,
                     const char *alpha, int pad)
{
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = alpha[v >> 18 & 63];
        out[o++] = alpha[v >> 12 & 63];
        out[o++] = alpha[v >> 6 & 63];
        out[o++] = alpha[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        out[o++] = alpha[v >> 18 & 63];
        out[o++] = alpha[v >> 12 & 63];
        if (pad) { out[o++] = '='; out[o++] = '='; }
    } else if (n - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        out[o++] = alpha[v >> 18 & 63];
        out[o++] = alpha[v >> 12 & 63];
        out[o++] = alpha[v >> 6 & 63];
        if (pad) out[o++] = '=';
    }
    out[o] = 0;
    return o;
}

size_t rg_b64url_encode(const void *in, size_t n, char *out)
{
    return encode(in, n, out, b64url, 0);
}

size_t rg_b64_encode(const void *in, size_t n, char *out)
{
    return encode(in, n, out, b64std, 1);
}

static int dec_char(int c, int url)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (url ? c == '-' : c == '+') return 62;
    if (url ? c == '_' : c == '/') return 63;
    return -1;
}

static long decode(const char *in, size_t len, unsigned char *out, int url)
{
    unsigned acc = 0;
    int bits = 0, pads = 0;
    long o = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)in[i];
        if (!url && (c == ' ' || c == '\n' || c == '\r' || c == '\t'))
            continue;
        if (!url && c == '=') {
            pads++;
            continue;
        }
        if (pads)
            return -1;            /* data after padding */
        int v = dec_char(c, url);
        if (v < 0)
            return -1;
        acc = acc << 6 | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (bits >= 6 || pads > 2)    /* a lone trailing sextet is not valid */
        return -1;
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return -1;                /* non-canonical trailing bits */
    return o;
}

int rg_b64url_chars(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

long rg_b64url_decode(const char *in, size_t len, unsigned char *out)
{
    return decode(in, len, out, 1);
}

long rg_b64_decode(const char *in, size_t len, unsigned char *out)
{
    return decode(in, len, out, 0);
}

int rg_hex_digit(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

uint64_t rg_fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

size_t rg_utf8_char(const unsigned char *p, const unsigned char *end, unsigned *cp)
{
    unsigned c = p[0];
    size_t n;
    unsigned min;
    if (cp)
        *cp = c;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n)
        return 0;
    unsigned v = c & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (p[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    if (cp)
        *cp = v;
    return n;
}

long rg_pct_decode(const char *s, size_t n, char *out, size_t outsz)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '%') {
            if (i + 2 >= n)
                return -1;
            int a = rg_hex_digit(s[i + 1]), b = rg_hex_digit(s[i + 2]);
            if (a < 0 || b < 0)
                return -1;
            ch = a * 16 + b;
            i += 2;
            if (ch == 0)
                return -1;
        }
        if (k + 1 >= outsz)
            return -1;
        out[k++] = (char)ch;
    }
    if (!outsz)
        return -1;
    out[k] = '\0';
    return (long)k;
}
