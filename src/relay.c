/*
 * relay.c - threads that accept on a stream server's listening socket
 * themselves: the pool's workers and the threading mode's spare threads.
 *
 * A hand-written server of these strategies has its threads block in
 * accept(): the kernel wakes one of them per connection, and the thread that
 * took it serves it; nobody hands a connection over. The library's
 * listening socket is non-blocking (the serve loop tries accept before it
 * polls) and its threads must also be woken for a stop, so each accepting
 * thread waits in an epoll set of its own instead: the listening socket with
 * EPOLLEXCLUSIVE, so that a connection wakes one waiter and not all of them
 * (Linux 4.5), next to the mode's control eventfd, which wakes them all.
 * Per connection that is an epoll_wait and an accept4, against one blocking
 * accept.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* epoll_event.data: which descriptor is ready. */
enum { RELAY_LISTEN = 1, RELAY_CTL, RELAY_WAKE };

int ss__relay_epoll(ss_server *srv, int ctlfd, int wakefd)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return -1;
    struct epoll_event lev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.u32 = RELAY_LISTEN};
    struct epoll_event cev = {.events = EPOLLIN, .data.u32 = RELAY_CTL};
    struct epoll_event wev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.u32 = RELAY_WAKE};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, srv->fd, &lev) < 0 ||
        (ctlfd >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, ctlfd, &cev) < 0) ||
        (wakefd >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, wakefd, &wev) < 0)) {
        int err = errno;
        close(ep);
        errno = err;
        return -1;
    }
    return ep;
}

int ss__relay_accept(ss_server *srv, int epfd, int wakefd, int timeout_ms, ss_request *req,
                     bool *timed_out)
{
    struct epoll_event ev[3];
    bool listen_ready = false;

    *timed_out = false;
    int n = epoll_wait(epfd, ev, 3, timeout_ms);
    if (n < 0)
        return 0; /* EINTR: the caller looks again */
    if (n == 0) {
        *timed_out = true;
        return 0;
    }
    for (int i = 0; i < n; i++) {
        if (ev[i].data.u32 == RELAY_CTL)
            return 0; /* accepting is off: the caller sees it */
        if (ev[i].data.u32 == RELAY_WAKE) {
            uint64_t v;
            ssize_t r = read(wakefd, &v, sizeof v); /* semaphore: one token */
            (void)r;
        }
        if (ev[i].data.u32 == RELAY_LISTEN)
            listen_ready = true;
    }
    if (!listen_ready)
        return 0;
    /* Transient errors and a connection another thread took are 0. */
    return srv->transport->get_request(srv, req);
}

void ss__relay_pause(ss_server *srv, int ctlfd, unsigned *backoff_ms, atomic_bool *reported,
                     int err)
{
    if (!atomic_exchange(reported, true))
        ss__handle_error(srv, NULL, err);
    if (*backoff_ms == 0)
        *backoff_ms = SS__BACKOFF_MIN_MS;
    else if (*backoff_ms < SS__BACKOFF_MAX_MS)
        *backoff_ms = *backoff_ms * 2 > SS__BACKOFF_MAX_MS ? SS__BACKOFF_MAX_MS : *backoff_ms * 2;
    /* Not the listening socket: it stays readable while descriptors are
     * short. Only a stop (the control descriptor) ends the pause early. */
    int fds[1] = {ctlfd};
    bool ready[1];
    (void)ss__poll(fds, ready, 1, (int)*backoff_ms);
}
