/*
 * test_datagram.c - DatagramRequestHandler: the datagram as input (data,
 * readline, read), empty datagrams, truncation at max_packet_size, the reply
 * buffer sent after finish, ss_reply and ss_flush sending at once, the reply
 * size limit, and Unix datagram clients with and without a bound path.
 */
#include "testutil.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The largest UDP payload over IPv4, and so the largest reply. */
#define MAX_REPLY 65507

static tu_chan events;
static tu_chan release;

static void open_chans(void)
{
    assert_int_equal(tu_chan_open(&events), 0);
    assert_int_equal(tu_chan_open(&release), 0);
}

static void close_chans(void)
{
    tu_chan_close(&events);
    tu_chan_close(&release);
}

static ss_server *start_dgram(ss_options *opt, const ss_handler *h, tu_serve **serve)
{
    ss_server *srv;

    opt->type = SS_DATAGRAM;
    srv = tu_server_new(opt, h);
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

/* Sends msg (len bytes) and receives the reply into buf. */
static ssize_t exchange(int fd, const void *msg, size_t len, void *buf, size_t size)
{
    if (send(fd, msg, len, 0) != (ssize_t)len)
        return -1;
    return tu_recv_dgram(fd, buf, size, TU_WAIT_MS);
}

/* ---- empty datagrams ----------------------------------------------------- */

static int data_echo_handle(ss_request *req)
{
    size_t len = 99;
    const void *data = ss_request_data(req, &len);

    if (data == NULL || !ss_request_is_datagram(req))
        return SS_ERROR;
    if (ss_request_fd(req) != ss_server_fileno(ss_request_server(req)))
        return SS_ERROR;
    tu_chan_put(&events, len == 0 ? 'Z' : 'D');
    return ss_write(req, data, len) == (ssize_t)len ? SS_OK : SS_ERROR;
}

/* An empty datagram is a request like any other: the handler sees length 0
 * and the (empty) reply goes back. */
static void run_empty(enum tu_kind kind, ss_mode mode)
{
    ss_options opt;
    ss_handler h = {.handle = data_echo_handle};
    char path[TU_PATH_MAX + 8], cpath[TU_PATH_MAX];
    char buf[64];
    tu_serve *serve;
    ss_server *srv;
    int fd;

    open_chans();
    tu_options(&opt, kind, mode, path, sizeof(path));
    srv = start_dgram(&opt, &h, &serve);
    fd = tu_client(srv, cpath, sizeof(cpath));
    assert_true(fd >= 0);
    assert_int_equal(exchange(fd, "", 0, buf, sizeof(buf)), 0);
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'Z');
    /* And a non-empty one after it still works. */
    assert_int_equal(exchange(fd, "abc", 3, buf, sizeof(buf)), 3);
    assert_memory_equal(buf, "abc", 3);
    close(fd);
    if (cpath[0] != '\0')
        unlink(cpath);
    stop(srv, serve);
    close_chans();
}

static void test_empty_datagram_udp(void **state)
{
    (void)state;
    run_empty(TU_UDP, SS_MODE_SYNC);
    run_empty(TU_UDP, SS_MODE_THREADING);
    run_empty(TU_UDP, SS_MODE_FORKING);
    run_empty(TU_UDP, SS_MODE_POOL);
}

static void test_empty_datagram_unix(void **state)
{
    (void)state;
    run_empty(TU_UNIX_DGRAM, SS_MODE_SYNC);
    run_empty(TU_UNIX_DGRAM, SS_MODE_THREADING);
}

/* ---- truncation ---------------------------------------------------------- */

static int truncation_handle(ss_request *req)
{
    size_t len = 0;

    if (ss_request_data(req, &len) == NULL)
        return SS_ERROR;
    return ss_printf(req, "%c%zu", ss_request_truncated(req) ? 'T' : 'F', len) > 0 ? SS_OK
                                                                                   : SS_ERROR;
}

