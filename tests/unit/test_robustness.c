/*
 * test_robustness.c - what a long-running server must survive: many
 * requests without leaking descriptors or threads, peers that reset while
 * the handler writes (no SIGPIPE), signals interrupting the loop and the
 * handler (EINTR), running out of descriptors (EMFILE: no spinning, serving
 * again afterwards), and no descriptor leaking across exec (CLOEXEC).
 */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Requests per mode in the leak tests. */
#define MANY_REQUESTS 10000
/* Forking mode pays a fork, an exit and a reap per request (about 0.2 ms of
 * CPU each, several times that under the sanitizers); a tenth as many still
 * shows a leak per request, in a fraction of the time. */
#define MANY_FORKED_REQUESTS 1000
/* Signals sent in the EINTR tests. */
#define SIGNALS 50
/* How long the EMFILE test watches the server while accept fails. */
#define EMFILE_WATCH_MS 300
/* Descriptors the EMFILE test may open to reach its lowered limit (the
 * holes below the highest open descriptor count too). */
#define EMFILE_FILLERS 1024
/* Free descriptor numbers above the highest open one under that limit. */
#define EMFILE_HEADROOM 16
/* Highest descriptor number the CLOEXEC scan looks at. */
#define SCAN_FDS 1024

static tu_chan events;

static void open_events(void)
{
    assert_int_equal(tu_chan_open(&events), 0);
}

/* ---- many requests leak nothing ------------------------------------------ */

static int many_requests(ss_mode mode)
{
    int n = mode == SS_MODE_FORKING ? MANY_FORKED_REQUESTS : MANY_REQUESTS;

    return n / tu_scale_divisor();
}

/* One TCP connection per request, made and closed by the client. */
static int stream_requests(ss_server *srv, int n)
{
    for (int i = 0; i < n; i++) {
        char reply[32];

        if (tu_roundtrip(srv, "x\n", reply, sizeof(reply)) != 2)
            return -1;
    }
    return 0;
}

/* Datagrams from one client socket, each answered before the next. */
static int datagram_requests(ss_server *srv, int n)
{
    int fd = tu_client(srv, NULL, 0);
    int rc = 0;

    if (fd < 0)
        return -1;
    for (int i = 0; i < n && rc == 0; i++) {
        char reply[32];

        if (send(fd, "x\n", 2, 0) != 2 || tu_recv_dgram(fd, reply, sizeof(reply), TU_WAIT_MS) != 2)
            rc = -1;
    }
    close(fd);
    return rc;
}

static void run_no_leak(ss_socktype type, ss_mode mode)
{
    ss_options opt;
    ss_handler h = {.handle = tu_echo_handle};
    ss_server *srv;
    tu_serve *serve;
    int fds_idle = tu_count_fds();
    int threads_idle = tu_count_threads();
    int fds0, threads0, n = many_requests(mode);
    int (*load)(ss_server *, int) = type == SS_STREAM ? stream_requests : datagram_requests;

    ss_options_init(&opt);
    opt.type = type;
    opt.mode = mode;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.05);
    assert_non_null(serve);
    /* Warm up, so whatever the server sets up once exists before counting. */
    assert_int_equal(load(srv, 10), 0);
    assert_int_equal(ss_server_drain(srv, TU_WAIT_MS / 1000.0), 0);
    fds0 = tu_count_fds();
    threads0 = tu_count_threads();

    assert_int_equal(load(srv, n), 0);
    assert_int_equal(ss_server_drain(srv, TU_WAIT_MS / 1000.0), 0);
    assert_true(tu_wait_fds(fds0, TU_WAIT_MS) <= fds0);
    assert_true(tu_wait_threads_at_most(threads0, TU_WAIT_MS) <= threads0);

    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
    /* And all of it goes with the server. */
    assert_int_equal(tu_wait_fds(fds_idle, TU_WAIT_MS), fds_idle);
    assert_true(tu_wait_threads_at_most(threads_idle, TU_WAIT_MS) <= threads_idle);
}

