/* log.c: one key=value line per event to stderr or a log file, written with a
 * single write(2) so lines from worker threads never interleave. The file is
 * reopened on SIGHUP (rg_log_reopen) for log rotation: the new file is
 * dup2()ed onto the descriptor the writers use, an atomic swap, so a line
 * takes no lock (issue 17: the lock was a futex wait per /auth request when
 * both pool threads logged at once). Request lines (rg_log_batched) are
 * copied into one buffer that a flusher thread writes at most FLUSH_MS
 * after its first line: one write(2) per batch instead of per request
 * (issue 17: the write was 9.5% of /auth's CPU). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "rolegate/util.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;   /* open / reopen */
static atomic_int log_fd = 2;    /* 2, or the file's descriptor, never closed once set */
static char log_path[512];
static _Atomic rg_log_level log_min = RG_LOG_INFO;

#define BATCH_CAP (64 * 1024)
#define FLUSH_MS  2
/* The batch: lines waiting for the flusher, appended under b_lock. The
 * flusher takes the whole batch (a swap of two buffers, under b_lock) and
 * writes it under w_lock only: a request thread adding its line never waits
 * for a write(2) (it did when the write was made under b_lock: perf showed
 * ~0.5 futex calls per /auth, issue 17). Whoever writes holds w_lock, taken
 * before b_lock, so batches reach the file in the order they were made. */
static pthread_mutex_t w_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t b_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t  b_cond = PTHREAD_COND_INITIALIZER;
static char   b_bufs[2][BATCH_CAP];
static char  *b_buf = b_bufs[0];   /* the one being filled */
static size_t b_len;
static pthread_once_t b_once = PTHREAD_ONCE_INIT;
static int    b_thread_ok;

static void write_all(const char *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(atomic_load(&log_fd), p + off, n - off);
        if (w <= 0 && errno != EINTR)
            break;
        off += w > 0 ? (size_t)w : 0;
    }
}

/* Writes what is batched. Under w_lock and b_lock: a line batched after a
 * reopen can only go to the new file. */
static void batch_write_locked(void)
{
    write_all(b_buf, b_len);
    b_len = 0;
}

void rg_log_flush(void)
{
    pthread_mutex_lock(&w_lock);   /* after the flusher's write in flight */
    pthread_mutex_lock(&b_lock);
    batch_write_locked();
    pthread_mutex_unlock(&b_lock);
    pthread_mutex_unlock(&w_lock);
}

static void *flusher(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&b_lock);
        while (!b_len)
            pthread_cond_wait(&b_cond, &b_lock);
        pthread_mutex_unlock(&b_lock);
        /* a batch has begun: let it gather for FLUSH_MS, then write it */
        struct timespec ts = {0, FLUSH_MS * 1000 * 1000};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&w_lock);
        pthread_mutex_lock(&b_lock);
        char *full = b_buf;
        size_t n = b_len;
        b_buf = full == b_bufs[0] ? b_bufs[1] : b_bufs[0];
        b_len = 0;
        pthread_mutex_unlock(&b_lock);
        write_all(full, n);   /* lines go on being added beside it */
        pthread_mutex_unlock(&w_lock);
    }
    return NULL;
}

static void batch_start(void)
{
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    b_thread_ok = pthread_create(&t, &a, flusher, NULL) == 0;
    pthread_attr_destroy(&a);
    if (b_thread_ok)
        atexit(rg_log_flush);   /* exit(3) or main's return: nothing batched is lost */
}

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
    pthread_mutex_lock(&w_lock);
    pthread_mutex_lock(&b_lock);   /* what was batched goes to the old file */
    batch_write_locked();
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
    pthread_mutex_unlock(&b_lock);
    pthread_mutex_unlock(&w_lock);
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

#define LINE_MAX_LEN 2048
/* "ts=<iso ms> level=<lvl> " into line; returns its length (no printf:
 * it is on every request line). */
