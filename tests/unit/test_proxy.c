/*
 * test_proxy.c - the PROXY protocol: the parser (v1 and v2, hostile input
 * of every kind) and a stream server reading the header after accept: the
 * handler, verify_request and the connection limits see the real client,
 * ss_request_proxy_address the proxy, the bytes after the header reach the
 * handler, a header split over many receives still parses, a peer that
 * dribbles bytes past the deadline is dropped, an untrusted peer's bytes are
 * never a header, and REQUIRED refuses a connection without one.
 *
 * The handler answers "<client> <proxy or ->\n", then echoes one line.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static const unsigned char sig2[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                       0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static const unsigned char v1_prefix[6] = {'P', 'R', 'O', 'X', 'Y', ' '};
static atomic_int errors;
static atomic_int last_error;
static atomic_int verified;
static char verified_addr[SS__ADDRSTRLEN];

static ssize_t parse_str(const char *s, ss__proxy_header *h)
{
    return ss__proxy_parse((const unsigned char *)s, strlen(s), h);
}

static const char *addr_str(const ss__proxy_header *h, char *buf, size_t size)
{
    return ss_format_address((const struct sockaddr *)&h->src, h->srclen, buf, size);
}

/* A v2 header: version/command byte, family/transport byte, body. */
static size_t make_v2(unsigned char *buf, unsigned char vc, unsigned char ft,
                      const unsigned char *body, size_t blen)
{
    memcpy(buf, sig2, 12);
    buf[12] = vc;
    buf[13] = ft;
    buf[14] = (unsigned char)(blen >> 8);
    buf[15] = (unsigned char)(blen & 0xff);
    if (blen > 0)
        memcpy(buf + 16, body, blen);
    return 16 + blen;
}

static void test_v1_parse(void **state)
{
    (void)state;
    ss__proxy_header h;
    char a[SS__ADDRSTRLEN];
    const char *ok4 = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\nrest";

    assert_int_equal(parse_str(ok4, &h), (ssize_t)strlen(ok4) - 4);
    assert_true(h.with_address);
    assert_string_equal(addr_str(&h, a, sizeof a), "192.0.2.7:56324");

    const char *ok6 = "PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n";
    assert_int_equal(parse_str(ok6, &h), (ssize_t)strlen(ok6));
    assert_string_equal(addr_str(&h, a, sizeof a), "[2001:db8::7]:65535");

    /* UNKNOWN: anything up to the CRLF, the connection's address is kept. */
    assert_int_equal(parse_str("PROXY UNKNOWN\r\n", &h), 15);
    assert_false(h.with_address);
    assert_int_equal(parse_str("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", &h), 35);
    assert_false(h.with_address);

    /* Every prefix of a valid header asks for more bytes. */
    for (size_t n = 1; n < strlen(ok4) - 4; n++)
        assert_int_equal(ss__proxy_parse((const unsigned char *)ok4, n, &h), 0);

    /* Hostile lines. */
    static const char *bad[] = {
        "PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\n",    /* no CR */
        "PROXY TCP4 192.0.2.7 198.51.100.1 56324 443 \r\n", /* trailing space */
        "PROXY TCP4  192.0.2.7 198.51.100.1 56324 443\r\n", /* two spaces */
        "PROXY TCP4 192.0.2.7 198.51.100.1 65536 443\r\n",  /* port too big */
        "PROXY TCP4 192.0.2.7 198.51.100.1 056324 443\r\n", /* leading zero */
        "PROXY TCP4 192.0.2.7 198.51.100.1 -1 443\r\n",     /* sign */
        "PROXY TCP4 192.0.2.7 198.51.100.1 1x 443\r\n",     /* junk port */
        "PROXY TCP4 192.0.2.7 198.51.100.1 1\r\n",          /* field missing */
        "PROXY TCP4 2001:db8::7 198.51.100.1 1 2\r\n",      /* v6 in TCP4 */
        "PROXY TCP6 192.0.2.7 2001:db8::1 1 2\r\n",         /* v4 in TCP6 */
        "PROXY TCP5 192.0.2.7 198.51.100.1 1 2\r\n",        /* no such family */
        "PROXY TCP4 192.0.2.300 198.51.100.1 1 2\r\n",      /* bad address */
        "PROXY TCP4 192.0.2.7\t198.51.100.1 1 2\r\n",       /* a tab */
        "PROXY \r\n",
        "PROXY UNKNOWNX\r\n",
        "PROXY TCP4 192.0.2.7 198.51.100.1 1 2 3\r\n", /* one field too many */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ssize_t r = parse_str(bad[i], &h);
        if (r != SS__PROXY_BAD)
            fail_msg("accepted: %s", bad[i]);
    }
    /* A NUL inside the line. */
    const char nul[] = "PROXY TCP4 192.0.2.7\0198.51.100.1 1 2\r\n";
    assert_int_equal(ss__proxy_parse((const unsigned char *)nul, sizeof nul - 1, &h),
                     SS__PROXY_BAD);

    /* Oversized: 107 bytes without a LF is the end of it. */
    char big[300];
    memset(big, 'A', sizeof big);
    static const char unknown[14] = {'P', 'R', 'O', 'X', 'Y', ' ', 'U',
                                     'N', 'K', 'N', 'O', 'W', 'N', ' '};
    memcpy(big, unknown, sizeof unknown);
    assert_int_equal(ss__proxy_parse((const unsigned char *)big, 106, &h), 0);
    assert_int_equal(ss__proxy_parse((const unsigned char *)big, 107, &h), SS__PROXY_BAD);
    assert_int_equal(ss__proxy_parse((const unsigned char *)big, sizeof big, &h), SS__PROXY_BAD);
    /* ... while exactly 107 bytes with the CRLF is still a header. */
    big[105] = '\r';
    big[106] = '\n';
    assert_int_equal(ss__proxy_parse((const unsigned char *)big, sizeof big, &h), 107);

    /* Not a header at all: bad signatures. */
    assert_int_equal(parse_str("USER anonymous\r\n", &h), SS__PROXY_NONE);
    assert_int_equal(parse_str("PROXZ TCP4", &h), SS__PROXY_NONE);
    assert_int_equal(parse_str("proxy TCP4", &h), SS__PROXY_NONE);
    assert_int_equal(parse_str("P", &h), 0);
}

