/*
 * commands.c - the FTP command table (RFC 959, 2389, 2428, 3659 and the HASH
 * draft) and its handlers.
 *
 * commands_dispatch() splits a line into verb and argument, looks the verb
 * up in one table, applies the table's flags (login needed, argument needed,
 * write permission needed) and calls the handler. Handlers return the result
 * of their last reply: 0 to go on, -1 when the control connection is gone or
 * the session must end.
 */
#include "commands.h"

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

#include "auth.h"
#include "login.h"
#include "hash.h"
#include "listing.h"
#include "log.h"
#include "transfer.h"

#define F_PRE 0x01      /* allowed before login */
#define F_ARG 0x02      /* needs an argument */
#define F_WRITE 0x04    /* changes the file system */
#define F_KEEPREST 0x08 /* a pending REST offset survives this command */
#define F_TRIM 0x10     /* the argument is no path: trailing blanks are dropped */
#define F_MODIFY 0x20   /* changes or removes what exists (anonymous: --anonymous-modify) */

/* Longest argument of an F_TRIM command that is trimmed (their arguments are
 * short words; a longer one is passed on as it is and refused). */
#define TRIM_ARG_MAX 256

typedef int (*cmd_fn)(session *s, const char *arg);

typedef struct command {
    const char *name;
    cmd_fn fn;
    unsigned flags;
    const char *help;
} command;

static const command *find_command(const char *verb);

/* ---- helpers ------------------------------------------------------------ */

static int reply_errno(session *s, int err)
{
    switch (err) {
    case ENOENT:
        return reply(s, 550, "No such file or directory.");
    case EACCES:
    case EPERM:
    case EXDEV:
    case ELOOP:
        return reply(s, 550, "Permission denied.");
    case EEXIST:
        return reply(s, 550, "File exists.");
    case ENOTEMPTY:
        return reply(s, 550, "Directory not empty.");
    case ENOTDIR:
        return reply(s, 550, "Not a directory.");
    case EISDIR:
        return reply(s, 550, "Is a directory.");
    case ENAMETOOLONG:
        return reply(s, 553, "File name too long.");
    case EINVAL:
        return reply(s, 553, "File name not allowed.");
    case ENOSPC:
        return reply(s, 452, "Insufficient storage space.");
    case EDQUOT:
    case EFBIG:
        return reply(s, 552, "Exceeded storage allocation.");
    default:
        return reply(s, 550, "Requested action not taken: %s.", strerror(err));
    }
}

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

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL && slash[1] != '\0' ? slash + 1 : path;
}

/* Split "-la dir" into options and path, as clients send them for LIST and
 * NLST; "a" among the letters shows hidden names. Only words of letters and
 * digits after a '-' count as options ("-1" as ls(1) knows it), so a name
 * such as "-" stays a path; "./-1" names a file called "-1". */
static const char *list_args(const char *arg, listing_opts *o)
{
    while (arg != NULL && arg[0] == '-' && isalnum((unsigned char)arg[1])) {
        const char *p = arg + 1;

        while (isalnum((unsigned char)*p))
            p++;
        if (*p != ' ' && *p != '\0')
            break;
        if (memchr(arg, 'a', (size_t)(p - arg)) != NULL ||
            memchr(arg, 'A', (size_t)(p - arg)) != NULL)
            o->show_hidden = true;
        while (*p == ' ')
            p++;
        arg = p;
    }
    return arg != NULL && *arg != '\0' ? arg : NULL;
}

/* OPTS MLST keeps its selection in the bits the formatter takes. */
_Static_assert(MLST_ALL == LISTING_FACTS_ALL, "MLST fact bits and listing fact bits differ");

static void init_opts(session *s, listing_opts *o)
{
    memset(o, 0, sizeof(*o));
    /* perm facts promise only what the session may do to what exists. */
    o->writable = s->can_modify;
    o->omit_facts = LISTING_FACTS_ALL & ~s->mlst_facts;
}

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
        if (err == EDQUOT || err == EFBIG)
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

/* ---- MLST facts (RFC 3659 7.8: OPTS MLST selects the facts shown) ------- */

static const char *const mlst_fact_names[] = {"type", "size", "modify", "perm", "unique"};
#define MLST_FACT_COUNT (sizeof(mlst_fact_names) / sizeof(mlst_fact_names[0]))

