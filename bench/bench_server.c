/*
 * bench-server - the servers the benchmark compares, all answering a line
 * or datagram with its bytes upper-cased:
 *
 *   bench-server plain-udp ADDRESS           recvfrom/sendto loop, no library
 *   bench-server mmsg-udp ADDRESS [BATCH]    recvmmsg/sendmmsg loop (default 16)
 *   bench-server thread-udp ADDRESS          recvfrom loop, a thread per datagram
 *   bench-server pool-udp ADDRESS [N]        N threads each in recvfrom (default 8)
 *   bench-server plain-epoll ADDRESS         single-thread epoll line server
 *   bench-server iter-tcp ADDRESS            accept, serve, close: one at a time
 *   bench-server thread-tcp ADDRESS          blocking accept loop, a thread each
 *   bench-server pool-tcp ADDRESS [N]        N threads each blocking in accept
 *                                            (default 64)
 *   bench-server fork-tcp ADDRESS            accept loop, a process each
 *   bench-server sockserv-udp ADDRESS MODE [N]  the library, datagrams
 *   bench-server sockserv-tcp ADDRESS MODE [N]  the library, lines
 *
 * The plain-*, mmsg-*, iter-*, thread-*, pool-* and fork-* servers are the
 * hand-written C of each strategy, written the obvious way with no library:
 * the figure the library's mode of the same strategy is held to. MODE is
 * sync, threading, forking or pool; N is the pool's worker count (default
 * 64 for streams, 8 for datagrams). Each prints "listening on ADDR" and runs
 * until SIGTERM. The descriptor limit is raised to its hard maximum, so a
 * server can hold 10,000 connections.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
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

/* Upper-cases and echoes what arrives until the peer closes. The load sends
 * one short line and waits for its reply, so one read is one line. */
static void *serve_stream(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[8192];
    ssize_t k;
    while ((k = recv(fd, buf, sizeof buf, 0)) > 0) {
        upper(buf, (size_t)k);
        if (send(fd, buf, (size_t)k, MSG_NOSIGNAL) != k)
            break;
    }
    close(fd);
    return NULL;
}

static int iter_tcp(const char *address)
{
    int lfd = listen_on(address, SOCK_STREAM);
    if (lfd < 0)
        return 1;
    for (;;) {
        int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (c >= 0)
            serve_stream((void *)(intptr_t)c);
    }
}

static int thread_tcp(const char *address)
{
    int lfd = listen_on(address, SOCK_STREAM);
    if (lfd < 0)
        return 1;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (;;) {
        int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        pthread_t t;
        if (pthread_create(&t, &attr, serve_stream, (void *)(intptr_t)c) != 0)
            close(c);
    }
}

static void *accept_worker(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (c >= 0)
            serve_stream((void *)(intptr_t)c);
    }
    return NULL;
}

static int start_workers(unsigned n, void *(*fn)(void *), int fd)
{
    for (unsigned i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, fn, (void *)(intptr_t)fd) != 0)
            return 1;
    }
    /* The workers serve; this thread only waits for the stop signal. */
    for (;;)
        pause();
}

static int pool_tcp(const char *address, unsigned workers)
{
    int lfd = listen_on(address, SOCK_STREAM);
    return lfd < 0 ? 1 : start_workers(workers, accept_worker, lfd);
}

static void on_child(int s)
{
    (void)s;
}

static int fork_tcp(const char *address)
{
    int lfd = listen_on(address, SOCK_STREAM);
    if (lfd < 0)
        return 1;
    /* No SA_RESTART: a child's exit interrupts accept, and it is reaped. */
    struct sigaction sa = {.sa_handler = on_child};
    sigaction(SIGCHLD, &sa, NULL);
    for (;;) {
        int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        if (c < 0)
            continue;
        pid_t pid = fork();
        if (pid == 0) {
            close(lfd);
            serve_stream((void *)(intptr_t)c);
            _exit(0);
        }
        close(c);
    }
}

static void echo_datagram(int fd, char *buf, size_t cap)
{
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    ssize_t n = recvfrom(fd, buf, cap, 0, (struct sockaddr *)&peer, &plen);
    if (n < 0)
        return;
    upper(buf, (size_t)n);
    sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&peer, plen);
}

static void *recv_worker(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[8192];
    for (;;)
        echo_datagram(fd, buf, sizeof buf);
    return NULL;
}

static int pool_udp(const char *address, unsigned workers)
{
    int fd = listen_on(address, SOCK_DGRAM);
    return fd < 0 ? 1 : start_workers(workers, recv_worker, fd);
}

