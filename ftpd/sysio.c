/*
 * sysio.c - system calls wrapped once.
 */
#include "sysio.h"

#include <errno.h>
#include <unistd.h>

int sysio_write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;

    /* Bounded: each turn writes at least one byte or gives up. */
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

ssize_t sysio_read(int fd, void *buf, size_t n)
{
    ssize_t r;

    /* Bounded in practice: a signal handler would have to run between
     * every two calls to keep it going. */
    do
        r = read(fd, buf, n);
    while (r < 0 && errno == EINTR);
    return r;
}