static int fact_index(const char *name, size_t len)
{
    for (size_t i = 0; i < MLST_FACT_COUNT; i++)
        if (strlen(mlst_fact_names[i]) == len && strncasecmp(mlst_fact_names[i], name, len) == 0)
            return (int)i;
    return -1;
}

static int opts_mlst(session *s, const char *val)
{
    char shown[80];
    unsigned mask = 0;
    const char *p = val;

    /* Bounded by the argument's length: each turn consumes one name. */
    while (*p != '\0') {
        size_t len = strcspn(p, ";");
        int idx = fact_index(p, len);

        if (idx >= 0)
            mask |= 1u << idx;
        p += len;
        if (*p == ';')
            p++;
    }
    s->mlst_facts = mask;
    shown[0] = '\0';
    for (size_t i = 0; i < MLST_FACT_COUNT; i++) {
        size_t len = strlen(shown);
        if (mask & (1u << i))
            snprintf(shown + len, sizeof(shown) - len, "%s;", mlst_fact_names[i]);
    }
    return reply(s, 200, "MLST OPTS %s", shown);
}

/* ---- access control ------------------------------------------------------ */

static int cmd_acct(session *s, const char *arg)
{
    return reply(s, 202, "ACCT not needed.");
}

static int cmd_quit(session *s, const char *arg)
{
    reply(s, 221, "Goodbye.");
    return -1;
}

static int cmd_rein(session *s, const char *arg)
{
    session_reset(s);
    return reply(s, 220, "Ready for new user.");
}

/* Clients announce their name (CLNT); nothing depends on it. */
static int cmd_clnt(session *s, const char *arg)
{
    return reply(s, 200, "Noted.");
}

static int cmd_auth(session *s, const char *arg)
{
    return reply(s, 502, "TLS is not supported.");
}

/* ---- directories and files ------------------------------------------------ */

static int cmd_cwd(session *s, const char *arg)
{
    if (vfs_chdir(&s->fs, arg) < 0)
        return reply_errno(s, errno);
    return reply(s, 250, "Directory successfully changed.");
}

static int cmd_cdup(session *s, const char *arg)
{
    return cmd_cwd(s, "..");
}

static int cmd_pwd(session *s, const char *arg)
{
    char q[VFS_PATH_MAX * 2];

    quote_path(vfs_cwd(&s->fs), q, sizeof(q));
    return reply(s, 257, "\"%s\" is the current directory.", q);
}

static int cmd_mkd(session *s, const char *arg)
{
    char norm[VFS_PATH_MAX], q[VFS_PATH_MAX * 2];

    if (vfs_normalize(&s->fs, arg, norm, sizeof(norm)) < 0 || vfs_mkdir(&s->fs, arg, 0755) < 0)
        return reply_errno(s, errno);
    log_msg("%s: mkdir %s", s->peer_str, norm);
    quote_path(norm, q, sizeof(q));
    return reply(s, 257, "\"%s\" created.", q);
}

static int cmd_rmd(session *s, const char *arg)
{
    if (vfs_rmdir(&s->fs, arg) < 0)
        return reply_errno(s, errno);
    log_msg("%s: rmdir %s", s->peer_str, arg);
    return reply(s, 250, "Directory removed.");
}

static int cmd_dele(session *s, const char *arg)
{
    struct stat st;

    if (vfs_lstat(&s->fs, arg, &st) < 0)
        return reply_errno(s, errno);
    if (S_ISDIR(st.st_mode))
        return reply(s, 550, "Is a directory; use RMD.");
    if (vfs_unlink(&s->fs, arg) < 0)
        return reply_errno(s, errno);
    log_msg("%s: delete %s", s->peer_str, arg);
    return reply(s, 250, "File deleted.");
}

static int cmd_rnfr(session *s, const char *arg)
{
    struct stat st;

    /* A failed RNFR leaves nothing for RNTO, even after an earlier one. */
    s->have_rnfr = false;
    if (vfs_normalize(&s->fs, arg, s->rnfr, sizeof(s->rnfr)) < 0 ||
        vfs_lstat(&s->fs, arg, &st) < 0)
        return reply_errno(s, errno);
    s->have_rnfr = true;
    return reply(s, 350, "Ready for RNTO.");
}

