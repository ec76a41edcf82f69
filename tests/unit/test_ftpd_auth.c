/*
 * test_ftpd_auth.c - the users file: lines with and without a home and
 * settings, the settings a login hands over, and a clear error naming the
 * line for each bad setting; a reload swaps the table or keeps it on a bad
 * file, also while other threads check passwords.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../ftpd/auth.c"
#include "../../ftpd/config.c"
#include "../../ftpd/secfile.c"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

/* "openssl passwd -6 -salt testsalt secret" */
#define HASH                                                                                       \
    "$6$testsalt$51yaaBMXXXt5vK522YOlIMZ267vqHtMIzc2klcsu3EEv/"                                    \
    "bkRDU9g3UmkypXf.NvlpPpIPK1nX5zdbCeJBiQbB/"

/* Write text to a fresh file, load it, remove it; returns auth_load's result. */
static int load_text(const char *text)
{
    char path[] = "/tmp/ftpd-auth-XXXXXX";
    int fd = mkstemp(path);
    int rc;

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    rc = auth_load(path);
    unlink(path);
    return rc;
}

static void test_settings_reach_the_login(void **state)
{
    auth_account acc;

    (void)state;
    assert_int_equal(load_text("plain:" HASH "\n"
                               "homed:" HASH ":pub/homed\n"
                               "full:" HASH ":h:run-as=nobody,rate-down=2M,rate-up=64K,"
                               "quota-bytes=1G,quota-files=100\n"
                               "rootset:" HASH "::quota-files=7\n"),
                     0);
    memset(&acc, 0xaa, sizeof(acc));
    assert_int_equal(auth_check("plain", "secret", &acc), 0);
    assert_string_equal(acc.home, "");
    assert_string_equal(acc.run_as, "");
    assert_true(acc.rate_down == 0 && acc.rate_up == 0 && acc.quota_bytes == 0 &&
                acc.quota_files == 0);
    assert_int_equal(auth_check("homed", "secret", &acc), 0);
    assert_string_equal(acc.home, "pub/homed");
    assert_int_equal(auth_check("full", "secret", &acc), 0);
    assert_string_equal(acc.home, "h");
    assert_string_equal(acc.run_as, "nobody");
    assert_true(acc.rate_down == 2u << 20);
    assert_true(acc.rate_up == 64u << 10);
    assert_true(acc.quota_bytes == 1ull << 30);
    assert_true(acc.quota_files == 100);
    assert_int_equal(auth_check("rootset", "secret", &acc), 0);
    assert_string_equal(acc.home, "");
    assert_true(acc.quota_files == 7);
    assert_int_equal(auth_check("full", "wrong", &acc), -1);
    assert_int_equal(auth_check("nobody-here", "secret", &acc), -1);
    auth_free();
}

static void test_bad_settings_are_refused(void **state)
{
    static const char *const bad[] = {
        "u:" HASH ":h:quota-bytes\n",   "u:" HASH ":h:quota-bytes=\n",
        "u:" HASH ":h:quota-bytes=0\n", "u:" HASH ":h:quota-bytes=-1\n",
        "u:" HASH ":h:rate-down=1T\n",  "u:" HASH ":h:colour=blue\n",
        "u:" HASH ":h:run-as=\n",       "u:" HASH ":h:run-as=a b\n",
        "u:" HASH ":h:rate-up=1K,,\n",  "u:" HASH ":../up:rate-up=1K\n",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (load_text(bad[i]) != -1)
            fail_msg("accepted: %s", bad[i]);
        assert_int_equal(auth_count(), 0);
    }
}

