/*
 * test_batch.c - datagrams in batches (opt.batch > 1: recvmmsg, and in sync
 * and pool mode one sendmmsg for a batch's replies): every mode, replies to
 * the right peers, empty and oversize datagrams, a stop in the middle of a
 * batch, the connection limits, ss_handle_request, a reply that cannot be
 * sent in the middle of a batch (a partial sendmmsg), a peer whose queue is
 * full (EAGAIN) and a bounce (ECONNREFUSED) reported before a batch.
 * Datagrams are sent before the server serves, so that one receive takes
 * them all.
 */
#include "testutil.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#define BATCH 16
/* Clients and datagrams each in the every-mode test. */
#define NCLIENTS 3
#define PER_CLIENT 5

static tu_chan events;
static tu_chan release;
static tu_chan errors;

static void open_chans(void)
{
    assert_int_equal(tu_chan_open(&events), 0);
    assert_int_equal(tu_chan_open(&release), 0);
    assert_int_equal(tu_chan_open(&errors), 0);
}

static void close_chans(void)
{
    tu_chan_close(&events);
    tu_chan_close(&release);
    tu_chan_close(&errors);
}

/* Echo the datagram; "stop" also asks the loop to stop (sync: after this
 * request), "wait" waits for a graceful stop and answers "bye", "hold"
 * waits for the test's release. 'D' per datagram run, 'Z' for empty ones,
 * 'T' for truncated ones. */
static int batch_handle(ss_request *req)
{
    size_t len = 0;
    const char *data = ss_request_data(req, &len);

    tu_chan_put(&events, ss_request_truncated(req) ? 'T' : len == 0 ? 'Z' : 'D');
    if (len == 4 && memcmp(data, "stop", 4) == 0)
        ss_shutdown(ss_request_server(req));
    if (len == 4 && memcmp(data, "wait", 4) == 0) {
        char in[8];
        /* Input read, only the stop is left to wait for. */
        if (ss_read(req, in, sizeof(in)) != 4)
            return SS_ERROR;
        if (ss_request_wait(req, -1, POLLIN, TU_WAIT_MS / 1000.0) < 0 && errno == ECANCELED)
            return ss_write(req, "bye", 3) == 3 ? SS_OK : SS_ERROR;
        return SS_ERROR;
    }
    if (len == 4 && memcmp(data, "hold", 4) == 0)
        tu_chan_get(&release, TU_WAIT_MS);
    return ss_write(req, data, len) == (ssize_t)len ? SS_OK : SS_ERROR;
}

static void record_error(ss_server *srv, ss_request *req, int err)
{
    (void)srv;
    /* 'r' refused (or gone), 'a' again (no room), 'e' anything else; upper
     * case when the error names a request. */
    char c = err == ECONNREFUSED || err == ENOENT ? 'r' : err == EAGAIN ? 'a' : 'e';
    tu_chan_put(&errors, req != NULL ? (char)(c - 'a' + 'A') : c);
}

static void reject_hook(ss_request *req)
{
    (void)req;
    tu_chan_put(&events, 'R');
}

/* The pool's policy for new_server (the every-mode test runs both). */
static ss_pool_full pool_policy = SS_POOL_WAIT;

static ss_server *new_server(enum tu_kind kind, ss_mode mode, unsigned batch, unsigned workers,
                             char *path, size_t size, ss_options *opt)
{
    ss_handler h = {.handle = batch_handle};

    tu_options(opt, kind, mode, path, size);
    opt->batch = batch;
    opt->handle_error = record_error;
    opt->reject = reject_hook;
    opt->pool_workers = workers;
    opt->pool_full = pool_policy;
    return tu_server_new(opt, &h);
}

static void send_str(int fd, const char *s)
{
    size_t n = strlen(s);
    assert_int_equal(send(fd, s, n, 0), (ssize_t)n);
}

/* Receives one datagram and checks it is want. */
static void expect(int fd, const char *want)
{
    char buf[256];
    ssize_t n = tu_recv_dgram(fd, buf, sizeof(buf), TU_WAIT_MS);

    assert_int_equal(n, (ssize_t)strlen(want));
    assert_memory_equal(buf, want, (size_t)n);
}

