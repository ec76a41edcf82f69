/*
 * test_ftpd_secfile.c - is a path out of a user's reach? The walk through
 * directories, sticky directories, symbolic links in the middle and at the
 * end, "..", relative paths, and the opens that refuse links and FIFOs.
 *
 * The user is made up (uid 4242), so no root is needed: what it may write
 * comes from the modes and from which groups the test puts it in.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../ftpd/secfile.c"

#include <ftw.h>
#include <stdio.h>

#define FAKE_UID 4242
/* Room for a path below the fixture's directory. */
#define FX_PATH_MAX 512

typedef struct fixture {
    char dir[64];
    gid_t groups[2];
    secfile_user user;
    char why[PATH_MAX + 256];
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);

    assert_non_null(fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/ftpd-secfile-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    assert_int_equal(chmod(fx->dir, 0755), 0);
    snprintf(fx->user.name, sizeof fx->user.name, "someone");
    fx->user.uid = FAKE_UID;
    /* A group of its own that owns nothing here. */
    fx->groups[0] = 4343;
    fx->user.groups = fx->groups;
    fx->user.ngroups = 1;
    *state = fx;
    return 0;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        chmod(path, 0700); /* a sticky or read-only directory of the test's */
    return remove(path);
}

static int teardown(void **state)
{
    fixture *fx = *state;

    /* Children first, links not followed. */
    assert_int_equal(nftw(fx->dir, remove_one, 16, FTW_DEPTH | FTW_PHYS), 0);
    free(fx);
    return 0;
}

/* dir/rel, made with mode (directories) or as an empty file. */
static const char *make(fixture *fx, const char *rel, mode_t mode, bool is_dir)
{
    static char path[FX_PATH_MAX];

    snprintf(path, sizeof path, "%s/%s", fx->dir, rel);
    if (is_dir) {
        assert_int_equal(mkdir(path, 0700), 0);
    } else {
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);
    }
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

/* dir/rel, in a buffer shared by every call. */
static const char *at(fixture *fx, const char *rel)
{
    static char path[FX_PATH_MAX];

    snprintf(path, sizeof path, "%s/%s", fx->dir, rel);
    return path;
}

static int check(fixture *fx, const char *path, enum secfile_use use)
{
    fx->why[0] = '\0';
    return secfile_check(path, &fx->user, use, fx->why, sizeof fx->why);
}

static void assert_why(fixture *fx, const char *part)
{
    if (strstr(fx->why, part) == NULL)
        fail_msg("\"%s\" does not say \"%s\"", fx->why, part);
}

static void test_safe_directory(void **state)
{
    fixture *fx = *state;

    make(fx, "logs", 0755, true);
    make(fx, "logs/old.log", 0644, false);
    assert_int_equal(check(fx, at(fx, "logs/new.log"), SECFILE_HAND_OVER), 0);
    assert_int_equal(check(fx, at(fx, "logs/old.log"), SECFILE_READ), 0);
    /* A file read by root must be there. */
    assert_int_equal(check(fx, at(fx, "logs/new.log"), SECFILE_READ), -1);
    assert_int_equal(errno, ENOENT);
    /* A directory is no file. */
    assert_int_equal(check(fx, at(fx, "logs"), SECFILE_HAND_OVER), -1);
    assert_why(fx, "is not a regular file");
    assert_int_equal(check(fx, at(fx, "logs/"), SECFILE_READ), -1);
    assert_int_equal(check(fx, "/", SECFILE_READ), -1);
    assert_why(fx, "is not a regular file");
}

static void test_writable_directories(void **state)
{
    fixture *fx = *state;
    char want[PATH_MAX];

    make(fx, "open", 0777, true);
    assert_int_equal(check(fx, at(fx, "open/x.log"), SECFILE_HAND_OVER), -1);
    assert_int_equal(errno, EPERM);
    snprintf(want, sizeof want, "directory %s is writable by someone", at(fx, "open"));
    assert_why(fx, want);

    /* Group write counts only for the user's groups. */
    make(fx, "group", 0775, true);
    assert_int_equal(check(fx, at(fx, "group/x.log"), SECFILE_HAND_OVER), 0);
    fx->groups[1] = getegid();
    fx->user.ngroups = 2;
    assert_int_equal(check(fx, at(fx, "group/x.log"), SECFILE_HAND_OVER), -1);
    assert_why(fx, "is writable by someone");
    fx->user.ngroups = 1;

    /* The owner may chmod, so owning is writing. Without root, the user
     * has to be the test's own uid, which owns the fixture's directory. */
    make(fx, "mine", 0555, true);
    if (geteuid() == 0)
        assert_int_equal(chown(at(fx, "mine"), FAKE_UID, 0), 0);
    else
        fx->user.uid = geteuid();
    assert_int_equal(check(fx, at(fx, "mine/x.log"), SECFILE_HAND_OVER), -1);
    snprintf(want, sizeof want, "directory %s belongs to someone",
             geteuid() == 0 ? at(fx, "mine") : fx->dir);
    assert_why(fx, want);
    fx->user.uid = FAKE_UID;

    /* Higher up the path as well. */
    make(fx, "open/deep", 0755, true);
    make(fx, "open/deep/er", 0755, true);
    assert_int_equal(check(fx, at(fx, "open/deep/er/x.log"), SECFILE_HAND_OVER), -1);
    snprintf(want, sizeof want, "directory %s is writable", at(fx, "open"));
    assert_why(fx, want);
}

