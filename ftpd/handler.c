/*
 * handler.c - the libsockserv handler: one control connection's life.
 *
 * The library counts sessions against --max-clients / --max-per-ip before
 * a handler runs (a connection over a limit goes to handler_reject, which
 * says 421). setup allocates the session's state and buffers; handle
 * greets the client and runs the command loop (read a line through
 * control.c, serve it through the command table) until QUIT, a timeout, a
 * lost connection or the server's stop; finish logs the end and frees.
 * This is the top layer: it alone knows both the command table and the
 * layers below it, and it hands the table's mid-transfer answer to those
 * layers as a callback (s->busy_command).
 */
#include "handler.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "commands.h"
#include "control.h"
#include "dataconn.h"
#include "log.h"
#include "login.h"
#include "netaddr.h"
#include "privsep.h"
#include "throttle.h"
#include "timeutil.h"
#include "tls.h"

static const ftpd_config *g_cfg;

void handler_init(const ftpd_config *cfg)
{
    g_cfg = cfg;
}

void handler_reject(ss_request *req)
{
    static const char msg[] = "421 Too many connections.\r\n";

    log_msg("%s: refused, too many connections", ss_request_client_str(req));
    (void)ss_write(req, msg, sizeof(msg) - 1);
}

/* ---- lifecycle ---------------------------------------------------------- */

static void session_free(session *s)
{
    if (s == NULL)
        return;
    login_reset(s);
    control_end_tls(s); /* FTPS */
    free(s->buf);
    free(s->abuf);
    free(s);
}

static int session_setup(ss_request *req)
{
    session *s = calloc(1, sizeof(*s));
    const struct sockaddr *peer;
    socklen_t plen = 0;
    struct timeval send_tmo = {.tv_sec = (time_t)g_cfg->data_timeout};
    int one = 1;

    if (s == NULL)
        return -1;
    /* A session process (forking mode) holds, until its login, only what
     * the login needs; nothing from the client has been read yet. */
    if (privsep_session_start() < 0) {
        log_msg("%s: cannot give up privileges: %s", ss_request_client_str(req), strerror(errno));
        free(s);
        return -1;
    }
    s->req = req;
    s->cfg = g_cfg;
    s->ctrl_fd = ss_request_fd(req);
    s->pasv_fd = -1;
    s->busy_command = commands_during_transfer;
    s->started = time(NULL);
    peer = ss_request_client_address(req, &plen);
    if (peer != NULL && plen <= sizeof(s->peer)) {
        memcpy(&s->peer, peer, plen);
        s->peer_len = plen;
    }
    s->local_len = sizeof(s->local);
    if (getsockname(s->ctrl_fd, (struct sockaddr *)&s->local, &s->local_len) < 0)
        s->local_len = 0;
    netaddr_host(&s->peer, s->peer_host, sizeof(s->peer_host));
    snprintf(s->peer_str, sizeof(s->peer_str), "%s", ss_request_client_str(req));
    /* Urgent data (the telnet "synch" some clients send with ABOR, or
     * Python's ftplib sending ABOR itself as urgent) stays in the stream. */
    setsockopt(s->ctrl_fd, SOL_SOCKET, SO_OOBINLINE, &one, sizeof(one));
    /* Waits for a command are bounded by the idle timeout and the login
     * deadline, in the command loop (command_wait_ms); a reply the client
     * does not take is bounded here, as a data connection that makes no
     * progress is: by the data timeout. */
    setsockopt(s->ctrl_fd, SOL_SOCKET, SO_SNDTIMEO, &send_tmo, sizeof(send_tmo));
    login_reset(s);

    ss_request_set_user(req, s);
    s->buf = malloc(FTPD_XFER_BUF);
    s->abuf = malloc(2 * FTPD_XFER_BUF);
    if (s->buf == NULL || s->abuf == NULL) {
        ss_request_set_user(req, NULL);
        session_free(s);
        return -1;
    }
    log_msg("%s: connect", s->peer_str);
    return 0;
}

/* How long the next wait for a command may last: what is left of the idle
 * timeout since the last command (a listener's expiry does not restart it), cut
 * short by the login deadline before a login and by an unused passive
 * listener's deadline. */
static long long command_wait_ms(const session *s)
{
    long long now = ftpd_now_ms();
    long long wait = s->idle_deadline_ms - now;

    if (!s->logged_in && s->login_deadline_ms - now < wait)
        wait = s->login_deadline_ms - now;
    if (s->pasv_fd >= 0 && s->pasv_deadline_ms - now < wait)
        wait = s->pasv_deadline_ms - now;
    return wait < 0 ? 0 : wait;
}

