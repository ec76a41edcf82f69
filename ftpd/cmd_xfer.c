/*
 * cmd_xfer.c - the transfer commands: TYPE, MODE, STRU, PORT, PASV, EPRT,
 * EPSV, REST, ALLO, ABOR, and RETR, STOR, APPE, STOU, LIST, NLST, MLSD,
 * which move data through the transfer loop (xfer.c).
 */
#include "cmd.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "dataconn.h"
#include "listing.h"
#include "log.h"
#include "quota.h"
#include "xfer.h"

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL && slash[1] != '\0' ? slash + 1 : path;
}

/* One xferlog line for a transfer that got its data connection. */
static void xferlog(session *s, time_t start, const char *path, off_t bytes, char dir,
                    bool complete)
{
    log_xfer_info x = {
        .start = start,
        .host = s->peer_host,
        .bytes = bytes,
        .path = path,
        .ascii = s->type == 'A',
        .direction = dir,
        .anonymous = s->anonymous,
        .user = s->anonymous ? s->ident : s->user,
        .complete = complete,
    };
    log_xfer(&x);
}

/* The final reply of a transfer that did not end well (or the 226). */
static int finish_reply(session *s, xfer_result res, int err, const char *ok)
{
    switch (res) {
    case XFER_DONE:
        return reply(s, 226, "%s", ok);
    case XFER_NO_CONN:
        return 0;
    case XFER_ABORTED:
        if (reply(s, 426, "Connection closed; transfer aborted.") < 0)
            return -1;
        return reply(s, 226, "ABOR successful.");
    case XFER_DATA_FAILED:
        return reply(s, 426, "Connection closed; transfer aborted.");
    case XFER_FILE_FAILED:
        if (err == ENOSPC)
            return reply(s, 452, "Insufficient storage space.");
        if (err == EDQUOT)
            return reply(s, 552, "Quota exceeded.");
        if (err == EFBIG)
            return reply(s, 552, "Exceeded storage allocation.");
        return reply(s, 451, "Local error: %s.", strerror(err));
    case XFER_TIMEOUT:
        return reply(s, 426, "Data connection timed out; transfer aborted.");
    case XFER_SHUTDOWN:
        return reply(s, 426, "Server shutting down; transfer aborted.");
    case XFER_CTRL_LOST:
        return -1;
    }
    return -1;
}

/* ---- transfer parameters -------------------------------------------------- */

int cmd_type(session *s, const char *arg)
{
    char t = (char)toupper((unsigned char)arg[0]);
    const char *rest = arg + 1;

    while (*rest == ' ')
        rest++;
    if (t == 'I' && *rest == '\0') {
        s->type = 'I';
        return reply(s, 200, "Switching to Binary mode.");
    }
    if (t == 'A' && (*rest == '\0' || toupper((unsigned char)*rest) == 'N') &&
        (*rest == '\0' || rest[1] == '\0')) {
        s->type = 'A';
        return reply(s, 200, "Switching to ASCII mode.");
    }
    if (t == 'L' && strcmp(rest, "8") == 0) {
        s->type = 'I';
        return reply(s, 200, "Switching to Binary mode.");
    }
    if (t == 'A' || t == 'E' || t == 'L')
        return reply(s, 504, "Type not supported.");
    return reply(s, 501, "Unrecognised TYPE.");
}

int cmd_mode(session *s, const char *arg)
{
    if (strcasecmp(arg, "S") == 0)
        return reply(s, 200, "Mode set to S.");
    if (strcasecmp(arg, "B") == 0 || strcasecmp(arg, "C") == 0)
        return reply(s, 504, "Only stream mode is supported.");
    return reply(s, 501, "Unrecognised MODE.");
}

int cmd_stru(session *s, const char *arg)
{
    if (strcasecmp(arg, "F") == 0)
        return reply(s, 200, "Structure set to F.");
    if (strcasecmp(arg, "R") == 0 || strcasecmp(arg, "P") == 0)
        return reply(s, 504, "Only file structure is supported.");
    return reply(s, 501, "Unrecognised STRU.");
}

int cmd_pasv(session *s, const char *arg)
{
    return dataconn_cmd_pasv(s);
}

int cmd_epsv(session *s, const char *arg)
{
    return dataconn_cmd_epsv(s, arg);
}

