/* saml_case_encoding.h: the byte-level rewrites of tests/cases/saml/ (issue 11
 * item 11, parser differential): a declaration put in front, a UTF-7 view
 * that hides a decoy from one parser and the real element from the other,
 * transcoding (UTF-16, EBCDIC), a BOM, raw bytes. Included by
 * test_saml_cases.c only; uses its conf and get(). */
#ifndef RG_SAML_CASE_ENCODING_H
#define RG_SAML_CASE_ENCODING_H

/* "\n", "\t", "\r" in a case.conf value become the characters. */
static char *unescape(const char *v)
{
    rg_buf b = {0};
    for (const char *p = v; *p; p++) {
        if (p[0] == '\\' && (p[1] == 'n' || p[1] == 't' || p[1] == 'r')) {
            p++;
            char ch = *p == 'n' ? '\n' : *p == 't' ? '\t' : '\r';
            rg_buf_append(&b, &ch, 1);
        } else {
            rg_buf_append(&b, p, 1);
        }
    }
    return rg_buf_take(&b);
}

/* Every occurrence of from replaced by to. */
static char *replace_all(char *s, const char *from, const char *to)
{
    rg_buf b = {0};
    const char *p = s, *q;
    while ((q = strstr(p, from)) != NULL) {
        rg_buf_append(&b, p, (size_t)(q - p));
        rg_buf_puts(&b, to);
        p = q + strlen(from);
    }
    rg_buf_puts(&b, p);
    free(s);
    return rg_buf_take(&b);
}

/* Hex text ("FFFE") to bytes appended to b. */
static void put_hex(rg_buf *b, const char *hex)
{
    for (size_t i = 0; hex[i] && hex[i + 1]; i += 2) {
        char two[3] = {hex[i], hex[i + 1], 0};
        char ch = (char)strtol(two, NULL, 16);
        rg_buf_append(b, &ch, 1);
    }
}

/* Applies the case's encoding options to xml (taken) and returns the bytes
 * to base64 (malloc'd; *len set, they may hold NULs):
 *   utf7=1            '+' becomes "+-" (UTF-7's escape), then each hideN is
 *                     preceded by showN wrapped in "+ADwAIQAtAC0-" ... "+AC0ALQA+-":
 *                     as UTF-8 that is text, then showN (the first element a
 *                     precheck finds), then hideN; as UTF-7 it is
 *                     "<!--showN-->hideN" (what lasso and xmlsec see).
 *   decl=...          put first, replacing any declaration ("\n", "\t", "\r"
 *                     escapes); prefix=... before it
 *   raw_from, raw_hex replace raw_from once by these raw bytes
 *   charset=NAME      transcode the whole text from UTF-8 (iconv names)
 *   bom=HEX           bytes put first, after transcoding */
static char *encode_case(const conf *c, char *xml, size_t *len)
{
    if (geti(c, "utf7", 0)) {
        xml = replace_all(xml, "+", "+-");
        for (int i = 1; i <= 4; i++) {
            char hk[16], sk[16];
            snprintf(hk, sizeof hk, "hide%d", i);
            snprintf(sk, sizeof sk, "show%d", i);
            if (!get(c, hk))
                break;
            char *to = g_strdup_printf("+ADwAIQAtAC0-%s+AC0ALQA+-%s", get(c, sk), get(c, hk));
            if (!strstr(xml, get(c, hk)))
                fail_msg("utf7 target '%s' not found", get(c, hk));
            xml = replace_all(xml, get(c, hk), to);
            g_free(to);
        }
    }
    if (get(c, "raw_from")) {
        rg_buf b = {0};
        put_hex(&b, get(c, "raw_hex") ? get(c, "raw_hex") : "");
        char *raw = rg_buf_take(&b);
        char *x = replace_once(xml, get(c, "raw_from"), raw ? raw : "");
        free(raw);
        free(xml);
        xml = x;
    }
    if (get(c, "decl") || get(c, "prefix")) {
        /* the case's declaration replaces the one xmlDocDumpMemory wrote */
        if (strncmp(xml, "<?xml ", 6) == 0 && strstr(xml, "?>")) {
            char *rest = strstr(xml, "?>") + 2;
            rest += *rest == '\n';
            memmove(xml, rest, strlen(rest) + 1);
        }
        char *d = unescape(get(c, "decl") ? get(c, "decl") : "");
        char *p = unescape(get(c, "prefix") ? get(c, "prefix") : "");
        char *x = g_strdup_printf("%s%s%s", p, d, xml);
        free(d);
        free(p);
        free(xml);
        xml = strdup(x);
        g_free(x);
    }
    *len = strlen(xml);
    if (get(c, "charset")) {
        gsize out = 0;
        gchar *t = g_convert(xml, (gssize)*len, get(c, "charset"), "UTF-8", NULL, &out, NULL);
        if (!t)
            fail_msg("cannot transcode to %s", get(c, "charset"));
        free(xml);
        xml = malloc(out + 1);
        memcpy(xml, t, out);
        xml[out] = 0;
        *len = out;
        g_free(t);
    }
    if (get(c, "bom")) {
        rg_buf b = {0};
        put_hex(&b, get(c, "bom"));
        rg_buf_append(&b, xml, *len);
        *len = b.len;
        free(xml);
        xml = rg_buf_take(&b);
    }
    return xml;
}

#endif
