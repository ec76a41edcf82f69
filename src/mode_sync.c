/*
 * mode_sync.c - one request at a time, in the serving thread (Python's plain
 * TCPServer/UDPServer). One request object is reused: no allocation, lock or
 * extra system call per request.
 */
#include <errno.h>
#include <math.h>

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

static int sync_process(ss_server *srv, ss_request *req)
{
    atomic_store_explicit(&srv->sync_active, 1, memory_order_relaxed);
    int rc = ss__finish_request(req);
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
};
