/*
 * mode_thread.c - a thread per request (Python's ThreadingMixIn).
 *
 * Stream servers under ss_serve_forever: the threads accept themselves
 * (relay.c). A thread waiting to accept (a spare) takes a connection,
 * hands the accepting role on before it serves it (when fewer than
 * SPARES_MIN spares are left it starts a new one), and serves it; when the
 * request ends it becomes a spare again, if one of SPARE_SLOTS places is
 * free, for up to SPARE_IDLE_MS. So accepting is never the job of one thread
 * that must win the processor against every busy request thread (on a
 * loaded core the serve loop got too little of it to accept in time), and
 * under load a request costs no thread creation: the finished thread takes
 * the next connection. The loop only starts a spare when a connection finds
 * none (its own epoll set is registered after the spares', see relay.c).
 * These threads are counted (nthreads) and joined: the loop joins those
 * that ended, close and free wait for the count and join the rest.
 *
 * ss_handle_request and datagram servers keep the original way: the loop
 * takes the request and starts a thread for it. Threads whose requests
 * server_close must wait for (block_on_close and not daemon_threads) are
 * then created joinable; when one ends it puts its id on a list of finished
 * threads, which the next request (or close) joins, so the list stays short
 * however long the server runs (bpo-37193). All others are detached. The
 * server's count of running requests (srv->active) serves close, drain and
 * free, which must outwait even daemon threads before the server's memory
 * goes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"

/* Spares: places for threads waiting to accept, the fewest the accepting
 * role keeps while it is busy, and how long a spare waits for a
 * connection before it ends. */
#define SPARE_SLOTS 16
#define SPARES_MIN 2
#define SPARE_IDLE_MS 2000

typedef struct thread_state {
    pthread_mutex_t mu;
    pthread_t *done; /* finished joinable threads, to join */
    size_t ndone, done_cap;
    ss_request *spare; /* object for the next get_request */
    ss_request *live;  /* running requests, linked by prev/next */
    pthread_attr_t attr_joinable;
    pthread_attr_t attr_detached;

    /* Spare threads accepting themselves (stream servers). */
    bool relay;               /* a stream server: spares may accept */
    bool accepting;           /* ss_serve_forever runs: spares accept */
    int ctlfd;                /* eventfd, readable while accepting is off */
    int efd;                  /* eventfd: the loop waits for a spare to start */
    bool loop_waiting;        /* ... and wants efd written */
    bool closing;             /* free began: nothing more starts */
    int slot_fd[SPARE_SLOTS]; /* the spares' epoll sets */
    unsigned slot_free[SPARE_SLOTS];
    unsigned nslot_free;
    unsigned nslot_held;  /* spares holding a slot (waiting to accept, or
                             admitting what they accepted) */
    unsigned nstarting;   /* spares created, not yet in a slot */
    unsigned nthreads;    /* relay threads alive */
    pthread_cond_t cv;    /* nslot_held or nthreads dropped to 0 */
    int loop_epfd;        /* the loop's: registered after the spares' */
    atomic_uint slot_gen; /* counts spares taking a slot */
    unsigned loop_gen;    /* slot_gen at the loop's last look */
    atomic_bool accept_reported;
} thread_state;

typedef struct thread_arg {
    ss_request *req;
    bool joinable;
} thread_arg;

/* The threading mode's part of each request object (ss_request.mode_ext):
 * its links in the list of running requests. */
typedef struct thread_req {
    ss_request *prev, *next;
} thread_req;

static thread_state *state(ss_server *srv)
{
    return srv->mode_state;
}

static thread_req *ext(ss_request *req)
{
    return (thread_req *)req->mode_ext;
}

static void free_relay(thread_state *st)
{
    for (unsigned i = 0; i < SPARE_SLOTS; i++)
        ss__close(st->slot_fd[i]);
    ss__close(st->loop_epfd);
    ss__close(st->ctlfd);
    ss__close(st->efd);
}

/* The spares' descriptors. Returns 0, or -1 (errno); without
 * EPOLLEXCLUSIVE the mode runs without spares (st->relay false). */
static int init_relay(ss_server *srv, thread_state *st)
{
    uint64_t one = 1;

    st->ctlfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    st->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (st->ctlfd < 0 || st->efd < 0 || write(st->ctlfd, &one, sizeof one) < 0)
        return -1; /* off until the loop serves: a readable control fd */
    for (unsigned i = 0; i < SPARE_SLOTS; i++) {
        st->slot_fd[i] = ss__relay_epoll(srv, st->ctlfd, -1);
        if (st->slot_fd[i] < 0)
            return errno == EINVAL ? 0 : -1;
        st->slot_free[st->nslot_free++] = i;
    }
    /* Last: the kernel offers it a connection only when no spare waits. */
    st->loop_epfd = ss__relay_epoll(srv, -1, -1);
    if (st->loop_epfd < 0)
        return -1;
    st->relay = true;
    return 0;
}

