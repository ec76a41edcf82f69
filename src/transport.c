/*
 * transport.c - get_request: take the next request off the server socket.
 * Streams accept a connection (accept4, close-on-exec); datagram servers
 * receive one datagram (recvfrom) into the request's buffer. The server
 * socket is non-blocking, so "nothing waiting" is an answer, not a wait.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"

/* Errors after which the listening socket is fine and the next accept may
 * succeed: the connection went away, or the network hiccupped. */
static bool accept_error_is_transient(int err)
{
    switch (err) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
    case ECONNABORTED:
    case EPROTO:
    case EPERM:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    case ETIMEDOUT:
        return true;
    default:
        return false;
    }
}

static int get_stream(ss_server *srv, ss_request *req)
{
    int fd;

    for (;;) {
        req->addrlen = sizeof req->addr;
        fd = accept4(srv->fd, (struct sockaddr *)&req->addr, &req->addrlen, SOCK_CLOEXEC);
        if (fd >= 0)
            break;
        if (errno == EINTR)
            continue;
        if (accept_error_is_transient(errno))
            return 0;
        return -1; /* EMFILE, ENFILE, ENOBUFS, ENOMEM, EBADF ... */
    }
    req->fd = fd;
    if (req->addrlen < sizeof(sa_family_t)) {
        /* An unbound Unix peer: Linux reports no address at all. */
        req->addr.ss_family = (sa_family_t)srv->family;
        req->addrlen = sizeof(sa_family_t);
    }
    if (srv->opt.disable_nagle_algorithm && srv->family != AF_UNIX) {
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (srv->opt.request_timeout >= 0)
        (void)ss__set_sock_timeout(fd, srv->opt.request_timeout);
    return 1;
}

static int get_dgram(ss_server *srv, ss_request *req)
{
    size_t cap = srv->opt.max_packet_size;

    if (req->in == NULL || req->in_cap < cap) {
        /* +1 so a zero max_packet_size still has a valid buffer. */
        char *p = realloc(req->in, cap + 1);
        if (p == NULL)
            return -1;
        req->in = p;
        req->in_cap = cap;
    }
    for (;;) {
        req->addrlen = sizeof req->addr;
        /* MSG_TRUNC makes Linux return the datagram's real length, so a
         * truncated datagram can be told from one that just fit. */
        ssize_t n = recvfrom(srv->fd, req->in, cap, MSG_TRUNC, (struct sockaddr *)&req->addr,
                             &req->addrlen);
        if (n >= 0) {
            if (req->addrlen < sizeof(sa_family_t)) {
                /* An unbound Unix client: nothing to answer to. */
                req->addr.ss_family = (sa_family_t)srv->family;
                req->addrlen = sizeof(sa_family_t);
            }
            req->truncated = (size_t)n > cap;
            req->in_len = req->truncated ? cap : (size_t)n;
            req->in_pos = 0;
            req->fd = srv->fd;
            return 1;
        }
        if (errno == EINTR)
            continue;
        /* ECONNREFUSED and friends report an earlier reply that bounced
         * (ICMP); they say nothing about this socket's health. */
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNREFUSED ||
            errno == EHOSTUNREACH || errno == ENETUNREACH)
            return 0;
        return -1;
    }
}

int ss__get_request(ss_server *srv, ss_request *req)
{
    return srv->socktype == SOCK_DGRAM ? get_dgram(srv, req) : get_stream(srv, req);
}
