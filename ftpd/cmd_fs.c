/*
 * cmd_fs.c - the file-system commands: CWD, CDUP, PWD, MKD, RMD, DELE,
 * RNFR, RNTO, SIZE, MDTM, HASH and SITE.
 */
#include "cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control.h"
#include "hash.h"
#include "listing.h"
#include "log.h"
#include "quota.h"
#include "sysio.h"
#include "xfer.h"

/* RFC 959 appendix II: a quote inside a 257 path is doubled. */
static void quote_path(const char *in, char *out, size_t size)
{
    size_t o = 0;

    for (; *in != '\0' && o + 2 < size; in++) {
        if (*in == '"')
            out[o++] = '"';
        out[o++] = *in;
    }
    out[o] = '\0';
}

/* ---- directories and files ------------------------------------------------ */

int cmd_cwd(session *s, const char *arg)
{
    if (vfs_chdir(&s->fs, arg) < 0)
        return cmd_reply_errno(s, errno);
    return reply(s, 250, "Directory successfully changed.");
}

int cmd_cdup(session *s, const char *arg)
{
    return cmd_cwd(s, "..");
}

int cmd_pwd(session *s, const char *arg)
{
    char q[VFS_PATH_MAX * 2];

    quote_path(vfs_cwd(&s->fs), q, sizeof(q));
    return reply(s, 257, "\"%s\" is the current directory.", q);
}

int cmd_mkd(session *s, const char *arg)
{
    char norm[VFS_PATH_MAX], q[VFS_PATH_MAX * 2];

    if (vfs_normalize(&s->fs, arg, norm, sizeof(norm)) < 0 || vfs_mkdir(&s->fs, arg, 0755) < 0)
        return cmd_reply_errno(s, errno);
    log_msg("%s: mkdir %s", s->peer_str, norm);
    quote_path(norm, q, sizeof(q));
    return reply(s, 257, "\"%s\" created.", q);
}

int cmd_rmd(session *s, const char *arg)
{
    if (vfs_rmdir(&s->fs, arg) < 0)
        return cmd_reply_errno(s, errno);
    log_msg("%s: rmdir %s", s->peer_str, arg);
    return reply(s, 250, "Directory removed.");
}

int cmd_dele(session *s, const char *arg)
{
    struct stat st;

    if (vfs_lstat(&s->fs, arg, &st) < 0)
        return cmd_reply_errno(s, errno);
    if (S_ISDIR(st.st_mode))
        return reply(s, 550, "Is a directory; use RMD.");
    if (vfs_unlink(&s->fs, arg) < 0)
        return cmd_reply_errno(s, errno);
    quota_removed(s, &st); /* the user's quota gets the file back */
    log_msg("%s: delete %s", s->peer_str, arg);
    return reply(s, 250, "File deleted.");
}

int cmd_rnfr(session *s, const char *arg)
{
    struct stat st;

    /* A failed RNFR leaves nothing for RNTO, even after an earlier one. */
    s->have_rnfr = false;
    if (vfs_normalize(&s->fs, arg, s->rnfr, sizeof(s->rnfr)) < 0 || vfs_lstat(&s->fs, arg, &st) < 0)
        return cmd_reply_errno(s, errno);
    s->have_rnfr = true;
    return reply(s, 350, "Ready for RNTO.");
}

int cmd_rnto(session *s, const char *arg)
{
    struct stat from, to;
    bool replaces;

    if (!s->have_rnfr)
        return reply(s, 503, "RNFR required first.");
    s->have_rnfr = false;
    /* A file the rename replaces leaves the user's quota (unless both
     * names are one file, which rename leaves alone). */
    replaces = vfs_lstat(&s->fs, arg, &to) == 0 && vfs_lstat(&s->fs, s->rnfr, &from) == 0 &&
               (from.st_dev != to.st_dev || from.st_ino != to.st_ino);
    if (vfs_rename(&s->fs, s->rnfr, arg) < 0)
        return cmd_reply_errno(s, errno);
    if (replaces)
        quota_removed(s, &to);
    log_msg("%s: rename %s to %s", s->peer_str, s->rnfr, arg);
    return reply(s, 250, "Rename successful.");
}

/* RFC 3659 4: in ASCII the size is that of the transfer, where every LF
 * goes out as CRLF; the file is read to count them. Files over
 * FTPD_ASCII_SIZE_MAX are not read (-1): a client asking for their size
 * should not cost the server a read of gigabytes. */
