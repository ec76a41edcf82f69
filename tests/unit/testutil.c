/*
 * testutil.c - shared helpers for the libsockserv unit tests.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Servers and serving threads a test may leave behind when an assertion
 * fails half-way; tu_teardown releases them so the next test starts clean. */
#define TU_MAX_SERVERS 256
#define TU_MAX_SERVES 64
/* Highest descriptor number looked at when searching a process's fds. */
#define TU_SCAN_FDS 1024

static ss_server *tracked_servers[TU_MAX_SERVERS];
static tu_serve serve_slots[TU_MAX_SERVES];
static bool serve_slot_used[TU_MAX_SERVES];
static unsigned path_counter;

static const char *const kind_names[TU_KIND_COUNT] = {
    "tcp", "udp", "unix-stream", "unix-dgram", "tcp6", "udp6",
};

const char *tu_kind_name(enum tu_kind kind)
{
    return kind < TU_KIND_COUNT ? kind_names[kind] : "?";
}

const char *tu_mode_name(ss_mode mode)
{
    switch (mode) {
    case SS_MODE_SYNC:
        return "sync";
    case SS_MODE_THREADING:
        return "threading";
    case SS_MODE_FORKING:
        return "forking";
    case SS_MODE_POOL:
        return "pool";
    }
    return "?";
}

bool tu_kind_is_datagram(enum tu_kind kind)
{
    return kind == TU_UDP || kind == TU_UNIX_DGRAM || kind == TU_UDP6;
}

bool tu_kind_is_unix(enum tu_kind kind)
{
    return kind == TU_UNIX_STREAM || kind == TU_UNIX_DGRAM;
}

bool tu_kind_is_ipv6(enum tu_kind kind)
{
    return kind == TU_TCP6 || kind == TU_UDP6;
}

