/*
 * serve.c - the life of an example server.
 */
#include "serve.h"

#include "address.h"
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

/* Room for "[ipv6%scope]:port" and for "unix:" plus a socket path. */
#define SERVE_ADDR_TEXT 160
/* Seconds to wait for running requests before saying that we wait. */
#define SERVE_QUIET_DRAIN 0.5

int serve_main(const ss_options *opt, const ss_handler *h)
{
    char bound[SERVE_ADDR_TEXT];
    ss_server *srv = NULL;
    unsigned active;
    int status = EX_EXIT_FAIL;

    if (address_check(opt->address, opt->type) != 0)
        return EX_EXIT_FAIL;

    srv = ss_server_new(opt, h);
    if (srv == NULL) {
        cli_error("cannot listen on %s: %s", opt->address, strerror(errno));
        goto out;
    }
    /* The handlers go in before the "listening" line, so whoever waits for
     * that line may stop us at once. */
    if (ss_shutdown_on_signal(srv, SIGINT) != 0 || ss_shutdown_on_signal(srv, SIGTERM) != 0) {
        cli_error("cannot install signal handlers: %s", strerror(errno));
        goto out;
    }
    if (ss_server_address_str(srv, bound, sizeof bound) == NULL) {
        cli_error("cannot read the bound address: %s", strerror(errno));
        goto out;
    }
    printf("listening on %s\n", bound);
    /* Flushed now, and not inherited half-written by forked children. */
    if (fflush(stdout) != 0) {
        cli_error("cannot write to stdout: %s", strerror(errno));
        goto out;
    }

    if (ss_serve_forever(srv, SERVE_POLL_INTERVAL) != 0) {
        cli_error("serving on %s failed: %s", bound, strerror(errno));
        goto out;
    }
    status = EX_EXIT_OK;

    /* From here a second interrupt means "quit now", not "stop serving". */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    /* Requests about to end (a client that has just hung up) are not worth
     * a message; those still running after a moment are. */
    if (ss_server_drain(srv, SERVE_QUIET_DRAIN) != 0) {
        active = ss_server_active(srv);
        cli_error("waiting for %u running request(s); interrupt again to quit at once", active);
    }

out:
    /* Closes the socket and, with block_on_close, waits for running
     * requests: connected clients are served to the end. */
    ss_server_free(srv);
    return status;
}
