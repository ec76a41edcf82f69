/*
 * mode_fork.c - a new process per request (Python's ForkingMixIn).
 *
 * Children are tracked by pid (and, where the kernel has it, a pidfd to wait
 * on); only tracked pids are ever reaped, so children the application forks
 * itself are left alone for it to wait for. Reaping happens in
 * service_actions each loop turn, as in Python; there is no SIGCHLD
 * handler to steal the application's children. The children's pidfds sit in
 * an epoll set that the loop polls next to the server socket (the mode's
 * service descriptor): when a child ends, the loop wakes and reaps it at
 * once, so that a child killed before it could shut its connection down
 * (SIGKILL, a crash) does not leave its client waiting for the parent's copy
 * of the connection to close. Without pidfd_open (kernels before 5.3) the
 * reap waits for the next loop turn: the poll interval bounds it. At
 * max_children the loop waits for one of its own children to end before it
 * forks again.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

typedef struct child {
    pid_t pid;
    int pidfd;    /* -1 when pidfd_open is not available */
    bool watched; /* pidfd is in fork_state.epfd */
    int conn;     /* the parent's copy of the child's connection (stream), kept
                     until the reap so that a graceful stop can cut it; -1 */
    bool counted; /* holds a connection slot, given back at the reap */
    ss__peer_key key;
} child;

/* The serving thread forks and reaps; ss_server_active and ss_server_drain
 * may look from other threads, hence the lock around the table. */
typedef struct fork_state {
    pthread_mutex_t mu;
    child *kids;
    size_t n, cap;
    size_t pending; /* forks under way: counted before the child can run */
    int epfd;       /* epoll set of the watched pidfds: readable once one of
                       those children has ended; -1 without epoll */
} fork_state;

static fork_state *state(ss_server *srv)
{
    return srv->mode_state;
}

static int fork_init(ss_server *srv)
{
    fork_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return -1;
    pthread_mutex_init(&st->mu, NULL);
    st->cap = srv->opt.max_children;
    st->kids = calloc(st->cap, sizeof *st->kids);
    if (st->kids == NULL) {
        pthread_mutex_destroy(&st->mu);
        free(st);
        return -1;
    }
    /* Without an epoll set the children are reaped each loop turn. */
    st->epfd = epoll_create1(EPOLL_CLOEXEC);
    srv->mode_state = st;
    srv->mode_service_fd = st->epfd;
    return 0;
}

static int open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
    long fd = syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0) {
        /* pidfds are close-on-exec already (kernel sets O_CLOEXEC). */
        return (int)fd;
    }
#endif
    (void)pid;
    return -1;
}

/* The child has been reaped (or reaped by someone else): however it ended,
 * its connection slot is free now. */
static void forget(ss_server *srv, fork_state *st, size_t i)
{
    if (st->kids[i].watched)
        (void)epoll_ctl(st->epfd, EPOLL_CTL_DEL, st->kids[i].pidfd, NULL);
    ss__close(st->kids[i].pidfd);
    if (st->kids[i].counted)
        ss__limits_release(srv, &st->kids[i].key);
    ss__close(st->kids[i].conn);
    st->kids[i] = st->kids[--st->n];
    ss__active_end(srv);
}

/* Reap tracked children. Blocking waits for each in turn, without holding
 * the lock (a blocking wait only happens in close, from the serving side). */
static void collect_children(ss_server *srv, bool blocking)
{
    fork_state *st = state(srv);
    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < st->n;) {
        pid_t pid = st->kids[i].pid, r;
        int status;
        bool gone; /* done, or someone else reaped it */
        if (blocking) {
            pthread_mutex_unlock(&st->mu);
            do
                r = waitpid(pid, &status, 0);
            while (r < 0 && errno == EINTR);
            gone = r == pid || (r < 0 && errno == ECHILD);
            pthread_mutex_lock(&st->mu);
            if (i >= st->n || st->kids[i].pid != pid) {
                /* The table changed meanwhile (a reap in another thread
                 * moved entries): forget ours by its pid, so that a reaped
                 * pid never stays in the table, where a later waitpid could
                 * reap an unrelated process that got the same pid. */
                for (size_t j = 0; gone && j < st->n; j++) {
                    if (st->kids[j].pid == pid) {
                        forget(srv, st, j);
                        break;
                    }
                }
                continue; /* look again at i */
            }
        } else {
            do
                r = waitpid(pid, &status, WNOHANG);
            while (r < 0 && errno == EINTR);
            gone = r == pid || (r < 0 && errno == ECHILD);
        }
        if (gone)
            forget(srv, st, i);
        else
            i++;
    }
    pthread_mutex_unlock(&st->mu);
}

