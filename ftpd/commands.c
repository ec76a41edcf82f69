/*
 * commands.c - the FTP command table (RFC 959, 2389, 2428, 3659 and the HASH
 * draft): split, dispatch, the answers mid-transfer, and HELP.
 *
 * commands_dispatch() splits a line into verb and argument, looks the verb
 * up in one table, applies the table's flags (login needed, argument needed,
 * write or modify permission needed, REST kept, argument trimmed) and calls
 * the handler, which lives with its group in a cmd_*.c file (cmd.h).
 * Handlers return the result of their last reply: 0 to go on, -1 when the
 * control connection is gone or the session must end.
 */
#include "commands.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "control.h"

#define F_PRE 0x01      /* allowed before login */
#define F_ARG 0x02      /* needs an argument */
#define F_WRITE 0x04    /* changes the file system */
#define F_KEEPREST 0x08 /* a pending REST offset survives this command */
#define F_TRIM 0x10     /* the argument is no path: trailing blanks are dropped */
#define F_MODIFY 0x20   /* changes or removes what exists (anonymous: --anonymous-modify) */

/* Longest argument of an F_TRIM command that is trimmed (their arguments are
 * short words; a longer one is passed on as it is and refused). */
#define TRIM_ARG_MAX 256

typedef int (*cmd_fn)(session *s, const char *arg);

typedef struct command {
    const char *name;
    cmd_fn fn;
    unsigned flags;
    const char *help;
} command;

/* ---- the table ------------------------------------------------------------ */

static const command command_table[] = {
    {"USER", cmd_user, F_PRE | F_ARG | F_TRIM, "USER name"},
    {"PASS", cmd_pass, F_PRE, "PASS password"},
    {"ACCT", cmd_acct, 0, "ACCT account"},
    {"QUIT", cmd_quit, F_PRE, "QUIT"},
    {"REIN", cmd_rein, F_PRE, "REIN"},
    {"AUTH", cmd_auth, F_PRE | F_TRIM, "AUTH TLS"},
    {"PBSZ", cmd_pbsz, F_PRE | F_TRIM, "PBSZ 0"},
    {"PROT", cmd_prot, F_PRE | F_TRIM, "PROT P|C"},
    {"CCC", cmd_ccc, F_PRE, "CCC (refused)"},
    {"CLNT", cmd_clnt, F_PRE, "CLNT client-name"},
    {"CWD", cmd_cwd, F_ARG, "CWD path"},
    {"XCWD", cmd_cwd, F_ARG, "XCWD path"},
    {"CDUP", cmd_cdup, 0, "CDUP"},
    {"XCUP", cmd_cdup, 0, "XCUP"},
    {"PWD", cmd_pwd, 0, "PWD"},
    {"XPWD", cmd_pwd, 0, "XPWD"},
    {"MKD", cmd_mkd, F_ARG | F_WRITE, "MKD path"},
    {"XMKD", cmd_mkd, F_ARG | F_WRITE, "XMKD path"},
    {"RMD", cmd_rmd, F_ARG | F_MODIFY, "RMD path"},
    {"XRMD", cmd_rmd, F_ARG | F_MODIFY, "XRMD path"},
    {"DELE", cmd_dele, F_ARG | F_MODIFY, "DELE path"},
    {"RNFR", cmd_rnfr, F_ARG | F_MODIFY, "RNFR path"},
    {"RNTO", cmd_rnto, F_ARG | F_MODIFY, "RNTO path"},
    {"TYPE", cmd_type, F_ARG | F_KEEPREST | F_TRIM, "TYPE A|I|L 8"},
    {"MODE", cmd_mode, F_ARG | F_KEEPREST | F_TRIM, "MODE S"},
    {"STRU", cmd_stru, F_ARG | F_KEEPREST | F_TRIM, "STRU F"},
    {"PORT", cmd_port, F_ARG | F_KEEPREST | F_TRIM, "PORT h1,h2,h3,h4,p1,p2"},
    {"PASV", cmd_pasv, F_KEEPREST, "PASV"},
    {"EPRT", cmd_eprt, F_ARG | F_KEEPREST | F_TRIM, "EPRT |af|addr|port|"},
    {"EPSV", cmd_epsv, F_KEEPREST | F_TRIM, "EPSV [1|2|ALL]"},
    {"RETR", cmd_retr, F_ARG, "RETR path"},
    {"STOR", cmd_stor, F_ARG | F_WRITE, "STOR path"},
    {"STOU", cmd_stou, F_WRITE, "STOU"},
    {"APPE", cmd_appe, F_ARG | F_WRITE | F_MODIFY, "APPE path"},
    {"REST", cmd_rest, F_ARG | F_KEEPREST | F_TRIM, "REST offset"},
    {"ABOR", cmd_abor, F_PRE, "ABOR"},
    {"ALLO", cmd_allo, F_TRIM, "ALLO size"},
    {"LIST", cmd_list, 0, "LIST [-a] [path]"},
    {"NLST", cmd_nlst, 0, "NLST [-a] [path]"},
    {"MLSD", cmd_mlsd, 0, "MLSD [path]"},
    {"MLST", cmd_mlst, 0, "MLST [path]"},
    {"SIZE", cmd_size, F_ARG, "SIZE path"},
    {"MDTM", cmd_mdtm, F_ARG, "MDTM path"},
    {"HASH", cmd_hash, 0, "HASH path"},
    {"SITE", cmd_site, F_ARG, "SITE CHMOD mode path | SITE HELP"},
    {"SYST", cmd_syst, F_PRE, "SYST"},
    {"STAT", cmd_stat, 0, "STAT [path]"},
    {"HELP", cmd_help, F_PRE | F_TRIM, "HELP [command]"},
    {"NOOP", cmd_noop, F_PRE, "NOOP"},
    {"FEAT", cmd_feat, F_PRE, "FEAT"},
    {"OPTS", cmd_opts, F_PRE | F_ARG | F_TRIM, "OPTS UTF8 ON | OPTS HASH [algorithm] | OPTS MLST"},
};
#define COMMAND_COUNT (sizeof(command_table) / sizeof(command_table[0]))

