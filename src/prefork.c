/*
 * prefork.c - pre-fork scale-out: N worker processes, each with its own
 * listening socket bound to the same address with SO_REUSEPORT, so that the
 * kernel spreads the connections over them, and each serving in the
 * configured mode (sync, threading, forking, pool) with the ordinary loop.
 *
 * ss_server_new makes all N sockets (the first binds the port, a port of 0
 * included; the others bind the port it got), so the address is known and
 * no worker can fail to bind later. The process that calls ss_serve_forever
 * becomes the supervisor: it runs no mode and takes no request; it forks the
 * workers, reaps them (a pidfd per worker wakes its poll), restarts one that
 * dies with a pause that doubles while it keeps dying young, and passes a
 * stop on: SIGTERM to every worker, which runs the library's graceful stop;
 * a second SIGTERM when the grace ends, which cuts; SIGKILL if a worker is
 * still there SS__STOP_AFTER_CUT + 1 seconds later. The supervisor keeps
 * every socket open, so the connections the kernel queued on a dead
 * worker's socket wait for its successor instead of being refused.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define RESTART_MIN 0.1      /* first pause before restarting a worker that died young */
#define RESTART_MAX 5.0      /* ... doubling up to this */
#define DIED_YOUNG 1.0       /* a worker that dies sooner than this after its start */
#define NO_PIDFD_STEP_MS 100 /* without pidfds: look for dead workers this often */
#define STOP_STEP_MS 20      /* while stopping: look at the clock and a second stop */
#define WORKER_GRACE 1e10    /* a worker's own grace: until the supervisor cuts */

typedef struct worker {
    pid_t pid;             /* 0: not running */
    int pidfd;             /* -1 without pidfd_open */
    double started;        /* monotonic */
    unsigned young_deaths; /* deaths in a row within DIED_YOUNG of the start */
    double restart_at;     /* when not running: when to start it again */
} worker;

struct ss__prefork {
    const ss__mode *mode; /* the configured mode, which each worker runs */
    unsigned n;
    bool shared;    /* one socket for all (Unix sockets) */
    bool in_worker; /* this process is a worker */
    int *fds;       /* each worker's socket; fds[0] is srv->fd */
    worker *w;
};

/* The supervisor runs no mode: this table only names it in reports. */
static void no_cut(ss_server *srv)
{
    (void)srv;
}

static const ss__mode mode_supervisor = {
    .name = "prefork",
    .cut = no_cut,
};

bool ss__prefork_supervisor(const ss_server *srv)
{
    return srv->prefork != NULL && !srv->prefork->in_worker;
}

int ss__prefork_init(ss_server *srv)
{
    unsigned n = srv->opt.workers;
    ss__prefork *pf = calloc(1, sizeof *pf);
    if (pf == NULL)
        return -1;
    srv->prefork = pf;
    pf->n = n;
    pf->mode = srv->mode;
    pf->fds = malloc(n * sizeof *pf->fds);
    pf->w = calloc(n, sizeof *pf->w);
    if (pf->fds == NULL || pf->w == NULL)
        return -1;
    for (unsigned i = 0; i < n; i++) {
        pf->fds[i] = -1;
        pf->w[i].pidfd = -1;
    }
    pf->fds[0] = srv->fd;
    pf->shared = srv->family == AF_UNIX;
    if (pf->shared) {
        for (unsigned i = 1; i < n; i++)
            pf->fds[i] = srv->fd;
    } else {
        /* The other sockets bind the address the first one got (its port,
         * when 0 was asked for); SO_REUSEPORT is on for all of them. */
        char bound[SS__ADDRSTRLEN];
        if (ss_server_address_str(srv, bound, sizeof bound) == NULL)
            return -1;
        char *given = srv->address;
        int first = srv->fd;
        int rc = 0;
        srv->address = bound;
        for (unsigned i = 1; i < n && rc == 0; i++) {
            srv->fd = -1;
            rc = ss__open_server_socket(srv);
            pf->fds[i] = srv->fd;
        }
        srv->address = given;
        srv->fd = first;
        if (rc < 0)
            return -1;
    }
    srv->mode = &mode_supervisor;
    return 0;
}

