/*
 * io.c - the request's rfile and wfile, as handlers use them: buffered
 * reading (readline with a limit, read, read exact, a line with a deadline)
 * and writing (all bytes or an error), and waiting for input or the stop.
 * The same calls serve both transports: a stream request reads its
 * connection and writes to it, a datagram request reads its datagram and
 * writes its reply; the transport's table (stream.c, datagram.c) does the
 * part that differs. Input the transport has ended (a stream at its end, a
 * datagram always) is req->eof.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "internal.h"

/* More input into the read buffer, unless the input has ended. */
static ssize_t fill(ss_request *req)
{
    const ss__transport *t = req->srv->transport;
    if (req->eof || t->fill == NULL)
        return 0;
    return t->fill(req);
}

static void take(ss_request *req, char *dst, size_t n)
{
    if (n == 0 || req->in == NULL)
        return; /* the buffer may not exist yet (no memcpy from NULL) */
    memcpy(dst, req->in + req->in_pos, n);
    req->in_pos += n;
}

ssize_t ss_readline(ss_request *req, char *buf, size_t size)
{
    if (req == NULL || buf == NULL || size < 2) {
        errno = EINVAL; /* room for at least one byte and the NUL */
        return -1;
    }
    size_t max = size - 1, n = 0;

    while (n < max) {
        size_t avail = req->in_len - req->in_pos;
        size_t want = max - n;
        size_t look = avail < want ? avail : want;
        const char *nl = look > 0 ? memchr(req->in + req->in_pos, '\n', look) : NULL;
        if (nl != NULL) {
            size_t k = (size_t)(nl - (req->in + req->in_pos)) + 1;
            take(req, buf + n, k);
            n += k;
            break;
        }
        if (avail >= want || req->eof) {
            take(req, buf + n, look);
            n += look;
            break;
        }
        if (avail == req->in_cap && avail > 0) {
            /* The buffer is full of one long line: move it out, go on. */
            take(req, buf + n, avail);
            n += avail;
            continue;
        }
        ssize_t r = fill(req);
        if (r < 0) {
            if (n > 0)
                break; /* deliver what we have; the error repeats next call */
            return -1;
        }
    }
    buf[n] = '\0';
    return (ssize_t)n;
}

ssize_t ss_read(ss_request *req, void *buf, size_t n)
{
    if (req == NULL || (buf == NULL && n > 0)) {
        errno = EINVAL;
        return -1;
    }
    if (n == 0)
        return 0;
    size_t avail = req->in_len - req->in_pos;
    if (avail == 0 && !req->eof) {
        const ss__transport *t = req->srv->transport;
        if (n >= SS__RBUF_SIZE && t->read_direct != NULL)
            return t->read_direct(req, buf, n); /* past the buffer */
        if (fill(req) < 0)
            return -1;
        avail = req->in_len - req->in_pos;
    }
    size_t k = avail < n ? avail : n;
    take(req, buf, k);
    return (ssize_t)k;
}

ssize_t ss_read_exact(ss_request *req, void *buf, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t r = ss_read(req, (char *)buf + got, n - got);
        if (r < 0)
            return -1;
        if (r == 0) {
            errno = ENODATA;
            return -1;
        }
        got += (size_t)r;
    }
    return (ssize_t)n;
}

size_t ss_pending(const ss_request *req)
{
    return req->in_len - req->in_pos;
}

ssize_t ss_write(ss_request *req, const void *buf, size_t n)
{
    if (req == NULL || (buf == NULL && n > 0)) {
        errno = EINVAL;
        return -1;
    }
    if (n == 0)
        return 0; /* nothing to send or buffer (and no memcpy from NULL) */
    return req->srv->transport->write(req, buf, n);
}

ssize_t ss_reply(ss_request *req, const void *buf, size_t n)
{
    if (req == NULL || (buf == NULL && n > 0)) {
        errno = EINVAL;
        return -1;
    }
    return req->srv->transport->reply(req, buf, n);
}

