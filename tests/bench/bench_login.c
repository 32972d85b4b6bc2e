/* bench_login.c: the SAML ACS load driver of tests/bench/bench_login.py
 * (which starts rolegate and reads its per-login timing lines). It mints N
 * unique IdP-initiated responses in process with the fixture IdP (lasso,
 * RSA-2048, SHA-256, Response and Assertion signed, 5 groups), then POSTs
 * them to the ACS from T client threads and prints logins/s and the status
 * counts. --fresh 1: each POST on a new connection with "Connection:
 * close" (a browser's first visit; issue 17's ACS row), else keep-alive.
 * --users K: the responses cycle over K users (0: every response a new
 * user, a first login each); --user-prefix names them, so rounds against
 * one store stay first logins. The same-run baseline: lasso alone
 * (lasso_login_process_authn_response_msg with the keys lasso loads from
 * the IdP metadata, nothing else) verifying the same responses on T
 * threads in this process. Run alone it only says so. */
#include <pthread.h>
#include "../../idp-fixtures/rg_fixture_mint.h"
#include "bench_client.h"
#include "bench_machine.h"
#include "rolegate/saml.h"
#include "rolegate/util.h"

#define CPU_OF_MAX 4

/* The names of --cpu-of ("rolegate,postgres") into names: how many. */
static int cpu_names(const char *list, char names[CPU_OF_MAX][32])
{
    int n = 0;
    while (list && *list && n < CPU_OF_MAX) {
        size_t len = strcspn(list, ",");
        snprintf(names[n++], 32, "%.*s", (int)(len < 31 ? len : 31), list);
        list += len + (list[len] == ',');
    }
    return n;
}

/* "server CPU per login: rolegate 668 us (user 560, sys 108), postgres ...":
 * the processes of each name, from their readings before the logins (pu0,
 * ps0) to now, over the ok logins. PostgreSQL's cost per login is additive
 * to rolegate's: this line says how much of the ratio to SQLite is the
 * database server's own CPU (issue 15). */
static void cpu_per_login(char names[CPU_OF_MAX][32], int n, const unsigned long long *pu0,
                          const unsigned long long *ps0, long ok)
{
    if (n == 0 || ok <= 0)
        return;
    unsigned long long u[CPU_OF_MAX], s[CPU_OF_MAX];
    for (int k = 0; k < n; k++)   /* every reading first: no half-printed line */
        if (bench_comm_ticks(names[k], &u[k], &s[k]))
            return;
    double us_per_tick = 1e6 / (double)sysconf(_SC_CLK_TCK);
    printf("server CPU per login:");
    for (int k = 0; k < n; k++) {
        if (u[k] < pu0[k] || s[k] < ps0[k]) {   /* one ended during the logins: its ticks are gone */
            printf("%s %s n/a (a process ended during the logins)", k ? "," : "", names[k]);
            continue;
        }
        double du = (double)(u[k] - pu0[k]) * us_per_tick / (double)ok;
        double ds = (double)(s[k] - ps0[k]) * us_per_tick / (double)ok;
        printf("%s %s %.0f us (user %.0f, sys %.0f)", k ? "," : "", names[k], du + ds, du, ds);
    }
    printf("\n");
}

typedef struct job {
    char **bodies;            /* "SAMLResponse=<urlencoded b64>" */
    size_t from, to;
    int port;
    const char *path;
    int fresh;                /* a new connection per POST */
    long ok, other;
} job;

typedef struct vjob {
    LassoServer *sp;
    char **b64;
    size_t from, to;
    long ok;
} vjob;

static void *verify_alone(void *arg)
{
    vjob *j = arg;
    for (size_t i = j->from; i < j->to; i++) {
        LassoLogin *l = lasso_login_new(j->sp);
        if (l && lasso_login_process_authn_response_msg(l, j->b64[i]) == 0)
            j->ok++;
        if (l)
            lasso_login_destroy(l);
    }
    return NULL;
}

