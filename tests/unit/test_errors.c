/*
 * test_errors.c - CPython's ErrorHandlerTest in every mode: a handler that
 * fails (SS_ERROR, Python's Exception) reaches handle_error and serving goes
 * on; a handler that aborts (SS_ABORT, Python's SystemExit) does not reach
 * handle_error, stops a sync server with ECANCELED and ends only its own
 * request elsewhere. As in CPython, the server handles one request with
 * handle_request, is closed (which waits for threads and children), and the
 * events the hooks reported are read afterwards - through a pipe, so a forked
 * child can report too.
 */
#include "testutil.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static tu_chan events;
static int handler_result;

static int failing_handle(ss_request *req)
{
    (void)req;
    tu_chan_put(&events, 'H');
    return handler_result;
}

static void recording_error(ss_server *srv, ss_request *req, int err)
{
    (void)err;
    /* 'E' for an error about a request, 'e' for a server-level one. */
    tu_chan_put(&events, req != NULL && ss_request_server(req) == srv ? 'E' : 'e');
}

/* Runs one request whose handler returns result; returns the events. */
static void run_one(ss_mode mode, ss_socktype type, int result, int want_rc, int want_errno,
                    const char *want_events)
{
    ss_options opt;
    ss_handler h = {.handle = failing_handle};
    ss_server *srv;
    char path[TU_PATH_MAX];
    char got[32];
    size_t n;
    int fd, rc;

    assert_int_equal(tu_chan_open(&events), 0);
    handler_result = result;
    ss_options_init(&opt);
    opt.mode = mode;
    opt.type = type;
    opt.handle_error = recording_error;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    fd = tu_client(srv, path, sizeof(path));
    assert_true(fd >= 0);
    assert_int_equal(tu_send_all(fd, TU_TEST_STR, strlen(TU_TEST_STR)), strlen(TU_TEST_STR));
    errno = 0;
    rc = ss_handle_request(srv);
    assert_int_equal(rc, want_rc);
    if (want_rc < 0)
        assert_int_equal(errno, want_errno);
    if (type == SS_STREAM) {
        /* shutdown_request runs however the handler ended. */
        assert_int_equal(tu_wait_eof(fd, TU_WAIT_MS), 0);
    }
    ss_server_close(srv);
    assert_int_equal(ss_server_active(srv), 0);
    n = tu_chan_drain(&events, got, sizeof(got) - 1);
    got[n] = '\0';
    assert_string_equal(got, want_events);
    close(fd);
    tu_server_free(srv);
    tu_chan_close(&events);
}

static void test_sync_handled(void **state)
{
    (void)state;
    run_one(SS_MODE_SYNC, SS_STREAM, SS_ERROR, 1, 0, "HE");
}

/* Any negative value other than SS_ABORT counts as SS_ERROR. */
static void test_sync_handled_other_negative(void **state)
{
    (void)state;
    run_one(SS_MODE_SYNC, SS_STREAM, -7, 1, 0, "HE");
}

/* SystemExit propagates out of handle_request: -1 with ECANCELED. */
static void test_sync_not_handled(void **state)
{
    (void)state;
    run_one(SS_MODE_SYNC, SS_STREAM, SS_ABORT, -1, ECANCELED, "H");
}

static void test_threading_handled(void **state)
{
    (void)state;
    run_one(SS_MODE_THREADING, SS_STREAM, SS_ERROR, 1, 0, "HE");
}

static void test_threading_not_handled(void **state)
{
    (void)state;
    run_one(SS_MODE_THREADING, SS_STREAM, SS_ABORT, 1, 0, "H");
}

static void test_forking_handled(void **state)
{
    (void)state;
    run_one(SS_MODE_FORKING, SS_STREAM, SS_ERROR, 1, 0, "HE");
}

static void test_forking_not_handled(void **state)
{
    (void)state;
    run_one(SS_MODE_FORKING, SS_STREAM, SS_ABORT, 1, 0, "H");
}

static void test_pool_handled(void **state)
{
    (void)state;
    run_one(SS_MODE_POOL, SS_STREAM, SS_ERROR, 1, 0, "HE");
}

static void test_pool_not_handled(void **state)
{
    (void)state;
    run_one(SS_MODE_POOL, SS_STREAM, SS_ABORT, 1, 0, "H");
}

