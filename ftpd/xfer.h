/*
 * xfer.h - the transfer loop, which serves ABOR and STAT from the control
 * connection while data moves, and the HASH digest that runs in it.
 */
#ifndef FTPD_XFER_H
#define FTPD_XFER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "session.h"

/* A byte source for a download that is no file (a listing): fills buf with
 * up to cap bytes. Returns the count, 0 at the end, -1 with errno. */
typedef ssize_t (*xfer_source)(void *ctx, void *buf, size_t cap);

typedef struct xfer_job {
    char direction;      /* 'o': source -> client, 'i': client -> file */
    int file_fd;         /* file to read or write; -1 with a source */
    xfer_source source;  /* or send what this produces (listings), */
    void *source_ctx;    /* pulled as the data connection takes it */
    bool ascii;          /* convert line ends (not for a source) */
    off_t total;         /* for STAT; -1 unknown */
    const char *path;    /* virtual path, for STAT */
    const char *opening; /* text of the 150 reply */
} xfer_job;

typedef enum xfer_result {
    XFER_DONE = 0,    /* all bytes moved */
    XFER_NO_CONN,     /* no data connection: 425 already sent */
    XFER_ABORTED,     /* ABOR arrived */
    XFER_DATA_FAILED, /* the data connection broke */
    XFER_FILE_FAILED, /* reading or writing the file failed (errno kept) */
    XFER_TIMEOUT,     /* no progress within the data timeout */
    XFER_SHUTDOWN,    /* the server's stop ended it (a transfer: at the grace's end) */
    XFER_CTRL_LOST    /* the control connection closed */
} xfer_result;

/* What HASH digests; the caller has opened the file and checked the size
 * against --hash-max-size. */
typedef struct xfer_digest_job {
    int file_fd;      /* regular file, read with pread */
    const char *algo; /* a name hash_lookup knows */
    off_t start, end; /* bytes [start, end) */
    const char *path; /* virtual path, for STAT */
} xfer_digest_job;

/* Digest the job's bytes into hex (NUL-terminated, size bytes of room), in
 * steps of FTPD_HASH_STEP with the control connection served between them
 * as during a transfer: ABOR stops the digest (XFER_ABORTED), STAT reports
 * its progress, NOOP is answered, other commands wait for the final reply;
 * a client that hangs up ends it (XFER_CTRL_LOST, s->quit set), even while
 * a command waits. The server's stop ends it at once (XFER_SHUTDOWN): a
 * digest has no data connection to drain. Sends no reply. Returns XFER_DONE
 * with *bytes the count digested (less than asked if the file shrank), or
 * XFER_FILE_FAILED with *err an errno. */
xfer_result xfer_digest(session *s, const xfer_digest_job *job, char *hex, size_t size,
                        off_t *bytes, int *err);

/* Open the data connection, send 150, move the data, close the data
 * connection. Does not send the final reply (the caller knows what it must
 * do first, e.g. commit an upload). *bytes receives the count moved;
 * *err an errno for XFER_FILE_FAILED. */
xfer_result xfer_run(session *s, const xfer_job *job, off_t *bytes, int *err);

#endif
