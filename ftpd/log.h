/*
 * log.h - the session log and the xferlog transfer log.
 *
 * Each log line is written with one write(2) to a file opened O_APPEND, so
 * lines from threads and forked session processes never interleave. The
 * session log goes to standard error unless a file is given, or to syslog(3)
 * with --syslog (log_use_syslog).
 */
#ifndef FTPD_LOG_H
#define FTPD_LOG_H

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include <sockserv.h>

/* Open the logs (either path may be NULL or "": session log on stderr, no
 * xferlog), creating them with mode 0640, through secfile_open_append: a
 * symbolic link in the last component or a file that is not regular is
 * refused. Whether the paths are safe to open as root is the caller's
 * question (secfile_check). Returns 0, or -1 with errno; *which names the
 * failing file and why says what is wrong with it. */
int log_open(const char *log_path, const char *xferlog_path, const char **which, char *why,
             size_t size);

/* --syslog: the session log goes to syslog(3) with this facility (a LOG_*
 * value) from now on, as "sockserv-ftpd[pid]: message" at LOG_INFO; the
 * xferlog stays a file. Connects to the log socket at once (LOG_NDELAY), so
 * call it before anything chroots: a session process keeps the connection.
 * Lines are scrubbed of control characters as in the file. */
void log_use_syslog(int facility);

/* Give the open log files to uid:gid (--run-as), by descriptor, never by
 * name, so the user can reopen them after a rotation. Returns 0, or -1 with
 * errno and *which naming the file that could not be given away. */
int log_hand_over(uid_t uid, gid_t gid, const char **which);

void log_close(void);

/* Async-signal-safe: ask for the log files to be reopened (SIGHUP); done by
 * the next thread that writes a line. The reopen does not follow a symbolic
 * link either; when it fails, the old descriptor stays in use and the
 * session log says why. */
void log_request_reopen(void);

/* One session log line: "2026-11-25 18:44:03 [pid] " + the message. Control
 * characters in the message are replaced, so a line stays one line. */
void log_msg(const char *fmt, ...) SS_PRINTF(1, 2);

/* Client text as a log field: in double quotes, '"' and '\' escaped with
 * '\' (cut to fit size). */
void log_quote(const char *in, char *out, size_t size);

/* One transfer, for both logs. */
typedef struct log_xfer_info {
    time_t start;     /* when the transfer began */
    const char *host; /* client address, without port */
    off_t bytes;      /* bytes moved */
    const char *path; /* virtual path of the file */
    bool ascii;       /* TYPE A */
    char direction;   /* 'o' download, 'i' upload */
    bool anonymous;
    const char *user; /* login name (anonymous: the password given,
                         logged as such) */
    bool complete;
} log_xfer_info;

void log_xfer(const log_xfer_info *x);

#endif
