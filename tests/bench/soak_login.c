/* soak_login.c: the ACS load driver of tests/bench/soak_login.py (issue 17,
 * endurance 1), which starts rolegate and compiles this file. T client
 * threads each mint a fresh IdP-initiated response with the fixture IdP
 * (lasso, RSA-2048, SHA-256, Response and Assertion signed, 5 groups, a new
 * user per login, NotOnOrAfter a short TTL ahead) just before POSTing it to
 * the ACS over a keep-alive connection, so memory here stays flat however
 * many logins run. Every EVERY completed logins it samples the server's
 * /proc/PID (VmRSS, descriptors, threads, CPU) and prints one line:
 *   sample <logins> <rss_kB> <fds> <threads> <cpu_s> <elapsed_s> <non302>
 * then a summary line with the status counts. Run alone it only says so. */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include "../../idp-fixtures/rg_fixture_mint.h"
#include "bench_client.h"
#include "bench_machine.h"
#include "rolegate/saml.h"
#include "rolegate/util.h"

typedef struct shared {
    const char *sp_md, *idp_md, *key, *path;
    int port, pid, ttl;
    long n, every, first;
    atomic_long next, done, non302, failed_mint;
    atomic_long status[6];     /* by hundred: 0 (no answer), 1xx..5xx */
    int64_t t0;
    pthread_mutex_t out;
} shared;

static long proc_field(int pid, const char *file, const char *key)
{
    char p[64], line[256];
    snprintf(p, sizeof p, "/proc/%d/%s", pid, file);
    FILE *f = fopen(p, "r");
    long v = -1;
    size_t kl = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl)) {
            v = atol(line + kl);
            break;
        }
    if (f)
        fclose(f);
    return v;
}

static long count_dir(int pid, const char *sub)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/%s", pid, sub);
    DIR *d = opendir(p);
    long n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static double cpu_seconds(int pid)
{
    char p[24];
    unsigned long long ut, st;
    snprintf(p, sizeof p, "%d", pid);
    if (bench_proc_ticks(p, NULL, 0, &ut, &st))
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void sample(shared *s, long done)
{
    long rss = proc_field(s->pid, "status", "VmRSS:");
    pthread_mutex_lock(&s->out);
    printf("sample %ld %ld %ld %ld %.2f %.2f %ld\n", done, rss, count_dir(s->pid, "fd"),
           count_dir(s->pid, "task"), cpu_seconds(s->pid),
           (double)(rg_mono_us() - s->t0) / 1e6, atomic_load(&s->non302));
    fflush(stdout);
    pthread_mutex_unlock(&s->out);
}

/* One login: mint response i, POST it on *fd (re-dialled once). */
static int login(shared *s, LassoServer *srv, mint_opts *o, long i, int *fd)
{
    char user[64], head[512], *err = NULL;
    snprintf(user, sizeof user, "soak%ld@bench.example", s->first + i);
    o->user = user;
    o->not_on_or_after = rg_now() + s->ttl;
    char *xml = mint_with_server(srv, o, &err);
    if (!xml) {
        atomic_fetch_add(&s->failed_mint, 1);
        return -1;
    }
    char *b64 = mint_b64(xml, strlen(xml));
    char *body = b64 ? bench_form_body(b64) : NULL;
    free(xml);
    free(b64);
    if (!body)
        return -1;
    size_t bl = strlen(body);
    int hl = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                      "application/x-www-form-urlencoded\r\nContent-Length: %zu\r\n\r\n",
                      s->path, bl);
    int st = -1;
    for (int attempt = 0; attempt < 2 && st < 0; attempt++) {
        if (*fd < 0)
            *fd = bench_dial(s->port);
        if (*fd >= 0 && write(*fd, head, (size_t)hl) == hl && write(*fd, body, bl) == (ssize_t)bl)
            st = bench_read_response(*fd);
        if (st < 0 && *fd >= 0) {
            close(*fd);
            *fd = -1;
        }
    }
    free(body);
    return st;
}

static void *client(void *arg)
{
    shared *s = arg;
    mint_opts o;
    memset(&o, 0, sizeof o);
    o.idp_metadata = s->idp_md;
    o.idp_key_pem = s->key;
    o.sp_metadata = s->sp_md;
    static const char *const groups[] = {"engineering", "admins", "viewers", "sales",
                                         "everyone"};
    o.groups = groups;
    o.n_groups = 5;
    o.sign = MINT_SIGN_BOTH;
    char *err = NULL;
    LassoServer *srv = mint_idp_server(&o, &err);
    if (!srv) {
        fprintf(stderr, "soak_login: %s\n", err ? err : "no IdP server");
        return NULL;
    }
    int fd = -1;
    for (long i; (i = atomic_fetch_add(&s->next, 1)) < s->n;) {
        int st = login(s, srv, &o, i, &fd);
        atomic_fetch_add(&s->status[st >= 100 && st < 600 ? st / 100 : 0], 1);
        if (st != 302)
            atomic_fetch_add(&s->non302, 1);
        long done = atomic_fetch_add(&s->done, 1) + 1;
        if (done % s->every == 0 || done == s->n)
            sample(s, done);
    }
    if (fd >= 0)
        close(fd);
    g_object_unref(srv);
    return NULL;
}

int main(int argc, char **argv)
{
    static shared s;
    const char *sp = NULL, *idp = NULL, *key = NULL;
    int threads = 2;
    s.n = 100000;
    s.every = 10000;
    s.ttl = 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--sp-metadata")) sp = argv[i + 1];
        else if (!strcmp(argv[i], "--idp-metadata")) idp = argv[i + 1];
        else if (!strcmp(argv[i], "--key")) key = argv[i + 1];
        else if (!strcmp(argv[i], "--port")) s.port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--path")) s.path = argv[i + 1];
        else if (!strcmp(argv[i], "--pid")) s.pid = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--n")) s.n = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--every")) s.every = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--ttl")) s.ttl = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--first")) s.first = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    }
    if (!sp || !idp || !key || !s.path || s.port <= 0 || s.pid <= 0 || s.n < 1 ||
        s.every < 1 || threads < 1 || threads > 64) {
        printf("soak_login: the ACS driver of tests/bench/soak_login.py (run that)\n");
        return 0;
    }
    if (rg_saml_global_init() != 0)
        return 1;
    s.sp_md = rg_file_read(sp, 1 << 20, NULL);
    s.idp_md = rg_file_read(idp, 1 << 20, NULL);
    s.key = rg_file_read(key, 1 << 20, NULL);
    if (!s.sp_md || !s.idp_md || !s.key) {
        fprintf(stderr, "soak_login: cannot read the inputs\n");
        return 1;
    }
    pthread_mutex_init(&s.out, NULL);
    s.t0 = rg_mono_us();
    sample(&s, 0);
    pthread_t th[64];
    for (int t = 0; t < threads; t++)
        pthread_create(&th[t], NULL, client, &s);
    for (int t = 0; t < threads; t++)
        pthread_join(th[t], NULL);
    printf("done %ld logins in %.1f s: 302 %ld, other %ld (no answer %ld, 4xx %ld, 5xx %ld), "
           "mint failures %ld\n", atomic_load(&s.done),
           (double)(rg_mono_us() - s.t0) / 1e6, atomic_load(&s.done) - atomic_load(&s.non302),
           atomic_load(&s.non302), atomic_load(&s.status[0]), atomic_load(&s.status[4]),
           atomic_load(&s.status[5]), atomic_load(&s.failed_mint));
    return atomic_load(&s.non302) ? 2 : 0;
}
