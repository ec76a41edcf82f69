/*
 * mode_pool.c - a fixed set of worker threads and a bounded queue.
 *
 * Request objects are made once: pool_workers + pool_queue of them, the
 * bound on requests in flight. Datagram servers: the serving thread takes a
 * free object, fills it (recvfrom) and queues it; a worker runs it and puts
 * the object back. When none is free the queue is full, and the policy
 * decides: SS_POOL_WAIT stops taking requests (the loop waits on an eventfd
 * a worker signals when it frees an object, so new requests wait in the
 * kernel), SS_POOL_REJECT takes the request with a spare object and drops it
 * after the reject hook.
 *
 * Stream servers under ss_serve_forever: the workers accept themselves
 * (relay.c), as workers blocked in accept() on a shared socket do, with no
 * hand-off on the way; the worker that accepts a connection serves it. The
 * loop only takes over accepting while every worker is busy (no worker
 * waited for a connection, and none came back to accepting for
 * SS__TAKEOVER_MS), into the same queue and with the same policy: a worker
 * takes the queue's requests before it accepts again, and the loop stops as
 * soon as one comes back. So the queue and its policy mean what they meant;
 * they are off the path of a server that has a worker to spare.
 * ss_handle_request (one request at a time) keeps the hand-off.
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
    bool dropping;     /* closing without waiting: nothing more starts */
    bool loop_waiting; /* the loop waits for a free object */
    int efd;
    ss_request *reject_obj;

    /* Workers accepting themselves (stream servers). */
    unsigned nthreads_max; /* pool_workers: epfd and wargs entries */
    bool relay;            /* a stream server: workers may accept */
    bool accepting;        /* ss_serve_forever runs: workers accept */
    unsigned nidle;        /* workers between taking the accepting role and
                              the end of their accept */
    int ctlfd;             /* eventfd, readable while accepting is off */
    int qfd;               /* eventfd (semaphore): a request was queued */
    int *epfd;             /* each worker's epoll set */
    int loop_epfd;         /* the loop's: registered after the workers' */
    bool takeover_hot;     /* the loop took over: every worker was busy */
    unsigned takeover_gen; /* ... and idle_gen then */
    atomic_uint idle_gen;  /* counts workers coming back to accepting */
    struct pool_worker *wargs;
    pthread_cond_t idle_cv;      /* loop_end waits for nidle == 0 */
    atomic_bool accept_reported; /* an accept error was reported */
} pool_state;

typedef struct pool_worker {
    ss_server *srv;
    unsigned index;
} pool_worker;

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

