/*
 * test_stream.c - StreamRequestHandler's rfile and wfile: readline with a
 * limit, read, read_exact, pending bytes, write (all bytes, across signals:
 * CPython's SocketWriterTest), printf, flush with an output buffer,
 * per-request timeouts, TCP_NODELAY, the request's connection fd, and
 * writes of nothing or of absurd lengths.
 *
 * Handlers report what they saw by writing it back to the client or through
 * a pipe; assertions run in the test thread only.
 */
#include "testutil.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* CPython's test_write sends this many bytes while signals arrive. */
#define BIG_WRITE ((size_t)16 * 1024 * 1024 + 1)
/* Client read size in the big write test. */
#define CLIENT_CHUNK 65536
/* Upper bound on the big transfer, so a stuck writer fails the test. */
#define BIG_WRITE_SECONDS 30

static tu_chan events;

static void open_events(void)
{
    assert_int_equal(tu_chan_open(&events), 0);
}

/* Starts a sync server with handler h and options adjusted by the caller. */
static ss_server *start(ss_options *opt, const ss_handler *h, tu_serve **serve)
{
    ss_server *srv = tu_server_new(opt, h);

    assert_non_null(srv);
    *serve = tu_serve_start(srv, 0.01);
    assert_non_null(*serve);
    return srv;
}

static void stop(ss_server *srv, tu_serve *serve)
{
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
}

/* Reads everything until the server closes; returns the count. */
static ssize_t read_all(int fd, char *buf, size_t size)
{
    size_t n = 0;

    for (;;) {
        ssize_t r;

        if (n + 1 >= size)
            return -1;
        r = tu_recv_exact(fd, buf + n, 1, TU_WAIT_MS);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        n++;
    }
    buf[n] = '\0';
    return (ssize_t)n;
}

/* ---- readline ------------------------------------------------------------ */

static int readline_pieces_handle(ss_request *req)
{
    char piece[5]; /* at most 4 bytes per call */
    ssize_t n = ss_readline(req, piece, sizeof(piece));

    for (int guard = 0; n > 0 && guard < 100; guard++) {
        if (piece[n] != '\0' || strlen(piece) != (size_t)n)
            return SS_ERROR;
        if (ss_printf(req, "[%s]", piece) < 0)
            return SS_ERROR;
        n = ss_readline(req, piece, sizeof(piece));
    }
    if (n != 0)
        return SS_ERROR;
    return ss_write(req, "END\n", 4) == 4 ? SS_OK : SS_ERROR;
}

/* Python's readline(limit): a long line comes back in pieces, the last one
 * with the '\n'; a line that fits comes back whole; 0 at end of input. */
static void test_readline_limit(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = readline_pieces_handle};
    tu_serve *serve;
    ss_server *srv;
    const char *in = "abcdefghij\nabc\nxy\nlast";
    char out[256];
    int fd;

    (void)state;
    ss_options_init(&opt);
    srv = start(&opt, &h, &serve);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(tu_send_all(fd, in, strlen(in)), strlen(in));
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    assert_true(read_all(fd, out, sizeof(out)) > 0);
    assert_string_equal(out, "[abcd][efgh][ij\n][abc\n][xy\n][last]END\n");
    close(fd);
    stop(srv, serve);
}

/* A line arriving in several segments is assembled. */
static void test_readline_across_segments(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = tu_echo_handle};
    tu_serve *serve;
    ss_server *srv;
    char out[64];
    int fd;

    (void)state;
    ss_options_init(&opt);
    srv = start(&opt, &h, &serve);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(tu_send_all(fd, "hel", 3), 3);
    /* The server has not answered: the line is not complete. */
    assert_int_equal(tu_wait_readable(fd, TU_QUIET_MS), 0);
    assert_int_equal(tu_send_all(fd, "lo\n", 3), 3);
    assert_int_equal(tu_recv_line(fd, out, sizeof(out), TU_WAIT_MS), 6);
    assert_string_equal(out, "hello\n");
    close(fd);
    stop(srv, serve);
}

