/*
 * test_limits.c - connection accounting (max_connections, max_per_peer,
 * peer_prefix6) in every mode and both transports: the request over a limit
 * gets the reject hook's word and is closed (a datagram: dropped), with the
 * reason the hook reads; a second loopback address is still served when the
 * first has used its share; slots come back when requests end, and in
 * forking mode when the server reaps a child it did not see exit (SIGKILL).
 *
 * The stream handler says "<pid>\n" as it starts and then waits for a line
 * from its client, so the test decides when each request ends, in threads
 * and forked children alike.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static atomic_int rejects;
static atomic_int last_reason;
static tu_chan events;  /* datagram handler: 'S' when it runs */
static tu_chan release; /* datagram handler: a byte lets it finish */

static const ss_mode concurrent_modes[] = {SS_MODE_THREADING, SS_MODE_FORKING, SS_MODE_POOL};
static const ss_mode all_modes[] = {SS_MODE_SYNC, SS_MODE_THREADING, SS_MODE_FORKING, SS_MODE_POOL};

static int stream_handle(ss_request *req)
{
    char line[64];

    if (ss_printf(req, "%d\n", (int)getpid()) < 0)
        return SS_ERROR;
    if (ss_readline(req, line, sizeof(line)) <= 0)
        return SS_OK;
    return ss_printf(req, "bye\n") < 0 ? SS_ERROR : SS_OK;
}

static int dgram_handle(ss_request *req)
{
    tu_chan_put(&events, 'S');
    tu_chan_get(&release, TU_WAIT_MS);
    return ss_write(req, "done\n", 5) < 0 ? SS_ERROR : SS_OK;
}

static void reject_hook(ss_request *req)
{
    int reason = (int)ss_request_reject_reason(req);

    atomic_store(&last_reason, reason);
    atomic_fetch_add(&rejects, 1);
    if (ss_request_is_datagram(req))
        (void)ss_reply(req, "busy\n", 5);
    else
        (void)ss_printf(req, "busy %d\n", reason);
}

static ss_server *new_server(enum tu_kind kind, ss_mode mode, unsigned max_conn, unsigned max_peer,
                             char *path, size_t size)
{
    ss_options opt;
    ss_handler h = {0};

    tu_options(&opt, kind, mode, path, size);
    opt.max_connections = max_conn;
    opt.max_per_peer = max_peer;
    opt.reject = reject_hook;
    opt.pool_workers = 4;
    opt.pool_queue = 4;
    h.handle = tu_kind_is_datagram(kind) ? dgram_handle : stream_handle;
    atomic_store(&rejects, 0);
    atomic_store(&last_reason, -1);
    return tu_server_new(&opt, &h);
}

/* A TCP client connected from the loopback address src (e.g. "127.0.0.2"). */
static int client_from(const ss_server *srv, const char *src)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    inet_pton(AF_INET, src, &a.sin_addr);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        goto fail;
    a.sin_port = htons((uint16_t)ss_server_port(srv));
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        goto fail;
    return fd;
fail:
    close(fd);
    return -1;
}

/* Read the handler's first line: the pid serving the request, or -1. */
static long started(int fd)
{
    char line[64];

    if (tu_recv_line(fd, line, sizeof(line), TU_WAIT_MS) <= 0)
        return -1;
    return strtol(line, NULL, 10);
}

/* End a request the handler holds: send a line, read "bye", then the end. */
static void finish(int fd)
{
    char line[64];

    assert_int_equal(tu_send_all(fd, "x\n", 2), 2);
    assert_true(tu_recv_line(fd, line, sizeof(line), TU_WAIT_MS) > 0);
    assert_string_equal(line, "bye\n");
    assert_int_equal(tu_wait_eof(fd, TU_WAIT_MS), 0);
    close(fd);
}

/* The request over the limit: the hook's line, then the end of stream. */
static void expect_rejected(int fd, ss_reject_reason reason)
{
    char line[64], want[32];

    snprintf(want, sizeof(want), "busy %d\n", (int)reason);
    assert_true(tu_recv_line(fd, line, sizeof(line), TU_WAIT_MS) > 0);
    assert_string_equal(line, want);
    assert_int_equal(tu_wait_eof(fd, TU_WAIT_MS), 0);
    assert_int_equal(atomic_load(&last_reason), (int)reason);
    close(fd);
}

