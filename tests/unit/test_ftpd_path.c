/*
 * test_ftpd_path.c - the confined file system view: normalisation, the
 * attacks it must withstand, and the errno values the FTP layer maps.
 *
 * Each test gets a fresh tree in a mkdtemp directory:
 *   base/outside/secret.txt           must never be reached
 *   base/root/                        the session root
 *     file.txt  dir/inner.txt  dir/sub/
 *     link_in -> dir                  inside, relative: allowed
 *     link_file -> file.txt
 *     link_etc -> /etc                absolute: refused
 *     link_up -> ../..                climbs out: refused
 *     link_secret -> ../outside/secret.txt
 *     link_abs -> <base>/root/file.txt   absolute even though inside: refused
 *     dir/link_parent -> ..           inside: allowed
 *     dir/link_out -> ../../outside   climbs out: refused
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../ftpd/path.c"

#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

typedef struct fixture {
    char base[64];
    char root[128];
    char outside[128];
    vfs v;
} fixture;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void read_fd(int fd, char *buf, size_t size)
{
    ssize_t n = pread(fd, buf, size - 1, 0);
    assert_true(n >= 0);
    buf[n] = '\0';
}

static void mk_link(const fixture *fx, const char *target, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", fx->root, name);
    assert_int_equal(symlink(target, p), 0);
}

/* A memory file system when there is one: creating thousands of files on a
 * journaled disk can take seconds. */
static const char *scratch_dir(void)
{
    return access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    char p[512];
    assert_non_null(fx);
    snprintf(fx->base, sizeof fx->base, "%s/ftpd-path-XXXXXX", scratch_dir());
    assert_non_null(mkdtemp(fx->base));
    snprintf(fx->root, sizeof fx->root, "%s/root", fx->base);
    snprintf(fx->outside, sizeof fx->outside, "%s/outside", fx->base);
    assert_int_equal(mkdir(fx->root, 0755), 0);
    assert_int_equal(mkdir(fx->outside, 0755), 0);
    snprintf(p, sizeof p, "%s/secret.txt", fx->outside);
    write_file(p, "secret");
    assert_int_equal(chmod(p, 0600), 0);
    snprintf(p, sizeof p, "%s/file.txt", fx->root);
    write_file(p, "hello");
    snprintf(p, sizeof p, "%s/dir", fx->root);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/dir/sub", fx->root);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/dir/inner.txt", fx->root);
    write_file(p, "inner");
    mk_link(fx, "dir", "link_in");
    mk_link(fx, "file.txt", "link_file");
    mk_link(fx, "/etc", "link_etc");
    mk_link(fx, "../..", "link_up");
    mk_link(fx, "../outside/secret.txt", "link_secret");
    snprintf(p, sizeof p, "%s/file.txt", fx->root);
    mk_link(fx, p, "link_abs");
    mk_link(fx, "..", "dir/link_parent");
    mk_link(fx, "../../outside", "dir/link_out");
    assert_int_equal(vfs_open_root(&fx->v, fx->root), 0);
    *state = fx;
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return type == FTW_DP ? rmdir(path) : unlink(path);
}

static int teardown(void **state)
{
    fixture *fx = *state;
    vfs_close(&fx->v);
    nftw(fx->base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static void secret_untouched(const fixture *fx)
{
    char p[512];
    struct stat st;
    snprintf(p, sizeof p, "%s/secret.txt", fx->outside);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_size, 6);
}

/* ---- normalisation ---- */

static void test_normalize_table(void **state)
{
    fixture *fx = *state;
    static const struct {
        const char *cwd, *in, *out;
    } cases[] = {
        {"/", NULL, "/"},
        {"/", "", "/"},
        {"/", "/", "/"},
        {"/", ".", "/"},
        {"/", "..", "/"},
        {"/", "../..", "/"},
        {"/", "/../etc/passwd", "/etc/passwd"},
        {"/", "a/../../b", "/b"},
        {"/", "//x//y/", "/x/y"},
        {"/", "./a/./b/.", "/a/b"},
        {"/", "a/b/../c", "/a/c"},
        {"/", "...", "/..."},
        {"/", "..a/b..", "/..a/b.."},
        {"/a/b", "", "/a/b"},
        {"/a/b", "c", "/a/b/c"},
        {"/a/b", "..", "/a"},
        {"/a/b", "../../../../x", "/x"},
        {"/a/b", "/c", "/c"},
        {"/a/b", "./c/", "/a/b/c"},
    };
    char out[VFS_PATH_MAX];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(fx->v.cwd, sizeof fx->v.cwd, "%s", cases[i].cwd);
        assert_int_equal(vfs_normalize(&fx->v, cases[i].in, out, sizeof out), 0);
        assert_string_equal(out, cases[i].out);
    }
}

