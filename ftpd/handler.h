/*
 * handler.h - the libsockserv handler that serves FTP control connections.
 */
#ifndef FTPD_HANDLER_H
#define FTPD_HANDLER_H

#include <sockserv.h>

#include "config.h"

/* setup, handle and finish of one FTP session. */
extern const ss_handler ftpd_handler;

/* Prepare the process-wide parts before the server starts: the
 * configuration. */
void handler_init(const ftpd_config *cfg);

/* The server's reject hook (ss_options.reject): a connection over
 * --max-clients or --max-per-ip gets "421 Too many connections." and a log
 * line, then the library closes it. */
void handler_reject(ss_request *req);

#endif
