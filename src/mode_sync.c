/*
 * mode_sync.c - one request at a time, in the serving thread (Python's plain
 * TCPServer/UDPServer). One request object is reused: no allocation or extra
 * system call per request, and one uncontended lock (ss__active_end).
 */
#include <sched.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "internal.h"

typedef struct sync_state {
    /* The running request's connection, for a graceful stop's cut in
     * another thread: -1 none, -2 being cut. */
    atomic_int fd;
} sync_state;

static atomic_int *published(ss_server *srv)
{
    return &((sync_state *)srv->mode_state)->fd;
}

static int sync_init(ss_server *srv)
{
    sync_state *st = malloc(sizeof *st);
    if (st == NULL)
        return -1;
    atomic_init(&st->fd, -1);
    srv->mode_state = st;
    return 0;
}

static void sync_destroy(ss_server *srv)
{
    free(srv->mode_state);
    srv->mode_state = NULL;
}

/* The connection stops being visible to a graceful stop's cut (another
 * thread) before it closes; if a cut holds it right now, wait the few
 * instructions until it is done with it, so that it never shuts down a
 * reused descriptor number. */
static void sync_unpublish(ss_server *srv)
{
    int fd = atomic_load_explicit(published(srv), memory_order_acquire);
    while (fd != -1 && !atomic_compare_exchange_weak(published(srv), &fd, -1)) {
        if (fd == -2) {
            sched_yield();
            fd = atomic_load_explicit(published(srv), memory_order_acquire);
        }
    }
}

/* Cut the running request, from the thread that runs the graceful stop. */
static void sync_cut(ss_server *srv)
{
    int fd = atomic_load_explicit(published(srv), memory_order_acquire);
    if (fd < 0 || !atomic_compare_exchange_strong(published(srv), &fd, -2))
        return; /* none, or it ended meanwhile */
    (void)shutdown(fd, SHUT_RD);
    atomic_store_explicit(published(srv), fd, memory_order_release);
}

static void sync_unpublish_req(ss_server *srv, ss_request *req)
{
    (void)req;
    sync_unpublish(srv);
}

static int sync_process(ss_server *srv, ss_request *req)
{
    /* After loop_thread was written (enter_loop): the stop-signal handler
     * reads it once it sees a request running. */
    ss__active_begin(srv);
    atomic_store_explicit(published(srv), ss__conn(req), memory_order_release);
    /* A handler that drains its own server must not wait for itself. */
    ss_server *outer = ss__current_server;
    ss__current_server = srv;
    int rc = ss__run_request(req);
    ss__current_server = outer;
    ss__request_reset(req);
    ss__active_end(srv);
    return rc == SS_ABORT ? SS_ABORT : 0;
}

const ss__mode ss__mode_sync = {
    .name = "sync",
    .poll_first = false,
    .init = sync_init,
    .acquire = ss__acquire_loop_request,
    .process = sync_process,
    .release = ss__release_reset,
    .service = NULL,
    .unpublish = sync_unpublish_req,
    .wait_step = NULL,
    .close = NULL,
    .destroy = sync_destroy,
    .cut = sync_cut,
};
