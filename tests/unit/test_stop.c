/*
 * test_stop.c - the graceful stop, in every mode and both transports where
 * it applies: ss_server_stop with idle clients returns within the grace and
 * a little more, and the clients see the end of the stream; a handler
 * waiting in ss_request_wait gets ECANCELED at once and can still say
 * goodbye; a busy handler that ends within the grace is not cut; the stop
 * descriptor turns readable, in forked children too; the stop_grace option
 * with stop signals (a second signal cuts at once); a stop signal that
 * reaches another thread interrupts a sync handler; and the stop-signal
 * handler racing ss_server_free.
 *
 * Handlers report through the connection itself (so that forked children
 * can) and through channels.
 */
#include "testutil.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define IDLE_CLIENTS 3
#define SHORT_GRACE 0.3
#define LONG_GRACE 30.0
/* What the stop may take beyond the grace: the cut, the handlers' ends and
 * the reaping of forked children, on a loaded machine or under a sanitizer. */
#define SLACK 2.5
#define RACE_ROUNDS 400
#define RACE_SECONDS 5.0

static const ss_mode all_modes[] = {SS_MODE_SYNC, SS_MODE_THREADING, SS_MODE_FORKING, SS_MODE_POOL};

static tu_chan release;

/* Room for a Unix socket path while its server lives. */
static char server_path[TU_PATH_MAX];

static ss_server *start(ss_mode mode, enum tu_kind kind, int (*handle)(ss_request *), double grace,
                        tu_serve **serving)
{
    ss_options opt;
    ss_handler h = {.handle = handle};
    ss_server *srv;

    tu_options(&opt, kind, mode, server_path, sizeof server_path);
    opt.pool_workers = IDLE_CLIENTS + 1;
    opt.stop_grace = grace;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    *serving = tu_serve_start(srv, 0.05);
    assert_non_null(*serving);
    return srv;
}

static void forked_setup(ss_request *req)
{
    if (ss_server_mode(ss_request_server(req)) == SS_MODE_FORKING && !ss_request_is_datagram(req))
        tu_close_inherited_client(ss_request_fd(req));
}

/* Say "hi", then answer lines until the end of input. */
static int idle_handle(ss_request *req)
{
    char line[128];
    ssize_t n;

    forked_setup(req);
    if (ss_write(req, "hi\n", 3) != 3)
        return SS_ERROR;
    for (;;) {
        n = ss_readline(req, line, sizeof line);
        if (n <= 0)
            return n == 0 ? SS_OK : SS_ERROR;
        if (ss_write(req, line, (size_t)n) != n)
            return SS_ERROR;
    }
}

static void expect_hi(int fd)
{
    char line[16];
    assert_int_equal(tu_recv_line(fd, line, sizeof line, TU_WAIT_MS), 3);
    assert_string_equal(line, "hi\n");
}

static void idle_clients_in(ss_mode mode)
{
    tu_serve *serving;
    ss_server *srv = start(mode, TU_TCP, idle_handle, -1, &serving);
    int nclients = mode == SS_MODE_SYNC ? 1 : IDLE_CLIENTS;
    int fds[IDLE_CLIENTS];

    for (int i = 0; i < nclients; i++) {
        fds[i] = tu_client(srv, NULL, 0);
        assert_true(fds[i] >= 0);
        expect_hi(fds[i]); /* its handler runs */
    }
    double t0 = tu_now();
    assert_int_equal(ss_server_stop(srv, SHORT_GRACE), 0);
    double took = tu_now() - t0;
    assert_true(took >= SHORT_GRACE - 0.01); /* the idle clients had their grace */
    assert_true(took < SHORT_GRACE + SLACK);
    for (int i = 0; i < nclients; i++) {
        assert_int_equal(tu_wait_eof(fds[i], TU_WAIT_MS), 0);
        close(fds[i]);
    }
    assert_int_equal(tu_serve_wait(serving, TU_WAIT_MS), 0);
    assert_int_equal(serving->rc, 0);
    assert_int_equal(ss_server_active(srv), 0);
    tu_server_free(srv);
}