int cmd_port(session *s, const char *arg)
{
    return dataconn_cmd_port(s, arg);
}

int cmd_eprt(session *s, const char *arg)
{
    return dataconn_cmd_eprt(s, arg);
}

int cmd_rest(session *s, const char *arg)
{
    char *end = NULL;
    long long v;

    if (*arg < '0' || *arg > '9')
        return reply(s, 501, "REST needs a byte offset.");
    errno = 0;
    v = strtoll(arg, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0)
        return reply(s, 501, "REST needs a byte offset.");
    s->rest = (off_t)v;
    return reply(s, 350, "Restarting at %lld. Send STOR or RETR.", v);
}

int cmd_allo(session *s, const char *arg)
{
    return reply(s, 202, "ALLO command ignored.");
}

int cmd_abor(session *s, const char *arg)
{
    dataconn_forget(s);
    return reply(s, 225, "No transfer to abort.");
}

/* ---- transfers ------------------------------------------------------------ */

int cmd_retr(session *s, const char *arg)
{
    char norm[VFS_PATH_MAX], opening[VFS_PATH_MAX + 96];
    struct stat st;
    off_t rest = s->rest, bytes = 0;
    time_t start = time(NULL);
    xfer_result res;
    int fd, err = 0, rc;
    xfer_job job;

    s->rest = 0;
    if (vfs_normalize(&s->fs, arg, norm, sizeof(norm)) < 0)
        return cmd_reply_errno(s, errno);
    fd = vfs_open(&s->fs, arg, O_RDONLY, 0);
    if (fd < 0)
        return cmd_reply_errno(s, errno);
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = reply(s, 550, "Not a regular file.");
        goto out;
    }
    if (rest > st.st_size) {
        rc = reply(s, 554, "Invalid REST parameter.");
        goto out;
    }
    if (rest > 0 && lseek(fd, rest, SEEK_SET) < 0) {
        rc = reply(s, 451, "Cannot seek: %s.", strerror(errno));
        goto out;
    }
    snprintf(opening, sizeof(opening), "Opening %s mode data connection for %s (%lld bytes).",
             s->type == 'A' ? "ASCII" : "BINARY", base_name(norm), (long long)st.st_size);
    memset(&job, 0, sizeof(job));
    job.direction = 'o';
    job.file_fd = fd;
    job.ascii = s->type == 'A';
    job.total = st.st_size - rest;
    job.path = norm;
    job.opening = opening;
    res = xfer_run(s, &job, &bytes, &err);
    if (res != XFER_NO_CONN) {
        xferlog(s, start, norm, bytes, 'o', res == XFER_DONE);
        if (res == XFER_DONE)
            s->files_out++;
    }
    rc = finish_reply(s, res, err, "Transfer complete.");
out:
    close(fd);
    return rc;
}

enum store_kind { STORE_STOR, STORE_APPE, STORE_STOU };

/* Refuse an upload quota_begin refused. */
static int quota_refused(session *s, int err)
{
    if (err == EDQUOT) {
        log_msg("%s: upload refused: user %s is at the quota", s->peer_str, s->user);
        return reply(s, 552, "Quota exceeded.");
    }
    log_msg("%s: quota of %s: cannot count the usage: %s", s->peer_str, s->user, strerror(err));
    return reply(s, 451, "Cannot count the quota usage; try again later.");
}

/*
 * Quotas: quota_begin before the file is touched takes a file from the
 * quota for a new one and notes the bytes the upload may write without
 * growing usage (what it replaces, or overwrites in place after REST);
 * every write beyond them is charged first and refused with EDQUOT when it
 * would pass the quota (the transfer then ends with 552). quota_end then
 * settles with the upload's true effect on the file system. An upload that
 * fails leaves the file as every failure below does: a new file is removed,
 * an append is cut back, a replacement is dropped and the old file kept,
 * and a resumed file keeps what was written (each write was within quota).
 */
