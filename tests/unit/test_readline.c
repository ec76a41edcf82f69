/*
 * test_readline.c - ss_readline_ex, the line layer: lines and pieces as
 * ss_readline gives them, CRLF kept, a last line without LF, over-long lines
 * discarded through their LF with the count reported, lines longer than the
 * internal 8 KiB buffer, a deadline for the whole line (not per receive),
 * SS_LINE_STOP ending the wait on a graceful stop, and datagram requests.
 *
 * Handlers run in threading mode (sync for the datagram case), record each
 * call's result in `calls` and say "done" through a channel; the test thread
 * asserts.
 */
#include "testutil.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_CALLS 8
#define PIECE_MAX 64
#define BIG_LINE 15000  /* longer than the internal buffer (8 KiB) */
#define HUGE_LINE 30000 /* longer than the caller's buffer below */
#define BIG_BUF 20000
#define DRIP_DEADLINE 0.3
#define DRIP_STEP_MS 50

struct call {
    ssize_t r;
    int err;
    size_t dropped;
    double elapsed;
    char text[PIECE_MAX];
};

static struct call calls[MAX_CALLS];
static int ncalls;
static tu_chan done;
static tu_chan go; /* test -> handler: carry on */
static tu_serve *serving;

/* What the handlers do: the buffer size, deadline and flags of each call. */
static size_t arg_size;
static double arg_timeout;
static unsigned arg_flags;
static int arg_count;

static void record(ss_request *req, char *buf, size_t size)
{
    struct call *c = &calls[ncalls];
    double t0 = tu_now();
    size_t dropped = 12345;

    errno = 0;
    c->r = ss_readline_ex(req, buf, size, arg_timeout, arg_flags, &dropped);
    c->err = errno;
    c->dropped = dropped;
    c->elapsed = tu_now() - t0;
    if (c->r > 0) {
        size_t k = (size_t)c->r < PIECE_MAX - 1 ? (size_t)c->r : PIECE_MAX - 1;
        memcpy(c->text, buf, k);
        c->text[k] = '\0';
    }
    ncalls++;
}

/* arg_count calls with arg_size bytes of room each. */
static int calls_handle(ss_request *req)
{
    char *buf = malloc(arg_size > 0 ? arg_size : 1);
    if (buf == NULL)
        return SS_ERROR;
    for (int i = 0; i < arg_count && i < MAX_CALLS; i++)
        record(req, buf, arg_size);
    free(buf);
    tu_chan_put(&done, 'D');
    return SS_OK;
}

static ss_server *start(ss_mode mode, enum tu_kind kind, int (*handle)(ss_request *))
{
    ss_options opt;
    ss_handler h = {.handle = handle};
    ss_server *srv;

    tu_options(&opt, kind, mode, NULL, 0);
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    serving = tu_serve_start(srv, 0.05);
    assert_non_null(serving);
    return srv;
}

/* The serving thread ends before the server is freed. */
static void stop_and_free(ss_server *srv)
{
    assert_int_equal(tu_serve_stop(serving), 0);
    tu_server_free(srv);
}

static void prepare(size_t size, double timeout, unsigned flags, int count)
{
    memset(calls, 0, sizeof calls);
    ncalls = 0;
    arg_size = size;
    arg_timeout = timeout;
    arg_flags = flags;
    arg_count = count;
    assert_int_equal(tu_chan_open(&done), 0);
    assert_int_equal(tu_chan_open(&go), 0);
}

static void finish(void)
{
    tu_chan_close(&done);
    tu_chan_close(&go);
}

/* Send data, close the sending side, wait for the handler to finish. */
static void run_stream_n(const void *data, size_t len)
{
    ss_server *srv = start(SS_MODE_THREADING, TU_TCP, calls_handle);
    int fd = tu_client(srv, NULL, 0);

    assert_true(fd >= 0);
    assert_int_equal(tu_send_all(fd, data, len), (ssize_t)len);
    shutdown(fd, SHUT_WR);
    assert_int_equal(tu_chan_get(&done, TU_WAIT_MS), 'D');
    close(fd);
    stop_and_free(srv);
}

static void run_stream(const char *text)
{
    run_stream_n(text, strlen(text));
}

static void expect(int i, ssize_t r, const char *text)
{
    assert_int_equal(calls[i].r, r);
    if (text != NULL)
        assert_string_equal(calls[i].text, text);
}

static void expect_error(int i, int err)
{
    assert_int_equal(calls[i].r, -1);
    assert_int_equal(calls[i].err, err);
}

