/*
 * privsep.c - a session process that becomes its user (forking mode).
 *
 * The order of the drop matters. Everything that reads the system's files
 * (the user and its groups, the names listings show) is looked up while
 * "/" is still the real root; then chroot into the user's root through the
 * descriptor the login opened beneath the served root (never by a path
 * someone could change meanwhile); then the groups, the group and last the
 * user, after which the kernel clears every capability. A failure before
 * the chroot changes nothing and fails the login like a wrong password; a
 * failure after it ends the session, which never goes on half dropped.
 */
#include "privsep.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "listfmt.h"
#include "seccomp.h"
#include "secfile.h"

/* Capability numbers are below 64 on every kernel this builds for; the
 * bounding set's unknown ones fail with EINVAL and are skipped. */
#define PRIVSEP_CAP_MAX 64

static const ftpd_config *g_cfg;
static bool g_enabled;
static bool g_dropped;

void privsep_init(const ftpd_config *cfg)
{
    g_cfg = cfg;
    g_enabled = cfg->mode == SS_MODE_FORKING && geteuid() == 0;
    g_dropped = false;
    /* localtime_r (the xferlog's times) reads the zone once; read here, it
     * is known in a chroot without /etc/localtime. */
    tzset();
}

bool privsep_enabled(void)
{
    return g_enabled;
}

bool privsep_dropped(void)
{
    return g_dropped;
}

/* The capabilities a login needs: chroot, change user and groups, and open
 * a home only its owner may search. */
static bool login_cap(int cap)
{
    return cap == CAP_SETUID || cap == CAP_SETGID || cap == CAP_SYS_CHROOT ||
           cap == CAP_DAC_READ_SEARCH;
}

static int keep_login_caps(void)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

    /* The bounding set first, while CAP_SETPCAP is still held (a session
     * of a listener that dropped already finds the set made). */
    for (int cap = 0; cap < PRIVSEP_CAP_MAX; cap++) {
        if (login_cap(cap) || prctl(PR_CAPBSET_READ, cap, 0, 0, 0) <= 0)
            continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            return -1;
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return -1;
    /* Of those four, what this process has: a service manager may have
     * bounded it further (the login then fails where it needs the rest). */
    struct __user_cap_data_struct now[_LINUX_CAPABILITY_U32S_3];
    if (syscall(SYS_capget, &hdr, now) < 0)
        return -1;
    memset(data, 0, sizeof(data));
    for (int cap = 0; cap < 32 * _LINUX_CAPABILITY_U32S_3; cap++) {
        uint32_t bit = 1u << (cap % 32);
        if (!login_cap(cap) || (now[cap / 32].permitted & bit) == 0)
            continue;
        data[cap / 32].effective |= bit;
        data[cap / 32].permitted |= bit;
    }
    return (int)syscall(SYS_capset, &hdr, data);
}

int privsep_listener_start(void)
{
    if (!g_enabled || g_cfg->run_as[0] == '\0')
        return 0;
    /* Bound, and every session will drop: from now on the listener needs
     * only to fork the sessions, which need what a login does; it stays
     * uid 0 (its logs, the users file and the certificate are root's). */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || keep_login_caps() < 0)
        return -1;
    return 0;
}

int privsep_session_start(void)
{
    if (g_cfg == NULL || g_cfg->mode != SS_MODE_FORKING)
        return 0;
    /* Nothing this process runs may gain privileges through execve; it
     * never calls execve, and now it could not profit from one. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -1;
    /* Every session will drop: until then hold only what the drop needs.
     * Without --run-as a session whose user has no run-as= stays root, as
     * before, and must keep what root has. */
    if (g_enabled && g_cfg->run_as[0] != '\0' && keep_login_caps() < 0)
        return -1;
    return g_cfg->seccomp ? seccomp_install_login() : 0;
}

static int with_seccomp(char *why, size_t size, int failure)
{
    if (!g_cfg->seccomp)
        return PRIVSEP_OK;
    if (seccomp_install() < 0) {
        snprintf(why, size, "cannot install the seccomp filter: %s", strerror(errno));
        return failure;
    }
    return PRIVSEP_OK;
}

/* The names a listing may show from now on, looked up while /etc is the
 * system's: NSS is not asked again, since after the chroot it would read
 * the user's own files (and could load a module from them). */
