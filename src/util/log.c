/* log.c: one key=value line per event to stderr or a log file, written with a
 * single write(2) so lines from worker threads never interleave. The file is
 * reopened on SIGHUP (rg_log_reopen) for log rotation: the new file is
 * dup2()ed onto the descriptor the writers use, an atomic swap, so a line
 * takes no lock (issue 17: the lock was a futex wait per /auth request when
 * both pool threads logged at once). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "rolegate/util.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;   /* open / reopen */
static atomic_int log_fd = 2;    /* 2, or the file's descriptor, never closed once set */
static char log_path[512];
static _Atomic rg_log_level log_min = RG_LOG_INFO;

int rg_log_open(const char *path, rg_log_level min)
{
    pthread_mutex_lock(&log_lock);
    log_min = min;
    log_path[0] = 0;
    if (path && *path && strcmp(path, "-") != 0 && strcmp(path, "stderr") != 0)
        snprintf(log_path, sizeof log_path, "%s", path);
    pthread_mutex_unlock(&log_lock);
    return rg_log_reopen();
}

int rg_log_reopen(void)
{
    int rc = 0;
    pthread_mutex_lock(&log_lock);
    if (log_path[0]) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        int cur = atomic_load(&log_fd);
        if (fd < 0) {
            rc = -1;
        } else if (cur > 2) {
            /* atomic: a concurrent write goes to the old file or the new */
            if (dup2(fd, cur) < 0)
                rc = -1;
            close(fd);
        } else {
            atomic_store(&log_fd, fd);
        }
    }
    pthread_mutex_unlock(&log_lock);
    return rc;
}

static const char *level_name(rg_log_level l)
{
    switch (l) {
    case RG_LOG_DEBUG: return "debug";
    case RG_LOG_INFO:  return "info";
    case RG_LOG_WARN:  return "warn";
    default:           return "error";
    }
}

void rg_log(rg_log_level lvl, const char *fmt, ...)
{
    if (lvl < log_min)
        return;
    /* the date part is formatted once a second per thread, not per line */
    static _Thread_local int64_t ts_sec = -1;
    static _Thread_local char ts[32];
    char line[2048];
    int64_t ms = rg_now_ms();
    if (ms / 1000 != ts_sec) {
        ts_sec = ms / 1000;
        rg_iso8601_ms(ts_sec * 1000, ts, sizeof ts);   /* "...:SS.000Z" */
    }
    int n = snprintf(line, sizeof line, "ts=%.19s.%03dZ level=%s ", ts, (int)(ms % 1000),
                     level_name(lvl));
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(atomic_load(&log_fd), line, len);
    (void)w;
}

char *rg_log_quote(char *out, size_t outsz, const char *s)
{
    size_t o = 0;
    int quote = 0;
    if (!s)
        s = "";
    for (const char *p = s; *p; p++)
        if (*p == ' ' || *p == '=' || *p == '"')
            quote = 1;
    if (outsz == 0)
        return out;
    if (quote && o + 1 < outsz)
        out[o++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p && o + 4 < outsz; p++) {
        if (*p == '"' || *p == '\\') {
            out[o++] = '\\';
            out[o++] = (char)*p;
        } else if (*p < 0x20 || *p == 0x7f) {
            o += (size_t)snprintf(out + o, outsz - o, "\\x%02x", *p);
        } else {
            out[o++] = (char)*p;
        }
    }
    if (quote && o + 1 < outsz)
        out[o++] = '"';
    out[o] = 0;
    return out;
}
