/*
 * test_server.c - the server lifecycle and its hooks: bound address read
 * back, dual stack, shutdown in all its forms (from another thread, before
 * serving, from inside a handler or a hook, from a signal handler), close
 * without serving, bind failures that leak nothing, verify_request, setup and
 * finish ordering, handle_request with a timeout, service_actions, drain.
 */
#include "testutil.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* CPython's test_shutdown starts and stops this many servers. */
#define SHUTDOWN_SERVERS 20
/* CPython's test_tcpserver_bind_leak tries this many failing binds. */
#define BIND_ATTEMPTS 1024
/* Rejected connections in the verify_request test. */
#define REJECTED_CONNECTIONS 20

static const ss_mode all_modes[] = {SS_MODE_SYNC, SS_MODE_THREADING, SS_MODE_FORKING, SS_MODE_POOL};
#define MODE_COUNT (sizeof(all_modes) / sizeof(all_modes[0]))

/* Events reported by handlers and hooks; a pipe, so forked children can
 * report too. */
static tu_chan events;
static tu_chan release;
static int verify_accepts;
static long service_turns;
static long timeouts_seen;
static int handler_shutdown_rc;

static void counting_service_actions(ss_server *srv);
static void counting_timeout(ss_server *srv);

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

static size_t count_char(const char *s, size_t n, char c)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        k += s[i] == c;
    return k;
}

/* ---- bound address ------------------------------------------------------ */

static void test_port_zero_address(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = tu_echo_handle};
    ss_server *srv;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char buf[128], want[128];
    int port;

    (void)state;
    ss_options_init(&opt);
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    port = ss_server_port(srv);
    assert_true(port > 0 && port < 65536);
    assert_int_equal(ss_server_address(srv, (struct sockaddr *)&ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), port);
    assert_int_equal(((struct sockaddr_in *)&ss)->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    snprintf(want, sizeof(want), "127.0.0.1:%d", port);
    assert_ptr_equal(ss_server_address_str(srv, buf, sizeof(buf)), buf);
    assert_string_equal(buf, want);

    /* Too small a buffer is an error, not a truncated address. */
    errno = 0;
    assert_null(ss_server_address_str(srv, buf, 5));
    assert_int_equal(errno, ENOSPC);
    tu_server_free(srv);
}

static void test_port_zero_address_ipv6(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = tu_echo_handle};
    ss_server *srv;
    char buf[128], want[128];

    (void)state;
    if (!tu_have_ipv6())
        skip();
    ss_options_init(&opt);
    opt.address = "[::1]:0";
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    assert_true(ss_server_port(srv) > 0);
    snprintf(want, sizeof(want), "[::1]:%d", ss_server_port(srv));
    assert_non_null(ss_server_address_str(srv, buf, sizeof(buf)));
    assert_string_equal(buf, want);
    tu_server_free(srv);
}

static void test_unix_address(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = tu_echo_handle};
    char path[TU_PATH_MAX + 8];
    ss_server *srv;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char buf[256];

    (void)state;
    tu_options(&opt, TU_UNIX_STREAM, SS_MODE_SYNC, path, sizeof(path));
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    assert_int_equal(ss_server_port(srv), 0);
    assert_int_equal(ss_server_address(srv, (struct sockaddr *)&ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_UNIX);
    assert_string_equal(((struct sockaddr_un *)&ss)->sun_path, path + strlen("unix:"));
    assert_non_null(ss_server_address_str(srv, buf, sizeof(buf)));
    assert_string_equal(buf, path);
    tu_server_free(srv);
}

/* prepare_socket hook: connect the not yet bound socket to another Unix
 * listener. bind then still succeeds (it creates the socket file), but
 * listen fails with EINVAL, since the socket is connected. */
static int connect_to_listener(ss_server *srv, int fd)
{
    const char *path = ss_server_user(srv);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    return connect(fd, (const struct sockaddr *)&sun, sizeof(sun));
}

