/*
 * commands.h - the FTP command table.
 */
#ifndef FTPD_COMMANDS_H
#define FTPD_COMMANDS_H

#include "session.h"

/* Serve one command line. Returns 0 to go on, -1 to close the session
 * (QUIT, too many failed logins, a lost connection). */
int commands_dispatch(session *s, const char *line);

/* A command line that arrived while the session is busy (a transfer, a
 * digest, the wait for a data connection): ABOR is XCMD_ABORT, NOOP and
 * STAT without argument are answered (XCMD_CONTINUE), anything else is
 * kept in s->pending for after the final reply (XCMD_DEFER). The handler
 * installs it as s->busy_command. */
int commands_during_transfer(session *s, const char *line);

#endif
