/*
 * timeutil.h - the monotonic clock in milliseconds, for the session's
 * deadlines and waits.
 */
#ifndef FTPD_TIMEUTIL_H
#define FTPD_TIMEUTIL_H

#include <time.h>

/* Now, in milliseconds of CLOCK_MONOTONIC. */
static inline long long ftpd_now_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Milliseconds since *since (a CLOCK_MONOTONIC reading). */
static inline long ftpd_ms_since(const struct timespec *since)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

#endif
