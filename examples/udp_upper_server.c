/*
 * udp-upper-server - answer every UDP datagram with its bytes upper-cased.
 *
 *   udp-upper-server [ADDRESS] [--mode sync|threading|forking|pool]
 *                    [--batch N] [--grace S]
 *
 * The handler reads the datagram the way a DatagramRequestHandler reads
 * self.rfile, and writes the reply into the request's reply buffer, which the
 * library sends back to the client after the handler (an empty datagram
 * gets an empty reply). --batch N receives up to N datagrams per system call
 * and sends their replies together; the handler does not change.
 */
#include "cli.h"
#include "serve.h"
#include "upper.h"

#include <getopt.h>
#include <stdio.h>
#include <sys/types.h>

#define DEFAULT_ADDRESS "127.0.0.1:8003"
/* The largest UDP payload over IPv4; no datagram is cut short. */
#define MAX_DATAGRAM 65507
/* Bytes upper-cased per step. */
#define CHUNK 4096
/* The largest --batch the library takes. */
#define MAX_BATCH 1024

static void usage(void)
{
    printf("Usage: %s [ADDRESS] [--mode sync|threading|forking|pool] [--batch N]\n"
           "                [--grace S]\n"
           "Answer every UDP datagram with its bytes upper-cased (ASCII a-z only;\n"
           "other bytes unchanged). An empty datagram gets an empty reply.\n"
           "\n"
           "  ADDRESS      HOST:PORT, [IPV6]:PORT or unix:PATH (default %s);\n"
           "               port 0 picks a free port\n"
           "  --mode MODE  how datagrams run: sync (one at a time, the default),\n"
           "               threading (a thread each), forking (a process each) or\n"
           "               pool (a fixed set of threads that receive themselves)\n"
           "  --threading  the same as --mode threading\n"
           "  --batch N    receive up to N datagrams (1-%d) per system call and send\n"
           "               their replies together (threading and forking send each\n"
           "               reply when its datagram is done); default 1\n" SERVE_GRACE_USAGE
           "  --help       show this help\n"
           "\n"
           "Prints \"listening on ADDRESS\" once ready; SIGINT or SIGTERM stops it\n"
           "(see --grace).\n"
           "Exit status: 0 after a clean stop, 1 on error, 2 for a bad command line.\n",
           cli_prog(), DEFAULT_ADDRESS, MAX_BATCH);
}

static int handle(ss_request *req)
{
    char buf[CHUNK];
    ssize_t n;

    for (;;) {
        n = ss_read(req, buf, sizeof buf);
        if (n <= 0)
            break;
        upper_ascii(buf, buf, (size_t)n);
        if (ss_write(req, buf, (size_t)n) != n)
            return SS_ERROR;
    }
    return n < 0 ? SS_ERROR : SS_OK;
}

int main(int argc, char **argv)
{
    /* clang-format off */
    static const struct option longopts[] = {
        {"mode", required_argument, NULL, 'm'},
        {"threading", no_argument, NULL, 't'},
        {"batch", required_argument, NULL, 'b'},
        {"grace", required_argument, NULL, 'g'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* clang-format on */
    ss_handler handler = {.handle = handle};
    ss_options opt;
    int c;
    long batch;

    cli_init(argv[0]);
    ss_options_init(&opt);
    opt.address = DEFAULT_ADDRESS;
    opt.stop_grace = SERVE_DEFAULT_GRACE;
    opt.type = SS_DATAGRAM;
    opt.max_packet_size = MAX_DATAGRAM;

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
        case 't':
            opt.mode = SS_MODE_THREADING;
            break;
        case 'b':
            if (cli_parse_long(optarg, 1, MAX_BATCH, &batch) != 0)
                cli_usage_error("bad batch '%s': use a number from 1 to %d", optarg, MAX_BATCH);
            opt.batch = (unsigned)batch;
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
    return serve_main(&opt, &handler);
}
