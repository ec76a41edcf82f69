/*
 * main.c - sockserv-ftpd: settings, the libsockserv server, signals.
 *
 * SIGTERM/SIGINT begin the library's graceful stop (ss_shutdown_on_signal
 * with opt.stop_grace): the server stops accepting, idle sessions say 421
 * and end at once (their wait for a command watches the stop), and running
 * transfers get --stop-grace seconds before the library shuts their
 * control connection's input; a second signal cuts at once. Connection
 * limits are the library's too (max_connections, max_per_peer). SIGHUP
 * reopens the log files and reloads the users file (reload.c), in the
 * loop's thread (ss_server_on_signal); session processes ignore it.
 */
#include <errno.h>
#include <grp.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sockserv.h>

#include "auth.h"
#include "config.h"
#include "defs.h"
#include "handler.h"
#include "listbudget.h"
#include "listfmt.h"
#include "log.h"
#include "login.h"
#include "pasvshare.h"
#include "privsep.h"
#include "quota.h"
#include "rate.h"
#include "reload.h"
#include "secfile.h"
#include "throttle.h"
#include "tls.h"

#define EXIT_CONFIG 2
#define EXIT_RUNTIME 1

static void on_error(ss_server *srv, ss_request *req, int err)
{
    (void)srv;
    if (req != NULL)
        log_msg("%s: %s", ss_request_client_str(req), strerror(err));
    else
        log_msg("server: %s", strerror(err));
}

/* The stop signals are the library's (ss_shutdown_on_signal); SIGHUP runs
 * the reload in the loop's thread (ss_server_on_signal), and SIGPIPE is
 * ignored because sendfile(2) on a data connection the client closed would
 * raise it. */
static int install_signals(ss_server *srv, const ftpd_config *cfg)
{
    struct sigaction sa;

    if (ss_shutdown_on_signal(srv, SIGTERM) < 0 || ss_shutdown_on_signal(srv, SIGINT) < 0)
        return -1;
    /* const dropped for the library's void *; reload_on_signal only reads. */
    if (ss_server_on_signal(srv, SIGHUP, reload_on_signal, (void *)cfg) < 0)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;
    sa.sa_flags = 0;
    return sigaction(SIGPIPE, &sa, NULL);
}

/* Look up a user and a group name once before serving, as listings will:
 * glibc sets up its name-service state on the first lookup, and if that
 * allocation fails (out of memory in a session) it crashes in
 * nss_database_check_reload_and_get instead of failing the lookup. Made
 * here, the state exists before any session needs it. */
static void warm_up_nss(void)
{
    char name[64], scratch[4096];

    listfmt_lookup_id(true, (unsigned)getuid(), name, sizeof(name), scratch, sizeof(scratch));
    listfmt_lookup_id(false, (unsigned)getgid(), name, sizeof(name), scratch, sizeof(scratch));
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
        check_root_file(&u, "--xferlog", cfg->xferlog, SECFILE_HAND_OVER) < 0 ||
        check_root_file(&u, "--tls-cert", cfg->tls_cert, SECFILE_READ) < 0 ||
        check_root_file(&u, "--tls-key", cfg->tls_key, SECFILE_READ) < 0)
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
    if (initgroups(pw.pw_name, pw.pw_gid) < 0 || setgid(pw.pw_gid) < 0 || setuid(pw.pw_uid) < 0) {
        fprintf(stderr, FTPD_NAME ": --run-as %s: %s\n", cfg->run_as, strerror(errno));
        return -1;
    }
    if (setuid(0) == 0) { /* must be impossible now */
        fprintf(stderr, FTPD_NAME ": --run-as %s: could not drop root\n", cfg->run_as);
        return -1;
    }
    return 0;
}

/* Forking mode started as root: the listener stays root, and each session
 * process becomes --run-as (or its run-as= user) at its login (privsep.h).
 * The user is checked now, so a typo fails at the start, not at each login. */
