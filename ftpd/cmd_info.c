/*
 * cmd_info.c - the information commands: STAT, SYST, NOOP, FEAT, OPTS and
 * MLST, answered on the control connection.
 */
#include "cmd.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "control.h"
#include "hash.h"
#include "listing.h"
#include "log.h"

/* ---- MLST facts (RFC 3659 7.8: OPTS MLST selects the facts shown) ------- */

static const char *const mlst_fact_names[] = {"type", "size", "modify", "perm", "unique"};
#define MLST_FACT_COUNT (sizeof(mlst_fact_names) / sizeof(mlst_fact_names[0]))

static int fact_index(const char *name, size_t len)
{
    for (size_t i = 0; i < MLST_FACT_COUNT; i++)
        if (strlen(mlst_fact_names[i]) == len && strncasecmp(mlst_fact_names[i], name, len) == 0)
            return (int)i;
    return -1;
}

static int opts_mlst(session *s, const char *val)
{
    char shown[80];
    unsigned mask = 0;
    const char *p = val;

    /* Bounded by the argument's length: each turn consumes one name. */
    while (*p != '\0') {
        size_t len = strcspn(p, ";");
        int idx = fact_index(p, len);

        if (idx >= 0)
            mask |= 1u << idx;
        p += len;
        if (*p == ';')
            p++;
    }
    s->mlst_facts = mask;
    shown[0] = '\0';
    for (size_t i = 0; i < MLST_FACT_COUNT; i++) {
        size_t len = strlen(shown);
        if (mask & (1u << i))
            snprintf(shown + len, sizeof(shown) - len, "%s;", mlst_fact_names[i]);
    }
    return reply(s, 200, "MLST OPTS %s", shown);
}

/* ---- information ---------------------------------------------------------- */

static int stat_server(session *s)
{
    if (reply_begin(s, 211, FTPD_NAME " " FTPD_VERSION " status:") < 0 ||
        reply_line(s, "Connected to %s", s->peer_host) < 0 ||
        reply_line(s, "Logged in as %s%s", s->user, s->anonymous ? " (anonymous)" : "") < 0 ||
        reply_line(s, "TYPE: %s, STRUcture: File, MODE: Stream",
                   s->type == 'A' ? "ASCII" : "BINARY") < 0 ||
        reply_line(s, "%s",
                   s->dmode == DATA_PASV   ? "Passive data connection waiting"
                   : s->dmode == DATA_PORT ? "Active data connection prepared"
                                           : "No data connection") < 0 ||
        reply_line(s, "%u files, %llu bytes uploaded; %u files, %llu bytes downloaded", s->files_in,
                   s->bytes_in, s->files_out, s->bytes_out) < 0)
        return -1;
    return reply(s, 211, "End of status.");
}

int cmd_stat(session *s, const char *arg)
{
    listing_opts o;
    listing *l;
    const char *path, *line;
    char norm[VFS_PATH_MAX];
    struct stat st;
    ssize_t n;
    int rc;

    if (arg == NULL || *arg == '\0')
        return stat_server(s);
    cmd_listing_opts(s, &o);
    path = cmd_list_args(arg, &o);
    if (vfs_normalize(&s->fs, path, norm, sizeof(norm)) < 0)
        return cmd_reply_errno(s, errno);
    if (path != NULL && vfs_stat(&s->fs, path, &st) < 0)
        return cmd_reply_errno(s, errno);
    l = listing_open(&s->fs, path, LISTING_LIST, &o);
    if (l == NULL)
        return cmd_reply_errno(s, errno);
    cmd_log_unsorted(s, l, norm);
    rc = reply_begin(s, 213, "Status of %s:", path != NULL ? path : vfs_cwd(&s->fs));
    /* One reply line per listing line, as they are formatted: bounded by
     * the listing, each turn takes one line. */
    n = 0;
    while (rc == 0) {
        n = listing_next(l, &line);
        if (n <= 0)
            break;
        rc = reply_line(s, "%.*s", (int)n - 2, line); /* without its CRLF */
    }
    if (n < 0) {
        int err = errno;

        listing_close(l);
        /* A multi-line reply ends with its own code; the text says why
         * the listing stopped short. */
        log_msg("%s: STAT %s: %s", s->peer_str, norm, strerror(err));
        return reply(s, 213, "End of status (listing incomplete: %s).", strerror(err));
    }
    listing_close(l);
    if (rc < 0)
        return -1;
    return reply(s, 213, "End of status.");
}

