/* test_util_config.c: rolegate.conf parsing: defaults, every kind of error
 * (unknown section/option, bad port, enum, duration, boolean, URL scheme,
 * size, range, duplicates, syntax) with FILE:LINE in the message, list
 * options that add up over lines, and the ROLEGATE_* environment overrides. */
#include <ctype.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "rolegate/config.h"
#include "rolegate/error.h"
#include "rolegate/util.h"

static rg_config cfg;
static rg_config_diag diag;

static int parse(const char *text)
{
    return rg_config_parse_string(&cfg, "t.conf", text, 0, &diag);
}

static int diag_has(const char *needle)
{
    for (int i = 0; i < diag.count && i < RG_CONFIG_MAX_ERRORS; i++)
        if (strstr(diag.lines[i], needle))
            return 1;
    return 0;
}

/* asserts text fails with exactly one error line containing needle */
static void expect_error(const char *text, const char *needle)
{
    assert_int_equal(parse(text), RG_EINVAL);
    if (diag.count != 1 || !diag_has(needle)) {
        for (int i = 0; i < diag.count && i < RG_CONFIG_MAX_ERRORS; i++)
            print_message("  diag: %s\n", diag.lines[i]);
        fail_msg("expected one error with '%s' for: %s", needle, text);
    }
}

static void test_defaults(void **st)
{
    (void)st;
    assert_int_equal(parse(""), 0);
    assert_int_equal(diag.count, 0);
    assert_string_equal(cfg.server.public_listen, "0.0.0.0:8080");
    assert_string_equal(cfg.server.admin_listen, "127.0.0.1:8081");
    assert_string_equal(cfg.server.base_url, "http://localhost:8080");
    assert_string_equal(cfg.server.admin_key, "");
    assert_string_equal(cfg.server.admin_key_file, "var/admin.key");
    assert_int_equal(cfg.server.threads, 0);
    assert_int_equal(cfg.server.max_body, 1048576);
    assert_int_equal(cfg.server.connection_timeout, 30);
    assert_string_equal(cfg.store.database, "var/rolegate.db");
    assert_int_equal(cfg.log.level, RG_LOG_INFO);
    assert_string_equal(cfg.session.keys_dir, "var/keys");
    assert_int_equal(cfg.session.lifetime, 8 * 3600);
    assert_int_equal(cfg.session.oversize, RG_OVERSIZE_REJECT);
    assert_string_equal(cfg.session.logout_redirect, "/signed-out");   /* issue 11 item 5 */
    assert_int_equal(cfg.session.cookie_budget, 4096);
    assert_int_equal(cfg.saml.clock_skew, 60);
    assert_int_equal(cfg.saml.max_response, 262144);
    assert_int_equal(cfg.saml.replay_check_without_redis, RG_REPLAY_REJECT);
    assert_int_equal(cfg.saml.allow_sha1, 0);
    assert_int_equal(cfg.oidc.allow_http_loopback, 0);
    assert_int_equal(cfg.oidc.http_timeout_ms, 5000);
    assert_int_equal(cfg.oidc.jwks_min_refresh, 60);
    assert_string_equal(cfg.redis.url, "");
    assert_string_equal(cfg.redis.prefix, "rolegate:");
    assert_int_equal(cfg.redis.table_ttl, 300);
    assert_int_equal(cfg.demo.enabled, 0);   /* opt-in: the fixture IdP key is public */
    assert_true(rg_config_threads(&cfg) >= 2);
}

