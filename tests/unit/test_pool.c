/*
 * test_pool.c - pool mode: a fixed number of worker threads, a bounded
 * queue, and the two policies for a full queue: SS_POOL_WAIT (back-pressure,
 * every request served in the end) and SS_POOL_REJECT (the reject hook runs,
 * the request is dropped). server_close drains the queue with
 * block_on_close and drops it without.
 */
#include "testutil.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#define WORKERS 3
/* Clients in the back-pressure test: far more than workers + queue. */
#define WAIT_CLIENTS 10

static tu_chan events;
static tu_chan release;
static tu_chan closed;

static void open_chans(void)
{
    assert_int_equal(tu_chan_open(&events), 0);
    assert_int_equal(tu_chan_open(&release), 0);
    assert_int_equal(tu_chan_open(&closed), 0);
}

static void close_chans(void)
{
    tu_chan_close(&events);
    tu_chan_close(&release);
    tu_chan_close(&closed);
}

static int gated_handle(ss_request *req)
{
    tu_chan_put(&events, 'S');
    /* Longer than the test waits for anything, so a close that waits for
     * this handler is seen to wait. */
    tu_chan_get(&release, 2 * TU_WAIT_MS);
    return tu_echo_handle(req);
}

static void reject_hook(ss_request *req)
{
    tu_chan_put(&events, req != NULL ? 'R' : 'r');
}

static ss_server *new_pool(ss_socktype type, unsigned workers, unsigned queue, ss_pool_full full,
                           bool block_on_close)
{
    ss_options opt;
    ss_handler h = {.handle = gated_handle};

    ss_options_init(&opt);
    opt.mode = SS_MODE_POOL;
    opt.type = type;
    opt.pool_workers = workers;
    opt.pool_queue = queue;
    opt.pool_full = full;
    opt.block_on_close = block_on_close;
    opt.reject = reject_hook;
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

/* Waits until the server counts n requests in hand (queued or running). */
static unsigned wait_active(ss_server *srv, unsigned n)
{
    double deadline = tu_now() + TU_WAIT_MS / 1000.0;
    unsigned a = ss_server_active(srv);

    while (a != n && tu_now() < deadline) {
        poll(NULL, 0, 1); /* the count has no event to wait on */
        a = ss_server_active(srv);
    }
    return a;
}

static void expect_reply(int fd)
{
    char reply[64];

    assert_int_equal(tu_recv_line(fd, reply, sizeof(reply), TU_WAIT_MS), strlen(TU_TEST_STR));
    assert_string_equal(reply, TU_TEST_STR);
}

/* The workers exist from the start, and exactly that many requests run at
 * once; the rest wait in the queue. Threads are counted by id against a
 * snapshot taken first, so a thread of an earlier test that is still
 * leaving the task list cannot change the numbers. */
static void test_workers(void **state)
{
    ss_server *srv;
    tu_serve *serve;
    int fds[WORKERS + 1];
    tu_threads before;

    (void)state;
    open_chans();
    assert_int_equal(tu_threads_snapshot(&before), 0);
    srv = new_pool(SS_STREAM, WORKERS, 8, SS_POOL_WAIT, true);
    assert_non_null(srv);
    assert_int_equal(tu_wait_new_threads(&before, WORKERS, TU_WAIT_MS), WORKERS);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    for (int i = 0; i < WORKERS + 1; i++) {
        fds[i] = connect_and_send(srv);
        assert_true(fds[i] >= 0);
    }
    for (int i = 0; i < WORKERS; i++)
        assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'S');
    assert_int_equal(tu_chan_get(&events, TU_QUIET_MS), -1);
    assert_int_equal(wait_active(srv, WORKERS + 1), WORKERS + 1);
    /* No thread per request: the workers and the serving thread, no more. */
    assert_int_equal(tu_count_new_threads(&before), WORKERS + 1);
    for (int i = 0; i < WORKERS + 1; i++)
        assert_int_equal(tu_chan_put(&release, 'r'), 0);
    for (int i = 0; i < WORKERS + 1; i++) {
        expect_reply(fds[i]);
        close(fds[i]);
    }
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
    assert_int_equal(tu_wait_new_threads(&before, 0, TU_WAIT_MS), 0);
    close_chans();
}

