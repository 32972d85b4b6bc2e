/* demo.c: the `make run` demo ([demo] enabled): on an empty store, a demo
 * organization with permissions, roles (admin, member, viewer), a SAML
 * connection on the fixture IdP of idp-fixtures/ with group mappings (R15),
 * and that IdP started as a child process (`rg-fixture-idp serve`) so a
 * browser can do a whole login. Never fatal: problems are logged. */
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>
#include "login_internal.h"
#include "rolegate/store.h"
#include "rolegate/util.h"

#define DEMO_IDP_PORT     8089   /* the SSO URL of idp-fixtures/idp-metadata.xml */
#define DEMO_IDP_METADATA "idp-fixtures/idp-metadata.xml"
#define DEMO_IDP_KEY      "idp-fixtures/idp.key"

static int demo_fail(const char *step, const rg_error *err)
{
    rg_log(RG_LOG_ERROR, "event=demo_failed step=%s error=%s", step,
           err && err->code[0] ? err->code : "-");
    fprintf(stderr, "rolegate: demo: %s failed (%s); the server goes on without it\n", step,
            err && err->message[0] ? err->message : "see the log");
    return -1;
}

/* <dir of this executable>/fixtures/rg-fixture-idp */
static int idp_program(char *out, size_t outsz)
{
    char exe[RG_CONFIG_STR];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = 0;
    snprintf(out, outsz, "%s/fixtures/rg-fixture-idp", dirname(exe));
    return access(out, X_OK);
}

static pid_t spawn_idp(const char *prog, const char *sp_md_file)
{
    char port[16];
    snprintf(port, sizeof port, "%d", DEMO_IDP_PORT);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* child: die with the gateway; main blocked these signals for sigwait */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execl(prog, prog, "serve", "--port", port, "--sp-metadata", sp_md_file, "--idp-metadata",
          DEMO_IDP_METADATA, "--key", DEMO_IDP_KEY, (char *)NULL);
    _exit(127);
}

