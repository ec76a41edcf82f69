/*
 * address.h - the ADDRESS argument of the example programs: HOST:PORT,
 * [IPV6]:PORT or unix:PATH, as the library parses it.
 */
#ifndef EX_ADDRESS_H
#define EX_ADDRESS_H

#include <sockserv.h>
#include <sys/socket.h>

/* Parse text into *addr and *len for a socket of the given type. A syntax error
 * is a usage error: it is reported and the program exits with status 2.
 * Other failures (unknown host) print one line and return -1. Returns 0. */
int address_parse(const char *text, ss_socktype type, struct sockaddr_storage *addr,
                  socklen_t *len);

/* address_parse without keeping the result: 0 or -1. */
int address_check(const char *text, ss_socktype type);

#endif /* EX_ADDRESS_H */
