/*
 * path.c - the session's confined view of the file system.
 *
 * Two steps for every client path. First a lexical normalisation into a
 * virtual absolute path ("/a/b"), so that ".." can never name anything above
 * the virtual "/". Then a resolution of that path, relative to the root
 * directory descriptor, by openat2(2) with RESOLVE_BENEATH and
 * RESOLVE_NO_MAGICLINKS: the kernel refuses (EXDEV) any step that would leave
 * the root, whether through an absolute symlink, a symlink with "..", or a
 * directory renamed while we walk. Operations on a name open the parent
 * directory that way and act on the final component with an *at() call, so
 * a symlink in the final position is never followed by a destructive call.
 * docs/ftpd-confinement.md explains the reasoning.
 */
#include "path.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

/* How often a resolution is retried when the kernel reports EAGAIN (it could
 * not prove, because of a concurrent rename, that ".." stayed beneath). */
#define PATH_RESOLVE_TRIES 4
/* How many random names are tried before a temporary or unique file gives up. */
#define PATH_UNIQUE_TRIES 16
/* Random bytes in a temporary or unique name (hex-encoded: 16 characters). */
#define PATH_RANDOM_BYTES 8
#define PATH_TEMP_PREFIX ".sockserv-ftpd."
#define PATH_UNIQUE_PREFIX "stou."
/* Only permission bits may be set by a client: no set-user-ID, set-group-ID
 * or sticky bit on files the server owns. */
#define PATH_CHMOD_MASK 0777

/* fchmodat2(2) (Linux 6.6) changes the mode of an O_PATH descriptor with
 * AT_EMPTY_PATH. Older C libraries do not know its number yet; it is 452 on
 * the architectures listed, elsewhere the /proc fallback is used. */
#ifndef SYS_fchmodat2
#if defined(__x86_64__) || defined(__aarch64__) || defined(__i386__) || defined(__riscv)
#define SYS_fchmodat2 452
#endif
#endif

static int path_openat2_how(int dirfd, const char *rel, int flags, mode_t mode, uint64_t resolve)
{
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)(flags | O_CLOEXEC);
    /* The kernel insists on mode 0 unless a file may be created. */
    if (flags & (O_CREAT | O_TMPFILE))
        how.mode = mode;
    how.resolve = resolve;
    for (int i = 0; i < PATH_RESOLVE_TRIES; i++) {
        long fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
        if (fd >= 0)
            return (int)fd;
        if (errno != EINTR && errno != EAGAIN)
            return -1;
    }
    return -1;
}

static int path_openat2(int dirfd, const char *rel, int flags, mode_t mode)
{
    return path_openat2_how(dirfd, rel, flags, mode, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS);
}

/* A name a client may give to a new file or directory. CR and LF would make
 * it vanish from every line-based listing and reply. */
static int path_new_name_ok(const char *name)
{
    if (strpbrk(name, "\r\n") != NULL) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

/* The name to hand to openat2 for a normalised virtual path. */
static const char *path_relative(const char *norm)
{
    return norm[1] == '\0' ? "." : norm + 1;
}

/* Appends the components of src to the normalised path in out (length *len),
 * applying "." and ".." lexically. */
static int path_apply(char *out, size_t size, size_t *len, const char *src)
{
    const char *p = src;
    while (*p != '\0') {
        while (*p == '/')
            p++;
        if (*p == '\0')
            break;
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 1 && p[0] == '.') {
            /* the same directory */
        } else if (n == 2 && p[0] == '.' && p[1] == '.') {
            /* Never above "/": at the root ".." stays at the root. */
            while (*len > 0 && out[*len - 1] != '/')
                (*len)--;
            if (*len > 0)
                (*len)--;
        } else {
            if (n > NAME_MAX || *len + 1 + n + 1 > size) {
                errno = ENAMETOOLONG;
                return -1;
            }
            out[(*len)++] = '/';
            memcpy(out + *len, p, n);
            *len += n;
        }
        p += n;
    }
    return 0;
}

