/*
 * cmd_login.c - access control: USER and PASS, the session's root, bans;
 * and the other commands about the session itself: ACCT, QUIT, REIN,
 * CLNT, AUTH.
 */
#include "login.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "cmd.h"
#include "control.h"
#include "dataconn.h"
#include "log.h"
#include "privsep.h"
#include "throttle.h"
#include "timeutil.h"

static int root_fd = -1;

int login_init(const ftpd_config *cfg)
{
    root_fd = open(cfg->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    return root_fd < 0 ? -1 : 0;
}

void login_reset(session *s)
{
    dataconn_forget(s);
    if (s->fs_open)
        vfs_close(&s->fs);
    s->fs_open = false;
    s->have_user = false;
    s->logged_in = false;
    s->anonymous = false;
    s->can_write = false;
    s->can_modify = false;
    /* Logged out (a new session, or REIN): log in again within the limit. */
    s->login_deadline_ms = ftpd_now_ms() + (long long)s->cfg->login_timeout * 1000;
    s->user[0] = '\0';
    s->ident[0] = '\0';
    s->type = 'A';
    s->rest = 0;
    s->epsv_all = false;
    s->have_rnfr = false;
    s->hash_algo = "SHA-256";
    s->mlst_facts = MLST_ALL;
}

/* Sleep until the monotonic clock reads at_ms. */
static void sleep_until(long long at_ms)
{
    struct timespec ts = {.tv_sec = (time_t)(at_ms / 1000), .tv_nsec = (at_ms % 1000) * 1000000L};

    /* Bounded: each turn sleeps towards a fixed absolute time. */
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        continue;
}

int cmd_user(session *s, const char *arg)
{
    if (s->logged_in)
        return reply(s, 530, "Can't change to another user.");
    if (strlen(arg) >= sizeof(s->user)) {
        s->have_user = false;
        return reply(s, 530, "User name too long.");
    }
    snprintf(s->user, sizeof(s->user), "%s", arg);
    s->have_user = true;
    if (s->cfg->anonymous && auth_is_anonymous_name(arg))
        return reply(s, 331, "Anonymous login ok, send your e-mail address as password.");
    return reply(s, 331, "Please specify the password.");
}

/* A failed PASS, answered at the session's fixed moment after it arrived:
 * 530, or 421 and the end of the session once the session's attempts are
 * used up or a ban starts. why goes to the log only. */
static int login_failed(session *s, long long started_ms, const char *why)
{
    int bans;
    long long took = ftpd_now_ms() - started_ms;

    s->login_failures++;
    bans = throttle_done((const struct sockaddr *)&s->peer, s->user, false);
    log_msg("%s: login failed for %s (%s)", s->peer_str, s->user, why);
    if (bans & THROTTLE_BAN_ADDR)
        log_msg("%s: address banned for %u s after %u failed logins", s->peer_str, s->cfg->ban_time,
                s->cfg->max_login_fails);
    if (bans & THROTTLE_BAN_NAME)
        log_msg("%s: account %s banned for %u s after %u failed logins", s->peer_str, s->user,
                s->cfg->ban_time, s->cfg->max_login_fails);
    if (took > FTPD_LOGIN_FAIL_DELAY_MS)
        log_msg("%s: checking the login of %s took %lld ms, more than the %d ms every failure "
                "waits: its timing can be told apart",
                s->peer_str, s->user, took, FTPD_LOGIN_FAIL_DELAY_MS);
    s->have_user = false;
    s->user[0] = '\0';
    sleep_until(started_ms + FTPD_LOGIN_FAIL_DELAY_MS);
    if (bans != 0) {
        reply(s, 421, "Too many failed logins; try again later.");
        return -1;
    }
    if (s->login_failures >= FTPD_LOGIN_ATTEMPTS) {
        reply(s, 421, "Too many failed logins; closing connection.");
        return -1;
    }
    return reply(s, 530, "Login incorrect.");
}

/* The session becomes its system user in its root (privsep.h), or the
 * login fails as a wrong password does; after a drop the served root's
 * descriptor, a way out of the chroot, is closed and the other users'
 * password hashes are erased. Returns 0, or what the failed login's reply
 * returned (-1 ends the session). */
static int login_drop(session *s, const char *run_as, long long started)
{
    char why[PATH_MAX + 128];
    int rc = privsep_login(run_as, s->fs.root_fd, why, sizeof(why));

    if (rc == PRIVSEP_OK) {
        if (privsep_dropped() && root_fd >= 0) {
            close(root_fd);
            root_fd = -1;
            auth_forget();
        }
        return 0;
    }
    vfs_close(&s->fs);
    if (rc == PRIVSEP_BROKEN) {
        (void)login_failed(s, started, why);
        log_msg("%s: session ended: it could not become its user", s->peer_str);
        return -1;
    }
    rc = login_failed(s, started, why);
    return rc < 0 ? rc : 1;
}

static int login_anonymous(session *s, const char *password, long long started)
{
    char quoted[2 * FTPD_USER_MAX + 3];
    int rc;

    snprintf(s->ident, sizeof(s->ident), "%s", password[0] != '\0' ? password : "anonymous");
    if (vfs_open_home(&s->fs, root_fd, "") < 0) {
        log_msg("%s: anonymous login: cannot open the root: %s", s->peer_str, strerror(errno));
        s->have_user = false;
        reply(s, 421, "Service not available.");
        return -1;
    }
    rc = login_drop(s, NULL, started);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    s->fs_open = true;
    s->logged_in = true;
    s->anonymous = true;
    s->can_write = s->cfg->anonymous_write;
    s->can_modify = s->cfg->anonymous_modify;
    log_quote(s->ident, quoted, sizeof(quoted));
    log_msg("%s: login ok, anonymous (as %s), password %s", s->peer_str, s->user, quoted);
    return reply(s, 230, "Login successful.");
}

int cmd_pass(session *s, const char *arg)
{
    long long started = ftpd_now_ms();
    auth_account acct;
    int rc;

    if (s->logged_in)
        return reply(s, 230, "Already logged in.");
    if (!s->have_user)
        return reply(s, 503, "Login with USER first.");
    if (arg == NULL)
        arg = "";
    if (s->cfg->anonymous && auth_is_anonymous_name(s->user))
        return login_anonymous(s, arg, started);
    if (!throttle_attempt((const struct sockaddr *)&s->peer, s->user)) {
        log_msg("%s: login of %s refused: banned after failed logins", s->peer_str, s->user);
        sleep_until(started + FTPD_LOGIN_FAIL_DELAY_MS);
        reply(s, 421, "Too many failed logins; try again later.");
        return -1;
    }
    if (auth_check(s->user, arg, &acct) < 0)
        return login_failed(s, started, "bad user or password");
    /* Resolved at every login, beneath the root and through no symlink: a
     * home changed since the start (or since the last login) cannot lead
     * out. A home that cannot be opened so fails like a wrong password. */
    if (vfs_open_home(&s->fs, root_fd, acct.home) < 0) {
        char why[PATH_MAX + 64];

        snprintf(why, sizeof(why), "home '%s' cannot be opened confined: %s", acct.home,
                 strerror(errno));
        return login_failed(s, started, why);
    }
    rc = login_drop(s, acct.run_as, started);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    throttle_done((const struct sockaddr *)&s->peer, s->user, true);
    s->fs_open = true;
    s->logged_in = true;
    s->account = acct;
    s->anonymous = false;
    s->can_write = true;
    s->can_modify = true;
    log_msg("%s: login ok, user %s", s->peer_str, s->user);
    return reply(s, 230, "Login successful.");
}

int cmd_acct(session *s, const char *arg)
{
    return reply(s, 202, "ACCT not needed.");
}

int cmd_quit(session *s, const char *arg)
{
    reply(s, 221, "Goodbye.");
    return -1;
}

int cmd_rein(session *s, const char *arg)
{
    bool was_in = s->logged_in;
    long long deadline = s->login_deadline_ms;

    /* A process that has become its user cannot become another. */
    if (privsep_dropped())
        return reply(s, 502, "REIN not available here; reconnect to log in again.");

    login_reset(s);
    /* Only a logout starts a new login deadline: REIN before a login must
     * not push back the one set at connect. */
    if (!was_in)
        s->login_deadline_ms = deadline;
    return reply(s, 220, "Ready for new user.");
}

/* Clients announce their name (CLNT); nothing depends on it. */
int cmd_clnt(session *s, const char *arg)
{
    return reply(s, 200, "Noted.");
}