/* ---- read, pending, read_exact ------------------------------------------ */

static int read_handle(ss_request *req)
{
    char line[64], rest[64];
    ssize_t n, m;
    size_t pending;

    n = ss_readline(req, line, sizeof(line));
    if (n <= 0)
        return SS_ERROR;
    pending = ss_pending(req);
    /* Buffered bytes come first, without waiting for more. */
    m = ss_read(req, rest, sizeof(rest) - 1);
    if (m < 0)
        return SS_ERROR;
    rest[m] = '\0';
    return ss_printf(req, "%zd|%zu|%zd|%s\n", n, pending, m, rest) > 0 ? SS_OK : SS_ERROR;
}

static void test_read_and_pending(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = read_handle};
    tu_serve *serve;
    ss_server *srv;
    char out[128];
    int fd;

    (void)state;
    ss_options_init(&opt);
    srv = start(&opt, &h, &serve);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    /* One send: one segment on loopback, read into the buffer at once. */
    assert_int_equal(tu_send_all(fd, "line1\nrest", 10), 10);
    assert_true(tu_recv_line(fd, out, sizeof(out), TU_WAIT_MS) > 0);
    assert_string_equal(out, "6|4|4|rest\n");
    close(fd);
    stop(srv, serve);
}

static int read_exact_handle(ss_request *req)
{
    char buf[16];
    ssize_t n;
    int err;

    n = ss_read_exact(req, buf, 10);
    if (n != 10)
        return SS_ERROR;
    if (ss_write(req, buf, 10) != 10)
        return SS_ERROR;
    errno = 0;
    n = ss_read_exact(req, buf, 10);
    err = errno;
    return ss_printf(req, "|%zd %s\n", n, err == ENODATA ? "ENODATA" : "other") > 0 ? SS_OK
                                                                                    : SS_ERROR;
}

/* read_exact assembles pieces, and fails with ENODATA when input ends
 * first. */
static void test_read_exact(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = read_exact_handle};
    tu_serve *serve;
    ss_server *srv;
    char out[128];
    int fd;

    (void)state;
    ss_options_init(&opt);
    srv = start(&opt, &h, &serve);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(tu_send_all(fd, "01234", 5), 5);
    assert_int_equal(tu_wait_readable(fd, TU_QUIET_MS), 0);
    assert_int_equal(tu_send_all(fd, "56789", 5), 5);
    assert_int_equal(tu_recv_exact(fd, out, 10, TU_WAIT_MS), 10);
    assert_memory_equal(out, "0123456789", 10);
    /* Five more bytes, then the end: short input. */
    assert_int_equal(tu_send_all(fd, "abcde", 5), 5);
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    assert_true(read_all(fd, out, sizeof(out)) > 0);
    assert_string_equal(out, "|-1 ENODATA\n");
    close(fd);
    stop(srv, serve);
}

static int eof_handle(ss_request *req)
{
    char buf[16];
    ssize_t a = ss_readline(req, buf, sizeof(buf));
    ssize_t b = ss_read(req, buf, sizeof(buf));

    return ss_printf(req, "%zd %zd\n", a, b) > 0 ? SS_OK : SS_ERROR;
}

/* At end of input readline and read return 0. */
static void test_read_eof(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = eof_handle};
    tu_serve *serve;
    ss_server *srv;
    char out[64];
    int fd;

    (void)state;
    ss_options_init(&opt);
    srv = start(&opt, &h, &serve);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    assert_true(tu_recv_line(fd, out, sizeof(out), TU_WAIT_MS) > 0);
    assert_string_equal(out, "0 0\n");
    close(fd);
    stop(srv, serve);
}

/* ---- write: SocketWriterTest --------------------------------------------- */

static int request_fd_handle(ss_request *req)
{
    struct sockaddr_storage peer;
    socklen_t len = sizeof(peer);
    char text[128];

    if (getpeername(ss_request_fd(req), (struct sockaddr *)&peer, &len) < 0)
        return SS_ERROR;
    if (ss_format_address((struct sockaddr *)&peer, len, text, sizeof(text)) == NULL)
        return SS_ERROR;
    return ss_printf(req, "%s\n", text) > 0 ? SS_OK : SS_ERROR;
}