static void run_truncation(size_t max, size_t sent, const char *want)
{
    ss_options opt;
    ss_handler h = {.handle = truncation_handle};
    char *msg = calloc(1, sent + 1);
    char buf[64];
    tu_serve *serve;
    ss_server *srv;
    ssize_t n;
    int fd;

    assert_non_null(msg);
    ss_options_init(&opt);
    if (max > 0)
        opt.max_packet_size = max;
    srv = start_dgram(&opt, &h, &serve);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    n = exchange(fd, msg, sent, buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, want);
    close(fd);
    free(msg);
    stop(srv, serve);
}

/* Longer datagrams are cut at max_packet_size (as Python) and say so. */
static void test_truncation(void **state)
{
    (void)state;
    run_truncation(100, 150, "T100");
    run_truncation(100, 101, "T100");
    run_truncation(100, 100, "F100");
    run_truncation(100, 99, "F99");
    /* Python's default: 8192. */
    run_truncation(0, 10000, "T8192");
    run_truncation(0, 8192, "F8192");
}

/* ---- the reply buffer ---------------------------------------------------- */

static int two_part_handle(ss_request *req)
{
    return ss_write(req, "ab", 2) == 2 && ss_printf(req, "%d", 12) == 2 ? SS_OK : SS_ERROR;
}

static void two_part_finish(ss_request *req)
{
    ss_write(req, "cd", 2);
}

/* What handle and finish wrote goes back as one datagram after finish. */
static void test_reply_buffer_sent_after_finish(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = two_part_handle, .finish = two_part_finish};
    char buf[64];
    tu_serve *serve;
    ss_server *srv;
    int fd;

    (void)state;
    ss_options_init(&opt);
    srv = start_dgram(&opt, &h, &serve);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(exchange(fd, "x", 1, buf, sizeof(buf)), 6);
    assert_memory_equal(buf, "ab12cd", 6);
    close(fd);
    stop(srv, serve);
}

static int direct_handle(ss_request *req)
{
    size_t len = 0;
    const char *data = ss_request_data(req, &len);

    if (len == 5 && memcmp(data, "reply", 5) == 0) {
        if (ss_reply(req, "now", 3) != 3)
            return SS_ERROR;
    } else if (len == 5 && memcmp(data, "flush", 5) == 0) {
        if (ss_write(req, "buffered", 8) != 8 || ss_flush(req) != 0)
            return SS_ERROR;
    } else {
        return ss_write(req, data, len) == (ssize_t)len ? SS_OK : SS_ERROR;
    }
    /* Sent already: the client has it while this handler still waits. */
    tu_chan_get(&release, TU_WAIT_MS);
    /* Not sent: the request counts as answered. */
    return ss_write(req, "later", 5) == 5 ? SS_OK : SS_ERROR;
}

/* ss_reply (and ss_flush of a datagram reply) send at once, and the finish
 * reply is not sent afterwards. */
static void run_direct(const char *first, const char *want)
{
    ss_options opt;
    ss_handler h = {.handle = direct_handle};
    char buf[64];
    tu_serve *serve;
    ss_server *srv;
    ssize_t n;
    int fd;

    open_chans();
    ss_options_init(&opt);
    srv = start_dgram(&opt, &h, &serve);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    n = exchange(fd, first, strlen(first), buf, sizeof(buf) - 1);
    assert_int_equal(n, strlen(want));
    buf[n] = '\0';
    assert_string_equal(buf, want);
    assert_int_equal(tu_chan_put(&release, 'r'), 0);
    /* The next datagram's reply is the next to arrive: no "later". */
    n = exchange(fd, "second", 6, buf, sizeof(buf) - 1);
    assert_int_equal(n, 6);
    buf[n] = '\0';
    assert_string_equal(buf, "second");
    close(fd);
    stop(srv, serve);
    close_chans();
}

static void test_reply_direct(void **state)
{
    (void)state;
    run_direct("reply", "now");
}

static void test_flush_datagram(void **state)
{
    (void)state;
    run_direct("flush", "buffered");
}

