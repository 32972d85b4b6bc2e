/* keys.c: the session signing keys. Generates P-256 (ES256) and RSA-2048
 * (RS256) keys with OpenSSL 3, names them by their RFC 7638 thumbprint, keeps
 * them as <kid>.pem (0600) in a 0700 directory with an `active` file and
 * loads them once into an immutable, refcounted keyring whose keys pin their
 * alg (DESIGN.md "Sessions: algorithm pinned to the key; kid rotation").
 * Signing and verifying with a loaded key: sign.c. */
#include <assert.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include "rolegate/session.h"
#include "rolegate/util.h"
#include "keys_impl.h"

#define KEY_FILE_MAX  (64 * 1024)

/* ---- JWK and thumbprint (RFC 7638) ---------------------------------------- */

static int bn_b64url(const BIGNUM *bn, int pad, char **out)
{
    int n = pad > 0 ? pad : BN_num_bytes(bn);
    if (n <= 0)
        n = 1;   /* RFC 7518: zero is one octet */
    unsigned char *bin = calloc(1, (size_t)n);
    char *s = malloc(rg_b64url_len((size_t)n) + 1);
    if (!bin || !s || BN_bn2binpad(bn, bin, n) != n) {
        free(bin);
        free(s);
        return RG_ERR;
    }
    rg_b64url_encode(bin, (size_t)n, s);
    free(bin);
    *out = s;
    return 0;
}

/* Fills the public members of the JWK of pkey (as base64url strings) and
 * says whether it is a usable P-256 or RSA >= 2048 key. */
typedef struct jwk_parts { int is_ec; char *a, *b; } jwk_parts;  /* EC: x,y; RSA: n,e */

static void jwk_parts_clear(jwk_parts *p)
{
    free(p->a);
    free(p->b);
    memset(p, 0, sizeof *p);
}

static int jwk_parts_of(const EVP_PKEY *pkey, jwk_parts *p, rg_error *err)
{
    memset(p, 0, sizeof *p);
    BIGNUM *x = NULL, *y = NULL;
    int rc = RG_ERR;
    if (EVP_PKEY_is_a(pkey, "EC")) {
        char group[64] = "";
        size_t gl = 0;
        if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                            sizeof group, &gl) ||
            (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0))
            return rg_error_set(err, RG_EINTERNAL, "keys_invalid", NULL,
                                "EC key is not on P-256 (group %s)", group);
        if (!EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &x) ||
            !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &y))
            goto bad;
        p->is_ec = 1;
        /* RFC 7518 6.2.1.2: x and y are the full 32 octets, leading zeros kept */
        if (bn_b64url(x, ES256_HALF, &p->a) || bn_b64url(y, ES256_HALF, &p->b))
            goto bad;
    } else if (EVP_PKEY_is_a(pkey, "RSA")) {
        if (EVP_PKEY_get_bits(pkey) < 2048)
            return rg_error_set(err, RG_EINTERNAL, "keys_invalid", NULL,
                                "RSA key has %d bits, 2048 at least are required",
                                EVP_PKEY_get_bits(pkey));
        if (!EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &x) ||
            !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &y))
            goto bad;
        /* RFC 7518 6.3.1: n and e are minimal big-endian octet strings */
        if (bn_b64url(x, 0, &p->a) || bn_b64url(y, 0, &p->b))
            goto bad;
    } else {
        return rg_error_set(err, RG_EINTERNAL, "keys_invalid", NULL,
                            "key is neither P-256 nor RSA");
    }
    rc = 0;
bad:
    BN_free(x);
    BN_free(y);
    if (rc) {
        jwk_parts_clear(p);
        if (err && !err->code[0])
            rg_error_set(err, RG_EINTERNAL, "keys_invalid", NULL, "cannot read public key");
    }
    return rc;
}

static void thumbprint(const jwk_parts *p, char kid[RG_SESSION_KID_MAX])
{
    /* RFC 7638 3.2: required members only, lexicographic order, no spaces */
    rg_buf b = {0};
    if (p->is_ec)
        rg_buf_printf(&b, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
                      p->a, p->b);
    else
        rg_buf_printf(&b, "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", p->b, p->a);
    unsigned char md[32];
    unsigned int mdlen = 0;
    kid[0] = 0;
    if (!b.oom && EVP_Digest(b.data, b.len, md, &mdlen, EVP_sha256(), NULL)) {
        assert(mdlen == 32 && rg_b64url_len(32) < RG_SESSION_KID_MAX);
        rg_b64url_encode(md, 32, kid);
    }
    rg_buf_free(&b);
}

