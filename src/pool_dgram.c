/*
 * pool_dgram.c - the pool mode for datagram servers: a fixed set of worker
 * threads that receive datagrams themselves from the shared non-blocking
 * socket, one (recvfrom) or a batch (recvmmsg) at a time, and run them. No
 * thread hands a datagram to another on the way: a datagram costs what it
 * costs a plain recvfrom loop, plus the wait for the next one.
 *
 * Each worker waits in an epoll set of its own that holds the socket with
 * EPOLLEXCLUSIVE (the kernel wakes one idle worker per datagram, not all)
 * and, edge-triggered, a control eventfd written to wake every worker (the
 * queue below, or the end). Workers receive only while ss_serve_forever
 * runs (loop_begin to loop_end) and no stop is asked for.
 *
 * How the pool's policy maps:
 *   - SS_POOL_WAIT: a worker receives only when it is free, so at most
 *     pool_workers requests (or batches) are in hand; further datagrams wait
 *     in the socket's receive buffer, which is the queue (pool_queue does
 *     not apply), as streams wait in the listen backlog.
 *   - SS_POOL_REJECT: while every worker is busy the serving thread receives
 *     and queues up to pool_queue datagrams; one more finds the queue full
 *     and goes to the reject hook, then is dropped. A worker that is done
 *     takes from the queue before it receives again.
 * ss_handle_request (one request) takes its datagram in the serving thread
 * and queues it, as both policies do when the queue is their way in.
 * verify_request, the connection limits and the reject hook of a limit run
 * in the worker that received the datagram. A graceful stop starts no
 * datagram that waits in the queue or in a worker's batch: they are dropped.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

typedef struct pd_worker {
    ss_server *srv;
    pthread_t tid;
    bool started;
    int epfd;               /* the socket (exclusive) and the control eventfd;
                               -1 for a blocking worker */
    ss_request *req;        /* the one request object it runs datagrams in */
    ss__dgram_batch *batch; /* batch > 1; NULL: recvfrom */
} pd_worker;

typedef struct pd_state {
    pthread_mutex_t mu;
    pthread_cond_t work; /* queued, opened, or quitting */
    pd_worker *workers;
    unsigned nworkers;
    /* The queue (ss_handle_request, and SS_POOL_REJECT when every worker
     * is busy): request objects filled by the serving thread. */
    ss_request **all;
    unsigned nall;
    ss_request **free_list;
    unsigned nfree;
    ss_request **queue; /* ring of qcap entries */
    unsigned qhead, qcount, qcap;
    ss_request *reject_obj;
    atomic_uint queued;    /* qcount, read without the lock */
    bool loop_waiting;     /* under mu: the loop waits on efd */
    int efd;               /* the loop's: a worker got busy, or freed an object */
    int ctlfd;             /* wakes every worker waiting in epoll */
    atomic_bool open;      /* a serve loop runs: workers may receive */
    atomic_bool quit;      /* close or free: end after the queue */
    atomic_uint idle;      /* workers free to take a datagram */
    atomic_uint polling;   /* workers in (or about to be in) epoll_wait */
    atomic_uint receiving; /* workers between their last look and recv */
    /* SS_POOL_WAIT: the socket is a blocking one and free workers wait in
     * recvfrom/recvmmsg (the kernel wakes one per datagram); everything
     * else on it passes MSG_DONTWAIT. */
    bool blocking;
    int sockfd; /* the socket the workers wait on */
} pd_state;

static pd_state *state(ss_server *srv)
{
    return srv->mode_state;
}

/* The loop waits on efd (st->mu held): wake it. */
static void signal_loop_locked(pd_state *st)
{
    if (st->loop_waiting) {
        uint64_t one = 1;
        st->loop_waiting = false;
        ssize_t w = write(st->efd, &one, sizeof one);
        (void)w;
    }
}

static void wake_workers(pd_state *st)
{
    uint64_t one = 1;
    ssize_t w = write(st->ctlfd, &one, sizeof one);
    (void)w; /* edge-triggered and never read: it cannot fill up in practice */
}

/* A worker takes a datagram on: with SS_POOL_REJECT, the last free worker
 * hands receiving to the serving thread, which can tell a full queue. */
static void busy(ss_server *srv, pd_state *st)
{
    if (atomic_fetch_sub(&st->idle, 1) == 1 && srv->opt.pool_full == SS_POOL_REJECT) {
        pthread_mutex_lock(&st->mu);
        signal_loop_locked(st);
        pthread_mutex_unlock(&st->mu);
    }
}