struct datagram {
    int fd;
    socklen_t plen;
    struct sockaddr_storage peer;
    size_t n;
    char buf[2048];
};

static void *serve_datagram(void *arg)
{
    struct datagram *d = arg;
    upper(d->buf, d->n);
    sendto(d->fd, d->buf, d->n, 0, (struct sockaddr *)&d->peer, d->plen);
    free(d);
    return NULL;
}

static int thread_udp(const char *address)
{
    int fd = listen_on(address, SOCK_DGRAM);
    if (fd < 0)
        return 1;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (;;) {
        struct datagram *d = malloc(sizeof *d);
        if (d == NULL)
            return 1;
        d->fd = fd;
        d->plen = sizeof d->peer;
        ssize_t n = recvfrom(fd, d->buf, sizeof d->buf, 0, (struct sockaddr *)&d->peer, &d->plen);
        pthread_t t;
        if (n < 0) {
            free(d);
            continue;
        }
        d->n = (size_t)n;
        if (pthread_create(&t, &attr, serve_datagram, d) != 0)
            free(d);
    }
}

#define MMSG_MAX 1024

static int mmsg_udp(const char *address, unsigned batch)
{
    int fd = listen_on(address, SOCK_DGRAM);
    if (fd < 0)
        return 1;
    if (batch == 0 || batch > MMSG_MAX)
        batch = 16;
    static char bufs[MMSG_MAX][2048];
    static struct sockaddr_storage peers[MMSG_MAX];
    static struct iovec iov[MMSG_MAX];
    static struct mmsghdr msgs[MMSG_MAX];
    for (;;) {
        for (unsigned i = 0; i < batch; i++) {
            iov[i] = (struct iovec){.iov_base = bufs[i], .iov_len = sizeof bufs[i]};
            msgs[i].msg_hdr = (struct msghdr){.msg_name = &peers[i],
                                              .msg_namelen = sizeof peers[i],
                                              .msg_iov = &iov[i],
                                              .msg_iovlen = 1};
        }
        int n = recvmmsg(fd, msgs, batch, MSG_WAITFORONE, NULL);
        if (n <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            upper(bufs[i], msgs[i].msg_len);
            iov[i].iov_len = msgs[i].msg_len;
        }
        for (int sent = 0; sent < n;) {
            int k = sendmmsg(fd, msgs + sent, (unsigned)(n - sent), 0);
            if (k <= 0)
                break;
            sent += k;
        }
    }
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

static int with_library(const char *address, ss_socktype type, const char *mode, unsigned workers)
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
    if (workers > 0)
        o.pool_workers = workers;
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

static unsigned count_arg(int argc, char **argv, int i, unsigned dflt)
{
    if (argc <= i)
        return dflt;
    char *end;
    unsigned long v = strtoul(argv[i], &end, 10);
    return *end == '\0' && v > 0 && v <= 100000 ? (unsigned)v : dflt;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench-server KIND ADDRESS [MODE] [N]\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct sigaction sa = {.sa_handler = on_term};
    const char *kind = argv[1], *addr = argv[2];
    if (strcmp(kind, "plain-udp") == 0 || strcmp(kind, "plain-epoll") == 0) {
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
    }
    if (strcmp(kind, "plain-udp") == 0)
        return plain_udp(addr);
    if (strcmp(kind, "plain-epoll") == 0)
        return plain_epoll(addr);
    if (strcmp(kind, "mmsg-udp") == 0)
        return mmsg_udp(addr, count_arg(argc, argv, 3, 16));
    if (strcmp(kind, "thread-udp") == 0)
        return thread_udp(addr);
    if (strcmp(kind, "pool-udp") == 0)
        return pool_udp(addr, count_arg(argc, argv, 3, 8));
    if (strcmp(kind, "iter-tcp") == 0)
        return iter_tcp(addr);
    if (strcmp(kind, "thread-tcp") == 0)
        return thread_tcp(addr);
    if (strcmp(kind, "pool-tcp") == 0)
        return pool_tcp(addr, count_arg(argc, argv, 3, 64));
    if (strcmp(kind, "fork-tcp") == 0)
        return fork_tcp(addr);
    const char *mode = argc > 3 ? argv[3] : "sync";
    if (strcmp(kind, "sockserv-udp") == 0)
        return with_library(addr, SS_DATAGRAM, mode, count_arg(argc, argv, 4, 8));
    if (strcmp(kind, "sockserv-tcp") == 0)
        return with_library(addr, SS_STREAM, mode, count_arg(argc, argv, 4, 64));
    fprintf(stderr, "bench-server: unknown kind %s\n", kind);
    return 2;
}