static int cmd_rnto(session *s, const char *arg)
{
    if (!s->have_rnfr)
        return reply(s, 503, "RNFR required first.");
    s->have_rnfr = false;
    if (vfs_rename(&s->fs, s->rnfr, arg) < 0)
        return reply_errno(s, errno);
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
        ssize_t n = read(fd, s->buf, FTPD_XFER_BUF);

        if (n < 0 && errno == EINTR)
            continue;
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

static int cmd_size(session *s, const char *arg)
{
    struct stat st;

    if (vfs_stat(&s->fs, arg, &st) < 0)
        return reply_errno(s, errno);
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

static int cmd_mdtm(session *s, const char *arg)
{
    struct stat st;
    char t[15];

    if (vfs_stat(&s->fs, arg, &st) < 0)
        return reply_errno(s, errno);
    if (!S_ISREG(st.st_mode))
        return reply(s, 550, "Not a regular file.");
    listing_format_time(st.st_mtime, t);
    return reply(s, 213, "%s", t);
}

/* HASH path (draft-bryan-ftpext-hash). The digest costs about a CPU-second
 * per GiB, so it is bounded by --hash-max-size (checked before any reading)
 * and runs in the transfer loop, where ABOR, STAT and the server's stop are
 * seen between steps. */
static int cmd_hash(session *s, const char *arg)
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
        return reply_errno(s, errno);
    fd = vfs_open(&s->fs, arg, O_RDONLY, 0);
    if (fd < 0)
        return reply_errno(s, errno);
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
                   (long long)(job.start + bytes), hex, arg);
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

static int cmd_site(session *s, const char *arg)
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
            return reply_errno(s, errno);
        return reply(s, 200, "SITE CHMOD command ok.");
    }
    return reply(s, 500, "Unknown SITE command.");
}

/* ---- transfer parameters -------------------------------------------------- */

static int cmd_type(session *s, const char *arg)
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

static int cmd_mode(session *s, const char *arg)
{
    if (strcasecmp(arg, "S") == 0)
        return reply(s, 200, "Mode set to S.");
    if (strcasecmp(arg, "B") == 0 || strcasecmp(arg, "C") == 0)
        return reply(s, 504, "Only stream mode is supported.");
    return reply(s, 501, "Unrecognised MODE.");
}

static int cmd_stru(session *s, const char *arg)
{
    if (strcasecmp(arg, "F") == 0)
        return reply(s, 200, "Structure set to F.");
    if (strcasecmp(arg, "R") == 0 || strcasecmp(arg, "P") == 0)
        return reply(s, 504, "Only file structure is supported.");
    return reply(s, 501, "Unrecognised STRU.");
}

static int cmd_pasv(session *s, const char *arg)
{
    return xfer_cmd_pasv(s);
}

static int cmd_epsv(session *s, const char *arg)
{
    return xfer_cmd_epsv(s, arg);
}

static int cmd_port(session *s, const char *arg)
{
    return xfer_cmd_port(s, arg);
}

static int cmd_eprt(session *s, const char *arg)
{
    return xfer_cmd_eprt(s, arg);
}

static int cmd_rest(session *s, const char *arg)
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

static int cmd_allo(session *s, const char *arg)
{
    return reply(s, 202, "ALLO command ignored.");
}

static int cmd_abor(session *s, const char *arg)
{
    xfer_forget(s);
    return reply(s, 225, "No transfer to abort.");
}

/* ---- transfers ------------------------------------------------------------ */

static int cmd_retr(session *s, const char *arg)
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
        return reply_errno(s, errno);
    fd = vfs_open(&s->fs, arg, O_RDONLY, 0);
    if (fd < 0)
        return reply_errno(s, errno);
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

