/*
 * test_options.c - ss_options carries its size: a struct of the 0.1 size
 * gets the defaults for the options appended since (whatever its memory
 * holds past its end); a size no ss_options_init wrote fails with EINVAL; a
 * struct from a newer header works while the options this library does not
 * know are zero, and fails with EINVAL once one is set. Also the checks on
 * option values that ss_server_new does (pool size overflow, stack size,
 * peer_prefix6).
 */
#include "testutil.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* The size field and the options of version 0.1, through `user`. */
#define SIZE_0_1 (offsetof(ss_options, user) + sizeof(void *))

/* Room for a struct from a newer header: ours plus options we do not know. */
#define EXTRA 64
typedef union bigger {
    ss_options opt;
    unsigned char bytes[sizeof(ss_options) + EXTRA];
} bigger;

static void expect_einval(const ss_options *opt)
{
    errno = 0;
    ss_server *srv = ss_server_new(opt, NULL);
    if (srv != NULL)
        ss_server_free(srv);
    assert_null(srv);
    assert_int_equal(errno, EINVAL);
}

static void expect_ok(const ss_options *opt)
{
    ss_server *srv = ss_server_new(opt, NULL);
    assert_non_null(srv);
    ss_server_free(srv);
}

static void test_init_sets_size(void **state)
{
    ss_options opt;

    (void)state;
    memset(&opt, 0xab, sizeof(opt));
    ss_options_init(&opt);
    assert_int_equal(opt.struct_size, sizeof(ss_options));
    assert_int_equal(opt.max_connections, 0);
    assert_int_equal(opt.max_per_peer, 0);
    assert_int_equal(opt.peer_prefix6, 64);
    assert_int_equal(opt.max_children, 40);
    assert_null(opt.user);
    ss_options_init(NULL); /* harmless */
    expect_ok(&opt);
    expect_ok(NULL);
}

/* A program built against 0.1 (the sized layout): its struct ends after
 * `user`. What lies past it in memory is not its options: here, values that
 * would fail (peer_prefix6 > 128) or change behaviour (limits) if read. */
static void test_size_0_1_gets_defaults(void **state)
{
    bigger b;

    (void)state;
    memset(&b, 0xab, sizeof(b));
    ss_options_init_size(&b.opt, SIZE_0_1);
    assert_int_equal(b.opt.struct_size, SIZE_0_1);
    for (size_t i = SIZE_0_1; i < sizeof(b.bytes); i++)
        assert_int_equal(b.bytes[i], 0xab); /* nothing written past the size */
    assert_int_equal(b.opt.max_children, 40);
    b.opt.mode = SS_MODE_THREADING;

    ss_handler h = {.handle = tu_echo_handle};
    ss_server *srv = tu_server_new(&b.opt, &h);
    assert_non_null(srv);
    /* No limit came from the bytes past the struct. */
    assert_null(srv->limits);
    assert_int_equal(srv->opt.peer_prefix6, 64);
    tu_serve *serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    char reply[64];
    assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, reply, sizeof(reply)),
                     (ssize_t)strlen(TU_TEST_STR));
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);

    /* The function form fills the 0.1 options the same way. */
    memset(&b, 0xab, sizeof(b));
    (ss_options_init)(&b.opt);
    assert_int_equal(b.opt.struct_size, SIZE_0_1);
    assert_int_equal(b.bytes[sizeof(ss_options) - 1], 0xab);
    expect_ok(&b.opt);
}

static void test_bad_sizes(void **state)
{
    static const size_t sizes[] = {0,
                                   1,
                                   7,
                                   sizeof(size_t),
                                   SIZE_0_1 - sizeof(void *),
                                   SIZE_0_1 + 1,
                                   sizeof(ss_options) + 3,
                                   0xdeadbeef,
                                   (size_t)-1};
    ss_options opt;

    (void)state;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        ss_options_init(&opt);
        opt.struct_size = sizes[i];
        expect_einval(&opt);
    }
    /* A pointer where the size belongs (a struct from before the size
     * field, or garbage). */
    ss_options_init(&opt);
    opt.struct_size = (size_t)(uintptr_t)&opt;
    expect_einval(&opt);
    /* Designated initialisers without ss_options_init leave it 0. */
    ss_options zeroed = {.address = "127.0.0.1:0"};
    expect_einval(&zeroed);
}

/* A struct from a newer header: fine while the options we do not know are
 * zero (ss_options_init_size zeroes them), EINVAL once one is set. */
static void test_bigger_size(void **state)
{
    bigger b;

    (void)state;
    memset(&b, 0xab, sizeof(b));
    ss_options_init_size(&b.opt, sizeof(b));
    assert_int_equal(b.opt.struct_size, sizeof(b));
    assert_int_equal(b.opt.peer_prefix6, 64);
    for (size_t i = sizeof(ss_options); i < sizeof(b.bytes); i++)
        assert_int_equal(b.bytes[i], 0);
    expect_ok(&b.opt);
    b.bytes[sizeof(ss_options) + EXTRA / 2] = 1;
    expect_einval(&b.opt);
    b.bytes[sizeof(ss_options) + EXTRA / 2] = 0;
    b.bytes[sizeof(b.bytes) - 1] = 0x80;
    expect_einval(&b.opt);
}

static void test_option_values(void **state)
{
    ss_options opt;

    (void)state;
    ss_options_init(&opt);
    opt.mode = SS_MODE_POOL;
    opt.pool_workers = UINT_MAX;
    opt.pool_queue = 2; /* the sum wraps to 1 */
    expect_einval(&opt);
    opt.pool_workers = 2;
    opt.pool_queue = UINT_MAX;
    expect_einval(&opt);

    ss_options_init(&opt);
    opt.mode = SS_MODE_THREADING;
    opt.thread_stack_size = 1024; /* below PTHREAD_STACK_MIN */
    expect_einval(&opt);
    opt.mode = SS_MODE_POOL;
    expect_einval(&opt);
    opt.thread_stack_size = (size_t)PTHREAD_STACK_MIN + 64 * 1024;
    expect_ok(&opt);

    ss_options_init(&opt);
    opt.peer_prefix6 = 129;
    expect_einval(&opt);
    opt.peer_prefix6 = 128;
    opt.max_per_peer = 1;
    expect_ok(&opt);
    opt.peer_prefix6 = 0;
    expect_ok(&opt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_init_sets_size), TU_TEST(test_size_0_1_gets_defaults), TU_TEST(test_bad_sizes),
        TU_TEST(test_bigger_size),    TU_TEST(test_option_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