bool tu_have_ipv6(void)
{
    struct sockaddr_in6 a;
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok = false;

    if (fd < 0)
        return false;
    memset(&a, 0, sizeof(a));
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

int tu_unix_path(char *buf, size_t size)
{
    const char *dir = getenv("TMPDIR");

    /* Long TMPDIRs would push the path past sun_path; /tmp always fits. */
    if (dir == NULL || strlen(dir) > 40)
        dir = "/tmp";
    snprintf(buf, size, "%s/ssut-%d-%u.sock", dir, (int)getpid(), path_counter++);
    unlink(buf);
    return 0;
}

void tu_options(ss_options *opt, enum tu_kind kind, ss_mode mode, char *path, size_t size)
{
    ss_options_init(opt);
    opt->mode = mode;
    opt->type = tu_kind_is_datagram(kind) ? SS_DATAGRAM : SS_STREAM;
    switch (kind) {
    case TU_TCP:
    case TU_UDP:
        opt->address = "127.0.0.1:0";
        break;
    case TU_TCP6:
    case TU_UDP6:
        opt->address = "[::1]:0";
        break;
    case TU_UNIX_STREAM:
    case TU_UNIX_DGRAM: {
        char p[TU_PATH_MAX];

        tu_unix_path(p, sizeof(p));
        snprintf(path, size, "unix:%s", p);
        opt->address = path;
        break;
    }
    default:
        break;
    }
}

ss_server *tu_server_new(const ss_options *opt, const ss_handler *h)
{
    ss_server *srv = ss_server_new(opt, h);

    if (srv == NULL)
        return NULL;
    for (size_t i = 0; i < TU_MAX_SERVERS; i++) {
        if (tracked_servers[i] == NULL) {
            tracked_servers[i] = srv;
            break;
        }
    }
    return srv;
}

void tu_server_free(ss_server *srv)
{
    for (size_t i = 0; i < TU_MAX_SERVERS; i++) {
        if (tracked_servers[i] == srv)
            tracked_servers[i] = NULL;
    }
    ss_server_free(srv);
}

/* ---- serving thread ------------------------------------------------------ */

static void *serve_main(void *arg)
{
    tu_serve *s = arg;
    char one = 1;
    ssize_t w;

    s->rc = ss_serve_forever(s->srv, s->poll_interval);
    s->err = errno;
    do {
        w = write(s->done[1], &one, 1);
    } while (w < 0 && errno == EINTR);
    return NULL;
}

tu_serve *tu_serve_start(ss_server *srv, double poll_interval)
{
    tu_serve *s = NULL;
    size_t i;

    for (i = 0; i < TU_MAX_SERVES; i++) {
        if (!serve_slot_used[i])
            break;
    }
    if (i == TU_MAX_SERVES) {
        errno = ENOSPC;
        return NULL;
    }
    s = &serve_slots[i];
    memset(s, 0, sizeof(*s));
    s->srv = srv;
    s->poll_interval = poll_interval;
    if (pipe2(s->done, O_CLOEXEC) < 0)
        return NULL;
    if (pthread_create(&s->thread, NULL, serve_main, s) != 0) {
        close(s->done[0]);
        close(s->done[1]);
        return NULL;
    }
    s->running = true;
    serve_slot_used[i] = true;
    return s;
}

int tu_serve_wait(tu_serve *s, int timeout_ms)
{
    if (s == NULL || !s->running)
        return 0;
    if (tu_wait_readable(s->done[0], timeout_ms) != 1) {
        errno = ETIMEDOUT;
        return -1;
    }
    pthread_join(s->thread, NULL);
    s->running = false;
    close(s->done[0]);
    close(s->done[1]);
    serve_slot_used[s - serve_slots] = false;
    return 0;
}

int tu_serve_stop(tu_serve *s)
{
    if (s == NULL || !s->running)
        return 0;
    ss_shutdown(s->srv);
    return tu_serve_wait(s, TU_WAIT_MS);
}

/* ---- clients ------------------------------------------------------------- */

/* A wildcard bound address is reached through the loopback address. */
static void wildcard_to_loopback(struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;

        if (in->sin_addr.s_addr == htonl(INADDR_ANY))
            in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else if (ss->ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

        if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
            in6->sin6_addr = in6addr_loopback;
    }
}

int tu_client_addr(const struct sockaddr *addr, socklen_t len, int type, char *path, size_t size)
{
    struct sockaddr_storage ss;
    int fd = -1;

    if (len > sizeof(ss)) {
        errno = EINVAL;
        return -1;
    }
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, addr, len);
    wildcard_to_loopback(&ss);
    fd = socket(ss.ss_family, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (ss.ss_family == AF_UNIX && type == SOCK_DGRAM && path != NULL) {
        struct sockaddr_un un;
        char p[TU_PATH_MAX];

        tu_unix_path(p, sizeof(p));
        memset(&un, 0, sizeof(un));
        un.sun_family = AF_UNIX;
        memcpy(un.sun_path, p, strlen(p) + 1);
        if (bind(fd, (struct sockaddr *)&un, sizeof(un)) < 0)
            goto fail;
        snprintf(path, size, "%s", p);
    } else if (path != NULL && size > 0) {
        path[0] = '\0';
    }
    for (int tries = 0; tries < 100; tries++) {
        if (connect(fd, (struct sockaddr *)&ss, len) == 0)
            return fd;
        if (errno != EINTR)
            break;
    }
fail : {
    int e = errno;

    close(fd);
    errno = e;
    return -1;
}
}

int tu_client(const ss_server *srv, char *path, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int type = ss_server_type(srv) == SS_DATAGRAM ? SOCK_DGRAM : SOCK_STREAM;

    if (ss_server_address(srv, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    return tu_client_addr((struct sockaddr *)&ss, len, type, path, size);
}

ssize_t tu_send_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    size_t done = 0;

    while (done < n) {
        ssize_t w = send(fd, p + done, n - done, MSG_NOSIGNAL);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        done += (size_t)w;
    }
    return (ssize_t)n;
}

int tu_wait_readable(int fd, int timeout_ms)
{
    double deadline = tu_now() + timeout_ms / 1000.0;

    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)((deadline - tu_now()) * 1000.0);
        int r;

        if (left < 0)
            left = 0;
        r = poll(&p, 1, left);
        if (r > 0)
            return 1;
        if (r == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

ssize_t tu_recv_exact(int fd, void *buf, size_t n, int timeout_ms)
{
    char *p = buf;
    size_t done = 0;
    double deadline = tu_now() + timeout_ms / 1000.0;

    while (done < n) {
        int left = (int)((deadline - tu_now()) * 1000.0);
        ssize_t r;

        if (left <= 0 || tu_wait_readable(fd, left) != 1) {
            errno = ETIMEDOUT;
            return -1;
        }
        r = recv(fd, p + done, n - done, MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -1;
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    return (ssize_t)done;
}

ssize_t tu_recv_line(int fd, char *buf, size_t size, int timeout_ms)
{
    size_t done = 0;
    double deadline = tu_now() + timeout_ms / 1000.0;

    if (size == 0) {
        errno = EINVAL;
        return -1;
    }
    while (done + 1 < size) {
        int left = (int)((deadline - tu_now()) * 1000.0);
        ssize_t r;

        if (left <= 0 || tu_wait_readable(fd, left) != 1) {
            errno = ETIMEDOUT;
            return -1;
        }
        r = recv(fd, buf + done, 1, MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -1;
        }
        if (r == 0)
            break;
        done++;
        if (buf[done - 1] == '\n')
            break;
    }
    buf[done] = '\0';
    return (ssize_t)done;
}

ssize_t tu_recv_dgram(int fd, void *buf, size_t size, int timeout_ms)
{
    double deadline = tu_now() + timeout_ms / 1000.0;

    for (;;) {
        int left = (int)((deadline - tu_now()) * 1000.0);
        ssize_t r;

        if (left <= 0 || tu_wait_readable(fd, left) != 1) {
            errno = ETIMEDOUT;
            return -1;
        }
        r = recv(fd, buf, size, MSG_DONTWAIT);
        if (r >= 0)
            return r;
        if (errno != EINTR && errno != EAGAIN)
            return -1;
    }
}

int tu_wait_eof(int fd, int timeout_ms)
{
    char buf[4096];
    double deadline = tu_now() + timeout_ms / 1000.0;

    for (;;) {
        int left = (int)((deadline - tu_now()) * 1000.0);
        ssize_t r;

        if (left <= 0 || tu_wait_readable(fd, left) != 1) {
            errno = ETIMEDOUT;
            return -1;
        }
        r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (r == 0)
            return 0;
        if (r < 0) {
            if (errno == ECONNRESET)
                return 0;
            if (errno != EINTR && errno != EAGAIN)
                return -1;
        }
    }
}

ssize_t tu_roundtrip(const ss_server *srv, const char *msg, char *reply, size_t size)
{
    char path[TU_PATH_MAX];
    bool dgram = ss_server_type(srv) == SS_DATAGRAM;
    int fd = tu_client(srv, dgram ? path : NULL, sizeof(path));
    ssize_t r = -1;

    if (fd < 0)
        return -1;
    if (tu_send_all(fd, msg, strlen(msg)) < 0)
        goto out;
    if (dgram) {
        r = tu_recv_dgram(fd, reply, size - 1, TU_WAIT_MS);
        if (r >= 0)
            reply[r] = '\0';
    } else {
        r = tu_recv_line(fd, reply, size, TU_WAIT_MS);
    }
out:
    close(fd);
    if (dgram && path[0] != '\0')
        unlink(path);
    return r;
}

int tu_echo_handle(ss_request *req)
{
    char line[256];
    ssize_t n = ss_readline(req, line, sizeof(line));

    if (n < 0)
        return SS_ERROR;
    if (ss_write(req, line, (size_t)n) != n)
        return SS_ERROR;
    return SS_OK;
}

/* ---- channels ------------------------------------------------------------ */

int tu_chan_open(tu_chan *c)
{
    int fds[2];

    if (pipe2(fds, O_CLOEXEC) < 0)
        return -1;
    /* Only the read end is non-blocking (it has its own file description),
     * so that several waiting readers never block on one byte. */
    if (fcntl(fds[0], F_SETFL, O_NONBLOCK) < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    c->rd = fds[0];
    c->wr = fds[1];
    return 0;
}

void tu_chan_close(tu_chan *c)
{
    if (c->rd >= 0)
        close(c->rd);
    if (c->wr >= 0)
        close(c->wr);
    c->rd = -1;
    c->wr = -1;
}

int tu_chan_put(tu_chan *c, char byte)
{
    for (;;) {
        ssize_t w = write(c->wr, &byte, 1);

        if (w == 1)
            return 0;
        if (w < 0 && errno != EINTR)
            return -1;
    }
}

int tu_chan_get(tu_chan *c, int timeout_ms)
{
    double deadline = tu_now() + timeout_ms / 1000.0;

    for (;;) {
        int left = (int)((deadline - tu_now()) * 1000.0);
        unsigned char b;
        ssize_t r;

        if (left < 0)
            left = 0;
        if (tu_wait_readable(c->rd, left) != 1)
            return -1;
        /* Several readers may share one channel (handlers waiting for a
         * release byte): a non-blocking read lets the losers wait again. */
        r = read(c->rd, &b, 1);
        if (r == 1)
            return b;
        if (r == 0)
            return -1;
        if (errno != EINTR && errno != EAGAIN)
            return -1;
        if (left == 0)
            return -1;
    }
}

size_t tu_chan_drain(tu_chan *c, char *buf, size_t size)
{
    size_t n = 0;

    while (n < size && tu_wait_readable(c->rd, 0) == 1) {
        ssize_t r = read(c->rd, buf + n, 1);

        if (r != 1)
            break;
        n++;
    }
    return n;
}

/* ---- counting ------------------------------------------------------------ */

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n;
}

int tu_count_fds(void)
{
    int n = count_dir("/proc/self/fd");

    /* The directory stream's own descriptor was listed too. */
    return n < 0 ? -1 : n - 1;
}

int tu_count_threads(void)
{
    return count_dir("/proc/self/task");
}

static void pause_ms(int ms)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)ms * 1000000L};

    nanosleep(&ts, NULL);
}

int tu_threads_snapshot(tu_threads *snap)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;

    snap->n = 0;
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (snap->n == TU_MAX_THREADS) {
            closedir(d);
            return -1;
        }
        snap->tid[snap->n++] = (pid_t)strtol(e->d_name, NULL, 10);
    }
    closedir(d);
    return 0;
}

