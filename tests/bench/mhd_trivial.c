/* mhd_trivial.c: bench-only (issue 17). The floor of libmicrohttpd as
 * rolegate runs it: the same daemon flags and options as src/http/server.c
 * (epoll internal thread + ITC, a thread pool of nproc (>= 2) threads,
 * its connection memory (40 KiB), 1024 connections, 30 s timeout, our own
 * listening socket, completion / unescape / URI-log callbacks) and a
 * handler that does nothing: the first call (headers) returns MHD_YES, the
 * last call queues an empty 200 with one X-Request-Id header, as rolegate
 * does. Not a test; bench_auth.sh compiles it (cc ... $(pkg-config --cflags
 * --libs libmicrohttpd)) and measures it in the same run as /auth.
 * Usage: mhd_trivial PORT [POOL_KIB] (127.0.0.1; the connection memory
 * limit in KiB, default 40 as rolegate's CONN_MEMORY_LIMIT; bench_auth.sh
 * passes the one server.c defines); runs until SIGTERM/SIGINT. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static int marker;   /* *con_cls on the first call */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size,
                                  void **con_cls)
{
    (void)cls; (void)url; (void)method; (void)version; (void)upload_data;
    if (!*con_cls) {
        *con_cls = &marker;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"",
                                                                MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "X-Request-Id", "req_0123456789abcdef0123456789");
    enum MHD_Result ok = MHD_queue_response(conn, 200, resp);
    MHD_destroy_response(resp);
    return ok;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls; (void)conn; (void)toe;
    *con_cls = NULL;
}

static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls; (void)c;
    return strlen(s);
}

static void *uri_seen(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)cls; (void)uri; (void)c;
    return NULL;
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    vfprintf(stderr, fmt, ap);
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: mhd_trivial PORT [POOL_KIB]\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 511) != 0) {
        perror("mhd_trivial: listen");
        return 1;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = n < 2 ? 2 : (int)n;   /* rg_config_threads */
    struct MHD_OptionItem ops[] = {
        {MHD_OPTION_THREAD_POOL_SIZE, threads, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (argc == 3 ? atoi(argv[2]) : 40) * 1024, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, 1024, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, 30, NULL},
        {MHD_OPTION_LISTEN_SOCKET, fd, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    struct MHD_Daemon *d =
        MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG, 0,
                         NULL, NULL, on_request, NULL,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                         MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL,
                         MHD_OPTION_URI_LOG_CALLBACK, uri_seen, NULL,
                         MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL,
                         MHD_OPTION_ARRAY, ops, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "mhd_trivial: the daemon did not start\n");
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    while (!stop)
        pause();
    MHD_stop_daemon(d);
    return 0;
}
