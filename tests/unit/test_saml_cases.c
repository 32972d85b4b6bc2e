/* test_saml_cases.c: the one runner of tests/cases/saml/NNN-name/ (curl's
 * model): each folder's case.conf says what the fixture IdP mints (or holds a
 * literal response.xml / response.b64), which mutation to apply to the signed
 * XML, how the connection is configured, and the expected outcome: accept
 * with subject/groups/email, or reject with a stable reason code. One cmocka
 * test per folder. Responses are minted at run time so times are fresh. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "rolegate/saml.h"
#include "rolegate/util.h"
#include "../../idp-fixtures/rg_fixture_mint.h"

#define CASES_DIR "tests/cases/saml"
#define FIX_DIR   "idp-fixtures"
#define BASE_URL  "https://sp.rolegate.test"
#define CONN_ID   "conn_01HTESTSAMLCASES0000000000"
#define SP_ENTITY BASE_URL "/saml/metadata/" CONN_ID
#define ACS_URL   BASE_URL "/saml/acs/" CONN_ID

static char *idp_md, *idp_key, *attacker_key, *sp_key, *sp_crt;

/* ---- case.conf ------------------------------------------------------------ */

typedef struct kv { char *k, *v; } kv;
typedef struct conf { kv items[64]; int n; } conf;

static const char *get(const conf *c, const char *k)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->items[i].k, k) == 0)
            return c->items[i].v;
    return NULL;
}

static long geti(const conf *c, const char *k, long dflt)
{
    const char *v = get(c, k);
    return v ? strtol(v, NULL, 10) : dflt;
}

/* The keys a case.conf may hold (tests/cases/README.md): a typo fails the
 * case instead of being ignored. hideN/showN take N 1-4. */
static const char *const known_keys[] = {
    "flow", "user", "nameid_format", "groups", "group_attr", "email_attr_value",
    "display_name", "key", "sign", "sha1", "encrypt", "rsa15", "not_before_offset",
    "not_on_or_after_offset", "not_on_or_after_text", "audience", "destination",
    "recipient", "issuer", "method", "in_response_to", "mutation", "oversize_bytes",
    "replace_from", "replace_to", "utf7", "decl", "prefix", "raw_from", "raw_hex",
    "charset", "bom", "b64_literal", "not_xml", "conn.allow_idp_initiated",
    "conn.allow_sha1", "conn.skew", "conn.max_assertion_lifetime", "expected_request_id",
    "replay_backend", "verify_offset", "submit_times", "expect", "subject", "email",
    "name", "expect_groups", "expect_in_response_to", "reason", "status", NULL,
};

static int known_key(const char *k)
{
    for (size_t i = 0; known_keys[i]; i++)
        if (strcmp(known_keys[i], k) == 0)
            return 1;
    return (strncmp(k, "hide", 4) == 0 || strncmp(k, "show", 4) == 0) && k[4] >= '1' &&
           k[4] <= '4' && !k[5];
}

static void conf_load(conf *c, const char *path)
{
    memset(c, 0, sizeof *c);
    char *text = rg_file_read(path, 1 << 16, NULL);
    assert_non_null(text);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        while (*line == ' ' || *line == '\t')
            line++;
        char *eq = strchr(line, '=');
        if (*line == '#' || !*line || *line == '\r')
            continue;
        if (!eq)
            fail_msg("%s: not a key=value line: %s", path, line);
        *eq = 0;
        char *end = eq - 1;
        while (end > line && (*end == ' ' || *end == '\t'))
            *end-- = 0;
        char *v = eq + 1;
        while (*v == ' ')
            v++;
        size_t vl = strlen(v);
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\r'))
            v[--vl] = 0;
        if (!known_key(line))
            fail_msg("%s: unknown key '%s' (tests/cases/README.md lists the keys)", path, line);
        assert_true(c->n < 64);
        c->items[c->n].k = strdup(line);
        c->items[c->n].v = strdup(v);
        c->n++;
    }
    free(text);
}

static void conf_free(conf *c)
{
    for (int i = 0; i < c->n; i++) {
        free(c->items[i].k);
        free(c->items[i].v);
    }
}