static void test_values_parsed(void **st)
{
    (void)st;
    assert_int_equal(parse("# comment\n"
                           "[server]\n"
                           "public_listen = [::1]:9000\n"
                           "base_url = https://sso.example.com/base\n"
                           "threads = 6\n"
                           "max_body = 256k\n"
                           "connection_timeout = 2m\n"
                           "trusted_proxies = 10.0.0.0/8, 192.168.1.1\n"
                           "trusted_proxies = ::1\n"
                           "return_to_origins = https://app.example.com\n"
                           "[session]\n"
                           "lifetime = 2d\n"
                           "oversize = omit_permissions\n"
                           "logout_redirect = https://example.com/bye\n"
                           "[saml]\n"
                           "replay_check_without_redis = local\n"
                           "allow_sha1 = yes\n"
                           "max_response = 1M\n"
                           "[oidc]\n"
                           "allow_http_loopback = TRUE\n"
                           "[redis]\n"
                           "url = redis://127.0.0.1:6379/2\n"
                           "[log]\n"
                           "level = debug\n"
                           "[demo]\n"
                           "enabled = on\n"),
                     0);
    assert_string_equal(cfg.server.public_listen, "[::1]:9000");
    assert_string_equal(cfg.server.base_url, "https://sso.example.com/base");
    assert_int_equal(cfg.server.threads, 6);
    assert_int_equal(rg_config_threads(&cfg), 6);
    assert_int_equal(cfg.server.max_body, 256 * 1024);
    assert_int_equal(cfg.server.connection_timeout, 120);
    assert_string_equal(cfg.server.trusted_proxies, "10.0.0.0/8, 192.168.1.1,::1");
    assert_string_equal(cfg.server.return_to_origins, "https://app.example.com");
    assert_int_equal(cfg.session.lifetime, 2 * 86400);
    assert_int_equal(cfg.session.oversize, RG_OVERSIZE_OMIT_PERMISSIONS);
    assert_int_equal(cfg.saml.replay_check_without_redis, RG_REPLAY_LOCAL);
    assert_int_equal(cfg.saml.allow_sha1, 1);
    assert_int_equal(cfg.saml.max_response, 1 << 20);
    assert_int_equal(cfg.oidc.allow_http_loopback, 1);
    assert_string_equal(cfg.redis.url, "redis://127.0.0.1:6379/2");
    assert_int_equal(cfg.log.level, RG_LOG_DEBUG);
    assert_int_equal(cfg.demo.enabled, 1);
}

static void test_unknown_section_and_option(void **st)
{
    (void)st;
    expect_error("[server]\nthreads = 2\nthreds = 3\n", "t.conf:3: server.threds: unknown option");
    expect_error("[server]\n[sever]\nthreads = 2\n", "t.conf:2: [sever]: unknown section");
    expect_error("[nothing]\n", "t.conf:1: [nothing]: unknown section");
    expect_error("threads = 2\n", "t.conf:1: threads: option outside a [section]");
}