static size_t nchildren(ss_server *srv)
{
    fork_state *st = state(srv);
    pthread_mutex_lock(&st->mu);
    size_t n = st->n + st->pending;
    pthread_mutex_unlock(&st->mu);
    return n;
}

/* Wait until one tracked child ends, the deadline passes, or (with
 * watch_stop) a stop is requested, which then sets the stop flag. */
static void wait_any_child(ss_server *srv, double deadline, bool watch_stop)
{
    fork_state *st = state(srv);

    pthread_mutex_lock(&st->mu);
    bool all_watched = st->epfd >= 0 && st->pending == 0;
    for (size_t i = 0; all_watched && i < st->n; i++)
        all_watched = st->kids[i].watched;
    pthread_mutex_unlock(&st->mu);
    int ms = ss__ms_until(deadline);
    if (!all_watched && (ms < 0 || ms > 10))
        ms = 10; /* some child has no pidfd to wake us: look again shortly */
    int fds[2] = {st->epfd, watch_stop ? srv->wakefd : -1};
    bool ready[2];
    if (ss__poll(fds, ready, 2, ms) > 0 && ready[1])
        atomic_store_explicit(&srv->stop, 1, memory_order_release);
}

/* In a new child: the parent's descriptors for its other children are not
 * this child's business (and would keep their connections open). Only this
 * thread runs in the child, so the table is read without its lock. The
 * table is emptied too: siblings are no children of this process, and a
 * reap here (ss_server_active from the handler) would close their numbers
 * again, when they may be the handler's own descriptors by then. */
static void close_siblings(ss_server *srv, fork_state *st)
{
    for (size_t i = 0; i < st->n; i++) {
        ss__close(st->kids[i].pidfd);
        ss__close(st->kids[i].conn);
    }
    st->n = 0;
    st->pending = 0;
    ss__close(st->epfd);
    st->epfd = -1;
    srv->mode_service_fd = -1;
}

/* ss_server_forget (sockserv.h): a request child of another server of
 * the same program closes its copies of this server's descriptors, so that
 * it neither keeps this server's clients' connections open after their own
 * session processes end nor holds its listening socket. The children table
 * is closed only when the copy is consistent: a mutex another thread held
 * at the fork stays locked in the copy, and its table may be half written. */
SS_API void ss_server_forget(ss_server *srv)
{
    if (srv == NULL)
        return;
    ss__child_server_socket(srv);
    if (srv->mode == &ss__mode_fork && srv->mode_state != NULL) {
        fork_state *st = state(srv);

        if (pthread_mutex_trylock(&st->mu) == 0) {
            close_siblings(srv, st);
            pthread_mutex_unlock(&st->mu);
        }
    }
}

