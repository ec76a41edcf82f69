/*
 * test_regressions.c - one test per behaviour that once went wrong: shutdown
 * from a forked copy of the server's process, the stop-signal target after
 * free, request children and the stop signals, EINTR once stopping, unbound
 * Unix clients, the stale-socket probe, handle_error on a broken stderr,
 * reject hook output, free with idle daemon connections, drain from a
 * handler, many-children drain on a small stack, datagram reply limits,
 * readline's size check, address forms and the prepare_socket hook.
 *
 * Where the old behaviour was a hang, the test waits a bounded time and then
 * unblocks the library itself (closing the client or the listener), so a
 * regression fails instead of hanging.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How long a handler holds a request so that a wait for it is visible. */
#define HOLD_MS 300
/* "Promptly": the bound for things that used to hang (scaled by tu_limit for
 * sanitizer builds and load: a bug makes them hang for good). */
#define PROMPT_MS 2000
/* Pause between stop signals sent to a handler blocked in a read. */
#define SIGNAL_EVERY_MS 50
/* The stale-socket probe must give up at once on a live server (scaled as
 * PROMPT_MS is). */
#define PROBE_MS 1000
/* Connections tried when filling a listen backlog. */
#define BACKLOG_FILL_MAX 64
/* Stack of the thread that drains the forking server. */
#define SMALL_STACK (256u * 1024u)
/* Inaccessible space below that stack. */
#define STACK_GUARD (4u * 1024u * 1024u)
/* Children allowed in the many-children drain test. */
#define MANY_CHILDREN 100000u
/* Largest IPv6 UDP payload (65535 - 8 byte UDP header). */
#define UDP6_MAX 65527
/* A Unix datagram larger than any UDP payload. */
#define UNIX_BIG 100000
/* Exit statuses of forked test children. */
#define CHILD_OK 0
#define CHILD_EARLY 1 /* ss_shutdown returned before the loop stopped */
#define CHILD_SETUP 2 /* the child could not set itself up */

static tu_chan events;
static tu_chan release;
static atomic_long errors;
static atomic_int last_err;

static void open_chans(void)
{
    assert_int_equal(tu_chan_open(&events), 0);
    assert_int_equal(tu_chan_open(&release), 0);
    atomic_store(&errors, 0);
    atomic_store(&last_err, 0);
}

static void close_chans(void)
{
    tu_chan_close(&events);
    tu_chan_close(&release);
}

static void count_error(ss_server *srv, ss_request *req, int err)
{
    (void)srv;
    (void)req;
    atomic_store(&last_err, err);
    atomic_fetch_add(&errors, 1);
}

/* Waits up to timeout_ms for a child; kills it if it does not end. Returns
 * the wait status, or -1 when it had to be killed. */
static int wait_child(pid_t pid, int timeout_ms)
{
    double deadline = tu_now() + timeout_ms / 1000.0;
    int status = 0;

    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);

        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR)
            return -1;
        if (tu_now() > deadline) {
            kill(pid, SIGKILL);
            (void)waitpid(pid, &status, 0);
            return -1;
        }
        /* No descriptor reports a child's exit here; poll a little. */
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Waits until the server counts n requests in hand. Returns the last count. */
static unsigned wait_active(ss_server *srv, unsigned n)
{
    double deadline = tu_now() + TU_WAIT_MS / 1000.0;
    unsigned a = ss_server_active(srv);

    while (a != n && tu_now() < deadline) {
        struct timespec ts = {0, 2 * 1000000L};
        nanosleep(&ts, NULL);
        a = ss_server_active(srv);
    }
    return a;
}

/* ---- 1. ss_shutdown in a forked copy of the serving process ------------- */

static atomic_bool handler_done;

static int slow_handle(ss_request *req)
{
    tu_chan_put(&events, 'S');
    (void)tu_chan_get(&release, HOLD_MS); /* nobody releases: a pause */
    int rc = tu_echo_handle(req);
    atomic_store(&handler_done, true);
    return rc;
}

static void *loop_thread(void *arg)
{
    ss_server *srv = arg;

    (void)ss_serve_forever(srv, 0.05);
    return NULL;
}

static int forked_shutdown_child(ss_server *srv)
{
    pthread_t t;
    int fd;

    atomic_store(&handler_done, false);
    if (pthread_create(&t, NULL, loop_thread, srv) != 0)
        return CHILD_SETUP;
    fd = tu_client(srv, NULL, 0);
    if (fd < 0 || tu_send_all(fd, TU_TEST_STR, strlen(TU_TEST_STR)) < 0 ||
        tu_chan_get(&events, TU_WAIT_MS) != 'S')
        return CHILD_SETUP;
    /* The handler holds the loop for HOLD_MS: shutdown must outwait it
     * (the loop cannot have stopped while its handler still runs). */
    ss_shutdown(srv);
    int rc = atomic_load(&handler_done) ? CHILD_OK : CHILD_EARLY;
    pthread_join(t, NULL);
    close(fd);
    return rc;
}