static struct sockaddr_in ipv4(const char *a)
{
    struct sockaddr_in sa;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    inet_pton(AF_INET, a, &sa.sin_addr);
    return sa;
}

static struct sockaddr_in6 ipv6(const char *a)
{
    struct sockaddr_in6 sa;

    memset(&sa, 0, sizeof(sa));
    sa.sin6_family = AF_INET6;
    inet_pton(AF_INET6, a, &sa.sin6_addr);
    return sa;
}

static unsigned count4(ss_server *srv, const char *a)
{
    struct sockaddr_in sa = ipv4(a);
    return ss_server_peer_count(srv, (struct sockaddr *)&sa, sizeof(sa));
}

/* Wait until the count for peer a is at most target (bounded): the slot of
 * a forked child comes back when the serving thread reaps it. Returns the
 * last count. */
static unsigned wait_count4(ss_server *srv, const char *a, unsigned target)
{
    struct timespec pause = {0, 2 * 1000000L};
    double end = tu_now() + TU_WAIT_MS / 1000.0;
    unsigned n;

    while ((n = count4(srv, a)) > target && tu_now() < end)
        nanosleep(&pause, NULL);
    return n;
}

/* Same for ss_server_active. */
static unsigned wait_active(ss_server *srv, unsigned target)
{
    struct timespec pause = {0, 2 * 1000000L};
    double end = tu_now() + TU_WAIT_MS / 1000.0;
    unsigned n;

    while ((n = ss_server_active(srv)) != target && tu_now() < end)
        nanosleep(&pause, NULL);
    return n;
}

/* ---- the key ---------------------------------------------------------- */

static bool same_peer(const struct sockaddr *a, socklen_t alen, const struct sockaddr *b,
                      socklen_t blen, unsigned prefix6)
{
    ss__peer_key ka, kb;

    assert_int_equal(ss__peer_key_of(a, alen, prefix6, &ka), 0);
    assert_int_equal(ss__peer_key_of(b, blen, prefix6, &kb), 0);
    return ka.family == kb.family && memcmp(ka.addr, kb.addr, sizeof(ka.addr)) == 0;
}

static bool same6(const char *a, const char *b, unsigned prefix6)
{
    struct sockaddr_in6 x = ipv6(a), y = ipv6(b);
    return same_peer((struct sockaddr *)&x, sizeof(x), (struct sockaddr *)&y, sizeof(y), prefix6);
}

/* IPv6 peers are prefixes (only ::1 is routable on loopback, so the key is
 * tested directly); IPv4 peers are addresses, also when they arrive
 * IPv4-mapped on a dual-stack socket; Unix peers have no key. */
static void test_peer_key(void **state)
{
    (void)state;
    assert_true(same6("::1", "::2", 64));
    assert_true(same6("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", 64));
    assert_false(same6("2001:db8:1:2::1", "2001:db8:1:3::1", 64));
    assert_false(same6("2001:db8:1:2::1", "2001:db8:1:2::2", 128));
    assert_true(same6("2001:db8:1:2::1", "2001:db8:1:2::1", 128));
    assert_true(same6("2001:db8::1", "fe80::1", 0));
    /* A prefix that ends inside a byte: /60 keeps 4 bits of the 8th byte. */
    assert_true(same6("2001:db8:1:20::1", "2001:db8:1:2f::1", 60));
    assert_false(same6("2001:db8:1:20::1", "2001:db8:1:30::1", 60));
    assert_false(same6("2001:db8::1", "2001:db9::1", 32));
    assert_true(same6("2001:db8::1", "2001:db9::1", 31));

    struct sockaddr_in v4 = ipv4("127.0.0.1"), v4b = ipv4("127.0.0.2");
    struct sockaddr_in6 mapped = ipv6("::ffff:127.0.0.1");
    v4.sin_port = htons(1000);
    v4b.sin_port = htons(1000);
    assert_true(same_peer((struct sockaddr *)&v4, sizeof(v4), (struct sockaddr *)&mapped,
                          sizeof(mapped), 64));
    assert_false(
        same_peer((struct sockaddr *)&v4, sizeof(v4), (struct sockaddr *)&v4b, sizeof(v4b), 0));
    /* Ports do not make another peer. */
    struct sockaddr_in v4p = ipv4("127.0.0.1");
    v4p.sin_port = htons(2000);
    assert_true(
        same_peer((struct sockaddr *)&v4, sizeof(v4), (struct sockaddr *)&v4p, sizeof(v4p), 64));

    struct sockaddr_un un;
    ss__peer_key k;
    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    assert_int_equal(ss__peer_key_of((struct sockaddr *)&un, sizeof(un), 64, &k), -1);
    assert_int_equal(ss__peer_key_of((struct sockaddr *)&v4, 2, 64, &k), -1);
}

