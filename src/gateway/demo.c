/* demo.c: the `make run` demo ([demo] enabled): on an empty store, a demo
 * organization with permissions, roles (admin, member, viewer), a SAML
 * connection on the fixture IdP of idp-fixtures/ with group mappings (R15),
 * and that IdP started as a child process (`rg-fixture-idp serve`, on
 * [demo] idp_port) so a browser can do a whole login. A restart finds its
 * demo again (issue 11 item 3). Never fatal: problems are logged. */
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

#define DEMO_DOMAIN       "demo.example"   /* how a restart finds its demo again */
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

static pid_t spawn_idp(const char *prog, const char *sp_md_file, const char *idp_md_file,
                       int idp_port)
{
    char port[16];
    snprintf(port, sizeof port, "%d", idp_port);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* child: die with the gateway; main blocked these signals for sigwait */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execl(prog, prog, "serve", "--port", port, "--sp-metadata", sp_md_file, "--idp-metadata",
          idp_md_file, "--key", DEMO_IDP_KEY, (char *)NULL);
    _exit(127);
}

/* The fixture IdP's metadata with its SSO URL on port (the file says
 * 8089). malloc'd. */
static char *metadata_on_port(const char *md, int port)
{
    static const char from[] = "http://127.0.0.1:8089/";
    char to[64];
    snprintf(to, sizeof to, "http://127.0.0.1:%d/", port);
    rg_buf b = {0};
    const char *p = md, *q;
    while ((q = strstr(p, from))) {
        rg_buf_printf(&b, "%.*s%s", (int)(q - p), p, to);
        p = q + sizeof from - 1;
    }
    rg_buf_puts(&b, p);
    return rg_buf_take(&b);
}

/* Issue 11 item 3: the demo of an earlier run (its organization lists the
 * domain demo.example): its SAML connection into conn_id, its IdP metadata
 * brought to today's port. 1 found, 0 none, -1 problem (logged). */
static int demo_find(rg_store *s, const char *md, char *org_id, char *conn_id)
{
    rg_error err;
    rg_error_clear(&err);
    if (rg_store_organization_by_domain(s, DEMO_DOMAIN, org_id, LG_ID_MAX, &err) != 0)
        return err.status == 404 ? 0 : demo_fail("find the demo organization", &err);
    json_t *list = NULL;
    rg_store_list_opts lo = {.limit = 10};
    if (rg_store_connection_list(s, org_id, &lo, &list, &err) != 0)
        return demo_fail("list demo connections", &err);
    int rc = 0;
    const json_t *data = json_object_get(list, "data");
    for (size_t i = 0; i < json_array_size(data) && !rc; i++) {
        const json_t *c = json_array_get(data, i);
        const char *type = json_string_value(json_object_get(c, "type"));
        const char *cur = json_string_value(json_object_get(c, "idp_metadata"));
        if (!type || strcmp(type, "saml") != 0)
            continue;
        snprintf(conn_id, LG_ID_MAX, "%s", json_string_value(json_object_get(c, "id")));
        rc = 1;
        if (!cur || strcmp(cur, md) != 0) {   /* another idp_port than last time */
            json_t *patch = json_pack("{s:s}", "idp_metadata", md);
            if (!patch || rg_store_connection_update(s, conn_id, NULL, patch, NULL, &err) != 0)
                rc = demo_fail("update the demo IdP metadata", &err);
            json_decref(patch);
        }
    }
    json_decref(list);
    if (rc == 0) {
        rg_error_set(&err, RG_ENOTFOUND, "demo_connection_missing", NULL,
                     "the demo organization has no SAML connection");
        return demo_fail("find the demo connection", &err);
    }
    return rc;
}

/* A fresh demo on an empty store: permissions, roles, the organization,
 * the SAML connection on md and its mappings. 0 or -1 (logged). */
static int demo_create(rg_store *s, const char *md, char *org_id, char *conn_id)
{
    rg_error err;
    rg_error_clear(&err);
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

    const char *domains[] = {DEMO_DOMAIN};
    json_t *org = NULL, *conn = NULL;
    if (rg_store_organization_create(s, "Demo Organization", domains, 1, &org, &err) != 0)
        return demo_fail("create organization", &err);
    snprintf(org_id, LG_ID_MAX, "%s", json_string_value(json_object_get(org, "id")));
    json_decref(org);
    json_t *cfg = json_pack("{s:s, s:[s], s:b}", "idp_metadata", md, "groups_attributes",
                            "groups", "allow_idp_initiated", 0);
    int rc = cfg ? rg_store_connection_create(s, org_id, "saml", "Demo fixture IdP", cfg,
                                              &conn, &err)
                 : RG_ENOMEM;
    json_decref(cfg);
    if (rc)
        return demo_fail("create connection", &err);
    snprintf(conn_id, LG_ID_MAX, "%s", json_string_value(json_object_get(conn, "id")));
    json_decref(conn);
    json_t *maps = json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "idp_group", "admins",
                             "role_slug", "admin", "idp_group", "engineering", "role_slug",
                             "member", "idp_group", "viewers", "role_slug", "viewer");
    rc = maps ? rg_store_role_mappings_set(s, conn_id, maps, NULL, &err) : RG_ENOMEM;
    json_decref(maps);
    return rc ? demo_fail("set role mappings", &err) : 0;
}

