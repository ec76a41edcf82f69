/*
 * session.c - the control connection: handler lifecycle, command lines in,
 * replies out.
 *
 * Reading: every wait is a poll on the control socket and the server's
 * shutdown descriptor, bounded by the idle timeout. A line is read with the
 * library's bounded ss_readline; telnet IAC sequences (some clients send
 * IAC IP / IAC DM before ABOR) are removed, over-long lines are discarded
 * and answered with 500, lines with a NUL byte are refused.
 */
#include "session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "connlimit.h"
#include "log.h"
#include "throttle.h"
#include "transfer.h"

#define TELNET_IAC 255
#define TELNET_CMD_FIRST 240 /* SE, NOP, DM, BRK, IP, AO, AYT, EC, EL, GA, SB */
#define TELNET_CMD_LAST 250

static const ftpd_config *g_cfg;
static int g_shutdown_fd = -1;

void session_global_init(const ftpd_config *cfg, int shutdown_fd)
{
    g_cfg = cfg;
    g_shutdown_fd = shutdown_fd;
}

int session_shutdown_fd(void)
{
    return g_shutdown_fd;
}

bool session_shutdown_requested(void)
{
    struct pollfd p = {.fd = g_shutdown_fd, .events = POLLIN};

    if (g_shutdown_fd < 0)
        return false;
    return poll(&p, 1, 0) > 0;
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

static int send_line(session *s, const char *prefix, const char *fmt, va_list ap)
    SS_PRINTF(3, 0);

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

/* ---- reading commands --------------------------------------------------- */

/* A whole line is waiting, in our buffer or the library's. */
bool session_input_pending(session *s)
{
    return memchr(s->in, '\n', s->in_len) != NULL || ss_pending(s->req) > 0;
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

long long session_now_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static long ms_since(const struct timespec *start)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

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
        long left = timeout_ms - ms_since(&start);
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
            return -3;
        }
        return 1;
    }
}

/* Move the first line of s->in (ending at nl) to s->line. */
static int take_line(session *s, const char *nl)
{
    size_t used = (size_t)(nl - s->in) + 1;
    size_t len = used;
    bool discarded = s->dropped > 0;

    memcpy(s->line, s->in, len);
    memmove(s->in, s->in + used, s->in_len - used);
    s->in_len -= used;
    s->dropped = 0;
    if (discarded)
        return READ_TOO_LONG; /* the tail of a line whose head was dropped */
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

int session_read_line(session *s, int timeout_ms)
{
    struct timespec start;

    clock_gettime(CLOCK_MONOTONIC, &start);
    /* Bounded: each turn takes a line, consumes input, or waits for what
     * is left of the timeout; an endless line ends at FTPD_DISCARD_MAX. */
    for (;;) {
        const char *nl = memchr(s->in, '\n', s->in_len);
        long left;
        ssize_t n;
        int w;

        if (nl != NULL)
            return take_line(s, nl);
        if (s->in_len == sizeof(s->in)) {
            /* No end in sight: drop what we have, in bounded pieces. */
            s->dropped += s->in_len;
            s->in_len = 0;
            if (s->dropped > FTPD_DISCARD_MAX)
                return READ_ERROR;
            continue;
        }
        left = timeout_ms - ms_since(&start);
        w = wait_readable(s, left < 0 ? 0 : left);
        if (w == 0)
            return READ_TIMEOUT;
        if (w == -3)
            return READ_SHUTDOWN;
        if (w < 0)
            return READ_ERROR;
        n = ss_read(s->req, s->in + s->in_len, sizeof(s->in) - s->in_len);
        if (n < 0)
            return errno == ETIMEDOUT || errno == EAGAIN ? READ_TIMEOUT : READ_ERROR;
        if (n == 0)
            return READ_EOF; /* also when the connection ended inside a line */
        s->in_len += (size_t)n;
    }
}

/* ---- lifecycle ---------------------------------------------------------- */

void session_reset(session *s)
{
    xfer_forget(s);
    if (s->fs_open)
        vfs_close(&s->fs);
    s->fs_open = false;
    s->have_user = false;
    s->logged_in = false;
    s->anonymous = false;
    s->can_write = false;
    s->can_modify = false;
    /* Logged out (a new session, or REIN): log in again within the limit. */
    s->login_deadline_ms = session_now_ms() + (long long)s->cfg->login_timeout * 1000;
    s->user[0] = '\0';
    s->ident[0] = '\0';
    s->type = 'A';
    s->rest = 0;
    s->epsv_all = false;
    s->have_rnfr = false;
    s->hash_algo = "SHA-256";
    s->mlst_facts = MLST_ALL;
}

static void addr_host(const struct sockaddr_storage *ss, char *out, size_t size)
{
    const void *a = NULL;

    if (ss->ss_family == AF_INET) {
        a = &((const struct sockaddr_in *)(const void *)ss)->sin_addr;
    } else if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr;

        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            inet_ntop(AF_INET, &a6->s6_addr[12], out, (socklen_t)size);
            return;
        }
        a = a6;
    }
    if (a == NULL || inet_ntop(ss->ss_family, a, out, (socklen_t)size) == NULL)
        snprintf(out, size, "?");
}