static void test_bad_port_and_listen(void **st)
{
    (void)st;
    expect_error("[server]\npublic_listen = 0.0.0.0:99999\n", "t.conf:2: server.public_listen:");
    expect_error("[server]\nadmin_listen = 127.0.0.1:0\n", "t.conf:2: server.admin_listen:");
    expect_error("[server]\nadmin_listen = 127.0.0.1\n", "server.admin_listen:");
    expect_error("[server]\nadmin_listen = 127.0.0.1:80a\n", "server.admin_listen:");
    expect_error("[server]\nadmin_listen = ::1:80\n", "server.admin_listen:");
    char host[64];
    int port = 0;
    assert_int_equal(rg_config_split_listen("[::1]:8443", host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 8443);
    assert_int_equal(rg_config_split_listen(":8080", host, sizeof host, &port), 0);
    assert_string_equal(host, "");
    assert_int_equal(rg_config_split_listen("[zz]:1", host, sizeof host, &port), -1);
    assert_int_equal(rg_config_split_listen("a b:1", host, sizeof host, &port), -1);
}

static void test_bad_enum_bool_duration_size_int(void **st)
{
    (void)st;
    expect_error("[session]\noversize = sometimes\n",
                 "t.conf:2: session.oversize: must be reject or omit_permissions");
    expect_error("[saml]\nreplay_check_without_redis = maybe\n", "must be reject or local");
    expect_error("[log]\nlevel = loud\n", "log.level: must be debug, info, warn or error");
    expect_error("[saml]\nallow_sha1 = perhaps\n", "saml.allow_sha1: must be true or false");
    expect_error("[session]\nlifetime = 8x\n", "session.lifetime: must be a duration");
    expect_error("[session]\nlifetime = h\n", "session.lifetime: must be a duration");
    expect_error("[session]\nlifetime = -5\n", "session.lifetime: must be a duration");
    expect_error("[session]\nlifetime = 5s\n", "session.lifetime: must be between");
    /* issue 13: the refresh options must fit inside each other */
    expect_error("[session]\nrefresh_after = 5m\n",
                 "session.refresh_after (300s) must be shorter than session.token_lifetime");
    expect_error("[session]\ntoken_lifetime = 2h\n",
                 "session.token_lifetime (7200s) must not exceed session.idle_timeout");
    expect_error("[session]\nlifetime = 30m\n",
                 "session.idle_timeout (3600s) must not exceed session.lifetime");
    /* without refresh they do not apply: one snapshot token of lifetime */
    assert_int_equal(parse("[session]\nrefresh = false\nlifetime = 30m\n"), 0);
    assert_int_equal(parse("[session]\nlifetime = 10s\nidle_timeout = 5s\n"
                           "token_lifetime = 3s\nrefresh_after = 1s\n"), 0);
    expect_error("[server]\nmax_body = lots\n", "server.max_body: must be a byte count");
    expect_error("[server]\nthreads = two\n", "server.threads: must be an integer");
    expect_error("[server]\nthreads = 1000\n", "server.threads: must be between 0 and 256");
    expect_error("[session]\ncookie_budget = 9000\n", "session.cookie_budget: must be between");
    int64_t d = 0;
    assert_int_equal(rg_config_parse_duration("90", &d), 0);
    assert_int_equal(d, 90);
    assert_int_equal(rg_config_parse_duration("3m", &d), 0);
    assert_int_equal(d, 180);
    assert_int_equal(rg_config_parse_duration("1d", &d), 0);
    assert_int_equal(d, 86400);
    assert_int_equal(rg_config_parse_duration("1hh", &d), -1);
    assert_int_equal(rg_config_parse_duration("", &d), -1);
}

static void test_bad_urls_and_lists(void **st)
{
    (void)st;
    expect_error("[server]\nbase_url = ftp://example.com\n",
                 "server.base_url: must start with http:// or https://");
    expect_error("[server]\nbase_url = https://\n", "server.base_url: has no host");
    expect_error("[server]\nbase_url = http://example.com:70000\n", "server.base_url:");
    expect_error("[server]\nbase_url = http://ex ample.com\n", "server.base_url:");
    expect_error("[redis]\nurl = http://localhost:6379\n", "redis.url:");
    expect_error("[server]\ntrusted_proxies = 10.0.0.0/8, 10.0.0.300\n",
                 "server.trusted_proxies: '10.0.0.300' is not an IP address or CIDR");
    expect_error("[server]\ntrusted_proxies = 10.0.0.0/33\n", "prefix length over 32");
    expect_error("[server]\nreturn_to_origins = https://a.example.com/path\n",
                 "server.return_to_origins:");
    expect_error("[server]\nreturn_to_origins = javascript:alert(1)\n",
                 "server.return_to_origins:");
    expect_error("[session]\nlogout_redirect = //evil.example.com\n", "session.logout_redirect:");
    expect_error("[store]\ndatabase =\n", "store.database: must not be empty");
}

static void test_duplicates_syntax_and_all_errors_reported(void **st)
{
    (void)st;
    expect_error("[server]\nthreads = 2\nthreads = 3\n",
                 "t.conf:3: server.threads: set twice (first on line 2)");
    assert_int_equal(parse("[server]\nthis line has no equals sign\n"), RG_EINVAL);
    assert_true(diag_has("t.conf:2:"));
    /* several problems: every one is reported, each with its own line */
    assert_int_equal(parse("[server]\npublic_listen = x\nthreads = -1\n[log]\nlevel = x\n"
                           "bogus = 1\n"),
                     RG_EINVAL);
    assert_int_equal(diag.count, 4);
    assert_true(diag_has("t.conf:2: server.public_listen:"));
    assert_true(diag_has("t.conf:3: server.threads:"));
    assert_true(diag_has("t.conf:5: log.level:"));
    assert_true(diag_has("t.conf:6: log.bogus: unknown option"));
}

static void test_long_lines(void **st)
{
    (void)st;
    char text[1024];
    char longv[400];
    memset(longv, 'a', sizeof longv - 1);
    longv[sizeof longv - 1] = 0;
    snprintf(text, sizeof text, "[redis]\nprefix = %s\n", longv);
    assert_int_equal(parse(text), RG_EINVAL);
    assert_true(diag_has("t.conf:2: line longer than"));
    snprintf(text, sizeof text, "[redis]\n# %s\nprefix = x:\n", longv);
    assert_int_equal(parse(text), 0);   /* a long comment is fine */
    assert_string_equal(cfg.redis.prefix, "x:");
}

static void test_file_load_and_missing_file(void **st)
{
    (void)st;
    char path[] = "/tmp/rg-config-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "[server]\nthreads = 3\n\n[demo]\nenabled = nope\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(rg_config_load(&cfg, path, 0, &diag), RG_EINVAL);
    char want[128];
    snprintf(want, sizeof want, "%s:5: demo.enabled: must be true or false", path);
    assert_int_equal(diag.count, 1);
    assert_string_equal(diag.lines[0], want);
    unlink(path);
    assert_int_equal(rg_config_load(&cfg, path, 0, &diag), RG_EIO);
    assert_true(diag_has("cannot open"));
}

static const char *const envs[] = {"ROLEGATE_PUBLIC_LISTEN", "ROLEGATE_ADMIN_LISTEN",
                                   "ROLEGATE_ADMIN_KEY", "ROLEGATE_DATABASE",
                                   "ROLEGATE_REDIS_URL", "ROLEGATE_BASE_URL",
                                   "ROLEGATE_KEYS_DIR", "ROLEGATE_OIDC_ALLOW_HTTP_LOOPBACK"};

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof envs / sizeof *envs; i++)
        unsetenv(envs[i]);
}

