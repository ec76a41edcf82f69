/*
 * netaddr.h - client addresses as the server's per-address limits see them.
 *
 * One IPv6 host usually owns a whole /64 (SLAAC, privacy addresses), so it
 * could open sessions from as many addresses as it likes; limits therefore
 * count an IPv6 client by a prefix. IPv4 clients, and IPv4 clients on a
 * dual-stack socket (v4-mapped), count by their full address.
 */
#ifndef FTPD_NETADDR_H
#define FTPD_NETADDR_H

#include <sys/socket.h>

/* The 16-byte key of sa: IPv4 as v4-mapped IPv6, IPv6 with every bit past
 * ipv6_prefix (1..128) cleared. Any other family gives all zeros. */
void netaddr_key(const struct sockaddr *sa, unsigned ipv6_prefix, unsigned char key[16]);

#endif