void ss__prefork_close(ss_server *srv)
{
    ss__prefork *pf = srv->prefork;
    if (pf == NULL || pf->fds == NULL)
        return;
    for (unsigned i = 1; i < pf->n; i++) {
        if (!pf->shared)
            ss__close(pf->fds[i]);
        pf->fds[i] = -1;
    }
}

void ss__prefork_free(ss_server *srv)
{
    ss__prefork *pf = srv->prefork;
    if (pf == NULL)
        return;
    ss__prefork_close(srv);
    if (pf->w != NULL)
        for (unsigned i = 0; i < pf->n; i++)
            ss__close(pf->w[i].pidfd);
    free(pf->fds);
    free(pf->w);
    free(pf);
    srv->prefork = NULL;
}

/* ---- a worker ------------------------------------------------------------ */

/* Whether the supervisor catches signo (then it decides what the signal
 * means; a worker that gets it from a terminal's process group ignores it). */
static bool caught(int signo)
{
    struct sigaction sa;
    if (sigaction(signo, NULL, &sa) < 0)
        return false;
    return (sa.sa_flags & SA_SIGINFO) != 0 ||
           (sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN);
}

/* In the new worker process: take socket i, fresh wakeup and stop
 * descriptors (the supervisor's are its own), the configured mode, SIGTERM
 * as the graceful stop, and serve. Never returns. */
static void worker_main(ss_server *srv, unsigned i, double poll_interval, const sigset_t *mask,
                        pid_t supervisor)
{
    ss__prefork *pf = srv->prefork;

    pf->in_worker = true;
    /* A supervisor that dies without stopping us (SIGKILL) must not leave
     * us serving on our own. */
    (void)prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != supervisor)
        _exit(0);
    for (unsigned j = 0; j < pf->n; j++) {
        if (j != i && !pf->shared)
            ss__close(pf->fds[j]);
        ss__close(pf->w[j].pidfd);
        pf->w[j].pidfd = -1;
        pf->w[j].pid = 0;
    }
    srv->fd = pf->fds[i];
    for (unsigned j = 0; j < pf->n; j++)
        pf->fds[j] = -1;
    /* The socket file belongs to the supervisor: a worker never removes it. */
    free(srv->unix_path);
    srv->unix_path = NULL;
    ss__close(srv->wakefd);
    ss__close(srv->stopfd);
    srv->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    srv->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (srv->wakefd < 0 || srv->stopfd < 0)
        _exit(3);
    srv->mode = pf->mode;
    srv->running = false;
    atomic_store(&srv->stop, 0);
    atomic_store(&srv->stopping, 0);
    atomic_store(&srv->stop_cut, 0);
    atomic_store(&srv->signal_stop, 0);
    srv->stop_done = false;
    srv->stop_busy = false;

    /* Signals (all blocked since before the fork): the supervisor's stop
     * signals get their default action back, those it catches are ignored
     * here (it passes them on as it sees fit), and SIGTERM is the graceful
     * stop, whose grace the supervisor ends with a second SIGTERM. */
    static const int group_signals[] = {SIGINT, SIGQUIT, SIGHUP};
    bool ignore[sizeof group_signals / sizeof group_signals[0]];
    /* A signal of ss_server_on_signal keeps its hook: the supervisor sends
     * it on, and this worker's loop runs the function. */
    for (size_t k = 0; k < sizeof group_signals / sizeof group_signals[0]; k++)
        ignore[k] = caught(group_signals[k]) && /* before the reset below */
                    !ss__signal_hooked(srv, group_signals[k]);
    if (ss__renew_sigfd(srv) < 0)
        _exit(3);
    ss__reset_stop_signals();
    for (size_t k = 0; k < sizeof group_signals / sizeof group_signals[0]; k++)
        if (ignore[k])
            signal(group_signals[k], SIG_IGN);
    srv->opt.stop_grace = WORKER_GRACE;
    if (ss_shutdown_on_signal(srv, SIGTERM) < 0)
        _exit(3);
    sigset_t m = *mask;
    sigdelset(&m, SIGTERM);
    pthread_sigmask(SIG_SETMASK, &m, NULL);

    if (srv->mode->init != NULL && srv->mode->init(srv) < 0) {
        ss__handle_error(srv, NULL, errno);
        _exit(2);
    }
    int rc = ss_serve_forever(srv, poll_interval);
    ss_server_close(srv);
    _exit(rc == 0 ? 0 : 1);
}

