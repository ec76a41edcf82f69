/*
 * seccomp.h - the system calls a logged-in session process may make
 * (--seccomp, forking mode).
 *
 * After the login (and the drop to the session's system user, when there
 * is one) a session only reads and writes its sockets and files beneath
 * its root, lists directories, makes data connections and ends. The
 * filter allows exactly the calls that takes; any other call kills the
 * session process at once (SECCOMP_RET_KILL_PROCESS), and nothing else:
 * the listener and the other sessions are separate processes. socket()
 * is allowed for IPv4 and IPv6 only; other families fail with
 * EAFNOSUPPORT (a library that tries a local socket - syslog(3), nscd -
 * sees the failure it would see in the chroot anyway). kill() is allowed
 * with signal 0 (the passive-port table asks whether a holder lives) and
 * to the session itself. A session before its login has a filter of its
 * own, wider by the calls its drop makes. docs/security.md lists the calls
 * and why.
 */
#ifndef FTPD_SECCOMP_H
#define FTPD_SECCOMP_H

/* Install the filter in the calling process (all its threads), after
 * setting no_new_privs. Returns 0, or -1 with errno (EINVAL: the build's
 * architecture is not one the filter knows; the kernel's errors from
 * seccomp(2)). */
int seccomp_install(void);

/* The filter of a session before its login, installed before a byte from
 * the client is read: the same calls, and those the login's drop makes
 * (chroot, chdir, fchdir, setgroups, setresgid, setresuid, setuid, setgid,
 * prctl, seccomp). The filter of seccomp_install stacks on it at the
 * login. Returns as seccomp_install. */
int seccomp_install_login(void);

#endif