static void test_pieces_and_crlf(void **state)
{
    (void)state;
    prepare(5, -1, 0, 6);
    run_stream("abc\nde\r\nfghij\nk");
    expect(0, 4, "abc\n");
    expect(1, 4, "de\r\n"); /* CRLF kept as it is */
    expect(2, 4, "fghi");   /* a piece: the line is longer than size - 1 */
    expect(3, 2, "j\n");
    expect(4, 1, "k");  /* the last line, without LF */
    expect(5, 0, NULL); /* end of input */
    assert_int_equal(calls[0].dropped, 0);
    finish();
}

static void test_exact_fit(void **state)
{
    (void)state;
    /* A line of exactly size - 1 bytes with its LF fits; a last line of
     * size - 1 bytes without LF fits too. */
    prepare(5, 2.0, SS_LINE_DISCARD, 3);
    run_stream("abc\nwxyz");
    expect(0, 4, "abc\n");
    expect(1, 4, "wxyz");
    expect(2, 0, NULL);
    finish();
}

static void test_discard_reports_dropped(void **state)
{
    (void)state;
    prepare(8, -1, SS_LINE_DISCARD, 5);
    run_stream("short\nthis line is too long\r\nnext\n12345678");
    expect(0, 6, "short\n");
    expect_error(1, EMSGSIZE);
    assert_int_equal(calls[1].dropped, 23); /* the whole line, CR LF included */
    expect(2, 5, "next\n");                 /* the next line is intact */
    expect_error(3, EMSGSIZE);              /* over-long up to the end of input */
    assert_int_equal(calls[3].dropped, 8);
    expect(4, 0, NULL);
    finish();
}

static char *line_of(size_t n, char fill)
{
    char *p = malloc(n + 1);
    assert_non_null(p);
    memset(p, fill, n);
    p[n - 1] = '\n';
    p[n] = '\0';
    return p;
}

static void test_longer_than_internal_buffer(void **state)
{
    (void)state;
    /* BIG_LINE fits the caller's buffer but not the internal one; then a
     * HUGE_LINE that fits neither. */
    char *big = line_of(BIG_LINE + 1, 'b');
    char *huge = line_of(HUGE_LINE + 1, 'h');
    size_t len = strlen(big) + strlen(huge) + 5;
    char *all = malloc(len + 1);
    assert_non_null(all);
    memcpy(all, big, BIG_LINE + 1);
    memcpy(all + BIG_LINE + 1, huge, HUGE_LINE + 1);
    memcpy(all + BIG_LINE + 1 + HUGE_LINE + 1, "end\n", 5);

    /* With DISCARD: the big line whole, the huge one dropped, then "end". */
    prepare(BIG_BUF, 5.0, SS_LINE_DISCARD, 3);
    run_stream_n(all, len - 1);
    expect(0, BIG_LINE + 1, NULL);
    expect_error(1, EMSGSIZE);
    assert_int_equal(calls[1].dropped, HUGE_LINE + 1);
    expect(2, 4, "end\n");
    finish();

    /* Without: the big line whole, the huge one in two pieces. */
    prepare(BIG_BUF, 5.0, 0, 4);
    run_stream_n(all, len - 1);
    expect(0, BIG_LINE + 1, NULL);
    expect(1, BIG_BUF - 1, NULL);
    expect(2, HUGE_LINE + 1 - (BIG_BUF - 1), NULL);
    expect(3, 4, "end\n");
    finish();

    /* A small buffer and DISCARD over a line longer than the internal
     * buffer. */
    prepare(100, -1, SS_LINE_DISCARD, 2);
    run_stream_n(big, BIG_LINE + 1);
    expect_error(0, EMSGSIZE);
    assert_int_equal(calls[0].dropped, BIG_LINE + 1);
    expect(1, 0, NULL);
    finish();
    free(big);
    free(huge);
    free(all);
}

static void test_size_too_small(void **state)
{
    (void)state;
    prepare(1, -1, 0, 1);
    run_stream("x\n");
    expect_error(0, EINVAL);
    finish();
    prepare(0, -1, 0, 1);
    run_stream("x\n");
    expect_error(0, EINVAL);
    finish();
    prepare(8, -1, 0x80, 1); /* an unknown flag */
    run_stream("x\n");
    expect_error(0, EINVAL);
    finish();
}

/* One byte per DRIP_STEP_MS: every receive is quick, the whole line is not. */
static void test_deadline_is_for_the_whole_line(void **state)
{
    (void)state;
    const char *line = "abcdefghijklmnopqrstuvwxyz\n";
    ss_server *srv;
    int fd;
    size_t i;

    prepare(64, DRIP_DEADLINE, 0, 1);
    srv = start(SS_MODE_THREADING, TU_TCP, calls_handle);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    for (i = 0; line[i] != '\0'; i++) {
        struct pollfd p = {.fd = done.rd, .events = POLLIN, .revents = 0};
        if (poll(&p, 1, DRIP_STEP_MS) > 0)
            break; /* the handler gave up */
        if (tu_send_all(fd, line + i, 1) != 1)
            break;
    }
    assert_int_equal(tu_chan_get(&done, TU_WAIT_MS), 'D');
    expect_error(0, ETIMEDOUT);
    assert_true(calls[0].elapsed >= DRIP_DEADLINE - 0.01);
    assert_true(calls[0].elapsed < DRIP_DEADLINE + 0.5);
    assert_true(line[i] != '\0'); /* it did not wait for the whole line */
    close(fd);
    stop_and_free(srv);
    finish();
}