/* test_basics: the writer's fd is the request's connection. */
static void test_request_fd_is_connection(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = request_fd_handle};
    tu_serve *serve;
    ss_server *srv;
    struct sockaddr_storage me;
    socklen_t len = sizeof(me);
    char out[128], addr[120], want[128];
    int fd;

    (void)state;
    ss_options_init(&opt);
    srv = start(&opt, &h, &serve);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&me, &len), 0);
    assert_non_null(ss_format_address((struct sockaddr *)&me, len, addr, sizeof(addr)));
    snprintf(want, sizeof(want), "%s\n", addr);
    assert_true(tu_recv_line(fd, out, sizeof(out), TU_WAIT_MS) > 0);
    assert_string_equal(out, want);
    close(fd);
    stop(srv, serve);
}

static int ping_pong_handle(ss_request *req)
{
    char line[64];

    if (ss_write(req, "ping\n", 5) != 5)
        return SS_ERROR;
    /* The peer answers only once it has the ping. */
    if (ss_readline(req, line, sizeof(line)) <= 0)
        return SS_ERROR;
    return ss_write(req, "done\n", 5) == 5 ? SS_OK : SS_ERROR;
}

static int flush_handle(ss_request *req)
{
    char line[64];

    if (ss_write(req, "ping\n", 5) != 5 || ss_flush(req) != 0)
        return SS_ERROR;
    tu_chan_put(&events, 'F');
    if (ss_readline(req, line, sizeof(line)) <= 0)
        return SS_ERROR;
    /* Left in the buffer: the end of the request sends it. */
    return ss_write(req, "done\n", 5) == 5 ? SS_OK : SS_ERROR;
}

static void run_ping_pong(size_t wbufsize, int (*handle)(ss_request *))
{
    ss_options opt;
    ss_handler h = {.handle = handle};
    tu_serve *serve;
    ss_server *srv;
    char out[64];
    int fd;

    ss_options_init(&opt);
    opt.wbufsize = wbufsize;
    srv = start(&opt, &h, &serve);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(tu_recv_line(fd, out, sizeof(out), TU_WAIT_MS), 5);
    assert_string_equal(out, "ping\n");
    assert_int_equal(tu_send_all(fd, "pong\n", 5), 5);
    assert_int_equal(tu_recv_line(fd, out, sizeof(out), TU_WAIT_MS), 5);
    assert_string_equal(out, "done\n");
    assert_int_equal(tu_wait_eof(fd, TU_WAIT_MS), 0);
    close(fd);
    stop(srv, serve);
}

/* test_write, first half: unbuffered output is sent at once, without a
 * flush (the client reads it before the server reads the reply). */
static void test_write_unbuffered_immediate(void **state)
{
    (void)state;
    run_ping_pong(0, ping_pong_handle);
}

/* With an output buffer, a read that must wait sends what is buffered. */
static void test_write_buffered_flushed_by_read(void **state)
{
    (void)state;
    run_ping_pong(4096, ping_pong_handle);
}

/* With an output buffer, ss_flush sends it; the end of the request sends the
 * rest. */
static void test_flush_buffered(void **state)
{
    (void)state;
    open_events();
    run_ping_pong(4096, flush_handle);
    assert_int_equal(tu_chan_get(&events, 0), 'F');
    tu_chan_close(&events);
}

static int big_buffered_handle(ss_request *req)
{
    char *buf = malloc(100000);
    ssize_t n;

    if (buf == NULL)
        return SS_ERROR;
    for (size_t i = 0; i < 100000; i++)
        buf[i] = (char)('a' + i % 26);
    /* Larger than the buffer, and small pieces that fill it up. */
    n = ss_write(req, buf, 100000);
    for (int i = 0; i < 1000 && n >= 0; i++)
        n = ss_write(req, buf, 7) == 7 ? 1 : -1;
    free(buf);
    return n >= 0 ? SS_OK : SS_ERROR;
}