static off_t ascii_size(session *s, const char *arg, const struct stat *st)
{
    off_t size = st->st_size;
    int fd;

    if (st->st_size > FTPD_ASCII_SIZE_MAX)
        return -1;
    fd = vfs_open(&s->fs, arg, O_RDONLY, 0);
    if (fd < 0)
        return -1;
    /* Bounded by the file's size: each turn reads a block or ends. */
    for (;;) {
        ssize_t n = sysio_read(fd, s->buf, FTPD_XFER_BUF);

        if (n < 0) {
            size = -1;
            break;
        }
        if (n == 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            size += s->buf[i] == '\n';
    }
    close(fd);
    return size;
}

int cmd_size(session *s, const char *arg)
{
    struct stat st;

    if (vfs_stat(&s->fs, arg, &st) < 0)
        return cmd_reply_errno(s, errno);
    if (!S_ISREG(st.st_mode))
        return reply(s, 550, "Not a regular file.");
    if (s->type == 'A') {
        off_t size = ascii_size(s, arg, &st);

        if (size < 0)
            return reply(s, 550, "SIZE not available in ASCII mode; use TYPE I.");
        return reply(s, 213, "%lld", (long long)size);
    }
    return reply(s, 213, "%lld", (long long)st.st_size);
}

int cmd_mdtm(session *s, const char *arg)
{
    struct stat st;
    char t[15];

    if (vfs_stat(&s->fs, arg, &st) < 0)
        return cmd_reply_errno(s, errno);
    if (!S_ISREG(st.st_mode))
        return reply(s, 550, "Not a regular file.");
    listing_format_time(st.st_mtime, t);
    return reply(s, 213, "%s", t);
}

/* HASH path (draft-bryan-ftpext-hash). The digest costs about a CPU-second
 * per GiB, so it is bounded by --hash-max-size (checked before any reading)
 * and runs in the transfer loop, where ABOR, STAT and the server's stop are
 * seen between steps. */
int cmd_hash(session *s, const char *arg)
{
    char norm[VFS_PATH_MAX], hex[HASH_HEX_MAX];
    struct stat st;
    off_t bytes = 0;
    xfer_digest_job job;
    xfer_result res;
    int fd, err = 0, rc;

    /* --hash-max-size 0 turns HASH off; FEAT does not list it then. */
    if (s->cfg->hash_max_size == 0)
        return reply(s, 502, "HASH not enabled.");
    if (arg == NULL || *arg == '\0')
        return reply(s, 501, "HASH needs an argument.");
    if (vfs_normalize(&s->fs, arg, norm, sizeof(norm)) < 0)
        return cmd_reply_errno(s, errno);
    fd = vfs_open(&s->fs, arg, O_RDONLY, 0);
    if (fd < 0)
        return cmd_reply_errno(s, errno);
    /* The size comes from the open file, so the file checked is the file
     * read; the range read is fixed now, so a file that grows meanwhile
     * does not stretch the work past the cap. */
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = reply(s, 550, "Not a regular file.");
        goto out;
    }
    if ((unsigned long long)st.st_size > s->cfg->hash_max_size) {
        log_msg("%s: HASH %s refused: %lld bytes, over the %llu-byte cap", s->peer_str, norm,
                (long long)st.st_size, s->cfg->hash_max_size);
        rc = reply(s, 550, "File too large to hash (over %llu bytes).", s->cfg->hash_max_size);
        goto out;
    }
    memset(&job, 0, sizeof(job));
    job.file_fd = fd;
    job.algo = s->hash_algo;
    job.start = 0;
    job.end = st.st_size;
    job.path = norm;
    res = xfer_digest(s, &job, hex, sizeof(hex), &bytes, &err);
    switch (res) {
    case XFER_DONE:
        rc = reply(s, 213, "%s %lld-%lld %s %s", s->hash_algo, (long long)job.start,
                   (long long)job.start + (long long)bytes, hex, arg);
        break;
    case XFER_ABORTED:
        /* As a transfer stopped by ABOR (RFC 959 4.1.3): the aborted
         * command's reply, then ABOR's own. */
        log_msg("%s: HASH %s aborted after %lld bytes", s->peer_str, norm, (long long)bytes);
        rc = reply(s, 426, "HASH aborted.");
        if (rc == 0)
            rc = reply(s, 226, "ABOR successful.");
        break;
    case XFER_SHUTDOWN:
        s->quit = true;
        rc = reply(s, 421, "Server shutting down; HASH aborted.");
        break;
    case XFER_CTRL_LOST:
        rc = -1;
        break;
    default:
        rc = reply(s, 451, "Cannot compute the digest: %s.", strerror(err != 0 ? err : EIO));
        break;
    }
out:
    close(fd);
    return rc;
}

int cmd_site(session *s, const char *arg)
{
    char word[16];
    size_t n = strcspn(arg, " ");

    if (n >= sizeof(word))
        return reply(s, 500, "Unknown SITE command.");
    memcpy(word, arg, n);
    word[n] = '\0';
    if (strcasecmp(word, "HELP") == 0) {
        if (reply_begin(s, 214, "SITE commands:") < 0 || reply_line(s, "CHMOD mode path") < 0 ||
            reply_line(s, "HELP") < 0)
            return -1;
        return reply(s, 214, "End.");
    }
    if (strcasecmp(word, "CHMOD") == 0) {
        const char *p = arg + n;
        char *end = NULL;
        unsigned long mode;

        while (*p == ' ')
            p++;
        if (*p < '0' || *p > '7')
            return reply(s, 501, "Usage: SITE CHMOD mode path.");
        mode = strtoul(p, &end, 8);
        if (end == NULL || *end != ' ' || mode > 07777)
            return reply(s, 501, "Usage: SITE CHMOD mode path.");
        while (*end == ' ')
            end++;
        if (*end == '\0')
            return reply(s, 501, "Usage: SITE CHMOD mode path.");
        if (!s->can_modify)
            return reply(s, 550, "Permission denied.");
        /* vfs_chmod keeps only the permission bits. */
        if (vfs_chmod(&s->fs, end, (mode_t)mode) < 0)
            return cmd_reply_errno(s, errno);
        return reply(s, 200, "SITE CHMOD command ok.");
    }
    return reply(s, 500, "Unknown SITE command.");
}
