/*
 * serve.h - the life of an example server: bind, say where it listens, serve
 * until SIGINT or SIGTERM, wait for the requests still running, exit.
 */
#ifndef EX_SERVE_H
#define EX_SERVE_H

#include <sockserv.h>

/* How often the serve loop wakes when idle (Python's default). */
#define SERVE_POLL_INTERVAL 0.5

/*
 * Create the server (opt->address must be set), print "listening on
 * <bound address>" on stdout, serve until SIGINT/SIGTERM, then wait for
 * running requests and free the server. A second SIGINT/SIGTERM while
 * waiting ends the process at once. A bad address syntax exits with
 * status 2; any other failure prints one line on stderr. Returns the exit
 * status: 0 after a clean stop, 1 on failure.
 */
int serve_main(const ss_options *opt, const ss_handler *h);

/* For a handler's setup: in a forked child, give SIGINT and SIGTERM back
 * their default action, so that an interrupt from the terminal ends the
 * child instead of asking the parent's loop to stop a second time. Does
 * nothing in the other modes (the handlers are process-wide there).
 * Returns 0. */
int serve_child_setup(ss_request *req);

#endif /* EX_SERVE_H */
