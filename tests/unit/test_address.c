/*
 * test_address.c - address strings: parsing (a table of good and bad
 * strings), formatting, and what the server does with Unix paths: too long,
 * stale socket files, files that are not sockets, live servers, abstract
 * names, removal on close.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* sun_path holds this many bytes including the terminating NUL. */
#define SUN_PATH_SIZE ((int)sizeof(((struct sockaddr_un *)0)->sun_path))

struct good_case {
    const char *str;
    int family; /* AF_UNSPEC: AF_INET or AF_INET6 */
    int port;
    const char *host; /* numeric form, NULL to skip */
};

static const struct good_case good[] = {
    {"127.0.0.1:8003", AF_INET, 8003, "127.0.0.1"},
    {"0.0.0.0:0", AF_INET, 0, "0.0.0.0"},
    {"127.0.0.1:65535", AF_INET, 65535, "127.0.0.1"},
    {"10.1.2.3:1", AF_INET, 1, "10.1.2.3"},
    {"[::1]:0", AF_INET6, 0, "::1"},
    {"[::]:21", AF_INET6, 21, "::"},
    {"[fe80::1:2]:443", AF_INET6, 443, "fe80::1:2"},
    {"[::ffff:127.0.0.1]:5", AF_INET6, 5, "::ffff:127.0.0.1"},
    {"localhost:80", AF_UNSPEC, 80, NULL},
};

struct bad_case {
    const char *str;
    int err;
};

static const struct bad_case bad[] = {
    {"", EINVAL},
    {"127.0.0.1", EINVAL},
    {"127.0.0.1:", EINVAL},
    {":", EINVAL},
    {"127.0.0.1:65536", EINVAL},
    {"127.0.0.1:-1", EINVAL},
    {"127.0.0.1:99999999999999999999", EINVAL},
    {"127.0.0.1:8x", EINVAL},
    {"127.0.0.1:0x50", EINVAL},
    {"127.0.0.1:80 ", EINVAL},
    {"[::1]", EINVAL},
    {"[::1]:", EINVAL},
    {"[::1:80", EINVAL},
    {"[::1]80", EINVAL},
    {"::1:80", EINVAL},
    {"unix:", EINVAL},
    {"host.invalid:80", ENOENT},
};

static void test_parse_good(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        for (int t = 0; t < 2; t++) {
            struct sockaddr_storage ss;
            socklen_t len = 0;
            char host[INET6_ADDRSTRLEN];
            int port;

            memset(&ss, 0xa5, sizeof(ss));
            print_message("parse %s\n", good[i].str);
            assert_int_equal(ss_parse_address(good[i].str, t ? SOCK_DGRAM : SOCK_STREAM, &ss, &len),
                             0);
            if (good[i].family != AF_UNSPEC)
                assert_int_equal(ss.ss_family, good[i].family);
            if (ss.ss_family == AF_INET) {
                struct sockaddr_in *in = (struct sockaddr_in *)&ss;

                assert_int_equal(len, sizeof(*in));
                port = ntohs(in->sin_port);
                assert_non_null(inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host)));
            } else {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

                assert_int_equal(ss.ss_family, AF_INET6);
                assert_int_equal(len, sizeof(*in6));
                port = ntohs(in6->sin6_port);
                assert_non_null(inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host)));
            }
            assert_int_equal(port, good[i].port);
            if (good[i].host != NULL)
                assert_string_equal(host, good[i].host);
        }
    }
}

static void test_parse_bad(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        print_message("parse '%s'\n", bad[i].str);
        errno = 0;
        assert_int_equal(ss_parse_address(bad[i].str, SOCK_STREAM, &ss, &len), -1);
        assert_int_equal(errno, bad[i].err);
    }
    errno = 0;
    assert_int_equal(ss_parse_address(NULL, SOCK_STREAM, &ss, &len), -1);
    assert_int_equal(errno, EINVAL);
}

static void test_parse_unix(void **state)
{
    struct sockaddr_storage ss;
    struct sockaddr_un *un = (struct sockaddr_un *)&ss;
    socklen_t len = 0;
    const socklen_t base = (socklen_t)offsetof(struct sockaddr_un, sun_path);

    (void)state;
    assert_int_equal(ss_parse_address("unix:/tmp/x.sock", SOCK_STREAM, &ss, &len), 0);
    assert_int_equal(un->sun_family, AF_UNIX);
    assert_string_equal(un->sun_path, "/tmp/x.sock");
    assert_true(len >= base + strlen("/tmp/x.sock") && len <= sizeof(*un));

    /* Abstract names: a leading NUL, and the length counts only the name,
     * since every byte of it is significant. */
    memset(&ss, 0, sizeof(ss));
    assert_int_equal(ss_parse_address("unix:@abstract", SOCK_DGRAM, &ss, &len), 0);
    assert_int_equal(un->sun_family, AF_UNIX);
    assert_int_equal(un->sun_path[0], '\0');
    assert_memory_equal(un->sun_path + 1, "abstract", 8);
    assert_int_equal(len, base + 1 + 8);
}