static void test_shutdown_in_forked_process(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = slow_handle};
    ss_server *srv;
    pid_t pid;
    int status;

    (void)state;
    open_chans();
    ss_options_init(&opt);
    opt.handle_error = count_error;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(forked_shutdown_child(srv));
    status = wait_child(pid, TU_WAIT_MS * 2);
    assert_true(status != -1);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), CHILD_OK);
    tu_server_free(srv);
    close_chans();
}

/* ---- 2. the signal target is cleared by free ---------------------------- */

static volatile sig_atomic_t usr1_calls;

static void count_usr1(int signo)
{
    (void)signo;
    usr1_calls++;
}

static void test_signal_target_cleared_at_free(void **state)
{
    struct sigaction sa, old;
    char tmpl[] = "/tmp/ss-regr-XXXXXX";
    ss_options opt;
    ss_server *srv;
    struct stat st;
    int fd;

    (void)state;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = count_usr1;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    usr1_calls = 0;

    ss_options_init(&opt);
    srv = ss_server_new(&opt, NULL);
    assert_non_null(srv);
    assert_int_equal(ss_shutdown_on_signal(srv, SIGUSR1), 0);
    ss_server_free(srv);
    /* Likely takes the number of the freed wakeup descriptor: a stale
     * target would write its wakeup into this file. */
    fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    unlink(tmpl);
    raise(SIGUSR1);
    assert_int_equal(usr1_calls, 1);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, 0);
    close(fd);
    sigaction(SIGUSR1, &old, NULL);
}

/* ---- 3. request children die of the stop signals ------------------------ */

static int pid_reporting_handle(ss_request *req)
{
    pid_t me = getpid();
    char line[256];

    tu_close_inherited_client(ss_request_fd(req));
    if (write(events.wr, &me, sizeof me) != (ssize_t)sizeof me)
        return SS_ERROR;
    ssize_t n = ss_readline(req, line, sizeof line);
    if (n > 0 && ss_write(req, line, (size_t)n) < 0)
        return SS_ERROR;
    return n < 0 ? SS_ERROR : SS_OK;
}

static pid_t read_pid(void)
{
    pid_t pid = -1;

    if (tu_wait_readable(events.rd, TU_WAIT_MS) != 1)
        return -1;
    if (read(events.rd, &pid, sizeof pid) != (ssize_t)sizeof pid)
        return -1;
    return pid;
}

static void test_child_dies_of_stop_signal(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = pid_reporting_handle};
    ss_server *srv;
    tu_serve *s;
    char buf[64];
    pid_t child;
    int idle;

    (void)state;
    open_chans();
    ss_options_init(&opt);
    opt.mode = SS_MODE_FORKING;
    opt.handle_error = count_error;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    assert_int_equal(ss_shutdown_on_signal(srv, SIGUSR2), 0);
    s = tu_serve_start(srv, 0.05);
    assert_non_null(s);

    idle = tu_client(srv, NULL, 0);
    assert_true(idle >= 0);
    child = read_pid();
    assert_true(child > 0);
    assert_int_equal(kill(child, SIGUSR2), 0);
    /* The child dies of it: its end of the connection closes. */
    assert_int_equal(tu_wait_eof(idle, tu_limit_ms(PROMPT_MS)), 0);
    close(idle);

    /* The parent's loop neither stopped nor broke. */
    assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, buf, sizeof buf), (ssize_t)strlen(TU_TEST_STR));
    assert_string_equal(buf, TU_TEST_STR);
    assert_true(read_pid() > 0);
    assert_int_equal(tu_serve_stop(s), 0);
    assert_int_equal(s->rc, 0);
    tu_server_free(srv);
    close_chans();
}

/* ---- 4. sync mode: EINTR ends a blocked read once stopping -------------- */

static atomic_long read_rc;
static atomic_int read_errno;

static int idle_read_handle(ss_request *req)
{
    char line[64];

    tu_chan_put(&events, 'S');
    errno = 0;
    ssize_t n = ss_readline(req, line, sizeof line);
    atomic_store(&read_errno, errno);
    atomic_store(&read_rc, (long)n);
    return n < 0 ? SS_ERROR : SS_OK;
}