static const command *find_command(const char *verb)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        if (strcmp(command_table[i].name, verb) == 0)
            return &command_table[i];
    return NULL;
}

int cmd_help(session *s, const char *arg)
{
    char row[80];
    size_t n = 0;

    if (arg != NULL && *arg != '\0') {
        char verb[FTPD_VERB_MAX + 1];
        size_t len = strlen(arg);
        const command *c;

        if (len > FTPD_VERB_MAX)
            return reply(s, 502, "Unknown command.");
        for (size_t i = 0; i <= len; i++)
            verb[i] = (char)toupper((unsigned char)arg[i]);
        c = find_command(verb);
        if (c == NULL)
            return reply(s, 502, "Unknown command %s.", verb);
        return reply(s, 214, "Syntax: %s", c->help);
    }
    if (reply_begin(s, 214, "The following commands are recognized:") < 0)
        return -1;
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        int k = snprintf(row + n, sizeof(row) - n, "%-5s", command_table[i].name);
        n += k > 0 ? (size_t)k : 0;
        if ((i + 1) % 12 == 0 || i + 1 == COMMAND_COUNT) {
            if (reply_line(s, "%s", row) < 0)
                return -1;
            n = 0;
        } else if (n + 1 < sizeof(row)) {
            row[n++] = ' ';
            row[n] = '\0';
        }
    }
    return reply(s, 214, "Help OK.");
}

/* Verb in upper case into verb; *arg points after the first space (or is
 * NULL). Returns -1 for an empty or over-long verb. */
