/* test_cache_util.h: helpers of the cache tests: a real redis-server child
 * on a free loopback port (start, SIGKILL, SIGSTOP/SIGCONT, restart on the
 * same port), a direct hiredis connection to inspect keys, a temporary
 * SQLite store with one organization, a connection and mappings, and a
 * revocation sink that records what it receives. Static functions only. */
#ifndef TEST_CACHE_UTIL_H
#define TEST_CACHE_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include "rolegate/cache.h"
#include "rolegate/config.h"
#include "rolegate/store.h"
#include "rolegate/util.h"

typedef struct test_redis {
    pid_t pid;
    int port;
    char pass[64];        /* --requirepass, "" for none */
} test_redis;

/* A port that was free on 127.0.0.1 a moment ago, drawn below the kernel's
 * ephemeral range (20000 .. its low end - 1) when there is room: a port from
 * bind(0) is an ephemeral one, which any outgoing connection of a parallel
 * test can take as its source port before redis-server binds it. */
static inline int tr_free_port(void)
{
    int lo = 32768;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d", &lo) != 1)
            lo = 32768;
        fclose(f);
    }
    unsigned seed = (unsigned)getpid() ^ (unsigned)time(NULL) ^ (unsigned)clock();
    for (int i = 0; lo - 20000 >= 1000 && i < 50; i++) {
        int port = 20000 + (int)(rand_r(&seed) % (unsigned)(lo - 20000));
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((unsigned short)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (fd < 0)
            return -1;
        int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok)
            return port;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) ||
        getsockname(fd, (struct sockaddr *)&a, &len)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static inline void tr_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

/* A direct connection (authenticated if needed), or NULL. */
static inline redisContext *tr_connect(const test_redis *r)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    if (!c || c->err) {
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (r->pass[0]) {
        redisReply *rep = redisCommand(c, "AUTH %s", r->pass);
        int ok = rep && rep->type == REDIS_REPLY_STATUS;
        freeReplyObject(rep);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

/* Starts redis-server on r->port (a free one if 0) and waits until it
 * answers PING. Returns 0 or -1. */
static inline int tr_start(test_redis *r)
{
    if (!r->port)
        r->port = tr_free_port();
    char port[16];
    snprintf(port, sizeof port, "%d", r->port);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        const char *argv[16] = {"redis-server", "--port", port, "--save", "", "--appendonly",
                                "no", "--bind", "127.0.0.1", "--dir", "/tmp"};
        int n = 11;
        if (r->pass[0]) {
            argv[n++] = "--requirepass";
            argv[n++] = r->pass;
        }
        argv[n] = NULL;
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    r->pid = pid;
    for (int i = 0; i < 500; i++) {
        redisContext *c = tr_connect(r);
        if (c) {
            redisReply *rep = redisCommand(c, "PING");
            int ok = rep && rep->type == REDIS_REPLY_STATUS;
            freeReplyObject(rep);
            redisFree(c);
            if (ok)
                return 0;
        }
        tr_sleep_ms(10);
    }
    return -1;
}

static inline void tr_kill(test_redis *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGCONT);
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
        r->pid = 0;
    }
}

/* A command through a fresh direct connection; the reply (free it) or NULL. */
static inline redisReply *tr_cmd(const test_redis *r, int db, const char *fmt, const char *arg)
{
    redisContext *c = tr_connect(r);
    if (!c)
        return NULL;
    if (db) {
        redisReply *s = redisCommand(c, "SELECT %d", db);
        freeReplyObject(s);
    }
    redisReply *rep = arg ? redisCommand(c, fmt, arg) : redisCommand(c, fmt);
    redisFree(c);
    return rep;
}

static inline long long tr_int(const test_redis *r, int db, const char *fmt, const char *arg)
{
    redisReply *rep = tr_cmd(r, db, fmt, arg);
    long long v = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -999;
    freeReplyObject(rep);
    return v;
}