static void test_normalize_limits(void **state)
{
    fixture *fx = *state;
    static char longp[VFS_PATH_MAX + 100];
    char out[VFS_PATH_MAX];

    /* A component longer than NAME_MAX. */
    memset(longp, 'a', NAME_MAX + 1);
    longp[NAME_MAX + 1] = '\0';
    errno = 0;
    assert_int_equal(vfs_normalize(&fx->v, longp, out, sizeof out), -1);
    assert_int_equal(errno, ENAMETOOLONG);
    longp[NAME_MAX] = '\0';
    assert_int_equal(vfs_normalize(&fx->v, longp, out, sizeof out), 0);
    assert_int_equal(strlen(out), NAME_MAX + 1);

    /* A whole path past VFS_PATH_MAX. */
    for (size_t i = 0; i < sizeof longp - 1; i++)
        longp[i] = (i % 10 == 0) ? '/' : 'b';
    longp[sizeof longp - 1] = '\0';
    errno = 0;
    assert_int_equal(vfs_normalize(&fx->v, longp, out, sizeof out), -1);
    assert_int_equal(errno, ENAMETOOLONG);
    errno = 0;
    assert_int_equal(vfs_open(&fx->v, longp, O_RDONLY, 0), -1);
    assert_int_equal(errno, ENAMETOOLONG);

    /* An output buffer too small. */
    errno = 0;
    assert_int_equal(vfs_normalize(&fx->v, "/abcdef", out, 4), -1);
    assert_int_equal(errno, ENAMETOOLONG);
}

/* ---- confinement ---- */

static void expect_errno(int rc, int want)
{
    assert_int_equal(rc, -1);
    assert_int_equal(errno, want);
}

