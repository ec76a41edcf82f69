/*
 * request.c - one request: its object, its accessors, and the part of the
 * walk every mode shares: finish_request (handler setup/handle/finish) and
 * shutdown_request/close_request.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

ss_request *ss__request_new(ss_server *srv)
{
    ss_request *req = calloc(1, sizeof *req + srv->mode->req_ext_size);
    if (req == NULL)
        return NULL;
    req->srv = srv;
    req->fd = -1;
    return req;
}

/* Make a used object ready for the next request; buffers are kept. */
void ss__request_reset(ss_request *req)
{
    req->fd = -1;
    req->truncated = false;
    req->eof = false;
    req->replied = false;
    req->reject_reason = SS_REJECT_NONE;
    req->addrlen = 0;
    req->user = NULL;
    req->in_pos = 0;
    req->in_len = 0;
    req->out_len = 0;
    req->peer[0] = '\0';
}

void ss__request_free(ss_request *req)
{
    if (req == NULL)
        return;
    free(req->in);
    free(req->out);
    free(req);
}

void ss_default_handle_error(ss_server *srv, ss_request *req, int err)
{
    char line[512], ebuf[128], addr[SS__ADDRSTRLEN];
    const char *msg = strerror_r(err, ebuf, sizeof ebuf);
    int n;

    if (req != NULL)
        n = snprintf(line, sizeof line, "sockserv: error processing request from %s: %s\n",
                     ss_request_client_str(req), msg);
    else
        n = snprintf(line, sizeof line, "sockserv: server %s (%s): %s\n",
                     ss_server_address_str(srv, addr, sizeof addr) ? addr : "?",
                     srv != NULL ? srv->mode->name : "?", msg);
    if (n > 0) {
        /* One write(2) per line keeps lines from concurrent threads whole.
         * A stderr pipe whose reader is gone must not kill the server with
         * SIGPIPE: block it around the write and swallow the one it raised. */
        size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
        sigset_t pipe_set, old, pending;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
        sigpending(&pending);
        bool was_pending = sigismember(&pending, SIGPIPE);
        ssize_t w = write(STDERR_FILENO, line, len);
        if (w < 0 && errno == EPIPE && !was_pending) {
            struct timespec zero = {0, 0};
            (void)sigtimedwait(&pipe_set, NULL, &zero);
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
}

void ss__handle_error(ss_server *srv, ss_request *req, int err)
{
    int saved = errno;
    if (srv->opt.handle_error != NULL)
        srv->opt.handle_error(srv, req, err);
    else
        ss_default_handle_error(srv, req, err);
    errno = saved;
}

/* setup, handle, finish (Python's BaseRequestHandler constructor), then the
 * datagram reply or the stream's buffered output. Returns SS_OK, SS_ERROR
 * (handle_error has run) or SS_ABORT. */
int ss__finish_request(ss_request *req)
{
    ss_server *srv = req->srv;
    const ss_handler *h = &srv->handler;
    int rc = SS_OK, err = 0;

    errno = 0;
    if (h->setup != NULL) {
        rc = h->setup(req);
        if (rc != SS_OK) {
            err = errno;
            goto out; /* as in Python: no finish without a successful setup */
        }
    }
    if (h->handle != NULL) {
        rc = h->handle(req);
        if (rc != SS_OK)
            err = errno;
    }
    if (h->finish != NULL)
        h->finish(req);
    if (srv->transport->finish_output(req) < 0 && rc == SS_OK) {
        rc = SS_ERROR;
        err = errno;
    }
out:
    if (rc == SS_ABORT)
        return SS_ABORT;
    if (rc != SS_OK) {
        /* Interrupted because the server is stopping: not an error worth a
         * report (Python's KeyboardInterrupt is no Exception either). */
        if (!(err == EINTR && ss__stop_requested(srv)) && !atomic_load(&srv->aborting))
            ss__handle_error(srv, req, err != 0 ? err : EIO);
        return SS_ERROR;
    }
    return SS_OK;
}

/* Close a request's connection after half-closing it, so the peer sees the
 * end of the stream even if another descriptor (a forked child's) still
 * refers to the socket. Datagram requests share the server socket: nothing
 * to close. */
void ss__shutdown_request(ss_request *req)
{
    /* The slot is free before the peer can see the end of its connection,
     * so a client that reconnects at once is not turned away by itself. */
    ss__limits_leave(req);
    if (ss__conn(req) >= 0)
        (void)shutdown(req->fd, SHUT_WR); /* ENOTCONN is fine */
    ss__close_request(req);
}

int ss__run_request(ss_request *req)
{
    int rc = ss__finish_request(req);
    ss__end_request(req);
    return rc;
}

void ss__end_request(ss_request *req)
{
    ss_server *srv = req->srv;
    if (srv->mode->unpublish != NULL)
        srv->mode->unpublish(srv, req);
    ss__shutdown_request(req);
}

ss_request *ss__acquire_loop_request(ss_server *srv)
{
    return srv->loop_req;
}

void ss__release_reset(ss_server *srv, ss_request *req)
{
    (void)srv;
    ss__request_reset(req);
}

void ss__reject_request(ss_request *req)
{
    ss_server *srv = req->srv;
    if (srv->opt.reject != NULL) {
        srv->opt.reject(req);
        /* What the hook wrote goes out before the close. */
        srv->transport->reject_output(req);
    }
    ss__shutdown_request(req);
}

/* End a request's input, so a handler waiting for an idle client sees the
 * end of the stream: used by ss_server_free for requests it would otherwise
 * wait on forever. Output still works, so a handler that is about to answer
 * still can. */
void ss__abort_request(ss_request *req)
{
    if (ss__conn(req) >= 0)
        (void)shutdown(req->fd, SHUT_RD);
}

void ss__close_request(ss_request *req)
{
    ss__limits_leave(req);
    if (ss__conn(req) >= 0)
        ss__close(req->fd);
    req->fd = -1;
}

/* ---- accessors --------------------------------------------------------- */

ss_server *ss_request_server(const ss_request *req)
{
    return req->srv;
}

int ss_request_fd(const ss_request *req)
{
    return req->fd;
}

const struct sockaddr *ss_request_client_address(const ss_request *req, socklen_t *len)
{
    if (len != NULL)
        *len = req->addrlen;
    return (const struct sockaddr *)&req->addr;
}

const char *ss_request_client_str(ss_request *req)
{
    if (req->peer[0] == '\0') {
        if (req->addrlen <= sizeof(sa_family_t) && req->addr.ss_family == AF_UNIX)
            snprintf(req->peer, sizeof req->peer, "unix:");
        else if (ss_format_address((const struct sockaddr *)&req->addr, req->addrlen, req->peer,
                                   sizeof req->peer) == NULL)
            snprintf(req->peer, sizeof req->peer, "?");
    }
    return req->peer;
}

const void *ss_request_data(const ss_request *req, size_t *len)
{
    if (!ss_request_is_datagram(req)) {
        if (len != NULL)
            *len = 0;
        return NULL;
    }
    if (len != NULL)
        *len = req->in_len;
    return req->in;
}

bool ss_request_truncated(const ss_request *req)
{
    return req->truncated;
}

bool ss_request_is_datagram(const ss_request *req)
{
    return req->srv->transport->socktype == SOCK_DGRAM;
}

void *ss_request_user(const ss_request *req)
{
    return req->user;
}

void ss_request_set_user(ss_request *req, void *user)
{
    req->user = user;
}

int ss_request_set_timeout(ss_request *req, double seconds)
{
    if (ss__conn(req) < 0) {
        errno = EINVAL;
        return -1;
    }
    if (seconds < 0) {
        /* No timeout: a zeroed timeval. */
        struct timeval tv = {0, 0};
        if (setsockopt(req->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
            setsockopt(req->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
            return -1;
        return 0;
    }
    return ss__set_sock_timeout(req->fd, seconds);
}
