/*
 * test_threading.c - threading mode: a thread per request (many at once),
 * server_close waits for running handlers with block_on_close and not for
 * daemon threads, finished threads are reaped (CPython test_threads_reaped,
 * bpo-37193), and thread_stack_size is applied.
 */
#include "testutil.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* Requests at once in the concurrency test. */
#define CONCURRENT 20
/* Sequential requests in the reaping test. */
#define SEQUENTIAL 200

static tu_chan events;
static tu_chan release;
static tu_chan closed;
static long handlers_done;

static void open_chans(void)
{
    assert_int_equal(tu_chan_open(&events), 0);
    assert_int_equal(tu_chan_open(&release), 0);
    assert_int_equal(tu_chan_open(&closed), 0);
    handlers_done = 0;
}

static void close_chans(void)
{
    tu_chan_close(&events);
    tu_chan_close(&release);
    tu_chan_close(&closed);
}

static int gated_handle(ss_request *req)
{
    int rc;

    tu_chan_put(&events, 'S');
    /* Longer than the test waits for anything, so a close that waits for
     * this handler is seen to wait. */
    tu_chan_get(&release, 2 * TU_WAIT_MS);
    rc = tu_echo_handle(req);
    __atomic_add_fetch(&handlers_done, 1, __ATOMIC_SEQ_CST);
    return rc;
}

static ss_server *new_threading(bool daemon, bool block_on_close)
{
    ss_options opt;
    ss_handler h = {.handle = gated_handle};

    ss_options_init(&opt);
    opt.mode = SS_MODE_THREADING;
    opt.daemon_threads = daemon;
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

static void *closer_main(void *arg)
{
    ss_server_close(arg);
    tu_chan_put(&closed, 'C');
    return NULL;
}

/* A thread per request: all of them run at the same time. */
static void test_concurrent_requests(void **state)
{
    ss_server *srv;
    tu_serve *serve;
    int fds[CONCURRENT];

    (void)state;
    open_chans();
    srv = new_threading(false, true);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    for (int i = 0; i < CONCURRENT; i++) {
        fds[i] = connect_and_send(srv);
        assert_true(fds[i] >= 0);
    }
    for (int i = 0; i < CONCURRENT; i++)
        assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'S');
    assert_int_equal(ss_server_active(srv), CONCURRENT);
    for (int i = 0; i < CONCURRENT; i++)
        assert_int_equal(tu_chan_put(&release, 'r'), 0);
    for (int i = 0; i < CONCURRENT; i++) {
        char reply[64];

        assert_int_equal(tu_recv_line(fds[i], reply, sizeof(reply), TU_WAIT_MS),
                         strlen(TU_TEST_STR));
        close(fds[i]);
    }
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
    close_chans();
}

/* block_on_close: server_close returns only after the handler finished. */
static void test_close_waits_for_handler(void **state)
{
    ss_server *srv;
    tu_serve *serve;
    pthread_t closer;
    char reply[64];
    int fd, early, done;

    (void)state;
    open_chans();
    srv = new_threading(false, true);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    fd = connect_and_send(srv);
    assert_true(fd >= 0);
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'S');
    assert_int_equal(tu_serve_stop(serve), 0);
    assert_int_equal(pthread_create(&closer, NULL, closer_main, srv), 0);
    /* The handler still runs: close is waiting for it. Results are checked
     * once the closing thread is joined, so that a failure does not leave
     * it running against a freed server. */
    early = tu_chan_get(&closed, TU_QUIET_MS);
    tu_chan_put(&release, 'r');
    done = early == 'C' ? early : tu_chan_get(&closed, TU_WAIT_MS);
    pthread_join(closer, NULL);
    assert_int_equal(early, -1);
    assert_int_equal(done, 'C');
    assert_int_equal(__atomic_load_n(&handlers_done, __ATOMIC_SEQ_CST), 1);
    assert_int_equal(ss_server_active(srv), 0);
    assert_int_equal(tu_recv_line(fd, reply, sizeof(reply), TU_WAIT_MS), strlen(TU_TEST_STR));
    close(fd);
    tu_server_free(srv);
    close_chans();
}

/* daemon_threads (or no block_on_close): close does not wait; the handler
 * finishes its request afterwards, and free waits for it. */
static void run_close_no_wait(bool daemon, bool block_on_close)
{
    ss_server *srv;
    tu_serve *serve;
    pthread_t closer;
    char reply[64];
    int fd, early;
    long done_at_close;

    open_chans();
    srv = new_threading(daemon, block_on_close);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    fd = connect_and_send(srv);
    assert_true(fd >= 0);
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'S');
    assert_int_equal(tu_serve_stop(serve), 0);
    assert_int_equal(pthread_create(&closer, NULL, closer_main, srv), 0);
    early = tu_chan_get(&closed, TU_WAIT_MS);
    done_at_close = __atomic_load_n(&handlers_done, __ATOMIC_SEQ_CST);
    if (early != 'C') {
        tu_chan_put(&release, 'r');
        tu_chan_get(&closed, 3 * TU_WAIT_MS);
    }
    pthread_join(closer, NULL);
    assert_int_equal(early, 'C');
    assert_int_equal(done_at_close, 0);
    assert_int_equal(ss_server_fileno(srv), -1);
    assert_int_equal(tu_chan_put(&release, 'r'), 0);
    assert_int_equal(tu_recv_line(fd, reply, sizeof(reply), TU_WAIT_MS), strlen(TU_TEST_STR));
    close(fd);
    tu_server_free(srv);
    close_chans();
}