static void test_v2_parse(void **state)
{
    (void)state;
    ss__proxy_header h;
    unsigned char buf[SS__PROXY_V2_MAX + 64];
    unsigned char body[256];
    char a[SS__ADDRSTRLEN];

    /* IPv4 over TCP, with a TLV after the addresses (skipped). */
    memset(body, 0, sizeof body);
    unsigned char v4[] = {192,  0,    2,    9,    203,  0,    113, 1,  0xC3,
                          0x50, 0x00, 0x15, 0x04, 0x00, 0x02, 'h', 'i'};
    size_t n = make_v2(buf, 0x21, 0x11, v4, sizeof v4);
    static const unsigned char data4[4] = {'D', 'A', 'T', 'A'};
    memcpy(buf + n, data4, sizeof data4);
    assert_int_equal(ss__proxy_parse(buf, n + 4, &h), (ssize_t)n);
    assert_true(h.with_address);
    assert_string_equal(addr_str(&h, a, sizeof a), "192.0.2.9:50000");
    /* Partial: every shorter length wants more. */
    for (size_t k = 1; k < n; k++)
        assert_int_equal(ss__proxy_parse(buf, k, &h), 0);

    /* IPv6. */
    memset(body, 0, 36);
    body[0] = 0x20;
    body[1] = 0x01;
    body[2] = 0x0d;
    body[3] = 0xb8;
    body[15] = 0x42;
    body[32] = 0x01;
    body[33] = 0xbb;
    n = make_v2(buf, 0x21, 0x21, body, 36);
    assert_int_equal(ss__proxy_parse(buf, n, &h), (ssize_t)n);
    assert_string_equal(addr_str(&h, a, sizeof a), "[2001:db8::42]:443");

    /* LOCAL (a health check): the connection's own address. */
    n = make_v2(buf, 0x20, 0x00, NULL, 0);
    assert_int_equal(ss__proxy_parse(buf, n, &h), 16);
    assert_false(h.with_address);
    n = make_v2(buf, 0x20, 0x11, v4, 12); /* LOCAL with addresses: ignored */
    assert_int_equal(ss__proxy_parse(buf, n, &h), 28);
    assert_false(h.with_address);

    /* AF_UNIX: valid, but no address we could count: keep the proxy's. */
    memset(body, 'x', 216);
    n = make_v2(buf, 0x21, 0x31, body, 216);
    assert_int_equal(ss__proxy_parse(buf, n, &h), (ssize_t)n);
    assert_false(h.with_address);
    /* UNSPEC family, and a datagram transport: likewise. */
    n = make_v2(buf, 0x21, 0x00, NULL, 0);
    assert_int_equal(ss__proxy_parse(buf, n, &h), 16);
    assert_false(h.with_address);
    n = make_v2(buf, 0x21, 0x12, v4, 12);
    assert_int_equal(ss__proxy_parse(buf, n, &h), 28);
    assert_false(h.with_address);

    /* Hostile blocks. */
    n = make_v2(buf, 0x11, 0x11, v4, 12); /* version 1 in a v2 block */
    assert_int_equal(ss__proxy_parse(buf, n, &h), SS__PROXY_BAD);
    n = make_v2(buf, 0x22, 0x11, v4, 12); /* command 2 */
    assert_int_equal(ss__proxy_parse(buf, n, &h), SS__PROXY_BAD);
    n = make_v2(buf, 0x21, 0x41, v4, 12); /* family 4 */
    assert_int_equal(ss__proxy_parse(buf, n, &h), SS__PROXY_BAD);
    n = make_v2(buf, 0x21, 0x13, v4, 12); /* transport 3 */
    assert_int_equal(ss__proxy_parse(buf, n, &h), SS__PROXY_BAD);
    n = make_v2(buf, 0x21, 0x11, v4, 11); /* IPv4 block too short */
    assert_int_equal(ss__proxy_parse(buf, n, &h), SS__PROXY_BAD);
    n = make_v2(buf, 0x21, 0x21, body, 35); /* IPv6 block too short */
    assert_int_equal(ss__proxy_parse(buf, n, &h), SS__PROXY_BAD);
    n = make_v2(buf, 0x21, 0x31, body, 100); /* Unix block too short */
    assert_int_equal(ss__proxy_parse(buf, n, &h), SS__PROXY_BAD);
    /* Oversized: told at once from the 16 bytes, not after 64 KiB. */
    make_v2(buf, 0x21, 0x11, v4, 12);
    buf[14] = 0xff;
    buf[15] = 0xff;
    assert_int_equal(ss__proxy_parse(buf, 16, &h), SS__PROXY_BAD);
    buf[14] = (unsigned char)((SS__PROXY_V2_MAX - 16) >> 8);
    buf[15] = (unsigned char)((SS__PROXY_V2_MAX - 16) & 0xff);
    assert_int_equal(ss__proxy_parse(buf, 16, &h), 0); /* at the cap: wait */
    buf[15]++;
    assert_int_equal(ss__proxy_parse(buf, 16, &h), SS__PROXY_BAD);

    /* A broken signature is no header. */
    n = make_v2(buf, 0x21, 0x11, v4, 12);
    buf[11] = 0x0B;
    assert_int_equal(ss__proxy_parse(buf, n, &h), SS__PROXY_NONE);
    for (size_t k = 1; k < 12; k++) {
        make_v2(buf, 0x21, 0x11, v4, 12);
        assert_int_equal(ss__proxy_parse(buf, k, &h), 0);
        buf[k - 1] ^= 0x40;
        assert_int_equal(ss__proxy_parse(buf, k, &h), SS__PROXY_NONE);
    }
}

