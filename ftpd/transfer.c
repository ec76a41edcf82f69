/*
 * transfer.c - data connections and the transfer loop.
 *
 * Passive: a listening socket on our control address, on a port from the
 * configured range; only a connection from the client's own address is
 * taken (others are closed and logged, and we keep waiting until the data
 * timeout). Active (PORT/EPRT): only to the client's own address and never
 * to a port below 1024 (FTP bounce protection, RFC 2577).
 *
 * While data moves, the loop polls the data socket, the control socket and
 * the server's shutdown descriptor, so ABOR and STAT are served at once.
 * HASH goes through the same loop (xfer_digest): it digests the file in
 * steps and looks at the control connection between them.
 */
#include "transfer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/sendfile.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "connlimit.h"
#include "hash.h"
#include "log.h"

#define PORT_MIN_ACTIVE 1024 /* PORT/EPRT to lower ports is refused */
#define PASV_BACKLOG 1

/* ---- addresses ---------------------------------------------------------- */

/* The IPv4 address inside an AF_INET or v4-mapped AF_INET6 address. */
static bool ipv4_of(const struct sockaddr_storage *ss, struct in_addr *out)
{
    if (ss->ss_family == AF_INET) {
        *out = ((const struct sockaddr_in *)(const void *)ss)->sin_addr;
        return true;
    }
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            memcpy(out, &a->s6_addr[12], 4);
            return true;
        }
    }
    return false;
}

static bool same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    struct in_addr a4, b4;
    bool av4 = ipv4_of(a, &a4), bv4 = ipv4_of(b, &b4);

    if (av4 || bv4)
        return av4 && bv4 && a4.s_addr == b4.s_addr;
    if (a->ss_family != AF_INET6 || b->ss_family != AF_INET6)
        return false;
    return memcmp(&((const struct sockaddr_in6 *)(const void *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)(const void *)b)->sin6_addr, 16) == 0;
}

static void set_port(struct sockaddr_storage *ss, unsigned port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)(void *)ss)->sin_port = htons((uint16_t)port);
    else if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)(void *)ss)->sin6_port = htons((uint16_t)port);
}

static unsigned get_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)(const void *)ss)->sin_port);
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)(const void *)ss)->sin6_port);
    return 0;
}

static bool control_is_ipv4(const session *s)
{
    struct in_addr a;
    return ipv4_of(&s->local, &a);
}

/* ---- preparing a data connection --------------------------------------- */

void xfer_forget(session *s)
{
    /* An open listener is always counted in its address's share (see
     * pasv_listen), so closing it gives the count back. */
    if (s->pasv_fd >= 0) {
        close(s->pasv_fd);
        connlimit_pasv_release((const struct sockaddr *)&s->peer);
    }
    s->pasv_fd = -1;
    s->dmode = DATA_NONE;
}

bool xfer_prepared(const session *s)
{
    return s->dmode != DATA_NONE;
}

static long elapsed_ms(const struct timespec *since)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* Listen on our control address, on a port from the range (a random start,
 * each port tried once) or any free port. Returns the port or -1. */