static void test_sticky_directories(void **state)
{
    fixture *fx = *state;

    make(fx, "tmp", 01777, true);
    make(fx, "tmp/mine", 0755, true);
    make(fx, "tmp/file", 0644, false);
    /* The name can be created there, even next to a file of root's. */
    assert_int_equal(check(fx, at(fx, "tmp/x.log"), SECFILE_HAND_OVER), -1);
    assert_int_equal(check(fx, at(fx, "tmp/file"), SECFILE_READ), -1);
    assert_why(fx, "is writable by someone");
    /* Further up, only the entry's owner could swap the entry. */
    assert_int_equal(check(fx, at(fx, "tmp/mine/x.log"), SECFILE_HAND_OVER), 0);
}

static void test_symbolic_links(void **state)
{
    fixture *fx = *state;
    char want[PATH_MAX], target[FX_PATH_MAX];

    make(fx, "safe", 0755, true);
    make(fx, "safe/users", 0644, false);
    make(fx, "open", 0777, true);
    /* At the end: never followed. */
    assert_int_equal(symlink("users", at(fx, "safe/link")), 0);
    assert_int_equal(check(fx, at(fx, "safe/link"), SECFILE_READ), -1);
    assert_int_equal(errno, ELOOP);
    assert_string_equal(fx->why, "is a symbolic link; refusing to follow it");
    /* In the middle: followed, and the directories it leads to judged. */
    assert_int_equal(symlink("safe", at(fx, "to-safe")), 0);
    assert_int_equal(check(fx, at(fx, "to-safe/users"), SECFILE_READ), 0);
    snprintf(target, sizeof target, "%s", at(fx, "open"));
    assert_int_equal(symlink(target, at(fx, "safe/to-open")), 0);
    assert_int_equal(check(fx, at(fx, "safe/to-open/x.log"), SECFILE_HAND_OVER), -1);
    snprintf(want, sizeof want, "directory %s is writable by someone", at(fx, "open"));
    assert_why(fx, want);
    /* ".." goes where the kernel goes: through open. */
    assert_int_equal(check(fx, at(fx, "open/../safe/users"), SECFILE_READ), -1);
    assert_why(fx, "is writable by someone");
    assert_int_equal(check(fx, at(fx, "safe/../safe/users"), SECFILE_READ), 0);
    /* A loop ends. */
    assert_int_equal(symlink("loop-b", at(fx, "loop-a")), 0);
    assert_int_equal(symlink("loop-a", at(fx, "loop-b")), 0);
    assert_int_equal(check(fx, at(fx, "loop-a/x"), SECFILE_HAND_OVER), -1);
    assert_int_equal(errno, ELOOP);
}

static void test_files(void **state)
{
    fixture *fx = *state;
    const char *f;

    make(fx, "safe", 0755, true);
    f = make(fx, "safe/world", 0666, false);
    assert_int_equal(check(fx, f, SECFILE_READ), -1);
    assert_why(fx, "is writable by someone, who could change it");
    /* A log is written by the user anyway. */
    f = make(fx, "safe/mine.log", 0600, false);
    if (geteuid() == 0) {
        assert_int_equal(chown(f, FAKE_UID, 4343), 0);
        assert_int_equal(check(fx, f, SECFILE_HAND_OVER), 0);
        assert_int_equal(check(fx, f, SECFILE_READ), -1);
        assert_why(fx, "belongs to someone");
        /* Root's file with a second name, and a third user's file. */
        f = make(fx, "safe/root.log", 0600, false);
        assert_int_equal(link(f, at(fx, "safe/other-name")), 0);
        assert_int_equal(check(fx, f, SECFILE_HAND_OVER), -1);
        assert_why(fx, "has 2 hard links; refusing to hand it to someone");
        assert_int_equal(chown(f, 4444, 0), 0);
        assert_int_equal(check(fx, f, SECFILE_HAND_OVER), -1);
        assert_why(fx, "belongs to uid 4444, not to root or someone");
    } else {
        assert_int_equal(check(fx, f, SECFILE_HAND_OVER), -1);
        assert_why(fx, "not to root or someone");
    }
    assert_int_equal(mkfifo(at(fx, "safe/fifo"), 0600), 0);
    assert_int_equal(check(fx, at(fx, "safe/fifo"), SECFILE_HAND_OVER), -1);
    assert_string_equal(fx->why, "is not a regular file");
}

