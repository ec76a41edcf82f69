/*
 * stream.c - the stream transport (TCP, Unix stream): the listening socket,
 * accept, and each connection's read and write buffers. io.c's calls reach
 * it through ss__transport_stream.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "internal.h"

static int stream_activate(ss_server *srv, int fd)
{
    return listen(fd, srv->opt.request_queue_size);
}

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

/* get_request: accept a connection (close-on-exec). The listening socket is
 * non-blocking, so "nothing waiting" is an answer, not a wait. */
static int stream_get_request(ss_server *srv, ss_request *req)
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
    /* PROXY protocol: the real client's address, before verify_request. */
    if (srv->proxy != NULL && ss__proxy_accept(srv, req) < 0) {
        ss__close_request(req);
        return 0;
    }
    return 1;
}

static int stream_flush(ss_request *req)
{
    if (req->out_len == 0)
        return 0;
    size_t n = req->out_len;
    req->out_len = 0; /* on error the bytes are gone either way */
    return ss__send_all(req->srv, req->fd, req->out, n) < 0 ? -1 : 0;
}

static int ensure_rbuf(ss_request *req)
{
    if (req->in != NULL)
        return 0;
    req->in = malloc(SS__RBUF_SIZE);
    if (req->in == NULL)
        return -1;
    req->in_cap = SS__RBUF_SIZE;
    return 0;
}

/* Receive more bytes into the read buffer (after moving what is left to the
 * front). Returns the number added, 0 at end of input, -1 on error. Output
 * waiting in the write buffer goes first: the peer may wait for it before
 * it says anything more. */
static ssize_t stream_fill(ss_request *req)
{
    if (req->out_len > 0 && stream_flush(req) < 0)
        return -1;
    if (ensure_rbuf(req) < 0)
        return -1;
    if (req->in_pos > 0) {
        memmove(req->in, req->in + req->in_pos, req->in_len - req->in_pos);
        req->in_len -= req->in_pos;
        req->in_pos = 0;
    }
    if (req->in_len == req->in_cap)
        return 0; /* full: the caller drains it first */
    ssize_t n = ss__recv(req->srv, req->fd, req->in + req->in_len, req->in_cap - req->in_len);
    if (n < 0)
        return -1;
    if (n == 0)
        req->eof = true;
    req->in_len += (size_t)n;
    return n;
}

/* A large read with the buffer empty goes straight to the caller's buffer. */
static ssize_t stream_read_direct(ss_request *req, void *buf, size_t n)
{
    if (req->out_len > 0 && stream_flush(req) < 0)
        return -1;
    ssize_t r = ss__recv(req->srv, req->fd, buf, n);
    if (r == 0)
        req->eof = true;
    return r;
}

static ssize_t stream_write(ss_request *req, const void *buf, size_t n)
{
    size_t wb = req->srv->opt.wbufsize;
    if (wb == 0)
        return ss__send_all(req->srv, req->fd, buf, n);
    /* out_len never exceeds wb: written so that no sum wraps. */
    if (n > wb - req->out_len && stream_flush(req) < 0)
        return -1;
    if (n >= wb)
        return ss__send_all(req->srv, req->fd, buf, n);
    if (req->out == NULL) {
        req->out = malloc(wb);
        if (req->out == NULL)
            return -1;
        req->out_cap = wb;
    }
    memcpy(req->out + req->out_len, buf, n);
    req->out_len += n;
    return (ssize_t)n;
}

/* A stream has no separate reply: ss_reply writes. */
static ssize_t stream_reply(ss_request *req, const void *buf, size_t n)
{
    return ss_write(req, buf, n);
}

/* Like Python's finish(): flush, but a peer that went away is not worth an
 * error report. */
static int stream_finish_output(ss_request *req)
{
    (void)stream_flush(req);
    return 0;
}

static void stream_reject_output(ss_request *req)
{
    (void)stream_flush(req);
}

const ss__transport ss__transport_stream = {
    .name = "stream",
    .socktype = SOCK_STREAM,
    .shared_socket = false,
    .activate = stream_activate,
    .get_request = stream_get_request,
    .fill = stream_fill,
    .read_direct = stream_read_direct,
    .write = stream_write,
    .flush = stream_flush,
    .reply = stream_reply,
    .finish_output = stream_finish_output,
    .reject_output = stream_reject_output,
};
