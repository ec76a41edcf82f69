/*
 * listfmt.c - the lines of a listing, formatted from a stat result.
 *
 * LIST lines as "ls -l" prints them, the date as "Mon DD HH:MM" within six
 * months and "Mon DD  YYYY" otherwise; MLSx facts (RFC 3659 7); the
 * YYYYMMDDHHMMSS time of MDTM and the modify fact. Times are in UTC, so
 * LIST, MLSx and MDTM agree whatever the server's zone.
 */
#include "listfmt.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sockserv.h>

/* Six months as ls(1) counts them: half of an average Gregorian year. */
#define LS_SIX_MONTHS ((time_t)31556952 / 2)
/* Timestamps this far in the future still count as recent (clock skew
 * between a client-set mtime and the server). */
#define LS_FUTURE_SLACK ((time_t)3600)

static const char *const ls_months[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Writes value as exactly width decimal digits (zero-padded). */
static char *ls_digits(char *p, int value, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + value % 10);
        value /= 10;
    }
    return p + width;
}

void listing_format_time(time_t t, char out[15])
{
    struct tm tm;
    /* Outside the years 0..9999 the fact would not be 14 digits; clamp. */
    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 0) {
        memcpy(out, "00000101000000", 15);
        return;
    }
    if (tm.tm_year + 1900 > 9999) {
        memcpy(out, "99991231235959", 15);
        return;
    }
    const int parts[6] = {tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                          tm.tm_hour,        tm.tm_min,     tm.tm_sec};
    char *p = out;
    for (int i = 0; i < 6; i++)
        p = ls_digits(p, parts[i], i == 0 ? 4 : 2);
    *p = '\0';
}

/* A user or group name is used only if it is short and has no spaces or
 * control characters (a space would shift the columns clients parse). */
static bool ls_good_id_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= LS_ID_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

#define LS_FIXED_NAMES_MAX 8
static listfmt_id_name ls_fixed[LS_FIXED_NAMES_MAX];
static size_t ls_nfixed;
static bool ls_names_fixed;

void listfmt_fixed_names(const listfmt_id_name *names, size_t n)
{
    ls_names_fixed = names != NULL;
    ls_nfixed = 0;
    for (size_t i = 0; names != NULL && i < n && i < LS_FIXED_NAMES_MAX; i++)
        ls_fixed[ls_nfixed++] = names[i];
}

/* The name of user (or group) id into out; the numeric id if unknown. */
void listfmt_lookup_id(bool user, unsigned id, char *out, size_t size, char *scratch,
                       size_t scratch_size)
{
    const char *found = NULL;
    if (ls_names_fixed) {
        for (size_t i = 0; i < ls_nfixed; i++)
            if (ls_fixed[i].user == user && ls_fixed[i].id == id)
                found = ls_fixed[i].name;
    } else if (scratch != NULL) {
        if (user) {
            struct passwd pw;
            struct passwd *res = NULL;
            if (getpwuid_r((uid_t)id, &pw, scratch, scratch_size, &res) == 0 && res != NULL)
                found = res->pw_name;
        } else {
            struct group gr;
            struct group *res = NULL;
            if (getgrgid_r((gid_t)id, &gr, scratch, scratch_size, &res) == 0 && res != NULL)
                found = res->gr_name;
        }
    }
    if (found != NULL && ls_good_id_name(found))
        snprintf(out, size, "%s", found);
    else
        snprintf(out, size, "%u", id);
}

/* The execute column: x or -, or the special bit's letter (lower case when
 * execute is also set, upper case when not). */
static char ls_exec_char(mode_t exec, mode_t special, char letter)
{
    if (special)
        return (char)(exec ? letter : letter - 'a' + 'A');
    return (char)(exec ? 'x' : '-');
}

static void ls_mode_string(mode_t m, char out[11])
{
    char t = '-';
    if (S_ISDIR(m))
        t = 'd';
    else if (S_ISLNK(m))
        t = 'l';
    else if (S_ISCHR(m))
        t = 'c';
    else if (S_ISBLK(m))
        t = 'b';
    else if (S_ISFIFO(m))
        t = 'p';
    else if (S_ISSOCK(m))
        t = 's';
    out[0] = t;
    out[1] = (m & S_IRUSR) ? 'r' : '-';
    out[2] = (m & S_IWUSR) ? 'w' : '-';
    out[3] = ls_exec_char(m & S_IXUSR, m & S_ISUID, 's');
    out[4] = (m & S_IRGRP) ? 'r' : '-';
    out[5] = (m & S_IWGRP) ? 'w' : '-';
    out[6] = ls_exec_char(m & S_IXGRP, m & S_ISGID, 's');
    out[7] = (m & S_IROTH) ? 'r' : '-';
    out[8] = (m & S_IWOTH) ? 'w' : '-';
    out[9] = ls_exec_char(m & S_IXOTH, m & S_ISVTX, 't');
    out[10] = '\0';
}

/* "Nov 25 18:40" within six months of now, else "Nov 25  2025" (UTC). */
static void ls_date(time_t t, time_t now, char out[16])
{
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) {
        t = 0;
        gmtime_r(&t, &tm);
    }
    if (t > now - LS_SIX_MONTHS && t <= now + LS_FUTURE_SLACK)
        snprintf(out, 16, "%s %2d %02d:%02d", ls_months[tm.tm_mon], tm.tm_mday, tm.tm_hour,
                 tm.tm_min);
    else
        snprintf(out, 16, "%s %2d %5d", ls_months[tm.tm_mon], tm.tm_mday,
                 tm.tm_year + 1900 > 99999 ? 99999 : tm.tm_year + 1900);
}