#define LEAK_TEST(T, M)                                                                            \
    static void test_no_leak_##T##_##M(void **state)                                               \
    {                                                                                              \
        (void)state;                                                                               \
        run_no_leak(SS_##T, SS_MODE_##M);                                                          \
    }

LEAK_TEST(STREAM, SYNC)
LEAK_TEST(STREAM, THREADING)
LEAK_TEST(STREAM, FORKING)
LEAK_TEST(STREAM, POOL)
LEAK_TEST(DATAGRAM, SYNC)
LEAK_TEST(DATAGRAM, THREADING)
LEAK_TEST(DATAGRAM, FORKING)
LEAK_TEST(DATAGRAM, POOL)

/* ---- SIGPIPE ------------------------------------------------------------- */

static pid_t test_pid;

static int flood_handle(ss_request *req)
{
    static char buf[65536];
    int i;

    if (getpid() != test_pid)
        tu_close_inherited_client(ss_request_fd(req));

    memset(buf, 'p', sizeof(buf));
    errno = 0;
    /* Bounded: far more than any socket buffer holds. */
    for (i = 0; i < 4096; i++) {
        if (ss_write(req, buf, sizeof(buf)) < 0)
            break;
    }
    tu_chan_put(&events, i < 4096 && (errno == EPIPE || errno == ECONNRESET) ? 'P' : 'x');
    return SS_OK;
}

/* The client resets the connection while the handler writes: the write
 * fails with EPIPE or ECONNRESET and the process lives on (SIGPIPE keeps
 * its default action in this test binary, so a raised one would kill it). */
static void run_sigpipe(ss_mode mode)
{
    ss_options opt;
    ss_handler h = {.handle = flood_handle};
    ss_server *srv;
    tu_serve *serve;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    char reply[64];
    int fd;

    open_events();
    test_pid = getpid();
    assert_true(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
    ss_options_init(&opt);
    opt.mode = mode;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(tu_wait_readable(fd, TU_WAIT_MS), 1);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(fd);
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'P');
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);

    /* Still alive and serving. */

    ss_options_init(&opt);
    opt.mode = mode;
    {
        ss_handler echo = {.handle = tu_echo_handle};

        srv = tu_server_new(&opt, &echo);
    }
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply)), strlen(TU_TEST_STR));
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
    tu_chan_close(&events);
}

static void test_sigpipe_sync(void **state)
{
    (void)state;
    run_sigpipe(SS_MODE_SYNC);
}

static void test_sigpipe_threading(void **state)
{
    (void)state;
    run_sigpipe(SS_MODE_THREADING);
}

static void test_sigpipe_forking(void **state)
{
    (void)state;
    run_sigpipe(SS_MODE_FORKING);
}

static void test_sigpipe_pool(void **state)
{
    (void)state;
    run_sigpipe(SS_MODE_POOL);
}

/* ---- EINTR --------------------------------------------------------------- */

/* Signals (without SA_RESTART) hitting the idle serve loop do not stop it. */
static void test_eintr_serve_loop(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = tu_echo_handle};
    ss_server *srv;
    tu_serve *serve;
    char reply[64];

    (void)state;
    assert_int_equal(tu_install_noop_handler(SIGUSR1), 0);
    ss_options_init(&opt);
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 30.0);
    assert_non_null(serve);
    for (int i = 0; i < SIGNALS; i++) {
        assert_int_equal(pthread_kill(serve->thread, SIGUSR1), 0);
        /* Let the loop get back to waiting between signals. */
        assert_int_equal(tu_wait_readable(serve->done[0], 1), 0);
    }
    assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply)), strlen(TU_TEST_STR));
    assert_int_equal(tu_wait_readable(serve->done[0], 0), 0);
    assert_int_equal(tu_serve_stop(serve), 0);
    assert_int_equal(serve->rc, 0);
    tu_server_free(srv);
    signal(SIGUSR1, SIG_DFL);
}

static int signalled_read_handle(ss_request *req)
{
    tu_chan_put(&events, 'S');
    return tu_echo_handle(req);
}

/* Signals while the handler waits in readline: the read goes on. */
static void test_eintr_handler_read(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = signalled_read_handle};
    ss_server *srv;
    tu_serve *serve;
    char reply[64];
    int fd;

    (void)state;
    open_events();
    assert_int_equal(tu_install_noop_handler(SIGUSR1), 0);
    ss_options_init(&opt);
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 30.0);
    assert_non_null(serve);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'S');
    for (int i = 0; i < SIGNALS; i++) {
        assert_int_equal(pthread_kill(serve->thread, SIGUSR1), 0);
        assert_int_equal(tu_wait_readable(fd, 1), 0);
    }
    assert_int_equal(tu_send_all(fd, TU_TEST_STR, strlen(TU_TEST_STR)), strlen(TU_TEST_STR));
    assert_int_equal(tu_recv_line(fd, reply, sizeof(reply), TU_WAIT_MS), strlen(TU_TEST_STR));
    assert_string_equal(reply, TU_TEST_STR);
    close(fd);
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
    signal(SIGUSR1, SIG_DFL);
    tu_chan_close(&events);
}

