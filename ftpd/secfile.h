/*
 * secfile.h - files root opens before it becomes the --run-as user.
 *
 * Started as root with --run-as USER, the server reads the config and users
 * files and opens the logs before it gives up root, and hands the logs to
 * USER. Whoever can change what such a path names - by writing to any
 * directory on the way, or through a symbolic link of their own - can steer
 * root to another file: a symbolic link planted at the log path would make
 * root give /etc/shadow to USER. secfile_check() tells whether a path is out
 * of USER's reach; the open functions never follow a symbolic link in the
 * last component and accept only regular files, with or without --run-as.
 */
#ifndef FTPD_SECFILE_H
#define FTPD_SECFILE_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

/* The user the files must be kept from. */
typedef struct secfile_user {
    char name[64];
    uid_t uid;
    gid_t *groups; /* primary and supplementary groups */
    int ngroups;
} secfile_user;

/* Look up a user and its groups. Returns 0, or -1 with errno (ENOENT: no
 * such user). Release with secfile_user_free. */
int secfile_user_init(secfile_user *u, const char *name);
void secfile_user_free(secfile_user *u);

enum secfile_use {
    /* Read by root (config file, users file): it must exist, and neither it
     * nor a directory above it may be writable by the user. */
    SECFILE_READ,
    /* A log root opens or creates and then gives to the user: its directory
     * and those above may not be writable by the user; if it exists it must
     * be a regular file of root or the user, and one of root's must have no
     * other name (a hard link). */
    SECFILE_HAND_OVER
};

/* Is path out of u's reach for that use? Walks it as the kernel resolves it
 * (symbolic links in the middle are followed, and judged too), looking at
 * the owner, mode and access ACL of every directory passed through. A
 * world- or group-writable directory with the sticky bit (/tmp) is accepted
 * in the middle of the path when the next component is not the user's, but
 * never as the file's own directory: the user could create the missing name
 * there. Returns 0 when safe; otherwise -1 with errno (EPERM for a refusal)
 * and a phrase for the error message in why, e.g. "directory /srv/log is
 * writable by nobody, who could put another file in its place". */
int secfile_check(const char *path, const secfile_user *u, enum secfile_use use, char *why,
                  size_t size);

/* Open a regular file for reading, not through a symbolic link in its last
 * component, close-on-exec. Returns the stream, or NULL with errno set
 * (ELOOP for a symbolic link, EINVAL for a file that is not regular) and a
 * phrase for the error message in why ("is a symbolic link; refusing to
 * follow it"). */
FILE *secfile_fopen(const char *path, char *why, size_t size);

/* Open or create (with mode) a regular file for appending, on the same
 * terms. Returns the descriptor, or -1 with errno and why as above. */
int secfile_open_append(const char *path, mode_t mode, char *why, size_t size);

#endif
