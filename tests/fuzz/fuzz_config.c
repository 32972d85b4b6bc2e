/* fuzz_config.c: libFuzzer target for the configuration parser (config.h):
 * rg_config_parse_string on arbitrary INI text, and the duration and listen
 * address helpers. Properties: no crash, leak or overflow; success <=> no
 * diagnostic; on success every string option is NUL-terminated inside its
 * array and every listen address splits into a port in 1..65535; every
 * diagnostic line is NUL-terminated; the helpers agree with a reference. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/config.h"
#include "rolegate/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "property failed: %s (line %d)\n", #c, __LINE__); abort(); } } while (0)
#define TERMINATED(a) CHECK(memchr((a), 0, sizeof(a)) != NULL)

static int verbose;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    verbose = getenv("RG_FUZZ_VERBOSE") != NULL;
    /* the parser under test is given no environment overrides (flags 0), but
     * make sure nothing from the caller's environment leaks in anyway */
    clearenv();
    return 0;
}

static void check_listen(const char *s)
{
    char host[256];
    int port = 0;
    if (rg_config_split_listen(s, host, sizeof host, &port) == 0) {
        CHECK(port >= 1 && port <= 65535);
        TERMINATED(host);
        CHECK(strlen(host) < strlen(s));
    }
}

/* Reference of rg_config_parse_duration: digits, then one of s m h d or none. */
static void check_duration(const char *s)
{
    int64_t v = -1;
    int rc = rg_config_parse_duration(s, &v);
    size_t nd = strspn(s, "0123456789");
    int shape = nd > 0 && (s[nd] == 0 || (strchr("smhd", s[nd]) && s[nd] && s[nd + 1] == 0));
    if (rc == 0) {
        CHECK(shape);
        CHECK(v >= 0);
        /* recompute: the number must fit, and the product too */
        unsigned long long n = 0;
        for (size_t i = 0; i < nd; i++) {
            CHECK(n <= (UINT64_MAX - 9) / 10);
            n = n * 10 + (unsigned)(s[i] - '0');
        }
        long long mul = s[nd] == 'm' ? 60 : s[nd] == 'h' ? 3600 : s[nd] == 'd' ? 86400 : 1;
        CHECK(n <= (unsigned long long)INT64_MAX / (unsigned long long)mul);
        CHECK((unsigned long long)v == n * (unsigned long long)mul);
    } else if (shape && nd <= 12) {
        /* a short well-formed duration (< 10^12 s) is never refused */
        CHECK(!"well-formed duration refused");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        abort();
    memcpy(text, data, size);
    text[size] = 0;

    rg_config *cfg = malloc(sizeof *cfg);
    rg_config_diag *diag = malloc(sizeof *diag);
    if (!cfg || !diag)
        abort();
    memset(diag, 0x5a, sizeof *diag);
    int rc = rg_config_parse_string(cfg, "fuzz.conf", text, 0, diag);
    if (verbose)
        fprintf(stderr, "config: rc=%d %s\n", rc, diag->count ? diag->lines[0] : "-");
    CHECK(rc == 0 || rc == RG_EINVAL);
    CHECK(diag->count >= 0);
    CHECK((rc == 0) == (diag->count == 0));
    for (int i = 0; i < diag->count && i < RG_CONFIG_MAX_ERRORS; i++) {
        TERMINATED(diag->lines[i]);
        CHECK(strncmp(diag->lines[i], "fuzz.conf:", 10) == 0);
    }
    if (rc == 0) {
        TERMINATED(cfg->server.public_listen);
        TERMINATED(cfg->server.admin_listen);
        TERMINATED(cfg->server.base_url);
        TERMINATED(cfg->server.admin_key);
        TERMINATED(cfg->server.admin_key_file);
        TERMINATED(cfg->server.trusted_proxies);
        TERMINATED(cfg->server.return_to_origins);
        TERMINATED(cfg->store.database);
        TERMINATED(cfg->log.file);
        TERMINATED(cfg->session.keys_dir);
        TERMINATED(cfg->session.logout_redirect);
        TERMINATED(cfg->saml.sp_key_file);
        TERMINATED(cfg->saml.sp_cert_file);
        TERMINATED(cfg->redis.url);
        TERMINATED(cfg->redis.prefix);
        CHECK(rg_config_split_listen(cfg->server.public_listen, NULL, 0, NULL) == 0);
        CHECK(rg_config_split_listen(cfg->server.admin_listen, NULL, 0, NULL) == 0);
        CHECK(cfg->server.threads >= 0 && cfg->server.threads <= 256);
        CHECK(cfg->session.lifetime >= 60);
        CHECK(cfg->session.cookie_budget >= 256 && cfg->session.cookie_budget <= 4096);
        CHECK(cfg->server.max_body >= 1024);
        CHECK(cfg->saml.clock_skew >= 0 && cfg->saml.clock_skew <= 3600);
        CHECK(cfg->store.database[0] && cfg->session.keys_dir[0]);
        CHECK(!strncmp(cfg->server.base_url, "http://", 7) ||
              !strncmp(cfg->server.base_url, "https://", 8));
    }

    /* the helpers on the first line of the input */
    char *nl = strchr(text, '\n');
    if (nl)
        *nl = 0;
    check_listen(text);
    check_duration(text);

    free(diag);
    free(cfg);
    free(text);
    return 0;
}
