/*
 * socket.c - the server's own socket: create, set options, bind, listen
 * (Python's server_bind and server_activate), and close.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

static int set_int_opt(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof value);
}

/* A Unix socket file left behind by a server that died is "stale": it is a
 * socket, and nothing accepts connections on it. Only then is it removed;
 * a live server's socket or any other file is never touched. */
static void remove_stale_unix(const struct sockaddr_un *sun, socklen_t len, int socktype)
{
    struct stat st;

    if (sun->sun_path[0] == '\0' || lstat(sun->sun_path, &st) < 0 || !S_ISSOCK(st.st_mode))
        return;
    /* Non-blocking: a live server with a full backlog answers EAGAIN at
     * once instead of holding us up; only ECONNREFUSED means "nobody". */
    int probe = socket(AF_UNIX, socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (probe < 0)
        return;
    int rc = connect(probe, (const struct sockaddr *)sun, len);
    int err = errno;
    ss__close(probe);
    if (rc < 0 && err == ECONNREFUSED)
        (void)unlink(sun->sun_path);
}

int ss__open_server_socket(ss_server *srv)
{
    struct sockaddr_storage addr;
    socklen_t len;
    int type = srv->transport->socktype;
    int fd = -1;
    const char *made = NULL; /* the Unix socket file bind created */

    if (ss_parse_address(srv->address, type, &addr, &len) < 0)
        return -1;
    srv->family = addr.ss_family;

    fd = socket(addr.ss_family, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    if (srv->opt.allow_reuse_address && addr.ss_family != AF_UNIX &&
        set_int_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1) < 0)
        goto fail;
    if (srv->opt.allow_reuse_port && addr.ss_family != AF_UNIX &&
        set_int_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1) < 0)
        goto fail;
    if (addr.ss_family == AF_INET6) {
        /* "[::]" means every address, IPv4 included; a specific IPv6
         * address is IPv6 only, whatever the system default says. */
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&addr;
        int v6only = !IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
        if (set_int_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, v6only) < 0)
            goto fail;
    }
    if (srv->opt.prepare_socket != NULL && srv->opt.prepare_socket(srv, fd) != 0)
        goto fail;
    if (addr.ss_family == AF_UNIX && srv->opt.unlink_stale_unix)
        remove_stale_unix((const struct sockaddr_un *)&addr, len, type);

    if (bind(fd, (const struct sockaddr *)&addr, len) < 0)
        goto fail;
    if (addr.ss_family == AF_UNIX && ((const struct sockaddr_un *)&addr)->sun_path[0] != '\0')
        made = ((const struct sockaddr_un *)&addr)->sun_path;
    if (srv->transport->activate(srv, fd) < 0)
        goto fail;

    srv->boundlen = sizeof srv->bound;
    if (getsockname(fd, (struct sockaddr *)&srv->bound, &srv->boundlen) < 0)
        goto fail;

    if (addr.ss_family == AF_UNIX) {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)&addr;
        struct stat st;
        if (sun->sun_path[0] != '\0' && srv->opt.unlink_stale_unix &&
            lstat(sun->sun_path, &st) == 0) {
            srv->unix_path = strdup(sun->sun_path);
            if (srv->unix_path == NULL)
                goto fail;
            srv->unix_dev = st.st_dev;
            srv->unix_ino = st.st_ino;
        }
    }
    srv->fd = fd;
    return 0;

fail:;
    int err = errno;
    /* A failure after bind must not leave the socket file behind. */
    if (made != NULL)
        (void)unlink(made);
    ss__close(fd);
    errno = err;
    return -1;
}

void ss__child_server_socket(ss_server *srv)
{
    if (!srv->transport->shared_socket) {
        ss__close(srv->fd);
        srv->fd = -1;
    }
}

void ss__close_server_socket(ss_server *srv)
{
    if (srv->fd >= 0) {
        ss__close(srv->fd);
        srv->fd = -1;
    }
    if (srv->unix_path != NULL) {
        /* Remove the file only if it is still the one we created. */
        struct stat st;
        if (lstat(srv->unix_path, &st) == 0 && st.st_dev == srv->unix_dev &&
            st.st_ino == srv->unix_ino)
            (void)unlink(srv->unix_path);
        free(srv->unix_path);
        srv->unix_path = NULL;
    }
}
