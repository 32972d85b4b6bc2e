/* test_saml_conn.c: the SAML connection (saml.h): generated SP metadata,
 * signed HTTP-Redirect AuthnRequests as the fixture IdP sees them, config
 * errors, two threads verifying through one shared connection, which IdP
 * keys verify a response (rollover, encryption-only certificates), and
 * lasso's debug lines dropped before they are formatted. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <lasso/logging.h>
#include "rolegate/saml.h"
#include "rolegate/util.h"
#include "../../idp-fixtures/rg_fixture_mint.h"

#define CONN_ID   "conn_01HTESTSAMLCONN000000000000"
#define SP_ENTITY "https://sp.rolegate.test/saml/metadata/" CONN_ID
#define ACS_URL   "https://sp.rolegate.test/saml/acs/" CONN_ID

static char *idp_md, *idp_key, *sp_key, *sp_crt, *other_key, *other_crt;

static void base_cfg(rg_saml_conn_config *cfg)
{
    rg_saml_conn_config_init(cfg);
    cfg->connection_id = CONN_ID;
    cfg->sp_entity_id = SP_ENTITY;
    cfg->acs_url = ACS_URL;
    cfg->sp_key_pem = sp_key;
    cfg->sp_cert_pem = sp_crt;
    cfg->idp_metadata = idp_md;
    cfg->idp_metadata_len = strlen(idp_md);
}

static void test_config_defaults(void **state)
{
    (void)state;
    rg_saml_conn_config cfg;
    rg_saml_conn_config_init(&cfg);
    assert_int_equal(cfg.clock_skew_s, 60);
    assert_int_equal(cfg.max_response_size, 256 * 1024);
    assert_int_equal(cfg.allow_idp_initiated, 0);
    assert_int_equal(cfg.allow_sha1, 0);
    assert_string_equal(rg_saml_default_group_attributes[0], "groups");
    assert_string_equal(rg_saml_default_email_attributes[1], "mail");
}

static void test_sp_metadata(void **state)
{
    (void)state;
    rg_saml_conn_config cfg;
    base_cfg(&cfg);
    rg_saml_connection *c = rg_saml_connection_new(&cfg, NULL);
    assert_non_null(c);
    const char *md = rg_saml_sp_metadata_xml(c);
    assert_non_null(strstr(md, "entityID=\"" SP_ENTITY "\""));
    assert_non_null(strstr(md, "AuthnRequestsSigned=\"true\""));
    assert_non_null(strstr(md, "WantAssertionsSigned=\"true\""));
    assert_non_null(strstr(md, "Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" "
                               "Location=\"" ACS_URL "\""));
    assert_non_null(strstr(md, "use=\"signing\""));
    assert_non_null(strstr(md, "use=\"encryption\""));
    /* the certificate body of sp.crt, first line */
    char first[65];
    memcpy(first, strchr(sp_crt, '\n') + 1, 64);
    first[64] = 0;
    assert_non_null(strstr(md, first));
    assert_string_equal(rg_saml_idp_entity_id(c), "https://idp.fixture.rolegate.test/metadata");
    /* well-formed, and lasso as IdP accepts it (the mint below uses it) */
    int why = 0;
    xmlDoc *doc = rg_saml_xml_parse(md, strlen(md), &why);
    assert_non_null(doc);
    xmlFreeDoc(doc);
    rg_saml_connection_free(c);
    rg_saml_connection_free(NULL);
}

static void test_sp_metadata_escapes_urls(void **state)
{
    (void)state;
    rg_saml_conn_config cfg;
    base_cfg(&cfg);
    cfg.acs_url = "https://sp.rolegate.test/saml/acs/x?a=1&b=\"2\"";
    rg_saml_connection *c = rg_saml_connection_new(&cfg, NULL);
    assert_non_null(c);
    assert_non_null(strstr(rg_saml_sp_metadata_xml(c), "x?a=1&amp;b=&quot;2&quot;"));
    rg_saml_connection_free(c);
}

