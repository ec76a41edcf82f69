/*
 * test_api.c - the public surface: the shared library exports exactly the
 * functions the header declares (CPython's MiscTestCase.test_all), option
 * defaults are Python's (or the documented differences), bad options are
 * refused, and the default handle_error writes one line to stderr.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Room for the names of the public functions. */
#define MAX_SYMBOLS 128
#define MAX_NAME 64

struct names {
    char v[MAX_SYMBOLS][MAX_NAME];
    size_t n;
};

static bool has_name(const struct names *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->v[i], name) == 0)
            return true;
    }
    return false;
}

static void add_name(struct names *s, const char *name, size_t len)
{
    if (s->n < MAX_SYMBOLS && len < MAX_NAME) {
        memcpy(s->v[s->n], name, len);
        s->v[s->n][len] = '\0';
        s->n++;
    }
}

/* The directory holding this test binary. */
static int exe_dir(char *buf, size_t size)
{
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);

    if (n < 0)
        return -1;
    path[n] = '\0';
    snprintf(buf, size, "%s", dirname(path));
    return 0;
}

/* include/sockserv.h, looked for upwards from the binary's directory. */
static FILE *open_header(void)
{
    char dir[PATH_MAX], path[PATH_MAX + 32];

    if (exe_dir(dir, sizeof(dir)) < 0)
        return NULL;
    for (int up = 0; up < 6; up++) {
        FILE *f;

        snprintf(path, sizeof(path), "%s/include/sockserv.h", dir);
        f = fopen(path, "re");
        if (f != NULL)
            return f;
        snprintf(path, sizeof(path), "%s", dir);
        snprintf(dir, sizeof(dir), "%s", dirname(path));
    }
    return NULL;
}

/* Names of the functions declared with SS_API: the identifier before the
 * first '(' of each declaration. */
static void header_names(FILE *f, struct names *out)
{
    char line[512];

    while (fgets(line, sizeof(line), f) != NULL) {
        char *p = strstr(line, "SS_API ");
        char *paren, *start;

        if (p == NULL || strncmp(line, "#define", 7) == 0)
            continue;
        paren = strchr(p, '(');
        if (paren == NULL)
            continue;
        start = paren;
        while (start > p &&
               (start[-1] == '_' || (start[-1] >= 'a' && start[-1] <= 'z') ||
                (start[-1] >= 'A' && start[-1] <= 'Z') || (start[-1] >= '0' && start[-1] <= '9')))
            start--;
        add_name(out, start, (size_t)(paren - start));
    }
}

/* Defined dynamic symbols of the shared library, from nm. Returns -1 when
 * nm or the library is not there. */
static int library_names(struct names *out, struct names *data)
{
    char dir[PATH_MAX], cmd[PATH_MAX + 64], line[512];
    FILE *p;
    int lines = 0;

    if (exe_dir(dir, sizeof(dir)) < 0)
        return -1;
    snprintf(cmd, sizeof(cmd), "nm -D --defined-only '%s/../libsockserv.so' 2>/dev/null", dir);
    p = popen(cmd, "re");
    if (p == NULL)
        return -1;
    while (fgets(line, sizeof(line), p) != NULL) {
        /* "0000000000001234 T ss_server_new" */
        char *type = strchr(line, ' ');
        char *name;
        size_t len;

        if (type == NULL || type[1] == '\0' || type[2] != ' ')
            continue;
        name = type + 3;
        len = strcspn(name, "\n@");
        lines++;
        if (type[1] == 'T' || type[1] == 't' || type[1] == 'W' || type[1] == 'i')
            add_name(out, name, len);
        else if (type[1] != 'A')
            add_name(data, name, len);
    }
    if (pclose(p) != 0 || lines == 0)
        return -1;
    return 0;
}

/* MiscTestCase.test_all: what is public is exactly what is documented. */
static void test_exported_symbols(void **state)
{
    static struct names declared, exported, data;
    FILE *h = open_header();

    (void)state;
    if (h == NULL) {
        print_message("include/sockserv.h not found from the test binary\n");
        skip();
    }
    header_names(h, &declared);
    fclose(h);
    assert_true(declared.n > 30);
    if (library_names(&exported, &data) < 0) {
        print_message("nm or libsockserv.so not available\n");
        skip();
    }
    for (size_t i = 0; i < declared.n; i++) {
        if (!has_name(&exported, declared.v[i]))
            fail_msg("declared but not exported: %s", declared.v[i]);
    }
    for (size_t i = 0; i < exported.n; i++) {
        /* The C runtime's own entry points in a shared object. */
        if (strcmp(exported.v[i], "_init") == 0 || strcmp(exported.v[i], "_fini") == 0)
            continue;
        if (!has_name(&declared, exported.v[i]))
            fail_msg("exported but not declared: %s", exported.v[i]);
    }
    for (size_t i = 0; i < data.n; i++) {
        if (strncmp(data.v[i], "ss", 2) == 0)
            fail_msg("exported data symbol: %s", data.v[i]);
    }
}

