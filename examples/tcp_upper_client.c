/*
 * tcp-upper-client - send lines over one TCP connection, print the replies.
 *
 *   tcp-upper-client [ADDRESS] [--burst N] [--timeout SECONDS]
 *
 * TCP carries a stream of bytes, not messages: what one send() writes may be
 * read in pieces, and what several send()s write may be read at once (the
 * "sticky packets" people meet when they expect one recv() per send()). The
 * upper-casing service therefore frames its messages: every request and
 * every reply is one line ending in '\n', and both sides read up to the
 * '\n', never "one recv()". With --burst N the client puts N lines into a
 * single send() and then reads N replies: each still comes back on its own,
 * because the framing, not the timing, keeps them apart.
 */
#include "cli.h"
#include "client.h"
#include "input.h"
#include "upper.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_ADDRESS "127.0.0.1:8004"
#define DEFAULT_TIMEOUT 5.0
#define MAX_TIMEOUT 3600.0
/* The server's longest line, without its '\n' (see tcp-upper-server). */
#define MAX_LINE 65536
#define MAX_BURST 100000
/* A burst is sent early when its lines would need more memory than this. */
#define MAX_BATCH_BYTES ((size_t)4 * 1024 * 1024)
/* Reply bytes received but not yet printed: room for two longest lines. */
#define IN_SIZE ((size_t)2 * (MAX_LINE + 1))

static void usage(void)
{
    printf("Usage: %s [ADDRESS] [--burst N] [--timeout SECONDS]\n"
           "Send each line of stdin over one TCP connection to the upper-casing\n"
           "server and print the reply line. Shows the prompt \"%s\" when stdin is a\n"
           "terminal.\n"
           "\n"
           "  ADDRESS            HOST:PORT, [IPV6]:PORT or unix:PATH (default %s)\n"
           "  --burst N          gather N lines, send them in a single write, then\n"
           "                     read the N replies: line framing keeps them apart\n"
           "  --timeout SECONDS  give up when the server sends nothing for this long\n"
           "                     (default %g)\n"
           "  --help             show this help\n"
           "\n"
           "Exit status: 0 when every line got its reply, 1 otherwise (or on error),\n"
           "2 for a bad command line.\n",
           cli_prog(), INPUT_PROMPT, DEFAULT_ADDRESS, DEFAULT_TIMEOUT);
}

struct client {
    const char *address;
    int fd;
    double timeout;
    long burst;   /* lines per send */
    char *batch;  /* lines to send, each with its '\n' */
    char *expect; /* the replies they must get */
    size_t batch_cap;
    size_t batch_len;
    size_t batch_lines;
    bool mismatch;    /* some reply was not its line upper-cased */
    char in[IN_SIZE]; /* received, not yet printed: in[in_start..in_end) */
    size_t in_start;
    size_t in_end;
};

/* Print the complete reply lines received so far, up to the number still
 * missing. Returns how many were printed, or -1 for a line too long. */
static long take_replies(struct client *c, size_t *expect_off, size_t missing)
{
    char *start;
    char *nl;
    size_t len;
    long taken = 0;

    while ((size_t)taken < missing) {
        start = c->in + c->in_start;
        nl = memchr(start, '\n', c->in_end - c->in_start);
        if (nl == NULL)
            break;
        len = (size_t)(nl - start) + 1;
        fwrite(start, 1, len, stdout);
        if (*expect_off + len > c->batch_len || memcmp(start, c->expect + *expect_off, len) != 0) {
            cli_error("this reply is not the line sent, upper-cased");
            c->mismatch = true;
        }
        *expect_off += len;
        c->in_start += len;
        taken++;
    }
    /* Keep unread bytes at the front, so the buffer only fills with a line
     * longer than any the server may send. */
    if (c->in_start > 0) {
        memmove(c->in, c->in + c->in_start, c->in_end - c->in_start);
        c->in_end -= c->in_start;
        c->in_start = 0;
    }
    if (c->in_end == sizeof c->in && (size_t)taken < missing) {
        errno = EMSGSIZE;
        return -1;
    }
    return taken;
}

/*
 * Send the batch with one send() and read one reply line per line sent.
 * Should the kernel take only part of a big batch, the rest is sent as the
 * replies are read: waiting for the whole send before reading could block
 * both sides with full buffers. Returns 0, or -1 after a message.
 */
