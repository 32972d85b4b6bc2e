/* rg-fixture-idp.c: the TEST identity provider of rolegate (test-only keys in
 * this folder, see README.md). Three modes:
 *   mint     prints one base64 SAMLResponse for an SP metadata file, with
 *            overrides of every field the ACS checks (for tests and demos);
 *   metadata prints this IdP's metadata for a given SSO URL;
 *   serve    a minimal blocking HTTP IdP: GET <sso path>?SAMLRequest=...
 *            answers with an auto-submitting POST form carrying a signed
 *            response for a fixed demo user, so `make run` shows a login. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include "rg_fixture_mint.h"
#include "rolegate/saml.h"

#define DEFAULT_ENTITY "https://idp.fixture.rolegate.test/metadata"

typedef struct args {
    const char *mode, *sp_metadata, *idp_metadata, *key, *sp_cert, *sso_url;
    const char *user, *groups, *group_attr, *email, *name, *in_response_to, *authn_query;
    const char *audience, *destination, *recipient, *issuer, *method, *sign, *entity_id;
    long nb_off, noa_off, port;
    int have_nb, have_noa, sha1, encrypt;
} args;

static void usage(void)
{
    fprintf(stderr,
        "usage: rg-fixture-idp mint --sp-metadata F [--idp-metadata F] [--key F]\n"
        "         [--user U] [--groups a,b] [--group-attr N] [--email E] [--name N]\n"
        "         [--in-response-to ID | --authn-request QUERY] [--audience A]\n"
        "         [--destination D] [--recipient R] [--issuer I] [--method M]\n"
        "         [--not-before-offset S] [--not-on-or-after-offset S]\n"
        "         [--sign both|assertion|response|none] [--sha1] [--encrypt --sp-cert F]\n"
        "       rg-fixture-idp metadata [--sso-url URL] [--entity-id ID]\n"
        "       rg-fixture-idp serve --port P --sp-metadata F [--idp-metadata F] [--key F]\n"
        "         [--user U] [--groups a,b]   (the query may add user=, groups=,\n"
        "         email=, name=)\n"
        "Files default to idp-fixtures/{idp-metadata.xml,idp.key} from the repo root.\n");
    exit(2);
}

static char *slurp(const char *path)
{
    char *s = rg_file_read(path, 1 << 20, NULL);
    if (!s) {
        fprintf(stderr, "rg-fixture-idp: cannot read %s\n", path);
        exit(1);
    }
    return s;
}

static void parse(int argc, char **argv, args *a)
{
    memset(a, 0, sizeof *a);
    if (argc < 2)
        usage();
    a->mode = argv[1];
    a->idp_metadata = "idp-fixtures/idp-metadata.xml";
    a->key = "idp-fixtures/idp.key";
    a->sso_url = "http://127.0.0.1:8089/saml/sso";
    a->entity_id = DEFAULT_ENTITY;
    a->user = "demo@example.com";
    a->groups = "engineering,admins";
    a->sign = "both";
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name, field) if (strcmp(k, name) == 0 && v) { a->field = v; i++; continue; }
        OPT("--sp-metadata", sp_metadata) OPT("--idp-metadata", idp_metadata) OPT("--key", key)
        OPT("--sp-cert", sp_cert) OPT("--sso-url", sso_url) OPT("--user", user)
        OPT("--groups", groups) OPT("--group-attr", group_attr) OPT("--email", email)
        OPT("--name", name) OPT("--in-response-to", in_response_to)
        OPT("--authn-request", authn_query) OPT("--audience", audience)
        OPT("--destination", destination) OPT("--recipient", recipient) OPT("--issuer", issuer)
        OPT("--method", method) OPT("--sign", sign) OPT("--entity-id", entity_id)
#undef OPT
        if (strcmp(k, "--not-before-offset") == 0 && v) {
            a->nb_off = strtol(v, NULL, 10), a->have_nb = 1, i++;
        } else if (strcmp(k, "--not-on-or-after-offset") == 0 && v) {
            a->noa_off = strtol(v, NULL, 10), a->have_noa = 1, i++;
        } else if (strcmp(k, "--port") == 0 && v) {
            a->port = strtol(v, NULL, 10), i++;
        } else if (strcmp(k, "--sha1") == 0) {
            a->sha1 = 1;
        } else if (strcmp(k, "--encrypt") == 0) {
            a->encrypt = 1;
        } else {
            fprintf(stderr, "rg-fixture-idp: unknown option %s\n", k);
            usage();
        }
    }
}

/* opts from args; groups split into *gv (caller frees with g_strfreev). */
static void fill_opts(const args *a, mint_opts *o, char **idp_md, char **key, char **spmd,
                      char **spcert, char ***gv)
{
    memset(o, 0, sizeof *o);
    *idp_md = slurp(a->idp_metadata);
    *key = slurp(a->key);
    *spmd = slurp(a->sp_metadata);
    *spcert = a->sp_cert ? slurp(a->sp_cert) : NULL;
    *gv = g_strsplit(a->groups, ",", 64);
    o->idp_metadata = *idp_md;
    o->idp_key_pem = *key;
    o->sp_metadata = *spmd;
    o->sp_cert_pem = *spcert;
    o->user = a->user;
    o->groups = (const char *const *)*gv;
    o->n_groups = **gv && ***gv ? g_strv_length(*gv) : 0;
    o->group_attr = a->group_attr;
    o->email = a->email;
    o->display_name = a->name;
    o->in_response_to = a->in_response_to;
    o->authn_query = a->authn_query;
    o->audience = a->audience;
    o->destination = a->destination;
    o->recipient = a->recipient;
    o->issuer = a->issuer;
    o->method = a->method;
    o->sha1 = a->sha1;
    o->encrypt = a->encrypt;
    int64_t now = rg_now();
    if (a->have_nb)
        o->not_before = now + a->nb_off;
    if (a->have_noa)
        o->not_on_or_after = now + a->noa_off;
    o->sign = strcmp(a->sign, "assertion") == 0 ? MINT_SIGN_ASSERTION
            : strcmp(a->sign, "response") == 0  ? MINT_SIGN_RESPONSE
            : strcmp(a->sign, "none") == 0      ? MINT_SIGN_NONE : MINT_SIGN_BOTH;
}