/* The table itself, without sockets: many peers (so it grows), each
 * counted once and turned away the second time, the total limit, and every
 * entry gone after the requests leave. */
static void test_table(void **state)
{
    enum { PEERS = 1000 };
    ss_options opt;
    static ss_request *reqs[PEERS];

    (void)state;
    ss_options_init(&opt);
    opt.max_per_peer = 1;
    opt.max_connections = PEERS;
    ss_server *srv = tu_server_new(&opt, NULL);
    assert_non_null(srv);
    for (int i = 0; i < PEERS; i++) {
        char a[64];
        snprintf(a, sizeof(a), "2001:db8:%x:%x::1", i / 7, i);
        struct sockaddr_in6 sa = ipv6(a);
        reqs[i] = ss__request_new(srv);
        assert_non_null(reqs[i]);
        memcpy(&reqs[i]->addr, &sa, sizeof(sa));
        reqs[i]->addrlen = sizeof(sa);
        assert_int_equal(ss__limits_admit(srv, reqs[i]), 0);
        assert_int_equal(ss_server_peer_count(srv, (struct sockaddr *)&sa, sizeof(sa)), 1);
    }
    ss_request *again = ss__request_new(srv);
    assert_non_null(again);
    memcpy(&again->addr, &reqs[PEERS / 2]->addr, sizeof(again->addr));
    again->addrlen = reqs[PEERS / 2]->addrlen;
    assert_int_equal(ss__limits_admit(srv, again), -1);
    assert_int_equal(again->reject_reason, SS_REJECT_MAX_CONNECTIONS);
    ss__limits_leave(reqs[0]);
    assert_int_equal(ss__limits_admit(srv, again), -1);
    assert_int_equal(again->reject_reason, SS_REJECT_MAX_PER_PEER);
    for (int i = 1; i < PEERS; i++) {
        const struct sockaddr *sa = (const struct sockaddr *)&reqs[i]->addr;
        ss__limits_leave(reqs[i]);
        ss__limits_leave(reqs[i]); /* a second leave is a no-op */
        assert_int_equal(ss_server_peer_count(srv, sa, reqs[i]->addrlen), 0);
        ss__request_free(reqs[i]);
    }
    ss__request_free(reqs[0]);
    assert_int_equal(ss__limits_admit(srv, again), 0);
    ss__limits_leave(again);
    ss__request_free(again);
    tu_server_free(srv);
}

/* ---- streams ------------------------------------------------------------ */

/* max_connections N: the N+1th connection gets the hook's line and is
 * closed, reason MAX_CONNECTIONS; once one ends, the next is served. TCP and
 * Unix streams, in every mode that runs requests side by side. */
