/*
 * serve.h - the life of an example server: bind, say where it listens, serve
 * until SIGINT or SIGTERM, wait for the requests still running, exit.
 */
#ifndef EX_SERVE_H
#define EX_SERVE_H

#include <sockserv.h>

/* How often the serve loop wakes when idle (Python's default). */
#define SERVE_POLL_INTERVAL 0.5
/* Seconds running requests get on SIGINT/SIGTERM before their input is
 * closed (--grace; opt->stop_grace). */
#define SERVE_DEFAULT_GRACE 5.0
/* The longest --grace accepted: a day. */
#define SERVE_GRACE_MAX 86400.0
/* The usage lines of --grace, the same in every server. */
#define SERVE_GRACE_USAGE                                                                          \
    "  --grace S    on SIGINT or SIGTERM, stop accepting and give running\n"                       \
    "               requests S seconds (default 5) before their input is\n"                        \
    "               closed; a second signal (or 0) closes it at once\n"

/*
 * Create the server (opt->address must be set), print "listening on
 * <bound address>" on stdout, serve until SIGINT/SIGTERM, then stop
 * gracefully (opt->stop_grace: running requests get that long, then the
 * library closes their input; a second signal cuts at once), wait for what
 * still runs and free the server. A SIGINT/SIGTERM after the graceful stop,
 * while waiting, ends the process at once. A bad address syntax exits with
 * status 2; any other failure prints one line on stderr. Returns the exit
 * status: 0 after a clean stop, 1 on failure.
 */
int serve_main(const ss_options *opt, const ss_handler *h);

#endif /* EX_SERVE_H */