static int store(session *s, const char *arg, enum store_kind kind)
{
    char norm[VFS_PATH_MAX], tmp[VFS_PATH_MAX], opening[VFS_PATH_MAX + 64];
    char done_text[VFS_PATH_MAX + 64];
    struct stat st;
    off_t rest = s->rest, bytes = 0;
    time_t start = time(NULL);
    bool exists = false, use_temp = false, created = false;
    xfer_result res;
    int fd = -1, err = 0, rc;
    xfer_job job;

    s->rest = 0;
    if (kind == STORE_STOU) {
        fd = vfs_create_unique(&s->fs, vfs_cwd(&s->fs), norm, sizeof(norm));
        if (fd < 0)
            return reply_errno(s, errno);
        created = true;
        snprintf(opening, sizeof(opening), "FILE: %s", base_name(norm));
        snprintf(done_text, sizeof(done_text), "Transfer complete (unique file name: %s).",
                 base_name(norm));
        goto run;
    }
    snprintf(done_text, sizeof(done_text), "Transfer complete.");
    if (vfs_normalize(&s->fs, arg, norm, sizeof(norm)) < 0)
        return reply_errno(s, errno);
    exists = vfs_stat(&s->fs, arg, &st) == 0;
    if (exists && S_ISDIR(st.st_mode))
        return reply(s, 550, "Is a directory.");
    if (exists && !S_ISREG(st.st_mode))
        return reply(s, 550, "Not a regular file.");
    /* A writer that may not modify adds new files only: no overwrite, and
     * no resume into a file that is already there. */
    if (!s->can_modify && (exists || rest > 0))
        return reply(s, 550, "Permission denied: uploads may not replace existing files.");
    if (kind == STORE_APPE) {
        fd = vfs_open(&s->fs, arg, O_WRONLY | O_CREAT | O_APPEND, 0644);
        created = !exists;
    } else if (rest > 0) {
        /* Resume: write into the existing file at the offset. */
        if (!exists || rest > st.st_size)
            return reply(s, 554, "Invalid REST parameter.");
        fd = vfs_open(&s->fs, arg, O_WRONLY, 0);
        if (fd >= 0 && lseek(fd, rest, SEEK_SET) < 0) {
            err = errno;
            close(fd);
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
            fd = vfs_open_temp(&s->fs, arg, tmp, sizeof(tmp));
            use_temp = true;
            created = false;
        }
    }
    if (fd < 0)
        return reply_errno(s, errno);
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
    /* The file system refused the data (full, quota): an append gives back
     * what it added, so the file is as it was before. */
    if (res == XFER_FILE_FAILED && kind == STORE_APPE && exists && ftruncate(fd, st.st_size) < 0)
        log_msg("%s: cannot undo the append to %s: %s", s->peer_str, norm, strerror(errno));
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
        /* Nothing arrived, or the file system refused the data: leave no
         * empty or truncated file behind (a broken connection keeps the
         * part that arrived, for REST + STOR or APPE to resume). */
        vfs_unlink(&s->fs, norm);
    }
    if (res != XFER_NO_CONN) {
        xferlog(s, start, norm, bytes, 'i', res == XFER_DONE);
        if (res == XFER_DONE)
            s->files_in++;
    }
    rc = finish_reply(s, res, err, done_text);
    return rc;
}

static int cmd_stor(session *s, const char *arg)
{
    return store(s, arg, STORE_STOR);
}

static int cmd_appe(session *s, const char *arg)
{
    return store(s, arg, STORE_APPE);
}

static int cmd_stou(session *s, const char *arg)
{
    return store(s, arg, STORE_STOU);
}

/* A listing as the transfer loop's byte source. */
static ssize_t listing_source(void *ctx, void *buf, size_t cap)
{
    return listing_read(ctx, buf, cap);
}

/* Logs, once per listing, that memory was short and the entries go out
 * unsorted. */
