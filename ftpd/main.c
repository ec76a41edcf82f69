/*
 * main.c - sockserv-ftpd: settings, the libsockserv server, signals.
 *
 * SIGTERM/SIGINT stop the accept loop and make a shutdown pipe readable;
 * every session polls that pipe, so idle sessions say 421 and end while
 * running transfers go on until they finish or the drain deadline passes.
 * SIGHUP reopens the log files.
 */
#include <errno.h>
#include <grp.h>
#include <malloc.h>
#include <pwd.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sockserv.h>

#include "auth.h"
#include "config.h"
#include "connlimit.h"
#include "defs.h"
#include "listbudget.h"
#include "log.h"
#include "session.h"

#define EXIT_CONFIG 2
#define EXIT_RUNTIME 1
/* Extra time past the transfers' drain deadline for sessions to close. */
#define DRAIN_SLACK 5

static ss_server *g_server;
static int g_stop_pipe[2] = {-1, -1};

static void on_stop(int signo)
{
    int saved = errno;

    (void)signo;
    if (g_server != NULL)
        ss_shutdown_async(g_server);
    /* Never read: once written, the pipe stays readable for every session,
     * in every thread and every forked session process. */
    if (write(g_stop_pipe[1], "x", 1) < 0) {
        /* Full or closed: the pipe is already readable, nothing to add. */
    }
    errno = saved;
}

static void on_hup(int signo)
{
    (void)signo;
    log_request_reopen();
}

static void on_error(ss_server *srv, ss_request *req, int err)
{
    (void)srv;
    if (req != NULL)
        log_msg("%s: %s", ss_request_client_str(req), strerror(err));
    else
        log_msg("server: %s", strerror(err));
}

static int install_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: the serving thread's poll must wake up. */
    sa.sa_handler = on_stop;
    if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
        return -1;
    sa.sa_handler = on_hup;
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGHUP, &sa, NULL) < 0)
        return -1;
    sa.sa_handler = SIG_IGN;
    sa.sa_flags = 0;
    return sigaction(SIGPIPE, &sa, NULL);
}

/* --run-as: once the port is bound and the logs are open, give up root for
 * good and serve as an ordinary user, so a flaw in a session cannot act
 * with more rights than that user has. The log files are handed to the
 * user first, so SIGHUP can reopen them. */