static void test_env_overrides(void **st)
{
    (void)st;
    clear_env();
    setenv("ROLEGATE_PUBLIC_LISTEN", "127.0.0.1:7001", 1);
    setenv("ROLEGATE_ADMIN_LISTEN", "127.0.0.1:7002", 1);
    setenv("ROLEGATE_ADMIN_KEY", "k3y", 1);
    setenv("ROLEGATE_DATABASE", "/tmp/x.db", 1);
    setenv("ROLEGATE_REDIS_URL", "redis://r:6379", 1);
    setenv("ROLEGATE_BASE_URL", "https://sso.example.org", 1);
    setenv("ROLEGATE_KEYS_DIR", "/tmp/keys", 1);
    setenv("ROLEGATE_OIDC_ALLOW_HTTP_LOOPBACK", "true", 1);
    const char *file = "[server]\npublic_listen = 0.0.0.0:1\nadmin_key = fromfile\n"
                       "[store]\ndatabase = file.db\n";
    assert_int_equal(rg_config_parse_string(&cfg, "t.conf", file, RG_CONFIG_ENV, &diag), 0);
    assert_string_equal(cfg.server.public_listen, "127.0.0.1:7001");
    assert_string_equal(cfg.server.admin_listen, "127.0.0.1:7002");
    assert_string_equal(cfg.server.admin_key, "k3y");
    assert_string_equal(cfg.store.database, "/tmp/x.db");
    assert_string_equal(cfg.redis.url, "redis://r:6379");
    assert_string_equal(cfg.server.base_url, "https://sso.example.org");
    assert_string_equal(cfg.session.keys_dir, "/tmp/keys");
    assert_int_equal(cfg.oidc.allow_http_loopback, 1);
    /* without the flag the environment is not read */
    assert_int_equal(rg_config_parse_string(&cfg, "t.conf", file, 0, &diag), 0);
    assert_string_equal(cfg.server.public_listen, "0.0.0.0:1");
    assert_string_equal(cfg.server.admin_key, "fromfile");
    /* a bad environment value is an error naming the variable */
    setenv("ROLEGATE_ADMIN_LISTEN", "127.0.0.1:99999", 1);
    setenv("ROLEGATE_OIDC_ALLOW_HTTP_LOOPBACK", "sure", 1);
    assert_int_equal(rg_config_parse_string(&cfg, "t.conf", "", RG_CONFIG_ENV, &diag), RG_EINVAL);
    assert_int_equal(diag.count, 2);
    assert_true(diag_has("environment: ROLEGATE_ADMIN_LISTEN: server.admin_listen:"));
    assert_true(diag_has("environment: ROLEGATE_OIDC_ALLOW_HTTP_LOOPBACK: oidc.allow_http_loopback"));
    clear_env();
}

