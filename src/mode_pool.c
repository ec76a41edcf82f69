/*
 * mode_pool.c - a fixed set of worker threads fed by a bounded queue.
 *
 * Request objects are made once: pool_workers + pool_queue of them. The
 * serving thread takes a free one, fills it (accept/recvfrom) and queues
 * it; a worker runs it and puts the object back. When none is free the
 * queue is full, and the policy decides: SS_POOL_WAIT stops taking requests
 * (the loop waits on an eventfd a worker signals when it frees an object, so
 * new connections wait in the kernel's backlog), SS_POOL_REJECT takes the
 * request with a spare object and drops it after the reject hook.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"

typedef struct pool_state {
    pthread_mutex_t mu;
    pthread_cond_t work; /* a request was queued, or stopping */
    pthread_t *threads;
    unsigned nthreads;
    ss_request **all;
    unsigned nall;
    ss_request **free_list;
    unsigned nfree;
    ss_request **queue; /* ring of qcap entries */
    unsigned qhead, qcount, qcap;
    bool stopping;
    bool loop_waiting; /* the loop waits for a free object */
    int efd;
    ss_request *reject_obj;
} pool_state;

/* The pool's part of each request object (ss_request.mode_ext). */
typedef struct pool_req {
    bool running; /* a worker runs it (under the pool lock) */
} pool_req;

static pool_state *state(ss_server *srv)
{
    return srv->mode_state;
}

static pool_req *ext(ss_request *req)
{
    return (pool_req *)req->mode_ext;
}

static void signal_loop(pool_state *st)
{
    if (st->loop_waiting) {
        uint64_t one = 1;
        st->loop_waiting = false;
        ssize_t w = write(st->efd, &one, sizeof one);
        (void)w;
    }
}

