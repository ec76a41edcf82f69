/*
 * test_forking.c - forking mode: children the server did not start are left
 * to their parent (even when max_children makes the server wait), at most
 * max_children run at once, server_close waits for children with
 * block_on_close and does not without it, and a child that crashes does not
 * hurt the server.
 *
 * Children report through pipes and a shared anonymous mapping; the handlers
 * stay simple (no locks, no allocation) since they run in a forked copy of
 * a threaded process.
 */
#include "testutil.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define FOREIGN_STATUS 72
/* Clients in the max_children test, and the limit they run into. */
#define CAP_CLIENTS 5
#define CAP_CHILDREN 2
/* Children whose pids the close tests record. */
#define MAX_PIDS 16

struct shared {
    long active;
    long max_active;
    long npids;
    pid_t pids[MAX_PIDS];
};

static struct shared *shm;
static tu_chan events;
static tu_chan release;

static void open_all(void)
{
    shm = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(shm != MAP_FAILED);
    memset(shm, 0, sizeof(*shm));
    assert_int_equal(tu_chan_open(&events), 0);
    assert_int_equal(tu_chan_open(&release), 0);
}

static void close_all(void)
{
    munmap(shm, sizeof(*shm));
    shm = NULL;
    tu_chan_close(&events);
    tu_chan_close(&release);
}

/* Counts itself in, records its pid, says it started, waits for a release
 * byte, counts itself out, then echoes. */
static int gated_handle(ss_request *req)
{
    long now = __atomic_add_fetch(&shm->active, 1, __ATOMIC_SEQ_CST);
    long max = __atomic_load_n(&shm->max_active, __ATOMIC_SEQ_CST);
    long slot = __atomic_fetch_add(&shm->npids, 1, __ATOMIC_SEQ_CST);

    while (now > max && !__atomic_compare_exchange_n(&shm->max_active, &max, now, false,
                                                     __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    }
    if (slot < MAX_PIDS)
        shm->pids[slot] = getpid();
    tu_chan_put(&events, 'S');
    tu_chan_get(&release, TU_WAIT_MS);
    __atomic_sub_fetch(&shm->active, 1, __ATOMIC_SEQ_CST);
    return tu_echo_handle(req);
}

static ss_server *new_forking(int (*handle)(ss_request *), unsigned max_children,
                              bool block_on_close)
{
    ss_options opt;
    ss_handler h = {.handle = handle};

    ss_options_init(&opt);
    opt.mode = SS_MODE_FORKING;
    if (max_children > 0)
        opt.max_children = max_children;
    opt.block_on_close = block_on_close;
    return tu_server_new(&opt, &h);
}

static int connect_and_send(ss_server *srv)
{
    int fd = tu_client(srv, NULL, 0);

    if (fd >= 0 && tu_send_all(fd, TU_TEST_STR, strlen(TU_TEST_STR)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- foreign children ---------------------------------------------------- */

static pid_t fork_foreign(void)
{
    pid_t pid = fork();

    if (pid == 0) {
        /* Lives until told to go, so it is surely a child while the
         * server runs, then leaves a zombie for its parent. */
        tu_chan_get(&release, TU_WAIT_MS);
        _exit(FOREIGN_STATUS);
    }
    return pid;
}

/* Waits until pid has exited, without reaping it. */
static int wait_exited_unreaped(pid_t pid)
{
    siginfo_t si;

    memset(&si, 0, sizeof(si));
    return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT);
}

static void check_foreign_reaped_by_us(pid_t pid)
{
    int status = 0;

    assert_int_equal(waitpid(pid, &status, WNOHANG), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), FOREIGN_STATUS);
}

/* The server reaps its own children each turn; a zombie of the test's own
 * stays the test's (CPython issue 1540386). */
static void test_foreign_child_not_reaped(void **state)
{
    ss_server *srv;
    tu_serve *serve;
    pid_t foreign;

    (void)state;
    open_all();
    srv = new_forking(tu_echo_handle, 0, true);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    foreign = fork_foreign();
    assert_true(foreign > 0);
    assert_int_equal(tu_chan_put(&release, 'r'), 0);
    assert_int_equal(wait_exited_unreaped(foreign), 0);
    /* Requests, each a child to reap, and many idle turns of the loop. */
    for (int i = 0; i < 10; i++) {
        char reply[64];

        assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply)), strlen(TU_TEST_STR));
    }
    assert_int_equal(ss_server_drain(srv, TU_WAIT_MS / 1000.0), 0);
    assert_int_equal(tu_serve_stop(serve), 0);
    ss_server_close(srv);
    tu_server_free(srv);
    check_foreign_reaped_by_us(foreign);
    close_all();
}

