/* test_oidc_stub.h: a tiny OpenID Provider stub for the OIDC tests and the
 * bench: a loopback HTTP/1.1 server on its own thread (one request per
 * connection) serving discovery, JWKS, token and userinfo documents that the
 * test sets, plus key generation, JWK export and JWS signing with OpenSSL so
 * tests can mint the bad tokens a real OP never signs. Header-only (static
 * functions) so a test and the bench can both include it. */
#ifndef TEST_OIDC_STUB_H
#define TEST_OIDC_STUB_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include "rolegate/util.h"

#define STUB_UNUSED __attribute__((unused))

typedef struct stub_srv {
    int fd, port;
    pthread_t th;
    pthread_mutex_t mu;
    atomic_int stop;
    char issuer[64];
    /* what the stub serves; set with stub_set (strdup'd, freed by the stub) */
    char *disc;              /* NULL: a generated discovery document */
    char *jwks;
    char *token;             /* body of /token */
    int token_status;        /* default 200 */
    char *userinfo;
    char userinfo_ctype[64];
    int token_delay_ms;
    int post_only;           /* discovery lists only client_secret_post */
    int no_length;           /* answer without Content-Length */
    SSL_CTX *tls;            /* set by stub_start_tls: serve https */
    /* what it saw */
    int n_disc, n_jwks, n_token, n_userinfo;
    char last_body[8192], last_auth[1024];
} stub_srv;

static STUB_UNUSED void stub_set(stub_srv *s, char **slot, const char *v)
{
    pthread_mutex_lock(&s->mu);
    free(*slot);
    *slot = v ? strdup(v) : NULL;
    pthread_mutex_unlock(&s->mu);
}

typedef struct stub_conn { int fd; SSL *ssl; } stub_conn;

static ssize_t conn_read(stub_conn *c, char *p, size_t n)
{
    return c->ssl ? SSL_read(c->ssl, p, (int)n) : recv(c->fd, p, n, 0);
}

static ssize_t conn_write(stub_conn *c, const char *p, size_t n)
{
    return c->ssl ? SSL_write(c->ssl, p, (int)n) : send(c->fd, p, n, MSG_NOSIGNAL);
}

/* no_length: a body delimited by the close, so the client cannot know its
 * size up front (what CURLOPT_MAXFILESIZE alone misses on curl 7.88) */
