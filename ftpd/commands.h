/*
 * commands.h - the FTP command table and its handlers.
 */
#ifndef FTPD_COMMANDS_H
#define FTPD_COMMANDS_H

#include "session.h"

/* Serve one command line (s->line). Returns 0 to go on, -1 to close the
 * session (QUIT, too many failed logins, a lost connection). */
int commands_dispatch(session *s, const char *line);

/* What the transfer loop does with a command that arrived mid-transfer. */
enum {
    XCMD_CONTINUE = 0, /* served (STAT, NOOP); the transfer goes on */
    XCMD_ABORT = 1,    /* ABOR: stop the transfer */
    XCMD_DEFER = 2     /* kept in s->pending for after the transfer */
};
int commands_during_transfer(session *s, const char *line);

#endif