int tu_count_new_threads(const tu_threads *snap)
{
    tu_threads now;
    int fresh = 0;

    if (tu_threads_snapshot(&now) < 0)
        return -1;
    for (int i = 0; i < now.n; i++) {
        bool known = false;
        for (int j = 0; j < snap->n && !known; j++)
            known = now.tid[i] == snap->tid[j];
        if (!known)
            fresh++;
    }
    return fresh;
}

int tu_wait_new_threads(const tu_threads *snap, int expected, int timeout_ms)
{
    double deadline = tu_now() + timeout_ms / 1000.0;
    int n = tu_count_new_threads(snap);

    while (n != expected && tu_now() < deadline) {
        pause_ms(2);
        n = tu_count_new_threads(snap);
    }
    return n;
}

int tu_wait_threads(int expected, int timeout_ms)
{
    double deadline = tu_now() + timeout_ms / 1000.0;
    int n = tu_count_threads();

    while (n != expected && tu_now() < deadline) {
        pause_ms(2);
        n = tu_count_threads();
    }
    return n;
}

int tu_wait_threads_at_most(int max, int timeout_ms)
{
    double deadline = tu_now() + timeout_ms / 1000.0;
    int n = tu_count_threads();

    while (n > max && tu_now() < deadline) {
        pause_ms(2);
        n = tu_count_threads();
    }
    return n;
}