int rg_gateway_demo_setup(rg_gateway_login *lg)
{
    if (!lg || !lg->cfg->demo.enabled)
        return 1;
    rg_store *s = lg->ctx->store;
    rg_error err;
    rg_error_clear(&err);
    int port = lg->cfg->demo.idp_port;
    char *file_md = rg_file_read(DEMO_IDP_METADATA, RG_SAML_MAX_METADATA, NULL);
    if (!file_md) {
        /* not a source tree (an installed gateway): nothing to demo */
        rg_log(RG_LOG_INFO, "event=demo_skipped reason=\"%s not found (run from the "
               "repository root)\"", DEMO_IDP_METADATA);
        return 1;
    }
    char *md = metadata_on_port(file_md, port);
    free(file_md);
    if (!md)
        return demo_fail("read the IdP metadata", NULL);
    char org_id[LG_ID_MAX], conn_id[LG_ID_MAX];
    int found = demo_find(s, md, org_id, conn_id);
    if (found == 0) {
        json_t *orgs = NULL;
        rg_store_list_opts lo = {.limit = 1};
        int rc = rg_store_organization_list(s, &lo, &orgs, &err);
        size_t n = json_array_size(json_object_get(orgs, "data"));
        json_decref(orgs);
        if (rc != 0 || n > 0) {
            free(md);
            if (rc != 0)
                return demo_fail("list organizations", &err);
            rg_log(RG_LOG_INFO, "event=demo_skipped reason=\"the store holds organizations "
                   "but no demo organization\"");
            return 1;   /* never touch real data */
        }
        found = demo_create(s, md, org_id, conn_id) == 0 ? 1 : -1;
    }
    if (found < 0) {
        free(md);
        return -1;
    }

    /* the IdP needs our SP metadata: write it where the child can read it */
    lg_conn *c = NULL;
    if (lg_conn_acquire(lg, conn_id, &c, &err) != 0) {
        free(md);
        return demo_fail("build SAML connection", &err);
    }
    char sp_md[RG_CONFIG_STR + 32], idp_md[RG_CONFIG_STR + 32], dir[RG_CONFIG_STR];
    /* beside the SQLite file, or for a postgresql:// store beside the SP
     * key (the var/ directory either way) */
    const char *db_file = rg_store_target_file(lg->cfg->store.database);
    snprintf(dir, sizeof dir, "%s", db_file ? db_file : lg->cfg->saml.sp_key_file);
    snprintf(sp_md, sizeof sp_md, "%s/demo-sp-metadata.xml", dirname(dir));
    snprintf(idp_md, sizeof idp_md, "%s/demo-idp-metadata.xml", dir);
    const char *x = rg_saml_sp_metadata_xml(c->saml);
    int rc = rg_file_write(sp_md, x, strlen(x), 0644);
    if (rc == 0)
        rc = rg_file_write(idp_md, md, strlen(md), 0644);
    lg_conn_release(lg, c);
    free(md);
    if (rc != 0) {
        rg_error_set(&err, RG_EIO, "demo_write_failed", NULL, "cannot write %s", sp_md);
        return demo_fail("write SP metadata", &err);
    }
    char prog[RG_CONFIG_STR + 32];
    if (idp_program(prog, sizeof prog) != 0) {
        rg_error_set(&err, RG_EIO, "demo_idp_missing", NULL,
                     "%s is missing: build it with `make all`", prog);
        return demo_fail("find the fixture IdP", &err);
    }
    pid_t pid = spawn_idp(prog, sp_md, idp_md, port);
    if (pid < 0) {
        rg_error_set(&err, RG_EIO, "demo_idp_spawn", NULL, "fork: %s", strerror(errno));
        return demo_fail("start the fixture IdP", &err);
    }
    lg->demo_idp_pid = pid;
    rg_log(RG_LOG_INFO, "event=demo_ready organization_id=%s connection_id=%s idp_pid=%d",
           org_id, conn_id, (int)pid);
    printf("rolegate: demo organization %s, SAML connection %s, fixture IdP on "
           "http://127.0.0.1:%d (user demo@example.com, groups engineering,admins)\n",
           org_id, conn_id, port);
    printf("rolegate: demo login: %s/login?organization=%s&return_to=/whoami\n", lg->base,
           org_id);
    fflush(stdout);
    return 0;
}
