/*
 * datagram.c - the datagram transport (UDP, Unix datagram): one datagram
 * is one request (recvfrom into the request's buffer), and its reply
 * (DatagramRequestHandler's wfile) goes back through the server's socket to
 * the client's address, either at once (ss_reply) or after finish from the
 * buffer ss_write filled, within the size a datagram can have. io.c's calls
 * reach it through ss__transport_datagram.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "internal.h"

/* No listen; the largest reply for the socket's family. A Unix datagram
 * may be as long as the server takes them. */
static int dgram_activate(ss_server *srv, int fd)
{
    (void)fd;
    if (srv->family == AF_INET6)
        srv->dgram_reply_max = SS__DGRAM_REPLY_MAX6;
    else if (srv->family == AF_UNIX)
        srv->dgram_reply_max = srv->opt.max_packet_size > SS__DGRAM_REPLY_MAX
                                   ? srv->opt.max_packet_size
                                   : SS__DGRAM_REPLY_MAX;
    else
        srv->dgram_reply_max = SS__DGRAM_REPLY_MAX;
    return 0;
}

/* get_request: receive one datagram into the request's buffer. The whole
 * input is there at once: it is at its end (eof) from the start. */
static int dgram_get_request(ss_server *srv, ss_request *req)
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
            req->eof = true;
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

static bool client_unbound(const ss_request *req)
{
    /* An unbound Unix datagram client has no address to answer to. */
    return req->addr.ss_family == AF_UNIX && req->addrlen <= sizeof(sa_family_t);
}

static ssize_t dgram_reply(ss_request *req, const void *buf, size_t n)
{
    if (client_unbound(req)) {
        errno = EDESTADDRREQ;
        return -1;
    }
    for (;;) {
        ssize_t k = sendto(req->fd, buf, n, MSG_NOSIGNAL, (const struct sockaddr *)&req->addr,
                           req->addrlen);
        if (k >= 0) {
            req->replied = true;
            return k;
        }
        if (errno != EINTR)
            return -1;
    }
}

/* ss_write: add to the reply, which must fit in one datagram. */
static ssize_t dgram_write(ss_request *req, const void *buf, size_t n)
{
    size_t max = req->srv->dgram_reply_max;

    /* out_len never exceeds the maximum: written so that no sum wraps. */
    if (n > max - req->out_len) {
        errno = EMSGSIZE;
        return -1;
    }
    if (req->out_len + n > req->out_cap) {
        size_t cap = req->out_cap ? req->out_cap : 512;
        while (cap < req->out_len + n)
            cap *= 2;
        if (cap > max)
            cap = max;
        char *p = realloc(req->out, cap);
        if (p == NULL)
            return -1;
        req->out = p;
        req->out_cap = cap;
    }
    memcpy(req->out + req->out_len, buf, n);
    req->out_len += n;
    return (ssize_t)n;
}

/* ss_flush: send the reply written so far now. */
static int dgram_flush(ss_request *req)
{
    if (dgram_reply(req, req->out, req->out_len) < 0)
        return -1;
    req->out_len = 0;
    return 0;
}

/* After finish: send the buffered reply, even an empty one (as Python's
 * DatagramRequestHandler.finish does), unless the handler replied already.
 * An unbound Unix client cannot be answered; that is not an error. */
static int dgram_finish_output(ss_request *req)
{
    if (req->replied || client_unbound(req))
        return 0;
    ssize_t r = dgram_reply(req, req->out, req->out_len);
    req->out_len = 0;
    return r < 0 ? -1 : 0;
}

/* What a reject hook wrote goes out; a dropped datagram gets no empty
 * reply. */
static void dgram_reject_output(ss_request *req)
{
    if (req->out_len > 0)
        (void)dgram_finish_output(req);
}

const ss__transport ss__transport_datagram = {
    .name = "datagram",
    .socktype = SOCK_DGRAM,
    .shared_socket = true,
    .activate = dgram_activate,
    .get_request = dgram_get_request,
    .fill = NULL, /* never called: the input is at its end from the start */
    .read_direct = NULL,
    .write = dgram_write,
    .flush = dgram_flush,
    .reply = dgram_reply,
    .finish_output = dgram_finish_output,
    .reject_output = dgram_reject_output,
};
