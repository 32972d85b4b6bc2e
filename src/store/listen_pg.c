/* listen_pg.c: the listening side of the store's change channel (issue 15):
 * a libpq connection of its own (never one of the pool: a LISTEN belongs to
 * its session) that LISTENs to the caller's channels and hands each NOTIFY
 * over as (channel, payload), in commit order. TCP keepalives and a round
 * trip the caller asks for (rg_store_listener_ping) notice a dead server;
 * the caller polls the socket, owns the reconnect and its backoff. The
 * sending side is notify.c. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store_impl.h"

struct rg_store_listener {
    PGconn *conn;
    int ping_out;   /* a SELECT 1 is under way */
};

/* The connection's last error, one line (libpq names host and port, never
 * the password). */
static void why_conn(PGconn *c, const char *what, char *why, size_t whysz)
{
    const char *m = c ? PQerrorMessage(c) : "out of memory";
    snprintf(why, whysz, "%s: %s", what, m && *m ? m : "connection lost");
    for (char *p = why; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    size_t n = strlen(why);
    while (n && why[n - 1] == ' ')
        why[--n] = '\0';
}

static int listen_one(PGconn *c, const char *channel, char *why, size_t whysz)
{
    char *id = PQescapeIdentifier(c, channel, strlen(channel));
    if (!id) {
        why_conn(c, "listen", why, whysz);
        return -1;
    }
    size_t n = strlen(id) + 8;
    char *sql = malloc(n);
    PGresult *r = NULL;
    if (sql) {
        snprintf(sql, n, "LISTEN %s", id);
        r = PQexec(c, sql);
    }
    PQfreemem(id);
    free(sql);
    int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        why_conn(c, "listen", why, whysz);
    PQclear(r);
    return ok ? 0 : -1;
}

rg_store_listener *rg_store_listen(rg_store *s, const char *const *channels, size_t n,
                                   char *why, size_t whysz)
{
    if (!rg_store_channel_supported(s) || !channels || !n) {
        snprintf(why, whysz, "the store has no change channel");
        return NULL;
    }
    /* ours first, the URL last: what the URL says wins (libpq keeps the
     * last value of a repeated keyword) */
    static const char *const kw[] = {"connect_timeout", "keepalives", "keepalives_idle",
                                     "keepalives_interval", "keepalives_count",
                                     "fallback_application_name", "dbname", NULL};
    const char *val[] = {"3", "1", "10", "3", "3", "rolegate-listener", s->path, NULL};
    PGconn *c = PQconnectdbParams(kw, val, 1);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        why_conn(c, "connect", why, whysz);
        PQfinish(c);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (listen_one(c, channels[i], why, whysz)) {
            PQfinish(c);
            return NULL;
        }
    rg_store_listener *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(why, whysz, "out of memory");
        PQfinish(c);
        return NULL;
    }
    l->conn = c;
    return l;
}

int rg_store_listener_fd(const rg_store_listener *l)
{
    return l ? PQsocket(l->conn) : -1;
}

int rg_store_listener_read(rg_store_listener *l, rg_store_message_fn fn, void *ctx,
                           char *why, size_t whysz)
{
    if (!PQconsumeInput(l->conn)) {
        why_conn(l->conn, "read", why, whysz);
        return -1;
    }
    int n = 0;
    /* the answer of a ping: its result, then NULL (the query's end) */
    while (l->ping_out && !PQisBusy(l->conn)) {
        PGresult *r = PQgetResult(l->conn);
        if (!r) {
            l->ping_out = 0;
            n++;
            break;
        }
        int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
        PQclear(r);
        if (!ok) {
            why_conn(l->conn, "ping", why, whysz);
            return -1;
        }
    }
    PGnotify *m;
    while ((m = PQnotifies(l->conn)) != NULL) {
        fn(ctx, m->relname, m->extra ? m->extra : "");
        PQfreemem(m);
        n++;
    }
    if (PQstatus(l->conn) == CONNECTION_BAD) {
        why_conn(l->conn, "read", why, whysz);
        return -1;
    }
    return n;
}

int rg_store_listener_ping(rg_store_listener *l, char *why, size_t whysz)
{
    if (l->ping_out)
        return 1;
    if (!PQsendQuery(l->conn, "SELECT 1")) {
        why_conn(l->conn, "ping", why, whysz);
        return -1;
    }
    l->ping_out = 1;
    return 0;
}

void rg_store_listener_close(rg_store_listener *l)
{
    if (!l)
        return;
    PQfinish(l->conn);
    free(l);
}
