/*
 * netaddr.h - client addresses: the keys of the per-address limits, the
 * IPv4-mapped IPv6 form of dual-stack sockets, and the address arguments
 * of PORT, EPRT and EPSV (RFC 959, RFC 2428).
 *
 * One IPv6 host usually owns a whole /64 (SLAAC, privacy addresses), so it
 * could open sessions from as many addresses as it likes; limits therefore
 * count an IPv6 client by a prefix. IPv4 clients, and IPv4 clients on a
 * dual-stack socket (v4-mapped), count by their full address.
 *
 * Nothing here does I/O; every function is pure.
 */
#ifndef FTPD_NETADDR_H
#define FTPD_NETADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* The 16-byte key of sa: IPv4 as v4-mapped IPv6, IPv6 with every bit past
 * ipv6_prefix (1..128) cleared. Any other family gives all zeros. */
void netaddr_key(const struct sockaddr *sa, unsigned ipv6_prefix, unsigned char key[16]);

/* The IPv4 address inside an AF_INET or a v4-mapped AF_INET6 address into
 * *out. False (out untouched) for anything else. */
bool netaddr_ipv4(const struct sockaddr_storage *ss, struct in_addr *out);

/* Do a and b name the same host? IPv4 and v4-mapped IPv6 compare as IPv4;
 * ports are ignored. */
bool netaddr_same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

/* Is the address the unspecified one (0.0.0.0 or ::)? */
bool netaddr_unspecified(const struct sockaddr_storage *ss);

/* The port of an AF_INET or AF_INET6 address (0 for other families), and
 * setting it (other families are left alone). */
unsigned netaddr_port(const struct sockaddr_storage *ss);
void netaddr_set_port(struct sockaddr_storage *ss, unsigned port);

/* The host part as text, v4-mapped addresses as plain IPv4; "?" when the
 * family is unknown. */
void netaddr_host(const struct sockaddr_storage *ss, char *out, size_t size);

/* PORT's argument "h1,h2,h3,h4,p1,p2": six decimal numbers 0..255, digits
 * only, no blanks. Returns 0 with *out filled (AF_INET, network order), or
 * -1 for a syntax error. */
int netaddr_parse_port(const char *arg, struct sockaddr_in *out);

/* What netaddr_parse_eprt found wrong, in the order it looks. */
enum netaddr_eprt {
    NETADDR_EPRT_OK = 0,
    NETADDR_EPRT_SYNTAX, /* delimiters, empty or over-long fields, trailing bytes */
    NETADDR_EPRT_AF,     /* a network protocol other than 1 (IPv4) and 2 (IPv6) */
    NETADDR_EPRT_PORT,   /* port not a decimal number 0..65535 */
    NETADDR_EPRT_ADDR    /* address not one of the protocol's */
};

/* EPRT's argument "|af|addr|port|", with any delimiter from '!' to '~' in
 * place of '|' (RFC 2428 2). On NETADDR_EPRT_OK *out holds the address and
 * port and *len its length. */
enum netaddr_eprt netaddr_parse_eprt(const char *arg, struct sockaddr_storage *out, socklen_t *len);

/* EPSV's argument (RFC 2428 3). */
enum netaddr_epsv {
    NETADDR_EPSV_ANY = 0,     /* none: the control connection's protocol */
    NETADDR_EPSV_ALL,         /* "ALL" (any case) */
    NETADDR_EPSV_IPV4,        /* "1" */
    NETADDR_EPSV_IPV6,        /* "2" */
    NETADDR_EPSV_UNSUPPORTED, /* another protocol number */
    NETADDR_EPSV_SYNTAX       /* not a number */
};
enum netaddr_epsv netaddr_parse_epsv(const char *arg);

#endif