static inline void tr_config(rg_config *cfg, const test_redis *r, const char *userinfo, int db)
{
    rg_config_defaults(cfg);
    if (r)
        snprintf(cfg->redis.url, sizeof cfg->redis.url, "redis://%s%s127.0.0.1:%d/%d",
                 userinfo ? userinfo : "", userinfo ? "@" : "", r->port, db);
    else
        cfg->redis.url[0] = '\0';
    snprintf(cfg->redis.prefix, sizeof cfg->redis.prefix, "rgtest:");
    cfg->redis.connect_timeout_ms = 300;
    cfg->redis.command_timeout_ms = 300;
    cfg->redis.table_ttl = 60;
    cfg->saml.clock_skew = 60;
}

/* Polls cond (an expression) every 10 ms for up to ms; evaluates to 1 if it
 * became true. */
#define TR_WAIT(ms, cond) \
    ({ int _ok = 0; int64_t _end = rg_mono_us() + (int64_t)(ms) * 1000; \
       for (;;) { \
           if ((_ok = !!(cond)) || rg_mono_us() >= _end) \
               break; \
           tr_sleep_ms(10); \
       } \
       _ok; })

/* ---- a store with an organization ----------------------------------------- */
typedef struct test_store {
    char dir[64];
    char path[96];
    char org[64];
    char conn[64];
} test_store;

static inline const char *tr_json_id(json_t *o, char *out, size_t outsz)
{
    const char *id = json_string_value(json_object_get(o, "id"));
    snprintf(out, outsz, "%s", id ? id : "");
    json_decref(o);
    return out;
}

/* A fresh SQLite file with one organization "Acme" that has its own role
 * org-admin, a SAML connection and the mapping admins -> org-admin. */
static inline int ts_create(test_store *ts)
{
    snprintf(ts->dir, sizeof ts->dir, "/tmp/rgcacheXXXXXX");
    if (!mkdtemp(ts->dir))
        return -1;
    snprintf(ts->path, sizeof ts->path, "%s/rolegate.db", ts->dir);
    rg_error e;
    rg_store *s = rg_store_open(ts->path, &e);
    if (!s)
        return -1;
    json_t *o = NULL;
    int rc = rg_store_organization_create(s, "Acme", NULL, 0, &o, &e);
    if (!rc)
        tr_json_id(o, ts->org, sizeof ts->org);
    if (!rc)
        rc = rg_store_role_create(s, ts->org, "org-admin", "Admin", NULL, NULL, &e);
    if (!rc && !(rc = rg_store_connection_create(s, ts->org, "saml", "IdP", NULL, &o, &e)))
        tr_json_id(o, ts->conn, sizeof ts->conn);
    if (!rc) {
        json_t *m = json_pack("[{s:s,s:s}]", "idp_group", "admins", "role_slug", "org-admin");
        rc = rg_store_role_mappings_set(s, ts->conn, m, NULL, &e);
        json_decref(m);
    }
    if (rc)
        fprintf(stderr, "store setup: %s %s\n", e.code, e.message);
    rg_store_close(s);
    return rc;
}

/* Adds a mapping group -> org-admin (bumps the organization's version). */
static inline int ts_add_mapping(rg_store *s, const test_store *ts, const char *group)
{
    rg_error e;
    json_t *cur = NULL;
    if (rg_store_role_mappings_get(s, ts->conn, &cur, &e))
        return -1;
    json_t *arr = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(cur, "data"), i, v)
        json_array_append_new(arr, json_pack("{s:O,s:O}", "idp_group",
                                             json_object_get(v, "idp_group"), "role_slug",
                                             json_object_get(v, "role_slug")));
    json_array_append_new(arr, json_pack("{s:s,s:s}", "idp_group", group, "role_slug",
                                         "org-admin"));
    int rc = rg_store_role_mappings_set(s, ts->conn, arr, NULL, &e);
    json_decref(arr);
    json_decref(cur);
    return rc;
}

static inline void ts_remove(test_store *ts)
{
    char p[160];
    const char *sfx[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", ts->path, sfx[i]);
        unlink(p);
    }
    rmdir(ts->dir);
}

/* ---- two instances of one deployment --------------------------------------- */
/* The fields of a fixture with one redis-server and two instances: two
 * stores on one SQLite file, each with its rg_cache on that Redis. */
#define TR_PAIR_FIELDS \
    test_redis redis; \
    test_store ts; \
    rg_store *sa, *sb; \
    rg_cache *a, *b; \
    rg_config cfg;

