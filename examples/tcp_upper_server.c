/*
 * tcp-upper-server - the upper-casing service over TCP, with line framing.
 *
 *   tcp-upper-server [ADDRESS] [--mode sync|threading|forking|pool] [--grace S]
 *                    [--workers N] [--proxy-protocol off|optional|required]
 *                    [--proxy-trusted LIST]
 *
 * TCP delivers a stream of bytes, not messages: two lines sent quickly may
 * arrive in one read, and one line may arrive in several. The server finds
 * the messages itself: each request is a line ending in '\n', read with the
 * library's buffered ss_readline, and each answer is that line upper-cased
 * plus '\n'. A connection carries any number of lines until the client
 * closes it.
 */
#include "cli.h"
#include "serve.h"
#include "upper.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Not 8003, so that the UDP and the TCP server can run side by side. */
#define DEFAULT_ADDRESS "127.0.0.1:8004"
/* The longest request line, without its '\n'. A longer one gets an error
 * line and the connection is closed: the server never buffers more. */
#define MAX_LINE 65536
#define STR(x) #x
#define XSTR(x) STR(x)
#define TOO_LONG_REPLY "error: line longer than " XSTR(MAX_LINE) " bytes\n"
/* After that error, how much more input we read and drop, and for how long,
 * before closing (see refuse_line). */
#define LINGER_BYTES ((size_t)4 * MAX_LINE)
#define LINGER_SECONDS 1.0
/* The most worker processes --workers takes (the library's limit). */
#define MAX_WORKERS 1024

static void usage(void)
{
    printf("Usage: %s [ADDRESS] [--mode sync|threading|forking|pool] [--grace S]\n"
           "       [--workers N] [--proxy-protocol off|optional|required]\n"
           "       [--proxy-trusted LIST]\n"
           "Answer every line received over TCP with the line upper-cased (ASCII a-z\n"
           "only; other bytes unchanged). Lines end in '\\n'; a connection carries any\n"
           "number of them. A line longer than %d bytes gets an error line and the\n"
           "connection is closed.\n"
           "\n"
           "  ADDRESS      HOST:PORT, [IPV6]:PORT or unix:PATH (default %s);\n"
           "               port 0 picks a free port\n"
           "  --mode MODE  how connections run: sync (one at a time), threading\n"
           "               (a thread each), forking (a process each) or pool (a\n"
           "               fixed set of threads); default threading\n" SERVE_GRACE_USAGE
           "  --workers N  pre-fork N worker processes (1..%d), each with its own\n"
           "               SO_REUSEPORT socket on ADDRESS and serving in MODE; the\n"
           "               first process supervises them (default 0: no workers)\n"
           "  --proxy-protocol off|optional|required\n"
           "               read a PROXY protocol v1/v2 header (HAProxy's\n"
           "               send-proxy) from trusted peers first (default off)\n"
           "  --proxy-trusted LIST\n"
           "               comma-separated addresses or CIDRs whose header is\n"
           "               read (default: every peer)\n"
           "  --help       show this help\n"
           "\n"
           "Prints \"listening on ADDRESS\" once ready; SIGINT or SIGTERM stops it\n"
           "(see --grace).\n"
           "Exit status: 0 after a clean stop, 1 on error, 2 for a bad command line.\n",
           cli_prog(), MAX_LINE, DEFAULT_ADDRESS, MAX_WORKERS);
}

/* One line per turn: MAX_LINE bytes, its '\n' and ss_readline's NUL. */
struct line {
    char buf[MAX_LINE + 2];
};

/*
 * Answer a line that is too long, and close. Closing a TCP socket with unread
 * input makes the kernel send a reset, which can destroy our error line
 * before the client reads it; so we first send our end-of-stream and read
 * and drop what the client is still sending, for a bounded time and amount.
 */
