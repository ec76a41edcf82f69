/*
 * test_ftpd_throttle.c - per-address keys (IPv6 by prefix) and the
 * failed-login budgets: counting, bans, give-back on success, budgets
 * shared with a forked process, and a full table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../ftpd/netaddr.c"
#include "../../ftpd/throttle.c"

#include <arpa/inet.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static struct sockaddr_storage addr(const char *text)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(text, ':') != NULL) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, text, &a->sin6_addr), 1);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, text, &a->sin_addr), 1);
    }
    return ss;
}

static bool same_key(const char *a, const char *b, unsigned prefix)
{
    struct sockaddr_storage x = addr(a), y = addr(b);
    unsigned char kx[16], ky[16];

    netaddr_key((struct sockaddr *)&x, prefix, kx);
    netaddr_key((struct sockaddr *)&y, prefix, ky);
    return memcmp(kx, ky, 16) == 0;
}

static void test_keys(void **state)
{
    (void)state;
    /* One /64 is one client; another /64 is another. */
    assert_true(same_key("2001:db8:1::10", "2001:db8:1::ffff:1", 64));
    assert_false(same_key("2001:db8:1::10", "2001:db8:2::10", 64));
    assert_false(same_key("2001:db8:1::10", "2001:db8:1::11", 128));
    /* Prefixes that do not end on a byte. */
    assert_true(same_key("2001:db8:1:ff00::1", "2001:db8:1:ff7f::1", 57));
    assert_false(same_key("2001:db8:1:ff00::1", "2001:db8:1:ff80::1", 57));
    /* IPv4, plain or v4-mapped, counts by the whole address. */
    assert_true(same_key("192.0.2.1", "::ffff:192.0.2.1", 64));
    assert_false(same_key("192.0.2.1", "192.0.2.2", 64));
    assert_false(same_key("::ffff:192.0.2.1", "::ffff:192.0.2.2", 64));
}

static void test_budget_and_ban(void **state)
{
    struct sockaddr_storage a = addr("192.0.2.7"), b = addr("192.0.2.8");
    const struct sockaddr *pa = (struct sockaddr *)&a, *pb = (struct sockaddr *)&b;

    (void)state;
    assert_int_equal(throttle_init(3, 60, 64), 0);
    /* A success gives its attempt back: it never uses up the budget. */
    for (int i = 0; i < 10; i++) {
        assert_true(throttle_attempt(pa, "alice"));
        assert_int_equal(throttle_done(pa, "alice", true), 0);
    }
    assert_true(throttle_attempt(pa, "alice"));
    assert_int_equal(throttle_done(pa, "alice", false), 0);
    assert_true(throttle_attempt(pa, "bob"));
    assert_int_equal(throttle_done(pa, "bob", false), 0);
    /* The third failure from the address starts its ban. */
    assert_true(throttle_attempt(pa, "carol"));
    assert_int_equal(throttle_done(pa, "carol", false), THROTTLE_BAN_ADDR);
    assert_true(throttle_banned(pa, NULL));
    assert_false(throttle_attempt(pa, "dave"));
    /* Another address is not banned, and alice's one failure was
     * forgotten by nobody: two more from b ban the name alice. */
    assert_false(throttle_banned(pb, NULL));
    assert_true(throttle_attempt(pb, "alice"));
    assert_int_equal(throttle_done(pb, "alice", false), 0);
    assert_true(throttle_attempt(pb, "alice"));
    assert_int_equal(throttle_done(pb, "alice", false), THROTTLE_BAN_NAME);
    assert_false(throttle_attempt(pb, "alice"));
    assert_true(throttle_banned(pb, "alice"));
    assert_false(throttle_banned(pb, "erin"));
}

static void test_checks_in_flight_count(void **state)
{
    struct sockaddr_storage a = addr("198.51.100.1");
    const struct sockaddr *pa = (struct sockaddr *)&a;
    int taken = 0;

    (void)state;
    assert_int_equal(throttle_init(4, 60, 64), 0);
    /* Twenty checks started at once: only the budget's four run. */
    for (int i = 0; i < 20; i++) {
        char name[16];
        snprintf(name, sizeof(name), "u%d", i);
        taken += throttle_attempt(pa, name);
    }
    assert_int_equal(taken, 4);
}

static void test_shared_with_forked_process(void **state)
{
    struct sockaddr_storage a = addr("2001:db8:9::1"), b = addr("2001:db8:9::2");
    const struct sockaddr *pa = (struct sockaddr *)&a, *pb = (struct sockaddr *)&b;
    pid_t pid;
    int status = 0;

    (void)state;
    assert_int_equal(throttle_init(2, 60, 64), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int ok = throttle_attempt(pa, "x") && throttle_done(pa, "x", false) == 0 &&
                 throttle_attempt(pa, "y") && throttle_done(pa, "y", false) != 0;
        _exit(ok ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* Banned in the parent too, for the whole /64. */
    assert_true(throttle_banned(pb, NULL));
}

static void test_full_table_keeps_bans(void **state)
{
    struct sockaddr_storage a = addr("203.0.113.1");
    const struct sockaddr *pa = (struct sockaddr *)&a;

    (void)state;
    assert_int_equal(throttle_init(1, 60, 64), 0);
    assert_true(throttle_attempt(pa, "victim"));
    assert_int_equal(throttle_done(pa, "victim", false), THROTTLE_BAN_ADDR | THROTTLE_BAN_NAME);
    /* Flood the table with fresh names from fresh addresses: the bans
     * stay, unbanned entries are reused first. */
    for (int i = 0; i < 3 * THROTTLE_SLOTS; i++) {
        struct sockaddr_storage x;
        struct sockaddr_in *xa = (struct sockaddr_in *)&x;
        char name[32];

        memset(&x, 0, sizeof(x));
        xa->sin_family = AF_INET;
        xa->sin_addr.s_addr = htonl(0x0a000000u + (uint32_t)i);
        snprintf(name, sizeof(name), "n%d", i);
        (void)throttle_attempt((struct sockaddr *)&x, name);
    }
    assert_true(throttle_banned(pa, NULL));
    assert_true(throttle_banned((struct sockaddr *)&a, "victim"));
}

static void test_off(void **state)
{
    struct sockaddr_storage a = addr("192.0.2.99");
    const struct sockaddr *pa = (struct sockaddr *)&a;

    (void)state;
    tab = NULL;
    assert_int_equal(throttle_init(0, 60, 64), 0);
    for (int i = 0; i < 100; i++) {
        assert_true(throttle_attempt(pa, "z"));
        assert_int_equal(throttle_done(pa, "z", false), 0);
    }
    assert_false(throttle_banned(pa, "z"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_budget_and_ban),
        cmocka_unit_test(test_checks_in_flight_count),
        cmocka_unit_test(test_shared_with_forked_process),
        cmocka_unit_test(test_full_table_keeps_bans),
        cmocka_unit_test(test_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
