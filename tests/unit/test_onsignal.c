/*
 * test_onsignal.c - ss_server_on_signal in every mode: the function runs in
 * the serving loop's thread (not in the thread the signal reached), a
 * handler blocked in a read when the signal comes goes on and serves its
 * client, a sync server runs the function only once its handler is done,
 * a forked request child ignores the signal, and ss_server_free gives the
 * signal its previous action back.
 */
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static tu_chan events;   /* handler -> test: its pid, once it runs */
static tu_chan hook_ran; /* hook -> test: one byte per call */
static atomic_long loop_tid;
static atomic_long hook_tid;
static atomic_int hook_calls;
static atomic_int hook_signo;

static long my_tid(void)
{
    return (long)syscall(SYS_gettid);
}

static void note_loop_thread(ss_server *srv)
{
    (void)srv;
    atomic_store(&loop_tid, my_tid());
}

static void hook(ss_server *srv, int signo, void *ctx)
{
    (void)srv;
    atomic_store(&hook_tid, my_tid());
    atomic_store(&hook_signo, signo);
    atomic_fetch_add(&hook_calls, 1);
    tu_chan_put((tu_chan *)ctx, 'H');
}

/* Tell the test who runs this request, then echo one line. */
static int report_and_echo(ss_request *req)
{
    pid_t me = getpid();
    char line[64];
    ssize_t n;

    if (ss_server_mode(ss_request_server(req)) == SS_MODE_FORKING)
        tu_close_inherited_client(ss_request_fd(req));
    if (write(events.wr, &me, sizeof me) != (ssize_t)sizeof me)
        return SS_ERROR;
    n = ss_readline(req, line, sizeof line);
    if (n <= 0)
        return SS_ERROR;
    return ss_write(req, line, (size_t)n) == n ? SS_OK : SS_ERROR;
}

static pid_t read_pid(void)
{
    pid_t pid = 0;
    unsigned char *p = (unsigned char *)&pid;

    for (size_t i = 0; i < sizeof pid; i++) {
        int c = tu_chan_get(&events, TU_WAIT_MS);
        if (c < 0)
            return -1;
        p[i] = (unsigned char)c;
    }
    return pid;
}

static void on_signal_in(ss_mode mode)
{
    ss_options opt;
    ss_handler h = {.handle = report_and_echo};
    char path[TU_PATH_MAX], line[64];
    ss_server *srv;
    tu_serve *serving;
    pid_t handler_pid;
    int fd;

    atomic_store(&hook_calls, 0);
    atomic_store(&hook_tid, 0);
    atomic_store(&loop_tid, 0);
    tu_options(&opt, TU_TCP, mode, path, sizeof path);
    opt.service_actions = note_loop_thread;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    assert_int_equal(ss_server_on_signal(srv, SIGUSR1, hook, &hook_ran), 0);
    serving = tu_serve_start(srv, 0.05);
    assert_non_null(serving);

    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    handler_pid = read_pid();
    assert_true(handler_pid > 0);

    /* The signal reaches this thread (the library's threads block it);
     * a sync server's handler runs in the loop's thread: signal that one
     * too, while its read waits. */
    assert_int_equal(pthread_kill(pthread_self(), SIGUSR1), 0);
    if (mode == SS_MODE_SYNC) {
        assert_int_equal(pthread_kill(serving->thread, SIGUSR1), 0);
        /* Not while the handler runs: between requests. */
        assert_int_equal(tu_chan_get(&hook_ran, TU_QUIET_MS), -1);
    } else {
        assert_int_equal(tu_chan_get(&hook_ran, TU_WAIT_MS), 'H');
    }
    if (mode == SS_MODE_FORKING) {
        assert_int_not_equal(handler_pid, getpid());
        /* The session's own process ignores it. */
        assert_int_equal(kill(handler_pid, SIGUSR1), 0);
    }

    /* The handler's blocked read went on: the line comes back. */
    assert_int_equal(tu_send_all(fd, "after signal\n", 13), 13);
    assert_int_equal(tu_recv_line(fd, line, sizeof line, TU_WAIT_MS), 13);
    assert_string_equal(line, "after signal\n");
    close(fd);

    if (mode == SS_MODE_SYNC)
        assert_int_equal(tu_chan_get(&hook_ran, TU_WAIT_MS), 'H');
    /* Nothing more: the child's signal did not reach the parent's hook,
     * and two signals before a call may make one. */
    assert_int_equal(tu_chan_get(&hook_ran, TU_QUIET_MS), -1);
    assert_true(atomic_load(&hook_calls) >= 1 && atomic_load(&hook_calls) <= 2);
    assert_int_equal(atomic_load(&hook_signo), SIGUSR1);

    assert_int_equal(tu_serve_stop(serving), 0);
    /* The loop's thread ran it, not the one the signal interrupted. */
    assert_true(atomic_load(&loop_tid) != 0);
    assert_true(atomic_load(&hook_tid) == atomic_load(&loop_tid));
    assert_true(atomic_load(&hook_tid) != my_tid());
    tu_server_free(srv);
}

