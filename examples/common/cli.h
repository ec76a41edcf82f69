/*
 * cli.h - command-line helpers shared by the example programs: the program
 * name in messages, usage errors (exit 2), runtime errors (exit 1) and strict
 * number parsing.
 */
#ifndef EX_CLI_H
#define EX_CLI_H

#include <sockserv.h>
#include <stdbool.h>

/* Exit statuses used by every example program. */
#define EX_EXIT_OK 0
#define EX_EXIT_FAIL 1  /* runtime error: cannot bind, no reply, ... */
#define EX_EXIT_USAGE 2 /* bad command line */

/* Remember the program name for messages (the basename of argv[0]). */
void cli_init(const char *argv0);

/* The program name set by cli_init. */
const char *cli_prog(void);

/* Print "prog: message" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print "prog: message (see --help)" on stderr, then exit 2. */
void cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Report what getopt_long (run with opterr = 0 and an optstring starting
 * with ':') returned for a bad option, c being '?' or ':', then exit 2. */
void cli_option_error(int c, char **argv) __attribute__((noreturn));

/* Parse "sync", "threading", "forking" or "pool". Returns 0 or -1. */
int cli_parse_mode(const char *s, ss_mode *mode);

/* The name of a mode, as cli_parse_mode accepts it. */
const char *cli_mode_name(ss_mode mode);

/* Parse a whole decimal number in [min, max]. Returns 0 or -1. */
int cli_parse_long(const char *s, long min, long max, long *out);

/* Parse a whole positive number of seconds (fractions allowed, at most max).
 * Returns 0 or -1. */
int cli_parse_seconds(const char *s, double max, double *out);

/* Parse a number of seconds that may be 0 (fractions allowed, at most max).
 * Returns 0 or -1. */
int cli_parse_seconds0(const char *s, double max, double *out);

#endif /* EX_CLI_H */
