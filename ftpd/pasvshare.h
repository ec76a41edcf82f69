/*
 * pasvshare.h - how many passive listeners (PASV/EPSV) each client address
 * holds, so that one address cannot take the whole --pasv-ports range.
 *
 * This is not a connection counter (the library counts sessions): a
 * listener is held from PASV until the session's next data command, and
 * an address may hold at most its share of them. The entries live in
 * shared memory under a robust process-shared mutex, so threads and forked
 * session processes count together and a session killed inside the lock
 * stops nobody. Each entry names the process that holds it: a forked
 * session that died without giving its listener back (SIGKILL, a crash)
 * leaves an entry of a dead process, and such entries are reclaimed when
 * the table is full or the address is at its share. In threading mode
 * every entry has the server's own pid and the session gives it back.
 */
#ifndef FTPD_PASVSHARE_H
#define FTPD_PASVSHARE_H

#include <stdbool.h>
#include <sys/socket.h>

/* Set up the table for at most slots listeners at once (one per session,
 * so the session limit), each address holding at most share of them
 * (0 = no cap: nothing is counted then). An IPv6 client counts by its
 * /prefix6 (see netaddr.h). Returns 0 or -1 with errno. */
int pasvshare_init(unsigned slots, unsigned share, unsigned prefix6);

/* Count a passive listener of a session from addr, held by this process.
 * Returns 1 when counted (give it back with pasvshare_release), 0 when
 * there is no cap (nothing counted), or -1 with errno EUSERS when addr
 * holds its share already or the table is full of live entries. */
int pasvshare_acquire(const struct sockaddr *addr);

/* Give back a listener this process counted for addr. */
void pasvshare_release(const struct sockaddr *addr);

#endif
