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

/* The descriptor that becomes readable when the server stops (-1: none).
 * Set once before sessions start. */
void control_set_shutdown_fd(int fd);
int control_shutdown_fd(void);

/* Results of control_read_line. */
enum {
    READ_LINE = 1,      /* s->line holds a command (CRLF and telnet codes removed) */
    READ_EOF = 0,       /* the client closed the connection */
    READ_ERROR = -1,    /* I/O error, or an endless line: close */
    READ_TIMEOUT = -2,  /* nothing within the wait */
    READ_SHUTDOWN = -3, /* the server is stopping (s->shutdown_seen is set) */
    READ_TOO_LONG = -4, /* a line over FTPD_LINE_MAX was discarded */
    READ_NUL = -5       /* the line held a NUL byte */
};

/* Wait up to timeout_ms for a whole command line and read it into s->line.
 * The wait covers the whole line, so a client that sends a line byte by
 * byte cannot hold the session beyond the timeout; with 0 it only takes
 * what has already arrived (READ_TIMEOUT when that is no whole line). */
int control_read_line(session *s, int timeout_ms);

/* True when a command line is already buffered (no need to poll). */
bool control_input_pending(session *s);

/* What control_next found. */
typedef enum ctrl_event {
    CTRL_LINE,     /* s->line holds a command */
    CTRL_NONE,     /* a line that is no command was read and answered (500, 501) */
    CTRL_TIMEOUT,  /* no line within the wait */
    CTRL_SHUTDOWN, /* the server is stopping */
    CTRL_LOST      /* the connection ended or failed: s->quit is set */
} ctrl_event;

/* control_read_line, with every outcome but a command line dealt with:
 * the replies to bad lines sent, a lost connection turned into s->quit. */
ctrl_event control_next(session *s, int timeout_ms);

/* While the session is busy: take a command line that has already arrived
 * (never waits) and hand it to s->busy_command. Returns its XCMD_* answer,
 * XCMD_CONTINUE when there was no command, or XCMD_LOST (s->quit set). */
int control_while_busy(session *s);

#endif