int tu_wait_fds(int max, int timeout_ms)
{
    double deadline = tu_now() + timeout_ms / 1000.0;
    int n = tu_count_fds();

    while (n > max && tu_now() < deadline) {
        pause_ms(2);
        n = tu_count_fds();
    }
    return n;
}

long tu_wait_counter(const long *counter, long target, int timeout_ms)
{
    double deadline = tu_now() + timeout_ms / 1000.0;
    long v = __atomic_load_n(counter, __ATOMIC_SEQ_CST);

    while (v < target && tu_now() < deadline) {
        pause_ms(1);
        v = __atomic_load_n(counter, __ATOMIC_SEQ_CST);
    }
    return v;
}

double tu_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double tu_cpu_time(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void noop_handler(int signo)
{
    (void)signo;
}

int tu_install_noop_handler(int signo)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = noop_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    return sigaction(signo, &sa, NULL);
}

void tu_close_inherited_client(int conn)
{
    struct sockaddr_storage peer, local;
    socklen_t plen = sizeof(peer);

    if (getpeername(conn, (struct sockaddr *)&peer, &plen) < 0)
        return;
    for (int fd = 3; fd < TU_SCAN_FDS; fd++) {
        socklen_t llen = sizeof(local);

        if (fd == conn)
            continue;
        if (getsockname(fd, (struct sockaddr *)&local, &llen) < 0)
            continue;
        if (llen == plen && memcmp(&local, &peer, plen) == 0 &&
            (peer.ss_family != AF_UNIX || plen > sizeof(sa_family_t)))
            close(fd);
    }
}

