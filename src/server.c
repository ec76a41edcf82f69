/*
 * server.c - the server's lifecycle: create (bind and activate), the serve
 * loop (serve_forever / handle_request / handle_request_noblock), shutdown,
 * drain and close. The mode's table (mode_*.c) decides how a request runs.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* The smallest ss_options a caller may have: the size field and the options
 * of version 0.1, through `user`. */
#define OPTIONS_SIZE_0_1 (offsetof(ss_options, user) + sizeof(void *))
/* No version will have options of this size; a larger struct_size is
 * garbage (an uninitialised struct, or a pointer where the size belongs). */
#define OPTIONS_SIZE_MAX 4096

static void fill_defaults(ss_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->struct_size = sizeof *opt;
    opt->address = "127.0.0.1:0";
    opt->type = SS_STREAM;
    opt->mode = SS_MODE_SYNC;
    /* Python 3.15 moved to SOMAXCONN too: a backlog of 5 drops connections
     * under the lightest load (gh-80184). */
    opt->request_queue_size = SOMAXCONN;
    opt->allow_reuse_address = false;
    opt->allow_reuse_port = false;
    opt->timeout = -1;
    opt->max_packet_size = 8192;
    opt->daemon_threads = false;
    opt->block_on_close = true;
    opt->max_children = 40;
    opt->pool_workers = 8;
    opt->pool_queue = 64;
    opt->pool_full = SS_POOL_WAIT;
    opt->thread_stack_size = 0;
    opt->disable_nagle_algorithm = false;
    opt->request_timeout = -1;
    opt->wbufsize = 0;
    opt->unlink_stale_unix = true;
    opt->max_connections = 0;
    opt->max_per_peer = 0;
    opt->peer_prefix6 = 64;
    opt->stop_grace = -1;
}

void ss_options_init_size(ss_options *opt, size_t size)
{
    ss_options d;

    if (opt == NULL)
        return;
    fill_defaults(&d);
    /* A caller with a newer header has options after ours: zero says "not
     * used", which ss_server_new accepts. */
    memset(opt, 0, size);
    memcpy(opt, &d, size < sizeof d ? size : sizeof d);
    if (size >= sizeof opt->struct_size)
        opt->struct_size = size;
}

/* The function behind the macro's name, for callers that cannot use the
 * macro: it cannot know the size of their struct, so it fills only what
 * every struct_size layout has. */
#undef ss_options_init
void ss_options_init(ss_options *opt)
{
    ss_options_init_size(opt, OPTIONS_SIZE_0_1);
}

/* Bring a caller's options, of any version, into our layout: theirs where
 * they have them, our defaults for the rest. Returns 0, or -1 (EINVAL) for a
 * struct_size no version of ss_options_init wrote, or for a set option this
 * library does not know. */
static int copy_options(ss_options *dst, const ss_options *src)
{
    size_t size = src->struct_size;

    /* Every layout contains pointers, so its size is a multiple of their
     * alignment. */
    if (size < OPTIONS_SIZE_0_1 || size > OPTIONS_SIZE_MAX || size % alignof(void *) != 0) {
        errno = EINVAL;
        return -1;
    }
    if (size > sizeof *dst) {
        const unsigned char *tail = (const unsigned char *)src;
        for (size_t i = sizeof *dst; i < size; i++) {
            if (tail[i] != 0) {
                errno = EINVAL;
                return -1;
            }
        }
    }
    fill_defaults(dst);
    memcpy(dst, src, size < sizeof *dst ? size : sizeof *dst);
    dst->struct_size = sizeof *dst;
    return 0;
}

/* pthread_attr_setstacksize refuses sizes below PTHREAD_STACK_MIN; asking it
 * is the one check that matches what thread creation will do. */
static bool stack_size_ok(size_t size)
{
    pthread_attr_t attr;
    if (size == 0)
        return true; /* the default */
    if (pthread_attr_init(&attr) != 0)
        return true; /* cannot tell; thread creation will */
    int err = pthread_attr_setstacksize(&attr, size);
    pthread_attr_destroy(&attr);
    return err == 0;
}

static const ss__mode *mode_table(ss_mode m)
{
    switch (m) {
    case SS_MODE_SYNC:
        return &ss__mode_sync;
    case SS_MODE_THREADING:
        return &ss__mode_thread;
    case SS_MODE_FORKING:
        return &ss__mode_fork;
    case SS_MODE_POOL:
        return &ss__mode_pool;
    }
    return NULL;
}