/* A failure after bind (here: listen) removes the socket file bind made. */
static void test_unix_file_removed_when_listen_fails(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = tu_echo_handle};
    char path[TU_PATH_MAX + 8], other[TU_PATH_MAX];
    struct stat st;

    (void)state;
    assert_int_equal(tu_unix_path(other, sizeof(other)), 0);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(lfd >= 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", other);
    assert_int_equal(bind(lfd, (const struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(lfd, 4), 0);

    tu_options(&opt, TU_UNIX_STREAM, SS_MODE_SYNC, path, sizeof(path));
    opt.prepare_socket = connect_to_listener;
    opt.user = other;
    errno = 0;
    assert_null(ss_server_new(&opt, &h));
    assert_int_equal(errno, EINVAL);
    /* The file was made (bind ran) and is gone again. */
    assert_int_equal(lstat(path + strlen("unix:"), &st), -1);
    assert_int_equal(errno, ENOENT);
    close(lfd);
    unlink(other);
}

/* The accessors of a NULL server give the defaults and EINVAL. */
static void test_server_accessors_null(void **state)
{
    (void)state;
    errno = 0;
    assert_int_equal(ss_server_mode(NULL), SS_MODE_SYNC);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(ss_server_type(NULL), SS_STREAM);
    assert_int_equal(errno, EINVAL);
    assert_null(ss_server_user(NULL));
}

/* "[::]:0" binds both stacks: IPv4 and IPv6 clients reach the same server. */
static void run_dual_stack(ss_socktype type)
{
    ss_options opt;
    ss_handler h = {.handle = tu_echo_handle};
    ss_server *srv;
    tu_serve *serve;
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
    int stype = type == SS_DATAGRAM ? SOCK_DGRAM : SOCK_STREAM;
    int fds[2];

    if (!tu_have_ipv6())
        skip();
    ss_options_init(&opt);
    opt.address = "[::]:0";
    opt.type = type;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);

    memset(&v4, 0, sizeof(v4));
    v4.sin_family = AF_INET;
    v4.sin_port = htons((uint16_t)ss_server_port(srv));
    v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    memset(&v6, 0, sizeof(v6));
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons((uint16_t)ss_server_port(srv));
    v6.sin6_addr = in6addr_loopback;
    fds[0] = tu_client_addr((struct sockaddr *)&v4, sizeof(v4), stype, NULL, 0);
    fds[1] = tu_client_addr((struct sockaddr *)&v6, sizeof(v6), stype, NULL, 0);
    for (int i = 0; i < 2; i++) {
        char reply[64];
        ssize_t n;

        assert_true(fds[i] >= 0);
        assert_int_equal(tu_send_all(fds[i], TU_TEST_STR, strlen(TU_TEST_STR)),
                         strlen(TU_TEST_STR));
        if (type == SS_DATAGRAM) {
            n = tu_recv_dgram(fds[i], reply, sizeof(reply) - 1, TU_WAIT_MS);
            if (n >= 0)
                reply[n] = '\0';
        } else {
            n = tu_recv_line(fds[i], reply, sizeof(reply), TU_WAIT_MS);
        }
        assert_int_equal(n, strlen(TU_TEST_STR));
        assert_string_equal(reply, TU_TEST_STR);
        close(fds[i]);
    }
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
}

static void test_dual_stack_stream(void **state)
{
    (void)state;
    run_dual_stack(SS_STREAM);
}

static void test_dual_stack_datagram(void **state)
{
    (void)state;
    run_dual_stack(SS_DATAGRAM);
}

/* ---- shutdown ------------------------------------------------------------ */

/* CPython test_shutdown (issue #2302): shutdown called right after the
 * serving thread starts always wins, whichever runs first. */
static void test_shutdown_immediately(void **state)
{
    (void)state;
    for (size_t m = 0; m < MODE_COUNT; m++) {
        for (int i = 0; i < SHUTDOWN_SERVERS; i++) {
            ss_options opt;
            ss_handler h = {.handle = tu_echo_handle};
            ss_server *srv;
            tu_serve *serve;

            ss_options_init(&opt);
            opt.mode = all_modes[m];
            opt.type = i % 2 ? SS_DATAGRAM : SS_STREAM;
            srv = tu_server_new(&opt, &h);
            assert_non_null(srv);
            serve = tu_serve_start(srv, 0.01);
            assert_non_null(serve);
            assert_int_equal(ss_shutdown(srv), 0);
            assert_int_equal(tu_serve_wait(serve, TU_WAIT_MS), 0);
            assert_int_equal(serve->rc, 0);
            ss_server_close(srv);
            assert_int_equal(ss_server_fileno(srv), -1);
            tu_server_free(srv);
        }
    }
}

/* ss_shutdown from another thread returns once the loop has stopped: no
 * turn of the loop runs after it returned. */
static void test_shutdown_waits_for_loop(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = tu_echo_handle};
    ss_server *srv;
    tu_serve *serve;
    long at_return;

    (void)state;
    for (int round = 0; round < 20; round++) {
        service_turns = 0;
        ss_options_init(&opt);
        opt.service_actions = counting_service_actions;
        srv = tu_server_new(&opt, &h);
        assert_non_null(srv);
        serve = tu_serve_start(srv, 0.001);
        assert_non_null(serve);
        assert_true(tu_wait_counter(&service_turns, 3, TU_WAIT_MS) >= 3);
        assert_int_equal(ss_shutdown(srv), 0);
        at_return = __atomic_load_n(&service_turns, __ATOMIC_SEQ_CST);
        assert_int_equal(tu_serve_wait(serve, TU_WAIT_MS), 0);
        assert_int_equal(__atomic_load_n(&service_turns, __ATOMIC_SEQ_CST), at_return);
        tu_server_free(srv);
    }
}

/* Shutdown with no loop running makes the next serve_forever return at once
 * (and only that one: the server can be served again afterwards). */