static void test_sync_eintr_on_stop_signal(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = idle_read_handle};
    ss_server *srv;
    tu_serve *s;
    int idle, rc;
    double t0;

    (void)state;
    open_chans();
    ss_options_init(&opt);
    opt.handle_error = count_error;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    assert_int_equal(ss_shutdown_on_signal(srv, SIGUSR1), 0);
    s = tu_serve_start(srv, 0.05);
    assert_non_null(s);
    idle = tu_client(srv, NULL, 0);
    assert_true(idle >= 0);
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'S');

    /* The signal may land after the 'S' but before the handler blocks in
     * the read; that one only requests the stop, so the next one must end
     * the read. Repeat until the loop returns (the thread is joined then,
     * so no signal goes to a thread that is gone). */
    const int prompt_ms = tu_limit_ms(PROMPT_MS);
    t0 = tu_now();
    rc = -1;
    for (int i = 0; i < prompt_ms / SIGNAL_EVERY_MS && rc != 0; i++) {
        assert_int_equal(pthread_kill(s->thread, SIGUSR1), 0);
        rc = tu_serve_wait(s, SIGNAL_EVERY_MS);
    }
    double took = tu_now() - t0;
    close(idle); /* ends the handler if the signals did not */
    if (rc != 0)
        (void)tu_serve_wait(s, TU_WAIT_MS);
    assert_int_equal(rc, 0);
    assert_true(took < prompt_ms / 1000.0);
    assert_int_equal(s->rc, 0);
    assert_int_equal(atomic_load(&read_rc), -1);
    assert_int_equal(atomic_load(&read_errno), EINTR);
    assert_int_equal(atomic_load(&errors), 0);
    tu_server_free(srv);
    close_chans();
}

/* ---- 5. an unbound Unix datagram client first --------------------------- */

static char client_str[TU_PATH_MAX + 16];
static atomic_long reply_rc;
static atomic_int reply_errno;

static int unbound_handle(ss_request *req)
{
    size_t len = 0;
    const char *data = ss_request_data(req, &len);

    if (len > 0 && data[0] == 'U') {
        snprintf(client_str, sizeof client_str, "%s", ss_request_client_str(req));
        errno = 0;
        ssize_t r = ss_reply(req, "x", 1);
        atomic_store(&reply_errno, errno);
        atomic_store(&reply_rc, (long)r);
        tu_chan_put(&events, 'U');
        return SS_OK;
    }
    return ss_write(req, data, len) < 0 ? SS_ERROR : SS_OK;
}

static void unbound_first(ss_mode mode)
{
    char path[TU_PATH_MAX], cpath[TU_PATH_MAX], buf[64];
    struct sockaddr_storage addr;
    socklen_t alen = sizeof addr;
    ss_options opt;
    ss_handler h = {.handle = unbound_handle};
    ss_server *srv;
    tu_serve *s;
    int u, b;

    open_chans();
    client_str[0] = '\0';
    atomic_store(&reply_rc, 0);
    atomic_store(&reply_errno, 0);
    tu_options(&opt, TU_UNIX_DGRAM, mode, path, sizeof path);
    opt.handle_error = count_error;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    s = tu_serve_start(srv, 0.05);
    assert_non_null(s);
    assert_int_equal(ss_server_address(srv, (struct sockaddr *)&addr, &alen), 0);

    u = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(u >= 0);
    assert_int_equal(sendto(u, "U", 1, 0, (struct sockaddr *)&addr, alen), 1);
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'U');
    assert_string_equal(client_str, "unix:");
    assert_int_equal(atomic_load(&reply_rc), -1);
    assert_int_equal(atomic_load(&reply_errno), EDESTADDRREQ);

    /* A bound client afterwards is answered, at its own address. */
    b = tu_client(srv, cpath, sizeof cpath);
    assert_true(b >= 0);
    assert_int_equal(tu_send_all(b, "bound", 5), 5);
    assert_int_equal(tu_recv_dgram(b, buf, sizeof buf, TU_WAIT_MS), 5);
    assert_memory_equal(buf, "bound", 5);
    assert_int_equal(ss_server_drain(srv, TU_WAIT_MS / 1000.0), 0);
    assert_int_equal(atomic_load(&errors), 0);

    assert_int_equal(tu_serve_stop(s), 0);
    tu_server_free(srv);
    close(u);
    close(b);
    unlink(cpath);
    close_chans();
}

static void test_unbound_unix_client_sync(void **state)
{
    (void)state;
    unbound_first(SS_MODE_SYNC);
}

static void test_unbound_unix_client_threading(void **state)
{
    (void)state;
    unbound_first(SS_MODE_THREADING);
}

/* ---- 6. the stale-socket probe on a live server with a full backlog ----- */

typedef struct new_call {
    const ss_options *opt;
    ss_server *srv;
    int err;
} new_call;

static void *new_thread(void *arg)
{
    new_call *c = arg;

    c->srv = ss_server_new(c->opt, NULL);
    c->err = errno;
    tu_chan_put(&events, 'N');
    return NULL;
}

