/* bench_saml.c: verified ACS checks per second (rg_saml_acs_verify) on 1 and
 * 2 threads sharing one connection, over pre-minted unique responses
 * (RSA-2048, SHA-256, Response and Assertion signed, 5 groups), with a
 * same-run baseline of lasso alone (lasso_login_process_authn_response_msg
 * on a fresh LassoLogin, no other check). Run from the repository root:
 *   build/bench/bench_saml [responses]          (default 600) */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "rolegate/saml.h"
#include "rolegate/util.h"
#include "../../idp-fixtures/rg_fixture_mint.h"
#include "bench_machine.h"

#define CONN_ID "conn_01HBENCHSAML00000000000000"

typedef struct work {
    rg_saml_connection *conn;
    LassoServer *raw;            /* baseline: lasso only */
    char **b64;
    int from, to, ok;
} work;

static void *run_verify(void *arg)
{
    work *w = arg;
    for (int i = w->from; i < w->to; i++) {
        rg_saml_identity id;
        rg_error err;
        if (rg_saml_acs_verify(w->conn, w->b64[i], strlen(w->b64[i]), NULL, 0, NULL, NULL,
                               &id, &err) == 0 && id.n_groups == 5)
            w->ok++;
        else
            fprintf(stderr, "rejected: %s %s\n", err.code, err.message);
        rg_saml_identity_clear(&id);
    }
    return NULL;
}

static void *run_raw(void *arg)
{
    work *w = arg;
    for (int i = w->from; i < w->to; i++) {
        LassoLogin *l = lasso_login_new(w->raw);
        if (lasso_login_process_authn_response_msg(l, w->b64[i]) == 0)
            w->ok++;
        lasso_login_destroy(l);
    }
    return NULL;
}

static double timed(void *(*fn)(void *), work *base, int n, int threads, int *ok)
{
    pthread_t th[2];
    work w[2];
    int64_t t0 = rg_mono_us();
    for (int t = 0; t < threads; t++) {
        w[t] = *base;
        w[t].from = n * t / threads;
        w[t].to = n * (t + 1) / threads;
        w[t].ok = 0;
        pthread_create(&th[t], NULL, fn, &w[t]);
    }
    *ok = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        *ok += w[t].ok;
    }
    return (double)n / ((double)(rg_mono_us() - t0) / 1e6);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 600;
    if (n < 10)
        n = 10;
    rg_log_open(NULL, RG_LOG_ERROR);
    if (rg_saml_global_init() != 0)
        return 1;
    char *idp_md = rg_file_read("idp-fixtures/idp-metadata.xml", 1 << 20, NULL);
    char *idp_key = rg_file_read("idp-fixtures/idp.key", 1 << 16, NULL);
    char *sp_key = rg_file_read("idp-fixtures/sp.key", 1 << 16, NULL);
    char *sp_crt = rg_file_read("idp-fixtures/sp.crt", 1 << 16, NULL);
    if (!idp_md || !idp_key || !sp_key || !sp_crt) {
        fprintf(stderr, "run from the repository root\n");
        return 1;
    }
    rg_saml_conn_config cfg;
    rg_saml_conn_config_init(&cfg);
    cfg.connection_id = CONN_ID;
    cfg.sp_entity_id = "https://sp.rolegate.test/saml/metadata/" CONN_ID;
    cfg.acs_url = "https://sp.rolegate.test/saml/acs/" CONN_ID;
    cfg.sp_key_pem = sp_key;
    cfg.sp_cert_pem = sp_crt;
    cfg.idp_metadata = idp_md;
    cfg.idp_metadata_len = strlen(idp_md);
    cfg.allow_idp_initiated = 1;
    rg_error err;
    rg_saml_connection *conn = rg_saml_connection_new(&cfg, &err);
    if (!conn) {
        fprintf(stderr, "connection: %s\n", err.message);
        return 1;
    }
    /* baseline server: same SP metadata, key and IdP, nothing of ours */
    LassoServer *raw = lasso_server_new_from_buffers(rg_saml_sp_metadata_xml(conn), sp_key,
                                                     NULL, NULL);
    lasso_server_add_provider_from_buffer(raw, LASSO_PROVIDER_ROLE_IDP, idp_md, NULL, NULL);

    mint_opts o;
    memset(&o, 0, sizeof o);
    o.idp_metadata = idp_md;
    o.idp_key_pem = idp_key;
    o.sp_metadata = rg_saml_sp_metadata_xml(conn);
    o.user = "bench@example.com";
    const char *groups[] = {"engineering", "admins", "finance", "ops", "R&D"};
    o.groups = groups;
    o.n_groups = 5;
    o.email = "bench@example.com";
    char *emsg = NULL;
    LassoServer *idp = mint_idp_server(&o, &emsg);
    char **b64 = calloc((size_t)n, sizeof *b64);
    size_t total = 0;
    int64_t t0 = rg_mono_us();
    for (int i = 0; i < n; i++) {
        char *xml = mint_with_server(idp, &o, &emsg);
        if (!xml) {
            fprintf(stderr, "mint: %s\n", emsg);
            return 1;
        }
        b64[i] = mint_b64(xml, strlen(xml));
        total += strlen(b64[i]);
        free(xml);
    }
    double mint_rate = n / ((double)(rg_mono_us() - t0) / 1e6);

    char cpu[256];
    bench_cpu_model(cpu, sizeof cpu);
    printf("machine: %s, %ld online CPUs\n", cpu, sysconf(_SC_NPROCESSORS_ONLN));
    printf("responses: %d unique, %zu bytes base64 on average, minted at %.0f/s\n", n,
           total / (size_t)n, mint_rate);

    work base = {.conn = conn, .raw = raw, .b64 = b64};
    int ok;
    timed(run_verify, &base, n < 50 ? n : 50, 1, &ok);   /* warm-up */
    double r;
    r = timed(run_raw, &base, n, 1, &ok);
    printf("baseline lasso_login_process_authn_response_msg, 1 thread: %.0f/s (%d ok)\n", r, ok);
    r = timed(run_raw, &base, n, 2, &ok);
    printf("baseline lasso_login_process_authn_response_msg, 2 threads: %.0f/s (%d ok)\n", r, ok);
    r = timed(run_verify, &base, n, 1, &ok);
    printf("rg_saml_acs_verify, 1 thread: %.0f/s (%d/%d accepted)\n", r, ok, n);
    r = timed(run_verify, &base, n, 2, &ok);
    printf("rg_saml_acs_verify, 2 threads sharing one connection: %.0f/s (%d/%d accepted)\n",
           r, ok, n);

    for (int i = 0; i < n; i++)
        free(b64[i]);
    free(b64);
    g_object_unref(idp);
    g_object_unref(raw);
    rg_saml_connection_free(conn);
    free(idp_md);
    free(idp_key);
    free(sp_key);
    free(sp_crt);
    rg_saml_global_shutdown();
    return 0;
}
