/* spkeys.c: the SP key pair of [saml] (sp_key_file, sp_cert_file): made
 * once per process at the first SAML use, RSA-2048 with a self-signed
 * 10-year certificate, the key mode 0600, when neither file exists (an RSA
 * keygen costs ~0.1 s: gateways without SAML connections never pay it).
 * The handle's lock makes concurrent first uses generate one pair. */
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include "rolegate/saml.h"
#include "rolegate/util.h"

struct rg_saml_sp_keys {
    pthread_mutex_t lock;    /* guards ready */
    int             ready;
    char           *key_file, *cert_file;
};

rg_saml_sp_keys *rg_saml_sp_keys_new(const char *key_file, const char *cert_file)
{
    rg_saml_sp_keys *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    pthread_mutex_init(&k->lock, NULL);
    k->key_file = strdup(key_file ? key_file : "");
    k->cert_file = strdup(cert_file ? cert_file : "");
    if (!k->key_file || !k->cert_file) {
        rg_saml_sp_keys_free(k);
        return NULL;
    }
    return k;
}

void rg_saml_sp_keys_free(rg_saml_sp_keys *k)
{
    if (!k)
        return;
    pthread_mutex_destroy(&k->lock);
    free(k->key_file);
    free(k->cert_file);
    free(k);
}

static int write_pem(const char *path, BIO *bio, int mode)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    const char *d = dirname(tmp);
    if (strcmp(d, ".") != 0 && rg_mkdir_p(d, 0700) != 0)
        return -1;
    return n > 0 ? rg_file_write(path, data, (size_t)n, mode) : -1;
}

static int keys_create(const char *kf, const char *cf)
{
    int hk = access(kf, F_OK) == 0, hc = access(cf, F_OK) == 0;
    if (hk && hc)
        return 0;
    if (hk != hc) {
        rg_log(RG_LOG_ERROR, "event=saml_sp_keys_incomplete key=%s cert=%s "
               "hint=\"give both files or neither\"", kf, cf);
        return -1;
    }
    int rc = -1;
    EVP_PKEY *pk = EVP_RSA_gen(2048);
    X509 *x = X509_new();
    BIO *kb = BIO_new(BIO_s_mem()), *cb = BIO_new(BIO_s_mem());
    if (!pk || !x || !kb || !cb)
        goto done;
    unsigned char serial[16];
    rg_random_bytes(serial, sizeof serial);
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
    if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x))) {
        BN_free(bn);
        goto done;
    }
    BN_free(bn);
    X509_set_version(x, 2);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600);
    X509_NAME *nm = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)"rolegate SAML SP",
                               -1, -1, 0);
    X509_set_issuer_name(x, nm);
    X509_set_pubkey(x, pk);
    if (!X509_sign(x, pk, EVP_sha256()) || !PEM_write_bio_PrivateKey(kb, pk, NULL, NULL, 0, NULL, NULL) ||
        !PEM_write_bio_X509(cb, x))
        goto done;
    if (write_pem(kf, kb, 0600) != 0 || write_pem(cf, cb, 0644) != 0)
        goto done;
    rg_log(RG_LOG_INFO, "event=saml_sp_keys_created key=%s cert=%s", kf, cf);
    rc = 0;
done:
    if (rc)
        rg_log(RG_LOG_ERROR, "event=saml_sp_keys_failed key=%s cert=%s", kf, cf);
    BIO_free(kb);
    BIO_free(cb);
    X509_free(x);
    EVP_PKEY_free(pk);
    return rc;
}

int rg_saml_sp_keys_ensure(rg_saml_sp_keys *k)
{
    if (!k)
        return -1;
    pthread_mutex_lock(&k->lock);
    if (!k->ready && keys_create(k->key_file, k->cert_file) == 0)
        k->ready = 1;
    int rc = k->ready ? 0 : -1;
    pthread_mutex_unlock(&k->lock);
    return rc;
}