static void test_symlink_escapes(void **state)
{
    fixture *fx = *state;
    struct stat st;
    static const char *const bad[] = {
        "link_etc",
        "link_etc/passwd",
        "/link_etc/passwd",
        "link_up",
        "link_up/etc/passwd",
        "link_secret",
        "link_abs",
        "dir/link_out",
        "dir/link_out/secret.txt",
        "link_in/link_out/secret.txt",
        "link_in/link_parent/link_secret",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        expect_errno(vfs_open(&fx->v, bad[i], O_RDONLY, 0), EXDEV);
        errno = 0;
        expect_errno(vfs_stat(&fx->v, bad[i], &st), EXDEV);
    }
    /* lstat of the link itself is fine: it reveals the link, not the target. */
    assert_int_equal(vfs_lstat(&fx->v, "link_etc", &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(vfs_lstat(&fx->v, "link_secret", &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    errno = 0;
    expect_errno(vfs_chdir(&fx->v, "link_etc"), EXDEV);
    expect_errno(vfs_chdir(&fx->v, "link_up"), EXDEV);
    assert_string_equal(vfs_cwd(&fx->v), "/");
    errno = 0;
    assert_null(vfs_opendir(&fx->v, "link_etc"));
    assert_int_equal(errno, EXDEV);
    assert_null(vfs_opendir(&fx->v, "dir/link_out"));
    assert_int_equal(errno, EXDEV);
    /* Creating through an escaping link. */
    errno = 0;
    expect_errno(vfs_open(&fx->v, "dir/link_out/new.txt", O_WRONLY | O_CREAT, 0644), EXDEV);
    expect_errno(vfs_mkdir(&fx->v, "dir/link_out/newdir", 0755), EXDEV);
    mk_link(fx, "../outside/created.txt", "dangling");
    errno = 0;
    expect_errno(vfs_open(&fx->v, "dangling", O_WRONLY | O_CREAT, 0644), EXDEV);
    char p[512];
    snprintf(p, sizeof p, "%s/created.txt", fx->outside);
    assert_int_equal(access(p, F_OK), -1);
    secret_untouched(fx);
}

static void test_dotdot_is_lexical(void **state)
{
    fixture *fx = *state;
    char buf[32];
    /* ".." never climbs above "/": these name files inside the root. */
    static const char *const names[] = {
        "../file.txt",
        "../../file.txt",
        "/../../file.txt",
        "dir/../file.txt",
        "link_in/../file.txt",
        "dir/link_parent/file.txt",
        "dir/sub/../../file.txt",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int fd = vfs_open(&fx->v, names[i], O_RDONLY, 0);
        assert_true(fd >= 0);
        read_fd(fd, buf, sizeof buf);
        assert_string_equal(buf, "hello");
        close(fd);
    }
    /* "/../outside/secret.txt" becomes "/outside/secret.txt" inside the root. */
    errno = 0;
    expect_errno(vfs_open(&fx->v, "/../outside/secret.txt", O_RDONLY, 0), ENOENT);
    expect_errno(vfs_open(&fx->v, "link_in/../../outside/secret.txt", O_RDONLY, 0), ENOENT);
    expect_errno(vfs_open(&fx->v, "../../../../../../etc/passwd", O_RDONLY, 0), ENOENT);
}

static void test_symlinks_inside_work(void **state)
{
    fixture *fx = *state;
    char buf[32];
    struct stat st;
    int fd = vfs_open(&fx->v, "link_in/inner.txt", O_RDONLY, 0);
    assert_true(fd >= 0);
    read_fd(fd, buf, sizeof buf);
    assert_string_equal(buf, "inner");
    close(fd);
    fd = vfs_open(&fx->v, "dir/link_parent/link_file", O_RDONLY, 0);
    assert_true(fd >= 0);
    read_fd(fd, buf, sizeof buf);
    assert_string_equal(buf, "hello");
    close(fd);
    assert_int_equal(vfs_stat(&fx->v, "link_in", &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(vfs_lstat(&fx->v, "link_in", &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(vfs_chdir(&fx->v, "link_in"), 0);
    assert_string_equal(vfs_cwd(&fx->v), "/link_in");
    fd = vfs_open(&fx->v, "inner.txt", O_RDONLY, 0);
    assert_true(fd >= 0);
    close(fd);
    /* ".." after a symlink is lexical: back to "/", not to the link's parent. */
    assert_int_equal(vfs_chdir(&fx->v, ".."), 0);
    assert_string_equal(vfs_cwd(&fx->v), "/");
}

static void test_destructive_ops_on_links(void **state)
{
    fixture *fx = *state;
    char p[512];
    struct stat st;
    /* unlink removes the link, never the target. */
    assert_int_equal(vfs_unlink(&fx->v, "link_secret"), 0);
    secret_untouched(fx);
    assert_int_equal(vfs_unlink(&fx->v, "link_etc"), 0);
    assert_int_equal(stat("/etc/passwd", &st), 0);
    /* rmdir of a link to a directory refuses; the directory stays. */
    errno = 0;
    expect_errno(vfs_rmdir(&fx->v, "link_in"), ENOTDIR);
    assert_int_equal(vfs_stat(&fx->v, "dir/inner.txt", &st), 0);
    /* rename moves the link itself, and only within the root. */
    assert_int_equal(vfs_rename(&fx->v, "link_up", "/../../moved"), 0);
    snprintf(p, sizeof p, "%s/moved", fx->root);
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    errno = 0;
    expect_errno(vfs_rename(&fx->v, "file.txt", "moved/stolen.txt"), EXDEV);
    expect_errno(vfs_rename(&fx->v, "dir/link_out/secret.txt", "got.txt"), EXDEV);
    expect_errno(vfs_rename(&fx->v, "file.txt", "dir/link_out/planted.txt"), EXDEV);
    expect_errno(vfs_unlink(&fx->v, "dir/link_out/secret.txt"), EXDEV);
    secret_untouched(fx);
}

static void test_chmod(void **state)
{
    fixture *fx = *state;
    char p[512];
    struct stat st;
    /* Through a link that leaves the root: refused, target unchanged. */
    mk_link(fx, "../outside/secret.txt", "link_secret2");
    errno = 0;
    expect_errno(vfs_chmod(&fx->v, "link_secret", 0777), EXDEV);
    expect_errno(vfs_chmod(&fx->v, "link_secret2", 0666), EXDEV);
    expect_errno(vfs_chmod(&fx->v, "dir/link_out/secret.txt", 0666), EXDEV);
    expect_errno(vfs_chmod(&fx->v, "link_etc/passwd", 0666), EXDEV);
    secret_untouched(fx);
    /* Through a link inside: the target inside changes. */
    assert_int_equal(vfs_chmod(&fx->v, "link_file", 0600), 0);
    snprintf(p, sizeof p, "%s/file.txt", fx->root);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    /* Only permission bits. */
    assert_int_equal(vfs_chmod(&fx->v, "file.txt", 04755), 0);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    assert_int_equal(vfs_chmod(&fx->v, "dir", 0700), 0);
    snprintf(p, sizeof p, "%s/dir", fx->root);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    errno = 0;
    expect_errno(vfs_chmod(&fx->v, "/", 0777), EINVAL);
    expect_errno(vfs_chmod(&fx->v, "..", 0777), EINVAL);
    expect_errno(vfs_chmod(&fx->v, "nope", 0777), ENOENT);
}

/* ---- ordinary operations and their errno values ---- */

static void test_errno_values(void **state)
{
    fixture *fx = *state;
    struct stat st;
    errno = 0;
    expect_errno(vfs_open(&fx->v, "nope", O_RDONLY, 0), ENOENT);
    expect_errno(vfs_open(&fx->v, "file.txt/x", O_RDONLY, 0), ENOTDIR);
    expect_errno(vfs_open(&fx->v, "dir", O_WRONLY, 0), EISDIR);
    expect_errno(vfs_open(&fx->v, "file.txt", O_WRONLY | O_CREAT | O_EXCL, 0644), EEXIST);
    expect_errno(vfs_mkdir(&fx->v, "dir", 0755), EEXIST);
    expect_errno(vfs_mkdir(&fx->v, "/", 0755), EEXIST);
    expect_errno(vfs_mkdir(&fx->v, "nope/x", 0755), ENOENT);
    expect_errno(vfs_mkdir(&fx->v, "file.txt/x", 0755), ENOTDIR);
    expect_errno(vfs_mkdir(&fx->v, "", 0755), EINVAL);
    expect_errno(vfs_rmdir(&fx->v, "dir"), ENOTEMPTY);
    expect_errno(vfs_rmdir(&fx->v, "file.txt"), ENOTDIR);
    expect_errno(vfs_rmdir(&fx->v, "/"), EINVAL);
    expect_errno(vfs_rmdir(&fx->v, "../.."), EINVAL);
    expect_errno(vfs_rmdir(&fx->v, "nope"), ENOENT);
    expect_errno(vfs_unlink(&fx->v, "dir"), EISDIR);
    expect_errno(vfs_unlink(&fx->v, "/"), EINVAL);
    expect_errno(vfs_unlink(&fx->v, ""), EINVAL);
    expect_errno(vfs_unlink(&fx->v, NULL), EINVAL);
    expect_errno(vfs_unlink(&fx->v, "nope"), ENOENT);
    expect_errno(vfs_rename(&fx->v, "/", "x"), EINVAL);
    expect_errno(vfs_rename(&fx->v, "file.txt", "/"), EINVAL);
    expect_errno(vfs_rename(&fx->v, "nope", "x"), ENOENT);
    expect_errno(vfs_rename(&fx->v, "dir", "dir/sub/dir"), EINVAL);
    expect_errno(vfs_chdir(&fx->v, "file.txt"), ENOTDIR);
    expect_errno(vfs_chdir(&fx->v, "nope"), ENOENT);
    expect_errno(vfs_stat(&fx->v, "nope", &st), ENOENT);
    assert_null(vfs_opendir(&fx->v, "file.txt"));
    assert_int_equal(errno, ENOTDIR);
}

static void test_operations(void **state)
{
    fixture *fx = *state;
    char p[512];
    char buf[32];
    struct stat st;
    assert_int_equal(vfs_mkdir(&fx->v, "newdir", 0755), 0);
    assert_int_equal(vfs_stat(&fx->v, "/newdir", &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(vfs_chdir(&fx->v, "newdir"), 0);
    assert_string_equal(vfs_cwd(&fx->v), "/newdir");
    int fd = vfs_open(&fx->v, "up.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "data", 4), 4);
    /* The descriptor is blocking and close-on-exec. */
    assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    close(fd);
    snprintf(p, sizeof p, "%s/newdir/up.txt", fx->root);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_size, 4);
    assert_int_equal(vfs_rename(&fx->v, "up.txt", "/dir/moved.txt"), 0);
    fd = vfs_open(&fx->v, "../dir/moved.txt", O_RDONLY, 0);
    assert_true(fd >= 0);
    read_fd(fd, buf, sizeof buf);
    assert_string_equal(buf, "data");
    close(fd);
    assert_int_equal(vfs_unlink(&fx->v, "/dir/moved.txt"), 0);
    assert_int_equal(vfs_chdir(&fx->v, "/"), 0);
    assert_int_equal(vfs_rmdir(&fx->v, "newdir"), 0);
    errno = 0;
    expect_errno(vfs_stat(&fx->v, "newdir", &st), ENOENT);
    /* Directory listing descriptor. */
    DIR *d = vfs_opendir(&fx->v, "dir");
    assert_non_null(d);
    int seen = 0;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d))
        if (strcmp(e->d_name, "inner.txt") == 0)
            seen = 1;
    closedir(d);
    assert_int_equal(seen, 1);
    /* chdir to "/" and ".." at the root stay at the root. */
    assert_int_equal(vfs_chdir(&fx->v, ".."), 0);
    assert_string_equal(vfs_cwd(&fx->v), "/");
    assert_int_equal(vfs_chdir(&fx->v, "dir/sub"), 0);
    assert_string_equal(vfs_cwd(&fx->v), "/dir/sub");
    assert_int_equal(vfs_chdir(&fx->v, "../.."), 0);
    assert_string_equal(vfs_cwd(&fx->v), "/");
}

static void test_special_files(void **state)
{
    fixture *fx = *state;
    char p[512];
    snprintf(p, sizeof p, "%s/fifo", fx->root);
    assert_int_equal(mkfifo(p, 0644), 0);
    /* Would block forever without O_NONBLOCK; refused instead. */
    errno = 0;
    expect_errno(vfs_open(&fx->v, "fifo", O_RDONLY, 0), EACCES);
    errno = 0;
    int rc = vfs_open(&fx->v, "fifo", O_WRONLY, 0);
    assert_int_equal(rc, -1);
    assert_true(errno == EACCES || errno == ENXIO);
}

static void test_root_fd(void **state)
{
    fixture *fx = *state;
    vfs w;
    struct stat st;
    int dfd = open(fx->root, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    assert_int_equal(vfs_open_home(&w, dfd, ""), 0);
    close(dfd);
    assert_string_equal(vfs_cwd(&w), "/");
    assert_int_equal(vfs_stat(&w, "file.txt", &st), 0);
    errno = 0;
    expect_errno(vfs_stat(&w, "link_etc", &st), EXDEV);
    vfs_close(&w);
    assert_int_equal(w.root_fd, -1);
    char p[512];
    snprintf(p, sizeof p, "%s/file.txt", fx->root);
    errno = 0;
    expect_errno(vfs_open_root(&w, p), ENOTDIR);
}

/* ---- atomic uploads and unique names ---- */

static int is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return s[n] == '\0';
}

static void test_temp_commit(void **state)
{
    fixture *fx = *state;
    char tmp[VFS_PATH_MAX];
    char tmp2[VFS_PATH_MAX];
    char buf[32];
    struct stat st;
    int fd = vfs_open_temp(&fx->v, "file.txt", tmp, sizeof tmp);
    assert_true(fd >= 0);
    assert_int_equal(strncmp(tmp, "/.sockserv-ftpd.", 16), 0);
    assert_true(is_hex(tmp + 16, 16));
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, 0);
    assert_int_equal(write(fd, "replaced", 8), 8);
    close(fd);
    /* Until the commit the old file is whole. */
    fd = vfs_open(&fx->v, "file.txt", O_RDONLY, 0);
    read_fd(fd, buf, sizeof buf);
    close(fd);
    assert_string_equal(buf, "hello");
    assert_int_equal(vfs_commit(&fx->v, tmp, "file.txt"), 0);
    fd = vfs_open(&fx->v, "file.txt", O_RDONLY, 0);
    read_fd(fd, buf, sizeof buf);
    close(fd);
    assert_string_equal(buf, "replaced");
    errno = 0;
    expect_errno(vfs_stat(&fx->v, tmp, &st), ENOENT);

    /* In a subdirectory, relative to the cwd; two temporaries differ. */
    assert_int_equal(vfs_chdir(&fx->v, "dir"), 0);
    fd = vfs_open_temp(&fx->v, "sub/new.bin", tmp, sizeof tmp);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(strncmp(tmp, "/dir/sub/.sockserv-ftpd.", 24), 0);
    fd = vfs_open_temp(&fx->v, "sub/new.bin", tmp2, sizeof tmp2);
    assert_true(fd >= 0);
    close(fd);
    assert_string_not_equal(tmp, tmp2);
    assert_int_equal(vfs_unlink(&fx->v, tmp2), 0);
    assert_int_equal(vfs_commit(&fx->v, tmp, "sub/new.bin"), 0);
    assert_int_equal(vfs_stat(&fx->v, "/dir/sub/new.bin", &st), 0);

    /* Committing over a symlink replaces the link, not its target. */
    assert_int_equal(vfs_chdir(&fx->v, "/"), 0);
    fd = vfs_open_temp(&fx->v, "link_secret", tmp, sizeof tmp);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(vfs_commit(&fx->v, tmp, "link_secret"), 0);
    assert_int_equal(vfs_lstat(&fx->v, "link_secret", &st), 0);
    assert_true(S_ISREG(st.st_mode));
    secret_untouched(fx);

    errno = 0;
    expect_errno(vfs_open_temp(&fx->v, "dir", tmp, sizeof tmp), EISDIR);
    expect_errno(vfs_open_temp(&fx->v, "/", tmp, sizeof tmp), EINVAL);
    expect_errno(vfs_open_temp(&fx->v, "nope/x", tmp, sizeof tmp), ENOENT);
    expect_errno(vfs_open_temp(&fx->v, "dir/link_out/x", tmp, sizeof tmp), EXDEV);
    expect_errno(vfs_open_temp(&fx->v, "file.txt", tmp, 10), ENAMETOOLONG);
}

static void test_unique(void **state)
{
    fixture *fx = *state;
    char a[VFS_PATH_MAX];
    char b[VFS_PATH_MAX];
    struct stat st;
    int fd = vfs_create_unique(&fx->v, NULL, a, sizeof a);
    assert_true(fd >= 0);
    assert_int_equal(strncmp(a, "/stou.", 6), 0);
    assert_true(is_hex(a + 6, 16));
    assert_int_equal(fcntl(fd, F_GETFL) & O_ACCMODE, O_WRONLY);
    close(fd);
    fd = vfs_create_unique(&fx->v, "", b, sizeof b);
    assert_true(fd >= 0);
    close(fd);
    assert_string_not_equal(a, b);
    assert_int_equal(vfs_stat(&fx->v, a, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    fd = vfs_create_unique(&fx->v, "link_in/sub", a, sizeof a);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(strncmp(a, "/link_in/sub/stou.", 18), 0);
    assert_int_equal(vfs_stat(&fx->v, a, &st), 0);
    errno = 0;
    expect_errno(vfs_create_unique(&fx->v, "link_etc", a, sizeof a), EXDEV);
    expect_errno(vfs_create_unique(&fx->v, "file.txt", a, sizeof a), ENOTDIR);
    expect_errno(vfs_create_unique(&fx->v, "nope", a, sizeof a), ENOENT);
}

/* ---- a symlink swapped in while we resolve ---- */

typedef struct swapper {
    int dirfd;
    atomic_int stop;
} swapper;

static void *swap_loop(void *arg)
{
    swapper *s = arg;
    /* Bounded: at most this many exchanges even if never told to stop. */
    for (int i = 0; i < 200000 && !atomic_load(&s->stop); i++)
        renameat2(s->dirfd, "race", s->dirfd, "race_link", RENAME_EXCHANGE);
    return NULL;
}

static void test_swap_race(void **state)
{
    fixture *fx = *state;
    char p[512];
    char buf[32];
    swapper s;
    pthread_t th;
    /* "race" flips between a real directory and a link to the outside. */
    snprintf(p, sizeof p, "%s/race", fx->root);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/race/secret.txt", fx->root);
    write_file(p, "inside");
    mk_link(fx, "../outside", "race_link");
    s.dirfd = open(fx->root, O_PATH | O_DIRECTORY);
    assert_true(s.dirfd >= 0);
    atomic_init(&s.stop, 0);
    assert_int_equal(pthread_create(&th, NULL, swap_loop, &s), 0);
    int opened = 0;
    int refused = 0;
    for (int i = 0; i < 3000; i++) {
        int fd = vfs_open(&fx->v, "race/secret.txt", O_RDONLY, 0);
        if (fd < 0) {
            assert_true(errno == EXDEV || errno == ENOENT);
            refused++;
            continue;
        }
        read_fd(fd, buf, sizeof buf);
        close(fd);
        assert_string_equal(buf, "inside");
        opened++;
    }
    atomic_store(&s.stop, 1);
    pthread_join(th, NULL);
    close(s.dirfd);
    assert_int_equal(opened + refused, 3000);
    secret_untouched(fx);
}

/* A name buffer too small for prefix and digits fails cleanly; before, the
 * room left was computed as size - len after a truncation and wrapped. */
static void test_random_name_small_buffer(void **state)
{
    char name[40];
    char small[12];

    (void)state;
    assert_int_equal(path_random_name("stou.", name, sizeof name), 0);
    assert_int_equal(strlen(name), 5 + 2 * PATH_RANDOM_BYTES);
    errno = 0;
    memset(small, 'z', sizeof small);
    assert_int_equal(path_random_name("stou.", small, 8), -1);
    assert_int_equal(errno, ENAMETOOLONG);
    assert_int_equal(small[8], 'z'); /* nothing written past the size given */
    errno = 0;
    assert_int_equal(path_random_name("a-prefix-longer-than-the-buffer.", small, 8), -1);
    assert_int_equal(errno, ENAMETOOLONG);
    assert_int_equal(small[8], 'z');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_normalize_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_normalize_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink_escapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dotdot_is_lexical, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlinks_inside_work, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destructive_ops_on_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chmod, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errno_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_operations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_special_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_root_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_temp_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unique, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swap_race, setup, teardown),
        cmocka_unit_test(test_random_name_small_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
