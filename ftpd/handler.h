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
 * configuration and the descriptor that becomes readable when the server
 * stops. */
void handler_init(const ftpd_config *cfg, int shutdown_fd);

#endif
