/*
 * datagram.c - the datagram transport (UDP, Unix datagram): one datagram
 * is one request (recvfrom into the request's buffer), and its reply
 * (DatagramRequestHandler's wfile) goes back through the server's socket to
 * the client's address, either at once (ss_reply) or after finish from the
 * buffer ss_write filled, within the size a datagram can have. io.c's calls
 * reach it through ss__transport_datagram.
 *
 * With opt.batch > 1 datagrams come in batches: one recvmmsg fills up to
 * batch buffers, get_request hands them out one by one (the buffers are
 * swapped with the request's, nothing is copied), and in sync mode (and in
 * the datagram pool's workers) the replies wait in the batch, their buffers
 * swapped out of the requests, until one sendmmsg sends them all after the
 * batch's last handler.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
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

/* ---- batches (recvmmsg, sendmmsg) --------------------------------------- */

struct ss__dgram_batch {
    unsigned cap;         /* datagrams per batch */
    unsigned count, next; /* received; handed out */
    bool drained;         /* the last receive took less than a batch */
    int fd;               /* the socket it came from, which replies go to
                             (a pool worker may outlive srv->fd) */
    struct mmsghdr *in;
    struct iovec *in_iov;
    struct sockaddr_storage *in_addr;
    char **in_buf;
    size_t *in_cap; /* usable bytes of in_buf[i] (+1 allocated) */
    unsigned nout;  /* replies waiting */
    struct mmsghdr *out;
    struct iovec *out_iov;
    struct sockaddr_storage *out_addr;
    char **out_buf;
    size_t *out_cap;
};

ss__dgram_batch *ss__dgram_batch_new(unsigned n)
{
    ss__dgram_batch *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->cap = n;
    b->fd = -1;
    b->in = calloc(n, sizeof *b->in);
    b->in_iov = calloc(n, sizeof *b->in_iov);
    b->in_addr = calloc(n, sizeof *b->in_addr);
    b->in_buf = calloc(n, sizeof *b->in_buf);
    b->in_cap = calloc(n, sizeof *b->in_cap);
    b->out = calloc(n, sizeof *b->out);
    b->out_iov = calloc(n, sizeof *b->out_iov);
    b->out_addr = calloc(n, sizeof *b->out_addr);
    b->out_buf = calloc(n, sizeof *b->out_buf);
    b->out_cap = calloc(n, sizeof *b->out_cap);
    if (!b->in || !b->in_iov || !b->in_addr || !b->in_buf || !b->in_cap || !b->out || !b->out_iov ||
        !b->out_addr || !b->out_buf || !b->out_cap) {
        ss__dgram_batch_free(b);
        errno = ENOMEM;
        return NULL;
    }
    return b;
}

void ss__dgram_batch_free(ss__dgram_batch *b)
{
    if (b == NULL)
        return;
    for (unsigned i = 0; b->in_buf != NULL && i < b->cap; i++)
        free(b->in_buf[i]);
    for (unsigned i = 0; b->out_buf != NULL && i < b->cap; i++)
        free(b->out_buf[i]);
    free(b->in);
    free(b->in_iov);
    free(b->in_addr);
    free(b->in_buf);
    free(b->in_cap);
    free(b->out);
    free(b->out_iov);
    free(b->out_addr);
    free(b->out_buf);
    free(b->out_cap);
    free(b);
}

unsigned ss__dgram_batch_held(const ss__dgram_batch *b)
{
    return b->count - b->next;
}

/* Errors a socket reports for an earlier datagram that bounced (ICMP), or
 * for a peer that went away (Unix): they say nothing about this socket. */
static bool peer_error(int err)
{
    return err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH || err == EHOSTDOWN ||
           err == ENETDOWN || err == ENOENT;
}