/* ---- input as a stream --------------------------------------------------- */

static int dgram_reader_handle(ss_request *req)
{
    char a[32], b[32], c[32];
    ssize_t na = ss_readline(req, a, sizeof(a));
    ssize_t nb = ss_readline(req, b, sizeof(b));
    ssize_t nc = ss_readline(req, c, sizeof(c));
    ssize_t nd = ss_read(req, c, sizeof(c));

    if (na < 0 || nb < 0 || nc != 0 || nd != 0)
        return SS_ERROR;
    return ss_printf(req, "[%s][%s]", a, b) > 0 ? SS_OK : SS_ERROR;
}

static void test_datagram_readline(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = dgram_reader_handle};
    char buf[64];
    tu_serve *serve;
    ss_server *srv;
    ssize_t n;
    int fd;

    (void)state;
    ss_options_init(&opt);
    srv = start_dgram(&opt, &h, &serve);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    n = exchange(fd, "hello\nworld", 11, buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, "[hello\n][world]");
    close(fd);
    stop(srv, serve);
}

/* ss_request_wait on a datagram's own input: ready while bytes are left;
 * once they are read, only the stop (or the timeout) ends the wait -- a
 * datagram has no more input to come, and no end of input to report. */
static int dgram_wait_handle(ss_request *req)
{
    char buf[16];
    int before = ss_request_wait(req, -1, POLLIN, 5.0);
    ssize_t n = ss_read(req, buf, sizeof(buf));
    int after = ss_request_wait(req, -1, POLLIN, 0.05);
    ssize_t more = ss_read(req, buf, sizeof(buf));
    return ss_printf(req, "%d %zd %d %zd", before, n, after, more) > 0 ? SS_OK : SS_ERROR;
}

static void test_datagram_wait_own_input(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = dgram_wait_handle};
    char buf[64];
    tu_serve *serve;
    ss_server *srv;
    ssize_t n;
    int fd;

    (void)state;
    ss_options_init(&opt);
    srv = start_dgram(&opt, &h, &serve);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    n = exchange(fd, "ping", 4, buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, "1 4 0 0"); /* POLLIN, 4 bytes, timeout, nothing */
    close(fd);
    stop(srv, serve);
}

static int dgram_exact_handle(ss_request *req)
{
    char buf[16];
    ssize_t a = ss_read_exact(req, buf, 3);
    ssize_t b;
    int err;

    errno = 0;
    b = ss_read_exact(req, buf, 10);
    err = errno;
    return ss_printf(req, "%zd %zd %s", a, b, err == ENODATA ? "ENODATA" : "other") > 0 ? SS_OK
                                                                                        : SS_ERROR;
}

static void test_datagram_read_exact(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = dgram_exact_handle};
    char buf[64];
    tu_serve *serve;
    ss_server *srv;
    ssize_t n;
    int fd;

    (void)state;
    ss_options_init(&opt);
    srv = start_dgram(&opt, &h, &serve);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    n = exchange(fd, "abcdef", 6, buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, "3 -1 ENODATA");
    close(fd);
    stop(srv, serve);
}

/* ---- reply size ---------------------------------------------------------- */

static int big_reply_handle(ss_request *req)
{
    static char big[MAX_REPLY];
    ssize_t over;

    memset(big, 'q', sizeof(big));
    if (ss_write(req, big, sizeof(big)) != MAX_REPLY)
        return SS_ERROR;
    errno = 0;
    over = ss_write(req, "!", 1);
    tu_chan_put(&events, over == -1 && errno == EMSGSIZE ? 'M' : 'x');
    return SS_OK;
}

/* A reply of 65507 bytes is sent; one byte more fails with EMSGSIZE. */
static void test_reply_size_limit(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = big_reply_handle};
    char *buf = malloc(MAX_REPLY + 100);
    tu_serve *serve;
    ss_server *srv;
    int fd;

    (void)state;
    assert_non_null(buf);
    open_chans();
    ss_options_init(&opt);
    srv = start_dgram(&opt, &h, &serve);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(exchange(fd, "x", 1, buf, MAX_REPLY + 100), MAX_REPLY);
    assert_int_equal(buf[0], 'q');
    assert_int_equal(buf[MAX_REPLY - 1], 'q');
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'M');
    close(fd);
    free(buf);
    stop(srv, serve);
    close_chans();
}