/* SS_POOL_WAIT: with workers and queue full the server stops taking
 * requests; none is lost, all are served once workers free up. */
static void test_queue_full_wait(void **state)
{
    ss_server *srv;
    tu_serve *serve;
    int fds[WAIT_CLIENTS];

    (void)state;
    open_chans();
    srv = new_pool(SS_STREAM, 2, 2, SS_POOL_WAIT, true);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    for (int i = 0; i < WAIT_CLIENTS; i++) {
        fds[i] = connect_and_send(srv);
        assert_true(fds[i] >= 0);
    }
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'S');
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'S');
    assert_int_equal(tu_chan_get(&events, TU_QUIET_MS), -1);
    /* Two running, two queued, the rest still in the listen backlog. */
    assert_int_equal(wait_active(srv, 4), 4);
    for (int i = 0; i < WAIT_CLIENTS; i++)
        assert_int_equal(tu_chan_put(&release, 'r'), 0);
    for (int i = 0; i < WAIT_CLIENTS; i++) {
        expect_reply(fds[i]);
        close(fds[i]);
    }
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
    {
        char got[64];
        size_t n = tu_chan_drain(&events, got, sizeof(got));

        /* Every request ran its handler; none was rejected. */
        assert_int_equal(n, WAIT_CLIENTS - 2);
        assert_null(memchr(got, 'R', n));
    }
    close_chans();
}

/* SS_POOL_REJECT: a request that finds the queue full gets the reject hook
 * and is closed at once; the others are served. */
static void test_queue_full_reject(void **state)
{
    ss_server *srv;
    tu_serve *serve;
    int fds[3];

    (void)state;
    open_chans();
    srv = new_pool(SS_STREAM, 1, 1, SS_POOL_REJECT, true);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    fds[0] = connect_and_send(srv);
    assert_true(fds[0] >= 0);
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'S');
    fds[1] = connect_and_send(srv);
    assert_true(fds[1] >= 0);
    assert_int_equal(wait_active(srv, 2), 2);
    fds[2] = connect_and_send(srv);
    assert_true(fds[2] >= 0);
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'R');
    assert_int_equal(tu_wait_eof(fds[2], TU_WAIT_MS), 0);
    close(fds[2]);
    assert_int_equal(tu_chan_put(&release, 'r'), 0);
    assert_int_equal(tu_chan_put(&release, 'r'), 0);
    expect_reply(fds[0]);
    expect_reply(fds[1]);
    close(fds[0]);
    close(fds[1]);
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'S');
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
    close_chans();
}

/* The same for datagrams: the third is discarded after the reject hook. */
static void test_queue_full_reject_datagram(void **state)
{
    ss_server *srv;
    tu_serve *serve;
    char reply[64];
    int fd;

    (void)state;
    open_chans();
    srv = new_pool(SS_DATAGRAM, 1, 1, SS_POOL_REJECT, true);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(send(fd, "one\n", 4, 0), 4);
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'S');
    assert_int_equal(send(fd, "two\n", 4, 0), 4);
    assert_int_equal(wait_active(srv, 2), 2);
    assert_int_equal(send(fd, "three\n", 6, 0), 6);
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'R');
    assert_int_equal(tu_chan_put(&release, 'r'), 0);
    assert_int_equal(tu_chan_put(&release, 'r'), 0);
    assert_int_equal(tu_recv_dgram(fd, reply, sizeof(reply), TU_WAIT_MS), 4);
    assert_memory_equal(reply, "one\n", 4);
    assert_int_equal(tu_recv_dgram(fd, reply, sizeof(reply), TU_WAIT_MS), 4);
    assert_memory_equal(reply, "two\n", 4);
    close(fd);
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
    close_chans();
}

