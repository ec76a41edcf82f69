/*
 * stream.c - rfile and wfile: buffered reading (readline with a limit, read,
 * read exact) and writing (all bytes or an error). For a stream request they
 * work on the connection; for a datagram request input comes from the
 * datagram and output goes to the reply (datagram.c).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

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
ssize_t ss__stream_fill(ss_request *req)
{
    if (req->dgram || req->eof)
        return 0;
    if (req->out_len > 0 && ss__stream_flush(req) < 0)
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

static void take(ss_request *req, char *dst, size_t n)
{
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
        if (avail >= want || req->eof || req->dgram) {
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
        ssize_t r = ss__stream_fill(req);
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
    if (avail == 0 && !req->dgram && !req->eof) {
        if (req->out_len > 0 && ss__stream_flush(req) < 0)
            return -1;
        if (n >= SS__RBUF_SIZE) {
            /* A large read goes straight to the caller's buffer. */
            ssize_t r = ss__recv(req->srv, req->fd, buf, n);
            if (r == 0)
                req->eof = true;
            return r;
        }
        if (ss__stream_fill(req) < 0)
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

int ss__stream_flush(ss_request *req)
{
    if (req->out_len == 0)
        return 0;
    size_t n = req->out_len;
    req->out_len = 0; /* on error the bytes are gone either way */
    return ss__send_all(req->srv, req->fd, req->out, n) < 0 ? -1 : 0;
}

ssize_t ss_write(ss_request *req, const void *buf, size_t n)
{
    if (req == NULL || (buf == NULL && n > 0)) {
        errno = EINVAL;
        return -1;
    }
    if (req->dgram) {
        if (req->out_len + n > req->srv->dgram_reply_max) {
            errno = EMSGSIZE;
            return -1;
        }
        if (req->out_len + n > req->out_cap) {
            size_t cap = req->out_cap ? req->out_cap : 512;
            while (cap < req->out_len + n)
                cap *= 2;
            if (cap > req->srv->dgram_reply_max)
                cap = req->srv->dgram_reply_max;
            char *p = realloc(req->out, cap);
            if (p == NULL)
                return -1;
            req->out = p;
            req->out_cap = cap;
        }
        if (n > 0)
            memcpy(req->out + req->out_len, buf, n);
        req->out_len += n;
        return (ssize_t)n;
    }

    size_t wb = req->srv->opt.wbufsize;
    if (wb == 0)
        return ss__send_all(req->srv, req->fd, buf, n);
    if (req->out_len + n > wb && ss__stream_flush(req) < 0)
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
    if (req->dgram) {
        if (ss_reply(req, req->out, req->out_len) < 0)
            return -1;
        req->out_len = 0;
        return 0;
    }
    return ss__stream_flush(req);
}