static int store(session *s, const char *arg, enum store_kind kind)
{
    char norm[VFS_PATH_MAX], tmp[VFS_PATH_MAX], opening[VFS_PATH_MAX + 64];
    char done_text[VFS_PATH_MAX + 64];
    struct stat st, end_st;
    off_t rest = s->rest, bytes = 0, old_size = 0;
    time_t start = time(NULL);
    bool exists = false, use_temp = false, created = false, removed = false;
    long long delta;
    xfer_result res;
    int fd = -1, err = 0, rc;
    xfer_job job;

    s->rest = 0;
    if (kind == STORE_STOU) {
        if (quota_begin(s, true, 0) < 0)
            return quota_refused(s, errno);
        fd = vfs_create_unique(&s->fs, vfs_cwd(&s->fs), norm, sizeof(norm));
        if (fd < 0) {
            err = errno;
            quota_end(s, 0, false);
            return cmd_reply_errno(s, err);
        }
        created = true;
        snprintf(opening, sizeof(opening), "FILE: %s", base_name(norm));
        snprintf(done_text, sizeof(done_text), "Transfer complete (unique file name: %s).",
                 base_name(norm));
        goto run;
    }
    snprintf(done_text, sizeof(done_text), "Transfer complete.");
    if (vfs_normalize(&s->fs, arg, norm, sizeof(norm)) < 0)
        return cmd_reply_errno(s, errno);
    exists = vfs_stat(&s->fs, arg, &st) == 0;
    if (exists && S_ISDIR(st.st_mode))
        return reply(s, 550, "Is a directory.");
    if (exists && !S_ISREG(st.st_mode))
        return reply(s, 550, "Not a regular file.");
    if (exists)
        old_size = st.st_size;
    /* A writer that may not modify adds new files only: no overwrite, and
     * no resume into a file that is already there. */
    if (!s->can_modify && (exists || rest > 0))
        return reply(s, 550, "Permission denied: uploads may not replace existing files.");
    if (rest > 0 && kind != STORE_APPE && (!exists || rest > st.st_size))
        return reply(s, 554, "Invalid REST parameter.");
    if (quota_begin(s, !exists, kind == STORE_APPE ? 0 : old_size - rest) < 0)
        return quota_refused(s, errno);
    if (kind == STORE_APPE) {
        fd = vfs_open(&s->fs, arg, O_WRONLY | O_CREAT | O_APPEND, 0644);
        created = !exists;
    } else if (rest > 0) {
        /* Resume: write into the existing file at the offset. */
        fd = vfs_open(&s->fs, arg, O_WRONLY, 0);
        if (fd >= 0 && lseek(fd, rest, SEEK_SET) < 0) {
            err = errno;
            close(fd);
            quota_end(s, 0, false);
            return reply(s, 451, "Cannot seek: %s.", strerror(err));
        }
    } else if (exists) {
        /* Replace: the old file stays whole until the new one has arrived. */
        fd = vfs_open_temp(&s->fs, arg, tmp, sizeof(tmp));
        use_temp = true;
    } else {
        /* New file: data arrives under its own name, so a broken upload can
         * be resumed with REST + STOR or APPE. */
        fd = vfs_open(&s->fs, arg, O_WRONLY | O_CREAT | O_EXCL, 0644);
        created = true;
        if (fd < 0 && errno == EEXIST && s->can_modify) {
            /* Made meanwhile: replaced as above. The quota counts it as a
             * new file, given back at the end. */
            if (vfs_stat(&s->fs, arg, &st) == 0 && S_ISREG(st.st_mode))
                old_size = st.st_size;
            fd = vfs_open_temp(&s->fs, arg, tmp, sizeof(tmp));
            use_temp = true;
            created = false;
        }
    }
    if (fd < 0) {
        err = errno;
        quota_end(s, 0, false);
        return cmd_reply_errno(s, err);
    }
    snprintf(opening, sizeof(opening), "Ok to send data (%s mode).",
             s->type == 'A' ? "ASCII" : "BINARY");
run:
    memset(&job, 0, sizeof(job));
    job.direction = 'i';
    job.file_fd = fd;
    job.ascii = s->type == 'A';
    job.total = -1;
    job.path = norm;
    job.opening = opening;
    res = xfer_run(s, &job, &bytes, &err);
    /* The file system (or the quota) refused the data: an append gives back
     * what it added, so the file is as it was before. */
    if (res == XFER_FILE_FAILED && kind == STORE_APPE && exists && ftruncate(fd, st.st_size) < 0)
        log_msg("%s: cannot undo the append to %s: %s", s->peer_str, norm, strerror(errno));
    if (fstat(fd, &end_st) < 0)
        end_st.st_size = old_size;
    if (close(fd) < 0 && res == XFER_DONE) {
        res = XFER_FILE_FAILED;
        err = errno;
    }
    if (use_temp) {
        if (res == XFER_DONE && vfs_commit(&s->fs, tmp, norm) < 0) {
            res = XFER_FILE_FAILED;
            err = errno;
        }
        if (res != XFER_DONE)
            vfs_unlink(&s->fs, tmp);
    } else if ((res == XFER_NO_CONN || res == XFER_FILE_FAILED) && created) {
        /* Nothing arrived, or the file system or the quota refused the
         * data: leave no empty or truncated file behind (a broken
         * connection keeps the part that arrived, for REST + STOR or APPE
         * to resume). */
        removed = vfs_unlink(&s->fs, norm) == 0;
    }
    if (use_temp)
        delta = res == XFER_DONE ? (long long)(end_st.st_size - old_size) : 0;
    else if (removed)
        delta = 0;
    else
        delta = (long long)(end_st.st_size - (created ? 0 : old_size));
    quota_end(s, delta, created && !removed);
    if (res == XFER_FILE_FAILED && err == EDQUOT)
        log_msg("%s: upload of %s stopped at the quota of user %s", s->peer_str, norm, s->user);
    if (res != XFER_NO_CONN) {
        xferlog(s, start, norm, bytes, 'i', res == XFER_DONE);
        if (res == XFER_DONE)
            s->files_in++;
    }
    rc = finish_reply(s, res, err, done_text);
    return rc;
}