static int refuse_line(ss_request *req, struct line *scratch)
{
    size_t dropped = 0;
    ssize_t n;

    if (ss_write(req, TOO_LONG_REPLY, strlen(TOO_LONG_REPLY)) < 0 || ss_flush(req) != 0)
        return SS_OK;
    if (shutdown(ss_request_fd(req), SHUT_WR) != 0 ||
        ss_request_set_timeout(req, LINGER_SECONDS) != 0)
        return SS_OK;
    while (dropped < LINGER_BYTES) {
        n = ss_read(req, scratch->buf, sizeof scratch->buf);
        if (n <= 0)
            break;
        dropped += (size_t)n;
    }
    return SS_OK;
}

static int handle(ss_request *req)
{
    struct line line;
    ssize_t n;
    size_t len;

    for (;;) {
        n = ss_readline(req, line.buf, sizeof line.buf);
        if (n < 0)
            return SS_ERROR;
        if (n == 0)
            return SS_OK; /* the client closed the connection */
        len = (size_t)n;
        if (line.buf[len - 1] != '\n') {
            /* Not the end of the input but the end of our buffer. */
            if (len == sizeof line.buf - 1)
                return refuse_line(req, &line);
            /* The input ended without a final '\n': still a line. */
            line.buf[len++] = '\n';
        }
        upper_ascii(line.buf, line.buf, len - 1);
        if (ss_write(req, line.buf, len) != (ssize_t)len)
            return SS_ERROR;
    }
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"mode", required_argument, NULL, 'm'},
        {"grace", required_argument, NULL, 'g'},
        {"workers", required_argument, NULL, 'w'},
        {"proxy-protocol", required_argument, NULL, 'p'},
        {"proxy-trusted", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    ss_handler handler = {.handle = handle};
    ss_options opt;
    int c;
    long n;

    cli_init(argv[0]);
    ss_options_init(&opt);
    opt.address = DEFAULT_ADDRESS;
    opt.stop_grace = SERVE_DEFAULT_GRACE;
    opt.type = SS_STREAM;
    opt.mode = SS_MODE_THREADING;
    /* A restarted server can bind again at once although connections of
     * its previous run still linger in TIME_WAIT. A port some other socket
     * listens on is still refused. */
    opt.allow_reuse_address = true;
    /* Many clients connecting at once should queue, not be refused. */
    opt.request_queue_size = SOMAXCONN;

    opterr = 0;
    for (;;) {
        c = getopt_long(argc, argv, ":m:", longopts, NULL);
        if (c == -1)
            break;
        switch (c) {
        case 'm':
            if (cli_parse_mode(optarg, &opt.mode) != 0)
                cli_usage_error("bad mode '%s': use sync, threading, forking or pool", optarg);
            break;
        case 'g':
            if (cli_parse_seconds0(optarg, SERVE_GRACE_MAX, &opt.stop_grace) != 0)
                cli_usage_error("bad grace '%s': use seconds, 0 or more", optarg);
            break;
        case 'w':
            if (cli_parse_long(optarg, 0, MAX_WORKERS, &n) != 0)
                cli_usage_error("bad worker count '%s': use 0 to %d", optarg, MAX_WORKERS);
            opt.workers = (unsigned)n;
            break;
        case 'p':
            if (strcmp(optarg, "off") == 0)
                opt.proxy_protocol = SS_PROXY_OFF;
            else if (strcmp(optarg, "optional") == 0)
                opt.proxy_protocol = SS_PROXY_OPTIONAL;
            else if (strcmp(optarg, "required") == 0)
                opt.proxy_protocol = SS_PROXY_REQUIRED;
            else
                cli_usage_error("bad proxy protocol '%s': use off, optional or required", optarg);
            break;
        case 't':
            opt.proxy_trusted = optarg;
            break;
        case 'h':
            usage();
            return EX_EXIT_OK;
        default:
            cli_option_error(c, argv);
        }
    }
    if (argc - optind > 1)
        cli_usage_error("too many arguments");
    if (argc - optind == 1)
        opt.address = argv[optind];
    return serve_main(&opt, &handler);
}