static int cmd_mint(const args *a)
{
    if (!a->sp_metadata)
        usage();
    mint_opts o;
    char *idp_md, *key, *spmd, *spcert, **gv, *err = NULL;
    fill_opts(a, &o, &idp_md, &key, &spmd, &spcert, &gv);
    char *xml = mint_response(&o, &err);
    if (!xml) {
        fprintf(stderr, "rg-fixture-idp: %s\n", err ? err : "mint failed");
        return 1;
    }
    char *b64 = mint_b64(xml, strlen(xml));
    printf("%s\n", b64);
    free(b64);
    free(xml);
    free(idp_md);
    free(key);
    free(spmd);
    free(spcert);
    g_strfreev(gv);
    return 0;
}

static int cmd_metadata(const args *a)
{
    char *pem = slurp("idp-fixtures/idp.crt");
    rg_buf b = {0};
    for (char *line = strtok(pem, "\n"); line; line = strtok(NULL, "\n"))
        if (strncmp(line, "-----", 5) != 0)
            rg_buf_puts(&b, line);
    char *cert = rg_buf_take(&b);
    printf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
           "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" "
           "xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" entityID=\"%s\">\n"
           " <md:IDPSSODescriptor WantAuthnRequestsSigned=\"true\" "
           "protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">\n"
           "  <md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>%s"
           "</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>\n"
           "  <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified</md:NameIDFormat>\n"
           "  <md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" "
           "Location=\"%s\"/>\n"
           "  <md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" "
           "Location=\"%s\"/>\n"
           " </md:IDPSSODescriptor>\n</md:EntityDescriptor>\n",
           a->entity_id, cert, a->sso_url, a->sso_url);
    free(cert);
    free(pem);
    return 0;
}

/* ---- serve ------------------------------------------------------------- */

static void html_escape(rg_buf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': rg_buf_puts(b, "&amp;"); break;
        case '<': rg_buf_puts(b, "&lt;"); break;
        case '>': rg_buf_puts(b, "&gt;"); break;
        case '"': rg_buf_puts(b, "&quot;"); break;
        case '\'': rg_buf_puts(b, "&#39;"); break;
        default: rg_buf_append(b, s, 1);
        }
    }
}

static char *url_decode(const char *s, size_t n)
{
    char *o = malloc(n + 1), *p = o;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (s[i] == '%' && i + 2 < n && isxdigit((unsigned char)s[i + 1]) &&
            isxdigit((unsigned char)s[i + 2]) && sscanf(s + i + 1, "%2x", &v) == 1) {
            *p++ = (char)v;
            i += 2;
            continue;
        }
        *p++ = s[i] == '+' ? ' ' : s[i];
    }
    *p = 0;
    return o;
}

/* Value of key in a query string (decoded, malloc'd) or NULL. */
static char *query_get(const char *q, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = q; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > kl && strncmp(p, key, kl) == 0 && p[kl] == '=')
            return url_decode(p + kl + 1, len - kl - 1);
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

/* The query minus our demo parameters (user, groups, email, name), for lasso. */
static char *saml_query(const char *q)
{
    rg_buf b = {0};
    for (const char *p = q; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (strncmp(p, "user=", 5) != 0 && strncmp(p, "groups=", 7) != 0 &&
            strncmp(p, "email=", 6) != 0 && strncmp(p, "name=", 5) != 0) {
            if (b.len)
                rg_buf_puts(&b, "&");
            rg_buf_append(&b, p, len);
        }
        p = amp ? amp + 1 : NULL;
    }
    return b.len ? rg_buf_take(&b) : strdup("");
}

static void reply(int fd, int code, const char *ctype, const char *body)
{
    char head[256];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
                     code, code == 200 ? "OK" : code == 404 ? "Not Found" : "Bad Request",
                     ctype, strlen(body));
    if (write(fd, head, (size_t)n) < 0 || write(fd, body, strlen(body)) < 0)
        perror("write");
}

