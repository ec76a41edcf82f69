/*
 * auth.h - user accounts (the users file) and password checks.
 *
 * Users file lines are "name:HASH[:home[:settings]]"; HASH is a crypt(3)
 * string such as "openssl passwd -6" makes (sha512crypt) or yescrypt; home
 * is relative to the served root (default, or empty: the root itself).
 * settings are key=value pairs separated by ',': run-as=SYSUSER (the system
 * user this user's session process becomes, instead of --run-as),
 * rate-down=SIZE and rate-up=SIZE (bytes per second), quota-bytes=SIZE and
 * quota-files=N; SIZE takes the suffixes K, M and G. '#' comments and blank
 * lines are allowed. The table is loaded at start and may be replaced by
 * auth_reload (SIGHUP) while sessions in other threads check passwords: a
 * check uses the table of the moment it began, and a session keeps the
 * settings it logged in with. A process forked before a reload (a forking
 * mode session) reads the file again at its next password check.
 */
#ifndef FTPD_AUTH_H
#define FTPD_AUTH_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

/* What a successful login learns about its user from the users file. */
typedef struct auth_account {
    char home[PATH_MAX];            /* relative to the root, "" = the root */
    char run_as[64];                /* system user for the session, "" = --run-as */
    unsigned long long rate_down;   /* bytes per second to the client, 0 = no own limit */
    unsigned long long rate_up;     /* bytes per second from the client, 0 = no own limit */
    unsigned long long quota_bytes; /* bytes the user may hold, 0 = no quota */
    unsigned long long quota_files; /* files the user may hold, 0 = no quota */
} auth_account;

/* Load the users file (path may be NULL or "" for none). On a bad line
 * prints "sockserv-ftpd: FILE:LINE: problem" and returns -1. */
int auth_load(const char *path);
void auth_free(void);

/* Erase every password hash from this process's memory, then auth_free:
 * for a session process that has become its user (privsep.h). */
void auth_forget(void);
/* Read the users file again into a new table and make it the one new
 * logins use (path NULL or "": nothing to do). On any problem the table in
 * use stays, err gets "FILE:LINE: problem" (or "--users: FILE: problem")
 * and -1 is returned. Safe while other threads call auth_check. */
int auth_reload(const char *path, char *err, size_t size);

/* Accounts in the table in use. */
size_t auth_count(void);

/* Is name one of the anonymous login names ("anonymous", "ftp")? */
bool auth_is_anonymous_name(const char *name);

/* Check name and password against the users file. On success fills *out
 * with the user's settings and returns 0; otherwise -1. Takes about as long
 * for unknown users as for known ones. */
int auth_check(const char *name, const char *password, auth_account *out);

#endif