/* ---- EMFILE -------------------------------------------------------------- */

static long emfile_errors;
static long other_errors;
static long turns;

static void emfile_error(ss_server *srv, ss_request *req, int err)
{
    (void)srv;
    if (req == NULL && (err == EMFILE || err == ENFILE))
        __atomic_add_fetch(&emfile_errors, 1, __ATOMIC_SEQ_CST);
    else
        __atomic_add_fetch(&other_errors, 1, __ATOMIC_SEQ_CST);
}

static void emfile_turn(ss_server *srv)
{
    (void)srv;
    __atomic_add_fetch(&turns, 1, __ATOMIC_SEQ_CST);
}

static int highest_fd(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    long max = -1;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        char *end = NULL;
        long v = strtol(e->d_name, &end, 10);

        if (end != e->d_name && *end == '\0' && v > max)
            max = v;
    }
    closedir(d);
    return (int)max;
}

/* accept() failing with EMFILE is reported once in a while, neither spins a
 * core nor stops the server, which serves the waiting client once
 * descriptors are free again. */
static void run_emfile(ss_mode mode)
{
    ss_options opt;
    ss_handler h = {.handle = tu_echo_handle};
    ss_server *srv;
    tu_serve *serve;
    struct rlimit old, low;
    struct sockaddr_storage addr;
    socklen_t alen = sizeof(addr);
    static int fillers[EMFILE_FILLERS];
    int nfill = 0, client, filled_errno = 0;
    long errors_seen, turns_during;
    double wall, cpu;
    char reply[64];

    emfile_errors = 0;
    other_errors = 0;
    turns = 0;
    ss_options_init(&opt);
    opt.mode = mode;
    opt.handle_error = emfile_error;
    opt.service_actions = emfile_turn;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.05);
    assert_non_null(serve);
    /* Warm up: whatever the server opens once is open before the limit. */
    assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply)), strlen(TU_TEST_STR));
    assert_int_equal(ss_server_drain(srv, TU_WAIT_MS / 1000.0), 0);
    assert_int_equal(ss_server_address(srv, (struct sockaddr *)&addr, &alen), 0);
    client = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(client >= 0);

    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)highest_fd() + 1 + EMFILE_HEADROOM;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    while (nfill < EMFILE_FILLERS) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

        if (fd < 0) {
            filled_errno = errno;
            break;
        }
        fillers[nfill++] = fd;
    }

    if (filled_errno != EMFILE) {
        for (int i = 0; i < nfill; i++)
            close(fillers[i]);
        setrlimit(RLIMIT_NOFILE, &old);
        fail_msg("could not use up the descriptors: %d", filled_errno);
    }

    /* No descriptor left: the server cannot accept this connection. */
    connect(client, (struct sockaddr *)&addr, alen);
    {
        double t0, c0;
        long turns0;

        /* Wait for the first report, then watch for a while. */
        tu_wait_counter(&emfile_errors, 1, TU_WAIT_MS);
        turns0 = __atomic_load_n(&turns, __ATOMIC_SEQ_CST);
        t0 = tu_now();
        c0 = tu_cpu_time();
        tu_wait_readable(client, EMFILE_WATCH_MS);
        wall = tu_now() - t0;
        cpu = tu_cpu_time() - c0;
        turns_during = __atomic_load_n(&turns, __ATOMIC_SEQ_CST) - turns0;
        errors_seen = __atomic_load_n(&emfile_errors, __ATOMIC_SEQ_CST);
    }

    for (int i = 0; i < nfill; i++)
        close(fillers[i]);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);

    print_message("%s: %ld EMFILE reports, %ld turns, cpu %.3fs in %.3fs\n", tu_mode_name(mode),
                  errors_seen, turns_during, cpu, wall);
    assert_int_equal(filled_errno, EMFILE);
    assert_true(errors_seen >= 1);
    /* A spinning loop would burn a whole core and turn thousands of times. */
    assert_true(cpu < wall * 0.5);
    assert_true(turns_during < 200);
    assert_true(errors_seen < 200);

    /* Descriptors are back: the waiting client is served. */
    assert_int_equal(tu_send_all(client, TU_TEST_STR, strlen(TU_TEST_STR)), strlen(TU_TEST_STR));
    assert_int_equal(tu_recv_line(client, reply, sizeof(reply), TU_WAIT_MS), strlen(TU_TEST_STR));
    close(client);
    assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply)), strlen(TU_TEST_STR));
    assert_int_equal(tu_serve_stop(serve), 0);
    assert_int_equal(serve->rc, 0);
    tu_server_free(srv);
    assert_int_equal(other_errors, 0);
}

