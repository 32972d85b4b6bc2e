/* fuzz_slug.c: libFuzzer target for the role model's text rules (core.h):
 * slug, permission slug, name and description checks (R1-R4, R2) compared
 * with an independent reference written from RBAC.md; the R5 slug generator
 * (its output is always a valid R1 slug that does not begin with "org-" (R3),
 * ends with the id suffix and fits 48 characters); and the R24 claims JSON
 * (always valid JSON that jansson parses, with every valid UTF-8 string
 * coming back byte for byte and invalid UTF-8 replaced, never passed on). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "rolegate/core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "property failed: %s (line %d)\n", #c, __LINE__); abort(); } } while (0)

/* ---- references, from RBAC.md, deliberately not sharing code with core --- */
static int ref_sep(char c) { return c == '-' || c == '_'; }

/* R1 (+ R3 for env: no "org-" prefix, + R4 for org: "org-" prefix required) */
static int ref_role_slug_ok(const char *s, int org)
{
    size_t n = strlen(s);
    if (n < 1 || n > 48 || !strcmp(s, "priority"))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || ref_sep(c)))
            return 0;
        if (ref_sep(c) && (i == 0 || i == n - 1 || ref_sep(s[i - 1])))
            return 0;
    }
    int pre = n >= 4 && memcmp(s, "org-", 4) == 0;
    return org ? pre : !pre;
}

static int ref_perm_slug_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 48)
        return 0;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-.:_*") == n;
}

/* Code points of s, -1 if not valid UTF-8 (RFC 3629), -2 if ctl and a
 * control character (C0, DEL, C1) is present. */
static long ref_utf8_count(const char *str, int ctl)
{
    const unsigned char *s = (const unsigned char *)str;
    long count = 0;
    int bad_ctl = 0;
    while (*s) {
        uint32_t cp;
        int len;
        if (s[0] < 0x80) { cp = s[0]; len = 1; }
        else if (s[0] >= 0xC2 && s[0] <= 0xDF) { cp = s[0] & 0x1F; len = 2; }
        else if (s[0] >= 0xE0 && s[0] <= 0xEF) { cp = s[0] & 0x0F; len = 3; }
        else if (s[0] >= 0xF0 && s[0] <= 0xF4) { cp = s[0] & 0x07; len = 4; }
        else return -1;
        for (int i = 1; i < len; i++) {
            if ((s[i] & 0xC0) != 0x80)
                return -1;
            cp = cp << 6 | (s[i] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return -1;
        if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F))
            bad_ctl = 1;
        s += len;
        count++;
    }
    return ctl && bad_ctl ? -2 : count;
}

static void check_rules(const char *s)
{
    rg_error err;
    CHECK((rg_core_role_slug_check(s, RG_ROLE_ENV, "slug", &err) == 0) == ref_role_slug_ok(s, 0));
    CHECK((rg_core_role_slug_check(s, RG_ROLE_ORG, NULL, &err) == 0) == ref_role_slug_ok(s, 1));
    CHECK((rg_core_permission_slug_check(s, "slug", &err) == 0) == ref_perm_slug_ok(s));
    long nc = ref_utf8_count(s, 1);
    int rc = rg_core_name_check(s, "name", &err);
    CHECK((rc == 0) == (nc >= 1 && nc <= 48));
    if (rc)
        CHECK(err.status == 422 && !strcmp(err.code, "invalid_name"));
    long nd = ref_utf8_count(s, 0);
    CHECK((rg_core_description_check(s, NULL, &err) == 0) == (nd >= 0 && nd <= 150));
}