static void serve_one(int fd, const args *a, const mint_opts *base)
{
    char req[65536];
    size_t got = 0;
    while (got < sizeof req - 1) {
        ssize_t r = read(fd, req + got, sizeof req - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        req[got] = 0;
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    req[got] = 0;
    char method[8], target[60000];
    if (sscanf(req, "%7s %59999s", method, target) != 2 || strcmp(method, "GET") != 0) {
        reply(fd, 400, "text/plain", "GET only\n");
        return;
    }
    char *q = strchr(target, '?');
    if (q)
        *q++ = 0;
    if (strcmp(target, "/healthz") == 0) {
        reply(fd, 200, "text/plain", "ok\n");
        return;
    }
    if (strcmp(target, "/metadata") == 0) {
        reply(fd, 200, "application/samlmetadata+xml", base->idp_metadata);
        return;
    }
    if (!q || !strstr(q, "SAMLRequest=")) {
        reply(fd, 404, "text/plain", "GET the SSO URL with a SAMLRequest\n");
        return;
    }
    mint_opts o = *base;
    char *user = query_get(q, "user"), *groups = query_get(q, "groups");
    char *email = query_get(q, "email"), *name = query_get(q, "name");
    char **gv = NULL;
    if (user)
        o.user = user;
    if (email)   /* issue 11 item 13 tests: what a hostile IdP may say */
        o.email = email;
    if (name)
        o.display_name = name;
    if (groups) {
        gv = g_strsplit(groups, ",", 64);
        o.groups = (const char *const *)gv;
        o.n_groups = *gv && **gv ? g_strv_length(gv) : 0;
    }
    char *sq = saml_query(q), *acs = NULL, *err = NULL;
    o.authn_query = sq;
    o.acs_url_out = &acs;
    char *xml = mint_response(&o, &err);
    if (!xml) {
        rg_buf b = {0};
        rg_buf_puts(&b, "fixture IdP: ");
        rg_buf_puts(&b, err ? err : "cannot answer this request");
        rg_buf_puts(&b, "\n");
        char *body = rg_buf_take(&b);
        reply(fd, 400, "text/plain", body);
        free(body);
    } else {
        char *b64 = mint_b64(xml, strlen(xml));
        char *rs = query_get(q, "RelayState");
        rg_buf b = {0};
        rg_buf_puts(&b, "<!DOCTYPE html><html><head><title>rolegate fixture IdP</title></head>"
                        "<body onload=\"document.forms[0].submit()\"><p>Signing in as <b>");
        html_escape(&b, o.user);
        rg_buf_puts(&b, "</b> (test IdP)...</p><form method=\"post\" action=\"");
        html_escape(&b, acs);
        rg_buf_puts(&b, "\"><input type=\"hidden\" name=\"SAMLResponse\" value=\"");
        rg_buf_puts(&b, b64);
        rg_buf_puts(&b, "\">");
        if (rs) {
            rg_buf_puts(&b, "<input type=\"hidden\" name=\"RelayState\" value=\"");
            html_escape(&b, rs);
            rg_buf_puts(&b, "\">");
        }
        rg_buf_puts(&b, "<noscript><button type=\"submit\">Continue</button></noscript>"
                        "</form></body></html>\n");
        char *body = rg_buf_take(&b);
        reply(fd, 200, "text/html; charset=utf-8", body);
        fprintf(stderr, "rg-fixture-idp: answered an AuthnRequest for user=%s\n", o.user);
        free(body);
        free(rs);
        free(b64);
        free(xml);
    }
    g_free(acs);
    g_free(err);
    free(sq);
    free(user);
    free(groups);
    free(email);
    free(name);
    g_strfreev(gv);
}

static int cmd_serve(const args *a)
{
    if (!a->sp_metadata || a->port <= 0 || a->port > 65535)
        usage();
    signal(SIGPIPE, SIG_IGN);
    mint_opts o;
    char *idp_md, *key, *spmd, *spcert, **gv;
    fill_opts(a, &o, &idp_md, &key, &spmd, &spcert, &gv);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)a->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(s, 16) != 0) {
        fprintf(stderr, "rg-fixture-idp: cannot listen on 127.0.0.1:%ld: %s\n", a->port,
                strerror(errno));
        return 1;
    }
    fprintf(stderr, "rg-fixture-idp: test IdP on http://127.0.0.1:%ld (demo user %s)\n",
            a->port, a->user);
    for (;;) {
        int fd = accept(s, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        serve_one(fd, a, &o);
        close(fd);
    }
    close(s);
    return 0;
}

int main(int argc, char **argv)
{
    args a;
    parse(argc, argv, &a);
    rg_log_open(NULL, RG_LOG_WARN);
    if (strcmp(a.mode, "metadata") == 0)
        return cmd_metadata(&a);
    if (rg_saml_global_init() != 0)
        return 1;
    int rc;
    if (strcmp(a.mode, "mint") == 0)
        rc = cmd_mint(&a);
    else if (strcmp(a.mode, "serve") == 0)
        rc = cmd_serve(&a);
    else
        usage();
    rg_saml_global_shutdown();
    return rc;
}
