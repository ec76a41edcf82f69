/*
 * xfer.c - the transfer loop: moves a file or a listing over the data
 * connection, and digests a file for HASH.
 *
 * While data moves, the loop polls the data socket, the control socket and
 * the server's stop descriptor (ss_server_stop_fd), so ABOR and STAT are served at once: a
 * command line that arrives goes to the session's busy_command callback
 * (the command table's answer, set by the handler), and this file never
 * calls the command table itself. HASH goes through the same loop
 * (xfer_digest): it digests the file in steps and looks at the control
 * connection between them.
 */
#include "xfer.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "crlf.h"
#include "dataconn.h"
#include "hash.h"
#include "log.h"
#include "quota.h"
#include "rate.h"
#include "sysio.h"
#include "timeutil.h"

/* ---- moving data -------------------------------------------------------- */

typedef struct turn_state {
    session *s;
    int data_fd;
    bool ctrl_blocked; /* a deferred command waits: stop reading */
    bool draining;     /* the server is stopping: the library's grace runs */
    struct timespec last_progress;
} turn_state;

/* One turn's wait. Returns a result to stop with, or -1 to go on; *data_ok
 * tells whether the data socket is ready.
 *
 * Once the server stops, a transfer goes on for the library's grace
 * (opt.stop_grace); at its end the library shuts down the control
 * connection's input, which this loop sees as the end of input (or, while a
 * command waits and the socket is not read, as POLLRDHUP): the transfer
 * then ends with XFER_SHUTDOWN. */
static int wait_turn(turn_state *ts, short data_events, bool *data_ok)
{
    session *s = ts->s;
    struct pollfd p[3];
    nfds_t n = 0;
    long timeout = (long)s->cfg->data_timeout * 1000 - ftpd_ms_since(&ts->last_progress);
    int stop_fd = ss_server_stop_fd(ss_request_server(s->req));
    int ctrl_i = -1, sd_i = -1, r;

    *data_ok = false;
    if (timeout <= 0)
        return XFER_TIMEOUT;
    if (!ts->ctrl_blocked && control_input_pending(s))
        timeout = 0; /* a command is already buffered: serve it now */
    p[n].fd = ts->data_fd;
    p[n].events = data_events;
    p[n++].revents = 0;
    if (!ts->ctrl_blocked || ts->draining) {
        ctrl_i = (int)n;
        p[n].fd = s->ctrl_fd;
        p[n].events = ts->ctrl_blocked ? POLLRDHUP : POLLIN;
        p[n++].revents = 0;
    }
    if (!ts->draining && stop_fd >= 0) {
        sd_i = (int)n;
        p[n].fd = stop_fd;
        p[n].events = POLLIN;
        p[n++].revents = 0;
    }
    r = poll(p, n, (int)timeout);
    if (r < 0)
        return errno == EINTR ? -1 : XFER_DATA_FAILED;
    if (sd_i >= 0 && (p[sd_i].revents & POLLIN))
        ts->draining = true;
    if (ts->ctrl_blocked && ctrl_i >= 0 &&
        (p[ctrl_i].revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) {
        s->quit = true;
        return XFER_SHUTDOWN;
    }
    if (!ts->ctrl_blocked &&
        ((ctrl_i >= 0 && p[ctrl_i].revents != 0) || control_input_pending(s))) {
        int c = control_while_busy(s);

        if (c == XCMD_ABORT)
            return XFER_ABORTED;
        if (c == XCMD_DEFER)
            ts->ctrl_blocked = true;
        if (c == XCMD_LOST)
            return ts->draining ? XFER_SHUTDOWN : XFER_CTRL_LOST;
    }
    *data_ok = (p[0].revents & (data_events | POLLHUP | POLLERR)) != 0;
    return -1;
}

/* Binary downloads go from the file to the socket without a copy through
 * user space. Returns a result, or -1 when sendfile cannot be used for this
 * file (nothing was sent then) and the caller falls back to read/send. */
static int sendfile_loop(turn_state *ts, const xfer_job *job, off_t *bytes, int *err)
{
    session *s = ts->s;
    off_t total = 0;
    bool must_wait = false; /* the socket said EAGAIN: wait until writable */
    int since_check = 0;

    /* Send first and wait only when the socket is full: a poll before every
     * chunk costs more CPU than the copy it guards. The control connection
     * is still looked at after every FTPD_SENDFILE_CHECK chunks (one, now),
     * so ABOR and STAT are served. */
    for (;;) {
        ssize_t n;

        if (must_wait || since_check >= FTPD_SENDFILE_CHECK) {
            bool ready;
            int w = wait_turn(ts, POLLOUT, &ready);

            if (w >= 0)
                return w;
            since_check = 0;
            if (must_wait && !ready)
                continue;
            must_wait = false;
        }
        n = sendfile(ts->data_fd, job->file_fd, NULL, rate_chunk(s, 'o', FTPD_SENDFILE_CHUNK));
        if (n < 0) {
            if (errno == EAGAIN) {
                must_wait = true;
                continue;
            }
            if (errno == EINTR)
                continue;
            if ((errno == EINVAL || errno == ENOSYS) && total == 0)
                return -1;
            if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN)
                return XFER_DATA_FAILED;
            *err = errno;
            return XFER_FILE_FAILED;
        }
        if (n == 0)
            return XFER_DONE;
        since_check++;
        total += n;
        *bytes = total;
        s->xfer.done = total;
        rate_wait(s, 'o', (size_t)n);
        clock_gettime(CLOCK_MONOTONIC, &ts->last_progress);
    }
}