static void test_shutdown_before_serve(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = tu_echo_handle};
    ss_server *srv;
    tu_serve *serve;
    double t0;
    char reply[64];

    (void)state;
    ss_options_init(&opt);
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    t0 = tu_now();
    assert_int_equal(ss_shutdown(srv), 0);
    assert_true(tu_now() - t0 < tu_limit(1.0));
    t0 = tu_now();
    /* A poll interval longer than any bound below (tu_limit: at most 20 s):
     * returning within the bound proves the flag was seen. */
    assert_int_equal(ss_serve_forever(srv, 30.0), 0);
    assert_true(tu_now() - t0 < tu_limit(1.0));

    serve = tu_serve_start(srv, 30.0);
    assert_non_null(serve);
    assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply)), strlen(TU_TEST_STR));
    /* Shutdown wakes the loop at once, without waiting for poll_interval. */
    t0 = tu_now();
    assert_int_equal(tu_serve_stop(serve), 0);
    assert_true(tu_now() - t0 < tu_limit(2.0));
    tu_server_free(srv);
}

static void test_serve_again(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = tu_echo_handle};
    ss_server *srv;

    (void)state;
    ss_options_init(&opt);
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    for (int round = 0; round < 3; round++) {
        char reply[64];
        tu_serve *serve = tu_serve_start(srv, 0.01);

        assert_non_null(serve);
        assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply)), strlen(TU_TEST_STR));
        assert_int_equal(tu_serve_stop(serve), 0);
        assert_int_equal(serve->rc, 0);
    }
    tu_server_free(srv);
}

/* A handler that stops its own server, then answers. */
static int shutdown_handle(ss_request *req)
{
    int rc = ss_shutdown(ss_request_server(req));

    __atomic_store_n(&handler_shutdown_rc, rc, __ATOMIC_SEQ_CST);
    tu_chan_put(&events, rc == 0 ? 'S' : 's');
    return tu_echo_handle(req);
}

static void run_shutdown_in_handler(ss_mode mode)
{
    ss_options opt;
    ss_handler h = {.handle = shutdown_handle};
    ss_server *srv;
    tu_serve *serve;
    char reply[64];

    open_chans();
    handler_shutdown_rc = -1;
    ss_options_init(&opt);
    opt.mode = mode;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    /* A long poll interval: the loop must stop because it was asked to. */
    serve = tu_serve_start(srv, 30.0);
    assert_non_null(serve);
    assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply)), strlen(TU_TEST_STR));
    assert_string_equal(reply, TU_TEST_STR);
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'S');
    /* No deadlock: the loop stops by itself after this request. */
    assert_int_equal(tu_serve_wait(serve, TU_WAIT_MS), 0);
    assert_int_equal(serve->rc, 0);
    ss_server_close(srv);
    assert_int_equal(ss_server_active(srv), 0);
    tu_server_free(srv);
    close_chans();
}

static void test_shutdown_in_sync_handler(void **state)
{
    (void)state;
    run_shutdown_in_handler(SS_MODE_SYNC);
}

static void test_shutdown_in_threading_handler(void **state)
{
    (void)state;
    run_shutdown_in_handler(SS_MODE_THREADING);
}

static void test_shutdown_in_pool_handler(void **state)
{
    (void)state;
    run_shutdown_in_handler(SS_MODE_POOL);
}

static void test_shutdown_in_forked_handler(void **state)
{
    (void)state;
    run_shutdown_in_handler(SS_MODE_FORKING);
}

static int gated_shutdown_handle(ss_request *req)
{
    ss_shutdown(ss_request_server(req));
    tu_chan_put(&events, 'S');
    tu_chan_get(&release, TU_WAIT_MS);
    return tu_echo_handle(req);
}

/* bpo-35017: once a shutdown is asked for, the sync loop takes no further
 * request, even one that was already waiting. */
static void test_no_request_after_shutdown(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = gated_shutdown_handle};
    ss_server *srv;
    tu_serve *serve;
    char reply[64];
    int a, b, waiting;

    (void)state;
    open_chans();
    ss_options_init(&opt);
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 30.0);
    assert_non_null(serve);
    a = tu_client(srv, NULL, 0);
    assert_true(a >= 0);
    assert_int_equal(tu_send_all(a, TU_TEST_STR, strlen(TU_TEST_STR)), strlen(TU_TEST_STR));
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'S');
    b = tu_client(srv, NULL, 0);
    assert_true(b >= 0);
    assert_int_equal(tu_send_all(b, TU_TEST_STR, strlen(TU_TEST_STR)), strlen(TU_TEST_STR));
    assert_int_equal(tu_chan_put(&release, 'r'), 0);
    assert_int_equal(tu_recv_line(a, reply, sizeof(reply), TU_WAIT_MS), strlen(TU_TEST_STR));
    assert_int_equal(tu_serve_wait(serve, TU_WAIT_MS), 0);
    /* The second client was never served: no reply, no handler run. */
    waiting = tu_wait_readable(b, TU_QUIET_MS);
    assert_int_equal(tu_chan_get(&events, 0), -1);
    assert_int_equal(waiting, 0);
    close(a);
    close(b);
    tu_server_free(srv);
    close_chans();
}

static void stopping_service_actions(ss_server *srv)
{
    __atomic_add_fetch(&service_turns, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&service_turns, __ATOMIC_SEQ_CST) == 3)
        ss_shutdown(srv);
}