/* Random bytes after a valid signature never crash or overread (ASan). */
static void test_fuzz_parse(void **state)
{
    (void)state;
    ss__proxy_header h;
    unsigned seed = 12345;

    for (int round = 0; round < 20000; round++) {
        size_t len = 1 + (seed = seed * 1103515245u + 12345u) % 200;
        unsigned char *b = malloc(len);
        assert_non_null(b);
        for (size_t i = 0; i < len; i++)
            b[i] = (unsigned char)((seed = seed * 1103515245u + 12345u) >> 16);
        if (round % 2 == 0 && len >= 16)
            memcpy(b, sig2, 12);
        else if (round % 3 == 0 && len >= 6)
            memcpy(b, v1_prefix, sizeof v1_prefix);
        ssize_t r = ss__proxy_parse(b, len, &h);
        assert_true(r >= SS__PROXY_NONE && r <= (ssize_t)len);
        free(b);
    }
}

static int handle(ss_request *req)
{
    char line[256];
    socklen_t plen;
    const struct sockaddr *p = ss_request_proxy_address(req, &plen);
    char pbuf[SS__ADDRSTRLEN];

    if (ss_printf(req, "%s %s\n", ss_request_client_str(req),
                  p != NULL ? ss_format_address(p, plen, pbuf, sizeof pbuf) : "-") < 0)
        return SS_ERROR;
    ssize_t n = ss_readline(req, line, sizeof line);
    if (n > 0 && ss_write(req, line, (size_t)n) < 0)
        return SS_ERROR;
    return SS_OK;
}