static void test_idle_clients_sync(void **state)
{
    (void)state;
    idle_clients_in(SS_MODE_SYNC);
}

static void test_idle_clients_threading(void **state)
{
    (void)state;
    idle_clients_in(SS_MODE_THREADING);
}

static void test_idle_clients_forking(void **state)
{
    (void)state;
    idle_clients_in(SS_MODE_FORKING);
}

static void test_idle_clients_pool(void **state)
{
    (void)state;
    idle_clients_in(SS_MODE_POOL);
}

/* Say "hi", wait for input or the stop, then say what ended the wait. */
static int wait_handle(ss_request *req)
{
    char reply[64];
    char data[64];

    forked_setup(req);
    if (ss_request_is_datagram(req)) {
        (void)ss_read(req, data, sizeof data); /* the datagram is consumed */
        if (ss_reply(req, "hi\n", 3) != 3)
            return SS_ERROR;
    } else if (ss_write(req, "hi\n", 3) != 3) {
        return SS_ERROR;
    }
    double t0 = tu_now();
    int r = ss_request_wait(req, -1, POLLIN, LONG_GRACE);
    int err = errno;
    int n = snprintf(reply, sizeof reply, "r=%d %s stopping=%d %.1f\n", r,
                     r < 0 && err == ECANCELED ? "ECANCELED" : "other",
                     ss_server_stopping(ss_request_server(req)), tu_now() - t0);
    if (ss_request_is_datagram(req))
        return ss_reply(req, reply, (size_t)n) == n ? SS_OK : SS_ERROR;
    return ss_write(req, reply, (size_t)n) == n ? SS_OK : SS_ERROR;
}

static void request_wait_in(ss_mode mode, enum tu_kind kind)
{
    char path[TU_PATH_MAX];
    char line[64];
    tu_serve *serving;
    ss_server *srv = start(mode, kind, wait_handle, -1, &serving);
    bool dgram = tu_kind_is_datagram(kind);
    int fd = tu_client(srv, path, sizeof path);

    assert_true(fd >= 0);
    if (dgram) {
        assert_int_equal(tu_send_all(fd, "x", 1), 1);
        assert_int_equal(tu_recv_dgram(fd, line, sizeof line - 1, TU_WAIT_MS), 3);
    } else {
        expect_hi(fd);
    }
    double t0 = tu_now();
    assert_int_equal(ss_server_stop(srv, LONG_GRACE), 0);
    assert_true(tu_now() - t0 < SLACK); /* at once, not after the grace */
    ssize_t n = dgram ? tu_recv_dgram(fd, line, sizeof line - 1, TU_WAIT_MS)
                      : tu_recv_line(fd, line, sizeof line, TU_WAIT_MS);
    assert_true(n > 0);
    line[n] = '\0';
    /* The goodbye arrived: ECANCELED, and the server says it is stopping. */
    assert_non_null(strstr(line, "r=-1 ECANCELED stopping=1"));
    if (!dgram)
        assert_int_equal(tu_wait_eof(fd, TU_WAIT_MS), 0);
    assert_int_equal(tu_serve_wait(serving, TU_WAIT_MS), 0);
    close(fd);
    if (tu_kind_is_unix(kind) && path[0] != '\0')
        unlink(path);
    tu_server_free(srv);
}

static void test_request_wait_canceled(void **state)
{
    (void)state;
    for (size_t m = 0; m < sizeof all_modes / sizeof all_modes[0]; m++) {
        request_wait_in(all_modes[m], TU_TCP);
        request_wait_in(all_modes[m], TU_UDP);
    }
    request_wait_in(SS_MODE_THREADING, TU_UNIX_STREAM);
}

/* Busy: say "started", wait for a release byte, then read one more line
 * (a cut would show as the end of input) and answer it. */