static void stub_send(stub_conn *fd, int status, const char *ctype, const char *body, int no_length)
{
    char head[256], cl[48] = "";
    size_t bl = strlen(body);
    if (!no_length)
        snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", bl);
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d X\r\nContent-Type: %s\r\n%s"
                     "Connection: close\r\n\r\n", status, ctype, cl);
    conn_write(fd, head, (size_t)n);
    for (size_t off = 0; off < bl;) {
        ssize_t w = conn_write(fd, body + off, bl - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

#define STUB_REQ_MAX 65536
static void stub_handle(stub_srv *s, stub_conn *fd, char *req)
{
    size_t len = 0;
    req[0] = 0;
    char *end = NULL;
    while (len < STUB_REQ_MAX - 1 && !(end = strstr(req, "\r\n\r\n"))) {
        ssize_t r = conn_read(fd, req + len, STUB_REQ_MAX - 1 - len);
        if (r <= 0)
            return;
        len += (size_t)r;
        req[len] = 0;
    }
    if (!end)
        return;
    size_t hl = (size_t)(end + 4 - req), cl = 0;
    char *h = strcasestr(req, "\r\nContent-Length:");
    if (h && h < end)
        cl = strtoul(h + 17, NULL, 10);
    while (len < hl + cl && len < STUB_REQ_MAX - 1) {
        ssize_t r = conn_read(fd, req + len, STUB_REQ_MAX - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        req[len] = 0;
    }
    char method[8] = "", path[256] = "";
    sscanf(req, "%7s %255s", method, path);
    pthread_mutex_lock(&s->mu);
    char *auth = strcasestr(req, "\r\nAuthorization: ");
    int authed = strcmp(path, "/token") == 0 || strcmp(path, "/userinfo") == 0;
    if (authed)
        s->last_auth[0] = 0;
    if (authed && auth && auth < end)
        snprintf(s->last_auth, sizeof s->last_auth, "%.*s", (int)strcspn(auth + 17, "\r"), auth + 17);
    int status = 404, delay = 0;
    const char *ctype = "application/json";
    char *body = NULL;
    if (strcmp(path, "/.well-known/openid-configuration") == 0) {
        s->n_disc++;
        status = 200;
        if (s->disc) {
            body = strdup(s->disc);
        } else {
            rg_buf b = {0};
            rg_buf_printf(&b, "{\"issuer\":\"%s\",\"authorization_endpoint\":\"%s/authorize?x=1\","
                          "\"token_endpoint\":\"%s/token\",\"jwks_uri\":\"%s/jwks\","
                          "\"userinfo_endpoint\":\"%s/userinfo\","
                          "\"token_endpoint_auth_methods_supported\":[%s]}",
                          s->issuer, s->issuer, s->issuer, s->issuer, s->issuer,
                          s->post_only ? "\"client_secret_post\""
                                       : "\"client_secret_post\",\"client_secret_basic\"");
            body = rg_buf_take(&b);
        }
    } else if (strcmp(path, "/jwks") == 0 && s->jwks) {
        s->n_jwks++;
        status = 200;
        body = strdup(s->jwks);
    } else if (strcmp(path, "/token") == 0 && strcmp(method, "POST") == 0 && s->token) {
        s->n_token++;
        snprintf(s->last_body, sizeof s->last_body, "%s", req + hl);
        status = s->token_status ? s->token_status : 200;
        delay = s->token_delay_ms;
        body = strdup(s->token);
    } else if (strcmp(path, "/userinfo") == 0 && s->userinfo) {
        s->n_userinfo++;
        status = 200;
        ctype = s->userinfo_ctype[0] ? s->userinfo_ctype : "application/json";
        body = strdup(s->userinfo);
    }
    char ct[64];
    snprintf(ct, sizeof ct, "%s", ctype);
    pthread_mutex_unlock(&s->mu);
    if (delay)
        usleep((useconds_t)delay * 1000);
    stub_send(fd, status, ct, body ? body : "{\"error\":\"not_found\"}", s->no_length);
    free(body);
}

static void *stub_main(void *arg)
{
    stub_srv *s = arg;
    char *req = malloc(STUB_REQ_MAX);
    while (!s->stop) {
        int fd = accept(s->fd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        stub_conn c = {.fd = fd};
        if (s->tls) {
            c.ssl = SSL_new(s->tls);
            SSL_set_fd(c.ssl, fd);
        }
        if (!c.ssl || SSL_accept(c.ssl) == 1)
            stub_handle(s, &c, req);
        if (c.ssl) {
            SSL_shutdown(c.ssl);
            SSL_free(c.ssl);
        }
        close(fd);
    }
    free(req);
    return NULL;
}

/* Starts a stub on 127.0.0.1 with a free port (bind to port 0); https when
 * tls is given (owned by the stub then). */
static stub_srv *stub_start_ctx(SSL_CTX *tls)
{
    stub_srv *s = calloc(1, sizeof *s);
    s->tls = tls;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    pthread_mutex_init(&s->mu, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&a, sizeof a) || listen(s->fd, 64) ||
        getsockname(s->fd, (struct sockaddr *)&a, &al)) {
        perror("stub");
        abort();
    }
    s->port = ntohs(a.sin_port);
    snprintf(s->issuer, sizeof s->issuer, "%s://127.0.0.1:%d", tls ? "https" : "http", s->port);
    pthread_create(&s->th, NULL, stub_main, s);
    return s;
}

static STUB_UNUSED stub_srv *stub_start(void)
{
    return stub_start_ctx(NULL);
}

/* Starts an https stub with the cert and key in PEM files; its issuer is
 * https://127.0.0.1:port. */
static STUB_UNUSED stub_srv *stub_start_tls(const char *cert_pem, const char *key_pem)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, cert_pem) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key_pem, SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "stub: cannot load %s / %s\n", cert_pem, key_pem);
        abort();
    }
    signal(SIGPIPE, SIG_IGN); /* SSL_write to a client that hung up */
    return stub_start_ctx(ctx);
}

