/*
 * echo-server - send back whatever arrives, over any transport and mode.
 *
 *   echo-server [ADDRESS] [--udp] [--mode sync|threading|forking|pool] [--grace S]
 *
 * The smallest useful server: a stream connection gets back every byte it
 * sends, unchanged and unframed, until it closes; a datagram gets back a
 * copy of itself. Handy for trying the library's modes and for benchmarks.
 */
#include "cli.h"
#include "serve.h"

#include <getopt.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Port 7 is the echo service (RFC 862); 8007 needs no privileges. */
#define DEFAULT_ADDRESS "127.0.0.1:8007"
/* The largest UDP payload over IPv4; no datagram is cut short. */
#define MAX_DATAGRAM 65507
/* Bytes moved per read. */
#define CHUNK 16384

static void usage(void)
{
    printf("Usage: %s [ADDRESS] [--udp] [--mode sync|threading|forking|pool]\n"
           "       [--grace S]\n"
           "Send back whatever arrives: every byte of a stream connection until it\n"
           "closes, or a copy of each datagram.\n"
           "\n"
           "  ADDRESS      HOST:PORT, [IPV6]:PORT or unix:PATH (default %s);\n"
           "               port 0 picks a free port\n"
           "  --udp        datagrams (UDP, or a Unix datagram socket) instead of a\n"
           "               stream (TCP, or a Unix stream socket)\n"
           "  --mode MODE  sync, threading, forking or pool; default threading for\n"
           "               streams, sync for datagrams\n" SERVE_GRACE_USAGE
           "  --help       show this help\n"
           "\n"
           "Prints \"listening on ADDRESS\" once ready; SIGINT or SIGTERM stops it\n"
           "(see --grace).\n"
           "Exit status: 0 after a clean stop, 1 on error, 2 for a bad command line.\n",
           cli_prog(), DEFAULT_ADDRESS);
}

static int handle(ss_request *req)
{
    char buf[CHUNK];
    ssize_t n;

    /* The same loop serves both kinds: for a datagram, ss_read yields its
     * bytes and ss_write fills the reply sent after the handler. */
    for (;;) {
        n = ss_read(req, buf, sizeof buf);
        if (n <= 0)
            break;
        if (ss_write(req, buf, (size_t)n) != n)
            return SS_ERROR;
    }
    return n < 0 ? SS_ERROR : SS_OK;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"udp", no_argument, NULL, 'u'},
        {"mode", required_argument, NULL, 'm'},
        {"grace", required_argument, NULL, 'g'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    ss_handler handler = {.handle = handle};
    ss_options opt;
    bool mode_given = false;
    int c;

    cli_init(argv[0]);
    ss_options_init(&opt);
    opt.address = DEFAULT_ADDRESS;
    opt.stop_grace = SERVE_DEFAULT_GRACE;
    opt.type = SS_STREAM;
    opt.max_packet_size = MAX_DATAGRAM;
    opt.allow_reuse_address = true;
    opt.request_queue_size = SOMAXCONN;

    opterr = 0;
    for (;;) {
        c = getopt_long(argc, argv, ":m:", longopts, NULL);
        if (c == -1)
            break;
        switch (c) {
        case 'u':
            opt.type = SS_DATAGRAM;
            break;
        case 'm':
            if (cli_parse_mode(optarg, &opt.mode) != 0)
                cli_usage_error("bad mode '%s': use sync, threading, forking or pool", optarg);
            mode_given = true;
            break;
        case 'g':
            if (cli_parse_seconds0(optarg, SERVE_GRACE_MAX, &opt.stop_grace) != 0)
                cli_usage_error("bad grace '%s': use seconds, 0 or more", optarg);
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
    if (!mode_given)
        opt.mode = opt.type == SS_STREAM ? SS_MODE_THREADING : SS_MODE_SYNC;
    /* SO_REUSEADDR on a datagram socket would let a second server share the
     * port silently; only streams need it (TIME_WAIT after a restart). */
    if (opt.type == SS_DATAGRAM)
        opt.allow_reuse_address = false;
    return serve_main(&opt, &handler);
}
