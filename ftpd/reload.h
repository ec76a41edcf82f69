/*
 * reload.h - SIGHUP: reopen the logs and read the users file again,
 * without dropping a session.
 *
 * The library runs the reload in the serving loop's thread
 * (ss_server_on_signal), never in signal context. Sessions that are logged
 * in keep the account they logged in with; logins from then on use the new
 * users file. A users file with a problem leaves the table in use as it is
 * and the session log says why. In forking mode the listening process
 * reloads (session processes ignore SIGHUP); a session process forked
 * before the reload that has not logged in yet reads the file again at its
 * password check (auth.h).
 */
#ifndef FTPD_RELOAD_H
#define FTPD_RELOAD_H

#include <sockserv.h>

#include "config.h"

/* Reopen the logs, reload the users file (and the TLS certificate) from
 * the paths in cfg. Logs what it did. */
void reload_all(const ftpd_config *cfg);

/* The ss_server_on_signal function: ctx is the const ftpd_config. */
void reload_on_signal(ss_server *srv, int signo, void *ctx);

#endif