int rg_session_kid_of_pem(const char *pem, size_t len, char kid_out[RG_SESSION_KID_MAX],
                          rg_error *err)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio)
        return rg_error_oom(err);
    EVP_PKEY *pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    if (!pk) {
        BIO_free(bio);
        bio = BIO_new_mem_buf(pem, (int)len);
        pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    }
    BIO_free(bio);
    if (!pk)
        return rg_error_set(err, RG_EINTERNAL, "keys_invalid", NULL, "not a PEM key");
    jwk_parts p;
    int rc = jwk_parts_of(pk, &p, err);
    EVP_PKEY_free(pk);
    if (rc)
        return rc;
    thumbprint(&p, kid_out);
    jwk_parts_clear(&p);
    return kid_out[0] ? 0 : rg_error_set(err, RG_EINTERNAL, "keys_invalid", NULL, "digest failed");
}

/* ---- keyring -------------------------------------------------------------- */

static int key_init(rg_session_key *k, EVP_PKEY *pkey, rg_error *err)
{
    jwk_parts p;
    if (jwk_parts_of(pkey, &p, err))
        return RG_ERR;
    thumbprint(&p, k->kid);
    k->is_ec = p.is_ec;
    k->alg = p.is_ec ? "ES256" : "RS256";
    k->pkey = pkey;
    if (p.is_ec)
        k->jwk = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256",
                           "x", p.a, "y", p.b, "kid", k->kid, "use", "sig", "alg", k->alg);
    else
        k->jwk = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "RSA", "n", p.a, "e", p.b,
                           "kid", k->kid, "use", "sig", "alg", k->alg);
    jwk_parts_clear(&p);
    if (!k->kid[0] || !k->jwk) {
        json_decref(k->jwk);
        k->jwk = NULL;
        k->pkey = NULL;
        return rg_error_set(err, RG_ENOMEM, "keys_invalid", NULL, "cannot build the JWK");
    }
    rg_sess_key_prepare(k);
    return 0;
}

static void keyring_destroy(rg_keyring *kr)
{
    for (size_t i = 0; i < kr->n; i++) {
        rg_sess_key_release(&kr->keys[i]);
        EVP_PKEY_free(kr->keys[i].pkey);
        json_decref(kr->keys[i].jwk);
    }
    EVP_MD_free(kr->sha256);
    free(kr->jwks);
    free(kr);
}

rg_keyring *rg_keyring_ref(rg_keyring *kr)
{
    assert(kr);
    atomic_fetch_add(&kr->refs, 1);
    return kr;
}

void rg_keyring_free(rg_keyring *kr)
{
    if (kr && atomic_fetch_sub(&kr->refs, 1) == 1)
        keyring_destroy(kr);
}

size_t rg_keyring_count(const rg_keyring *kr) { return kr->n; }
const rg_session_key *rg_keyring_active(const rg_keyring *kr) { return &kr->keys[kr->active]; }
const char *rg_keyring_jwks_json(const rg_keyring *kr) { return kr->jwks; }

unsigned long rg_keyring_verify_count(const rg_keyring *kr)
{
    return atomic_load(&((rg_keyring *)kr)->verifies);
}

const rg_session_key *rg_keyring_find(const rg_keyring *kr, const char *kid)
{
    if (!kid)
        return NULL;
    for (size_t i = 0; i < kr->n; i++)
        if (strcmp(kr->keys[i].kid, kid) == 0)
            return &kr->keys[i];
    return NULL;
}

static int kid_name_ok(const char *s, size_t n)
{
    return n > 0 && n < RG_SESSION_KID_MAX && rg_b64url_chars(s, n);
}

static EVP_PKEY *read_key_file(const char *path, rg_error *err)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        rg_error_set(err, RG_EIO, "keys_invalid", NULL, "cannot stat %s", path);
        return NULL;
    }
    if (st.st_mode & 077) {
        /* a private key others can read is a leaked key: refuse, like ssh */
        rg_error_set(err, RG_EINTERNAL, "keys_invalid", NULL,
                     "%s is readable by group or others (mode %03o); chmod 600 it",
                     path, (unsigned)(st.st_mode & 0777));
        return NULL;
    }
    size_t len = 0;
    char *pem = rg_file_read(path, KEY_FILE_MAX, &len);
    if (!pem) {
        rg_error_set(err, RG_EIO, "keys_invalid", NULL, "cannot read %s", path);
        return NULL;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pk = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    OPENSSL_cleanse(pem, len);
    free(pem);
    if (!pk)
        rg_error_set(err, RG_EINTERNAL, "keys_invalid", NULL,
                     "%s is not an unencrypted PEM private key", path);
    return pk;
}