static void test_write_buffered_large(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = big_buffered_handle};
    tu_serve *serve;
    ss_server *srv;
    size_t total = 100000 + 7000;
    char *out = malloc(total + 1);
    int fd;

    (void)state;
    assert_non_null(out);
    ss_options_init(&opt);
    opt.wbufsize = 1000;
    srv = start(&opt, &h, &serve);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(tu_recv_exact(fd, out, total + 1, TU_WAIT_MS), total);
    for (size_t i = 0; i < 100000; i++)
        assert_int_equal(out[i], 'a' + i % 26);
    for (size_t i = 0; i < 7000; i++)
        assert_int_equal(out[100000 + i], 'a' + (i % 7) % 26);
    close(fd);
    free(out);
    stop(srv, serve);
}

static long big_ready;
static long big_done;
static ssize_t big_result;

static unsigned char pattern(size_t i)
{
    return (unsigned char)((i * 7u) % 251u);
}

static int big_write_handle(ss_request *req)
{
    unsigned char *buf = malloc(BIG_WRITE);
    ssize_t n;

    if (buf == NULL)
        return SS_ERROR;
    for (size_t i = 0; i < BIG_WRITE; i++)
        buf[i] = pattern(i);
    __atomic_store_n(&big_ready, 1, __ATOMIC_SEQ_CST);
    n = ss_write(req, buf, BIG_WRITE);
    __atomic_store_n(&big_result, n, __ATOMIC_SEQ_CST);
    __atomic_store_n(&big_done, 1, __ATOMIC_SEQ_CST);
    free(buf);
    return n == (ssize_t)BIG_WRITE ? SS_OK : SS_ERROR;
}

/* test_write, second half: a 16 MiB + 1 write while SIGUSR1 is delivered
 * again and again to the serving thread returns the full length and every
 * byte arrives (EINTR and partial sends are handled inside). */
static void test_write_big_with_signals(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = big_write_handle};
    tu_serve *serve;
    ss_server *srv;
    unsigned char *chunk = malloc(CLIENT_CHUNK);
    size_t got = 0;
    long signals = 0;
    bool pattern_ok = true;
    double deadline;
    int fd;

    (void)state;
    assert_non_null(chunk);
    assert_int_equal(tu_install_noop_handler(SIGUSR1), 0);
    big_ready = 0;
    big_done = 0;
    big_result = 0;
    ss_options_init(&opt);
    srv = start(&opt, &h, &serve);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(tu_wait_counter(&big_ready, 1, TU_WAIT_MS), 1);
    deadline = tu_now() + BIG_WRITE_SECONDS;
    while (tu_now() < deadline) {
        ssize_t r;

        if (!__atomic_load_n(&big_done, __ATOMIC_SEQ_CST)) {
            /* The serving thread lives until the loop stops, so it is
             * always a valid target here. */
            pthread_kill(serve->thread, SIGUSR1);
            signals++;
        }
        if (tu_wait_readable(fd, 10) != 1)
            continue;
        r = recv(fd, chunk, CLIENT_CHUNK, MSG_DONTWAIT);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            break;
        for (ssize_t i = 0; i < r; i++) {
            if (chunk[i] != pattern(got + (size_t)i))
                pattern_ok = false;
        }
        got += (size_t)r;
    }
    close(fd);
    free(chunk);
    stop(srv, serve);
    signal(SIGUSR1, SIG_DFL);
    assert_true(signals > 0);
    assert_int_equal(got, BIG_WRITE);
    assert_true(pattern_ok);
    assert_int_equal(big_result, (ssize_t)BIG_WRITE);
}

/* ---- printf -------------------------------------------------------------- */

static int printf_handle(ss_request *req)
{
    char big[5000];
    ssize_t a, b;

    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    a = ss_printf(req, "%d-%s\n", 42, "abc");
    /* Longer than any small internal formatting buffer. */
    b = ss_printf(req, "%s\n", big);
    return ss_printf(req, "%zd %zd\n", a, b) > 0 ? SS_OK : SS_ERROR;
}

