/*
 * netaddr.c - client addresses as the server's per-address limits see them.
 */
#include "netaddr.h"

#include <netinet/in.h>
#include <string.h>

void netaddr_key(const struct sockaddr *sa, unsigned ipv6_prefix, unsigned char key[16])
{
    memset(key, 0, 16);
    if (sa->sa_family == AF_INET) {
        key[10] = 0xff;
        key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        return;
    }
    if (sa->sa_family != AF_INET6)
        return;
    memcpy(key, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
    /* A v4-mapped address is one IPv4 client: keep all of it. */
    if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)(const void *)key))
        return;
    if (ipv6_prefix == 0 || ipv6_prefix > 128)
        ipv6_prefix = 128;
    for (unsigned bit = ipv6_prefix; bit < 128; bit++)
        key[bit / 8] &= (unsigned char)~(0x80u >> (bit % 8));
}
