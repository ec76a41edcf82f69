/*
 * privsep.h - a session process that becomes its user (forking mode).
 *
 * Started as root in forking mode, the listener keeps root (it forks a
 * process per session and that process must still chroot and change
 * user) and does not become --run-as itself. Each session process, before
 * it reads a byte from its client, sets no_new_privs and gives up every
 * capability but the four a login needs (CAP_SETUID, CAP_SETGID,
 * CAP_SYS_CHROOT, CAP_DAC_READ_SEARCH), from its bounding set too, and
 * with --seccomp installs the login's filter; it parses only what may
 * come before a login. At the login it chroots into
 * the user's root (its home beneath the served root, the served root for
 * anonymous), changes to the system user (the users file's run-as=, else
 * --run-as) with its groups, checks that root cannot come back, and with
 * --seccomp installs the allow-list of seccomp.h. From then on it holds no
 * privilege at all. docs/security.md gives the model of each mode.
 *
 * In threading mode (or started as an ordinary user) nothing changes per
 * session: the whole process is --run-as, and a login whose run-as= names
 * another system user fails, since no thread can become another user.
 */
#ifndef FTPD_PRIVSEP_H
#define FTPD_PRIVSEP_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* Decide, once before serving, how sessions are separated; reads the
 * time zone (tzset) while /etc/localtime can still be read. */
void privsep_init(const ftpd_config *cfg);

/* Forking mode started as root: the listener keeps root, and each session
 * process drops at its login. */
bool privsep_enabled(void);

/* The listener, once bound, when every session will drop (--run-as
 * given): no_new_privs, and only the capabilities a login needs (which its
 * session processes inherit). Returns 0, or -1 with errno. */
int privsep_listener_start(void);

/* In a new session process, before the client is read: no_new_privs,
 * (when every session drops, --run-as given) only the capabilities a login
 * needs, and (--seccomp) the login's filter. Returns 0, or -1 with errno:
 * the session must end. */
int privsep_session_start(void);

/* Results of privsep_login. */
enum {
    PRIVSEP_OK = 0,       /* the session is its user now (or had nothing to change) */
    PRIVSEP_REFUSED = -1, /* nothing changed: fail the login, the session goes on */
    PRIVSEP_BROKEN = -2   /* a step that cannot be undone failed: end the session */
};

/* At a successful password check: become run_as (NULL or "" = --run-as)
 * chrooted into the directory home_fd, then (--seccomp) install the
 * filter. On failure writes the reason for the log into why. */
int privsep_login(const char *run_as, int home_fd, char *why, size_t size);

/* This process has chrooted and changed user: it can log in no other
 * user (REIN is refused) and holds no descriptor above its root. */
bool privsep_dropped(void);

#endif
