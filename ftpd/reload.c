/*
 * reload.c - what SIGHUP reloads, in the serving loop's thread.
 */
#include "reload.h"

#include <limits.h>

#include "auth.h"
#include "log.h"
#include "tls.h"

void reload_all(const ftpd_config *cfg)
{
    char err[PATH_MAX + 256];

    log_request_reopen();
    if (cfg->users[0] != '\0') {
        if (auth_reload(cfg->users, err, sizeof(err)) < 0)
            log_msg("reload: %s; the users loaded before stay in use", err);
        else
            log_msg("reload: %s: %zu user(s)", cfg->users, auth_count());
    } else {
        log_msg("reload: logs reopened");
    }
    /* The certificate and key: a renewed pair is taken by new connections;
     * one that fails to load leaves the pair in use. */
    if (cfg->tls_mode != FTPD_TLS_OFF)
        (void)tls_reload(); /* it logs what happened */
}

void reload_on_signal(ss_server *srv, int signo, void *ctx)
{
    (void)srv;
    (void)signo;
    reload_all(ctx);
}
