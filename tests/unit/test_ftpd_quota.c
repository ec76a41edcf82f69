/*
 * test_ftpd_quota.c - quota accounting: the walk of a home, charges before
 * writes, settling with the truth, files, give-backs, and counts shared
 * with a forked process (also one that dies holding the lock).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../ftpd/quota.c"

#include <ftw.h>
#include <stdlib.h>
#include <sys/wait.h>

static char dir[64];
static ftpd_config cfg;

static void put(const char *rel, size_t size)
{
    char p[256];
    FILE *f;

    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    f = fopen(p, "w");
    assert_non_null(f);
    for (size_t i = 0; i < size; i++)
        fputc('x', f);
    fclose(f);
}

static void sub(const char *rel)
{
    char p[256];

    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    assert_int_equal(mkdir(p, 0755), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/ftpd-quota-XXXXXX");
    assert_non_null(mkdtemp(dir));
    assert_int_equal(quota_init(0), 0);
    return 0;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    (void)state;
    return nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void make_session(session *s, const char *user, unsigned long long bytes,
                         unsigned long long files)
{
    memset(s, 0, sizeof(*s));
    s->cfg = &cfg;
    s->logged_in = true;
    snprintf(s->user, sizeof(s->user), "%s", user);
    s->account.quota_bytes = bytes;
    s->account.quota_files = files;
    s->fs.root_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(s->fs.root_fd >= 0);
}

static void usage_of(session *s, long long *bytes, long long *files)
{
    user_usage *x = lock_entry(s);

    assert_non_null(x);
    assert_true(x->known);
    *bytes = x->bytes;
    *files = x->files;
    pthread_mutex_unlock(&x->lock);
}

static void test_walk(void **state)
{
    char link[256];
    long long bytes = -1, files = -1;
    int fd;

    (void)state;
    put("a", 100);
    sub("d");
    put("d/b", 50);
    sub("d/e");
    put("d/e/c", 7);
    snprintf(link, sizeof(link), "%s/l", dir);
    assert_int_equal(symlink("/etc/passwd", link), 0);
    fd = open(dir, O_PATH | O_DIRECTORY);
    assert_int_equal(quota_walk(fd, &bytes, &files), 0);
    /* Symlinks and folders count for nothing. */
    assert_int_equal(bytes, 157);
    assert_int_equal(files, 3);
    close(fd);
}

static void test_walk_depth_bound(void **state)
{
    char rel[QUOTA_WALK_DEPTH * 2 + 8];
    size_t len = 0;
    long long bytes, files;
    int fd;

    (void)state;
    for (int i = 0; i <= QUOTA_WALK_DEPTH; i++) {
        len += (size_t)snprintf(rel + len, sizeof(rel) - len, i == 0 ? "d" : "/d");
        sub(rel);
    }
    fd = open(dir, O_PATH | O_DIRECTORY);
    assert_int_equal(quota_walk(fd, &bytes, &files), -1);
    assert_int_equal(errno, ELOOP);
    close(fd);
}

static void test_charges_and_settling(void **state)
{
    session s;
    long long bytes, files;

    (void)state;
    put("old", 300);
    make_session(&s, "u1", 1000, 3);
    /* A new file of 600 bytes. */
    assert_int_equal(quota_begin(&s, true, 0), 0);
    assert_int_equal(quota_take(&s, 600), 0);
    usage_of(&s, &bytes, &files);
    assert_int_equal(bytes, 900);
    assert_int_equal(files, 2);
    quota_end(&s, 600, true);
    /* The next would pass the quota by a byte: refused, nothing charged. */
    assert_int_equal(quota_begin(&s, true, 0), 0);
    assert_int_equal(quota_take(&s, 100), 0);
    assert_int_equal(quota_take(&s, 1), -1);
    assert_int_equal(errno, EDQUOT);
    usage_of(&s, &bytes, &files);
    assert_int_equal(bytes, 1000);
    assert_int_equal(files, 3);
    /* Undone (the new file removed): all given back. */
    quota_end(&s, 0, false);
    usage_of(&s, &bytes, &files);
    assert_int_equal(bytes, 900);
    assert_int_equal(files, 2);
    /* Replacing the 600-byte file with 650: only 50 are charged. */
    assert_int_equal(quota_begin(&s, false, 600), 0);
    assert_int_equal(quota_take(&s, 650), 0);
    usage_of(&s, &bytes, &files);
    assert_int_equal(bytes, 950);
    quota_end(&s, 50, false);
    /* ... and with 10: the settling gives back the difference. */
    assert_int_equal(quota_begin(&s, false, 650), 0);
    assert_int_equal(quota_take(&s, 10), 0);
    quota_end(&s, -640, false);
    usage_of(&s, &bytes, &files);
    assert_int_equal(bytes, 310);
    assert_int_equal(files, 2);
    /* A deleted file comes back. */
    {
        struct stat st = {.st_mode = S_IFREG | 0644, .st_size = 300};
        quota_removed(&s, &st);
    }
    usage_of(&s, &bytes, &files);
    assert_int_equal(bytes, 10);
    assert_int_equal(files, 1);
    close(s.fs.root_fd);
}

static void test_files_quota(void **state)
{
    session s;

    (void)state;
    make_session(&s, "u2", 0, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(quota_begin(&s, true, 0), 0);
        quota_end(&s, 0, true);
    }
    assert_int_equal(quota_begin(&s, true, 0), -1);
    assert_int_equal(errno, EDQUOT);
    /* Rewriting an existing file needs no new one. */
    assert_int_equal(quota_begin(&s, false, 0), 0);
    assert_int_equal(quota_take(&s, 1 << 20), 0);
    quota_end(&s, 1 << 20, false);
    close(s.fs.root_fd);
}

static void test_no_quota_no_count(void **state)
{
    session s;

    (void)state;
    make_session(&s, "free", 0, 0);
    assert_false(quota_applies(&s));
    assert_int_equal(quota_begin(&s, true, 0), 0);
    assert_int_equal(quota_take(&s, 1ull << 40), 0);
    quota_end(&s, 0, true);
    assert_int_equal(s.quota.slot, 0);
    /* Anonymous users have none either. */
    make_session(&s, "anonymous", 10, 10);
    s.anonymous = true;
    assert_false(quota_applies(&s));
    close(s.fs.root_fd);
}

static void test_shared_with_forked_process(void **state)
{
    session s;
    long long bytes, files;
    pid_t pid;
    int status;

    (void)state;
    make_session(&s, "u3", 1000, 0);
    assert_int_equal(quota_begin(&s, true, 0), 0);
    assert_int_equal(quota_take(&s, 400), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The child's upload sees the parent's charge. */
        session c;
        int ok;

        make_session(&c, "u3", 1000, 0);
        ok = quota_begin(&c, true, 0) == 0 && quota_take(&c, 601) < 0 && errno == EDQUOT &&
             quota_take(&c, 600) == 0;
        /* Dies holding the user's lock mid-change. */
        lock_entry(&c);
        _exit(ok ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(quota_take(&s, 1), -1);
    /* The dead holder's count is not trusted: the next upload walks the
     * home again and finds it empty (nothing was written in this test). */
    quota_end(&s, 0, false);
    assert_int_equal(quota_begin(&s, true, 0), 0);
    usage_of(&s, &bytes, &files);
    assert_int_equal(bytes, 0);
    assert_int_equal(files, 1);
    quota_end(&s, 0, false);
    close(s.fs.root_fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_walk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_walk_depth_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_charges_and_settling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_files_quota, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_quota_no_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_with_forked_process, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
