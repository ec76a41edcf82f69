/*
 * auth.h - user accounts (the users file) and password checks.
 *
 * Users file lines are "name:HASH[:home]"; HASH is a crypt(3) string such as
 * "openssl passwd -6" makes (sha512crypt) or yescrypt; home is relative to
 * the served root (default: the root itself). '#' comments and blank lines
 * are allowed. The table is loaded once at start and read-only afterwards,
 * so sessions in any thread may use it.
 */
#ifndef FTPD_AUTH_H
#define FTPD_AUTH_H

#include <stdbool.h>
#include <stddef.h>

/* Load the users file (path may be NULL or "" for none). On a bad line
 * prints "sockserv-ftpd: FILE:LINE: problem" and returns -1. */
int auth_load(const char *path);
void auth_free(void);

/* Is name one of the anonymous login names ("anonymous", "ftp")? */
bool auth_is_anonymous_name(const char *name);

/* Check name and password against the users file. On success writes the
 * user's home (relative to the root, "" for the root) into home and returns
 * 0; otherwise -1. Takes about as long for unknown users as for known ones. */
int auth_check(const char *name, const char *password, char *home, size_t size);

#endif