static bool verify(ss_request *req)
{
    snprintf(verified_addr, sizeof verified_addr, "%s", ss_request_client_str(req));
    atomic_fetch_add(&verified, 1);
    return true;
}

static void on_error(ss_server *srv, ss_request *req, int err)
{
    (void)srv;
    (void)req;
    atomic_store(&last_error, err);
    atomic_fetch_add(&errors, 1);
}

static ss_server *proxy_server(ss_proxy_mode mode, const char *trusted, double request_timeout,
                               unsigned max_per_peer)
{
    ss_options opt;
    ss_handler h = {.handle = handle};

    tu_options(&opt, TU_TCP, SS_MODE_THREADING, NULL, 0);
    opt.proxy_protocol = mode;
    opt.proxy_trusted = trusted;
    opt.request_timeout = request_timeout;
    opt.verify_request = verify;
    opt.handle_error = on_error;
    opt.max_per_peer = max_per_peer;
    atomic_store(&errors, 0);
    atomic_store(&last_error, 0);
    atomic_store(&verified, 0);
    return tu_server_new(&opt, &h);
}

static int connect_from(const ss_server *srv, const char *src)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;

    if (fd < 0)
        return -1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
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

static void pause_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_server_v1_v2(void **state)
{
    (void)state;
    ss_server *srv = proxy_server(SS_PROXY_REQUIRED, "127.0.0.1", -1, 0);
    assert_non_null(srv);
    tu_serve *serve = tu_serve_start(srv, 0.05);
    assert_non_null(serve);
    char line[256];

    /* v1, with the client's first line in the same send. */
    int fd = connect_from(srv, "127.0.0.1");
    assert_true(fd >= 0);
    const char *h1 = "PROXY TCP4 203.0.113.5 127.0.0.1 40000 21\r\nhello\n";
    assert_int_equal(tu_send_all(fd, h1, strlen(h1)), (ssize_t)strlen(h1));
    assert_true(tu_recv_line(fd, line, sizeof line, TU_WAIT_MS) > 0);
    assert_true(strncmp(line, "203.0.113.5:40000 127.0.0.1:", 28) == 0);
    assert_true(tu_recv_line(fd, line, sizeof line, TU_WAIT_MS) > 0);
    assert_string_equal(line, "hello\n");
    assert_string_equal(verified_addr, "203.0.113.5:40000");
    close(fd);

    /* v2 IPv6, split over many sends (a receive each). */
    unsigned char buf[128], body[36];
    memset(body, 0, sizeof body);
    body[0] = 0x20;
    body[1] = 0x01;
    body[2] = 0x0d;
    body[3] = 0xb8;
    body[15] = 0x99;
    body[32] = 0x30;
    body[33] = 0x39;
    size_t n = make_v2(buf, 0x21, 0x21, body, sizeof body);
    static const unsigned char v2data[8] = {'v', '2', ' ', 'd', 'a', 't', 'a', '\n'};
    memcpy(buf + n, v2data, sizeof v2data);
    fd = connect_from(srv, "127.0.0.1");
    assert_true(fd >= 0);
    for (size_t off = 0; off < n + 8; off += 7) {
        size_t k = n + 8 - off < 7 ? n + 8 - off : 7;
        assert_int_equal(tu_send_all(fd, buf + off, k), (ssize_t)k);
        pause_ms(5); /* separate segments, so that the server reads in pieces */
    }
    assert_true(tu_recv_line(fd, line, sizeof line, TU_WAIT_MS) > 0);
    assert_true(strncmp(line, "[2001:db8::99]:12345 127.0.0.1:", 31) == 0);
    assert_true(tu_recv_line(fd, line, sizeof line, TU_WAIT_MS) > 0);
    assert_string_equal(line, "v2 data\n");
    close(fd);

    /* v2 LOCAL (health check): the proxy's own address, no proxy address. */
    n = make_v2(buf, 0x20, 0x00, NULL, 0);
    fd = connect_from(srv, "127.0.0.1");
    assert_true(fd >= 0);
    assert_int_equal(tu_send_all(fd, buf, n), (ssize_t)n);
    assert_true(tu_recv_line(fd, line, sizeof line, TU_WAIT_MS) > 0);
    assert_true(strncmp(line, "127.0.0.1:", 10) == 0);
    assert_non_null(strstr(line, " -\n"));
    close(fd);
    assert_int_equal(atomic_load(&errors), 0);

    /* No header: refused before verify_request, reported as EPROTO. */
    int before = atomic_load(&verified);
    fd = connect_from(srv, "127.0.0.1");
    assert_true(fd >= 0);
    assert_int_equal(tu_send_all(fd, "hello\n", 6), 6);
    assert_int_equal(tu_wait_eof(fd, TU_WAIT_MS), 0);
    close(fd);
    assert_int_equal(atomic_load(&verified), before);
    assert_int_equal(atomic_load(&last_error), EPROTO);

    /* An untrusted peer: refused at once, even with a valid header. */
    fd = connect_from(srv, "127.0.0.2");
    assert_true(fd >= 0);
    assert_int_equal(tu_send_all(fd, h1, strlen(h1)), (ssize_t)strlen(h1));
    assert_int_equal(tu_wait_eof(fd, TU_WAIT_MS), 0);
    close(fd);
    assert_int_equal(atomic_load(&last_error), EACCES);
    assert_int_equal(atomic_load(&verified), before);

    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
}

