/*
 * control.c - the control connection: replies out, command lines in.
 *
 * Reading: a line is read with the library's ss_readline_ex, whose deadline
 * covers the whole line (a client sending a byte at a time cannot stretch
 * it), whose SS_LINE_DISCARD drops an over-long line through its LF (500
 * here) and whose SS_LINE_STOP ends the wait for a command once the server
 * stops (421). No bytes are kept here: what is not a whole line yet stays
 * in the library's buffer. finish_line then removes the line end and
 * telnet IAC sequences (some clients send IAC IP / IAC DM before ABOR) and
 * refuses lines with a NUL byte.
 *
 * Once the control connection speaks TLS (AUTH TLS, or an implicit TLS
 * listener), the bytes come through OpenSSL instead (tls.c) and a small
 * line reader here does what ss_readline_ex did, with the same outcomes:
 * a deadline for the whole line, pieces of an over-long line (dropped
 * below, up to the same FTPD_DISCARD_MAX), the stop descriptor ending the
 * wait for a command, and what is no whole line yet kept for the next
 * call. The socket is non-blocking then and replies are written with poll,
 * bounded by the data timeout as SO_SNDTIMEO bounds them in clear.
 */
#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "timeutil.h"
#include "tls.h"

/* Room for the TLS line reader's buffer: more than a line, so a read
 * always has space while no line is complete. */
#define TLS_IN_CAP (FTPD_LINE_MAX + 4 + 4096)

#define TELNET_IAC 255
#define TELNET_CMD_FIRST 240 /* SE, NOP, DM, BRK, IP, AO, AYT, EC, EL, GA, SB */
#define TELNET_CMD_LAST 250

/* Results of read_line. */
enum {
    READ_LINE = 1,      /* s->line holds a command (CRLF and telnet codes removed) */
    READ_EOF = 0,       /* the client closed the connection */
    READ_ERROR = -1,    /* I/O error: close */
    READ_TIMEOUT = -2,  /* no whole line within the wait */
    READ_SHUTDOWN = -3, /* the server is stopping */
    READ_TOO_LONG = -4, /* a line over FTPD_LINE_MAX was discarded */
    READ_NUL = -5       /* the line held a NUL byte */
};

/* ---- replies ---------------------------------------------------------- */

/* Replace what must never reach the client raw: CR and LF would end the
 * reply line early and let a file name forge a reply. */
static void scrub(char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0')
            p[i] = '?';
}

/* Send all n bytes: through the library in clear, through TLS once the
 * connection has it (within the data timeout, as SO_SNDTIMEO bounds a
 * write in clear). Returns 0 or -1. */
static int ctrl_write(session *s, const char *buf, size_t n)
{
    long long deadline;

    if (s->ctrl_tls == NULL)
        return ss_write(s->req, buf, n) < 0 ? -1 : 0;
    deadline = ftpd_now_ms() + (long long)s->cfg->data_timeout * 1000;
    /* Bounded by the deadline: each turn writes or waits for what is left. */
    while (n > 0) {
        ssize_t k = tls_conn_write(s->ctrl_tls, buf, n);
        struct pollfd p = {.fd = s->ctrl_fd};
        long long left;

        if (k > 0) {
            buf += k;
            n -= (size_t)k;
            continue;
        }
        if (errno != EAGAIN)
            return -1;
        left = deadline - ftpd_now_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        p.events = tls_conn_want(s->ctrl_tls);
        if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
            return -1;
    }
    return 0;
}

static int send_line(session *s, const char *prefix, const char *fmt, va_list ap) SS_PRINTF(3, 0);

