/*
 * mode_sync.c - one request at a time, in the serving thread (Python's plain
 * TCPServer/UDPServer). One request object is reused: no allocation, lock or
 * extra system call per request.
 */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <sys/socket.h>

#include "internal.h"

static ss_request *sync_acquire(ss_server *srv)
{
    return srv->sync_req;
}

static void sync_release(ss_server *srv, ss_request *req)
{
    (void)srv;
    ss__request_reset(req);
}

/* The connection stops being visible to a graceful stop's cut (another
 * thread) before it closes; if a cut holds it right now, wait the few
 * instructions until it is done with it, so that it never shuts down a
 * reused descriptor number. */
static void sync_unpublish(ss_server *srv)
{
    int fd = atomic_load_explicit(&srv->sync_fd, memory_order_acquire);
    while (fd != -1 && !atomic_compare_exchange_weak(&srv->sync_fd, &fd, -1)) {
        if (fd == -2) {
            sched_yield();
            fd = atomic_load_explicit(&srv->sync_fd, memory_order_acquire);
        }
    }
}

/* Cut the running request, from the thread that runs the graceful stop. */
static void sync_cut(ss_server *srv)
{
    int fd = atomic_load_explicit(&srv->sync_fd, memory_order_acquire);
    if (fd < 0 || !atomic_compare_exchange_strong(&srv->sync_fd, &fd, -2))
        return; /* none, or it ended meanwhile */
    (void)shutdown(fd, SHUT_RD);
    atomic_store_explicit(&srv->sync_fd, fd, memory_order_release);
}

static int sync_process(ss_server *srv, ss_request *req)
{
    /* Release: the stop-signal handler reads loop_thread after seeing it. */
    atomic_store_explicit(&srv->sync_active, 1, memory_order_release);
    atomic_store_explicit(&srv->sync_fd, req->dgram ? -1 : req->fd, memory_order_release);
    int rc = ss__finish_request(req);
    sync_unpublish(srv);
    ss__shutdown_request(req);
    ss__request_reset(req);
    atomic_store_explicit(&srv->sync_active, 0, memory_order_relaxed);
    return rc == SS_ABORT ? SS_ABORT : 0;
}

static unsigned sync_active(ss_server *srv)
{
    return atomic_load_explicit(&srv->sync_active, memory_order_relaxed);
}

/* Requests run inside the loop; when the loop is not in one, none runs.
 * From the loop's own thread (a handler) there is nothing to wait for. */
static int sync_drain(ss_server *srv, double timeout)
{
    double deadline = timeout < 0 ? (double)INFINITY : ss__now() + timeout;
    int rc = 0;

    pthread_mutex_lock(&srv->mu);
    bool inside = srv->running && pthread_equal(srv->loop_thread, pthread_self());
    while (!inside && srv->running && sync_active(srv) != 0) {
        if (ss__ms_until(deadline) == 0) {
            rc = -1;
            break;
        }
        /* The loop signals nothing per request (that would cost every
         * request a lock); look again every few milliseconds. */
        double step = ss__now() + 0.005;
        (void)ss__cond_wait_until(&srv->cv, &srv->mu, step < deadline ? step : deadline);
    }
    pthread_mutex_unlock(&srv->mu);
    if (rc < 0)
        errno = ETIMEDOUT;
    return rc;
}

static void sync_close(ss_server *srv)
{
    (void)srv;
}

static void sync_destroy(ss_server *srv)
{
    (void)srv;
}

const ss__mode ss__mode_sync = {
    .name = "sync",
    .poll_first = false,
    .init = NULL,
    .acquire = sync_acquire,
    .process = sync_process,
    .release = sync_release,
    .service = NULL,
    .active = sync_active,
    .drain = sync_drain,
    .close = sync_close,
    .destroy = sync_destroy,
    .cut = sync_cut,
};