static int thread_init(ss_server *srv)
{
    thread_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return -1;
    st->ctlfd = st->efd = st->loop_epfd = -1;
    for (unsigned i = 0; i < SPARE_SLOTS; i++)
        st->slot_fd[i] = -1;
    if (!srv->transport->shared_socket && init_relay(srv, st) < 0) {
        int err = errno;
        free_relay(st);
        free(st);
        errno = err;
        return -1;
    }
    if (!st->relay) {
        free_relay(st);
        st->ctlfd = st->efd = st->loop_epfd = -1;
        for (unsigned i = 0; i < SPARE_SLOTS; i++)
            st->slot_fd[i] = -1;
        st->nslot_free = 0;
    }
    atomic_init(&st->slot_gen, 0);
    atomic_init(&st->accept_reported, false);
    pthread_cond_init(&st->cv, NULL);
    pthread_mutex_init(&st->mu, NULL);
    pthread_attr_init(&st->attr_joinable);
    pthread_attr_init(&st->attr_detached);
    pthread_attr_setdetachstate(&st->attr_detached, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&st->attr_joinable, srv->opt.thread_stack_size);
    pthread_attr_setstacksize(&st->attr_detached, srv->opt.thread_stack_size);
    (void)ss__attr_block_signals(&st->attr_joinable);
    (void)ss__attr_block_signals(&st->attr_detached);
    srv->mode_state = st;
    return 0;
}

static bool tracked(ss_server *srv)
{
    return srv->opt.block_on_close && !srv->opt.daemon_threads;
}

/* Join the threads that have finished. Called without st->mu held. */
static void join_done(thread_state *st)
{
    pthread_t batch[64];
    size_t n;

    do {
        pthread_mutex_lock(&st->mu);
        n = st->ndone < 64 ? st->ndone : 64;
        st->ndone -= n;
        if (n > 0)
            memcpy(batch, st->done + st->ndone, n * sizeof *batch);
        pthread_mutex_unlock(&st->mu);
        for (size_t i = 0; i < n; i++)
            pthread_join(batch[i], NULL);
    } while (n == 64);
}

static int spawn_spare(ss_server *srv, thread_state *st);

static void wake_loop_locked(thread_state *st)
{
    if (st->loop_waiting) {
        uint64_t one = 1;
        st->loop_waiting = false;
        ssize_t w = write(st->efd, &one, sizeof one);
        (void)w;
    }
}

/* Spares accept: the loop's set turned readable (a connection found no
 * spare waiting), or a spare it started has taken its place. The loop starts
 * a spare when there is none at all, or when none has come back to
 * accepting for SS__TAKEOVER_MS (every one is busy); otherwise the
 * spares take the connection. The loop never accepts itself. */
static ss_request *relay_acquire(ss_server *srv, thread_state *st)
{
    uint64_t v;
    int waited = srv->mode_wait_fd;

    srv->mode_wait_fd = st->loop_epfd;
    if (atomic_load(&st->accept_reported)) {
        /* The spares cannot accept (out of descriptors) and pause; a
         * connection that waits meanwhile must not make the loop start
         * spares or turn: it pauses as well (reported already). */
        srv->mode_wait_fd = -1;
        srv->backoff_reported = true;
        errno = EMFILE;
        return NULL;
    }
    if (srv->backoff_ms > 0) {
        srv->backoff_ms = 0; /* the episode is over */
        srv->backoff_reported = false;
    }
    if (waited == st->efd) {
        ssize_t r = read(st->efd, &v, sizeof v);
        (void)r;
        return NULL; /* a spare started: back to the loop's set */
    }
    pthread_mutex_lock(&st->mu);
    bool none = st->nslot_held == 0 && st->nstarting == 0;
    pthread_mutex_unlock(&st->mu);
    if (!none) {
        unsigned gen = atomic_load(&st->slot_gen);
        int fds[1] = {srv->wakefd};
        bool ready[1];
        if (ss__poll(fds, ready, 1, SS__TAKEOVER_MS) != 0)
            return NULL;
        if (atomic_load(&st->slot_gen) != gen)
            return NULL; /* a spare came back: it accepts */
        int lfd[1] = {st->loop_epfd};
        if (ss__poll(lfd, ready, 1, 0) <= 0)
            return NULL;
    }
    pthread_mutex_lock(&st->mu);
    if (st->nstarting > 0 || st->nslot_free == 0 || !st->accepting) {
        /* One is on its way, or every place is taken: wait for it. */
        st->loop_waiting = true;
        srv->mode_wait_fd = st->efd;
        pthread_mutex_unlock(&st->mu);
        return NULL;
    }
    int rc = spawn_spare(srv, st);
    if (rc == 0) {
        st->loop_waiting = true;
        srv->mode_wait_fd = st->efd;
        srv->backoff_ms = 0; /* a pause after a failed start is over */
        srv->backoff_reported = false;
    }
    pthread_mutex_unlock(&st->mu);
    if (rc != 0) {
        srv->mode_wait_fd = -1; /* no thread: the loop reports and pauses */
        errno = rc;
    }
    return NULL;
}

