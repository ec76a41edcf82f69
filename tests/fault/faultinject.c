/*
 * faultinject.c - make chosen calls fail on their Nth call (LD_PRELOAD).
 *
 * Loaded into a program with LD_PRELOAD, it stands in front of malloc,
 * calloc, realloc, pthread_create, fork, eventfd, accept4 and poll, and
 * passes every call on to the real function (dlsym RTLD_NEXT) except the
 * ones it is told to fail. Settings come from the environment:
 *
 *   FAULT_FUNC   malloc, calloc, realloc, alloc (any of those three),
 *                pthread_create, fork, eventfd, accept4 or poll
 *   FAULT_NTH    the call, counted from 1, that fails first (default 1)
 *   FAULT_COUNT  how many calls in a row fail from there (default 1)
 *   FAULT_MS     instead of a count: every call fails for this many
 *                milliseconds after the first failure (memory short for a
 *                while, not for one call)
 *   FAULT_ERRNO  the error: a name (ENOMEM, EMFILE, EAGAIN, ...) or a number;
 *                by default ENOMEM for allocations and poll, EAGAIN for
 *                pthread_create and fork, EMFILE for eventfd and accept4
 *   FAULT_ARM    serve: count only calls made after the first accept4 or
 *                poll has returned (a server is set up and serving by then);
 *                listen or bind: after the first call of that function;
 *                unset: counting starts with the process
 *   FAULT_LOG    a file that gets one line per failed call:
 *                "faultinject: pid P: FUNC call N failed with ENAME"
 *
 * The count is shared by the process and the children it forks (it lives in
 * a shared mapping made before any fork): "the Nth call" is the Nth call in
 * the whole server, so a failure meant for one child does not repeat in
 * every child that inherits the same count.
 * Nothing here allocates: dlsym may itself call calloc before the real one
 * is known, and those calls are served from a small static arena.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

enum fn {
    FN_MALLOC,
    FN_CALLOC,
    FN_REALLOC,
    FN_PTHREAD_CREATE,
    FN_FORK,
    FN_EVENTFD,
    FN_ACCEPT4,
    FN_POLL,
    FN_COUNT
};

static const char *const fn_names[FN_COUNT] = {
    "malloc", "calloc", "realloc", "pthread_create", "fork", "eventfd", "accept4", "poll",
};

static const struct {
    const char *name;
    int value;
} errno_names[] = {
    {"ENOMEM", ENOMEM}, {"EMFILE", EMFILE},   {"ENFILE", ENFILE},
    {"EAGAIN", EAGAIN}, {"ENOBUFS", ENOBUFS}, {"EINTR", EINTR},
    {"EINVAL", EINVAL}, {"EPERM", EPERM},     {"ECONNABORTED", ECONNABORTED},
    {"EBADF", EBADF},   {"EIO", EIO},
};

/* ---- settings ------------------------------------------------------------ */

static struct {
    bool on;
    bool match[FN_COUNT];
    unsigned long nth, count;
    long ms;
    int err; /* 0: the function's default */
    int arm; /* ARM_* */
    int log_fd;
} cfg = {.log_fd = -1};

enum { ARM_NONE, ARM_SERVE, ARM_LISTEN, ARM_BIND };

/* Shared with forked children. */
struct shared {
    atomic_bool armed;
    atomic_ulong calls;
    atomic_llong window_end_ns; /* FAULT_MS: 0 until the first failure */
};

static atomic_int configured;
static struct shared *sh;

static unsigned long env_ulong(const char *name, unsigned long dflt)
{
    const char *v = getenv(name);
    char *end;
    unsigned long n;

    if (v == NULL || *v == '\0')
        return dflt;
    n = strtoul(v, &end, 10);
    return *end == '\0' ? n : dflt;
}