static void not_busy(pd_state *st)
{
    atomic_fetch_add(&st->idle, 1);
}

/* Run a request the loop queued (counted in srv->active by process). */
static void run_queued(ss_server *srv, pd_state *st, ss_request *req)
{
    busy(srv, st);
    /* A stopping server starts no queued request. SS_ABORT ends only this
     * request. */
    if (!ss__stopping(srv))
        (void)ss__run_request(req);
    else
        ss__end_request(req);
    ss__request_reset(req);
    pthread_mutex_lock(&st->mu);
    st->free_list[st->nfree++] = req;
    signal_loop_locked(st);
    pthread_mutex_unlock(&st->mu);
    ss__active_end(srv);
    not_busy(st);
}

/* verify_request and the connection limits for a datagram a worker
 * received (the loop's handle_request_noblock does the same for its own).
 * Returns true when the request is to run. */
static bool admit(ss_server *srv, ss_request *req)
{
    if (srv->opt.verify_request != NULL && !srv->opt.verify_request(req)) {
        ss__shutdown_request(req);
        return false;
    }
    if (srv->limits != NULL && ss__limits_admit(srv, req) < 0) {
        if (req->reject_reason != SS_REJECT_NONE) {
            ss__reject_request(req);
        } else {
            ss__handle_error(srv, req, errno);
            ss__shutdown_request(req);
        }
        return false;
    }
    return true;
}

static void run_received(ss_server *srv, ss_request *req)
{
    /* A graceful stop starts nothing more, as for the queue. */
    if (!ss__stopping(srv) && admit(srv, req))
        (void)ss__run_request(req);
    ss__request_reset(req);
}

/* Whether the worker may receive now. */
static bool may_receive(ss_server *srv, pd_state *st)
{
    return atomic_load(&st->open) && !atomic_load(&st->quit) && !ss__stop_requested(srv);
}

/* A blocking worker waited in its receive while the loop ended: what it
 * got waits with it, uncounted, as if still in the socket, until a loop
 * serves again. Returns false when the pool is closing instead. */
static bool hold(ss_server *srv, pd_state *st)
{
    if (atomic_load(&st->quit))
        return false;
    if (may_receive(srv, st))
        return true;
    atomic_fetch_sub(&st->receiving, 1);
    pthread_mutex_lock(&st->mu);
    while (!atomic_load(&st->quit) && !may_receive(srv, st))
        pthread_cond_wait(&st->work, &st->mu);
    pthread_mutex_unlock(&st->mu);
    atomic_fetch_add(&st->receiving, 1);
    return !atomic_load(&st->quit);
}

/* Receive what waits (a datagram, or a batch) and run it. Returns the count
 * received, 0 when nothing waits (or receiving is not allowed now), -1 on
 * an error (errno). */
static int receive_and_run(pd_worker *w, pd_state *st)
{
    ss_server *srv = w->srv;
    int n;

    /* Counted as receiving before the last look, so that loop_end and close,
     * which change what the look sees, can wait for the receive to be over
     * (and its datagrams counted as running). */
    atomic_fetch_add(&st->receiving, 1);
    if (!may_receive(srv, st)) {
        atomic_fetch_sub(&st->receiving, 1);
        return 0;
    }
    if (w->batch != NULL)
        n = ss__dgram_batch_recv(srv, w->batch, st->blocking);
    else
        n = ss__dgram_recv(srv, w->req, st->blocking);
    int err = errno;
    if (n > 0 && st->blocking && !hold(srv, st)) {
        /* Closing: what came in with the end is dropped. */
        atomic_fetch_sub(&st->receiving, 1);
        return 0;
    }
    for (int i = 0; i < n; i++)
        ss__active_begin(srv);
    atomic_fetch_sub(&st->receiving, 1);
    if (n <= 0) {
        errno = err;
        return n;
    }
    busy(srv, st);
    if (w->batch == NULL) {
        run_received(srv, w->req);
    } else {
        for (int i = 0; i < n; i++) {
            ss__dgram_batch_take(srv, w->batch, w->req, true);
            run_received(srv, w->req);
        }
        /* Normally sent with the last reply already; not when the last
         * datagram got none (its setup failed, or it was turned away). */
        ss__dgram_batch_flush(srv, w->batch);
    }
    /* The replies are out: only now are these requests over (close may
     * close the socket once none runs). */
    for (int i = 0; i < n; i++)
        ss__active_end(srv);
    not_busy(st);
    return n;
}