static int send_line(session *s, const char *prefix, const char *fmt, va_list ap)
{
    char buf[FTPD_REPLY_MAX];
    char out[2 * FTPD_REPLY_MAX];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "%s", prefix);
    size_t o = 0;
    int k;

    k = vsnprintf(buf + n, sizeof(buf) - n - 2, fmt, ap);
    if (k < 0)
        k = 0;
    if ((size_t)k > sizeof(buf) - n - 3)
        k = (int)(sizeof(buf) - n - 3);
    scrub(buf + n, (size_t)k);
    n += (size_t)k;
    /* The control connection is a telnet stream (RFC 959, RFC 854): a 0xff
     * byte in a name must go out as IAC IAC, or the client reads it as a
     * telnet command and loses what follows. */
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)buf[i] == TELNET_IAC)
            out[o++] = (char)TELNET_IAC;
        out[o++] = buf[i];
    }
    out[o++] = '\r';
    out[o++] = '\n';
    return ctrl_write(s, out, o);
}

int reply(session *s, int code, const char *fmt, ...)
{
    char prefix[8];
    va_list ap;
    int rc;

    snprintf(prefix, sizeof(prefix), "%03d ", code);
    va_start(ap, fmt);
    rc = send_line(s, prefix, fmt, ap);
    va_end(ap);
    return rc;
}

int reply_begin(session *s, int code, const char *fmt, ...)
{
    char prefix[8];
    va_list ap;
    int rc;

    snprintf(prefix, sizeof(prefix), "%03d-", code);
    va_start(ap, fmt);
    rc = send_line(s, prefix, fmt, ap);
    va_end(ap);
    return rc;
}

/* Continuation lines start with a space, so none can look like the end of
 * the reply ("213 ..."), whatever a file name holds. */