/* A wait for a command ended without one: close an expired passive
 * listener (and wait on), or end the session at the login deadline or the
 * idle timeout. Returns true to go on. */
static bool command_wait_expired(session *s)
{
    long long now = ftpd_now_ms();

    if (s->pasv_fd >= 0 && now >= s->pasv_deadline_ms) {
        log_msg("%s: passive listener unused for %u s, closed", s->peer_str, s->cfg->data_timeout);
        dataconn_forget(s);
        if (s->logged_in || now < s->login_deadline_ms)
            return true;
    }
    if (!s->logged_in && now >= s->login_deadline_ms) {
        reply(s, 421, "Login timeout: closing control connection.");
        log_msg("%s: no login within %u s", s->peer_str, s->cfg->login_timeout);
        return false;
    }
    reply(s, 421, "Timeout: closing control connection.");
    log_msg("%s: idle timeout", s->peer_str);
    return false;
}

static int session_handle(ss_request *req)
{
    session *s = ss_request_user(req);

    /* FTPS: a session process keeps none of the other listener's
     * descriptors; on the implicit listener TLS starts at connect, before
     * the greeting, and data connections are protected from the start. */
    if (s->cfg->mode == SS_MODE_FORKING)
        tls_forked_session(ss_request_server(req));
    if (tls_is_implicit(ss_request_server(req))) {
        if (control_start_tls(s, s->login_deadline_ms) < 0)
            return SS_OK;
        s->tls_pbsz = true;
        s->tls_prot_p = true;
    }
    if (throttle_banned((const struct sockaddr *)&s->peer, NULL)) {
        log_msg("%s: refused, address banned after failed logins", s->peer_str);
        reply(s, 421, "Too many failed logins; try again later.");
        return SS_OK;
    }
    /* Bounded: every turn either serves a line or ends the session; the
     * idle timeout ends a silent client, the login deadline one that never
     * logs in, whatever it sends meanwhile. */
    if (reply(s, 220, FTPD_NAME " " FTPD_VERSION " ready.") < 0)
        return SS_OK;
    s->idle_deadline_ms = ftpd_now_ms() + (long long)s->cfg->idle_timeout * 1000;
    while (!s->quit) {
        ctrl_event e;

        if (!s->logged_in && ftpd_now_ms() >= s->login_deadline_ms) {
            /* Checked before every command, so a client that keeps talking
             * is held to the deadline as well as one that keeps silent. */
            e = CTRL_TIMEOUT;
        } else if (s->have_pending) {
            s->have_pending = false;
            memcpy(s->line, s->pending, sizeof(s->line));
            e = CTRL_LINE;
        } else {
            e = control_next(s, (int)command_wait_ms(s));
        }
        switch (e) {
        case CTRL_LINE:
            memcpy(s->cmd, s->line, sizeof(s->cmd));
            if (commands_dispatch(s, s->cmd) < 0)
                s->quit = true;
            s->idle_deadline_ms = ftpd_now_ms() + (long long)s->cfg->idle_timeout * 1000;
            break;
        case CTRL_NONE:
            s->idle_deadline_ms = ftpd_now_ms() + (long long)s->cfg->idle_timeout * 1000;
            break;
        case CTRL_TIMEOUT:
            if (!command_wait_expired(s))
                s->quit = true;
            break;
        case CTRL_SHUTDOWN:
            reply(s, 421, "Server shutting down.");
            s->quit = true;
            break;
        case CTRL_LOST:
            break;
        }
        /* After a transfer the server may have started stopping; a client
         * that keeps sending commands is not served on through the grace. */
        if (!s->quit && !s->have_pending && ss_server_stopping(ss_request_server(req))) {
            reply(s, 421, "Server shutting down.");
            s->quit = true;
        }
    }
    return SS_OK;
}

static void session_finish(ss_request *req)
{
    session *s = ss_request_user(req);

    if (s == NULL)
        return;
    log_msg("%s: disconnect%s%s, %llu bytes in, %llu bytes out", s->peer_str,
            s->user[0] != '\0' ? " user " : "", s->user, s->bytes_in, s->bytes_out);
    ss_request_set_user(req, NULL);
    session_free(s);
}

const ss_handler ftpd_handler = {
    .setup = session_setup,
    .handle = session_handle,
    .finish = session_finish,
};