static void test_authn_request_signed_redirect(void **state)
{
    (void)state;
    rg_saml_conn_config cfg;
    base_cfg(&cfg);
    rg_saml_connection *c = rg_saml_connection_new(&cfg, NULL);
    assert_non_null(c);
    char *url = NULL, *url2 = NULL;
    char id[RG_SAML_REQUEST_ID_MAX], id2[RG_SAML_REQUEST_ID_MAX];
    rg_error err;
    assert_int_equal(rg_saml_authn_request(c, "state-abc", &url, id, &err), 0);
    assert_int_equal(strncmp(url, "http://127.0.0.1:8089/saml/sso?", 31), 0);
    assert_non_null(strstr(url, "SAMLRequest="));
    assert_non_null(strstr(url, "RelayState=state-abc"));
    assert_non_null(strstr(url, "SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256"));
    assert_non_null(strstr(url, "&Signature="));
    assert_true(strlen(id) > 10);
    assert_int_equal(rg_saml_authn_request(c, NULL, &url2, id2, &err), 0);
    assert_string_not_equal(id, id2);
    assert_null(strstr(url2, "RelayState="));

    /* The fixture IdP checks the signature and reads what we asked for. */
    mint_opts o;
    memset(&o, 0, sizeof o);
    o.idp_metadata = idp_md;
    o.idp_key_pem = idp_key;
    o.sp_metadata = rg_saml_sp_metadata_xml(c);
    char *emsg = NULL;
    LassoServer *idp = mint_idp_server(&o, &emsg);
    assert_non_null(idp);
    LassoLogin *l = lasso_login_new(idp);
    assert_int_equal(mint_read_signed_request(l, strchr(url, '?') + 1), 0);
    LassoSamlp2AuthnRequest *rq = LASSO_SAMLP2_AUTHN_REQUEST(LASSO_PROFILE(l)->request);
    assert_string_equal(rq->ProtocolBinding, LASSO_SAML2_METADATA_BINDING_POST);
    assert_string_equal(rq->AssertionConsumerServiceURL, ACS_URL);
    assert_non_null(rq->NameIDPolicy);
    assert_string_equal(rq->NameIDPolicy->Format, LASSO_SAML2_NAME_IDENTIFIER_FORMAT_UNSPECIFIED);
    assert_string_equal(LASSO_SAMLP2_REQUEST_ABSTRACT(rq)->ID, id);
    assert_string_equal(LASSO_PROFILE(l)->msg_relayState, "state-abc");
    lasso_login_destroy(l);

    /* A tampered request (another ACS) fails the IdP's signature check. */
    char *bad = strdup(url);
    char *p = strstr(bad, "RelayState=state-abc");
    p[strlen("RelayState=state-")] = 'X';
    l = lasso_login_new(idp);
    assert_int_not_equal(mint_read_signed_request(l, strchr(bad, '?') + 1), 0);
    lasso_login_destroy(l);
    free(bad);
    g_object_unref(idp);
    free(url);
    free(url2);
    rg_saml_connection_free(c);
}

static void test_relay_state_too_long(void **state)
{
    (void)state;
    rg_saml_conn_config cfg;
    base_cfg(&cfg);
    rg_saml_connection *c = rg_saml_connection_new(&cfg, NULL);
    char rs[82];
    memset(rs, 'a', 81);
    rs[81] = 0;
    char *url = (char *)1;
    char id[RG_SAML_REQUEST_ID_MAX];
    rg_error err;
    assert_int_equal(rg_saml_authn_request(c, rs, &url, id, &err), RG_EINVAL);
    assert_null(url);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.code, "invalid_relay_state");
    rg_saml_connection_free(c);
}