ssize_t ss_vprintf(ss_request *req, const char *fmt, va_list ap)
{
    char small[1024];
    va_list ap2;

    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    if (n < 0) {
        va_end(ap2);
        errno = EINVAL;
        return -1;
    }
    if ((size_t)n < sizeof small) {
        va_end(ap2);
        return ss_write(req, small, (size_t)n);
    }
    char *big = malloc((size_t)n + 1);
    if (big == NULL) {
        va_end(ap2);
        return -1;
    }
    vsnprintf(big, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    ssize_t r = ss_write(req, big, (size_t)n);
    free(big);
    return r;
}

ssize_t ss_printf(ss_request *req, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ssize_t r = ss_vprintf(req, fmt, ap);
    va_end(ap);
    return r;
}

int ss_flush(ss_request *req)
{
    if (req == NULL) {
        errno = EINVAL;
        return -1;
    }
    return req->srv->transport->flush(req);
}

/* ---- waiting for input and the stop ------------------------------------ */

/* Poll fd for events and, with watch_stop, the server's stop descriptor,
 * until the monotonic deadline (INFINITY: none). Returns fd's revents
 * (> 0), 0 when the deadline passed, -1 with ECANCELED when the stop began
 * and fd is not ready, or -1 with another errno. */
static int wait_fd_or_stop(ss_request *req, int fd, short events, double deadline, bool watch_stop)
{
    struct pollfd p[2];
    nfds_t n = 0;

    if (fd >= 0) {
        p[n].fd = fd;
        p[n].events = events;
        p[n].revents = 0;
        n++;
    }
    if (watch_stop) {
        p[n].fd = req->srv->stopfd;
        p[n].events = POLLIN;
        p[n].revents = 0;
        n++;
    }
    for (;;) {
        int r = poll(p, n, ss__ms_until(deadline));
        if (r < 0) {
            if (errno == EINTR && ss__retry_eintr(req->srv))
                continue;
            return -1;
        }
        if (fd >= 0 && p[0].revents != 0)
            return p[0].revents;
        if (watch_stop && p[n - 1].revents != 0) {
            errno = ECANCELED;
            return -1;
        }
        if (r == 0 && ss__ms_until(deadline) == 0)
            return 0;
    }
}

int ss_request_wait(ss_request *req, int fd, short events, double timeout)
{
    if (req == NULL || fd < -1 || timeout != timeout) {
        errno = EINVAL;
        return -1;
    }
    double deadline = timeout < 0 ? (double)INFINITY : ss__now() + timeout;
    if (fd == -1) {
        /* The request's own input: bytes already buffered count, and what
         * we still owe the peer goes out first, as before any read. */
        int conn = ss__conn(req); /* -1: a datagram, nothing more to come */
        if ((events & POLLIN) && (req->in_len > req->in_pos || (req->eof && conn >= 0)))
            return POLLIN;
        if (conn >= 0 && req->out_len > 0 && req->srv->transport->flush(req) < 0)
            return -1;
        fd = conn;
    }
    return wait_fd_or_stop(req, fd, events, deadline, true);
}

/* The receive timeout set on the connection (request_timeout or
 * ss_request_set_timeout), in seconds; < 0 for none. */
static double receive_timeout(const ss_request *req)
{
    struct timeval tv;
    socklen_t len = sizeof tv;
    if (getsockopt(req->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len) < 0 ||
        (tv.tv_sec == 0 && tv.tv_usec == 0))
        return -1;
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* Before a receive in ss_readline_ex: wait for input within the line's
 * deadline (and the connection's own receive timeout), watching the stop
 * with SS_LINE_STOP. Returns 0 when input (or its end) is there, -1 with
 * ETIMEDOUT, ECANCELED or another errno. */
static int wait_line_input(ss_request *req, double deadline, bool stop, double *rcv_timeout)
{
    if (req->out_len > 0 && req->srv->transport->flush(req) < 0)
        return -1;
    if (*rcv_timeout == -2)
        *rcv_timeout = receive_timeout(req);
    double until = deadline;
    if (*rcv_timeout >= 0 && ss__now() + *rcv_timeout < until)
        until = ss__now() + *rcv_timeout;
    int r = wait_fd_or_stop(req, req->fd, POLLIN, until, stop);
    if (r == 0) {
        errno = ETIMEDOUT;
        return -1;
    }
    return r < 0 ? -1 : 0;
}

ssize_t ss_readline_ex(ss_request *req, char *buf, size_t size, double timeout, unsigned flags,
                       size_t *dropped)
{
    if (dropped != NULL)
        *dropped = 0;
    if (req == NULL || buf == NULL || size < 2 || timeout != timeout ||
        (flags & ~(SS_LINE_DISCARD | SS_LINE_STOP)) != 0) {
        errno = EINVAL;
        return -1;
    }
    bool discard = (flags & SS_LINE_DISCARD) != 0, stop = (flags & SS_LINE_STOP) != 0;
    double deadline = timeout < 0 ? (double)INFINITY : ss__now() + timeout;
    bool wait_first = stop || timeout >= 0;
    double rcv_timeout = -2; /* not looked up yet */
    size_t max = size - 1, n = 0, gone = 0;
    size_t scanned = 0; /* bytes at in_pos known to hold no LF */
    bool discarding = false;

    for (;;) {
        size_t avail = req->in_len - req->in_pos;
        const char *start = req->in != NULL ? req->in + req->in_pos : NULL;
        const char *nl = start != NULL && avail > scanned
                             ? memchr(start + scanned, '\n', avail - scanned)
                             : NULL;
        if (discarding) {
            /* Dropping an over-long line through its LF. */
            size_t k = nl != NULL ? (size_t)(nl - start) + 1 : avail;
            req->in_pos += k;
            gone += k;
            scanned = 0;
            if (nl != NULL || req->eof) {
                if (dropped != NULL)
                    *dropped = gone;
                errno = EMSGSIZE;
                return -1;
            }
        } else {
            bool ended = req->eof;
            size_t line = nl != NULL ? (size_t)(nl - start) + 1 : avail;
            /* Without a LF, max bytes make a piece (as ss_readline); for
             * DISCARD they are too many only once more input shows that the
             * line goes on (its LF would make max + 1), not when the input
             * ends there. */
            bool too_long =
                nl != NULL ? n + line > max : (n + avail > max || (n + avail == max && !discard));
            if (too_long) {
                if (discard) {
                    discarding = true;
                    gone = n; /* what was moved out is dropped as well */
                    n = 0;
                    continue;
                }
                take(req, buf + n, max - n); /* a piece, as ss_readline */
                n = max;
                break;
            }
            if (nl != NULL || ended) {
                take(req, buf + n, line);
                n += line;
                break;
            }
            scanned = avail;
            if (avail == req->in_cap && avail > 0) {
                /* The internal buffer is full of one line that still fits
                 * the caller's: move it out to make room. */
                take(req, buf + n, avail);
                n += avail;
                scanned = 0;
            }
        }
        /* More input is needed. */
        if (!req->eof && wait_first && wait_line_input(req, deadline, stop, &rcv_timeout) < 0) {
            if (discarding && dropped != NULL)
                *dropped = gone;
            return -1;
        }
        ssize_t r = fill(req);
        if (r < 0) {
            if (discarding && dropped != NULL)
                *dropped = gone;
            return -1;
        }
    }
    buf[n] = '\0';
    return (ssize_t)n;
}