static void test_parse_unix_too_long(void **state)
{
    char str[400], path[300];
    struct sockaddr_storage ss;
    socklen_t len = 0;

    (void)state;
    /* The longest path that fits: sun_path minus its NUL. */
    memset(path, 'a', sizeof(path));
    path[0] = '/';
    path[SUN_PATH_SIZE - 1] = '\0';
    snprintf(str, sizeof(str), "unix:%s", path);
    assert_int_equal(ss_parse_address(str, SOCK_STREAM, &ss, &len), 0);

    path[SUN_PATH_SIZE - 1] = 'a';
    path[SUN_PATH_SIZE] = '\0';
    snprintf(str, sizeof(str), "unix:%s", path);
    errno = 0;
    assert_int_equal(ss_parse_address(str, SOCK_STREAM, &ss, &len), -1);
    assert_int_equal(errno, ENAMETOOLONG);

    path[200] = '\0';
    snprintf(str, sizeof(str), "unix:%s", path);
    errno = 0;
    assert_int_equal(ss_parse_address(str, SOCK_STREAM, &ss, &len), -1);
    assert_int_equal(errno, ENAMETOOLONG);
}

/* ---- formatting ---------------------------------------------------------- */

static void test_format(void **state)
{
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
    struct sockaddr_un un;
    char buf[256];
    const socklen_t base = (socklen_t)offsetof(struct sockaddr_un, sun_path);

    (void)state;
    memset(&in, 0, sizeof(in));
    in.sin_family = AF_INET;
    in.sin_port = htons(5555);
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_ptr_equal(ss_format_address((struct sockaddr *)&in, sizeof(in), buf, sizeof(buf)), buf);
    assert_string_equal(buf, "127.0.0.1:5555");

    memset(&in6, 0, sizeof(in6));
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(5555);
    in6.sin6_addr = in6addr_loopback;
    assert_non_null(ss_format_address((struct sockaddr *)&in6, sizeof(in6), buf, sizeof(buf)));
    assert_string_equal(buf, "[::1]:5555");

    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    memcpy(un.sun_path, "/tmp/p.sock", 12);
    assert_non_null(ss_format_address((struct sockaddr *)&un, base + 12, buf, sizeof(buf)));
    assert_string_equal(buf, "unix:/tmp/p.sock");

    /* An unbound peer: only the family. */
    assert_non_null(
        ss_format_address((struct sockaddr *)&un, sizeof(sa_family_t), buf, sizeof(buf)));
    assert_string_equal(buf, "unix:");

    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    memcpy(un.sun_path + 1, "name", 4);
    assert_non_null(ss_format_address((struct sockaddr *)&un, base + 5, buf, sizeof(buf)));
    assert_string_equal(buf, "unix:@name");

    /* Too small a buffer is an error, never a cut address. */
    assert_null(ss_format_address((struct sockaddr *)&in, sizeof(in), buf, 8));
    assert_null(ss_format_address((struct sockaddr *)&in, sizeof(in), buf, 14));
    assert_non_null(ss_format_address((struct sockaddr *)&in, sizeof(in), buf, 15));
}

/* What formatting produces, parsing reads back. */
static void test_format_parse_roundtrip(void **state)
{
    static const char *const strs[] = {"127.0.0.1:8003", "[::1]:40001",          "[::]:21",
                                       "0.0.0.0:65535",  "unix:/tmp/round.sock", "unix:@round"};

    (void)state;
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        struct sockaddr_storage ss;
        socklen_t len = 0;
        char buf[256];

        assert_int_equal(ss_parse_address(strs[i], SOCK_STREAM, &ss, &len), 0);
        assert_non_null(ss_format_address((struct sockaddr *)&ss, len, buf, sizeof(buf)));
        assert_string_equal(buf, strs[i]);
    }
}

/* ---- Unix paths at the server -------------------------------------------- */

static ss_server *new_at(const char *address, ss_socktype type, bool unlink_stale)
{
    ss_options opt;
    ss_handler h = {.handle = tu_echo_handle};

    ss_options_init(&opt);
    opt.address = address;
    opt.type = type;
    opt.unlink_stale_unix = unlink_stale;
    return tu_server_new(&opt, &h);
}

static void roundtrip_ok(ss_server *srv)
{
    tu_serve *serve = tu_serve_start(srv, 0.01);
    char reply[64];

    assert_non_null(serve);
    assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply)), strlen(TU_TEST_STR));
    assert_string_equal(reply, TU_TEST_STR);
    assert_int_equal(tu_serve_stop(serve), 0);
}