static int pasv_listen(session *s)
{
    struct sockaddr_storage addr = s->local;
    socklen_t alen = s->local_len;
    unsigned lo = s->cfg->pasv_lo, hi = s->cfg->pasv_hi;
    unsigned span = lo == 0 ? 1 : hi - lo + 1;
    unsigned start = 0;
    int one = 1;
    int fd;

    xfer_forget(s);
    if (alen == 0) {
        errno = ENOTCONN; /* no local address to listen on; never a stale EUSERS */
        return -1;
    }
    /* One address may hold only its share of the range (the count is
     * shared with forked sessions), so it cannot take every port from the
     * others. Counted before binding, given back in xfer_forget. */
    if (connlimit_pasv_acquire((const struct sockaddr *)&s->peer, s->cfg->max_pasv_per_ip) < 0)
        return -1;
    fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        goto fail;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (lo != 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        start = (unsigned)(ts.tv_nsec ^ (long)ts.tv_sec ^ (long)getpid()) % span;
    }
    for (unsigned i = 0; i < span; i++) {
        set_port(&addr, lo == 0 ? 0 : lo + (start + i) % span);
        if (bind(fd, (struct sockaddr *)&addr, alen) == 0) {
            if (listen(fd, PASV_BACKLOG) < 0)
                break;
            alen = sizeof(addr);
            if (getsockname(fd, (struct sockaddr *)&addr, &alen) < 0)
                break;
            s->pasv_fd = fd;
            s->dmode = DATA_PASV;
            /* Unused, the port is given back after the data timeout. */
            s->pasv_deadline_ms = session_now_ms() + (long long)s->cfg->data_timeout * 1000;
            return (int)get_port(&addr);
        }
        if (errno != EADDRINUSE)
            break;
    }
fail:;
    int err = errno;
    if (fd >= 0)
        close(fd);
    connlimit_pasv_release((const struct sockaddr *)&s->peer);
    errno = err;
    return -1;
}

/* The 425 of a failed PASV/EPSV (errno from pasv_listen). */
static int pasv_refused(session *s, const char *cmd)
{
    if (errno == EUSERS) {
        log_msg("%s: %s refused: the address holds its share of %u passive ports", s->peer_str, cmd,
                s->cfg->max_pasv_per_ip);
        return reply(s, 425, "Too many passive connections from your address.");
    }
    log_msg("%s: %s failed: %s", s->peer_str, cmd, strerror(errno));
    return reply(s, 425, "Cannot open passive connection.");
}

int xfer_cmd_pasv(session *s)
{
    struct in_addr a;
    unsigned char b[4];
    int port;

    if (s->epsv_all)
        return reply(s, 503, "PASV not allowed after EPSV ALL.");
    if (!control_is_ipv4(s))
        return reply(s, 522, "No IPv4 address for PASV; use EPSV.");
    port = pasv_listen(s);
    if (port < 0)
        return pasv_refused(s, "PASV");
    ipv4_of(&s->local, &a);
    if (s->cfg->pasv_address[0] != '\0')
        inet_pton(AF_INET, s->cfg->pasv_address, &a);
    memcpy(b, &a.s_addr, 4);
    return reply(s, 227, "Entering Passive Mode (%u,%u,%u,%u,%d,%d).", b[0], b[1], b[2], b[3],
                 port >> 8, port & 0xff);
}

int xfer_cmd_epsv(session *s, const char *arg)
{
    int port;

    if (arg != NULL && *arg != '\0') {
        if (strcasecmp(arg, "ALL") == 0) {
            s->epsv_all = true;
            return reply(s, 200, "EPSV ALL ok.");
        }
        /* RFC 2428: a protocol number we do not serve gets 522, which
         * names the ones we do; anything else is a syntax error. */
        if (strspn(arg, "0123456789") != strlen(arg))
            return reply(s, 501, "Syntax error in EPSV arguments.");
        if (strcmp(arg, "1") != 0 && strcmp(arg, "2") != 0)
            return reply(s, 522, "Network protocol not supported, use (%c).",
                         control_is_ipv4(s) ? '1' : '2');
        if ((arg[0] == '1') != control_is_ipv4(s))
            return reply(s, 522, "Network protocol not supported, use (%c).",
                         control_is_ipv4(s) ? '1' : '2');
    }
    port = pasv_listen(s);
    if (port < 0)
        return pasv_refused(s, "EPSV");
    return reply(s, 229, "Entering Extended Passive Mode (|||%d|).", port);
}

/* Common checks of an active-mode target; replies on refusal. */
static bool unspecified(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)(const void *)ss)->sin_addr.s_addr == INADDR_ANY;
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)(const void *)ss;
        return IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr);
    }
    return false;
}

