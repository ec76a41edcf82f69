/*
 * test_prefork.c - pre-fork workers (ss_options.workers): N processes, each
 * with its own SO_REUSEPORT socket on the one address, in every mode inside;
 * the kernel spreads connections over them; the supervisor restarts a
 * worker killed by SIGKILL, stops them all with a grace (ss_server_stop),
 * stops when a worker ends its loop on purpose, and leaves no process
 * behind.
 *
 * The handler says "<pid>\n" (the worker's pid; in forking mode the parent
 * of the request's process), then waits for a line: "quit" stops its
 * worker's loop; the end of input (a graceful stop's cut) makes it say
 * "cut\n".
 */
#include "testutil.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define MAX_PIDS 64

static atomic_int deaths;

static int handle(ss_request *req)
{
    char line[64];
    pid_t worker = ss_server_mode(ss_request_server(req)) == SS_MODE_FORKING ? getppid() : getpid();

    if (ss_printf(req, "%d\n", (int)worker) < 0)
        return SS_ERROR;
    ssize_t n = ss_readline(req, line, sizeof line);
    if (n == 0)
        return ss_printf(req, "cut\n") < 0 ? SS_ERROR : SS_OK;
    if (n > 0 && strncmp(line, "quit", 4) == 0)
        ss_shutdown(ss_request_server(req));
    return SS_OK;
}

static void on_error(ss_server *srv, ss_request *req, int err)
{
    (void)srv;
    (void)req;
    if (err == EOWNERDEAD)
        atomic_fetch_add(&deaths, 1);
}

static ss_server *prefork_server_grace(ss_mode mode, unsigned workers, double grace)
{
    ss_options opt;
    ss_handler h = {.handle = handle};

    tu_options(&opt, TU_TCP, mode, NULL, 0);
    opt.workers = workers;
    opt.pool_workers = 2;
    opt.handle_error = on_error;
    opt.stop_grace = grace;
    atomic_store(&deaths, 0);
    return tu_server_new(&opt, &h);
}

static ss_server *prefork_server(ss_mode mode, unsigned workers)
{
    return prefork_server_grace(mode, workers, -1);
}

/* The supervisor in a process of its own, started from this (single)
 * thread: a process that forks while other threads run cannot start
 * threads in its children under ThreadSanitizer, and the workers of the
 * threading and pool modes do. It stops on SIGTERM (the server's
 * stop_grace applies). Returns its pid, or -1. */
static pid_t serve_in_process(ss_server *srv)
{
    pid_t pid = fork();
    if (pid == 0) {
        alarm(TU_CHILD_LIFE_S);
        if (ss_shutdown_on_signal(srv, SIGTERM) < 0)
            _exit(2);
        int rc = ss_serve_forever(srv, 0.05);
        _exit(rc == 0 ? 0 : 1);
    }
    return pid;
}

/* SIGTERM to the supervisor process, then wait (bounded) for its exit.
 * Returns its exit status, or -1. */
