/*
 * test_accept.c - who accepts a stream connection. Under ss_serve_forever a
 * pool worker or a threading spare accepts and serves the connection itself
 * (verify_request and the handler run in the same thread, not the serving
 * one), a finished threading thread takes the next connection instead of a
 * new thread being made, a hook that stops the server from such a thread
 * does not deadlock, and a stopped server takes nothing: a connection made
 * meanwhile waits in the backlog for the next ss_serve_forever. Under
 * ss_handle_request the serving thread accepts, as before.
 */
#include "testutil.h"

#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Sequential requests in the reuse test, and the most threads they may
 * take: three spares (the one serving starts a new one when fewer than two
 * others wait), and one more when a thread comes back late. A thread per
 * request would take SEQUENTIAL. */
#define SEQUENTIAL 20
#define REUSE_MAX_THREADS 4

static pid_t verify_tid, handle_tid;
static pid_t handle_tids[SEQUENTIAL];
static int nhandled;
static ss_server *stopping_srv;

static pid_t gettid_now(void)
{
    return (pid_t)syscall(SYS_gettid);
}

static bool recording_verify(ss_request *req)
{
    (void)req;
    __atomic_store_n(&verify_tid, gettid_now(), __ATOMIC_SEQ_CST);
    return true;
}

static int recording_handle(ss_request *req)
{
    pid_t t = gettid_now();
    int i = __atomic_fetch_add(&nhandled, 1, __ATOMIC_SEQ_CST);

    __atomic_store_n(&handle_tid, t, __ATOMIC_SEQ_CST);
    if (i < SEQUENTIAL)
        handle_tids[i] = t;
    return tu_echo_handle(req);
}

static pid_t serve_tid;

static void record_loop(ss_server *srv)
{
    (void)srv;
    __atomic_store_n(&serve_tid, gettid_now(), __ATOMIC_SEQ_CST);
}

static ss_server *new_server(ss_mode mode)
{
    ss_options opt;
    ss_handler h = {.handle = recording_handle};

    ss_options_init(&opt);
    opt.mode = mode;
    opt.verify_request = recording_verify;
    opt.service_actions = record_loop; /* runs in the serving thread */
    verify_tid = handle_tid = serve_tid = 0;
    nhandled = 0;
    return tu_server_new(&opt, &h);
}

/* The thread that accepted runs verify_request and the handler: no
 * hand-off, and not the serving thread. */
static void run_accepting_thread_serves(ss_mode mode)
{
    ss_server *srv = new_server(mode);
    tu_serve *serve;
    char reply[64];

    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply)), strlen(TU_TEST_STR));
    assert_int_equal(tu_serve_stop(serve), 0);
    assert_int_not_equal(serve_tid, 0);
    assert_int_not_equal(verify_tid, 0);
    assert_int_equal(verify_tid, handle_tid);
    assert_int_not_equal(verify_tid, serve_tid);
    tu_server_free(srv);
}

static void test_pool_worker_accepts(void **state)
{
    (void)state;
    run_accepting_thread_serves(SS_MODE_POOL);
}

static void test_threading_spare_accepts(void **state)
{
    (void)state;
    run_accepting_thread_serves(SS_MODE_THREADING);
}

/* ss_handle_request keeps the serving thread accepting. */
static void test_handle_request_accepts_in_caller(void **state)
{
    static const ss_mode modes[] = {SS_MODE_POOL, SS_MODE_THREADING};

    (void)state;
    for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        ss_server *srv = new_server(modes[m]);
        char reply[64];
        int fd;

        assert_non_null(srv);
        fd = tu_client(srv, NULL, 0);
        assert_true(fd >= 0);
        assert_int_equal(tu_send_all(fd, TU_TEST_STR, strlen(TU_TEST_STR)), strlen(TU_TEST_STR));
        assert_int_equal(ss_handle_request(srv), 1);
        assert_int_equal(tu_recv_line(fd, reply, sizeof(reply), TU_WAIT_MS), strlen(TU_TEST_STR));
        close(fd);
        assert_int_equal(verify_tid, gettid_now());
        assert_int_equal(ss_server_drain(srv, TU_WAIT_MS / 1000.0), 0);
        tu_server_free(srv);
    }
}

/* Threading: sequential requests are served by a thread or two that come
 * back for the next connection, not by a new thread each. */
static void test_threading_threads_reused(void **state)
{
    ss_server *srv = new_server(SS_MODE_THREADING);
    tu_serve *serve;
    char reply[64];
    int distinct = 0;

    (void)state;
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    for (int i = 0; i < SEQUENTIAL; i++)
        assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply)), strlen(TU_TEST_STR));
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
    for (int i = 0; i < SEQUENTIAL; i++) {
        bool seen = false;

        for (int j = 0; j < i; j++)
            seen = seen || handle_tids[j] == handle_tids[i];
        distinct += seen ? 0 : 1;
    }
    print_message("%d requests in %d threads\n", SEQUENTIAL, distinct);
    assert_true(distinct <= REUSE_MAX_THREADS);
}

static bool stopping_verify(ss_request *req)
{
    (void)req;
    ss_shutdown(stopping_srv); /* waits for the loop: it must not wait for us */
    return false;
}

/* A hook run by an accepting thread may stop the server and wait for it. */
static void run_shutdown_in_verify(ss_mode mode)
{
    ss_options opt;
    ss_handler h = {.handle = tu_echo_handle};
    ss_server *srv;
    tu_serve *serve;
    int fd;

    ss_options_init(&opt);
    opt.mode = mode;
    opt.verify_request = stopping_verify;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    stopping_srv = srv;
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(tu_wait_eof(fd, TU_WAIT_MS), 0);
    close(fd);
    assert_int_equal(tu_serve_wait(serve, TU_WAIT_MS), 0);
    assert_int_equal(serve->rc, 0);
    tu_server_free(srv);
}

static void test_shutdown_in_verify_pool(void **state)
{
    (void)state;
    run_shutdown_in_verify(SS_MODE_POOL);
}

static void test_shutdown_in_verify_threading(void **state)
{
    (void)state;
    run_shutdown_in_verify(SS_MODE_THREADING);
}

/* A stopped server's threads accept nothing; the next ss_serve_forever
 * serves what waited in the backlog. */
static void run_serve_again(ss_mode mode)
{
    ss_server *srv = new_server(mode);
    tu_serve *serve;
    char reply[64];
    int fd;

    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply)), strlen(TU_TEST_STR));
    assert_int_equal(tu_serve_stop(serve), 0);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(tu_send_all(fd, TU_TEST_STR, strlen(TU_TEST_STR)), strlen(TU_TEST_STR));
    assert_int_equal(tu_wait_readable(fd, TU_QUIET_MS), 0);
    assert_int_equal(__atomic_load_n(&nhandled, __ATOMIC_SEQ_CST), 1);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    assert_int_equal(tu_recv_line(fd, reply, sizeof(reply), TU_WAIT_MS), strlen(TU_TEST_STR));
    close(fd);
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
}

static void test_serve_again_pool(void **state)
{
    (void)state;
    run_serve_again(SS_MODE_POOL);
}

static void test_serve_again_threading(void **state)
{
    (void)state;
    run_serve_again(SS_MODE_THREADING);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_pool_worker_accepts),
        TU_TEST(test_threading_spare_accepts),
        TU_TEST(test_handle_request_accepts_in_caller),
        TU_TEST(test_threading_threads_reused),
        TU_TEST(test_shutdown_in_verify_pool),
        TU_TEST(test_shutdown_in_verify_threading),
        TU_TEST(test_serve_again_pool),
        TU_TEST(test_serve_again_threading),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