static void test_close_daemon_threads(void **state)
{
    (void)state;
    run_close_no_wait(true, true);
}

static void test_close_no_block_on_close(void **state)
{
    (void)state;
    run_close_no_wait(false, false);
}

/* ss_server_free right after close with a daemon thread still running: the
 * free waits for it instead of pulling the server from under it. */
static void test_free_waits_for_daemon(void **state)
{
    ss_server *srv;
    tu_serve *serve;
    char reply[64];
    int fd;

    (void)state;
    open_chans();
    srv = new_threading(true, true);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    fd = connect_and_send(srv);
    assert_true(fd >= 0);
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'S');
    assert_int_equal(tu_serve_stop(serve), 0);
    assert_int_equal(tu_chan_put(&release, 'r'), 0);
    tu_server_free(srv);
    assert_int_equal(__atomic_load_n(&handlers_done, __ATOMIC_SEQ_CST), 1);
    assert_int_equal(tu_recv_line(fd, reply, sizeof(reply), TU_WAIT_MS), strlen(TU_TEST_STR));
    close(fd);
    close_chans();
}

/* CPython test_threads_reaped: finished request threads do not pile up. */
static void run_threads_reaped(bool daemon)
{
    ss_options opt;
    ss_handler h = {.handle = tu_echo_handle};
    ss_server *srv;
    tu_serve *serve;
    int base, before;
    char reply[64];

    before = tu_count_threads();
    ss_options_init(&opt);
    opt.mode = SS_MODE_THREADING;
    opt.daemon_threads = daemon;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply)), strlen(TU_TEST_STR));
    assert_int_equal(ss_server_drain(srv, TU_WAIT_MS / 1000.0), 0);
    base = before + 1; /* the serving thread */
    assert_true(tu_wait_threads_at_most(base, TU_WAIT_MS) <= base);
    for (int i = 0; i < SEQUENTIAL; i++) {
        assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply)), strlen(TU_TEST_STR));
    }
    assert_int_equal(ss_server_drain(srv, TU_WAIT_MS / 1000.0), 0);
    assert_true(tu_wait_threads_at_most(base, TU_WAIT_MS) <= base);
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
    assert_true(tu_wait_threads_at_most(before, TU_WAIT_MS) <= before);
}

static void test_threads_reaped(void **state)
{
    (void)state;
    run_threads_reaped(false);
}

static void test_threads_reaped_daemon(void **state)
{
    (void)state;
    run_threads_reaped(true);
}

static size_t stack_seen;

static int stack_handle(ss_request *req)
{
    pthread_attr_t attr;
    size_t size = 0;

    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstacksize(&attr, &size);
        pthread_attr_destroy(&attr);
    }
    __atomic_store_n(&stack_seen, size, __ATOMIC_SEQ_CST);
    return tu_echo_handle(req);
}

static void run_stack_size(ss_mode mode, size_t requested, size_t want)
{
    ss_options opt;
    ss_handler h = {.handle = stack_handle};
    ss_server *srv;
    tu_serve *serve;
    char reply[64];
    size_t seen;

    stack_seen = 0;
    ss_options_init(&opt);
    opt.mode = mode;
    opt.thread_stack_size = requested;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply)), strlen(TU_TEST_STR));
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
    seen = __atomic_load_n(&stack_seen, __ATOMIC_SEQ_CST);
    /* Only a lower bound: the C library reuses cached stacks that are
     * somewhat larger than asked for. */
    assert_true(seen >= want);
}

static void test_thread_stack_size(void **state)
{
    (void)state;
    run_stack_size(SS_MODE_THREADING, 0, 512 * 1024);
    run_stack_size(SS_MODE_THREADING, 256 * 1024, 256 * 1024);
    run_stack_size(SS_MODE_POOL, 0, 512 * 1024);
    run_stack_size(SS_MODE_POOL, 1024 * 1024, 1024 * 1024);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_concurrent_requests),   TU_TEST(test_close_waits_for_handler),
        TU_TEST(test_close_daemon_threads),  TU_TEST(test_close_no_block_on_close),
        TU_TEST(test_free_waits_for_daemon), TU_TEST(test_threads_reaped),
        TU_TEST(test_threads_reaped_daemon), TU_TEST(test_thread_stack_size),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
