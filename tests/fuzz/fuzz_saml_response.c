/* fuzz_saml_response.c: libFuzzer target for the SAML ACS (saml.h:
 * rg_saml_acs_verify) with one fixture connection built once from
 * idp-fixtures/ (IdP metadata, SP key and certificate). Byte 0: bit 0 set =
 * the rest is the SAMLResponse form value as is; clear = the rest is XML,
 * base64-encoded here (so mutations reach the XML). Bit 1 set = no pending
 * request (IdP-initiated, which this connection refuses).
 * Properties: no crash or leak; a refusal zeroes the identity and carries
 * a saml_* code with status 400/403; an acceptance (possible only for an
 * assertion the fixture IdP really signed, i.e. the seeds) must name one of
 * the subjects and groups the seeds were minted with, the IdP as issuer and
 * the pending request id: XML signature wrapping, comment injection or an
 * unsigned extra assertion must never change who logs in (R16 groups).
 * Seeds: RG_FUZZ_MINT_SEEDS=<dir> makes the target mint them (fixture IdP,
 * idp-fixtures/rg_fixture_mint.h) at a fixed time and exit. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/saml.h"
#include "rolegate/util.h"
#include "rg_fixture_mint.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define NOW       1750000000
#define BASE_URL  "https://sp.rolegate.test"
#define CONN_ID   "conn_01HFUZZSAML00000000000000"
#define PENDING   "_rgfuzzpending0123456789abcdef"

static rg_saml_connection *conn;
static const char *const USERS[] = {"alice@example.com", "bob@example.com"};
static const char *const GROUPS[] = {"engineering", "R&D <x>", "admins", "sales"};

static char *fixture(const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "idp-fixtures/%s", name);
    char *s = rg_file_read(p, 1 << 20, NULL);
    if (!s) {
        fprintf(stderr, "missing fixture %s (run from the repository root)\n", p);
        abort();
    }
    return s;
}

static void write_seed(const char *dir, const char *name, const char *s)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    CHECK(f);
    fputc(0, f);                       /* flags: XML, pending request */
    fputs(s, f);
    CHECK(fclose(f) == 0);
}

/* Mints the seed responses with the fixture IdP at NOW. */
static void mint_seeds(const char *dir, const char *idp_md, const char *sp_crt)
{
    char *idp_key = fixture("idp.key"), *attacker_key = fixture("attacker.key");
    static const struct { const char *name; int sign, encrypt, attacker, user; size_t ng; }
    seeds[] = {
        {"valid-both-signed.xml", MINT_SIGN_BOTH, 0, 0, 0, 3},
        {"valid-assertion-signed.xml", MINT_SIGN_ASSERTION, 0, 0, 1, 1},
        {"valid-response-signed.xml", MINT_SIGN_RESPONSE, 0, 0, 0, 4},
        {"valid-encrypted.xml", MINT_SIGN_BOTH, 1, 0, 1, 2},
        {"unsigned.xml", MINT_SIGN_NONE, 0, 0, 0, 2},
        {"attacker-signed.xml", MINT_SIGN_BOTH, 0, 1, 0, 2},
    };
    for (size_t i = 0; i < sizeof seeds / sizeof *seeds; i++) {
        mint_opts o;
        memset(&o, 0, sizeof o);
        o.idp_metadata = idp_md;
        o.idp_key_pem = seeds[i].attacker ? attacker_key : idp_key;
        o.sp_metadata = rg_saml_sp_metadata_xml(conn);
        o.user = USERS[seeds[i].user];
        o.groups = GROUPS;
        o.n_groups = seeds[i].ng;
        o.email = USERS[seeds[i].user];
        o.display_name = "Fuzz User";
        o.now = NOW;
        o.in_response_to = PENDING;
        o.sign = seeds[i].sign;
        o.encrypt = seeds[i].encrypt;
        o.sp_cert_pem = sp_crt;
        char *emsg = NULL;
        char *xml = mint_response(&o, &emsg);
        if (!xml) {
            fprintf(stderr, "mint %s: %s\n", seeds[i].name, emsg ? emsg : "?");
            abort();
        }
        write_seed(dir, seeds[i].name, xml);
        free(xml);
    }
    free(idp_key);
    free(attacker_key);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    rg_log_open("/dev/null", RG_LOG_ERROR);
    CHECK(rg_saml_global_init() == 0);
    char *idp_md = fixture("idp-metadata.xml");
    char *sp_key = fixture("sp.key"), *sp_crt = fixture("sp.crt");
    rg_saml_conn_config cfg;
    rg_saml_conn_config_init(&cfg);
    cfg.connection_id = CONN_ID;
    cfg.sp_entity_id = BASE_URL "/saml/metadata/" CONN_ID;
    cfg.acs_url = BASE_URL "/saml/acs/" CONN_ID;
    cfg.sp_key_pem = sp_key;
    cfg.sp_cert_pem = sp_crt;
    cfg.idp_metadata = idp_md;
    cfg.idp_metadata_len = strlen(idp_md);
    rg_error err;
    conn = rg_saml_connection_new(&cfg, &err);
    if (!conn) {
        fprintf(stderr, "fuzz_saml_response: connection: %s %s\n", err.code, err.message);
        abort();
    }
    const char *seed_dir = getenv("RG_FUZZ_MINT_SEEDS");
    if (seed_dir) {
        mint_seeds(seed_dir, idp_md, sp_crt);
        exit(0);
    }
    free(idp_md);
    free(sp_key);
    free(sp_crt);
    return 0;
}

static int one_of(const char *s, const char *const *set, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        if (!strcmp(s, set[i]))
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 300 * 1024)
        return 0;
    int literal = data[0] & 1, unsolicited = data[0] & 2;
    char *b64;
    size_t len;
    if (literal) {
        b64 = malloc(size);
        CHECK(b64);
        memcpy(b64, data + 1, size - 1);
        b64[size - 1] = 0;
        len = size - 1;
    } else {
        b64 = mint_b64((const char *)data + 1, size - 1);
        CHECK(b64);
        len = strlen(b64);
    }
    rg_saml_identity id;
    memset(&id, 0x5a, sizeof id);
    rg_error err;
    rg_error_clear(&err);
    int rc = rg_saml_acs_verify(conn, b64, len, unsolicited ? NULL : PENDING, NOW,
                                NULL, NULL, &id, &err);
    if (getenv("RG_FUZZ_VERBOSE"))
        fprintf(stderr, "acs: rc=%d code=%s\n", rc, rc ? err.code : "-");
    if (rc != 0) {
        static const rg_saml_identity zero;
        CHECK(memcmp(&id, &zero, sizeof id) == 0);
        CHECK(!strncmp(err.code, "saml_", 5));
        CHECK(err.status == 400 || err.status == 403);
    } else {
        /* only what the fixture IdP signed can log in */
        CHECK(!unsolicited);
        CHECK(one_of(id.subject, USERS, 2));
        CHECK(id.issuer && !strcmp(id.issuer, rg_saml_idp_entity_id(conn)));
        CHECK(id.in_response_to && !strcmp(id.in_response_to, PENDING));
        for (size_t i = 0; i < id.n_groups; i++)
            CHECK(one_of(id.groups[i], GROUPS, 4));
        CHECK(!id.email || one_of(id.email, USERS, 2));
        rg_saml_identity_clear(&id);
    }
    free(b64);
    return 0;
}