static void check_generate(const char *name, const char *id)
{
    char out[RG_SLUG_MAX + 1];
    memset(out, 'X', sizeof out);
    int rc = rg_core_role_slug_generate(name, id, out);
    if (rc)
        return;
    rg_error err;
    const char *ulid = strrchr(id, '_') + 1;
    char suffix[7];
    for (int i = 0; i < 6; i++) {
        char c = ulid[20 + i];
        suffix[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    suffix[6] = 0;
    size_t n = strlen(out);
    CHECK(n <= RG_SLUG_MAX);
    /* R5 + R3: a valid slug, never with the explicit "org-" prefix */
    CHECK(ref_role_slug_ok(out, 0));
    CHECK(rg_core_role_slug_check(out, RG_ROLE_ENV, "slug", &err) == 0);
    CHECK(n >= 6 && !strcmp(out + n - 6, suffix));
    CHECK(n == 6 || out[n - 7] == '-');
}

/* Splits data at NUL bytes into up to max NUL-terminated strings (copied). */
static size_t split(const uint8_t *data, size_t size, char **f, size_t max, char *buf)
{
    size_t nf = 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    char *p = buf, *end = buf + size;
    while (nf < max) {
        f[nf++] = p;
        char *z = memchr(p, 0, (size_t)(end - p));
        if (!z || z == end)
            break;
        p = z + 1;
    }
    return nf;
}

/* s as jansson gives it back after the claims JSON: s itself if valid UTF-8. */
static void check_json_str(json_t *v, const char *s)
{
    CHECK(json_is_string(v));
    if (ref_utf8_count(s, 0) >= 0)
        CHECK(!strcmp(json_string_value(v), s));
}

static void check_claims(char **f, size_t nf, uint8_t flags)
{
    const char *roles[4], *perms[4];
    size_t nr = 0, np = 0;
    for (size_t i = 7; i < nf && nr < 4; i++)
        roles[nr++] = f[i];
    for (size_t i = 11; i < nf && np < 4; i++)
        perms[np++] = f[i];
    rg_claims c = {
        .iss = nf > 0 ? f[0] : "", .sub = nf > 1 ? f[1] : "x", .sid = nf > 2 ? f[2] : NULL,
        .jti = nf > 3 ? f[3] : "j", .org_id = nf > 4 ? f[4] : "o",
        .email = (flags & 1) && nf > 5 ? f[5] : NULL,
        .act_sub = (flags & 2) && nf > 6 ? f[6] : NULL,
        .roles = roles, .n_roles = nr, .permissions = perms, .n_permissions = np,
        .omit_permissions = (flags & 4) != 0,
        .iat = (flags & 8) ? INT64_MIN : (int64_t)flags * 1000003,
        .exp = (flags & 16) ? INT64_MAX : -(int64_t)flags,
    };
    char *js = NULL;
    size_t len = 0;
    CHECK(rg_core_claims_json(&c, &js, &len) == 0);
    CHECK(js && strlen(js) == len);
    json_error_t je;
    json_t *o = json_loadb(js, len, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        fprintf(stderr, "claims JSON does not parse: %s\n", je.text);
    CHECK(json_is_object(o));
    check_json_str(json_object_get(o, "iss"), c.iss);
    check_json_str(json_object_get(o, "sub"), c.sub);
    CHECK(c.sid ? json_is_string(json_object_get(o, "sid"))
                : json_is_null(json_object_get(o, "sid")));
    if (c.sid)
        check_json_str(json_object_get(o, "sid"), c.sid);
    check_json_str(json_object_get(o, "jti"), c.jti);
    check_json_str(json_object_get(o, "org_id"), c.org_id);
    if (c.email)
        check_json_str(json_object_get(o, "email"), c.email);
    else
        CHECK(!json_object_get(o, "email"));
    if (c.act_sub)
        check_json_str(json_object_get(json_object_get(o, "act"), "sub"), c.act_sub);
    json_t *r = json_object_get(o, "roles");
    CHECK(json_is_array(r) && json_array_size(r) == nr);
    for (size_t i = 0; i < nr; i++)
        check_json_str(json_array_get(r, i), roles[i]);
    if (nr)
        check_json_str(json_object_get(o, "role"), roles[0]);
    if (c.omit_permissions) {
        CHECK(json_is_true(json_object_get(o, "permissions_omitted")));
        CHECK(!json_object_get(o, "permissions"));
    } else {
        json_t *p = json_object_get(o, "permissions");
        CHECK(json_is_array(p) && json_array_size(p) == np);
        for (size_t i = 0; i < np; i++)
            check_json_str(json_array_get(p, i), perms[i]);
    }
    CHECK(json_integer_value(json_object_get(o, "iat")) == c.iat);
    CHECK(json_integer_value(json_object_get(o, "exp")) == c.exp);
    json_decref(o);
    free(js);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    uint8_t flags = data[0];
    data++;
    size--;
    char *buf = malloc(size + 1);
    if (!buf)
        abort();
    char *f[16];
    size_t nf = split(data, size, f, 16, buf);
    check_rules(f[0]);
    /* R5 with a well-formed id, and with the second field as the id */
    check_generate(f[0], "role_01HZX3J9Q8W2E5R7T6Y4U1I0PA");
    check_generate(f[0], "role_01J0000000000000000000ABCD");
    if (nf > 1)
        check_generate(f[0], f[1]);
    check_claims(f, nf, flags);
    free(buf);
    return 0;
}