static void test_printf(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = printf_handle};
    tu_serve *serve;
    ss_server *srv;
    char out[6000];
    int fd;

    (void)state;
    ss_options_init(&opt);
    srv = start(&opt, &h, &serve);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(tu_recv_line(fd, out, sizeof(out), TU_WAIT_MS), 7);
    assert_string_equal(out, "42-abc\n");
    assert_int_equal(tu_recv_line(fd, out, sizeof(out), TU_WAIT_MS), 5000);
    assert_int_equal(out[0], 'z');
    assert_int_equal(out[4998], 'z');
    assert_true(tu_recv_line(fd, out, sizeof(out), TU_WAIT_MS) > 0);
    assert_string_equal(out, "7 5000\n");
    close(fd);
    stop(srv, serve);
}

/* ---- timeouts ------------------------------------------------------------ */

static double set_timeout_seconds;

static int timeout_handle(ss_request *req)
{
    char line[64];
    ssize_t n;
    double t0 = tu_now();

    if (set_timeout_seconds > 0 && ss_request_set_timeout(req, set_timeout_seconds) != 0) {
        tu_chan_put(&events, 's');
        return SS_ERROR;
    }
    errno = 0;
    n = ss_readline(req, line, sizeof(line));
    if (n == -1 && errno == ETIMEDOUT && tu_now() - t0 >= 0.09)
        tu_chan_put(&events, 'T');
    else
        tu_chan_put(&events, 'x');
    return SS_OK;
}

/* A silent client: the read fails with ETIMEDOUT after request_timeout. */
static void run_request_timeout(ss_mode mode, double opt_timeout, double set_timeout)
{
    ss_options opt;
    ss_handler h = {.handle = timeout_handle};
    tu_serve *serve;
    ss_server *srv;
    int fd;

    open_events();
    set_timeout_seconds = set_timeout;
    ss_options_init(&opt);
    opt.mode = mode;
    opt.request_timeout = opt_timeout;
    srv = start(&opt, &h, &serve);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'T');
    assert_int_equal(tu_wait_eof(fd, TU_WAIT_MS), 0);
    close(fd);
    stop(srv, serve);
    tu_chan_close(&events);
}

static void test_request_timeout_sync(void **state)
{
    (void)state;
    run_request_timeout(SS_MODE_SYNC, 0.1, 0);
}

static void test_request_timeout_threading(void **state)
{
    (void)state;
    run_request_timeout(SS_MODE_THREADING, 0.1, 0);
}

static void test_request_timeout_forking(void **state)
{
    (void)state;
    run_request_timeout(SS_MODE_FORKING, 0.1, 0);
}

static void test_request_timeout_pool(void **state)
{
    (void)state;
    run_request_timeout(SS_MODE_POOL, 0.1, 0);
}

static void test_request_set_timeout(void **state)
{
    (void)state;
    run_request_timeout(SS_MODE_SYNC, -1, 0.1);
}

static int timeout_write_handle(ss_request *req)
{
    static char buf[65536];
    int i;

    memset(buf, 'w', sizeof(buf));
    errno = 0;
    /* The client never reads: the send buffer fills and a write times out
     * (bounded: far more than any socket buffer). */
    for (i = 0; i < 4096; i++) {
        if (ss_write(req, buf, sizeof(buf)) < 0)
            break;
    }
    tu_chan_put(&events, i < 4096 && errno == ETIMEDOUT ? 'T' : 'x');
    return SS_OK;
}

/* The timeout covers writes too. */
static void test_request_timeout_write(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = timeout_write_handle};
    tu_serve *serve;
    ss_server *srv;
    int fd;

    (void)state;
    open_events();
    ss_options_init(&opt);
    opt.request_timeout = 0.1;
    srv = start(&opt, &h, &serve);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'T');
    close(fd);
    stop(srv, serve);
    tu_chan_close(&events);
}

/* ---- TCP_NODELAY --------------------------------------------------------- */