/* Nothing to receive: wait for a datagram (the kernel wakes one waiting
 * worker per datagram) or for the control eventfd. */
static void wait_for_work(pd_worker *w, pd_state *st)
{
    struct epoll_event ev[2];

    atomic_fetch_add(&st->polling, 1);
    /* Whoever queues or quits looks at `polling` after it changed what is
     * looked at here: one of the two sees the other. */
    if (atomic_load(&st->queued) == 0 && !atomic_load(&st->quit) && may_receive(w->srv, st))
        (void)epoll_wait(w->epfd, ev, 2, -1);
    atomic_fetch_sub(&st->polling, 1);
}

/* Receiving failed for another reason than "nothing waits" (ENOMEM,
 * ENOBUFS): report it and pause briefly rather than spin. */
static void receive_failed(ss_server *srv, int err)
{
    struct timespec pause = {0, SS__BACKOFF_MIN_MS * 1000000L};
    if (!atomic_load(&srv->aborting))
        ss__handle_error(srv, NULL, err);
    (void)nanosleep(&pause, NULL);
}

static void *worker_main(void *p)
{
    pd_worker *w = p;
    ss_server *srv = w->srv;
    pd_state *st = state(srv);

    ss__block_signals(NULL); /* signals belong to the application's threads */
    ss__current_server = srv;
    for (;;) {
        if (atomic_load(&st->queued) > 0 || !may_receive(srv, st)) {
            pthread_mutex_lock(&st->mu);
            while (st->qcount == 0 && !atomic_load(&st->quit) && !may_receive(srv, st))
                pthread_cond_wait(&st->work, &st->mu);
            if (st->qcount > 0) {
                ss_request *req = st->queue[st->qhead];
                st->qhead = (st->qhead + 1) % st->qcap;
                st->qcount--;
                atomic_fetch_sub(&st->queued, 1);
                pthread_mutex_unlock(&st->mu);
                run_queued(srv, st, req);
                continue;
            }
            pthread_mutex_unlock(&st->mu);
            if (atomic_load(&st->quit))
                break; /* the queue is done */
        }
        int n = receive_and_run(w, st);
        if (n == 0 && !st->blocking)
            wait_for_work(w, st);
        else if (n < 0)
            receive_failed(srv, errno);
    }
    return NULL;
}

static void free_state(ss_server *srv, pd_state *st)
{
    for (unsigned i = 0; i < st->nworkers; i++) {
        ss__close(st->workers[i].epfd);
        ss__request_free(st->workers[i].req);
        ss__dgram_batch_free(st->workers[i].batch);
    }
    for (unsigned i = 0; i < st->nall; i++)
        ss__request_free(st->all[i]);
    ss__request_free(st->reject_obj);
    ss__close(st->efd);
    ss__close(st->ctlfd);
    free(st->workers);
    free(st->all);
    free(st->free_list);
    free(st->queue);
    pthread_cond_destroy(&st->work);
    pthread_mutex_destroy(&st->mu);
    free(st);
    (void)srv;
}

/* Tell the workers to end once the queue is done, and wait until none is
 * in the middle of a receive (the socket may close right after). */
static void tell_workers_to_quit(pd_state *st)
{
    pthread_mutex_lock(&st->mu);
    atomic_store(&st->quit, true);
    pthread_cond_broadcast(&st->work);
    pthread_mutex_unlock(&st->mu);
    wake_workers(st);
    /* The socket closes next: ending its input wakes every worker waiting
     * in a receive (even an unconnected datagram socket's). */
    if (st->blocking && st->sockfd >= 0) {
        (void)shutdown(st->sockfd, SHUT_RD);
        st->sockfd = -1; /* once: the number may be another file's after close */
    }
    while (atomic_load(&st->receiving) != 0)
        sched_yield();
}

static void join_workers(pd_state *st)
{
    tell_workers_to_quit(st);
    for (unsigned i = 0; i < st->nworkers; i++) {
        if (st->workers[i].started) {
            pthread_join(st->workers[i].tid, NULL);
            st->workers[i].started = false;
        }
    }
}