static xfer_result send_loop(turn_state *ts, const xfer_job *job, off_t *bytes, int *err)
{
    session *s = ts->s;
    const unsigned char *out = NULL;
    size_t outlen = 0;
    off_t total = 0;
    bool eof = false;

    if (job->source == NULL && !job->ascii) {
        int r = sendfile_loop(ts, job, bytes, err);
        if (r >= 0)
            return (xfer_result)r;
    }

    /* Bounded: each turn moves data, serves a command or uses up time from
     * the data timeout, or ends at the stop's cut. */
    for (;;) {
        bool ready;
        int w;

        if (outlen == 0 && !eof) {
            /* A source is pulled only when the last chunk has gone out, so
             * what it produces is held one chunk at a time. */
            size_t want = rate_chunk(s, 'o', FTPD_XFER_BUF);
            ssize_t r = job->source != NULL ? job->source(job->source_ctx, s->buf, want)
                                            : sysio_read(job->file_fd, s->buf, want);
            if (r < 0) {
                *err = errno;
                return XFER_FILE_FAILED;
            }
            eof = r == 0;
            if (job->ascii && job->source == NULL) {
                outlen = crlf_from_lf(s->buf, (size_t)r, s->abuf);
                out = s->abuf;
            } else {
                outlen = (size_t)r;
                out = s->buf;
            }
        }
        if (outlen == 0 && eof)
            return XFER_DONE;
        w = wait_turn(ts, POLLOUT, &ready);
        if (w >= 0)
            return (xfer_result)w;
        if (!ready)
            continue;
        {
            ssize_t n = send(ts->data_fd, out, outlen, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    continue;
                return XFER_DATA_FAILED;
            }
            out += n;
            outlen -= (size_t)n;
            total += n;
            *bytes = total;
            s->xfer.done = total;
            rate_wait(s, 'o', (size_t)n);
            clock_gettime(CLOCK_MONOTONIC, &ts->last_progress);
        }
    }
}