ss_server *ss_server_new(const ss_options *user_opt, const ss_handler *h)
{
    ss_options o;
    ss_options *opt = &o;
    ss_server *srv = NULL;
    int err;

    if (user_opt == NULL)
        fill_defaults(&o);
    else if (copy_options(&o, user_opt) < 0)
        return NULL;
    const ss__mode *mode = mode_table(opt->mode);
    if (mode == NULL || opt->address == NULL || opt->request_queue_size < 0 ||
        (opt->type != SS_STREAM && opt->type != SS_DATAGRAM) ||
        (opt->mode == SS_MODE_POOL && opt->pool_workers == 0) ||
        opt->pool_queue > UINT_MAX - opt->pool_workers || !stack_size_ok(opt->thread_stack_size) ||
        opt->peer_prefix6 > 128 || opt->max_packet_size > (1u << 30) ||
        opt->stop_grace != opt->stop_grace || opt->workers > SS__WORKERS_MAX ||
        opt->batch > SS__BATCH_MAX) {
        errno = EINVAL;
        return NULL;
    }
    srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        return NULL;
    srv->opt = *opt;
    srv->fd = -1;
    srv->deferred_fd = -1;
    srv->wakefd = -1;
    srv->stopfd = -1;
    srv->sigfd = -1;
    srv->mode_wait_fd = -1;
    srv->mode_service_fd = -1;
    srv->mode = mode;
    srv->transport = opt->type == SS_DATAGRAM ? &ss__transport_datagram : &ss__transport_stream;
    if (h != NULL)
        srv->handler = *h;
    if (srv->opt.max_children == 0)
        srv->opt.max_children = 40;
    if (srv->opt.thread_stack_size == 0)
        srv->opt.thread_stack_size = SS__DEFAULT_STACK;
    atomic_init(&srv->stop, 0);
    atomic_init(&srv->active.n, 0);
    atomic_init(&srv->aborting, false);
    atomic_init(&srv->signal_stop, 0);
    atomic_init(&srv->stopping, 0);
    atomic_init(&srv->stop_cut, 0);
    atomic_init(&srv->stop_deadline_ns, 0);
    atomic_init(&srv->signal_forwarded, 0);
    pthread_mutex_init(&srv->mu, NULL);
    pthread_cond_init(&srv->cv, NULL);
    pthread_mutex_init(&srv->active.mu, NULL);
    pthread_cond_init(&srv->active.cv, NULL);

    srv->address = strdup(opt->address);
    if (srv->address == NULL)
        goto fail;
    srv->opt.address = srv->address;
    if (srv->opt.workers > 0)
        srv->opt.allow_reuse_port = true; /* every worker binds the address */
    srv->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (srv->wakefd < 0)
        goto fail;
    /* Separate from the wakeup descriptor, which the loop drains: this one
     * stays readable for the whole stop, also in forked children. */
    srv->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (srv->stopfd < 0)
        goto fail;
    if (ss__open_server_socket(srv) < 0)
        goto fail;
    srv->loop_req = ss__request_new(srv);
    if (srv->loop_req == NULL)
        goto fail;
    if (ss__limits_init(srv) < 0)
        goto fail;
    if (ss__proxy_init(srv) < 0)
        goto fail;
    /* Pre-fork: the workers start their mode themselves (prefork.c). */
    if (srv->opt.workers > 0 && ss__prefork_init(srv) < 0)
        goto fail;
    if (srv->prefork == NULL && srv->mode->init != NULL && srv->mode->init(srv) < 0)
        goto fail;
    return srv;

fail:
    err = errno;
    ss__prefork_free(srv);
    ss__proxy_free(srv);
    ss__limits_free(srv);
    ss__close_server_socket(srv);
    ss__close(srv->wakefd);
    ss__close(srv->stopfd);
    ss__request_free(srv->loop_req);
    free(srv->address);
    pthread_mutex_destroy(&srv->mu);
    pthread_cond_destroy(&srv->cv);
    pthread_mutex_destroy(&srv->active.mu);
    pthread_cond_destroy(&srv->active.cv);
    free(srv);
    errno = err;
    return NULL;
}

bool ss__stop_requested(ss_server *srv)
{
    return atomic_load_explicit(&srv->stop, memory_order_acquire) != 0;
}

/* Async-signal-safe: an atomic store and a write(2). */
void ss__wake_loop(ss_server *srv)
{
    uint64_t one = 1;
    int saved = errno;
    ssize_t w = write(srv->wakefd, &one, sizeof one);
    (void)w; /* EAGAIN: the counter is already non-zero, the loop will wake */
    errno = saved;
}

void ss_shutdown_async(ss_server *srv)
{
    if (srv == NULL)
        return;
    atomic_store_explicit(&srv->stop, 1, memory_order_release);
    ss__wake_loop(srv);
}

static void drain_wakefd(ss_server *srv)
{
    uint64_t v;
    while (read(srv->wakefd, &v, sizeof v) > 0)
        ;
}

int ss_shutdown(ss_server *srv)
{
    if (srv == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (srv->in_request_child) {
        /* A forked request child: the flag lives in the parent's memory,
         * but the wakeup descriptor is shared; the parent's loop stops on
         * it. */
        ss__wake_loop(srv);
        return 0;
    }
    pthread_mutex_lock(&srv->mu);
    atomic_store_explicit(&srv->stop, 1, memory_order_release);
    ss__wake_loop(srv);
    if (srv->running && !pthread_equal(srv->loop_thread, pthread_self())) {
        while (srv->running)
            pthread_cond_wait(&srv->cv, &srv->mu);
    }
    pthread_mutex_unlock(&srv->mu);
    return 0;
}

/* ---- stopping on a signal --------------------------------------------- */

_Thread_local ss_server *ss__current_server;
_Thread_local ss_server *ss__loop_server;

static _Atomic(ss_server *) signal_target;
/* Stop-signal handlers running now: ss_server_free waits for them to leave
 * before the memory they may touch goes. */
static atomic_int signal_in_flight;
/* The signals ss_shutdown_on_signal took over, and what they did before.
 * Changed only by the application's setup calls, read by forked children
 * and by ss_server_free. */
static sigset_t stop_signals;
static struct sigaction stop_signals_old[NSIG];

_Static_assert(ATOMIC_POINTER_LOCK_FREE == 2 && ATOMIC_INT_LOCK_FREE == 2 &&
                   ATOMIC_LLONG_LOCK_FREE == 2,
               "the stop-signal handler needs lock-free atomics");

/* Async-signal-safe (clock_gettime is). */
static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Async-signal-safe: begin a graceful stop of grace seconds unless one
 * began already. Returns true when this call began it. */
static bool mark_stopping(ss_server *srv, double grace)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&srv->stopping, &expected, 1))
        return false;
    long long g = grace > 1e9 ? 1000000000LL * 1000000000LL : (long long)(grace * 1e9);
    atomic_store(&srv->stop_deadline_ns, now_ns() + g);
    uint64_t one = 1;
    int saved = errno;
    ssize_t w = write(srv->stopfd, &one, sizeof one);
    (void)w; /* never read while stopping: it cannot be full */
    errno = saved;
    return true;
}