static int init_worker(ss_server *srv, pd_state *st, pd_worker *w)
{
    w->srv = srv;
    w->req = ss__request_new(srv);
    if (w->req == NULL)
        return -1;
    if (srv->opt.batch > 1) {
        w->batch = ss__dgram_batch_new(srv->opt.batch);
        if (w->batch == NULL)
            return -1;
    }
    if (st->blocking)
        return 0;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->epfd < 0)
        return -1;
    struct epoll_event sock = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = srv->fd};
    struct epoll_event ctl = {.events = EPOLLIN | EPOLLET, .data.fd = st->ctlfd};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, srv->fd, &sock) < 0 ||
        epoll_ctl(w->epfd, EPOLL_CTL_ADD, st->ctlfd, &ctl) < 0)
        return -1;
    return 0;
}

int ss__pool_dgram_init(ss_server *srv)
{
    pd_state *st = calloc(1, sizeof *st);
    pthread_attr_t attr;
    int err = 0;

    if (st == NULL)
        return -1;
    /* From here the server runs as this mode. */
    srv->mode = &ss__mode_pool_dgram;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->work, NULL);
    atomic_init(&st->queued, 0);
    atomic_init(&st->open, false);
    atomic_init(&st->quit, false);
    atomic_init(&st->idle, srv->opt.pool_workers);
    atomic_init(&st->polling, 0);
    atomic_init(&st->receiving, 0);
    st->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    st->ctlfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    st->sockfd = srv->fd;
    st->blocking = srv->opt.pool_full == SS_POOL_WAIT;
    /* The queue holds what the serving thread takes: at least one. */
    unsigned n = srv->opt.pool_queue > 0 ? srv->opt.pool_queue : 1;
    st->workers = calloc(srv->opt.pool_workers, sizeof *st->workers);
    st->all = calloc(n, sizeof *st->all);
    st->free_list = calloc(n, sizeof *st->free_list);
    st->queue = calloc(n, sizeof *st->queue);
    st->qcap = n;
    st->reject_obj = ss__request_new(srv);
    if (!st->workers || !st->all || !st->free_list || !st->queue || st->efd < 0 || st->ctlfd < 0 ||
        !st->reject_obj)
        goto fail;
    for (unsigned i = 0; i < srv->opt.pool_workers; i++)
        st->workers[i].epfd = -1;
    st->nworkers = srv->opt.pool_workers;
    for (unsigned i = 0; i < n; i++) {
        st->all[i] = ss__request_new(srv);
        if (st->all[i] == NULL)
            goto fail;
        st->nall++;
        st->free_list[st->nfree++] = st->all[i];
    }
    for (unsigned i = 0; i < st->nworkers; i++)
        if (init_worker(srv, st, &st->workers[i]) < 0)
            goto fail;
    if (st->blocking) {
        int fl = fcntl(srv->fd, F_GETFL);
        if (fl < 0 || fcntl(srv->fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
            goto fail;
    }
    srv->mode_state = st;

    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, srv->opt.thread_stack_size);
    (void)ss__attr_block_signals(&attr);
    for (unsigned i = 0; i < st->nworkers; i++) {
        err = pthread_create(&st->workers[i].tid, &attr, worker_main, &st->workers[i]);
        if (err != 0)
            break;
        st->workers[i].started = true;
    }
    pthread_attr_destroy(&attr);
    if (err != 0) {
        join_workers(st);
        free_state(srv, st);
        srv->mode_state = NULL;
        errno = err;
        return -1;
    }
    return 0;

fail:
    err = errno ? errno : ENOMEM;
    free_state(srv, st);
    errno = err;
    return -1;
}

static void pd_loop_begin(ss_server *srv, bool once)
{
    pd_state *st = state(srv);
    if (once)
        return; /* one request: the serving thread takes it */
    pthread_mutex_lock(&st->mu);
    atomic_store(&st->open, true);
    pthread_cond_broadcast(&st->work);
    pthread_mutex_unlock(&st->mu);
}

/* The loop has stopped: no worker receives any more. Once this returns, a
 * receive that began before is over and its datagrams are counted as
 * running, so the graceful stop waits for them. */
static void pd_loop_end(ss_server *srv)
{
    pd_state *st = state(srv);
    atomic_store(&st->open, false);
    /* A blocking worker may wait in its receive for long: what it gets
     * after this point it holds (see hold). */
    while (!st->blocking && atomic_load(&st->receiving) != 0)
        sched_yield();
}

