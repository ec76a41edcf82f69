/*
 * log.c - session log and xferlog.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "defs.h"
#include "secfile.h"
#include "sysio.h"

#define LOG_LINE_MAX 2048
/* Mode of a log file the server creates. */
#define LOG_MODE 0640

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_fd = STDERR_FILENO;
static int xfer_fd = -1;
static char log_path_buf[PATH_MAX];
static char xfer_path_buf[PATH_MAX];
/* Set by the SIGHUP handler, taken by a writer: a lock-free atomic is safe
 * in a signal handler and free of data races between threads. */
static atomic_int reopen_wanted;
/* --syslog: session log lines go to syslog(3). Set once at start. */
static bool use_syslog;

void log_use_syslog(int facility)
{
    openlog(FTPD_NAME, LOG_PID | LOG_NDELAY, facility);
    use_syslog = true;
}

int log_open(const char *log_path, const char *xferlog_path, const char **which, char *why,
             size_t size)
{
    int fd;

    if (log_path != NULL && *log_path != '\0') {
        fd = secfile_open_append(log_path, LOG_MODE, why, size);
        if (fd < 0) {
            *which = log_path;
            return -1;
        }
        log_fd = fd;
        snprintf(log_path_buf, sizeof(log_path_buf), "%s", log_path);
    }
    if (xferlog_path != NULL && *xferlog_path != '\0') {
        fd = secfile_open_append(xferlog_path, LOG_MODE, why, size);
        if (fd < 0) {
            *which = xferlog_path;
            return -1;
        }
        xfer_fd = fd;
        snprintf(xfer_path_buf, sizeof(xfer_path_buf), "%s", xferlog_path);
    }
    return 0;
}

int log_hand_over(uid_t uid, gid_t gid, const char **which)
{
    int rc = 0, err = 0;

    /* By descriptor: the file root opened is the one given away, whatever
     * its name means by now. */
    if (log_fd != STDERR_FILENO && log_fd >= 0 && fchown(log_fd, uid, gid) < 0) {
        err = errno;
        *which = log_path_buf;
        rc = -1;
    }
    if (xfer_fd >= 0 && fchown(xfer_fd, uid, gid) < 0 && rc == 0) {
        err = errno;
        *which = xfer_path_buf;
        rc = -1;
    }
    if (rc < 0)
        errno = err;
    return rc;
}

void log_close(void)
{
    pthread_mutex_lock(&log_lock);
    if (log_fd != STDERR_FILENO && log_fd >= 0)
        close(log_fd);
    if (xfer_fd >= 0)
        close(xfer_fd);
    log_fd = STDERR_FILENO;
    xfer_fd = -1;
    if (use_syslog)
        closelog();
    pthread_mutex_unlock(&log_lock);
}

void log_request_reopen(void)
{
    atomic_store(&reopen_wanted, 1);
}

/* A session log line from inside the lock (log_msg would take it again). */
static void note_locked(const char *fmt, ...) SS_PRINTF(1, 2);

/* Swap in a fresh descriptor; keep the old one if the file cannot be opened,
 * so a failed rotation loses no lines. After --run-as this runs as that
 * user, which can create a file only where it may write: in a directory
 * closed to it, the rotation must leave a file behind for it to open. */
static void reopen_one(int *fdp, const char *path)
{
    char why[256];
    int fd;

    if (path[0] == '\0' || *fdp < 0)
        return;
    fd = secfile_open_append(path, LOG_MODE, why, sizeof(why));
    if (fd < 0) {
        note_locked("log: cannot reopen %s: %s; still writing to the old file", path, why);
        return;
    }
    close(*fdp);
    *fdp = fd;
}

static void maybe_reopen(void)
{
    if (atomic_exchange(&reopen_wanted, 0) == 0)
        return;
    reopen_one(&log_fd, log_path_buf);
    reopen_one(&xfer_fd, xfer_path_buf);
}

static void scrub(char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            s[i] = '?';
}

/* One session log line into line (LOG_LINE_MAX bytes); returns its length,
 * newline included. With --syslog only the message (syslog adds the time
 * and the pid). */