static xfer_result recv_loop(turn_state *ts, const xfer_job *job, off_t *bytes, int *err)
{
    session *s = ts->s;
    off_t total = 0;
    bool held_cr = false;

    for (;;) {
        bool ready;
        ssize_t n;
        int w = wait_turn(ts, POLLIN, &ready);

        if (w >= 0)
            return (xfer_result)w;
        if (!ready)
            continue;
        n = recv(ts->data_fd, s->buf, rate_chunk(s, 'i', FTPD_XFER_BUF), MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            return XFER_DATA_FAILED;
        }
        if (n == 0) {
            if (held_cr && (quota_take(s, 1) < 0 ||
                            sysio_write_all(job->file_fd, (const unsigned char *)"\r", 1) < 0)) {
                *err = errno;
                return XFER_FILE_FAILED;
            }
            return XFER_DONE;
        }
        total += n;
        *bytes = total;
        s->xfer.done = total;
        rate_wait(s, 'i', (size_t)n);
        clock_gettime(CLOCK_MONOTONIC, &ts->last_progress);
        /* quota_take refuses (EDQUOT) a write that would pass the quota. */
        if (job->ascii) {
            size_t m = crlf_to_lf(s->buf, (size_t)n, s->abuf, &held_cr);
            if (quota_take(s, m) < 0 || sysio_write_all(job->file_fd, s->abuf, m) < 0) {
                *err = errno;
                return XFER_FILE_FAILED;
            }
        } else if (quota_take(s, (size_t)n) < 0 ||
                   sysio_write_all(job->file_fd, s->buf, (size_t)n) < 0) {
            *err = errno;
            return XFER_FILE_FAILED;
        }
    }
}

xfer_result xfer_run(session *s, const xfer_job *job, off_t *bytes, int *err)
{
    turn_state ts;
    int timeout_ms = (int)s->cfg->data_timeout * 1000;
    xfer_result res;

    *bytes = 0;
    *err = 0;
    memset(&ts, 0, sizeof(ts));
    ts.s = s;
    /* STAT may ask while the data connection is awaited. */
    s->xfer.direction = job->direction;
    snprintf(s->xfer.path, sizeof(s->xfer.path), "%s", job->path != NULL ? job->path : "");
    s->xfer.done = 0;
    s->xfer.total = job->total;
    ts.data_fd = dataconn_open(s, timeout_ms);
    if (ts.data_fd < 0) {
        int e = errno;
        bool was_prepared = s->dmode != DATA_NONE;

        dataconn_forget(s);
        if (e == ECANCELED) {
            /* ABOR before the data connection: the command ends as a
             * transfer aborted by ABOR does. */
            if (reply(s, 426, "Transfer aborted before the data connection.") == 0)
                reply(s, 226, "ABOR successful.");
        } else if (e == ESHUTDOWN) {
            /* The stop gives time to transfers that run, not to one that
             * has not begun: the session ends as an idle one does. */
            reply(s, 421, "Server shutting down.");
            s->quit = true;
        } else if (was_prepared) {
            log_msg("%s: data connection failed: %s", s->peer_str, strerror(e));
            reply(s, 425, "Cannot open data connection.");
        } else {
            reply(s, 425, "Use PORT, PASV, EPRT or EPSV first.");
        }
        return XFER_NO_CONN;
    }
    dataconn_forget(s);
    if (reply(s, 150, "%s", job->opening) < 0) {
        close(ts.data_fd);
        s->quit = true;
        return XFER_CTRL_LOST;
    }
    s->xfer.active = true;
    /* A command kept while the connection was awaited keeps its place. */
    ts.ctrl_blocked = s->have_pending;
    ts.draining = ss_server_stopping(ss_request_server(s->req));
    clock_gettime(CLOCK_MONOTONIC, &ts.last_progress);
    if (job->direction == 'i')
        res = recv_loop(&ts, job, bytes, err);
    else
        res = send_loop(&ts, job, bytes, err);
    close(ts.data_fd);
    s->xfer.active = false;
    if (job->direction == 'i')
        s->bytes_in += (unsigned long long)*bytes;
    else
        s->bytes_out += (unsigned long long)*bytes;
    return res;
}

/* ---- digesting (HASH) ---------------------------------------------------- */

/* Has the client closed its end of the control connection? Looked at only
 * while a command waits, when wait_turn no longer reads the socket. */