/* The stop is over and the loop starts again (srv->mu held): handlers no
 * longer see it. */
static void clear_stopping(ss_server *srv)
{
    uint64_t v;
    while (read(srv->stopfd, &v, sizeof v) > 0)
        ;
    atomic_store(&srv->stop_cut, 0);
    atomic_store(&srv->stopping, 0);
    srv->stop_done = false;
}

static void on_stop_signal(int signo)
{
    atomic_fetch_add(&signal_in_flight, 1);
    ss_server *srv = atomic_load(&signal_target);
    if (srv == NULL)
        goto out;
    if (atomic_load(&srv->signal_forwarded) != 0 &&
        pthread_equal(pthread_self(), srv->loop_thread) &&
        atomic_exchange(&srv->signal_forwarded, 0) != 0) {
        /* Sent on by the code below only to interrupt a sync handler's
         * blocked call: the stop itself is counted already. */
        goto out;
    }
    if (srv->opt.stop_grace >= 0 && !mark_stopping(srv, srv->opt.stop_grace))
        atomic_store(&srv->stop_cut, 1); /* a second stop: cut at once */
    atomic_store(&srv->signal_stop, 1);
    ss_shutdown_async(srv);
    /* A sync request is counted (seq_cst) after loop_thread was written. */
    if (srv->opt.mode == SS_MODE_SYNC && atomic_load(&srv->active.n) != 0 &&
        !pthread_equal(pthread_self(), srv->loop_thread)) {
        /* A sync handler runs in the loop's thread, and the signal went to
         * another one: send it on, so that the handler's blocked call is
         * interrupted too. pthread_kill is async-signal-safe. */
        atomic_store(&srv->signal_forwarded, 1);
        if (pthread_kill(srv->loop_thread, signo) != 0)
            atomic_store(&srv->signal_forwarded, 0);
    }
out:
    atomic_fetch_sub(&signal_in_flight, 1);
}

