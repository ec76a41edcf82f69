/*
 * dataconn.h - data connections: PASV, EPSV, PORT and EPRT prepare one,
 * dataconn_open opens it for a transfer.
 */
#ifndef FTPD_DATACONN_H
#define FTPD_DATACONN_H

#include "session.h"

/* The data-connection commands; each sends its own reply. Return 0, or -1
 * when the reply could not be sent. */
int dataconn_cmd_pasv(session *s);
int dataconn_cmd_epsv(session *s, const char *arg);
int dataconn_cmd_port(session *s, const char *arg);
int dataconn_cmd_eprt(session *s, const char *arg);

/* Drop a prepared data connection (a PASV listener, a PORT address). */
void dataconn_forget(session *s);

/* Open the prepared data connection: accept on the passive listener, or
 * connect to the PORT address, within timeout_ms. While it waits, command
 * lines are served through s->busy_command (ABOR cancels the wait).
 * Returns the connected descriptor (non-blocking), or -1 with errno:
 * ECANCELED after ABOR, ECONNRESET when the control connection is gone
 * (s->quit set), ESHUTDOWN when the server's stop began meanwhile,
 * ETIMEDOUT, ENOTCONN when nothing was prepared, or the error of the failed
 * call. The preparation is not dropped here. */
int dataconn_open(session *s, int timeout_ms);

#endif