/* Issue 13: every option has ROLEGATE_<SECTION>_<OPTION>, checked like the
 * file; the older short names are aliases; a typo under a known section is
 * an error, as an unknown option in the file is. */
static void test_generic_env_override_for_every_option(void **st)
{
    (void)st;
    clear_env();
    rg_config_option o;
    size_t n = rg_config_option_count();
    assert_true(n > 30);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(rg_config_option_info(i, &o), 0);
        char want[160];
        snprintf(want, sizeof want, "ROLEGATE_%s_%s", o.section, o.name);
        for (char *p = want; *p; p++)
            *p = (char)toupper((unsigned char)*p);
        assert_string_equal(o.env, want);
    }
    assert_int_equal(rg_config_option_info(n, &o), -1);
    setenv("ROLEGATE_SERVER_THREADS", "7", 1);
    setenv("ROLEGATE_SESSION_LIFETIME", "3h", 1);
    setenv("ROLEGATE_SERVER_TRUSTED_PROXIES", "10.0.0.0/8", 1);
    setenv("ROLEGATE_STORE_DATABASE", "/tmp/generic.db", 1);
    const char *file = "[server]\nthreads = 2\ntrusted_proxies = 127.0.0.1\n";
    assert_int_equal(rg_config_parse_string(&cfg, "t.conf", file, RG_CONFIG_ENV, &diag), 0);
    assert_int_equal(cfg.server.threads, 7);
    assert_int_equal(cfg.session.lifetime, 3 * 3600);
    assert_string_equal(cfg.server.trusted_proxies, "10.0.0.0/8");   /* replaces */
    assert_string_equal(cfg.store.database, "/tmp/generic.db");
    /* checked like the file: range, type */
    setenv("ROLEGATE_SERVER_THREADS", "999", 1);
    setenv("ROLEGATE_SESSION_LIFETIME", "soon", 1);
    assert_int_equal(rg_config_parse_string(&cfg, "t.conf", "", RG_CONFIG_ENV, &diag), RG_EINVAL);
    assert_int_equal(diag.count, 2);
    assert_true(diag_has("environment: ROLEGATE_SERVER_THREADS: server.threads: must be between"));
    assert_true(diag_has("environment: ROLEGATE_SESSION_LIFETIME: session.lifetime: must be a duration"));
    unsetenv("ROLEGATE_SERVER_THREADS");
    unsetenv("ROLEGATE_SESSION_LIFETIME");
    unsetenv("ROLEGATE_SERVER_TRUSTED_PROXIES");
    /* generic and alias that disagree: an error, not a silent pick */
    setenv("ROLEGATE_DATABASE", "/tmp/alias.db", 1);
    assert_int_equal(rg_config_parse_string(&cfg, "t.conf", "", RG_CONFIG_ENV, &diag), RG_EINVAL);
    assert_true(diag_has("ROLEGATE_STORE_DATABASE: store.database: disagrees with ROLEGATE_DATABASE"));
    setenv("ROLEGATE_DATABASE", "/tmp/generic.db", 1);
    assert_int_equal(rg_config_parse_string(&cfg, "t.conf", "", RG_CONFIG_ENV, &diag), 0);
    unsetenv("ROLEGATE_STORE_DATABASE");
    unsetenv("ROLEGATE_DATABASE");
    /* a typo under a known section is an error; other ROLEGATE_* are not ours */
    setenv("ROLEGATE_SESSION_LIFETIM", "1h", 1);
    setenv("ROLEGATE_BUILD", "build", 1);
    assert_int_equal(rg_config_parse_string(&cfg, "t.conf", "", RG_CONFIG_ENV, &diag), RG_EINVAL);
    assert_int_equal(diag.count, 1);
    assert_true(diag_has("environment: ROLEGATE_SESSION_LIFETIM: unknown option"));
    unsetenv("ROLEGATE_SESSION_LIFETIM");
    assert_int_equal(rg_config_parse_string(&cfg, "t.conf", "", RG_CONFIG_ENV, &diag), 0);
    unsetenv("ROLEGATE_BUILD");
    clear_env();
}

