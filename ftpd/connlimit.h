/*
 * connlimit.h - how many sessions run at once, in all and per client address,
 * and how many passive listeners each address holds.
 *
 * The counters live in shared memory guarded by a process-shared mutex, so
 * they count the same in threading mode and in forking mode (where each
 * session runs in its own process).
 */
#ifndef FTPD_CONNLIMIT_H
#define FTPD_CONNLIMIT_H

#include <sys/socket.h>

/* Set up the counters; an IPv6 client counts by its /prefix6 (see
 * netaddr.h). Returns 0 or -1 with errno. */
int connlimit_init(unsigned max_clients, unsigned max_per_ip, unsigned prefix6);

/* Count a new session from addr. Returns 0, or -1 when a limit is reached
 * (nothing is counted then). */
int connlimit_acquire(const struct sockaddr *addr);

/* The session from addr has ended. */
void connlimit_release(const struct sockaddr *addr);

/* Count a passive listener (PASV/EPSV) of a session from addr, which must
 * hold a session slot (connlimit_acquire). Returns 0, or -1 with errno
 * EUSERS when addr holds max listeners already (max 0 = no cap) or has no
 * session slot; nothing is counted then. */
int connlimit_pasv_acquire(const struct sockaddr *addr, unsigned max);

/* A passive listener of a session from addr has closed. */
void connlimit_pasv_release(const struct sockaddr *addr);

#endif