static int exchange(struct client *c)
{
    struct pollfd pfd;
    double deadline;
    size_t sent = 0;
    size_t replies = 0;
    size_t expect_off = 0;
    ssize_t n;
    long taken;
    int rc;

    upper_ascii(c->expect, c->batch, c->batch_len);
    n = send(c->fd, c->batch, c->batch_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        goto lost;
    if (n > 0)
        sent = (size_t)n;
    deadline = client_now() + c->timeout;

    while (replies < c->batch_lines) {
        pfd.fd = c->fd;
        pfd.events = (short)(POLLIN | (sent < c->batch_len ? POLLOUT : 0));
        pfd.revents = 0;
        rc = client_poll(&pfd, deadline);
        if (rc < 0)
            goto lost;
        if (rc == 0) {
            cli_error("no reply from %s within %g s", c->address, c->timeout);
            return -1;
        }
        if ((pfd.revents & POLLOUT) != 0 && sent < c->batch_len) {
            n = send(c->fd, c->batch + sent, c->batch_len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                goto lost;
            if (n > 0) {
                sent += (size_t)n;
                deadline = client_now() + c->timeout;
            }
        }
        if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) == 0)
            continue;
        n = recv(c->fd, c->in + c->in_end, sizeof c->in - c->in_end, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                continue;
            goto lost;
        }
        if (n == 0) {
            cli_error("connection closed by %s; %zu repl%s missing", c->address,
                      c->batch_lines - replies, c->batch_lines - replies == 1 ? "y" : "ies");
            return -1;
        }
        c->in_end += (size_t)n;
        deadline = client_now() + c->timeout;
        taken = take_replies(c, &expect_off, c->batch_lines - replies);
        if (taken < 0) {
            cli_error("reply from %s longer than %d bytes", c->address, MAX_LINE);
            return -1;
        }
        replies += (size_t)taken;
    }
    fflush(stdout);
    return 0;

lost:
    cli_error("connection to %s lost: %s", c->address, strerror(errno));
    return -1;
}

/* Send what the batch holds, if anything. Returns 0 or -1. */
static int flush_batch(struct client *c)
{
    int rc = 0;

    if (c->batch_lines > 0)
        rc = exchange(c);
    c->batch_len = 0;
    c->batch_lines = 0;
    return rc;
}

static int run(struct client *c, bool interactive)
{
    int status = EX_EXIT_OK;
    input_status in;
    size_t len;

    for (;;) {
        /* Room for one more longest line and its '\n', or send first. */
        if (c->batch_cap - c->batch_len < MAX_LINE + 1 && flush_batch(c) != 0)
            return EX_EXIT_FAIL;
        input_prompt(interactive);
        in = input_line(stdin, c->batch + c->batch_len, MAX_LINE, &len);
        if (in == INPUT_EOF)
            break;
        if (in == INPUT_ERROR) {
            cli_error("cannot read stdin: %s", strerror(errno));
            return EX_EXIT_FAIL;
        }
        if (in == INPUT_TOO_LONG) {
            cli_error("line longer than %d bytes; not sent", MAX_LINE);
            status = EX_EXIT_FAIL;
            continue;
        }
        c->batch_len += len;
        c->batch[c->batch_len++] = '\n';
        c->batch_lines++;
        if (c->batch_lines == (size_t)c->burst && flush_batch(c) != 0)
            return EX_EXIT_FAIL;
    }
    /* The last, shorter burst. */
    if (flush_batch(c) != 0)
        return EX_EXIT_FAIL;
    if (interactive)
        putchar('\n');
    fflush(stdout);
    return c->mismatch ? EX_EXIT_FAIL : status;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"burst", required_argument, NULL, 'b'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* Static: the reply buffer does not belong on the stack. */
    static struct client c;
    int status = EX_EXIT_FAIL;
    size_t cap;
    int opt;

    cli_init(argv[0]);
    c.address = DEFAULT_ADDRESS;
    c.timeout = DEFAULT_TIMEOUT;
    c.burst = 1;
    c.fd = -1;

    opterr = 0;
    for (;;) {
        opt = getopt_long(argc, argv, ":", longopts, NULL);
        if (opt == -1)
            break;
        switch (opt) {
        case 'b':
            if (cli_parse_long(optarg, 1, MAX_BURST, &c.burst) != 0)
                cli_usage_error("bad burst '%s': use 1 to %d lines", optarg, MAX_BURST);
            break;
        case 't':
            if (cli_parse_seconds(optarg, MAX_TIMEOUT, &c.timeout) != 0)
                cli_usage_error("bad timeout '%s': use seconds, above 0 and at most %g", optarg,
                                MAX_TIMEOUT);
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

    /* Enough for the burst's longest lines, within MAX_BATCH_BYTES. */
    cap = (size_t)c.burst * (MAX_LINE + 1);
    if (cap > MAX_BATCH_BYTES)
        cap = MAX_BATCH_BYTES;
    c.batch_cap = cap;
    c.batch = malloc(cap);
    c.expect = malloc(cap);
    if (c.batch == NULL || c.expect == NULL) {
        cli_error("out of memory");
        goto out;
    }
    c.fd = client_open(c.address, SS_STREAM, c.timeout);
    if (c.fd < 0)
        goto out;
    status = run(&c, input_interactive());

out:
    if (c.fd >= 0)
        close(c.fd);
    free(c.batch);
    free(c.expect);
    return status;
}