static int cmp_kid(const void *a, const void *b)
{
    return strcmp(((const rg_session_key *)a)->kid, ((const rg_session_key *)b)->kid);
}

/* Reads the kid named by dir/active into out; 0, or -1 if there is none. */
static int read_active(const char *dir, char out[RG_SESSION_KID_MAX])
{
    char path[4096];
    snprintf(path, sizeof path, "%s/active", dir);
    size_t len = 0;
    char *s = rg_file_read(path, 1024, &len);
    if (!s)
        return -1;
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        s[--len] = 0;
    size_t start = 0;
    while (start < len && isspace((unsigned char)s[start]))
        start++;
    int ok = kid_name_ok(s + start, len - start);
    if (ok)
        snprintf(out, RG_SESSION_KID_MAX, "%s", s + start);
    free(s);
    return ok ? 0 : -1;
}

static int dir_has_keys(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        found = n > 4 && strcmp(e->d_name + n - 4, ".pem") == 0;
    }
    closedir(d);
    return found;
}

static int build_jwks(rg_keyring *kr)
{
    json_t *arr = json_array();
    json_t *doc = json_pack("{s:o}", "keys", arr);
    if (!doc)
        return RG_ENOMEM;
    /* active key first: clients that take the first key pick the signer */
    json_array_append(arr, kr->keys[kr->active].jwk);
    for (size_t i = 0; i < kr->n; i++)
        if (i != kr->active)
            json_array_append(arr, kr->keys[i].jwk);
    kr->jwks = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return kr->jwks ? 0 : RG_ENOMEM;
}

rg_keyring *rg_session_keys_load(const char *dir, int create_if_empty, rg_error *err)
{
    if (!dir || !*dir)
        dir = RG_SESSION_KEYS_DIR;
    if (create_if_empty && !dir_has_keys(dir)) {
        char kid[RG_SESSION_KID_MAX];
        if (rg_session_keygen(dir, "ES256", 1, kid, err))
            return NULL;
        rg_log(RG_LOG_INFO, "event=session_key_created kid=%s alg=ES256", kid);
    }
    struct stat dst;
    if (stat(dir, &dst) == 0 && (dst.st_mode & 077))
        rg_log(RG_LOG_WARN, "event=session_keys_dir_open mode=%03o hint=\"chmod 700\"",
               (unsigned)(dst.st_mode & 0777));
    DIR *d = opendir(dir);
    if (!d) {
        rg_error_set(err, RG_EINTERNAL, "keys_missing", NULL,
                     "key directory %s: %s", dir, strerror(errno));
        return NULL;
    }
    rg_keyring *kr = calloc(1, sizeof *kr);
    if (!kr) {
        closedir(d);
        rg_error_oom(err);
        return NULL;
    }
    atomic_init(&kr->refs, 1);
    atomic_init(&kr->verifies, 0);
    kr->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    struct dirent *e;
    int failed = 0;
    while (!failed && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n <= 4 || strcmp(e->d_name + n - 4, ".pem") != 0)
            continue;
        if (kr->n == KEYS_MAX) {
            rg_error_set(err, RG_EINTERNAL, "keys_invalid", NULL,
                         "more than %d keys in %s", KEYS_MAX, dir);
            failed = 1;
            break;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        EVP_PKEY *pk = read_key_file(path, err);
        rg_session_key *k = &kr->keys[kr->n];
        k->owner = kr;
        if (!pk || key_init(k, pk, err)) {
            EVP_PKEY_free(pk);
            failed = 1;
            break;
        }
        kr->n++;
        /* the name is the kid: a renamed or swapped file is refused */
        if (n - 4 != strlen(k->kid) || strncmp(e->d_name, k->kid, n - 4) != 0) {
            rg_error_set(err, RG_EINTERNAL, "keys_invalid", NULL,
                         "%s holds the key %s: file name and kid differ", path, k->kid);
            failed = 1;
        }
    }
    closedir(d);
    if (!failed && kr->n == 0) {
        rg_error_set(err, RG_EINTERNAL, "keys_missing", NULL, "no key in %s", dir);
        failed = 1;
    }
    if (failed) {
        keyring_destroy(kr);
        return NULL;
    }
    qsort(kr->keys, kr->n, sizeof kr->keys[0], cmp_kid);
    char active[RG_SESSION_KID_MAX];
    const rg_session_key *ak = read_active(dir, active) == 0 ? rg_keyring_find(kr, active) : NULL;
    if (!ak) {
        rg_error_set(err, RG_EINTERNAL, "keys_no_active", NULL,
                     "%s/active is missing or names no key of the directory", dir);
        keyring_destroy(kr);
        return NULL;
    }
    kr->active = (size_t)(ak - kr->keys);
    if (build_jwks(kr)) {
        rg_error_oom(err);
        keyring_destroy(kr);
        return NULL;
    }
    return kr;
}