/* ---- client addresses ---------------------------------------------------- */

static int client_str_handle(ss_request *req)
{
    const char *s = ss_request_client_str(req);
    size_t len = s != NULL ? strlen(s) : 0;

    /* Reported through the pipe: an unbound client cannot get a reply. */
    if (s != NULL && write(events.wr, s, len) != (ssize_t)len)
        return SS_ERROR;
    tu_chan_put(&events, '\n');
    return ss_printf(req, "%s", s != NULL ? s : "(null)") > 0 ? SS_OK : SS_ERROR;
}

static void read_event_line(char *buf, size_t size)
{
    size_t n = 0;

    while (n + 1 < size) {
        int c = tu_chan_get(&events, TU_WAIT_MS);

        assert_true(c >= 0);
        if (c == '\n')
            break;
        buf[n++] = (char)c;
    }
    buf[n] = '\0';
}

/* A Unix datagram client bound to a path gets its reply there, and the
 * handler sees that path; an unbound client is "unix:". */
static void test_unix_datagram_client_paths(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = client_str_handle};
    char path[TU_PATH_MAX + 8], cpath[TU_PATH_MAX], want[TU_PATH_MAX + 8];
    char buf[256];
    tu_serve *serve;
    ss_server *srv;
    ssize_t n;
    int fd;

    (void)state;
    open_chans();
    tu_options(&opt, TU_UNIX_DGRAM, SS_MODE_SYNC, path, sizeof(path));
    srv = start_dgram(&opt, &h, &serve);

    fd = tu_client(srv, cpath, sizeof(cpath));
    assert_true(fd >= 0);
    snprintf(want, sizeof(want), "unix:%s", cpath);
    n = exchange(fd, "x", 1, buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, want);
    read_event_line(buf, sizeof(buf));
    assert_string_equal(buf, want);
    close(fd);
    unlink(cpath);

    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(send(fd, "y", 1, 0), 1);
    read_event_line(buf, sizeof(buf));
    assert_string_equal(buf, "unix:");
    close(fd);

    /* The server goes on serving after a request it could not answer. */
    fd = tu_client(srv, cpath, sizeof(cpath));
    assert_true(fd >= 0);
    assert_true(exchange(fd, "z", 1, buf, sizeof(buf) - 1) > 0);
    close(fd);
    unlink(cpath);
    stop(srv, serve);
    close_chans();
}

/* A UDP client's address as the handler sees it is the client's own. */
static void test_udp_client_address(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = client_str_handle};
    struct sockaddr_storage me;
    socklen_t len = sizeof(me);
    char buf[256], want[128];
    tu_serve *serve;
    ss_server *srv;
    ssize_t n;
    int fd;

    (void)state;
    open_chans();
    ss_options_init(&opt);
    srv = start_dgram(&opt, &h, &serve);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&me, &len), 0);
    assert_non_null(ss_format_address((struct sockaddr *)&me, len, want, sizeof(want)));
    n = exchange(fd, "x", 1, buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, want);
    close(fd);
    stop(srv, serve);
    close_chans();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_empty_datagram_udp), TU_TEST(test_empty_datagram_unix),
        TU_TEST(test_truncation),         TU_TEST(test_reply_buffer_sent_after_finish),
        TU_TEST(test_reply_direct),       TU_TEST(test_flush_datagram),
        TU_TEST(test_datagram_readline),  TU_TEST(test_datagram_read_exact),
        TU_TEST(test_reply_size_limit),   TU_TEST(test_unix_datagram_client_paths),
        TU_TEST(test_udp_client_address), TU_TEST(test_datagram_wait_own_input),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
