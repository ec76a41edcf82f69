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
#include "handler.h"
#include "listbudget.h"
#include "log.h"
#include "login.h"
#include "secfile.h"
#include "throttle.h"

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

/* One file root is about to open for the --run-as user: refuse it (one
 * line naming the option) unless it is out of that user's reach. */
static int check_root_file(const secfile_user *u, const char *option, const char *path,
                           enum secfile_use use)
{
    char why[PATH_MAX + 256];

    if (path[0] == '\0' || secfile_check(path, u, use, why, sizeof(why)) == 0)
        return 0;
    fprintf(stderr, FTPD_NAME ": %s: %s: %s\n", option, path, why);
    return -1;
}

/* Started as root with --run-as, every file read or opened before the drop
 * must be out of that user's reach, or the user could steer root to a file
 * of its choosing (see secfile.h). The config files were already read -
 * --run-as may come from one of them - but nothing has been done with
 * their settings yet. */
static int check_root_files(const ftpd_config *cfg, int argc, char **argv)
{
    secfile_user u;
    int rc = -1;

    if (cfg->run_as[0] == '\0' || geteuid() != 0)
        return 0;
    if (secfile_user_init(&u, cfg->run_as) < 0) {
        if (errno == ENOENT)
            fprintf(stderr, FTPD_NAME ": --run-as: no such user: %s\n", cfg->run_as);
        else
            fprintf(stderr, FTPD_NAME ": --run-as %s: %s\n", cfg->run_as, strerror(errno));
        return -1;
    }
    /* Root as the run-as user is refused by drop_privileges. */
    if (u.uid == 0) {
        rc = 0;
        goto out;
    }
    /* The same "-c FILE" pairs config_parse_args reads, wherever they stand. */
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "-c") != 0 && strcmp(argv[i], "--config") != 0)
            continue;
        i++;
        if (check_root_file(&u, "-c", argv[i], SECFILE_READ) < 0)
            goto out;
    }
    if (check_root_file(&u, "--users", cfg->users, SECFILE_READ) < 0 ||
        check_root_file(&u, "--log", cfg->log, SECFILE_HAND_OVER) < 0 ||
        check_root_file(&u, "--xferlog", cfg->xferlog, SECFILE_HAND_OVER) < 0)
        goto out;
    rc = 0;
out:
    secfile_user_free(&u);
    return rc;
}

/* --run-as: once the port is bound and the logs are open, give up root for
 * good and serve as an ordinary user, so a flaw in a session cannot act
 * with more rights than that user has. The open log files are handed to
 * the user first, by descriptor, so it may reopen them on SIGHUP. */
static int drop_privileges(const ftpd_config *cfg)
{
    struct passwd pw, *found = NULL;
    char buf[4096];
    const char *which = "?";

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
    if (log_hand_over(pw.pw_uid, pw.pw_gid, &which) < 0)
        fprintf(stderr, FTPD_NAME ": --run-as: fchown %s: %s\n", which, strerror(errno));
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
    char why[256];
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
    if (check_root_files(&cfg, argc, argv) < 0)
        return EXIT_CONFIG;
    if (auth_load(cfg.users) < 0)
        return EXIT_CONFIG;
    if (log_open(cfg.log, cfg.xferlog, &which, why, sizeof(why)) < 0) {
        fprintf(stderr, FTPD_NAME ": --%s: %s: %s\n",
                which != NULL && strcmp(which, cfg.log) == 0 ? "log" : "xferlog",
                which != NULL ? which : "?", why);
        return EXIT_CONFIG;
    }
    if (login_init(&cfg) < 0) {
        fprintf(stderr, FTPD_NAME ": --root: %s: %s\n", cfg.root, strerror(errno));
        return EXIT_CONFIG;
    }
    if (connlimit_init(cfg.max_clients, cfg.max_per_ip, cfg.ipv6_prefix) < 0 ||
        throttle_init(cfg.max_login_fails, cfg.ban_time, cfg.ipv6_prefix) < 0 ||
        listbudget_init(cfg.max_listing_memory) < 0 ||
        pipe2(g_stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        fprintf(stderr, FTPD_NAME ": %s\n", strerror(errno));
        return EXIT_RUNTIME;
    }
    handler_init(&cfg, g_stop_pipe[0]);

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
    g_server = ss_server_new(&opt, &ftpd_handler);
    if (g_server == NULL) {
        int err = errno; /* fprintf may change errno */

        fprintf(stderr, FTPD_NAME ": cannot listen on %s: %s\n", cfg.listen, strerror(err));
        return err == EINVAL ? EXIT_CONFIG : EXIT_RUNTIME;
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