/* Even when the server must wait for a child to exit (max_children reached),
 * it waits for its own, never for any child (Python's waitpid(-1) would). */
static void test_foreign_child_not_reaped_at_cap(void **state)
{
    ss_server *srv;
    tu_serve *serve;
    pid_t foreign;
    int fds[3];

    (void)state;
    open_all();
    foreign = fork_foreign();
    assert_true(foreign > 0);
    assert_int_equal(tu_chan_put(&release, 'r'), 0);
    assert_int_equal(wait_exited_unreaped(foreign), 0);

    srv = new_forking(gated_handle, 1, true);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    for (int i = 0; i < 3; i++) {
        fds[i] = connect_and_send(srv);
        assert_true(fds[i] >= 0);
    }
    for (int i = 0; i < 3; i++) {
        char reply[64];

        assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'S');
        assert_int_equal(tu_chan_put(&release, 'r'), 0);
        assert_int_equal(tu_recv_line(fds[i], reply, sizeof(reply), TU_WAIT_MS),
                         strlen(TU_TEST_STR));
        close(fds[i]);
    }
    assert_int_equal(tu_serve_stop(serve), 0);
    ss_server_close(srv);
    tu_server_free(srv);
    check_foreign_reaped_by_us(foreign);
    assert_true(shm->max_active <= 1);
    close_all();
}

/* ---- max_children -------------------------------------------------------- */

static void test_max_children(void **state)
{
    ss_server *srv;
    tu_serve *serve;
    int fds[CAP_CLIENTS];

    (void)state;
    open_all();
    srv = new_forking(gated_handle, CAP_CHILDREN, true);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    for (int i = 0; i < CAP_CLIENTS; i++) {
        fds[i] = connect_and_send(srv);
        assert_true(fds[i] >= 0);
    }
    for (int i = 0; i < CAP_CHILDREN; i++)
        assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'S');
    /* The cap is reached: no further child starts. */
    assert_int_equal(tu_chan_get(&events, TU_QUIET_MS), -1);
    assert_int_equal(ss_server_active(srv), CAP_CHILDREN);
    for (int i = 0; i < CAP_CLIENTS; i++)
        assert_int_equal(tu_chan_put(&release, 'r'), 0);
    for (int i = 0; i < CAP_CLIENTS; i++) {
        char reply[64];

        assert_int_equal(tu_recv_line(fds[i], reply, sizeof(reply), TU_WAIT_MS),
                         strlen(TU_TEST_STR));
        close(fds[i]);
    }
    assert_int_equal(tu_serve_stop(serve), 0);
    ss_server_close(srv);
    assert_int_equal(shm->max_active, CAP_CHILDREN);
    tu_server_free(srv);
    close_all();
}

/* ---- close and children -------------------------------------------------- */

static bool reaped(pid_t pid)
{
    /* A zombie still exists for kill(); a reaped child does not. */
    return kill(pid, 0) == -1 && errno == ESRCH;
}

/* bpo-31151: with block_on_close, server_close waits for the children and
 * reaps them; none is left. */