static int fork_process(ss_server *srv, ss_request *req)
{
    fork_state *st = state(srv);

    collect_children(srv, false);
    while (nchildren(srv) >= st->cap) {
        if (ss__stop_requested(srv)) {
            /* Stopping: this request will not be served. */
            ss__shutdown_request(req);
            ss__request_reset(req);
            return 0;
        }
        wait_any_child(srv, (double)INFINITY, true);
        collect_children(srv, false);
    }

    /* Count the child before it exists: once it runs, ss_server_active and
     * ss_server_drain in other threads must see it. */
    pthread_mutex_lock(&st->mu);
    st->pending++;
    pthread_mutex_unlock(&st->mu);
    ss__active_begin(srv);
    /* A stop signal that reached the child before it set its own actions
     * would run the parent's handler there and stop the parent: the stop
     * signals wait, blocked, until each side is ready for them. */
    sigset_t oldmask;
    bool masked = ss__block_stop_signals(&oldmask) == 0;
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno; /* before the lock calls, which may change it */
        if (masked)
            pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
        pthread_mutex_lock(&st->mu);
        st->pending--;
        pthread_mutex_unlock(&st->mu);
        ss__active_end(srv);
        ss__handle_error(srv, req, err);
        ss__shutdown_request(req);
        ss__request_reset(req);
        return 0;
    }
    if (pid == 0) {
        /* The child serves this one request and exits without returning
         * into the loop, without atexit handlers or stdio flushes of the
         * parent's (hence _exit). */
        srv->in_request_child = true;
        ss__child_stop_signals(srv);
        if (masked)
            pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
        close_siblings(srv, st);
        /* What runs in this process is this request alone, and a handler
         * that drains its server must not wait for itself (nothing here
         * would ever end the parent's other requests in this copy). */
        atomic_store(&srv->active.n, 1);
        ss__current_server = srv;
        ss__child_server_socket(srv);
        _exit(ss__run_request(req) == SS_OK ? 0 : 1);
    }
    if (masked)
        pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
    /* Parent: no shutdown(), that would cut the child's connection too;
     * the descriptor is kept (closed at the reap) for a graceful stop. */
    int pidfd = open_pidfd(pid);
    bool watched = false;
    if (pidfd >= 0 && st->epfd >= 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = pidfd};
        watched = epoll_ctl(st->epfd, EPOLL_CTL_ADD, pidfd, &ev) == 0;
    }
    pthread_mutex_lock(&st->mu);
    st->pending--;
    st->kids[st->n].pid = pid;
    st->kids[st->n].pidfd = pidfd;
    st->kids[st->n].watched = watched;
    /* The child's slot is the parent's to give back, at the reap. */
    st->kids[st->n].counted = req->counted;
    st->kids[st->n].key = req->key;
    req->counted = false;
    int conn = ss__conn(req);
    st->kids[st->n].conn = conn;
    st->n++;
    pthread_mutex_unlock(&st->mu);
    if (conn >= 0)
        req->fd = -1; /* now the table's */
    ss__request_reset(req);
    return 0;
}

static void fork_service(ss_server *srv)
{
    if (nchildren(srv) > 0)
        collect_children(srv, false);
}

/* Drain's wait: nothing signals a child's end until it is reaped. */
static void fork_wait_step(ss_server *srv, double deadline)
{
    collect_children(srv, false);
    if (nchildren(srv) > 0) {
        wait_any_child(srv, deadline, false);
        collect_children(srv, false);
    }
}

static void fork_close(ss_server *srv)
{
    collect_children(srv, srv->opt.block_on_close);
}

static void fork_destroy(ss_server *srv)
{
    fork_state *st = state(srv);
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->n; i++) {
        ss__close(st->kids[i].pidfd);
        ss__close(st->kids[i].conn);
    }
    ss__close(st->epfd);
    srv->mode_service_fd = -1;
    free(st->kids);
    pthread_mutex_destroy(&st->mu);
    free(st);
    srv->mode_state = NULL;
}

/* Graceful stop: end the input of every child's connection through the
 * parent's copy of it. */
static void fork_cut(ss_server *srv)
{
    fork_state *st = state(srv);
    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < st->n; i++)
        if (st->kids[i].conn >= 0)
            (void)shutdown(st->kids[i].conn, SHUT_RD);
    pthread_mutex_unlock(&st->mu);
}

const ss__mode ss__mode_fork = {
    .name = "forking",
    .poll_first = true,
    .init = fork_init,
    .acquire = ss__acquire_loop_request,
    .process = fork_process,
    .release = ss__release_reset,
    .service = fork_service,
    .unpublish = NULL,
    .wait_step = fork_wait_step,
    .close = fork_close,
    .destroy = fork_destroy,
    .cut = fork_cut,
};
