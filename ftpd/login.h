/*
 * login.h - access control (cmd_login.c): USER and PASS, the session's
 * root, bans.
 *
 * Every failed login is answered at the same moment after its PASS
 * (FTPD_LOGIN_FAIL_DELAY_MS), whether the user exists, which hash scheme
 * its password has, or whether its home could not be opened, so neither
 * the reply nor its timing tells who exists. Failures count against the
 * client's address and the account name (throttle.h).
 */
#ifndef FTPD_LOGIN_H
#define FTPD_LOGIN_H

#include "session.h"

/* Open the served root once, for the homes to be resolved beneath it.
 * Returns 0, or -1 with errno. */
int login_init(const ftpd_config *cfg);

/* Forget login, vfs and transfer parameters: the state of a new session
 * (REIN, and the start and end of a session). */
void login_reset(session *s);

#endif