static void test_bad_config_rejected(void **state)
{
    (void)state;
    rg_saml_conn_config cfg;
    rg_error err;
    base_cfg(&cfg);
    cfg.idp_metadata = "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\"/>";
    cfg.idp_metadata_len = strlen(cfg.idp_metadata);
    assert_null(rg_saml_connection_new(&cfg, &err));
    assert_int_equal(err.status, 422);
    assert_string_equal(err.code, "invalid_metadata");

    base_cfg(&cfg);
    cfg.sp_key_pem = NULL;
    assert_null(rg_saml_connection_new(&cfg, &err));
    assert_int_equal(err.status, 500);
    assert_string_equal(err.code, "saml_config");

    base_cfg(&cfg);
    cfg.sp_key_pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    assert_null(rg_saml_connection_new(&cfg, &err));
    assert_string_equal(err.code, "saml_config");

    base_cfg(&cfg);
    cfg.sp_cert_pem = "not a certificate";
    assert_null(rg_saml_connection_new(&cfg, &err));
    assert_string_equal(err.field, "sp_cert");

    /* key and cert from files work too */
    base_cfg(&cfg);
    cfg.sp_key_pem = cfg.sp_cert_pem = NULL;
    cfg.sp_key_file = "idp-fixtures/sp.key";
    cfg.sp_cert_file = "idp-fixtures/sp.crt";
    rg_saml_connection *c = rg_saml_connection_new(&cfg, &err);
    assert_non_null(c);
    rg_saml_connection_free(c);
}

/* ---- two threads, one connection -------------------------------------- */

#define PER_THREAD 12
typedef struct job {
    rg_saml_connection *conn;
    char *b64[PER_THREAD];
    int ok;
} job;

static void *verify_all(void *arg)
{
    job *j = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        rg_saml_identity id;
        rg_error err;
        if (rg_saml_acs_verify(j->conn, j->b64[i], strlen(j->b64[i]), NULL, 0, NULL, NULL,
                               &id, &err) == 0 &&
            strcmp(id.subject, "threaded@example.com") == 0 && id.n_groups == 2)
            j->ok++;
        rg_saml_identity_clear(&id);
    }
    return NULL;
}

static void test_shared_connection_two_threads(void **state)
{
    (void)state;
    rg_saml_conn_config cfg;
    base_cfg(&cfg);
    cfg.allow_idp_initiated = 1;
    rg_saml_connection *c = rg_saml_connection_new(&cfg, NULL);
    assert_non_null(c);
    mint_opts o;
    memset(&o, 0, sizeof o);
    o.idp_metadata = idp_md;
    o.idp_key_pem = idp_key;
    o.sp_metadata = rg_saml_sp_metadata_xml(c);
    o.user = "threaded@example.com";
    const char *groups[] = {"g1", "g2"};
    o.groups = groups;
    o.n_groups = 2;
    char *emsg = NULL;
    LassoServer *idp = mint_idp_server(&o, &emsg);
    assert_non_null(idp);
    job jobs[2];
    memset(jobs, 0, sizeof jobs);
    for (int t = 0; t < 2; t++) {
        jobs[t].conn = c;
        for (int i = 0; i < PER_THREAD; i++) {
            char *xml = mint_with_server(idp, &o, &emsg);
            assert_non_null(xml);
            jobs[t].b64[i] = mint_b64(xml, strlen(xml));
            free(xml);
        }
    }
    g_object_unref(idp);
    pthread_t th[2];
    for (int t = 0; t < 2; t++)
        assert_int_equal(pthread_create(&th[t], NULL, verify_all, &jobs[t]), 0);
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < 2; t++) {
        assert_int_equal(jobs[t].ok, PER_THREAD);
        for (int i = 0; i < PER_THREAD; i++)
            free(jobs[t].b64[i]);
    }
    rg_saml_connection_free(c);
}

/* ---- the fixture IdP's serve mode, end to end ---------------------------- */

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t l = sizeof sa;
    getsockname(s, (struct sockaddr *)&sa, &l);
    close(s);
    return ntohs(sa.sin_port);
}

static char *http_get(int port, const char *target)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof sa);
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
            close(s);
            usleep(50000);   /* server still starting */
            continue;
        }
        rg_buf b = {0};
        rg_buf_printf(&b, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", target);
        assert_int_equal(write(s, b.data, b.len), (ssize_t)b.len);
        rg_buf_free(&b);
        char chunk[8192];
        ssize_t n;
        while ((n = read(s, chunk, sizeof chunk)) > 0)
            rg_buf_append(&b, chunk, (size_t)n);
        close(s);
        return rg_buf_take(&b);
    }
    return NULL;
}