/* Python's class attributes, and the documented differences. */
static void test_option_defaults(void **state)
{
    ss_options opt;

    (void)state;
    memset(&opt, 0x5a, sizeof(opt));
    ss_options_init(&opt);
    assert_non_null(opt.address);
    assert_string_equal(opt.address, "127.0.0.1:0");
    assert_int_equal(opt.type, SS_STREAM);
    assert_int_equal(opt.mode, SS_MODE_SYNC);
    /* Python 3.15's default; 5 before it (documented difference). */
    assert_int_equal(opt.request_queue_size, SOMAXCONN);
    assert_false(opt.allow_reuse_address);
    assert_false(opt.allow_reuse_port);
    assert_true(opt.timeout < 0);
    assert_int_equal(opt.max_packet_size, 8192);
    assert_false(opt.daemon_threads);
    assert_true(opt.block_on_close);
    assert_int_equal(opt.max_children, 40);
    assert_int_equal(opt.pool_workers, 8);
    assert_int_equal(opt.pool_queue, 64);
    assert_int_equal(opt.pool_full, SS_POOL_WAIT);
    assert_int_equal(opt.thread_stack_size, 0);
    assert_false(opt.disable_nagle_algorithm);
    assert_true(opt.request_timeout < 0);
    assert_int_equal(opt.wbufsize, 0);
    assert_true(opt.unlink_stale_unix);
    assert_null(opt.verify_request);
    assert_null(opt.handle_error);
    assert_null(opt.handle_timeout);
    assert_null(opt.service_actions);
    assert_null(opt.reject);
    assert_null(opt.user);
    assert_int_equal(SS_VERSION_MAJOR, 0);
    assert_int_equal(SS_OK, 0);
    assert_int_equal(SS_ERROR, -1);
    assert_int_equal(SS_ABORT, -2);
}

static void test_bad_options(void **state)
{
    ss_handler h = {.handle = tu_echo_handle};
    ss_options opt;
    int fds0 = tu_count_fds();

    (void)state;
    ss_options_init(&opt);
    opt.type = (ss_socktype)7;
    errno = 0;
    assert_null(ss_server_new(&opt, &h));
    assert_int_equal(errno, EINVAL);

    ss_options_init(&opt);
    opt.mode = (ss_mode)9;
    errno = 0;
    assert_null(ss_server_new(&opt, &h));
    assert_int_equal(errno, EINVAL);

    ss_options_init(&opt);
    opt.address = "not an address";
    errno = 0;
    assert_null(ss_server_new(&opt, &h));
    assert_int_equal(errno, EINVAL);

    assert_int_equal(tu_count_fds(), fds0);
}

/* A handler table with no members at all is valid: requests are accepted
 * and closed (Python's BaseRequestHandler with nothing overridden). */
static void test_empty_handler(void **state)
{
    ss_handler h = {0};
    ss_options opt;
    ss_server *srv;
    int fd;

    (void)state;
    ss_options_init(&opt);
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(ss_handle_request(srv), 1);
    assert_int_equal(tu_wait_eof(fd, TU_WAIT_MS), 0);
    close(fd);
    tu_server_free(srv);
}

/* Runs fn with stderr going to a pipe; returns what it wrote. */
static size_t capture_stderr(void (*fn)(void *), void *arg, char *buf, size_t size)
{
    int fds[2], saved;
    size_t n = 0;

    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    fflush(stderr);
    saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fds[1], 2), 2);
    fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fds[1]);
    while (n + 1 < size) {
        ssize_t r = read(fds[0], buf + n, size - 1 - n);

        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    close(fds[0]);
    return n;
}

static void call_default_error(void *arg)
{
    ss_default_handle_error(arg, NULL, EMFILE);
}

static int failing_handle(ss_request *req)
{
    (void)req;
    return SS_ERROR;
}

static void handle_one(void *arg)
{
    ss_handle_request(arg);
}

static size_t count_lines(const char *s)
{
    size_t n = 0;

    for (; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

/* The default handle_error writes exactly one line, and the server keeps
 * serving. */
static void test_default_handle_error(void **state)
{
    ss_handler h = {.handle = failing_handle};
    ss_options opt;
    ss_server *srv;
    char out[4096];
    size_t n;
    int fd;

    (void)state;
    ss_options_init(&opt);
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);

    n = capture_stderr(call_default_error, srv, out, sizeof(out));
    assert_true(n > 1);
    assert_int_equal(count_lines(out), 1);
    assert_int_equal(out[n - 1], '\n');

    /* A handler failing with no hook set: the default runs, one line. */
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    n = capture_stderr(handle_one, srv, out, sizeof(out));
    assert_true(n > 1);
    assert_int_equal(count_lines(out), 1);
    assert_int_equal(out[n - 1], '\n');
    assert_int_equal(tu_wait_eof(fd, TU_WAIT_MS), 0);
    close(fd);
    assert_true(ss_server_fileno(srv) >= 0);
    tu_server_free(srv);
}

/* Nothing is printed when all goes well. */
static void serve_quietly(void *arg)
{
    ss_server *srv = arg;
    int fd = tu_client(srv, NULL, 0);

    if (fd < 0)
        return;
    tu_send_all(fd, TU_TEST_STR, strlen(TU_TEST_STR));
    ss_handle_request(srv);
    close(fd);
}

static void test_silent_when_well(void **state)
{
    ss_handler h = {.handle = tu_echo_handle};
    ss_options opt;
    ss_server *srv;
    char out[256];

    (void)state;
    ss_options_init(&opt);
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    assert_int_equal(capture_stderr(serve_quietly, srv, out, sizeof(out)), 0);
    tu_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_exported_symbols),     TU_TEST(test_option_defaults),
        TU_TEST(test_bad_options),          TU_TEST(test_empty_handler),
        TU_TEST(test_default_handle_error), TU_TEST(test_silent_when_well),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