static void expect_nothing(int fd)
{
    assert_int_equal(tu_wait_readable(fd, TU_QUIET_MS), 0);
}

/* Counts event c among what the handlers reported so far. */
static int count_events(char c, int want, int timeout_ms)
{
    int n = 0;
    double deadline = tu_now() + timeout_ms / 1000.0;

    while (n < want) {
        int left = (int)((deadline - tu_now()) * 1000.0);
        int e = tu_chan_get(&events, left > 0 ? left : 0);
        if (e < 0)
            break;
        if (e == c)
            n++;
    }
    return n;
}

/* ---- every mode: each datagram answered once, to its own peer ----------- */

/* Reads "client C datagram I". Returns 0 or -1. */
static int parse_msg(const char *s, int *c, int *i)
{
    char *end;

    if (strncmp(s, "client ", 7) != 0)
        return -1;
    *c = (int)strtol(s + 7, &end, 10);
    if (strncmp(end, " datagram ", 10) != 0)
        return -1;
    *i = (int)strtol(end + 10, &end, 10);
    return *end == '\0' ? 0 : -1;
}

static void run_every_mode(enum tu_kind kind, ss_mode mode, unsigned batch)
{
    char path[TU_PATH_MAX + 8], cpath[NCLIENTS][TU_PATH_MAX];
    int fds[NCLIENTS];
    char msg[64];
    ss_options opt;
    ss_server *srv;
    tu_serve *serve;
    /* A Unix datagram socket queues 10 by default: stay below. */
    int per = tu_kind_is_unix(kind) ? 3 : PER_CLIENT;

    open_chans();
    srv = new_server(kind, mode, batch, 3, path, sizeof(path), &opt);
    assert_non_null(srv);
    for (int c = 0; c < NCLIENTS; c++) {
        fds[c] = tu_client(srv, cpath[c], sizeof(cpath[c]));
        assert_true(fds[c] >= 0);
    }
    /* Interleaved, one empty datagram per client: one batch holds them. */
    for (int i = 0; i < per; i++) {
        for (int c = 0; c < NCLIENTS; c++) {
            if (i == 2)
                snprintf(msg, sizeof(msg), "%s", "");
            else
                snprintf(msg, sizeof(msg), "client %d datagram %d", c, i);
            assert_int_equal(send(fds[c], msg, strlen(msg), 0), (ssize_t)strlen(msg));
        }
    }
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    for (int c = 0; c < NCLIENTS; c++) {
        bool seen[PER_CLIENT] = {false};
        for (int i = 0; i < per; i++) {
            char buf[64];
            ssize_t n = tu_recv_dgram(fds[c], buf, sizeof(buf) - 1, TU_WAIT_MS);
            int cc = -1, ii = -1;

            assert_true(n >= 0);
            buf[n] = '\0';
            if (n == 0)
                cc = c, ii = 2;
            else
                assert_int_equal(parse_msg(buf, &cc, &ii), 0);
            assert_int_equal(cc, c); /* to the right peer */
            assert_true(ii >= 0 && ii < per);
            assert_false(seen[ii]); /* once */
            seen[ii] = true;
        }
        expect_nothing(fds[c]);
    }
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
    for (int c = 0; c < NCLIENTS; c++) {
        close(fds[c]);
        if (cpath[c][0] != '\0')
            unlink(cpath[c]);
    }
    assert_int_equal(count_events('Z', NCLIENTS, TU_WAIT_MS), NCLIENTS);
    close_chans();
}

static void test_every_mode(void **state)
{
    static const ss_mode modes[] = {SS_MODE_SYNC, SS_MODE_THREADING, SS_MODE_FORKING, SS_MODE_POOL};

    (void)state;
    for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        run_every_mode(TU_UDP, modes[m], BATCH);
        run_every_mode(TU_UDP, modes[m], 2); /* batches smaller than what waits */
    }
    /* SS_POOL_REJECT: workers in epoll, the loop receiving when all are
     * busy; with a queue this long, none is turned away. */
    pool_policy = SS_POOL_REJECT;
    run_every_mode(TU_UDP, SS_MODE_POOL, BATCH);
    run_every_mode(TU_UDP, SS_MODE_POOL, 1);
    pool_policy = SS_POOL_WAIT;
    run_every_mode(TU_UNIX_DGRAM, SS_MODE_SYNC, BATCH);
    run_every_mode(TU_UNIX_DGRAM, SS_MODE_POOL, BATCH);
    if (tu_have_ipv6())
        run_every_mode(TU_UDP6, SS_MODE_SYNC, BATCH);
}