static char *between(const char *s, const char *a, const char *b)
{
    const char *p = strstr(s, a);
    if (!p)
        return NULL;
    p += strlen(a);
    const char *e = strstr(p, b);
    return e ? strndup(p, (size_t)(e - p)) : NULL;
}

static void test_fixture_idp_serve_login(void **state)
{
    (void)state;
    const char *bdir = getenv("ROLEGATE_BUILD");
    char bin[512];
    snprintf(bin, sizeof bin, "%s/fixtures/rg-fixture-idp", bdir ? bdir : "build");
    if (access(bin, X_OK) != 0)
        fail_msg("%s missing: build with make all (tests/run sets ROLEGATE_BUILD)", bin);
    rg_saml_conn_config cfg;
    base_cfg(&cfg);
    rg_saml_connection *c = rg_saml_connection_new(&cfg, NULL);
    char mdpath[] = "/tmp/rg-saml-sp-XXXXXX";
    int fd = mkstemp(mdpath);
    const char *md = rg_saml_sp_metadata_xml(c);
    assert_int_equal(write(fd, md, strlen(md)), (ssize_t)strlen(md));
    close(fd);
    int port = free_port();
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        execl(bin, bin, "serve", "--port", ports, "--sp-metadata", mdpath, "--user",
              "demo@example.com", "--groups", "engineering,admins", (char *)NULL);
        _exit(127);
    }
    char *url = NULL, id[RG_SAML_REQUEST_ID_MAX];
    assert_int_equal(rg_saml_authn_request(c, "rs-xyz", &url, id, NULL), 0);
    char target[8192];
    snprintf(target, sizeof target, "/saml/sso?%s", strchr(url, '?') + 1);
    char *page = http_get(port, target);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    unlink(mdpath);
    assert_non_null(page);
    assert_non_null(strstr(page, "HTTP/1.1 200"));
    assert_non_null(strstr(page, "action=\"" ACS_URL "\""));
    assert_non_null(strstr(page, "name=\"RelayState\" value=\"rs-xyz\""));
    char *b64 = between(page, "name=\"SAMLResponse\" value=\"", "\"");
    assert_non_null(b64);
    rg_saml_identity ident;
    rg_error err;
    int rc = rg_saml_acs_verify(c, b64, strlen(b64), id, 0, NULL, NULL, &ident, &err);
    if (rc)
        fail_msg("fixture IdP response rejected: %s %s", err.code, err.message);
    assert_string_equal(ident.subject, "demo@example.com");
    assert_int_equal(ident.n_groups, 2);
    assert_string_equal(ident.groups[1], "admins");
    assert_string_equal(ident.in_response_to, id);
    rg_saml_identity_clear(&ident);
    free(b64);
    free(page);
    free(url);
    rg_saml_connection_free(c);
}

/* ---- which keys verify ---------------------------------------------------- */

/* The IdP metadata with one more KeyDescriptor (use, PEM certificate) after
 * the fixture's own signing certificate. */
static char *md_with_cert(const char *use, const char *crt_pem)
{
    rg_buf b64 = {0};
    const char *p = strstr(crt_pem, "-----BEGIN CERTIFICATE-----");
    assert_non_null(p);
    p = strchr(p, '\n');
    for (; *p && *p != '-'; p++)
        if (*p != '\n' && *p != '\r')
            rg_buf_append(&b64, p, 1);
    const char *at = strstr(idp_md, "</md:KeyDescriptor>");
    assert_non_null(at);
    at += strlen("</md:KeyDescriptor>");
    rg_buf out = {0};
    rg_buf_append(&out, idp_md, (size_t)(at - idp_md));
    rg_buf_printf(&out, "\n  <md:KeyDescriptor use=\"%s\"><ds:KeyInfo><ds:X509Data>"
                        "<ds:X509Certificate>%s</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"
                        "</md:KeyDescriptor>", use, b64.data);
    rg_buf_puts(&out, at);
    rg_buf_free(&b64);
    return rg_buf_take(&out);
}