static void test_datagram_handled(void **state)
{
    (void)state;
    run_one(SS_MODE_SYNC, SS_DATAGRAM, SS_ERROR, 1, 0, "HE");
    run_one(SS_MODE_THREADING, SS_DATAGRAM, SS_ERROR, 1, 0, "HE");
    run_one(SS_MODE_FORKING, SS_DATAGRAM, SS_ERROR, 1, 0, "HE");
    run_one(SS_MODE_POOL, SS_DATAGRAM, SS_ERROR, 1, 0, "HE");
}

static void test_datagram_not_handled(void **state)
{
    (void)state;
    run_one(SS_MODE_SYNC, SS_DATAGRAM, SS_ABORT, -1, ECANCELED, "H");
    run_one(SS_MODE_THREADING, SS_DATAGRAM, SS_ABORT, 1, 0, "H");
    run_one(SS_MODE_FORKING, SS_DATAGRAM, SS_ABORT, 1, 0, "H");
    run_one(SS_MODE_POOL, SS_DATAGRAM, SS_ABORT, 1, 0, "H");
}

/* In serve_forever: SS_ERROR keeps serving, SS_ABORT in sync mode stops the
 * loop with -1/ECANCELED; elsewhere the loop keeps serving after it. */
static int abort_on_marker(ss_request *req)
{
    char line[64];
    ssize_t n = ss_readline(req, line, sizeof(line));

    if (n > 0 && strcmp(line, "abort\n") == 0)
        return SS_ABORT;
    if (n > 0 && strcmp(line, "error\n") == 0)
        return SS_ERROR;
    if (n < 0 || ss_write(req, line, (size_t)n) != n)
        return SS_ERROR;
    return SS_OK;
}

static void run_serve_abort(ss_mode mode)
{
    ss_options opt;
    ss_handler h = {.handle = abort_on_marker};
    ss_server *srv;
    tu_serve *serve;
    char reply[64];
    int fd;

    assert_int_equal(tu_chan_open(&events), 0);
    ss_options_init(&opt);
    opt.mode = mode;
    opt.handle_error = recording_error;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 30.0);
    assert_non_null(serve);

    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(tu_send_all(fd, "error\n", 6), 6);
    assert_int_equal(tu_wait_eof(fd, TU_WAIT_MS), 0);
    close(fd);
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'E');
    assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply)), strlen(TU_TEST_STR));

    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(tu_send_all(fd, "abort\n", 6), 6);
    assert_int_equal(tu_wait_eof(fd, TU_WAIT_MS), 0);
    close(fd);
    if (mode == SS_MODE_SYNC) {
        assert_int_equal(tu_serve_wait(serve, TU_WAIT_MS), 0);
        assert_int_equal(serve->rc, -1);
        assert_int_equal(serve->err, ECANCELED);
    } else {
        assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply)), strlen(TU_TEST_STR));
        assert_int_equal(tu_serve_stop(serve), 0);
        assert_int_equal(serve->rc, 0);
    }
    ss_server_close(srv);
    /* No handle_error for the abort. */
    assert_int_equal(tu_chan_drain(&events, reply, sizeof(reply)), 0);
    tu_server_free(srv);
    tu_chan_close(&events);
}

static void test_serve_abort_sync(void **state)
{
    (void)state;
    run_serve_abort(SS_MODE_SYNC);
}

static void test_serve_abort_threading(void **state)
{
    (void)state;
    run_serve_abort(SS_MODE_THREADING);
}

static void test_serve_abort_forking(void **state)
{
    (void)state;
    run_serve_abort(SS_MODE_FORKING);
}

static void test_serve_abort_pool(void **state)
{
    (void)state;
    run_serve_abort(SS_MODE_POOL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_sync_handled),          TU_TEST(test_sync_handled_other_negative),
        TU_TEST(test_sync_not_handled),      TU_TEST(test_threading_handled),
        TU_TEST(test_threading_not_handled), TU_TEST(test_forking_handled),
        TU_TEST(test_forking_not_handled),   TU_TEST(test_pool_handled),
        TU_TEST(test_pool_not_handled),      TU_TEST(test_datagram_handled),
        TU_TEST(test_datagram_not_handled),  TU_TEST(test_serve_abort_sync),
        TU_TEST(test_serve_abort_threading), TU_TEST(test_serve_abort_forking),
        TU_TEST(test_serve_abort_pool),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