static ss_request *thread_acquire(ss_server *srv)
{
    thread_state *st = state(srv);
    if (st->relay && st->accepting)
        return relay_acquire(srv, st);
    if (st->spare == NULL)
        st->spare = ss__request_new(srv); /* NULL: ENOMEM, the loop backs off */
    return st->spare;
}

/* Take a request off the list of running ones (st->mu held). */
static void unlink_live_locked(thread_state *st, ss_request *req)
{
    thread_req *x = ext(req);
    if (x->prev != NULL)
        ext(x->prev)->next = x->next;
    else
        st->live = x->next;
    if (x->next != NULL)
        ext(x->next)->prev = x->prev;
}

/* Off the live list before the descriptor closes, so that an abort or a
 * cut never touches a descriptor number that is reused meanwhile. */
static void thread_unpublish(ss_server *srv, ss_request *req)
{
    thread_state *st = state(srv);
    pthread_mutex_lock(&st->mu);
    unlink_live_locked(st, req);
    pthread_mutex_unlock(&st->mu);
}

/* A joinable thread about to end puts itself on the list of finished
 * threads (st->mu held), which join_done empties. */
static void add_done_locked(thread_state *st)
{
    if (st->ndone == st->done_cap) {
        size_t cap = st->done_cap ? st->done_cap * 2 : 16;
        pthread_t *d = realloc(st->done, cap * sizeof *d);
        if (d != NULL) {
            st->done = d;
            st->done_cap = cap;
        }
    }
    if (st->ndone < st->done_cap)
        st->done[st->ndone++] = pthread_self();
    else
        pthread_detach(pthread_self()); /* out of memory: nobody will join */
}

static void *request_thread(void *p)
{
    thread_arg *arg = p;
    ss_request *req = arg->req;
    ss_server *srv = req->srv;
    thread_state *st = state(srv);
    bool joinable = arg->joinable;

    free(arg);
    /* Signals belong to the application's threads. The thread starts
     * with them blocked where the C library can (ss__attr_block_signals);
     * elsewhere they are blocked here rather than around pthread_create,
     * so the serving thread never has them blocked: a stop signal that
     * reaches this thread before this line only runs the (thread-safe)
     * stop handler. */
    ss__block_signals(NULL);
    ss__current_server = srv;
    /* Python's process_request_thread: errors were reported by
     * finish_request; SS_ABORT ends only this request. */
    (void)ss__run_request(req);
    ss__request_free(req);

    pthread_mutex_lock(&st->mu);
    if (joinable)
        add_done_locked(st);
    pthread_mutex_unlock(&st->mu);
    ss__active_end(srv); /* the last touch of srv: free may follow at once */
    return NULL;
}

/* Put a request a spare accepted (admitted, counted) on the list of running
 * ones (st->mu held), where the cut and free find it. Returns whether to
 * serve it: neither a stopping server (it stopped accepting) nor one being
 * freed starts a request; it is closed unserved, as one still in the
 * kernel's backlog would be. */
static bool relay_publish_locked(ss_server *srv, thread_state *st, ss_request *req)
{
    ext(req)->prev = NULL;
    ext(req)->next = st->live;
    if (st->live != NULL)
        ext(st->live)->prev = req;
    st->live = req;
    return !ss__stopping(srv) && !st->closing;
}

/* A spare: wait to accept, hand the role on, serve, and again, while the
 * loop serves and a place is free; end after SPARE_IDLE_MS without a
 * connection. */