/* Mints an IdP-initiated response signed (Response and assertion) with
 * key_pem and verifies it on c; returns the reason code, "" if accepted. */
static const char *verify_signed_by(rg_saml_connection *c, const char *key_pem)
{
    mint_opts o;
    memset(&o, 0, sizeof o);
    o.idp_metadata = idp_md;
    o.idp_key_pem = key_pem;
    o.sp_metadata = rg_saml_sp_metadata_xml(c);
    o.user = "rollover@example.com";
    char *emsg = NULL;
    char *xml = mint_response(&o, &emsg);
    assert_non_null(xml);
    char *b64 = mint_b64(xml, strlen(xml));
    rg_saml_identity id;
    rg_error err;
    rg_error_clear(&err);
    static char code[64];
    int rc = rg_saml_acs_verify(c, b64, strlen(b64), NULL, 0, NULL, NULL, &id, &err);
    snprintf(code, sizeof code, "%s", rc ? err.code : "");
    if (rc == 0)
        assert_string_equal(id.subject, "rollover@example.com");
    rg_saml_identity_clear(&id);
    free(b64);
    free(xml);
    return code;
}

/* Two signing certificates (a rollover): a response signed by either is
 * accepted, one signed by a key of neither is not. */
/* A connection (IdP-initiated allowed) whose IdP metadata has one more
 * KeyDescriptor: other_crt with this use. */
static rg_saml_connection *conn_with_cert(const char *use)
{
    char *md = md_with_cert(use, other_crt);
    rg_saml_conn_config cfg;
    base_cfg(&cfg);
    cfg.idp_metadata = md;
    cfg.idp_metadata_len = strlen(md);
    cfg.allow_idp_initiated = 1;
    rg_saml_connection *c = rg_saml_connection_new(&cfg, NULL);
    free(md);
    assert_non_null(c);
    return c;
}

static void test_signing_key_rollover(void **state)
{
    (void)state;
    rg_saml_connection *c = conn_with_cert("signing");
    assert_string_equal(verify_signed_by(c, idp_key), "");
    assert_string_equal(verify_signed_by(c, other_key), "");
    assert_string_equal(verify_signed_by(c, sp_key), "saml_signature_invalid");
    rg_saml_connection_free(c);
}

/* A certificate published for encryption only never verifies a signature. */
static void test_encryption_cert_never_verifies(void **state)
{
    (void)state;
    rg_saml_connection *c = conn_with_cert("encryption");
    assert_string_equal(verify_signed_by(c, idp_key), "");
    assert_string_equal(verify_signed_by(c, other_key), "saml_signature_invalid");
    rg_saml_connection_free(c);
}

/* ---- lasso's log lines ---------------------------------------------------- */

typedef struct log_count { int debug, warning; char last[128]; } log_count;

static void count_lasso(const gchar *domain, GLogLevelFlags level, const gchar *msg,
                        gpointer data)
{
    (void)domain;
    log_count *n = data;
    if (level & (G_LOG_LEVEL_DEBUG | G_LOG_LEVEL_INFO))
        n->debug++;
    if (level & G_LOG_LEVEL_WARNING) {
        n->warning++;
        snprintf(n->last, sizeof n->last, "%s", msg ? msg : "");
    }
}

/* lasso emits ~300 debug lines per response it parses, each formatted and
 * stamped with localtime(3) by lasso_log; rolegate's lasso_log drops them
 * before any work, and passes warnings on. With liblasso's own lasso_log
 * the debug count here is in the hundreds. */