int vfs_normalize(const vfs *v, const char *path, char *out, size_t size)
{
    size_t len = 0;
    if (out == NULL || size < 2) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (size > VFS_PATH_MAX)
        size = VFS_PATH_MAX;
    if (path == NULL)
        path = "";
    if (strnlen(path, VFS_PATH_MAX) >= VFS_PATH_MAX) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (path[0] != '/' && path_apply(out, size, &len, v->cwd) < 0)
        return -1;
    if (path_apply(out, size, &len, path) < 0)
        return -1;
    if (len == 0)
        out[len++] = '/';
    out[len] = '\0';
    return 0;
}

/* Normalises path and opens it beneath the root with flags. */
static int path_open_norm(const vfs *v, const char *path, int flags, mode_t mode)
{
    char norm[VFS_PATH_MAX];
    if (vfs_normalize(v, path, norm, sizeof norm) < 0)
        return -1;
    if ((flags & O_CREAT) && path_new_name_ok(strrchr(norm, '/') + 1) < 0)
        return -1;
    return path_openat2(v->root_fd, path_relative(norm), flags, mode);
}

/* Opens the parent directory of path (O_PATH, beneath the root) and copies
 * the final component to name. The root itself has no parent: EINVAL. If
 * vpath is not NULL the normalised virtual path is copied there. */
static int path_open_parent(const vfs *v, const char *path, char name[NAME_MAX + 1],
                            char vpath[VFS_PATH_MAX])
{
    char norm[VFS_PATH_MAX];
    if (path == NULL || path[0] == '\0') {
        errno = EINVAL;
        return -1;
    }
    if (vfs_normalize(v, path, norm, sizeof norm) < 0)
        return -1;
    if (norm[1] == '\0') {
        errno = EINVAL;
        return -1;
    }
    if (vpath != NULL)
        memcpy(vpath, norm, strlen(norm) + 1);
    char *slash = strrchr(norm, '/');
    size_t n = strlen(slash + 1);
    /* path_apply bounds every component by NAME_MAX. */
    memcpy(name, slash + 1, n + 1);
    if (slash == norm)
        slash[1] = '\0';
    else
        slash[0] = '\0';
    return path_openat2(v->root_fd, path_relative(norm), O_PATH | O_DIRECTORY, 0);
}

/* The session root becomes fd (or the open failed: -1); cwd is "/". */
static int path_set_root(vfs *v, int fd)
{
    if (fd < 0)
        return -1;
    v->root_fd = fd;
    v->cwd[0] = '/';
    v->cwd[1] = '\0';
    return 0;
}

int vfs_open_root(vfs *v, const char *root_dir)
{
    return path_set_root(v, open(root_dir, O_PATH | O_DIRECTORY | O_CLOEXEC));
}

int vfs_open_home(vfs *v, int root_fd, const char *home)
{
    /* No symlink anywhere on the way, not even one that stays beneath the
     * root: a home is a plain directory path, and a link in it could be
     * swapped by anyone who may write its parent. */
    return path_set_root(
        v, path_openat2_how(root_fd, home == NULL || home[0] == '\0' ? "." : home,
                            O_PATH | O_DIRECTORY, 0,
                            RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS));
}

void vfs_close(vfs *v)
{
    if (v->root_fd >= 0)
        close(v->root_fd);
    v->root_fd = -1;
}

int vfs_chdir(vfs *v, const char *path)
{
    char norm[VFS_PATH_MAX];
    if (vfs_normalize(v, path, norm, sizeof norm) < 0)
        return -1;
    int fd = path_openat2(v->root_fd, path_relative(norm), O_PATH | O_DIRECTORY, 0);
    if (fd < 0)
        return -1;
    close(fd);
    memcpy(v->cwd, norm, strlen(norm) + 1);
    return 0;
}

const char *vfs_cwd(const vfs *v)
{
    return v->cwd;
}

