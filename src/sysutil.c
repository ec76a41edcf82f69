/*
 * sysutil.c - system calls wrapped once: EINTR retried, partial writes
 * completed, SIGPIPE suppressed, socket timeouts reported as ETIMEDOUT.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* A send or receive timeout (SO_SNDTIMEO/SO_RCVTIMEO) surfaces as EAGAIN on
 * a blocking socket; callers are better served by the name of what happened. */
static int timeout_errno(int err)
{
    return (err == EAGAIN || err == EWOULDBLOCK) ? ETIMEDOUT : err;
}

/* A blocking call interrupted by a signal is retried, unless the signal
 * came with a stop request (Ctrl-C on a server with ss_shutdown_on_signal):
 * then the handler gets EINTR and can end, as Python's KeyboardInterrupt. */
bool ss__retry_eintr(ss_server *srv)
{
    /* Only the loop's own thread (a sync handler) gives up: in the other
     * modes a request runs to its end after the loop stopped. */
    if (srv == NULL || ss__loop_server != srv || !ss__stop_requested(srv))
        return true;
    /* A graceful stop gives the handler its grace; only the cut ends it. */
    return atomic_load(&srv->stopping) != 0 && atomic_load(&srv->stop_cut) == 0;
}

#define retry_eintr ss__retry_eintr

/* A graceful stop begun by a signal, seen by a sync handler: it runs in the
 * loop's thread, so nobody else can time the grace and cut; the handler's
 * own receive does. */
static bool sync_signal_grace(ss_server *srv)
{
    return srv != NULL && ss__loop_server == srv && !srv->in_request_child &&
           atomic_load(&srv->signal_stop) != 0 && atomic_load(&srv->stopping) != 0;
}

/* Wait until fd has input, or until the grace ends or a second stop signal
 * comes: then cut (SHUT_RD), so that the receive that follows reports the
 * end of input. Waits in steps of at most a second. Returns 0, or -1 when
 * poll fails. */