static int open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
    long fd = syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0)
        return (int)fd;
#endif
    (void)pid;
    return -1;
}

/* Start worker i. Returns 0, or -1 with errno (fork failed). */
static int spawn(ss_server *srv, unsigned i, double poll_interval)
{
    worker *w = &srv->prefork->w[i];
    sigset_t all, old;
    pid_t self = getpid();

    /* Every signal blocked across the fork: the worker installs its own
     * actions before it can run one of ours. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pid_t pid = fork();
    if (pid == 0)
        worker_main(srv, i, poll_interval, &old, self);
    int err = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        errno = err;
        return -1;
    }
    w->pid = pid;
    w->pidfd = open_pidfd(pid);
    w->started = ss__now();
    return 0;
}

/* ---- the supervisor -------------------------------------------------------- */

static unsigned running_workers(const ss__prefork *pf)
{
    unsigned k = 0;
    for (unsigned i = 0; i < pf->n; i++)
        k += pf->w[i].pid > 0;
    return k;
}

/* Reap the workers that ended. Returns the number reaped; *clean_exit is
 * set when one ended with status 0 on its own, *died when one died. */
static unsigned reap(ss_server *srv, bool stopping, bool *clean_exit)
{
    ss__prefork *pf = srv->prefork;
    unsigned k = 0;
    double now = ss__now();

    for (unsigned i = 0; i < pf->n; i++) {
        worker *w = &pf->w[i];
        int status;
        if (w->pid <= 0)
            continue;
        pid_t r = waitpid(w->pid, &status, WNOHANG);
        if (r == 0 || (r < 0 && errno == EINTR))
            continue;
        /* Reaped (or gone: ECHILD after someone else's waitpid(-1)). */
        ss__close(w->pidfd);
        w->pidfd = -1;
        w->pid = 0;
        k++;
        if (stopping)
            continue;
        if (r > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            *clean_exit = true;
            continue;
        }
        ss__handle_error(srv, NULL, EOWNERDEAD);
        if (now - w->started < DIED_YOUNG) {
            double pause = RESTART_MIN;
            for (unsigned d = 0; d < w->young_deaths && pause < RESTART_MAX; d++)
                pause *= 2;
            w->young_deaths++;
            w->restart_at = now + (pause < RESTART_MAX ? pause : RESTART_MAX);
        } else {
            w->young_deaths = 0;
            w->restart_at = now; /* it served a while: at once */
        }
    }
    return k;
}

static void signal_workers(const ss__prefork *pf, int signo);

/* A signal of ss_server_on_signal that came to the supervisor: the workers
 * run the function, each in its loop. */
static void pass_to_workers(ss_server *srv, int signo)
{
    signal_workers(srv->prefork, signo);
}

/* Wait up to timeout_ms for a worker to end, a stop request or a signal of
 * ss_server_on_signal (passed on to the workers). */
static void wait_event(ss_server *srv, int timeout_ms)
{
    ss__prefork *pf = srv->prefork;
    struct pollfd *p = malloc((pf->n + 2) * sizeof *p);
    nfds_t k = 0;
    bool all_pidfds = true;

    if (p == NULL) {
        /* No memory for the set: a short sleep in its place. */
        struct timespec ts = {0, NO_PIDFD_STEP_MS * 1000000L};
        (void)nanosleep(&ts, NULL);
        return;
    }
    p[k++] = (struct pollfd){.fd = srv->wakefd, .events = POLLIN, .revents = 0};
    p[k++] = (struct pollfd){.fd = srv->sigfd, .events = POLLIN, .revents = 0};
    for (unsigned i = 0; i < pf->n; i++) {
        if (pf->w[i].pid <= 0)
            continue;
        if (pf->w[i].pidfd < 0)
            all_pidfds = false;
        else
            p[k++] = (struct pollfd){.fd = pf->w[i].pidfd, .events = POLLIN, .revents = 0};
    }
    if (!all_pidfds && (timeout_ms < 0 || timeout_ms > NO_PIDFD_STEP_MS))
        timeout_ms = NO_PIDFD_STEP_MS;
    if (poll(p, k, timeout_ms) > 0 && p[0].revents != 0) {
        /* Any write to the wakeup descriptor is a stop request. */
        uint64_t v;
        while (read(srv->wakefd, &v, sizeof v) > 0)
            ;
        atomic_store_explicit(&srv->stop, 1, memory_order_release);
    }
    ss__pass_signal_hooks(srv, pass_to_workers);
    free(p);
}

/* Milliseconds until the next restart is due (-1: none waits). */
static int next_restart_ms(const ss__prefork *pf)
{
    double soonest = INFINITY;
    for (unsigned i = 0; i < pf->n; i++)
        if (pf->w[i].pid <= 0 && pf->w[i].restart_at < soonest)
            soonest = pf->w[i].restart_at;
    return ss__ms_until(soonest);
}

static void signal_workers(const ss__prefork *pf, int signo)
{
    for (unsigned i = 0; i < pf->n; i++)
        if (pf->w[i].pid > 0)
            (void)kill(pf->w[i].pid, signo);
}

/* The stop: SIGTERM to every worker (each runs a graceful stop), a second
 * one at the end of the grace (or at a second stop request), SIGKILL to
 * those still there a while after that; every worker is reaped. */
static void stop_workers(ss_server *srv)
{
    ss__prefork *pf = srv->prefork;
    bool graceful = atomic_load(&srv->stopping) != 0;
    double deadline =
        graceful ? (double)atomic_load(&srv->stop_deadline_ns) / 1e9 : (double)INFINITY;
    double kill_at = INFINITY;
    bool cut = false, ignored = false;

    signal_workers(pf, SIGTERM);
    while (running_workers(pf) > 0) {
        double now = ss__now();
        if (!cut && (now >= deadline || atomic_load(&srv->stop_cut) != 0)) {
            signal_workers(pf, SIGTERM); /* the second stop: cut */
            cut = true;
            kill_at = now + SS__STOP_AFTER_CUT + 1.0;
        }
        if (now >= kill_at)
            signal_workers(pf, SIGKILL);
        wait_event(srv, STOP_STEP_MS);
        (void)reap(srv, true, &ignored);
    }
}

int ss__prefork_serve(ss_server *srv, double poll_interval)
{
    ss__prefork *pf = srv->prefork;
    bool clean_exit = false;

    for (unsigned i = 0; i < pf->n; i++) {
        pf->w[i].young_deaths = 0;
        pf->w[i].restart_at = 0;
    }
    while (!ss__stop_requested(srv) && !clean_exit) {
        for (unsigned i = 0; i < pf->n; i++) {
            worker *w = &pf->w[i];
            if (w->pid > 0 || ss__ms_until(w->restart_at) > 0)
                continue;
            if (spawn(srv, i, poll_interval) < 0) {
                ss__handle_error(srv, NULL, errno);
                w->restart_at = ss__now() + RESTART_MAX;
            }
        }
        wait_event(srv, next_restart_ms(pf));
        (void)reap(srv, false, &clean_exit);
    }
    stop_workers(srv);
    return 0;
}
