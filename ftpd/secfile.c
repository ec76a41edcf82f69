/*
 * secfile.c - may root open this path without the --run-as user steering it?
 *
 * The walk resolves the path itself, one component at a time from O_PATH
 * descriptors, so that every directory the kernel would pass through is the
 * one judged - including those reached through a symbolic link - and none
 * is opened for reading on the way (a device is never opened, only named).
 */
#include "secfile.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Symbolic links followed in one path before giving up, as the kernel's
 * MAXSYMLINKS. */
#define SECFILE_LINKS_MAX 40
/* Group list size tried first; getgrouplist says when it needs more. */
#define SECFILE_GROUPS_START 32
/* Turns of asking getgrouplist: the list only grows between two calls when
 * the group database changes meanwhile. */
#define SECFILE_GROUPS_TRIES 4

/* What the user can do to a file or directory (to its entries). */
enum reach { REACH_NONE, REACH_OWNER, REACH_WRITE, REACH_ACL };

int secfile_user_init(secfile_user *u, const char *name)
{
    struct passwd pw, *found = NULL;
    char buf[4096];
    gid_t *groups = NULL;
    int n = SECFILE_GROUPS_START;
    int err, rc = -1;

    memset(u, 0, sizeof(*u));
    err = getpwnam_r(name, &pw, buf, sizeof(buf), &found);
    if (err != 0 || found == NULL) {
        errno = err != 0 ? err : ENOENT;
        goto out;
    }
    errno = EOVERFLOW;
    for (int turn = 0; turn < SECFILE_GROUPS_TRIES; turn++) {
        gid_t *more = realloc(groups, (size_t)n * sizeof(*groups));
        int want = n;

        if (more == NULL)
            goto out;
        groups = more;
        if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &want) >= 0) {
            snprintf(u->name, sizeof(u->name), "%s", pw.pw_name);
            u->uid = pw.pw_uid;
            u->groups = groups;
            u->ngroups = want;
            groups = NULL;
            rc = 0;
            goto out;
        }
        n = want > n ? want : 2 * n;
    }
out:
    err = errno;
    free(groups);
    errno = err;
    return rc;
}

void secfile_user_free(secfile_user *u)
{
    free(u->groups);
    u->groups = NULL;
    u->ngroups = 0;
}

static bool in_groups(const secfile_user *u, gid_t g)
{
    for (int i = 0; i < u->ngroups; i++)
        if (u->groups[i] == g)
            return true;
    return false;
}

/* Does the file carry an access ACL? Its group bits are then the ACL's
 * mask, and an entry naming the user or one of its groups may grant write
 * access that the bits do not show. The xattr calls take no O_PATH
 * descriptor, hence the way through /proc. */
static int has_acl(int fd, bool *out)
{
    char proc[64];

    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    if (getxattr(proc, "system.posix_acl_access", NULL, 0) >= 0) {
        *out = true;
        return 0;
    }
    if (errno == ENODATA || errno == ENOTSUP) {
        *out = false;
        return 0;
    }
    return -1;
}

/* Owning a file is as good as writing it: the owner may chmod. Otherwise
 * the kernel's order: the group bits if the user is in the file's group,
 * else the other bits; an ACL only counts when its mask allows writing. */
static int user_reach(const secfile_user *u, int fd, const struct stat *st, enum reach *out)
{
    bool acl = false;

    *out = REACH_NONE;
    if (st->st_uid == u->uid) {
        *out = REACH_OWNER;
    } else if (in_groups(u, st->st_gid)) {
        if (st->st_mode & S_IWGRP)
            *out = REACH_WRITE;
    } else if (st->st_mode & S_IWOTH) {
        *out = REACH_WRITE;
    } else if (st->st_mode & S_IWGRP) {
        if (has_acl(fd, &acl) < 0)
            return -1;
        if (acl)
            *out = REACH_ACL;
    }
    return 0;
}

static void say_errno(char *why, size_t size, int err)
{
    char buf[128];

    /* The GNU strerror_r (we build with _GNU_SOURCE) may return a static
     * string instead of filling buf; unlike strerror it is thread-safe, and
     * log reopening runs in session threads. */
    snprintf(why, size, "%s", strerror_r(err, buf, sizeof(buf)));
}

/* "directory /srv/log is writable by nobody" + tail. */
static void say_reach(char *why, size_t size, const char *what, const char *name, enum reach r,
                      const secfile_user *u, const char *tail)
{
    const char *pre = r == REACH_OWNER   ? "belongs to "
                      : r == REACH_WRITE ? "is writable by "
                                         : "may be writable by ";
    const char *post = r == REACH_ACL ? " (access ACL)" : "";

    snprintf(why, size, "%s%s%s%s%s%s%s", what, *what != '\0' ? " " : "", name,
             *name != '\0' ? " " : "", pre, u->name, post);
    if (strlen(why) + 1 < size)
        snprintf(why + strlen(why), size - strlen(why), "%s", tail);
}