/* A hook running in the serving thread may stop the loop too. */
static void test_shutdown_from_service_actions(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = tu_echo_handle};
    ss_server *srv;
    tu_serve *serve;

    (void)state;
    service_turns = 0;
    ss_options_init(&opt);
    opt.service_actions = stopping_service_actions;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    assert_int_equal(tu_serve_wait(serve, TU_WAIT_MS), 0);
    assert_int_equal(serve->rc, 0);
    assert_int_equal(__atomic_load_n(&service_turns, __ATOMIC_SEQ_CST), 3);
    tu_server_free(srv);
}

/* ss_shutdown_on_signal: the signal, sent to the serving thread or to
 * another one, stops the loop through ss_shutdown_async. */
static void run_shutdown_on_signal(int signo, bool to_serving_thread)
{
    ss_options opt;
    ss_handler h = {.handle = tu_echo_handle};
    ss_server *srv;
    tu_serve *serve;
    struct sigaction old;
    char reply[64];

    assert_int_equal(sigaction(signo, NULL, &old), 0);
    ss_options_init(&opt);
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    assert_int_equal(ss_shutdown_on_signal(srv, signo), 0);
    serve = tu_serve_start(srv, 30.0);
    assert_non_null(serve);
    /* One request first, so the loop is surely running when the signal
     * comes (the other order is test_shutdown_before_serve). */
    assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply)), strlen(TU_TEST_STR));
    if (to_serving_thread)
        assert_int_equal(pthread_kill(serve->thread, signo), 0);
    else
        assert_int_equal(raise(signo), 0);
    assert_int_equal(tu_serve_wait(serve, TU_WAIT_MS), 0);
    assert_int_equal(serve->rc, 0);
    /* The handler refers to the server: put the old one back before the
     * server goes away. */
    assert_int_equal(sigaction(signo, &old, NULL), 0);
    tu_server_free(srv);
}

static void test_shutdown_on_sigterm_serving_thread(void **state)
{
    (void)state;
    run_shutdown_on_signal(SIGTERM, true);
}

static void test_shutdown_on_sigint_other_thread(void **state)
{
    (void)state;
    run_shutdown_on_signal(SIGINT, false);
}

static void test_shutdown_async_from_thread(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = tu_echo_handle};
    ss_server *srv;
    tu_serve *serve;
    char reply[64];

    (void)state;
    ss_options_init(&opt);
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 30.0);
    assert_non_null(serve);
    assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply)), strlen(TU_TEST_STR));
    ss_shutdown_async(srv);
    assert_int_equal(tu_serve_wait(serve, TU_WAIT_MS), 0);
    assert_int_equal(serve->rc, 0);
    tu_server_free(srv);
}

/* ---- close --------------------------------------------------------------- */

/* CPython test_close_immediately, for every mode and both socket types:
 * closing a server that never served works, twice, and frees cleanly. */
static void test_close_without_serving(void **state)
{
    (void)state;
    ss_server_free(NULL);
    for (size_t m = 0; m < MODE_COUNT; m++) {
        for (int t = 0; t < 2; t++) {
            ss_options opt;
            ss_handler h = {.handle = tu_echo_handle};
            ss_server *srv;

            ss_options_init(&opt);
            opt.mode = all_modes[m];
            opt.type = t ? SS_DATAGRAM : SS_STREAM;
            srv = tu_server_new(&opt, &h);
            assert_non_null(srv);
            assert_true(ss_server_fileno(srv) >= 0);
            ss_server_close(srv);
            assert_int_equal(ss_server_fileno(srv), -1);
            ss_server_close(srv);
            assert_int_equal(ss_server_fileno(srv), -1);
            tu_server_free(srv);
        }
    }
}

/* ---- bind failures leak nothing (CPython test_tcpserver_bind_leak) ------- */

static void test_bind_leak_bad_port(void **state)
{
    static const char *const bad[] = {"127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:99999"};
    ss_handler h = {.handle = tu_echo_handle};
    int fds0 = tu_count_fds();

    (void)state;
    for (int i = 0; i < BIND_ATTEMPTS; i++) {
        ss_options opt;

        ss_options_init(&opt);
        opt.address = bad[i % 3];
        opt.type = i % 2 ? SS_DATAGRAM : SS_STREAM;
        errno = 0;
        assert_null(ss_server_new(&opt, &h));
        assert_int_equal(errno, EINVAL);
    }
    assert_int_equal(tu_count_fds(), fds0);
}

static void run_bind_leak_in_use(ss_socktype type, ss_mode mode)
{
    ss_options opt;
    ss_handler h = {.handle = tu_echo_handle};
    ss_server *first;
    char addr[64];
    int fds0, threads0;

    ss_options_init(&opt);
    opt.type = type;
    first = tu_server_new(&opt, &h);
    assert_non_null(first);
    assert_non_null(ss_server_address_str(first, addr, sizeof(addr)));
    fds0 = tu_count_fds();
    threads0 = tu_count_threads();
    for (int i = 0; i < BIND_ATTEMPTS; i++) {
        ss_options again;

        ss_options_init(&again);
        again.type = type;
        again.mode = mode;
        again.address = addr;
        errno = 0;
        assert_null(ss_server_new(&again, &h));
        assert_int_equal(errno, EADDRINUSE);
    }
    assert_int_equal(tu_count_fds(), fds0);
    assert_true(tu_wait_threads_at_most(threads0, TU_WAIT_MS) <= threads0);
    tu_server_free(first);
}