static void session_free(session *s)
{
    if (s == NULL)
        return;
    session_reset(s);
    if (s->counted)
        connlimit_release((const struct sockaddr *)&s->peer);
    free(s->buf);
    free(s->abuf);
    free(s);
}

static int session_setup(ss_request *req)
{
    session *s = calloc(1, sizeof(*s));
    const struct sockaddr *peer;
    socklen_t plen = 0;
    int one = 1;

    if (s == NULL)
        return -1;
    s->req = req;
    s->cfg = g_cfg;
    s->ctrl_fd = ss_request_fd(req);
    s->pasv_fd = -1;
    s->started = time(NULL);
    peer = ss_request_client_address(req, &plen);
    if (peer != NULL && plen <= sizeof(s->peer)) {
        memcpy(&s->peer, peer, plen);
        s->peer_len = plen;
    }
    s->local_len = sizeof(s->local);
    if (getsockname(s->ctrl_fd, (struct sockaddr *)&s->local, &s->local_len) < 0)
        s->local_len = 0;
    addr_host(&s->peer, s->peer_host, sizeof(s->peer_host));
    snprintf(s->peer_str, sizeof(s->peer_str), "%s", ss_request_client_str(req));
    /* Urgent data (the telnet "synch" some clients send with ABOR, or
     * Python's ftplib sending ABOR itself as urgent) stays in the stream. */
    setsockopt(s->ctrl_fd, SOL_SOCKET, SO_OOBINLINE, &one, sizeof(one));
    setsockopt(s->ctrl_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* Until a login, no single read or write may outlast the login limit. */
    ss_request_set_timeout(req, (double)g_cfg->login_timeout);
    session_reset(s);

    ss_request_set_user(req, s);
    /* Over a limit the session is refused in handle, not here: a refusing
     * setup counts as a server error, and this is ordinary operation. */
    if (connlimit_acquire((const struct sockaddr *)&s->peer) < 0) {
        s->refused = true;
        return 0;
    }
    s->counted = true;
    s->buf = malloc(FTPD_XFER_BUF);
    s->abuf = malloc(2 * FTPD_XFER_BUF);
    if (s->buf == NULL || s->abuf == NULL) {
        ss_request_set_user(req, NULL);
        session_free(s);
        return -1;
    }
    log_msg("%s: connect", s->peer_str);
    return 0;
}

/* How long the next wait for a command may last: the idle timeout, cut
 * short by the login deadline before a login and by an unused passive
 * listener's deadline. */
static long long command_wait_ms(const session *s)
{
    long long now = session_now_ms();
    long long wait = (long long)s->cfg->idle_timeout * 1000;

    if (!s->logged_in && s->login_deadline_ms - now < wait)
        wait = s->login_deadline_ms - now;
    if (s->pasv_fd >= 0 && s->pasv_deadline_ms - now < wait)
        wait = s->pasv_deadline_ms - now;
    return wait < 0 ? 0 : wait;
}

/* A wait for a command ended without one: close an expired passive
 * listener (and wait on), or end the session at the login deadline or the
 * idle timeout. Returns true to go on. */
static bool command_wait_expired(session *s)
{
    long long now = session_now_ms();

    if (s->pasv_fd >= 0 && now >= s->pasv_deadline_ms) {
        log_msg("%s: passive listener unused for %u s, closed", s->peer_str,
                s->cfg->data_timeout);
        xfer_forget(s);
        if (s->logged_in || now < s->login_deadline_ms)
            return true;
    }
    if (!s->logged_in && now >= s->login_deadline_ms) {
        reply(s, 421, "Login timeout: closing control connection.");
        log_msg("%s: no login within %u s", s->peer_str, s->cfg->login_timeout);
        return false;
    }
    reply(s, 421, "Timeout: closing control connection.");
    log_msg("%s: idle timeout", s->peer_str);
    return false;
}

static int session_handle(ss_request *req)
{
    session *s = ss_request_user(req);

    if (s->refused) {
        log_msg("%s: refused, too many connections", s->peer_str);
        reply(s, 421, "Too many connections.");
        return SS_OK;
    }
    if (throttle_banned((const struct sockaddr *)&s->peer, NULL)) {
        log_msg("%s: refused, address banned after failed logins", s->peer_str);
        reply(s, 421, "Too many failed logins; try again later.");
        return SS_OK;
    }
    /* Bounded: every turn either serves a line or ends the session; the
     * idle timeout ends a silent client, the login deadline one that never
     * logs in, whatever it sends meanwhile. */
    if (reply(s, 220, FTPD_NAME " " FTPD_VERSION " ready.") < 0)
        return SS_OK;
    while (!s->quit) {
        bool was_logged_in = s->logged_in;
        int r;

        if (!s->logged_in && session_now_ms() >= s->login_deadline_ms) {
            /* Checked before every command, so a client that keeps talking
             * is held to the deadline as well as one that keeps silent. */
            r = READ_TIMEOUT;
        } else if (s->have_pending) {
            s->have_pending = false;
            memcpy(s->line, s->pending, sizeof(s->line));
            r = READ_LINE;
        } else {
            r = session_read_line(s, (int)command_wait_ms(s));
        }
        switch (r) {
        case READ_LINE:
            memcpy(s->cmd, s->line, sizeof(s->cmd));
            if (commands_dispatch(s, s->cmd) < 0)
                s->quit = true;
            /* Logged in (or out, by REIN): the I/O limit follows. */
            if (s->logged_in != was_logged_in)
                ss_request_set_timeout(req, s->logged_in ? (double)s->cfg->idle_timeout
                                                         : (double)s->cfg->login_timeout);
            break;
        case READ_TOO_LONG:
            reply(s, 500, "Line too long.");
            break;
        case READ_NUL:
            reply(s, 501, "NUL byte in command.");
            break;
        case READ_TIMEOUT:
            if (!command_wait_expired(s))
                s->quit = true;
            break;
        case READ_SHUTDOWN:
            reply(s, 421, "Server shutting down.");
            s->quit = true;
            break;
        default:
            s->quit = true;
            break;
        }
        /* After a transfer the server may have started stopping. */
        if (!s->quit && s->shutdown_seen && !s->have_pending) {
            reply(s, 421, "Server shutting down.");
            s->quit = true;
        }
    }
    return SS_OK;
}

static void session_finish(ss_request *req)
{
    session *s = ss_request_user(req);

    if (s == NULL)
        return;
    if (!s->refused)
        log_msg("%s: disconnect%s%s, %llu bytes in, %llu bytes out", s->peer_str,
                s->user[0] != '\0' ? " user " : "", s->user, s->bytes_in, s->bytes_out);
    ss_request_set_user(req, NULL);
    session_free(s);
}

const ss_handler session_handler = {
    .setup = session_setup,
    .handle = session_handle,
    .finish = session_finish,
};