static void configure(void)
{
    int expected = 0;
    const char *f, *e, *a, *log;

    /* 0 -> 1 while reading, 2 once read; a second caller meanwhile (only
     * possible while the first constructor runs) reads no settings. */
    if (!atomic_compare_exchange_strong(&configured, &expected, 1))
        return;
    f = getenv("FAULT_FUNC");
    if (f != NULL && *f != '\0') {
        if (strcmp(f, "alloc") == 0) {
            cfg.match[FN_MALLOC] = cfg.match[FN_CALLOC] = cfg.match[FN_REALLOC] = true;
            cfg.on = true;
        }
        for (int i = 0; i < FN_COUNT; i++) {
            if (strcmp(f, fn_names[i]) == 0) {
                cfg.match[i] = true;
                cfg.on = true;
            }
        }
    }
    cfg.nth = env_ulong("FAULT_NTH", 1);
    if (cfg.nth == 0)
        cfg.nth = 1;
    cfg.count = env_ulong("FAULT_COUNT", 1);
    cfg.ms = (long)env_ulong("FAULT_MS", 0);
    e = getenv("FAULT_ERRNO");
    if (e != NULL && *e != '\0') {
        for (size_t i = 0; i < sizeof errno_names / sizeof errno_names[0]; i++)
            if (strcmp(e, errno_names[i].name) == 0)
                cfg.err = errno_names[i].value;
        if (cfg.err == 0)
            cfg.err = (int)env_ulong("FAULT_ERRNO", 0);
    }
    if (cfg.on) {
        void *m = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            cfg.on = false; /* nothing fails, and the log stays empty */
        else
            sh = m;
    }
    a = getenv("FAULT_ARM");
    if (a != NULL && strcmp(a, "serve") == 0)
        cfg.arm = ARM_SERVE;
    else if (a != NULL && strcmp(a, "listen") == 0)
        cfg.arm = ARM_LISTEN;
    else if (a != NULL && strcmp(a, "bind") == 0)
        cfg.arm = ARM_BIND;
    if (cfg.on && cfg.arm == ARM_NONE)
        atomic_store(&sh->armed, true);
    log = getenv("FAULT_LOG");
    if (log != NULL && *log != '\0')
        cfg.log_fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    atomic_store(&configured, 2);
}