static void test_stale_probe_full_backlog(void **state)
{
    char path[TU_PATH_MAX], address[TU_PATH_MAX + 8];
    struct sockaddr_un un;
    int clients[BACKLOG_FILL_MAX];
    int nclients = 0, lfd;
    ss_options opt;
    new_call call;
    pthread_t t;

    (void)state;
    open_chans();
    tu_unix_path(path, sizeof path);
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    memcpy(un.sun_path, path, strlen(path) + 1);
    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(lfd >= 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&un, sizeof un), 0);
    assert_int_equal(listen(lfd, 0), 0);
    /* Fill the backlog: connect until the kernel says it is full. */
    while (nclients < BACKLOG_FILL_MAX) {
        int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        assert_true(c >= 0);
        if (connect(c, (struct sockaddr *)&un, sizeof un) < 0) {
            assert_int_equal(errno, EAGAIN);
            close(c);
            break;
        }
        clients[nclients++] = c;
    }
    assert_true(nclients < BACKLOG_FILL_MAX);

    snprintf(address, sizeof address, "unix:%s", path);
    ss_options_init(&opt);
    opt.address = address;
    call.opt = &opt;
    call.srv = NULL;
    call.err = 0;
    double t0 = tu_now();
    assert_int_equal(pthread_create(&t, NULL, new_thread, &call), 0);
    const int probe_ms = tu_limit_ms(PROBE_MS);
    int got = tu_chan_get(&events, probe_ms);
    double took = tu_now() - t0;
    if (got != 'N') {
        close(lfd); /* the blocked probe connect gives up */
        lfd = -1;
    }
    pthread_join(t, NULL);
    if (call.srv != NULL)
        ss_server_free(call.srv);
    assert_int_equal(got, 'N');
    assert_true(took < probe_ms / 1000.0);
    assert_null(call.srv);
    assert_int_equal(call.err, EADDRINUSE);

    for (int i = 0; i < nclients; i++)
        close(clients[i]);
    if (lfd >= 0)
        close(lfd);
    unlink(path);
    close_chans();
}

/* ---- 7. default handle_error with a reader-less stderr pipe ------------- */

static int failing_handle(ss_request *req)
{
    (void)req;
    errno = EPROTO;
    return SS_ERROR;
}

static int broken_stderr_child(void)
{
    ss_options opt;
    ss_handler h = {.handle = failing_handle};
    ss_server *srv;
    int p[2], fd;

    signal(SIGPIPE, SIG_DFL);
    if (pipe(p) < 0)
        return CHILD_SETUP;
    close(p[0]);
    if (dup2(p[1], STDERR_FILENO) < 0)
        return CHILD_SETUP;
    close(p[1]);
    ss_options_init(&opt);
    srv = ss_server_new(&opt, &h);
    if (srv == NULL)
        return CHILD_SETUP;
    fd = tu_client(srv, NULL, 0);
    if (fd < 0 || tu_send_all(fd, TU_TEST_STR, strlen(TU_TEST_STR)) < 0)
        return CHILD_SETUP;
    if (ss_handle_request(srv) != 1) /* the default handle_error writes */
        return CHILD_SETUP;
    close(fd);
    ss_server_free(srv);
    return CHILD_OK;
}

static void test_handle_error_broken_stderr(void **state)
{
    pid_t pid;
    int status;

    (void)state;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(broken_stderr_child());
    status = wait_child(pid, TU_WAIT_MS);
    assert_true(status != -1);
    if (WIFSIGNALED(status))
        fail_msg("child died of signal %d", WTERMSIG(status));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), CHILD_OK);
}

/* ---- 8. pool SS_POOL_REJECT: the hook's output is sent ------------------ */

static atomic_bool reject_says_busy;

static int gated_handle(ss_request *req)
{
    tu_chan_put(&events, 'S');
    (void)tu_chan_get(&release, TU_WAIT_MS);
    return tu_echo_handle(req);
}

static void busy_reject(ss_request *req)
{
    if (atomic_load(&reject_says_busy))
        (void)ss_write(req, "busy\n", 5);
    tu_chan_put(&events, 'R');
}

static ss_server *new_reject_pool(ss_socktype type, bool busy)
{
    ss_options opt;
    ss_handler h = {.handle = gated_handle};

    atomic_store(&reject_says_busy, busy);
    ss_options_init(&opt);
    opt.mode = SS_MODE_POOL;
    opt.type = type;
    opt.pool_workers = 1;
    opt.pool_queue = 1;
    opt.pool_full = SS_POOL_REJECT;
    opt.wbufsize = 512;
    opt.reject = busy_reject;
    opt.handle_error = count_error;
    return tu_server_new(&opt, &h);
}

/* Occupies the one worker and the one queue slot. */
static void fill_pool(ss_server *srv, int fds[2])
{
    for (int i = 0; i < 2; i++) {
        fds[i] = tu_client(srv, NULL, 0);
        assert_true(fds[i] >= 0);
        assert_int_equal(tu_send_all(fds[i], TU_TEST_STR, strlen(TU_TEST_STR)),
                         (ssize_t)strlen(TU_TEST_STR));
        if (i == 0)
            assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'S');
    }
    assert_int_equal(wait_active(srv, 2), 2);
}

static void release_pool(ss_server *srv, int fds[2], bool datagram)
{
    char buf[64];

    for (int i = 0; i < 2; i++)
        tu_chan_put(&release, 'G');
    for (int i = 0; i < 2; i++) {
        if (datagram)
            assert_int_equal(tu_recv_dgram(fds[i], buf, sizeof buf, TU_WAIT_MS),
                             (ssize_t)strlen(TU_TEST_STR));
        else
            assert_int_equal(tu_recv_line(fds[i], buf, sizeof buf, TU_WAIT_MS),
                             (ssize_t)strlen(TU_TEST_STR));
        close(fds[i]);
    }
    assert_int_equal(ss_server_drain(srv, TU_WAIT_MS / 1000.0), 0);
}