static int sync_grace_wait(ss_server *srv, int fd)
{
    for (;;) {
        double left = (double)atomic_load(&srv->stop_deadline_ns) / 1e9 - ss__now();
        if (atomic_load(&srv->stop_cut) != 0 || left <= 0) {
            (void)shutdown(fd, SHUT_RD);
            return 0;
        }
        int ms = left >= 1.0 ? 1000 : (int)(left * 1000.0) + 1;
        struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
        int r = poll(&p, 1, ms);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

ssize_t ss__send_all(ss_server *srv, int fd, const void *buf, size_t n)
{
    const char *p = buf;
    size_t left = n;

    while (left > 0) {
        ssize_t k = send(fd, p, left, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR && retry_eintr(srv))
                continue;
            if (errno == ENOTSOCK) {
                /* Not a socket (a pipe in a test, say): plain write. */
                k = write(fd, p, left);
                if (k < 0 && errno == EINTR && retry_eintr(srv))
                    continue;
            }
            if (k < 0) {
                errno = timeout_errno(errno);
                return -1;
            }
        }
        p += k;
        left -= (size_t)k;
    }
    return (ssize_t)n;
}

ssize_t ss__recv(ss_server *srv, int fd, void *buf, size_t n)
{
    /* A stop signal that came just before this read would not interrupt
     * it: look first (a read on an idle client could wait for ever). Only
     * in the loop's own thread, where a sync handler runs: threads of the
     * other modes get no signals and finish their requests. */
    if (sync_signal_grace(srv)) {
        if (sync_grace_wait(srv, fd) < 0)
            return -1;
    } else if (srv != NULL && ss__loop_server == srv && atomic_load(&srv->signal_stop)) {
        errno = EINTR;
        return -1;
    }
    for (;;) {
        ssize_t k = recv(fd, buf, n, 0);
        if (k >= 0)
            return k;
        if (errno == EINTR && sync_signal_grace(srv)) {
            if (sync_grace_wait(srv, fd) < 0)
                return -1;
            continue;
        }
        if (errno == EINTR && retry_eintr(srv))
            continue;
        if (errno == ENOTSOCK) {
            k = read(fd, buf, n);
            if (k >= 0)
                return k;
            if (errno == EINTR && retry_eintr(srv))
                continue;
        }
        errno = timeout_errno(errno);
        return -1;
    }
}

int ss__poll(const int *fds, bool *ready, int n, int timeout_ms)
{
    struct pollfd p[SS__POLL_MAX];
    int idx[SS__POLL_MAX];
    nfds_t np = 0;

    for (int i = 0; i < n && i < SS__POLL_MAX; i++) {
        ready[i] = false;
        idx[i] = -1;
        if (fds[i] >= 0) {
            p[np].fd = fds[i];
            p[np].events = POLLIN;
            p[np].revents = 0;
            idx[i] = (int)np++;
        }
    }
    int r = poll(p, np, timeout_ms);
    if (r < 0)
        return -1; /* EINTR included: the caller recomputes its timeout */
    for (int i = 0; i < n && i < SS__POLL_MAX; i++)
        if (idx[i] >= 0 && p[idx[i]].revents != 0)
            ready[i] = true;
    return r;
}

int ss__set_sock_timeout(int fd, double seconds)
{
    struct timeval tv = {0, 0};

    if (seconds > 0) {
        tv.tv_sec = (time_t)seconds; /* truncation: seconds > 0 */
        tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
        if (tv.tv_sec == 0 && tv.tv_usec == 0)
            tv.tv_usec = 1; /* zero would mean "no timeout" */
    } else if (seconds == 0) {
        tv.tv_usec = 1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
        return -1;
    return 0;
}

double ss__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Milliseconds until a monotonic deadline (rounded up, never negative);
 * -1 (wait forever) for a deadline of infinity. */
int ss__ms_until(double deadline)
{
    if (isinf(deadline))
        return -1;
    double left = deadline - ss__now();
    if (left <= 0)
        return 0;
    double ms = left * 1000.0;
    if (ms > 2000000000.0)
        return 2000000000;
    int whole = (int)ms;
    return (double)whole < ms ? whole + 1 : whole;
}

int ss__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, double deadline)
{
    if (isinf(deadline))
        return pthread_cond_wait(cv, mu);
    int ms = ss__ms_until(deadline);
    if (ms == 0)
        return ETIMEDOUT;
    /* The condition variables use the default (realtime) clock: turn the
     * monotonic deadline into a realtime one, afresh on every wait. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    int rc = pthread_cond_timedwait(cv, mu, &ts);
    return rc == ETIMEDOUT && ss__ms_until(deadline) > 0 ? 0 : rc;
}

void ss__close(int fd)
{
    if (fd < 0)
        return;
    /* On Linux the descriptor is released even when close() reports EINTR,
     * so it must not be retried. */
    int saved = errno;
    (void)close(fd);
    errno = saved;
}

/* The asynchronous signals: all but those raised by faults. */
static void async_signals(sigset_t *set)
{
    sigfillset(set);
    sigdelset(set, SIGSEGV);
    sigdelset(set, SIGBUS);
    sigdelset(set, SIGFPE);
    sigdelset(set, SIGILL);
    sigdelset(set, SIGABRT);
}

/* Block every asynchronous signal in the calling thread; the threads the
 * library creates call this first thing, so signals reach the application's
 * own threads. Signals raised by faults stay deliverable. */
int ss__block_signals(sigset_t *old)
{
    sigset_t all;
    async_signals(&all);
    return pthread_sigmask(SIG_BLOCK, &all, old) == 0 ? 0 : -1;
}

int ss__attr_block_signals(pthread_attr_t *attr)
{
#if defined(__GLIBC__) && defined(__GLIBC_PREREQ)
#if __GLIBC_PREREQ(2, 32)
    sigset_t all;
    async_signals(&all);
    return pthread_attr_setsigmask_np(attr, &all) == 0 ? 0 : -1;
#endif
#endif
    (void)attr;
    return 0;
}
