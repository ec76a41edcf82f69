/*
 * session.h - one FTP control connection: its state, reading commands,
 * writing replies. The session is the libsockserv stream handler; command
 * logic lives in commands.c, data connections in transfer.c.
 */
#ifndef FTPD_SESSION_H
#define FTPD_SESSION_H

#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#include <sockserv.h>

#include "config.h"
#include "defs.h"
#include "path.h"

typedef enum data_mode {
    DATA_NONE = 0, /* no PASV/PORT yet (or used up by a transfer) */
    DATA_PASV,     /* listening on pasv_fd */
    DATA_PORT      /* connect to port_addr */
} data_mode;

/* What STAT reports while a transfer runs. */
typedef struct xfer_progress {
    bool active;
    char direction;           /* 'o' to the client, 'i' from it */
    char path[VFS_PATH_MAX];
    off_t done;
    off_t total;              /* -1 when unknown */
} xfer_progress;

/* MLST facts, in the order FEAT lists them: type size modify perm unique. */
#define MLST_ALL 0x1fu

typedef struct session {
    ss_request *req;
    const ftpd_config *cfg;
    int ctrl_fd;
    struct sockaddr_storage peer;  /* client address */
    socklen_t peer_len;
    struct sockaddr_storage local; /* our end of the control connection */
    socklen_t local_len;
    char peer_host[INET6_ADDRSTRLEN]; /* client IP as text */
    char peer_str[INET6_ADDRSTRLEN + 16];
    bool counted;                  /* holds a connlimit slot */
    bool refused;                  /* over a limit: say 421 and end */
    time_t started;

    /* login */
    bool have_user;
    bool logged_in;
    bool anonymous;
    bool can_write;                /* may upload new files and make folders */
    bool can_modify;               /* may also overwrite, append, rename, delete, chmod */
    long long login_deadline_ms;   /* monotonic ms: log in by then or be closed */
    char user[FTPD_USER_MAX];
    char ident[FTPD_USER_MAX];     /* anonymous password, for the xferlog */
    int login_failures;
    vfs fs;
    bool fs_open;

    /* transfer parameters */
    char type;                     /* 'A' or 'I' */
    off_t rest;                    /* REST offset for the next transfer */
    bool epsv_all;
    data_mode dmode;
    int pasv_fd;
    long long pasv_deadline_ms;    /* monotonic ms: an unused pasv_fd closes then */
    struct sockaddr_storage port_addr;
    socklen_t port_len;
    const char *hash_algo;
    unsigned mlst_facts;           /* MLST_* bits selected by OPTS MLST */

    /* command state */
    bool have_rnfr;
    char rnfr[VFS_PATH_MAX];
    char in[FTPD_LINE_MAX + 4];    /* bytes read, not yet a whole line */
    size_t in_len;
    size_t dropped;                /* bytes of an over-long line discarded */
    char line[FTPD_LINE_MAX + 4];  /* the line last read */
    char cmd[FTPD_LINE_MAX + 4];   /* the command being served: a copy, so
                                      lines read mid-transfer leave it alone */
    bool have_pending;             /* a command that arrived mid-transfer */
    char pending[FTPD_LINE_MAX + 4];
    bool quit;                     /* close after the current command */
    bool shutdown_seen;            /* the server is stopping */

    xfer_progress xfer;
    unsigned long long bytes_in, bytes_out;
    unsigned files_in, files_out;

    unsigned char *buf;            /* FTPD_XFER_BUF bytes */
    unsigned char *abuf;           /* 2 * FTPD_XFER_BUF for ASCII conversion */
} session;

/* Results of session_read_line. */
enum {
    READ_LINE = 1,     /* s->line holds a command (CRLF and telnet codes removed) */
    READ_EOF = 0,      /* the client closed the connection */
    READ_ERROR = -1,   /* I/O error, or an endless line: close */
    READ_TIMEOUT = -2, /* nothing within the wait */
    READ_SHUTDOWN = -3,/* the server is stopping */
    READ_TOO_LONG = -4,/* a line over FTPD_LINE_MAX was discarded */
    READ_NUL = -5      /* the line held a NUL byte */
};

/* The libsockserv handler that serves FTP control connections. */
extern const ss_handler session_handler;

/* Prepare the process-wide parts: the configuration and the descriptor that
 * becomes readable when the server stops. */
void session_global_init(const ftpd_config *cfg, int shutdown_fd);

/* Wait up to timeout_ms for a whole command line and read it into s->line.
 * The wait covers the whole line, so a client that sends a line byte by
 * byte cannot hold the session beyond the timeout; with 0 it only takes
 * what has already arrived (READ_TIMEOUT when that is no whole line). */
int session_read_line(session *s, int timeout_ms);

/* True when a command line is already buffered (no need to poll). */
bool session_input_pending(session *s);

/* Is the server stopping? Non-blocking check of the shutdown descriptor. */
bool session_shutdown_requested(void);
int session_shutdown_fd(void);

/* Replies. Text never carries CR, LF or NUL: those are replaced, so nothing
 * from the client can forge a reply line. Return 0 or -1. */
int reply(session *s, int code, const char *fmt, ...) SS_PRINTF(3, 4);
/* Multi-line: "code-text", then " text" lines, then reply(code, ...). */
int reply_begin(session *s, int code, const char *fmt, ...) SS_PRINTF(3, 4);
int reply_line(session *s, const char *fmt, ...) SS_PRINTF(2, 3);

/* The monotonic clock in milliseconds (for the session's deadlines). */
long long session_now_ms(void);

/* Forget login, vfs and transfer parameters (REIN, end of session). */
void session_reset(session *s);

#endif