static int busy_handle(ss_request *req)
{
    char line[64];
    char reply[96];

    forked_setup(req);
    if (ss_write(req, "started\n", 8) != 8)
        return SS_ERROR;
    if (tu_chan_get(&release, TU_WAIT_MS) < 0)
        return SS_ERROR;
    ssize_t n = ss_readline(req, line, sizeof line);
    int k = snprintf(reply, sizeof reply, "%s", n > 0 ? "served\n" : "cut\n");
    return ss_write(req, reply, (size_t)k) == k ? SS_OK : SS_ERROR;
}

struct stopper {
    ss_server *srv;
    double grace;
    int rc;
    double took;
};

static void *stop_thread(void *p)
{
    struct stopper *s = p;
    double t0 = tu_now();
    s->rc = ss_server_stop(s->srv, s->grace);
    s->took = tu_now() - t0;
    return NULL;
}

static void busy_in(ss_mode mode)
{
    char line[64];
    tu_serve *serving;
    ss_server *srv = start(mode, TU_TCP, busy_handle, -1, &serving);
    struct stopper s = {.srv = srv, .grace = LONG_GRACE, .rc = -2, .took = 0};
    pthread_t t;
    int sfd = ss_server_stop_fd(srv);
    int fd = tu_client(srv, NULL, 0);

    assert_true(sfd >= 0);
    assert_true(fd >= 0);
    assert_int_equal(tu_recv_line(fd, line, sizeof line, TU_WAIT_MS), 8);
    assert_int_equal(tu_wait_readable(sfd, 0), 0); /* not stopping yet */
    assert_false(ss_server_stopping(srv));
    assert_int_equal(pthread_create(&t, NULL, stop_thread, &s), 0);
    assert_int_equal(tu_wait_readable(sfd, TU_WAIT_MS), 1);
    assert_true(ss_server_stopping(srv));
    /* Within the grace the connection is served as before. */
    assert_int_equal(tu_send_all(fd, "more\n", 5), 5);
    tu_chan_put(&release, 'R');
    assert_int_equal(tu_recv_line(fd, line, sizeof line, TU_WAIT_MS), 7);
    assert_string_equal(line, "served\n");
    assert_int_equal(tu_wait_eof(fd, TU_WAIT_MS), 0);
    pthread_join(t, NULL);
    assert_int_equal(s.rc, 0);
    assert_true(s.took < LONG_GRACE / 2); /* ended with the request */
    assert_int_equal(tu_serve_wait(serving, TU_WAIT_MS), 0);
    close(fd);
    tu_server_free(srv);
}

static void test_busy_handler_not_cut(void **state)
{
    (void)state;
    assert_int_equal(tu_chan_open(&release), 0);
    for (size_t m = 0; m < sizeof all_modes / sizeof all_modes[0]; m++)
        busy_in(all_modes[m]);
    tu_chan_close(&release);
}

/* In a forked child: the inherited stop descriptor turns readable. */
static int child_stopfd_handle(ss_request *req)
{
    ss_server *srv = ss_request_server(req);
    struct pollfd p = {.fd = ss_server_stop_fd(srv), .events = POLLIN, .revents = 0};
    char reply[64];

    forked_setup(req);
    int before = poll(&p, 1, 0);
    if (ss_write(req, "hi\n", 3) != 3)
        return SS_ERROR;
    int after = poll(&p, 1, TU_WAIT_MS);
    int n = snprintf(reply, sizeof reply, "before=%d after=%d stopping=%d\n", before, after,
                     ss_server_stopping(srv));
    return ss_write(req, reply, (size_t)n) == n ? SS_OK : SS_ERROR;
}

static void test_forked_child_sees_stop_fd(void **state)
{
    (void)state;
    char line[64];
    tu_serve *serving;
    ss_server *srv = start(SS_MODE_FORKING, TU_TCP, child_stopfd_handle, -1, &serving);
    int fd = tu_client(srv, NULL, 0);

    assert_true(fd >= 0);
    expect_hi(fd);
    assert_int_equal(ss_server_stop(srv, LONG_GRACE), 0);
    assert_true(tu_recv_line(fd, line, sizeof line, TU_WAIT_MS) > 0);
    assert_string_equal(line, "before=0 after=1 stopping=1\n");
    assert_int_equal(tu_serve_wait(serving, TU_WAIT_MS), 0);
    close(fd);
    tu_server_free(srv);
}