/* A directory name plus a component, for messages. Fails (ENAMETOOLONG)
 * rather than naming a directory wrongly. */
static int join(char *out, size_t size, const char *dir, const char *comp)
{
    size_t n = strlen(dir);
    int k = snprintf(out, size, "%s%s%s", dir, n > 0 && dir[n - 1] == '/' ? "" : "/", comp);

    if (k < 0 || (size_t)k >= size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* Take the first component of rest into comp and drop it from rest. Returns
 * its length (0: rest holds no component), or -1 when it is too long;
 * *last tells whether another component follows. */
static int next_component(char *rest, char *comp, size_t csize, bool *last)
{
    char *p = rest, *end;
    size_t n;

    while (*p == '/')
        p++;
    end = p + strcspn(p, "/");
    n = (size_t)(end - p);
    if (n >= csize)
        return -1;
    memcpy(comp, p, n);
    comp[n] = '\0';
    while (*end == '/')
        end++;
    *last = *end == '\0';
    memmove(rest, end, strlen(end) + 1);
    return (int)n;
}

/* Put the target of the symbolic link fd in front of rest. */
static int splice_link(int fd, char *rest, size_t size)
{
    char target[PATH_MAX];
    ssize_t len = readlinkat(fd, "", target, sizeof(target));
    size_t n, r = strlen(rest);

    if (len < 0)
        return -1;
    n = (size_t)len;
    if (n >= sizeof(target) || n + 1 + r + 1 > size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memmove(rest + n + 1, rest, r + 1);
    memcpy(rest, target, n);
    rest[n] = '/';
    return 0;
}

/* The last component, found and not a symbolic link. */
static int judge_file(const secfile_user *u, enum secfile_use use, int fd, const struct stat *st,
                      char *why, size_t size)
{
    enum reach r;

    if (!S_ISREG(st->st_mode)) {
        snprintf(why, size, "is not a regular file");
        errno = EINVAL;
        return -1;
    }
    if (use == SECFILE_HAND_OVER) {
        if (st->st_uid != 0 && st->st_uid != u->uid) {
            snprintf(why, size, "belongs to uid %lu, not to root or %s", (unsigned long)st->st_uid,
                     u->name);
            errno = EPERM;
            return -1;
        }
        /* Another name of a file of root's could be anything: /etc/shadow,
         * linked here while the directory was still open to the user. */
        if (st->st_uid == 0 && st->st_nlink > 1) {
            snprintf(why, size, "has %lu hard links; refusing to hand it to %s",
                     (unsigned long)st->st_nlink, u->name);
            errno = EPERM;
            return -1;
        }
        return 0;
    }
    if (user_reach(u, fd, st, &r) < 0) {
        say_errno(why, size, errno);
        return -1;
    }
    if (r != REACH_NONE) {
        say_reach(why, size, "", "", r, u, ", who could change it");
        errno = EPERM;
        return -1;
    }
    return 0;
}

/* Start of the walk: the root directory, or the working directory. */
static int open_start(bool absolute, char *where, size_t size)
{
    if (absolute || getcwd(where, size) == NULL)
        snprintf(where, size, "%s", absolute ? "/" : ".");
    return open(absolute ? "/" : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
}

int secfile_check(const char *path, const secfile_user *u, enum secfile_use use, char *why,
                  size_t size)
{
    char rest[2 * PATH_MAX];
    char where[PATH_MAX];
    char shown[PATH_MAX];
    char comp[NAME_MAX + 1];
    struct stat dir, st;
    enum reach r;
    unsigned links = 0;
    bool last = false;
    int dirfd = -1, fd = -1, rc = -1, err = 0;

    if (strlen(path) >= PATH_MAX) {
        err = ENAMETOOLONG;
        say_errno(why, size, err);
        goto out;
    }
    snprintf(rest, sizeof(rest), "%s", path);
    dirfd = open_start(path[0] == '/', where, sizeof(where));
    if (dirfd < 0) {
        err = errno;
        say_errno(why, size, err);
        goto out;
    }
    for (;;) {
        int n = next_component(rest, comp, sizeof(comp), &last);

        if (n <= 0) {
            err = n < 0 ? ENAMETOOLONG : EISDIR;
            if (n < 0)
                say_errno(why, size, err);
            else
                snprintf(why, size, "is not a regular file");
            goto out;
        }
        if (fstat(dirfd, &dir) < 0 || user_reach(u, dirfd, &dir, &r) < 0) {
            err = errno;
            say_errno(why, size, err);
            goto out;
        }
        /* In a sticky directory only the owner of an entry (or of the
         * directory) may rename or remove it, so there the user cannot
         * swap what the walk goes on with - but it can always create a
         * missing name, so the file's own directory must be closed. */
        if (r != REACH_NONE && (last || r == REACH_OWNER || !(dir.st_mode & S_ISVTX))) {
            say_reach(why, size, "directory", where, r, u,
                      ", who could put another file in its place");
            err = EPERM;
            goto out;
        }
        fd = openat(dirfd, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            err = errno;
            /* A missing log is created by root, in a directory that is out
             * of the user's reach. */
            if (err == ENOENT && last && use == SECFILE_HAND_OVER)
                rc = 0;
            else
                say_errno(why, size, err);
            goto out;
        }
        if (fstat(fd, &st) < 0) {
            err = errno;
            say_errno(why, size, err);
            goto out;
        }
        if (last && !S_ISLNK(st.st_mode)) {
            rc = judge_file(u, use, fd, &st, why, size);
            err = errno;
            goto out;
        }
        if (join(shown, sizeof(shown), where, comp) < 0) {
            err = errno;
            say_errno(why, size, err);
            goto out;
        }
        if (S_ISLNK(st.st_mode)) {
            if (last) {
                snprintf(why, size, "is a symbolic link; refusing to follow it");
                err = ELOOP;
                goto out;
            }
            if (st.st_uid == u->uid) {
                say_reach(why, size, "symbolic link", shown, REACH_OWNER, u,
                          ", who could put another in its place");
                err = EPERM;
                goto out;
            }
            if (++links > SECFILE_LINKS_MAX || splice_link(fd, rest, sizeof(rest)) < 0) {
                err = links > SECFILE_LINKS_MAX ? ELOOP : errno;
                say_errno(why, size, err);
                goto out;
            }
            close(fd);
            fd = -1;
            if (rest[0] == '/') {
                close(dirfd);
                dirfd = open_start(true, where, sizeof(where));
                if (dirfd < 0) {
                    err = errno;
                    say_errno(why, size, err);
                    goto out;
                }
            }
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            err = ENOTDIR;
            say_errno(why, size, err);
            goto out;
        }
        close(dirfd);
        dirfd = fd;
        fd = -1;
        snprintf(where, sizeof(where), "%s", shown);
    }
out:
    if (fd >= 0)
        close(fd);
    if (dirfd >= 0)
        close(dirfd);
    if (rc < 0)
        errno = err;
    return rc;
}

/* Why an open failed, in words for the error message. */
static void say_open_error(const char *path, int err, char *why, size_t size)
{
    struct stat st;

    /* ELOOP also means too many links in the middle of the path: only name
     * the symbolic link when the last component is one. */
    if (err == ELOOP && fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISLNK(st.st_mode))
        snprintf(why, size, "is a symbolic link; refusing to follow it");
    else if (err == ENXIO) /* a FIFO without a reader, or a device */
        snprintf(why, size, "is not a regular file");
    else
        say_errno(why, size, err);
}

static int open_regular(const char *path, int flags, mode_t mode, char *why, size_t size)
{
    struct stat st;
    int fd, fl, err = 0;

    /* O_NONBLOCK: a FIFO in the file's place must not hang the open; it is
     * refused below like any file that is not regular. */
    fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, mode);
    if (fd < 0) {
        err = errno;
        say_open_error(path, err, why, size);
        errno = err;
        return -1;
    }
    if (fstat(fd, &st) < 0) {
        err = errno;
        say_errno(why, size, err);
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        err = EINVAL;
        snprintf(why, size, "is not a regular file");
        goto fail;
    }
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        err = errno;
        say_errno(why, size, err);
        goto fail;
    }
    return fd;
fail:
    close(fd);
    errno = err;
    return -1;
}

FILE *secfile_fopen(const char *path, char *why, size_t size)
{
    FILE *f;
    int fd = open_regular(path, O_RDONLY, 0, why, size);
    int err;

    if (fd < 0)
        return NULL;
    f = fdopen(fd, "r");
    if (f == NULL) {
        err = errno;
        say_errno(why, size, err);
        close(fd);
        errno = err;
    }
    return f;
}

int secfile_open_append(const char *path, mode_t mode, char *why, size_t size)
{
    return open_regular(path, O_WRONLY | O_APPEND | O_CREAT, mode, why, size);
}