/* Splits "a,b,c" into a NULL-terminated array (one malloc'd block each). */
static char **split(const char *s, size_t *n)
{
    *n = 0;
    char **out = calloc(64, sizeof *out);
    if (!s || !*s)
        return out;
    char *copy = strdup(s), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t && *n < 63; t = strtok_r(NULL, ",", &save))
        out[(*n)++] = strdup(t);
    free(copy);
    return out;
}

static void split_free(char **a)
{
    for (size_t i = 0; a && a[i]; i++)
        free(a[i]);
    free(a);
}

/* ---- XML mutations ---------------------------------------------------------- */

static char *replace_once(const char *s, const char *from, const char *to)
{
    const char *p = strstr(s, from);
    if (!p)
        fail_msg("mutation target '%s' not found", from);
    rg_buf b = {0};
    rg_buf_append(&b, s, (size_t)(p - s));
    rg_buf_puts(&b, to);
    rg_buf_puts(&b, p + strlen(from));
    return rg_buf_take(&b);
}

#include "saml_case_encoding.h"

/* Puts a DOCTYPE after the XML declaration, or first if there is none. */
static char *prepend_doctype(const char *xml, const char *dt)
{
    rg_buf b = {0};
    const char *p = strncmp(xml, "<?xml", 5) == 0 ? strstr(xml, "?>") + 2 : xml;
    rg_buf_append(&b, xml, (size_t)(p - xml));
    rg_buf_puts(&b, dt);
    rg_buf_puts(&b, p);
    return rg_buf_take(&b);
}

static xmlNode *find_child(xmlNode *n, const char *name)
{
    for (xmlNode *c = n ? n->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp((char *)c->name, name) == 0)
            return c;
    return NULL;
}

/* A forged copy of the assertion: new ID, no signature, NameID admin. */
static xmlNode *forge_assertion(xmlNode *as, xmlDoc *doc)
{
    xmlNode *f = xmlDocCopyNode(as, doc, 1);
    xmlNode *sig = find_child(f, "Signature");
    if (sig) {
        xmlUnlinkNode(sig);
        xmlFreeNode(sig);
    }
    xmlSetProp(f, (const xmlChar *)"ID", (const xmlChar *)"_forged0123456789");
    xmlNode *nid = find_child(find_child(f, "Subject"), "NameID");
    assert_non_null(nid);
    xmlNodeSetContent(nid, (const xmlChar *)"admin@rolegate.test");
    return f;
}

/* The signed Response root moved into the Extensions of a new unsigned
 * Response (root's attributes with another ID, copies of its Issuer and
 * Status), which becomes the document's root; returns the new root. */
static xmlNode *wrap_in_unsigned_response(xmlDoc *doc, xmlNode *root)
{
    xmlNode *evil = xmlDocCopyNode(root, doc, 2);   /* attributes only */
    xmlSetProp(evil, (const xmlChar *)"ID", (const xmlChar *)"_evilresponse0123");
    xmlNode *issuer = xmlDocCopyNode(find_child(root, "Issuer"), doc, 1);
    xmlNode *status = xmlDocCopyNode(find_child(root, "Status"), doc, 1);
    xmlDocSetRootElement(doc, evil);
    xmlAddChild(evil, issuer);
    xmlNode *ext = xmlNewNode(evil->ns, (const xmlChar *)"Extensions");
    xmlAddChild(evil, ext);
    xmlAddChild(ext, root);
    xmlAddChild(evil, status);
    return evil;
}

static char *dump(xmlDoc *doc)
{
    xmlChar *mem = NULL;
    int sz = 0;
    xmlDocDumpMemory(doc, &mem, &sz);
    char *s = strndup((char *)mem, (size_t)sz);
    xmlFree(mem);
    xmlFreeDoc(doc);
    return s;
}