static int accept_target(session *s, const struct sockaddr_storage *t_in, socklen_t len,
                         const char *cmd)
{
    struct sockaddr_storage tmp;
    const struct sockaddr_storage *t = t_in;
    unsigned port = get_port(t_in);

    /* Some clients (lftp on IPv6) announce the unspecified address, meaning
     * "my address": take the control connection's peer, which can never
     * point anywhere else. */
    if (unspecified(t_in)) {
        tmp = s->peer;
        len = s->peer_len;
        set_port(&tmp, port);
        t = &tmp;
    }
    if (!same_host(t, &s->peer)) {
        log_msg("%s: %s to a foreign address refused", s->peer_str, cmd);
        return reply(s, 504, "%s only to your own address.", cmd) < 0 ? -1 : 1;
    }
    if (port < PORT_MIN_ACTIVE) {
        log_msg("%s: %s to privileged port %u refused", s->peer_str, cmd, port);
        return reply(s, 504, "%s to ports below %d is not allowed.", cmd, PORT_MIN_ACTIVE) < 0
                   ? -1
                   : 1;
    }
    xfer_forget(s);
    /* Connect with the control connection's address family, so a v4-mapped
     * control connection reaches the IPv4 client. */
    memset(&s->port_addr, 0, sizeof(s->port_addr));
    if (s->local.ss_family == AF_INET6 && t->ss_family == AF_INET) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)(void *)&s->port_addr;
        a6->sin6_family = AF_INET6;
        a6->sin6_addr.s6_addr[10] = 0xff;
        a6->sin6_addr.s6_addr[11] = 0xff;
        memcpy(&a6->sin6_addr.s6_addr[12],
               &((const struct sockaddr_in *)(const void *)t)->sin_addr, 4);
        a6->sin6_port = htons((uint16_t)port);
        s->port_len = sizeof(*a6);
    } else {
        memcpy(&s->port_addr, t, len);
        s->port_len = len;
    }
    s->dmode = DATA_PORT;
    return 0;
}