static void test_reject_hook_stream(void **state)
{
    ss_server *srv;
    tu_serve *s;
    int fds[2], c;
    char buf[64];

    (void)state;
    open_chans();
    srv = new_reject_pool(SS_STREAM, true);
    assert_non_null(srv);
    s = tu_serve_start(srv, 0.05);
    assert_non_null(s);
    fill_pool(srv, fds);

    c = tu_client(srv, NULL, 0);
    assert_true(c >= 0);
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'R');
    assert_int_equal(tu_recv_line(c, buf, sizeof buf, TU_WAIT_MS), 5);
    assert_string_equal(buf, "busy\n");
    assert_int_equal(tu_wait_eof(c, TU_WAIT_MS), 0);
    close(c);

    release_pool(srv, fds, false);
    assert_int_equal(tu_serve_stop(s), 0);
    tu_server_free(srv);
    close_chans();
}

static void reject_datagram(bool busy)
{
    ss_server *srv;
    tu_serve *s;
    int fds[2], c;
    char buf[64];

    open_chans();
    srv = new_reject_pool(SS_DATAGRAM, busy);
    assert_non_null(srv);
    s = tu_serve_start(srv, 0.05);
    assert_non_null(s);
    fill_pool(srv, fds);

    c = tu_client(srv, NULL, 0);
    assert_true(c >= 0);
    assert_int_equal(tu_send_all(c, "x", 1), 1);
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'R');
    if (busy) {
        assert_int_equal(tu_recv_dgram(c, buf, sizeof buf, TU_WAIT_MS), 5);
        assert_memory_equal(buf, "busy\n", 5);
    } else {
        assert_int_equal(tu_wait_readable(c, TU_QUIET_MS), 0);
    }
    close(c);

    release_pool(srv, fds, true);
    assert_int_equal(tu_serve_stop(s), 0);
    tu_server_free(srv);
    close_chans();
}

static void test_reject_hook_datagram(void **state)
{
    (void)state;
    reject_datagram(true);
}

static void test_reject_silent_datagram(void **state)
{
    (void)state;
    reject_datagram(false);
}

/* ---- 9. free with daemon threads ---------------------------------------- */

static int daemon_handle(ss_request *req)
{
    char line[64];

    tu_chan_put(&events, 'S');
    ssize_t n = ss_readline(req, line, sizeof line);
    if (n <= 0)
        return n < 0 ? SS_ERROR : SS_OK;
    tu_chan_put(&events, 'L');
    /* Mid-reply when the free begins. */
    (void)tu_chan_get(&release, HOLD_MS);
    return ss_write(req, line, (size_t)n) < 0 ? SS_ERROR : SS_OK;
}

static void *free_thread(void *arg)
{
    ss_server_free(arg);
    tu_chan_put(&events, 'F');
    return NULL;
}

static void test_free_daemon_threads(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = daemon_handle};
    ss_server *srv;
    tu_serve *s;
    pthread_t t;
    int idle, busy;
    char buf[64];

    (void)state;
    open_chans();
    ss_options_init(&opt);
    opt.mode = SS_MODE_THREADING;
    opt.daemon_threads = true;
    opt.handle_error = count_error;
    srv = ss_server_new(&opt, &h); /* freed here, not by the teardown */
    assert_non_null(srv);
    s = tu_serve_start(srv, 0.05);
    assert_non_null(s);
    idle = tu_client(srv, NULL, 0);
    assert_true(idle >= 0);
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'S');
    busy = tu_client(srv, NULL, 0);
    assert_true(busy >= 0);
    assert_int_equal(tu_send_all(busy, TU_TEST_STR, strlen(TU_TEST_STR)),
                     (ssize_t)strlen(TU_TEST_STR));
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'S');
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'L');
    assert_int_equal(tu_serve_stop(s), 0);

    double t0 = tu_now();
    assert_int_equal(pthread_create(&t, NULL, free_thread, srv), 0);
    const int prompt_ms = tu_limit_ms(PROMPT_MS);
    int got = tu_chan_get(&events, prompt_ms);
    double took = tu_now() - t0;
    if (got != 'F') {
        close(idle); /* lets a free that waits on the idle client end */
        idle = -1;
    }
    pthread_join(t, NULL);
    assert_int_equal(got, 'F');
    assert_true(took < prompt_ms / 1000.0);
    assert_int_equal(tu_recv_line(busy, buf, sizeof buf, TU_WAIT_MS), (ssize_t)strlen(TU_TEST_STR));
    assert_string_equal(buf, TU_TEST_STR);
    assert_int_equal(tu_wait_eof(busy, TU_WAIT_MS), 0);
    close(busy);
    if (idle >= 0) {
        assert_int_equal(tu_wait_eof(idle, TU_WAIT_MS), 0);
        close(idle);
    }
    close_chans();
}