static bool ctrl_hung_up(const session *s)
{
    struct pollfd p = {.fd = s->ctrl_fd, .events = POLLRDHUP};

    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

/* A look at the control connection and the stop descriptor between two
 * digest steps; never waits, as the file always polls ready. Returns a
 * result to stop with, or -1 to go on. */
static int digest_turn(turn_state *ts)
{
    bool ready;
    int w = wait_turn(ts, POLLIN, &ready);

    if (w >= 0 && w != XFER_SHUTDOWN)
        return w;
    /* Unlike a transfer, a digest is not drained on stop: no client is
     * half-way through receiving a file, and a digest the size of the
     * --hash-max-size cap could hold the stop for seconds. */
    if (w == XFER_SHUTDOWN || ts->draining)
        return XFER_SHUTDOWN;
    if (ts->ctrl_blocked && ctrl_hung_up(ts->s)) {
        ts->s->quit = true;
        return XFER_CTRL_LOST;
    }
    clock_gettime(CLOCK_MONOTONIC, &ts->last_progress);
    return -1;
}

xfer_result xfer_digest(session *s, const xfer_digest_job *job, char *hex, size_t size,
                        off_t *bytes, int *err)
{
    turn_state ts;
    hash_ctx *h = NULL;
    unsigned char *buf = NULL;
    off_t pos = job->start;
    size_t since_check = 0;
    xfer_result res;

    *bytes = 0;
    *err = 0;
    memset(&ts, 0, sizeof(ts));
    ts.s = s;
    /* wait_turn polls its data descriptor; a regular file always polls
     * ready, so each turn only takes what the control connection and the
     * stop descriptor have and never sleeps. */
    ts.data_fd = job->file_fd;
    ts.ctrl_blocked = s->have_pending;
    ts.draining = ss_server_stopping(ss_request_server(s->req));
    clock_gettime(CLOCK_MONOTONIC, &ts.last_progress);
    s->xfer.direction = 'h';
    snprintf(s->xfer.path, sizeof(s->xfer.path), "%s", job->path != NULL ? job->path : "");
    s->xfer.done = 0;
    s->xfer.total = job->end - job->start;
    s->xfer.active = true;
    if (ts.draining) {
        res = XFER_SHUTDOWN;
        goto out;
    }
    /* A buffer of its own: reading into the session's 128 KiB buffer cost
     * about 10% more CPU per digest (measured on 1 GiB, SHA-256 and MD5). */
    buf = malloc(FTPD_HASH_READ);
    if (buf == NULL) {
        *err = ENOMEM;
        res = XFER_FILE_FAILED;
        goto out;
    }
    h = hash_begin(job->algo);
    if (h == NULL) {
        *err = errno;
        res = XFER_FILE_FAILED;
        goto out;
    }
    (void)posix_fadvise(job->file_fd, job->start, job->end - job->start, POSIX_FADV_SEQUENTIAL);
    /* Bounded by the range: each turn digests a block, ends, or stops on
     * what the control connection or the stop descriptor says. */
    while (pos < job->end) {
        size_t want = job->end - pos < (off_t)FTPD_HASH_READ ? (size_t)(job->end - pos)
                                                             : (size_t)FTPD_HASH_READ;
        ssize_t n;

        if (since_check >= FTPD_HASH_STEP) {
            int w = digest_turn(&ts);

            if (w >= 0) {
                res = (xfer_result)w;
                goto out;
            }
            since_check = 0;
        }
        n = pread(job->file_fd, buf, want, pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *err = errno;
            res = XFER_FILE_FAILED;
            goto out;
        }
        if (n == 0)
            break; /* the file shrank meanwhile: the digest covers what was there */
        if (hash_update(h, buf, (size_t)n) < 0) {
            *err = errno;
            res = XFER_FILE_FAILED;
            goto out;
        }
        pos += n;
        since_check += (size_t)n;
        s->xfer.done = pos - job->start;
    }
    if (hash_end(h, hex, size) < 0) {
        *err = errno;
        res = XFER_FILE_FAILED;
        goto out;
    }
    res = XFER_DONE;
out:
    hash_free(h);
    free(buf);
    *bytes = pos - job->start;
    s->xfer.active = false;
    return res;
}