static void test_shipped_config_is_valid_and_matches_defaults(void **st)
{
    (void)st;
    /* etc/rolegate.conf lists every option with its default value */
    rg_config shipped, defaults;
    if (access("etc/rolegate.conf", R_OK) != 0)
        fail_msg("run from the repository root: etc/rolegate.conf not found");
    assert_int_equal(rg_config_load(&shipped, "etc/rolegate.conf", 0, &diag), 0);
    rg_config_defaults(&defaults);
    assert_memory_equal(&shipped, &defaults, sizeof shipped);
}

/* issue 16 item 3: base, origin, login URL and secure are derived from
 * base_url once, at load, for every handler to read. */
static void test_base_url_derived_once(void **st)
{
    (void)st;
    assert_int_equal(parse(""), 0);
    assert_string_equal(cfg.server.base, "http://localhost:8080");
    assert_string_equal(cfg.server.origin, "http://localhost:8080");
    assert_string_equal(cfg.server.login_url, "http://localhost:8080/login");
    assert_int_equal(cfg.server.secure, 0);
    assert_int_equal(parse("[server]\nbase_url = https://SSO.Example.com:8443/base//\n"), 0);
    assert_string_equal(cfg.server.base, "https://SSO.Example.com:8443/base");
    assert_string_equal(cfg.server.origin, "https://sso.example.com:8443");
    assert_string_equal(cfg.server.login_url, "https://SSO.Example.com:8443/base/login");
    assert_int_equal(cfg.server.secure, 1);
    char o[16];
    assert_int_equal(rg_url_origin("https://a.example.com/x", o, sizeof o), -1);  /* too small */
    assert_int_equal(rg_url_origin("no-scheme", o, sizeof o), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values_parsed),
        cmocka_unit_test(test_unknown_section_and_option),
        cmocka_unit_test(test_bad_port_and_listen),
        cmocka_unit_test(test_bad_enum_bool_duration_size_int),
        cmocka_unit_test(test_bad_urls_and_lists),
        cmocka_unit_test(test_duplicates_syntax_and_all_errors_reported),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_file_load_and_missing_file),
        cmocka_unit_test(test_env_overrides),
        cmocka_unit_test(test_generic_env_override_for_every_option),
        cmocka_unit_test(test_shipped_config_is_valid_and_matches_defaults),
        cmocka_unit_test(test_base_url_derived_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