static int hi_handle(ss_request *req)
{
    return ss_write(req, "hi\n", 3) == 3 ? SS_OK : SS_ERROR;
}

static void test_stop_arguments(void **state)
{
    (void)state;
    tu_serve *serving;
    ss_server *srv = start(SS_MODE_THREADING, TU_TCP, hi_handle, -1, &serving);

    errno = 0;
    assert_int_equal(ss_server_stop(NULL, 1), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(ss_server_stop(srv, -1), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(ss_server_stop_fd(NULL), -1);
    assert_false(ss_server_stopping(NULL));
    char reply[16];
    /* The loop runs (a stop before it starts is cleared when it does). */
    assert_int_equal(tu_roundtrip(srv, "x\n", reply, sizeof reply), 3);
    assert_int_equal(ss_server_stop(srv, 0), 0);
    assert_int_equal(tu_serve_wait(serving, TU_WAIT_MS), 0);
    /* Serving again clears the stop. */
    assert_true(ss_server_stopping(srv));
    serving = tu_serve_start(srv, 0.05);
    assert_non_null(serving);
    assert_int_equal(tu_roundtrip(srv, "x\n", reply, sizeof reply), 3); /* "hi\n" */
    assert_false(ss_server_stopping(srv));
    assert_int_equal(tu_serve_stop(serving), 0);
    tu_server_free(srv);

    ss_options opt;
    ss_options_init(&opt);
    assert_true(opt.stop_grace < 0);
    opt.stop_grace = 0.0 / 0.0;
    errno = 0;
    assert_null(ss_server_new(&opt, NULL));
    assert_int_equal(errno, EINVAL);
}

/* ---- stop signals -------------------------------------------------------- */

static void signal_grace_in(ss_mode mode)
{
    tu_serve *serving;
    ss_server *srv = start(mode, TU_TCP, idle_handle, LONG_GRACE, &serving);
    int fd = tu_client(srv, NULL, 0);

    assert_int_equal(ss_shutdown_on_signal(srv, SIGUSR1), 0);
    assert_true(fd >= 0);
    expect_hi(fd);
    /* First signal: stopping, the idle client keeps its grace. */
    assert_int_equal(kill(getpid(), SIGUSR1), 0);
    assert_int_equal(tu_wait_readable(ss_server_stop_fd(srv), TU_WAIT_MS), 1);
    assert_int_equal(tu_wait_readable(serving->done[0], TU_QUIET_MS), 0);
    assert_int_equal(tu_send_all(fd, "still\n", 6), 6);
    char line[16];
    assert_int_equal(tu_recv_line(fd, line, sizeof line, TU_WAIT_MS), 6);
    /* Second signal: cut at once. */
    double t0 = tu_now();
    assert_int_equal(kill(getpid(), SIGUSR1), 0);
    assert_int_equal(tu_wait_eof(fd, TU_WAIT_MS), 0);
    assert_int_equal(tu_serve_wait(serving, TU_WAIT_MS), 0);
    assert_true(tu_now() - t0 < SLACK);
    assert_int_equal(serving->rc, 0);
    close(fd);
    tu_server_free(srv); /* gives SIGUSR1 back its previous action */
}

static void test_signal_grace_and_second_signal(void **state)
{
    (void)state;
    assert_int_equal(tu_install_noop_handler(SIGUSR1), 0);
    for (size_t m = 0; m < sizeof all_modes / sizeof all_modes[0]; m++)
        signal_grace_in(all_modes[m]);
}

static atomic_int handler_tid;

static int tid_idle_handle(ss_request *req)
{
    atomic_store(&handler_tid, (int)gettid());
    return idle_handle(req);
}

/* Wait until thread tid of this process sleeps (state S in its stat): after
 * its "hi", the handler's next blocking call is the read. Nothing reports
 * that moment, so this polls, bounded. Returns 0 or -1. */
static int wait_sleeping(int tid)
{
    char path[64], stat[256];
    double end = tu_now() + TU_WAIT_MS / 1000.0;

    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    while (tu_now() < end) {
        FILE *f = fopen(path, "r");
        if (f == NULL)
            return -1;
        size_t n = fread(stat, 1, sizeof stat - 1, f);
        fclose(f);
        stat[n] = '\0';
        const char *paren = strrchr(stat, ')'); /* the name may hold spaces */
        if (paren != NULL && paren[1] == ' ' && paren[2] == 'S')
            return 0;
        usleep(1000);
    }
    return -1;
}

/* A sync handler blocked in a read, a stop signal sent to another thread
 * (this one): the loop thread's read must still be interrupted. */
static void sync_signal_elsewhere(double grace)
{
    tu_serve *serving;
    ss_server *srv = start(SS_MODE_SYNC, TU_TCP, tid_idle_handle, grace, &serving);
    int fd = tu_client(srv, NULL, 0);

    assert_int_equal(ss_shutdown_on_signal(srv, SIGUSR1), 0);
    assert_true(fd >= 0);
    expect_hi(fd);
    /* Blocked in the read already: a signal that came before it would be
     * caught by the check before the read, which is not what this tests. */
    assert_int_equal(wait_sleeping(atomic_load(&handler_tid)), 0);
    double t0 = tu_now();
    assert_int_equal(pthread_kill(pthread_self(), SIGUSR1), 0);
    assert_int_equal(tu_serve_wait(serving, TU_WAIT_MS), 0);
    assert_true(tu_now() - t0 < (grace > 0 ? grace : 0) + SLACK);
    assert_int_equal(tu_wait_eof(fd, TU_WAIT_MS), 0);
    close(fd);
    tu_server_free(srv);
}

static void test_sync_signal_to_another_thread(void **state)
{
    (void)state;
    assert_int_equal(tu_install_noop_handler(SIGUSR1), 0);
    sync_signal_elsewhere(-1);          /* no grace: EINTR ends the handler */
    sync_signal_elsewhere(SHORT_GRACE); /* a grace, then the cut */
}

/* ---- the stop-signal handler racing ss_server_free ---------------------- */

static atomic_int race_over;

static void *signal_spammer(void *arg)
{
    (void)arg;
    /* Bounded by the main thread's rounds, and by time. */
    double end = tu_now() + RACE_SECONDS;
    while (!atomic_load(&race_over) && tu_now() < end)
        pthread_kill(pthread_self(), SIGUSR2);
    return NULL;
}

static void test_signal_racing_free(void **state)
{
    (void)state;
    ss_options opt;
    pthread_t t;

    assert_int_equal(tu_install_noop_handler(SIGUSR2), 0);
    tu_options(&opt, TU_TCP, SS_MODE_SYNC, NULL, 0);
    atomic_store(&race_over, 0);
    assert_int_equal(pthread_create(&t, NULL, signal_spammer, NULL), 0);
    double end = tu_now() + RACE_SECONDS;
    for (int i = 0; i < RACE_ROUNDS / tu_scale_divisor() && tu_now() < end; i++) {
        ss_server *srv = ss_server_new(&opt, NULL);
        assert_non_null(srv);
        assert_int_equal(ss_shutdown_on_signal(srv, SIGUSR2), 0);
        ss_server_free(srv); /* the handler must never touch it after this */
    }
    atomic_store(&race_over, 1);
    pthread_join(t, NULL);
    signal(SIGUSR2, SIG_DFL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_idle_clients_sync),
        TU_TEST(test_idle_clients_threading),
        TU_TEST(test_idle_clients_forking),
        TU_TEST(test_idle_clients_pool),
        TU_TEST(test_request_wait_canceled),
        TU_TEST(test_busy_handler_not_cut),
        TU_TEST(test_forked_child_sees_stop_fd),
        TU_TEST(test_stop_arguments),
        TU_TEST(test_signal_grace_and_second_signal),
        TU_TEST(test_sync_signal_to_another_thread),
        TU_TEST(test_signal_racing_free),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