int ss_shutdown_on_signal(ss_server *srv, int signo)
{
    struct sigaction sa, old;

    if (srv == NULL || signo <= 0 || signo >= NSIG) {
        errno = EINVAL;
        return -1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocking call should see EINTR */
    atomic_store(&signal_target, srv);
    if (sigaction(signo, &sa, &old) < 0)
        return -1;
    if (!sigismember(&stop_signals, signo)) {
        stop_signals_old[signo] = old;
        sigaddset(&stop_signals, signo);
    }
    return 0;
}

/* Give the signals back what they did before ss_shutdown_on_signal. */
static void restore_stop_signals(void)
{
    for (int s = 1; s < NSIG; s++) {
        if (sigismember(&stop_signals, s)) {
            sigaction(s, &stop_signals_old[s], NULL);
            sigdelset(&stop_signals, s);
        }
    }
}

/* A forked request child dies of the signals that stop the parent's loop
 * (Ctrl-C reaches the whole process group), as Python's children do. */
void ss__reset_stop_signals(void)
{
    for (int s = 1; s < NSIG; s++)
        if (sigismember(&stop_signals, s))
            signal(s, SIG_DFL);
}

static void ignore_stop_signal(int signo)
{
    (void)signo;
}

static void add_hook_signals(sigset_t *set);

int ss__block_stop_signals(sigset_t *old)
{
    sigset_t set = stop_signals;
    add_hook_signals(&set);
    return pthread_sigmask(SIG_BLOCK, &set, old) == 0 ? 0 : -1;
}

static void child_hook_signals(void);

void ss__child_stop_signals(ss_server *srv)
{
    child_hook_signals();
    if (srv->opt.stop_grace < 0) {
        ss__reset_stop_signals();
        return;
    }
    /* Caught rather than ignored, so that a program the handler executes
     * gets the default action back. SA_RESTART: the child's blocking calls
     * go on; the parent ends them with the cut. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = ignore_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (int s = 1; s < NSIG; s++)
        if (sigismember(&stop_signals, s))
            sigaction(s, &sa, NULL);
}

/* ---- running a function on a signal (ss_server_on_signal) -------------- */

/* One entry per signal. The handler only marks its signal pending and wakes
 * the loop through srv->sigfd; the loop's thread runs fn (run_signal_hooks).
 * fn and ctx are written before srv is published (release) and read after
 * it is loaded (acquire). Changed only by the application's setup calls
 * and by ss_server_free. */
typedef struct signal_hook {
    _Atomic(ss_server *) srv;
    void (*fn)(ss_server *srv, int signo, void *ctx);
    void *ctx;
    atomic_int pending;
    struct sigaction old; /* the action before the first hook */
} signal_hook;

static signal_hook signal_hooks[NSIG];
/* The signals that have a hook; read by forked children and around fork. */
static sigset_t hook_signals;
/* Some hook's signal came: the loop looks at the entries only then. */
static atomic_int hooks_pending;

/* Async-signal-safe: atomic stores and a write(2). */
static void on_hook_signal(int signo)
{
    atomic_fetch_add(&signal_in_flight, 1);
    ss_server *srv = atomic_load(&signal_hooks[signo].srv);
    if (srv != NULL) {
        /* In this order: the loop clears hooks_pending before it looks at
         * the entries, so a signal in between is seen on its next turn. */
        atomic_store(&signal_hooks[signo].pending, 1);
        atomic_store(&hooks_pending, 1);
        uint64_t one = 1;
        int saved = errno;
        ssize_t w = write(srv->sigfd, &one, sizeof one);
        (void)w; /* EAGAIN: the counter is non-zero, the loop will wake */
        errno = saved;
    }
    atomic_fetch_sub(&signal_in_flight, 1);
}

int ss_server_on_signal(ss_server *srv, int signo, void (*fn)(ss_server *srv, int signo, void *ctx),
                        void *ctx)
{
    struct sigaction sa, old;

    if (srv == NULL || fn == NULL || signo <= 0 || signo >= NSIG || signo == SIGKILL ||
        signo == SIGSTOP) {
        errno = EINVAL;
        return -1;
    }
    if (srv->sigfd < 0) {
        srv->sigfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (srv->sigfd < 0)
            return -1;
    }
    signal_hook *h = &signal_hooks[signo];
    atomic_store_explicit(&h->srv, NULL, memory_order_release);
    h->fn = fn;
    h->ctx = ctx;
    atomic_store(&h->pending, 0);
    atomic_store_explicit(&h->srv, srv, memory_order_release);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_hook_signal;
    sigemptyset(&sa.sa_mask);
    /* SA_RESTART: a handler's blocking calls go on as if nothing came. */
    sa.sa_flags = SA_RESTART;
    if (sigaction(signo, &sa, &old) < 0) {
        atomic_store(&h->srv, NULL);
        return -1;
    }
    if (sigismember(&stop_signals, signo)) {
        /* It stopped the server until now: this call takes it over, and
         * ss_server_free gives it back what it did before either. */
        h->old = stop_signals_old[signo];
        sigdelset(&stop_signals, signo);
        sigaddset(&hook_signals, signo);
    } else if (!sigismember(&hook_signals, signo)) {
        h->old = old;
        sigaddset(&hook_signals, signo);
    }
    return 0;
}

/* The hooked signals of srv that came: each is given to pass, or, with
 * pass NULL, its function runs here. */
static void signal_hooks_due(ss_server *srv, void (*pass)(ss_server *srv, int signo))
{
    if (srv->sigfd < 0 || atomic_load(&hooks_pending) == 0)
        return;
    atomic_store(&hooks_pending, 0);
    uint64_t v;
    while (read(srv->sigfd, &v, sizeof v) > 0)
        ;
    bool others = false;
    for (int s = 1; s < NSIG; s++) {
        signal_hook *h = &signal_hooks[s];
        if (atomic_load_explicit(&h->srv, memory_order_acquire) != srv) {
            others = others || atomic_load(&h->pending) != 0;
            continue;
        }
        if (atomic_exchange(&h->pending, 0) == 0)
            continue;
        if (pass != NULL)
            pass(srv, s);
        else
            h->fn(srv, s, h->ctx);
    }
    if (others)
        atomic_store(&hooks_pending, 1); /* another server's loop takes them */
}

/* In the loop's thread: run the functions whose signals came. */
static void run_signal_hooks(ss_server *srv)
{
    signal_hooks_due(srv, NULL);
}

void ss__pass_signal_hooks(ss_server *srv, void (*pass)(ss_server *srv, int signo))
{
    signal_hooks_due(srv, pass);
}

bool ss__signal_hooked(const ss_server *srv, int signo)
{
    return signo > 0 && signo < NSIG && atomic_load(&signal_hooks[signo].srv) == srv;
}

int ss__renew_sigfd(ss_server *srv)
{
    if (srv->sigfd < 0)
        return 0;
    ss__close(srv->sigfd);
    srv->sigfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return srv->sigfd < 0 ? -1 : 0;
}

/* ss_server_free: the signals hooked to srv get their old actions back. */
static void unhook_signals(ss_server *srv)
{
    for (int s = 1; s < NSIG; s++) {
        signal_hook *h = &signal_hooks[s];
        ss_server *expected = srv;
        if (atomic_compare_exchange_strong(&h->srv, &expected, NULL)) {
            sigaction(s, &h->old, NULL);
            sigdelset(&hook_signals, s);
        }
    }
}

static void add_hook_signals(sigset_t *set)
{
    for (int s = 1; s < NSIG; s++)
        if (sigismember(&hook_signals, s))
            sigaddset(set, s);
}

/* A forked request child ignores the hooked signals, so that one sent to
 * the whole process group (a reload) does not end its request. Caught
 * rather than ignored, so that a program the handler executes gets the
 * default action back; SA_RESTART, so that its calls go on. */
static void child_hook_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = ignore_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (int s = 1; s < NSIG; s++) {
        if (sigismember(&hook_signals, s)) {
            atomic_store(&signal_hooks[s].srv, NULL);
            sigaction(s, &sa, NULL);
        }
    }
}

/* ---- the loop ---------------------------------------------------------- */

/* accept() ran out of descriptors or memory: report it once, then pause
 * accepting for a while (doubling) instead of spinning on a listening socket
 * that stays readable. Serving resumes by itself once descriptors free up. */
static void start_backoff(ss_server *srv, int err)
{
    if (!srv->backoff_reported) {
        ss__handle_error(srv, NULL, err);
        srv->backoff_reported = true;
    }
    if (srv->backoff_ms == 0)
        srv->backoff_ms = SS__BACKOFF_MIN_MS;
    else if (srv->backoff_ms < SS__BACKOFF_MAX_MS)
        srv->backoff_ms =
            srv->backoff_ms * 2 > SS__BACKOFF_MAX_MS ? SS__BACKOFF_MAX_MS : srv->backoff_ms * 2;
}

/* Connection accounting, after verify_request and before the mode runs the
 * request. Returns 0 when counted in; -1 when the request was turned away
 * (reject hook) or could not be counted (handle_error), and shut down. */
static int admit(ss_server *srv, ss_request *req)
{
    if (ss__limits_admit(srv, req) == 0)
        return 0;
    if (req->reject_reason != SS_REJECT_NONE && srv->mode->service != NULL) {
        /* Forking mode gives slots back when it reaps: a child that has
         * ended but is not reaped yet must not hold this request up. */
        srv->mode->service(srv);
        if (ss__limits_admit(srv, req) == 0)
            return 0;
    }
    if (req->reject_reason != SS_REJECT_NONE) {
        ss__reject_request(req);
    } else {
        ss__handle_error(srv, req, errno);
        ss__shutdown_request(req);
    }
    return -1;
}

int ss__admit_request(ss_server *srv, ss_request *req)
{
    if (srv->opt.verify_request != NULL && !srv->opt.verify_request(req)) {
        ss__shutdown_request(req);
        return -1;
    }
    /* A request the mode takes only to drop (reject_reason set) is not
     * counted in. */
    if (srv->limits != NULL && req->reject_reason == SS_REJECT_NONE && admit(srv, req) < 0)
        return -1;
    return 0;
}

/* Python's _handle_request_noblock: get, verify, process. Returns 1 when a
 * request was taken, 0 when none was waiting (or the mode is full), -1 when
 * the loop must stop (SS_ABORT, errno ECANCELED). */
static int handle_request_noblock(ss_server *srv)
{
    /* A stopping server takes nothing more: a request accepted now could
     * start after a graceful stop's cut and never be cut. A graceful stop
     * is marked a moment before the stop flag is set. */
    if (ss__stop_requested(srv) || atomic_load(&srv->stopping) != 0)
        return 0;
    ss_request *req = srv->mode->acquire(srv);
    if (req == NULL) {
        /* Full (the mode gave a descriptor to wait on), or no object could
         * be made: out of memory, as for accept(), pause and retry. */
        if (srv->mode_wait_fd < 0)
            start_backoff(srv, errno != 0 ? errno : ENOMEM);
        return 0;
    }
    int got = srv->transport->get_request(srv, req);
    if (got <= 0) {
        if (got < 0) {
            int err = errno;
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
                start_backoff(srv, err);
            else
                ss__handle_error(srv, NULL, err);
        } else if (srv->backoff_ms > 0) {
            /* Nothing waiting any more: the episode is over. */
            srv->backoff_ms = 0;
            srv->backoff_reported = false;
        }
        srv->mode->release(srv, req);
        return 0;
    }
    if (srv->backoff_reported) {
        srv->backoff_reported = false;
        srv->backoff_ms = 0;
    }
    if (ss__admit_request(srv, req) < 0) {
        srv->mode->release(srv, req);
        return 1;
    }
    if (srv->mode->process(srv, req) == SS_ABORT) {
        errno = ECANCELED;
        return -1;
    }
    return 1;
}

static void service_actions(ss_server *srv)
{
    run_signal_hooks(srv); /* under load the loop may never wait */
    if (srv->mode->service != NULL)
        srv->mode->service(srv);
    if (srv->opt.service_actions != NULL)
        srv->opt.service_actions(srv);
}

/* Wait until the server socket is readable (or the mode can take work
 * again), a stop is requested, or timeout_ms passes. The mode's service
 * descriptor is watched too: when it is readable (a forked child ended) the
 * service runs at once. Returns 1 when a request may be waiting, 0
 * otherwise. */
static int wait_ready(ss_server *srv, int timeout_ms)
{
    int fd;

    if (srv->backoff_ms > 0) {
        fd = -1; /* pausing accept(): only a stop may wake us early */
        if (timeout_ms < 0 || timeout_ms > (int)srv->backoff_ms)
            timeout_ms = (int)srv->backoff_ms;
    } else {
        fd = srv->mode_wait_fd >= 0 ? srv->mode_wait_fd : srv->fd;
    }
    int fds[4] = {fd, srv->wakefd, srv->mode_service_fd, srv->sigfd};
    bool ready[4];
    int polled = ss__poll(fds, ready, 4, timeout_ms);
    run_signal_hooks(srv);
    if (polled < 0) {
        if (errno == EINTR)
            return 0; /* the caller looks at the clock and the flag */
        /* poll itself failed (ENOMEM; EBADF after a misuse): report it
         * once and pause, as for accept(), rather than spin. The pause
         * cannot be a poll, so it is a sleep; a signal ends it early. */
        start_backoff(srv, errno);
        int ms = timeout_ms >= 0 && timeout_ms < (int)srv->backoff_ms ? timeout_ms
                                                                      : (int)srv->backoff_ms;
        struct timespec pause = {ms / 1000, (long)(ms % 1000) * 1000000L};
        (void)nanosleep(&pause, NULL);
        return 0;
    }
    if (ready[1]) {
        /* Any write to the wakeup descriptor is a stop request, also one
         * from a forked child that could not set our flag. */
        atomic_store_explicit(&srv->stop, 1, memory_order_release);
        return 0;
    }
    if (ready[2] && srv->mode->service != NULL)
        srv->mode->service(srv);
    if (srv->backoff_ms > 0 && fd < 0) {
        /* The pause is over (unless the service woke us): try accept()
         * again on the next turn. */
        return ready[2] ? 0 : 1;
    }
    return ready[0] ? 1 : 0;
}

/* One turn of the loop: try first, wait only when nothing is there (under
 * load a request costs its own system calls and no poll()), then try again
 * if the wait says a request may be waiting. Returns as
 * handle_request_noblock does. */
static int one_turn(ss_server *srv, int timeout_ms)
{
    int r = 0;
    /* Datagrams received in a batch and not handed out yet are requests
     * waiting, whatever a poll of the socket would say. */
    bool held = srv->transport->held != NULL && srv->transport->held(srv);
    if ((!srv->mode->poll_first || held) && srv->backoff_ms == 0 && srv->mode_wait_fd < 0)
        r = handle_request_noblock(srv);
    if (r == 0 && wait_ready(srv, timeout_ms) > 0 && !ss__stop_requested(srv))
        r = handle_request_noblock(srv);
    return r;
}

/* ---- the graceful stop ------------------------------------------------- */

/* Run a graceful stop (stopping is marked): wait for the running requests
 * until the grace ends or a second stop asks to cut, then cut (SHUT_RD on
 * every running request's connection) and wait SS__STOP_AFTER_CUT seconds
 * more for them to end. Waits in steps of SS__STOP_STEP so that a second
 * stop signal, which cannot signal a condition variable, is seen soon.
 * Returns 0 when no request is left, -1 with ETIMEDOUT otherwise. */
static int graceful_stop(ss_server *srv)
{
    /* A handler stopping its own server cannot wait for itself. */
    unsigned self = ss__current_server == srv ? 1 : 0;
    double deadline = (double)atomic_load(&srv->stop_deadline_ns) / 1e9;

    while (ss_server_active(srv) > self) {
        if (atomic_load(&srv->stop_cut) != 0)
            break;
        double left = deadline - ss__now();
        if (left <= 0)
            break;
        (void)ss__active_wait(srv, self, left < SS__STOP_STEP ? left : SS__STOP_STEP);
    }
    if (ss_server_active(srv) > self) {
        srv->mode->cut(srv);
        if (ss__active_wait(srv, self, SS__STOP_AFTER_CUT) != 0) {
            errno = ETIMEDOUT;
            return -1;
        }
    }
    return 0;
}

/* Run the graceful stop under the stop_busy flag (taken by the caller,
 * srv->mu held on entry and on return). */
static int run_stop_locked(ss_server *srv)
{
    pthread_mutex_unlock(&srv->mu);
    int rc = graceful_stop(srv);
    int err = errno;
    pthread_mutex_lock(&srv->mu);
    srv->stop_busy = false;
    srv->stop_done = true;
    pthread_cond_broadcast(&srv->cv);
    errno = err;
    return rc;
}

/* The loop has stopped: if a stop signal began a graceful stop, run it
 * here; if another thread runs one, wait for it. Either way the loop
 * returns only once the stop is over. */
static void finish_stop(ss_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    if (atomic_load(&srv->stopping) != 0 && !srv->stop_busy && !srv->stop_done) {
        srv->stop_busy = true;
        (void)run_stop_locked(srv);
    }
    while (srv->stop_busy)
        pthread_cond_wait(&srv->cv, &srv->mu);
    pthread_mutex_unlock(&srv->mu);
}

int ss_server_stop(ss_server *srv, double grace)
{
    if (srv == NULL || !(grace >= 0)) {
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock(&srv->mu);
    if (srv->in_request_child ||
        (srv->running && pthread_equal(srv->loop_thread, pthread_self()))) {
        pthread_mutex_unlock(&srv->mu);
        errno = EDEADLK;
        return -1;
    }
    int rc = 0;
    if (srv->stop_busy) {
        /* A stop is under way: this second one cuts at once. */
        atomic_store(&srv->stop_cut, 1);
        while (srv->stop_busy)
            pthread_cond_wait(&srv->cv, &srv->mu);
    } else {
        srv->stop_busy = true; /* before the loop can see the stop */
        /* A stop signal began one that nobody runs yet (a sync handler
         * still holds the loop): this is the second stop, it cuts at once. */
        if (!mark_stopping(srv, grace))
            atomic_store(&srv->stop_cut, 1);
        atomic_store_explicit(&srv->stop, 1, memory_order_release);
        ss__wake_loop(srv);
        rc = run_stop_locked(srv);
    }
    int err = errno;
    while (srv->running && !pthread_equal(srv->loop_thread, pthread_self()))
        pthread_cond_wait(&srv->cv, &srv->mu);
    pthread_mutex_unlock(&srv->mu);
    errno = err;
    return rc;
}

int ss_server_stop_fd(const ss_server *srv)
{
    return srv == NULL ? -1 : srv->stopfd;
}

bool ss__stopping(const ss_server *srv)
{
    if (atomic_load(&srv->stopping) != 0)
        return true;
    if (!srv->in_request_child)
        return false;
    /* A forked child's copy of the flag was taken at the fork; the
     * descriptor is shared with the parent. */
    struct pollfd p = {.fd = srv->stopfd, .events = POLLIN, .revents = 0};
    return poll(&p, 1, 0) > 0;
}

bool ss_server_stopping(const ss_server *srv)
{
    return srv != NULL && ss__stopping(srv);
}

static int enter_loop(ss_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    if (srv->running || srv->fd < 0) {
        pthread_mutex_unlock(&srv->mu);
        errno = srv->fd < 0 ? EBADF : EBUSY;
        return -1;
    }
    srv->running = true;
    srv->loop_thread = pthread_self();
    /* A stop still pending (a signal that came while no loop ran) is this
     * loop's to finish: its graceful part must not be wiped out here. */
    if (!srv->stop_busy && !ss__stop_requested(srv))
        clear_stopping(srv);
    pthread_mutex_unlock(&srv->mu);
    ss__loop_server = srv;
    return 0;
}

/* Between these two the mode may take requests on its own (the datagram
 * pool's workers receive themselves), and the transport may hold replies
 * back (a batch's, sent together); the loop's end stops the one and sends
 * the other. */
static void loop_begin(ss_server *srv, bool once)
{
    if (srv->mode->loop_begin != NULL)
        srv->mode->loop_begin(srv, once);
}

static void loop_end(ss_server *srv)
{
    if (srv->mode->loop_end != NULL)
        srv->mode->loop_end(srv);
    if (srv->transport->loop_end != NULL)
        srv->transport->loop_end(srv);
}

static void leave_loop(ss_server *srv, bool clear_stop)
{
    ss__loop_server = NULL;
    pthread_mutex_lock(&srv->mu);
    if (clear_stop) {
        drain_wakefd(srv);
        atomic_store_explicit(&srv->stop, 0, memory_order_release);
        atomic_store(&srv->signal_stop, 0);
    }
    srv->running = false;
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
}

int ss_serve_forever(ss_server *srv, double poll_interval)
{
    if (srv == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (enter_loop(srv) < 0)
        return -1;
    int interval_ms;
    if (poll_interval < 0 || poll_interval != poll_interval || poll_interval > 2000000.0)
        interval_ms = -1; /* none, NaN, or longer than poll() can say: wait */
    else
        interval_ms = (int)(poll_interval * 1000.0 + 0.5);
    int rc = 0;

    /* Modes whose threads take requests themselves (threads that accept,
     * pool workers that receive) start now, and stop before the loop
     * returns (or a graceful stop waits): nothing is taken off the socket
     * while no loop serves. A pre-fork supervisor serves nothing itself:
     * its workers do. */
    if (ss__prefork_supervisor(srv))
        rc = ss__prefork_serve(srv, poll_interval);
    else
        loop_begin(srv, false);
    while (!ss__prefork_supervisor(srv) && !ss__stop_requested(srv)) {
        int r = one_turn(srv, interval_ms);
        if (r < 0) {
            rc = -1;
            break;
        }
        service_actions(srv);
    }
    int err = errno;
    if (!ss__prefork_supervisor(srv))
        loop_end(srv);
    finish_stop(srv);
    leave_loop(srv, true);
    errno = err;
    return rc;
}

int ss_handle_request(ss_server *srv)
{
    if (srv == NULL || ss__prefork_supervisor(srv)) {
        errno = EINVAL;
        return -1;
    }
    if (enter_loop(srv) < 0)
        return -1;
    double deadline = srv->opt.timeout < 0 ? (double)INFINITY : ss__now() + srv->opt.timeout;
    int rc = 0;
    bool stopped = false;

    loop_begin(srv, true);
    for (;;) {
        if (ss__stop_requested(srv)) {
            stopped = true; /* consumed: the next call waits again */
            break;
        }
        int r = one_turn(srv, ss__ms_until(deadline));
        if (r != 0) {
            rc = r;
            break;
        }
        if (ss__ms_until(deadline) == 0) {
            if (srv->mode->service != NULL)
                srv->mode->service(srv); /* ForkingMixIn reaps on timeout */
            if (srv->opt.handle_timeout != NULL)
                srv->opt.handle_timeout(srv);
            break;
        }
    }
    int err = errno;
    loop_end(srv);
    if (stopped || ss__stop_requested(srv))
        finish_stop(srv);
    leave_loop(srv, stopped || ss__stop_requested(srv));
    errno = err;
    return rc;
}

/* ---- drain, close, free, accessors ------------------------------------ */

void ss__active_begin(ss_server *srv)
{
    atomic_fetch_add(&srv->active.n, 1);
}

void ss__active_end(ss_server *srv)
{
    /* Under the lock, so that a waiter that sees the count drop cannot go
     * on to free the server before this thread is done with it. */
    pthread_mutex_lock(&srv->active.mu);
    atomic_fetch_sub(&srv->active.n, 1);
    if (srv->active.waiters > 0)
        pthread_cond_broadcast(&srv->active.cv);
    pthread_mutex_unlock(&srv->active.mu);
}

unsigned ss__active_now(ss_server *srv)
{
    return atomic_load(&srv->active.n);
}

int ss__active_wait(ss_server *srv, unsigned left, double timeout)
{
    double deadline = timeout < 0 ? (double)INFINITY : ss__now() + timeout;
    int rc = 0;

    pthread_mutex_lock(&srv->active.mu);
    srv->active.waiters++;
    while (atomic_load(&srv->active.n) > left) {
        if (ss__ms_until(deadline) == 0) {
            rc = -1;
            break;
        }
        if (srv->mode->wait_step != NULL) {
            /* Nobody signals the end (forking: the child's exit needs a
             * reap): the mode looks itself. */
            pthread_mutex_unlock(&srv->active.mu);
            srv->mode->wait_step(srv, deadline);
            pthread_mutex_lock(&srv->active.mu);
        } else {
            (void)ss__cond_wait_until(&srv->active.cv, &srv->active.mu, deadline);
        }
    }
    srv->active.waiters--;
    pthread_mutex_unlock(&srv->active.mu);
    if (rc < 0)
        errno = ETIMEDOUT;
    return rc;
}

int ss_server_drain(ss_server *srv, double timeout)
{
    if (srv == NULL) {
        errno = EINVAL;
        return -1;
    }
    /* A handler draining its own server cannot wait for itself. */
    int rc = ss__active_wait(srv, ss__current_server == srv ? 1 : 0, timeout);
    int err = errno;
    if (srv->mode->service != NULL)
        srv->mode->service(srv); /* reap or join what ended */
    errno = err;
    return rc;
}

unsigned ss_server_active(ss_server *srv)
{
    if (srv == NULL)
        return 0;
    /* Forking: a child that has ended but is not reaped does not count. */
    if (srv->mode->wait_step != NULL && srv->mode->service != NULL)
        srv->mode->service(srv);
    return ss__active_now(srv);
}

void ss_server_close(ss_server *srv)
{
    if (srv == NULL || srv->closed)
        return;
    srv->closed = true;
    ss__prefork_close(srv);
    if (!srv->transport->shared_socket) {
        /* Stop accepting first, then wait for the connections in flight. */
        ss__close_server_socket(srv);
        if (srv->mode->close != NULL)
            srv->mode->close(srv);
        return;
    }
    /* Datagram handlers reply through the server socket: it closes only
     * after them. Daemon threads are not waited for here, so if any still
     * runs, the descriptor stays open (but out of reach) until free. */
    if (srv->mode->close != NULL)
        srv->mode->close(srv);
    if (ss_server_active(srv) > 0) {
        srv->deferred_fd = srv->fd;
        srv->fd = -1;
    }
    ss__close_server_socket(srv);
}

void ss_server_free(ss_server *srv)
{
    if (srv == NULL)
        return;
    ss_server *expected = srv;
    if (atomic_compare_exchange_strong(&signal_target, &expected, NULL))
        restore_stop_signals(); /* no signal may reach freed memory */
    unhook_signals(srv);
    /* A handler that loaded the target just before may still use it: wait
     * for it to leave (it runs a few instructions and system calls). */
    while (atomic_load(&signal_in_flight) != 0)
        sched_yield();
    ss_server_close(srv);
    if (srv->mode->destroy != NULL)
        srv->mode->destroy(srv);
    if (srv->transport->destroy != NULL)
        srv->transport->destroy(srv);
    ss__limits_free(srv);
    ss__prefork_free(srv);
    ss__proxy_free(srv);
    ss__close(srv->deferred_fd);
    ss__request_free(srv->loop_req);
    ss__close(srv->wakefd);
    ss__close(srv->stopfd);
    ss__close(srv->sigfd);
    free(srv->address);
    pthread_mutex_destroy(&srv->mu);
    pthread_cond_destroy(&srv->cv);
    pthread_mutex_destroy(&srv->active.mu);
    pthread_cond_destroy(&srv->active.cv);
    free(srv);
}

int ss_server_fileno(const ss_server *srv)
{
    return srv == NULL ? -1 : srv->fd;
}

int ss_server_address(const ss_server *srv, struct sockaddr *addr, socklen_t *len)
{
    if (srv == NULL || addr == NULL || len == NULL) {
        errno = EINVAL;
        return -1;
    }
    socklen_t n = *len < srv->boundlen ? *len : srv->boundlen;
    memcpy(addr, &srv->bound, n);
    *len = srv->boundlen;
    return 0;
}

char *ss_server_address_str(const ss_server *srv, char *buf, size_t size)
{
    if (srv == NULL) {
        errno = EINVAL;
        return NULL;
    }
    return ss_format_address((const struct sockaddr *)&srv->bound, srv->boundlen, buf, size);
}

int ss_server_port(const ss_server *srv)
{
    if (srv == NULL)
        return 0;
    if (srv->bound.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&srv->bound)->sin_port);
    if (srv->bound.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&srv->bound)->sin6_port);
    return 0;
}

ss_mode ss_server_mode(const ss_server *srv)
{
    if (srv == NULL) {
        errno = EINVAL;
        return SS_MODE_SYNC;
    }
    return srv->opt.mode;
}

ss_socktype ss_server_type(const ss_server *srv)
{
    if (srv == NULL) {
        errno = EINVAL;
        return SS_STREAM;
    }
    return srv->opt.type;
}

void *ss_server_user(const ss_server *srv)
{
    return srv == NULL ? NULL : srv->opt.user;
}
