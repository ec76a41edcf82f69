/*
 * bench-server - the servers the benchmark compares, all answering a line
 * or datagram with its bytes upper-cased:
 *
 *   bench-server plain-udp ADDRESS           recvfrom/sendto loop, no library
 *   bench-server plain-epoll ADDRESS         single-thread epoll line server
 *   bench-server sockserv-udp ADDRESS MODE   the library, datagrams
 *   bench-server sockserv-tcp ADDRESS MODE   the library, lines
 *
 * MODE is sync, threading, forking or pool. Each prints "listening on ADDR"
 * and runs until SIGTERM.
 */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sockserv.h"

static volatile sig_atomic_t stopping;

static void on_term(int s)
{
    (void)s;
    stopping = 1;
}

static void upper(char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] >= 'a' && p[i] <= 'z')
            p[i] = (char)(p[i] - 'a' + 'A');
}

static int listen_on(const char *address, int type)
{
    struct sockaddr_storage a;
    socklen_t len;
    char buf[128];
    if (ss_parse_address(address, type, &a, &len) < 0)
        return -1;
    int fd = socket(a.ss_family, type | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, len) < 0 ||
        (type == SOCK_STREAM && listen(fd, SOMAXCONN) < 0))
        return -1;
    len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    printf("listening on %s\n", ss_format_address((struct sockaddr *)&a, len, buf, sizeof buf));
    fflush(stdout);
    return fd;
}

static int plain_udp(const char *address)
{
    int fd = listen_on(address, SOCK_DGRAM);
    if (fd < 0)
        return 1;
    char buf[8192];
    while (!stopping) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&peer, &plen);
        if (n < 0)
            continue;
        upper(buf, (size_t)n);
        sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&peer, plen);
    }
    return 0;
}

static int plain_epoll(const char *address)
{
    int lfd = listen_on(address, SOCK_STREAM);
    if (lfd < 0)
        return 1;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd}, evs[64];
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    char buf[8192];
    while (!stopping) {
        int n = epoll_wait(ep, evs, 64, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                if (c >= 0) {
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            /* One short line per read is what the load generator sends. */
            ssize_t k = recv(fd, buf, sizeof buf, 0);
            if (k <= 0) {
                close(fd);
                continue;
            }
            upper(buf, (size_t)k);
            send(fd, buf, (size_t)k, MSG_NOSIGNAL);
        }
    }
    return 0;
}

static int handle(ss_request *req)
{
    char line[8192];
    ssize_t n;
    while ((n = ss_readline(req, line, sizeof line)) > 0) {
        upper(line, (size_t)n);
        if (ss_write(req, line, (size_t)n) < 0)
            return SS_ERROR;
        if (ss_request_is_datagram(req))
            break;
    }
    return n < 0 ? SS_ERROR : SS_OK;
}

static int with_library(const char *address, ss_socktype type, const char *mode)
{
    ss_options o;
    ss_options_init(&o);
    o.address = address;
    o.type = type;
    o.allow_reuse_address = type == SS_STREAM;
    if (strcmp(mode, "sync") == 0)
        o.mode = SS_MODE_SYNC;
    else if (strcmp(mode, "threading") == 0)
        o.mode = SS_MODE_THREADING;
    else if (strcmp(mode, "forking") == 0)
        o.mode = SS_MODE_FORKING;
    else if (strcmp(mode, "pool") == 0)
        o.mode = SS_MODE_POOL;
    else
        return 2;
    ss_handler h = {.handle = handle};
    ss_server *srv = ss_server_new(&o, &h);
    char buf[128];
    if (srv == NULL) {
        fprintf(stderr, "bench-server: %s: %s\n", address, strerror(errno));
        return 1;
    }
    printf("listening on %s\n", ss_server_address_str(srv, buf, sizeof buf));
    fflush(stdout);
    ss_shutdown_on_signal(srv, SIGTERM);
    ss_shutdown_on_signal(srv, SIGINT);
    int rc = ss_serve_forever(srv, 0.5);
    ss_server_free(srv);
    return rc < 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench-server KIND ADDRESS [MODE]\n");
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (strcmp(argv[1], "plain-udp") == 0)
        return plain_udp(argv[2]);
    if (strcmp(argv[1], "plain-epoll") == 0)
        return plain_epoll(argv[2]);
    const char *mode = argc > 3 ? argv[3] : "sync";
    if (strcmp(argv[1], "sockserv-udp") == 0)
        return with_library(argv[2], SS_DATAGRAM, mode);
    if (strcmp(argv[1], "sockserv-tcp") == 0)
        return with_library(argv[2], SS_STREAM, mode);
    fprintf(stderr, "bench-server: unknown kind %s\n", argv[1]);
    return 2;
}