static void log_unsorted(session *s, const listing *l, const char *norm)
{
    const char *why = listing_unsorted(l);

    if (why != NULL)
        log_msg("%s: listing %s in directory order: %s", s->peer_str, norm, why);
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

    init_opts(s, &o);
    path = kind == LISTING_MLSD ? (arg != NULL && *arg != '\0' ? arg : NULL) : list_args(arg, &o);
    if (kind == LISTING_MLSD)
        o.show_hidden = true;
    if (vfs_normalize(&s->fs, path, norm, sizeof(norm)) < 0)
        return reply_errno(s, errno);
    /* A named path must resolve inside the root, symlinks followed: a link
     * that leads out is refused rather than shown as a link. */
    if (path != NULL && vfs_stat(&s->fs, path, &st) < 0)
        return reply_errno(s, errno);
    /* Opened before the data connection, so a bad path is refused first. */
    l = listing_open(&s->fs, path, kind, &o);
    if (l == NULL) {
        err = errno;
        if (kind == LISTING_MLSD && err == ENOTDIR)
            return reply(s, 501, "Not a directory.");
        return reply_errno(s, err);
    }
    log_unsorted(s, l, norm);
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

static int cmd_list(session *s, const char *arg)
{
    return send_listing(s, arg, LISTING_LIST);
}

static int cmd_nlst(session *s, const char *arg)
{
    return send_listing(s, arg, LISTING_NLST);
}

static int cmd_mlsd(session *s, const char *arg)
{
    return send_listing(s, arg, LISTING_MLSD);
}

static int cmd_mlst(session *s, const char *arg)
{
    listing_opts o;
    char facts[LISTING_LINE_MAX];
    struct stat st;

    init_opts(s, &o);
    if (vfs_stat(&s->fs, arg, &st) < 0 || listing_mlst(&s->fs, arg, &o, facts, sizeof(facts)) < 0)
        return reply_errno(s, errno);
    if (reply_begin(s, 250, "Listing %s", arg != NULL && *arg != '\0' ? arg : vfs_cwd(&s->fs)) <
            0 ||
        reply_line(s, "%s", facts) < 0)
        return -1;
    return reply(s, 250, "End.");
}

/* ---- information ---------------------------------------------------------- */

static int stat_server(session *s)
{
    if (reply_begin(s, 211, FTPD_NAME " " FTPD_VERSION " status:") < 0 ||
        reply_line(s, "Connected to %s", s->peer_host) < 0 ||
        reply_line(s, "Logged in as %s%s", s->user, s->anonymous ? " (anonymous)" : "") < 0 ||
        reply_line(s, "TYPE: %s, STRUcture: File, MODE: Stream",
                   s->type == 'A' ? "ASCII" : "BINARY") < 0 ||
        reply_line(s, "%s", s->dmode == DATA_PASV   ? "Passive data connection waiting"
                            : s->dmode == DATA_PORT ? "Active data connection prepared"
                                                    : "No data connection") < 0 ||
        reply_line(s, "%u files, %llu bytes uploaded; %u files, %llu bytes downloaded",
                   s->files_in, s->bytes_in, s->files_out, s->bytes_out) < 0)
        return -1;
    return reply(s, 211, "End of status.");
}

static int cmd_stat(session *s, const char *arg)
{
    listing_opts o;
    listing *l;
    const char *path, *line;
    char norm[VFS_PATH_MAX];
    struct stat st;
    ssize_t n;
    int rc;

    if (arg == NULL || *arg == '\0')
        return stat_server(s);
    init_opts(s, &o);
    path = list_args(arg, &o);
    if (vfs_normalize(&s->fs, path, norm, sizeof(norm)) < 0)
        return reply_errno(s, errno);
    if (path != NULL && vfs_stat(&s->fs, path, &st) < 0)
        return reply_errno(s, errno);
    l = listing_open(&s->fs, path, LISTING_LIST, &o);
    if (l == NULL)
        return reply_errno(s, errno);
    log_unsorted(s, l, norm);
    rc = reply_begin(s, 213, "Status of %s:", path != NULL ? path : vfs_cwd(&s->fs));
    /* One reply line per listing line, as they are formatted: bounded by
     * the listing, each turn takes one line. */
    n = 0;
    while (rc == 0) {
        n = listing_next(l, &line);
        if (n <= 0)
            break;
        rc = reply_line(s, "%.*s", (int)n - 2, line); /* without its CRLF */
    }
    if (n < 0) {
        int err = errno;

        listing_close(l);
        /* A multi-line reply ends with its own code; the text says why
         * the listing stopped short. */
        log_msg("%s: STAT %s: %s", s->peer_str, norm, strerror(err));
        return reply(s, 213, "End of status (listing incomplete: %s).", strerror(err));
    }
    listing_close(l);
    if (rc < 0)
        return -1;
    return reply(s, 213, "End of status.");
}

static int cmd_syst(session *s, const char *arg)
{
    return reply(s, 215, "UNIX Type: L8");
}

static int cmd_noop(session *s, const char *arg)
{
    return reply(s, 200, "NOOP ok.");
}

static int cmd_feat(session *s, const char *arg)
{
    char hashes[64], mlst_feat[80];
    size_t n = 0;

    mlst_feat[0] = '\0';
    for (size_t i = 0; i < MLST_FACT_COUNT; i++) {
        size_t len = strlen(mlst_feat);
        snprintf(mlst_feat + len, sizeof(mlst_feat) - len, "%s%s;", mlst_fact_names[i],
                 (s->mlst_facts & (1u << i)) ? "*" : "");
    }
    hashes[0] = '\0';
    for (size_t i = 0; hash_algorithms[i] != NULL; i++) {
        int k = snprintf(hashes + n, sizeof(hashes) - n, "%s%s%s", i > 0 ? ";" : "",
                         hash_algorithms[i],
                         strcmp(hash_algorithms[i], s->hash_algo) == 0 ? "*" : "");
        if (k < 0 || (size_t)k >= sizeof(hashes) - n)
            break;
        n += (size_t)k;
    }
    /* HASH is listed only when --hash-max-size lets it run. */
    if (reply_begin(s, 211, "Features:") < 0 || reply_line(s, "EPRT") < 0 ||
        reply_line(s, "EPSV") < 0 ||
        (s->cfg->hash_max_size > 0 && reply_line(s, "HASH %s", hashes) < 0) ||
        reply_line(s, "MDTM") < 0 ||
        reply_line(s, "MLST %s", mlst_feat) < 0 ||
        reply_line(s, "REST STREAM") < 0 ||
        reply_line(s, "SIZE") < 0 || reply_line(s, "TVFS") < 0 || reply_line(s, "UTF8") < 0)
        return -1;
    return reply(s, 211, "End");
}

static int cmd_opts(session *s, const char *arg)
{
    char word[16];
    size_t n = strcspn(arg, " ");
    const char *val = arg + n;

    while (*val == ' ')
        val++;
    if (n >= sizeof(word))
        return reply(s, 501, "Option not understood.");
    memcpy(word, arg, n);
    word[n] = '\0';
    if (strcasecmp(word, "UTF8") == 0) {
        if (strcasecmp(val, "ON") == 0 || *val == '\0')
            return reply(s, 200, "Always in UTF8 mode.");
        return reply(s, 504, "UTF8 cannot be turned off.");
    }
    if (strcasecmp(word, "MLST") == 0)
        return opts_mlst(s, val);
    if (strcasecmp(word, "HASH") == 0 && s->cfg->hash_max_size != 0) {
        const char *algo;

        if (*val == '\0')
            return reply(s, 200, "%s", s->hash_algo);
        algo = hash_lookup(val);
        if (algo == NULL)
            return reply(s, 501, "Unknown algorithm.");
        s->hash_algo = algo;
        return reply(s, 200, "%s", algo);
    }
    return reply(s, 501, "Option not understood.");
}

static int cmd_help(session *s, const char *arg);

/* ---- the table ------------------------------------------------------------ */

static const command command_table[] = {
    {"USER", login_cmd_user, F_PRE | F_ARG | F_TRIM, "USER name"},
    {"PASS", login_cmd_pass, F_PRE, "PASS password"},
    {"ACCT", cmd_acct, 0, "ACCT account"},
    {"QUIT", cmd_quit, F_PRE, "QUIT"},
    {"REIN", cmd_rein, F_PRE, "REIN"},
    {"AUTH", cmd_auth, F_PRE, "AUTH (not supported)"},
    {"CLNT", cmd_clnt, F_PRE, "CLNT client-name"},
    {"CWD", cmd_cwd, F_ARG, "CWD path"},
    {"XCWD", cmd_cwd, F_ARG, "XCWD path"},
    {"CDUP", cmd_cdup, 0, "CDUP"},
    {"XCUP", cmd_cdup, 0, "XCUP"},
    {"PWD", cmd_pwd, 0, "PWD"},
    {"XPWD", cmd_pwd, 0, "XPWD"},
    {"MKD", cmd_mkd, F_ARG | F_WRITE, "MKD path"},
    {"XMKD", cmd_mkd, F_ARG | F_WRITE, "XMKD path"},
    {"RMD", cmd_rmd, F_ARG | F_MODIFY, "RMD path"},
    {"XRMD", cmd_rmd, F_ARG | F_MODIFY, "XRMD path"},
    {"DELE", cmd_dele, F_ARG | F_MODIFY, "DELE path"},
    {"RNFR", cmd_rnfr, F_ARG | F_MODIFY, "RNFR path"},
    {"RNTO", cmd_rnto, F_ARG | F_MODIFY, "RNTO path"},
    {"TYPE", cmd_type, F_ARG | F_KEEPREST | F_TRIM, "TYPE A|I|L 8"},
    {"MODE", cmd_mode, F_ARG | F_KEEPREST | F_TRIM, "MODE S"},
    {"STRU", cmd_stru, F_ARG | F_KEEPREST | F_TRIM, "STRU F"},
    {"PORT", cmd_port, F_ARG | F_KEEPREST | F_TRIM, "PORT h1,h2,h3,h4,p1,p2"},
    {"PASV", cmd_pasv, F_KEEPREST, "PASV"},
    {"EPRT", cmd_eprt, F_ARG | F_KEEPREST | F_TRIM, "EPRT |af|addr|port|"},
    {"EPSV", cmd_epsv, F_KEEPREST | F_TRIM, "EPSV [1|2|ALL]"},
    {"RETR", cmd_retr, F_ARG, "RETR path"},
    {"STOR", cmd_stor, F_ARG | F_WRITE, "STOR path"},
    {"STOU", cmd_stou, F_WRITE, "STOU"},
    {"APPE", cmd_appe, F_ARG | F_WRITE | F_MODIFY, "APPE path"},
    {"REST", cmd_rest, F_ARG | F_KEEPREST | F_TRIM, "REST offset"},
    {"ABOR", cmd_abor, F_PRE, "ABOR"},
    {"ALLO", cmd_allo, F_TRIM, "ALLO size"},
    {"LIST", cmd_list, 0, "LIST [-a] [path]"},
    {"NLST", cmd_nlst, 0, "NLST [-a] [path]"},
    {"MLSD", cmd_mlsd, 0, "MLSD [path]"},
    {"MLST", cmd_mlst, 0, "MLST [path]"},
    {"SIZE", cmd_size, F_ARG, "SIZE path"},
    {"MDTM", cmd_mdtm, F_ARG, "MDTM path"},
    {"HASH", cmd_hash, 0, "HASH path"},
    {"SITE", cmd_site, F_ARG, "SITE CHMOD mode path | SITE HELP"},
    {"SYST", cmd_syst, F_PRE, "SYST"},
    {"STAT", cmd_stat, 0, "STAT [path]"},
    {"HELP", cmd_help, F_PRE | F_TRIM, "HELP [command]"},
    {"NOOP", cmd_noop, F_PRE, "NOOP"},
    {"FEAT", cmd_feat, F_PRE, "FEAT"},
    {"OPTS", cmd_opts, F_PRE | F_ARG | F_TRIM, "OPTS UTF8 ON | OPTS HASH [algorithm] | OPTS MLST"},
};
#define COMMAND_COUNT (sizeof(command_table) / sizeof(command_table[0]))

static const command *find_command(const char *verb)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        if (strcmp(command_table[i].name, verb) == 0)
            return &command_table[i];
    return NULL;
}