static void test_optional(void **state)
{
    (void)state;
    ss_server *srv = proxy_server(SS_PROXY_OPTIONAL, "127.0.0.1", -1, 0);
    assert_non_null(srv);
    tu_serve *serve = tu_serve_start(srv, 0.05);
    assert_non_null(serve);
    char line[256];

    /* A trusted peer without a header: its bytes are the request's. */
    int fd = connect_from(srv, "127.0.0.1");
    assert_true(fd >= 0);
    assert_int_equal(tu_send_all(fd, "plain\n", 6), 6);
    assert_true(tu_recv_line(fd, line, sizeof line, TU_WAIT_MS) > 0);
    assert_true(strncmp(line, "127.0.0.1:", 10) == 0);
    assert_true(tu_recv_line(fd, line, sizeof line, TU_WAIT_MS) > 0);
    assert_string_equal(line, "plain\n");
    close(fd);

    /* An untrusted peer's header is data, never parsed. */
    fd = connect_from(srv, "127.0.0.2");
    assert_true(fd >= 0);
    const char *h1 = "PROXY TCP4 203.0.113.5 127.0.0.1 40000 21\r\n";
    assert_true(tu_recv_line(fd, line, sizeof line, TU_WAIT_MS) > 0); /* served at once */
    assert_true(strncmp(line, "127.0.0.2:", 10) == 0);
    assert_int_equal(tu_send_all(fd, h1, strlen(h1)), (ssize_t)strlen(h1));
    assert_true(tu_recv_line(fd, line, sizeof line, TU_WAIT_MS) > 0);
    assert_string_equal(line, h1 + 0);
    close(fd);

    /* A trusted peer with a broken header: refused. */
    fd = connect_from(srv, "127.0.0.1");
    assert_true(fd >= 0);
    assert_int_equal(tu_send_all(fd, "PROXY TCP4 x y 1 2\r\n", 20), 20);
    assert_int_equal(tu_wait_eof(fd, TU_WAIT_MS), 0);
    close(fd);
    assert_int_equal(atomic_load(&last_error), EPROTO);

    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
}