/* Write text to path (replacing the file, as an editor saving it does). */
static void write_file(const char *path, const char *text)
{
    char tmp[64];
    int fd;

    snprintf(tmp, sizeof(tmp), "%s.new", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(rename(tmp, path), 0);
}

static void test_reload_swaps_or_keeps(void **state)
{
    char path[] = "/tmp/ftpd-auth-XXXXXX";
    char err[512];
    auth_account acc;
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    write_file(path, "old:" HASH ":o\n");
    assert_int_equal(auth_load(path), 0);
    assert_int_equal(auth_check("old", "secret", &acc), 0);

    /* A new user, the old one gone. */
    write_file(path, "# comment\nnew:" HASH ":n:quota-files=3\n");
    assert_int_equal(auth_reload(path, err, sizeof(err)), 0);
    assert_int_equal(auth_check("old", "secret", &acc), -1);
    assert_int_equal(auth_check("new", "secret", &acc), 0);
    assert_string_equal(acc.home, "n");
    assert_true(acc.quota_files == 3);

    /* A broken file keeps the table in use and says where. */
    write_file(path, "other:" HASH "\nbroken line\n");
    err[0] = '\0';
    assert_int_equal(auth_reload(path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, ":2: "));
    assert_int_equal(auth_check("new", "secret", &acc), 0);
    assert_int_equal(auth_check("other", "secret", &acc), -1);
    assert_int_equal(auth_count(), 1);

    /* A file that is gone keeps it too. */
    unlink(path);
    assert_int_equal(auth_reload(path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "--users: "));
    assert_int_equal(auth_check("new", "secret", &acc), 0);
    auth_free();
}

/* A process forked before a reload (a forking mode session) checks its
 * next password against the reloaded file. */
static void test_reload_reaches_forked_process(void **state)
{
    char path[] = "/tmp/ftpd-auth-XXXXXX";
    char err[512];
    int go[2], status = -1;
    int fd = mkstemp(path);
    pid_t pid;

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    write_file(path, "old:" HASH "\n");
    assert_int_equal(auth_load(path), 0);
    assert_int_equal(pipe(go), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        auth_account acc;
        char c;

        alarm(30);
        if (read(go[0], &c, 1) != 1)
            _exit(3);
        if (auth_check("old", "secret", &acc) == 0)
            _exit(1);
        _exit(auth_check("new", "secret", &acc) == 0 ? 0 : 2);
    }
    write_file(path, "new:" HASH "\n");
    assert_int_equal(auth_reload(path, err, sizeof(err)), 0);
    assert_int_equal(write(go[1], "g", 1), 1);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    close(go[0]);
    close(go[1]);
    unlink(path);
    auth_free();
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

#define CHECKERS 3
#define CHECKS 8
#define RELOADS 40

static atomic_int check_failures;

static void *checker(void *arg)
{
    auth_account acc;

    (void)arg;
    for (int i = 0; i < CHECKS; i++)
        if (auth_check("stay", "secret", &acc) != 0 || strcmp(acc.home, "s") != 0)
            atomic_fetch_add(&check_failures, 1);
    return NULL;
}

/* Password checks in other threads while the table is swapped again and
 * again: every check of the user present in every table succeeds (and
 * ThreadSanitizer sees no race). */
static void test_reload_while_checking(void **state)
{
    char path[] = "/tmp/ftpd-auth-XXXXXX";
    char err[512];
    pthread_t th[CHECKERS];
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    write_file(path, "stay:" HASH ":s\n");
    assert_int_equal(auth_load(path), 0);
    atomic_store(&check_failures, 0);
    for (int i = 0; i < CHECKERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, checker, NULL), 0);
    for (int i = 0; i < RELOADS; i++) {
        write_file(path, i % 2 == 0 ? "stay:" HASH ":s\nx:" HASH "\n" : "stay:" HASH ":s\n");
        assert_int_equal(auth_reload(path, err, sizeof(err)), 0);
    }
    for (int i = 0; i < CHECKERS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(atomic_load(&check_failures), 0);
    unlink(path);
    auth_free();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settings_reach_the_login),
        cmocka_unit_test(test_bad_settings_are_refused),
        cmocka_unit_test(test_reload_swaps_or_keeps),
        cmocka_unit_test(test_reload_while_checking),
        cmocka_unit_test(test_reload_reaches_forked_process),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
