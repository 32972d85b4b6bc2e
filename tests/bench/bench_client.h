/* bench_client.h: the HTTP/1.1 client pieces the ACS load drivers share
 * (tests/bench/bench_login.c, tests/bench/soak_login.c): the form body of a
 * base64 SAMLResponse, a loopback connection, reading one response.
 * Header-only (static functions), test code only. */
#ifndef RG_BENCH_CLIENT_H
#define RG_BENCH_CLIENT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* "SAMLResponse=<b64 with + / = percent-encoded>" (malloc), or NULL. */
static __attribute__((unused)) char *bench_form_body(const char *b64)
{
    size_t n = strlen(b64), o = 13;
    char *out = malloc(n * 3 + 16);
    if (!out)
        return NULL;
    memcpy(out, "SAMLResponse=", 13);
    for (size_t i = 0; i < n; i++) {
        char c = b64[i];
        if (c == '+' || c == '/' || c == '=')
            o += (size_t)sprintf(out + o, "%%%02X", (unsigned char)c);
        else
            out[o++] = c;
    }
    out[o] = 0;
    return out;
}

/* A TCP_NODELAY connection to 127.0.0.1:port, or -1. */
static __attribute__((unused)) int bench_dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads one response (headers, then Content-Length bytes); its status or -1. */
static __attribute__((unused)) int bench_read_response(int fd)
{
    static __thread char buf[65536];
    size_t got = 0;
    char *end = NULL;
    while (!end) {
        if (got >= sizeof buf - 1)
            return -1;
        ssize_t r = read(fd, buf + got, sizeof buf - 1 - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
        buf[got] = 0;
        end = strstr(buf, "\r\n\r\n");
    }
    int status = atoi(buf + 9);
    char *cl = strcasestr(buf, "\r\ncontent-length:");
    size_t body = cl ? (size_t)atol(cl + 17) : 0;
    size_t have = got - (size_t)(end + 4 - buf);
    while (have < body) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0)
            return -1;
        have += (size_t)r;
    }
    return status;
}

#endif