static ss_request *pd_acquire(ss_server *srv)
{
    pd_state *st = state(srv);
    ss_request *req = NULL;

    if (srv->mode_wait_fd >= 0) {
        uint64_t v;
        ssize_t r = read(st->efd, &v, sizeof v);
        (void)r;
    }
    pthread_mutex_lock(&st->mu);
    /* While the workers receive, the loop only waits: for the stop, its
     * service, or (SS_POOL_REJECT) every worker being busy. */
    bool workers_receive = atomic_load(&st->open) &&
                           (srv->opt.pool_full == SS_POOL_WAIT || atomic_load(&st->idle) > 0);
    if (!workers_receive && st->nfree > 0) {
        req = st->free_list[--st->nfree];
        srv->mode_wait_fd = -1;
    } else if (!workers_receive && srv->opt.pool_full == SS_POOL_REJECT) {
        req = st->reject_obj;
        req->reject_reason = SS_REJECT_QUEUE_FULL; /* to be dropped */
        srv->mode_wait_fd = -1;
    } else {
        /* Woken when a worker gets busy, or frees a queue object. */
        st->loop_waiting = true;
        srv->mode_wait_fd = st->efd;
    }
    pthread_mutex_unlock(&st->mu);
    return req;
}

static void pd_release(ss_server *srv, ss_request *req)
{
    pd_state *st = state(srv);

    ss__request_reset(req);
    if (req == st->reject_obj)
        return;
    pthread_mutex_lock(&st->mu);
    st->free_list[st->nfree++] = req;
    pthread_mutex_unlock(&st->mu);
}

static int pd_process(ss_server *srv, ss_request *req)
{
    pd_state *st = state(srv);

    if (req == st->reject_obj) {
        ss__reject_request(req);
        ss__request_reset(req);
        return 0;
    }
    ss__active_begin(srv); /* from the queue on, as running */
    pthread_mutex_lock(&st->mu);
    st->queue[(st->qhead + st->qcount) % st->qcap] = req;
    st->qcount++;
    atomic_fetch_add(&st->queued, 1);
    pthread_cond_signal(&st->work);
    pthread_mutex_unlock(&st->mu);
    if (atomic_load(&st->polling) > 0)
        wake_workers(st);
    return 0;
}

/* Close the queued requests unserved (st->mu held). */
static void drop_queued_locked(ss_server *srv, pd_state *st)
{
    while (st->qcount > 0) {
        ss_request *req = st->queue[st->qhead];
        st->qhead = (st->qhead + 1) % st->qcap;
        st->qcount--;
        atomic_fetch_sub(&st->queued, 1);
        ss__shutdown_request(req);
        ss__request_reset(req);
        st->free_list[st->nfree++] = req;
        signal_loop_locked(st);
        ss__active_end(srv);
    }
}

static void pd_close(ss_server *srv)
{
    pd_state *st = state(srv);

    if (!srv->opt.block_on_close) {
        /* Not waiting: queued requests are dropped, and the workers end
         * after what they run now; ss_server_free joins them. */
        pthread_mutex_lock(&st->mu);
        drop_queued_locked(srv, st);
        pthread_mutex_unlock(&st->mu);
        tell_workers_to_quit(st);
        return;
    }
    join_workers(st);
}

static void pd_destroy(ss_server *srv)
{
    pd_state *st = state(srv);
    if (st == NULL)
        return;
    join_workers(st);
    free_state(srv, st);
    srv->mode_state = NULL;
}

/* Graceful stop: datagram requests have no connection to cut; the queued
 * ones are dropped. */
static void pd_cut(ss_server *srv)
{
    pd_state *st = state(srv);
    pthread_mutex_lock(&st->mu);
    drop_queued_locked(srv, st);
    pthread_mutex_unlock(&st->mu);
}

const ss__mode ss__mode_pool_dgram = {
    .name = "pool",
    .poll_first = false,
    .req_ext_size = 0,
    .init = ss__pool_dgram_init,
    .acquire = pd_acquire,
    .process = pd_process,
    .release = pd_release,
    .service = NULL,
    .unpublish = NULL,
    .wait_step = NULL,
    .close = pd_close,
    .destroy = pd_destroy,
    .cut = pd_cut,
    .loop_begin = pd_loop_begin,
    .loop_end = pd_loop_end,
};