/* Datagram servers: a worker runs what the loop queued. */
static void *queue_worker(void *p)
{
    ss_server *srv = ((pool_worker *)p)->srv;
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

/* Run a request a worker has taken (off the queue, or accepted itself and
 * admitted). Called and returns with st->mu held. A stopping server starts
 * no request: it is closed unserved, as one still in the kernel's backlog
 * would be. SS_ABORT ends only this request. A queued request's object goes
 * back to the free list; a worker's own (keep) stays with it. */
static void run_taken(ss_server *srv, pool_state *st, ss_request *req, bool keep)
{
    bool serve = !ss__stopping(srv) && !st->dropping;
    ext(req)->running = true;
    pthread_mutex_unlock(&st->mu);
    if (serve)
        (void)ss__run_request(req);
    else
        ss__end_request(req);
    ss__request_reset(req);
    if (!keep) {
        pthread_mutex_lock(&st->mu);
        st->free_list[st->nfree++] = req;
        signal_loop(st);
        pthread_cond_signal(&st->work);
        pthread_mutex_unlock(&st->mu);
    }
    ss__active_end(srv);
    pthread_mutex_lock(&st->mu);
}

/* Stream servers: take the queue's requests first; with none, and while
 * ss_serve_forever runs, accept a connection into the worker's own object
 * and serve it. The worker keeps that object while it accepts, and gives it
 * back when accepting stops, so that the objects still bound the requests in
 * flight: the ones the workers hold, plus what the loop queues with the
 * rest. */
static void *stream_worker(void *p)
{
    pool_worker *w = p;
    ss_server *srv = w->srv;
    pool_state *st = state(srv);
    int epfd = st->epfd[w->index];
    unsigned backoff_ms = 0;
    ss_request *own = NULL;

    ss__block_signals(NULL); /* signals belong to the application's threads */
    ss__current_server = srv;
    pthread_mutex_lock(&st->mu);
    for (;;) {
        if (st->qcount > 0) {
            ss_request *req = st->queue[st->qhead];
            st->qhead = (st->qhead + 1) % st->qcap;
            st->qcount--;
            run_taken(srv, st, req, false);
            continue;
        }
        if (st->stopping)
            break; /* closing, and the queue is done */
        if (!st->accepting && own != NULL) {
            st->free_list[st->nfree++] = own;
            own = NULL;
            signal_loop(st);
        }
        if (own == NULL && st->accepting && st->nfree > 0)
            own = st->free_list[--st->nfree];
        if (own == NULL) {
            pthread_cond_wait(&st->work, &st->mu);
            continue;
        }
        st->nidle++;
        atomic_fetch_add_explicit(&st->idle_gen, 1, memory_order_relaxed);
        pthread_mutex_unlock(&st->mu);

        bool timed_out;
        int got = ss__relay_accept(srv, epfd, st->qfd, -1, own, &timed_out);
        int err = errno;
        if (got >= 0 && backoff_ms > 0) { /* no error: the episode is over */
            backoff_ms = 0;
            atomic_store(&st->accept_reported, false);
        }
        pthread_mutex_lock(&st->mu);
        st->nidle--;
        if (!st->accepting && st->nidle == 0)
            pthread_cond_broadcast(&st->idle_cv);
        if (got == 1) {
            /* Done with the listening socket: loop_end need not wait for
             * the hooks (verify_request may even stop the server). */
            pthread_mutex_unlock(&st->mu);
            if (ss__admit_request(srv, own) < 0)
                got = 0; /* turned away, and shut down */
            pthread_mutex_lock(&st->mu);
        }
        if (got != 1) {
            ss__request_reset(own);
            if (got < 0) {
                pthread_mutex_unlock(&st->mu);
                ss__relay_pause(srv, st->ctlfd, &backoff_ms, &st->accept_reported, err);
                pthread_mutex_lock(&st->mu);
            }
            continue;
        }
        ss__active_begin(srv);
        run_taken(srv, st, own, true);
    }
    if (own != NULL)
        st->free_list[st->nfree++] = own;
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
    ss__close(st->ctlfd);
    ss__close(st->qfd);
    ss__close(st->loop_epfd);
    if (st->epfd != NULL)
        for (unsigned i = 0; i < st->nthreads_max; i++)
            ss__close(st->epfd[i]);
    free(st->epfd);
    free(st->wargs);
    pthread_cond_destroy(&st->idle_cv);
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
    pthread_cond_init(&st->idle_cv, NULL);
    atomic_init(&st->accept_reported, false);
    atomic_init(&st->idle_gen, 0);
    st->efd = -1;
    st->ctlfd = -1;
    st->qfd = -1;
    st->loop_epfd = -1;
    st->relay = !srv->transport->shared_socket;
    unsigned nw = srv->opt.pool_workers;
    unsigned n = nw + srv->opt.pool_queue;
    st->threads = calloc(nw, sizeof *st->threads);
    st->wargs = calloc(nw, sizeof *st->wargs);
    st->all = calloc(n, sizeof *st->all);
    st->free_list = calloc(n, sizeof *st->free_list);
    st->queue = calloc(n, sizeof *st->queue);
    st->qcap = n;
    st->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    st->reject_obj = ss__request_new(srv);
    if (!st->threads || !st->wargs || !st->all || !st->free_list || !st->queue || st->efd < 0 ||
        !st->reject_obj)
        goto fail;
    if (st->relay) {
        st->ctlfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        st->qfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
        st->epfd = malloc(nw * sizeof *st->epfd);
        if (st->ctlfd < 0 || st->qfd < 0 || st->epfd == NULL)
            goto fail;
        for (unsigned i = 0; i < nw; i++)
            st->epfd[i] = -1;
        st->nthreads_max = nw;
        /* Off until the loop serves: a readable control descriptor. */
        uint64_t one = 1;
        if (write(st->ctlfd, &one, sizeof one) < 0)
            goto fail;
        for (unsigned i = 0; i < nw && st->relay; i++) {
            st->epfd[i] = ss__relay_epoll(srv, st->ctlfd, st->qfd);
            if (st->epfd[i] < 0 && errno != EINVAL)
                goto fail;
            st->relay = st->epfd[i] >= 0;
        }
        /* Last: the kernel offers it a connection only when no worker
         * waits for one. */
        if (st->relay) {
            st->loop_epfd = ss__relay_epoll(srv, -1, -1);
            if (st->loop_epfd < 0)
                goto fail;
        }
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
    for (unsigned i = 0; i < nw; i++) {
        st->wargs[i].srv = srv;
        st->wargs[i].index = i;
        err = pthread_create(&st->threads[i], &attr, st->relay ? stream_worker : queue_worker,
                             &st->wargs[i]);
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

fail:
    err = errno ? errno : ENOMEM;
    free_state(st);
    errno = err;
    return -1;
}

/* The loop's epoll set turned readable: a connection came while no worker
 * waited in epoll_wait. Usually one is about to (it is closing its last
 * connection), and taking the connection over would only add a hand-off.
 * So the loop takes over only when no worker has come back to accepting for
 * SS__TAKEOVER_MS (every worker is really busy), and then at once
 * until one comes back. Returns whether the loop should accept now. */
static bool takeover_due(ss_server *srv, pool_state *st)
{
    unsigned gen = atomic_load(&st->idle_gen);
    if (!st->takeover_hot || gen != st->takeover_gen) {
        st->takeover_hot = false;
        int fds[1] = {srv->wakefd};
        bool ready[1];
        if (ss__poll(fds, ready, 1, SS__TAKEOVER_MS) != 0)
            return false; /* a stop, or a signal: the loop looks again */
        unsigned now = atomic_load(&st->idle_gen);
        if (now != gen)
            return false; /* a worker came back: it accepts */
        gen = now;
    }
    int fds[1] = {st->loop_epfd};
    bool ready[1];
    st->takeover_hot = ss__poll(fds, ready, 1, 0) > 0;
    st->takeover_gen = gen;
    return st->takeover_hot;
}

static ss_request *pool_acquire(ss_server *srv)
{
    pool_state *st = state(srv);
    ss_request *req = NULL;

    if (srv->mode_wait_fd == st->efd) {
        uint64_t v;
        ssize_t r = read(st->efd, &v, sizeof v);
        (void)r;
    }
    if (srv->mode_wait_fd == st->loop_epfd && st->loop_epfd >= 0 && !takeover_due(srv, st))
        return NULL; /* a worker took it: keep waiting on the loop's set */
    pthread_mutex_lock(&st->mu);
    if (st->nfree > 0) {
        req = st->free_list[--st->nfree];
        /* Workers accepting: the loop accepts only when its epoll set says
         * that a connection found no worker waiting. */
        srv->mode_wait_fd = st->accepting ? st->loop_epfd : -1;
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
    st->takeover_hot = false; /* nothing was waiting, or it was turned away */
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
    if (st->nidle > 0) {
        /* A worker went back to accepting while the loop accepted this
         * one: wake one of them for it. */
        uint64_t one = 1;
        ssize_t w = write(st->qfd, &one, sizeof one);
        (void)w;
    }
    pthread_mutex_unlock(&st->mu);
    return 0;
}

/* a serve loop begins: stream workers accept. */
static void pool_loop_begin(ss_server *srv, bool once)
{
    pool_state *st = state(srv);
    uint64_t v;

    if (!st->relay || once) /* ss_handle_request: the serving thread accepts */
        return;
    pthread_mutex_lock(&st->mu);
    while (read(st->ctlfd, &v, sizeof v) > 0)
        ;
    while (read(st->qfd, &v, sizeof v) > 0)
        ;
    st->accepting = true;
    pthread_cond_broadcast(&st->work);
    pthread_mutex_unlock(&st->mu);
    srv->mode_wait_fd = st->loop_epfd;
}

/* a serve loop ends: no worker accepts from now on (their epoll sets
 * see the control descriptor), and none is still inside accept when this
 * returns, so the listening socket may be closed. */
static void pool_loop_end(ss_server *srv)
{
    pool_state *st = state(srv);
    uint64_t one = 1;

    if (!st->relay)
        return;
    pthread_mutex_lock(&st->mu);
    st->accepting = false;
    ssize_t w = write(st->ctlfd, &one, sizeof one);
    (void)w;
    while (st->nidle > 0)
        pthread_cond_wait(&st->idle_cv, &st->mu);
    pthread_mutex_unlock(&st->mu);
    srv->mode_wait_fd = -1;
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
        st->dropping = true;
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
    st->dropping = true;
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
    .loop_begin = pool_loop_begin,
    .loop_end = pool_loop_end,
};
