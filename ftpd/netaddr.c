/*
 * netaddr.c - client addresses: limit keys, v4-mapped IPv6, and the address
 * arguments of PORT, EPRT and EPSV.
 */
#include "netaddr.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

bool netaddr_ipv4(const struct sockaddr_storage *ss, struct in_addr *out)
{
    if (ss->ss_family == AF_INET) {
        *out = ((const struct sockaddr_in *)(const void *)ss)->sin_addr;
        return true;
    }
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            memcpy(out, &a->s6_addr[12], 4);
            return true;
        }
    }
    return false;
}

bool netaddr_same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    struct in_addr a4, b4;
    bool av4 = netaddr_ipv4(a, &a4), bv4 = netaddr_ipv4(b, &b4);

    if (av4 || bv4)
        return av4 && bv4 && a4.s_addr == b4.s_addr;
    if (a->ss_family != AF_INET6 || b->ss_family != AF_INET6)
        return false;
    return memcmp(&((const struct sockaddr_in6 *)(const void *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)(const void *)b)->sin6_addr, 16) == 0;
}

bool netaddr_unspecified(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)(const void *)ss)->sin_addr.s_addr == INADDR_ANY;
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)(const void *)ss;
        return IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr);
    }
    return false;
}

unsigned netaddr_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)(const void *)ss)->sin_port);
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)(const void *)ss)->sin6_port);
    return 0;
}

void netaddr_set_port(struct sockaddr_storage *ss, unsigned port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)(void *)ss)->sin_port = htons((uint16_t)port);
    else if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)(void *)ss)->sin6_port = htons((uint16_t)port);
}

void netaddr_host(const struct sockaddr_storage *ss, char *out, size_t size)
{
    struct in_addr a4;
    const void *a = NULL;

    if (netaddr_ipv4(ss, &a4)) {
        if (inet_ntop(AF_INET, &a4, out, (socklen_t)size) == NULL)
            snprintf(out, size, "?");
        return;
    }
    if (ss->ss_family == AF_INET6)
        a = &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr;
    if (a == NULL || inet_ntop(ss->ss_family, a, out, (socklen_t)size) == NULL)
        snprintf(out, size, "?");
}

/* A decimal number of len digits (no sign, no blanks) up to max. */
static int parse_uint_range(const char *p, size_t len, unsigned max, unsigned *out)
{
    char tmp[8];
    char *end = NULL;
    unsigned long v;

    if (len == 0 || len >= sizeof(tmp))
        return -1;
    memcpy(tmp, p, len);
    tmp[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if (tmp[i] < '0' || tmp[i] > '9')
            return -1;
    v = strtoul(tmp, &end, 10);
    if (*end != '\0' || v > max)
        return -1;
    *out = (unsigned)v;
    return 0;
}

int netaddr_parse_port(const char *arg, struct sockaddr_in *out)
{
    unsigned v[6];
    const char *p = arg;

    for (int i = 0; i < 6; i++) {
        const char *comma = strchr(p, ',');
        size_t len = i < 5 ? (comma != NULL ? (size_t)(comma - p) : (size_t)-1) : strlen(p);

        if (len == (size_t)-1 || parse_uint_range(p, len, 255, &v[i]) < 0)
            return -1;
        p += len + (i < 5 ? 1 : 0);
    }
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_addr.s_addr = htonl((uint32_t)(v[0] << 24 | v[1] << 16 | v[2] << 8 | v[3]));
    out->sin_port = htons((uint16_t)(v[4] << 8 | v[5]));
    return 0;
}

enum netaddr_eprt netaddr_parse_eprt(const char *arg, struct sockaddr_storage *out, socklen_t *len)
{
    char d, fields[3][INET6_ADDRSTRLEN + 1];
    const char *p;
    unsigned af, port;

    d = arg[0];
    if (d < 33 || d > 126)
        return NETADDR_EPRT_SYNTAX;
    p = arg + 1;
    for (int i = 0; i < 3; i++) {
        const char *e = strchr(p, d);
        size_t n;

        if (e == NULL)
            return NETADDR_EPRT_SYNTAX;
        n = (size_t)(e - p);
        if (n == 0 || n >= sizeof(fields[i]))
            return NETADDR_EPRT_SYNTAX;
        memcpy(fields[i], p, n);
        fields[i][n] = '\0';
        p = e + 1;
    }
    if (*p != '\0')
        return NETADDR_EPRT_SYNTAX;
    if (parse_uint_range(fields[0], strlen(fields[0]), 9, &af) < 0 || (af != 1 && af != 2))
        return NETADDR_EPRT_AF;
    if (parse_uint_range(fields[2], strlen(fields[2]), 65535, &port) < 0)
        return NETADDR_EPRT_PORT;
    memset(out, 0, sizeof(*out));
    if (af == 1) {
        struct sockaddr_in *a = (struct sockaddr_in *)(void *)out;
        a->sin_family = AF_INET;
        if (inet_pton(AF_INET, fields[1], &a->sin_addr) != 1)
            return NETADDR_EPRT_ADDR;
        *len = sizeof(*a);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)(void *)out;
        a->sin6_family = AF_INET6;
        if (inet_pton(AF_INET6, fields[1], &a->sin6_addr) != 1)
            return NETADDR_EPRT_ADDR;
        *len = sizeof(*a);
    }
    netaddr_set_port(out, port);
    return NETADDR_EPRT_OK;
}

enum netaddr_epsv netaddr_parse_epsv(const char *arg)
{
    if (arg == NULL || *arg == '\0')
        return NETADDR_EPSV_ANY;
    if (strcasecmp(arg, "ALL") == 0)
        return NETADDR_EPSV_ALL;
    /* RFC 2428: a protocol number we do not serve gets 522, which names
     * the ones we do; anything else is a syntax error. */
    if (strspn(arg, "0123456789") != strlen(arg))
        return NETADDR_EPSV_SYNTAX;
    if (strcmp(arg, "1") == 0)
        return NETADDR_EPSV_IPV4;
    if (strcmp(arg, "2") == 0)
        return NETADDR_EPSV_IPV6;
    return NETADDR_EPSV_UNSUPPORTED;
}