static void test_relative_and_long_paths(void **state)
{
    fixture *fx = *state;
    char cwd[PATH_MAX], want[PATH_MAX], longname[NAME_MAX + 8];

    make(fx, "open", 0777, true);
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(at(fx, "open")), 0);
    assert_int_equal(check(fx, "x.log", SECFILE_HAND_OVER), -1);
    snprintf(want, sizeof want, "directory %s is writable", at(fx, "open"));
    assert_why(fx, want);
    assert_int_equal(chdir(cwd), 0);

    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(check(fx, at(fx, longname), SECFILE_HAND_OVER), -1);
    assert_int_equal(errno, ENAMETOOLONG);
    make(fx, "file", 0644, false);
    assert_int_equal(check(fx, at(fx, "file/x"), SECFILE_HAND_OVER), -1);
    assert_int_equal(errno, ENOTDIR);
}

/* A raw POSIX access ACL (as setfacl writes it) granting FAKE_UID rwx. */
static int set_acl(const char *path)
{
    struct {
        uint16_t tag, perm;
        uint32_t id;
    } e[5] = {{0x01, 7, UINT32_MAX},
              {0x02, 7, FAKE_UID},
              {0x04, 5, UINT32_MAX},
              {0x10, 7, UINT32_MAX},
              {0x20, 5, UINT32_MAX}};
    unsigned char buf[4 + sizeof e];
    uint32_t version = 2;

    memcpy(buf, &version, 4);
    memcpy(buf + 4, e, sizeof e);
    return setxattr(path, "system.posix_acl_access", buf, sizeof buf, 0);
}

static void test_acl(void **state)
{
    fixture *fx = *state;
    const char *d = make(fx, "acl", 0755, true);

    if (set_acl(d) < 0)
        skip(); /* no ACLs on this file system */
    assert_int_equal(check(fx, at(fx, "acl/x.log"), SECFILE_HAND_OVER), -1);
    assert_why(fx, "may be writable by someone (access ACL)");
}

static void test_open(void **state)
{
    fixture *fx = *state;
    char why[256];
    FILE *f;
    int fd;

    make(fx, "users", 0644, false);
    f = secfile_fopen(at(fx, "users"), why, sizeof why);
    assert_non_null(f);
    fclose(f);
    assert_int_equal(symlink("users", at(fx, "link")), 0);
    assert_null(secfile_fopen(at(fx, "link"), why, sizeof why));
    assert_int_equal(errno, ELOOP);
    assert_string_equal(why, "is a symbolic link; refusing to follow it");
    /* A dangling link is not created through either. */
    assert_int_equal(symlink("missing", at(fx, "dangling")), 0);
    assert_int_equal(secfile_open_append(at(fx, "dangling"), 0640, why, sizeof why), -1);
    assert_string_equal(why, "is a symbolic link; refusing to follow it");
    assert_int_equal(access(at(fx, "missing"), F_OK), -1);
    /* A FIFO neither blocks nor is accepted. */
    assert_int_equal(mkfifo(at(fx, "fifo"), 0600), 0);
    assert_null(secfile_fopen(at(fx, "fifo"), why, sizeof why));
    assert_string_equal(why, "is not a regular file");
    assert_int_equal(secfile_open_append(at(fx, "fifo"), 0640, why, sizeof why), -1);
    assert_string_equal(why, "is not a regular file");
    /* A new file gets the mode asked for (less the umask), no O_NONBLOCK. */
    fd = secfile_open_append(at(fx, "new.log"), 0640, why, sizeof why);
    assert_true(fd >= 0);
    assert_int_equal(fcntl(fd, F_GETFL) & (O_NONBLOCK | O_APPEND), O_APPEND);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    close(fd);
}

static void test_user_lookup(void **state)
{
    secfile_user u;

    (void)state;
    assert_int_equal(secfile_user_init(&u, "root"), 0);
    assert_int_equal(u.uid, 0);
    assert_true(u.ngroups >= 1);
    assert_int_equal(u.groups[0], 0);
    secfile_user_free(&u);
    assert_int_equal(secfile_user_init(&u, "no-such-user-here"), -1);
    assert_int_equal(errno, ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_safe_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writable_directories, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sticky_directories, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symbolic_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relative_and_long_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open, setup, teardown),
        cmocka_unit_test(test_user_lookup),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