static size_t format_prefix(char *line, rg_log_level lvl)
{
    /* the date part is formatted once a second per thread, not per line */
    static _Thread_local int64_t ts_sec = -1;
    static _Thread_local char ts[32];
    int64_t ms = rg_now_ms();
    if (ms / 1000 != ts_sec) {
        ts_sec = ms / 1000;
        if (!rg_iso8601_ms(ts_sec * 1000, ts, sizeof ts) || strlen(ts) < 19)
            memcpy(ts, "0000-00-00T00:00:00", 20);   /* a clock gmtime cannot show */
    }
    int frac = (int)(ms % 1000);
    size_t n = 0;
    for (const char *p = "ts="; *p; p++)
        line[n++] = *p;
    for (int i = 0; i < 19; i++)   /* "YYYY-MM-DDTHH:MM:SS" */
        line[n++] = ts[i];
    line[n++] = '.';
    line[n++] = (char)('0' + frac / 100);
    line[n++] = (char)('0' + frac / 10 % 10);
    line[n++] = (char)('0' + frac % 10);
    for (const char *p = "Z level="; *p; p++)
        line[n++] = *p;
    for (const char *p = level_name(lvl); *p; p++)
        line[n++] = *p;
    line[n++] = ' ';
    return n;
}

/* Formats one line into line (LINE_MAX_LEN bytes), newline included;
 * returns its length. */
__attribute__((format(printf, 3, 0)))
static size_t format_line(char *line, rg_log_level lvl, const char *fmt, va_list ap)
{
    size_t n = format_prefix(line, lvl);
    int m = vsnprintf(line + n, LINE_MAX_LEN - n - 1, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > LINE_MAX_LEN - 2)
        len = LINE_MAX_LEN - 2;
    line[len++] = '\n';
    return len;
}

/* Copies one formatted line into the batch (the flusher writes it). */
static void batch_add(const char *line, size_t len)
{
    pthread_mutex_lock(&b_lock);
    if (b_len + len > BATCH_CAP) {
        /* full (a burst within FLUSH_MS): written now, after what the
         * flusher may be writing (w_lock comes before b_lock) */
        pthread_mutex_unlock(&b_lock);
        pthread_mutex_lock(&w_lock);
        pthread_mutex_lock(&b_lock);
        if (b_len + len > BATCH_CAP)
            batch_write_locked();
        pthread_mutex_unlock(&w_lock);
    }
    memcpy(b_buf + b_len, line, len);
    if (b_len == 0)
        pthread_cond_signal(&b_cond);
    b_len += len;
    pthread_mutex_unlock(&b_lock);
}

/* One made line to the batch (batched, when the flusher runs) or the file. */
static void emit(const char *line, size_t len, int batched)
{
    if (batched) {
        pthread_once(&b_once, batch_start);
        if (b_thread_ok) {
            batch_add(line, len);
            return;
        }
    }
    ssize_t w = write(atomic_load(&log_fd), line, len);   /* no flusher: at once */
    (void)w;
}

__attribute__((format(printf, 3, 0)))
static void vlog(rg_log_level lvl, int batched, const char *fmt, va_list ap)
{
    char line[LINE_MAX_LEN];
    emit(line, format_line(line, lvl, fmt, ap), batched);
}

void rg_log(rg_log_level lvl, const char *fmt, ...)
{
    if (lvl < log_min)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(lvl, 0, fmt, ap);
    va_end(ap);
}

void rg_log_batched(rg_log_level lvl, const char *fmt, ...)
{
    if (lvl < log_min)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(lvl, 1, fmt, ap);
    va_end(ap);
}

int rg_log_enabled(rg_log_level lvl)
{
    return lvl >= log_min;
}

void rg_log_batched_msg(rg_log_level lvl, const char *msg, size_t len)
{
    if (lvl < log_min)
        return;
    char line[LINE_MAX_LEN];
    size_t n = format_prefix(line, lvl);
    if (len > LINE_MAX_LEN - 2 - n)
        len = LINE_MAX_LEN - 2 - n;
    memcpy(line + n, msg, len);
    n += len;
    line[n++] = '\n';
    emit(line, n, 1);
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