static int parse_uint_range(const char *p, size_t len, unsigned max, unsigned *out)
{
    char tmp[8];
    char *end = NULL;
    unsigned long v;

    if (len == 0 || len >= sizeof(tmp))
        return -1;
    memcpy(tmp, p, len);
    tmp[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if (tmp[i] < '0' || tmp[i] > '9')
            return -1;
    v = strtoul(tmp, &end, 10);
    if (*end != '\0' || v > max)
        return -1;
    *out = (unsigned)v;
    return 0;
}

int xfer_cmd_port(session *s, const char *arg)
{
    unsigned v[6];
    const char *p = arg;
    struct sockaddr_in sin;
    int r;

    if (s->epsv_all)
        return reply(s, 503, "PORT not allowed after EPSV ALL.");
    if (!control_is_ipv4(s))
        return reply(s, 522, "PORT needs IPv4; use EPRT.");
    for (int i = 0; i < 6; i++) {
        const char *comma = strchr(p, ',');
        size_t len = i < 5 ? (comma != NULL ? (size_t)(comma - p) : (size_t)-1) : strlen(p);

        if (len == (size_t)-1 || parse_uint_range(p, len, 255, &v[i]) < 0)
            return reply(s, 501, "Syntax error in PORT arguments.");
        p += len + (i < 5 ? 1 : 0);
    }
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl((uint32_t)(v[0] << 24 | v[1] << 16 | v[2] << 8 | v[3]));
    sin.sin_port = htons((uint16_t)(v[4] << 8 | v[5]));
    {
        struct sockaddr_storage t;
        memset(&t, 0, sizeof(t));
        memcpy(&t, &sin, sizeof(sin));
        r = accept_target(s, &t, sizeof(sin), "PORT");
    }
    if (r != 0)
        return r < 0 ? -1 : 0;
    return reply(s, 200, "PORT command successful. Consider using PASV.");
}

/* EPRT |af|addr|port| with any delimiter from 33 to 126 (RFC 2428). */
int xfer_cmd_eprt(session *s, const char *arg)
{
    char d, fields[3][INET6_ADDRSTRLEN + 1];
    const char *p;
    unsigned af, port;
    struct sockaddr_storage t;
    socklen_t tlen;
    int r;

    if (s->epsv_all)
        return reply(s, 503, "EPRT not allowed after EPSV ALL.");
    d = arg[0];
    if (d < 33 || d > 126)
        return reply(s, 501, "Syntax error in EPRT arguments.");
    p = arg + 1;
    for (int i = 0; i < 3; i++) {
        const char *e = strchr(p, d);
        size_t len;

        if (e == NULL)
            return reply(s, 501, "Syntax error in EPRT arguments.");
        len = (size_t)(e - p);
        if (len == 0 || len >= sizeof(fields[i]))
            return reply(s, 501, "Syntax error in EPRT arguments.");
        memcpy(fields[i], p, len);
        fields[i][len] = '\0';
        p = e + 1;
    }
    if (*p != '\0')
        return reply(s, 501, "Syntax error in EPRT arguments.");
    if (parse_uint_range(fields[0], strlen(fields[0]), 9, &af) < 0 || (af != 1 && af != 2))
        return reply(s, 522, "Network protocol not supported, use (1,2).");
    if (parse_uint_range(fields[2], strlen(fields[2]), 65535, &port) < 0)
        return reply(s, 501, "Syntax error in EPRT port.");
    memset(&t, 0, sizeof(t));
    if (af == 1) {
        struct sockaddr_in *a = (struct sockaddr_in *)(void *)&t;
        a->sin_family = AF_INET;
        if (inet_pton(AF_INET, fields[1], &a->sin_addr) != 1)
            return reply(s, 501, "Syntax error in EPRT address.");
        tlen = sizeof(*a);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)(void *)&t;
        a->sin6_family = AF_INET6;
        if (inet_pton(AF_INET6, fields[1], &a->sin6_addr) != 1)
            return reply(s, 501, "Syntax error in EPRT address.");
        tlen = sizeof(*a);
    }
    set_port(&t, port);
    if ((af == 1) != control_is_ipv4(s))
        return reply(s, 522, "Network protocol not supported, use (%c).",
                     control_is_ipv4(s) ? '1' : '2');
    r = accept_target(s, &t, tlen, "EPRT");
    if (r != 0)
        return r < 0 ? -1 : 0;
    return reply(s, 200, "EPRT command successful. Consider using EPSV.");
}

/* ---- opening the data connection --------------------------------------- */

/* A command line that arrives while a data connection is awaited: ABOR
 * cancels the wait, NOOP and STAT are answered, anything else waits for the
 * transfer's final reply. Returns 0, or -1 with errno ECANCELED (ABOR) or
 * ECONNRESET (the control connection is gone; s->quit is set). */
static int ctrl_while_waiting(session *s)
{
    int r = session_read_line(s, 0);

    if (r == READ_LINE) {
        if (commands_during_transfer(s, s->line) == XCMD_ABORT) {
            errno = ECANCELED;
            return -1;
        }
    } else if (r == READ_TOO_LONG) {
        reply(s, 500, "Line too long.");
    } else if (r == READ_NUL) {
        reply(s, 501, "NUL byte in command.");
    } else if (r == READ_EOF || r == READ_ERROR) {
        s->quit = true;
        errno = ECONNRESET;
        return -1;
    }
    return 0;
}

/* Wait until fd shows events, within what is left of timeout_ms since
 * start, serving the control connection meanwhile: ABOR ends the wait, and
 * a client that leaves ends it at once instead of holding its session until
 * the data timeout. Once a command is kept for later, only a hang-up
 * (POLLRDHUP) is watched. Returns 0 when ready, -1 with errno (ETIMEDOUT,
 * or as ctrl_while_waiting). */