static int stop_process(pid_t pid)
{
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    int status = -1;

    if (kill(pid, SIGTERM) < 0)
        return -1;
    if (pidfd >= 0) {
        struct pollfd p = {.fd = pidfd, .events = POLLIN, .revents = 0};
        (void)poll(&p, 1, TU_WAIT_MS);
        close(pidfd);
    }
    if (waitpid(pid, &status, WNOHANG) != pid) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Connect, read the worker's pid; the connection stays open in *fd. */
static long hello(const ss_server *srv, int *fd)
{
    char line[64];

    *fd = tu_client(srv, NULL, 0);
    if (*fd < 0)
        return -1;
    if (tu_recv_line(*fd, line, sizeof line, TU_WAIT_MS) <= 0) {
        close(*fd);
        *fd = -1;
        return -1;
    }
    return strtol(line, NULL, 10);
}

/* One short request: the worker's pid, then the connection ends. */
static long one(const ss_server *srv)
{
    int fd;
    long pid = hello(srv, &fd);
    if (fd >= 0) {
        (void)tu_send_all(fd, "x\n", 2);
        (void)tu_wait_eof(fd, TU_WAIT_MS);
        close(fd);
    }
    return pid;
}

static bool seen(const long *pids, size_t n, long pid)
{
    for (size_t i = 0; i < n; i++)
        if (pids[i] == pid)
            return true;
    return false;
}

/* Serve `count` requests; collect the distinct pids that served them. */
static size_t spread(const ss_server *srv, int count, long *pids, size_t max)
{
    size_t n = 0;
    for (int i = 0; i < count; i++) {
        long pid = one(srv);
        assert_true(pid > 0);
        assert_true(pid != (long)getpid());
        if (!seen(pids, n, pid) && n < max)
            pids[n++] = pid;
    }
    return n;
}

static bool gone(long pid)
{
    return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

static void check_mode(ss_mode mode)
{
    ss_server *srv = prefork_server(mode, 2);
    assert_non_null(srv);
    bool threads = mode == SS_MODE_THREADING || mode == SS_MODE_POOL;
    tu_serve *serve = NULL;
    pid_t sup = -1;
    if (threads) {
        sup = serve_in_process(srv);
        assert_true(sup > 0);
    } else {
        serve = tu_serve_start(srv, 0.05);
        assert_non_null(serve);
    }
    long pids[MAX_PIDS];

    /* 64 connections from 64 source ports: both sockets get some (all on
     * one of two has a chance of 2^-63). */
    size_t n = spread(srv, 64, pids, MAX_PIDS);
    assert_int_equal(n, 2);
    assert_int_equal(ss_server_active(srv), 0); /* the supervisor runs none */
    if (threads)
        assert_int_equal(stop_process(sup), 0);
    else
        assert_int_equal(tu_serve_stop(serve), 0);
    for (size_t i = 0; i < n; i++)
        assert_true(gone(pids[i]));
    tu_server_free(srv);
}

static void test_spread_sync(void **state)
{
    (void)state;
    check_mode(SS_MODE_SYNC);
}

static void test_spread_threading(void **state)
{
    (void)state;
    check_mode(SS_MODE_THREADING);
}

static void test_spread_pool(void **state)
{
    (void)state;
    check_mode(SS_MODE_POOL);
}

static void test_spread_forking(void **state)
{
    (void)state;
    check_mode(SS_MODE_FORKING);
}

/* Datagram servers too: each worker has its own SO_REUSEPORT UDP socket,
 * and the kernel spreads the clients (by their ports) over them. */
static void test_spread_datagram(void **state)
{
    (void)state;
    ss_options opt;
    ss_handler h = {.handle = handle};

    tu_options(&opt, TU_UDP, SS_MODE_SYNC, NULL, 0);
    opt.workers = 2;
    ss_server *srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    tu_serve *serve = tu_serve_start(srv, 0.05);
    assert_non_null(serve);
    long pids[MAX_PIDS];
    size_t n = 0;

    for (int i = 0; i < 64; i++) {
        char reply[64];
        int fd = tu_client(srv, NULL, 0);
        assert_true(fd >= 0);
        assert_int_equal(tu_send_all(fd, "x\n", 2), 2);
        ssize_t r = tu_recv_dgram(fd, reply, sizeof reply - 1, TU_WAIT_MS);
        close(fd);
        assert_true(r > 0);
        reply[r] = '\0';
        long pid = strtol(reply, NULL, 10);
        assert_true(pid > 0 && pid != (long)getpid());
        if (!seen(pids, n, pid) && n < MAX_PIDS)
            pids[n++] = pid;
    }
    assert_int_equal(n, 2);
    assert_int_equal(tu_serve_stop(serve), 0);
    for (size_t i = 0; i < n; i++)
        assert_true(gone(pids[i]));
    tu_server_free(srv);
}

/* A worker killed with SIGKILL is reported and replaced; service goes on. */
static void test_restart(void **state)
{
    (void)state;
    ss_server *srv = prefork_server(SS_MODE_SYNC, 2);
    assert_non_null(srv);
    tu_serve *serve = tu_serve_start(srv, 0.05);
    assert_non_null(serve);
    long pids[MAX_PIDS];

    size_t n = spread(srv, 32, pids, MAX_PIDS);
    assert_int_equal(n, 2);
    assert_int_equal(kill((pid_t)pids[0], SIGKILL), 0);

    /* Every request is served meanwhile (a connection the kernel queued on
     * the dead worker's socket waits for its successor), and a new pid
     * shows up. */
    long fresh = -1;
    double t0 = tu_now();
    while (fresh < 0 && tu_now() - t0 < 10.0) {
        long pid = one(srv);
        assert_true(pid > 0);
        assert_true(pid != pids[0]);
        if (pid != pids[1])
            fresh = pid;
    }
    assert_true(fresh > 0);
    assert_int_equal(atomic_load(&deaths), 1);
    assert_true(gone(pids[0]));

    assert_int_equal(tu_serve_stop(serve), 0);
    assert_true(gone(pids[1]));
    assert_true(gone(fresh));
    tu_server_free(srv);
}

/* ss_server_stop with a grace: the held connections get the grace, then
 * their input is cut; every worker ends and is reaped. */
static void test_graceful_stop(void **state)
{
    (void)state;
    ss_server *srv = prefork_server(SS_MODE_FORKING, 2);
    assert_non_null(srv);
    tu_serve *serve = tu_serve_start(srv, 0.05);
    assert_non_null(serve);
    long pids[MAX_PIDS];
    int fds[16];
    size_t n = 0;

    /* Forking workers (a process per connection, no threads in them). */
    for (size_t i = 0; i < 16; i++) {
        long pid = hello(srv, &fds[i]);
        assert_true(pid > 0);
        if (!seen(pids, n, pid))
            pids[n++] = pid;
    }
    assert_int_equal(n, 2);
    double t0 = tu_now();
    assert_int_equal(ss_server_stop(srv, 0.3), 0);
    double took = tu_now() - t0;
    assert_true(took >= 0.25);
    assert_true(took < 4.0);
    for (size_t i = 0; i < 16; i++) {
        char line[64];
        assert_true(tu_recv_line(fds[i], line, sizeof line, TU_WAIT_MS) > 0);
        assert_string_equal(line, "cut\n");
        assert_int_equal(tu_wait_eof(fds[i], TU_WAIT_MS), 0);
        close(fds[i]);
    }
    assert_int_equal(tu_serve_wait(serve, TU_WAIT_MS), 0);
    for (size_t i = 0; i < n; i++)
        assert_true(gone(pids[i]));
    assert_int_equal(atomic_load(&deaths), 0);
    tu_server_free(srv);
}

/* A worker whose loop a handler stops ends with status 0: the supervisor
 * stops them all, and ss_serve_forever returns. */
/* The stop signal with a grace (stop_grace), threading workers: the same. */
static void test_signal_stop(void **state)
{
    (void)state;
    ss_server *srv = prefork_server_grace(SS_MODE_THREADING, 2, 0.3);
    assert_non_null(srv);
    pid_t sup = serve_in_process(srv);
    assert_true(sup > 0);
    long pids[MAX_PIDS];
    int fds[16];
    size_t n = 0;

    for (size_t i = 0; i < 16; i++) {
        long pid = hello(srv, &fds[i]);
        assert_true(pid > 0);
        if (!seen(pids, n, pid))
            pids[n++] = pid;
    }
    assert_int_equal(n, 2);
    double t0 = tu_now();
    assert_int_equal(stop_process(sup), 0);
    double took = tu_now() - t0;
    assert_true(took >= 0.25);
    assert_true(took < 4.0);
    for (size_t i = 0; i < 16; i++) {
        char line[64];
        assert_true(tu_recv_line(fds[i], line, sizeof line, TU_WAIT_MS) > 0);
        assert_string_equal(line, "cut\n");
        assert_int_equal(tu_wait_eof(fds[i], TU_WAIT_MS), 0);
        close(fds[i]);
    }
    for (size_t i = 0; i < n; i++)
        assert_true(gone(pids[i]));
    tu_server_free(srv);
}

/* ss_server_on_signal with workers: the signal sent to the supervisor
 * reaches every worker, and each worker's loop runs the function (which
 * writes its pid to a pipe). */
static int hook_pipe[2] = {-1, -1};

static void on_usr1(ss_server *srv, int signo, void *ctx)
{
    (void)srv;
    (void)ctx;
    long pid = signo == SIGUSR1 ? (long)getpid() : -1;
    ssize_t w = write(hook_pipe[1], &pid, sizeof pid);
    (void)w;
}

static void test_signal_hook_runs_in_workers(void **state)
{
    (void)state;
    assert_int_equal(pipe(hook_pipe), 0);
    ss_server *srv = prefork_server(SS_MODE_THREADING, 2);
    assert_non_null(srv);
    pid_t sup = fork();
    if (sup == 0) {
        alarm(TU_CHILD_LIFE_S);
        if (ss_shutdown_on_signal(srv, SIGTERM) < 0 ||
            ss_server_on_signal(srv, SIGUSR1, on_usr1, NULL) < 0)
            _exit(2);
        _exit(ss_serve_forever(srv, 0.05) == 0 ? 0 : 1);
    }
    assert_true(sup > 0);
    long pids[MAX_PIDS];
    size_t n = 0;
    for (int i = 0; i < 200 && n < 2; i++) {
        long pid = one(srv);
        assert_true(pid > 0);
        if (!seen(pids, n, pid))
            pids[n++] = pid;
    }
    assert_int_equal(n, 2);
    assert_int_equal(kill(sup, SIGUSR1), 0);
    long ran[2];
    for (size_t i = 0; i < 2; i++) {
        struct pollfd p = {.fd = hook_pipe[0], .events = POLLIN, .revents = 0};
        assert_int_equal(poll(&p, 1, TU_WAIT_MS), 1);
        assert_int_equal(read(hook_pipe[0], &ran[i], sizeof ran[i]), (ssize_t)sizeof ran[i]);
        assert_true(seen(pids, n, ran[i]));
    }
    assert_true(ran[0] != ran[1]);
    assert_int_equal(stop_process(sup), 0);
    close(hook_pipe[0]);
    close(hook_pipe[1]);
    tu_server_free(srv);
}

static void test_worker_stops_all(void **state)
{
    (void)state;
    ss_server *srv = prefork_server(SS_MODE_SYNC, 2);
    assert_non_null(srv);
    tu_serve *serve = tu_serve_start(srv, 0.05);
    assert_non_null(serve);
    long pids[MAX_PIDS];
    size_t n = spread(srv, 32, pids, MAX_PIDS);
    assert_int_equal(n, 2);

    int fd;
    long pid = hello(srv, &fd);
    assert_true(pid > 0);
    assert_int_equal(tu_send_all(fd, "quit\n", 5), 5);
    assert_int_equal(tu_wait_eof(fd, TU_WAIT_MS), 0);
    close(fd);
    assert_int_equal(tu_serve_wait(serve, TU_WAIT_MS), 0);
    for (size_t i = 0; i < n; i++)
        assert_true(gone(pids[i]));
    assert_int_equal(atomic_load(&deaths), 0);
    tu_server_free(srv);
}

static void test_options(void **state)
{
    (void)state;
    ss_options opt;

    tu_options(&opt, TU_TCP, SS_MODE_SYNC, NULL, 0);
    opt.workers = SS__WORKERS_MAX + 1;
    assert_null(ss_server_new(&opt, NULL));
    assert_int_equal(errno, EINVAL);

    /* The address (port 0 read back) is known before serving, and every
     * worker's socket has SO_REUSEPORT on the same address. */
    ss_server *srv = prefork_server(SS_MODE_SYNC, 3);
    assert_non_null(srv);
    assert_true(ss_server_port(srv) > 0);
    int on = 0;
    socklen_t olen = sizeof on;
    assert_int_equal(getsockopt(ss_server_fileno(srv), SOL_SOCKET, SO_REUSEPORT, &on, &olen), 0);
    assert_int_equal(on, 1);
    /* The supervisor takes no request itself. */
    assert_int_equal(ss_handle_request(srv), -1);
    assert_int_equal(errno, EINVAL);
    tu_server_free(srv);

    /* Unix sockets: one socket shared by the workers. */
    char path[TU_PATH_MAX];
    ss_handler h = {.handle = handle};
    tu_options(&opt, TU_UNIX_STREAM, SS_MODE_SYNC, path, sizeof path);
    opt.workers = 2;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    tu_serve *serve = tu_serve_start(srv, 0.05);
    assert_non_null(serve);
    long pid = one(srv);
    assert_true(pid > 0 && pid != (long)getpid());
    assert_int_equal(tu_serve_stop(serve), 0);
    assert_true(gone(pid));
    tu_server_free(srv);
    assert_int_equal(access(path, F_OK), -1); /* the supervisor removed it */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_options),
        TU_TEST(test_spread_sync),
        TU_TEST(test_spread_threading),
        TU_TEST(test_spread_pool),
        TU_TEST(test_spread_forking),
        TU_TEST(test_spread_datagram),
        TU_TEST(test_restart),
        TU_TEST(test_graceful_stop),
        TU_TEST(test_signal_stop),
        TU_TEST(test_worker_stops_all),
        TU_TEST(test_signal_hook_runs_in_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
