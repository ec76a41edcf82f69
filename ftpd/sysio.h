/*
 * sysio.h - system calls of sockserv-ftpd wrapped once: retried on EINTR,
 * partial transfers finished.
 */
#ifndef FTPD_SYSIO_H
#define FTPD_SYSIO_H

#include <stddef.h>
#include <sys/types.h>

/* Write all n bytes to fd. Returns 0, or -1 with errno (EIO when write(2)
 * wrote nothing). */
int sysio_write_all(int fd, const void *buf, size_t n);

/* read(2), retried when a signal interrupts it. */
ssize_t sysio_read(int fd, void *buf, size_t n);

#endif