static int wait_data(session *s, int fd, short events, int timeout_ms,
                     const struct timespec *start)
{
    /* Bounded by the timeout: each turn serves a line or waits for what is
     * left of it. */
    for (;;) {
        struct pollfd p[2] = {{.fd = fd, .events = events},
                              {.fd = s->ctrl_fd, .events = POLLRDHUP}};
        long left = timeout_ms - elapsed_ms(start);
        int r;

        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (!s->have_pending && session_input_pending(s)) {
            if (ctrl_while_waiting(s) < 0)
                return -1;
            continue;
        }
        if (!s->have_pending)
            p[1].events |= POLLIN;
        r = poll(p, 2, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (p[1].revents & POLLIN) {
            if (ctrl_while_waiting(s) < 0)
                return -1;
        } else if (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
            s->quit = true;
            errno = ECONNRESET;
            return -1;
        }
        if (p[0].revents != 0)
            return 0;
    }
}

static int open_passive(session *s, int timeout_ms)
{
    struct timespec start;
    int fd = -1;

    clock_gettime(CLOCK_MONOTONIC, &start);
    /* Bounded by the data timeout: each turn waits for what is left of it. */
    for (;;) {
        struct sockaddr_storage from;
        socklen_t flen = sizeof(from);

        if (wait_data(s, s->pasv_fd, POLLIN, timeout_ms, &start) < 0)
            return -1;
        fd = accept4(s->pasv_fd, (struct sockaddr *)&from, &flen, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
                continue;
            return -1;
        }
        if (same_host(&from, &s->peer))
            return fd;
        {
            char who[INET6_ADDRSTRLEN + 16];
            if (ss_format_address((struct sockaddr *)&from, flen, who, sizeof(who)) == NULL)
                snprintf(who, sizeof(who), "?");
            log_msg("%s: data connection from foreign address %s refused", s->peer_str, who);
        }
        close(fd);
    }
}

static int open_active(session *s, int timeout_ms)
{
    struct sockaddr_storage src = s->local;
    int fd, err = 0;
    socklen_t elen = sizeof(err);
    struct timespec start;

    fd = socket(s->port_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    /* Connect from the address the client talks to, so its firewall and our
     * same-host check agree. */
    if (src.ss_family == s->port_addr.ss_family) {
        set_port(&src, 0);
        if (bind(fd, (struct sockaddr *)&src, s->local_len) < 0)
            goto fail;
    }
    if (connect(fd, (struct sockaddr *)&s->port_addr, s->port_len) == 0)
        return fd;
    if (errno != EINPROGRESS)
        goto fail;
    clock_gettime(CLOCK_MONOTONIC, &start);
    if (wait_data(s, fd, POLLOUT, timeout_ms, &start) < 0)
        goto fail;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
        goto fail;
    if (err != 0) {
        errno = err;
        goto fail;
    }
    return fd;
fail:
    err = errno;
    close(fd);
    errno = err;
    return -1;
}

/* ---- moving data -------------------------------------------------------- */

typedef struct loop_state {
    session *s;
    int data_fd;
    bool ctrl_blocked;        /* a deferred command waits: stop reading */
    bool draining;            /* shutdown seen: the drain deadline runs */
    struct timespec drain_start;
    struct timespec last_progress;
} loop_state;

/* LF -> CRLF. Returns the converted length (at most 2 * n). */
static size_t to_crlf(const unsigned char *in, size_t n, unsigned char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        if (in[i] == '\n')
            out[o++] = '\r';
        out[o++] = in[i];
    }
    return o;
}

/* CRLF -> LF. A CR at the end of a block is held back in *held until the
 * next block shows whether an LF follows. */
static size_t from_crlf(const unsigned char *in, size_t n, unsigned char *out, bool *held)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        if (*held) {
            *held = false;
            if (in[i] != '\n')
                out[o++] = '\r';
        }
        if (in[i] == '\r') {
            *held = true;
            continue;
        }
        out[o++] = in[i];
    }
    return o;
}

