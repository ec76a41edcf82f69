/*
 * seccomp.c - the session's allow-list of system calls, as classic BPF.
 *
 * The program checks the architecture first (a call made through another
 * ABI - 32-bit int 0x80 on x86_64, or x32 - would carry other numbers and
 * is killed), then compares the call number with each allowed one. A few
 * calls are allowed only with certain arguments (socket's family, kill's
 * target or signal). Everything else ends in SECCOMP_RET_KILL_PROCESS.
 * The list came from strace -f -c over the end-to-end tests of a session
 * under every command (see docs/security.md); a sanitizer build adds what
 * its runtime calls on its own.
 */
#include "seccomp.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define SECCOMP_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SECCOMP_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SECCOMP_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SECCOMP_SANITIZER 1
#endif
#endif

/* Longest program: every allowed call, the argument checks and the frame. */
#define SECCOMP_PROG_MAX 255

/* The calls a session makes, whatever the arguments. Names missing on an
 * architecture (aarch64 has no open, poll, select...) drop out. */
/* clang-format off */
static const int allowed[] = {
    /* files beneath the root: openat2 resolves, the *at calls act */
    SYS_openat2, SYS_openat, SYS_close, SYS_read, SYS_write, SYS_readv, SYS_writev, SYS_pread64,
    SYS_pwrite64, SYS_lseek, SYS_fstat, SYS_newfstatat, SYS_statx, SYS_getdents64, SYS_mkdirat,
    SYS_unlinkat, SYS_renameat2, SYS_readlinkat, SYS_fcntl, SYS_ftruncate, SYS_fchmod,
    SYS_fadvise64, SYS_dup, SYS_dup3,
#ifdef SYS_renameat
    SYS_renameat,
#endif
#ifdef SYS_fchmodat2
    SYS_fchmodat2,
#else
    452, /* fchmodat2 on x86_64 and aarch64 (Linux 6.6) */
#endif
    /* transfers */
    SYS_sendfile, SYS_splice, SYS_pipe2,
    /* sockets (socket itself is checked below) */
    SYS_connect, SYS_accept4, SYS_bind, SYS_listen, SYS_getsockname, SYS_getpeername,
    SYS_setsockopt, SYS_getsockopt, SYS_shutdown, SYS_sendto, SYS_recvfrom, SYS_sendmsg,
    SYS_recvmsg,
    /* waiting and time */
    SYS_ppoll, SYS_pselect6, SYS_clock_gettime, SYS_clock_nanosleep, SYS_nanosleep,
    SYS_gettimeofday, SYS_epoll_pwait, SYS_epoll_ctl, SYS_restart_syscall,
#ifdef SYS_poll
    SYS_poll,
#endif
#ifdef SYS_select
    SYS_select,
#endif
#ifdef SYS_epoll_wait
    SYS_epoll_wait,
#endif
    /* memory: buffers, listings */
    SYS_brk, SYS_mmap, SYS_munmap, SYS_mremap, SYS_mprotect, SYS_madvise,
    /* signals, threads' locks (the shared tables' mutexes), identity */
    SYS_rt_sigaction, SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_futex, SYS_getpid, SYS_gettid,
    SYS_getuid, SYS_geteuid, SYS_getgid, SYS_getegid, SYS_getrandom, SYS_rseq, SYS_set_robust_list,
    /* the end */
    SYS_exit, SYS_exit_group,
#ifdef SECCOMP_SANITIZER
    /* What the sanitizer runtimes call by themselves (allocator, reports,
     * shadow memory, their background thread). */
    SYS_sigaltstack, SYS_sched_yield, SYS_sched_getaffinity, SYS_prctl, SYS_prlimit64,
    SYS_getrlimit, SYS_uname, SYS_clone, SYS_clone3, SYS_msync, SYS_mincore, SYS_getppid,
    SYS_getcwd,
#ifdef SYS_readlink
    SYS_readlink,
#endif
#ifdef SYS_open
    SYS_open,
#endif
#endif
};
/* Before its login a session also changes root and user, installs the
 * second filter, and looks up the system user (NSS reads /etc). */
static const int login_extra[] = {
    SYS_chroot, SYS_chdir, SYS_fchdir, SYS_setgroups, SYS_setresgid, SYS_setresuid, SYS_setuid,
    SYS_setgid, SYS_prctl, SYS_seccomp,
};
/* clang-format on */

