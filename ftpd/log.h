/*
 * log.h - the session log and the xferlog transfer log.
 *
 * Each log line is written with one write(2) to a file opened O_APPEND, so
 * lines from threads and forked session processes never interleave. The
 * session log goes to standard error unless a file is given.
 */
#ifndef FTPD_LOG_H
#define FTPD_LOG_H

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include <sockserv.h>

/* Open the logs (either path may be NULL or "": session log on stderr, no
 * xferlog). Returns 0, or -1 with errno; *which names the failing file. */
int log_open(const char *log_path, const char *xferlog_path, const char **which);
void log_close(void);

/* Async-signal-safe: ask for the log files to be reopened (SIGHUP); done by
 * the next thread that writes a line. */
void log_request_reopen(void);

/* One session log line: "2026-11-25 18:44:03 [pid] " + the message. Control
 * characters in the message are replaced, so a line stays one line. */
void log_msg(const char *fmt, ...) SS_PRINTF(1, 2);

/* Client text as a log field: in double quotes, '"' and '\' escaped with
 * '\' (cut to fit size). */
void log_quote(const char *in, char *out, size_t size);

/* One transfer, for both logs. */
typedef struct log_xfer_info {
    time_t start;             /* when the transfer began */
    const char *host;         /* client address, without port */
    off_t bytes;              /* bytes moved */
    const char *path;         /* virtual path of the file */
    bool ascii;               /* TYPE A */
    char direction;           /* 'o' download, 'i' upload */
    bool anonymous;
    const char *user;         /* login name (anonymous: the password given,
                                 logged as such) */
    bool complete;
} log_xfer_info;

void log_xfer(const log_xfer_info *x);

#endif
