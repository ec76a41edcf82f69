/*
 * test_review_lib.c - hazards in the library's accounting and stop paths:
 * each test here failed before the fix it comes with.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define PROBE_FDS 16

/* "hold": answer "held", then wait for the next line. "probe": open some
 * descriptors (they take the lowest free numbers, those the child closed
 * for its siblings), ask for the server's count of running requests, and
 * say whether the descriptors survived it. */
static int probe_handle(ss_request *req)
{
    char line[32];

    if (ss_readline(req, line, sizeof line) <= 0)
        return SS_OK;
    if (strcmp(line, "hold\n") == 0) {
        if (ss_printf(req, "held\n") < 0)
            return SS_ERROR;
        (void)ss_readline(req, line, sizeof line);
        return ss_printf(req, "bye\n") < 0 ? SS_ERROR : SS_OK;
    }
    int fds[PROBE_FDS];
    for (int i = 0; i < PROBE_FDS; i++)
        fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    (void)ss_server_active(ss_request_server(req));
    int bad = 0;
    for (int i = 0; i < PROBE_FDS; i++)
        if (fds[i] < 0 || fcntl(fds[i], F_GETFD) < 0)
            bad++;
    return ss_printf(req, bad == 0 ? "ok\n" : "bad %d\n", bad) < 0 ? SS_ERROR : SS_OK;
}

/* A forked child closes the parent's descriptors for its siblings (pidfds,
 * kept connections, the epoll set); a handler there that asks
 * ss_server_active must not make the library close those numbers a second
 * time, when they may be the handler's own files by then. */
static void test_fork_child_no_double_close(void **state)
{
    (void)state;
    ss_options opt;
    ss_handler h = {0};
    char line[64];

    tu_options(&opt, TU_TCP, SS_MODE_FORKING, NULL, 0);
    h.handle = probe_handle;
    ss_server *srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    tu_serve *serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);

    int held = tu_client(srv, NULL, 0);
    assert_true(held >= 0);
    assert_int_equal(tu_send_all(held, "hold\n", 5), 5);
    assert_true(tu_recv_line(held, line, sizeof line, TU_WAIT_MS) > 0);
    assert_string_equal(line, "held\n");

    int probe = tu_client(srv, NULL, 0);
    assert_true(probe >= 0);
    assert_int_equal(tu_send_all(probe, "probe\n", 6), 6);
    assert_true(tu_recv_line(probe, line, sizeof line, TU_WAIT_MS) > 0);
    assert_string_equal(line, "ok\n");
    close(probe);

    assert_int_equal(tu_send_all(held, "end\n", 4), 4);
    assert_true(tu_recv_line(held, line, sizeof line, TU_WAIT_MS) > 0);
    close(held);
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
}

/* A forked child drains: it has no children of its own, and the request it
 * runs is itself (as for a sync or threading handler draining its own
 * server), so there is nothing to wait for. */
static int drain_handle(ss_request *req)
{
    char line[32];

    if (ss_readline(req, line, sizeof line) <= 0)
        return SS_OK;
    int rc = ss_server_drain(ss_request_server(req), 1.0);
    return ss_printf(req, "%d %u\n", rc, ss_server_active(ss_request_server(req))) < 0 ? SS_ERROR
                                                                                       : SS_OK;
}

static void test_fork_child_drain_does_not_wait_for_itself(void **state)
{
    (void)state;
    ss_options opt;
    ss_handler h = {0};
    char line[64];

    tu_options(&opt, TU_TCP, SS_MODE_FORKING, NULL, 0);
    h.handle = drain_handle;
    ss_server *srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    tu_serve *serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    int fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    double t0 = tu_now();
    assert_int_equal(tu_send_all(fd, "x\n", 2), 2);
    assert_true(tu_recv_line(fd, line, sizeof line, TU_WAIT_MS) > 0);
    assert_string_equal(line, "0 1\n");
    assert_true(tu_now() - t0 < 0.9);
    close(fd);
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
}

/* Say "hi", then answer lines until the end of input. */
static int idle_handle(ss_request *req)
{
    char line[64];

    if (ss_write(req, "hi\n", 3) != 3)
        return SS_ERROR;
    for (;;) {
        ssize_t n = ss_readline(req, line, sizeof line);
        if (n <= 0)
            return n == 0 ? SS_OK : SS_ERROR;
        if (ss_write(req, line, (size_t)n) != n)
            return SS_ERROR;
    }
}

#define SIGNAL_GRACE 10.0

/* A stop signal began a graceful stop (a sync handler holds the loop, so
 * the loop has not taken the stop over yet); ss_server_stop from another
 * thread is a second stop: it cuts at once, as documented, instead of
 * waiting out the signal's grace. */