/* ---- options ------------------------------------------------------------ */

static void test_batch_limit(void **state)
{
    ss_options opt;
    ss_server *srv;

    (void)state;
    ss_options_init(&opt);
    opt.type = SS_DATAGRAM;
    opt.batch = 1025;
    errno = 0;
    assert_null(ss_server_new(&opt, NULL));
    assert_int_equal(errno, EINVAL);
    opt.batch = 1024;
    srv = tu_server_new(&opt, NULL);
    assert_non_null(srv);
    tu_server_free(srv);
    /* A stream server ignores it. */
    opt.type = SS_STREAM;
    opt.batch = 16;
    srv = tu_server_new(&opt, NULL);
    assert_non_null(srv);
    tu_server_free(srv);
}

/* ---- oversize datagrams -------------------------------------------------- */

/* A datagram longer than max_packet_size is cut and says so, in the middle
 * of a batch, as without one; its neighbours are whole. */
static void run_oversize(ss_mode mode)
{
    char path[TU_PATH_MAX + 8];
    ss_options opt;
    ss_server *srv;
    tu_serve *serve;
    char big[40];
    int fd;

    open_chans();
    tu_options(&opt, TU_UDP, mode, path, sizeof(path));
    opt.max_packet_size = 8;
    opt.batch = BATCH;
    opt.pool_workers = 1; /* replies in order */
    {
        ss_handler h = {.handle = batch_handle};
        opt.handle_error = record_error;
        srv = tu_server_new(&opt, &h);
    }
    assert_non_null(srv);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    memset(big, 'x', sizeof(big));
    send_str(fd, "short");
    assert_int_equal(send(fd, big, sizeof(big), 0), (ssize_t)sizeof(big));
    send_str(fd, "eightchr");
    send_str(fd, "");
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    expect(fd, "short");
    expect(fd, "xxxxxxxx");
    expect(fd, "eightchr");
    expect(fd, "");
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
    close(fd);
    {
        char got[16];
        size_t n = tu_chan_drain(&events, got, sizeof(got));
        assert_int_equal(n, 4);
        assert_memory_equal(got, "DTDZ", 4);
    }
    close_chans();
}

static void test_oversize(void **state)
{
    (void)state;
    run_oversize(SS_MODE_SYNC);
    run_oversize(SS_MODE_POOL);
}

/* ---- stopping in the middle of a batch ---------------------------------- */

/* sync: the loop stops after the request that asked: the replies made so
 * far go out before ss_serve_forever returns; the rest of the batch waits
 * for the next loop, as it would in the socket. */
static void test_stop_mid_batch_sync(void **state)
{
    char path[TU_PATH_MAX + 8];
    ss_options opt;
    ss_server *srv;
    tu_serve *serve;
    int fd;

    (void)state;
    open_chans();
    srv = new_server(TU_UDP, SS_MODE_SYNC, BATCH, 1, path, sizeof(path), &opt);
    assert_non_null(srv);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    send_str(fd, "one");
    send_str(fd, "stop");
    send_str(fd, "three");
    send_str(fd, "four");
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    assert_int_equal(tu_serve_wait(serve, TU_WAIT_MS), 0);
    /* Both answered by the time the loop returned. */
    assert_int_equal(tu_wait_readable(fd, 0), 1);
    expect(fd, "one");
    expect(fd, "stop");
    expect_nothing(fd);
    assert_int_equal(count_events('D', 2, TU_WAIT_MS), 2);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    expect(fd, "three");
    expect(fd, "four");
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
    close(fd);
    close_chans();
}

/* ss_server_stop's thread, with the result. */
static void *stopper(void *arg)
{
    ss_server *srv = arg;
    long rc = ss_server_stop(srv, 5.0);
    return (void *)rc;
}