int reply_line(session *s, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = send_line(s, " ", fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- reading a line ----------------------------------------------------- */

/* A line may be waiting: bytes buffered that did not make a whole line when
 * last looked at (in_stalled) do not count, so a client that sent half a
 * line is not asked again until more arrives. */
bool control_input_pending(session *s)
{
    size_t n;

    if (s->ctrl_tls != NULL) {
        if (tls_conn_pending(s->ctrl_tls) > 0 || s->tls_in_eof)
            return true;
        n = s->tls_in_len;
    } else {
        n = ss_pending(s->req);
    }
    return n > 0 && n != s->in_stalled;
}

/* Bytes of an unfinished line held for the next read. */
static size_t buffered(const session *s)
{
    return s->ctrl_tls != NULL ? s->tls_in_len : ss_pending(s->req);
}

/* ---- TLS ------------------------------------------------------------------ */

int control_start_tls(session *s, long long deadline_ms)
{
    int fl;

    /* RFC 4217: the client waits for 234 before its handshake; bytes that
     * came with AUTH would be part of it, read in clear by the library. */
    if (ss_pending(s->req) > 0) {
        log_msg("%s: data sent after AUTH before the TLS handshake", s->peer_str);
        errno = EPROTO;
        goto fail;
    }
    if (tls_new_sid_ctx(s->tls_sid_ctx) < 0)
        goto fail;
    s->tls_in = malloc(TLS_IN_CAP);
    if (s->tls_in == NULL)
        goto fail;
    s->tls_in_len = 0;
    s->tls_in_eof = false;
    s->in_stalled = 0;
    fl = fcntl(s->ctrl_fd, F_GETFL);
    if (fl < 0 || fcntl(s->ctrl_fd, F_SETFL, fl | O_NONBLOCK) < 0)
        goto fail;
    s->ctrl_tls = tls_conn_new(s->ctrl_fd, s->tls_sid_ctx, NULL);
    if (s->ctrl_tls == NULL)
        goto fail;
    if (tls_conn_handshake(s->ctrl_tls, deadline_ms, ss_server_stop_fd(ss_request_server(s->req)),
                           s->peer_str) < 0)
        goto fail;
    log_msg("%s: TLS on the control connection (%s)", s->peer_str, tls_conn_version(s->ctrl_tls));
    return 0;
fail:;
    int err = errno;
    /* Nothing more can be said on this connection: neither in clear (the
     * client expects TLS) nor through a handshake that failed. */
    tls_conn_free(s->ctrl_tls);
    s->ctrl_tls = NULL;
    free(s->tls_in);
    s->tls_in = NULL;
    s->tls_in_len = 0;
    shutdown(s->ctrl_fd, SHUT_RDWR);
    s->quit = true;
    errno = err;
    return -1;
}

void control_end_tls(session *s)
{
    if (s->ctrl_tls != NULL)
        (void)tls_conn_shutdown(s->ctrl_tls); /* close_notify, without waiting */
    tls_conn_free(s->ctrl_tls);
    s->ctrl_tls = NULL;
    free(s->tls_in);
    s->tls_in = NULL;
    s->tls_in_len = 0;
}

/* ss_readline_ex (without SS_LINE_DISCARD) for a control connection that
 * speaks TLS: a line through its LF, or a piece of size - 1 bytes of a
 * longer one, or a last line without LF; 0 at the end of input; -1 with
 * ETIMEDOUT at deadline_ms, ECANCELED once the server stops (watch_stop,
 * and only while waiting), or the read's error. */
static ssize_t tls_readline(session *s, char *buf, size_t size, long long deadline_ms,
                            bool watch_stop)
{
    int stop_fd = watch_stop ? ss_server_stop_fd(ss_request_server(s->req)) : -1;

    /* Bounded by the deadline: each turn returns, reads or waits. */
    for (;;) {
        size_t look = s->tls_in_len < size - 1 ? s->tls_in_len : size - 1;
        const char *lf = memchr(s->tls_in, '\n', look);
        size_t take = 0;
        struct pollfd p[2] = {{.fd = s->ctrl_fd}, {.fd = stop_fd, .events = POLLIN}};
        long long left;
        ssize_t n;

        if (lf != NULL)
            take = (size_t)(lf - s->tls_in) + 1;
        else if (s->tls_in_len >= size - 1)
            take = size - 1;
        else if (s->tls_in_eof)
            take = s->tls_in_len;
        if (take > 0 || s->tls_in_eof) {
            memcpy(buf, s->tls_in, take);
            buf[take] = '\0';
            memmove(s->tls_in, s->tls_in + take, s->tls_in_len - take);
            s->tls_in_len -= take;
            return (ssize_t)take;
        }
        n = tls_conn_read(s->ctrl_tls, s->tls_in + s->tls_in_len, TLS_IN_CAP - s->tls_in_len);
        if (n > 0) {
            s->tls_in_len += (size_t)n;
            continue;
        }
        if (n == 0) {
            s->tls_in_eof = true;
            continue;
        }
        if (errno != EAGAIN)
            return -1;
        left = deadline_ms - ftpd_now_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        p[0].events = tls_conn_want(s->ctrl_tls);
        n = poll(p, stop_fd >= 0 ? 2 : 1, (int)left);
        if (n < 0 && errno != EINTR)
            return -1;
        if (n > 0 && stop_fd >= 0 && (p[1].revents & POLLIN)) {
            errno = ECANCELED;
            return -1;
        }
    }
}

/* Remove telnet commands in place; IAC IAC stands for a 0xff byte. Only
 * the one-byte commands (IP, DM, ... that clients send around ABOR) are
 * removed: FTP clients negotiate no options, so any other 0xff is a byte
 * of a name that is not UTF-8 and stays, rather than eating what follows. */
static size_t strip_telnet(char *p, size_t n)
{
    size_t out = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        unsigned char next = i + 1 < n ? (unsigned char)p[i + 1] : 0;

        if (c != TELNET_IAC) {
            p[out++] = p[i];
            continue;
        }
        if (next == TELNET_IAC) {
            p[out++] = p[i];
            i++;
        } else if (next >= TELNET_CMD_FIRST && next <= TELNET_CMD_LAST) {
            i++;
        } else {
            p[out++] = p[i];
        }
    }
    return out;
}

/* Make the raw line in s->line (len bytes, its line end included) a
 * command: the line end and telnet commands go, and a line too long or
 * with a NUL byte is refused. */
static int finish_line(session *s, size_t len)
{
    /* Telnet commands first: one between the text and the line end must
     * not keep a CR inside the command. */
    len = strip_telnet(s->line, len);
    while (len > 0 && (s->line[len - 1] == '\n' || s->line[len - 1] == '\r'))
        len--;
    s->line[len] = '\0';
    if (len > FTPD_LINE_MAX)
        return READ_TOO_LONG;
    /* A CR inside the line stays: it may name an existing file, and the
     * commands that make names refuse it (553). */
    if (memchr(s->line, '\0', len) != NULL)
        return READ_NUL;
    return READ_LINE;
}

/* Wait up to timeout_ms for a whole command line and read it into s->line;
 * with 0 only what has already arrived is taken. With watch_stop the
 * server's stop ends the wait (a line already buffered still comes first).
 * The library hands an over-long line over in pieces of sizeof(s->line) - 1
 * bytes; they are dropped here, and a line that goes on past
 * FTPD_DISCARD_MAX ends the session, so an endless line costs a bounded
 * amount of reading, not the whole idle timeout. */
static int read_line(session *s, int timeout_ms, bool watch_stop)
{
    unsigned flags = watch_stop ? SS_LINE_STOP : 0u;
    long long deadline = ftpd_now_ms() + timeout_ms;
    ssize_t n;
    int err;

    for (;;) {
        long long left = deadline - ftpd_now_ms();
        if (s->ctrl_tls != NULL)
            n = tls_readline(s, s->line, sizeof(s->line), deadline, watch_stop);
        else
            n = ss_readline_ex(s->req, s->line, sizeof(s->line),
                               (double)(left > 0 ? left : 0) / 1000.0, flags, NULL);
        err = errno;
        s->in_stalled = 0;
        if (n <= 0 || s->line[n - 1] == '\n')
            break;
        if ((size_t)n < sizeof(s->line) - 1)
            return READ_EOF; /* the connection ended inside a line */
        /* A piece of a line too long to be a command. */
        s->in_discarding = true;
        s->in_dropped += (size_t)n;
        if (s->in_dropped > FTPD_DISCARD_MAX) {
            log_msg("%s: a command line went on past %d bytes", s->peer_str, FTPD_DISCARD_MAX);
            errno = EMSGSIZE;
            return READ_ERROR;
        }
    }
    if (n > 0 && s->in_discarding) {
        /* The tail of a line whose head was dropped. */
        s->in_discarding = false;
        s->in_dropped = 0;
        return READ_TOO_LONG;
    }
    if (n > 0)
        return finish_line(s, (size_t)n);
    if (n == 0)
        return READ_EOF; /* also when the connection ended inside a line */
    switch (err) {
    case ETIMEDOUT:
    case ECANCELED:
        s->in_stalled = buffered(s);
        return err == ETIMEDOUT ? READ_TIMEOUT : READ_SHUTDOWN;
    default:
        errno = err;
        return READ_ERROR;
    }
}

/* ---- what a line means -------------------------------------------------- */

static ctrl_event next_event(session *s, int timeout_ms, bool watch_stop)
{
    int r = read_line(s, timeout_ms, watch_stop);

    /* A failure of our own (ENOMEM, ...) is logged; a client's reset is
     * only a disconnect. */
    if (r == READ_ERROR && errno != ECONNRESET)
        log_msg("%s: reading a command: %s", s->peer_str, strerror(errno));
    switch (r) {
    case READ_LINE:
        return CTRL_LINE;
    case READ_TOO_LONG:
        reply(s, 500, "Line too long.");
        return CTRL_NONE;
    case READ_NUL:
        reply(s, 501, "NUL byte in command.");
        return CTRL_NONE;
    case READ_TIMEOUT:
        return CTRL_TIMEOUT;
    case READ_SHUTDOWN:
        return CTRL_SHUTDOWN;
    default: /* READ_EOF, READ_ERROR */
        s->quit = true;
        return CTRL_LOST;
    }
}

ctrl_event control_next(session *s, int timeout_ms)
{
    return next_event(s, timeout_ms, true);
}

int control_while_busy(session *s)
{
    /* The stop is not watched here: busy work (a transfer) is given the
     * library's grace, and its own loop watches the stop descriptor. */
    ctrl_event e = next_event(s, 0, false);

    if (e == CTRL_LINE)
        return s->busy_command(s, s->line);
    if (e == CTRL_LOST)
        return XCMD_LOST;
    return XCMD_CONTINUE;
}