int vfs_open(const vfs *v, const char *path, int flags, mode_t mode)
{
    struct stat st;
    int fd = path_open_norm(v, path, flags | O_NONBLOCK, mode);
    if (fd < 0)
        return -1;
    /* A FIFO or device placed in the tree would block a session or reach
     * hardware; only regular files and directories are served. O_NONBLOCK
     * above keeps the open itself from blocking on a FIFO. */
    if (fstat(fd, &st) < 0)
        goto fail;
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
        errno = EACCES;
        goto fail;
    }
    if (!(flags & O_NONBLOCK)) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
            goto fail;
    }
    return fd;
fail:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

DIR *vfs_opendir(const vfs *v, const char *path)
{
    int fd = path_open_norm(v, path, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return NULL;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return d;
}

static int path_stat_flags(const vfs *v, const char *path, struct stat *st, int flags)
{
    int fd = path_open_norm(v, path, O_PATH | flags, 0);
    if (fd < 0)
        return -1;
    int rc = fstat(fd, st);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int vfs_stat(const vfs *v, const char *path, struct stat *st)
{
    /* Following a final symlink happens inside openat2, under the same
     * RESOLVE_BENEATH rule, so a link to the outside fails with EXDEV. */
    return path_stat_flags(v, path, st, 0);
}

int vfs_lstat(const vfs *v, const char *path, struct stat *st)
{
    return path_stat_flags(v, path, st, O_NOFOLLOW);
}

int vfs_mkdir(const vfs *v, const char *path, mode_t mode)
{
    char name[NAME_MAX + 1];
    int dfd = path_open_parent(v, path, name, NULL);
    if (dfd >= 0 && path_new_name_ok(name) < 0) {
        close(dfd);
        return -1;
    }
    if (dfd < 0) {
        /* "MKD /": the root exists. */
        if (errno == EINVAL && path != NULL && path[0] != '\0')
            errno = EEXIST;
        return -1;
    }
    int rc = mkdirat(dfd, name, mode);
    int saved = errno;
    close(dfd);
    errno = saved;
    return rc;
}

static int path_unlink_flags(const vfs *v, const char *path, int flags)
{
    char name[NAME_MAX + 1];
    int dfd = path_open_parent(v, path, name, NULL);
    if (dfd < 0)
        return -1;
    int rc = unlinkat(dfd, name, flags);
    int saved = errno;
    close(dfd);
    errno = saved;
    return rc;
}

int vfs_rmdir(const vfs *v, const char *path)
{
    return path_unlink_flags(v, path, AT_REMOVEDIR);
}

int vfs_unlink(const vfs *v, const char *path)
{
    return path_unlink_flags(v, path, 0);
}

int vfs_rename(const vfs *v, const char *from, const char *to)
{
    char from_name[NAME_MAX + 1];
    char to_name[NAME_MAX + 1];
    int rc = -1;
    int to_fd = -1;
    int from_fd = path_open_parent(v, from, from_name, NULL);
    if (from_fd < 0)
        return -1;
    to_fd = path_open_parent(v, to, to_name, NULL);
    if (to_fd < 0 || path_new_name_ok(to_name) < 0)
        goto out;
    /* renameat acts on the names themselves: a symlink is moved, never the
     * file it points to, and both parents are beneath the root. */
    rc = renameat(from_fd, from_name, to_fd, to_name);
out:;
    int saved = errno;
    close(from_fd);
    if (to_fd >= 0)
        close(to_fd);
    errno = saved;
    return rc;
}

/* Changes the mode of the inode behind an O_PATH descriptor. */
static int path_fchmod_opath(int fd, mode_t mode)
{
#ifdef SYS_fchmodat2
    if (syscall(SYS_fchmodat2, fd, "", mode, AT_EMPTY_PATH) == 0)
        return 0;
    if (errno != ENOSYS)
        return -1;
#endif
    /* Older kernels: the descriptor's /proc entry names exactly the inode we
     * hold, so no path is looked up again. */
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    return chmod(proc, mode);
}

int vfs_chmod(const vfs *v, const char *path, mode_t mode)
{
    char norm[VFS_PATH_MAX];
    if (vfs_normalize(v, path, norm, sizeof norm) < 0)
        return -1;
    if (norm[1] == '\0') {
        errno = EINVAL;
        return -1;
    }
    /* A final symlink is followed, but only beneath the root; the mode is
     * then changed through the descriptor, so a link swapped in afterwards
     * cannot redirect the change. */
    int fd = path_openat2(v->root_fd, path_relative(norm), O_PATH, 0);
    if (fd < 0)
        return -1;
    int rc = path_fchmod_opath(fd, mode & PATH_CHMOD_MASK);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/* prefix followed by random hex digits, into name. */
static int path_random_name(const char *prefix, char *name, size_t size)
{
    unsigned char rnd[PATH_RANDOM_BYTES];
    size_t got = 0;
    while (got < sizeof rnd) {
        ssize_t n = getrandom(rnd + got, sizeof rnd - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)n;
    }
    int len = snprintf(name, size, "%s", prefix);
    /* Bounded by rnd; stops once the name no longer fits, before size -
     * len could wrap. */
    for (size_t i = 0; i < sizeof rnd && len >= 0 && (size_t)len < size; i++)
        len += snprintf(name + len, size - (size_t)len, "%02x", rnd[i]);
    if (len < 0 || (size_t)len >= size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* Writes dir + "/" + name (virtual) into out. */
static int path_join(const char *dir, const char *name, char *out, size_t size)
{
    int n = snprintf(out, size, "%s%s%s", dir, dir[1] == '\0' ? "" : "/", name);
    if (n < 0 || (size_t)n >= size || (size_t)n >= VFS_PATH_MAX) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* Creates a new file with a random name in the directory dfd (virtual path
 * dir) and returns its descriptor; its virtual path goes to out. */
static int path_create_random(int dfd, const char *dir, const char *prefix, mode_t mode, char *out,
                              size_t size)
{
    char name[sizeof PATH_TEMP_PREFIX + 2 * (size_t)PATH_RANDOM_BYTES + 1];
    for (int i = 0; i < PATH_UNIQUE_TRIES; i++) {
        if (path_random_name(prefix, name, sizeof name) < 0)
            return -1;
        if (path_join(dir, name, out, size) < 0)
            return -1;
        /* O_EXCL also refuses an existing symlink, dangling or not. */
        int fd = openat(dfd, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST)
            return -1;
    }
    errno = EEXIST;
    return -1;
}

int vfs_open_temp(const vfs *v, const char *path, char *tmp, size_t size)
{
    char name[NAME_MAX + 1];
    char vpath[VFS_PATH_MAX];
    struct stat st;
    int fd = -1;
    int dfd = path_open_parent(v, path, name, vpath);
    if (dfd < 0)
        return -1;
    /* The commit would fail on a directory; say so before any data moves. */
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
        errno = EISDIR;
        goto out;
    }
    char *slash = strrchr(vpath, '/');
    if (slash == vpath)
        slash[1] = '\0';
    else
        slash[0] = '\0';
    fd = path_create_random(dfd, vpath, PATH_TEMP_PREFIX, 0644, tmp, size);
out:;
    int saved = errno;
    close(dfd);
    errno = saved;
    return fd;
}

int vfs_commit(const vfs *v, const char *tmp, const char *path)
{
    return vfs_rename(v, tmp, path);
}

int vfs_create_unique(const vfs *v, const char *dir_path, char *out, size_t size)
{
    char norm[VFS_PATH_MAX];
    if (vfs_normalize(v, dir_path, norm, sizeof norm) < 0)
        return -1;
    int dfd = path_openat2(v->root_fd, path_relative(norm), O_PATH | O_DIRECTORY, 0);
    if (dfd < 0)
        return -1;
    int fd = path_create_random(dfd, norm, PATH_UNIQUE_PREFIX, 0644, out, size);
    int saved = errno;
    close(dfd);
    errno = saved;
    return fd;
}
