/*
 * testutil.h - shared helpers for the libsockserv unit tests.
 *
 * Every wait here is bounded: a helper that waits for something takes a
 * timeout in milliseconds and reports failure when it passes, so a broken
 * library makes a test fail instead of hanging the suite. Helpers never call
 * cmocka assertions themselves (they may run in server threads or forked
 * children); they return -1 and the test asserts in its own thread.
 */
#ifndef SOCKSERV_TESTUTIL_H
#define SOCKSERV_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first. */
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "sockserv.h"

/* Longest wait for something that must happen (a reply, a thread exit). */
#define TU_WAIT_MS 5000
/* How long to watch for something that must not happen. */
#define TU_QUIET_MS 100
/* Longest life of a process forked while the tests run. */
#define TU_CHILD_LIFE_S 30
/* How long tu_setup waits for threads of an earlier test to go away. */
#define TU_SETTLE_MS 1000
/* A test that runs longer than this is killed by SIGALRM. */
#define TU_WATCHDOG_S 60
/* Room for a temporary Unix socket path. */
#define TU_PATH_MAX 108
/* The line CPython's socketserver tests echo. */
#define TU_TEST_STR "hello world\n"

/* Server kinds: transport x address family. */
enum tu_kind { TU_TCP = 0, TU_UDP, TU_UNIX_STREAM, TU_UNIX_DGRAM, TU_TCP6, TU_UDP6, TU_KIND_COUNT };

const char *tu_kind_name(enum tu_kind kind);
const char *tu_mode_name(ss_mode mode);
bool tu_kind_is_datagram(enum tu_kind kind);
bool tu_kind_is_unix(enum tu_kind kind);
bool tu_kind_is_ipv6(enum tu_kind kind);

/* True when ::1 can be bound here. */
bool tu_have_ipv6(void);

/* A fresh, unused Unix socket path in the temporary directory. Returns 0. */
int tu_unix_path(char *buf, size_t size);

/* ss_options_init, then the address and type for kind and the mode. For Unix
 * kinds a fresh path is written to path (size >= TU_PATH_MAX) and used;
 * opt->address points into path, so path must outlive the server. */
void tu_options(ss_options *opt, enum tu_kind kind, ss_mode mode, char *path, size_t size);

/* ss_server_new, remembered so that tu_teardown frees it if a test fails
 * before doing so itself. */
ss_server *tu_server_new(const ss_options *opt, const ss_handler *h);
/* ss_server_free and forget. */
void tu_server_free(ss_server *srv);

/* ---- a serving thread ---------------------------------------------------- */

typedef struct tu_serve {
    ss_server *srv;
    pthread_t thread;
    double poll_interval;
    int done[2]; /* written once ss_serve_forever has returned */
    int rc;      /* what ss_serve_forever returned */
    int err;     /* errno after it returned */
    bool running;
} tu_serve;

/* Run ss_serve_forever(srv, poll_interval) in a new thread. Returns a slot
 * owned by this module (valid until tu_teardown), or NULL. */
tu_serve *tu_serve_start(ss_server *srv, double poll_interval);
/* Wait up to timeout_ms for ss_serve_forever to return, then join the
 * thread. Returns 0, or -1 (errno ETIMEDOUT) when it is still running. */
int tu_serve_wait(tu_serve *s, int timeout_ms);
/* ss_shutdown, then tu_serve_wait(TU_WAIT_MS). Returns 0 or -1. */
int tu_serve_stop(tu_serve *s);

/* ---- clients ------------------------------------------------------------- */

/* A client socket of the server's family and type, connected to its bound
 * address (a wildcard address is reached through loopback). Datagram Unix
 * clients are bound to a fresh path written to path (or to an unnamed
 * address when path is NULL), so replies can reach them. Returns the fd or
 * -1. */
int tu_client(const ss_server *srv, char *path, size_t size);
/* Same, to an explicit address. */
int tu_client_addr(const struct sockaddr *addr, socklen_t len, int type, char *path, size_t size);

/* Send all bytes (MSG_NOSIGNAL). Returns n or -1. */
ssize_t tu_send_all(int fd, const void *buf, size_t n);
/* Receive exactly n bytes within timeout_ms. Returns n, the count received
 * before end of stream, or -1 (errno ETIMEDOUT on timeout). */
ssize_t tu_recv_exact(int fd, void *buf, size_t n, int timeout_ms);
/* Receive one line (up to and including '\n', NUL-terminated). Returns its
 * length, 0 at end of stream, or -1. */
ssize_t tu_recv_line(int fd, char *buf, size_t size, int timeout_ms);
/* Receive one datagram within timeout_ms. Returns its length or -1. */
ssize_t tu_recv_dgram(int fd, void *buf, size_t size, int timeout_ms);
/* 1 when fd becomes readable within timeout_ms, 0 if not, -1 on error. */
int tu_wait_readable(int fd, int timeout_ms);
/* Read and discard until end of stream or a reset. Returns 0 when the peer
 * closed, -1 on timeout or another error. */