static size_t format_line(char *line, const char *fmt, va_list ap) SS_PRINTF(2, 0);
static size_t format_line(char *line, const char *fmt, va_list ap)
{
    struct tm tm;
    time_t now = time(NULL);
    size_t n;
    int k;

    n = 0;
    if (!use_syslog) {
        gmtime_r(&now, &tm);
        n = strftime(line, LOG_LINE_MAX, "%Y-%m-%d %H:%M:%S ", &tm);
        k = snprintf(line + n, LOG_LINE_MAX - n, "[%ld] ", (long)getpid());
        if (k > 0)
            n += (size_t)k;
    }
    k = vsnprintf(line + n, LOG_LINE_MAX - n - 1, fmt, ap);
    if (k > 0) {
        size_t m = (size_t)k < LOG_LINE_MAX - n - 1 ? (size_t)k : LOG_LINE_MAX - n - 2;
        scrub(line + n, m);
        n += m;
    }
    line[n++] = '\n';
    return n;
}

/* Write one formatted line where the session log goes. */
static void emit(char *line, size_t n)
{
    if (use_syslog) {
        line[n - 1] = '\0'; /* the newline */
        syslog(LOG_INFO, "%s", line);
        return;
    }
    (void)sysio_write_all(log_fd, line, n); /* a log has nowhere to report its own failure */
}

static void note_locked(const char *fmt, ...)
{
    char line[LOG_LINE_MAX];
    size_t n;
    va_list ap;

    va_start(ap, fmt);
    n = format_line(line, fmt, ap);
    va_end(ap);
    emit(line, n);
}

void log_msg(const char *fmt, ...)
{
    char line[LOG_LINE_MAX];
    size_t n;
    va_list ap;

    va_start(ap, fmt);
    n = format_line(line, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_lock);
    maybe_reopen();
    emit(line, n);
    pthread_mutex_unlock(&log_lock);
}

/* xferlog fields are separated by spaces, so spaces and control characters
 * in names become '_' (as other servers writing this format do). */
static void field(char *out, size_t size, const char *in)
{
    size_t i = 0;

    for (; in[i] != '\0' && i + 1 < size; i++) {
        unsigned char ch = (unsigned char)in[i];
        out[i] = (ch <= ' ' || ch == 0x7f) ? '_' : (char)ch;
    }
    out[i] = '\0';
    if (i == 0 && size > 1) {
        out[0] = '-';
        out[1] = '\0';
    }
}

void log_quote(const char *in, char *out, size_t size)
{
    size_t o = 0;

    if (size < 3) {
        if (size > 0)
            out[0] = '\0';
        return;
    }
    out[o++] = '"';
    for (; *in != '\0' && o + 3 < size; in++) {
        if (*in == '"' || *in == '\\')
            out[o++] = '\\';
        out[o++] = *in;
    }
    out[o++] = '"';
    out[o] = '\0';
}

void log_xfer(const log_xfer_info *x)
{
    char line[LOG_LINE_MAX];
    char when[32], path[PATH_MAX], user[128];
    struct tm tm;
    time_t now = time(NULL);
    long secs = (long)(now - x->start);
    int k;

    char who[2 * 128 + 32];
    char quoted[2 * 128 + 3];

    /* An anonymous password is whatever the client typed: never let it pass
     * for a user name. */
    if (x->anonymous) {
        log_quote(x->user, quoted, sizeof(quoted));
        snprintf(who, sizeof(who), "anonymous (password %s)", quoted);
    } else {
        snprintf(who, sizeof(who), "user %s", x->user);
    }
    log_msg("%s: %s %s %s, %lld bytes, %s, %s", x->host, who,
            x->direction == 'o' ? "download" : "upload", x->path, (long long)x->bytes,
            x->ascii ? "ascii" : "binary", x->complete ? "complete" : "incomplete");
    localtime_r(&now, &tm);
    strftime(when, sizeof(when), "%a %b %e %H:%M:%S %Y", &tm);
    field(path, sizeof(path), x->path);
    field(user, sizeof(user), x->user);
    /* wu-ftpd xferlog: time, seconds, host, bytes, file, type, action flag,
     * direction, access mode, user, service, auth method, auth user id,
     * completion status. */
    k = snprintf(line, sizeof(line), "%s %ld %s %lld %s %c _ %c %c %s ftp 0 * %c\n", when,
                 secs < 1 ? 1L : secs, x->host, (long long)x->bytes, path, x->ascii ? 'a' : 'b',
                 x->direction, x->anonymous ? 'a' : 'r', user, x->complete ? 'c' : 'i');
    if (k <= 0)
        return;
    if ((size_t)k >= sizeof(line)) {
        k = (int)sizeof(line) - 1;
        line[k - 1] = '\n';
    }
    pthread_mutex_lock(&log_lock);
    maybe_reopen();
    if (xfer_fd >= 0)
        (void)sysio_write_all(xfer_fd, line, (size_t)k);
    pthread_mutex_unlock(&log_lock);
}