static void test_max_connections_stream(void **state)
{
    static const enum tu_kind kinds[] = {TU_TCP, TU_UNIX_STREAM, TU_TCP6};
    enum { N = 2 };
    char path[TU_PATH_MAX + 8];

    (void)state;
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        if (tu_kind_is_ipv6(kinds[k]) && !tu_have_ipv6())
            continue;
        for (size_t m = 0; m < sizeof(concurrent_modes) / sizeof(concurrent_modes[0]); m++) {
            int held[N];
            ss_server *srv = new_server(kinds[k], concurrent_modes[m], N, 0, path, sizeof(path));
            assert_non_null(srv);
            tu_serve *serve = tu_serve_start(srv, 0.01);
            assert_non_null(serve);

            for (int i = 0; i < N; i++) {
                held[i] = tu_client(srv, NULL, 0);
                assert_true(held[i] >= 0);
                assert_true(started(held[i]) > 0);
            }
            int extra = tu_client(srv, NULL, 0);
            assert_true(extra >= 0);
            expect_rejected(extra, SS_REJECT_MAX_CONNECTIONS);
            assert_int_equal(atomic_load(&rejects), 1);

            finish(held[0]);
            if (concurrent_modes[m] == SS_MODE_FORKING)
                assert_int_equal(wait_active(srv, N - 1), N - 1);
            held[0] = tu_client(srv, NULL, 0);
            assert_true(held[0] >= 0);
            assert_true(started(held[0]) > 0);
            for (int i = 0; i < N; i++)
                finish(held[i]);
            assert_int_equal(atomic_load(&rejects), 1);
            assert_int_equal(tu_serve_stop(serve), 0);
            tu_server_free(srv);
        }
    }
}

/* max_per_peer 1: a second connection from 127.0.0.1 is turned away (reason
 * MAX_PER_PEER), one from 127.0.0.2 (loopback too) is served. */
static void test_max_per_peer(void **state)
{
    (void)state;
    for (size_t m = 0; m < sizeof(concurrent_modes) / sizeof(concurrent_modes[0]); m++) {
        ss_server *srv = new_server(TU_TCP, concurrent_modes[m], 0, 1, NULL, 0);
        assert_non_null(srv);
        tu_serve *serve = tu_serve_start(srv, 0.01);
        assert_non_null(serve);

        int a = client_from(srv, "127.0.0.1");
        assert_true(a >= 0);
        assert_true(started(a) > 0);
        assert_int_equal(count4(srv, "127.0.0.1"), 1);
        int again = client_from(srv, "127.0.0.1");
        assert_true(again >= 0);
        expect_rejected(again, SS_REJECT_MAX_PER_PEER);
        int b = client_from(srv, "127.0.0.2");
        assert_true(b >= 0);
        assert_true(started(b) > 0);
        assert_int_equal(count4(srv, "127.0.0.2"), 1);
        assert_int_equal(count4(srv, "127.0.0.1"), 1);
        assert_int_equal(atomic_load(&rejects), 1);

        finish(a);
        finish(b);
        assert_int_equal(wait_count4(srv, "127.0.0.1", 0), 0);
        assert_int_equal(wait_count4(srv, "127.0.0.2", 0), 0);
        assert_int_equal(tu_serve_stop(serve), 0);
        tu_server_free(srv);
    }
}

/* A peer on ::1 counts for its whole /64 (peer_prefix6 64), and only for
 * the address with 128. */
static void test_peer_count_ipv6(void **state)
{
    static const unsigned prefixes[] = {64, 128};

    (void)state;
    if (!tu_have_ipv6())
        skip();
    for (size_t p = 0; p < 2; p++) {
        ss_options opt;
        ss_handler h = {.handle = stream_handle};
        tu_options(&opt, TU_TCP6, SS_MODE_THREADING, NULL, 0);
        opt.max_per_peer = 1;
        opt.peer_prefix6 = prefixes[p];
        opt.reject = reject_hook;
        ss_server *srv = tu_server_new(&opt, &h);
        assert_non_null(srv);
        tu_serve *serve = tu_serve_start(srv, 0.01);
        assert_non_null(serve);

        int fd = tu_client(srv, NULL, 0);
        assert_true(fd >= 0);
        assert_true(started(fd) > 0);
        struct sockaddr_in6 one = ipv6("::1"), sibling = ipv6("::2:3:4:5");
        assert_int_equal(ss_server_peer_count(srv, (struct sockaddr *)&one, sizeof(one)), 1);
        assert_int_equal(ss_server_peer_count(srv, (struct sockaddr *)&sibling, sizeof(sibling)),
                         prefixes[p] == 64 ? 1 : 0);
        finish(fd);
        assert_int_equal(tu_serve_stop(serve), 0);
        tu_server_free(srv);
    }
}

