/*
 * dataconn.c - data connections: PASV, EPSV, PORT and EPRT, and opening
 * the connection they prepared.
 *
 * Passive: a listening socket on our control address, on a port from the
 * configured range; only a connection from the client's own address is
 * taken (others are closed and logged, and we keep waiting until the data
 * timeout). Active (PORT/EPRT): only to the client's own address and never
 * to a port below 1024 (FTP bounce protection, RFC 2577). While the
 * connection is awaited, the control connection is served (ABOR, STAT).
 */
#include "dataconn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "netaddr.h"
#include "pasvshare.h"
#include "timeutil.h"

#define PORT_MIN_ACTIVE 1024 /* PORT/EPRT to lower ports is refused */
#define PASV_BACKLOG 1

static bool control_is_ipv4(const session *s)
{
    struct in_addr a;
    return netaddr_ipv4(&s->local, &a);
}

/* ---- preparing a data connection --------------------------------------- */

void dataconn_forget(session *s)
{
    /* An open listener is counted in its address's share (see pasv_listen)
     * when there is a share; closing it gives the count back. */
    if (s->pasv_fd >= 0)
        close(s->pasv_fd);
    if (s->pasv_counted)
        pasvshare_release((const struct sockaddr *)&s->peer);
    s->pasv_counted = false;
    s->pasv_fd = -1;
    s->dmode = DATA_NONE;
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

    dataconn_forget(s);
    if (alen == 0) {
        errno = ENOTCONN; /* no local address to listen on; never a stale EUSERS */
        return -1;
    }
    /* One address may hold only its share of the range (the count is
     * shared with forked sessions), so it cannot take every port from the
     * others. Counted before binding, given back in dataconn_forget. */
    switch (pasvshare_acquire((const struct sockaddr *)&s->peer)) {
    case 1:
        s->pasv_counted = true;
        break;
    case 0:
        break;
    default:
        return -1;
    }
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
        netaddr_set_port(&addr, lo == 0 ? 0 : lo + (start + i) % span);
        if (bind(fd, (struct sockaddr *)&addr, alen) == 0) {
            if (listen(fd, PASV_BACKLOG) < 0)
                break;
            alen = sizeof(addr);
            if (getsockname(fd, (struct sockaddr *)&addr, &alen) < 0)
                break;
            s->pasv_fd = fd;
            s->dmode = DATA_PASV;
            /* Unused, the port is given back after the data timeout. */
            s->pasv_deadline_ms = ftpd_now_ms() + (long long)s->cfg->data_timeout * 1000;
            return (int)netaddr_port(&addr);
        }
        if (errno != EADDRINUSE)
            break;
    }
fail:;
    int err = errno;
    if (fd >= 0)
        close(fd);
    if (s->pasv_counted)
        pasvshare_release((const struct sockaddr *)&s->peer);
    s->pasv_counted = false;
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

int dataconn_cmd_pasv(session *s)
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
    netaddr_ipv4(&s->local, &a);
    if (s->cfg->pasv_address[0] != '\0')
        inet_pton(AF_INET, s->cfg->pasv_address, &a);
    memcpy(b, &a.s_addr, 4);
    return reply(s, 227, "Entering Passive Mode (%u,%u,%u,%u,%d,%d).", b[0], b[1], b[2], b[3],
                 port >> 8, port & 0xff);
}

int dataconn_cmd_epsv(session *s, const char *arg)
{
    char mine = control_is_ipv4(s) ? '1' : '2';
    enum netaddr_epsv want = netaddr_parse_epsv(arg);
    int port;

    switch (want) {
    case NETADDR_EPSV_ANY:
        break;
    case NETADDR_EPSV_ALL:
        s->epsv_all = true;
        return reply(s, 200, "EPSV ALL ok.");
    case NETADDR_EPSV_SYNTAX:
        return reply(s, 501, "Syntax error in EPSV arguments.");
    case NETADDR_EPSV_UNSUPPORTED:
        return reply(s, 522, "Network protocol not supported, use (%c).", mine);
    case NETADDR_EPSV_IPV4:
    case NETADDR_EPSV_IPV6:
        if ((want == NETADDR_EPSV_IPV4) != (mine == '1'))
            return reply(s, 522, "Network protocol not supported, use (%c).", mine);
        break;
    }
    port = pasv_listen(s);
    if (port < 0)
        return pasv_refused(s, "EPSV");
    return reply(s, 229, "Entering Extended Passive Mode (|||%d|).", port);
}

/* Common checks of an active-mode target; replies on refusal. Returns 0
 * when taken, 1 when refused (replied), -1 when the reply failed. */