static void test_lasso_debug_lines_dropped(void **state)
{
    (void)state;
    log_count n;
    memset(&n, 0, sizeof n);
    guint h = g_log_set_handler("Lasso", G_LOG_LEVEL_MASK, count_lasso, &n);
    rg_saml_conn_config cfg;
    base_cfg(&cfg);
    cfg.allow_idp_initiated = 1;
    rg_saml_connection *c = rg_saml_connection_new(&cfg, NULL);
    assert_non_null(c);
    assert_string_equal(verify_signed_by(c, idp_key), "");   /* lasso mints and parses */
    assert_int_equal(n.debug, 0);
    lasso_log(G_LOG_LEVEL_DEBUG, __FILE__, __LINE__, __func__, "debug %d", 1);
    lasso_log(G_LOG_LEVEL_WARNING, __FILE__, __LINE__, __func__, "probe %d", 7);
    assert_int_equal(n.debug, 0);
    assert_int_equal(n.warning, 1);
    assert_string_equal(n.last, "probe 7");
    g_log_remove_handler("Lasso", h);
    rg_saml_connection_free(c);
}

/* The SP key pair (issue 16 item 3: made by the SAML layer): created once
 * when neither file exists, key mode 0600, loadable as an SP key; one file
 * without the other is refused and nothing is overwritten. */
static void test_sp_keys_made_once(void **state)
{
    (void)state;
    char dir[] = "/tmp/rg-spkeys-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char kf[128], cf[128];
    snprintf(kf, sizeof kf, "%s/sub/sp.key", dir);
    snprintf(cf, sizeof cf, "%s/sub/sp.crt", dir);
    rg_saml_sp_keys *k = rg_saml_sp_keys_new(kf, cf);
    assert_non_null(k);
    assert_int_equal(rg_saml_sp_keys_ensure(k), 0);
    struct stat st;
    assert_int_equal(stat(kf, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(cf, &st), 0);
    time_t made = st.st_mtime;
    assert_int_equal(rg_saml_sp_keys_ensure(k), 0);   /* a no-op now */
    assert_int_equal(stat(cf, &st), 0);
    assert_int_equal(st.st_mtime, made);
    rg_saml_sp_keys_free(k);
    unlink(cf);   /* the key without its certificate: refused */
    k = rg_saml_sp_keys_new(kf, cf);
    assert_int_equal(rg_saml_sp_keys_ensure(k), -1);
    assert_int_not_equal(access(cf, F_OK), 0);
    rg_saml_sp_keys_free(k);
    rg_saml_sp_keys_free(NULL);
    unlink(kf);
    snprintf(kf, sizeof kf, "%s/sub", dir);
    rmdir(kf);
    rmdir(dir);
}

int main(void)
{
    rg_log_open(NULL, RG_LOG_ERROR);
    assert_int_equal(rg_saml_global_init(), 0);
    assert_int_equal(rg_saml_global_init(), 0);   /* idempotent */
    idp_md = rg_file_read("idp-fixtures/idp-metadata.xml", 1 << 20, NULL);
    idp_key = rg_file_read("idp-fixtures/idp.key", 1 << 16, NULL);
    sp_key = rg_file_read("idp-fixtures/sp.key", 1 << 16, NULL);
    sp_crt = rg_file_read("idp-fixtures/sp.crt", 1 << 16, NULL);
    other_key = rg_file_read("idp-fixtures/attacker.key", 1 << 16, NULL);
    other_crt = rg_file_read("idp-fixtures/attacker.crt", 1 << 16, NULL);
    if (!idp_md || !idp_key || !sp_key || !sp_crt || !other_key || !other_crt) {
        fprintf(stderr, "run from the repository root (idp-fixtures/ missing)\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_sp_metadata),
        cmocka_unit_test(test_sp_metadata_escapes_urls),
        cmocka_unit_test(test_authn_request_signed_redirect),
        cmocka_unit_test(test_relay_state_too_long),
        cmocka_unit_test(test_bad_config_rejected),
        cmocka_unit_test(test_shared_connection_two_threads),
        cmocka_unit_test(test_fixture_idp_serve_login),
        cmocka_unit_test(test_signing_key_rollover),
        cmocka_unit_test(test_encryption_cert_never_verifies),
        cmocka_unit_test(test_lasso_debug_lines_dropped),
        cmocka_unit_test(test_sp_keys_made_once),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(idp_md);
    free(idp_key);
    free(sp_key);
    free(sp_crt);
    free(other_key);
    free(other_crt);
    rg_saml_global_shutdown();
    return rc;
}