int tu_wait_eof(int fd, int timeout_ms);

/* One request as CPython's harness makes it: send msg, read the reply (a
 * line for streams, a datagram otherwise) into reply. Returns the reply
 * length or -1. */
ssize_t tu_roundtrip(const ss_server *srv, const char *msg, char *reply, size_t size);

/* The handler CPython's tests use: read a line, write it back. */
int tu_echo_handle(ss_request *req);

/* ---- channels: a pipe for events across threads and processes ----------- */

typedef struct tu_chan {
    int rd;
    int wr;
} tu_chan;

int tu_chan_open(tu_chan *c);
void tu_chan_close(tu_chan *c);
/* Write one byte; async-signal-safe. Returns 0 or -1. */
int tu_chan_put(tu_chan *c, char byte);
/* Read one byte within timeout_ms. Returns it (0..255) or -1. */
int tu_chan_get(tu_chan *c, int timeout_ms);
/* Read everything available now, up to size bytes. Returns the count. */
size_t tu_chan_drain(tu_chan *c, char *buf, size_t size);

/* ---- counting ------------------------------------------------------------ */

/* The thread ids of this process at one moment (from /proc/self/task). */
#define TU_MAX_THREADS 512
typedef struct tu_threads {
    int n;
    pid_t tid[TU_MAX_THREADS];
} tu_threads;

/* Take the snapshot. Returns 0, or -1 if the task list cannot be read. */
int tu_threads_snapshot(tu_threads *snap);
/* Threads alive now that were not in snap. Threads that were in snap and
 * are still leaving the task list do not count, so the number is exact
 * however long an earlier test's threads take to go away. -1 on error. */
int tu_count_new_threads(const tu_threads *snap);
/* Poll tu_count_new_threads until it equals expected or timeout_ms passes.
 * Returns the last count seen. */
int tu_wait_new_threads(const tu_threads *snap, int expected, int timeout_ms);

/* Open file descriptors of this process (from /proc/self/fd). */
int tu_count_fds(void);
/* Threads of this process (from /proc/self/task). */
int tu_count_threads(void);
/* Poll the thread count until it equals expected or timeout_ms passes.
 * Exited threads leave the task list a little after they signal they are
 * done, and nothing reports that moment, so this one wait polls. Returns the
 * last count seen. */
int tu_wait_threads(int expected, int timeout_ms);
/* Waits until at most max threads run; returns the count. A count taken
 * earlier may include a thread that was still leaving the task list, so
 * "no more than before" is the check that cannot misfire. */
int tu_wait_threads_at_most(int max, int timeout_ms);
/* Poll the fd count until it is at most max or timeout_ms passes: a server
 * closes a connection after the peer may already have seen its FIN, so the
 * count settles a moment after the client notices. Returns the last count. */
int tu_wait_fds(int max, int timeout_ms);
/* Poll an atomic counter until it reaches at least target. Returns its last
 * value. */
long tu_wait_counter(const long *counter, long target, int timeout_ms);

/* Monotonic time in seconds. */
double tu_now(void);
/* CPU time used by the whole process, in seconds. */
double tu_cpu_time(void);

/* Install a handler for signo that does nothing, without SA_RESTART, so it
 * interrupts blocking calls with EINTR. Returns 0 or -1. */
int tu_install_noop_handler(int signo);

/* In a forked child: close this process's copy of the client end of the
 * connection conn. Test clients live in the test process, so a child forked
 * by the server inherits them and the connection would never see its
 * client go away. Allocates nothing. */
void tu_close_inherited_client(int conn);

/* How much slower than a plain build on an idle machine this run may be:
 * 3 under ASan, 5 under TSan (environment SANITIZE), times the load per
 * processor when it is above 1 (at most 2). Upper bounds on elapsed time
 * are multiplied by it; lower bounds, which a slow machine cannot break,
 * are not. */
double tu_slow(void);
/* seconds * tu_slow(), for "it happened promptly" checks. */
double tu_limit(double seconds);
/* The same for a wait in milliseconds. */
int tu_limit_ms(int ms);

/* Scale for the long robustness loops: 1 normally, smaller under the
 * sanitizers (environment SANITIZE set), which make each request many times
 * slower. */
int tu_scale_divisor(void);

/* cmocka per-test setup and teardown: arm a watchdog alarm; afterwards stop
 * serving threads and free servers a failed test left behind. The first
 * setup also arranges that every forked child dies after TU_CHILD_LIFE_S,
 * so a child stuck after a failed test does not outlive the suite. */
int tu_setup(void **state);
int tu_teardown(void **state);

#define TU_TEST(f) cmocka_unit_test_setup_teardown(f, tu_setup, tu_teardown)

#endif /* SOCKSERV_TESTUTIL_H */