static void test_on_signal_sync(void **state)
{
    (void)state;
    on_signal_in(SS_MODE_SYNC);
}

static void test_on_signal_threading(void **state)
{
    (void)state;
    on_signal_in(SS_MODE_THREADING);
}

static void test_on_signal_forking(void **state)
{
    (void)state;
    on_signal_in(SS_MODE_FORKING);
}

static void test_on_signal_pool(void **state)
{
    (void)state;
    on_signal_in(SS_MODE_POOL);
}

/* The action is SA_RESTART while hooked and the previous one after free;
 * a signal that came before serving runs the hook on the first turn. */
static void test_on_signal_install_and_restore(void **state)
{
    ss_options opt;
    char path[TU_PATH_MAX];
    struct sigaction before, during, after;
    ss_server *srv;
    tu_serve *serving;

    (void)state;
    assert_int_equal(tu_install_noop_handler(SIGUSR2), 0);
    assert_int_equal(sigaction(SIGUSR2, NULL, &before), 0);
    tu_options(&opt, TU_TCP, SS_MODE_THREADING, path, sizeof path);
    srv = tu_server_new(&opt, NULL);
    assert_non_null(srv);

    errno = 0;
    assert_int_equal(ss_server_on_signal(NULL, SIGUSR2, hook, NULL), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(ss_server_on_signal(srv, SIGUSR2, NULL, NULL), -1);
    assert_int_equal(ss_server_on_signal(srv, 0, hook, NULL), -1);
    assert_int_equal(ss_server_on_signal(srv, SIGKILL, hook, NULL), -1);
    assert_int_equal(ss_server_on_signal(srv, NSIG, hook, NULL), -1);

    assert_int_equal(ss_server_on_signal(srv, SIGUSR2, hook, &hook_ran), 0);
    assert_int_equal(sigaction(SIGUSR2, NULL, &during), 0);
    assert_true((during.sa_flags & SA_RESTART) != 0);
    assert_true(during.sa_handler != before.sa_handler);

    assert_int_equal(kill(getpid(), SIGUSR2), 0);
    serving = tu_serve_start(srv, 0.05);
    assert_non_null(serving);
    assert_int_equal(tu_chan_get(&hook_ran, TU_WAIT_MS), 'H');
    assert_int_equal(atomic_load(&hook_signo), SIGUSR2);
    assert_int_equal(tu_serve_stop(serving), 0);

    tu_server_free(srv);
    assert_int_equal(sigaction(SIGUSR2, NULL, &after), 0);
    assert_true(after.sa_handler == before.sa_handler);
    signal(SIGUSR2, SIG_DFL);
}

static int group_setup(void **state)
{
    (void)state;
    if (tu_chan_open(&events) < 0 || tu_chan_open(&hook_ran) < 0)
        return -1;
    /* Until a server hooks it, SIGUSR1 must not end the test. */
    return tu_install_noop_handler(SIGUSR1);
}

static int group_teardown(void **state)
{
    (void)state;
    tu_chan_close(&events);
    tu_chan_close(&hook_ran);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_on_signal_sync),
        TU_TEST(test_on_signal_threading),
        TU_TEST(test_on_signal_forking),
        TU_TEST(test_on_signal_pool),
        TU_TEST(test_on_signal_install_and_restore),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