static int nodelay_handle(ss_request *req)
{
    int v = -1;
    socklen_t len = sizeof(v);

    if (getsockopt(ss_request_fd(req), IPPROTO_TCP, TCP_NODELAY, &v, &len) < 0)
        v = -1;
    tu_chan_put(&events, v > 0 ? '1' : v == 0 ? '0' : 'x');
    return SS_OK;
}

static void run_nodelay(bool disable_nagle, char want, ss_mode mode)
{
    ss_options opt;
    ss_handler h = {.handle = nodelay_handle};
    tu_serve *serve;
    ss_server *srv;
    int fd;

    open_events();
    ss_options_init(&opt);
    opt.mode = mode;
    opt.disable_nagle_algorithm = disable_nagle;
    srv = start(&opt, &h, &serve);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), want);
    close(fd);
    stop(srv, serve);
    tu_chan_close(&events);
}

static void test_disable_nagle(void **state)
{
    (void)state;
    run_nodelay(true, '1', SS_MODE_SYNC);
    run_nodelay(true, '1', SS_MODE_THREADING);
    run_nodelay(true, '1', SS_MODE_POOL);
    run_nodelay(true, '1', SS_MODE_FORKING);
}

static void test_nagle_default(void **state)
{
    (void)state;
    run_nodelay(false, '0', SS_MODE_SYNC);
}

/* ss_write(req, NULL, 0) with an output buffer (no memcpy from NULL), and a
 * datagram reply whose length plus a huge n would wrap around. */
static int edge_writes_handle(ss_request *req)
{
    char line[64];
    ssize_t zero = ss_write(req, NULL, 0);

    if (ss_request_is_datagram(req)) {
        (void)ss_write(req, "abc", 3);
        errno = 0;
        ssize_t huge = ss_write(req, "x", SIZE_MAX - 1);
        int huge_err = errno;
        int n = snprintf(line, sizeof line, " zero=%zd huge=%zd/%s", zero, huge,
                         huge_err == EMSGSIZE ? "EMSGSIZE" : "other");
        return ss_write(req, line, (size_t)n) == n ? SS_OK : SS_ERROR;
    }
    int n = snprintf(line, sizeof line, "zero=%zd\n", zero);
    return ss_write(req, line, (size_t)n) == n ? SS_OK : SS_ERROR;
}

static void test_write_edges(void **state)
{
    (void)state;
    ss_handler h = {.handle = edge_writes_handle};
    ss_options opt;
    tu_serve *serve;
    char reply[128];

    tu_options(&opt, TU_TCP, SS_MODE_SYNC, NULL, 0);
    opt.wbufsize = 64;
    ss_server *srv = start(&opt, &h, &serve);
    assert_int_equal(tu_roundtrip(srv, "", reply, sizeof reply), 7);
    assert_string_equal(reply, "zero=0\n");
    stop(srv, serve);

    tu_options(&opt, TU_UDP, SS_MODE_SYNC, NULL, 0);
    srv = start(&opt, &h, &serve);
    assert_true(tu_roundtrip(srv, "q", reply, sizeof reply) > 0);
    assert_string_equal(reply, "abc zero=0 huge=-1/EMSGSIZE");
    stop(srv, serve);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_readline_limit),
        TU_TEST(test_readline_across_segments),
        TU_TEST(test_read_and_pending),
        TU_TEST(test_read_exact),
        TU_TEST(test_read_eof),
        TU_TEST(test_request_fd_is_connection),
        TU_TEST(test_write_unbuffered_immediate),
        TU_TEST(test_write_buffered_flushed_by_read),
        TU_TEST(test_flush_buffered),
        TU_TEST(test_write_buffered_large),
        TU_TEST(test_write_big_with_signals),
        TU_TEST(test_printf),
        TU_TEST(test_request_timeout_sync),
        TU_TEST(test_request_timeout_threading),
        TU_TEST(test_request_timeout_forking),
        TU_TEST(test_request_timeout_pool),
        TU_TEST(test_request_set_timeout),
        TU_TEST(test_request_timeout_write),
        TU_TEST(test_disable_nagle),
        TU_TEST(test_nagle_default),
        TU_TEST(test_write_edges),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