/* ---- keygen --------------------------------------------------------------- */

static int ensure_dir(const char *dir, rg_error *err)
{
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return rg_error_set(err, RG_EIO, "keygen_failed", NULL,
                                "%s is not a directory", dir);
        return 0;
    }
    if (rg_mkdir_p(dir, 0700) < 0 || chmod(dir, 0700) < 0)
        return rg_error_set(err, RG_EIO, "keygen_failed", NULL,
                            "cannot create %s: %s", dir, strerror(errno));
    return 0;
}

int rg_session_keygen(const char *dir, const char *alg, int make_active,
                      char kid_out[RG_SESSION_KID_MAX], rg_error *err)
{
    if (!dir || !*dir)
        dir = RG_SESSION_KEYS_DIR;
    if (!alg)
        alg = "ES256";
    int is_ec = strcmp(alg, "ES256") == 0;
    if (!is_ec && strcmp(alg, "RS256") != 0)
        return rg_error_set(err, RG_EINVAL, "invalid_alg", "alg",
                            "alg must be ES256 or RS256, not %.32s", alg);
    if (ensure_dir(dir, err))
        return RG_EIO;
    EVP_PKEY *pk = is_ec ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
                         : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    if (!pk)
        return rg_error_set(err, RG_EINTERNAL, "keygen_failed", NULL, "key generation failed");
    jwk_parts p;
    if (jwk_parts_of(pk, &p, err)) {
        EVP_PKEY_free(pk);
        return RG_ERR;
    }
    thumbprint(&p, kid_out);
    jwk_parts_clear(&p);
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem = NULL;
    long pemlen = 0;
    int ok = bio && kid_out[0] &&
             PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL) == 1 &&
             (pemlen = BIO_get_mem_data(bio, &pem)) > 0;
    EVP_PKEY_free(pk);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.pem", dir, kid_out);
    /* rg_file_write writes a temp file then renames it: a loader never sees
     * half a key. chmod again in case the umask widened nothing but narrowed
     * more than we asked (0600 exactly is what load checks). */
    if (ok && (rg_file_write(path, pem, (size_t)pemlen, 0600) < 0 || chmod(path, 0600) < 0))
        ok = 0;
    if (bio) {
        if (pem && pemlen > 0)
            OPENSSL_cleanse(pem, (size_t)pemlen);
        BIO_free(bio);
    }
    if (!ok)
        return rg_error_set(err, RG_EIO, "keygen_failed", NULL,
                            "cannot write the key to %s: %s", path, strerror(errno));
    if (make_active) {
        char line[RG_SESSION_KID_MAX + 2];
        int n = snprintf(line, sizeof line, "%s\n", kid_out);
        snprintf(path, sizeof path, "%s/active", dir);
        if (rg_file_write(path, line, (size_t)n, 0600) < 0)
            return rg_error_set(err, RG_EIO, "keygen_failed", NULL,
                                "cannot write %s: %s", path, strerror(errno));
    }
    return 0;
}

int rg_session_cmd_keygen(int argc, char **argv)
{
    const char *dir = RG_SESSION_KEYS_DIR, *alg = "ES256";
    int activate = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(argv[i], "--alg") == 0 && i + 1 < argc) {
            alg = argv[++i];
        } else if (strcmp(argv[i], "--no-activate") == 0) {
            activate = 0;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: rolegate keygen [--dir DIR] [--alg ES256|RS256] [--no-activate]\n");
            return 0;
        } else {
            fprintf(stderr, "rolegate keygen: unknown or incomplete option %s\n"
                    "usage: rolegate keygen [--dir DIR] [--alg ES256|RS256] [--no-activate]\n",
                    argv[i]);
            return 2;
        }
    }
    if (strcmp(alg, "ES256") != 0 && strcmp(alg, "RS256") != 0) {
        fprintf(stderr, "rolegate keygen: --alg must be ES256 or RS256\n");
        return 2;
    }
    char kid[RG_SESSION_KID_MAX];
    rg_error err = {0};
    if (rg_session_keygen(dir, alg, activate, kid, &err)) {
        fprintf(stderr, "rolegate keygen: %s: %s\n", err.code, err.message);
        return 1;
    }
    printf("%s\n", kid);
    fflush(stdout);
    return 0;
}