typedef struct prog {
    struct sock_filter f[SECCOMP_PROG_MAX];
    unsigned short n;
    unsigned short to_allow[SECCOMP_PROG_MAX]; /* jumps to the final ALLOW */
    unsigned short nj;
    bool full;
} prog;

static void emit(prog *p, struct sock_filter ins)
{
    if (p->n >= SECCOMP_PROG_MAX) {
        p->full = true;
        return;
    }
    p->f[p->n++] = ins;
}

/* if (A == k) allow; else go on. */
static void allow_if(prog *p, uint32_t k)
{
    if (p->n < SECCOMP_PROG_MAX && p->nj < SECCOMP_PROG_MAX)
        p->to_allow[p->nj++] = p->n;
    emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, k, 0, 0));
}

/* The low 32 bits of argument i (both architectures are little-endian). */
static void load_arg(prog *p, unsigned i)
{
    emit(p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                         offsetof(struct seccomp_data, args) + 8 * i));
}

static void load_nr(prog *p)
{
    emit(p,
         (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
}

static void ret(prog *p, uint32_t action)
{
    emit(p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, action));
}

/* Call nr is checked by the len instructions that follow (they end in a
 * return); other calls skip them. */
static void only_for(prog *p, int nr, unsigned char len)
{
    emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, len));
}

static int build(prog *p, bool login)
{
    uint32_t self = (uint32_t)getpid();

#ifndef SECCOMP_AUDIT_ARCH
    (void)p;
    (void)self;
    (void)login;
    errno = EINVAL;
    return -1;
#else
    p->n = 0;
    p->nj = 0;
    p->full = false;
    emit(p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                         offsetof(struct seccomp_data, arch)));
    emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SECCOMP_AUDIT_ARCH, 1, 0));
    ret(p, SECCOMP_RET_KILL_PROCESS);
    load_nr(p);
#ifdef __x86_64__
    /* x32 calls share the architecture and carry this bit. */
    emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1));
    ret(p, SECCOMP_RET_KILL_PROCESS);
#endif
    /* socket: IPv4 and IPv6 only. */
    only_for(p, SYS_socket, 4);
    load_arg(p, 0);
    allow_if(p, AF_INET);
    allow_if(p, AF_INET6);
    ret(p, SECCOMP_RET_ERRNO | (EAFNOSUPPORT & SECCOMP_RET_DATA));
    load_nr(p);
    /* kill: signal 0 to anyone (is it alive?), any signal to itself. */
    only_for(p, SYS_kill, 5);
    load_arg(p, 1);
    allow_if(p, 0);
    load_arg(p, 0);
    allow_if(p, self);
    ret(p, SECCOMP_RET_KILL_PROCESS);
    load_nr(p);
    /* tgkill and tkill (raise, abort): to itself only. */
    only_for(p, SYS_tgkill, 3);
    load_arg(p, 0);
    allow_if(p, self);
    ret(p, SECCOMP_RET_KILL_PROCESS);
    load_nr(p);
    only_for(p, SYS_tkill, 3);
    load_arg(p, 0);
    allow_if(p, self);
    ret(p, SECCOMP_RET_KILL_PROCESS);
    load_nr(p);
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
        allow_if(p, (uint32_t)allowed[i]);
    for (size_t i = 0; login && i < sizeof(login_extra) / sizeof(login_extra[0]); i++)
        allow_if(p, (uint32_t)login_extra[i]);
    ret(p, SECCOMP_RET_KILL_PROCESS);
    ret(p, SECCOMP_RET_ALLOW);
    if (p->full) {
        errno = E2BIG;
        return -1;
    }
    for (unsigned short j = 0; j < p->nj; j++) {
        unsigned at = p->to_allow[j];
        unsigned dist = (unsigned)(p->n - 1) - (at + 1);

        if (dist > 255) {
            errno = E2BIG;
            return -1;
        }
        p->f[at].jt = (unsigned char)dist;
    }
    return 0;
#endif
}

static int install(bool login)
{
    static prog p; /* one program at a time: no stack for 2 KiB */
    struct sock_fprog fp;

    if (build(&p, login) < 0)
        return -1;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -1;
    fp.len = p.n;
    fp.filter = p.f;
    /* Every thread of the process (a sanitizer's runtime may have one). */
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &fp) == 0)
        return 0;
    if (errno != ENOSYS && errno != EINVAL)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp, 0, 0);
}

int seccomp_install_login(void)
{
    return install(true);
}

int seccomp_install(void)
{
    return install(false);
}
