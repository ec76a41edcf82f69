/*
 * cli.c - command-line helpers shared by the example programs.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *prog_name = "sockserv-example";

void cli_init(const char *argv0)
{
    const char *slash;

    if (argv0 == NULL || argv0[0] == '\0')
        return;
    slash = strrchr(argv0, '/');
    prog_name = slash != NULL ? slash + 1 : argv0;
}

const char *cli_prog(void)
{
    return prog_name;
}

__attribute__((format(printf, 2, 0))) static void vmessage(const char *suffix, const char *fmt,
                                                           va_list ap)
{
    char msg[1024];

    /* One buffer and one write keep the line whole even when other
     * threads or processes share the terminal. */
    vsnprintf(msg, sizeof msg, fmt, ap);
    fprintf(stderr, "%s: %s%s\n", prog_name, msg, suffix);
}

void cli_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vmessage("", fmt, ap);
    va_end(ap);
}

void cli_usage_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vmessage(" (see --help)", fmt, ap);
    va_end(ap);
    exit(EX_EXIT_USAGE);
}

void cli_option_error(int c, char **argv)
{
    /* getopt leaves optind past the offending word, except inside a bundle
     * of short options, where optopt names the letter. */
    const char *word = optind > 0 ? argv[optind - 1] : "?";

    if (c == ':')
        cli_usage_error("option '%s' needs a value", word);
    if (word[0] == '-' && word[1] == '-')
        cli_usage_error("unknown option '%s'", word);
    cli_usage_error("unknown option '-%c'", optopt);
}

static const struct {
    const char *name;
    ss_mode mode;
} modes[] = {
    {"sync", SS_MODE_SYNC},
    {"threading", SS_MODE_THREADING},
    {"forking", SS_MODE_FORKING},
    {"pool", SS_MODE_POOL},
};

int cli_parse_mode(const char *s, ss_mode *mode)
{
    size_t i;

    for (i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (strcmp(s, modes[i].name) == 0) {
            *mode = modes[i].mode;
            return 0;
        }
    }
    return -1;
}

const char *cli_mode_name(ss_mode mode)
{
    size_t i;

    for (i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (modes[i].mode == mode)
            return modes[i].name;
    }
    return "unknown";
}

int cli_parse_long(const char *s, long min, long max, long *out)
{
    char *end = NULL;
    long v;

    if (s == NULL || s[0] == '\0')
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int cli_parse_seconds(const char *s, double max, double *out)
{
    char *end = NULL;
    double v;

    if (s == NULL || s[0] == '\0')
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v <= 0 || v > max)
        return -1;
    *out = v;
    return 0;
}

int cli_parse_seconds0(const char *s, double max, double *out)
{
    if (s != NULL && strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    return cli_parse_seconds(s, max, out);
}