int cmd_stor(session *s, const char *arg)
{
    return store(s, arg, STORE_STOR);
}

int cmd_appe(session *s, const char *arg)
{
    return store(s, arg, STORE_APPE);
}

int cmd_stou(session *s, const char *arg)
{
    return store(s, arg, STORE_STOU);
}

/* A listing as the transfer loop's byte source. */
static ssize_t listing_source(void *ctx, void *buf, size_t cap)
{
    return listing_read(ctx, buf, cap);
}

static int send_listing(session *s, const char *arg, listing_kind kind)
{
    listing_opts o;
    listing *l;
    const char *path;
    char norm[VFS_PATH_MAX];
    struct stat st;
    off_t bytes = 0;
    int err = 0;
    xfer_result res;
    xfer_job job;

    cmd_listing_opts(s, &o);
    path =
        kind == LISTING_MLSD ? (arg != NULL && *arg != '\0' ? arg : NULL) : cmd_list_args(arg, &o);
    if (kind == LISTING_MLSD)
        o.show_hidden = true;
    if (vfs_normalize(&s->fs, path, norm, sizeof(norm)) < 0)
        return cmd_reply_errno(s, errno);
    /* A named path must resolve inside the root, symlinks followed: a link
     * that leads out is refused rather than shown as a link. */
    if (path != NULL && vfs_stat(&s->fs, path, &st) < 0)
        return cmd_reply_errno(s, errno);
    /* Opened before the data connection, so a bad path is refused first. */
    l = listing_open(&s->fs, path, kind, &o);
    if (l == NULL) {
        err = errno;
        if (kind == LISTING_MLSD && err == ENOTDIR)
            return reply(s, 501, "Not a directory.");
        return cmd_reply_errno(s, err);
    }
    cmd_log_unsorted(s, l, norm);
    memset(&job, 0, sizeof(job));
    job.direction = 'o';
    job.file_fd = -1;
    job.source = listing_source;
    job.source_ctx = l;
    job.total = -1;
    job.path = norm;
    job.opening = "Here comes the directory listing.";
    res = xfer_run(s, &job, &bytes, &err);
    listing_close(l);
    return finish_reply(s, res, err, "Directory send OK.");
}

int cmd_list(session *s, const char *arg)
{
    return send_listing(s, arg, LISTING_LIST);
}

int cmd_nlst(session *s, const char *arg)
{
    return send_listing(s, arg, LISTING_NLST);
}

int cmd_mlsd(session *s, const char *arg)
{
    return send_listing(s, arg, LISTING_MLSD);
}
