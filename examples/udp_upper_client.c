/*
 * udp-upper-client - send each line of stdin as one datagram, print the reply.
 *
 *   udp-upper-client [ADDRESS] [--timeout SECONDS] [--tries N]
 *
 * UDP needs no connection and promises no delivery: the client starts fine
 * with no server, and a datagram or its reply may be lost. So each line is
 * sent, the reply awaited for a bounded time, the line sent again a few
 * times, and then the client says that no reply came and goes on with the
 * next line instead of waiting forever.
 *
 * The socket is connect()ed: the kernel then passes us only datagrams from
 * the server's address, and reports an ICMP "port unreachable" as
 * ECONNREFUSED, which counts as a lost try. A reply that arrives too late
 * for its line must not be taken for the answer to the next one, so stale
 * datagrams are dropped before each send and a reply is accepted only if it
 * is what the server must answer to the line sent.
 */
#include "cli.h"
#include "client.h"
#include "input.h"
#include "upper.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_ADDRESS "127.0.0.1:8003"
#define DEFAULT_TIMEOUT 1.0
#define MAX_TIMEOUT 3600.0
#define DEFAULT_TRIES 3
#define MAX_TRIES 100
/* The largest UDP payload over IPv4: the longest line we can send. */
#define MAX_DATAGRAM 65507
/* Stale datagrams dropped before a send, at most (a bound for the loop). */
#define MAX_DRAIN 1024

static void usage(void)
{
    printf("Usage: %s [ADDRESS] [--timeout SECONDS] [--tries N]\n"
           "Send each line of stdin (without its newline) as one datagram to the\n"
           "upper-casing server and print the reply. An empty line sends an empty\n"
           "datagram. Shows the prompt \"%s\" when stdin is a terminal.\n"
           "\n"
           "  ADDRESS            HOST:PORT, [IPV6]:PORT or unix:PATH (default %s)\n"
           "  --timeout SECONDS  wait this long for each reply (default %g)\n"
           "  --tries N          send a line at most N times (default %d), then report\n"
           "                     \"no reply\" and go on with the next line\n"
           "  --help             show this help\n"
           "\n"
           "Exit status: 0 when every line got its reply, 1 when some did not (or on\n"
           "error), 2 for a bad command line.\n",
           cli_prog(), INPUT_PROMPT, DEFAULT_ADDRESS, DEFAULT_TIMEOUT, DEFAULT_TRIES);
}

struct client {
    const char *address;
    int fd;
    double timeout;
    long tries;
    bool refused;                 /* an ICMP error came back for this line */
    char line[MAX_DATAGRAM];      /* what we send */
    char expect[MAX_DATAGRAM];    /* what the server must answer */
    char reply[MAX_DATAGRAM + 1]; /* what came; one byte more shows excess */
};

/* Drop datagrams (and a pending ICMP error) left from earlier lines. */
static void drain(int fd)
{
    char scratch[64];
    int i;

    for (i = 0; i < MAX_DRAIN; i++) {
        if (recv(fd, scratch, sizeof scratch, MSG_DONTWAIT) < 0 && errno != ECONNREFUSED &&
            errno != EINTR)
            break;
    }
}

/* One try: wait until the deadline for the reply to the line sent.
 * Returns 1 (the reply is there), 0 (none came) or -1 (error). */
static int await_reply(struct client *c, size_t len, double deadline)
{
    ssize_t n;
    int rc;

    for (;;) {
        rc = client_wait_readable(c->fd, deadline);
        if (rc <= 0)
            return rc;
        n = recv(c->fd, c->reply, sizeof c->reply, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == ECONNREFUSED) {
                /* Nothing listens there (yet): this try is lost, but we
                 * keep to the pace of one try per timeout. */
                c->refused = true;
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                continue;
            return -1;
        }
        if ((size_t)n == len && memcmp(c->reply, c->expect, len) == 0)
            return 1;
        /* A stray or late datagram: not the answer to this line. */
    }
}

/* Send the line until its reply comes or the tries are used up.
 * Returns 1 (reply in c->reply), 0 (no reply) or -1 (error). */
static int exchange(struct client *c, size_t len)
{
    double deadline;
    long t;
    int rc;

    upper_ascii(c->expect, c->line, len);
    c->refused = false;
    for (t = 0; t < c->tries; t++) {
        drain(c->fd);
        deadline = client_now() + c->timeout;
        if (send(c->fd, c->line, len, 0) < 0) {
            if (errno == ECONNREFUSED)
                c->refused = true;
            else if (errno != EINTR)
                return -1;
        }
        rc = await_reply(c, len, deadline);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int run(struct client *c, bool interactive)
{
    int status = EX_EXIT_OK;
    input_status in;
    size_t len;
    int rc;

    for (;;) {
        input_prompt(interactive);
        in = input_line(stdin, c->line, sizeof c->line, &len);
        if (in == INPUT_EOF)
            break;
        if (in == INPUT_ERROR) {
            cli_error("cannot read stdin: %s", strerror(errno));
            return EX_EXIT_FAIL;
        }
        if (in == INPUT_TOO_LONG) {
            cli_error("line longer than %d bytes does not fit in one datagram; not sent",
                      MAX_DATAGRAM);
            status = EX_EXIT_FAIL;
            continue;
        }
        rc = exchange(c, len);
        if (rc < 0) {
            cli_error("cannot talk to %s: %s", c->address, strerror(errno));
            return EX_EXIT_FAIL;
        }
        if (rc == 0) {
            cli_error("no reply from %s after %ld %s%s", c->address, c->tries,
                      c->tries == 1 ? "try" : "tries",
                      c->refused ? " (port unreachable: is the server running?)" : "");
            status = EX_EXIT_FAIL;
            continue;
        }
        fwrite(c->reply, 1, len, stdout);
        putchar('\n');
    }
    /* Leave the terminal's next prompt on a line of its own. */
    if (interactive)
        putchar('\n');
    fflush(stdout);
    return status;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"timeout", required_argument, NULL, 't'},
        {"tries", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* Static: three datagram-sized buffers do not belong on the stack. */
    static struct client c;
    int status;
    int opt;

    cli_init(argv[0]);
    c.address = DEFAULT_ADDRESS;
    c.timeout = DEFAULT_TIMEOUT;
    c.tries = DEFAULT_TRIES;

    opterr = 0;
    for (;;) {
        opt = getopt_long(argc, argv, ":", longopts, NULL);
        if (opt == -1)
            break;
        switch (opt) {
        case 't':
            if (cli_parse_seconds(optarg, MAX_TIMEOUT, &c.timeout) != 0)
                cli_usage_error("bad timeout '%s': use seconds, above 0 and at most %g", optarg,
                                MAX_TIMEOUT);
            break;
        case 'n':
            if (cli_parse_long(optarg, 1, MAX_TRIES, &c.tries) != 0)
                cli_usage_error("bad number of tries '%s': use 1 to %d", optarg, MAX_TRIES);
            break;
        case 'h':
            usage();
            return EX_EXIT_OK;
        default:
            cli_option_error(opt, argv);
        }
    }
    if (argc - optind > 1)
        cli_usage_error("too many arguments");
    if (argc - optind == 1)
        c.address = argv[optind];

    c.fd = client_open(c.address, SS_DATAGRAM, c.timeout);
    if (c.fd < 0)
        return EX_EXIT_FAIL;
    status = run(&c, input_interactive());
    close(c.fd);
    return status;
}