static void *relay_thread(void *p)
{
    ss_server *srv = p;
    thread_state *st = state(srv);
    unsigned backoff_ms = 0;

    /* The request object lives on this thread's stack, in a page the
     * thread's first frames touch anyway: with 10,000 connections open its
     * own heap page would be 40 MB. */
    union {
        ss_request req;
        unsigned char bytes[sizeof(ss_request) + sizeof(thread_req)];
        max_align_t align;
    } obj;

    ss__block_signals(NULL); /* see request_thread */
    ss__current_server = srv;
    memset(&obj, 0, sizeof obj);
    ss_request *req = &obj.req;
    req->srv = srv;
    req->fd = -1;
    pthread_mutex_lock(&st->mu);
    st->nstarting--;
    for (;;) {
        if (!st->accepting || st->nslot_free == 0)
            break;
        unsigned slot = st->slot_free[--st->nslot_free];
        st->nslot_held++;
        atomic_fetch_add_explicit(&st->slot_gen, 1, memory_order_relaxed);
        wake_loop_locked(st);
        pthread_mutex_unlock(&st->mu);

        bool timed_out;
        int got = ss__relay_accept(srv, st->slot_fd[slot], -1, SPARE_IDLE_MS, req, &timed_out);
        int err = errno;
        if (got >= 0 && backoff_ms > 0) { /* no error: the episode is over */
            backoff_ms = 0;
            atomic_store(&st->accept_reported, false);
        }
        pthread_mutex_lock(&st->mu);
        st->slot_free[st->nslot_free++] = slot;
        st->nslot_held--;
        if (st->nslot_held == 0)
            pthread_cond_broadcast(&st->cv); /* loop_end may wait */
        bool serve = false;
        if (got == 1) {
            /* Done with the listening socket: loop_end need not wait for
             * the hooks (verify_request may even stop the server). */
            pthread_mutex_unlock(&st->mu);
            if (ss__admit_request(srv, req) < 0)
                got = 0; /* turned away, and shut down */
            else
                ss__active_begin(srv);
            pthread_mutex_lock(&st->mu);
            if (got == 1)
                serve = relay_publish_locked(srv, st, req);
        }
        if (got != 1) {
            ss__request_reset(req);
            if (got < 0) {
                pthread_mutex_unlock(&st->mu);
                ss__relay_pause(srv, st->ctlfd, &backoff_ms, &st->accept_reported, err);
                pthread_mutex_lock(&st->mu);
            }
            if (timed_out)
                break;
            continue;
        }
        /* Hand the accepting role on before serving. */
        if (st->accepting && st->nslot_held + st->nstarting < SPARES_MIN &&
            st->nslot_free > st->nstarting)
            (void)spawn_spare(srv, st); /* failing: the loop starts one */
        pthread_mutex_unlock(&st->mu);
        if (serve)
            (void)ss__run_request(req); /* SS_ABORT ends only this request */
        else
            ss__end_request(req);
        ss__request_reset(req);
        ss__active_end(srv);
        pthread_mutex_lock(&st->mu);
    }
    if (st->nslot_held == 0 && st->nstarting == 0)
        wake_loop_locked(st); /* no spare left: the loop watches again */
    pthread_mutex_unlock(&st->mu);
    free(req->in); /* the buffers are the heap's; the object is not */
    free(req->out);
    pthread_mutex_lock(&st->mu);
    /* Joined, not detached: a join waits for the thread's end, its
     * thread-local destructors included (a library the handler used may
     * free its per-thread state there), before close or free returns. */
    add_done_locked(st);
    if (--st->nthreads == 0)
        pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu); /* the last touch of the server */
    return NULL;
}

/* Start a spare (st->mu held). Returns 0 or an errno value. */
static int spawn_spare(ss_server *srv, thread_state *st)
{
    pthread_t tid;
    int err = pthread_create(&tid, &st->attr_joinable, relay_thread, srv);
    if (err == 0) {
        st->nstarting++;
        st->nthreads++;
    }
    return err;
}

static int thread_process(ss_server *srv, ss_request *req)
{
    thread_state *st = state(srv);
    bool joinable = tracked(srv);
    pthread_t tid;

    st->spare = NULL; /* the thread owns the object now */
    if (joinable)
        join_done(st);

    thread_arg *arg = malloc(sizeof *arg);
    if (arg == NULL) {
        /* Report it, close the request, keep serving. */
        ss__handle_error(srv, req, errno);
        ss__shutdown_request(req);
        ss__request_free(req);
        return 0;
    }
    arg->req = req;
    arg->joinable = joinable;
    ss__active_begin(srv);
    pthread_mutex_lock(&st->mu);
    ext(req)->prev = NULL;
    ext(req)->next = st->live;
    if (st->live != NULL)
        ext(st->live)->prev = req;
    st->live = req;
    pthread_mutex_unlock(&st->mu);

    int err = pthread_create(&tid, joinable ? &st->attr_joinable : &st->attr_detached,
                             request_thread, arg);
    if (err == 0)
        return 0;

    free(arg);
    /* No thread: report it, close the request, keep serving. */
    ss__handle_error(srv, req, err);
    ss__end_request(req);
    ss__request_free(req);
    ss__active_end(srv);
    return 0;
}

