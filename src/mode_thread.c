/*
 * mode_thread.c - a new thread per request (Python's ThreadingMixIn).
 *
 * Threads whose requests server_close must wait for (block_on_close and not
 * daemon_threads) are created joinable; when one ends it puts its id on a
 * list of finished threads, which the next request (or close) joins, so the
 * list stays short however long the server runs (bpo-37193). All others are
 * detached. The server's count of running requests (srv->active) serves
 * close, drain and free, which must outwait even daemon threads before the
 * server's memory goes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct thread_state {
    pthread_mutex_t mu;
    pthread_t *done; /* finished joinable threads, to join */
    size_t ndone, done_cap;
    ss_request *spare; /* object for the next get_request */
    ss_request *live;  /* running requests, linked by prev/next */
    pthread_attr_t attr_joinable;
    pthread_attr_t attr_detached;
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

static int thread_init(ss_server *srv)
{
    thread_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return -1;
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

static ss_request *thread_acquire(ss_server *srv)
{
    thread_state *st = state(srv);
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
    if (joinable) {
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
    pthread_mutex_unlock(&st->mu);
    ss__active_end(srv); /* the last touch of srv: free may follow at once */
    return NULL;
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
    if (tracked(srv))
        join_done(state(srv));
}

static void thread_close(ss_server *srv)
{
    if (tracked(srv))
        (void)ss__active_wait(srv, 0, -1);
    join_done(state(srv));
}

static void thread_destroy(ss_server *srv)
{
    thread_state *st = state(srv);
    if (st == NULL)
        return;
    /* Daemon threads still use the server: outwait them before freeing,
     * cutting their connections so that none waits on an idle client. */
    pthread_mutex_lock(&st->mu);
    if (st->live != NULL)
        atomic_store(&srv->aborting, true);
    for (ss_request *r = st->live; r != NULL; r = ext(r)->next)
        ss__abort_request(r);
    pthread_mutex_unlock(&st->mu);
    (void)ss__active_wait(srv, 0, -1);
    join_done(st);
    ss__request_free(st->spare);
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
};
