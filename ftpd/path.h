/*
 * path.h - the session's confined view of the file system.
 *
 * A vfs holds an O_PATH descriptor of the session's root directory and the
 * current directory as a virtual path ("/" is the root). Every operation
 * takes the client's path argument (absolute from the virtual root, or
 * relative to the virtual cwd), normalises it lexically ("." and ".." never
 * climb above "/"), and resolves it beneath the root descriptor with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS), so neither "..", an
 * absolute path nor a symlink (even one placed by someone else, even one
 * swapped in while we resolve) leads outside the root.
 *
 * All functions return 0 (or a descriptor) on success and -1 with errno on
 * failure. errno values the FTP layer maps to replies: ENOENT, ENOTDIR,
 * EISDIR, EEXIST, ENOTEMPTY, EACCES/EPERM, EXDEV (a path or symlink that
 * would leave the root), ENAMETOOLONG, EINVAL (NUL byte, empty name, a new
 * name with CR or LF, or an operation on "/" itself such as RMD /).
 */
#ifndef FTPD_PATH_H
#define FTPD_PATH_H

#include <dirent.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#define VFS_PATH_MAX 4096 /* longest virtual path, bytes including NUL */

typedef struct vfs {
    int root_fd;            /* O_PATH | O_DIRECTORY descriptor of the root */
    char cwd[VFS_PATH_MAX]; /* virtual current directory, starts "/" */
} vfs;

/* Open root_dir (a real path) as the session root; cwd becomes "/". */
int vfs_open_root(vfs *v, const char *root_dir);
/* Open a user's home, a path relative to the directory root_fd, as the
 * session root: beneath root_fd and through no symlink at all (ELOOP), so
 * a home can never lead outside the served tree, whoever changed it.
 * "" is root_fd itself. Resolved anew at each call. */
int vfs_open_home(vfs *v, int root_fd, const char *home);
void vfs_close(vfs *v);

/* The virtual absolute path of a client argument: "/a/b", never above "/",
 * no trailing slash (except "/" itself). path may be NULL or "" = cwd. */
int vfs_normalize(const vfs *v, const char *path, char *out, size_t size);

/* Change the virtual cwd; fails with ENOTDIR/ENOENT/EXDEV if the target is
 * not a directory beneath the root. */
int vfs_chdir(vfs *v, const char *path);
const char *vfs_cwd(const vfs *v);

/* Open a file beneath the root. flags as for open(2) (O_CLOEXEC is added);
 * mode for O_CREAT. Returns the descriptor. Only regular files and
 * directories are opened: a FIFO, socket or device fails with EACCES. */
int vfs_open(const vfs *v, const char *path, int flags, mode_t mode);
/* Open a directory for listing; the DIR owns its descriptor. */
DIR *vfs_opendir(const vfs *v, const char *path);

/* stat / lstat beneath the root (lstat does not follow a final symlink). */
int vfs_stat(const vfs *v, const char *path, struct stat *st);
int vfs_lstat(const vfs *v, const char *path, struct stat *st);

int vfs_mkdir(const vfs *v, const char *path, mode_t mode);
int vfs_rmdir(const vfs *v, const char *path);
int vfs_unlink(const vfs *v, const char *path);
int vfs_rename(const vfs *v, const char *from, const char *to);
/* chmod follows a final symlink only beneath the root (else EXDEV), applies
 * only the permission bits (mode & 0777), and refuses "/" (EINVAL). mkdir of
 * "/" fails with EEXIST; rmdir, unlink and rename of "/" with EINVAL. */
int vfs_chmod(const vfs *v, const char *path, mode_t mode);

/* Atomic replacement upload: create a new, empty temporary file in the
 * directory of path (name starts ".sockserv-ftpd."), mode 0644, and return
 * its descriptor; the temporary's name is written to tmp (virtual path).
 * On success the caller calls vfs_commit(v, tmp, path) (rename over the
 * target); on failure vfs_unlink(v, tmp). */
int vfs_open_temp(const vfs *v, const char *path, char *tmp, size_t size);
int vfs_commit(const vfs *v, const char *tmp, const char *path);

/* A unique new file name in the directory of path for STOU: opens it with
 * O_CREAT|O_EXCL|O_WRONLY and writes its virtual path to out.
 * dir_path names the directory itself (NULL or "" = cwd); the new name is
 * "stou." followed by 16 random hex digits. Returns the descriptor. */
int vfs_create_unique(const vfs *v, const char *dir_path, char *out, size_t size);

#endif
