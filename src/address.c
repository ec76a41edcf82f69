/*
 * address.c - address strings: "127.0.0.1:8003", "[::1]:0", "[::]:21",
 * "localhost:80", "unix:/path", "unix:@abstract"; parsing and formatting.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "internal.h"

static int parse_port(const char *s, in_port_t *port)
{
    if (*s == '\0' || strlen(s) > 5)
        return -1;
    unsigned long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    if (v > 65535)
        return -1;
    *port = htons((in_port_t)v);
    return 0;
}

static int parse_unix(const char *path, struct sockaddr_storage *addr, socklen_t *len)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)addr;
    size_t n = strlen(path);

    if (n == 0) {
        errno = EINVAL;
        return -1;
    }
    if (n >= sizeof sun->sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, n);
    if (path[0] == '@') {
        /* Linux abstract namespace: a leading NUL, length counts exactly. */
        sun->sun_path[0] = '\0';
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    return 0;
}

static int resolve_host(const char *host, int socktype, struct sockaddr_storage *addr,
                        socklen_t *len)
{
    struct addrinfo hints, *res = NULL;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socktype;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    int rc = getaddrinfo(host, "0", &hints, &res);
    if (rc == EAI_NONAME) {
        hints.ai_flags = AI_NUMERICSERV;
        rc = getaddrinfo(host, "0", &hints, &res);
    }
    if (rc != 0 || res == NULL) {
        /* Out of memory, or a resolver that could not answer now, is not
         * an unknown host. */
        if (rc == EAI_MEMORY)
            errno = ENOMEM;
        else if (rc == EAI_AGAIN)
            errno = EAGAIN;
        else if (rc != EAI_SYSTEM)
            errno = ENOENT;
        return -1;
    }
    if (res->ai_addrlen > sizeof *addr) {
        freeaddrinfo(res);
        errno = EINVAL;
        return -1;
    }
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int ss_parse_address(const char *str, int socktype, struct sockaddr_storage *addr, socklen_t *len)
{
    char host[256];
    const char *port;
    in_port_t nport;

    if (str == NULL || addr == NULL || len == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (socktype != SOCK_STREAM && socktype != SOCK_DGRAM)
        socktype = SOCK_STREAM;
    memset(addr, 0, sizeof *addr);
    if (strncmp(str, "unix:", 5) == 0)
        return parse_unix(str + 5, addr, len);

    if (str[0] == '[') {
        const char *end = strchr(str, ']');
        if (end == NULL || end[1] != ':' || (size_t)(end - str - 1) >= sizeof host) {
            errno = EINVAL;
            return -1;
        }
        memcpy(host, str + 1, (size_t)(end - str - 1));
        host[end - str - 1] = '\0';
        port = end + 2;
        if (strchr(host, ':') == NULL) {
            errno = EINVAL; /* brackets hold an IPv6 address, nothing else */
            return -1;
        }
    } else {
        const char *colon = strrchr(str, ':');
        if (colon == NULL || memchr(str, ':', (size_t)(colon - str)) != NULL ||
            (size_t)(colon - str) >= sizeof host) {
            errno = EINVAL; /* no port, no host, or an IPv6 address without [] */
            return -1;
        }
        memcpy(host, str, (size_t)(colon - str));
        host[colon - str] = '\0';
        port = colon + 1;
    }
    if (parse_port(port, &nport) < 0) {
        errno = EINVAL;
        return -1;
    }
    if (host[0] == '\0' || strcmp(host, "*") == 0) {
        /* Python's "" : every IPv4 address. "[::]" is every address. */
        memcpy(host, "0.0.0.0", sizeof "0.0.0.0");
    }
    if (resolve_host(host, socktype, addr, len) < 0)
        return -1;
    if (str[0] == '[' && addr->ss_family != AF_INET6) {
        errno = EINVAL;
        return -1;
    }
    if (addr->ss_family == AF_INET)
        ((struct sockaddr_in *)addr)->sin_port = nport;
    else if (addr->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)addr)->sin6_port = nport;
    else {
        errno = EAFNOSUPPORT;
        return -1;
    }
    return 0;
}

char *ss_format_address(const struct sockaddr *sa, socklen_t len, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN];
    int n;

    if (sa == NULL || buf == NULL || size == 0) {
        errno = EINVAL;
        return NULL;
    }
    switch (sa->sa_family) {
    case AF_INET: {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        n = snprintf(buf, size, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
        break;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            /* A dual-stack server's IPv4 client: show it as IPv4. */
            inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], ip, sizeof ip);
            n = snprintf(buf, size, "%s:%u", ip, (unsigned)ntohs(in6->sin6_port));
        } else {
            inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
            n = snprintf(buf, size, "[%s]:%u", ip, (unsigned)ntohs(in6->sin6_port));
        }
        break;
    }
    case AF_UNIX: {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)sa;
        size_t off = offsetof(struct sockaddr_un, sun_path);
        size_t plen = len > off ? (size_t)len - off : 0;
        if (plen > sizeof sun->sun_path)
            plen = sizeof sun->sun_path;
        if (plen > 0 && sun->sun_path[0] == '\0') {
            n = snprintf(buf, size, "unix:@%.*s", (int)(plen - 1), sun->sun_path + 1);
        } else {
            size_t l = strnlen(sun->sun_path, plen);
            n = snprintf(buf, size, "unix:%.*s", (int)l, sun->sun_path);
        }
        break;
    }
    default:
        errno = EAFNOSUPPORT;
        return NULL;
    }
    if (n < 0 || (size_t)n >= size) {
        errno = ENOSPC;
        return NULL;
    }
    return buf;
}