static int check_session_user(const ftpd_config *cfg)
{
    struct passwd pw, *found = NULL;
    char buf[4096];

    if (cfg->run_as[0] == '\0') {
        log_msg("forking mode as root without --run-as: sessions whose user has no run-as= "
                "run as root");
        return 0;
    }
    if (getpwnam_r(cfg->run_as, &pw, buf, sizeof(buf), &found) != 0 || found == NULL) {
        fprintf(stderr, FTPD_NAME ": --run-as: no such user: %s\n", cfg->run_as);
        return -1;
    }
    if (pw.pw_uid == 0) {
        fprintf(stderr, FTPD_NAME ": --run-as %s: that is root; name an ordinary user\n",
                cfg->run_as);
        return -1;
    }
    return 0;
}

/* ---- FTPS: the implicit TLS listener ------------------------------------ */

/* The library serves one listener per server, so --tls-implicit-listen
 * is a second server with the same handler and options, served in a
 * thread of its own; its connections start with the TLS handshake
 * (handler.c asks tls_is_implicit). A watcher thread begins its graceful
 * stop, with the same grace, as soon as the main server's stop begins,
 * so a stop signal stops both. Connection limits are the library's and
 * count per server, so per listener. */
typedef struct implicit_tls {
    ss_server *srv;
    ss_server *main_srv;
    double grace;
    pthread_t serve, watch;
    bool serving, watching;
} implicit_tls;

static void *implicit_serve(void *arg)
{
    implicit_tls *it = arg;

    if (ss_serve_forever(it->srv, FTPD_POLL_INTERVAL) < 0)
        log_msg("implicit TLS listener: %s", strerror(errno));
    return NULL;
}

static void *implicit_watch(void *arg)
{
    implicit_tls *it = arg;
    struct pollfd p[2] = {{.fd = ss_server_stop_fd(it->main_srv), .events = POLLIN},
                          {.fd = ss_server_stop_fd(it->srv), .events = POLLIN}};

    /* Bounded by the stops: the main server's, or the one implicit_stop
     * begins when the main loop ended without one. */
    while (poll(p, 2, -1) < 0 && errno == EINTR)
        continue;
    (void)ss_server_stop(it->srv, it->grace);
    return NULL;
}

/* Start serving the implicit listener; the stop signals stay with the
 * main thread (the new threads block them). */