static STUB_UNUSED void stub_stop(stub_srv *s)
{
    if (!s)
        return;
    s->stop = 1;
    shutdown(s->fd, SHUT_RDWR);
    pthread_join(s->th, NULL);
    close(s->fd);
    free(s->disc);
    free(s->jwks);
    free(s->token);
    free(s->userinfo);
    SSL_CTX_free(s->tls);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---- keys, JWKs and JWS --------------------------------------------------- */

static char *stub_b64url(const unsigned char *p, size_t n)
{
    char *out = malloc(rg_b64url_len(n) + 1);
    rg_b64url_encode(p, n, out);
    return out;
}

static char *stub_bn_b64(const BIGNUM *bn, int pad)
{
    int n = pad ? pad : BN_num_bytes(bn);
    unsigned char *buf = malloc((size_t)n);
    BN_bn2binpad(bn, buf, n);
    char *s = stub_b64url(buf, (size_t)n);
    free(buf);
    return s;
}

/* The public JWK of pk as JSON text (malloc'd). alg may be NULL. */
static STUB_UNUSED char *stub_jwk(EVP_PKEY *pk, const char *kid, const char *alg)
{
    rg_buf b = {0};
    BIGNUM *x = NULL, *y = NULL;
    if (EVP_PKEY_is_a(pk, "RSA")) {
        EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &x);
        EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &y);
        char *n = stub_bn_b64(x, 0), *e = stub_bn_b64(y, 0);
        rg_buf_printf(&b, "{\"kty\":\"RSA\",\"kid\":\"%s\",\"use\":\"sig\",\"n\":\"%s\",\"e\":\"%s\"", kid, n, e);
        free(n);
        free(e);
    } else {
        char crv[32] = "";
        EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, crv, sizeof crv, NULL);
        int sz = strcmp(crv, "prime256v1") == 0 ? 32 : strcmp(crv, "secp384r1") == 0 ? 48 : 66;
        EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_X, &x);
        EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_Y, &y);
        char *xs = stub_bn_b64(x, sz), *ys = stub_bn_b64(y, sz);
        rg_buf_printf(&b, "{\"kty\":\"EC\",\"kid\":\"%s\",\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"", kid,
                      sz == 32 ? "P-256" : sz == 48 ? "P-384" : "P-521", xs, ys);
        free(xs);
        free(ys);
    }
    if (alg)
        rg_buf_printf(&b, ",\"alg\":\"%s\"", alg);
    rg_buf_puts(&b, "}");
    BN_free(x);
    BN_free(y);
    return rg_buf_take(&b);
}

/* The SPKI PEM of pk (malloc'd): the "secret" of the HS256 confusion attack. */
static STUB_UNUSED char *stub_pub_pem(EVP_PKEY *pk)
{
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, pk);
    char *p = NULL;
    long n = BIO_get_mem_data(bio, &p);
    char *out = strndup(p, (size_t)n);
    BIO_free(bio);
    return out;
}

/* Signs header.payload (JSON texts) as alg with pk (or hmac_key for HS*,
 * nothing for "none"). Returns the compact JWS (malloc'd). */
static STUB_UNUSED char *stub_sign(const char *alg, EVP_PKEY *pk, const char *hmac_key,
                                   const char *header, const char *payload)
{
    char *h = stub_b64url((const unsigned char *)header, strlen(header));
    char *p = stub_b64url((const unsigned char *)payload, strlen(payload));
    rg_buf in = {0};
    rg_buf_printf(&in, "%s.%s", h, p);
    free(h);
    free(p);
    int bits = atoi(alg + 2);
    const EVP_MD *md = bits == 384 ? EVP_sha384() : bits == 512 ? EVP_sha512() : EVP_sha256();
    unsigned char sig[1024];
    size_t sl = 0;
    if (strncmp(alg, "HS", 2) == 0) {
        unsigned int ml = 0;
        const char *key = hmac_key ? hmac_key : "";
        HMAC(md, key, (int)strlen(key), (unsigned char *)in.data, in.len, sig, &ml);
        sl = ml;
    } else if (strcmp(alg, "none") != 0) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_PKEY_CTX *pctx = NULL;
        unsigned char der[1024];
        size_t dl = sizeof der;
        EVP_DigestSignInit(ctx, &pctx, md, NULL, pk);
        if (alg[0] == 'P') {
            EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
        }
        EVP_DigestSign(ctx, der, &dl, (unsigned char *)in.data, in.len);
        EVP_MD_CTX_free(ctx);
        if (alg[0] == 'E') { /* DER → JOSE raw R||S */
            const unsigned char *dp = der;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &dp, (long)dl);
            int sz = bits == 256 ? 32 : bits == 384 ? 48 : 66;
            BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, sz);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + sz, sz);
            sl = (size_t)(2 * sz);
            ECDSA_SIG_free(es);
        } else {
            memcpy(sig, der, dl);
            sl = dl;
        }
    }
    char *sg = stub_b64url(sig, sl);
    rg_buf_printf(&in, ".%s", sg);
    free(sg);
    return rg_buf_take(&in);
}

#endif