int cmd_mlst(session *s, const char *arg)
{
    listing_opts o;
    char facts[LISTING_LINE_MAX];
    struct stat st;

    cmd_listing_opts(s, &o);
    if (vfs_stat(&s->fs, arg, &st) < 0 || listing_mlst(&s->fs, arg, &o, facts, sizeof(facts)) < 0)
        return cmd_reply_errno(s, errno);
    if (reply_begin(s, 250, "Listing %s", arg != NULL && *arg != '\0' ? arg : vfs_cwd(&s->fs)) <
            0 ||
        reply_line(s, "%s", facts) < 0)
        return -1;
    return reply(s, 250, "End.");
}

int cmd_syst(session *s, const char *arg)
{
    return reply(s, 215, "UNIX Type: L8");
}

int cmd_noop(session *s, const char *arg)
{
    return reply(s, 200, "NOOP ok.");
}

int cmd_feat(session *s, const char *arg)
{
    char hashes[64], mlst_feat[80];
    size_t n = 0;
    bool tls = s->cfg->tls_mode != FTPD_TLS_OFF;

    mlst_feat[0] = '\0';
    for (size_t i = 0; i < MLST_FACT_COUNT; i++) {
        size_t len = strlen(mlst_feat);
        snprintf(mlst_feat + len, sizeof(mlst_feat) - len, "%s%s;", mlst_fact_names[i],
                 (s->mlst_facts & (1u << i)) ? "*" : "");
    }
    hashes[0] = '\0';
    for (size_t i = 0; hash_algorithms[i] != NULL; i++) {
        int k =
            snprintf(hashes + n, sizeof(hashes) - n, "%s%s%s", i > 0 ? ";" : "", hash_algorithms[i],
                     strcmp(hash_algorithms[i], s->hash_algo) == 0 ? "*" : "");
        if (k < 0 || (size_t)k >= sizeof(hashes) - n)
            break;
        n += (size_t)k;
    }
    /* HASH is listed only when --hash-max-size lets it run; AUTH TLS, PBSZ
     * and PROT only when TLS is on (RFC 4217 6). */
    if (reply_begin(s, 211, "Features:") < 0 || (tls && reply_line(s, "AUTH TLS") < 0) ||
        reply_line(s, "EPRT") < 0 || reply_line(s, "EPSV") < 0 ||
        (s->cfg->hash_max_size > 0 && reply_line(s, "HASH %s", hashes) < 0) ||
        reply_line(s, "MDTM") < 0 || reply_line(s, "MLST %s", mlst_feat) < 0 ||
        (tls && (reply_line(s, "PBSZ") < 0 || reply_line(s, "PROT") < 0)) ||
        reply_line(s, "REST STREAM") < 0 || reply_line(s, "SIZE") < 0 ||
        reply_line(s, "TVFS") < 0 || reply_line(s, "UTF8") < 0)
        return -1;
    return reply(s, 211, "End");
}

int cmd_opts(session *s, const char *arg)
{
    char word[16];
    size_t n = strcspn(arg, " ");
    const char *val = arg + n;

    while (*val == ' ')
        val++;
    if (n >= sizeof(word))
        return reply(s, 501, "Option not understood.");
    memcpy(word, arg, n);
    word[n] = '\0';
    if (strcasecmp(word, "UTF8") == 0) {
        if (strcasecmp(val, "ON") == 0 || *val == '\0')
            return reply(s, 200, "Always in UTF8 mode.");
        return reply(s, 504, "UTF8 cannot be turned off.");
    }
    if (strcasecmp(word, "MLST") == 0)
        return opts_mlst(s, val);
    if (strcasecmp(word, "HASH") == 0 && s->cfg->hash_max_size != 0) {
        const char *algo;

        if (*val == '\0')
            return reply(s, 200, "%s", s->hash_algo);
        algo = hash_lookup(val);
        if (algo == NULL)
            return reply(s, 501, "Unknown algorithm.");
        s->hash_algo = algo;
        return reply(s, 200, "%s", algo);
    }
    return reply(s, 501, "Option not understood.");
}