static void fix_listing_names(const struct passwd *pw)
{
    listfmt_id_name names[4];
    struct passwd rpw, *rfound = NULL;
    struct group gr, *gfound = NULL;
    char buf[4096];
    size_t n = 0;

    names[n].user = true;
    names[n].id = (unsigned)pw->pw_uid;
    snprintf(names[n++].name, sizeof(names[0].name), "%s", pw->pw_name);
    if (getgrgid_r(pw->pw_gid, &gr, buf, sizeof(buf), &gfound) == 0 && gfound != NULL) {
        names[n].user = false;
        names[n].id = (unsigned)pw->pw_gid;
        snprintf(names[n++].name, sizeof(names[0].name), "%s", gr.gr_name);
    }
    if (getpwuid_r(0, &rpw, buf, sizeof(buf), &rfound) == 0 && rfound != NULL) {
        names[n].user = true;
        names[n].id = 0;
        snprintf(names[n++].name, sizeof(names[0].name), "%s", rpw.pw_name);
    }
    gfound = NULL;
    if (getgrgid_r(0, &gr, buf, sizeof(buf), &gfound) == 0 && gfound != NULL) {
        names[n].user = false;
        names[n].id = 0;
        snprintf(names[n++].name, sizeof(names[0].name), "%s", gr.gr_name);
    }
    listfmt_fixed_names(names, n);
}

/* Become pw (groups from u) inside the directory home_fd. */
static int drop(const struct passwd *pw, const secfile_user *u, int home_fd, char *why, size_t size)
{
    struct sigaction ignore;
    const char *step;

    memset(&ignore, 0, sizeof(ignore));
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    /* Before this, nothing has changed but the working directory. */
    if (fchdir(home_fd) < 0 || chroot(".") < 0) {
        snprintf(why, size, "cannot chroot into the user's root: %s", strerror(errno));
        return PRIVSEP_REFUSED;
    }
    step = "chdir /";
    if (chdir("/") < 0)
        goto broken;
    step = "setgroups";
    if (setgroups((size_t)u->ngroups, u->groups) < 0)
        goto broken;
    step = "setresgid";
    if (setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0)
        goto broken;
    step = "setresuid";
    if (setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0)
        goto broken;
    /* The kernel cleared every capability with the last uid 0; make sure
     * no way back is left. */
    step = "root could come back";
    if (setuid(0) == 0 || setgid(0) == 0 || getuid() != pw->pw_uid || geteuid() != pw->pw_uid ||
        getgid() != pw->pw_gid || getegid() != pw->pw_gid) {
        errno = EPERM;
        goto broken;
    }
    step = "no_new_privs";
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        goto broken;
    /* Reopening the logs by name is the listener's job: in the chroot the
     * name would mean a file of the user's. */
    step = "SIGHUP";
    if (sigaction(SIGHUP, &ignore, NULL) < 0)
        goto broken;
    g_dropped = true;
    return PRIVSEP_OK;
broken:
    snprintf(why, size, "dropping to %s failed at %s: %s", pw->pw_name, step, strerror(errno));
    return PRIVSEP_BROKEN;
}

int privsep_login(const char *run_as, int home_fd, char *why, size_t size)
{
    struct passwd pw, *found = NULL;
    char buf[4096];
    secfile_user u;
    const char *target;
    int err, rc;

    if (g_cfg == NULL)
        return PRIVSEP_OK;
    target = run_as != NULL && run_as[0] != '\0' ? run_as : g_cfg->run_as;
    if (target[0] == '\0')
        return with_seccomp(why, size, PRIVSEP_BROKEN);
    err = getpwnam_r(target, &pw, buf, sizeof(buf), &found);
    if (err != 0 || found == NULL) {
        snprintf(why, size, "run-as %s: %s", target,
                 err != 0 ? strerror(err) : "no such system user");
        return PRIVSEP_REFUSED;
    }
    if (!g_enabled) {
        /* One process for every session (or no root to change user): a
         * session can only be the user the process already is. */
        if (pw.pw_uid == geteuid())
            return with_seccomp(why, size, PRIVSEP_BROKEN);
        snprintf(why, size, "run-as %s needs --mode forking, started as root", target);
        return PRIVSEP_REFUSED;
    }
    if (pw.pw_uid == 0) {
        snprintf(why, size, "run-as %s is root; a session never stays root", target);
        return PRIVSEP_REFUSED;
    }
    if (secfile_user_init(&u, target) < 0) {
        snprintf(why, size, "run-as %s: cannot read its groups: %s", target, strerror(errno));
        return PRIVSEP_REFUSED;
    }
    fix_listing_names(&pw);
    rc = drop(&pw, &u, home_fd, why, size);
    secfile_user_free(&u);
    if (rc == PRIVSEP_REFUSED)
        listfmt_fixed_names(NULL, 0);
    if (rc != PRIVSEP_OK)
        return rc;
    return with_seccomp(why, size, PRIVSEP_BROKEN);
}
