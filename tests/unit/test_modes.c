/*
 * test_modes.c - the echo matrix: every server kind (TCP, UDP, Unix stream,
 * Unix datagram, TCP and UDP over IPv6) in every mode (sync, threading,
 * forking, pool), as CPython's SocketServerTest runs its servers: bind port 0
 * or a fresh path, serve_forever in a thread, "hello world\n" echoed three
 * times, shutdown, close, and the socket is gone afterwards.
 */
#include "testutil.h"

#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* CPython's harness sends the test string this many times per server. */
#define ECHO_ROUNDS 3
/* Exit status of the foreign child the forking tests leave for themselves. */
#define FOREIGN_STATUS 72

static void check_bound_address(ss_server *srv)
{
    struct sockaddr_storage a, b;
    socklen_t alen = sizeof(a), blen = sizeof(b);

    assert_int_equal(ss_server_address(srv, (struct sockaddr *)&a, &alen), 0);
    assert_int_equal(getsockname(ss_server_fileno(srv), (struct sockaddr *)&b, &blen), 0);
    assert_int_equal(alen, blen);
    assert_memory_equal(&a, &b, alen);
}

static void run_echo(enum tu_kind kind, ss_mode mode)
{
    ss_options opt;
    ss_handler h = {.handle = tu_echo_handle};
    char path[TU_PATH_MAX + 8];
    ss_server *srv;
    tu_serve *serve;
    pid_t foreign = -1;

    if (tu_kind_is_ipv6(kind) && !tu_have_ipv6())
        skip();
    tu_options(&opt, kind, mode, path, sizeof(path));
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    assert_int_equal(ss_server_mode(srv), mode);
    assert_int_equal(ss_server_type(srv), tu_kind_is_datagram(kind) ? SS_DATAGRAM : SS_STREAM);
    check_bound_address(srv);
    if (!tu_kind_is_unix(kind))
        assert_int_not_equal(ss_server_port(srv), 0);

    if (mode == SS_MODE_FORKING) {
        /* CPython's simple_subprocess: a child the server did not start must
         * be left for its parent to reap (issue 1540386). */
        foreign = fork();
        assert_true(foreign >= 0);
        if (foreign == 0)
            _exit(FOREIGN_STATUS);
    }

    serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    for (int i = 0; i < ECHO_ROUNDS; i++) {
        char reply[64];
        ssize_t n = tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply));

        assert_int_equal(n, (ssize_t)strlen(TU_TEST_STR));
        assert_string_equal(reply, TU_TEST_STR);
    }
    assert_int_equal(tu_serve_stop(serve), 0);
    assert_int_equal(serve->rc, 0);

    ss_server_close(srv);
    assert_int_equal(ss_server_fileno(srv), -1);
    /* bpo-31151: no child (or thread, or pool work) is left after close. */
    assert_int_equal(ss_server_active(srv), 0);

    if (foreign > 0) {
        int status = 0;

        assert_int_equal(waitpid(foreign, &status, 0), foreign);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), FOREIGN_STATUS);
    }
    tu_server_free(srv);
}

#define ECHO_TEST(K, M)                                                                            \
    static void echo_##K##_##M(void **state)                                                       \
    {                                                                                              \
        (void)state;                                                                               \
        run_echo(TU_##K, SS_MODE_##M);                                                             \
    }

#define ECHO_KIND(K)                                                                               \
    ECHO_TEST(K, SYNC)                                                                             \
    ECHO_TEST(K, THREADING)                                                                        \
    ECHO_TEST(K, FORKING)                                                                          \
    ECHO_TEST(K, POOL)

ECHO_KIND(TCP)
ECHO_KIND(UDP)
ECHO_KIND(UNIX_STREAM)
ECHO_KIND(UNIX_DGRAM)
ECHO_KIND(TCP6)
ECHO_KIND(UDP6)

#define ECHO_ENTRIES(K)                                                                            \
    TU_TEST(echo_##K##_SYNC), TU_TEST(echo_##K##_THREADING), TU_TEST(echo_##K##_FORKING),          \
        TU_TEST(echo_##K##_POOL)

int main(void)
{
    const struct CMUnitTest tests[] = {
        ECHO_ENTRIES(TCP),        ECHO_ENTRIES(UDP),  ECHO_ENTRIES(UNIX_STREAM),
        ECHO_ENTRIES(UNIX_DGRAM), ECHO_ENTRIES(TCP6), ECHO_ENTRIES(UDP6),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