/* Slots come back when requests end: 3N requests one after another under a
 * limit of N, in every mode, none turned away. Streams see their end only
 * after the slot is free, so no wait is needed between them, except in
 * forking mode (the slot is free once the child is reaped; the check reaps
 * before it turns anybody away, but the child may still be exiting). */
static void test_slots_come_back(void **state)
{
    enum { N = 1 };

    (void)state;
    for (size_t m = 0; m < sizeof(all_modes) / sizeof(all_modes[0]); m++) {
        ss_server *srv = new_server(TU_TCP, all_modes[m], N, N, NULL, 0);
        assert_non_null(srv);
        tu_serve *serve = tu_serve_start(srv, 0.01);
        assert_non_null(serve);
        for (int i = 0; i < 3 * N; i++) {
            int fd = tu_client(srv, NULL, 0);
            assert_true(fd >= 0);
            assert_true(started(fd) > 0);
            finish(fd);
            if (all_modes[m] == SS_MODE_FORKING)
                assert_int_equal(wait_count4(srv, "127.0.0.1", 0), 0);
        }
        assert_int_equal(count4(srv, "127.0.0.1"), 0);
        assert_int_equal(atomic_load(&rejects), 0);
        assert_int_equal(tu_serve_stop(serve), 0);
        tu_server_free(srv);
    }
}

/* Forking, limit 1: the child serving the one allowed client is SIGKILLed.
 * It never ends its request itself; the server gives its slot back when it
 * reaps it, so the next client is served. The serve loop's poll interval is
 * long: nothing reaps on a timer, the check itself reaps before it would
 * turn the client away. */
static void test_fork_sigkill_frees_slot(void **state)
{
    (void)state;
    ss_server *srv = new_server(TU_TCP, SS_MODE_FORKING, 1, 1, NULL, 0);
    assert_non_null(srv);
    tu_serve *serve = tu_serve_start(srv, 60);
    assert_non_null(serve);

    int fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    long pid = started(fd);
    assert_true(pid > 0 && pid != (long)getpid());
    int extra = tu_client(srv, NULL, 0);
    assert_true(extra >= 0);
    expect_rejected(extra, SS_REJECT_MAX_CONNECTIONS);

    assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
    /* Wait until it is a zombie, without reaping it (that is the server's
     * job); ECHILD if the server reaped it first. */
    siginfo_t si;
    int r;
    do
        r = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT);
    while (r < 0 && errno == EINTR);
    assert_true(r == 0 || errno == ECHILD);
    assert_int_equal(tu_wait_eof(fd, TU_WAIT_MS), 0);
    close(fd);

    fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    long next = started(fd);
    assert_true(next > 0 && next != pid);
    finish(fd);
    assert_int_equal(atomic_load(&rejects), 1);
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
}

/* ---- datagrams ------------------------------------------------------------ */

/* max_connections 1 with a handler that waits: a second datagram while it
 * runs is dropped after the hook's "busy" reply; once the handler is done,
 * datagrams are served again. UDP and Unix datagrams, every concurrent mode. */