static int drop_privileges(const ftpd_config *cfg)
{
    struct passwd pw, *found = NULL;
    char buf[4096];

    if (getpwnam_r(cfg->run_as, &pw, buf, sizeof(buf), &found) != 0 || found == NULL) {
        fprintf(stderr, FTPD_NAME ": --run-as: no such user: %s\n", cfg->run_as);
        return -1;
    }
    if (geteuid() != 0) {
        if (geteuid() == pw.pw_uid)
            return 0; /* already that user */
        fprintf(stderr, FTPD_NAME ": --run-as %s: only root can change user\n", cfg->run_as);
        return -1;
    }
    if (pw.pw_uid == 0) {
        fprintf(stderr, FTPD_NAME ": --run-as %s: that is root; name an ordinary user\n",
                cfg->run_as);
        return -1;
    }
    if (cfg->log[0] != '\0' && chown(cfg->log, pw.pw_uid, pw.pw_gid) < 0)
        fprintf(stderr, FTPD_NAME ": --run-as: chown %s: %s\n", cfg->log, strerror(errno));
    if (cfg->xferlog[0] != '\0' && chown(cfg->xferlog, pw.pw_uid, pw.pw_gid) < 0)
        fprintf(stderr, FTPD_NAME ": --run-as: chown %s: %s\n", cfg->xferlog, strerror(errno));
    if (initgroups(pw.pw_name, pw.pw_gid) < 0 || setgid(pw.pw_gid) < 0 ||
        setuid(pw.pw_uid) < 0) {
        fprintf(stderr, FTPD_NAME ": --run-as %s: %s\n", cfg->run_as, strerror(errno));
        return -1;
    }
    if (setuid(0) == 0) { /* must be impossible now */
        fprintf(stderr, FTPD_NAME ": --run-as %s: could not drop root\n", cfg->run_as);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static ftpd_config cfg;
    ss_options opt;
    char addr[sizeof(cfg.listen) + 64];
    const char *which = NULL;
    int rc;

#ifdef M_MMAP_THRESHOLD
    /* A fixed threshold: glibc would otherwise raise it after each large
     * free, and the next session buffers and listing names would then stay
     * in the threads' heaps after their sessions end. */
    mallopt(M_MMAP_THRESHOLD, FTPD_MMAP_THRESHOLD);
#endif
    rc = config_parse_args(&cfg, argc, argv);
    if (rc == CONFIG_EXIT_OK)
        return 0;
    if (rc < 0)
        return EXIT_CONFIG;
    if (auth_load(cfg.users) < 0)
        return EXIT_CONFIG;
    if (log_open(cfg.log, cfg.xferlog, &which) < 0) {
        fprintf(stderr, FTPD_NAME ": --%s: %s: %s\n",
                which != NULL && strcmp(which, cfg.log) == 0 ? "log" : "xferlog",
                which != NULL ? which : "?", strerror(errno));
        return EXIT_CONFIG;
    }
    if (connlimit_init(cfg.max_clients, cfg.max_per_ip) < 0 ||
        listbudget_init(cfg.max_listing_memory) < 0 ||
        pipe2(g_stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        fprintf(stderr, FTPD_NAME ": %s\n", strerror(errno));
        return EXIT_RUNTIME;
    }
    session_global_init(&cfg, g_stop_pipe[0]);

    ss_options_init(&opt);
    opt.address = cfg.listen;
    opt.type = SS_STREAM;
    opt.mode = cfg.mode;
    opt.allow_reuse_address = true;
    opt.request_queue_size = 128;
    opt.block_on_close = true;
    /* Room above max-clients so refused connections still get their 421. */
    opt.max_children = cfg.max_clients + 16;
    opt.disable_nagle_algorithm = true;
    opt.request_timeout = (double)cfg.idle_timeout;
    opt.handle_error = on_error;
    g_server = ss_server_new(&opt, &session_handler);
    if (g_server == NULL) {
        fprintf(stderr, FTPD_NAME ": cannot listen on %s: %s\n", cfg.listen, strerror(errno));
        return errno == EINVAL ? EXIT_CONFIG : EXIT_RUNTIME;
    }
    if (cfg.run_as[0] != '\0' && drop_privileges(&cfg) < 0) {
        ss_server_free(g_server);
        return EXIT_CONFIG;
    }
    if (install_signals() < 0) {
        fprintf(stderr, FTPD_NAME ": signals: %s\n", strerror(errno));
        ss_server_free(g_server);
        return EXIT_RUNTIME;
    }
    if (ss_server_address_str(g_server, addr, sizeof(addr)) == NULL)
        snprintf(addr, sizeof(addr), "%s", cfg.listen);
    printf("listening on %s\n", addr);
    fflush(stdout);
    log_msg("listening on %s, root %s, %s mode, anonymous %s%s", addr, cfg.root,
            cfg.mode == SS_MODE_FORKING ? "forking" : "threading",
            cfg.anonymous ? "on" : "off",
            cfg.anonymous && cfg.anonymous_write ? " (may write)" : "");

    rc = ss_serve_forever(g_server, FTPD_POLL_INTERVAL);
    on_stop(0);
    log_msg("stopping: %u session(s) running", ss_server_active(g_server));
    if (ss_server_drain(g_server, FTPD_DRAIN_TIMEOUT + DRAIN_SLACK) < 0) {
        log_msg("exiting with %u session(s) still running", ss_server_active(g_server));
        log_close();
        exit(rc < 0 ? EXIT_RUNTIME : 0);
    }
    ss_server_free(g_server);
    g_server = NULL;
    auth_free();
    log_msg("stopped");
    log_close();
    return rc < 0 ? EXIT_RUNTIME : 0;
}