static void test_stop_after_signal_cuts_at_once(void **state)
{
    (void)state;
    ss_options opt;
    ss_handler h = {.handle = idle_handle};
    char line[16];

    assert_int_equal(tu_install_noop_handler(SIGUSR1), 0);
    tu_options(&opt, TU_TCP, SS_MODE_SYNC, NULL, 0);
    opt.stop_grace = SIGNAL_GRACE;
    ss_server *srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    assert_int_equal(ss_shutdown_on_signal(srv, SIGUSR1), 0);
    tu_serve *serve = tu_serve_start(srv, 0.05);
    assert_non_null(serve);
    int fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(tu_recv_line(fd, line, sizeof line, TU_WAIT_MS), 3);

    assert_int_equal(pthread_kill(pthread_self(), SIGUSR1), 0);
    assert_int_equal(tu_wait_readable(ss_server_stop_fd(srv), TU_WAIT_MS), 1);
    double t0 = tu_now();
    assert_int_equal(ss_server_stop(srv, 0), 0);
    assert_true(tu_now() - t0 < SIGNAL_GRACE / 2);
    assert_int_equal(tu_wait_eof(fd, TU_WAIT_MS), 0);
    assert_int_equal(tu_serve_wait(serve, TU_WAIT_MS), 0);
    close(fd);
    tu_server_free(srv);
}

/* A stop signal that comes while no loop runs (between two calls of
 * ss_handle_request) begins a graceful stop; the next call must run it
 * (grace, then the cut) and not wipe it out as it starts. */
static void test_signal_between_loops_is_not_lost(void **state)
{
    (void)state;
    ss_options opt;
    ss_handler h = {.handle = idle_handle};
    char line[16];

    assert_int_equal(tu_install_noop_handler(SIGUSR1), 0);
    tu_options(&opt, TU_TCP, SS_MODE_THREADING, NULL, 0);
    opt.stop_grace = 0.2;
    opt.timeout = 5.0;
    opt.block_on_close = false; /* a failed test must not hang in close */
    ss_server *srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    assert_int_equal(ss_shutdown_on_signal(srv, SIGUSR1), 0);
    int fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(ss_handle_request(srv), 1);
    assert_int_equal(tu_recv_line(fd, line, sizeof line, TU_WAIT_MS), 3);

    assert_int_equal(pthread_kill(pthread_self(), SIGUSR1), 0);
    assert_true(ss_server_stopping(srv));
    assert_int_equal(ss_handle_request(srv), 0);
    /* The stop ran: the idle client was cut, its handler is gone. */
    assert_int_equal(tu_wait_eof(fd, TU_WAIT_MS), 0);
    assert_int_equal(ss_server_active(srv), 0);
    close(fd);
    tu_server_free(srv);
}

/* Forking blocks the stop signals around fork(), so that a child never runs
 * the parent's stop handler before it has its own actions; afterwards both
 * sides must have their signal mask back, or the child could never be told
 * anything and the loop thread would stop taking its stop signals. */
static int mask_handle(ss_request *req)
{
    sigset_t cur;
    if (pthread_sigmask(SIG_BLOCK, NULL, &cur) != 0)
        return SS_ERROR;
    return ss_printf(req, sigismember(&cur, SIGUSR1) ? "blocked\n" : "open\n") < 0 ? SS_ERROR
                                                                                   : SS_OK;
}

static void test_fork_gives_the_signal_mask_back(void **state)
{
    (void)state;
    ss_options opt;
    ss_handler h = {.handle = mask_handle};
    char line[16];
    sigset_t cur;

    assert_int_equal(tu_install_noop_handler(SIGUSR1), 0);
    tu_options(&opt, TU_TCP, SS_MODE_FORKING, NULL, 0);
    opt.stop_grace = 1;
    opt.timeout = 5.0;
    ss_server *srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    assert_int_equal(ss_shutdown_on_signal(srv, SIGUSR1), 0);
    int fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(ss_handle_request(srv), 1);
    assert_true(tu_recv_line(fd, line, sizeof line, TU_WAIT_MS) > 0);
    assert_string_equal(line, "open\n");
    assert_int_equal(pthread_sigmask(SIG_BLOCK, NULL, &cur), 0);
    assert_false(sigismember(&cur, SIGUSR1));
    close(fd);
    tu_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_fork_child_no_double_close),
        TU_TEST(test_fork_child_drain_does_not_wait_for_itself),
        TU_TEST(test_stop_after_signal_cuts_at_once),
        TU_TEST(test_signal_between_loops_is_not_lost),
        TU_TEST(test_fork_gives_the_signal_mask_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
