/*
 * sockserv-bench - a load generator for line and datagram servers.
 *
 *   sockserv-bench udp|tcp-lines|tcp-connect|tcp-hold ADDRESS
 *                  [-c CLIENTS] [-n REQUESTS] [-t SECONDS]
 *
 * udp:         CLIENTS sockets, each with one datagram in flight at a time
 * tcp-lines:   CLIENTS connections, each with one line in flight at a time
 * tcp-connect: CLIENTS at a time: connect, send a line, read the reply, close
 * tcp-hold:    open CLIENTS connections one after another, each sending a
 *              line as soon as it is open, and keep them all open until
 *              every one has its reply (or SECONDS, default 30, pass)
 *
 * Prints "requests=N seconds=S rate=R lost=L". A datagram that gets no reply
 * within a second is counted lost and sent again; for tcp-hold, lost is the
 * connections without a reply. Bounded: at most REQUESTS requests (default
 * 100000, or unbounded with -t), no new request after SECONDS, and 120
 * seconds in all. The descriptor limit is raised to its hard maximum.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sockserv.h"

#define MSG "hello, sockserv\n"
#define MAX_CLIENTS 20000
#define CONNECT_TIMEOUT 5
#define TIME_LIMIT 120.0

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int open_client(const struct sockaddr_storage *a, socklen_t len, int type)
{
    int fd = socket(a->ss_family, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    /* A connect the server never accepts fails after CONNECT_TIMEOUT. */
    struct timeval tv = {.tv_sec = CONNECT_TIMEOUT};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (const struct sockaddr *)a, len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static long parse_count(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v <= 0)
        return -1;
    return v;
}