/* pool and sync, graceful: the running datagram sees the stop and ends;
 * the rest of its batch is not started. */
static void run_graceful_mid_batch(ss_mode mode)
{
    char path[TU_PATH_MAX + 8];
    ss_options opt;
    ss_server *srv;
    tu_serve *serve;
    pthread_t t;
    void *rc;
    int fd;

    open_chans();
    tu_options(&opt, TU_UDP, mode, path, sizeof(path));
    opt.batch = BATCH;
    opt.pool_workers = 1; /* one batch, in one worker */
    {
        ss_handler h = {.handle = batch_handle};
        srv = tu_server_new(&opt, &h);
    }
    assert_non_null(srv);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    send_str(fd, "wait");
    send_str(fd, "two");
    send_str(fd, "three");
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'D');
    assert_int_equal(pthread_create(&t, NULL, stopper, srv), 0);
    expect(fd, "bye");
    assert_int_equal(pthread_join(t, &rc), 0);
    assert_int_equal((long)rc, 0);
    assert_int_equal(tu_serve_wait(serve, TU_WAIT_MS), 0);
    expect_nothing(fd);
    assert_int_equal(tu_chan_get(&events, 0), -1); /* "two", "three" never ran */
    tu_server_free(srv);
    close(fd);
    close_chans();
}

static void test_graceful_stop_mid_batch(void **state)
{
    (void)state;
    run_graceful_mid_batch(SS_MODE_POOL);
    run_graceful_mid_batch(SS_MODE_SYNC);
}

/* ---- ss_handle_request: one datagram of the batch per call ------------- */

static void run_handle_request(ss_mode mode)
{
    char path[TU_PATH_MAX + 8];
    ss_options opt;
    ss_server *srv;
    int fd;

    open_chans();
    srv = new_server(TU_UDP, mode, BATCH, 1, path, sizeof(path), &opt);
    assert_non_null(srv);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    send_str(fd, "a");
    send_str(fd, "b");
    send_str(fd, "c");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ss_handle_request(srv), 1);
        expect(fd, i == 0 ? "a" : i == 1 ? "b" : "c");
        expect_nothing(fd);
    }
    ss_server_close(srv);
    tu_server_free(srv);
    close(fd);
    close_chans();
}

/* A pool that served and stopped: a datagram that comes meanwhile (a
 * worker still waiting in its receive may take it, and holds it) is served
 * when the server serves again, once. */
static void run_serve_again(unsigned batch)
{
    char path[TU_PATH_MAX + 8];
    ss_options opt;
    ss_server *srv;
    tu_serve *serve;
    int fd;

    open_chans();
    srv = new_server(TU_UDP, SS_MODE_POOL, batch, 3, path, sizeof(path), &opt);
    assert_non_null(srv);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    send_str(fd, "first");
    expect(fd, "first");
    assert_int_equal(tu_serve_stop(serve), 0);
    send_str(fd, "meanwhile");
    expect_nothing(fd);
    assert_int_equal(count_events('D', 1, TU_WAIT_MS), 1); /* "first" only */
    assert_int_equal(tu_chan_get(&events, TU_QUIET_MS), -1);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    expect(fd, "meanwhile");
    expect_nothing(fd);
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
    close(fd);
    close_chans();
}

static void test_pool_serves_again(void **state)
{
    (void)state;
    run_serve_again(1);
    run_serve_again(BATCH);
}

static void test_handle_request(void **state)
{
    (void)state;
    run_handle_request(SS_MODE_SYNC);
    run_handle_request(SS_MODE_POOL);
    run_handle_request(SS_MODE_FORKING);
}

/* ---- the connection limits ---------------------------------------------- */

/* Threading: a datagram of the batch whose peer already has one running is
 * turned away, as without a batch. */
