/*
 * fuzz_control.c - the control connection as a client before login sees
 * it: the input is everything the client sends, read through the
 * library's line reader (ss_readline_ex) and sockserv-ftpd's control layer
 * (line ends, telnet commands, over-long lines, NUL bytes), and each
 * command line goes through the real command table. PASS is left out: a
 * failed login waits a second by design.
 *
 * Promises checked: a command line has no LF or NUL, does not end in CR
 * (a telnet command between the text and the line end included) and is at
 * most FTPD_LINE_MAX bytes; every reply line the server sends is "ddd text",
 * "ddd-text" or a continuation starting with a space, ended by CRLF, so no
 * input can forge a reply line.
 */
#include "fuzz.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../ftpd/commands.h"
#include "../../ftpd/control.h"
#include "../../ftpd/login.h"
#include "internal.h"

static ss_server *srv;
static ftpd_config cfg;
static char out[1 << 16]; /* reply bytes not yet checked */
static size_t out_len;

static int handle_nothing(ss_request *req)
{
    (void)req;
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const ss_handler h = {.handle = handle_nothing};
    char *args[] = {"sockserv-ftpd", "--root", "/tmp", NULL};
    ss_options opt;

    (void)argc;
    (void)argv;
    fuzz_quiet();
    if (config_parse_args(&cfg, 3, args) != 0 || login_init(&cfg) < 0)
        abort();
    ss_options_init(&opt);
    opt.address = "127.0.0.1:0";
    srv = ss_server_new(&opt, &h);
    if (srv == NULL)
        abort();
    return 0;
}

static void check_reply_line(const char *p, size_t n)
{
    FUZZ_CHECK(memchr(p, '\r', n) == NULL && memchr(p, '\n', n) == NULL);
    if (n > 0 && p[0] == ' ')
        return;
    FUZZ_CHECK(n >= 4 && isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1]) &&
               isdigit((unsigned char)p[2]) && (p[3] == ' ' || p[3] == '-'));
}

/* Take what the server sent so far and check its complete lines. */
static void drain(int fd)
{
    for (;;) {
        ssize_t n = recv(fd, out + out_len, sizeof(out) - out_len, MSG_DONTWAIT);
        size_t start = 0;

        if (n <= 0)
            return;
        out_len += (size_t)n;
        for (size_t i = 0; i + 1 < out_len; i++) {
            if (out[i] == '\r' && out[i + 1] == '\n') {
                check_reply_line(out + start, i - start);
                start = i + 2;
                i++;
            }
        }
        memmove(out, out + start, out_len - start);
        out_len -= start;
        FUZZ_CHECK(out_len < sizeof(out)); /* a reply line is bounded */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    int big = 1 << 20;
    ss_request *req;
    session *s;

    if (size > 65536)
        return 0;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    for (size_t off = 0; off < size;) {
        ssize_t n = send(sv[1], data + off, size - off, MSG_NOSIGNAL);

        if (n <= 0)
            abort();
        off += (size_t)n;
    }
    shutdown(sv[1], SHUT_WR);

    req = ss__request_new(srv);
    s = calloc(1, sizeof(*s));
    if (req == NULL || s == NULL)
        abort();
    req->fd = sv[0];
    s->req = req;
    s->cfg = &cfg;
    s->ctrl_fd = sv[0];
    s->pasv_fd = -1;
    s->busy_command = commands_during_transfer;
    snprintf(s->peer_str, sizeof(s->peer_str), "fuzz");
    login_reset(s);
    out_len = 0;
    for (unsigned i = 0; i < 200000; i++) {
        ctrl_event e = control_next(s, 1000);

        drain(sv[1]);
        if (e == CTRL_LOST || e == CTRL_TIMEOUT || e == CTRL_SHUTDOWN)
            break;
        if (e != CTRL_LINE)
            continue;
        size_t n = strlen(s->line);

        FUZZ_CHECK(n <= FTPD_LINE_MAX);
        FUZZ_CHECK(strchr(s->line, '\n') == NULL);
        FUZZ_CHECK(n == 0 || s->line[n - 1] != '\r');
        if (strncasecmp(s->line, "PASS", 4) == 0)
            continue;
        commands_dispatch(s, s->line);
        drain(sv[1]);
        s->quit = false;
    }
    login_reset(s);
    free(s);
    ss__request_free(req);
    close(sv[0]);
    close(sv[1]);
    return 0;
}
