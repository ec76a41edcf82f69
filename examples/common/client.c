/*
 * client.c - client sockets with time limits.
 */
#include "client.h"

#include "address.h"
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

double client_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A poll() timeout for the seconds left, rounded up, so that we never wake
 * just before the deadline and spin. */
static int poll_ms(double left)
{
    if (left >= 86400.0)
        return 86400 * 1000;
    return (int)(left * 1000.0) + 1;
}

int client_poll(struct pollfd *pfd, double deadline)
{
    double left;
    int rc;

    for (;;) {
        left = deadline - client_now();
        if (left <= 0)
            return 0;
        pfd->revents = 0;
        rc = poll(pfd, 1, poll_ms(left));
        if (rc > 0)
            return 1;
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

int client_wait_readable(int fd, double deadline)
{
    struct pollfd pfd;

    pfd.fd = fd;
    pfd.events = POLLIN;
    return client_poll(&pfd, deadline);
}

/* Connect a non-blocking stream socket, waiting at most timeout seconds. */
static int connect_stream(int fd, const struct sockaddr *addr, socklen_t len, double timeout)
{
    struct pollfd pfd;
    double deadline = client_now() + timeout;
    socklen_t errlen = sizeof(int);
    int err = 0;
    int rc;

    if (connect(fd, addr, len) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EINTR)
        return -1;
    pfd.fd = fd;
    pfd.events = POLLOUT;
    rc = client_poll(&pfd, deadline);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        errno = ETIMEDOUT;
        return -1;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) != 0)
        return -1;
    if (err != 0) {
        errno = err;
        return -1;
    }
    return 0;
}

int client_open(const char *address, ss_socktype type, double timeout)
{
    struct sockaddr_storage addr;
    socklen_t len;
    int fd = -1;
    int flags;

    if (address_parse(address, type, &addr, &len) != 0)
        return -1;
    if (type == SS_STREAM) {
        fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            goto fail;
        if (connect_stream(fd, (struct sockaddr *)&addr, len, timeout) != 0)
            goto fail;
        /* Back to blocking: the programs wait with poll and deadlines. */
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0)
            goto fail;
        return fd;
    }

    fd = socket(addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    if (addr.ss_family == AF_UNIX) {
        /* A Unix datagram server can only answer a client that has an
         * address; binding just the family asks Linux for an unused
         * abstract one (autobind, see unix(7)). */
        struct sockaddr_un self;

        memset(&self, 0, sizeof self);
        self.sun_family = AF_UNIX;
        if (bind(fd, (struct sockaddr *)&self, sizeof self.sun_family) != 0)
            goto fail;
    }
    if (connect(fd, (struct sockaddr *)&addr, len) != 0)
        goto fail;
    return fd;

fail:
    cli_error("cannot connect to %s: %s", address, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}