static void test_limits_threading(void **state)
{
    char path[TU_PATH_MAX + 8];
    ss_options opt;
    ss_server *srv;
    tu_serve *serve;
    int fd;

    (void)state;
    open_chans();
    tu_options(&opt, TU_UDP, SS_MODE_THREADING, path, sizeof(path));
    opt.batch = BATCH;
    opt.max_per_peer = 1;
    opt.reject = reject_hook;
    {
        ss_handler h = {.handle = batch_handle};
        srv = tu_server_new(&opt, &h);
    }
    assert_non_null(srv);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    send_str(fd, "hold");
    send_str(fd, "two");
    send_str(fd, "three");
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    assert_int_equal(count_events('R', 2, TU_WAIT_MS), 2);
    assert_int_equal(tu_chan_put(&release, 'r'), 0);
    expect(fd, "hold");
    expect_nothing(fd);
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
    close(fd);
    close_chans();
}

/* sync and pool: the batch's datagrams run one after another, each slot
 * given back before the next starts: a peer limit of 1 turns none away. */
static void run_limits_sequential(ss_mode mode)
{
    char path[TU_PATH_MAX + 8];
    ss_options opt;
    ss_server *srv;
    tu_serve *serve;
    int fd;

    open_chans();
    tu_options(&opt, TU_UDP, mode, path, sizeof(path));
    opt.batch = BATCH;
    opt.max_per_peer = 1;
    opt.pool_workers = 1;
    opt.reject = reject_hook;
    {
        ss_handler h = {.handle = batch_handle};
        srv = tu_server_new(&opt, &h);
    }
    assert_non_null(srv);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    send_str(fd, "1");
    send_str(fd, "2");
    send_str(fd, "3");
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    expect(fd, "1");
    expect(fd, "2");
    expect(fd, "3");
    assert_int_equal(tu_serve_stop(serve), 0);
    /* The last slot is given back just after its reply went out. */
    assert_int_equal(ss_server_drain(srv, TU_WAIT_MS / 1000.0), 0);
    {
        struct sockaddr_storage me;
        socklen_t len = sizeof(me);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&me, &len), 0);
        assert_int_equal(ss_server_peer_count(srv, (struct sockaddr *)&me, len), 0);
    }
    tu_server_free(srv);
    close(fd);
    {
        char got[16];
        size_t n = tu_chan_drain(&events, got, sizeof(got));
        assert_int_equal(n, 3);
        assert_null(memchr(got, 'R', n));
    }
    close_chans();
}

static void test_limits_sequential(void **state)
{
    (void)state;
    run_limits_sequential(SS_MODE_SYNC);
    run_limits_sequential(SS_MODE_POOL);
}

/* ---- replies that cannot be sent ---------------------------------------- */

/* A Unix client that is gone before its reply: that reply fails in the
 * middle of the batch's sendmmsg (the ones before it went out: a partial
 * send), is reported with no request, and the ones after it still go out. */
static void run_refused_mid_batch(ss_mode mode)
{
    char path[TU_PATH_MAX + 8], pa[TU_PATH_MAX], pb[TU_PATH_MAX];
    ss_options opt;
    ss_server *srv;
    tu_serve *serve;
    int a, b;

    open_chans();
    srv = new_server(TU_UNIX_DGRAM, mode, BATCH, 1, path, sizeof(path), &opt);
    assert_non_null(srv);
    a = tu_client(srv, pa, sizeof(pa));
    b = tu_client(srv, pb, sizeof(pb));
    assert_true(a >= 0 && b >= 0);
    send_str(b, "first");
    send_str(a, "gone");
    send_str(b, "second");
    close(a); /* its path stays: sending to it is refused */
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    expect(b, "first");
    expect(b, "second");
    assert_int_equal(tu_chan_get(&errors, TU_WAIT_MS), 'r');
    assert_int_equal(tu_chan_get(&errors, TU_QUIET_MS), -1);
    /* And serving goes on. */
    send_str(b, "third");
    expect(b, "third");
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
    close(b);
    unlink(pa);
    unlink(pb);
    close_chans();
}

static void test_refused_mid_batch(void **state)
{
    (void)state;
    run_refused_mid_batch(SS_MODE_SYNC);
    run_refused_mid_batch(SS_MODE_POOL);
}

/* A Unix client that does not read: once its queue is full the sendmmsg
 * says EAGAIN for each further reply to it; that is reported, those replies
 * are dropped, and other clients are still served. */
