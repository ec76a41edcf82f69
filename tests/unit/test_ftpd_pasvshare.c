/*
 * test_ftpd_pasvshare.c - the passive-listener share per address: counting
 * and give-back, no cap, entries of dead (or zombie) processes reclaimed at
 * the share and when the table is full, and a process that died holding
 * the lock stopping nobody.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../ftpd/netaddr.c"
#include "../../ftpd/pasvshare.c"
#include "../../ftpd/sysio.c"

#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* A test that would hang (a lock never given back) fails instead. */
#define TEST_ALARM_S 20

static struct sockaddr_in v4(const char *text)
{
    struct sockaddr_in a;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, text, &a.sin_addr), 1);
    return a;
}

#define SA(a) ((const struct sockaddr *)&(a))

/* Fork a child that runs fn and exits with its result; returns its pid. */
static pid_t child(int (*fn)(void))
{
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0)
        _exit(fn());
    return pid;
}

static void reap(pid_t pid, int want)
{
    int st = 0;

    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), want);
}

/* The child's part: take one listener of 192.0.2.1 and end without giving
 * it back, as a session killed with SIGKILL does. */
static int take_and_die(void)
{
    struct sockaddr_in a = v4("192.0.2.1");

    return pasvshare_acquire(SA(a)) == 1 ? 0 : 1;
}

static void test_share_counted_and_given_back(void **state)
{
    struct sockaddr_in a = v4("192.0.2.1"), b = v4("192.0.2.2");

    (void)state;
    assert_int_equal(pasvshare_init(8, 2, 64), 0);
    assert_int_equal(pasvshare_acquire(SA(a)), 1);
    assert_int_equal(pasvshare_acquire(SA(a)), 1);
    errno = 0;
    assert_int_equal(pasvshare_acquire(SA(a)), -1);
    assert_int_equal(errno, EUSERS);
    /* Another address has a share of its own. */
    assert_int_equal(pasvshare_acquire(SA(b)), 1);
    pasvshare_release(SA(a));
    assert_int_equal(pasvshare_acquire(SA(a)), 1);
    /* Entries of a live process (this one: threading mode) are never
     * reclaimed, only given back. */
    assert_int_equal(pasvshare_acquire(SA(a)), -1);
}

static void test_no_cap_counts_nothing(void **state)
{
    struct sockaddr_in a = v4("192.0.2.1");

    (void)state;
    assert_int_equal(pasvshare_init(1, 0, 64), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(pasvshare_acquire(SA(a)), 0);
    pasvshare_release(SA(a)); /* nothing to give back: no harm */
}

static void test_dead_holder_reclaimed_at_share(void **state)
{
    struct sockaddr_in a = v4("192.0.2.1");
    pid_t pid;

    (void)state;
    assert_int_equal(pasvshare_init(8, 1, 64), 0);
    pid = child(take_and_die);
    reap(pid, 0);
    /* The share is held by a process that is gone. */
    assert_int_equal(count_of((const unsigned char *)tab->e[0].key), 1);
    assert_int_equal(pasvshare_acquire(SA(a)), 1);
    assert_int_equal(tab->e[0].pid, getpid());
}

static void test_zombie_holder_reclaimed(void **state)
{
    struct sockaddr_in a = v4("192.0.2.1");
    pid_t pid;
    int st;

    (void)state;
    assert_int_equal(pasvshare_init(8, 1, 64), 0);
    pid = child(take_and_die);
    /* Wait for the end without reaping: the child stays a zombie. */
    {
        siginfo_t info;
        memset(&info, 0, sizeof(info));
        assert_int_equal(waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT), 0);
    }
    assert_int_equal(pasvshare_acquire(SA(a)), 1);
    assert_int_equal(waitpid(pid, &st, 0), pid);
}

static void test_full_table_reclaims_dead(void **state)
{
    struct sockaddr_in b = v4("192.0.2.2");
    pid_t p1, p2;

    (void)state;
    /* Two entries, both taken by processes that die. */
    assert_int_equal(pasvshare_init(2, 4, 64), 0);
    p1 = child(take_and_die);
    reap(p1, 0);
    p2 = child(take_and_die);
    reap(p2, 0);
    assert_null(free_entry());
    assert_int_equal(pasvshare_acquire(SA(b)), 1);
    assert_int_equal(pasvshare_acquire(SA(b)), 1);
    /* Now full of live entries: refused. */
    assert_int_equal(pasvshare_acquire(SA(b)), -1);
    assert_int_equal(errno, EUSERS);
}

static int lock_and_die(void)
{
    lock();
    return 0; /* exits holding the lock */
}

static void test_holder_of_lock_dies(void **state)
{
    struct sockaddr_in a = v4("192.0.2.1");
    pid_t pid;

    (void)state;
    assert_int_equal(pasvshare_init(8, 1, 64), 0);
    pid = child(lock_and_die);
    reap(pid, 0);
    alarm(TEST_ALARM_S);
    assert_int_equal(pasvshare_acquire(SA(a)), 1);
    pasvshare_release(SA(a));
    assert_int_equal(pasvshare_acquire(SA(a)), 1);
    alarm(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_share_counted_and_given_back),
        cmocka_unit_test(test_no_cap_counts_nothing),
        cmocka_unit_test(test_dead_holder_reclaimed_at_share),
        cmocka_unit_test(test_zombie_holder_reclaimed),
        cmocka_unit_test(test_full_table_reclaims_dead),
        cmocka_unit_test(test_holder_of_lock_dies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