/* A header dribbled a byte at a time is cut off at the deadline (here the
 * request timeout, 0.3 s), and the server serves others meanwhile after. */
static void test_slowloris(void **state)
{
    (void)state;
    ss_server *srv = proxy_server(SS_PROXY_REQUIRED, NULL, 0.3, 0);
    assert_non_null(srv);
    tu_serve *serve = tu_serve_start(srv, 0.05);
    assert_non_null(serve);

    int fd = connect_from(srv, "127.0.0.1");
    assert_true(fd >= 0);
    const char *h1 = "PROXY TCP4 203.0.113.5 127.0.0.1 40000 21\r\n";
    double t0 = tu_now();
    bool closed = false;
    for (size_t i = 0; i < strlen(h1) && tu_now() - t0 < 5.0; i++) {
        if (send(fd, h1 + i, 1, MSG_NOSIGNAL) < 0) {
            closed = true;
            break;
        }
        if (tu_wait_readable(fd, 50) == 1) {
            closed = true; /* the end of the stream (or a reset) */
            break;
        }
    }
    double took = tu_now() - t0;
    assert_true(closed);
    assert_true(took >= 0.25 && took < 2.0);
    close(fd);
    assert_int_equal(atomic_load(&last_error), ETIMEDOUT);
    assert_int_equal(atomic_load(&verified), 0);

    /* The loop goes on. */
    char line[256];
    fd = connect_from(srv, "127.0.0.1");
    assert_true(fd >= 0);
    assert_int_equal(tu_send_all(fd, "PROXY UNKNOWN\r\nx\n", 17), 17);
    assert_true(tu_recv_line(fd, line, sizeof line, TU_WAIT_MS) > 0);
    assert_true(strncmp(line, "127.0.0.1:", 10) == 0);
    close(fd);

    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
}

/* max_per_peer counts the real client: two sessions of one real client
 * through the same proxy address are one too many; another real client is
 * served. */
static void test_limits_count_real_client(void **state)
{
    (void)state;
    ss_server *srv = proxy_server(SS_PROXY_REQUIRED, "127.0.0.0/8", -1, 1);
    assert_non_null(srv);
    tu_serve *serve = tu_serve_start(srv, 0.05);
    assert_non_null(serve);
    char line[256];

    int a = connect_from(srv, "127.0.0.1");
    assert_true(a >= 0);
    const char *ha = "PROXY TCP4 198.51.100.1 127.0.0.1 1000 21\r\n";
    assert_int_equal(tu_send_all(a, ha, strlen(ha)), (ssize_t)strlen(ha));
    assert_true(tu_recv_line(a, line, sizeof line, TU_WAIT_MS) > 0);

    int b = connect_from(srv, "127.0.0.1");
    assert_true(b >= 0);
    const char *hb = "PROXY TCP4 198.51.100.1 127.0.0.1 1001 21\r\n";
    assert_int_equal(tu_send_all(b, hb, strlen(hb)), (ssize_t)strlen(hb));
    assert_int_equal(tu_wait_eof(b, TU_WAIT_MS), 0); /* the same real client: refused */
    close(b);

    int c = connect_from(srv, "127.0.0.1");
    assert_true(c >= 0);
    const char *hc = "PROXY TCP4 198.51.100.2 127.0.0.1 1002 21\r\n";
    assert_int_equal(tu_send_all(c, hc, strlen(hc)), (ssize_t)strlen(hc));
    assert_true(tu_recv_line(c, line, sizeof line, TU_WAIT_MS) > 0);
    assert_true(strncmp(line, "198.51.100.2:1002 ", 18) == 0);

    struct sockaddr_in real;
    memset(&real, 0, sizeof real);
    real.sin_family = AF_INET;
    inet_pton(AF_INET, "198.51.100.1", &real.sin_addr);
    assert_int_equal(ss_server_peer_count(srv, (struct sockaddr *)&real, sizeof real), 1);
    close(a);
    close(c);
    assert_int_equal(tu_serve_stop(serve), 0);
    tu_server_free(srv);
}