static int cmd_help(session *s, const char *arg)
{
    char row[80];
    size_t n = 0;

    if (arg != NULL && *arg != '\0') {
        char verb[FTPD_VERB_MAX + 1];
        size_t len = strlen(arg);
        const command *c;

        if (len > FTPD_VERB_MAX)
            return reply(s, 502, "Unknown command.");
        for (size_t i = 0; i <= len; i++)
            verb[i] = (char)toupper((unsigned char)arg[i]);
        c = find_command(verb);
        if (c == NULL)
            return reply(s, 502, "Unknown command %s.", verb);
        return reply(s, 214, "Syntax: %s", c->help);
    }
    if (reply_begin(s, 214, "The following commands are recognized:") < 0)
        return -1;
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        int k = snprintf(row + n, sizeof(row) - n, "%-5s", command_table[i].name);
        n += k > 0 ? (size_t)k : 0;
        if ((i + 1) % 12 == 0 || i + 1 == COMMAND_COUNT) {
            if (reply_line(s, "%s", row) < 0)
                return -1;
            n = 0;
        } else if (n + 1 < sizeof(row)) {
            row[n++] = ' ';
            row[n] = '\0';
        }
    }
    return reply(s, 214, "Help OK.");
}

/* Verb in upper case into verb; *arg points after the first space (or is
 * NULL). Returns -1 for an empty or over-long verb. */
