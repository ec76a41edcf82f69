/*
 * datagram.c - replies to datagram requests (DatagramRequestHandler's
 * wfile): sent through the server's socket to the client's address, either
 * at once (ss_reply) or after finish from the buffer ss_write filled.
 */
#include <errno.h>
#include <sys/socket.h>

#include "internal.h"

static bool client_unbound(const ss_request *req)
{
    /* An unbound Unix datagram client has no address to answer to. */
    return req->addr.ss_family == AF_UNIX && req->addrlen <= sizeof(sa_family_t);
}

ssize_t ss_reply(ss_request *req, const void *buf, size_t n)
{
    if (req == NULL || (buf == NULL && n > 0)) {
        errno = EINVAL;
        return -1;
    }
    if (!req->dgram)
        return ss_write(req, buf, n);
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

/* After finish: send the buffered reply, even an empty one (as Python's
 * DatagramRequestHandler.finish does), unless the handler replied already.
 * An unbound Unix client cannot be answered; that is not an error. */
int ss__dgram_finish_reply(ss_request *req)
{
    if (req->replied || client_unbound(req))
        return 0;
    ssize_t r = ss_reply(req, req->out, req->out_len);
    req->out_len = 0;
    return r < 0 ? -1 : 0;
}