static char *mutate(const char *name, char *xml, const conf *c)
{
    if (!name || strcmp(name, "truncate_base64") == 0)   /* the latter is done on the base64 */
        return xml;
    char *out = NULL;
    if (strcmp(name, "comment_in_nameid") == 0) {
        out = replace_once(xml, ">admin@evil.com.attacker.com<", ">admin@evil.com<!---->.attacker.com<");
    } else if (strcmp(name, "comment_in_group") == 0) {
        out = replace_once(xml, ">admins.attacker.com<", ">admins<!---->.attacker.com<");
    } else if (strcmp(name, "tamper_nameid") == 0) {
        out = replace_once(xml, ">alice@example.com<", ">admin@example.com<");
    } else if (strcmp(name, "doctype_billion_laughs") == 0) {
        char *x = prepend_doctype(xml,
            "<!DOCTYPE samlp:Response [<!ENTITY lol \"lol\">"
            "<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
            "<!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">"
            "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">"
            "<!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">"
            "<!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">"
            "<!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">"
            "<!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">"
            "<!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">"
            "<!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">]>");
        out = replace_once(x, ">alice@example.com<", ">&lol9;<");
        free(x);
    } else if (strcmp(name, "doctype_external_file") == 0) {
        char *x = prepend_doctype(xml, "<!DOCTYPE samlp:Response "
                                          "[<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>");
        out = replace_once(x, ">alice@example.com<", ">&xxe;<");
        free(x);
    } else if (strcmp(name, "oversize") == 0) {
        size_t pad = (size_t)geti(c, "oversize_bytes", 300 * 1024);
        char *filler = malloc(pad + 1);
        memset(filler, 'x', pad);
        filler[pad] = 0;
        rg_buf b = {0};
        rg_buf_puts(&b, "<!--");
        rg_buf_puts(&b, filler);
        rg_buf_puts(&b, "--></samlp:Response>");
        free(filler);
        char *to = rg_buf_take(&b);
        out = replace_once(xml, "</samlp:Response>", to);
        free(to);
    } else if (strcmp(name, "replace") == 0) {
        /* replace_from -> replace_to, once (e.g. an algorithm URI) */
        const char *from = get(c, "replace_from"), *to = get(c, "replace_to");
        if (!from || !to)
            fail_msg("mutation replace needs replace_from and replace_to");
        out = replace_once(xml, from, to);
    } else if (strcmp(name, "status_responder") == 0) {
        out = replace_once(xml, "urn:oasis:names:tc:SAML:2.0:status:Success",
                           "urn:oasis:names:tc:SAML:2.0:status:Responder");
    } else {
        /* DOM mutations for signature wrapping. */
        xmlDoc *doc = xmlReadMemory(xml, (int)strlen(xml), "m.xml", NULL, XML_PARSE_NONET);
        assert_non_null(doc);
        xmlNode *root = xmlDocGetRootElement(doc);
        xmlNode *as = find_child(root, "Assertion");
        assert_non_null(as);
        if (strcmp(name, "second_unsigned_assertion") == 0) {
            xmlAddNextSibling(as, forge_assertion(as, doc));
        } else if (strcmp(name, "wrap_assertion_in_extensions") == 0) {
            /* XSW: the signed original hides in Extensions, a forged
             * unsigned one takes its place. */
            xmlNode *forged = forge_assertion(as, doc);
            xmlAddNextSibling(as, forged);
            xmlUnlinkNode(as);
            xmlNode *ext = xmlNewNode(root->ns, (const xmlChar *)"Extensions");
            xmlNode *issuer = find_child(root, "Issuer");
            xmlAddNextSibling(issuer, ext);
            xmlAddChild(ext, as);
        } else if (strcmp(name, "wrap_assertion_in_object") == 0) {
            /* XSW: forged assertion carries the original signature, whose
             * ds:Object carries the signed original. */
            xmlNode *forged = forge_assertion(as, doc);
            xmlNode *sig = find_child(as, "Signature");
            xmlUnlinkNode(sig);
            xmlNode *obj = xmlNewNode(sig->ns, (const xmlChar *)"Object");
            xmlAddNextSibling(as, forged);
            xmlUnlinkNode(as);
            xmlAddChild(obj, as);
            xmlAddChild(sig, obj);
            xmlNode *fi = find_child(forged, "Issuer");
            xmlAddNextSibling(fi, sig);
        } else if (strcmp(name, "evil_wrapper_response") == 0) {
            /* XSW: a new unsigned Response with a forged assertion wraps
             * the original signed Response. */
            xmlNode *forged = forge_assertion(as, doc);
            xmlAddChild(wrap_in_unsigned_response(doc, root), forged);
        } else if (strcmp(name, "wrapper_without_forgery") == 0) {
            /* The signed Response moved inside an unsigned one: still one
             * assertion, but not a direct child of the root. */
            wrap_in_unsigned_response(doc, root);
        } else {
            fail_msg("unknown mutation %s", name);
        }
        out = dump(doc);
    }
    free(xml);
    return out;
}