/* ---- 10. drain from inside a handler ------------------------------------ */

static atomic_int drain_rc;
static atomic_int drain_errno;

static int draining_handle(ss_request *req)
{
    errno = 0;
    int rc = ss_server_drain(ss_request_server(req), HOLD_MS / 1000.0);
    atomic_store(&drain_errno, errno);
    atomic_store(&drain_rc, rc);
    return tu_echo_handle(req);
}

static void drain_in_handler(ss_mode mode)
{
    ss_options opt;
    ss_handler h = {.handle = draining_handle};
    ss_server *srv;
    tu_serve *s;
    char buf[64];

    atomic_store(&drain_rc, 99);
    atomic_store(&drain_errno, 0);
    ss_options_init(&opt);
    opt.mode = mode;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    s = tu_serve_start(srv, 0.05);
    assert_non_null(s);
    assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, buf, sizeof buf), (ssize_t)strlen(TU_TEST_STR));
    assert_int_equal(atomic_load(&drain_rc), 0);
    assert_int_equal(atomic_load(&drain_errno), 0);
    assert_int_equal(tu_serve_stop(s), 0);
    tu_server_free(srv);
}

static void test_drain_in_handler_threading(void **state)
{
    (void)state;
    drain_in_handler(SS_MODE_THREADING);
}

static void test_drain_in_handler_pool(void **state)
{
    (void)state;
    drain_in_handler(SS_MODE_POOL);
}

/* ---- 11. forking drain with a huge max_children on a small stack -------- */

typedef struct drain_call {
    ss_server *srv;
    int rc;
} drain_call;

static void *drain_thread(void *arg)
{
    drain_call *c = arg;

    c->rc = ss_server_drain(c->srv, TU_WAIT_MS / 1000.0);
    return NULL;
}

#if defined(__SANITIZE_THREAD__)
#define TSAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSAN_BUILD 1
#endif
#endif

/* Starts fn on a SMALL_STACK stack. Where possible the stack sits on top of
 * a wide inaccessible region, so that a frame larger than the stack faults
 * there instead of landing silently in other memory; *map is then that
 * mapping (NULL otherwise). ThreadSanitizer wants larger stacks of its own
 * making, so there only the size is set. */
static pthread_t start_on_small_stack(void *(*fn)(void *), void *arg, char **map)
{
    pthread_attr_t attr;
    pthread_t t;

    *map = NULL;
    assert_int_equal(pthread_attr_init(&attr), 0);
#ifdef TSAN_BUILD
    assert_int_equal(pthread_attr_setstacksize(&attr, SMALL_STACK), 0);
#else
    char *m = mmap(NULL, STACK_GUARD + SMALL_STACK, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    assert_int_equal(mprotect(m + STACK_GUARD, SMALL_STACK, PROT_READ | PROT_WRITE), 0);
    assert_int_equal(pthread_attr_setstack(&attr, m + STACK_GUARD, SMALL_STACK), 0);
    *map = m;
#endif
    assert_int_equal(pthread_create(&t, &attr, fn, arg), 0);
    pthread_attr_destroy(&attr);
    return t;
}

static int child_hold_handle(ss_request *req)
{
    tu_close_inherited_client(ss_request_fd(req));
    tu_chan_put(&events, 'S');
    /* Alive for a while, so the drain has a child to wait for. */
    (void)tu_chan_get(&release, HOLD_MS);
    return tu_echo_handle(req);
}

static void test_forking_drain_many_children(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = child_hold_handle};
    ss_server *srv;
    pthread_t t;
    char *map;
    drain_call call;
    char buf[64];
    int fd;

    (void)state;
    open_chans();
    ss_options_init(&opt);
    opt.mode = SS_MODE_FORKING;
    opt.max_children = MANY_CHILDREN;
    opt.handle_error = count_error;
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(tu_send_all(fd, TU_TEST_STR, strlen(TU_TEST_STR)),
                     (ssize_t)strlen(TU_TEST_STR));
    assert_int_equal(ss_handle_request(srv), 1); /* forks the child */
    assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'S');

    call.srv = srv;
    call.rc = 99;
    t = start_on_small_stack(drain_thread, &call, &map);
    pthread_join(t, NULL);
    if (map != NULL)
        munmap(map, STACK_GUARD + SMALL_STACK);
    assert_int_equal(call.rc, 0);
    assert_int_equal(tu_recv_line(fd, buf, sizeof buf, TU_WAIT_MS), (ssize_t)strlen(TU_TEST_STR));
    close(fd);
    tu_server_free(srv);
    close_chans();
}

/* ---- 12. datagram reply limits per family ------------------------------- */

static atomic_long big_write_rc;
static atomic_int big_write_errno;