static int split(const char *line, char verb[FTPD_VERB_MAX + 1], const char **arg)
{
    /* RFC 959 separates with one space; some clients send a tab. */
    size_t n = strcspn(line, " \t");

    if (n == 0 || n > FTPD_VERB_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        verb[i] = (char)toupper((unsigned char)line[i]);
    verb[n] = '\0';
    *arg = line[n] != '\0' ? line + n + 1 : NULL;
    return 0;
}

int commands_dispatch(session *s, const char *line)
{
    char verb[FTPD_VERB_MAX + 1];
    const char *arg = NULL;
    const command *c;
    bool was_rnfr = s->have_rnfr;
    off_t was_rest = s->rest;
    char trimmed[TRIM_ARG_MAX];
    int rc;

    if (split(line, verb, &arg) < 0)
        return reply(s, 500, "Syntax error, command unrecognized.");
    c = find_command(verb);
    if (c == NULL)
        return reply(s, 500, "Unknown command.");
    if (!(c->flags & F_PRE) && !s->logged_in)
        return reply(s, 530, "Please login with USER and PASS.");
    /* --tls required: no name or password in clear, anonymous included. */
    if ((c->fn == cmd_user || c->fn == cmd_pass) && s->cfg->tls_mode == FTPD_TLS_REQUIRED &&
        s->ctrl_tls == NULL)
        return reply(s, 530, "TLS required: use AUTH TLS before USER and PASS.");
    if ((c->flags & F_TRIM) && arg != NULL) {
        size_t n = strlen(arg);

        while (n > 0 && (arg[n - 1] == ' ' || arg[n - 1] == '\t'))
            n--;
        if (n < sizeof(trimmed)) {
            memcpy(trimmed, arg, n);
            trimmed[n] = '\0';
            arg = trimmed;
        }
    }
    if ((c->flags & F_ARG) && (arg == NULL || *arg == '\0'))
        return reply(s, 501, "%s needs an argument.", c->name);
    if ((c->flags & F_WRITE) && !s->can_write)
        return reply(s, 550, "Permission denied.");
    if ((c->flags & F_MODIFY) && !s->can_modify)
        return reply(s, 550, "Permission denied.");
    rc = c->fn(s, arg);
    /* RNTO must follow RNFR at once (RFC 959). */
    if (was_rnfr && c->fn != cmd_rnto && c->fn != cmd_rnfr)
        s->have_rnfr = false;
    /* REST holds for the transfer command that follows it at once; PASV,
     * PORT and TYPE may come between (clients send them in any order). */
    if (was_rest != 0 && !(c->flags & F_KEEPREST))
        s->rest = 0;
    return rc;
}

int commands_during_transfer(session *s, const char *line)
{
    char verb[FTPD_VERB_MAX + 1];
    const char *arg = NULL;

    if (split(line, verb, &arg) == 0) {
        if (strcmp(verb, "ABOR") == 0)
            return XCMD_ABORT;
        if (strcmp(verb, "NOOP") == 0) {
            reply(s, 200, "NOOP ok.");
            return XCMD_CONTINUE;
        }
        if (strcmp(verb, "STAT") == 0 && (arg == NULL || *arg == '\0')) {
            if (s->xfer.direction == 'h')
                reply(s, 213, "Status: hashing %s, %lld of %lld bytes.", s->xfer.path,
                      (long long)s->xfer.done, (long long)s->xfer.total);
            else if (s->xfer.total >= 0)
                reply(s, 213, "Status: %s %s, %lld of %lld bytes transferred.",
                      s->xfer.direction == 'o' ? "sending" : "receiving", s->xfer.path,
                      (long long)s->xfer.done, (long long)s->xfer.total);
            else
                reply(s, 213, "Status: %s %s, %lld bytes transferred.",
                      s->xfer.direction == 'o' ? "sending" : "receiving", s->xfer.path,
                      (long long)s->xfer.done);
            return XCMD_CONTINUE;
        }
    }
    /* Anything else waits until the transfer's final reply has gone out. */
    memcpy(s->pending, line, strlen(line) + 1);
    s->have_pending = true;
    return XCMD_DEFER;
}
