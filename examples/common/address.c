/*
 * address.c - the ADDRESS argument of the example programs.
 */
#include "address.h"

#include "cli.h"

#include <errno.h>
#include <string.h>

int address_parse(const char *text, ss_socktype type, struct sockaddr_storage *addr, socklen_t *len)
{
    int socktype = type == SS_DATAGRAM ? SOCK_DGRAM : SOCK_STREAM;

    *len = sizeof *addr;
    if (ss_parse_address(text, socktype, addr, len) == 0)
        return 0;
    switch (errno) {
    case EINVAL:
        cli_usage_error("bad address '%s': use HOST:PORT, [IPV6]:PORT or unix:PATH", text);
    case ENAMETOOLONG:
        cli_usage_error("bad address '%s': the socket path is too long", text);
    case ENOENT:
        cli_error("cannot resolve '%s': unknown host", text);
        break;
    default:
        cli_error("cannot resolve '%s': %s", text, strerror(errno));
        break;
    }
    return -1;
}

int address_check(const char *text, ss_socktype type)
{
    struct sockaddr_storage addr;
    socklen_t len;

    return address_parse(text, type, &addr, &len);
}