static void test_bind_leak_port_in_use_tcp(void **state)
{
    (void)state;
    run_bind_leak_in_use(SS_STREAM, SS_MODE_SYNC);
}

static void test_bind_leak_port_in_use_udp(void **state)
{
    (void)state;
    run_bind_leak_in_use(SS_DATAGRAM, SS_MODE_SYNC);
}

static void test_bind_leak_port_in_use_pool(void **state)
{
    (void)state;
    run_bind_leak_in_use(SS_STREAM, SS_MODE_POOL);
}

/* ---- socket options ------------------------------------------------------ */

static int sockopt(int fd, int name)
{
    int v = -1;
    socklen_t len = sizeof(v);

    if (getsockopt(fd, SOL_SOCKET, name, &v, &len) < 0)
        return -1;
    return v != 0;
}

/* allow_reuse_address / allow_reuse_port set SO_REUSEADDR / SO_REUSEPORT,
 * and are off by default (Python's class attributes). */
static void test_reuse_options(void **state)
{
    ss_handler h = {.handle = tu_echo_handle};

    (void)state;
    for (int t = 0; t < 2; t++) {
        ss_options opt;
        ss_server *a, *b;
        char addr[64];

        ss_options_init(&opt);
        opt.type = t ? SS_DATAGRAM : SS_STREAM;
        a = tu_server_new(&opt, &h);
        assert_non_null(a);
        assert_int_equal(sockopt(ss_server_fileno(a), SO_REUSEADDR), 0);
        assert_int_equal(sockopt(ss_server_fileno(a), SO_REUSEPORT), 0);
        tu_server_free(a);

        opt.allow_reuse_address = true;
        opt.allow_reuse_port = true;
        a = tu_server_new(&opt, &h);
        assert_non_null(a);
        assert_int_equal(sockopt(ss_server_fileno(a), SO_REUSEADDR), 1);
        assert_int_equal(sockopt(ss_server_fileno(a), SO_REUSEPORT), 1);
        /* With SO_REUSEPORT on both, a second server shares the port. */
        assert_non_null(ss_server_address_str(a, addr, sizeof(addr)));
        opt.address = addr;
        b = tu_server_new(&opt, &h);
        assert_non_null(b);
        assert_int_equal(ss_server_port(b), ss_server_port(a));
        tu_server_free(b);
        tu_server_free(a);
    }
}

/* A pending shutdown makes handle_request return 0 at once instead of
 * waiting for a request. */
static void test_handle_request_after_shutdown(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = tu_echo_handle};
    ss_server *srv;
    double t0;

    (void)state;
    ss_options_init(&opt);
    /* Longer than the bound below can grow (tu_limit: at most 10 s). */
    opt.timeout = 30.0;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    assert_int_equal(ss_shutdown(srv), 0);
    t0 = tu_now();
    assert_int_equal(ss_handle_request(srv), 0);
    assert_true(tu_now() - t0 < tu_limit(1.0));
    tu_server_free(srv);
}

/* ---- verify_request ------------------------------------------------------ */

static bool counting_verify(ss_request *req)
{
    /* The verdict is taken before it is reported: the test changes the
     * flag as soon as it sees the report. */
    bool ok = __atomic_load_n(&verify_accepts, __ATOMIC_SEQ_CST) != 0;

    (void)req;
    tu_chan_put(&events, 'V');
    return ok;
}

static int marking_echo(ss_request *req)
{
    tu_chan_put(&events, 'H');
    return tu_echo_handle(req);
}

/* CPython test_shutdown_request_called_if_verify_request_false (issue
 * #26309): a rejected request is shut down (the client sees the connection
 * closed), the handler never runs, and nothing leaks. */
