/*
 * client.h - the client side of the examples: a socket connected to ADDRESS,
 * a monotonic clock and waiting with a deadline, so that no client waits
 * forever for a server.
 */
#ifndef EX_CLIENT_H
#define EX_CLIENT_H

#include <poll.h>
#include <sockserv.h>

/* Open a socket of the given type connected to address (see address.h; a
 * syntax error exits with status 2). A stream connect waits at most timeout
 * seconds. A datagram socket is connected too, so that only the server's
 * datagrams reach it and ICMP errors are reported (ECONNREFUSED). On failure
 * prints "cannot connect to ADDRESS: reason" and returns -1. */
int client_open(const char *address, ss_socktype type, double timeout);

/* Seconds on the monotonic clock. */
double client_now(void);

/* poll() one descriptor until the monotonic clock passes deadline.
 * Returns 1 when pfd->revents is set, 0 at the deadline, -1 with errno on
 * error. Interrupted waits are resumed. */
int client_poll(struct pollfd *pfd, double deadline);

/* Wait until fd is readable or the monotonic clock passes deadline.
 * Returns 1 when readable, 0 at the deadline, -1 with errno on error.
 * Interrupted waits are resumed. */
int client_wait_readable(int fd, double deadline);

#endif /* EX_CLIENT_H */
