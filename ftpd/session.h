/*
 * session.h - the state of one FTP session, shared by its layers: the
 * control connection (control.c), data connections (dataconn.c), the
 * transfer loop (xfer.c), the commands (commands.c, cmd_*.c) and the
 * libsockserv handler that runs them (handler.c). Data only: no module
 * behind this header, so every layer may include it without a cycle.
 */
#ifndef FTPD_SESSION_H
#define FTPD_SESSION_H

#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#include <sockserv.h>

#include "auth.h"
#include "config.h"
#include "defs.h"
#include "path.h"
#include "quota.h"
#include "rate.h"

typedef enum data_mode {
    DATA_NONE = 0, /* no PASV/PORT yet (or used up by a transfer) */
    DATA_PASV,     /* listening on pasv_fd */
    DATA_PORT      /* connect to port_addr */
} data_mode;

/* What STAT reports while a transfer runs. */
typedef struct xfer_progress {
    bool active;
    char direction; /* 'o' to the client, 'i' from it */
    char path[VFS_PATH_MAX];
    off_t done;
    off_t total; /* -1 when unknown */
} xfer_progress;

/* MLST facts, in the order FEAT lists them: type size modify perm unique. */
#define MLST_ALL 0x1fu

/* What a command line that arrives while the session is busy (a transfer,
 * a digest, the wait for a data connection) does to the busy work. */
enum {
    XCMD_CONTINUE = 0, /* served (STAT, NOOP); the work goes on */
    XCMD_ABORT = 1,    /* ABOR: stop the work */
    XCMD_DEFER = 2,    /* kept in s->pending for after the work */
    XCMD_LOST = 3      /* the control connection is gone (s->quit set) */
};

typedef struct session session;

/* Serves a command line that arrived while the session is busy; returns
 * XCMD_CONTINUE, XCMD_ABORT or XCMD_DEFER. */
typedef int (*busy_command_fn)(session *s, const char *line);

struct session {
    ss_request *req;
    const ftpd_config *cfg;
    int ctrl_fd;
    struct sockaddr_storage peer; /* client address */
    socklen_t peer_len;
    struct sockaddr_storage local; /* our end of the control connection */
    socklen_t local_len;
    char peer_host[INET6_ADDRSTRLEN]; /* client IP as text */
    char peer_str[INET6_ADDRSTRLEN + 16];
    time_t started;

    /* login */
    bool have_user;
    bool logged_in;
    bool anonymous;
    bool can_write;              /* may upload new files and make folders */
    bool can_modify;             /* may also overwrite, append, rename, delete, chmod */
    long long login_deadline_ms; /* monotonic ms: log in by then or be closed */
    long long idle_deadline_ms;  /* monotonic ms: the next command by then */
    char user[FTPD_USER_MAX];
    char ident[FTPD_USER_MAX]; /* anonymous password, for the xferlog */
    auth_account account;      /* the users file's settings; zero when anonymous */
    int login_failures;
    vfs fs;
    bool fs_open;

    /* transfer parameters */
    char type;  /* 'A' or 'I' */
    off_t rest; /* REST offset for the next transfer */
    bool epsv_all;
    data_mode dmode;
    int pasv_fd;
    bool pasv_counted;          /* pasv_fd holds an entry in pasvshare */
    long long pasv_deadline_ms; /* monotonic ms: an unused pasv_fd closes then */
    struct sockaddr_storage port_addr;
    socklen_t port_len;
    const char *hash_algo;
    unsigned mlst_facts; /* MLST_* bits selected by OPTS MLST */

    /* command state */
    bool have_rnfr;
    char rnfr[VFS_PATH_MAX];
    /* control.c's view of the library's input buffer; nothing else */
    size_t in_stalled;            /* bytes buffered that were no whole line */
    bool in_discarding;           /* an over-long line's tail is yet to come */
    size_t in_dropped;            /* bytes of that line dropped so far */
    char line[FTPD_LINE_MAX + 4]; /* the line last read */
    char cmd[FTPD_LINE_MAX + 4];  /* the command being served: a copy, so
                                     lines read mid-transfer leave it alone */
    bool have_pending;            /* a command that arrived mid-transfer */
    char pending[FTPD_LINE_MAX + 4];
    bool quit; /* close after the current command */
    /* Set by the handler: the command table's answer to a line that
     * arrives mid-transfer, so the layers below never call the table. */
    busy_command_fn busy_command;

    xfer_progress xfer;
    unsigned long long bytes_in, bytes_out;
    unsigned files_in, files_out;

    /* FTPS (tls.c, cmd_tls.c; control.c reads through it) */
    struct tls_conn *ctrl_tls;     /* the control connection's TLS, NULL in clear */
    bool tls_pbsz;                 /* PBSZ 0 came after AUTH */
    bool tls_prot_p;               /* PROT P: data connections speak TLS */
    unsigned char tls_sid_ctx[16]; /* TLS_SID_CTX_LEN: ties data sessions to this one */
    char *tls_in;                  /* command bytes read through TLS, not yet a line */
    size_t tls_in_len;
    bool tls_in_eof; /* the end of input came after them */
    /* Bandwidth limits and quotas: rate.c's and quota.c's state. */
    rate_session rate;
    quota_session quota;

    unsigned char *buf;  /* FTPD_XFER_BUF bytes */
    unsigned char *abuf; /* 2 * FTPD_XFER_BUF for ASCII conversion */
};

#endif