static void *worker(void *p)
{
    ss_server *srv = p;
    pool_state *st = state(srv);

    ss__block_signals(NULL); /* signals belong to the application's threads */
    ss__current_server = srv;
    pthread_mutex_lock(&st->mu);
    for (;;) {
        while (st->qcount == 0 && !st->stopping)
            pthread_cond_wait(&st->work, &st->mu);
        if (st->qcount == 0)
            break; /* stopping, and the queue is done */
        ss_request *req = st->queue[st->qhead];
        st->qhead = (st->qhead + 1) % st->qcap;
        st->qcount--;
        ext(req)->running = true;
        pthread_mutex_unlock(&st->mu);

        /* A stopping server starts no queued request: it is closed
         * unserved. SS_ABORT ends only this request. */
        if (!ss__stopping(srv))
            (void)ss__run_request(req);
        else
            ss__end_request(req);
        ss__request_reset(req);

        pthread_mutex_lock(&st->mu);
        st->free_list[st->nfree++] = req;
        signal_loop(st);
        pthread_mutex_unlock(&st->mu);
        ss__active_end(srv);
        pthread_mutex_lock(&st->mu);
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

static void tell_workers_to_stop(pool_state *st)
{
    pthread_mutex_lock(&st->mu);
    st->stopping = true;
    pthread_cond_broadcast(&st->work);
    pthread_mutex_unlock(&st->mu);
}

static void stop_workers(pool_state *st)
{
    tell_workers_to_stop(st);
    for (unsigned i = 0; i < st->nthreads; i++)
        pthread_join(st->threads[i], NULL);
    st->nthreads = 0;
}

static void free_state(pool_state *st)
{
    for (unsigned i = 0; i < st->nall; i++)
        ss__request_free(st->all[i]);
    ss__request_free(st->reject_obj);
    ss__close(st->efd);
    free(st->threads);
    free(st->all);
    free(st->free_list);
    free(st->queue);
    pthread_cond_destroy(&st->work);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

static int pool_init(ss_server *srv)
{
    /* Datagram servers: the workers receive themselves, no queue on the
     * way (pool_dgram.c, which then is this server's mode). */
    if (srv->transport->shared_socket)
        return ss__pool_dgram_init(srv);

    pool_state *st = calloc(1, sizeof *st);
    pthread_attr_t attr;
    int err = 0;

    if (st == NULL)
        return -1;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->work, NULL);
    st->efd = -1;
    unsigned n = srv->opt.pool_workers + srv->opt.pool_queue;
    st->threads = calloc(srv->opt.pool_workers, sizeof *st->threads);
    st->all = calloc(n, sizeof *st->all);
    st->free_list = calloc(n, sizeof *st->free_list);
    st->queue = calloc(n, sizeof *st->queue);
    st->qcap = n;
    st->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    st->reject_obj = ss__request_new(srv);
    if (!st->threads || !st->all || !st->free_list || !st->queue || st->efd < 0 ||
        !st->reject_obj) {
        err = errno ? errno : ENOMEM;
        free_state(st);
        errno = err;
        return -1;
    }
    for (unsigned i = 0; i < n; i++) {
        st->all[i] = ss__request_new(srv);
        if (st->all[i] == NULL) {
            free_state(st);
            errno = ENOMEM;
            return -1;
        }
        st->nall++;
        st->free_list[st->nfree++] = st->all[i];
    }
    srv->mode_state = st;

    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, srv->opt.thread_stack_size);
    (void)ss__attr_block_signals(&attr);
    for (unsigned i = 0; i < srv->opt.pool_workers; i++) {
        err = pthread_create(&st->threads[i], &attr, worker, srv);
        if (err != 0)
            break;
        st->nthreads++;
    }
    pthread_attr_destroy(&attr);
    if (err != 0) {
        stop_workers(st);
        free_state(st);
        srv->mode_state = NULL;
        errno = err;
        return -1;
    }
    return 0;
}

static ss_request *pool_acquire(ss_server *srv)
{
    pool_state *st = state(srv);
    ss_request *req = NULL;

    if (srv->mode_wait_fd >= 0) {
        uint64_t v;
        ssize_t r = read(st->efd, &v, sizeof v);
        (void)r;
    }
    pthread_mutex_lock(&st->mu);
    if (st->nfree > 0) {
        req = st->free_list[--st->nfree];
        srv->mode_wait_fd = -1;
    } else if (srv->opt.pool_full == SS_POOL_REJECT) {
        req = st->reject_obj;
        req->reject_reason = SS_REJECT_QUEUE_FULL; /* to be dropped */
    } else {
        st->loop_waiting = true;
        srv->mode_wait_fd = st->efd;
    }
    pthread_mutex_unlock(&st->mu);
    return req;
}

/* Before the descriptor closes: abort and cut leave it alone from now. */
static void pool_unpublish(ss_server *srv, ss_request *req)
{
    pool_state *st = state(srv);
    pthread_mutex_lock(&st->mu);
    ext(req)->running = false;
    pthread_mutex_unlock(&st->mu);
}

static void pool_release(ss_server *srv, ss_request *req)
{
    pool_state *st = state(srv);

    ss__request_reset(req);
    if (req == st->reject_obj)
        return;
    pthread_mutex_lock(&st->mu);
    st->free_list[st->nfree++] = req;
    pthread_mutex_unlock(&st->mu);
}

static int pool_process(ss_server *srv, ss_request *req)
{
    pool_state *st = state(srv);

    if (req == st->reject_obj) {
        ss__reject_request(req);
        ss__request_reset(req);
        return 0;
    }
    ss__active_begin(srv); /* from the queue on, as running */
    pthread_mutex_lock(&st->mu);
    st->queue[(st->qhead + st->qcount) % st->qcap] = req;
    st->qcount++;
    pthread_cond_signal(&st->work);
    pthread_mutex_unlock(&st->mu);
    return 0;
}

/* Close a queued request unserved (st->mu held). */
static void drop_queued_locked(ss_server *srv, pool_state *st)
{
    while (st->qcount > 0) {
        ss_request *req = st->queue[st->qhead];
        st->qhead = (st->qhead + 1) % st->qcap;
        st->qcount--;
        ss__shutdown_request(req);
        ss__request_reset(req);
        st->free_list[st->nfree++] = req;
        signal_loop(st);
        ss__active_end(srv);
    }
}

static void pool_close(ss_server *srv)
{
    pool_state *st = state(srv);

    if (!srv->opt.block_on_close) {
        /* Not waiting: queued requests are closed unserved. */
        pthread_mutex_lock(&st->mu);
        drop_queued_locked(srv, st);
        pthread_mutex_unlock(&st->mu);
        /* Nor for the requests running now: the workers end after them
         * and are joined by ss_server_free. */
        tell_workers_to_stop(st);
        return;
    }
    stop_workers(st);
}

static void pool_destroy(ss_server *srv)
{
    pool_state *st = state(srv);
    if (st == NULL)
        return;
    /* Workers still in a request (close did not wait for them) end once
     * their connections are cut; then they can be joined. */
    pthread_mutex_lock(&st->mu);
    for (unsigned i = 0; i < st->nall; i++) {
        if (ext(st->all[i])->running) {
            atomic_store(&srv->aborting, true);
            ss__abort_request(st->all[i]);
        }
    }
    pthread_mutex_unlock(&st->mu);
    stop_workers(st);
    free_state(st);
    srv->mode_state = NULL;
}

/* Graceful stop: close the queued requests unserved, and end the input of
 * the running ones. */
static void pool_cut(ss_server *srv)
{
    pool_state *st = state(srv);
    pthread_mutex_lock(&st->mu);
    drop_queued_locked(srv, st);
    for (unsigned i = 0; i < st->nall; i++)
        if (ext(st->all[i])->running)
            ss__abort_request(st->all[i]);
    pthread_mutex_unlock(&st->mu);
}

const ss__mode ss__mode_pool = {
    .name = "pool",
    .poll_first = false,
    .req_ext_size = sizeof(pool_req),
    .init = pool_init,
    .acquire = pool_acquire,
    .process = pool_process,
    .release = pool_release,
    .service = NULL,
    .unpublish = pool_unpublish,
    .wait_step = NULL,
    .close = pool_close,
    .destroy = pool_destroy,
    .cut = pool_cut,
};