static void test_options(void **state)
{
    (void)state;
    ss_options opt;
    static const char *bad[] = {"127.0.0.1/33", "::1/129",    "nonsense",   "127.0.0.1,", ",",
                                "10.0.0.0/",    "10.0.0.0/x", "1.2.3.4/8/8"};
    static const char *good[] = {
        "",         "127.0.0.1",           " 127.0.0.1 , ::1 ", "10.0.0.0/8,[::1]",
        "fd00::/8", "::ffff:127.0.0.1/104"};

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tu_options(&opt, TU_TCP, SS_MODE_SYNC, NULL, 0);
        opt.proxy_protocol = SS_PROXY_REQUIRED;
        opt.proxy_trusted = bad[i];
        errno = 0;
        ss_server *srv = ss_server_new(&opt, NULL);
        if (srv != NULL)
            fail_msg("accepted trusted list '%s'", bad[i]);
        assert_int_equal(errno, EINVAL);
    }
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        tu_options(&opt, TU_TCP, SS_MODE_SYNC, NULL, 0);
        opt.proxy_protocol = SS_PROXY_OPTIONAL;
        opt.proxy_trusted = good[i];
        ss_server *srv = ss_server_new(&opt, NULL);
        if (srv == NULL)
            fail_msg("refused trusted list '%s'", good[i]);
        ss_server_free(srv);
    }
    /* Datagram servers have no header. */
    tu_options(&opt, TU_UDP, SS_MODE_SYNC, NULL, 0);
    opt.proxy_protocol = SS_PROXY_REQUIRED;
    assert_null(ss_server_new(&opt, NULL));
    assert_int_equal(errno, EINVAL);
    tu_options(&opt, TU_TCP, SS_MODE_SYNC, NULL, 0);
    opt.proxy_protocol = (ss_proxy_mode)7;
    assert_null(ss_server_new(&opt, NULL));
}

static void test_trusted_match(void **state)
{
    (void)state;
    ss_options opt;
    tu_options(&opt, TU_TCP, SS_MODE_SYNC, NULL, 0);
    opt.proxy_protocol = SS_PROXY_REQUIRED;
    opt.proxy_trusted = "10.1.0.0/16,2001:db8::/32,192.0.2.1";
    ss_server *srv = tu_server_new(&opt, NULL);
    assert_non_null(srv);
    struct sockaddr_in in = {.sin_family = AF_INET};
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};

    inet_pton(AF_INET, "10.1.255.3", &in.sin_addr);
    assert_true(ss__proxy_trusted(srv->proxy, (struct sockaddr *)&in, sizeof in));
    inet_pton(AF_INET, "10.2.0.1", &in.sin_addr);
    assert_false(ss__proxy_trusted(srv->proxy, (struct sockaddr *)&in, sizeof in));
    inet_pton(AF_INET, "192.0.2.1", &in.sin_addr);
    assert_true(ss__proxy_trusted(srv->proxy, (struct sockaddr *)&in, sizeof in));
    inet_pton(AF_INET, "192.0.2.2", &in.sin_addr);
    assert_false(ss__proxy_trusted(srv->proxy, (struct sockaddr *)&in, sizeof in));
    inet_pton(AF_INET6, "::ffff:10.1.2.3", &in6.sin6_addr); /* mapped: as IPv4 */
    assert_true(ss__proxy_trusted(srv->proxy, (struct sockaddr *)&in6, sizeof in6));
    inet_pton(AF_INET6, "2001:db8:ffff::1", &in6.sin6_addr);
    assert_true(ss__proxy_trusted(srv->proxy, (struct sockaddr *)&in6, sizeof in6));
    inet_pton(AF_INET6, "2001:db9::1", &in6.sin6_addr);
    assert_false(ss__proxy_trusted(srv->proxy, (struct sockaddr *)&in6, sizeof in6));
    tu_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_v1_parse), TU_TEST(test_v2_parse),      TU_TEST(test_fuzz_parse),
        TU_TEST(test_options),  TU_TEST(test_trusted_match), TU_TEST(test_server_v1_v2),
        TU_TEST(test_optional), TU_TEST(test_slowloris),     TU_TEST(test_limits_count_real_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