/* One "ls -l" line without CRLF; target may be NULL. */
int listfmt_ls_line(const struct stat *st, const char *owner, const char *group, const char *name,
                    const char *target, time_t now, char *buf, size_t size)
{
    char mode[11];
    char date[16];
    ls_mode_string(st->st_mode, mode);
    ls_date(st->st_mtime, now, date);
    int n = snprintf(buf, size, "%s %3lu %-8s %-8s %8lld %s %s%s%s", mode,
                     (unsigned long)st->st_nlink, owner, group, (long long)st->st_size, date, name,
                     target ? " -> " : "", target ? target : "");
    if (n < 0 || (size_t)n >= size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return n;
}

int listing_format_ls(const struct stat *st, const char *name, time_t now, char *buf, size_t size)
{
    char owner[LS_ID_NAME_MAX];
    char group[LS_ID_NAME_MAX];
    /* Heap scratch: sessions may run on small thread stacks. */
    char *scratch = malloc(LS_PWBUF_SIZE);
    if (now == 0)
        now = time(NULL);
    listfmt_lookup_id(true, (unsigned)st->st_uid, owner, sizeof owner, scratch, LS_PWBUF_SIZE);
    listfmt_lookup_id(false, (unsigned)st->st_gid, group, sizeof group, scratch, LS_PWBUF_SIZE);
    free(scratch);
    int n = listfmt_ls_line(st, owner, group, name, NULL, now, buf, size);
    return n < 0 ? -1 : 0;
}

/* The rwx bits that apply to this process for st (the owner, group or other
 * class, as the kernel chooses it; root may read and write anything). */
static unsigned ls_access_bits(const struct stat *st)
{
    uid_t euid = geteuid();
    unsigned m = (unsigned)st->st_mode;
    if (euid == 0)
        return 6u | ((m & 0111) ? 1u : 0u);
    if (st->st_uid == euid)
        return (m >> 6) & 7u;
    if (st->st_gid == getegid())
        return (m >> 3) & 7u;
    return m & 7u;
}

static const char *ls_type_fact(const struct stat *st)
{
    if (S_ISDIR(st->st_mode))
        return "dir";
    if (S_ISREG(st->st_mode))
        return "file";
    if (S_ISLNK(st->st_mode))
        return "OS.unix=symlink";
    if (S_ISFIFO(st->st_mode))
        return "OS.unix=fifo";
    if (S_ISSOCK(st->st_mode))
        return "OS.unix=socket";
    if (S_ISCHR(st->st_mode))
        return "OS.unix=chr";
    return "OS.unix=blk";
}

/* Appends to buf at *len with snprintf semantics; false once it is full. */
static bool ls_append(char *buf, size_t size, size_t *len, const char *fmt, ...) SS_PRINTF(4, 5);

static bool ls_append(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*len >= size)
        return false;
    va_start(ap, fmt);
    n = vsnprintf(buf + *len, size - *len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size - *len) {
        *len = size;
        return false;
    }
    *len += (size_t)n;
    return true;
}

int listing_format_facts(const struct stat *st, const char *type_override, const char *name,
                         bool writable, unsigned facts, char *buf, size_t size)
{
    char modify[15];
    char perm[8];
    size_t p = 0;
    size_t len = 0;
    const char *type = type_override ? type_override : ls_type_fact(st);
    unsigned acc = ls_access_bits(st);
    bool w = (acc & 2u) != 0;

    /* RFC 3659 7.5.5, letters in alphabetical order. */
    if (S_ISDIR(st->st_mode)) {
        if (writable && w)
            perm[p++] = 'c';
        if (writable)
            perm[p++] = 'd';
        if (acc & 1u)
            perm[p++] = 'e';
        if (writable)
            perm[p++] = 'f';
        if (acc & 4u)
            perm[p++] = 'l';
        if (writable && w) {
            perm[p++] = 'm';
            perm[p++] = 'p';
        }
    } else if (S_ISREG(st->st_mode)) {
        if (writable && w)
            perm[p++] = 'a';
        if (writable) {
            perm[p++] = 'd';
            perm[p++] = 'f';
        }
        if (acc & 4u)
            perm[p++] = 'r';
        if (writable && w)
            perm[p++] = 'w';
    } else if (writable) {
        /* A link or special file can only be deleted or renamed. */
        perm[p++] = 'd';
        perm[p++] = 'f';
    }
    perm[p] = '\0';
    listing_format_time(st->st_mtime, modify);
    if (size > 0)
        buf[0] = '\0';
    if ((facts & LISTING_FACT_TYPE) && !ls_append(buf, size, &len, "type=%s;", type))
        goto too_long;
    /* Only files have a size worth telling (RFC 3659 7.5.7). */
    if ((facts & LISTING_FACT_SIZE) && S_ISREG(st->st_mode) &&
        !ls_append(buf, size, &len, "size=%lld;", (long long)st->st_size))
        goto too_long;
    if ((facts & LISTING_FACT_MODIFY) && !ls_append(buf, size, &len, "modify=%s;", modify))
        goto too_long;
    if ((facts & LISTING_FACT_PERM) && !ls_append(buf, size, &len, "perm=%s;", perm))
        goto too_long;
    if ((facts & LISTING_FACT_UNIQUE) &&
        !ls_append(buf, size, &len, "unique=%llxg%llx;", (unsigned long long)st->st_dev,
                   (unsigned long long)st->st_ino))
        goto too_long;
    if (!ls_append(buf, size, &len, " %s", name))
        goto too_long;
    return 0;
too_long:
    errno = ENAMETOOLONG;
    return -1;
}