static const char *errno_name(int err)
{
    for (size_t i = 0; i < sizeof errno_names / sizeof errno_names[0]; i++)
        if (errno_names[i].value == err)
            return errno_names[i].name;
    return "E?";
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The error this call of fn fails with, or 0 to pass it on. */
static int should_fail(enum fn fn)
{
    unsigned long n;
    int err = 0;

    if (atomic_load(&configured) != 2)
        configure();
    if (!cfg.on || !cfg.match[fn] || !atomic_load(&sh->armed))
        return 0;
    n = atomic_fetch_add(&sh->calls, 1) + 1;
    if (n < cfg.nth)
        return 0;
    if (cfg.ms > 0) {
        long long end = atomic_load(&sh->window_end_ns), now = now_ns();
        if (end == 0) {
            long long want = now + (long long)cfg.ms * 1000000LL;
            if (!atomic_compare_exchange_strong(&sh->window_end_ns, &end, want))
                end = atomic_load(&sh->window_end_ns);
            else
                end = want;
        }
        if (now >= end)
            return 0;
    } else if (cfg.count > 0 && n - cfg.nth >= cfg.count) {
        return 0;
    }
    err = cfg.err;
    if (err == 0)
        err = (fn == FN_PTHREAD_CREATE || fn == FN_FORK) ? EAGAIN
              : (fn == FN_EVENTFD || fn == FN_ACCEPT4)   ? EMFILE
                                                         : ENOMEM;
    if (cfg.log_fd >= 0) {
        char line[160];
        int len = snprintf(line, sizeof line, "faultinject: pid %ld: %s call %lu failed with %s\n",
                           (long)getpid(), fn_names[fn], n, errno_name(err));
        if (len > 0 && (size_t)len < sizeof line && write(cfg.log_fd, line, (size_t)len) < 0) {
            /* Nowhere left to say it. */
        }
    }
    return err;
}

/* Called after a call of fn has returned: start counting if fn is the mark. */
static void maybe_arm(int arm_on)
{
    if (cfg.on && (cfg.arm == arm_on) && !atomic_load(&sh->armed))
        atomic_store(&sh->armed, true);
}

/* ---- the real functions ---------------------------------------------------- */

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int (*real_pthread_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
static pid_t (*real_fork)(void);
static int (*real_eventfd)(unsigned int, int);
static int (*real_accept4)(int, struct sockaddr *, socklen_t *, int);
static int (*real_poll)(struct pollfd *, nfds_t, int);
static int (*real_listen)(int, int);
static int (*real_bind)(int, const struct sockaddr *, socklen_t);

/* What dlsym allocates before real_calloc is known comes from here, and is
 * never given back. */
static _Alignas(max_align_t) char arena[16384];
static size_t arena_used;
static bool resolving;

static bool in_arena(const void *p)
{
    return (const char *)p >= arena && (const char *)p < arena + sizeof arena;
}

static void *arena_alloc(size_t n)
{
    size_t at = (arena_used + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1);
    if (at > sizeof arena || n > sizeof arena - at)
        return NULL;
    arena_used = at + n;
    return arena + at; /* static storage: already zero */
}

static void resolve(void)
{
    if (resolving)
        return;
    resolving = true;
    real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    real_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    real_pthread_create = (int (*)(pthread_t *, const pthread_attr_t *, void *(*)(void *),
                                   void *))dlsym(RTLD_NEXT, "pthread_create");
    real_fork = (pid_t(*)(void))dlsym(RTLD_NEXT, "fork");
    real_eventfd = (int (*)(unsigned int, int))dlsym(RTLD_NEXT, "eventfd");
    real_accept4 = (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
    real_poll = (int (*)(struct pollfd *, nfds_t, int))dlsym(RTLD_NEXT, "poll");
    real_listen = (int (*)(int, int))dlsym(RTLD_NEXT, "listen");
    real_bind = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
    resolving = false;
}

__attribute__((constructor)) static void faultinject_init(void)
{
    if (real_free == NULL)
        resolve();
    configure();
}

/* ---- the stand-ins --------------------------------------------------------- */

/* The real function, found on first use. One still unknown after that (only
 * possible while dlsym itself runs) makes the call fail with ENOSYS. */
#define NEED(fp, failed)                                                                           \
    do {                                                                                           \
        if ((fp) == NULL)                                                                          \
            resolve();                                                                             \
        if ((fp) == NULL) {                                                                        \
            errno = ENOSYS;                                                                        \
            return failed;                                                                         \
        }                                                                                          \
    } while (0)

EXPORT void *malloc(size_t n)
{
    int err;

    if (real_malloc == NULL && !resolving)
        resolve();
    if (real_malloc == NULL)
        return arena_alloc(n);
    err = should_fail(FN_MALLOC);
    if (err != 0) {
        errno = err;
        return NULL;
    }
    return real_malloc(n);
}

EXPORT void *calloc(size_t nmemb, size_t size)
{
    int err;

    if (real_calloc == NULL && !resolving)
        resolve();
    if (real_calloc == NULL)
        return size != 0 && nmemb > (size_t)-1 / size ? NULL : arena_alloc(nmemb * size);
    err = should_fail(FN_CALLOC);
    if (err != 0) {
        errno = err;
        return NULL;
    }
    return real_calloc(nmemb, size);
}

EXPORT void *realloc(void *p, size_t n)
{
    int err;

    if (real_realloc == NULL && !resolving)
        resolve();
    if (real_realloc == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    err = should_fail(FN_REALLOC);
    if (err != 0) {
        errno = err;
        return NULL;
    }
    if (in_arena(p)) {
        /* The old size is unknown: copy what can have been used. */
        void *q = malloc(n);
        size_t room = (size_t)(arena + sizeof arena - (char *)p);
        if (q != NULL)
            memcpy(q, p, n < room ? n : room);
        return q;
    }
    return real_realloc(p, n);
}

EXPORT void free(void *p)
{
    if (p == NULL || in_arena(p))
        return;
    if (real_free == NULL)
        resolve();
    if (real_free != NULL) /* else: kept, as arena blocks are */
        real_free(p);
}

EXPORT int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    int err = should_fail(FN_PTHREAD_CREATE);
    if (err != 0)
        return err;
    NEED(real_pthread_create, ENOSYS);
    return real_pthread_create(t, attr, fn, arg);
}

EXPORT pid_t fork(void)
{
    int err = should_fail(FN_FORK);
    if (err != 0) {
        errno = err;
        return -1;
    }
    NEED(real_fork, -1);
    return real_fork();
}

EXPORT int eventfd(unsigned int initval, int flags)
{
    int err = should_fail(FN_EVENTFD);
    if (err != 0) {
        errno = err;
        return -1;
    }
    NEED(real_eventfd, -1);
    return real_eventfd(initval, flags);
}

EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    int err = should_fail(FN_ACCEPT4);
    if (err != 0) {
        errno = err;
        return -1;
    }
    NEED(real_accept4, -1);
    int r = real_accept4(fd, addr, len, flags);
    maybe_arm(ARM_SERVE);
    return r;
}

EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    int err = should_fail(FN_POLL);
    if (err != 0) {
        errno = err;
        return -1;
    }
    NEED(real_poll, -1);
    int r = real_poll(fds, n, timeout);
    maybe_arm(ARM_SERVE);
    return r;
}

EXPORT int listen(int fd, int backlog)
{
    int r;

    NEED(real_listen, -1);
    r = real_listen(fd, backlog);
    maybe_arm(ARM_LISTEN);
    return r;
}

EXPORT int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    int r;

    NEED(real_bind, -1);
    r = real_bind(fd, addr, len);
    maybe_arm(ARM_BIND);
    return r;
}