/* Join what ended (each loop turn, and after a drain). */
static void thread_service(ss_server *srv)
{
    thread_state *st = state(srv);
    if (tracked(srv) || st->relay)
        join_done(st); /* spares that ended are joined too */
}

/* Wait until no spare thread is left (they end after their request once
 * the loop no longer serves). */
static void wait_relay_threads(thread_state *st)
{
    pthread_mutex_lock(&st->mu);
    while (st->nthreads > 0)
        pthread_cond_wait(&st->cv, &st->mu);
    pthread_mutex_unlock(&st->mu);
}

static void thread_close(ss_server *srv)
{
    if (tracked(srv)) {
        (void)ss__active_wait(srv, 0, -1);
        wait_relay_threads(state(srv));
    }
    join_done(state(srv));
}

/* a serve loop begins: spares accept, one is started at once. */
static void thread_loop_begin(ss_server *srv, bool once)
{
    thread_state *st = state(srv);
    uint64_t v;

    if (!st->relay || once) /* ss_handle_request: the serving thread accepts */
        return;
    pthread_mutex_lock(&st->mu);
    while (read(st->ctlfd, &v, sizeof v) > 0)
        ;
    while (read(st->efd, &v, sizeof v) > 0)
        ;
    st->accepting = true;
    st->loop_waiting = false;
    if (st->nslot_held + st->nstarting == 0)
        (void)spawn_spare(srv, st); /* failing: the loop tries again */
    pthread_mutex_unlock(&st->mu);
    srv->mode_wait_fd = st->loop_epfd;
}

/* a serve loop ends: no spare accepts from now on, and none is still
 * inside accept when this returns. Spares end; request threads end after
 * their request. */
static void thread_loop_end(ss_server *srv)
{
    thread_state *st = state(srv);
    uint64_t one = 1;

    if (!st->relay)
        return;
    pthread_mutex_lock(&st->mu);
    st->accepting = false;
    st->loop_waiting = false;
    ssize_t w = write(st->ctlfd, &one, sizeof one);
    (void)w;
    while (st->nslot_held > 0)
        pthread_cond_wait(&st->cv, &st->mu);
    pthread_mutex_unlock(&st->mu);
    srv->mode_wait_fd = -1;
}

static void thread_destroy(ss_server *srv)
{
    thread_state *st = state(srv);
    if (st == NULL)
        return;
    /* Daemon threads still use the server: outwait them before freeing,
     * cutting their connections so that none waits on an idle client. */
    pthread_mutex_lock(&st->mu);
    st->closing = true;
    if (st->live != NULL)
        atomic_store(&srv->aborting, true);
    for (ss_request *r = st->live; r != NULL; r = ext(r)->next)
        ss__abort_request(r);
    pthread_mutex_unlock(&st->mu);
    (void)ss__active_wait(srv, 0, -1);
    wait_relay_threads(st);
    join_done(st);
    ss__request_free(st->spare);
    free_relay(st);
    pthread_cond_destroy(&st->cv);
    free(st->done);
    pthread_attr_destroy(&st->attr_joinable);
    pthread_attr_destroy(&st->attr_detached);
    pthread_mutex_destroy(&st->mu);
    free(st);
    srv->mode_state = NULL;
}

/* Graceful stop: end the input of every running request. */
static void thread_cut(ss_server *srv)
{
    thread_state *st = state(srv);
    pthread_mutex_lock(&st->mu);
    for (ss_request *r = st->live; r != NULL; r = ext(r)->next)
        ss__abort_request(r);
    pthread_mutex_unlock(&st->mu);
}

const ss__mode ss__mode_thread = {
    .name = "threading",
    .poll_first = false,
    .req_ext_size = sizeof(thread_req),
    .init = thread_init,
    .acquire = thread_acquire,
    .process = thread_process,
    .release = ss__release_reset,
    .service = thread_service,
    .unpublish = thread_unpublish,
    .wait_step = NULL,
    .close = thread_close,
    .destroy = thread_destroy,
    .cut = thread_cut,
    .loop_begin = thread_loop_begin,
    .loop_end = thread_loop_end,
};
