/*
 * quota.h - per-user quotas: the bytes and files a user may hold.
 *
 * A user's usage is the size and count of the regular files under the
 * user's home (symlinks, directories and other types count for nothing).
 * It is counted by walking the home when first needed and again when older
 * than --quota-rescan, and kept meanwhile in shared memory keyed by user
 * name, under a robust process-shared mutex per user, so threads and forked
 * session processes see and change the same count: uploads charge it
 * before each write, DELE and RNTO over a file give back what the removed
 * file held. An upload never takes the count past the quota: the write
 * that would is refused (EDQUOT) and the transfer ends there.
 *
 * Only users with quota-bytes= or quota-files= in the users file have a
 * quota; for everyone else every call here does nothing.
 */
#ifndef FTPD_QUOTA_H
#define FTPD_QUOTA_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "config.h"

typedef struct session session;

/* A session's quota state for the upload that runs (see session.h). */
typedef struct quota_session {
    bool active;     /* the user has a quota and an upload began */
    bool file_taken; /* the upload took one file from the quota */
    long long free;  /* bytes the upload may still write without growing usage */
    long long taken; /* bytes charged to the usage so far */
    int slot;        /* 1 + index of the user's shared entry; 0 = not looked up */
} quota_session;

/* Users with a quota whose usage is kept at once. */
#define QUOTA_SLOTS 1024
/* A walk of a home stops after this many entries or this many seconds;
 * the usage is then unknown and uploads are refused. */
#define QUOTA_WALK_ENTRIES 1000000
#define QUOTA_WALK_SECONDS 10
/* Deepest directory nesting a walk follows. */
#define QUOTA_WALK_DEPTH 64

/* Make the shared table (before the server starts sessions); rescan is
 * --quota-rescan in seconds (0 = walk a home only when first needed).
 * Returns 0, or -1 with errno. */
int quota_init(unsigned rescan);

/* Does the session's user have a quota? */
bool quota_applies(const session *s);

/* Before an upload: new_file when it creates a file, free_bytes how much it
 * may write without growing usage (the part of an existing file it replaces
 * or overwrites in place). Returns 0, or -1 with errno EDQUOT (the files
 * quota is used up, or the bytes quota already is) or EIO (the usage cannot
 * be counted). */
int quota_begin(session *s, bool new_file, off_t free_bytes);

/* Before n more bytes of the upload are written: 0, or -1 with errno
 * EDQUOT when they would take the usage past the quota (nothing charged). */
int quota_take(session *s, size_t n);

/* After the upload, when its effect on the file system is final: delta is
 * the change in bytes it made (the new size of the file less its size
 * before, 0 when it was undone), file_kept whether a file it created is
 * still there. Settles the charge with the truth. */
void quota_end(session *s, long long delta, bool file_kept);

/* A regular file described by st left the user's home (DELE, a rename over
 * it): give back its bytes and the file. */
void quota_removed(session *s, const struct stat *st);

/* Walk the directory dir_fd (not closed) and add the size and count of the
 * regular files beneath it; exposed for tests. Returns 0, or -1 with errno
 * (E2BIG: over QUOTA_WALK_ENTRIES, ETIMEDOUT: over QUOTA_WALK_SECONDS,
 * ELOOP: deeper than QUOTA_WALK_DEPTH). */
int quota_walk(int dir_fd, long long *bytes, long long *files);

#endif