static void test_peer_queue_full(void **state)
{
    char path[TU_PATH_MAX + 8], pa[TU_PATH_MAX], pb[TU_PATH_MAX];
    ss_options opt;
    ss_server *srv;
    tu_serve *serve;
    int a, b, got = 0;

    (void)state;
    open_chans();
    srv = new_server(TU_UNIX_DGRAM, SS_MODE_SYNC, 64, 1, path, sizeof(path), &opt);
    assert_non_null(srv);
    /* Not connected to the server: a socket's queue limit does not hold
     * for the peer it is connected to. */
    {
        struct sockaddr_un me = {.sun_family = AF_UNIX};
        a = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        assert_true(a >= 0);
        assert_int_equal(tu_unix_path(pa, sizeof(pa)), 0);
        memcpy(me.sun_path, pa, strlen(pa) + 1);
        assert_int_equal(bind(a, (struct sockaddr *)&me, sizeof(me)), 0);
    }
    b = tu_client(srv, pb, sizeof(pb));
    assert_true(b >= 0);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    /* More than a Unix datagram queue holds by default (10). */
    for (int i = 0; i < 32; i++) {
        struct sockaddr_storage to;
        socklen_t tolen = sizeof(to);
        assert_int_equal(ss_server_address(srv, (struct sockaddr *)&to, &tolen), 0);
        assert_int_equal(sendto(a, "flood", 5, 0, (struct sockaddr *)&to, tolen), 5);
    }
    assert_int_equal(tu_chan_get(&errors, TU_WAIT_MS), 'a');
    send_str(b, "other");
    expect(b, "other");
    while (tu_recv_dgram(a, (char[16]){0}, 16, TU_QUIET_MS) == 5)
        got++;
    assert_true(got > 0 && got < 32);
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
    close(a);
    close(b);
    unlink(pa);
    unlink(pb);
    close_chans();
}

/* The socket reports bounces (IP_RECVERR): a reply to a client that is gone
 * comes back as ICMP "port unreachable", and the next receive fails once
 * with ECONNREFUSED. That says nothing about the socket: the datagrams
 * behind it are served, and nothing is reported. */
static int recverr_on(ss_server *srv, int fd)
{
    int one = 1;
    (void)srv;
    return setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof(one));
}

static void run_bounce(ss_mode mode)
{
    char path[TU_PATH_MAX + 8];
    ss_options opt;
    ss_server *srv;
    tu_serve *serve;
    int a, b;

    open_chans();
    tu_options(&opt, TU_UDP, mode, path, sizeof(path));
    opt.batch = BATCH;
    opt.pool_workers = 1;
    opt.prepare_socket = recverr_on;
    opt.handle_error = record_error;
    {
        ss_handler h = {.handle = batch_handle};
        srv = tu_server_new(&opt, &h);
    }
    assert_non_null(srv);
    a = tu_client(srv, NULL, 0);
    b = tu_client(srv, NULL, 0);
    assert_true(a >= 0 && b >= 0);
    send_str(a, "gone");
    close(a); /* its reply bounces */
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'D');
    for (int i = 0; i < 3; i++) {
        char msg[8];
        snprintf(msg, sizeof(msg), "b%d", i);
        send_str(b, msg);
        expect(b, msg);
    }
    assert_int_equal(tu_serve_stop(serve), 0);
    assert_int_equal(tu_chan_get(&errors, 0), -1);
    tu_server_free(srv);
    close(b);
    close_chans();
}

static void test_bounce_before_batch(void **state)
{
    (void)state;
    run_bounce(SS_MODE_SYNC);
    run_bounce(SS_MODE_POOL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_every_mode),
        TU_TEST(test_batch_limit),
        TU_TEST(test_oversize),
        TU_TEST(test_stop_mid_batch_sync),
        TU_TEST(test_graceful_stop_mid_batch),
        TU_TEST(test_handle_request),
        TU_TEST(test_pool_serves_again),
        TU_TEST(test_limits_threading),
        TU_TEST(test_limits_sequential),
        TU_TEST(test_refused_mid_batch),
        TU_TEST(test_peer_queue_full),
        TU_TEST(test_bounce_before_batch),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