static int split(const char *line, char verb[FTPD_VERB_MAX + 1], const char **arg)
{
    /* RFC 959 separates with one space; some clients send a tab. */
    size_t n = strcspn(line, " \t");

    if (n == 0 || n > FTPD_VERB_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        verb[i] = (char)toupper((unsigned char)line[i]);
    verb[n] = '\0';
    *arg = line[n] != '\0' ? line + n + 1 : NULL;
    return 0;
}

int commands_dispatch(session *s, const char *line)
{
    char verb[FTPD_VERB_MAX + 1];
    const char *arg = NULL;
    const command *c;
    bool was_rnfr = s->have_rnfr;
    off_t was_rest = s->rest;
    char trimmed[TRIM_ARG_MAX];
    int rc;

    if (split(line, verb, &arg) < 0)
        return reply(s, 500, "Syntax error, command unrecognized.");
    c = find_command(verb);
    if (c == NULL)
        return reply(s, 500, "Unknown command.");
    if (!(c->flags & F_PRE) && !s->logged_in)
        return reply(s, 530, "Please login with USER and PASS.");
    if ((c->flags & F_TRIM) && arg != NULL) {
        size_t n = strlen(arg);

        while (n > 0 && (arg[n - 1] == ' ' || arg[n - 1] == '\t'))
            n--;
        if (n < sizeof(trimmed)) {
            memcpy(trimmed, arg, n);
            trimmed[n] = '\0';
            arg = trimmed;
        }
    }
    if ((c->flags & F_ARG) && (arg == NULL || *arg == '\0'))
        return reply(s, 501, "%s needs an argument.", c->name);
    if ((c->flags & F_WRITE) && !s->can_write)
        return reply(s, 550, "Permission denied.");
    if ((c->flags & F_MODIFY) && !s->can_modify)
        return reply(s, 550, "Permission denied.");
    rc = c->fn(s, arg);
    /* RNTO must follow RNFR at once (RFC 959). */
    if (was_rnfr && c->fn != cmd_rnto && c->fn != cmd_rnfr)
        s->have_rnfr = false;
    /* REST holds for the transfer command that follows it at once; PASV,
     * PORT and TYPE may come between (clients send them in any order). */
    if (was_rest != 0 && !(c->flags & F_KEEPREST))
        s->rest = 0;
    return rc;
}

int commands_during_transfer(session *s, const char *line)
{
    char verb[FTPD_VERB_MAX + 1];
    const char *arg = NULL;

    if (split(line, verb, &arg) == 0) {
        if (strcmp(verb, "ABOR") == 0)
            return XCMD_ABORT;
        if (strcmp(verb, "NOOP") == 0) {
            reply(s, 200, "NOOP ok.");
            return XCMD_CONTINUE;
        }
        if (strcmp(verb, "STAT") == 0 && (arg == NULL || *arg == '\0')) {
            if (s->xfer.direction == 'h')
                reply(s, 213, "Status: hashing %s, %lld of %lld bytes.", s->xfer.path,
                      (long long)s->xfer.done, (long long)s->xfer.total);
            else if (s->xfer.total >= 0)
                reply(s, 213, "Status: %s %s, %lld of %lld bytes transferred.",
                      s->xfer.direction == 'o' ? "sending" : "receiving", s->xfer.path,
                      (long long)s->xfer.done, (long long)s->xfer.total);
            else
                reply(s, 213, "Status: %s %s, %lld bytes transferred.",
                      s->xfer.direction == 'o' ? "sending" : "receiving", s->xfer.path,
                      (long long)s->xfer.done);
            return XCMD_CONTINUE;
        }
    }
    /* Anything else waits until the transfer's final reply has gone out. */
    memcpy(s->pending, line, strlen(line) + 1);
    s->have_pending = true;
    return XCMD_DEFER;
}
