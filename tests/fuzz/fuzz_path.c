/*
 * fuzz_path.c - path normalisation and resolution in sockserv-ftpd's
 * virtual file system, over a real tree that holds symbolic links leading
 * out of it ("/", "..", an absolute path, a loop). The input is a working
 * directory, a newline, and a path. Promises checked: a normalised path is
 * absolute, has no empty, "." or ".." component and no trailing slash; and
 * whatever the resolution opens - a file, a directory, a home - lies
 * beneath the served root.
 */
#include "fuzz.h"

#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../ftpd/path.h"

static char root[PATH_MAX];
static size_t root_len;
static int root_fd = -1;

static void make(const char *rel, const char *link_to)
{
    char p[PATH_MAX + 64];

    snprintf(p, sizeof(p), "%s/%s", root, rel);
    if (link_to != NULL) {
        if (symlink(link_to, p) < 0)
            abort();
    } else if (rel[strlen(rel) - 1] == '/') {
        if (mkdir(p, 0755) < 0)
            abort();
    } else {
        int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);

        if (fd < 0)
            abort();
        close(fd);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char dir[] = "/tmp/sockserv-fuzz-path-XXXXXX";

    (void)argc;
    (void)argv;
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(root, sizeof(root), "%s/root", dir);
    if (mkdir(root, 0755) < 0)
        abort();
    root_len = strlen(root);
    make("a/", NULL);
    make("a/b/", NULL);
    make("a/b/file", NULL);
    make("pub/", NULL);
    make("pub/readme", NULL);
    make("to-root", "/");
    make("to-etc", "/etc/passwd");
    make("a/b/up", "../../..");
    make("pub/inside", "../a/b/file");
    make("loop1", "loop2");
    make("loop2", "loop1");
    root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0)
        abort();
    return 0;
}

/* Does descriptor fd name something beneath the root? */
static void check_beneath(int fd)
{
    char link[64], target[PATH_MAX];
    ssize_t n;

    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, target, sizeof(target) - 1);
    FUZZ_CHECK(n > 0);
    target[n] = '\0';
    FUZZ_CHECK(strncmp(target, root, root_len) == 0 &&
               (target[root_len] == '\0' || target[root_len] == '/'));
}

static void check_normal(const char *p)
{
    size_t n = strlen(p);

    FUZZ_CHECK(p[0] == '/');
    FUZZ_CHECK(n == 1 || p[n - 1] != '/');
    FUZZ_CHECK(strstr(p, "//") == NULL);
    for (const char *c = p; c != NULL && *c != '\0'; c = strchr(c + 1, '/')) {
        const char *name = c + 1;
        size_t len = strcspn(name, "/");

        FUZZ_CHECK(!(len == 1 && name[0] == '.'));
        FUZZ_CHECK(!(len == 2 && name[0] == '.' && name[1] == '.'));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in, *path;
    char norm[VFS_PATH_MAX];
    struct stat st;
    vfs v;
    int fd;

    if (size > 2 * VFS_PATH_MAX)
        return 0;
    in = fuzz_string(data, size);
    path = strchr(in, '\n');
    if (path != NULL)
        *path++ = '\0';
    else
        path = in;
    if (vfs_open_root(&v, root) < 0)
        abort();
    /* The working directory as a client would set it: CWD may fail. */
    if (vfs_chdir(&v, in) == 0)
        check_normal(vfs_cwd(&v));
    if (vfs_normalize(&v, path, norm, sizeof(norm)) == 0)
        check_normal(norm);
    fd = vfs_open(&v, path, O_RDONLY, 0);
    if (fd >= 0) {
        check_beneath(fd);
        close(fd);
    }
    if (vfs_stat(&v, path, &st) == 0 || vfs_lstat(&v, path, &st) == 0)
        FUZZ_CHECK(st.st_ino != 0);
    vfs_close(&v);
    /* The same text as a home from the users file. */
    if (vfs_open_home(&v, root_fd, path) == 0) {
        check_beneath(v.root_fd);
        vfs_close(&v);
    }
    free(in);
    return 0;
}