static void run_verify_false(ss_mode mode, ss_socktype type)
{
    ss_options opt;
    ss_handler h = {.handle = marking_echo};
    ss_server *srv;
    tu_serve *serve;
    char reply[64], got[256];
    size_t n;
    int fds0;

    open_chans();
    verify_accepts = 0;
    ss_options_init(&opt);
    opt.mode = mode;
    opt.type = type;
    opt.verify_request = counting_verify;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    /* One accepted request first, so that whatever the server sets up on its
     * first request exists before the descriptors are counted. */
    __atomic_store_n(&verify_accepts, 1, __ATOMIC_SEQ_CST);
    assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply)), strlen(TU_TEST_STR));
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'V');
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'H');
    __atomic_store_n(&verify_accepts, 0, __ATOMIC_SEQ_CST);
    fds0 = tu_count_fds();
    for (int i = 0; i < REJECTED_CONNECTIONS; i++) {
        int fd = tu_client(srv, NULL, 0);

        assert_true(fd >= 0);
        assert_int_equal(tu_send_all(fd, TU_TEST_STR, strlen(TU_TEST_STR)), strlen(TU_TEST_STR));
        if (type == SS_STREAM) {
            assert_int_equal(tu_wait_eof(fd, TU_WAIT_MS), 0);
        } else {
            /* A rejected datagram gets no reply; wait for the verdict. */
            assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'V');
        }
        close(fd);
    }
    /* The server closed every rejected connection. */
    assert_true(tu_wait_fds(fds0, TU_WAIT_MS) <= fds0);
    __atomic_store_n(&verify_accepts, 1, __ATOMIC_SEQ_CST);
    assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply)), strlen(TU_TEST_STR));
    assert_int_equal(tu_serve_stop(serve), 0);
    ss_server_close(srv);
    n = tu_chan_drain(&events, got, sizeof(got));
    assert_int_equal(count_char(got, n, 'H'), 1);
    /* Datagram verdicts were taken from the channel as they came. */
    assert_int_equal(count_char(got, n, 'V'), type == SS_DATAGRAM ? 1 : REJECTED_CONNECTIONS + 1);
    tu_server_free(srv);
    close_chans();
}

static void test_verify_false_sync(void **state)
{
    (void)state;
    run_verify_false(SS_MODE_SYNC, SS_STREAM);
}

static void test_verify_false_threading(void **state)
{
    (void)state;
    run_verify_false(SS_MODE_THREADING, SS_STREAM);
}

static void test_verify_false_forking(void **state)
{
    (void)state;
    run_verify_false(SS_MODE_FORKING, SS_STREAM);
}

static void test_verify_false_pool(void **state)
{
    (void)state;
    run_verify_false(SS_MODE_POOL, SS_STREAM);
}

static void test_verify_false_datagram(void **state)
{
    (void)state;
    run_verify_false(SS_MODE_SYNC, SS_DATAGRAM);
    run_verify_false(SS_MODE_THREADING, SS_DATAGRAM);
}

/* ---- setup / handle / finish --------------------------------------------- */

static int setup_result;
static int handle_result;

static int order_setup(ss_request *req)
{
    (void)req;
    tu_chan_put(&events, 'S');
    return setup_result;
}

static int order_handle(ss_request *req)
{
    tu_chan_put(&events, 'H');
    if (handle_result == SS_OK)
        return tu_echo_handle(req);
    return handle_result;
}

static void order_finish(ss_request *req)
{
    (void)req;
    tu_chan_put(&events, 'F');
}

static void order_error(ss_server *srv, ss_request *req, int err)
{
    (void)srv;
    (void)req;
    (void)err;
    tu_chan_put(&events, 'E');
}

/* One request through ss_handle_request; returns what the handler chain
 * reported, in order. */
static size_t run_order(int setup_rc, int handle_rc, char *got, size_t size)
{
    ss_options opt;
    ss_handler h = {.setup = order_setup, .handle = order_handle, .finish = order_finish};
    ss_server *srv;
    int fd;
    size_t n;

    setup_result = setup_rc;
    handle_result = handle_rc;
    open_chans();
    ss_options_init(&opt);
    opt.handle_error = order_error;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(tu_send_all(fd, TU_TEST_STR, strlen(TU_TEST_STR)), strlen(TU_TEST_STR));
    assert_int_equal(ss_handle_request(srv), 1);
    /* The request is over: the server closed its side either way. */
    assert_int_equal(tu_wait_eof(fd, TU_WAIT_MS), 0);
    close(fd);
    tu_server_free(srv);
    n = tu_chan_drain(&events, got, size - 1);
    got[n] = '\0';
    close_chans();
    return n;
}

static void test_handler_order(void **state)
{
    char got[32];

    (void)state;
    run_order(0, SS_OK, got, sizeof(got));
    assert_string_equal(got, "SHF");
    /* finish runs even when handle failed; handle_error reports it. */
    run_order(0, SS_ERROR, got, sizeof(got));
    assert_non_null(strchr(got, 'E'));
    assert_int_equal(count_char(got, strlen(got), 'F'), 1);
    assert_int_equal(strchr(got, 'H') < strchr(got, 'F'), 1);
}

/* Python: when setup fails, handle and finish do not run. */
static void test_setup_fails_skips_finish(void **state)
{
    char got[32];

    (void)state;
    run_order(-1, SS_OK, got, sizeof(got));
    assert_null(strchr(got, 'H'));
    assert_null(strchr(got, 'F'));
    assert_int_equal(got[0], 'S');
}

/* ---- handle_request and its timeout -------------------------------------- */

static void counting_timeout(ss_server *srv)
{
    (void)srv;
    __atomic_add_fetch(&timeouts_seen, 1, __ATOMIC_SEQ_CST);
}

static void test_handle_request_timeout(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = tu_echo_handle};
    ss_server *srv;
    double t0, elapsed;

    (void)state;
    timeouts_seen = 0;
    ss_options_init(&opt);
    opt.timeout = 0.2;
    opt.handle_timeout = counting_timeout;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    t0 = tu_now();
    assert_int_equal(ss_handle_request(srv), 0);
    elapsed = tu_now() - t0;
    assert_int_equal(timeouts_seen, 1);
    assert_true(elapsed >= 0.19);
    assert_true(elapsed < tu_limit(3.0));
    tu_server_free(srv);
}

