/*
 * control.h - the control connection: replies out, command lines in.
 *
 * Replies double every 0xff byte (telnet IAC) and never carry CR, LF or
 * NUL from their text. A command line loses its CRLF and the telnet
 * commands some clients send around ABOR; an over-long line is answered
 * with 500, a line with a NUL byte with 501, and a connection that ends
 * makes the session quit - once, here, for every place that reads a line
 * (the command loop, the transfer loop, the wait for a data connection).
 */
#ifndef FTPD_CONTROL_H
#define FTPD_CONTROL_H

#include <stdbool.h>

#include "session.h"

/* Replies. Text never carries CR, LF or NUL: those are replaced, so nothing
 * from the client can forge a reply line. Return 0 or -1. */
int reply(session *s, int code, const char *fmt, ...) SS_PRINTF(3, 4);
/* Multi-line: "code-text", then " text" lines, then reply(code, ...). */
int reply_begin(session *s, int code, const char *fmt, ...) SS_PRINTF(3, 4);
int reply_line(session *s, const char *fmt, ...) SS_PRINTF(2, 3);

/* True when a command line may be waiting in the library's buffer (bytes
 * that were only part of a line when last read do not count), so a loop
 * that polls the control socket serves it before it waits. */
bool control_input_pending(session *s);

/* What control_next found. */
typedef enum ctrl_event {
    CTRL_LINE,     /* s->line holds a command */
    CTRL_NONE,     /* a line that is no command was read and answered (500, 501) */
    CTRL_TIMEOUT,  /* no whole line within the wait */
    CTRL_SHUTDOWN, /* the server is stopping */
    CTRL_LOST      /* the connection ended or failed: s->quit is set */
} ctrl_event;

/* Wait up to timeout_ms for a whole command line (the wait covers the whole
 * line, so a client that sends a line byte by byte cannot hold the session
 * beyond it) and read it into s->line, with every outcome but a command
 * line dealt with: the replies to bad lines sent, a lost connection turned
 * into s->quit. The server's stop ends the wait (CTRL_SHUTDOWN) unless a
 * line is already buffered. */
ctrl_event control_next(session *s, int timeout_ms);

/* Switch the control connection to TLS (after the 234 to AUTH TLS, or at
 * connect on the implicit listener): a handshake until deadline_ms, the
 * server's stop ending it. From then on replies and command lines go
 * through TLS. On failure the connection is shut down and s->quit set
 * (nothing more can be said on it); returns -1 with errno. */
int control_start_tls(session *s, long long deadline_ms);

/* Say close_notify and drop the control connection's TLS (session end). */
void control_end_tls(session *s);

/* While the session is busy: take a command line that has already arrived
 * (never waits) and hand it to s->busy_command. Returns its XCMD_* answer,
 * XCMD_CONTINUE when there was no command, or XCMD_LOST (s->quit set). */
int control_while_busy(session *s);

#endif