static int udp6_limit_handle(ss_request *req)
{
    static char big[UDP6_MAX + 1];

    errno = 0;
    ssize_t r = ss_write(req, big, UDP6_MAX + 1);
    atomic_store(&big_write_errno, errno);
    atomic_store(&big_write_rc, (long)r);
    return ss_write(req, big, UDP6_MAX) == UDP6_MAX ? SS_OK : SS_ERROR;
}

static void test_udp6_reply_limit(void **state)
{
    char path[TU_PATH_MAX];
    ss_options opt;
    ss_handler h = {.handle = udp6_limit_handle};
    ss_server *srv;
    tu_serve *s;
    char *buf;
    int fd;

    (void)state;
    if (!tu_have_ipv6())
        skip();
    tu_options(&opt, TU_UDP6, SS_MODE_SYNC, path, sizeof path);
    opt.handle_error = count_error;
    atomic_store(&errors, 0);
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    s = tu_serve_start(srv, 0.05);
    assert_non_null(s);
    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(tu_send_all(fd, "x", 1), 1);
    buf = malloc(UDP6_MAX + 16);
    assert_non_null(buf);
    assert_int_equal(tu_recv_dgram(fd, buf, UDP6_MAX + 16, TU_WAIT_MS), UDP6_MAX);
    free(buf);
    assert_int_equal(atomic_load(&big_write_rc), -1);
    assert_int_equal(atomic_load(&big_write_errno), EMSGSIZE);
    assert_int_equal(atomic_load(&errors), 0);
    close(fd);
    assert_int_equal(tu_serve_stop(s), 0);
    tu_server_free(srv);
}

static int dgram_echo_handle(ss_request *req)
{
    size_t len = 0;
    const void *data = ss_request_data(req, &len);

    return ss_write(req, data, len) == (ssize_t)len ? SS_OK : SS_ERROR;
}

static void test_unix_dgram_big_reply(void **state)
{
    char path[TU_PATH_MAX], cpath[TU_PATH_MAX];
    ss_options opt;
    ss_handler h = {.handle = dgram_echo_handle};
    ss_server *srv;
    tu_serve *s;
    char *out, *in;
    int fd;

    (void)state;
    tu_options(&opt, TU_UNIX_DGRAM, SS_MODE_SYNC, path, sizeof path);
    opt.max_packet_size = UNIX_BIG;
    opt.handle_error = count_error;
    atomic_store(&errors, 0);
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    s = tu_serve_start(srv, 0.05);
    assert_non_null(s);
    fd = tu_client(srv, cpath, sizeof cpath);
    assert_true(fd >= 0);
    out = malloc(UNIX_BIG);
    in = malloc(UNIX_BIG + 16);
    assert_non_null(out);
    assert_non_null(in);
    for (size_t i = 0; i < UNIX_BIG; i++)
        out[i] = (char)('a' + i % 26);
    assert_int_equal(tu_send_all(fd, out, UNIX_BIG), UNIX_BIG);
    assert_int_equal(tu_recv_dgram(fd, in, UNIX_BIG + 16, TU_WAIT_MS), UNIX_BIG);
    assert_memory_equal(in, out, UNIX_BIG);
    assert_int_equal(atomic_load(&errors), 0);
    free(out);
    free(in);
    close(fd);
    unlink(cpath);
    assert_int_equal(tu_serve_stop(s), 0);
    tu_server_free(srv);
}

/* ---- 13. readline size check -------------------------------------------- */

static atomic_long tiny_rc;
static atomic_int tiny_errno;

static int tiny_readline_handle(ss_request *req)
{
    char one[1];

    errno = 0;
    ssize_t r = ss_readline(req, one, sizeof one);
    atomic_store(&tiny_errno, errno);
    atomic_store(&tiny_rc, (long)r);
    return tu_echo_handle(req);
}

static void test_readline_size_one(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = tiny_readline_handle};
    ss_server *srv;
    tu_serve *s;
    char buf[64];

    (void)state;
    atomic_store(&tiny_rc, 99);
    ss_options_init(&opt);
    srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    s = tu_serve_start(srv, 0.05);
    assert_non_null(s);
    /* The failed call consumed nothing: the echo is whole. */
    assert_int_equal(tu_roundtrip(srv, TU_TEST_STR, buf, sizeof buf), (ssize_t)strlen(TU_TEST_STR));
    assert_string_equal(buf, TU_TEST_STR);
    assert_int_equal(atomic_load(&tiny_rc), -1);
    assert_int_equal(atomic_load(&tiny_errno), EINVAL);
    assert_int_equal(tu_serve_stop(s), 0);
    tu_server_free(srv);
}

/* ---- 14. address forms -------------------------------------------------- */

static void check_any_port(const char *address)
{
    ss_options opt;
    ss_server *srv;
    char buf[64];

    ss_options_init(&opt);
    opt.address = address;
    srv = tu_server_new(&opt, NULL);
    if (srv == NULL)
        fail_msg("%s: %s", address, strerror(errno));
    assert_non_null(ss_server_address_str(srv, buf, sizeof buf));
    if (strncmp(buf, "0.0.0.0:", 8) != 0)
        fail_msg("%s bound %s", address, buf);
    assert_true(ss_server_port(srv) > 0);
    tu_server_free(srv);
}