/* handle_request handles one waiting request and returns 1, in every mode;
 * handle_timeout does not run then. */
static void test_handle_request_one(void **state)
{
    (void)state;
    for (size_t m = 0; m < MODE_COUNT; m++) {
        ss_options opt;
        ss_handler h = {.handle = tu_echo_handle};
        ss_server *srv;
        char reply[64];
        int fd;

        timeouts_seen = 0;
        ss_options_init(&opt);
        opt.mode = all_modes[m];
        opt.timeout = 5.0;
        opt.handle_timeout = counting_timeout;
        srv = tu_server_new(&opt, &h);
        assert_non_null(srv);
        fd = tu_client(srv, NULL, 0);
        assert_true(fd >= 0);
        assert_int_equal(tu_send_all(fd, TU_TEST_STR, strlen(TU_TEST_STR)), strlen(TU_TEST_STR));
        assert_int_equal(ss_handle_request(srv), 1);
        assert_int_equal(tu_recv_line(fd, reply, sizeof(reply), TU_WAIT_MS), strlen(TU_TEST_STR));
        close(fd);
        ss_server_close(srv);
        assert_int_equal(timeouts_seen, 0);
        tu_server_free(srv);
    }
}

/* serve_forever ignores opt.timeout: handle_timeout never runs there. */
static void test_serve_forever_ignores_timeout(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = tu_echo_handle};
    ss_server *srv;
    tu_serve *serve;
    char reply[64];

    (void)state;
    timeouts_seen = 0;
    service_turns = 0;
    ss_options_init(&opt);
    opt.timeout = 0.001;
    opt.handle_timeout = counting_timeout;
    opt.service_actions = counting_service_actions;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.005);
    assert_non_null(serve);
    assert_true(tu_wait_counter(&service_turns, 10, TU_WAIT_MS) >= 10);
    assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply)), strlen(TU_TEST_STR));
    assert_int_equal(tu_serve_stop(serve), 0);
    assert_int_equal(timeouts_seen, 0);
    tu_server_free(srv);
}

static int client_str_handle(ss_request *req)
{
    const char *s = ss_request_client_str(req);

    return ss_printf(req, "%s\n", s != NULL ? s : "(null)") > 0 ? SS_OK : SS_ERROR;
}

/* A Unix stream client is normally unbound: its address reads "unix:". */
static void test_unix_stream_client_str(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = client_str_handle};
    char path[TU_PATH_MAX + 8], reply[128];
    ss_server *srv;
    tu_serve *serve;
    int fd;

    (void)state;
    tu_options(&opt, TU_UNIX_STREAM, SS_MODE_SYNC, path, sizeof(path));
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_true(tu_recv_line(fd, reply, sizeof(reply), TU_WAIT_MS) > 0);
    assert_string_equal(reply, "unix:\n");
    close(fd);
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
}

/* ---- service_actions ----------------------------------------------------- */

static void counting_service_actions(ss_server *srv)
{
    (void)srv;
    __atomic_add_fetch(&service_turns, 1, __ATOMIC_SEQ_CST);
}

/* Called at least every poll_interval while idle. */
static void test_service_actions_idle(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = tu_echo_handle};
    ss_server *srv;
    tu_serve *serve;

    (void)state;
    service_turns = 0;
    ss_options_init(&opt);
    opt.service_actions = counting_service_actions;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    assert_true(tu_wait_counter(&service_turns, 5, TU_WAIT_MS) >= 5);
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
}

/* Called after each request, even with a poll interval far away. */
static void test_service_actions_per_request(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = tu_echo_handle};
    ss_server *srv;
    tu_serve *serve;
    long before;

    (void)state;
    service_turns = 0;
    ss_options_init(&opt);
    opt.service_actions = counting_service_actions;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 30.0);
    assert_non_null(serve);
    before = __atomic_load_n(&service_turns, __ATOMIC_SEQ_CST);
    for (int i = 0; i < 3; i++) {
        char reply[64];

        assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply)), strlen(TU_TEST_STR));
    }
    assert_true(tu_wait_counter(&service_turns, before + 3, TU_WAIT_MS) >= before + 3);
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
}

/* ---- user pointers, request accessors ------------------------------------ */

static int user_marker;
static int accessor_ok;

static int user_setup(ss_request *req)
{
    ss_request_set_user(req, &user_marker);
    return 0;
}

static int user_handle(ss_request *req)
{
    ss_server *srv = ss_request_server(req);
    socklen_t len = 0;
    const struct sockaddr *peer = ss_request_client_address(req, &len);
    const char *str = ss_request_client_str(req);
    int ok = ss_server_user(srv) == &accessor_ok && ss_request_user(req) == &user_marker &&
             peer != NULL && len == sizeof(struct sockaddr_in) && peer->sa_family == AF_INET &&
             str != NULL && strncmp(str, "127.0.0.1:", 10) == 0 && !ss_request_is_datagram(req) &&
             ss_request_data(req, NULL) == NULL;

    __atomic_store_n(&accessor_ok, ok ? 1 : -1, __ATOMIC_SEQ_CST);
    return tu_echo_handle(req);
}

