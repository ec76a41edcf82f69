/*
 * control.c - the control connection: replies out, command lines in.
 *
 * Reading: every wait is a poll on the control socket and the server's
 * shutdown descriptor, bounded by the caller's timeout. Lines are read with
 * ss_read into the session's own line buffer (s->in), which holds one
 * line of FTPD_LINE_MAX bytes and discards longer ones in pieces, with a
 * deadline for the whole line. The buffer is touched only by
 * control_read_line, control_input_pending and take_line; finish_line then
 * removes the line end and telnet IAC sequences (some clients send IAC IP /
 * IAC DM before ABOR) and refuses lines with a NUL byte, whatever read the
 * line.
 */
#include "control.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "timeutil.h"

#define TELNET_IAC 255
#define TELNET_CMD_FIRST 240 /* SE, NOP, DM, BRK, IP, AO, AYT, EC, EL, GA, SB */
#define TELNET_CMD_LAST 250

static int g_shutdown_fd = -1;

void control_set_shutdown_fd(int fd)
{
    g_shutdown_fd = fd;
}

int control_shutdown_fd(void)
{
    return g_shutdown_fd;
}

/* ---- replies ---------------------------------------------------------- */

/* Replace what must never reach the client raw: CR and LF would end the
 * reply line early and let a file name forge a reply. */
static void scrub(char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0')
            p[i] = '?';
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
    return ss_write(s->req, out, o) < 0 ? -1 : 0;
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

/* ---- the line buffer ---------------------------------------------------- */

/* A whole line is waiting, in our buffer or the library's. */
bool control_input_pending(session *s)
{
    return memchr(s->in.buf, '\n', s->in.len) != NULL || ss_pending(s->req) > 0;
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

/* Wait until the control connection is readable, within timeout_ms. Returns
 * 1 when readable, 0 on timeout, READ_SHUTDOWN once the server stops (the
 * first time only), -1 on error. */
static int wait_readable(session *s, long timeout_ms)
{
    struct pollfd p[2];
    int n = 1;
    struct timespec start;

    if (ss_pending(s->req) > 0)
        return 1;
    p[0].fd = s->ctrl_fd;
    p[0].events = POLLIN;
    if (g_shutdown_fd >= 0 && !s->shutdown_seen) {
        p[1].fd = g_shutdown_fd;
        p[1].events = POLLIN;
        p[1].revents = 0;
        n = 2;
    }
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        long left = timeout_ms - ftpd_ms_since(&start);
        int r;

        if (left < 0)
            left = 0;
        r = poll(p, (nfds_t)n, (int)left);
        if (r < 0 && errno == EINTR)
            continue; /* a signal (SIGHUP): the deadline keeps the loop bounded */
        if (r < 0)
            return -1;
        if (r == 0)
            return 0;
        if (n == 2 && (p[1].revents & POLLIN)) {
            s->shutdown_seen = true;
            return READ_SHUTDOWN;
        }
        return 1;
    }
}

/* Make the raw line in s->line (len bytes, its line end included) a
 * command: the line end and telnet commands go, and a line too long or
 * with a NUL byte is refused. Independent of where the line came from. */
static int finish_line(session *s, size_t len)
{
    while (len > 0 && (s->line[len - 1] == '\n' || s->line[len - 1] == '\r'))
        len--;
    len = strip_telnet(s->line, len);
    s->line[len] = '\0';
    if (len > FTPD_LINE_MAX)
        return READ_TOO_LONG;
    if (memchr(s->line, '\0', len) != NULL)
        return READ_NUL;
    return READ_LINE;
}

/* Move the first line of s->in (ending at nl) to s->line. */
static int take_line(session *s, const char *nl)
{
    size_t used = (size_t)(nl - s->in.buf) + 1;
    bool discarded = s->in.dropped > 0;

    memcpy(s->line, s->in.buf, used);
    memmove(s->in.buf, s->in.buf + used, s->in.len - used);
    s->in.len -= used;
    s->in.dropped = 0;
    if (discarded)
        return READ_TOO_LONG; /* the tail of a line whose head was dropped */
    return finish_line(s, used);
}

int control_read_line(session *s, int timeout_ms)
{
    struct timespec start;

    clock_gettime(CLOCK_MONOTONIC, &start);
    /* Bounded: each turn takes a line, consumes input, or waits for what
     * is left of the timeout; an endless line ends at FTPD_DISCARD_MAX. */
    for (;;) {
        const char *nl = memchr(s->in.buf, '\n', s->in.len);
        long left;
        ssize_t n;
        int w;

        if (nl != NULL)
            return take_line(s, nl);
        if (s->in.len == sizeof(s->in.buf)) {
            /* No end in sight: drop what we have, in bounded pieces. */
            s->in.dropped += s->in.len;
            s->in.len = 0;
            if (s->in.dropped > FTPD_DISCARD_MAX)
                return READ_ERROR;
            continue;
        }
        left = timeout_ms - ftpd_ms_since(&start);
        w = wait_readable(s, left < 0 ? 0 : left);
        if (w == 0)
            return READ_TIMEOUT;
        if (w == READ_SHUTDOWN)
            return READ_SHUTDOWN;
        if (w < 0)
            return READ_ERROR;
        n = ss_read(s->req, s->in.buf + s->in.len, sizeof(s->in.buf) - s->in.len);
        if (n < 0)
            return errno == ETIMEDOUT || errno == EAGAIN ? READ_TIMEOUT : READ_ERROR;
        if (n == 0)
            return READ_EOF; /* also when the connection ended inside a line */
        s->in.len += (size_t)n;
    }
}

/* ---- what a line means -------------------------------------------------- */

ctrl_event control_next(session *s, int timeout_ms)
{
    switch (control_read_line(s, timeout_ms)) {
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

int control_while_busy(session *s)
{
    ctrl_event e = control_next(s, 0);

    if (e == CTRL_LINE)
        return s->busy_command(s, s->line);
    if (e == CTRL_LOST)
        return XCMD_LOST;
    return XCMD_CONTINUE;
}