static void test_close_waits_for_children(void **state)
{
    ss_server *srv;
    tu_serve *serve;
    int fds[3];

    (void)state;
    open_all();
    srv = new_forking(gated_handle, 0, true);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    for (int i = 0; i < 3; i++) {
        fds[i] = connect_and_send(srv);
        assert_true(fds[i] >= 0);
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'S');
    assert_int_equal(tu_serve_stop(serve), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tu_chan_put(&release, 'r'), 0);
    ss_server_close(srv);
    assert_int_equal(ss_server_active(srv), 0);
    assert_int_equal(shm->npids, 3);
    for (int i = 0; i < 3; i++)
        assert_true(reaped(shm->pids[i]));
    /* The children finished their requests before close returned. */
    for (int i = 0; i < 3; i++) {
        char reply[64];

        assert_int_equal(tu_recv_line(fds[i], reply, sizeof(reply), TU_WAIT_MS),
                         strlen(TU_TEST_STR));
        close(fds[i]);
    }
    tu_server_free(srv);
    close_all();
}

/* Without block_on_close, close returns while a child still runs. */
static void test_close_no_block(void **state)
{
    ss_server *srv;
    tu_serve *serve;
    double t0;
    pid_t child;
    int fd, status = 0;
    char reply[64];

    (void)state;
    open_all();
    srv = new_forking(gated_handle, 0, false);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    fd = connect_and_send(srv);
    assert_true(fd >= 0);
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'S');
    assert_int_equal(tu_serve_stop(serve), 0);
    t0 = tu_now();
    ss_server_close(srv);
    assert_true(tu_now() - t0 < tu_limit(1.0));
    child = shm->pids[0];
    assert_int_equal(kill(child, 0), 0);
    assert_int_equal(tu_chan_put(&release, 'r'), 0);
    assert_int_equal(tu_recv_line(fd, reply, sizeof(reply), TU_WAIT_MS), strlen(TU_TEST_STR));
    close(fd);
    tu_server_free(srv);
    /* The child was still running at close: it was not reaped then; if
     * ss_server_free reaped it, it is gone, otherwise it is ours to reap. */
    if (!reaped(child))
        assert_int_equal(waitpid(child, &status, 0), child);
    close_all();
}

/* ---- crashing children --------------------------------------------------- */

static int crashing_handle(ss_request *req)
{
    char line[64];
    ssize_t n = ss_readline(req, line, sizeof(line));

    if (n > 0 && strcmp(line, "crash\n") == 0) {
        struct rlimit none = {0, 0};

        /* No core file from the crash on purpose. */
        setrlimit(RLIMIT_CORE, &none);
        abort();
    }
    if (n < 0 || ss_write(req, line, (size_t)n) != n)
        return SS_ERROR;
    return SS_OK;
}

static void test_crashing_child(void **state)
{
    ss_server *srv;
    tu_serve *serve;
    char reply[64];

    (void)state;
    srv = new_forking(crashing_handle, 0, true);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    for (int i = 0; i < 3; i++) {
        int fd = tu_client(srv, NULL, 0);

        assert_true(fd >= 0);
        assert_int_equal(tu_send_all(fd, "crash\n", 6), 6);
        assert_int_equal(tu_wait_eof(fd, TU_WAIT_MS), 0);
        close(fd);
        assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply)), strlen(TU_TEST_STR));
    }
    assert_int_equal(ss_server_drain(srv, TU_WAIT_MS / 1000.0), 0);
    assert_int_equal(ss_server_active(srv), 0);
    assert_int_equal(tu_serve_stop(serve), 0);
    assert_int_equal(serve->rc, 0);
    tu_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_foreign_child_not_reaped),
        TU_TEST(test_foreign_child_not_reaped_at_cap),
        TU_TEST(test_max_children),
        TU_TEST(test_close_waits_for_children),
        TU_TEST(test_close_no_block),
        TU_TEST(test_crashing_child),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
