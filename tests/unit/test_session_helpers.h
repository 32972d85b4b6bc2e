/* test_session_helpers.h: key directories for the session unit tests
 * (include after cmocka.h and test_tmpdir.h): a fresh key made and loaded in
 * one call, a key file read back with OpenSSL itself (not the code under
 * test), and a per-test temporary directory as a cmocka fixture. */
#ifndef TEST_SESSION_HELPERS_H
#define TEST_SESSION_HELPERS_H

#include <stdio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include "rolegate/session.h"

/* keygen of alg in dir (activated), kid filled, then the keyring loaded
 * from dir; the test fails if either step does. */
static inline rg_keyring *tsh_ring(const char *dir, const char *alg,
                                   char kid[RG_SESSION_KID_MAX])
{
    rg_error err = {0};
    assert_int_equal(rg_session_keygen(dir, alg, 1, kid, &err), 0);
    rg_keyring *kr = rg_session_keys_load(dir, 0, &err);
    assert_non_null(kr);
    return kr;
}

/* dir/kid.pem as OpenSSL reads it. */
static inline EVP_PKEY *tsh_read_pem(const char *dir, const char *kid)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.pem", dir, kid);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    EVP_PKEY *pk = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(pk);
    return pk;
}

/* cmocka setup/teardown: *st is a fresh /tmp/rg-session-keys-XXXXXX,
 * removed with its contents after the test. */
static inline int tsh_dir_setup(void **st)
{
    *st = tt_mkdtemp("session-keys");
    return 0;
}

static inline int tsh_dir_teardown(void **st)
{
    tt_rm_rf(*st);
    return 0;
}

#endif