int ss__dgram_batch_recv(ss_server *srv, ss__dgram_batch *b, bool wait)
{
    size_t cap = srv->opt.max_packet_size;

    if (b->nout > 0)
        ss__dgram_batch_flush(srv, b);
    b->count = b->next = 0;
    for (unsigned i = 0; i < b->cap; i++) {
        if (b->in_buf[i] == NULL || b->in_cap[i] < cap) {
            /* +1 so a zero max_packet_size still has a valid buffer. */
            char *p = realloc(b->in_buf[i], cap + 1);
            if (p == NULL)
                return -1;
            b->in_buf[i] = p;
            b->in_cap[i] = cap;
        }
        b->in_iov[i].iov_base = b->in_buf[i];
        b->in_iov[i].iov_len = cap;
        memset(&b->in[i].msg_hdr, 0, sizeof b->in[i].msg_hdr);
        b->in[i].msg_hdr.msg_name = &b->in_addr[i];
        b->in[i].msg_hdr.msg_namelen = sizeof b->in_addr[i];
        b->in[i].msg_hdr.msg_iov = &b->in_iov[i];
        b->in[i].msg_hdr.msg_iovlen = 1;
        b->in[i].msg_len = 0;
    }
    /* A bounce reported for an earlier reply is taken off the socket by the
     * call that reports it: the datagrams behind it are read by the next. */
    for (int bounces = 0; bounces < 8;) {
        /* The socket may be a blocking one (the datagram pool's): only a
         * waiting worker blocks, and then for the first datagram only. */
        b->fd = srv->fd;
        int n = recvmmsg(b->fd, b->in, b->cap, (wait ? MSG_WAITFORONE : MSG_DONTWAIT) | MSG_TRUNC,
                         NULL);
        if (n >= 0) {
            b->count = (unsigned)n;
            return n;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        if (!peer_error(errno))
            return -1;
        bounces++;
    }
    return 0;
}

void ss__dgram_batch_take(ss_server *srv, ss__dgram_batch *b, ss_request *req, bool defer)
{
    unsigned i = b->next++;
    size_t cap = srv->opt.max_packet_size;
    const struct msghdr *h = &b->in[i].msg_hdr;

    /* The buffers change places: the request gets the datagram's, the batch
     * the request's old one (grown before the next receive if need be). */
    char *p = req->in;
    size_t pcap = req->in_cap;
    req->in = b->in_buf[i];
    req->in_cap = b->in_cap[i];
    b->in_buf[i] = p;
    b->in_cap[i] = p != NULL ? pcap : 0;

    if (h->msg_namelen < sizeof(sa_family_t)) {
        /* An unbound Unix client: nothing to answer to. */
        req->addr.ss_family = (sa_family_t)srv->family;
        req->addrlen = sizeof(sa_family_t);
    } else {
        req->addrlen = h->msg_namelen <= sizeof req->addr ? h->msg_namelen : sizeof req->addr;
        memcpy(&req->addr, &b->in_addr[i], req->addrlen);
    }
    /* MSG_TRUNC makes msg_len the datagram's real length, as recvfrom's. */
    size_t n = b->in[i].msg_len;
    req->truncated = n > cap || (h->msg_flags & MSG_TRUNC) != 0;
    req->in_len = n > cap ? cap : n;
    req->in_pos = 0;
    req->eof = true;
    req->fd = b->fd;
    req->outq = defer ? b : NULL;
}

static void report(ss_server *srv, int err)
{
    if (!atomic_load(&srv->aborting))
        ss__handle_error(srv, NULL, err);
}

void ss__dgram_batch_flush(ss_server *srv, ss__dgram_batch *b)
{
    unsigned off = 0;
    int retried = -1;

    while (off < b->nout) {
        int k = sendmmsg(b->fd, b->out + off, b->nout - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k > 0) {
            off += (unsigned)k;
            continue;
        }
        int err = k < 0 ? errno : EIO;
        if (err == EINTR)
            continue;
        if (peer_error(err) && retried != (int)off) {
            /* Perhaps an earlier datagram's bounce, reported (and taken off
             * the socket) by this call: this reply may still go out. */
            retried = (int)off;
            continue;
        }
        /* This reply cannot go out; the next may (no room may be one Unix
         * peer's full queue), as each sendto of its own would try. */
        report(srv, err);
        off++;
    }
    b->nout = 0;
}

/* finish_output for a request of a batch: the reply joins the batch (its
 * buffer swapped out of the request) and goes out with the batch's
 * sendmmsg, after its last handler. */
static int batch_add_reply(ss_request *req)
{
    ss__dgram_batch *b = req->outq;
    ss_server *srv = req->srv;

    if (b->nout == b->cap)
        ss__dgram_batch_flush(srv, b);
    unsigned j = b->nout++;
    char *p = b->out_buf[j];
    size_t pcap = b->out_cap[j];
    b->out_buf[j] = req->out;
    b->out_cap[j] = req->out_cap;
    b->out_iov[j].iov_base = req->out;
    b->out_iov[j].iov_len = req->out_len;
    req->out = p;
    req->out_cap = p != NULL ? pcap : 0;
    req->out_len = 0;
    memcpy(&b->out_addr[j], &req->addr, req->addrlen);
    memset(&b->out[j].msg_hdr, 0, sizeof b->out[j].msg_hdr);
    b->out[j].msg_hdr.msg_name = &b->out_addr[j];
    b->out[j].msg_hdr.msg_namelen = req->addrlen;
    b->out[j].msg_hdr.msg_iov = &b->out_iov[j];
    b->out[j].msg_hdr.msg_iovlen = 1;
    req->replied = true;
    if (b->next >= b->count)
        ss__dgram_batch_flush(srv, b); /* the batch's last reply */
    return 0;
}

/* get_request with batch > 1: hand out the next datagram of the batch,
 * receiving the next batch when this one is used up. Only sync mode runs
 * the handlers in this thread: only its replies can wait for the batch's
 * end. */
static int batch_get_request(ss_server *srv, ss_request *req)
{
    ss__dgram_batch *b = srv->dgram_batch;

    if (b == NULL) {
        b = ss__dgram_batch_new(srv->opt.batch);
        if (b == NULL)
            return -1;
        srv->dgram_batch = b;
    }
    if (ss__dgram_batch_held(b) == 0) {
        /* A receive that took less than a batch emptied the socket: the
         * next one would most likely say EAGAIN, so the loop polls first
         * (a loop that polls first anyway does not need the hint). */
        if (b->drained && !srv->mode->poll_first) {
            b->drained = false;
            return 0;
        }
        int n = ss__dgram_batch_recv(srv, b, false);
        if (n <= 0)
            return n;
        b->drained = (unsigned)n < b->cap;
    }
    ss__dgram_batch_take(srv, b, req, srv->opt.mode == SS_MODE_SYNC);
    return 1;
}

static bool dgram_held(ss_server *srv)
{
    return srv->dgram_batch != NULL && ss__dgram_batch_held(srv->dgram_batch) > 0;
}

static void dgram_loop_end(ss_server *srv)
{
    if (srv->dgram_batch != NULL && srv->dgram_batch->nout > 0)
        ss__dgram_batch_flush(srv, srv->dgram_batch);
}

static void dgram_destroy(ss_server *srv)
{
    ss__dgram_batch_free(srv->dgram_batch);
    srv->dgram_batch = NULL;
}

/* ---- one datagram at a time -------------------------------------------- */

/* Receive one datagram into the request's buffer. The whole input is
 * there at once: it is at its end (eof) from the start. */
int ss__dgram_recv(ss_server *srv, ss_request *req, bool wait)
{
    size_t cap = srv->opt.max_packet_size;

    req->outq = NULL;

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
        ssize_t n = recvfrom(srv->fd, req->in, cap, MSG_TRUNC | (wait ? 0 : MSG_DONTWAIT),
                             (struct sockaddr *)&req->addr, &req->addrlen);
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

/* get_request: the next datagram, from the batch or the socket. */
static int dgram_get_request(ss_server *srv, ss_request *req)
{
    if (srv->opt.batch > 1)
        return batch_get_request(srv, req);
    return ss__dgram_recv(srv, req, false);
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
        ssize_t k = sendto(req->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT,
                           (const struct sockaddr *)&req->addr, req->addrlen);
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
    if (req->outq != NULL)
        return batch_add_reply(req);
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
    .held = dgram_held,
    .loop_end = dgram_loop_end,
    .destroy = dgram_destroy,
};