/* Verifications per second of lasso alone over b64[0..n) on threads. */
static double lasso_alone(const char *sp_md, const char *idp_md, char **b64, long n,
                          int threads, long *ok)
{
    LassoServer *sp = lasso_server_new_from_buffers(sp_md, NULL, NULL, NULL);
    if (!sp || lasso_server_add_provider_from_buffer(sp, LASSO_PROVIDER_ROLE_IDP, idp_md,
                                                     NULL, NULL) != 0)
        return 0;
    vjob *jobs = calloc((size_t)threads, sizeof *jobs);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    int64_t t0 = rg_mono_us();
    for (int t = 0; t < threads; t++) {
        jobs[t] = (vjob){.sp = sp, .b64 = b64, .from = (size_t)(n * t / threads),
                         .to = (size_t)(n * (t + 1) / threads)};
        pthread_create(&th[t], NULL, verify_alone, &jobs[t]);
    }
    *ok = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        *ok += jobs[t].ok;
    }
    double rate = (double)n / ((double)(rg_mono_us() - t0) / 1e6);
    free(jobs);
    free(th);
    g_object_unref(sp);
    return rate;
}

static void *client(void *arg)
{
    job *j = arg;
    int fd = j->fresh ? -1 : bench_dial(j->port);
    for (size_t i = j->from; i < j->to; i++) {
        char head[512];
        size_t bl = strlen(j->bodies[i]);
        int hl = snprintf(head, sizeof head,
                          "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                          "application/x-www-form-urlencoded\r\nContent-Length: %zu\r\n%s\r\n",
                          j->path, bl, j->fresh ? "Connection: close\r\n" : "");
        int st = -1;
        for (int attempt = 0; attempt < 2 && st < 0; attempt++) {
            if (fd < 0)
                fd = bench_dial(j->port);
            if (fd >= 0 && write(fd, head, (size_t)hl) == hl &&
                write(fd, j->bodies[i], bl) == (ssize_t)bl)
                st = bench_read_response(fd);
            if (st < 0 && fd >= 0) {
                close(fd);
                fd = -1;
            }
        }
        if (st == 302)
            j->ok++;
        else
            j->other++;
        if (j->fresh && fd >= 0) {
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *sp = NULL, *idp = NULL, *key = NULL, *path = NULL;
    int port = 0, threads = 2;
    /* --port P or P1,P2,...: client thread t posts to the (t mod n)th
     * (bench_pg.py: several instances behind one replay cache) */
    const char *ports = NULL;
    int portv[8], nports = 0;
    long n = 1000, users = 200;
    int fresh = 0;
    const char *prefix = "user";
    const char *cpu_of = NULL;   /* "rolegate,postgres": their CPU per login */
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--sp-metadata")) sp = argv[i + 1];
        else if (!strcmp(argv[i], "--idp-metadata")) idp = argv[i + 1];
        else if (!strcmp(argv[i], "--key")) key = argv[i + 1];
        else if (!strcmp(argv[i], "--port")) ports = argv[i + 1];
        else if (!strcmp(argv[i], "--path")) path = argv[i + 1];
        else if (!strcmp(argv[i], "--n")) n = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--fresh")) fresh = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--users")) users = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--user-prefix")) prefix = argv[i + 1];
        else if (!strcmp(argv[i], "--cpu-of")) cpu_of = argv[i + 1];
    }
    for (const char *p = ports; p && *p && nports < 8;) {
        char *end;
        portv[nports++] = (int)strtol(p, &end, 10);
        p = *end == ',' ? end + 1 : "";
    }
    port = nports ? portv[0] : 0;
    if (!sp || !idp || !key || !path || port <= 0 || n < 1 || threads < 1 || threads > 64 ||
        users < 0 || strlen(prefix) > 32) {
        printf("bench_login: the ACS driver of tests/bench/bench_login.py (run that)\n");
        return 0;
    }
    if (rg_saml_global_init() != 0)
        return 1;
    mint_opts o;
    memset(&o, 0, sizeof o);
    o.idp_metadata = rg_file_read(idp, 1 << 20, NULL);
    o.idp_key_pem = rg_file_read(key, 1 << 20, NULL);
    o.sp_metadata = rg_file_read(sp, 1 << 20, NULL);
    static const char *const groups[] = {"engineering", "admins", "viewers", "sales",
                                         "everyone"};
    o.groups = groups;
    o.n_groups = 5;
    o.sign = MINT_SIGN_BOTH;
    o.not_on_or_after = rg_now() + 3600;
    char *err = NULL;
    LassoServer *srv = o.idp_metadata && o.idp_key_pem && o.sp_metadata
                           ? mint_idp_server(&o, &err) : NULL;
    if (!srv) {
        fprintf(stderr, "bench_login: %s\n", err ? err : "cannot read the inputs");
        return 1;
    }
    char **bodies = calloc((size_t)n, sizeof *bodies);
    char **b64s = calloc((size_t)n, sizeof *b64s);
    int64_t t0 = rg_mono_us();
    size_t total = 0;
    for (long i = 0; i < n; i++) {
        char user[64];
        snprintf(user, sizeof user, "%s%ld@bench.example", prefix, users ? i % users : i);
        o.user = user;
        char *xml = mint_with_server(srv, &o, &err);
        if (!xml) {
            fprintf(stderr, "bench_login: mint: %s\n", err ? err : "?");
            return 1;
        }
        char *b64 = mint_b64(xml, strlen(xml));
        bodies[i] = bench_form_body(b64);
        total += strlen(bodies[i]);
        b64s[i] = b64;
        free(xml);
    }
    g_object_unref(srv);
    int64_t t1 = rg_mono_us();
    printf("minted %ld responses (5 groups, RSA-2048 SHA-256, both signed, %zu B form "
           "average) in %.1f s\n", n, total / (size_t)n, (t1 - t0) / 1e6);
    long vok = 0;
    double base = lasso_alone(o.sp_metadata, o.idp_metadata, b64s, n, threads, &vok);
    printf("baseline, lasso alone (verify only, lasso's own metadata keys, %d threads): "
           "%.0f/s (%ld/%ld verified)\n", threads, base, vok, n);
    job *jobs = calloc((size_t)threads, sizeof *jobs);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    unsigned long long b0 = 0, a0 = 0, b1 = 0, a1 = 0;
    int ticks = bench_cpu_ticks(&b0, &a0);
    char names[CPU_OF_MAX][32];
    unsigned long long pu0[CPU_OF_MAX], ps0[CPU_OF_MAX];
    int ncpu = cpu_names(cpu_of, names);
    for (int k = 0; k < ncpu; k++)
        if (bench_comm_ticks(names[k], &pu0[k], &ps0[k]))
            ncpu = 0;
    int64_t s0 = rg_mono_us();
    for (int t = 0; t < threads; t++) {
        jobs[t] = (job){.bodies = bodies, .from = (size_t)(n * t / threads),
                        .to = (size_t)(n * (t + 1) / threads), .port = portv[t % nports],
                        .path = path, .fresh = fresh};
        pthread_create(&th[t], NULL, client, &jobs[t]);
    }
    long ok = 0, other = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        ok += jobs[t].ok;
        other += jobs[t].other;
    }
    int64_t s1 = rg_mono_us();
    if (ticks == 0 && bench_cpu_ticks(&b1, &a1) == 0 && a1 > a0)
        printf("machine CPU during the logins: %.0f%% busy (every process: the clients, the "
               "server, its database)\n", 100.0 * (double)(b1 - b0) / (double)(a1 - a0));
    cpu_per_login(names, ncpu, pu0, ps0, ok);
    double rate = ok / ((s1 - s0) / 1e6);
    printf("ACS logins (%s, %s): %ld ok (302), %ld other, %d concurrent clients, %.2f s: "
           "%.0f logins/s\n", fresh ? "fresh connections" : "keep-alive",
           users ? "returning users" : "each a new user", ok, other, threads,
           (s1 - s0) / 1e6, rate);
    if (base > 0)
        printf("ACS logins / lasso alone: %.2f\n", rate / base);
    for (long i = 0; i < n; i++) {
        free(bodies[i]);
        free(b64s[i]);
    }
    free(bodies);
    free(b64s);
    free(jobs);
    free(th);
    return other ? 2 : 0;
}