static ss_server *closing;

static void *closer_main(void *arg)
{
    (void)arg;
    ss_server_close(closing);
    tu_chan_put(&closed, 'C');
    return NULL;
}

/* block_on_close: close finishes the queued requests too. */
static void test_close_drains_queue(void **state)
{
    ss_server *srv;
    tu_serve *serve;
    pthread_t closer;
    int fds[3], early, done;

    (void)state;
    open_chans();
    srv = new_pool(SS_STREAM, 1, 4, SS_POOL_WAIT, true);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    for (int i = 0; i < 3; i++) {
        fds[i] = connect_and_send(srv);
        assert_true(fds[i] >= 0);
    }
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'S');
    assert_int_equal(wait_active(srv, 3), 3);
    assert_int_equal(tu_serve_stop(serve), 0);
    closing = srv;
    assert_int_equal(pthread_create(&closer, NULL, closer_main, NULL), 0);
    /* Results are checked once the closing thread is joined, so that a
     * failure does not leave it running against a freed server. */
    early = tu_chan_get(&closed, TU_QUIET_MS);
    for (int i = 0; i < 3; i++)
        tu_chan_put(&release, 'r');
    done = early == 'C' ? early : tu_chan_get(&closed, 3 * TU_WAIT_MS);
    pthread_join(closer, NULL);
    assert_int_equal(early, -1);
    assert_int_equal(done, 'C');
    assert_int_equal(ss_server_active(srv), 0);
    for (int i = 0; i < 3; i++) {
        expect_reply(fds[i]);
        close(fds[i]);
    }
    tu_server_free(srv);
    close_chans();
}

/* Without block_on_close, close drops the queued requests (their clients
 * see the connection closed) and does not wait for the running one. */
static void test_close_drops_queue(void **state)
{
    ss_server *srv;
    tu_serve *serve;
    pthread_t closer;
    int fds[3], eof[3] = {0, -1, -1}, early;
    char got[16];

    (void)state;
    open_chans();
    srv = new_pool(SS_STREAM, 1, 4, SS_POOL_WAIT, false);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    for (int i = 0; i < 3; i++) {
        fds[i] = connect_and_send(srv);
        assert_true(fds[i] >= 0);
    }
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'S');
    assert_int_equal(wait_active(srv, 3), 3);
    assert_int_equal(tu_serve_stop(serve), 0);
    closing = srv;
    assert_int_equal(pthread_create(&closer, NULL, closer_main, NULL), 0);
    /* Results are checked once the closing thread is joined, so that a
     * failure does not leave it running against a freed server. */
    early = tu_chan_get(&closed, TU_WAIT_MS);
    for (int i = 1; i < 3; i++)
        eof[i] = early == 'C' ? tu_wait_eof(fds[i], TU_WAIT_MS) : -1;
    for (int i = 0; i < 3; i++)
        tu_chan_put(&release, 'r');
    if (early != 'C')
        tu_chan_get(&closed, 3 * TU_WAIT_MS);
    pthread_join(closer, NULL);
    assert_int_equal(early, 'C');
    for (int i = 1; i < 3; i++) {
        assert_int_equal(eof[i], 0);
        close(fds[i]);
    }
    expect_reply(fds[0]);
    close(fds[0]);
    tu_server_free(srv);
    /* The dropped requests never reached a handler. */
    assert_int_equal(tu_chan_drain(&events, got, sizeof(got)), 0);
    close_chans();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_workers),
        TU_TEST(test_queue_full_wait),
        TU_TEST(test_queue_full_reject),
        TU_TEST(test_queue_full_reject_datagram),
        TU_TEST(test_close_drains_queue),
        TU_TEST(test_close_drops_queue),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
