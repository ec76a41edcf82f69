/*
 * cmd_tls.c - the FTPS commands (RFC 4217): AUTH TLS, PBSZ, PROT and CCC.
 *
 * AUTH TLS (or its aliases TLS-C and SSL) answers 234 and then runs the
 * handshake; from then on the control connection speaks TLS (control.c).
 * PBSZ must follow AUTH and is always 0 for TLS; PROT must follow PBSZ:
 * P protects the data connections, C leaves them clear (refused with
 * --tls required), S and E do not exist for TLS (536). CCC, going back to
 * a clear control connection, is refused: the password would stay
 * protected but every later command and listing would not.
 */
#include "cmd.h"

#include <errno.h>

#include "control.h"
#include "log.h"
#include "timeutil.h"
#include "tls.h"
#include "tlsarg.h"

int cmd_auth(session *s, const char *arg)
{
    long long deadline;

    if (s->cfg->tls_mode == FTPD_TLS_OFF)
        return reply(s, 502, "TLS is not enabled on this server.");
    if (tlsarg_auth(arg) < 0)
        return reply(s, 504, "Only AUTH TLS is supported.");
    if (s->ctrl_tls != NULL)
        return reply(s, 503, "TLS is already on.");
    if (reply(s, 234, "Proceed with TLS negotiation.") < 0)
        return -1;
    /* The handshake is held to the wait for a command: the idle timeout,
     * and the login deadline before a login. */
    deadline = ftpd_now_ms() + (long long)s->cfg->idle_timeout * 1000;
    if (!s->logged_in && s->login_deadline_ms < deadline)
        deadline = s->login_deadline_ms;
    if (control_start_tls(s, deadline) < 0)
        return -1;
    s->tls_pbsz = false;
    s->tls_prot_p = false;
    return 0;
}

int cmd_pbsz(session *s, const char *arg)
{
    unsigned long size;

    if (s->ctrl_tls == NULL)
        return reply(s, 503, "PBSZ needs AUTH TLS first.");
    if (tlsarg_pbsz(arg, &size) < 0)
        return reply(s, 501, "PBSZ needs a decimal number.");
    s->tls_pbsz = true;
    /* TLS has no protection buffer: 0 is the only size (RFC 4217 8). */
    return reply(s, 200, "PBSZ=0");
}

int cmd_prot(session *s, const char *arg)
{
    int level = tlsarg_prot(arg);

    if (s->ctrl_tls == NULL)
        return reply(s, 503, "PROT needs AUTH TLS first.");
    if (!s->tls_pbsz)
        return reply(s, 503, "PROT needs PBSZ first.");
    switch (level) {
    case 'P':
        s->tls_prot_p = true;
        return reply(s, 200, "Protection level set to Private.");
    case 'C':
        if (s->cfg->tls_mode == FTPD_TLS_REQUIRED)
            return reply(s, 534, "PROT C refused: TLS is required for data connections.");
        s->tls_prot_p = false;
        return reply(s, 200, "Protection level set to Clear.");
    case 'S':
    case 'E':
        return reply(s, 536, "PROT %c is not supported with TLS; use P or C.", level);
    default:
        return reply(s, 504, "PROT needs C, S, E or P.");
    }
}

int cmd_ccc(session *s, const char *arg)
{
    if (s->ctrl_tls == NULL)
        return reply(s, 533, "CCC needs a TLS control connection.");
    return reply(s, 534, "CCC refused: the control connection stays protected.");
}