/* ---- replay cache ----------------------------------------------------------- */

static GHashTable *seen;
static int replay_mode;   /* 0 memory, -1 backend down */

static int replay_cb(void *ctx, const char *issuer, const char *id, int64_t exp)
{
    (void)ctx;
    assert_true(exp > rg_now());
    if (replay_mode < 0)
        return -1;
    char *k = g_strdup_printf("%s|%s", issuer, id);
    if (g_hash_table_contains(seen, k)) {
        g_free(k);
        return 1;
    }
    g_hash_table_add(seen, k);
    return 0;
}

/* ---- one case --------------------------------------------------------------- */

static char *sp_metadata_for(rg_saml_connection *conn)
{
    return strdup(rg_saml_sp_metadata_xml(conn));
}

static void run_case(void **state)
{
    const char *dir = *state;
    char path[512];
    snprintf(path, sizeof path, "%s/case.conf", dir);
    conf c;
    conf_load(&c, path);

    rg_saml_conn_config cfg;
    rg_saml_conn_config_init(&cfg);
    cfg.connection_id = CONN_ID;
    cfg.sp_entity_id = SP_ENTITY;
    cfg.acs_url = ACS_URL;
    cfg.sp_key_pem = sp_key;
    cfg.sp_cert_pem = sp_crt;
    cfg.idp_metadata = idp_md;
    cfg.idp_metadata_len = strlen(idp_md);
    cfg.allow_idp_initiated = (int)geti(&c, "conn.allow_idp_initiated", 0);
    cfg.allow_sha1 = (int)geti(&c, "conn.allow_sha1", 0);
    cfg.clock_skew_s = (int)geti(&c, "conn.skew", 60);
    cfg.max_assertion_lifetime_s = geti(&c, "conn.max_assertion_lifetime", 0);   /* item 12 */
    rg_error err;
    rg_error_clear(&err);
    rg_saml_connection *conn = rg_saml_connection_new(&cfg, &err);
    assert_non_null(conn);

    int64_t now = rg_now();
    char expected[RG_SAML_REQUEST_ID_MAX] = "_rgpending0123456789abcdef";
    const char *flow = get(&c, "flow") ? get(&c, "flow") : "pending";
    char *b64 = NULL;
    size_t b64len = 0;

    snprintf(path, sizeof path, "%s/response.b64", dir);
    char *literal_b64 = rg_file_read(path, 1 << 20, &b64len);
    snprintf(path, sizeof path, "%s/response.xml", dir);
    size_t xlen = 0;
    char *xml = literal_b64 ? NULL : rg_file_read(path, 1 << 20, &xlen);
    char *url = NULL;
    if (literal_b64) {
        b64 = literal_b64;
    } else {
        if (!xml) {
            mint_opts o;
            memset(&o, 0, sizeof o);
            o.idp_metadata = idp_md;
            o.idp_key_pem = get(&c, "key") && strcmp(get(&c, "key"), "attacker") == 0
                                ? attacker_key : idp_key;
            char *spmd = sp_metadata_for(conn);
            o.sp_metadata = spmd;
            o.user = get(&c, "user") ? get(&c, "user") : "alice@example.com";
            size_t ng = 0;
            char **groups = split(get(&c, "groups"), &ng);
            o.groups = (const char *const *)groups;
            o.n_groups = ng;
            o.group_attr = get(&c, "group_attr");
            o.email = get(&c, "email_attr_value");
            o.display_name = get(&c, "display_name");
            o.nameid_format = get(&c, "nameid_format");
            o.now = now;
            if (get(&c, "not_before_offset"))
                o.not_before = now + geti(&c, "not_before_offset", 0);
            if (get(&c, "not_on_or_after_offset"))
                o.not_on_or_after = now + geti(&c, "not_on_or_after_offset", 0);
            o.not_on_or_after_text = get(&c, "not_on_or_after_text");
            o.audience = get(&c, "audience");
            o.destination = get(&c, "destination");
            o.recipient = get(&c, "recipient");
            o.issuer = get(&c, "issuer");
            o.method = get(&c, "method");
            o.sha1 = (int)geti(&c, "sha1", 0);
            o.encrypt = (int)geti(&c, "encrypt", 0);
            o.rsa15 = (int)geti(&c, "rsa15", 0);
            o.sp_cert_pem = sp_crt;
            const char *sign = get(&c, "sign") ? get(&c, "sign") : "both";
            o.sign = strcmp(sign, "assertion") == 0 ? MINT_SIGN_ASSERTION
                   : strcmp(sign, "response") == 0  ? MINT_SIGN_RESPONSE
                   : strcmp(sign, "none") == 0      ? MINT_SIGN_NONE : MINT_SIGN_BOTH;
            if (strcmp(flow, "sp") == 0) {
                /* A real AuthnRequest from the connection, read by the
                 * fixture IdP (its signature is checked in test_saml_conn;
                 * here it is not, see trust_request). */
                assert_int_equal(rg_saml_authn_request(conn, "rs-123", &url, expected, &err), 0);
                o.authn_query = strchr(url, '?') + 1;
                o.trust_request = 1;
            } else if (strcmp(flow, "pending") == 0) {
                o.in_response_to = expected;
            }
            if (get(&c, "in_response_to"))
                o.in_response_to = strcmp(get(&c, "in_response_to"), "none") == 0
                                       ? "" : get(&c, "in_response_to");
            char *emsg = NULL;
            xml = mint_response(&o, &emsg);
            if (!xml)
                fail_msg("mint failed: %s", emsg ? emsg : "?");
            free(spmd);
            split_free(groups);
        }
        xml = mutate(get(&c, "mutation"), xml, &c);
        xml = encode_case(&c, xml, &xlen);   /* item 11: declarations, charsets */
        b64 = mint_b64(xml, xlen);
        b64len = strlen(b64);
        if (get(&c, "mutation") && strcmp(get(&c, "mutation"), "truncate_base64") == 0)
            b64len = b64len / 2 + 1;
        if (getenv("RG_SAML_DUMP"))
            fprintf(stderr, "%s\n", xml);
    }
    if (get(&c, "b64_literal")) {   /* e.g. not base64 at all */
        free(b64);
        b64 = strdup(get(&c, "b64_literal"));
        b64len = strlen(b64);
    }
    if (get(&c, "not_xml")) {
        free(b64);
        b64 = mint_b64(get(&c, "not_xml"), strlen(get(&c, "not_xml")));
        b64len = strlen(b64);
    }

    const char *exp_opt = get(&c, "expected_request_id");
    const char *exp_id = strcmp(flow, "idp") == 0 ? NULL : expected;
    if (exp_opt)
        exp_id = strcmp(exp_opt, "none") == 0 ? NULL : exp_opt;

    seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    replay_mode = strcmp(get(&c, "replay_backend") ? get(&c, "replay_backend") : "", "down") == 0
                      ? -1 : 0;
    int64_t vnow = now + geti(&c, "verify_offset", 0);
    rg_saml_identity id;
    int rc = -1;
    long times = geti(&c, "submit_times", 1);
    for (long i = 0; i < times; i++) {
        rg_error_clear(&err);
        rc = rg_saml_acs_verify(conn, b64, b64len, exp_id, vnow, replay_cb, NULL, &id, &err);
        if (i + 1 < times) {   /* earlier submissions must succeed */
            if (rc != 0)
                fail_msg("%s: submission %ld rejected: %s (%s)", dir, i + 1, err.code, err.message);
            rg_saml_identity_clear(&id);
        }
    }
    const char *expect = get(&c, "expect");
    assert_non_null(expect);
    if (strcmp(expect, "accept") == 0) {
        if (rc != 0)
            fail_msg("%s: expected accept, got %s (%s)", dir, err.code, err.message);
        assert_string_equal(id.subject, get(&c, "subject"));
        assert_string_equal(id.issuer, "https://idp.fixture.rolegate.test/metadata");
        assert_non_null(id.assertion_id);
        assert_true(id.expires_at > now);
        if (get(&c, "email"))
            assert_string_equal(id.email ? id.email : "(null)", get(&c, "email"));
        if (get(&c, "name"))
            assert_string_equal(id.name ? id.name : "(null)", get(&c, "name"));
        if (get(&c, "expect_in_response_to")) {
            if (strcmp(get(&c, "expect_in_response_to"), "none") == 0)
                assert_null(id.in_response_to);
            else
                assert_string_equal(id.in_response_to ? id.in_response_to : "", expected);
        }
        size_t ng = 0;
        char **want = split(get(&c, "expect_groups"), &ng);
        if (id.n_groups != ng)
            fail_msg("%s: %zu groups, want %zu", dir, id.n_groups, ng);
        for (size_t i = 0; i < ng; i++)
            assert_string_equal(id.groups[i], want[i]);
        split_free(want);
        rg_saml_identity_clear(&id);
    } else {
        if (rc == 0)
            fail_msg("%s: expected reject %s, got accept (subject %s)", dir, get(&c, "reason"),
                     id.subject);
        if (strcmp(err.code, get(&c, "reason")) != 0)
            fail_msg("%s: expected %s, got %s (%s)", dir, get(&c, "reason"), err.code, err.message);
        assert_null(id.subject);
        if (get(&c, "status"))
            assert_int_equal(err.status, geti(&c, "status", 0));
        else
            assert_true(err.status == 400 || err.status == 403 || err.status == 503);
    }
    g_hash_table_destroy(seen);
    free(url);
    free(b64);
    free(xml);
    rg_saml_connection_free(conn);
    conf_free(&c);
}