static int accept_target(session *s, const struct sockaddr_storage *t_in, socklen_t len,
                         const char *cmd)
{
    struct sockaddr_storage tmp;
    const struct sockaddr_storage *t = t_in;
    unsigned port = netaddr_port(t_in);

    /* Some clients (lftp on IPv6) announce the unspecified address, meaning
     * "my address": take the control connection's peer, which can never
     * point anywhere else. */
    if (netaddr_unspecified(t_in)) {
        tmp = s->peer;
        len = s->peer_len;
        netaddr_set_port(&tmp, port);
        t = &tmp;
    }
    if (!netaddr_same_host(t, &s->peer)) {
        log_msg("%s: %s to a foreign address refused", s->peer_str, cmd);
        return reply(s, 504, "%s only to your own address.", cmd) < 0 ? -1 : 1;
    }
    if (port < PORT_MIN_ACTIVE) {
        log_msg("%s: %s to privileged port %u refused", s->peer_str, cmd, port);
        return reply(s, 504, "%s to ports below %d is not allowed.", cmd, PORT_MIN_ACTIVE) < 0 ? -1
                                                                                               : 1;
    }
    dataconn_forget(s);
    /* Connect with the control connection's address family, so a v4-mapped
     * control connection reaches the IPv4 client. */
    memset(&s->port_addr, 0, sizeof(s->port_addr));
    if (s->local.ss_family == AF_INET6 && t->ss_family == AF_INET) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)(void *)&s->port_addr;
        a6->sin6_family = AF_INET6;
        a6->sin6_addr.s6_addr[10] = 0xff;
        a6->sin6_addr.s6_addr[11] = 0xff;
        memcpy(&a6->sin6_addr.s6_addr[12], &((const struct sockaddr_in *)(const void *)t)->sin_addr,
               4);
        a6->sin6_port = htons((uint16_t)port);
        s->port_len = sizeof(*a6);
    } else {
        memcpy(&s->port_addr, t, len);
        s->port_len = len;
    }
    s->dmode = DATA_PORT;
    return 0;
}

int dataconn_cmd_port(session *s, const char *arg)
{
    struct sockaddr_storage t;
    struct sockaddr_in sin;
    int r;

    if (s->epsv_all)
        return reply(s, 503, "PORT not allowed after EPSV ALL.");
    if (!control_is_ipv4(s))
        return reply(s, 522, "PORT needs IPv4; use EPRT.");
    if (netaddr_parse_port(arg, &sin) < 0)
        return reply(s, 501, "Syntax error in PORT arguments.");
    memset(&t, 0, sizeof(t));
    memcpy(&t, &sin, sizeof(sin));
    r = accept_target(s, &t, sizeof(sin), "PORT");
    if (r != 0)
        return r < 0 ? -1 : 0;
    return reply(s, 200, "PORT command successful. Consider using PASV.");
}

int dataconn_cmd_eprt(session *s, const char *arg)
{
    struct sockaddr_storage t;
    socklen_t tlen = 0;
    int r;

    if (s->epsv_all)
        return reply(s, 503, "EPRT not allowed after EPSV ALL.");
    switch (netaddr_parse_eprt(arg, &t, &tlen)) {
    case NETADDR_EPRT_OK:
        break;
    case NETADDR_EPRT_AF:
        return reply(s, 522, "Network protocol not supported, use (1,2).");
    case NETADDR_EPRT_PORT:
        return reply(s, 501, "Syntax error in EPRT port.");
    case NETADDR_EPRT_ADDR:
        return reply(s, 501, "Syntax error in EPRT address.");
    default:
        return reply(s, 501, "Syntax error in EPRT arguments.");
    }
    if ((t.ss_family == AF_INET) != control_is_ipv4(s))
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
    int r = control_while_busy(s);

    if (r == XCMD_ABORT) {
        errno = ECANCELED;
        return -1;
    }
    if (r == XCMD_LOST) {
        errno = ECONNRESET;
        return -1;
    }
    return 0;
}

/* Wait until fd shows events, within what is left of timeout_ms since
 * start, serving the control connection meanwhile: ABOR ends the wait, and
 * a client that leaves ends it at once instead of holding its session until
 * the data timeout. Once a command is kept for later, only a hang-up
 * (POLLRDHUP) is watched. The server's stop ends the wait at once: there is
 * no transfer yet to give time to. Returns 0 when ready, -1 with errno
 * (ETIMEDOUT, ESHUTDOWN for the stop, or as ctrl_while_waiting). */
static int wait_data(session *s, int fd, short events, int timeout_ms, const struct timespec *start)
{
    int stop_fd = ss_server_stop_fd(ss_request_server(s->req));

    /* Bounded by the timeout: each turn serves a line or waits for what is
     * left of it. */
    for (;;) {
        struct pollfd p[3] = {{.fd = fd, .events = events},
                              {.fd = s->ctrl_fd, .events = POLLRDHUP},
                              {.fd = stop_fd, .events = POLLIN}};
        long left = timeout_ms - ftpd_ms_since(start);
        int r;

        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (!s->have_pending && control_input_pending(s)) {
            if (ctrl_while_waiting(s) < 0)
                return -1;
            continue;
        }
        if (!s->have_pending)
            p[1].events |= POLLIN;
        r = poll(p, stop_fd >= 0 ? 3 : 2, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (stop_fd >= 0 && (p[2].revents & POLLIN) && p[0].revents == 0) {
            errno = ESHUTDOWN;
            return -1;
        }
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
        if (netaddr_same_host(&from, &s->peer))
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
        netaddr_set_port(&src, 0);
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

int dataconn_open(session *s, int timeout_ms)
{
    if (s->dmode == DATA_PASV)
        return open_passive(s, timeout_ms);
    if (s->dmode == DATA_PORT)
        return open_active(s, timeout_ms);
    errno = ENOTCONN;
    return -1;
}