static void user_finish(ss_request *req)
{
    if (ss_request_user(req) != &user_marker)
        __atomic_store_n(&accessor_ok, -2, __ATOMIC_SEQ_CST);
}

static void test_user_pointers(void **state)
{
    ss_options opt;
    ss_handler h = {.setup = user_setup, .handle = user_handle, .finish = user_finish};
    ss_server *srv;
    tu_serve *serve;
    char reply[64];

    (void)state;
    accessor_ok = 0;
    ss_options_init(&opt);
    opt.user = &accessor_ok;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    assert_ptr_equal(ss_server_user(srv), &accessor_ok);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply)), strlen(TU_TEST_STR));
    assert_int_equal(tu_serve_stop(serve), 0);
    assert_int_equal(accessor_ok, 1);
    tu_server_free(srv);
}

/* ---- drain and active ---------------------------------------------------- */

static int gated_handle(ss_request *req)
{
    tu_chan_put(&events, 'H');
    tu_chan_get(&release, TU_WAIT_MS);
    return tu_echo_handle(req);
}

static void run_drain(ss_mode mode)
{
    ss_options opt;
    ss_handler h = {.handle = gated_handle};
    ss_server *srv;
    tu_serve *serve;
    char reply[64];
    int fd;

    open_chans();
    ss_options_init(&opt);
    opt.mode = mode;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(tu_send_all(fd, TU_TEST_STR, strlen(TU_TEST_STR)), strlen(TU_TEST_STR));
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'H');
    assert_int_equal(ss_server_active(srv), 1);
    errno = 0;
    assert_int_equal(ss_server_drain(srv, 0.05), -1);
    assert_int_equal(errno, ETIMEDOUT);
    assert_int_equal(tu_chan_put(&release, 'r'), 0);
    assert_int_equal(ss_server_drain(srv, TU_WAIT_MS / 1000.0), 0);
    assert_int_equal(ss_server_active(srv), 0);
    assert_int_equal(tu_recv_line(fd, reply, sizeof(reply), TU_WAIT_MS), strlen(TU_TEST_STR));
    close(fd);
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
    close_chans();
}

static void test_drain_threading(void **state)
{
    (void)state;
    run_drain(SS_MODE_THREADING);
}

static void test_drain_forking(void **state)
{
    (void)state;
    run_drain(SS_MODE_FORKING);
}

static void test_drain_pool(void **state)
{
    (void)state;
    run_drain(SS_MODE_POOL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_port_zero_address),
        TU_TEST(test_port_zero_address_ipv6),
        TU_TEST(test_unix_address),
        TU_TEST(test_unix_file_removed_when_listen_fails),
        TU_TEST(test_server_accessors_null),
        TU_TEST(test_dual_stack_stream),
        TU_TEST(test_dual_stack_datagram),
        TU_TEST(test_shutdown_immediately),
        TU_TEST(test_shutdown_waits_for_loop),
        TU_TEST(test_shutdown_before_serve),
        TU_TEST(test_serve_again),
        TU_TEST(test_shutdown_in_sync_handler),
        TU_TEST(test_shutdown_in_threading_handler),
        TU_TEST(test_shutdown_in_pool_handler),
        TU_TEST(test_shutdown_in_forked_handler),
        TU_TEST(test_no_request_after_shutdown),
        TU_TEST(test_shutdown_from_service_actions),
        TU_TEST(test_shutdown_on_sigterm_serving_thread),
        TU_TEST(test_shutdown_on_sigint_other_thread),
        TU_TEST(test_shutdown_async_from_thread),
        TU_TEST(test_close_without_serving),
        TU_TEST(test_bind_leak_bad_port),
        TU_TEST(test_bind_leak_port_in_use_tcp),
        TU_TEST(test_bind_leak_port_in_use_udp),
        TU_TEST(test_bind_leak_port_in_use_pool),
        TU_TEST(test_reuse_options),
        TU_TEST(test_handle_request_after_shutdown),
        TU_TEST(test_verify_false_sync),
        TU_TEST(test_verify_false_threading),
        TU_TEST(test_verify_false_forking),
        TU_TEST(test_verify_false_pool),
        TU_TEST(test_verify_false_datagram),
        TU_TEST(test_handler_order),
        TU_TEST(test_setup_fails_skips_finish),
        TU_TEST(test_handle_request_timeout),
        TU_TEST(test_handle_request_one),
        TU_TEST(test_serve_forever_ignores_timeout),
        TU_TEST(test_unix_stream_client_str),
        TU_TEST(test_service_actions_idle),
        TU_TEST(test_service_actions_per_request),
        TU_TEST(test_user_pointers),
        TU_TEST(test_drain_threading),
        TU_TEST(test_drain_forking),
        TU_TEST(test_drain_pool),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