static void test_emfile_sync(void **state)
{
    (void)state;
    run_emfile(SS_MODE_SYNC);
}

static void test_emfile_threading(void **state)
{
    (void)state;
    run_emfile(SS_MODE_THREADING);
}

static void test_emfile_forking(void **state)
{
    (void)state;
    run_emfile(SS_MODE_FORKING);
}

static void test_emfile_pool(void **state)
{
    (void)state;
    run_emfile(SS_MODE_POOL);
}

/* ---- CLOEXEC ------------------------------------------------------------- */

/* Descriptors without FD_CLOEXEC before the server existed: inherited from
 * whoever started the test, not the library's. */
static bool inherited_open[SCAN_FDS];

static void record_inherited(void)
{
    for (int fd = 0; fd < SCAN_FDS; fd++) {
        int flags = fcntl(fd, F_GETFD);

        inherited_open[fd] = flags >= 0 && !(flags & FD_CLOEXEC);
    }
}

/* Checks every open descriptor above stderr for FD_CLOEXEC: the listening
 * socket, the connection, the wakeup descriptor and anything else the
 * library opened. The test's own descriptors are all close-on-exec too. No
 * allocation, so it is safe in a forked child. */
static int cloexec_handle(ss_request *req)
{
    int bad = 0;
    int lfd = ss_server_fileno(ss_request_server(req));
    int rfd = ss_request_fd(req);

    for (int fd = 3; fd < SCAN_FDS; fd++) {
        int flags = fcntl(fd, F_GETFD);

        if (flags >= 0 && !(flags & FD_CLOEXEC) && !inherited_open[fd])
            bad++;
    }
    /* A forked child may have closed its copy of the listening socket. */
    if (lfd < 0 ? getpid() == test_pid : !(fcntl(lfd, F_GETFD) & FD_CLOEXEC))
        bad++;
    if (rfd < 0 || !(fcntl(rfd, F_GETFD) & FD_CLOEXEC))
        bad++;
    tu_chan_put(&events, bad == 0 ? 'K' : 'N');
    return tu_echo_handle(req);
}

static void run_cloexec(ss_socktype type, ss_mode mode)
{
    ss_options opt;
    ss_handler h = {.handle = cloexec_handle};
    ss_server *srv;
    tu_serve *serve;
    char reply[64];

    open_events();
    test_pid = getpid();
    record_inherited();
    ss_options_init(&opt);
    opt.type = type;
    opt.mode = mode;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply)), strlen(TU_TEST_STR));
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'K');
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
    tu_chan_close(&events);
}

static void test_cloexec(void **state)
{
    (void)state;
    run_cloexec(SS_STREAM, SS_MODE_SYNC);
    run_cloexec(SS_STREAM, SS_MODE_THREADING);
    run_cloexec(SS_STREAM, SS_MODE_FORKING);
    run_cloexec(SS_STREAM, SS_MODE_POOL);
    run_cloexec(SS_DATAGRAM, SS_MODE_SYNC);
    run_cloexec(SS_DATAGRAM, SS_MODE_POOL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_no_leak_STREAM_SYNC),
        TU_TEST(test_no_leak_STREAM_THREADING),
        TU_TEST(test_no_leak_STREAM_FORKING),
        TU_TEST(test_no_leak_STREAM_POOL),
        TU_TEST(test_no_leak_DATAGRAM_SYNC),
        TU_TEST(test_no_leak_DATAGRAM_THREADING),
        TU_TEST(test_no_leak_DATAGRAM_FORKING),
        TU_TEST(test_no_leak_DATAGRAM_POOL),
        TU_TEST(test_sigpipe_sync),
        TU_TEST(test_sigpipe_threading),
        TU_TEST(test_sigpipe_forking),
        TU_TEST(test_sigpipe_pool),
        TU_TEST(test_eintr_serve_loop),
        TU_TEST(test_eintr_handler_read),
        TU_TEST(test_emfile_sync),
        TU_TEST(test_emfile_threading),
        TU_TEST(test_emfile_forking),
        TU_TEST(test_emfile_pool),
        TU_TEST(test_cloexec),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