static int write_file(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One turn's wait. Returns a result to stop with, or -1 to go on; *data_ok
 * tells whether the data socket is ready. */
static int wait_turn(loop_state *ls, short data_events, bool *data_ok)
{
    session *s = ls->s;
    struct pollfd p[3];
    nfds_t n = 0;
    long timeout = (long)s->cfg->data_timeout * 1000 - elapsed_ms(&ls->last_progress);
    int ctrl_i = -1, sd_i = -1, r;

    *data_ok = false;
    if (ls->draining) {
        long left = (long)FTPD_DRAIN_TIMEOUT * 1000 - elapsed_ms(&ls->drain_start);
        if (left <= 0)
            return XFER_SHUTDOWN;
        if (left < timeout)
            timeout = left;
    }
    if (timeout <= 0)
        return XFER_TIMEOUT;
    if (!ls->ctrl_blocked && session_input_pending(s))
        timeout = 0; /* a command is already buffered: serve it now */
    p[n].fd = ls->data_fd;
    p[n].events = data_events;
    p[n++].revents = 0;
    if (!ls->ctrl_blocked) {
        ctrl_i = (int)n;
        p[n].fd = s->ctrl_fd;
        p[n].events = POLLIN;
        p[n++].revents = 0;
    }
    if (!ls->draining && session_shutdown_fd() >= 0) {
        sd_i = (int)n;
        p[n].fd = session_shutdown_fd();
        p[n].events = POLLIN;
        p[n++].revents = 0;
    }
    r = poll(p, n, (int)timeout);
    if (r < 0)
        return errno == EINTR ? -1 : XFER_DATA_FAILED;
    if (sd_i >= 0 && (p[sd_i].revents & POLLIN)) {
        ls->draining = true;
        s->shutdown_seen = true;
        clock_gettime(CLOCK_MONOTONIC, &ls->drain_start);
    }
    if (!ls->ctrl_blocked &&
        ((ctrl_i >= 0 && p[ctrl_i].revents != 0) || session_input_pending(s))) {
        int rr = session_read_line(s, 0);

        if (rr == READ_LINE) {
            int c = commands_during_transfer(s, s->line);
            if (c == XCMD_ABORT)
                return XFER_ABORTED;
            if (c == XCMD_DEFER)
                ls->ctrl_blocked = true;
        } else if (rr == READ_TOO_LONG) {
            reply(s, 500, "Line too long.");
        } else if (rr == READ_NUL) {
            reply(s, 501, "NUL byte in command.");
        } else if (rr == READ_EOF || rr == READ_ERROR) {
            s->quit = true;
            return XFER_CTRL_LOST;
        }
        if (s->shutdown_seen && !ls->draining) {
            ls->draining = true;
            clock_gettime(CLOCK_MONOTONIC, &ls->drain_start);
        }
    }
    *data_ok = (p[0].revents & (data_events | POLLHUP | POLLERR)) != 0;
    return -1;
}

/* Binary downloads go from the file to the socket without a copy through
 * user space. Returns a result, or -1 when sendfile cannot be used for this
 * file (nothing was sent then) and the caller falls back to read/send. */
static int sendfile_loop(loop_state *ls, const xfer_job *job, off_t *bytes, int *err)
{
    session *s = ls->s;
    off_t total = 0;
    bool must_wait = false; /* the socket said EAGAIN: wait until writable */
    int since_check = 0;

    /* Send first and wait only when the socket is full: a poll before every
     * chunk costs more CPU than the copy it guards. The control connection
     * is still looked at every few chunks, so ABOR and STAT are served. */
    for (;;) {
        ssize_t n;

        if (must_wait || since_check >= FTPD_SENDFILE_CHECK) {
            bool ready;
            int w = wait_turn(ls, POLLOUT, &ready);

            if (w >= 0)
                return w;
            since_check = 0;
            if (must_wait && !ready)
                continue;
            must_wait = false;
        }
        n = sendfile(ls->data_fd, job->file_fd, NULL, FTPD_SENDFILE_CHUNK);
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
        clock_gettime(CLOCK_MONOTONIC, &ls->last_progress);
    }
}

static xfer_result send_loop(loop_state *ls, const xfer_job *job, off_t *bytes, int *err)
{
    session *s = ls->s;
    const unsigned char *out = NULL;
    size_t outlen = 0;
    off_t total = 0;
    bool eof = false;

    if (job->source == NULL && !job->ascii) {
        int r = sendfile_loop(ls, job, bytes, err);
        if (r >= 0)
            return (xfer_result)r;
    }

    /* Bounded: each turn moves data, serves a command or uses up time from
     * the data timeout / drain deadline. */
    for (;;) {
        bool ready;
        int w;

        if (outlen == 0 && !eof) {
            /* A source is pulled only when the last chunk has gone out, so
             * what it produces is held one chunk at a time. */
            ssize_t r = job->source != NULL ? job->source(job->source_ctx, s->buf, FTPD_XFER_BUF)
                                            : read(job->file_fd, s->buf, FTPD_XFER_BUF);
            if (r < 0 && errno == EINTR && job->source == NULL)
                continue;
            if (r < 0) {
                *err = errno;
                return XFER_FILE_FAILED;
            }
            eof = r == 0;
            if (job->ascii && job->source == NULL) {
                outlen = to_crlf(s->buf, (size_t)r, s->abuf);
                out = s->abuf;
            } else {
                outlen = (size_t)r;
                out = s->buf;
            }
        }
        if (outlen == 0 && eof)
            return XFER_DONE;
        w = wait_turn(ls, POLLOUT, &ready);
        if (w >= 0)
            return (xfer_result)w;
        if (!ready)
            continue;
        {
            ssize_t n = send(ls->data_fd, out, outlen, MSG_NOSIGNAL | MSG_DONTWAIT);
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
            clock_gettime(CLOCK_MONOTONIC, &ls->last_progress);
        }
    }
}

static xfer_result recv_loop(loop_state *ls, const xfer_job *job, off_t *bytes, int *err)
{
    session *s = ls->s;
    off_t total = 0;
    bool held_cr = false;

    for (;;) {
        bool ready;
        ssize_t n;
        int w = wait_turn(ls, POLLIN, &ready);

        if (w >= 0)
            return (xfer_result)w;
        if (!ready)
            continue;
        n = recv(ls->data_fd, s->buf, FTPD_XFER_BUF, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            return XFER_DATA_FAILED;
        }
        if (n == 0) {
            if (held_cr && write_file(job->file_fd, (const unsigned char *)"\r", 1) < 0) {
                *err = errno;
                return XFER_FILE_FAILED;
            }
            return XFER_DONE;
        }
        total += n;
        *bytes = total;
        s->xfer.done = total;
        clock_gettime(CLOCK_MONOTONIC, &ls->last_progress);
        if (job->ascii) {
            size_t m = from_crlf(s->buf, (size_t)n, s->abuf, &held_cr);
            if (write_file(job->file_fd, s->abuf, m) < 0) {
                *err = errno;
                return XFER_FILE_FAILED;
            }
        } else if (write_file(job->file_fd, s->buf, (size_t)n) < 0) {
            *err = errno;
            return XFER_FILE_FAILED;
        }
    }
}

xfer_result xfer_run(session *s, const xfer_job *job, off_t *bytes, int *err)
{
    loop_state ls;
    int timeout_ms = (int)s->cfg->data_timeout * 1000;
    xfer_result res;

    *bytes = 0;
    *err = 0;
    memset(&ls, 0, sizeof(ls));
    ls.s = s;
    /* STAT may ask while the data connection is awaited. */
    s->xfer.direction = job->direction;
    snprintf(s->xfer.path, sizeof(s->xfer.path), "%s", job->path != NULL ? job->path : "");
    s->xfer.done = 0;
    s->xfer.total = job->total;
    if (s->dmode == DATA_PASV)
        ls.data_fd = open_passive(s, timeout_ms);
    else if (s->dmode == DATA_PORT)
        ls.data_fd = open_active(s, timeout_ms);
    else
        ls.data_fd = -1;
    if (ls.data_fd < 0) {
        int e = errno;
        bool was_prepared = s->dmode != DATA_NONE;

        xfer_forget(s);
        if (e == ECANCELED) {
            /* ABOR before the data connection: the command ends as a
             * transfer aborted by ABOR does. */
            if (reply(s, 426, "Transfer aborted before the data connection.") == 0)
                reply(s, 226, "ABOR successful.");
        } else if (was_prepared) {
            log_msg("%s: data connection failed: %s", s->peer_str, strerror(e));
            reply(s, 425, "Cannot open data connection.");
        } else {
            reply(s, 425, "Use PORT, PASV, EPRT or EPSV first.");
        }
        return XFER_NO_CONN;
    }
    xfer_forget(s);
    if (reply(s, 150, "%s", job->opening) < 0) {
        close(ls.data_fd);
        s->quit = true;
        return XFER_CTRL_LOST;
    }
    s->xfer.active = true;
    /* A command kept while the connection was awaited keeps its place. */
    ls.ctrl_blocked = s->have_pending;
    ls.draining = s->shutdown_seen;
    clock_gettime(CLOCK_MONOTONIC, &ls.last_progress);
    ls.drain_start = ls.last_progress;
    if (job->direction == 'i')
        res = recv_loop(&ls, job, bytes, err);
    else
        res = send_loop(&ls, job, bytes, err);
    close(ls.data_fd);
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

/* A look at the control connection and the shutdown descriptor between two
 * digest steps; never waits, as the file always polls ready. Returns a
 * result to stop with, or -1 to go on. */
static int digest_turn(loop_state *ls)
{
    bool ready;
    int w = wait_turn(ls, POLLIN, &ready);

    if (w >= 0 && w != XFER_SHUTDOWN)
        return w;
    /* Unlike a transfer, a digest is not drained on stop: no client is
     * half-way through receiving a file, and a digest the size of the
     * --hash-max-size cap could hold the stop for seconds. */
    if (w == XFER_SHUTDOWN || ls->draining)
        return XFER_SHUTDOWN;
    if (ls->ctrl_blocked && ctrl_hung_up(ls->s)) {
        ls->s->quit = true;
        return XFER_CTRL_LOST;
    }
    clock_gettime(CLOCK_MONOTONIC, &ls->last_progress);
    return -1;
}

xfer_result xfer_digest(session *s, const xfer_digest_job *job, char *hex, size_t size,
                        off_t *bytes, int *err)
{
    loop_state ls;
    hash_ctx *h = NULL;
    unsigned char *buf = NULL;
    off_t pos = job->start;
    size_t since_check = 0;
    xfer_result res;

    *bytes = 0;
    *err = 0;
    memset(&ls, 0, sizeof(ls));
    ls.s = s;
    /* wait_turn polls its data descriptor; a regular file always polls
     * ready, so each turn only takes what the control connection and the
     * shutdown descriptor have and never sleeps. */
    ls.data_fd = job->file_fd;
    ls.ctrl_blocked = s->have_pending;
    ls.draining = s->shutdown_seen;
    clock_gettime(CLOCK_MONOTONIC, &ls.last_progress);
    ls.drain_start = ls.last_progress;
    s->xfer.direction = 'h';
    snprintf(s->xfer.path, sizeof(s->xfer.path), "%s", job->path != NULL ? job->path : "");
    s->xfer.done = 0;
    s->xfer.total = job->end - job->start;
    s->xfer.active = true;
    if (ls.draining) {
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
     * what the control connection or the shutdown descriptor says. */
    while (pos < job->end) {
        size_t want = job->end - pos < (off_t)FTPD_HASH_READ ? (size_t)(job->end - pos)
                                                             : (size_t)FTPD_HASH_READ;
        ssize_t n;

        if (since_check >= FTPD_HASH_STEP) {
            int w = digest_turn(&ls);

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