static void check_scoped_loopback(const char *address)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    ss_options opt;
    ss_server *srv;

    if (ss_parse_address(address, SOCK_STREAM, &ss, &len) < 0)
        fail_msg("%s: %s", address, strerror(errno));
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_true(IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&ss)->sin6_addr));
    ss_options_init(&opt);
    opt.address = address;
    srv = tu_server_new(&opt, NULL);
    if (srv == NULL)
        fail_msg("%s: %s", address, strerror(errno));
    assert_true(ss_server_port(srv) > 0);
    tu_server_free(srv);
}

static void test_addresses(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;

    (void)state;
    check_any_port(":0");
    check_any_port("*:0");

    errno = 0;
    assert_int_equal(ss_parse_address("[127.0.0.1]:80", SOCK_STREAM, &ss, &len), -1);
    assert_int_equal(errno, EINVAL);

    /* A scope by interface name, on the documented link-local form. */
    len = sizeof ss;
    assert_int_equal(ss_parse_address("[fe80::1%lo]:0", SOCK_STREAM, &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
    assert_int_equal(sin6->sin6_scope_id, if_nametoindex("lo"));

    if (!tu_have_ipv6())
        return;
    /* A numeric scope on ::1 parses and binds. The name form "[::1%lo]"
     * is refused by the C library's numeric parser (names only scope
     * link-local addresses), so it is not asserted here. */
    check_scoped_loopback("[::1%1]:0");
}

/* ---- 15. the prepare_socket hook ---------------------------------------- */

#define WANT_RCVBUF 65536

static atomic_int prepare_calls;
static atomic_bool prepare_ok;

static int rcvbuf_hook(ss_server *srv, int fd)
{
    struct sockaddr_in sin;
    socklen_t slen = sizeof sin;
    int v = WANT_RCVBUF, got = 0;
    socklen_t glen = sizeof got;
    bool ok = srv != NULL && fd >= 0;

    atomic_fetch_add(&prepare_calls, 1);
    /* Not bound yet: the port is still 0. */
    if (getsockname(fd, (struct sockaddr *)&sin, &slen) < 0 || sin.sin_port != 0)
        ok = false;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &glen) < 0 || got < WANT_RCVBUF)
        ok = false;
    atomic_store(&prepare_ok, ok);
    return 0;
}

static int eperm_hook(ss_server *srv, int fd)
{
    (void)srv;
    (void)fd;
    atomic_fetch_add(&prepare_calls, 1);
    errno = EPERM;
    return -1;
}

static void test_prepare_socket(void **state)
{
    ss_options opt;
    ss_server *srv;
    int got = 0, before;
    socklen_t glen = sizeof got;

    (void)state;
    atomic_store(&prepare_calls, 0);
    atomic_store(&prepare_ok, false);
    ss_options_init(&opt);
    opt.prepare_socket = rcvbuf_hook;
    srv = tu_server_new(&opt, NULL);
    assert_non_null(srv);
    assert_int_equal(atomic_load(&prepare_calls), 1);
    assert_true(atomic_load(&prepare_ok));
    assert_int_equal(getsockopt(ss_server_fileno(srv), SOL_SOCKET, SO_RCVBUF, &got, &glen), 0);
    assert_true(got >= WANT_RCVBUF);
    tu_server_free(srv);

    atomic_store(&prepare_calls, 0);
    opt.prepare_socket = eperm_hook;
    before = tu_count_fds();
    errno = 0;
    srv = tu_server_new(&opt, NULL);
    assert_null(srv);
    assert_int_equal(errno, EPERM);
    assert_int_equal(atomic_load(&prepare_calls), 1);
    assert_int_equal(tu_count_fds(), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_shutdown_in_forked_process),
        TU_TEST(test_signal_target_cleared_at_free),
        TU_TEST(test_child_dies_of_stop_signal),
        TU_TEST(test_sync_eintr_on_stop_signal),
        TU_TEST(test_unbound_unix_client_sync),
        TU_TEST(test_unbound_unix_client_threading),
        TU_TEST(test_stale_probe_full_backlog),
        TU_TEST(test_handle_error_broken_stderr),
        TU_TEST(test_reject_hook_stream),
        TU_TEST(test_reject_hook_datagram),
        TU_TEST(test_reject_silent_datagram),
        TU_TEST(test_free_daemon_threads),
        TU_TEST(test_drain_in_handler_threading),
        TU_TEST(test_drain_in_handler_pool),
        TU_TEST(test_forking_drain_many_children),
        TU_TEST(test_udp6_reply_limit),
        TU_TEST(test_unix_dgram_big_reply),
        TU_TEST(test_readline_size_one),
        TU_TEST(test_addresses),
        TU_TEST(test_prepare_socket),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