static int implicit_start(implicit_tls *it)
{
    sigset_t all, old;
    int rc;

    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rc = pthread_create(&it->serve, NULL, implicit_serve, it);
    it->serving = rc == 0;
    if (rc == 0) {
        rc = pthread_create(&it->watch, NULL, implicit_watch, it);
        it->watching = rc == 0;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return 0;
}

/* After the main loop: let the implicit listener's stop finish (it began
 * with the main one's; without one, stop it now) and free it. */
static void implicit_stop(implicit_tls *it, bool main_stopped)
{
    if (it->srv == NULL)
        return;
    if (!main_stopped || !it->watching)
        (void)ss_server_stop(it->srv, main_stopped ? it->grace : 0);
    if (it->watching)
        pthread_join(it->watch, NULL);
    if (it->serving)
        pthread_join(it->serve, NULL);
    ss_server_free(it->srv);
    it->srv = NULL;
}

/* --check-config: everything a start would read (the command line and the
 * -c file were read already), checked without binding, opening the logs or
 * changing user; then the effective settings on standard output. Problems
 * are reported on standard error as one line naming the file and line, or
 * the option. Returns the exit status. */
static int check_config(const ftpd_config *cfg, int argc, char **argv)
{
    char tls_why[PATH_MAX + 256];

    if (cfg->run_as[0] != '\0') {
        struct passwd pw, *found = NULL;
        char buf[4096];

        if (getpwnam_r(cfg->run_as, &pw, buf, sizeof(buf), &found) != 0 || found == NULL) {
            fprintf(stderr, FTPD_NAME ": --run-as: no such user: %s\n", cfg->run_as);
            return EXIT_CONFIG;
        }
    }
    if (check_root_files(cfg, argc, argv) < 0)
        return EXIT_CONFIG;
    if (auth_load(cfg->users) < 0)
        return EXIT_CONFIG;
    /* The certificate and key, loaded as a start would. */
    if (tls_init(cfg, tls_why, sizeof(tls_why)) < 0) {
        fprintf(stderr, FTPD_NAME ": %s\n", tls_why);
        auth_free();
        return EXIT_CONFIG;
    }
    tls_cleanup();
    config_print(cfg, stdout);
    auth_free();
    return fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
}

int main(int argc, char **argv)
{
    static ftpd_config cfg;
    ss_server *srv;
    ss_options opt;
    char addr[sizeof(cfg.listen) + 64];
    const char *which = NULL;
    char why[256];
    int rc;
    static implicit_tls itls; /* FTPS */
    char tls_why[PATH_MAX + 256];

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
    if (cfg.check_config)
        return check_config(&cfg, argc, argv);
    if (check_root_files(&cfg, argc, argv) < 0)
        return EXIT_CONFIG;
    if (auth_load(cfg.users) < 0)
        return EXIT_CONFIG;
    /* --syslog: connected now, before any session process chroots. */
    if (cfg.syslog)
        log_use_syslog(config_syslog_facility(cfg.syslog_facility));
    if (log_open(cfg.syslog ? NULL : cfg.log, cfg.xferlog, &which, why, sizeof(why)) < 0) {
        fprintf(stderr, FTPD_NAME ": --%s: %s: %s\n",
                which != NULL && strcmp(which, cfg.log) == 0 ? "log" : "xferlog",
                which != NULL ? which : "?", why);
        return EXIT_CONFIG;
    }
    if (login_init(&cfg) < 0) {
        fprintf(stderr, FTPD_NAME ": --root: %s: %s\n", cfg.root, strerror(errno));
        return EXIT_CONFIG;
    }
    /* FTPS: the certificate and key are read now, before any privilege
     * drop or chroot; a session never opens them. */
    if (tls_init(&cfg, tls_why, sizeof(tls_why)) < 0) {
        fprintf(stderr, FTPD_NAME ": %s\n", tls_why);
        return EXIT_CONFIG;
    }
    /* Each session holds at most one passive listener, so the session
     * limit bounds the table (twice it with the implicit TLS listener,
     * which has limits of its own). */
    if (pasvshare_init(cfg.tls_implicit_listen[0] != '\0' ? 2 * cfg.max_clients : cfg.max_clients,
                       cfg.max_pasv_per_ip, cfg.ipv6_prefix) < 0 ||
        throttle_init(cfg.max_login_fails, cfg.ban_time, cfg.ipv6_prefix) < 0 ||
        listbudget_init(cfg.max_listing_memory) < 0) {
        fprintf(stderr, FTPD_NAME ": %s\n", strerror(errno));
        return EXIT_RUNTIME;
    }
    /* The shared rate buckets and quota counts, before any session. */
    if (rate_init(&cfg) < 0 || quota_init(cfg.quota_rescan) < 0) {
        fprintf(stderr, FTPD_NAME ": %s\n", strerror(errno));
        return EXIT_RUNTIME;
    }
    handler_init(&cfg);
    warm_up_nss();
    privsep_init(&cfg);

    ss_options_init(&opt);
    opt.address = cfg.listen;
    opt.type = SS_STREAM;
    opt.mode = cfg.mode;
    opt.allow_reuse_address = true;
    opt.request_queue_size = 128;
    opt.block_on_close = true;
    /* The session limits, counted by the library in every mode; in forking
     * mode a slot comes back when the session process is reaped, however
     * it ended (SIGKILL too). Over a limit: handler_reject's 421. */
    opt.max_connections = cfg.max_clients;
    opt.max_per_peer = cfg.max_per_ip;
    opt.peer_prefix6 = cfg.ipv6_prefix;
    opt.reject = handler_reject;
    /* Forking mode stops accepting once max_children sessions run; one
     * more than the session limit lets the loop take the connection over
     * the limit and answer it 421 (in the loop, no process is made for it)
     * instead of leaving it unanswered in the listen backlog. */
    opt.max_children = cfg.max_clients + 1;
    opt.disable_nagle_algorithm = true;
    opt.stop_grace = (double)cfg.stop_grace;
    opt.handle_error = on_error;
    /* Behind a load balancer the PROXY header names the real client, which
     * the limits, the logs, the login throttle, the passive-port share and
     * the PORT/EPRT and data-connection checks then see (docs/scaling.md). */
    opt.proxy_protocol = cfg.proxy_protocol;
    opt.proxy_trusted = cfg.proxy_trusted[0] != '\0' ? cfg.proxy_trusted : NULL;
    srv = ss_server_new(&opt, &ftpd_handler);
    if (srv == NULL) {
        int err = errno; /* fprintf may change errno */

        fprintf(stderr, FTPD_NAME ": cannot listen on %s: %s\n", cfg.listen, strerror(err));
        return err == EINVAL ? EXIT_CONFIG : EXIT_RUNTIME;
    }
    if (cfg.tls_implicit_listen[0] != '\0') {
        opt.address = cfg.tls_implicit_listen;
        itls.srv = ss_server_new(&opt, &ftpd_handler);
        if (itls.srv == NULL) {
            int err = errno;

            fprintf(stderr, FTPD_NAME ": cannot listen on %s: %s\n", cfg.tls_implicit_listen,
                    strerror(err));
            ss_server_free(srv);
            return err == EINVAL ? EXIT_CONFIG : EXIT_RUNTIME;
        }
        itls.main_srv = srv;
        itls.grace = (double)cfg.stop_grace;
        tls_set_listeners(srv, itls.srv);
    }
    if (privsep_enabled() ? check_session_user(&cfg) < 0
                          : cfg.run_as[0] != '\0' && drop_privileges(&cfg) < 0) {
        ss_server_free(itls.srv);
        ss_server_free(srv);
        return EXIT_CONFIG;
    }
    if (privsep_listener_start() < 0) {
        fprintf(stderr, FTPD_NAME ": dropping the listener's capabilities: %s\n", strerror(errno));
        ss_server_free(itls.srv);
        ss_server_free(srv);
        return EXIT_RUNTIME;
    }
    if (install_signals(srv, &cfg) < 0) {
        fprintf(stderr, FTPD_NAME ": signals: %s\n", strerror(errno));
        ss_server_free(itls.srv);
        ss_server_free(srv);
        return EXIT_RUNTIME;
    }
    if (ss_server_address_str(srv, addr, sizeof(addr)) == NULL)
        snprintf(addr, sizeof(addr), "%s", cfg.listen);
    printf("listening on %s\n", addr);
    if (itls.srv != NULL) {
        char iaddr[sizeof(cfg.tls_implicit_listen) + 64];

        if (ss_server_address_str(itls.srv, iaddr, sizeof(iaddr)) == NULL)
            snprintf(iaddr, sizeof(iaddr), "%s", cfg.tls_implicit_listen);
        printf("listening on %s (implicit TLS)\n", iaddr);
        log_msg("listening on %s, implicit TLS", iaddr);
        if (implicit_start(&itls) < 0) {
            fprintf(stderr, FTPD_NAME ": implicit TLS listener: %s\n", strerror(errno));
            implicit_stop(&itls, false);
            ss_server_free(srv);
            return EXIT_RUNTIME;
        }
    }
    fflush(stdout);
    log_msg("listening on %s, root %s, %s mode, anonymous %s%s", addr, cfg.root,
            cfg.mode == SS_MODE_FORKING ? "forking" : "threading", cfg.anonymous ? "on" : "off",
            cfg.anonymous && cfg.anonymous_write ? " (may write)" : "");
    if (privsep_enabled())
        log_msg("sessions: a process each, chrooted and become %s at login%s",
                cfg.run_as[0] != '\0' ? cfg.run_as : "their run-as= user",
                cfg.seccomp ? ", seccomp filter" : "");

    /* Returns once a stop signal's graceful stop is over: the sessions
     * have ended, or were cut at the end of the grace. */
    rc = ss_serve_forever(srv, FTPD_POLL_INTERVAL);
    implicit_stop(&itls, ss_server_stopping(srv));
    if (ss_server_active(srv) > 0)
        log_msg("stopping: %u session(s) still running", ss_server_active(srv));
    /* Waits for whatever still runs (its input is shut down first), and
     * gives the stop signals their previous actions back. */
    ss_server_free(srv);
    tls_cleanup();
    auth_free();
    log_msg("stopped");
    log_close();
    return rc < 0 ? EXIT_RUNTIME : 0;
}