double tu_slow(void)
{
    const char *s = getenv("SANITIZE");
    double f = 1.0, load[1];
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    if (s != NULL && s[0] != '\0')
        f = strcmp(s, "thread") == 0 ? 5.0 : strcmp(s, "address") == 0 ? 3.0 : 4.0;
    if (getloadavg(load, 1) == 1 && cpus > 0 && load[0] / (double)cpus > 1.0)
        f *= load[0] / (double)cpus < 2.0 ? load[0] / (double)cpus : 2.0;
    return f;
}

double tu_limit(double seconds)
{
    return seconds * tu_slow();
}

int tu_limit_ms(int ms)
{
    return (int)(ms * tu_slow());
}

int tu_scale_divisor(void)
{
    const char *s = getenv("SANITIZE");

    if (s == NULL || s[0] == '\0')
        return 1;
    if (strcmp(s, "thread") == 0)
        return 10;
    return 4;
}

/* ---- cmocka fixtures ----------------------------------------------------- */

/* Threads of the process when no test runs; -1 until first measured. */
static int idle_threads = -1;

static void *nothing(void *arg)
{
    return arg;
}

static void child_after_fork(void)
{
    /* The parent's watchdog does not carry over; give the child its own. */
    alarm(TU_CHILD_LIFE_S);
}

int tu_setup(void **state)
{
    static bool atfork_done;
    int n;

    (void)state;
    if (!atfork_done) {
        pthread_t t;

        pthread_atfork(NULL, NULL, child_after_fork);
        /* ThreadSanitizer starts a helper thread with the first thread a
         * program creates; have it exist before any test counts threads. */
        if (pthread_create(&t, NULL, nothing, NULL) == 0)
            pthread_join(t, NULL);
        atfork_done = true;
    }
    alarm(TU_WATCHDOG_S);
    /* Threads a previous test ended may still be leaving the task list;
     * tests that count threads must start from the settled number. */
    if (idle_threads < 0) {
        /* A joined thread can linger in the task list for a moment: take
         * the count once it holds still. */
        int a = tu_count_threads(), b;
        for (int i = 0; i < 50; i++) {
            pause_ms(5);
            b = tu_count_threads();
            if (b == a)
                break;
            a = b;
        }
        idle_threads = a;
    }
    n = tu_wait_threads(idle_threads, TU_SETTLE_MS);
    if (n != idle_threads)
        idle_threads = n; /* e.g. a sanitizer's helper thread appeared */
    return 0;
}

int tu_teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < TU_MAX_SERVES; i++) {
        if (serve_slot_used[i] && serve_slots[i].running)
            tu_serve_stop(&serve_slots[i]);
    }
    for (size_t i = 0; i < TU_MAX_SERVERS; i++) {
        if (tracked_servers[i] != NULL) {
            ss_server *srv = tracked_servers[i];

            tracked_servers[i] = NULL;
            ss_server_free(srv);
        }
    }
    alarm(0);
    return 0;
}