/* tcp-hold: every connection open at once, each served. */
static int hold(const struct sockaddr_storage *addr, socklen_t alen, long clients, double limit)
{
    struct pollfd *pfd = calloc((size_t)clients, sizeof *pfd);
    int *fds = calloc((size_t)clients, sizeof *fds);
    if (pfd == NULL || fds == NULL) {
        free(pfd);
        free(fds);
        return 1;
    }
    size_t mlen = strlen(MSG);
    char buf[256];
    long opened = 0, done = 0;
    double t0 = now();
    for (long i = 0; i < clients; i++) {
        fds[i] = -1;
        pfd[i] = (struct pollfd){.fd = -1, .events = POLLIN};
        if (now() - t0 >= limit)
            continue;
        fds[i] = open_client(addr, alen, SOCK_STREAM);
        if (fds[i] < 0)
            continue;
        opened++;
        if (send(fds[i], MSG, mlen, MSG_NOSIGNAL) == (ssize_t)mlen)
            pfd[i].fd = fds[i];
    }
    /* poll skips negative descriptors: a connection with its reply stays
     * open but is no longer watched. */
    while (done < clients && now() - t0 < limit) {
        int r = poll(pfd, (nfds_t)clients, 100);
        if (r < 0 && errno != EINTR)
            break;
        for (long i = 0; i < clients && r > 0; i++) {
            if (pfd[i].fd < 0 || pfd[i].revents == 0)
                continue;
            if (recv(pfd[i].fd, buf, sizeof buf, 0) > 0)
                done++;
            pfd[i].fd = -1;
        }
    }
    double secs = now() - t0;
    printf("requests=%ld seconds=%.3f rate=%.0f lost=%ld opened=%ld\n", done, secs,
           (double)done / secs, clients - done, opened);
    fflush(stdout);
    for (long i = 0; i < clients; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(pfd);
    free(fds);
    return done == clients ? 0 : 1;
}

int main(int argc, char **argv)
{
    long clients = 8, requests = 100000;
    double limit = 0;
    if (argc < 3) {
        fprintf(stderr, "usage: sockserv-bench udp|tcp-lines|tcp-connect ADDRESS [-c N] [-n N]\n");
        return 2;
    }
    const char *kind = argv[1];
    for (int i = 3; i + 1 < argc; i += 2) {
        long v = parse_count(argv[i + 1]);
        if (v < 0) {
            fprintf(stderr, "sockserv-bench: bad number %s\n", argv[i + 1]);
            return 2;
        }
        if (strcmp(argv[i], "-c") == 0)
            clients = v;
        else if (strcmp(argv[i], "-n") == 0)
            requests = v;
        else if (strcmp(argv[i], "-t") == 0)
            limit = (double)v;
    }
    if (limit > 0 && requests == 100000)
        requests = 1000000000L;
    if (limit <= 0 || limit > TIME_LIMIT)
        limit = TIME_LIMIT;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (clients > MAX_CLIENTS)
        clients = MAX_CLIENTS;
    bool udp = strcmp(kind, "udp") == 0;
    bool connect_each = strcmp(kind, "tcp-connect") == 0;
    bool holding = strcmp(kind, "tcp-hold") == 0;
    if (!udp && !connect_each && !holding && strcmp(kind, "tcp-lines") != 0) {
        fprintf(stderr, "sockserv-bench: unknown kind %s\n", kind);
        return 2;
    }
    struct sockaddr_storage addr;
    socklen_t alen;
    if (ss_parse_address(argv[2], udp ? SOCK_DGRAM : SOCK_STREAM, &addr, &alen) < 0) {
        fprintf(stderr, "sockserv-bench: bad address %s: %s\n", argv[2], strerror(errno));
        return 2;
    }
    if (holding)
        return hold(&addr, alen, clients, limit == TIME_LIMIT ? 30.0 : limit);
    int type = udp ? SOCK_DGRAM : SOCK_STREAM;
    struct pollfd *pfd = calloc((size_t)clients, sizeof *pfd);
    double *sent_at = calloc((size_t)clients, sizeof *sent_at);
    if (pfd == NULL || sent_at == NULL) {
        free(pfd);
        free(sent_at);
        return 1;
    }
    long started = 0, done = 0, lost = 0;
    size_t mlen = strlen(MSG);
    char buf[4096];
    double t0 = now();

    for (long i = 0; i < clients && started < requests; i++) {
        pfd[i].fd = open_client(&addr, alen, type);
        pfd[i].events = POLLIN;
        if (pfd[i].fd < 0 || send(pfd[i].fd, MSG, mlen, MSG_NOSIGNAL) != (ssize_t)mlen) {
            fprintf(stderr, "sockserv-bench: %s: %s\n", argv[2], strerror(errno));
            return 1;
        }
        sent_at[i] = now();
        started++;
    }
    while (done < started && now() - t0 < TIME_LIMIT) {
        int r = poll(pfd, (nfds_t)clients, 100);
        if (r < 0 && errno != EINTR)
            break;
        double t = now();
        for (long i = 0; i < clients; i++) {
            if (pfd[i].fd < 0)
                continue;
            if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                if (udp && t - sent_at[i] > 1.0) {
                    lost++;
                    (void)send(pfd[i].fd, MSG, mlen, 0);
                    sent_at[i] = t;
                }
                continue;
            }
            ssize_t n = recv(pfd[i].fd, buf, sizeof buf, 0);
            if (n <= 0 && !udp) {
                fprintf(stderr, "sockserv-bench: connection ended early\n");
                return 1;
            }
            if (n < 0)
                continue;
            done++;
            if (connect_each) {
                close(pfd[i].fd);
                pfd[i].fd = -1;
                if (started < requests && t - t0 < limit) {
                    pfd[i].fd = open_client(&addr, alen, type);
                    if (pfd[i].fd < 0) {
                        fprintf(stderr, "sockserv-bench: connect: %s\n", strerror(errno));
                        return 1;
                    }
                }
            }
            if (started < requests && t - t0 < limit && pfd[i].fd >= 0) {
                if (send(pfd[i].fd, MSG, mlen, MSG_NOSIGNAL) != (ssize_t)mlen) {
                    fprintf(stderr, "sockserv-bench: send: %s\n", strerror(errno));
                    return 1;
                }
                sent_at[i] = now();
                started++;
            } else if (pfd[i].fd >= 0) {
                close(pfd[i].fd);
                pfd[i].fd = -1;
            }
        }
    }
    double secs = now() - t0;
    printf("requests=%ld seconds=%.3f rate=%.0f lost=%ld\n", done, secs, (double)done / secs, lost);
    free(pfd);
    free(sent_at);
    return done == started ? 0 : 1;
}