/* Leaves a socket file at path with nothing listening on it. */
static void make_stale(const char *path, int type)
{
    struct sockaddr_un un;
    int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    memcpy(un.sun_path, path, strlen(path) + 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&un, sizeof(un)), 0);
    close(fd);
}

static void test_server_unix_path_too_long(void **state)
{
    char str[400];
    ss_options opt;
    ss_handler h = {.handle = tu_echo_handle};
    int fds0 = tu_count_fds();

    (void)state;
    memset(str, 'a', sizeof(str));
    memcpy(str, "unix:/tmp/", 10);
    str[250] = '\0';
    ss_options_init(&opt);
    opt.address = str;
    errno = 0;
    assert_null(ss_server_new(&opt, &h));
    assert_int_equal(errno, ENAMETOOLONG);
    assert_int_equal(tu_count_fds(), fds0);
}

static void run_stale(ss_socktype type)
{
    char path[TU_PATH_MAX], addr[TU_PATH_MAX + 8];
    int stype = type == SS_DATAGRAM ? SOCK_DGRAM : SOCK_STREAM;
    ss_server *srv;
    struct stat st;

    tu_unix_path(path, sizeof(path));
    snprintf(addr, sizeof(addr), "unix:%s", path);

    /* Without the option the stale file is in the way, and stays. */
    make_stale(path, stype);
    errno = 0;
    assert_null(new_at(addr, type, false));
    assert_int_equal(errno, EADDRINUSE);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));

    /* With it (the default) the stale file is replaced. */
    srv = new_at(addr, type, true);
    assert_non_null(srv);
    roundtrip_ok(srv);
    /* And the file we created goes away on close. */
    ss_server_close(srv);
    assert_int_equal(lstat(path, &st), -1);
    assert_int_equal(errno, ENOENT);
    tu_server_free(srv);
}

static void test_server_stale_socket_stream(void **state)
{
    (void)state;
    run_stale(SS_STREAM);
}

static void test_server_stale_socket_datagram(void **state)
{
    (void)state;
    run_stale(SS_DATAGRAM);
}

/* A live server's socket is never taken over, and a file that is not a
 * socket is never removed. */
static void test_server_unix_in_use(void **state)
{
    char path[TU_PATH_MAX], addr[TU_PATH_MAX + 8];
    ss_server *first;
    struct stat st;
    int fd;

    (void)state;
    tu_unix_path(path, sizeof(path));
    snprintf(addr, sizeof(addr), "unix:%s", path);
    first = new_at(addr, SS_STREAM, true);
    assert_non_null(first);
    errno = 0;
    assert_null(new_at(addr, SS_STREAM, true));
    assert_int_equal(errno, EADDRINUSE);
    roundtrip_ok(first);
    tu_server_free(first);

    fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);
    errno = 0;
    assert_null(new_at(addr, SS_STREAM, true));
    assert_int_equal(errno, EADDRINUSE);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    unlink(path);
}

/* With unlink_stale_unix off the socket file stays after close, as in
 * Python. */
static void test_server_unix_kept_without_option(void **state)
{
    char path[TU_PATH_MAX], addr[TU_PATH_MAX + 8];
    ss_server *srv;
    struct stat st;

    (void)state;
    tu_unix_path(path, sizeof(path));
    snprintf(addr, sizeof(addr), "unix:%s", path);
    srv = new_at(addr, SS_STREAM, false);
    assert_non_null(srv);
    roundtrip_ok(srv);
    tu_server_free(srv);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    unlink(path);
}

static void test_server_abstract(void **state)
{
    char addr[64], buf[128];
    ss_server *srv;

    (void)state;
    snprintf(addr, sizeof(addr), "unix:@ssut-abstract-%d", (int)getpid());
    for (int t = 0; t < 2; t++) {
        srv = new_at(addr, t ? SS_DATAGRAM : SS_STREAM, true);
        assert_non_null(srv);
        assert_non_null(ss_server_address_str(srv, buf, sizeof(buf)));
        assert_string_equal(buf, addr);
        roundtrip_ok(srv);
        tu_server_free(srv);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_parse_good),
        TU_TEST(test_parse_bad),
        TU_TEST(test_parse_unix),
        TU_TEST(test_parse_unix_too_long),
        TU_TEST(test_format),
        TU_TEST(test_format_parse_roundtrip),
        TU_TEST(test_server_unix_path_too_long),
        TU_TEST(test_server_stale_socket_stream),
        TU_TEST(test_server_stale_socket_datagram),
        TU_TEST(test_server_unix_in_use),
        TU_TEST(test_server_unix_kept_without_option),
        TU_TEST(test_server_abstract),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