int rg_gateway_demo_setup(rg_gateway_login *lg)
{
    if (!lg || !lg->cfg->demo.enabled)
        return 1;
    rg_store *s = lg->ctx->store;
    rg_error err;
    rg_error_clear(&err);
    json_t *orgs = NULL;
    rg_store_list_opts lo = {.limit = 1};
    if (rg_store_organization_list(s, &lo, &orgs, &err) != 0)
        return demo_fail("list organizations", &err);
    size_t n = json_array_size(json_object_get(orgs, "data"));
    json_decref(orgs);
    if (n > 0)
        return 1;   /* only on an empty store: never touch real data */
    size_t mdlen = 0;
    char *md = rg_file_read(DEMO_IDP_METADATA, RG_SAML_MAX_METADATA, &mdlen);
    if (!md) {
        /* not a source tree (an installed gateway): nothing to demo */
        rg_log(RG_LOG_INFO, "event=demo_skipped reason=\"%s not found (run from the "
               "repository root)\"", DEMO_IDP_METADATA);
        return 1;
    }

    static const char *const perms[][2] = {
        {"reports:view", "View reports"}, {"reports:edit", "Edit reports"},
        {"users:manage", "Manage users"},
    };
    for (size_t i = 0; i < 3; i++)
        rg_store_permission_create(s, perms[i][0], perms[i][1], NULL, 0, NULL, &err);
    rg_store_role_create(s, NULL, "admin", "Admin", "Everything", NULL, &err);
    rg_store_role_create(s, NULL, "viewer", "Viewer", "Read only", NULL, &err);
    const char *p_admin[] = {"reports:view", "reports:edit", "users:manage"};
    const char *p_member[] = {"reports:view", "reports:edit"};
    const char *p_viewer[] = {"reports:view"};
    rg_store_role_permissions_set(s, NULL, "admin", p_admin, 3, NULL, &err);
    rg_store_role_permissions_set(s, NULL, "member", p_member, 2, NULL, &err);
    rg_store_role_permissions_set(s, NULL, "viewer", p_viewer, 1, NULL, &err);
    const char *prio[] = {"admin", "member", "viewer"};
    rg_store_priority_set(s, NULL, prio, 3, NULL, &err);   /* R8: admin wins */

    const char *domains[] = {"demo.example"};
    json_t *org = NULL, *conn = NULL;
    if (rg_store_organization_create(s, "Demo Organization", domains, 1, &org, &err) != 0) {
        free(md);
        return demo_fail("create organization", &err);
    }
    char org_id[LG_ID_MAX], conn_id[LG_ID_MAX];
    snprintf(org_id, sizeof org_id, "%s", json_string_value(json_object_get(org, "id")));
    json_decref(org);
    json_t *cfg = json_pack("{s:s, s:[s], s:b}", "idp_metadata", md, "groups_attributes",
                            "groups", "allow_idp_initiated", 0);
    free(md);
    int rc = cfg ? rg_store_connection_create(s, org_id, "saml", "Demo fixture IdP", cfg,
                                              &conn, &err)
                 : RG_ENOMEM;
    json_decref(cfg);
    if (rc)
        return demo_fail("create connection", &err);
    snprintf(conn_id, sizeof conn_id, "%s", json_string_value(json_object_get(conn, "id")));
    json_decref(conn);
    json_t *maps = json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "idp_group", "admins",
                             "role_slug", "admin", "idp_group", "engineering", "role_slug",
                             "member", "idp_group", "viewers", "role_slug", "viewer");
    rc = maps ? rg_store_role_mappings_set(s, conn_id, maps, NULL, &err) : RG_ENOMEM;
    json_decref(maps);
    if (rc)
        return demo_fail("set role mappings", &err);

    /* the IdP needs our SP metadata: write it where the child can read it */
    lg_conn *c = NULL;
    if (lg_conn_acquire(lg, conn_id, &c, &err) != 0)
        return demo_fail("build SAML connection", &err);
    char sp_md[RG_CONFIG_STR + 32], dir[RG_CONFIG_STR];
    snprintf(dir, sizeof dir, "%s", lg->cfg->store.database);
    snprintf(sp_md, sizeof sp_md, "%s/demo-sp-metadata.xml", dirname(dir));
    const char *x = rg_saml_sp_metadata_xml(c->saml);
    rc = rg_file_write(sp_md, x, strlen(x), 0644);
    lg_conn_release(lg, c);
    if (rc != 0) {
        rg_error_set(&err, RG_EIO, 500, "demo_write_failed", NULL, "cannot write %s", sp_md);
        return demo_fail("write SP metadata", &err);
    }
    char prog[RG_CONFIG_STR + 32];
    if (idp_program(prog, sizeof prog) != 0) {
        rg_error_set(&err, RG_EIO, 500, "demo_idp_missing", NULL,
                     "%s is missing: build it with `make all`", prog);
        return demo_fail("find the fixture IdP", &err);
    }
    pid_t pid = spawn_idp(prog, sp_md);
    if (pid < 0) {
        rg_error_set(&err, RG_EIO, 500, "demo_idp_spawn", NULL, "fork: %s", strerror(errno));
        return demo_fail("start the fixture IdP", &err);
    }
    lg->demo_idp_pid = pid;
    rg_log(RG_LOG_INFO, "event=demo_ready organization_id=%s connection_id=%s idp_pid=%d",
           org_id, conn_id, (int)pid);
    printf("rolegate: demo organization %s, SAML connection %s, fixture IdP on "
           "http://127.0.0.1:%d (user demo@example.com, groups engineering,admins)\n",
           org_id, conn_id, DEMO_IDP_PORT);
    printf("rolegate: demo login: %s/login?organization=%s&return_to=/whoami\n", lg->base,
           org_id);
    fflush(stdout);
    return 0;
}