static inline int tr_pair_open(test_redis *redis, test_store *ts, rg_store **sa, rg_store **sb,
                               rg_cache **a, rg_cache **b, rg_config *cfg)
{
    if (tr_start(redis) || ts_create(ts))
        return -1;
    rg_error e;
    *sa = rg_store_open(ts->path, &e);
    *sb = rg_store_open(ts->path, &e);
    if (!*sa || !*sb)
        return -1;
    tr_config(cfg, redis, NULL, 0);
    *a = rg_cache_new(cfg, *sa, &e);
    *b = rg_cache_new(cfg, *sb, &e);
    /* both subscribers connected before the tests start */
    if (!*a || !*b || !TR_WAIT(3000, rg_cache_redis_up(*a) && rg_cache_redis_up(*b)))
        return -1;
    return 0;
}

static inline void tr_pair_close(test_redis *redis, test_store *ts, rg_store *sa, rg_store *sb,
                                 rg_cache *a, rg_cache *b)
{
    rg_cache_free(a);
    rg_cache_free(b);
    rg_store_close(sa);
    rg_store_close(sb);
    tr_kill(redis);
    ts_remove(ts);
}

/* Opens / closes the TR_PAIR_FIELDS of fixture f. */
#define TR_PAIR_OPEN(f) tr_pair_open(&(f)->redis, &(f)->ts, &(f)->sa, &(f)->sb, &(f)->a, \
                                     &(f)->b, &(f)->cfg)
#define TR_PAIR_CLOSE(f) tr_pair_close(&(f)->redis, &(f)->ts, (f)->sa, (f)->sb, (f)->a, (f)->b)

/* Defines the cmocka setup(st) and teardown(st) of a fixture type that
 * holds TR_PAIR_FIELDS and nothing that needs opening. */
#define TR_PAIR_SETUP_TEARDOWN(type) \
    static int setup(void **st) \
    { \
        type *f = calloc(1, sizeof *f); \
        if (!f || TR_PAIR_OPEN(f)) \
            return -1; \
        *st = f; \
        return 0; \
    } \
    static int teardown(void **st) \
    { \
        type *f = *st; \
        if (f) \
            TR_PAIR_CLOSE(f); \
        free(f); \
        return 0; \
    }

/* Does the table map (connection, group) to org-admin? */
static inline int tr_maps(const rg_role_table *t, const char *conn, const char *group)
{
    const char *groups[1] = {group};
    rg_login_input in = {.connection_id = conn, .groups = groups, .n_groups = 1};
    rg_resolution res;
    memset(&res, 0, sizeof res);
    rg_error e;
    int hit = 0;
    if (rg_core_resolve_login(t, &in, &res, &e) == 0)
        hit = res.roles.n && !strcmp(res.roles.v[0], "org-admin") && res.matched_groups.n;
    rg_resolution_clear(&res);
    return hit;
}

/* ---- a revocation sink ---------------------------------------------------- */
typedef struct test_sink {
    pthread_mutex_t lock;
    char sid[16][64];
    int64_t exp[16];
    int n;
} test_sink;

static inline int test_sink_fn(void *ctx, const char *sid, int64_t exp)
{
    test_sink *s = ctx;
    pthread_mutex_lock(&s->lock);
    if (s->n < 16) {
        snprintf(s->sid[s->n], sizeof s->sid[0], "%s", sid);
        s->exp[s->n++] = exp;
    }
    pthread_mutex_unlock(&s->lock);
    return 0;
}

/* The exp recorded for sid, or -1. */
static inline int64_t test_sink_exp(test_sink *s, const char *sid)
{
    int64_t v = -1;
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->sid[i], sid))
            v = s->exp[i];
    pthread_mutex_unlock(&s->lock);
    return v;
}

/* R30: a user revocation sink recording "<org_id>|<sub>" -> before */
static inline int test_user_sink_fn(void *ctx, const char *sub, const char *org_id,
                                    int64_t before, int64_t until)
{
    char key[64];
    snprintf(key, sizeof key, "%s|%s", org_id, sub);
    return until > before ? test_sink_fn(ctx, key, before) : 0;
}

/* Blocks SIGPIPE as main.c does before any thread starts. */
static inline void tr_block_sigpipe(void)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
}

#endif