/* After ETIMEDOUT the unfinished line stays buffered for the next call. */
static int partial_handle(ss_request *req)
{
    char buf[64];

    record(req, buf, sizeof buf);
    tu_chan_put(&done, 'T');
    tu_chan_get(&go, TU_WAIT_MS);
    arg_timeout = -1;
    record(req, buf, sizeof buf);
    tu_chan_put(&done, 'D');
    return SS_OK;
}

static void test_timeout_keeps_partial_line(void **state)
{
    (void)state;
    ss_server *srv;
    int fd;

    prepare(64, 0.2, 0, 0);
    srv = start(SS_MODE_THREADING, TU_TCP, partial_handle);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(tu_send_all(fd, "par", 3), 3);
    assert_int_equal(tu_chan_get(&done, TU_WAIT_MS), 'T');
    expect_error(0, ETIMEDOUT);
    assert_int_equal(tu_send_all(fd, "tial\n", 5), 5);
    tu_chan_put(&go, 'G');
    assert_int_equal(tu_chan_get(&done, TU_WAIT_MS), 'D');
    expect(1, 8, "partial\n");
    close(fd);
    stop_and_free(srv);
    finish();
}

/* Waits for a line with SS_LINE_STOP, then says goodbye. */
static int stop_handle(ss_request *req)
{
    char buf[64];

    ss_write(req, "ready\n", 6);
    record(req, buf, sizeof buf);
    ss_write(req, "bye\n", 4);
    tu_chan_put(&done, 'D');
    return SS_OK;
}

static void test_stop_flag(void **state)
{
    (void)state;
    char line[64];
    ss_server *srv;
    int fd;

    prepare(64, -1, SS_LINE_STOP, 0);
    srv = start(SS_MODE_THREADING, TU_TCP, stop_handle);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(tu_recv_line(fd, line, sizeof line, TU_WAIT_MS), 6);
    double t0 = tu_now();
    assert_int_equal(ss_server_stop(srv, 30.0), 0);
    assert_true(tu_now() - t0 < 5.0); /* not the grace: the handler ended */
    assert_int_equal(tu_chan_get(&done, TU_WAIT_MS), 'D');
    expect_error(0, ECANCELED);
    assert_int_equal(tu_recv_line(fd, line, sizeof line, TU_WAIT_MS), 4);
    assert_string_equal(line, "bye\n");
    assert_int_equal(tu_wait_eof(fd, TU_WAIT_MS), 0);
    assert_int_equal(tu_serve_wait(serving, TU_WAIT_MS), 0);
    close(fd);
    tu_server_free(srv);
    finish();
}

static void test_datagram(void **state)
{
    (void)state;
    char path[TU_PATH_MAX];
    ss_server *srv;
    int fd;

    prepare(8, 1.0, SS_LINE_DISCARD | SS_LINE_STOP, 5);
    srv = start(SS_MODE_SYNC, TU_UDP, calls_handle);
    fd = tu_client(srv, path, sizeof path);
    assert_true(fd >= 0);
    const char *dgram = "one\r\nmuch too long\ntwo";
    assert_int_equal(tu_send_all(fd, dgram, strlen(dgram)), (ssize_t)strlen(dgram));
    assert_int_equal(tu_chan_get(&done, TU_WAIT_MS), 'D');
    expect(0, 5, "one\r\n");
    expect_error(1, EMSGSIZE);
    assert_int_equal(calls[1].dropped, 14);
    expect(2, 3, "two"); /* the datagram's end ends the line */
    expect(3, 0, NULL);
    expect(4, 0, NULL);
    assert_true(calls[3].elapsed < 0.5); /* nothing is waited for */
    close(fd);
    stop_and_free(srv);
    finish();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_pieces_and_crlf),
        TU_TEST(test_exact_fit),
        TU_TEST(test_discard_reports_dropped),
        TU_TEST(test_longer_than_internal_buffer),
        TU_TEST(test_size_too_small),
        TU_TEST(test_deadline_is_for_the_whole_line),
        TU_TEST(test_timeout_keeps_partial_line),
        TU_TEST(test_stop_flag),
        TU_TEST(test_datagram),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