/* ---- main ------------------------------------------------------------------- */

static char *fixture(const char *name)
{
    char p[256];
    snprintf(p, sizeof p, FIX_DIR "/%s", name);
    char *s = rg_file_read(p, 1 << 20, NULL);
    if (!s) {
        fprintf(stderr, "missing fixture %s (run from the repository root)\n", p);
        exit(1);
    }
    return s;
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    rg_log_open(NULL, getenv("RG_SAML_DEBUG") ? RG_LOG_DEBUG : RG_LOG_ERROR);
    if (rg_saml_global_init() != 0)
        return 1;
    idp_md = fixture("idp-metadata.xml");
    idp_key = fixture("idp.key");
    attacker_key = fixture("attacker.key");
    sp_key = fixture("sp.key");
    sp_crt = fixture("sp.crt");

    DIR *d = opendir(CASES_DIR);
    if (!d) {
        fprintf(stderr, "no %s (run from the repository root)\n", CASES_DIR);
        return 1;
    }
    char *names[256];
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < 256;)
        if (e->d_name[0] != '.' && (argc < 2 || strstr(e->d_name, argv[1])))
            names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof *names, cmp);
    struct CMUnitTest *tests = calloc(n ? n : 1, sizeof *tests);
    char **dirs = calloc(n ? n : 1, sizeof *dirs);
    for (size_t i = 0; i < n; i++) {
        dirs[i] = g_strdup_printf(CASES_DIR "/%s", names[i]);
        tests[i].name = names[i];
        tests[i].test_func = run_case;
        tests[i].initial_state = dirs[i];
    }
    int failed = _cmocka_run_group_tests("saml_cases", tests, n, NULL, NULL);
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
        g_free(dirs[i]);
    }
    free(tests);
    free(dirs);
    free(idp_md);
    free(idp_key);
    free(attacker_key);
    free(sp_key);
    free(sp_crt);
    rg_saml_global_shutdown();
    return failed ? 1 : (n == 0);
}