static void test_max_connections_datagram(void **state)
{
    static const enum tu_kind kinds[] = {TU_UDP, TU_UNIX_DGRAM};
    char path[TU_PATH_MAX + 8], cpath[TU_PATH_MAX], reply[64];

    (void)state;
    assert_int_equal(tu_chan_open(&events), 0);
    assert_int_equal(tu_chan_open(&release), 0);
    for (size_t k = 0; k < 2; k++) {
        for (size_t m = 0; m < sizeof(concurrent_modes) / sizeof(concurrent_modes[0]); m++) {
            ss_server *srv = new_server(kinds[k], concurrent_modes[m], 1, 0, path, sizeof(path));
            assert_non_null(srv);
            tu_serve *serve = tu_serve_start(srv, 0.01);
            assert_non_null(serve);
            int fd = tu_client(srv, cpath, sizeof(cpath));
            assert_true(fd >= 0);

            assert_int_equal(send(fd, "one\n", 4, 0), 4);
            assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'S');
            assert_int_equal(send(fd, "two\n", 4, 0), 4);
            assert_int_equal(tu_recv_dgram(fd, reply, sizeof(reply), TU_WAIT_MS), 5);
            assert_memory_equal(reply, "busy\n", 5);
            assert_int_equal(atomic_load(&last_reason), SS_REJECT_MAX_CONNECTIONS);
            assert_int_equal(tu_chan_put(&release, 'r'), 0);
            assert_int_equal(tu_recv_dgram(fd, reply, sizeof(reply), TU_WAIT_MS), 5);
            assert_memory_equal(reply, "done\n", 5);

            /* The reply goes out before the slot is given back. */
            assert_int_equal(wait_active(srv, 0), 0);
            if (kinds[k] == TU_UDP)
                assert_int_equal(wait_count4(srv, "127.0.0.1", 0), 0);
            assert_int_equal(send(fd, "three\n", 6, 0), 6);
            assert_int_equal(tu_chan_get(&events, TU_WAIT_MS), 'S');
            assert_int_equal(tu_chan_put(&release, 'r'), 0);
            assert_int_equal(tu_recv_dgram(fd, reply, sizeof(reply), TU_WAIT_MS), 5);
            assert_memory_equal(reply, "done\n", 5);
            assert_int_equal(atomic_load(&rejects), 1);

            close(fd);
            if (cpath[0] != '\0')
                unlink(cpath);
            assert_int_equal(tu_serve_stop(serve), 0);
            tu_server_free(srv);
        }
    }
    tu_chan_close(&events);
    tu_chan_close(&release);
}

/* The pool's full queue goes to the same hook, with its own reason; a
 * limit that is not reached changes nothing there. */
static void test_pool_full_reason(void **state)
{
    ss_options opt;
    ss_handler h = {.handle = stream_handle};

    (void)state;
    tu_options(&opt, TU_TCP, SS_MODE_POOL, NULL, 0);
    opt.pool_workers = 1;
    opt.pool_queue = 0;
    opt.pool_full = SS_POOL_REJECT;
    opt.max_connections = 5;
    opt.reject = reject_hook;
    atomic_store(&rejects, 0);
    ss_server *srv = tu_server_new(&opt, &h);
    assert_non_null(srv);
    tu_serve *serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    int fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_true(started(fd) > 0);
    int extra = tu_client(srv, NULL, 0);
    assert_true(extra >= 0);
    expect_rejected(extra, SS_REJECT_QUEUE_FULL);
    assert_int_equal(count4(srv, "127.0.0.1"), 1); /* the rejected one never counted */
    finish(fd);
    assert_int_equal(count4(srv, "127.0.0.1"), 0);
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
}

/* Without limits nothing is counted (and nothing costs). */
static void test_no_limits_no_count(void **state)
{
    (void)state;
    ss_server *srv = new_server(TU_TCP, SS_MODE_THREADING, 0, 0, NULL, 0);
    assert_non_null(srv);
    tu_serve *serve = tu_serve_start(srv, 0.01);
    assert_non_null(serve);
    int fd = tu_client(srv, NULL, 0);
    assert_true(fd >= 0);
    assert_true(started(fd) > 0);
    assert_int_equal(count4(srv, "127.0.0.1"), 0);
    assert_null(srv->limits);
    finish(fd);
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_peer_key),
        TU_TEST(test_table),
        TU_TEST(test_max_connections_stream),
        TU_TEST(test_max_per_peer),
        TU_TEST(test_peer_count_ipv6),
        TU_TEST(test_slots_come_back),
        TU_TEST(test_fork_sigkill_frees_slot),
        TU_TEST(test_max_connections_datagram),
        TU_TEST(test_pool_full_reason),
        TU_TEST(test_no_limits_no_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
